//! The callback port against a hostile network, over real sockets with a real store: stalled and idle clients are
//! cut off by the timeouts and never starve a real callback or delay shutdown; a request without signature headers
//! or with an oversized body is refused before its body is read; replays are stored once; callbacks for another
//! account, or a signed body with bytes after its JSON, are refused and not stored; a NUL in a callback's text is
//! stored, not answered 503; data the store refuses is answered 422 (not 503, which would make the platform send it
//! forever) and does not hold up the callbacks beside it; health and metrics can live on their own port; `/healthz`
//! notices a stuck reconciler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbot_api::Algorithm;
use callbot_api::sign::SecretKey;
use chrono::{TimeZone, Utc};
use clock::{Clock, ManualClock};
use daemon::{ConnLimits, Hub, Metrics, Webhook, WebhookLimits};
use store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

mod webhook_support;
use webhook_support::{UUID, post_signed};

const SECRET: &str = "k3y";

fn limits() -> WebhookLimits {
    WebhookLimits {
        conn: ConnLimits {
            header_read_timeout: Duration::from_secs(1),
            max_connections: 1024,
            shutdown_grace: Duration::from_millis(500),
        },
        max_body_bytes: 64 * 1024,
        body_read_timeout: Duration::from_secs(1),
        ..WebhookLimits::default()
    }
}

struct Server {
    url: String,
    admin_url: Option<String>,
    store: Arc<dyn Store>,
    clock: ManualClock,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: testkit::TestSqlite,
}

async fn start(with_admin: bool, limits: WebhookLimits) -> Server {
    callbot_api::ensure_crypto_provider();
    let db = testkit::sqlite_database();
    let store: Arc<dyn Store> = Arc::new(store_sqlite::SqliteStore::open(&db.url).await.unwrap());
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap());
    let hub = Arc::new(Hub::new(Metrics::new()));
    let webhook = Webhook::new(
        store.clone(),
        SecretKey::new(SECRET.into()),
        clock.shared(),
        hub.clone(),
    )
    .with_account(UUID)
    .with_limits(limits);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (admin, admin_url) = if with_admin {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let u = format!("http://{}", l.local_addr().unwrap());
        (Some(l), Some(u))
    } else {
        (None, None)
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(webhook.run_with_admin(listener, admin, shutdown.clone()));
    Server {
        url,
        admin_url,
        store,
        clock,
        hub,
        shutdown,
        task,
        _db: db,
    }
}

fn order_callback(order: &str, transcript: &str) -> Vec<u8> {
    serde_json::json!({
        "callbackType": 3, "orderID": order, "userPhone": "8613800000001", "userTaskID": "ut-1",
        "taskID": "p-1", "finish": true,
        "callInfoDetail": {
            "callID": format!("call-{order}"), "callStatus": 6, "callStartTs": 1_793_613_540,
            "callAnswerTs": 1_793_613_545, "callEndTs": 1_793_613_600, "callDuration": 55,
            "recordDetail": [{"recordIndex": 1, "recordRole": 1, "recordWord": transcript}]
        }
    })
    .to_string()
    .into_bytes()
}

impl Server {
    async fn post(&self, body: &[u8], request_id: &str) -> u16 {
        post_signed(
            &format!("{}/callbacks/call", self.url),
            body,
            SECRET,
            Algorithm::Md5,
            true,
            self.clock.now().timestamp(),
            request_id,
        )
        .await
    }

    async fn stored(&self) -> Vec<store::CallbackRecord> {
        self.store.recent_callbacks(1000).await.unwrap()
    }
}

