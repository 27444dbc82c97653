//! The webhook listener: the platform's signed callbacks, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Paths: `POST /callbacks/task`, `/callbacks/order`, `/callbacks/call` (the kind comes from the body's
//! `callbackType`; the path is only a label). A callback is verified first (signature and a 300 s clock skew): a
//! bad or missing signature gets 401 and only a counter moves. A verified one is stored raw, its facts are applied
//! idempotently, and it is answered `{"retCode":0,"retMsg":"ok","responseID":…}`. When the store is unreachable the
//! answer is 503, so the platform delivers it again: no callback is lost. A body that cannot be read is stored, then
//! answered 400.
//!
//! ## Group commit
//!
//! Verification and parsing are CPU work and run concurrently in the handlers. Writing does not: every handler hands
//! its [`CallbackIngest`] to the writers over one bounded channel and waits for the answer. A writer takes the
//! first callback queued, then everything else already queued (up to [`MAX_BATCH`]), stores them all with
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

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use callbot_api::sign::{self, Algorithm, DEFAULT_MAX_SKEW_SECS, SecretKey, SignedHeaders};
use callbot_api::wire::{Callback, CallbackAck, CallbackParseError, TaskStatus};
use chrono::{DateTime, Utc};
use clock::SharedClock;
use futures::FutureExt as _;
use store::{CallbackIngest, CallbackRecord, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

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
        }
    }

    /// Checks callbacks that carry no `algorithm` header with `algorithm` (the account's console setting).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Webhook {
        self.algorithm = algorithm;
        self
    }

    /// The routes, for embedding or testing. The writer task starts with the first callback (inside the runtime)
    /// and stops once the router is dropped.
    pub fn router(self) -> Router {
        self.router_with(OnceLock::new())
    }

    fn router_with(self, writer: OnceLock<mpsc::Sender<Job>>) -> Router {
        Router::new()
            .route("/callbacks/{kind}", post(callback))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(Arc::new(Shared { hook: self, writer }))
    }

    /// Serves on `listener` until `shutdown`; in-flight requests are finished, and the writer stops after storing
    /// and answering every callback it took.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let (tx, writer) = spawn_writer(self.store.clone());
        let served = axum::serve(listener, self.router_with(OnceLock::from(tx)))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        // The router (and with it the last sender) is gone: the writer drains what is queued and ends.
        if let Err(e) = writer.await {
            tracing::error!(error = %e, "the callback writer task failed");
        }
        served
    }
}

/// What the handlers share: the configuration and the sending end of the writer's queue.
#[derive(Debug)]
struct Shared {
    hook: Webhook,
    writer: OnceLock<mpsc::Sender<Job>>,
}

impl Shared {
    fn writer(&self) -> &mpsc::Sender<Job> {
        self.writer
            .get_or_init(|| spawn_writer(self.hook.store.clone()).0)
    }
}

/// Most callbacks stored in one transaction.
pub const MAX_BATCH: usize = 512;
/// Callbacks waiting for the writer at most; a handler past that waits for room (see the module docs).
const QUEUE: usize = 4 * MAX_BATCH;

/// One callback for the writer, and where to send the outcome of its batch.
#[derive(Debug)]
struct Job {
    ingest: CallbackIngest,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// The writers' shared queue: a writer holds the lock only while it takes a batch, not while it stores it.
type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>;

/// Starts [`Store::write_concurrency`] writers on one queue; the task ends when all of them have.
fn spawn_writer(store: Arc<dyn Store>) -> (mpsc::Sender<Job>, tokio::task::JoinHandle<()>) {
    let writers = store.write_concurrency();
    spawn_writers(writers, move |batch: Arc<[CallbackIngest]>| {
        let store = store.clone();
        async move { store.ingest_callbacks(&batch).await }
    })
}

/// Starts `writers` (at least one) [`write_batches`] loops on one queue, each storing its batches with `ingest`.
fn spawn_writers<F, Fut>(
    writers: usize,
    ingest: F,
) -> (mpsc::Sender<Job>, tokio::task::JoinHandle<()>)
where
    F: Fn(Arc<[CallbackIngest]>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    let queue: Queue = Arc::new(tokio::sync::Mutex::new(rx));
    let writers = writers.max(1);
    let task = tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..writers {
            set.spawn(write_batches(queue.clone(), ingest.clone()));
        }
        while let Some(ended) = set.join_next().await {
            if let Err(e) = ended {
                tracing::error!(error = %e, "a callback writer failed");
            }
        }
    });
    (tx, task)
}

