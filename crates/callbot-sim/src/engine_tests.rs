use super::*;
use chrono::TimeZone;

const ACCT: &str = "acct-1";

/// Monday 2026-03-02 08:00 UTC.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap()
}

fn engine() -> Engine {
    engine_with(OutcomeConfig {
        weights: vec![(Outcome::Answered, 1.0)],
        ring_secs: (5, 5),
        talk_secs: (55, 55),
        ..OutcomeConfig::default()
    })
}

fn engine_with(outcomes: OutcomeConfig) -> Engine {
    Engine::new(
        EngineConfig {
            call_list_limit: 1000,
            order_list_limit: 500,
            apply_delay: Duration::minutes(5),
            speed: 1.0,
            seed: 42,
            outcomes,
        },
        t0(),
    )
}

fn all_week() -> (&'static str, String) {
    let hours = (0..24)
        .map(|h: i32| h.to_string())
        .collect::<Vec<_>>()
        .join(",");
    ("1,2,3,4,5,6,7", hours)
}

fn create_body(ut: &str, startup_type: i64, max_call: i64, n_orders: usize, extra: Value) -> Value {
    let (days, hours) = all_week();
    let mut body = json!({
        "productID": "callbot",
        "userTaskID": ut,
        "sceneID": "scene-1",
        "taskCreateSetting": {
            "strategyName": "default",
            "startupType": startup_type,
            "startupAt": 0,
            "zoneSecond": 0,
            "dialAtWeekDay": days,
            "dialAtUpHour": hours,
            "dialAtDownHour": hours,
            "maxCall": max_call,
            "taskName": "t",
            "taskCallbackUrl": "http://cb/task",
            "maxRingTime": 30,
        },
        "funcFlag": {"taskKeep": false, "roundRedial": false},
        "callInfoList": {
            "orderCallbackUrl": "http://cb/order",
            "callCallbackUrl": "http://cb/call",
            "callList": (0..n_orders).map(|i| json!({"orderID": format!("{ut}-o{i}"), "userPhone": format!("86138{i:08}")})).collect::<Vec<_>>(),
        }
    });
    merge_deep(&mut body, extra);
    body
}

fn merge_deep(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge_deep(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn op(ut: &str, operate: i64) -> Value {
    json!({"productID": "callbot", "userTaskID": ut, "taskOperate": operate})
}

fn status_of(e: &Engine, ut: &str) -> i64 {
    e.tasks()
        .into_iter()
        .find(|t| t.user_task_id == ut)
        .unwrap()
        .status
}

#[test]
fn manual_task_stays_pending_until_started_then_dials() {
    let mut e = engine();
    e.create_task(ACCT, "r1", &create_body("t1", 1, 2, 3, json!({})), true)
        .unwrap();
    e.advance_to(t0() + Duration::hours(1));
    assert_eq!(status_of(&e, "t1"), status::PENDING);
    assert!(e.calls().is_empty());
    let (_, s) = e.mgr_task_status(ACCT, &op("t1", 1)).unwrap();
    assert_eq!(s, status::RUNNING);
    assert_eq!(e.calls().len(), 2, "maxCall 2 starts two calls at once");
}

#[test]
fn scheduled_task_starts_at_startup_at_on_the_sim_clock() {
    let mut e = engine();
    let at = t0() + Duration::minutes(90);
    let body = create_body(
        "t1",
        2,
        1,
        1,
        json!({"taskCreateSetting": {"startupAt": at.timestamp()}}),
    );
    e.create_task(ACCT, "r1", &body, true).unwrap();
    e.advance_to(at - Duration::seconds(1));
    assert_eq!(status_of(&e, "t1"), status::PENDING);
    e.advance_to(at + Duration::hours(3));
    let calls = e.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].start_utc, at,
        "the first call starts exactly at startupAt"
    );
    let t = &e.tasks()[0];
    assert_eq!(t.status_history[1].at, at);
    assert_eq!(t.status_history[1].to, status::RUNNING);
}

