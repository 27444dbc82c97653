//! The store's cheap per-task progress (`order_progress`, kept as tallies) and the combined settle-and-claim of the
//! upload, on both backends: the tallies must equal the orders counted one by one after any sequence of writes, and
//! a claimed batch must be durably `sending` before the call returns.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use store::{NewOrder, OrderFacts, OrderProgress, Store, UploadState};

enum Db {
    Sqlite(testkit::TestSqlite),
    Postgres(testkit::TestDatabase),
}

impl Db {
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(db) => Arc::new(
                store_sqlite::SqliteStore::open(&db.url)
                    .await
                    .expect("open SQLite store"),
            ),
            Db::Postgres(db) => Arc::new(
                store_postgres::PgStore::connect(&db.url)
                    .await
                    .expect("open PostgreSQL store"),
            ),
        }
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_400_000 + secs, 0).unwrap()
}

fn new_order(task: &str, n: usize) -> NewOrder {
    NewOrder {
        order_id: format!("{task}-o{n:05}"),
        campaign_id: "c1".into(),
        user_task_id: task.into(),
        phone: format!("8613{n:09}"),
        name: Some(format!("Contact\t{n}\\")),
        customer: None,
        other: Some(format!("ref\n{n}")),
        variables: serde_json::json!({ "n": n, "note": "tab\there" }),
        source_line: n as i64 + 1,
        attempt: 1,
    }
}

/// The progress counted the slow way: every order of the task listed by state, and every unfinished one.
async fn counted(store: &dyn Store, task: &str) -> OrderProgress {
    let mut p = OrderProgress::default();
    for state in UploadState::ALL {
        let n = store
            .orders_in_state(task, state, u32::MAX)
            .await
            .unwrap()
            .len() as u64;
        match state {
            UploadState::Planned => p.planned = n,
            UploadState::Sending => p.sending = n,
            UploadState::Sent => p.sent = n,
            UploadState::Rejected => p.rejected = n,
        }
    }
    p.total = p.planned + p.sending + p.sent + p.rejected;
    p.unfinished = store.orders_to_poll(task, u32::MAX).await.unwrap().len() as u64;
    p
}

/// A small deterministic generator (xorshift), so the sequence of writes is wide but reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TASKS: [&str; 2] = ["t1", "t2"];
const ORDERS_PER_TASK: usize = 120;

async fn progress_equals_the_orders_counted_after_any_writes(db: Db) {
    let store = db.open().await;
    for seed in [1_u64, 7, 42] {
        // Fresh task names per seed, so the seeds do not see each other's orders.
        let tasks: Vec<String> = TASKS.iter().map(|t| format!("{t}-s{seed}")).collect();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let all: Vec<NewOrder> = tasks
            .iter()
            .flat_map(|t| (0..ORDERS_PER_TASK).map(move |n| new_order(t, n)))
            .collect();
        let ids = |from: usize, len: usize, rng: &mut Rng| -> Vec<String> {
            (0..len)
                .map(|_| {
                    all[(from + rng.below(all.len())) % all.len()]
                        .order_id
                        .clone()
                })
                .collect()
        };
        for step in 0..40_i64 {
            let when = at(step);
            match rng.below(6) {
                0 => {
                    // Planning, with repeats (skipped) and both tasks in one call.
                    let from = rng.below(all.len());
                    let len = rng.below(80) + 1;
                    let chunk: Vec<NewOrder> = (from..from + len)
                        .map(|i| all[i % all.len()].clone())
                        .collect();
                    store.insert_planned_orders(&chunk, when).await.unwrap();
                }
                1 => {
                    let state = UploadState::ALL[rng.below(4)];
                    let len = rng.below(60) + 1;
                    let batch = ids(0, len, &mut rng);
                    store.set_upload_state(&batch, state, when).await.unwrap();
                }
                2 => {
                    // Rejections named across both tasks: each task's settle moves only its own.
                    let len = rng.below(20) + 1;
                    let batch: Vec<(String, String)> = ids(0, len, &mut rng)
                        .into_iter()
                        .map(|id| (id, "refused".to_owned()))
                        .collect();
                    for task in &tasks {
                        store
                            .settle_and_claim(&[], &batch, task, 0, when, &[])
                            .await
                            .unwrap();
                    }
                }
                3 | 4 => {
                    let task = &tasks[rng.below(tasks.len())];
                    let sending = store
                        .orders_in_state(task, UploadState::Sending, 50)
                        .await
                        .unwrap();
                    let (rejected, sent): (Vec<_>, Vec<_>) =
                        sending.iter().partition(|_| rng.below(5) == 0);
                    let sent: Vec<String> = sent.iter().map(|o| o.order_id.clone()).collect();
                    let rejected: Vec<(String, String)> = rejected
                        .iter()
                        .map(|o| (o.order_id.clone(), "bad number".to_owned()))
                        .collect();
                    let claim = rng.below(40) as u32;
                    let claimed = store
                        .settle_and_claim(&sent, &rejected, task, claim, when, &[])
                        .await
                        .unwrap();
                    assert!(claimed.len() <= claim as usize);
                    assert!(
                        claimed
                            .iter()
                            .all(|o| o.upload_state == UploadState::Sending
                                && o.user_task_id == *task)
                    );
                }
                _ => {
                    // Finishing some sent orders (the fact writes never touch the tallies).
                    let task = &tasks[rng.below(tasks.len())];
                    let sent = store
                        .orders_in_state(task, UploadState::Sent, 30)
                        .await
                        .unwrap();
                    let facts: Vec<OrderFacts> = sent
                        .iter()
                        .filter(|_| rng.below(2) == 0)
                        .map(|o| OrderFacts {
                            order_id: o.order_id.clone(),
                            user_task_id: task.clone(),
                            finished: true,
                            calls: vec![],
                        })
                        .collect();
                    store
                        .apply_order_facts(&facts, store::FactSource::Poll)
                        .await
                        .unwrap();
                }
            }
            for task in &tasks {
                assert_eq!(
                    store.order_progress(task).await.unwrap(),
                    counted(store.as_ref(), task).await,
                    "seed {seed}, step {step}, task {task}"
                );
            }
        }
    }
    assert_eq!(
        store.order_progress("no-such-task").await.unwrap(),
        OrderProgress::default()
    );
}

