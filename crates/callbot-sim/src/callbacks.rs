//! Callback delivery: a queue the engine fills and a worker that signs and posts each callback, retrying with
//! backoff on non-2xx answers and connection errors. Every attempt is recorded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;

use callbot_api::sign::{Algorithm, SecretKey, SignedHeaders};
use chrono::{DateTime, Utc};
use clock::SharedClock;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::CallbackPolicy;

/// A callback waiting for delivery.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub seq: u64,
    pub url: String,
    pub callback_type: u8,
    pub body: Vec<u8>,
    pub uuid: String,
    pub secret: SecretKey,
    pub algorithm: Algorithm,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallbackAttempt {
    /// Sequence number of the callback (all attempts of one callback share it).
    pub callback_seq: u64,
    pub url: String,
    /// 1 task, 2 order, 3 call.
    pub callback_type: u8,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Sim time of the attempt.
    pub at: DateTime<Utc>,
    /// The `requestID` header sent (fresh per attempt).
    pub request_id: String,
    /// HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Connection or timeout error, when no answer came.
    pub error: Option<String>,
    /// 2xx.
    pub ok: bool,
    /// The body sent (JSON).
    pub body: serde_json::Value,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<VecDeque<Job>>,
    notify: Notify,
    /// Callbacks queued or in flight.
    pending: watch::Sender<usize>,
    attempts: Mutex<Vec<CallbackAttempt>>,
    next_seq: Mutex<u64>,
}

impl Outbox {
    pub fn new() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            pending: watch::Sender::new(0),
            attempts: Mutex::new(Vec::new()),
            next_seq: Mutex::new(0),
        }
    }

    pub fn next_seq(&self) -> u64 {
        let mut s = lock(&self.next_seq);
        *s += 1;
        *s
    }

    pub fn push(&self, job: Job) {
        lock(&self.queue).push_back(job);
        self.pending.send_modify(|n| *n += 1);
        self.notify.notify_one();
    }

    pub fn attempts(&self) -> Vec<CallbackAttempt> {
        lock(&self.attempts).clone()
    }

    /// Returns when nothing is queued or in flight.
    pub async fn flush(&self) {
        let mut rx = self.pending.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    fn done(&self) {
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }

    fn pop(&self) -> Option<Job> {
        lock(&self.queue).pop_front()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Delivers callbacks until `shutdown`; in-flight deliveries are abandoned at shutdown.
pub(crate) async fn deliver(
    outbox: Arc<Outbox>,
    http: reqwest::Client,
    clock: SharedClock,
    policy: CallbackPolicy,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(policy.concurrency.max(1)));
    loop {
        let job = loop {
            if let Some(job) = outbox.pop() {
                break job;
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    tracker.close();
                    return;
                }
                () = outbox.notify.notified() => {}
            }
        };
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => p,
        };
        let (outbox, http, clock, policy, shutdown) = (
            outbox.clone(),
            http.clone(),
            clock.clone(),
            policy.clone(),
            shutdown.clone(),
        );
        tracker.spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = deliver_one(&outbox, &http, &clock, &policy, &job) => {}
            }
            outbox.done();
        });
    }
    tracker.close();
}

async fn deliver_one(
    outbox: &Outbox,
    http: &reqwest::Client,
    clock: &SharedClock,
    policy: &CallbackPolicy,
    job: &Job,
) {
    let mut backoff = policy.initial_backoff;
    let body_json: serde_json::Value = serde_json::from_slice(&job.body).unwrap_or_default();
    for attempt in 1..=policy.max_attempts.max(1) {
        let now = clock.now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut headers = SignedHeaders::signed(
            &job.secret,
            &job.body,
            now.timestamp().to_string(),
            request_id.clone(),
            job.uuid.clone(),
            job.algorithm,
        );
        if !policy.send_algorithm_header {
            headers.algorithm = None;
        }
        let mut map = reqwest::header::HeaderMap::new();
        headers.write_to(&mut map);
        map.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        let result = http
            .post(&job.url)
            .headers(map)
            .timeout(policy.timeout)
            .body(job.body.clone())
            .send()
            .await;
        let (status, error) = match &result {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (None, Some(error_chain(e))),
        };
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        lock(&outbox.attempts).push(CallbackAttempt {
            callback_seq: job.seq,
            url: job.url.clone(),
            callback_type: job.callback_type,
            attempt,
            at: now,
            request_id,
            status,
            error: error.clone(),
            ok,
            body: body_json.clone(),
        });
        if ok {
            return;
        }
        if attempt == policy.max_attempts.max(1) {
            tracing::warn!(
                url = %job.url, callback_type = job.callback_type, attempts = attempt, status = ?status, error = ?error,
                "sim gave up delivering a callback"
            );
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