#[test]
fn task_without_task_keep_completes_when_all_orders_finish_and_with_it_stays_running() {
    let mut e = engine();
    e.create_task(ACCT, "r1", &create_body("plain", 3, 5, 2, json!({})), true)
        .unwrap();
    e.create_task(
        ACCT,
        "r2",
        &create_body("keep", 3, 5, 2, json!({"funcFlag": {"taskKeep": true}})),
        true,
    )
    .unwrap();
    e.advance_to(t0() + Duration::minutes(10));
    assert_eq!(status_of(&e, "plain"), status::COMPLETED);
    assert_eq!(status_of(&e, "keep"), status::RUNNING);
    let plain = e
        .tasks()
        .into_iter()
        .find(|t| t.user_task_id == "plain")
        .unwrap();
    // Completed exactly when the last call ended (5 s ring + 55 s talk).
    assert_eq!(
        plain.status_history.last().unwrap().at,
        t0() + Duration::seconds(60)
    );
    // Completed tasks refuse everything.
    assert_eq!(
        e.mgr_task_status(ACCT, &op("plain", 1)).unwrap_err().code,
        1
    );
    let add = json!({"productID": "callbot", "userTaskID": "plain", "callInfoList": {"orderCallbackUrl": "", "callCallbackUrl": "", "callList": [{"orderID": "late", "userPhone": "8613800000001"}]}});
    assert_eq!(e.add_batch_call(ACCT, "r3", &add).unwrap_err().code, 1);
    // The kept task accepts more orders and dials them.
    let add = json!({"productID": "callbot", "userTaskID": "keep", "callInfoList": {"orderCallbackUrl": "", "callCallbackUrl": "", "callList": [{"orderID": "more", "userPhone": "8613800000001"}]}});
    assert_eq!(e.add_batch_call(ACCT, "r4", &add).unwrap().success, 1);
    assert!(e.calls().iter().any(|c| c.order_id == "more"));
}

#[test]
fn never_more_than_max_call_concurrent_calls_and_orders_dialled_in_upload_order() {
    let mut e = engine();
    e.create_task(ACCT, "r1", &create_body("t1", 3, 3, 20, json!({})), true)
        .unwrap();
    e.advance_to(t0() + Duration::hours(2));
    let calls = e.calls();
    assert_eq!(calls.len(), 20);
    for c in &calls {
        let overlapping = calls
            .iter()
            .filter(|o| o.start_utc <= c.start_utc && o.end_utc.unwrap() > c.start_utc)
            .count();
        assert!(overlapping <= 3, "{overlapping} calls at {}", c.start_utc);
        assert!(c.concurrent_at_start <= 3);
    }
    let order: Vec<_> = calls.iter().map(|c| c.order_id.clone()).collect();
    let want: Vec<_> = (0..20).map(|i| format!("t1-o{i}")).collect();
    assert_eq!(order, want);
    // Slots are reused the instant a call ends.
    assert_eq!(calls[3].start_utc, calls[0].end_utc.unwrap());
}

#[test]
fn calls_start_only_inside_the_window_at_the_boundary() {
    let mut e = engine();
    // Window: Monday 09:00-09:30 local at UTC+05:45 = 03:15-03:45 UTC. t0 is 08:00 UTC Monday, so next Monday.
    let body = create_body(
        "t1",
        3,
        1,
        40,
        json!({"taskCreateSetting": {"zoneSecond": 20700, "dialAtWeekDay": "1", "dialAtUpHour": "9", "dialAtDownHour": ""}}),
    );
    e.create_task(ACCT, "r1", &body, true).unwrap();
    e.advance_to(t0() + Duration::days(8));
    let calls = e.calls();
    let open = Utc.with_ymd_and_hms(2026, 3, 9, 3, 15, 0).unwrap();
    assert_eq!(calls[0].start_utc, open);
    assert!(
        calls
            .iter()
            .all(|c| c.start_utc >= open && c.start_utc < open + Duration::minutes(30))
    );
    // 30 minutes of 60-second calls with one robot.
    assert_eq!(calls.len(), 30);
    assert_eq!(calls[0].start_local.to_string(), "2026-03-09 09:00:00");
}

