//! The HTTP client: signing, one shared rate limit, retries of retryable failures only, and an observer hook.
//! Reading and checking the platform's answers lives in [`response`].

mod response;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use clock::SharedClock;
use rand::Rng;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::sign::{Algorithm, SecretKey, SignedHeaders};
use crate::wire::{self, ApiRequest, Endpoint, Envelope};

pub use response::{
    DEFAULT_MAX_RESPONSE_BYTES, ResponseVerification, SignatureCheck, SignatureOutcome,
    UnknownVerification,
};

/// How retryable failures are retried: exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff cap of the first retry; doubles on each further retry.
    pub base_delay: Duration,
    /// Largest backoff cap.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff cap before retry number `retry` (1 for the first retry): `min(max, base * 2^(retry-1))`.
    pub fn cap(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// A backoff drawn uniformly from `[0, cap(retry)]` ("full jitter").
    fn backoff(&self, retry: u32) -> Duration {
        let cap_ms = u64::try_from(self.cap(retry).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=cap_ms))
    }
}

/// Everything the client needs to talk to one account.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme and host, e.g. `https://nxbot.nxcloud.com` (a path prefix is kept).
    pub base_url: String,
    /// Account identifier (`uuid` header).
    pub uuid: String,
    /// Account secret; never sent.
    pub secret: SecretKey,
    /// Signature algorithm; sent in the `algorithm` header.
    pub algorithm: Algorithm,
    /// Requests per second shared by every clone of the client; 0 means unlimited.
    pub requests_per_second: u32,
    /// Time limit of one attempt, connection included.
    pub request_timeout: Duration,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// What to do with response signatures: not look ([`ResponseVerification::Off`]), count them
    /// (`Report`, the default) or refuse a response that fails (`Enforce`).
    pub verify_responses: ResponseVerification,
    /// The largest response body read, in bytes ([`DEFAULT_MAX_RESPONSE_BYTES`]); a larger answer is refused.
    pub max_response_bytes: usize,
}

impl ClientConfig {
    /// A configuration with defaults: MD5, 10 requests per second, 30 s per attempt, [`RetryPolicy::default`],
    /// response signatures reported but not enforced, responses up to [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub fn new(base_url: impl Into<String>, uuid: impl Into<String>, secret: SecretKey) -> Self {
        Self {
            base_url: base_url.into(),
            uuid: uuid.into(),
            secret,
            algorithm: Algorithm::default(),
            requests_per_second: 10,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            verify_responses: ResponseVerification::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// The class of one attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionOutcome {
    /// retCode 0.
    Ok,
    /// Not applied; may be retried.
    Retryable,
    /// May have been applied.
    Ambiguous,
    /// Refused by the platform.
    Rejected,
    /// Not sent.
    Invalid,
}

impl ActionOutcome {
    /// Lowercase label (for metrics and storage).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Ok => "ok",
            ActionOutcome::Retryable => "retryable",
            ActionOutcome::Ambiguous => "ambiguous",
            ActionOutcome::Rejected => "rejected",
            ActionOutcome::Invalid => "invalid",
        }
    }
}

/// One attempt of one API call, as reported to an [`ActionObserver`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The attempt's `requestID` (fresh for every attempt; empty if the request was never built).
    pub request_id: String,
    /// The response's `responseID` (ping: `reqId`), when a response was read.
    pub response_id: Option<String>,
    /// retCode (ping: `code`), when a response was read.
    pub ret_code: Option<i64>,
    /// retMsg, or what went wrong.
    pub message: String,
    /// HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// Wall time of the attempt.
    pub duration_ms: u64,
    /// When the attempt started (the client's clock).
    pub at: DateTime<Utc>,
    /// Outcome class.
    pub outcome: ActionOutcome,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// Receives a record of every attempt, successful or not (e.g. to write an audit table).
