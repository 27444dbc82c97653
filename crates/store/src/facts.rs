//! What the platform reports about orders and calls, as storage facts.
//!
//! Polls (`listOrderDetail`) and callbacks (order and call callbacks) both become [`OrderFacts`]; the store applies
//! them with the same idempotent upserts, so they converge whatever order they arrive in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a batch of facts came from (kept on each call row for auditing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactSource {
    Poll,
    Callback,
}

impl FactSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FactSource::Poll => "poll",
            FactSource::Callback => "callback",
        }
    }
}

/// Facts about one order: its finished flag and the calls reported with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderFacts {
    pub order_id: String,
    pub user_task_id: String,
    /// True once the platform says no further rounds will follow.
    pub finished: bool,
    pub calls: Vec<CallFacts>,
}

/// Facts about one call (one dialling round of an order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallFacts {
    pub call_id: String,
    pub order_id: String,
    /// `callStatus`: 1..=5 in flight, 6 and above final.
    pub call_status: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `callDuration`, seconds.
    pub duration_secs: Option<i64>,
    pub audio_url: Option<String>,
    pub hangup_cause: Option<String>,
    pub term_sip_code: Option<String>,
    pub calling_number: Option<String>,
    pub intents: Vec<IntentFact>,
    pub sms: Vec<SmsFact>,
    /// The agent leg as reported, when an agent took part.
    pub agent: Option<serde_json::Value>,
    /// Dialogue record (`recordDetail`).
    pub transcript: Vec<TranscriptLine>,
}

/// One intent label attached to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentFact {
    pub intent_id: String,
    pub intent_tag: String,
    pub intent_name: String,
    pub intent_level: Option<i64>,
}

/// One SMS the platform reports for a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsFact {
    pub sys_message_id: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub content: String,
    /// 0 not sent, 1 sent, 2 delivered, 3 failed, 4 clicked, when the platform gives one (the docs are ambiguous).
    pub status: Option<i64>,
}

/// One line of a call's dialogue record, keyed by `(call_id, index)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// `recordIndex`.
    pub index: i64,
    /// `recordRole`: 0 robot, 1 user, 2 agent.
    pub role: i64,
    /// `recordType`: 5 user timeout, 6 interruption, 7 user answer, 8 server answer, 18 agent reply.
    pub kind: i64,
    pub word: String,
    pub node_id: Option<String>,
    pub node_desc: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// Whether a `callStatus` is final (6 and above): the call is over and its outcome will not change.
pub fn is_final_call_status(status: i64) -> bool {
    status >= 6
}

/// The vendor's name for a `callStatus` value, if it has one.
pub fn call_status_name(status: i64) -> Option<&'static str> {
    Some(match status {
        1 => "preparing",
        2 => "dispatching",
        3 => "dialing",
        4 => "ringing",
        5 => "in call",
        6 => "completed (answered)",
        8 => "invalid number",
        9 => "temporarily unreachable",
        10 => "busy",
        11 => "busy and rejected",
        12 => "rejected",
        13 => "rejected",
        15 => "TTS synthesis failed",
        16 => "unknown reason",
        17 => "blacklisted number",
        18 => "terminated by user",
        21 => "invalid number (number check)",
        22 => "ring missed",
        23 => "no response",
        24 => "early media / voice mail",
        25 => "rang too long",
        _ => return None,
    })
}

/// Talk time of a call in seconds: `callDuration` when given, else end minus answer; None when not answered.
pub fn talk_secs(call: &CallFacts) -> Option<i64> {
    if let Some(d) = call.duration_secs {
        return Some(d.max(0));
    }
    match (call.answered_at, call.ended_at) {
        (Some(a), Some(e)) => Some((e - a).num_seconds().max(0)),
        _ => None,
    }
}

/// Whether `incoming` may replace `stored` for the same call: never a final status by an in-flight one.
pub fn may_replace_call_status(stored_status: i64, incoming_status: i64) -> bool {
    !is_final_call_status(stored_status) || is_final_call_status(incoming_status)
}

