//! The webhook listener: the platform's signed callbacks, plus `/healthz`, `/readyz` and `/metrics` (on their own
//! listener when one is given).
//!
//! Paths: `POST /callbacks/task`, `/callbacks/order`, `/callbacks/call` (the kind comes from the body's
//! `callbackType`; the path is only a label). What the head says is checked before the body is read: signature
//! headers present, our account's `uuid`, `createTs` within the allowed skew, `Content-Length` within the limit
//! (401 or 413, only a counter moves). The body is then read within its timeout and size limit, and verified. A
//! verified body must be exactly one JSON object (400 otherwise, not stored: the vendor's MD5(secret ‖ data) recipe
//! lets anyone append bytes to a signed body). A verified callback is stored raw with its facts (a task callback's
//! terminal status included), applied idempotently, and answered `{"retCode":0,"retMsg":"ok","responseID":…}`; a
//! replay of a stored `requestID` is answered the same and not applied again. When the store is unreachable the
//! answer is 503, so the platform delivers it again: no callback is lost; data the store refuses gets 422 (a 503
//! would be resent forever). A JSON object that is no known callback is stored, then answered 400.
//!
//! ## Group commit
//!
//! Verification and parsing are CPU work and run concurrently in the handlers. Writing does not: every handler hands
//! its [`CallbackIngest`] to the writers over one bounded channel and waits for the answer. A writer takes the
//! first callback queued, then everything else already queued (up to `writer::MAX_BATCH`), stores them all with
//! [`Store::ingest_callbacks`] (one transaction: one commit, one WAL flush), and answers every waiter with the
//! outcome: all 200 or all 503. Callbacks that arrive during a commit form the next batch, so the commits per second
//! no longer bound the callbacks per second, and every callback is still durable before its answer. Task callbacks
//! reach the hub (`task_status`, `wake`) only after that commit.
//!
//! There are [`Store::write_concurrency`] writers: one on SQLite, which takes one writer at a time anyway; several
//! on PostgreSQL, where one batch's commit (its WAL flush) overlaps the next batch's statements. Batches written at
//! once may commit in either order; that is safe because the store applies facts idempotently and
//! order-independently (a final call status is never overwritten by an in-flight one), takes row locks in key order
//! (no deadlock between two batches), and the hub keeps only terminal task statuses.
//!
//! When the channel is full the handler waits for room (back-pressure) rather than answering 503. A full queue
//! means the store is slower than the offered rate but working; a 503 would make the platform resend the whole
//! callback later (more work, not less), while waiting holds only the request already read. A store that is down
//! does not fill the queue: its errors answer each batch 503 at once, which drains it.
//!
//! [`Webhook::run`] owns its writer: at shutdown the listener stops accepting, the requests in flight get their
//! answers, and the writer, once every handler is gone, finishes the batch it took and stops. With
//! [`Webhook::router`] alone the writer is started by the first callback and stops when the router is dropped.

mod serve;
mod writer;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use callbot_api::sign::{self, Algorithm, DEFAULT_MAX_SKEW_SECS, SecretKey, SignedHeaders};
use callbot_api::wire::{Callback, CallbackAck, CallbackParseError};
use chrono::{DateTime, Utc};
use clock::SharedClock;
use store::{CallbackIngest, CallbackRecord, Ingested, Store, TaskStatusFact};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
pub use serve::ConnLimits;
use writer::{Job, spawn_writer};

/// The bounds of the callback port, each a setting under `[webhook]` (the defaults are in
/// `deploy/campaignd.example.toml` and the binary's config; these are only for tests and embedding).
#[derive(Debug, Clone, Copy)]
pub struct WebhookLimits {
    /// Connection bounds: header/idle timeout, connections at once, shutdown grace.
    pub conn: ConnLimits,
    /// The largest callback body accepted (413 past it; checked against `Content-Length` before reading).
    pub max_body_bytes: usize,
    /// How long a client may take to send a callback's body once its head is in.
    pub body_read_timeout: Duration,
    /// How far a callback's `createTs` may be from the daemon's clock.
    pub max_skew_secs: i64,
    /// `/healthz` fails when the reconciler has not completed a pass for this long.
    pub stuck_after: Duration,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        WebhookLimits {
            conn: ConnLimits::default(),
            max_body_bytes: 1024 * 1024,
            body_read_timeout: Duration::from_secs(10),
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            stuck_after: Duration::from_secs(600),
        }
    }
}

