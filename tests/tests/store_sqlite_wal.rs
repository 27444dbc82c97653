//! The SQLite store checkpoints its write-ahead log itself, beside the writers (commits never do: see
//! `store_sqlite`'s `checkpointer`). Without it the log would only grow while the daemon runs.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use store::{CallbackIngest, CallbackRecord, Store};

fn main_file_len(url: &str) -> u64 {
    let path = url.trim_start_matches("sqlite://");
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal_file_len(url: &str) -> u64 {
    let path = format!("{}-wal", url.trim_start_matches("sqlite://"));
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// `n` raw callbacks of about 4 KB each, numbered from `from`, in one transaction.
async fn write_callbacks(store: &impl Store, from: usize, n: usize) {
    let at = DateTime::<Utc>::from_timestamp(1_772_400_000, 0).unwrap();
    let body = "x".repeat(4_000);
    let batch: Vec<CallbackIngest> = (from..from + n)
        .map(|i| {
            CallbackIngest::raw(CallbackRecord {
                kind: "call".into(),
                body: body.clone(),
                verified: true,
                received_at: at,
                request_id: Some(format!("req-{i}")),
            })
        })
        .collect();
    store.ingest_callbacks(&batch).await.unwrap();
}

#[tokio::test]
async fn writes_reach_the_database_file_without_a_checkpoint_at_commit() {
    let db = testkit::sqlite_database();
    let store = store_sqlite::SqliteStore::open(&db.url).await.unwrap();
    let before = main_file_len(&db.url);
    for i in 0..500 {
        write_callbacks(&store, i, 1).await;
    }
    // About 2 MB of callbacks went to the WAL; the checkpointer copies them into the database file within a few
    // of its rounds (every 200 ms). Bounded wait, generous for a loaded CI machine.
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

/// The WAL file is reused, not shrunk, when the log restarts, so a burst that the checkpointer could not keep up
/// with would leave the file at its largest for good. Here a reader of an old snapshot (a long report, say) keeps
/// every frame in the log while about 60 MB are written; once it ends and the writes pause, the checkpointer
/// copies the log and empties the file.
#[tokio::test]
async fn the_wal_file_shrinks_back_after_a_burst() {
    use sqlx::Connection as _;

    let db = testkit::sqlite_database();
    let store = store_sqlite::SqliteStore::open(&db.url).await.unwrap();
    write_callbacks(&store, 0, 1).await;
    // A reader outside the store holds a snapshot, so no checkpoint can copy the frames written after it.
    let mut reader = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let _: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sqlite_master")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    for k in 0..15 {
        write_callbacks(&store, 1 + k * 1_000, 1_000).await;
    }
    let burst = wal_file_len(&db.url);
    assert!(
        burst > 48 << 20,
        "the WAL grew to only {burst} bytes while a reader held an old snapshot"
    );
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    reader.close().await.unwrap();

    // The checkpointer copies the log in one round and, once nothing was written for a second (five rounds),
    // empties the file.
    // Bounded wait, generous for a loaded CI machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    while wal_file_len(&db.url) > 1 << 20 {
        assert!(
            Instant::now() < deadline,
            "the WAL file stayed at {} bytes after the burst ({burst} bytes at its end)",
            wal_file_len(&db.url)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write_callbacks(&store, 100_000, 1).await;
    assert_eq!(store.recent_callbacks(1).await.unwrap().len(), 1);
}
