//! The simulator over a real socket, spoken to with raw signed HTTP requests.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use callbot_api::sign::{Algorithm, SecretKey, SignedHeaders, verify};
use callbot_sim::{
    Account, CallbackPolicy, FaultKind, ForcedFault, Outcome, SimConfig, SimHandle, Simulator,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use clock::{Clock, ManualClock};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const UUID: &str = "acct-uuid";
const SECRET: &str = "s3cr3t";

struct Sim {
    base: String,
    handle: SimHandle,
    clock: ManualClock,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn t0() -> DateTime<Utc> {
    // Monday 2026-03-02 09:00 UTC.
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

async fn start(tweak: impl FnOnce(&mut SimConfig)) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cfg = SimConfig::new(vec![Account::new(UUID, SECRET)]);
    cfg.callbacks = CallbackPolicy {
        initial_backoff: StdDuration::from_millis(5),
        max_backoff: StdDuration::from_millis(20),
        max_attempts: 3,
        ..CallbackPolicy::default()
    };
    cfg.faults.delay = StdDuration::from_millis(1500);
    tweak(&mut cfg);
    let clock = ManualClock::new(t0());
    let sim = Simulator::with_manual_clock(cfg, clock.clone());
    let handle = sim.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(sim.run(listener, shutdown.clone()));
    Sim {
        base,
        handle,
        clock,
        http: reqwest::Client::builder()
            .timeout(StdDuration::from_secs(1))
            .build()
            .unwrap(),
        shutdown,
    }
}

impl Sim {
    async fn raw(
        &self,
        endpoint: &str,
        body: &[u8],
        tweak: impl FnOnce(&mut SignedHeaders),
    ) -> reqwest::Result<(StatusCode, HeaderMap, Bytes)> {
        let mut h = SignedHeaders::signed(
            &SecretKey::from(SECRET),
            body,
            self.clock.now().timestamp().to_string(),
            uuid::Uuid::new_v4().to_string(),
            UUID,
            Algorithm::Md5,
        );
        tweak(&mut h);
        let mut map = HeaderMap::new();
        h.write_to(&mut map);
        if h.sign.is_empty() {
            map.remove("sign");
        }
        let r = self
            .http
            .post(format!("{}/callcentre/api/v3/{endpoint}", self.base))
            .headers(map)
            .body(body.to_vec())
            .send()
            .await?;
        let status = r.status();
        let headers = r.headers().clone();
        Ok((status, headers, r.bytes().await?))
    }

    async fn call(&self, endpoint: &str, body: Value) -> Value {
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, _, body) = self.raw(endpoint, &bytes, |_| {}).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }
}

fn task_body(ut: &str, cb: &str, orders: &[(&str, &str)]) -> Value {
    json!({
        "productID": "callbot",
        "userTaskID": ut,
        "sceneID": "scene-1",
        "taskCreateSetting": {
            "strategyName": "默认策略",
            "startupType": 3,
            "startupAt": 0,
            "zoneSecond": 28800,
            "dialAtWeekDay": "1,2,3,4,5",
            "dialAtUpHour": "9,10,11,14,15,16,17",
            "dialAtDownHour": "9,10,11,13,14,15,16,17",
            "maxCall": 2,
            "taskName": "测试任务",
            "taskCallbackUrl": format!("{cb}/task"),
            "maxRingTime": 30,
        },
        "funcFlag": {"taskKeep": false, "roundRedial": false},
        "callInfoList": {
            "orderCallbackUrl": format!("{cb}/order"),
            "callCallbackUrl": format!("{cb}/call"),
            "callList": orders.iter().map(|(id, phone)| json!({"orderID": id, "userPhone": phone, "userName": "张三"})).collect::<Vec<_>>(),
        }
    })
}

#[tokio::test]
async fn signature_failures_get_vendor_codes_and_responses_are_signed() {
    let sim = start(|_| {}).await;
    let body = br#"{"data":"hello"}"#;
    let (_, headers, bytes) = sim.raw("ping", body, |_| {}).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (v["code"].as_i64(), v["data"].as_str()),
        (Some(0), Some("hello"))
    );
    // The response is signed over its raw body with the echoed requestID.
    let signed = SignedHeaders::from_header_map(&headers).unwrap();
    verify(
        &SecretKey::from(SECRET),
        &bytes,
        &signed,
        t0().timestamp(),
        300,
    )
    .unwrap();

    let code = |b: &Bytes| {
        serde_json::from_slice::<Value>(b).unwrap()["code"]
            .as_i64()
            .unwrap()
    };
    let (_, _, b) = sim
        .raw("ping", body, |h| h.sign = "00".repeat(16))
        .await
        .unwrap();
    assert_eq!(code(&b), 6);
    let (_, _, b) = sim.raw("ping", body, |h| h.sign.clear()).await.unwrap();
    assert_eq!(code(&b), 6001);
    let (_, _, b) = sim
        .raw("ping", body, |h| h.uuid = "nobody".into())
        .await
        .unwrap();
    assert_eq!(code(&b), 6002);
    // A request signed 301 s ago: authentic but stale.
    let stale = (t0() - Duration::seconds(301)).timestamp().to_string();
    let (_, _, b) = sim
        .raw("ping", body, |h| {
            *h = SignedHeaders::signed(
                &SecretKey::from(SECRET),
                body,
                stale.clone(),
                "r1",
                UUID,
                Algorithm::Md5,
            );
        })
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["code"], 6);
    assert!(v["msg"].as_str().unwrap().contains("createTs"), "{v}");
    // SHA-256 is accepted and echoed.
    let (_, headers, b) = sim
        .raw("ping", body, |h| {
            *h = SignedHeaders::signed(
                &SecretKey::from(SECRET),
                body,
                t0().timestamp().to_string(),
                "r2",
                UUID,
                Algorithm::Sha256,
            );
        })
        .await
        .unwrap();
    assert_eq!(code(&b), 0);
    assert_eq!(headers.get("algorithm").unwrap(), "SHA256");
}