#[test]
fn paused_task_places_no_calls_and_resumes_on_start() {
    let mut e = engine();
    e.create_task(ACCT, "r1", &create_body("t1", 3, 1, 10, json!({})), true)
        .unwrap();
    e.advance_to(t0() + Duration::seconds(30));
    e.mgr_task_status(ACCT, &op("t1", 2)).unwrap();
    let paused_at = e.now();
    e.advance_to(t0() + Duration::hours(1));
    assert_eq!(
        e.calls().len(),
        1,
        "the call in progress ends; no new call while paused"
    );
    let resume = e.now();
    e.mgr_task_status(ACCT, &op("t1", 1)).unwrap();
    e.advance_to(t0() + Duration::hours(2));
    let calls = e.calls();
    assert_eq!(calls.len(), 10);
    assert!(
        calls
            .iter()
            .all(|c| c.start_utc <= paused_at || c.start_utc >= resume)
    );
}

#[test]
fn update_task_is_refused_while_running_and_takes_effect_after_the_apply_delay() {
    let mut e = engine();
    e.create_task(
        ACCT,
        "r1",
        &create_body("t1", 3, 1, 50, json!({"funcFlag": {"taskKeep": true}})),
        true,
    )
    .unwrap();
    let upd = json!({"productID": "callbot", "userTaskID": "t1", "sceneID": "scene-1", "taskCreateSetting": {"maxCall": 4}});
    assert_eq!(e.update_task(ACCT, "r2", &upd).unwrap_err().code, 1);
    e.mgr_task_status(ACCT, &op("t1", 2)).unwrap();
    let requested = e.now();
    e.update_task(ACCT, "r2", &upd).unwrap();
    e.mgr_task_status(ACCT, &op("t1", 1)).unwrap();
    e.advance_to(requested + Duration::minutes(5) - Duration::seconds(1));
    assert!(
        e.calls()
            .iter()
            .all(|c| c.max_call == 1 && c.settings_version == 1)
    );
    assert!(e.calls().iter().all(|c| c.concurrent_at_start <= 1));
    e.advance_to(requested + Duration::minutes(20));
    let after: Vec<_> = e
        .calls()
        .into_iter()
        .filter(|c| c.start_utc >= requested + Duration::minutes(5))
        .collect();
    assert!(
        after
            .iter()
            .all(|c| c.settings_version == 2 && c.max_call == 4)
    );
    assert!(after.iter().any(|c| c.concurrent_at_start == 4));
    let t = &e.tasks()[0];
    assert_eq!(t.settings[1].requested_at, requested);
    assert_eq!(t.settings[1].effective_at, requested + Duration::minutes(5));
    assert_eq!(t.effective_version, 2);
}

#[test]
fn duplicate_orders_go_to_err_list_and_the_rest_imports() {
    let mut e = engine();
    let mut body = create_body("t1", 1, 1, 2, json!({}));
    let list = body["callInfoList"]["callList"].as_array_mut().unwrap();
    list.push(json!({"orderID": "t1-o0", "userPhone": "8613800000009"}));
    list.push(json!({"orderID": "bad-phone", "userPhone": "+86 138"}));
    let r = e.create_task(ACCT, "r1", &body, true).unwrap();
    assert_eq!((r.total, r.success, r.err_list.len()), (4, 2, 2));
    assert!(r.err_list[0].2.contains("more than once"));
    assert_eq!(r.err_list[0].0, "8613800000009");
    // Same orderID in the same task, and in another task.
    let add = json!({"productID": "callbot", "userTaskID": "t1", "callInfoList": {"orderCallbackUrl": "", "callCallbackUrl": "", "callList": [{"orderID": "t1-o1", "userPhone": "8613800000001"}, {"orderID": "new", "userPhone": "8613800000002"}]}});
    let r = e.add_batch_call(ACCT, "r2", &add).unwrap();
    assert_eq!((r.success, r.err_list.len()), (1, 1));
    assert!(r.err_list[0].2.contains("already exists in this task"));
    let other = create_body(
        "t2",
        1,
        1,
        0,
        json!({"callInfoList": {"callList": [{"orderID": "new", "userPhone": "8613800000003"}]}}),
    );
    let r = e.create_task(ACCT, "r3", &other, true).unwrap();
    assert!(r.err_list[0].2.contains("globally unique"));
    // Duplicate userTaskID is rejected whole, and its items are logged as rejected submissions.
    let err = e
        .create_task(ACCT, "r4", &create_body("t1", 1, 1, 1, json!({})), true)
        .unwrap_err();
    assert_eq!(err.code, 4);
    assert!(err.msg.contains("t1"));
    let subs = e.submissions();
    assert_eq!(subs.iter().filter(|s| s.accepted).count(), 3);
    assert!(subs.iter().any(|s| s.request_id == "r4" && !s.accepted));
}

