//! The SQLite store checkpoints its write-ahead log itself, beside the writers (commits never do: see
//! `store_sqlite`'s `checkpointer`). Without it the log would only grow while the daemon runs.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use store::{CallbackIngest, CallbackRecord, Store};

fn main_file_len(url: &str) -> u64 {
    let path = url.trim_start_matches("sqlite://");
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test]
async fn writes_reach_the_database_file_without_a_checkpoint_at_commit() {
    let db = testkit::sqlite_database();
    let store = store_sqlite::SqliteStore::open(&db.url).await.unwrap();
    let before = main_file_len(&db.url);
    let at = DateTime::<Utc>::from_timestamp(1_772_400_000, 0).unwrap();
    let body = "x".repeat(4_000);
    for i in 0..500 {
        store
            .ingest_callbacks(&[CallbackIngest::raw(CallbackRecord {
                kind: "call".into(),
                body: body.clone(),
                verified: true,
                received_at: at,
                request_id: Some(format!("req-{i}")),
            })])
            .await
            .unwrap();
    }
    // About 2 MB of callbacks went to the WAL; the checkpointer copies them into the database file within a few
    // of its one-second rounds. Bounded wait, generous for a loaded CI machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    while main_file_len(&db.url) < before + 1_000_000 {
        assert!(
            Instant::now() < deadline,
            "the database file stayed at {} bytes (was {before}): nothing checkpointed the WAL",
            main_file_len(&db.url)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.recent_callbacks(1).await.unwrap().len(), 1);
}
