//! The webhook listener: the platform's signed callbacks, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Paths: `POST /callbacks/task`, `/callbacks/order`, `/callbacks/call` (the kind comes from the body's
//! `callbackType`; the path is only a label). A callback is verified first (signature and a 300 s clock skew): a
//! bad or missing signature gets 401 and only a counter moves. A verified one is stored raw, its facts are applied
//! idempotently, and it is answered `{"retCode":0,"retMsg":"ok","responseID":…}`. When the store is unreachable the
//! answer is 503, so the platform delivers it again: no callback is lost.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use callbot_api::sign::{self, Algorithm, DEFAULT_MAX_SKEW_SECS, SecretKey, SignedHeaders};
use callbot_api::wire::{Callback, CallbackAck, TaskStatus};
use clock::SharedClock;
use store::{CallbackRecord, FactSource, Store, StoreError};
use tokio::net::TcpListener;
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

    /// The routes, for embedding or testing.
    pub fn router(self) -> Router {
        Router::new()
            .route("/callbacks/{kind}", post(callback))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(Arc::new(self))
    }

    /// Serves on `listener` until `shutdown`; in-flight requests are finished.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}

async fn readyz(State(w): State<Arc<Webhook>>) -> Response {
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

async fn metrics(State(w): State<Arc<Webhook>>) -> Response {
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
    State(w): State<Arc<Webhook>>,
    Path(path_kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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

    let parsed = Callback::parse(&body);
    let kind = match &parsed {
        Ok(Callback::Task(_)) => "task",
        Ok(Callback::Order(_)) => "order",
        Ok(Callback::Call(_)) => "call",
        Err(_) => "unknown",
    };
    let record = CallbackRecord {
        kind: kind.to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
        verified: true,
        received_at: now,
        request_id: Some(signed.request_id.clone()),
    };
    if let Err(e) = w.store.record_callback(&record).await {
        return unavailable(metrics, kind, &e);
    }
    let cb = match parsed {
        Ok(cb) => cb,
        Err(e) => {
            metrics.callback(kind, "bad_request");
            tracing::warn!(callback.request_id = %signed.request_id, error = %e, "stored a callback that cannot be read");
            return (StatusCode::BAD_REQUEST, ack(3, &e.to_string())).into_response();
        }
    };
    let applied = match &cb {
        Callback::Task(t) => {
            if let Some(status) = t.task_status {
                w.hub.task_status(&t.user_task_id, status);
            }
            Ok(())
        }
        Callback::Order(o) => {
            let facts = crate::facts::from_order_callback(o);
            w.store
                .apply_order_facts(&[facts], FactSource::Callback)
                .await
        }
        Callback::Call(c) => {
            let facts = crate::facts::from_call_callback(c);
            w.store
                .apply_order_facts(&[facts], FactSource::Callback)
                .await
        }
    };
    if let Err(e) = applied {
        return unavailable(metrics, kind, &e);
    }
    metrics.callback(kind, "ok");
    tracing::debug!(callback.kind = kind, task.user_id = %cb.user_task_id(), "callback applied");
    if matches!(cb, Callback::Task(_)) {
        // A task's status changed on the platform: worth a look now. Order and call facts are already stored.
        w.hub.wake();
    }
    (StatusCode::OK, ack(0, "ok")).into_response()
}

fn unavailable(metrics: &crate::metrics::Metrics, kind: &str, e: &StoreError) -> Response {
    metrics.callback(kind, "unavailable");
    tracing::warn!(callback.kind = kind, error = %e, "store unavailable: answering 503 so the platform retries");
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