#[test]
fn limits_product_id_and_unknown_tasks_are_rejected_with_vendor_codes() {
    let mut e = engine();
    let big = create_body("t1", 1, 1, 1001, json!({}));
    assert_eq!(
        e.create_task(ACCT, "r1", &big, true).unwrap_err().code,
        4001
    );
    let bad = create_body("t1", 1, 1, 1, json!({"productID": "nope"}));
    assert_eq!(e.create_task(ACCT, "r1", &bad, true).unwrap_err().code, 4);
    let no_window = {
        let mut b = create_body("t1", 1, 1, 1, json!({}));
        b["taskCreateSetting"]
            .as_object_mut()
            .unwrap()
            .remove("dialAtWeekDay");
        b
    };
    let err = e.create_task(ACCT, "r1", &no_window, true).unwrap_err();
    assert_eq!(err.code, 2);
    assert!(
        err.msg.contains("taskCreateSetting.dialAtWeekDay"),
        "{}",
        err.msg
    );
    e.create_task(ACCT, "r1", &create_body("t1", 1, 1, 1, json!({})), true)
        .unwrap();
    let list = json!({"productID": "callbot", "userTaskID": "t1", "orderList": (0..501).map(|i| i.to_string()).collect::<Vec<_>>()});
    assert_eq!(e.list_order_detail(ACCT, &list).unwrap_err().code, 4001);
    for body in [
        op("nope", 1),
        json!({"productID": "callbot", "userTaskID": "nope", "orderIDs": []}),
        json!({"productID": "callbot", "userTaskID": "nope", "orderList": []}),
    ] {
        assert_eq!(e.mgr_task_status(ACCT, &body).unwrap_err().code, 4);
    }
    assert_eq!(
        e.mgr_task_status("other-account", &op("t1", 1))
            .unwrap_err()
            .code,
        4
    );
}

#[test]
fn round_redial_dials_an_unanswered_order_once_more_and_finish_follows() {
    let mut cfg = OutcomeConfig::default();
    cfg.forced.insert("8613800000000".into(), Outcome::Busy);
    cfg.forced.insert("8613800000001".into(), Outcome::Answered);
    let mut e = engine_with(cfg);
    let body = create_body("t1", 3, 2, 2, json!({"funcFlag": {"roundRedial": true}}));
    e.create_task(ACCT, "r1", &body, true).unwrap();
    e.advance_to(t0() + Duration::hours(1));
    let calls = e.calls();
    let busy: Vec<_> = calls.iter().filter(|c| c.order_id == "t1-o0").collect();
    assert_eq!(busy.len(), 2);
    assert_eq!(busy[1].round, 2);
    assert_eq!(
        busy[1].start_utc,
        busy[0].end_utc.unwrap() + Duration::seconds(60)
    );
    assert_eq!(calls.iter().filter(|c| c.order_id == "t1-o1").count(), 1);
    // Order callbacks: the busy order reports finish=false after round 1 and true after round 2.
    let finishes: Vec<_> = e
        .take_outbox()
        .into_iter()
        .filter(|o| o.callback_type == 2 && o.body["orderID"] == "t1-o0")
        .map(|o| o.body["finish"].as_bool().unwrap())
        .collect();
    assert_eq!(finishes, vec![false, true]);
}

#[test]
fn stop_order_stops_undialled_orders_irreversibly_and_del_call_hides_them() {
    let mut e = engine();
    e.create_task(
        ACCT,
        "r1",
        &create_body("t1", 1, 1, 4, json!({"funcFlag": {"taskKeep": true}})),
        true,
    )
    .unwrap();
    let stop = json!({"productID": "callbot", "userTaskID": "t1", "orderIDs": ["t1-o0", "t1-o1", "ghost"], "delCall": 0});
    let r = e.stop_order(ACCT, &stop).unwrap();
    assert_eq!((r.total, r.success, r.err_list.len()), (3, 2, 1));
    let del =
        json!({"productID": "callbot", "userTaskID": "t1", "orderIDs": ["t1-o2"], "delCall": 1});
    e.stop_order(ACCT, &del).unwrap();
    e.mgr_task_status(ACCT, &op("t1", 1)).unwrap();
    e.advance_to(t0() + Duration::hours(1));
    let dialled: Vec<_> = e.calls().into_iter().map(|c| c.order_id).collect();
    assert_eq!(dialled, vec!["t1-o3".to_owned()]);
    let list = json!({"productID": "callbot", "userTaskID": "t1", "orderList": ["t1-o0", "t1-o2", "t1-o3"]});
    let details = e.list_order_detail(ACCT, &list).unwrap();
    assert_eq!(details.len(), 2, "the deleted order is hidden");
    assert_eq!(details[0]["finish"], true);
    assert_eq!(
        details[0]["callInfoDetailList"].as_array().unwrap().len(),
        0
    );
    assert_eq!(details[1]["callInfoDetailList"][0]["callStatus"], 6);
}

