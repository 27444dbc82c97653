//! What a batch of callbacks stores and applies: each callback once (a verified `requestID` seen before is a
//! repeat), and only the facts of those stored.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::{
    CallbackIngest, CallbackRecord, Ingested, OrderFacts, TaskStatusFact, is_terminal_task_status,
    merge_order_facts,
};

/// Per callback, in input order: [`Ingested::Repeat`] when its [replay key](CallbackIngest::replay_key) is among
/// `stored_before` or came earlier in the batch, else [`Ingested::Stored`]. Callbacks without a key (unverified,
/// or without a `requestID`) are always stored.
pub fn ingest_outcomes(batch: &[CallbackIngest], stored_before: &HashSet<String>) -> Vec<Ingested> {
    let mut seen: HashSet<&str> = HashSet::new();
    batch
        .iter()
        .map(|item| match item.replay_key() {
            Some(key) if stored_before.contains(key) || !seen.insert(key) => Ingested::Repeat,
            _ => Ingested::Stored,
        })
        .collect()
}

/// The raw records `outcomes` calls stored, in input order: what the backend inserts.
pub fn stored_records<'a>(
    batch: &'a [CallbackIngest],
    outcomes: &[Ingested],
) -> Vec<&'a CallbackRecord> {
    batch
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| **o == Ingested::Stored)
        .map(|(i, _)| &i.record)
        .collect()
}

/// A task status as a callback reported it, and when that callback was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedStatus {
    pub fact: TaskStatusFact,
    pub at: DateTime<Utc>,
}

/// The facts a batch applies: those of the callbacks `outcomes` calls stored, merged (orders by
/// [`merge_order_facts`], task statuses by [`merge_task_statuses`]). Repeats apply nothing.
pub fn ingested_facts(
    batch: &[CallbackIngest],
    outcomes: &[Ingested],
) -> (Vec<OrderFacts>, Vec<ObservedStatus>) {
    let stored = || {
        batch
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| **o == Ingested::Stored)
            .map(|(item, _)| item)
    };
    let facts: Vec<OrderFacts> = stored().filter_map(|i| i.facts.clone()).collect();
    let statuses = stored().filter_map(|i| {
        i.task_status.clone().map(|fact| ObservedStatus {
            fact,
            at: i.record.received_at,
        })
    });
    (merge_order_facts(&facts), merge_task_statuses(statuses))
}

/// One status per task, the one applying them in order with the rule of
/// [`crate::Store::task_status_observed`] would leave: once a task's status is terminal, later ones are ignored;
/// otherwise the later one wins, keeping the last `taskID` known. By `user_task_id`, so writers lock task rows in
/// one order.
pub fn merge_task_statuses(
    observed: impl IntoIterator<Item = ObservedStatus>,
) -> Vec<ObservedStatus> {
    let mut by_task: HashMap<String, ObservedStatus> = HashMap::new();
    for o in observed {
        match by_task.get_mut(&o.fact.user_task_id) {
            Some(cur) if is_terminal_task_status(cur.fact.status) => {}
            Some(cur) => {
                let task_id = o.fact.task_id.clone().or_else(|| cur.fact.task_id.take());
                *cur = ObservedStatus {
                    fact: TaskStatusFact { task_id, ..o.fact },
                    at: o.at,
                };
            }
            None => {
                by_task.insert(o.fact.user_task_id.clone(), o);
            }
        }
    }
    let mut merged: Vec<ObservedStatus> = by_task.into_values().collect();
    merged.sort_by(|a, b| a.fact.user_task_id.cmp(&b.fact.user_task_id));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: i64, request_id: Option<&str>, verified: bool) -> CallbackIngest {
        CallbackIngest::raw(CallbackRecord {
            kind: "task".into(),
            body: format!("{{\"n\":{n}}}"),
            verified,
            received_at: DateTime::from_timestamp(n, 0).unwrap(),
            request_id: request_id.map(str::to_owned),
        })
    }

    fn status(ut: &str, status: i64, task_id: Option<&str>, at: i64) -> ObservedStatus {
        ObservedStatus {
            fact: TaskStatusFact {
                user_task_id: ut.into(),
                status,
                task_id: task_id.map(str::to_owned),
            },
            at: DateTime::from_timestamp(at, 0).unwrap(),
        }
    }

    #[test]
    fn a_verified_request_id_is_stored_once_and_unverified_ones_always() {
        let batch = [
            item(1, Some("a"), true),
            item(2, Some("a"), true),
            item(3, Some("a"), false),
            item(4, None, true),
            item(5, None, true),
            item(6, Some("old"), true),
            item(7, Some("b"), true),
        ];
        let before = HashSet::from(["old".to_owned()]);
        use Ingested::{Repeat, Stored};
        assert_eq!(
            ingest_outcomes(&batch, &before),
            [Stored, Repeat, Stored, Stored, Stored, Repeat, Stored]
        );
    }

    #[test]
    fn repeats_apply_no_task_status() {
        let mut first = item(1, Some("a"), true);
        first.task_status = Some(status("t", 2, Some("P-1"), 0).fact);
        let mut replay = item(2, Some("a"), true);
        replay.task_status = Some(status("t", 4, None, 0).fact);
        let batch = [first, replay];
        let outcomes = ingest_outcomes(&batch, &HashSet::new());
        let (_, statuses) = ingested_facts(&batch, &outcomes);
        assert_eq!(statuses, [status("t", 2, Some("P-1"), 1)]);
    }

    #[test]
    fn a_terminal_status_holds_against_everything_after_it_in_a_batch() {
        let merged = merge_task_statuses([
            status("b", 2, None, 1),
            status("a", 1, Some("P-a"), 1),
            status("a", 3, None, 2),
            status("a", 2, Some("P-x"), 3),
            status("a", 4, None, 4),
            status("b", 5, Some("P-b"), 5),
            status("b", 2, None, 6),
        ]);
        assert_eq!(
            merged,
            [
                status("a", 3, Some("P-a"), 2),
                status("b", 2, Some("P-b"), 6)
            ]
        );
    }
}
