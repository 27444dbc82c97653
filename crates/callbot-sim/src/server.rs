//! The HTTP face of the simulator: signature checks, fault injection, the API endpoints and `/_sim/*`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use callbot_api::sign::{self, Algorithm, SignedHeaders, VerifyError};
use chrono::{DateTime, Utc};
use clock::{ManualClock, SharedClock};
use serde::Serialize;
use serde_json::{Value, json};

use crate::callbacks::{CallbackAttempt, Job, Outbox, lock};
use crate::config::{Account, FaultConfig, FaultKind, SimConfig};
use crate::engine::{CallRecord, Engine, EngineConfig, OrderView, TaskView};
use crate::faults::{Decision, FaultRecord, Faults, ForcedFault};
use crate::fields::Reject;
use crate::listener::ConnMeta;
use crate::requests::Submission;

/// The API endpoints the simulator serves under `/callcentre/api/v3/`.
const ENDPOINTS: [&str; 11] = [
    "ping",
    "createTask",
    "createAndCall",
    "addBatchCall",
    "updateTask",
    "mgrTaskStatus",
    "listTask",
    "listOrder",
    "listOrderDetail",
    "stopOrder",
    "listCall",
];

/// Everything the simulator shares between its HTTP handlers, its loops and its handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub engine: Mutex<Engine>,
    pub clock: SharedClock,
    pub manual: Option<ManualClock>,
    pub accounts: HashMap<String, Account>,
    pub max_skew_secs: i64,
    pub faults: Mutex<Faults>,
    pub outbox: Arc<Outbox>,
    pub config: SimConfig,
    response_seq: AtomicU64,
    /// API requests being handled now, and the most at once so far.
    pub in_flight: InFlight,
}

/// A gauge of the API requests being handled, with its high-water mark.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl InFlight {
    /// Counts one request in until the guard drops.
    fn enter(&self) -> InFlightGuard<'_> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        InFlightGuard(self)
    }

    pub fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    pub fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub fn new(config: SimConfig, clock: SharedClock, manual: Option<ManualClock>) -> Self {
        let engine = Engine::new(
            EngineConfig {
                call_list_limit: config.call_list_limit,
                order_list_limit: config.order_list_limit,
                apply_delay: chrono::Duration::from_std(config.apply_delay)
                    .unwrap_or(chrono::Duration::minutes(5)),
                speed: config.speed,
                seed: config.seed,
                outcomes: config.outcomes.clone(),
            },
            clock.now(),
        );
        Self {
            engine: Mutex::new(engine),
            clock,
            manual,
            accounts: config
                .accounts
                .iter()
                .map(|a| (a.uuid.clone(), a.clone()))
                .collect(),
            max_skew_secs: config.max_skew_secs,
            faults: Mutex::new(Faults::new(config.faults.clone())),
            outbox: Arc::new(Outbox::new()),
            config,
            response_seq: AtomicU64::new(0),
            in_flight: InFlight::default(),
        }
    }

    /// Runs `f` on the engine, then queues the callbacks it produced.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let (r, out) = {
            let mut e = lock(&self.engine);
            let r = f(&mut e);
            (r, e.take_outbox())
        };
        for o in out {
            let Some(account) = self.accounts.get(&o.account) else {
                continue;
            };
            let body = serde_json::to_vec(&o.body).unwrap_or_default();
            self.outbox.push(Job {
                seq: self.outbox.next_seq(),
                url: o.url,
                callback_type: o.callback_type,
                body,
                uuid: account.uuid.clone(),
                secret: account.secret.clone(),
                algorithm: account.algorithm.unwrap_or_default(),
            });
        }
        r
    }

    pub fn advance_to(&self, t: DateTime<Utc>) {
        self.with_engine(|e| e.advance_to(t));
    }

    fn response_id(&self) -> String {
        format!(
            "sim-resp-{}",
            self.response_seq.fetch_add(1, Ordering::Relaxed) + 1
        )
    }

    pub fn state(&self) -> SimState {
        let (now, tasks, orders, calls, submissions) = {
            let e = lock(&self.engine);
            (e.now(), e.tasks(), e.orders(), e.calls(), e.submissions())
        };
        SimState {
            now,
            tasks,
            orders,
            calls,
            callbacks: self.outbox.attempts(),
            faults: lock(&self.faults).log(),
            submissions,
        }
    }
}