#[test]
fn complete_with_del_call_deletes_undialled_orders_and_sends_task_callbacks() {
    let mut e = engine();
    e.create_task(ACCT, "r1", &create_body("t1", 3, 1, 3, json!({})), true)
        .unwrap();
    let mut complete = op("t1", 3);
    complete["delCall"] = json!(1);
    let (_, s) = e.mgr_task_status(ACCT, &complete).unwrap();
    assert_eq!(s, status::COMPLETED);
    let states: Vec<_> = e.orders().into_iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        vec![OrderState::InCall, OrderState::Deleted, OrderState::Deleted]
    );
    let task_cbs: Vec<_> = e
        .take_outbox()
        .into_iter()
        .filter(|o| o.callback_type == 1)
        .map(|o| o.body["taskStatus"].as_i64().unwrap())
        .collect();
    assert_eq!(task_cbs, vec![status::RUNNING, status::COMPLETED]);
}

#[test]
fn advancing_in_many_small_steps_equals_one_jump() {
    let run = |steps: i64| {
        let mut e = engine_with(OutcomeConfig::default());
        let body = create_body(
            "t1",
            3,
            3,
            200,
            json!({"taskCreateSetting": {"zoneSecond": -12600, "dialAtWeekDay": "1,3,5", "dialAtUpHour": "9,10,14", "dialAtDownHour": "9,13,16"}, "funcFlag": {"roundRedial": true}}),
        );
        e.create_task(ACCT, "r1", &body, true).unwrap();
        let end = t0() + Duration::days(7);
        for i in 1..=steps {
            e.advance_to(
                t0() + (end - t0()) * i32::try_from(i).unwrap() / i32::try_from(steps).unwrap(),
            );
        }
        e.calls()
            .into_iter()
            .map(|c| (c.call_id, c.order_id, c.start_utc, c.end_utc))
            .collect::<Vec<_>>()
    };
    let one = run(1);
    assert!(one.len() > 100);
    let many = run(997);
    assert!(
        one == many,
        "{} calls in one jump, {} in small steps",
        one.len(),
        many.len()
    );
}

#[test]
fn create_task_without_orders_accepts_the_documented_stray_blank_in_a_key() {
    let mut e = engine();
    let mut body = create_body("t1", 1, 1, 0, json!({"taskCallbackUrl": "http://cb/top"}));
    body.as_object_mut().unwrap().remove("callInfoList");
    let tcs = body["taskCreateSetting"].as_object_mut().unwrap();
    let up = tcs.remove("dialAtUpHour").unwrap();
    tcs.insert("dialAtUpHour ".into(), up);
    tcs.remove("taskCallbackUrl");
    let r = e.create_task(ACCT, "r1", &body, false).unwrap();
    assert_eq!(r.total, 0);
    let t = &e.tasks()[0];
    assert_eq!(
        t.settings[0].settings.task_callback_url.as_deref(),
        Some("http://cb/top")
    );
    assert_eq!(
        t.settings[0].settings.dial_at_up_hour.split(',').count(),
        24
    );
}

