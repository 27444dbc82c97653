//! The simulator as referee: a task dials over a simulated week (manual clock, real HTTP, the real client), is
//! paused for a day and gets a new window through updateTask; every logged call must fall inside the window that was
//! in effect when it started, and none may start while the task was paused.

use std::time::Duration as StdDuration;

use callbot_api::sign::SecretKey;
use callbot_api::wire::{
    AddBatchCallRequest, CallInfoList, CallItem, CreateAndCallRequest, FuncFlag,
    MgrTaskStatusRequest, StartupType, TaskCreateSetting, TaskOperate, UpdateTaskRequest,
};
use callbot_api::{Client, ClientConfig};
use callbot_sim::{Account, CallRecord, SimConfig, Simulator};
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use clock::{Clock, ManualClock};
use tokio_util::sync::CancellationToken;

const UUID: &str = "referee";
const SECRET: &str = "referee-secret";

fn setting(zone: i64, days: &str, up: &str, down: &str) -> TaskCreateSetting {
    TaskCreateSetting {
        strategy_name: "default".into(),
        startup_type: StartupType::Immediate,
        startup_at: 0,
        zone_second: zone,
        max_ring_time: 25,
        route_id: String::new(),
        dial_at_week_day: days.into(),
        dial_at_up_hour: up.into(),
        dial_at_down_hour: down.into(),
        max_call: 3,
        task_name: "referee".into(),
        task_callback_url: String::new(),
        manual_call_setting: None,
    }
}

fn flags() -> FuncFlag {
    FuncFlag {
        task_keep: true,
        round_redial: true,
        ..FuncFlag::default()
    }
}

fn list(s: &str) -> Vec<u32> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse().unwrap())
        .collect()
}

/// The vendor's rule, written out independently of the simulator's referee.
fn inside(call: &CallRecord) -> bool {
    let local = call.start_utc.naive_utc() + Duration::seconds(call.zone_second);
    let hours = if local.minute() < 30 {
        &call.dial_at_up_hour
    } else {
        &call.dial_at_down_hour
    };
    list(&call.dial_at_week_day).contains(&local.weekday().number_from_monday())
        && list(hours).contains(&local.hour())
}

