//! Pure steps of the batch methods: which record of a repeated key wins, when a lease expires, answers in the
//! order asked, how the ledger is pruned, which facts a batch applies.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{OrderFacts, StoreError, merge_order_facts};

/// The last item of each key, in the order of those last items: a batch that names a key twice keeps its last
/// record, as one call per item would (and one bulk statement never touches a row twice).
pub fn last_of_each<'a, T, K: Eq + Hash>(items: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<&'a T> {
    let mut last: HashMap<K, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        last.insert(key(item), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| &items[i]).collect()
}

/// When a lease taken at `now` for `ttl` expires.
pub fn lease_expiry(now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>, StoreError> {
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))?;
    now.checked_add_signed(ttl)
        .ok_or_else(|| StoreError::Invalid("lease ttl too long".into()))
}

/// For each ID asked, in the order asked, whether it is among the granted ones.
pub fn granted_in_order(asked: &[String], granted: impl IntoIterator<Item = String>) -> Vec<bool> {
    let granted: HashSet<String> = granted.into_iter().collect();
    asked.iter().map(|id| granted.contains(id)).collect()
}

/// For each key asked, in the order asked, what was found for it (the default when nothing was).
pub fn in_order<T: Default + Clone>(asked: &[String], found: &HashMap<String, T>) -> Vec<T> {
    asked
        .iter()
        .map(|k| found.get(k).cloned().unwrap_or_default())
        .collect()
}

/// A ledger table as [`crate::Store::prune_ledger`] trims it: its name, its row ID, and its indexed time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerTable {
    pub table: &'static str,
    pub id: &'static str,
    pub time: &'static str,
}

/// The ledger's tables, in the order they are pruned.
pub const LEDGER_TABLES: [LedgerTable; 2] = [
    LedgerTable {
        table: "api_actions",
        id: "action_id",
        time: "at",
    },
    LedgerTable {
        table: "callbacks",
        id: "callback_id",
        time: "received_at",
    },
];

/// Rows one pruning statement deletes at most: each is its own short transaction, so a writer waits for one at most.
pub const PRUNE_CHUNK: u32 = 1_000;

/// [`crate::Store::prune_ledger`] around the backend's one statement: `delete(table, n)` deletes up to `n` of the
/// table's oldest rows past the cutoff ([`crate::backend::Dialect::prune_ledger`]), in its own transaction, and says
/// how many went. Each table in turn, until it has none left past the cutoff or `max_rows` went in all.
pub async fn prune_in_chunks<F, Fut>(max_rows: u32, mut delete: F) -> Result<u64, StoreError>
where
    F: FnMut(LedgerTable, u32) -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut deleted: u64 = 0;
    for table in LEDGER_TABLES {
        loop {
            let left = u64::from(max_rows).saturating_sub(deleted);
            let n = u32::try_from(left.min(u64::from(PRUNE_CHUNK))).unwrap_or(PRUNE_CHUNK);
            if n == 0 {
                return Ok(deleted);
            }
            let gone = delete(table, n).await?;
            deleted += gone;
            if gone < u64::from(n) {
                break;
            }
        }
    }
    Ok(deleted)
}

/// The distinct (task, campaign) pairs of orders being planned, in order: each task's row of `order_outcomes` (which
/// ties it to its campaign for the campaign's counts) is made when its first orders are planned.
pub fn task_campaigns(orders: &[crate::NewOrder]) -> Vec<(&str, &str)> {
    let pairs: std::collections::BTreeSet<(&str, &str)> = orders
        .iter()
        .map(|o| (o.user_task_id.as_str(), o.campaign_id.as_str()))
        .collect();
    pairs.into_iter().collect()
}

/// [`crate::Store::apply_order_facts`] around the backend's transaction: the facts merged (one entry per order and
/// per call: [`merge_order_facts`]), then, unless that leaves none, `write(merged)`.
pub async fn apply_order_facts<F, Fut>(facts: &[OrderFacts], write: F) -> Result<(), StoreError>
where
    F: FnOnce(Vec<OrderFacts>) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let merged = merge_order_facts(facts);
    if merged.is_empty() {
        return Ok(());
    }
    write(merged).await
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// Polls a future that never waits.
    fn now<T>(f: impl Future<Output = T>) -> T {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the future waited"),
        }
    }

    #[test]
    fn pruning_takes_chunks_from_each_table_in_turn_up_to_the_limit() {
        let mut left = HashMap::from([("api_actions", 2_500_u64), ("callbacks", 700)]);
        let mut calls = Vec::new();
        let mut prune = |max| {
            now(prune_in_chunks(max, |t, n| {
                calls.push((t.table, n));
                let rows = left.get_mut(t.table).unwrap();
                let gone = (*rows).min(u64::from(n));
                *rows -= gone;
                std::future::ready(Ok(gone))
            }))
            .unwrap()
        };
        assert_eq!(prune(2_200), 2_200);
        assert_eq!(prune(5_000), 1_000, "fewer than asked: nothing older left");
        assert_eq!(prune(10), 0);
        assert_eq!(
            calls,
            [
                ("api_actions", 1_000),
                ("api_actions", 1_000),
                ("api_actions", 200),
                ("api_actions", 1_000),
                ("callbacks", 1_000),
                ("api_actions", 10),
                ("callbacks", 10),
            ]
        );
    }

    #[test]
    fn the_last_record_of_a_key_wins_in_the_order_of_the_winners() {
        let items = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("b", 2)];
        assert_eq!(
            last_of_each(&items, |i| i.0),
            vec![&("a", 2), &("c", 1), &("b", 2)]
        );
    }

    #[test]
    fn answers_follow_the_order_asked() {
        let asked: Vec<String> = ["c", "a", "x", "a"].map(String::from).to_vec();
        assert_eq!(
            granted_in_order(&asked, ["a".to_owned(), "c".to_owned()]),
            [true, true, false, true]
        );
        let found = HashMap::from([("a".to_owned(), 7_u64)]);
        assert_eq!(in_order(&asked, &found), [0, 7, 0, 7]);
    }

    #[test]
    fn a_lease_too_long_for_the_calendar_is_invalid_input() {
        let now = DateTime::from_timestamp(0, 0).unwrap();
        assert_eq!(
            lease_expiry(now, Duration::from_secs(30)).unwrap(),
            DateTime::from_timestamp(30, 0).unwrap()
        );
        assert!(matches!(
            lease_expiry(now, Duration::from_secs(u64::MAX)),
            Err(StoreError::Invalid(_))
        ));
    }
}