/// A call's report is built when it is asked for, from what the call keeps: while the call goes on, its final
/// fields are empty; once it ends, an answered call carries its intent, its transcript of four lines, its audio and
/// the order's `params`, and the order and call callbacks carry the same report.
#[test]
fn a_calls_report_is_empty_while_it_goes_on_and_whole_once_it_ends() {
    let mut e = engine();
    let params = json!([{"name": "amount", "value": "42"}]);
    let body = create_body(
        "t1",
        3,
        1,
        1,
        json!({"callInfoList": {"callList": [{"orderID": "t1-o0", "userPhone": "8613800000000", "params": params}]}}),
    );
    e.create_task(ACCT, "r1", &body, true).unwrap();
    let list = json!({"productID": "callbot", "userTaskID": "t1", "orderList": ["t1-o0"]});
    e.advance_to(t0() + Duration::seconds(30));
    let during = &e.list_order_detail(ACCT, &list).unwrap()[0]["callInfoDetailList"][0];
    assert_eq!(during["callStatus"], 5);
    assert_eq!(during["recordDetail"], json!([]));
    assert_eq!(during["intents"], json!([]));
    assert_eq!(during["callEndTs"], 0);
    assert_eq!(during["params"], params);

    e.advance_to(t0() + Duration::hours(1));
    let after = e.list_order_detail(ACCT, &list).unwrap()[0]["callInfoDetailList"][0].clone();
    let call = &e.calls()[0];
    assert_eq!(after["callID"], json!(call.call_id));
    assert_eq!(after["callStatus"], 6);
    assert_eq!(after["callStartTs"], json!(call.start_utc.timestamp()));
    assert_eq!(after["callEndTs"], json!(call.end_utc.unwrap().timestamp()));
    assert_eq!(
        after["callAnswerTs"],
        json!(call.answer_utc.unwrap().timestamp())
    );
    assert_eq!(after["callDuration"], 55);
    assert_eq!(after["params"], params);
    let intent = after["intents"][0]["intentName"]
        .as_str()
        .unwrap()
        .to_owned();
    let lines = after["recordDetail"].as_array().unwrap();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3]["recordWord"], json!(intent));
    assert_eq!(
        after["callAudioUrl"],
        json!(format!("https://sim.invalid/audio/{}.wav", call.call_id))
    );
    assert!(after.get("sceneID").is_none() && after.get("taskID").is_none());

    let outbox = e.take_outbox();
    let of_type = |t: u8| {
        outbox
            .iter()
            .find(|o| o.callback_type == t)
            .map(|o| o.body["callInfoDetail"].clone())
            .unwrap()
    };
    assert_eq!(
        of_type(3),
        after,
        "the call callback carries the same report"
    );
    let mut order_report = after.clone();
    let o = order_report.as_object_mut().unwrap();
    o.remove("callingNumber");
    o.remove("lineAddress");
    assert_eq!(
        of_type(2),
        order_report,
        "the order callback, without the line"
    );
}

#[test]
fn a_call_stays_small() {
    // Ten million orders in under 5 GB leaves 500 bytes each; an order's fixed part takes 56 at most (see
    // `orders.rs`), its text about 100, and a call keeps no text: what it shares with its order, its task and its
    // settings version is found through them.
    assert!(size_of::<Call>() <= 80, "{}", size_of::<Call>());
}

/// listCall returns the task's calls, or those of them its `options.callID` names: never another task's, and never
/// one for an ID the simulator did not give (`sim-call-01` is not `sim-call-1`).
#[test]
fn list_call_finds_a_tasks_calls_by_their_ids() {
    let mut e = engine();
    let t1 = create_body("t1", 3, 2, 2, json!({}));
    let t2 = create_body("t2", 3, 2, 1, json!({}));
    e.create_task(ACCT, "r1", &t1, true).unwrap();
    e.create_task(ACCT, "r2", &t2, true).unwrap();
    e.advance_to(t0() + Duration::hours(1));
    let calls = e.calls();
    let of = |ut: &str| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.user_task_id == ut)
            .map(|c| c.call_id.clone())
            .collect()
    };
    let (t1, t2) = (of("t1"), of("t2"));
    assert_eq!((t1.len(), t2.len()), (2, 1));
    let listed = |named: Value| -> Vec<String> {
        let body =
            json!({"productID": "callbot", "userTaskID": "t1", "options": {"callID": named}});
        e.list_call(ACCT, &body)
            .unwrap()
            .iter()
            .map(|v| v["callID"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed(json!([])), t1, "no ID named: every call of the task");
    let first = t1[0].trim_start_matches("sim-call-");
    let padded = format!("sim-call-0{first}");
    assert_eq!(
        listed(json!([t1[1], t2[0], "sim-call-0", padded, "nope"])),
        vec![t1[1].clone()]
    );
}