/// One writer's loop: waits for a callback, takes everything else already queued (up to [`MAX_BATCH`]), stores the
/// batch with `ingest` and answers each waiter with the outcome. Ends when every sender is gone and the queue is
/// empty. Several writers may share the queue: each takes its own batches, so one batch waits for its commit while
/// the next is written.
///
/// A batch refused for any reason but [`StoreError::Unavailable`] (a constraint, a value the database cannot take)
/// is written again one callback at a time, so one bad callback does not fail the others delivered with it (they
/// would meet it again in the retry).
async fn write_batches<F, Fut>(queue: Queue, ingest: F)
where
    F: Fn(Arc<[CallbackIngest]>) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        let taken = queue.lock().await.recv_many(&mut jobs, MAX_BATCH).await;
        if taken == 0 {
            break;
        }
        let (batch, waiters): (Vec<CallbackIngest>, Vec<_>) =
            jobs.drain(..).map(|j| (j.ingest, j.done)).unzip();
        let batch: Arc<[CallbackIngest]> = batch.into();
        let outcome = write_one_batch(&ingest, batch.clone()).await;
        match &outcome {
            Ok(()) => {
                tracing::debug!(batch.callbacks = batch.len(), "stored a batch of callbacks");
            }
            Err(e) if batch.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                tracing::warn!(
                    batch.callbacks = batch.len(),
                    error = %e,
                    "a batch of callbacks was refused: writing them one by one"
                );
                for (item, done) in batch.iter().zip(waiters) {
                    let one = write_one_batch(&ingest, Arc::from([item.clone()])).await;
                    if let Err(e) = &one {
                        tracing::warn!(
                            callback.request_id = item.record.request_id.as_deref().unwrap_or(""),
                            error = %e,
                            "the store refused a callback: answering 503 so the platform retries"
                        );
                    }
                    let _ = done.send(one.map_err(Arc::new));
                }
                continue;
            }
            Err(e) => tracing::warn!(
                batch.callbacks = batch.len(),
                error = %e,
                "store unavailable: answering the batch 503 so the platform retries"
            ),
        }
        let outcome = outcome.map_err(Arc::new);
        for done in waiters {
            // A waiter that went away (client disconnected) needs no answer; its callback is stored anyway.
            let _ = done.send(outcome.clone());
        }
    }
}