async fn claimed_batch_is_durably_sending_and_settling_keeps_final_states(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..10).map(|n| new_order("t1", n)).collect();
    let other: Vec<NewOrder> = (0..3).map(|n| new_order("t2", n)).collect();
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    store.insert_planned_orders(&other, at(0)).await.unwrap();

    let first = store
        .settle_and_claim(&[], &[], "t1", 4, at(1), &[])
        .await
        .unwrap();
    let lines: Vec<i64> = first.iter().map(|o| o.source_line).collect();
    assert_eq!(lines, vec![1, 2, 3, 4], "the lowest source lines, in order");
    assert_eq!(first[0].name.as_deref(), Some("Contact\t0\\"));
    assert_eq!(first[0].other.as_deref(), Some("ref\n0"));
    assert_eq!(first[0].variables["note"], "tab\there");

    // Durable: a second handle on the same database sees them sending.
    let reopened = db.open().await;
    let sending = reopened
        .orders_in_state("t1", UploadState::Sending, 100)
        .await
        .unwrap();
    assert_eq!(sending.len(), 4);
    assert!(sending.iter().all(|o| o.state_changed_at == Some(at(1))));

    // Settle the batch (one refused) and claim the next, in one call. An order of another task in the lists is left
    // alone.
    let sent: Vec<String> = vec![
        first[0].order_id.clone(),
        first[1].order_id.clone(),
        first[2].order_id.clone(),
        other[0].order_id.clone(),
    ];
    let rejected = vec![(first[3].order_id.clone(), "blacklisted".to_owned())];
    let second = store
        .settle_and_claim(&sent, &rejected, "t1", 4, at(2), &[])
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|o| o.source_line).collect::<Vec<_>>(),
        vec![5, 6, 7, 8]
    );
    let rej = store.order(&first[3].order_id).await.unwrap().unwrap();
    assert_eq!(rej.upload_state, UploadState::Rejected);
    assert_eq!(rej.reject_reason.as_deref(), Some("blacklisted"));
    let untouched = store.order(&other[0].order_id).await.unwrap().unwrap();
    assert_eq!(untouched.upload_state, UploadState::Planned);

    // Rejected and sent are final: settling them again as sent or claiming does not move them.
    let again = store
        .settle_and_claim(&[first[3].order_id.clone()], &[], "t1", 0, at(3), &[])
        .await
        .unwrap();
    assert!(again.is_empty(), "claim 0 only settles");
    assert_eq!(
        store
            .order(&first[3].order_id)
            .await
            .unwrap()
            .unwrap()
            .upload_state,
        UploadState::Rejected
    );
    let p = store.order_progress("t1").await.unwrap();
    assert_eq!(
        (
            p.total,
            p.planned,
            p.sending,
            p.sent,
            p.rejected,
            p.unfinished
        ),
        (10, 2, 4, 3, 1, 3)
    );
    assert_eq!(p, counted(store.as_ref(), "t1").await);

    // Draining: the last claim returns what is left, then nothing.
    let third = store
        .settle_and_claim(&[], &[], "t1", 4, at(4), &[])
        .await
        .unwrap();
    assert_eq!(third.len(), 2);
    assert!(
        store
            .settle_and_claim(&[], &[], "t1", 4, at(5), &[])
            .await
            .unwrap()
            .is_empty()
    );
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Db::Sqlite(testkit::sqlite_database())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Db::Postgres(testkit::postgres_database().await)).await;
                }
            )*
        }
    };
}

both_backends!(
    progress_equals_the_orders_counted_after_any_writes,
    claimed_batch_is_durably_sending_and_settling_keeps_final_states,
);