/// The listener's dependencies.
#[derive(Debug, Clone)]
pub struct Webhook {
    store: Arc<dyn Store>,
    secret: SecretKey,
    clock: SharedClock,
    hub: Arc<Hub>,
    /// The account's signature algorithm. The vendor's callback pages list no `algorithm` header, so a callback
    /// without one is checked with this (MD5 unless configured otherwise), never with a guess.
    algorithm: Algorithm,
    /// Our account (`uuid`): a callback for another account is refused. `None`: not checked (tests).
    account: Option<String>,
    limits: WebhookLimits,
}

impl Webhook {
    pub fn new(
        store: Arc<dyn Store>,
        secret: SecretKey,
        clock: SharedClock,
        hub: Arc<Hub>,
    ) -> Webhook {
        Webhook {
            store,
            secret,
            clock,
            hub,
            algorithm: Algorithm::default(),
            account: None,
            limits: WebhookLimits::default(),
        }
    }

    /// Checks callbacks that carry no `algorithm` header with `algorithm` (the account's console setting).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Webhook {
        self.algorithm = algorithm;
        self
    }

    /// Refuses callbacks whose `uuid` header is not `account`.
    pub fn with_account(mut self, account: impl Into<String>) -> Webhook {
        self.account = Some(account.into());
        self
    }

    pub fn with_limits(mut self, limits: WebhookLimits) -> Webhook {
        self.limits = limits;
        self
    }

    /// The routes, for embedding or testing. The writer task starts with the first callback (inside the runtime)
    /// and stops once the router is dropped.
    pub fn router(self) -> Router {
        let shared = Shared::new(self, OnceLock::new());
        callback_routes(shared.clone()).merge(admin_routes(shared))
    }

    /// Serves callbacks, health and metrics on `listener` until `shutdown` (see [`Webhook::run_with_admin`]).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        self.run_with_admin(listener, None, shutdown).await
    }

    /// Serves callbacks on `listener` and `/healthz`, `/readyz` and `/metrics` on `admin` (on `listener` too when
    /// there is no admin listener) until `shutdown`. Requests in flight get a short grace, then the writer stores
    /// and answers every callback it took, and stops.
    pub async fn run_with_admin(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let (tx, writer) = spawn_writer(self.store.clone());
        let conn = self.limits.conn;
        let metrics = self.hub.metrics.clone();
        let shared = Shared::new(self, OnceLock::from(tx));
        let served = match admin {
            None => {
                let router = callback_routes(shared.clone()).merge(admin_routes(shared));
                serve::serve(listener, router, conn, metrics, shutdown).await
            }
            Some(admin) => {
                let public = callback_routes(shared.clone());
                let private = admin_routes(shared);
                let (a, b) = tokio::join!(
                    serve::serve(listener, public, conn, metrics.clone(), shutdown.clone()),
                    serve::serve(admin, private, conn, metrics, shutdown),
                );
                a.and(b)
            }
        };
        // The routers (and with them the last sender) are gone: the writer drains what is queued and ends.
        if let Err(e) = writer.await {
            tracing::error!(error = %e, "the callback writer task failed");
        }
        served
    }
}

fn callback_routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/callbacks/{kind}", post(callback))
        .with_state(shared)
}

fn admin_routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// What the handlers share: the configuration, the sending end of the writer's queue, and the refusals not yet
/// logged.
#[derive(Debug)]
struct Shared {
    hook: Webhook,
    writer: OnceLock<mpsc::Sender<Job>>,
    started: Instant,
    refusals: Mutex<Refusals>,
}

impl Shared {
    fn new(hook: Webhook, writer: OnceLock<mpsc::Sender<Job>>) -> Arc<Shared> {
        Arc::new(Shared {
            hook,
            writer,
            started: Instant::now(),
            refusals: Mutex::new(Refusals::default()),
        })
    }

    fn writer(&self) -> &mpsc::Sender<Job> {
        self.writer
            .get_or_init(|| spawn_writer(self.hook.store.clone()).0)
    }