/// Everything the simulator can show: `GET /_sim/state` and [`crate::SimHandle::state`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SimState {
    /// The engine's time.
    pub now: DateTime<Utc>,
    /// Tasks with settings, effective settings and status history.
    pub tasks: Vec<TaskView>,
    /// Orders, in submission order.
    pub orders: Vec<OrderView>,
    /// Every call placed.
    pub calls: Vec<CallRecord>,
    /// Every callback delivery attempt.
    pub callbacks: Vec<CallbackAttempt>,
    /// Every injected fault.
    pub faults: Vec<FaultRecord>,
    /// Every order submitted as new.
    pub submissions: Vec<Submission>,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/callcentre/api/v3/{name}", post(api))
        .route("/_sim/state", get(sim_state))
        .route("/_sim/clock", post(sim_clock))
        .route("/_sim/faults", post(sim_faults))
        .with_state(shared)
}

async fn sim_state(State(sim): State<Arc<Shared>>) -> Response {
    sim.advance_to(sim.clock.now());
    axum::Json(sim.state()).into_response()
}

async fn sim_clock(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(manual) = &sim.manual else {
        return (
            StatusCode::CONFLICT,
            "this simulator runs on the real clock; /_sim/clock works only with a manual clock",
        )
            .into_response();
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")).into_response();
        }
    };
    if let Some(secs) = v.get("advance_secs").and_then(Value::as_f64) {
        let ms = (secs * 1000.0).round() as i64;
        if ms < 0 {
            return (StatusCode::BAD_REQUEST, "advance_secs must not be negative").into_response();
        }
        manual.advance(chrono::Duration::milliseconds(ms));
    } else if let Some(s) = v.get("set").and_then(Value::as_str) {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => manual.set(t.with_timezone(&Utc)),
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("set: {s:?} is not RFC 3339: {e}"),
                )
                    .into_response();
            }
        }
    } else {
        return (
            StatusCode::BAD_REQUEST,
            "send {\"advance_secs\": n} or {\"set\": \"<rfc3339>\"}",
        )
            .into_response();
    }
    let now = sim.clock.now();
    sim.advance_to(now);
    axum::Json(json!({ "now": now })).into_response()
}

async fn sim_faults(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(cfg) => {
            lock(&sim.faults).set_config(cfg);
            axum::Json(json!({"ok": true})).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("body is not a fault config: {e}"),
        )
            .into_response(),
    }
}

/// What the API handler answers, before signing.
struct Reply {
    body: Value,
    /// The account to sign with and the algorithm, when the caller was identified.
    signer: Option<(Account, Algorithm)>,
}

async fn api(
    State(sim): State<Arc<Shared>>,
    Path(name): Path<String>,
    ConnectInfo(conn): ConnectInfo<ConnMeta>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(endpoint) = ENDPOINTS.iter().copied().find(|e| *e == name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no endpoint {name:?} under /callcentre/api/v3/"),
        )
            .into_response();
    };
    let _counted = sim.in_flight.enter();
    sim.advance_to(sim.clock.now());
    let request_id = header_str(&headers, sign::header::REQUEST_ID);
    let fault = lock(&sim.faults).decide(endpoint);
    let record = |applied: bool, kind: FaultKind| {
        lock(&sim.faults).record(FaultRecord {
            at: sim.clock.now(),
            endpoint: endpoint.to_owned(),
            kind,
            request_id: request_id.clone(),
            applied,
        });
        tracing::info!(endpoint, fault = ?kind, applied, request_id = %request_id, "sim injected a fault");
    };
    match fault {
        Some(Decision {
            kind: kind @ (FaultKind::RetCode7 | FaultKind::RetCode5001),
            ..
        }) => {
            record(false, kind);
            let (code, msg) = if kind == FaultKind::RetCode7 {
                (7, "system busy (simulated fault)")
            } else {
                (5001, "internal server error (simulated fault)")
            };
            let signer = identify(&sim, &headers);
            let body = error_body(&sim, endpoint, &Reject::new(code, msg));
            return respond(&sim, &headers, Reply { body, signer });
        }
        Some(Decision {
            kind: FaultKind::Http502,
            ..
        }) => {
            record(false, FaultKind::Http502);
            return (StatusCode::BAD_GATEWAY, "502 Bad Gateway (simulated fault)").into_response();
        }
        Some(Decision {
            kind: FaultKind::DropAfterRead,
            apply,
        }) => {
            if apply {
                let _ = handle(&sim, endpoint, &headers, &body);
            }
            record(apply, FaultKind::DropAfterRead);
            conn.kill();
            return StatusCode::OK.into_response();
        }
        Some(Decision {
            kind: FaultKind::Delay,
            ..
        }) => {
            let reply = handle(&sim, endpoint, &headers, &body);
            record(true, FaultKind::Delay);
            let delay = lock(&sim.faults).config().delay;
            tokio::time::sleep(delay).await;
            return respond(&sim, &headers, reply);
        }
        _ => {}
    }
    let reply = handle(&sim, endpoint, &headers, &body);
    let late = &sim.config.latency_endpoints;
    if !sim.config.latency.is_zero() && (late.is_empty() || late.iter().any(|e| e == endpoint)) {
        tokio::time::sleep(sim.config.latency).await;
    }
    respond(&sim, &headers, reply)
}