/// One `ingest` call. A panic in the store must not end the writer (every later callback would get 503 until a
/// restart): it becomes an error for this batch.
async fn write_one_batch<F, Fut>(ingest: &F, batch: Arc<[CallbackIngest]>) -> Result<(), StoreError>
where
    F: Fn(Arc<[CallbackIngest]>) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    AssertUnwindSafe(ingest(batch))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the store panicked while writing callbacks".into(),
            ))
        })
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
    body: Bytes,
) -> Response {
    let w = &shared.hook;
    let metrics = &w.hub.metrics;
    let label = match path_kind.as_str() {
        "task" | "order" | "call" => path_kind.as_str(),
        _ => "unknown",
    };
    let now = w.clock.now();
    let verified = SignedHeaders::from_header_map(&headers).and_then(|mut h| {
        h.algorithm.get_or_insert(w.algorithm);
        sign::verify(&w.secret, &body, &h, now.timestamp(), DEFAULT_MAX_SKEW_SECS).map(|()| h)
    });
    let signed = match verified {
        Ok(h) => h,
        Err(e) => {
            metrics.callback(label, "unauthorized");
            tracing::warn!(callback.path = %path_kind, error = %e, "refused a callback: bad or missing signature");
            return (
                StatusCode::UNAUTHORIZED,
                ack(6, &format!("signature refused: {e}")),
            )
                .into_response();
        }
    };

    let (ingest, parsed) = callback_ingest(body.into(), Some(signed.request_id), now);
    let kind = kind_of(&parsed);
    let (done, answer) = oneshot::channel();
    let job = Job { ingest, done };
    let stored = match shared.writer().send(job).await {
        Ok(()) => answer.await.ok(),
        Err(_) => None,
    };
    match stored {
        Some(Ok(())) => {}
        Some(Err(_)) => return unavailable(metrics, kind),
        None => {
            tracing::warn!(
                callback.kind = kind,
                "the callback writer has stopped: answering 503 so the platform retries"
            );
            return unavailable(metrics, kind);
        }
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
    tracing::debug!(callback.kind = kind, task.user_id = %cb.user_task_id(), "callback stored");
    if let Callback::Task(t) = &cb {
        // Durable now. A task's status changed on the platform: worth a look now. Order and call facts are
        // already stored.
        if let Some(status) = t.task_status {
            w.hub.task_status(&t.user_task_id, status);
        }
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
    (CallbackIngest { record, facts }, parsed)
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

/// Statuses the daemon takes from a task callback: only the ones it did not cause and cannot undo.
pub(crate) fn is_terminal_status(status: TaskStatus) -> bool {
    matches!(status.code(), 3 | 4)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn job(n: i64) -> (Job, oneshot::Receiver<Result<(), Arc<StoreError>>>) {
        let (done, answer) = oneshot::channel();
        let record = CallbackRecord {
            kind: "task".into(),
            body: format!("{{\"n\":{n}}}"),
            verified: true,
            received_at: DateTime::from_timestamp(1_800_000_000 + n, 0).unwrap(),
            request_id: Some(format!("r{n}")),
        };
        let job = Job {
            ingest: CallbackIngest {
                record,
                facts: None,
            },
            done,
        };
        (job, answer)
    }

    /// Queues `n` jobs before the writer starts, runs it until the queue closes, and returns the batches it wrote
    /// (as request IDs) and the answers.
    async fn drive(n: i64, fail: bool) -> (Vec<Vec<String>>, Vec<Result<(), Arc<StoreError>>>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut answers = Vec::new();
        for i in 0..n {
            let (j, a) = job(i);
            tx.send(j).await.unwrap();
            answers.push(a);
        }
        drop(tx);
        let batches = Mutex::new(Vec::new());
        write_batches(
            Arc::new(tokio::sync::Mutex::new(rx)),
            |batch: Arc<[CallbackIngest]>| {
                batches.lock().unwrap().push(
                    batch
                        .iter()
                        .map(|i| i.record.request_id.clone().unwrap())
                        .collect(),
                );
                async move {
                    if fail {
                        Err(StoreError::Unavailable("connection refused".into()))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
        let mut out = Vec::new();
        for a in answers {
            out.push(a.await.expect("every waiter is answered"));
        }
        (batches.into_inner().unwrap(), out)
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
        let task = include_bytes!("../../callbot-api/src/wire/fixtures/task_callback.json");
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

    #[tokio::test]
    async fn with_two_writers_a_second_batch_is_written_while_the_first_waits_for_its_commit() {
        // Each batch's store call waits until two are in progress at once: a lone writer would never get there.
        let both = Arc::new(tokio::sync::Barrier::new(2));
        let (tx, writers) = spawn_writers(2, move |_batch: Arc<[CallbackIngest]>| {
            let both = both.clone();
            async move {
                both.wait().await;
                Ok(())
            }
        });
        let (first, first_answer) = job(1);
        tx.send(first).await.unwrap();
        // The first batch is taken (and waits) before the second callback arrives.
        while tx.capacity() < QUEUE {
            tokio::task::yield_now().await;
        }
        let (second, second_answer) = job(2);
        tx.send(second).await.unwrap();
        let answers = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            (first_answer.await, second_answer.await)
        })
        .await
        .expect("two batches were in progress at once");
        assert!(matches!(answers, (Ok(Ok(())), Ok(Ok(())))));
        drop(tx);
        writers.await.unwrap();
    }

    #[tokio::test]
    async fn writes_every_queued_callback_in_one_batch_and_answers_each() {
        let (batches, answers) = drive(5, false).await;
        assert_eq!(batches, vec![vec!["r0", "r1", "r2", "r3", "r4"]]);
        assert_eq!(answers.len(), 5);
        assert!(answers.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn splits_a_long_queue_into_batches_of_at_most_max_batch_in_arrival_order() {
        let (batches, answers) = drive(MAX_BATCH as i64 + 3, false).await;
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_BATCH, 3]
        );
        assert_eq!(
            batches[1],
            vec![
                format!("r{MAX_BATCH}"),
                format!("r{}", MAX_BATCH + 1),
                format!("r{}", MAX_BATCH + 2)
            ]
        );
        assert!(answers.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn answers_every_waiter_of_a_failed_batch_with_the_error() {
        let (batches, answers) = drive(3, true).await;
        assert_eq!(batches.len(), 1);
        assert_eq!(answers.len(), 3);
        assert!(answers.iter().all(|a| matches!(
            a.as_ref().map_err(|e| e.as_ref()),
            Err(StoreError::Unavailable(_))
        )));
    }

    #[tokio::test]
    async fn writer_answers_503_and_keeps_going_when_the_store_panics() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (first, first_answer) = job(0);
        tx.send(first).await.unwrap();
        let calls = Mutex::new(0);
        let writer = write_batches(
            Arc::new(tokio::sync::Mutex::new(rx)),
            |_batch: Arc<[CallbackIngest]>| {
                let n = {
                    let mut calls = calls.lock().unwrap();
                    *calls += 1;
                    *calls
                };
                async move {
                    if n == 1 {
                        panic!("a bug in the store");
                    }
                    Ok(())
                }
            },
        );
        let feed = async {
            assert!(
                first_answer.await.unwrap().is_err(),
                "the panicked batch gets 503"
            );
            let (second, second_answer) = job(1);
            tx.send(second).await.unwrap();
            drop(tx);
            second_answer.await.unwrap()
        };
        let ((), second) = tokio::join!(writer, feed);
        assert!(second.is_ok(), "the writer still stores later callbacks");
    }

    #[tokio::test]
    async fn a_refused_batch_is_written_one_by_one_so_only_the_bad_callback_fails() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut answers = Vec::new();
        for i in 0..3 {
            let (j, a) = job(i);
            tx.send(j).await.unwrap();
            answers.push(a);
        }
        drop(tx);
        let sizes = Mutex::new(Vec::new());
        write_batches(
            Arc::new(tokio::sync::Mutex::new(rx)),
            |batch: Arc<[CallbackIngest]>| {
                sizes.lock().unwrap().push(batch.len());
                let poisoned = batch
                    .iter()
                    .any(|i| i.record.request_id.as_deref() == Some("r1"));
                async move {
                    if poisoned {
                        Err(StoreError::Invalid(
                            "a value the database cannot take".into(),
                        ))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
        assert_eq!(*sizes.lock().unwrap(), vec![3, 1, 1, 1]);
        let mut outcomes = Vec::new();
        for a in answers {
            outcomes.push(a.await.unwrap().is_ok());
        }
        assert_eq!(outcomes, vec![true, false, true]);
    }

    #[tokio::test]
    async fn writer_keeps_going_when_a_waiter_has_gone() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (gone, answer) = job(0);
        drop(answer);
        tx.send(gone).await.unwrap();
        let (kept, answer) = job(1);
        tx.send(kept).await.unwrap();
        drop(tx);
        let writes = Mutex::new(0);
        write_batches(
            Arc::new(tokio::sync::Mutex::new(rx)),
            |batch: Arc<[CallbackIngest]>| {
                *writes.lock().unwrap() += batch.len();
                async { Ok(()) }
            },
        )
        .await;
        assert_eq!(
            *writes.lock().unwrap(),
            2,
            "the abandoned callback is stored too"
        );
        assert!(answer.await.unwrap().is_ok());
    }
}