    /// Counts a refused callback, and logs a summary of the refusals at most once a minute (a flood of forged
    /// callbacks must not flood the log).
    fn refuse(&self, kind: &str, reason: &'static str, status: StatusCode, msg: &str) -> Response {
        self.hook.hub.metrics.callback(kind, reason);
        let summary = {
            let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
            r.note(reason, Instant::now())
        };
        if let Some(counts) = summary {
            tracing::warn!(refused = ?counts, "refused callbacks since the last summary (bad signature, wrong account, too large, too slow or malformed)");
        }
        (status, ack(6, msg)).into_response()
    }
}

/// Refused callbacks by reason since the last summary.
#[derive(Debug, Default)]
struct Refusals {
    counts: std::collections::BTreeMap<&'static str, u64>,
    logged_at: Option<Instant>,
}

impl Refusals {
    /// Counts one; returns the counts to log (and starts again) when a minute has passed since the last summary.
    fn note(&mut self, reason: &'static str, now: Instant) -> Option<Vec<(&'static str, u64)>> {
        *self.counts.entry(reason).or_default() += 1;
        if self
            .logged_at
            .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_EVERY)
        {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.counts).into_iter().collect())
    }
}

/// Refused callbacks are summarised in the log at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let stuck_after = shared.hook.limits.stuck_after;
    let since = shared.hook.hub.last_pass().unwrap_or(shared.started);
    let age = since.elapsed();
    if age > stuck_after {
        let what = if shared.hook.hub.last_pass().is_some() {
            "the reconciler has not completed a pass"
        } else {
            "the reconciler has not completed its first pass"
        };
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} for {} s", age.as_secs()),
        )
            .into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let w = &shared.hook;
    if !w.hub.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "campaigns not loaded yet").into_response();
    }
    match w.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unreachable: {e}"),
        )
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let w = &shared.hook;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        w.hub.metrics.render(),
    )
        .into_response()
}

fn ack(ret_code: i64, msg: &str) -> axum::Json<CallbackAck> {
    axum::Json(CallbackAck {
        ret_code,
        ret_msg: msg.to_owned(),
        response_id: uuid::Uuid::new_v4().to_string(),
    })
}