/// Called synchronously on the request path: keep it cheap.
pub trait ActionObserver: Send + Sync {
    /// One attempt finished.
    fn record(&self, action: &ActionRecord);

    /// A response's signature was checked (unless [`ResponseVerification::Off`]): once per response read whole,
    /// before [`ActionObserver::record`] of the same attempt. For a metric such as
    /// `campaignd_response_signature_total{outcome}`. Does nothing unless implemented.
    fn response_signature(&self, _check: &SignatureCheck) {}
}

/// A requests-per-second limit shared by all clones: each request takes the next free slot, one every
/// `1 / rps` seconds.
#[derive(Debug)]
struct RateLimiter {
    interval: Option<Duration>,
    next_slot: Mutex<Option<Instant>>,
}

impl RateLimiter {
    fn new(rps: u32) -> Self {
        Self {
            interval: (rps > 0).then(|| Duration::from_secs(1) / rps),
            next_slot: Mutex::new(None),
        }
    }

    async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

struct Inner {
    http: reqwest::Client,
    base: reqwest::Url,
    config: ClientConfig,
    clock: SharedClock,
    limiter: Arc<RateLimiter>,
    observer: Option<Arc<dyn ActionObserver>>,
}

/// Typed client of the Callbot v3 API. Cheap to clone; clones share the rate limit.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("uuid", &self.inner.config.uuid)
            .field("algorithm", &self.inner.config.algorithm)
            .finish_non_exhaustive()
    }
}

/// Makes sure rustls has a process-wide crypto provider (ring), which reqwest needs to build a client.
/// Does nothing when one is installed already.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: some provider is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The outcome of one attempt, before it becomes a record and a result.
struct Attempt<T> {
    result: Result<T, ApiError>,
    request_id: String,
    response_id: Option<String>,
    ret_code: Option<i64>,
    http_status: Option<u16>,
    /// What the response's signature check found, when one ran.
    signature: Option<SignatureOutcome>,
}