/// Folds a batch of facts into one entry per order and one per call, applying the store's rules within the batch
/// (finished is sticky; a final status beats an in-flight one; otherwise the later report wins, field by field).
///
/// Backends call this first so that one bulk statement never touches the same key twice.
pub fn merge_order_facts(facts: &[OrderFacts]) -> Vec<OrderFacts> {
    let mut orders: Vec<OrderFacts> = Vec::new();
    let mut order_pos: HashMap<&str, usize> = HashMap::new();
    let mut call_pos: HashMap<&str, (usize, usize)> = HashMap::new();
    for fact in facts {
        let oi = *order_pos.entry(fact.order_id.as_str()).or_insert_with(|| {
            orders.push(OrderFacts {
                order_id: fact.order_id.clone(),
                user_task_id: fact.user_task_id.clone(),
                finished: false,
                calls: Vec::new(),
            });
            orders.len() - 1
        });
        orders[oi].finished |= fact.finished;
        for call in &fact.calls {
            match call_pos.get(call.call_id.as_str()) {
                Some(&(o, c)) => {
                    let stored = &mut orders[o].calls[c];
                    if may_replace_call_status(stored.call_status, call.call_status) {
                        merge_call(stored, call);
                    }
                }
                None => {
                    orders[oi].calls.push(call.clone());
                    call_pos.insert(call.call_id.as_str(), (oi, orders[oi].calls.len() - 1));
                }
            }
        }
    }
    orders
}

