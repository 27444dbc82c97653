//! The webhook checks callbacks with the account's configured algorithm when, as the vendor's callback pages show,
//! the callback carries no `algorithm` header.

use std::sync::Arc;

use callbot_api::Algorithm;
use callbot_api::sign::SecretKey;
use chrono::TimeZone;
use clock::{Clock, ManualClock};
use daemon::{Hub, Metrics, Webhook};
use store::Store;
use store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod webhook_support;
use webhook_support::post_signed;

const SECRET: &str = "k3y";

#[tokio::test]
async fn sha256_account_callbacks_without_algorithm_header_verify() {
    callbot_api::ensure_crypto_provider();
    let db = testkit::sqlite_database();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db.url).await.unwrap());
    let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap());
    let hub = Arc::new(Hub::new(Metrics::new()));
    let webhook = Webhook::new(
        store.clone(),
        SecretKey::new(SECRET.into()),
        clock.shared(),
        hub,
    )
    .with_algorithm(Algorithm::Sha256);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callbacks/task", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(webhook.run(listener, shutdown.clone()));

    let body = br#"{"callbackType":1,"userTaskID":"t-1","taskID":"p-1","sceneID":"S","taskStatus":2,"createTs":0}"#;
    let now = clock.now().timestamp();
    assert_eq!(
        post_signed(&url, body, SECRET, Algorithm::Sha256, false, now, "req-1").await,
        200
    );
    assert_eq!(
        post_signed(&url, body, SECRET, Algorithm::Md5, false, now, "req-1").await,
        401,
        "an MD5 sign must not pass for a SHA-256 account"
    );
    let stored = store.recent_callbacks(10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].verified);

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