async fn callback(
    State(shared): State<Arc<Shared>>,
    Path(path_kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let w = &shared.hook;
    let metrics = &w.hub.metrics;
    let label = match path_kind.as_str() {
        "task" | "order" | "call" => path_kind.as_str(),
        _ => "unknown",
    };
    let now = w.clock.now();
    let limits = &w.limits;
    // Everything that can be checked from the head is checked before a byte of the body is read.
    let mut signed = match SignedHeaders::from_header_map(&headers) {
        Ok(h) => h,
        Err(e) => {
            let msg = format!("signature refused: {e}");
            return shared.refuse(label, "unauthorized", StatusCode::UNAUTHORIZED, &msg);
        }
    };
    if w.account.as_ref().is_some_and(|a| *a != signed.uuid) {
        return shared.refuse(
            label,
            "wrong_account",
            StatusCode::UNAUTHORIZED,
            "signature refused: not this account's callback",
        );
    }
    if signed.create_ts.parse::<i64>().map_or(true, |ts| {
        (now.timestamp() - ts).abs() > limits.max_skew_secs
    }) {
        return shared.refuse(
            label,
            "unauthorized",
            StatusCode::UNAUTHORIZED,
            "signature refused: createTs missing or outside the allowed clock skew",
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(&shared, label);
    }
    let body = match tokio::time::timeout(
        limits.body_read_timeout,
        read_body(body, limits.max_body_bytes),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(BodyError::TooLarge)) => return too_large(&shared, label),
        Ok(Err(BodyError::Read)) => {
            return shared.refuse(
                label,
                "unreadable_body",
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            );
        }
        Err(_) => {
            return shared.refuse(
                label,
                "slow_body",
                StatusCode::REQUEST_TIMEOUT,
                "the request body took too long ([webhook] body_read_timeout)",
            );
        }
    };
    signed.algorithm.get_or_insert(w.algorithm);
    if let Err(e) = sign::verify(
        &w.secret,
        &body,
        &signed,
        now.timestamp(),
        limits.max_skew_secs,
    ) {
        let msg = format!("signature refused: {e}");
        return shared.refuse(label, "unauthorized", StatusCode::UNAUTHORIZED, &msg);
    }
    // The vendor's recipe (a hash of the secret followed by the data) lets anyone append bytes to a signed body and
    // sign the result; a real callback is exactly one JSON object, so anything else is refused, not stored.
    if !is_one_json_object(&body) {
        return shared.refuse(
            label,
            "malformed",
            StatusCode::BAD_REQUEST,
            "the body is not exactly one JSON object",
        );
    }

    let (ingest, parsed) = callback_ingest(body, Some(signed.request_id), now);
    let kind = kind_of(&parsed);
    let (done, answer) = oneshot::channel();
    let job = Job { ingest, done };
    let stored = match shared.writer().send(job).await {
        Ok(()) => answer.await.ok(),
        Err(_) => None,
    };
    let ingested = match stored {
        Some(Ok(ingested)) => ingested,
        Some(Err(e)) if !e.is_retryable() => {
            // The store refuses this data (not an outage): a 503 would make the platform send it forever.
            metrics.callback(kind, "refused_data");
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                ack(
                    3,
                    "the store refuses this callback's data; it will not be stored",
                ),
            )
                .into_response();
        }
        Some(Err(_)) => return unavailable(metrics, kind),
        None => {
            tracing::warn!(
                callback.kind = kind,
                "the callback writer has stopped: answering 503 so the platform retries"
            );
            return unavailable(metrics, kind);
        }
    };
    if ingested == Ingested::Repeat {
        // A delivery of a callback already stored: answered as the first was, applied once.
        metrics.callback(kind, "repeat");
        return match parsed {
            Ok(_) => (StatusCode::OK, ack(0, "ok")).into_response(),
            Err(e) => (StatusCode::BAD_REQUEST, ack(3, &e.to_string())).into_response(),
        };
    }
    let cb = match parsed {
        Ok(cb) => cb,
        Err(e) => {
            metrics.callback(kind, "bad_request");
            tracing::warn!(error = %e, "stored a callback that cannot be read");
            return (StatusCode::BAD_REQUEST, ack(3, &e.to_string())).into_response();
        }
    };
    metrics.callback(kind, "ok");
    let details = match &cb {
        Callback::Order(o) => o.call_info_detail.as_ref(),
        Callback::Call(c) => c.call_info_detail.as_ref(),
        Callback::Task(_) => None,
    };
    metrics.unknown_call_statuses(&crate::facts::unknown_call_statuses(details));
    tracing::debug!(callback.kind = kind, task.user_id = %cb.user_task_id(), "callback stored");
    if let Callback::Task(t) = &cb
        && t.task_status.is_some_and(|s| s.is_finished())
    {
        // A terminal status, durable now: worth a look now by whichever replica owns the campaign (this one only
        // knows to look if it is the owner). Other statuses are the daemon's own doing; order and call facts need
        // no reconcile.
        w.hub.task_touched(&t.user_task_id);
        w.hub.wake();
    }
    (StatusCode::OK, ack(0, "ok")).into_response()
}

/// What the webhook's writers store for one callback whose signature was verified: the raw record (the body as text,
/// kept even when it cannot be read) and the order facts an order or call callback carries. Also returns the parsed
/// callback, or why it cannot be read, which the answer depends on. Pure: `received_at` is the caller's clock reading.
/// (Public so that the benchmarks store exactly what the webhook stores.)
pub fn callback_ingest(
    body: Vec<u8>,
    request_id: Option<String>,
    received_at: DateTime<Utc>,
) -> (CallbackIngest, Result<Callback, CallbackParseError>) {
    let parsed = Callback::parse(&body);
    let facts = match &parsed {
        Ok(Callback::Order(o)) => Some(crate::facts::from_order_callback(o)),
        Ok(Callback::Call(c)) => Some(crate::facts::from_call_callback(c)),
        Ok(Callback::Task(_)) | Err(_) => None,
    };
    // Only the statuses the daemon did not cause and cannot undo: start and pause are its own, and a late callback
    // must not undo them.
    let task_status = match &parsed {
        Ok(Callback::Task(t)) => {
            t.task_status
                .filter(|s| s.is_finished())
                .map(|s| TaskStatusFact {
                    user_task_id: t.user_task_id.clone(),
                    status: s.code(),
                    task_id: (!t.task_id.is_empty()).then(|| t.task_id.clone()),
                })
        }
        _ => None,
    };
    let record = CallbackRecord {
        kind: kind_of(&parsed).to_owned(),
        body: match String::from_utf8(body) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
        verified: true,
        received_at,
        request_id,
    };
    (
        CallbackIngest {
            record,
            facts,
            task_status,
        },
        parsed,
    )
}