#[tokio::test]
async fn documented_limits_are_enforced_over_http() {
    let sim = start(|c| c.call_list_limit = 3).await;
    let orders: Vec<(String, String)> = (0..4)
        .map(|i| (format!("o{i}"), format!("86138000000{i:02}")))
        .collect();
    let refs: Vec<(&str, &str)> = orders
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let v = sim
        .call(
            "createAndCall",
            task_body("t1", "http://127.0.0.1:9", &refs),
        )
        .await;
    assert_eq!(v["retCode"], 4001, "{v}");
    let v = sim
        .call(
            "createAndCall",
            task_body("t1", "http://127.0.0.1:9", &refs[..2]),
        )
        .await;
    assert_eq!(
        (v["retCode"].as_i64(), v["successCount"].as_i64()),
        (Some(0), Some(2)),
        "{v}"
    );
    let mut bad = task_body("t2", "", &[]);
    bad["productID"] = json!("other");
    assert_eq!(sim.call("createAndCall", bad).await["retCode"], 4);
    let list: Vec<String> = (0..501).map(|i| format!("o{i}")).collect();
    let v = sim
        .call(
            "listOrderDetail",
            json!({"productID": "callbot", "userTaskID": "t1", "orderList": list}),
        )
        .await;
    assert_eq!(v["retCode"], 4001);
    let v = sim
        .call(
            "mgrTaskStatus",
            json!({"productID": "callbot", "userTaskID": "nope", "taskOperate": 1}),
        )
        .await;
    assert_eq!(v["retCode"], 4);
    assert!(v["retMsg"].as_str().unwrap().contains("nope"));
    let (_, _, b) = sim
        .raw("createAndCall", b"{not json", |_| {})
        .await
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["retCode"], 3);
}

#[tokio::test]
async fn ret_code_and_502_faults_do_not_apply_and_are_recorded() {
    let sim = start(|_| {}).await;
    for kind in [
        FaultKind::RetCode7,
        FaultKind::RetCode5001,
        FaultKind::Http502,
    ] {
        sim.handle
            .push_fault(ForcedFault::on("createAndCall", kind));
        let body = serde_json::to_vec(&task_body("t1", "", &[("o1", "8613800000001")])).unwrap();
        let (status, _, b) = sim.raw("createAndCall", &body, |_| {}).await.unwrap();
        match kind {
            FaultKind::Http502 => assert_eq!(status, StatusCode::BAD_GATEWAY),
            FaultKind::RetCode7 => {
                assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["retCode"], 7)
            }
            _ => assert_eq!(
                serde_json::from_slice::<Value>(&b).unwrap()["retCode"],
                5001
            ),
        }
        assert!(
            sim.handle.tasks().is_empty(),
            "{kind:?} must not apply the request"
        );
    }
    let faults = sim.handle.faults();
    assert_eq!(faults.len(), 3);
    assert!(
        faults
            .iter()
            .all(|f| !f.applied && f.endpoint == "createAndCall")
    );
}

#[tokio::test]
async fn drop_after_read_cuts_the_connection_and_applies_when_told() {
    let sim = start(|_| {}).await;
    sim.handle.push_fault(ForcedFault {
        kind: FaultKind::DropAfterRead,
        endpoint: Some("createAndCall".into()),
        applied: true,
    });
    let body = serde_json::to_vec(&task_body("t1", "", &[("o1", "8613800000001")])).unwrap();
    let err = sim.raw("createAndCall", &body, |_| {}).await.unwrap_err();
    assert!(!err.is_timeout(), "a drop is not a timeout: {err:?}");
    assert_eq!(sim.handle.tasks().len(), 1, "applied before the drop");
    sim.handle.push_fault(ForcedFault {
        kind: FaultKind::DropAfterRead,
        endpoint: None,
        applied: false,
    });
    let body = serde_json::to_vec(&task_body("t2", "", &[("o2", "8613800000002")])).unwrap();
    assert!(sim.raw("createAndCall", &body, |_| {}).await.is_err());
    assert_eq!(sim.handle.tasks().len(), 1, "not applied");
    // The server still serves afterwards.
    assert_eq!(sim.call("ping", json!({"data": "x"})).await["code"], 0);
    let applied: Vec<bool> = sim.handle.faults().iter().map(|f| f.applied).collect();
    assert_eq!(applied, vec![true, false]);
}

