//! The real client against the real simulator over a socket on 127.0.0.1:0: every endpoint, every fault kind,
//! signature failures, limits, response signatures and the response size cap, an independent (Python) signer, and
//! callbacks checked with the client's verifier.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use callbot_api::sign::{self, Algorithm, SecretKey, SignedHeaders};
use callbot_api::wire::{
    AddBatchCallRequest, CallInfoList, CallItem, CreateAndCallRequest, DelCall, FuncFlag,
    ListOrderDetailRequest, ListTaskRequest, MgrTaskStatusRequest, PingRequest, QueryConditions,
    StartupType, StopOrderRequest, TaskCreateSetting, TaskOperate, TaskStatus, UpdateTaskRequest,
};
use callbot_api::{
    ActionObserver, ActionOutcome, ActionRecord, ApiError, Client, ClientConfig,
    ResponseVerification, RetryPolicy, SignatureCheck, SignatureOutcome,
};
use callbot_sim::{
    Account, CallbackPolicy, FaultKind, ForcedFault, Outcome, SimConfig, SimHandle, Simulator,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use clock::{Clock, ManualClock};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const UUID: &str = "e2e-account";
const SECRET: &str = "e2e-secret-密钥";

/// Monday 2026-03-02 09:00 UTC = 17:00 at UTC+8, inside the test window.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

#[derive(Default)]
struct Recorder(Mutex<Vec<ActionRecord>>, Mutex<Vec<SignatureCheck>>);

impl ActionObserver for Recorder {
    fn record(&self, action: &ActionRecord) {
        self.0.lock().unwrap().push(action.clone());
    }

    fn response_signature(&self, check: &SignatureCheck) {
        self.1.lock().unwrap().push(check.clone());
    }
}

impl Recorder {
    /// (endpoint, outcome, HTTP status) of every response signature check so far.
    fn signatures(&self) -> Vec<(&'static str, SignatureOutcome, u16)> {
        self.1
            .lock()
            .unwrap()
            .iter()
            .map(|c| (c.endpoint.name(), c.outcome, c.http_status))
            .collect()
    }
}

struct World {
    base: String,
    sim: SimHandle,
    clock: ManualClock,
    client: Client,
    actions: Arc<Recorder>,
    shutdown: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn world(tweak: impl FnOnce(&mut SimConfig)) -> World {
    callbot_api::ensure_crypto_provider();
    let clock = ManualClock::new(t0());
    let mut cfg = SimConfig::new(vec![Account::new(UUID, SECRET)]);
    cfg.faults.delay = StdDuration::from_millis(1500);
    cfg.callbacks = CallbackPolicy {
        initial_backoff: StdDuration::from_millis(5),
        max_backoff: StdDuration::from_millis(20),
        ..CallbackPolicy::default()
    };
    tweak(&mut cfg);
    let sim = Simulator::with_manual_clock(cfg, clock.clone());
    let handle = sim.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(sim.run(listener, shutdown.clone()));
    let client = client_for(&base, UUID, SECRET, &clock);
    let actions = Arc::new(Recorder::default());
    let client = client.with_observer(actions.clone());
    World {
        base,
        sim: handle,
        clock,
        client,
        actions,
        shutdown,
    }
}

fn client_for(base: &str, uuid: &str, secret: &str, clock: &ManualClock) -> Client {
    client_with(base, uuid, secret, clock, |_| {})
}

/// [`client_for`], with `tweak` applied to its configuration last.
fn client_with(
    base: &str,
    uuid: &str,
    secret: &str,
    clock: &ManualClock,
    tweak: impl FnOnce(&mut ClientConfig),
) -> Client {
    let mut cfg = ClientConfig::new(base, uuid, SecretKey::from(secret));
    cfg.requests_per_second = 0;
    cfg.request_timeout = StdDuration::from_millis(500);
    // The simulator signs responses with the account's real secret: only a client holding it can verify them.
    cfg.verify_responses = if secret == SECRET && uuid == UUID {
        ResponseVerification::Enforce
    } else {
        ResponseVerification::Off
    };
    cfg.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: StdDuration::from_millis(5),
        max_delay: StdDuration::from_millis(20),
    };
    tweak(&mut cfg);
    Client::new(cfg, clock.shared()).unwrap()
}

fn setting(cb: &str) -> TaskCreateSetting {
    TaskCreateSetting {
        strategy_name: "默认策略".into(),
        startup_type: StartupType::Immediate,
        startup_at: 0,
        zone_second: 28800,
        max_ring_time: 30,
        route_id: String::new(),
        dial_at_week_day: "1,2,3,4,5".into(),
        dial_at_up_hour: "9,10,11,14,15,16,17".into(),
        dial_at_down_hour: "9,10,11,13,14,15,16,17".into(),
        max_call: 2,
        task_name: "春季活动".into(),
        task_callback_url: format!("{cb}/task"),
        manual_call_setting: None,
    }
}

fn items(orders: &[(&str, &str)]) -> Vec<CallItem> {
    orders
        .iter()
        .map(|(id, phone)| CallItem {
            order_id: (*id).into(),
            user_phone: (*phone).into(),
            user_name: "王小明".into(),
            ..CallItem::default()
        })
        .collect()
}

fn create(ut: &str, cb: &str, orders: &[(&str, &str)], keep: bool) -> CreateAndCallRequest {
    CreateAndCallRequest {
        product_id: callbot_api::PRODUCT_ID.into(),
        user_task_id: ut.into(),
        scene_id: "scene-1".into(),
        task_create_setting: setting(cb),
        func_flag: FuncFlag {
            task_keep: keep,
            ..FuncFlag::default()
        },
        call_info_list: CallInfoList {
            order_callback_url: format!("{cb}/order"),
            call_callback_url: format!("{cb}/call"),
            call_list: items(orders),
        },
    }
}

fn add(ut: &str, orders: &[(&str, &str)]) -> AddBatchCallRequest {
    AddBatchCallRequest {
        product_id: callbot_api::PRODUCT_ID.into(),
        user_task_id: ut.into(),
        call_info_list: CallInfoList {
            order_callback_url: String::new(),
            call_callback_url: String::new(),
            call_list: items(orders),
        },
    }
}

#[tokio::test]
async fn client_round_trips_every_endpoint_against_the_simulator() {
    let w = world(|c| {
        c.outcomes
            .forced
            .insert("8613800000001".into(), Outcome::Answered);
    })
    .await;
    let ping = w
        .client
        .ping(&PingRequest {
            data: "你好".into(),
        })
        .await
        .unwrap();
    assert_eq!((ping.code, ping.data.as_str()), (0, "你好"));

    let created = w
        .client
        .create_and_call(&create(
            "t1",
            "",
            &[("o1", "8613800000001"), ("o2", "8613800000002")],
            true,
        ))
        .await
        .unwrap();
    assert_eq!(
        (created.total_count, created.success_count),
        (Some(2), Some(2))
    );
    assert!(!created.task_id.is_empty());

    let added = w
        .client
        .add_batch_call(&add("t1", &[("o3", "8613800000003")]))
        .await
        .unwrap();
    assert_eq!(added.success_count, Some(1));

    w.clock.advance(Duration::minutes(10));
    let details = w
        .client
        .list_order_detail(&ListOrderDetailRequest::new(
            "t1",
            vec!["o1".into(), "o3".into(), "ghost".into()],
        ))
        .await
        .unwrap();
    assert_eq!(details.order_detail_list.len(), 2);
    let o1 = &details.order_detail_list[0];
    assert_eq!(o1.finish, Some(true));
    assert_eq!(
        o1.call_info_detail_list[0].call_status.map(|s| s.code()),
        Some(6)
    );
    assert!(
        !o1.call_info_detail_list[0].record_detail.is_empty(),
        "answered calls carry a transcript"
    );

    let paused = w
        .client
        .mgr_task_status(&MgrTaskStatusRequest::new("t1", TaskOperate::Pause))
        .await
        .unwrap();
    assert_eq!(paused.task_status, Some(TaskStatus::Paused));
    let updated = w
        .client
        .update_task(&UpdateTaskRequest {
            product_id: callbot_api::PRODUCT_ID.into(),
            user_task_id: "t1".into(),
            scene_id: "scene-1".into(),
            task_create_setting: TaskCreateSetting {
                max_call: 5,
                ..setting("")
            },
            func_flag: FuncFlag {
                task_keep: true,
                ..FuncFlag::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(updated.task_id, created.task_id);
    let task = w.sim.task("t1").unwrap();
    assert_eq!(task.settings.len(), 2);
    assert_eq!(
        task.settings[1].effective_at,
        w.clock.now() + Duration::minutes(5)
    );

    w.client
        .add_batch_call(&add("t1", &[("o4", "8613800000004")]))
        .await
        .unwrap();
    let stopped = w
        .client
        .stop_order(&StopOrderRequest {
            product_id: callbot_api::PRODUCT_ID.into(),
            user_task_id: "t1".into(),
            order_ids: vec!["o4".into(), "ghost".into()],
            del_call: Some(DelCall::Keep),
        })
        .await
        .unwrap();
    assert_eq!(
        (stopped.total_count, stopped.success_count),
        (Some(2), Some(1))
    );
    assert_eq!(stopped.err_list[0].order_id.as_deref(), Some("ghost"));

    let listed = w
        .client
        .list_task(&ListTaskRequest {
            product_id: callbot_api::PRODUCT_ID.into(),
            page: 1,
            size: 100,
            query_conditions: QueryConditions::default(),
        })
        .await
        .unwrap();
    assert_eq!(listed.task_data.len(), 1);
    assert_eq!(listed.task_data[0].task_status, Some(TaskStatus::Paused));
    assert_eq!(
        listed.task_data[0]
            .task_stat
            .as_ref()
            .unwrap()
            .total_order_count,
        4
    );

    let done = w
        .client
        .mgr_task_status(&MgrTaskStatusRequest::new("t1", TaskOperate::Complete))
        .await
        .unwrap();
    assert_eq!(done.task_status, Some(TaskStatus::Completed));
    let err = w
        .client
        .add_batch_call(&add("t1", &[("o5", "8613800000005")]))
        .await
        .unwrap_err();
    assert_eq!(
        err.rejected_code(),
        Some(1),
        "a completed task refuses operations: {err}"
    );
}

#[tokio::test]
async fn retryable_faults_are_retried_with_a_fresh_request_id_and_applied_once() {
    let w = world(|_| {}).await;
    for (i, kind) in [
        FaultKind::RetCode7,
        FaultKind::RetCode5001,
        FaultKind::Http502,
    ]
    .into_iter()
    .enumerate()
    {
        let ut = format!("t{i}");
        let order = format!("o{i}");
        w.sim.push_fault(ForcedFault::on("createAndCall", kind));
        let r = w
            .client
            .create_and_call(&create(&ut, "", &[(&order, "8613800000001")], true))
            .await;
        assert!(r.is_ok(), "{kind:?}: {r:?}");
    }
    let faults = w.sim.faults();
    assert_eq!(faults.len(), 3);
    assert!(faults.iter().all(|f| !f.applied));
    let actions = w.actions.0.lock().unwrap().clone();
    let outcomes: Vec<(ActionOutcome, u32)> =
        actions.iter().map(|a| (a.outcome, a.attempt)).collect();
    assert_eq!(
        outcomes,
        vec![
            (ActionOutcome::Retryable, 1),
            (ActionOutcome::Ok, 2),
            (ActionOutcome::Retryable, 1),
            (ActionOutcome::Ok, 2),
            (ActionOutcome::Retryable, 1),
            (ActionOutcome::Ok, 2),
        ]
    );
    // Every attempt carried its own requestID, and the faulted ones are the ones the simulator recorded.
    let ids: std::collections::BTreeSet<_> = actions.iter().map(|a| a.request_id.clone()).collect();
    assert_eq!(ids.len(), 6);
    for f in &faults {
        assert!(
            actions
                .iter()
                .any(|a| a.request_id == f.request_id && a.outcome == ActionOutcome::Retryable)
        );
    }
    // Each order was accepted exactly once.
    let accepted = w
        .sim
        .submissions()
        .into_iter()
        .filter(|s| s.accepted)
        .count();
    assert_eq!(accepted, 3);
}

#[tokio::test]
async fn delay_past_timeout_is_ambiguous_and_listorderdetail_shows_it_was_applied() {
    let w = world(|_| {}).await;
    w.client
        .create_and_call(&create("t1", "", &[("o1", "8613800000001")], true))
        .await
        .unwrap();
    w.sim
        .push_fault(ForcedFault::on("addBatchCall", FaultKind::Delay));
    let err = w
        .client
        .add_batch_call(&add("t1", &[("o2", "8613800000002")]))
        .await
        .unwrap_err();
    assert!(err.is_ambiguous(), "{err}");
    // The caller resolves the ambiguity by asking.
    let d = w
        .client
        .list_order_detail(&ListOrderDetailRequest::new("t1", vec!["o2".into()]))
        .await
        .unwrap();
    assert_eq!(
        d.order_detail_list.len(),
        1,
        "the delayed request was applied"
    );
    assert!(w.sim.faults()[0].applied);
}

#[tokio::test]
async fn dropped_connection_is_ambiguous_whether_or_not_it_was_applied() {
    let w = world(|_| {}).await;
    w.client
        .create_and_call(&create("t1", "", &[("o1", "8613800000001")], true))
        .await
        .unwrap();
    for (order, phone, applied) in [
        ("o2", "8613800000002", true),
        ("o3", "8613800000003", false),
    ] {
        w.sim.push_fault(ForcedFault {
            kind: FaultKind::DropAfterRead,
            endpoint: Some("addBatchCall".into()),
            applied,
        });
        let err = w
            .client
            .add_batch_call(&add("t1", &[(order, phone)]))
            .await
            .unwrap_err();
        assert!(err.is_ambiguous(), "{err}");
        let d = w
            .client
            .list_order_detail(&ListOrderDetailRequest::new("t1", vec![order.into()]))
            .await
            .unwrap();
        assert_eq!(d.order_detail_list.len(), usize::from(applied), "{order}");
        if !applied {
            // Not there: safe to submit again, and it is accepted once.
            let r = w
                .client
                .add_batch_call(&add("t1", &[(order, phone)]))
                .await
                .unwrap();
            assert_eq!(r.success_count, Some(1));
        }
    }
    // No orderID was ever accepted twice.
    let subs = w.sim.submissions();
    let mut accepted: Vec<_> = subs
        .iter()
        .filter(|s| s.accepted)
        .map(|s| s.order_id.clone())
        .collect();
    let n = accepted.len();
    accepted.sort();
    accepted.dedup();
    assert_eq!((n, accepted.len()), (3, 3));
    let faults = w.sim.faults();
    assert_eq!(
        faults.iter().map(|f| f.applied).collect::<Vec<_>>(),
        vec![true, false]
    );
}

#[tokio::test]
async fn wrong_secret_is_rejected_with_6_and_unknown_uuid_with_6002() {
    let w = world(|_| {}).await;
    let wrong = client_for(&w.base, UUID, "not-the-secret", &w.clock);
    let err = wrong
        .ping(&PingRequest { data: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(err.rejected_code(), Some(6), "{err}");
    let req = create("t1", "", &[("o1", "8613800000001")], true);
    let err = wrong.create_and_call(&req).await.unwrap_err();
    assert_eq!(err.rejected_code(), Some(6), "{err}");
    let stranger = client_for(&w.base, "nobody", SECRET, &w.clock);
    let err = stranger.create_and_call(&req).await.unwrap_err();
    assert_eq!(err.rejected_code(), Some(6002), "{err}");
    assert!(w.sim.tasks().is_empty());
}

#[tokio::test]
async fn order_list_of_501_is_invalid_in_the_client_and_4001_from_the_simulator() {
    let w = world(|_| {}).await;
    w.client
        .create_and_call(&create("t1", "", &[("o1", "8613800000001")], true))
        .await
        .unwrap();
    let ids: Vec<String> = (0..501).map(|i| format!("o{i}")).collect();
    let err = w
        .client
        .list_order_detail(&ListOrderDetailRequest::new("t1", ids.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Invalid { .. }), "{err}");
    // The same request sent raw, signed by hand.
    let body =
        serde_json::to_vec(&json!({"productID": "callbot", "userTaskID": "t1", "orderList": ids}))
            .unwrap();
    let (_, v) = raw_post(&w, "listOrderDetail", &body).await;
    assert_eq!(v["retCode"], 4001, "{v}");
}

#[tokio::test]
async fn report_mode_counts_the_simulators_signatures_on_every_answer_and_a_502_as_unsigned() {
    let w = world(|_| {}).await;
    let rec = Arc::new(Recorder::default());
    let client = client_with(&w.base, UUID, SECRET, &w.clock, |c| {
        c.verify_responses = ResponseVerification::Report;
    })
    .with_observer(rec.clone());
    client
        .ping(&PingRequest { data: "x".into() })
        .await
        .unwrap();
    let req = create("t1", "", &[("o1", "8613800000001")], true);
    client.create_and_call(&req).await.unwrap();
    // A refusal (retCode 4, duplicate userTaskID) is signed too; a 502 comes from a "gateway", unsigned.
    assert_eq!(
        client
            .create_and_call(&req)
            .await
            .unwrap_err()
            .rejected_code(),
        Some(4)
    );
    w.sim
        .push_fault(ForcedFault::on("addBatchCall", FaultKind::Http502));
    client
        .add_batch_call(&add("t1", &[("o2", "8613800000002")]))
        .await
        .unwrap();
    assert_eq!(
        rec.signatures(),
        [
            ("ping", SignatureOutcome::Ok, 200),
            ("createAndCall", SignatureOutcome::Ok, 200),
            ("createAndCall", SignatureOutcome::Ok, 200),
            ("addBatchCall", SignatureOutcome::Missing, 502),
            ("addBatchCall", SignatureOutcome::Ok, 200),
        ]
    );
}

#[tokio::test]
async fn an_answer_signed_with_another_secret_is_counted_in_report_mode_and_refused_in_enforce_mode()
 {
    let w = world(|_| {}).await;
    // The simulator signs its answer with the account's secret; to a client holding another one, the answer's
    // signature does not verify (and the simulator refuses the request: retCode 6).
    let req = create("t1", "", &[("o1", "8613800000001")], true);
    let rec = Arc::new(Recorder::default());
    let report = client_with(&w.base, UUID, "not-the-secret", &w.clock, |c| {
        c.verify_responses = ResponseVerification::Report;
    })
    .with_observer(rec.clone());
    let err = report.create_and_call(&req).await.unwrap_err();
    assert_eq!(err.rejected_code(), Some(6), "the answer is used: {err}");
    assert_eq!(
        rec.signatures(),
        [("createAndCall", SignatureOutcome::Mismatch, 200)]
    );

    let rec = Arc::new(Recorder::default());
    let enforce = client_with(&w.base, UUID, "not-the-secret", &w.clock, |c| {
        c.verify_responses = ResponseVerification::Enforce;
    })
    .with_observer(rec.clone());
    let err = enforce.create_and_call(&req).await.unwrap_err();
    assert!(
        err.is_ambiguous(),
        "an unverified answer says nothing: {err}"
    );
    let err = enforce
        .list_task(&ListTaskRequest {
            product_id: callbot_api::PRODUCT_ID.into(),
            page: 1,
            size: 10,
            query_conditions: QueryConditions::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.rejected_code(), Some(200), "a read is refused: {err}");
    assert_eq!(
        rec.signatures(),
        [
            ("createAndCall", SignatureOutcome::Mismatch, 200),
            ("listTask", SignatureOutcome::Mismatch, 200),
        ]
    );
    assert!(w.sim.tasks().is_empty());
}

#[tokio::test]
async fn answers_over_the_size_cap_are_ambiguous_for_writes_and_refused_for_reads() {
    let w = world(|c| {
        for phone in ["8613800000001", "8613800000002"] {
            c.outcomes.forced.insert(phone.into(), Outcome::Answered);
        }
    })
    .await;
    // createAndCall's answer is over 64 bytes: the task is created, but the client cannot know it.
    let tiny = client_with(&w.base, UUID, SECRET, &w.clock, |c| {
        c.max_response_bytes = 64
    });
    let err = tiny
        .create_and_call(&create(
            "t1",
            "",
            &[("o1", "8613800000001"), ("o2", "8613800000002")],
            true,
        ))
        .await
        .unwrap_err();
    assert!(err.is_ambiguous(), "{err}");
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
    assert!(w.sim.task("t1").is_some(), "it was applied");

    // Two answered calls with their transcripts are well over 1 KiB: a read is refused, not retried.
    w.clock.advance(Duration::minutes(10));
    let rec = Arc::new(Recorder::default());
    let small = client_with(&w.base, UUID, SECRET, &w.clock, |c| {
        c.max_response_bytes = 1024;
    })
    .with_observer(rec.clone());
    let ids = vec!["o1".to_string(), "o2".to_string()];
    let err = small
        .list_order_detail(&ListOrderDetailRequest::new("t1", ids.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.rejected_code(), Some(200), "{err}");
    assert_eq!(rec.0.lock().unwrap().len(), 1, "not retried");
    // The default cap has room for it.
    let d = w
        .client
        .list_order_detail(&ListOrderDetailRequest::new("t1", ids))
        .await
        .unwrap();
    assert_eq!(d.order_detail_list.len(), 2);
    assert!(
        d.order_detail_list
            .iter()
            .all(|o| !o.call_info_detail_list[0].record_detail.is_empty())
    );
}

async fn raw_post(w: &World, endpoint: &str, body: &[u8]) -> (HeaderMap, Value) {
    let h = SignedHeaders::signed(
        &SecretKey::from(SECRET),
        body,
        w.clock.now().timestamp().to_string(),
        "raw-1",
        UUID,
        Algorithm::Md5,
    );
    let mut map = HeaderMap::new();
    h.write_to(&mut map);
    let r = reqwest::Client::new()
        .post(format!("{}/callcentre/api/v3/{endpoint}", w.base))
        .headers(map)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let headers = r.headers().clone();
    (headers, r.json().await.unwrap())
}

#[tokio::test]
async fn duplicate_order_ids_are_reported_in_err_list_and_the_rest_imports() {
    let w = world(|_| {}).await;
    let r = w
        .client
        .create_and_call(&create(
            "t1",
            "",
            &[
                ("o1", "8613800000001"),
                ("o1", "8613800000002"),
                ("o2", "+86 138"),
            ],
            true,
        ))
        .await
        .unwrap();
    assert_eq!((r.total_count, r.success_count), (Some(3), Some(1)));
    assert_eq!(r.err_list.len(), 2);
    assert_eq!(r.err_list[0].phone.as_deref(), Some("8613800000002"));
    assert!(
        r.err_list[0].err_msg.contains("o1"),
        "{}",
        r.err_list[0].err_msg
    );
    let r = w
        .client
        .add_batch_call(&add(
            "t1",
            &[("o1", "8613800000009"), ("o3", "8613800000003")],
        ))
        .await
        .unwrap();
    assert_eq!((r.success_count, r.err_list.len()), (Some(1), 1));
    let r = w
        .client
        .create_and_call(&create("t2", "", &[("o3", "8613800000004")], true))
        .await
        .unwrap();
    assert_eq!(r.success_count, Some(0), "orderID is unique across tasks");
    let err = w
        .client
        .create_and_call(&create("t1", "", &[("o9", "8613800000009")], true))
        .await
        .unwrap_err();
    assert_eq!(err.rejected_code(), Some(4), "duplicate userTaskID: {err}");
}

#[tokio::test]
async fn a_request_signed_by_an_independent_python_signer_is_accepted() {
    let w = world(|_| {}).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/sign_request.py");
    let url = format!("{}/callcentre/api/v3/createAndCall", w.base);
    let ts = w.clock.now().timestamp().to_string();
    let body =
        serde_json::to_string(&create("py1", "", &[("py-o1", "8613800000001")], true)).unwrap();
    for (i, (alg, raw)) in [("MD5", false), ("SHA256", true)].into_iter().enumerate() {
        // Different task per run: the body is re-serialised by Python, with ASCII escapes or raw UTF-8.
        let body = body
            .replace("py1", &format!("py{i}"))
            .replace("py-o1", &format!("py-o{i}"));
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg(script)
            .args([
                "--url",
                &url,
                "--uuid",
                UUID,
                "--secret",
                SECRET,
                "--algorithm",
                alg,
            ])
            .args(["--create-ts", &ts, "--request-id", &format!("py-req-{i}")]);
        if raw {
            cmd.arg("--raw-utf8");
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed for this test");
        use tokio::io::AsyncWriteExt;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .await
            .unwrap();
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["body"]["retCode"], 0, "{alg}: {v}");
        assert_eq!(v["body"]["successCount"], 1);
        assert_eq!(
            v["response_sign_ok"], true,
            "the sim's response signature checks out in Python too"
        );
        let sent = v["sent_body"].as_str().unwrap();
        assert!(
            sent.contains(", \"") && sent.contains("\": "),
            "vendor-style separators: {sent}"
        );
        assert_eq!(sent.contains("王小明"), raw);
    }
    assert_eq!(w.sim.tasks().len(), 2);
}

#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>);

async fn callback_receiver() -> (String, Inbox, CancellationToken) {
    let inbox = Inbox::default();
    let app = axum::Router::new()
        .route(
            "/{kind}",
            axum::routing::post(
                |State(inbox): State<Inbox>,
                 axum::extract::Path(kind): axum::extract::Path<String>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    inbox.0.lock().unwrap().push((kind, headers, body));
                    StatusCode::OK
                },
            ),
        )
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
    });
    (url, inbox, stop)
}

#[tokio::test]
async fn simulator_callbacks_pass_the_clients_verifier_and_parse() {
    let w = world(|c| {
        c.outcomes
            .forced
            .insert("8613800000001".into(), Outcome::Answered);
        c.outcomes
            .forced
            .insert("8613800000002".into(), Outcome::NoAnswer);
    })
    .await;
    let (cb, inbox, stop) = callback_receiver().await;
    w.client
        .create_and_call(&create(
            "t1",
            &cb,
            &[("o1", "8613800000001"), ("o2", "8613800000002")],
            false,
        ))
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(5));
    w.sim.advance_to_now();
    w.sim.flush_callbacks().await;
    let got = inbox.0.lock().unwrap().clone();
    stop.cancel();
    let mut seen = std::collections::BTreeMap::new();
    for (kind, headers, body) in &got {
        let signed = SignedHeaders::from_header_map(headers).unwrap();
        sign::verify(
            &SecretKey::from(SECRET),
            body,
            &signed,
            w.clock.now().timestamp(),
            sign::DEFAULT_MAX_SKEW_SECS,
        )
        .unwrap_or_else(|e| panic!("{kind} callback failed verification: {e}"));
        let parsed = callbot_api::Callback::parse(body).unwrap();
        assert_eq!(parsed.user_task_id(), "t1");
        *seen.entry(kind.clone()).or_insert(0) += 1;
    }
    // Two calls, two order rounds, and the task went running -> completed (no taskKeep).
    assert_eq!(seen.get("call"), Some(&2));
    assert_eq!(seen.get("order"), Some(&2));
    assert_eq!(seen.get("task"), Some(&2));
    assert!(w.sim.callbacks().iter().all(|a| a.ok));
}