/// The kind a callback is stored and counted under.
fn kind_of(parsed: &Result<Callback, CallbackParseError>) -> &'static str {
    match parsed {
        Ok(Callback::Task(_)) => "task",
        Ok(Callback::Order(_)) => "order",
        Ok(Callback::Call(_)) => "call",
        Err(_) => "unknown",
    }
}

/// The store could not take the callback (logged once per batch by the writer).
fn unavailable(metrics: &crate::metrics::Metrics, kind: &str) -> Response {
    metrics.callback(kind, "unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        ack(7, "store unavailable, retry later"),
    )
        .into_response()
}

fn too_large(shared: &Shared, label: &str) -> Response {
    let msg = format!(
        "the body is larger than {} bytes ([webhook] max_body_bytes)",
        shared.hook.limits.max_body_bytes
    );
    shared.refuse(label, "too_large", StatusCode::PAYLOAD_TOO_LARGE, &msg)
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Read,
}

/// Reads a body of at most `max` bytes.
async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, BodyError> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        if out.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Whether `body` is exactly one JSON object (white space around it allowed, nothing else).
pub(crate) fn is_one_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_json_object_is_a_callback_body() {
        assert!(is_one_json_object(b"{}"));
        assert!(is_one_json_object(b" {\"a\": [1, {\"b\": null}]}\n"));
        for bad in [
            &b""[..],
            b"[]",
            b"\"x\"",
            b"{} {}",
            b"{}x",
            b"{\"a\":1}\x80\x00\x00\x00\x00\x00\x00\x02\x00",
            b"{\"a\":1",
        ] {
            assert!(!is_one_json_object(bad), "{bad:?}");
        }
    }

    #[test]
    fn refusals_are_summarised_at_most_once_a_minute() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        assert_eq!(r.note("unauthorized", t0), Some(vec![("unauthorized", 1)]));
        assert_eq!(r.note("unauthorized", t0 + Duration::from_secs(1)), None);
        assert_eq!(r.note("too_large", t0 + Duration::from_secs(59)), None);
        assert_eq!(
            r.note("unauthorized", t0 + Duration::from_secs(61)),
            Some(vec![("too_large", 1), ("unauthorized", 2)])
        );
    }

    #[test]
    fn an_unreadable_body_is_kept_as_text_with_no_facts() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (ingest, parsed) = callback_ingest(
            b"{\"callbackType\": 9, \xff}".to_vec(),
            Some("r".into()),
            at,
        );
        assert!(parsed.is_err());
        assert_eq!(ingest.record.kind, "unknown");
        assert_eq!(ingest.record.body, "{\"callbackType\": 9, \u{fffd}}");
        assert_eq!(ingest.record.request_id.as_deref(), Some("r"));
        assert_eq!(ingest.record.received_at, at);
        assert!(ingest.facts.is_none());
    }

    #[test]
    fn order_callbacks_carry_their_facts_and_task_callbacks_none() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let order = br#"{"callbackType": 2, "orderID": "o-1", "userTaskID": "ut-1", "finish": true,
            "callInfoDetail": {"callID": "c-1", "callStatus": 10, "callStartTs": 1732190400}}"#;
        let task = include_bytes!("../../../callbot-api/src/wire/fixtures/task_callback.json");
        let (ingest, parsed) = callback_ingest(order.to_vec(), None, at);
        assert!(matches!(parsed, Ok(Callback::Order(_))));
        assert_eq!(ingest.record.kind, "order");
        assert_eq!(ingest.record.body.as_bytes(), order);
        let facts = ingest.facts.expect("an order callback carries facts");
        assert_eq!((facts.order_id.as_str(), facts.finished), ("o-1", true));
        assert_eq!(facts.calls[0].call_id, "c-1");
        let (ingest, parsed) = callback_ingest(task.to_vec(), None, at);
        assert!(matches!(parsed, Ok(Callback::Task(_))));
        assert_eq!(ingest.record.kind, "task");
        assert!(ingest.facts.is_none());
    }
}