#[tokio::test]
async fn no_call_falls_outside_the_effective_window_or_inside_a_pause_over_a_week() {
    callbot_api::ensure_crypto_provider();
    // Monday 2026-03-02 00:00 UTC.
    let t0: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
    let clock = ManualClock::new(t0);
    let mut cfg = SimConfig::new(vec![Account::new(UUID, SECRET)]);
    cfg.seed = 7;
    let sim = Simulator::with_manual_clock(cfg, clock.clone());
    let handle = sim.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(sim.run(listener, shutdown.clone()));
    let mut ccfg = ClientConfig::new(base, UUID, SecretKey::from(SECRET));
    ccfg.requests_per_second = 0;
    ccfg.request_timeout = StdDuration::from_secs(5);
    ccfg.verify_responses = callbot_api::ResponseVerification::Enforce;
    let client = Client::new(ccfg, clock.shared()).unwrap();

    // Nepal time (UTC+05:45): 09:00-12:00 and 13:30-17:00, Monday to Friday.
    let first = setting(
        20700,
        "1,2,3,4,5",
        "9,10,11,14,15,16",
        "9,10,11,13,14,15,16",
    );
    let batch = |from: usize| -> Vec<CallItem> {
        (from..from + 1000)
            .map(|i| CallItem {
                order_id: format!("ref-{i}"),
                user_phone: format!("97798{i:08}"),
                ..CallItem::default()
            })
            .collect()
    };
    let created = client
        .create_and_call(&CreateAndCallRequest {
            product_id: callbot_api::PRODUCT_ID.into(),
            user_task_id: "week".into(),
            scene_id: "scene".into(),
            task_create_setting: first,
            func_flag: flags(),
            call_info_list: CallInfoList {
                order_callback_url: String::new(),
                call_callback_url: String::new(),
                call_list: batch(0),
            },
        })
        .await
        .unwrap();
    assert_eq!(created.success_count, Some(1000));
    for from in [1000, 2000] {
        let added = client
            .add_batch_call(&AddBatchCallRequest {
                product_id: callbot_api::PRODUCT_ID.into(),
                user_task_id: "week".into(),
                call_info_list: CallInfoList {
                    order_callback_url: String::new(),
                    call_callback_url: String::new(),
                    call_list: batch(from),
                },
            })
            .await
            .unwrap();
        assert_eq!(added.success_count, Some(1000));
    }

    let step = |to: DateTime<Utc>| {
        clock.set(to);
        handle.advance_to(to);
    };
    // Monday and Tuesday, in 37-minute steps (not aligned to any boundary).
    let mut t = t0;
    let pause_at = t0 + Duration::days(2) + Duration::hours(5) + Duration::minutes(10); // Wed 10:55 local
    while t + Duration::minutes(37) < pause_at {
        t += Duration::minutes(37);
        step(t);
    }
    step(pause_at);
    client
        .mgr_task_status(&MgrTaskStatusRequest::new("week", TaskOperate::Pause))
        .await
        .unwrap();
    // A day paused, in one jump.
    let update_at = pause_at + Duration::days(1);
    step(update_at);
    // New window while paused: UTC-03:30, only 10:00-11:00 local, Thursday and Friday. Effective 5 minutes later.
    client
        .update_task(&UpdateTaskRequest {
            product_id: callbot_api::PRODUCT_ID.into(),
            user_task_id: "week".into(),
            scene_id: "scene".into(),
            task_create_setting: setting(-12600, "4,5", "10", "10"),
            func_flag: flags(),
        })
        .await
        .unwrap();
    let resume_at = update_at + Duration::minutes(1);
    step(resume_at);
    client
        .mgr_task_status(&MgrTaskStatusRequest::new("week", TaskOperate::Start))
        .await
        .unwrap();
    // The rest of the week, in one jump.
    step(t0 + Duration::days(7));

    let task = handle.task("week").unwrap();
    let log = handle.call_log();
    assert!(log.len() > 500, "only {} calls", log.len());
    let effective_at = task.settings[1].effective_at;
    assert_eq!(effective_at, update_at + Duration::minutes(5));
    let mut days = std::collections::BTreeSet::new();
    for c in &log {
        assert!(
            inside(c),
            "call {} at {} (local {}) is outside its window",
            c.call_id,
            c.start_utc,
            c.start_local
        );
        assert!(
            !(pause_at <= c.start_utc && c.start_utc < resume_at),
            "call {} started at {} while the task was paused",
            c.call_id,
            c.start_utc
        );
        // The settings that governed the call are the ones in effect at its start.
        let want = if c.start_utc >= effective_at { 2 } else { 1 };
        assert_eq!(c.settings_version, want, "call {}", c.call_id);
        assert_eq!(
            c.start_local,
            c.start_utc.naive_utc() + Duration::seconds(c.zone_second)
        );
        assert!(c.concurrent_at_start <= c.max_call);
        days.insert(c.start_local.date());
    }
    // Calls on Monday, Tuesday, Wednesday morning (old window) and Thursday/Friday (new window).
    assert!(days.len() >= 4, "{days:?}");
    assert!(log.iter().any(|c| c.settings_version == 2));
    // The task's own history shows the pause.
    let statuses: Vec<i64> = task.status_history.iter().map(|s| s.to).collect();
    assert_eq!(statuses, vec![1, 2, 5, 2]);
    // Not one orderID or phone was dialled as two different orders.
    let mut phones: Vec<_> = handle.orders().into_iter().map(|o| o.phone).collect();
    let n = phones.len();
    phones.sort();
    phones.dedup();
    assert_eq!(n, phones.len());
    assert!(clock.now() >= t0 + Duration::days(7));

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