/// Opens a connection that sends half a request head and then nothing.
async fn stalled(url: &str) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /callbacks/call HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_stalled_connections_neither_starve_a_callback_nor_outlive_the_timeout() {
    let server = start(false, limits()).await;
    let mut stalled_conns = Vec::new();
    for _ in 0..300 {
        stalled_conns.push(stalled(&server.url).await);
    }
    let t0 = Instant::now();
    assert_eq!(
        server.post(&order_callback("o-1", "hello"), "r-1").await,
        200
    );
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a signed callback is answered within a second: {:?}",
        t0.elapsed()
    );
    // Each stalled connection is closed by the header timeout (1 s here): reading gives end-of-file or a reset.
    let deadline = Instant::now() + Duration::from_secs(10);
    for mut s in stalled_conns {
        let mut buf = [0u8; 256];
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, s.read(&mut buf)).await;
        let closed = match &read {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            // Closed with a timeout answer.
            Ok(Ok(n)) => buf[..*n].starts_with(b"HTTP/1.1 408"),
            Err(_) => false,
        };
        assert!(
            closed,
            "a stalled connection is closed by the timeout: {read:?}"
        );
    }
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_do_not_delay_shutdown() {
    let mut l = limits();
    l.conn.header_read_timeout = Duration::from_secs(60);
    l.body_read_timeout = Duration::from_secs(60);
    let server = start(false, l).await;
    let mut conns = Vec::new();
    for _ in 0..50 {
        conns.push(stalled(&server.url).await);
    }
    // A body that never ends, on a request whose head is complete.
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    server.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("shutdown is not held by stalled clients")
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

/// Sends a request head (with the given extra headers) and a few body bytes of a much longer declared body, then
/// reads the answer's status line, however long the server takes (bounded by the test).
async fn partial_request(url: &str, headers: &str, declared: usize) -> (String, Duration) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    s.write_all(
        format!(
            "POST /callbacks/call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}Content-Length: {declared}\r\n\r\n{{\"a\":"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    (text.lines().next().unwrap_or("").to_owned(), t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_signature_headers_or_with_oversized_bodies_are_refused_before_the_body() {
    let mut l = limits();
    l.body_read_timeout = Duration::from_secs(30);
    let server = start(false, l).await;
    let (status, took) = partial_request(&server.url, "", 60_000).await;
    assert!(status.contains(" 401 "), "{status}");
    assert!(
        took < Duration::from_secs(2),
        "answered without waiting for the body: {took:?}"
    );

    let ts = server.clock.now().timestamp();
    let signed = format!("sign: 00\r\ncreateTs: {ts}\r\nrequestID: r\r\nuuid: {UUID}\r\n");
    let (status, took) = partial_request(&server.url, &signed, 10 * 1024 * 1024).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let other = signed.replace(UUID, "someone-else");
    let (status, _) = partial_request(&server.url, &other, 100).await;
    assert!(
        status.contains(" 401 "),
        "another account's callback: {status}"
    );
    assert!(server.stored().await.is_empty());
    let metrics = server.hub.metrics.render();
    assert!(metrics.contains("outcome=\"too_large\""), "{metrics}");
    assert!(metrics.contains("outcome=\"wrong_account\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_callback_is_answered_each_time_and_stored_once() {
    let server = start(false, limits()).await;
    let body = order_callback("o-7", "hello");
    for _ in 0..3 {
        assert_eq!(server.post(&body, "r-replayed").await, 200);
    }
    let stored = server.stored().await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        server
            .hub
            .metrics
            .render()
            .contains("outcome=\"repeat\"} 2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_body_with_bytes_after_its_json_is_refused_and_not_stored() {
    let server = start(false, limits()).await;
    let mut body = order_callback("o-8", "hello");
    // What a length-extension forgery looks like: MD5 padding, then more data.
    body.extend_from_slice(b"\x80\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00{\"finish\":false}");
    assert_eq!(server.post(&body, "r-ext").await, 400);
    assert_eq!(server.post(b"{} {}", "r-two").await, 400);
    assert!(server.stored().await.is_empty());
}

async fn nul_in_a_transcript_is_stored_and_answered(store_is_pg: bool) {
    // The webhook's own store is SQLite in `start`; for PostgreSQL, a server on its own store.
    let server = start(false, limits()).await;
    let store: Arc<dyn Store>;
    let _pg;
    let url;
    let shutdown = CancellationToken::new();
    if store_is_pg {
        let db = testkit::postgres_database().await;
        store = Arc::new(store_postgres::PgStore::connect(&db.url).await.unwrap());
        _pg = Some(db);
        let webhook = Webhook::new(
            store.clone(),
            SecretKey::new(SECRET.into()),
            server.clock.shared(),
            Arc::new(Hub::new(Metrics::new())),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(webhook.run(listener, shutdown.clone()));
    } else {
        store = server.store.clone();
        _pg = None;
        url = server.url.clone();
    }
    let body = order_callback("o-nul", "before\u{0}after");
    let status = post_signed(
        &format!("{url}/callbacks/call"),
        &body,
        SECRET,
        Algorithm::Md5,
        true,
        server.clock.now().timestamp(),
        "r-nul",
    )
    .await;
    assert_eq!(status, 200, "text the database refuses is not an outage");
    assert_eq!(store.recent_callbacks(10).await.unwrap().len(), 1);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_nul_in_a_transcript_is_stored_and_answered() {
    nul_in_a_transcript_is_stored_and_answered(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_nul_in_a_transcript_is_stored_and_answered() {
    nul_in_a_transcript_is_stored_and_answered(true).await;
}

/// The store refuses one call's data (the test adds a constraint the data breaks: on PostgreSQL a `CHECK`, on SQLite
/// a trigger that aborts, both reported as a constraint violation). Its callback is answered 422 every time and not
/// stored; callbacks sent beside it, in the same group commit, are answered 200 and stored.
async fn data_the_store_refuses_is_answered_422_and_does_not_hold_up_the_others(store_is_pg: bool) {
    callbot_api::ensure_crypto_provider();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap());
    let (store, _db): (Arc<dyn Store>, Box<dyn std::any::Any + Send>) = if store_is_pg {
        let db = testkit::postgres_database().await;
        let store = Arc::new(store_postgres::PgStore::connect(&db.url).await.unwrap());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
            .await
            .unwrap();
        sqlx::raw_sql(
            "ALTER TABLE calls ADD CONSTRAINT refuse_poison CHECK (call_id <> 'call-o-poison')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        (store, Box::new(db))
    } else {
        let db = testkit::sqlite_database();
        let store = Arc::new(store_sqlite::SqliteStore::open(&db.url).await.unwrap());
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON calls WHEN NEW.call_id = 'call-o-poison'
             BEGIN SELECT RAISE(ABORT, 'poison'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        (store, Box::new(db))
    };
    let webhook = Webhook::new(
        store.clone(),
        SecretKey::new(SECRET.into()),
        clock.shared(),
        Arc::new(Hub::new(Metrics::new())),
    )
    .with_account(UUID)
    .with_limits(limits());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callbacks/call", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(webhook.run(listener, shutdown.clone()));
    let post = |order: &'static str, request_id: &'static str| {
        let url = url.clone();
        let now = clock.now().timestamp();
        async move {
            let body = order_callback(order, "hello");
            post_signed(&url, &body, SECRET, Algorithm::Md5, true, now, request_id).await
        }
    };

    // The refused one and good ones at once, so they can share a group commit.
    let (poison, a, b) = tokio::join!(
        post("o-poison", "r-p1"),
        post("o-a", "r-a"),
        post("o-b", "r-b")
    );
    assert_eq!(
        (poison, a, b),
        (422, 200, 200),
        "refused data is 422; the others are stored"
    );
    // Sent again, it is refused again (a refusal is not an outage: no 503), and a later good one is stored.
    assert_eq!(post("o-poison", "r-p2").await, 422);
    assert_eq!(post("o-c", "r-c").await, 200);

    let stored = store.recent_callbacks(100).await.unwrap();
    let mut ids: Vec<_> = stored.iter().filter_map(|c| c.request_id.clone()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["r-a", "r-b", "r-c"],
        "the refused callback is not stored"
    );
    for order in ["o-a", "o-b", "o-c"] {
        let calls = store.calls_of_order(order).await.unwrap();
        assert_eq!(calls.len(), 1, "{order}'s call is stored");
    }
    assert!(store.calls_of_order("o-poison").await.unwrap().is_empty());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_the_store_refuses_is_answered_422() {
    data_the_store_refuses_is_answered_422_and_does_not_hold_up_the_others(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_data_the_store_refuses_is_answered_422() {
    data_the_store_refuses_is_answered_422_and_does_not_hold_up_the_others(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_can_live_on_their_own_port_and_healthz_notices_a_stuck_reconciler() {
    let mut l = limits();
    l.stuck_after = Duration::from_millis(300);
    let server = start(true, l).await;
    let admin = server.admin_url.clone().unwrap();
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(format!("{}/metrics", server.url)).await, 404);
    assert_eq!(get(format!("{}/healthz", server.url)).await, 404);
    assert_eq!(get(format!("{admin}/metrics")).await, 200);
    server.hub.pass_completed(Instant::now());
    assert_eq!(get(format!("{admin}/healthz")).await, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        get(format!("{admin}/healthz")).await,
        503,
        "no reconcile pass for longer than stuck_after"
    );
    server.hub.pass_completed(Instant::now());
    assert_eq!(get(format!("{admin}/healthz")).await, 200);
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}
