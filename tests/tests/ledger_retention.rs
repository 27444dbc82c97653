//! Ledger retention on both backends: the pruner deletes platform actions and callbacks older than the retention,
//! in chunks, and keeps everything newer.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use clock::ManualClock;
use daemon::Pruner;
use store::{ActionRecord, CallbackIngest, CallbackRecord, Store};
use tokio_util::sync::CancellationToken;

fn action(i: i64, at: DateTime<Utc>) -> ActionRecord {
    ActionRecord {
        endpoint: "addBatchCall".into(),
        request_id: format!("req-{i}"),
        response_id: None,
        ret_code: Some(0),
        message: None,
        http_status: Some(200),
        duration_ms: 5,
        at,
        outcome: "ok".into(),
        campaign_id: None,
        user_task_id: None,
    }
}

fn callback(i: i64, at: DateTime<Utc>) -> CallbackIngest {
    CallbackIngest::raw(CallbackRecord {
        kind: "order".into(),
        body: "{}".into(),
        verified: true,
        received_at: at,
        request_id: Some(format!("cb-{i}")),
    })
}

async fn prunes_only_what_is_past_the_retention(store: Arc<dyn Store>) {
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let old = now - Duration::days(100);
    let recent = now - Duration::days(10);
    let actions: Vec<ActionRecord> = (0..12_000)
        .map(|i| action(i, if i < 11_000 { old } else { recent }))
        .collect();
    store.record_actions(&actions).await.unwrap();
    let callbacks: Vec<CallbackIngest> = (0..30)
        .map(|i| callback(i, if i < 20 { old } else { recent }))
        .collect();
    store.ingest_callbacks(&callbacks).await.unwrap();

    let clock = ManualClock::new(now);
    let pruner = Pruner::new(
        store.clone(),
        clock.shared(),
        Duration::days(90),
        std::time::Duration::from_secs(3600),
    );
    let pruned = pruner
        .prune_once(now, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(pruned, 11_020, "every old record, over several chunks");
    let left = store.recent_actions(100_000).await.unwrap();
    assert_eq!(left.len(), 1_000);
    assert!(left.iter().all(|a| a.at == recent));
    let left = store.recent_callbacks(1_000).await.unwrap();
    assert_eq!(left.len(), 10);
    assert_eq!(
        pruner
            .prune_once(now, &CancellationToken::new())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn sqlite_prunes_only_what_is_past_the_retention() {
    let db = testkit::sqlite_database();
    let store = store_sqlite::SqliteStore::open(&db.url).await.unwrap();
    prunes_only_what_is_past_the_retention(Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_prunes_only_what_is_past_the_retention() {
    let db = testkit::postgres_database().await;
    let store = store_postgres::PgStore::connect(&db.url).await.unwrap();
    prunes_only_what_is_past_the_retention(Arc::new(store)).await;
}