#[tokio::test]
async fn delay_applies_then_answers_after_the_client_gave_up() {
    let sim = start(|_| {}).await;
    sim.handle
        .push_fault(ForcedFault::on("createAndCall", FaultKind::Delay));
    let body = serde_json::to_vec(&task_body("t1", "", &[("o1", "8613800000001")])).unwrap();
    let err = sim.raw("createAndCall", &body, |_| {}).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(sim.handle.tasks().len(), 1);
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>);

async fn receiver(fail_first: usize) -> (String, Received) {
    let got = Received::default();
    let failures = Arc::new(Mutex::new(fail_first));
    let app = axum::Router::new()
        .route(
            "/{kind}",
            post(
                |State((got, failures)): State<(Received, Arc<Mutex<usize>>)>,
                 axum::extract::Path(kind): axum::extract::Path<String>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let mut f = failures.lock().unwrap();
                    if *f > 0 {
                        *f -= 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    got.0.lock().unwrap().push((kind, headers, body));
                    StatusCode::OK
                },
            ),
        )
        .with_state((got.clone(), failures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test]
async fn callbacks_are_signed_typed_and_retried_until_delivered() {
    let sim = start(|c| {
        c.outcomes
            .forced
            .insert("8613800000001".into(), Outcome::Answered);
        c.outcomes
            .forced
            .insert("8613800000002".into(), Outcome::Busy);
    })
    .await;
    let (cb, got) = receiver(1).await;
    let v = sim
        .call(
            "createAndCall",
            task_body(
                "t1",
                &cb,
                &[("o1", "8613800000001"), ("o2", "8613800000002")],
            ),
        )
        .await;
    assert_eq!(v["retCode"], 0, "{v}");
    // 09:00 UTC Monday is 17:00 at UTC+8: inside the window. Jump past both calls.
    sim.clock.advance(Duration::minutes(10));
    sim.handle.advance_to_now();
    sim.handle.flush_callbacks().await;
    let got = got.0.lock().unwrap().clone();
    let kinds: Vec<&str> = got.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "call").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "order").count(), 2);
    // running, then completed (no taskKeep).
    assert_eq!(
        kinds.iter().filter(|k| **k == "task").count(),
        2,
        "{kinds:?}"
    );
    for (kind, headers, body) in &got {
        let signed = SignedHeaders::from_header_map(headers).unwrap();
        assert!(
            signed.algorithm.is_none(),
            "no algorithm header on callbacks by default"
        );
        verify(
            &SecretKey::from(SECRET),
            body,
            &signed,
            sim.clock.now().timestamp(),
            300,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(body).unwrap();
        match kind.as_str() {
            "order" => assert_eq!(v["callbackType"], "2"),
            "call" => assert_eq!(v["callbackType"], 3),
            _ => assert_eq!(v["callbackType"], 1),
        }
        let parsed = callbot_api::wire::Callback::parse(body).unwrap();
        assert_eq!(parsed.user_task_id(), "t1");
    }
    let attempts = sim.handle.callbacks();
    assert_eq!(
        attempts.iter().filter(|a| !a.ok).count(),
        1,
        "the first attempt failed"
    );
    let retried = attempts.iter().find(|a| !a.ok).unwrap().callback_seq;
    assert!(
        attempts
            .iter()
            .any(|a| a.callback_seq == retried && a.ok && a.attempt == 2)
    );
}

#[tokio::test]
async fn admin_clock_endpoint_moves_the_manual_clock_and_state_shows_everything() {
    let sim = start(|_| {}).await;
    sim.call(
        "createAndCall",
        task_body("t1", "", &[("o1", "8613800000001")]),
    )
    .await;
    let r = sim
        .http
        .post(format!("{}/_sim/clock", sim.base))
        .json(&json!({"advance_secs": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sim.clock.now(), t0() + Duration::hours(1));
    let state: Value = sim
        .http
        .get(format!("{}/_sim/state", sim.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["tasks"][0]["user_task_id"], "t1");
    assert_eq!(state["calls"].as_array().unwrap().len(), 1);
    assert_eq!(state["submissions"].as_array().unwrap().len(), 1);
    assert!(
        state["tasks"][0]["status_history"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
}