impl Client {
    /// Builds a client. `clock` supplies `createTs`; waiting (rate limit, backoff) uses tokio time.
    pub fn new(config: ClientConfig, clock: SharedClock) -> Result<Client, ApiError> {
        let mut base = reqwest::Url::parse(config.base_url.trim()).map_err(|e| {
            ApiError::Config(format!("base_url {:?} is not a URL: {e}", config.base_url))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ApiError::Config(format!(
                "base_url {:?} must start with http:// or https://",
                config.base_url
            )));
        }
        // Endpoint paths are absolute; keep any prefix of the base by joining without a trailing slash.
        let trimmed = base.path().trim_end_matches('/').to_owned();
        base.set_path(&trimmed);
        if config.uuid.is_empty() || HeaderValue::from_str(&config.uuid).is_err() {
            return Err(ApiError::Config(format!(
                "uuid {:?} is empty or not valid header text: set the account's uuid from the console",
                config.uuid
            )));
        }
        if config.request_timeout.is_zero() {
            return Err(ApiError::Config(
                "request_timeout must be more than zero".into(),
            ));
        }
        if config.max_response_bytes == 0 {
            return Err(ApiError::Config(
                "max_response_bytes must be more than zero".into(),
            ));
        }
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ApiError::Config(format!("cannot build the HTTP client: {e}")))?;
        let limiter = Arc::new(RateLimiter::new(config.requests_per_second));
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                config,
                clock,
                limiter,
                observer: None,
            }),
        })
    }

    /// The same client (sharing its rate limit) with `observer` told about every attempt.
    pub fn with_observer(&self, observer: Arc<dyn ActionObserver>) -> Client {
        let i = &self.inner;
        Client {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                base: i.base.clone(),
                config: i.config.clone(),
                clock: i.clock.clone(),
                limiter: i.limiter.clone(),
                observer: Some(observer),
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The URL of `endpoint`.
    pub fn url(&self, endpoint: Endpoint) -> String {
        format!(
            "{}{}",
            self.inner.base.as_str().trim_end_matches('/'),
            endpoint.path()
        )
    }

    /// `createAndCall`: create a task and add orders.
    pub async fn create_and_call(
        &self,
        req: &wire::CreateAndCallRequest,
    ) -> Result<wire::CreateAndCallResponse, ApiError> {
        self.call(req).await
    }

    /// `addBatchCall`: add orders to a task.
    pub async fn add_batch_call(
        &self,
        req: &wire::AddBatchCallRequest,
    ) -> Result<wire::AddBatchCallResponse, ApiError> {
        self.call(req).await
    }

    /// `updateTask`: change a paused or not-started task's settings.
    pub async fn update_task(
        &self,
        req: &wire::UpdateTaskRequest,
    ) -> Result<wire::UpdateTaskResponse, ApiError> {
        self.call(req).await
    }

    /// `mgrTaskStatus`: start, pause or complete a task.
    pub async fn mgr_task_status(
        &self,
        req: &wire::MgrTaskStatusRequest,
    ) -> Result<wire::MgrTaskStatusResponse, ApiError> {
        self.call(req).await
    }

    /// `listOrderDetail`: calls of up to 500 orders (more is `Invalid`, not sent).
    pub async fn list_order_detail(
        &self,
        req: &wire::ListOrderDetailRequest,
    ) -> Result<wire::ListOrderDetailResponse, ApiError> {
        self.call(req).await
    }

    /// `stopOrder`: stop orders, irreversibly.
    pub async fn stop_order(
        &self,
        req: &wire::StopOrderRequest,
    ) -> Result<wire::StopOrderResponse, ApiError> {
        self.call(req).await
    }

    /// `listTask`: tasks with statistics.
    pub async fn list_task(
        &self,
        req: &wire::ListTaskRequest,
    ) -> Result<wire::ListTaskResponse, ApiError> {
        self.call(req).await
    }

    /// `ping`: liveness and signature check.
    pub async fn ping(&self, req: &wire::PingRequest) -> Result<wire::PingResponse, ApiError> {
        self.call(req).await
    }

    /// Sends any request: checks it, serializes it once, then signs and sends those bytes on every attempt,
    /// retrying `Retryable` failures with backoff.
    pub async fn call<R: ApiRequest>(&self, req: &R) -> Result<R::Response, ApiError> {
        let endpoint = R::ENDPOINT;
        let body = req
            .check()
            .map_err(|reason| ApiError::Invalid { endpoint, reason })
            .and_then(|()| {
                serde_json::to_vec(req)
                    .map(Bytes::from)
                    .map_err(|e| ApiError::Invalid {
                        endpoint,
                        reason: format!("cannot serialize the request: {e}"),
                    })
            });
        let body = match body {
            Ok(b) => b,
            Err(err) => {
                self.observe(
                    endpoint,
                    1,
                    self.inner.clock.now(),
                    Duration::ZERO,
                    &Attempt::<()> {
                        result: Err(err.clone()),
                        request_id: String::new(),
                        response_id: None,
                        ret_code: None,
                        http_status: None,
                        signature: None,
                    },
                );
                return Err(err);
            }
        };

        let max_attempts = self.inner.config.retry.max_attempts.max(1);
        let mut attempt_no = 1;
        loop {
            self.inner.limiter.acquire().await;
            let at = self.inner.clock.now();
            let started = Instant::now();
            let attempt = self.attempt::<R>(&body, at).await;
            self.observe(endpoint, attempt_no, at, started.elapsed(), &attempt);
            match attempt.result {
                Err(err) if err.is_retryable() && attempt_no < max_attempts => {
                    let delay = self.inner.config.retry.backoff(attempt_no);
                    tracing::info!(
                        endpoint = endpoint.name(),
                        attempt = attempt_no,
                        backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %err,
                        "retrying callbot request"
                    );
                    tokio::time::sleep(delay).await;
                    attempt_no += 1;
                }
                result => return result,
            }
        }
    }

    /// One signed attempt with the exact bytes `body`.
    async fn attempt<R: ApiRequest>(
        &self,
        body: &Bytes,
        at: DateTime<Utc>,
    ) -> Attempt<R::Response> {
        let endpoint = R::ENDPOINT;
        let cfg = &self.inner.config;
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut attempt = Attempt {
            result: Err(ApiError::Invalid {
                endpoint,
                reason: "not attempted".into(),
            }),
            request_id: request_id.clone(),
            response_id: None,
            ret_code: None,
            http_status: None,
            signature: None,
        };
        let signed = SignedHeaders::signed(
            &cfg.secret,
            body,
            at.timestamp().to_string(),
            request_id,
            cfg.uuid.clone(),
            cfg.algorithm,
        );
        let mut headers = HeaderMap::new();
        signed.write_to(&mut headers);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));

        let sent = self
            .inner
            .http
            .post(self.url(endpoint))
            .headers(headers)
            .body(body.clone())
            .timeout(cfg.request_timeout)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                attempt.result = Err(classify_send_error(endpoint, &e));
                return attempt;
            }
        };
        let status = response.status();
        attempt.http_status = Some(status.as_u16());
        let response_headers = response.headers().clone();
        let raw = match response::read_capped(&mut response, cfg.max_response_bytes).await {
            Ok(b) => b,
            Err(response::BodyError::TooLarge(reason)) => {
                attempt.result = Err(response::refused(endpoint, status, reason));
                return attempt;
            }
            Err(response::BodyError::Read(e)) => {
                attempt.result = Err(if status.is_server_error() {
                    ApiError::Retryable {
                        endpoint,
                        reason: format!("HTTP {status}"),
                    }
                } else {
                    ApiError::Ambiguous {
                        endpoint,
                        reason: format!("response body could not be read: {}", error_chain(&e)),
                    }
                });
                return attempt;
            }
        };
        if cfg.verify_responses != ResponseVerification::Off {
            let (outcome, reason) = response::check_signature(
                &cfg.secret,
                &cfg.uuid,
                &response_headers,
                &raw,
                self.inner.clock.now().timestamp(),
            );
            attempt.signature = Some(outcome);
            let refuse = response::refuses(cfg.verify_responses, outcome, status);
            let check = SignatureCheck {
                endpoint,
                request_id: attempt.request_id.clone(),
                http_status: status.as_u16(),
                outcome,
                reason: reason.clone(),
                mode: cfg.verify_responses,
            };
            self.report_signature(&check, refuse);
            if refuse {
                attempt.result = Err(response::refused(endpoint, status, reason));
                return attempt;
            }
        }
        if status.is_server_error() {
            attempt.result = Err(ApiError::Retryable {
                endpoint,
                reason: format!("HTTP {status}: {}", snippet(&raw)),
            });
            return attempt;
        }
        if status.is_client_error() || status.is_redirection() || status.is_informational() {
            attempt.result = Err(ApiError::Rejected {
                endpoint,
                code: i64::from(status.as_u16()),
                message: format!("HTTP {status}: {}", snippet(&raw)),
                response_id: String::new(),
            });
            return attempt;
        }
        let value: Value = match serde_json::from_slice(&raw) {
            Ok(v) => v,
            Err(e) => {
                attempt.result = Err(ApiError::Ambiguous {
                    endpoint,
                    reason: format!(
                        "HTTP {status} with a body that is not JSON ({e}): {}",
                        snippet(&raw)
                    ),
                });
                return attempt;
            }
        };
        let Some(code) = value.get(R::RESULT_FIELD).and_then(Value::as_i64) else {
            attempt.result = Err(ApiError::Ambiguous {
                endpoint,
                reason: format!(
                    "HTTP {status} without an integer `{}`: {}",
                    R::RESULT_FIELD,
                    snippet(&raw)
                ),
            });
            return attempt;
        };
        attempt.ret_code = Some(code);
        let parsed: R::Response = match serde_json::from_value(value) {
            Ok(p) => p,
            Err(e) => {
                attempt.result = Err(ApiError::Ambiguous {
                    endpoint,
                    reason: format!(
                        "response with retCode {code} does not match the documented shape: {e}"
                    ),
                });
                return attempt;
            }
        };
        attempt.response_id = Some(parsed.response_id().to_owned());
        attempt.result = if code == wire::ret_code::OK {
            Ok(parsed)
        } else if wire::ret_code::is_retryable(code) {
            Err(ApiError::Retryable {
                endpoint,
                reason: format!("retCode {code}: {}", parsed.ret_msg()),
            })
        } else {
            Err(ApiError::Rejected {
                endpoint,
                code,
                message: parsed.ret_msg().to_owned(),
                response_id: parsed.response_id().to_owned(),
            })
        };
        attempt
    }

    /// Tells the observer about a signature check. A mismatch the response survives (not refused) is handled here,
    /// so it is logged here; a refused one is logged by whoever handles the error.
    fn report_signature(&self, check: &SignatureCheck, refused: bool) {
        match check.outcome {
            SignatureOutcome::Mismatch if !refused => tracing::info!(
                endpoint = check.endpoint.name(),
                request_id = %check.request_id,
                http_status = check.http_status,
                mode = check.mode.as_str(),
                reason = %check.reason,
                "response signature does not verify; response used anyway"
            ),
            SignatureOutcome::Missing if !refused => tracing::debug!(
                endpoint = check.endpoint.name(),
                request_id = %check.request_id,
                http_status = check.http_status,
                "response carries no signature"
            ),
            _ => {}
        }
        if let Some(observer) = &self.inner.observer {
            observer.response_signature(check);
        }
    }

    fn observe<T>(
        &self,
        endpoint: Endpoint,
        attempt_no: u32,
        at: DateTime<Utc>,
        took: Duration,
        a: &Attempt<T>,
    ) {
        let (outcome, message) = match &a.result {
            Ok(_) => (ActionOutcome::Ok, String::new()),
            Err(e) => (e.outcome(), e.to_string()),
        };
        let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(
            endpoint = endpoint.name(),
            request_id = %a.request_id,
            attempt = attempt_no,
            outcome = outcome.as_str(),
            ret_code = a.ret_code,
            http_status = a.http_status,
            response_id = a.response_id.as_deref(),
            signature = a.signature.map(SignatureOutcome::as_str),
            duration_ms,
            "callbot request attempt"
        );
        if let Some(observer) = &self.inner.observer {
            observer.record(&ActionRecord {
                endpoint,
                request_id: a.request_id.clone(),
                response_id: a.response_id.clone(),
                ret_code: a.ret_code,
                message,
                http_status: a.http_status,
                duration_ms,
                at,
                outcome,
                attempt: attempt_no,
            });
        }
    }
}

/// A send error before any response: connection failures happened before the request was written (retryable);
/// anything later may have reached the platform (ambiguous).
fn classify_send_error(endpoint: Endpoint, e: &reqwest::Error) -> ApiError {
    let reason = error_chain(e);
    if e.is_builder() {
        ApiError::Invalid { endpoint, reason }
    } else if e.is_connect() {
        ApiError::Retryable {
            endpoint,
            reason: format!("could not connect: {reason}"),
        }
    } else if e.is_timeout() {
        ApiError::Ambiguous {
            endpoint,
            reason: format!("timed out after the request was sent: {reason}"),
        }
    } else {
        ApiError::Ambiguous {
            endpoint,
            reason: format!("connection failed after the request was sent: {reason}"),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The start of a body, for error messages.
fn snippet(raw: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&raw[..raw.len().min(MAX)]).into_owned();
    if raw.len() > MAX {
        format!("{text}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests;