/// Overlays `new` on `old`: present values win, absent ones keep what was known; non-empty lists replace.
fn merge_call(old: &mut CallFacts, new: &CallFacts) {
    old.call_status = new.call_status;
    fn keep<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
        if new.is_some() {
            old.clone_from(new);
        }
    }
    keep(&mut old.started_at, &new.started_at);
    keep(&mut old.answered_at, &new.answered_at);
    keep(&mut old.ended_at, &new.ended_at);
    keep(&mut old.duration_secs, &new.duration_secs);
    keep(&mut old.audio_url, &new.audio_url);
    keep(&mut old.hangup_cause, &new.hangup_cause);
    keep(&mut old.term_sip_code, &new.term_sip_code);
    keep(&mut old.calling_number, &new.calling_number);
    keep(&mut old.agent, &new.agent);
    if !new.intents.is_empty() {
        old.intents.clone_from(&new.intents);
    }
    if !new.sms.is_empty() {
        old.sms.clone_from(&new.sms);
    }
    for line in &new.transcript {
        match old.transcript.iter_mut().find(|l| l.index == line.index) {
            Some(existing) => existing.clone_from(line),
            None => old.transcript.push(line.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, status: i64) -> CallFacts {
        CallFacts {
            call_id: id.into(),
            order_id: "o1".into(),
            call_status: status,
            started_at: None,
            answered_at: None,
            ended_at: None,
            duration_secs: None,
            audio_url: None,
            hangup_cause: None,
            term_sip_code: None,
            calling_number: None,
            intents: vec![],
            sms: vec![],
            agent: None,
            transcript: vec![],
        }
    }

    fn order(finished: bool, calls: Vec<CallFacts>) -> OrderFacts {
        OrderFacts {
            order_id: "o1".into(),
            user_task_id: "t1".into(),
            finished,
            calls,
        }
    }

    #[test]
    fn merge_keeps_final_status_over_later_in_flight_report() {
        let merged = merge_order_facts(&[
            order(false, vec![call("c1", 6)]),
            order(false, vec![call("c1", 3)]),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].calls.len(), 1);
        assert_eq!(merged[0].calls[0].call_status, 6);
    }

    #[test]
    fn merge_lets_final_status_replace_in_flight_one() {
        let merged = merge_order_facts(&[
            order(false, vec![call("c1", 4)]),
            order(false, vec![call("c1", 10)]),
        ]);
        assert_eq!(merged[0].calls[0].call_status, 10);
    }

    #[test]
    fn merge_keeps_finished_once_true() {
        let merged = merge_order_facts(&[order(true, vec![]), order(false, vec![])]);
        assert!(merged[0].finished);
    }

    #[test]
    fn merge_fills_absent_fields_and_does_not_duplicate_transcript_lines() {
        let mut a = call("c1", 6);
        a.duration_secs = Some(30);
        a.transcript = vec![TranscriptLine {
            index: 1,
            role: 0,
            kind: 8,
            word: "hello".into(),
            node_id: None,
            node_desc: None,
            at: None,
        }];
        let mut b = a.clone();
        b.duration_secs = None;
        b.audio_url = Some("https://rec/1".into());
        let merged = merge_order_facts(&[order(false, vec![a]), order(false, vec![b])]);
        let c = &merged[0].calls[0];
        assert_eq!(c.duration_secs, Some(30));
        assert_eq!(c.audio_url.as_deref(), Some("https://rec/1"));
        assert_eq!(c.transcript.len(), 1);
    }

    #[test]
    fn talk_secs_prefers_reported_duration_then_answer_to_end() {
        let mut c = call("c1", 6);
        assert_eq!(talk_secs(&c), None);
        c.answered_at = DateTime::from_timestamp(1_000, 0);
        c.ended_at = DateTime::from_timestamp(1_042, 0);
        assert_eq!(talk_secs(&c), Some(42));
        c.duration_secs = Some(40);
        assert_eq!(talk_secs(&c), Some(40));
    }

    #[test]
    fn names_known_call_statuses() {
        assert_eq!(call_status_name(6), Some("completed (answered)"));
        assert_eq!(call_status_name(7), None);
        assert!(is_final_call_status(6) && !is_final_call_status(5));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn arb_report() -> impl Strategy<Value = (usize, usize, i64, bool, Option<i64>)> {
        // (order, call, status, finished, duration)
        (
            0..3usize,
            0..4usize,
            1..26i64,
            any::<bool>(),
            proptest::option::of(0..600i64),
        )
    }

    fn build(reports: &[(usize, usize, i64, bool, Option<i64>)]) -> Vec<OrderFacts> {
        reports
            .iter()
            .map(|&(o, c, status, finished, duration)| OrderFacts {
                order_id: format!("o{o}"),
                user_task_id: "t".into(),
                finished,
                calls: vec![CallFacts {
                    call_id: format!("o{o}-c{c}"),
                    order_id: format!("o{o}"),
                    call_status: status,
                    started_at: None,
                    answered_at: None,
                    ended_at: None,
                    duration_secs: duration,
                    audio_url: None,
                    hangup_cause: None,
                    term_sip_code: None,
                    calling_number: None,
                    intents: vec![],
                    sms: vec![],
                    agent: None,
                    transcript: vec![],
                }],
            })
            .collect()
    }

    proptest! {
        #[test]
        fn merged_batches_keep_the_store_rules(reports in proptest::collection::vec(arb_report(), 0..40)) {
            let merged = merge_order_facts(&build(&reports));
            // One entry per order and per call.
            let mut orders: Vec<&str> = merged.iter().map(|o| o.order_id.as_str()).collect();
            orders.sort_unstable();
            orders.dedup();
            prop_assert_eq!(orders.len(), merged.len());
            for order in &merged {
                // finished is the OR of every report of the order.
                let any_finished = reports.iter().any(|r| format!("o{}", r.0) == order.order_id && r.3);
                prop_assert_eq!(order.finished, any_finished);
                for call in &order.calls {
                    let seen: Vec<&(usize, usize, i64, bool, Option<i64>)> =
                        reports.iter().filter(|r| format!("o{}-c{}", r.0, r.1) == call.call_id).collect();
                    // A call reported final at least once ends final.
                    if seen.iter().any(|r| is_final_call_status(r.2)) {
                        prop_assert!(is_final_call_status(call.call_status));
                    }
                    // A duration reported with a final status is never lost (a stale in-flight report is ignored
                    // whole, so what it alone carried may be).
                    if seen.iter().any(|r| r.4.is_some() && is_final_call_status(r.2)) {
                        prop_assert!(call.duration_secs.is_some());
                    }
                    prop_assert!(seen.iter().any(|r| r.2 == call.call_status));
                }
            }
        }

        #[test]
        fn a_final_status_is_never_replaced_by_an_in_flight_one(stored in 1..30i64, incoming in 1..30i64) {
            let allowed = may_replace_call_status(stored, incoming);
            prop_assert_eq!(allowed, !(stored >= 6 && incoming < 6));
        }
    }
}