fn header_str(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The caller's account and algorithm, when its `uuid` is known (for signing error answers).
fn identify(sim: &Shared, headers: &HeaderMap) -> Option<(Account, Algorithm)> {
    let account = sim
        .accounts
        .get(&header_str(headers, sign::header::UUID))?
        .clone();
    let alg = header_str(headers, sign::header::ALGORITHM)
        .parse()
        .ok()
        .or(account.algorithm)
        .unwrap_or_default();
    Some((account, alg))
}

/// Authenticates, applies and answers one API request.
fn handle(sim: &Shared, endpoint: &'static str, headers: &HeaderMap, body: &[u8]) -> Reply {
    let signer = identify(sim, headers);
    let account = match authenticate(sim, headers, body) {
        Ok(a) => a,
        Err(reject) => {
            tracing::info!(endpoint, code = reject.code, reason = %reject.msg, "sim refused a request");
            return Reply {
                body: error_body(sim, endpoint, &reject),
                signer,
            };
        }
    };
    let request_id = header_str(headers, sign::header::REQUEST_ID);
    let parsed: Result<Value, Reject> = serde_json::from_slice(body)
        .map_err(|e| Reject::new(3, format!("the body is not valid JSON: {e}")));
    let result = parsed.and_then(|v| apply(sim, endpoint, &account.uuid, &request_id, &v));
    let body = match result {
        Ok(mut ok) => {
            if endpoint != "ping" {
                ok["retCode"] = json!(0);
                ok["retMsg"] = json!("success");
                ok["responseID"] = json!(sim.response_id());
            }
            ok
        }
        Err(reject) => {
            tracing::info!(endpoint, code = reject.code, reason = %reject.msg, "sim rejected a request");
            error_body(sim, endpoint, &reject)
        }
    };
    Reply { body, signer }
}

fn authenticate(sim: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Account, Reject> {
    let signed = SignedHeaders::from_header_map(headers).map_err(|e| match e {
        VerifyError::MissingSign => Reject::new(6001, "signature missing: send the `sign` header"),
        VerifyError::MissingHeader(h) if h == sign::header::UUID => {
            Reject::new(6002, "account does not exist: send the `uuid` header")
        }
        other => Reject::new(2, format!("{other}")),
    })?;
    let account = sim
        .accounts
        .get(&signed.uuid)
        .ok_or_else(|| Reject::new(6002, format!("account {:?} does not exist", signed.uuid)))?;
    if let (Some(pinned), Some(sent)) = (account.algorithm, signed.algorithm)
        && pinned != sent
    {
        return Err(Reject::new(
            6,
            format!(
                "signature incorrect: this account signs with {pinned}, the request says {sent}"
            ),
        ));
    }
    let mut signed = signed;
    if signed.algorithm.is_none() {
        signed.algorithm = account.algorithm;
    }
    let now = sim.clock.now().timestamp();
    sign::verify(&account.secret, body, &signed, now, sim.max_skew_secs).map_err(|e| match e {
        VerifyError::Stale { skew_secs } => Reject::new(
            6,
            format!(
                "signature incorrect: createTs is {skew_secs} s from the platform's clock (at most {} s allowed); \
                 sign with the current time",
                sim.max_skew_secs
            ),
        ),
        VerifyError::BadTimestamp => Reject::new(6, "signature incorrect: createTs is not Unix seconds"),
        VerifyError::MissingSign => Reject::new(6001, "signature missing: send the `sign` header"),
        _ => Reject::new(
            6,
            "signature incorrect: sign HASH(secretKey&body=<raw body>&createTs=..&requestID=..&uuid=..) in uppercase hex",
        ),
    })?;
    Ok(account.clone())
}

fn apply(
    sim: &Shared,
    endpoint: &str,
    uuid: &str,
    request_id: &str,
    v: &Value,
) -> Result<Value, Reject> {
    let now_ts = sim.clock.now().timestamp();
    match endpoint {
        "ping" => Ok(json!({
            "data": v.get("data").and_then(Value::as_str).unwrap_or_default(),
            "timestamp": now_ts,
            "code": 0,
            "msg": "success",
            "reqId": sim.response_id(),
        })),
        "createAndCall" | "createTask" => {
            let with_calls = endpoint == "createAndCall";
            let r = sim.with_engine(|e| e.create_task(uuid, request_id, v, with_calls))?;
            let mut out = json!({ "taskID": r.task_id });
            if with_calls {
                out["totalCount"] = json!(r.total);
                out["successCount"] = json!(r.success);
                out["errList"] = err_list(&r.err_list);
            }
            Ok(out)
        }
        "addBatchCall" => {
            let r = sim.with_engine(|e| e.add_batch_call(uuid, request_id, v))?;
            Ok(json!({
                "taskID": r.task_id,
                "totalCount": r.total,
                "successCount": r.success,
                "errList": err_list(&r.err_list),
            }))
        }
        "updateTask" => {
            let task_id = sim.with_engine(|e| e.update_task(uuid, request_id, v))?;
            Ok(json!({ "taskID": task_id }))
        }
        "mgrTaskStatus" => {
            let (task_id, status) = sim.with_engine(|e| e.mgr_task_status(uuid, v))?;
            Ok(json!({ "taskID": task_id, "taskStatus": status }))
        }
        "stopOrder" => {
            let r = sim.with_engine(|e| e.stop_order(uuid, v))?;
            let errs: Vec<Value> = r
                .err_list
                .iter()
                .map(|(_, id, msg)| json!({"orderID": id, "errMsg": msg}))
                .collect();
            Ok(
                json!({ "taskID": r.task_id, "totalCount": r.total, "successCount": r.success, "errList": errs }),
            )
        }
        "listOrderDetail" => {
            let list = sim.with_engine(|e| e.list_order_detail(uuid, v))?;
            Ok(json!({ "orderDetailList": list }))
        }
        "listTask" => Ok(json!({ "taskData": sim.with_engine(|e| e.list_task(uuid, v))? })),
        "listOrder" => Ok(json!({ "orderList": sim.with_engine(|e| e.list_order(uuid, v))? })),
        "listCall" => Ok(json!({ "callList": sim.with_engine(|e| e.list_call(uuid, v))? })),
        other => Err(Reject::new(1, format!("endpoint {other} is not simulated"))),
    }
}

/// errList items `{phone, orderID, errMsg}` (the vendor documents phone and errMsg; orderID is extra).
fn err_list(errs: &[(String, String, String)]) -> Value {
    Value::Array(
        errs.iter()
            .map(|(phone, order_id, msg)| json!({ "phone": phone, "orderID": order_id, "errMsg": msg }))
            .collect(),
    )
}

fn error_body(sim: &Shared, endpoint: &str, reject: &Reject) -> Value {
    if endpoint == "ping" {
        json!({
            "data": "",
            "timestamp": sim.clock.now().timestamp(),
            "code": reject.code,
            "msg": reject.msg,
            "reqId": sim.response_id(),
        })
    } else {
        json!({ "retCode": reject.code, "retMsg": reject.msg, "responseID": sim.response_id() })
    }
}

/// Serializes the body once and signs exactly those bytes: response createTs = sim now, requestID and uuid echoed.
fn respond(sim: &Shared, req_headers: &HeaderMap, reply: Reply) -> Response {
    let bytes = serde_json::to_vec(&reply.body).unwrap_or_default();
    let create_ts = sim.clock.now().timestamp().to_string();
    let request_id = header_str(req_headers, sign::header::REQUEST_ID);
    let mut headers = HeaderMap::new();
    match &reply.signer {
        Some((account, alg)) => {
            SignedHeaders::signed(
                &account.secret,
                &bytes,
                create_ts,
                request_id,
                account.uuid.clone(),
                *alg,
            )
            .write_to(&mut headers);
        }
        None => {
            for (name, value) in [
                ("requestid", request_id),
                ("uuid", header_str(req_headers, sign::header::UUID)),
                ("createts", create_ts),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(name, v);
                }
            }
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, bytes).into_response()
}

/// Installs ring as the process's rustls provider if none is installed (reqwest is built without one).
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl ForcedFault {
    /// A forced fault for the next request to `endpoint`.
    pub fn on(endpoint: &str, kind: FaultKind) -> Self {
        Self {
            kind,
            endpoint: Some(endpoint.to_owned()),
            applied: kind == FaultKind::Delay,
        }
    }
}
