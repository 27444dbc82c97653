//! The webhook over real HTTP with a real store, on both backends: callbacks go through the group-commit writers
//! (one on SQLite, several on PostgreSQL) and are durable before their answer; a signed object that is not a
//! callback is stored, then answered 400; a forged one is refused and not stored.

use std::sync::Arc;

use callbot_api::Algorithm;
use callbot_api::sign::SecretKey;
use chrono::{DateTime, TimeZone, Utc};
use clock::{Clock, ManualClock};
use daemon::{Hub, Metrics, Webhook};
use store::{CampaignRecord, NewOrder, Store, UploadState};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod webhook_support;
use webhook_support::post_signed;

const SECRET: &str = "k3y";
const TASK: &str = "ut-hook";

async fn post(url: &str, body: &[u8], secret: &str, now: i64, request_id: &str) -> u16 {
    post_signed(url, body, secret, Algorithm::Md5, true, now, request_id).await
}

fn call_callback(order_id: &str, phone: &str, call_id: &str, ts: i64) -> Vec<u8> {
    serde_json::json!({
        "callbackType": 3, "orderID": order_id, "userPhone": phone, "userName": "C", "sceneID": "S",
        "userTaskID": TASK, "taskID": "p-1", "finish": true, "other": "",
        "callInfoDetail": {
            "callID": call_id, "callingNumber": "100", "lineAddress": "127.0.0.1", "callStatus": 6,
            "callStartTs": ts - 60, "callAnswerTs": ts - 55, "callEndTs": ts, "callDuration": 55,
            "callAudioUrl": "", "hangupCause": "NORMAL_CLEARING", "termSipCode": "200",
            "intents": [{"intentID": "I1", "intentTag": "I1", "intentName": "will pay", "intentLevel": 1}],
            "sms": [], "params": []
        }
    })
    .to_string()
    .into_bytes()
}

async fn seed(store: &dyn Store, orders: usize, now: DateTime<Utc>) -> Vec<(String, String)> {
    store
        .upsert_campaigns(&[CampaignRecord {
            id: "hook".into(),
            generation: 1,
            source_file: "hook.toml".into(),
            content_hash: "h".into(),
            spec: None,
            state: "active".into(),
            last_error: None,
            updated_at: now,
        }])
        .await
        .unwrap();
    let pairs: Vec<(String, String)> = (0..orders)
        .map(|i| (format!("o-{i:03}"), format!("86138000{i:05}")))
        .collect();
    let new: Vec<NewOrder> = pairs
        .iter()
        .enumerate()
        .map(|(i, (order_id, phone))| NewOrder {
            order_id: order_id.clone(),
            campaign_id: "hook".into(),
            user_task_id: TASK.into(),
            phone: phone.clone(),
            name: None,
            customer: None,
            other: None,
            variables: serde_json::json!({}),
            source_line: i as i64 + 2,
            attempt: 1,
        })
        .collect();
    store.insert_planned_orders(&new, now).await.unwrap();
    let ids: Vec<String> = pairs.iter().map(|(o, _)| o.clone()).collect();
    store
        .set_upload_state(&ids, UploadState::Sent, now)
        .await
        .unwrap();
    pairs
}

async fn callbacks_are_stored_before_their_answer(store: Arc<dyn Store>) {
    callbot_api::ensure_crypto_provider();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap());
    let now = clock.now();
    let orders = seed(store.as_ref(), 40, now).await;
    let webhook = Webhook::new(
        store.clone(),
        SecretKey::new(SECRET.into()),
        clock.shared(),
        Arc::new(Hub::new(Metrics::new())),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callbacks/call", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(webhook.run(listener, shutdown.clone()));
    let ts = now.timestamp();

    // 40 callbacks at once, so the writers take several at a time; each 200 means it is stored.
    let mut sends = tokio::task::JoinSet::new();
    for (i, (order_id, phone)) in orders.iter().enumerate() {
        let url = url.clone();
        let body = call_callback(order_id, phone, &format!("call-{i}"), ts);
        sends.spawn(async move { post(&url, &body, SECRET, ts, &format!("req-{i}")).await });
    }
    let answers = sends.join_all().await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let counts = store.order_counts("hook").await.unwrap();
    assert_eq!(
        counts.finished, 40,
        "every answered callback's facts are stored"
    );
    assert_eq!(store.calls_of_order("o-007").await.unwrap().len(), 1);

    // Signed, one JSON object, but not a callback: stored as received, then 400 (the platform should not resend it).
    let unreadable = br#"{"callbackType":"nonsense"}"#;
    assert_eq!(post(&url, unreadable, SECRET, ts, "req-bad").await, 400);
    // Forged: refused and not stored.
    let forged = call_callback("o-001", &orders[1].1, "call-forged", ts);
    assert_eq!(post(&url, &forged, "wrong", ts, "req-forged").await, 401);

    let stored = store.recent_callbacks(100).await.unwrap();
    assert_eq!(stored.len(), 41);
    let bad = stored
        .iter()
        .find(|c| c.request_id.as_deref() == Some("req-bad"))
        .expect("the unreadable callback is stored");
    assert_eq!(bad.body.as_bytes(), unreadable);
    assert!(bad.verified);
    assert!(
        stored
            .iter()
            .all(|c| c.request_id.as_deref() != Some("req-forged"))
    );

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn sqlite_callbacks_are_stored_before_their_answer() {
    let db = testkit::sqlite_database();
    let store = store_sqlite::SqliteStore::open(&db.url).await.unwrap();
    callbacks_are_stored_before_their_answer(Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_callbacks_are_stored_before_their_answer() {
    let db = testkit::postgres_database().await;
    let store = store_postgres::PgStore::connect(&db.url).await.unwrap();
    assert!(store.write_concurrency() > 1);
    callbacks_are_stored_before_their_answer(Arc::new(store)).await;
}
