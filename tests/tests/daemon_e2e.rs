//! The daemon end to end: real simulator over a socket, real store (SQLite and PostgreSQL), real webhook listener,
//! the daemon's reconcile step driven on a manual clock shared with the simulator.

#[macro_use]
mod daemon_support;

use daemon_support::utc;

use callbot_api::sign::{SecretKey, SignedHeaders};
use callbot_sim::{DropApplies, FaultConfig, FaultKind, ForcedFault};
use chrono::Duration;
use daemon::{TaskState, Why};
use daemon_support::{Backend, Env, Options, assert_no_harm, contacts_csv, status_at};
use store::UploadState;

/// New York, across the end of DST (Sun 2026-11-01), with different hours on Saturday and a holiday on Tuesday.
fn calendar_campaign(batch: u32, robots: u32) -> String {
    format!(
        r#"
scene_id = "SC-E2E"
task_name = "Across DST"
robots = {robots}
max_ring_seconds = 30

[schedule]
timezone = "America/New_York"
# The toggles at the calendar's own instants: not a test of the legal calling hours (daemon_zones.rs is).
rules = []
start = 2026-10-29T09:00:00
end = 2026-11-04T18:00:00
holidays = [2026-11-03]
windows = [
  {{ days = "mon-fri", hours = ["09:00-12:00", "13:30-17:00"] }},
  {{ days = "sat", hours = ["10:00-14:00"] }},
]

[features]
round_redial = false
whole_tts = true

[contacts]
file = "dst.csv"
variables = ["amount"]
batch_size = {batch}
"#
    )
}

/// Open every day, all day, UTC.
fn always_open(name: &str, csv: &str, batch: u32, robots: u32) -> String {
    format!(
        r#"
scene_id = "SC-{name}"
robots = {robots}

[schedule]
timezone = "UTC"
# Always open: not a test of the legal calling hours (daemon_zones.rs is).
rules = []
windows = [{{ days = "mon-sun", hours = ["00:00-24:00"] }}]

[contacts]
file = "{csv}"
variables = ["amount"]
batch_size = {batch}
"#
    )
}

both_backends!(
    uploads_in_batches_toggles_at_the_right_instants_and_completes,
    resolves_ambiguous_uploads_without_duplicates,
    restart_with_orders_left_sending_resolves_before_resending,
    finishes_correctly_with_a_fifth_of_requests_faulted,
    verifies_and_merges_callbacks_and_refuses_forged_ones,
    isolates_a_bad_file_and_keeps_its_last_good_version,
    removing_a_file_completes_its_task,
    polls_only_unfinished_orders_in_chunks_of_at_most_500,
    changed_settings_are_sent_while_paused_and_applied_before_resuming,
    paused_in_the_file_pauses_and_unpausing_resumes,
    a_new_generation_completes_the_old_task_first,
    two_replicas_share_a_store_and_one_owns_each_campaign,
    a_missing_csv_never_keeps_the_calendar_from_being_enforced,
    a_pause_never_waits_for_orders_in_doubt,
    a_start_or_pause_whose_outcome_was_lost_is_asked_about_not_assumed,
    reconciles_only_the_campaigns_that_changed_or_are_due,
);

async fn uploads_in_batches_toggles_at_the_right_instants_and_completes(backend: Backend) {
    let files = [
        ("dst.toml", calendar_campaign(40, 1)),
        ("dst.csv", contacts_csv(150)),
    ];
    let opts = Options {
        talk_secs: (900, 1500),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 10, 28, 12, 0), &files, opts).await;
    let spec = env.spec("dst.toml");
    let ut = daemon::user_task_id(&spec);

    // Before the start: the task is created and all contacts uploaded. It may already be started: its settings
    // alone allow nothing before Thursday 09:00 (the referee below checks every call).
    let out = env.step().await;
    let c = out.campaign(&spec.id).expect("campaign reconciled");
    assert_eq!(c.error, None);
    assert!(
        matches!(c.task, TaskState::Pending | TaskState::Running),
        "{c:?}"
    );
    assert_eq!(
        c.why,
        "outside the window until Thu 2026-10-29 09:00 America/New_York"
    );
    assert_eq!(c.orders.sent, 150);
    let subs = env.sim.submissions();
    let mut by_request: Vec<(String, &'static str, usize)> = Vec::new();
    for s in &subs {
        match by_request.last_mut() {
            Some((id, _, n)) if *id == s.request_id => *n += 1,
            _ => by_request.push((s.request_id.clone(), s.endpoint, 1)),
        }
    }
    let shape: Vec<(&str, usize)> = by_request.iter().map(|(_, e, n)| (*e, *n)).collect();
    assert_eq!(
        shape,
        vec![
            ("createAndCall", 40),
            ("addBatchCall", 40),
            ("addBatchCall", 40),
            ("addBatchCall", 30)
        ],
        "uploaded in batches of the file's batch_size"
    );

    let metrics = env.hub.metrics.render();
    assert!(
        metrics
            .contains("campaignd_api_requests_total{endpoint=\"addBatchCall\",outcome=\"ok\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("campaignd_orders{campaign=\"dst\",state=\"sent\"} 150"),
        "{metrics}"
    );
    assert!(
        metrics.contains("campaignd_campaigns{state=\"waiting\"} 1"),
        "{metrics}"
    );
    let ledger = env.store.recent_actions(100).await.unwrap();
    assert!(
        ledger.iter().any(|a| a.endpoint == "createAndCall"
            && a.campaign_id.as_deref() == Some("dst")
            && a.response_id.is_some()),
        "every platform action is in the ledger with its IDs: {ledger:?}"
    );

    env.run_until(utc(2026, 11, 5, 6, 0), Duration::minutes(30))
        .await;

    assert_no_harm(&env.sim, std::slice::from_ref(&spec));
    let task = env.sim.task(&ut).expect("task on the platform");
    // Created with manual start and taskKeep.
    assert_eq!(task.settings[0].settings.startup_type, 1);
    assert!(task.settings[0].settings.task_keep);
    // Every updateTask arrived while the task was paused or not started.
    for v in task.settings.iter().skip(1) {
        let st = status_at(&task, v.requested_at);
        assert!(
            matches!(st, Some(1 | 5)),
            "updateTask v{} at {} while status {st:?}",
            v.version,
            v.requested_at
        );
    }
    assert!(
        task.settings.len() >= 3,
        "settings changed for Saturday and for the DST change: {:?}",
        task.settings.len()
    );
    // Friday 17:00 EDT (21:00Z): the weekday stretch has no dialling left and Saturday needs other hours: pause.
    assert!(
        task.status_history
            .iter()
            .any(|c| c.to == 5 && c.at == utc(2026, 10, 30, 21, 0)),
        "paused exactly at Friday's close: {:#?}",
        task.status_history
    );
    // After the DST change the offset is -5 h.
    assert!(
        task.settings
            .iter()
            .any(|v| v.settings.zone_second == -5 * 3600)
    );
    assert!(
        task.settings
            .iter()
            .any(|v| v.settings.zone_second == -4 * 3600)
    );
    // Monday's calls follow EST, and nobody is called on the holiday.
    let calls = env.sim.call_log();
    assert!(
        calls.iter().any(
            |c| c.start_utc >= utc(2026, 11, 2, 14, 0) && c.start_utc < utc(2026, 11, 2, 17, 0)
        ),
        "calls on Monday 09:00-12:00 EST"
    );
    assert!(
        calls
            .iter()
            .all(|c| spec.schedule.zone.local(c.start_utc).date()
                != chrono::NaiveDate::from_ymd_opt(2026, 11, 3).unwrap())
    );
    // Completed at the end.
    assert_eq!(task.status, 3);
    let completed = task.status_history.iter().find(|c| c.to == 3).unwrap();
    // The last window closes at 17:00 EST; nothing can be dialled before `end` (18:00), so the calendar is over.
    assert_eq!(
        completed.at,
        utc(2026, 11, 4, 22, 0),
        "completed when no dialling time is left"
    );
}

async fn resolves_ambiguous_uploads_without_duplicates(backend: Backend) {
    let files = [
        ("a.toml", always_open("A", "a.csv", 10, 2)),
        ("a.csv", contacts_csv(45)),
    ];
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, Options::default()).await;
    let spec = env.spec("a.toml");
    // The create applies but its answer is lost; then an addBatchCall is dropped without applying.
    env.sim.push_fault(ForcedFault {
        kind: FaultKind::DropAfterRead,
        endpoint: Some("createAndCall".into()),
        applied: true,
    });
    let out = env.step().await;
    let c = out.campaign(&spec.id).unwrap();
    assert!(c.error.is_some(), "the ambiguous create is reported: {c:?}");
    assert_eq!(c.task, TaskState::CreateInDoubt);
    assert_eq!(c.orders.sending, 10);

    env.sim.push_fault(ForcedFault {
        kind: FaultKind::DropAfterRead,
        endpoint: Some("addBatchCall".into()),
        applied: false,
    });
    env.clock.advance(Duration::seconds(20));
    let out = env.step().await;
    let c = out.campaign(&spec.id).unwrap();
    // The create was resolved as applied (listTask), one batch is in doubt.
    assert_ne!(c.task, TaskState::CreateInDoubt);
    env.clock.advance(Duration::seconds(20));
    env.step().await;
    env.run_until(env.now() + Duration::hours(6), Duration::minutes(20))
        .await;
    let accepted = assert_no_harm(&env.sim, std::slice::from_ref(&spec));
    assert_eq!(
        accepted.get(&daemon::user_task_id(&spec)),
        Some(&45),
        "every contact uploaded exactly once"
    );
    let counts = env.store.order_counts(&spec.id).await.unwrap();
    assert_eq!((counts.sent, counts.sending, counts.planned), (45, 0, 0));
    // The resends of the dropped batch and the lost create never produced a second accepted submission.
    assert!(env.sim.faults().len() >= 2);
}

async fn restart_with_orders_left_sending_resolves_before_resending(backend: Backend) {
    let files = [
        ("r.toml", always_open("R", "r.csv", 5, 1)),
        ("r.csv", contacts_csv(20)),
    ];
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, Options::default()).await;
    let spec = env.spec("r.toml");
    let ut = daemon::user_task_id(&spec);
    env.step().await;
    assert_eq!(env.store.order_counts(&spec.id).await.unwrap().sent, 20);

    // Rows appended to the CSV: six batches. Every request is applied, then its connection is cut: the daemon
    // cannot know. The uploader has `requests_in_flight` (4) batches in flight when the first answer is lost.
    let in_flight = env.config.requests_in_flight;
    assert_eq!(in_flight, 4);
    env.write("r.csv", &contacts_csv(50));
    env.sim.set_faults(FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::DropAfterRead],
        drop_applies: DropApplies::Always,
        ..FaultConfig::default()
    });
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    let stuck = env
        .store
        .orders_in_state(&ut, UploadState::Sending, 100)
        .await
        .unwrap();
    assert_eq!(
        stuck.len(),
        5 * in_flight,
        "the batches in flight when the first answer was lost stay in doubt"
    );
    assert_eq!(
        env.store.order_counts(&spec.id).await.unwrap().planned,
        30 - 5 * in_flight as u64,
        "nothing more is sent while in doubt"
    );

    // Crash and restart (a new daemon on the same store); the platform is reachable again.
    env.sim.set_faults(FaultConfig::default());
    env.restart();
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    assert!(
        env.store
            .orders_in_state(&ut, UploadState::Sending, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(env.store.order_counts(&spec.id).await.unwrap().sent, 50);

    // One more row; this time the request is dropped before it is applied, then the daemon restarts.
    let mut csv = contacts_csv(50);
    csv.push_str(&format!(
        "{},Late,C950,row-950,5.00\n",
        daemon_support::phone(950)
    ));
    env.write("r.csv", &csv);
    env.sim.set_faults(FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::DropAfterRead],
        drop_applies: DropApplies::Never,
        ..FaultConfig::default()
    });
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    assert_eq!(
        env.store
            .orders_in_state(&ut, UploadState::Sending, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    env.sim.set_faults(FaultConfig::default());
    env.restart();
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    assert!(
        env.store
            .orders_in_state(&ut, UploadState::Sending, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let accepted = assert_no_harm(&env.sim, std::slice::from_ref(&spec));
    assert_eq!(
        accepted.get(&ut),
        Some(&51),
        "no contact lost, none uploaded twice"
    );
}

async fn finishes_correctly_with_a_fifth_of_requests_faulted(backend: Backend) {
    let files = [
        ("f.toml", always_open("F", "f.csv", 8, 3)),
        ("f.csv", contacts_csv(60)),
    ];
    let faults = FaultConfig {
        rate: 0.2,
        kinds: FaultKind::ALL.to_vec(),
        delay: std::time::Duration::from_millis(1600),
        drop_applies: DropApplies::Coin,
        seed: 5,
        ..FaultConfig::default()
    };
    let opts = Options {
        faults,
        poll_interval: Duration::minutes(5),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let spec = env.spec("f.toml");
    let ut = daemon::user_task_id(&spec);
    env.run_until(utc(2026, 11, 2, 16, 0), Duration::minutes(5))
        .await;
    // Remove the file: the task completes.
    env.remove("f.toml");
    env.run_until(utc(2026, 11, 2, 17, 0), Duration::minutes(5))
        .await;
    let accepted = assert_no_harm(&env.sim, std::slice::from_ref(&spec));
    assert_eq!(
        accepted.get(&ut),
        Some(&60),
        "every contact uploaded exactly once despite faults"
    );
    assert!(!env.sim.faults().is_empty(), "faults were injected");
    let counts = env.store.order_counts(&spec.id).await.unwrap();
    assert_eq!((counts.sent, counts.sending, counts.planned), (60, 0, 0));
    assert_eq!(
        counts.finished, 60,
        "every order's outcome reached the store"
    );
    assert_eq!(env.sim.task(&ut).unwrap().status, 3);
}

async fn verifies_and_merges_callbacks_and_refuses_forged_ones(backend: Backend) {
    let files = [
        ("cb.toml", always_open("CB", "cb.csv", 10, 2)),
        ("cb.csv", contacts_csv(6)),
    ];
    let opts = Options {
        poll_interval: Duration::days(30),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let spec = env.spec("cb.toml");
    let outs = env
        .run_until(utc(2026, 11, 2, 12, 0), Duration::minutes(10))
        .await;
    if std::env::var("E2E_DEBUG").is_ok() {
        for o in &outs {
            eprintln!(
                "{:?}",
                o.campaigns
                    .iter()
                    .map(|c| (&c.why, &c.done, &c.error, c.task, c.orders))
                    .collect::<Vec<_>>()
            );
        }
        eprintln!("calls {:?}", env.sim.call_log().len());
        eprintln!(
            "callbacks {:#?}",
            env.sim.callbacks().iter().take(3).collect::<Vec<_>>()
        );
    }
    // Polling was never due again after the first poll: the outcomes came by callback.
    let counts = env.store.order_counts(&spec.id).await.unwrap();
    assert_eq!(counts.finished, 6, "finished through callbacks");
    let stored = env.store.recent_callbacks(1000).await.unwrap();
    assert!(stored.iter().any(|c| c.kind == "order") && stored.iter().any(|c| c.kind == "call"));
    assert!(stored.iter().all(|c| c.verified));
    let n_before = stored.len();

    // A forged callback (wrong secret) and an unsigned one: 401, nothing stored.
    let body = br#"{"callbackType":"2","orderID":"x","userTaskID":"y","finish":true}"#;
    let now = env.now().timestamp().to_string();
    let forged = SignedHeaders::signed(
        &SecretKey::new("wrong".into()),
        body,
        now,
        "req-1",
        daemon_support::UUID,
        callbot_api::Algorithm::Md5,
    );
    let mut headers = reqwest::header::HeaderMap::new();
    forged.write_to(&mut headers);
    let http = reqwest::Client::new();
    let url = format!("{}/callbacks/order", env.webhook_url);
    let r = http
        .post(&url)
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http.post(&url).body(body.to_vec()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        env.store.recent_callbacks(1000).await.unwrap().len(),
        n_before
    );
    assert_eq!(
        env.hub
            .metrics
            .counter("campaignd_callbacks_total", &[("outcome", "unauthorized")]),
        2.0
    );

    // A correctly signed one is answered the vendor's way.
    let good = SignedHeaders::signed(
        &SecretKey::new(daemon_support::SECRET.into()),
        body,
        env.now().timestamp().to_string(),
        "req-2",
        daemon_support::UUID,
        callbot_api::Algorithm::Md5,
    );
    let mut headers = reqwest::header::HeaderMap::new();
    good.write_to(&mut headers);
    let r = http
        .post(&url)
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ack: serde_json::Value = r.json().await.unwrap();
    assert_eq!(ack["retCode"], 0);
    assert!(ack["responseID"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        env.store.recent_callbacks(1000).await.unwrap().len(),
        n_before + 1
    );
}

async fn isolates_a_bad_file_and_keeps_its_last_good_version(backend: Backend) {
    let files = [
        ("good.toml", always_open("G", "g.csv", 10, 1)),
        ("g.csv", contacts_csv(5)),
        ("other.toml", always_open("O", "o.csv", 10, 1)),
        ("o.csv", contacts_csv(4)),
    ];
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, Options::default()).await;
    let other = env.spec("other.toml");
    let out = env.step().await;
    assert_eq!(out.campaign("other").unwrap().task, TaskState::Running);
    // Break one file: unknown key.
    env.write(
        "other.toml",
        &format!("{}\nbogus_key = 1\n", always_open("O", "o.csv", 10, 1)),
    );
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    let bad = out
        .campaign("other")
        .expect("the last good version is still reconciled");
    assert!(
        bad.file_error
            .as_deref()
            .is_some_and(|e| e.contains("bogus_key")),
        "{bad:?}"
    );
    assert_eq!(
        bad.task,
        TaskState::Running,
        "the last good version keeps running"
    );
    let good = out.campaign("good").unwrap();
    assert_eq!(good.file_error, None);
    assert_eq!(good.error, None);
    assert_eq!(
        env.hub.metrics.counter("campaignd_file_errors_total", &[]),
        1.0
    );
    // A brand-new bad file is reported and affects nobody.
    env.write("broken.toml", "scene_id = 3\n");
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    assert!(
        out.file_errors
            .iter()
            .any(|(p, _)| p.ends_with("broken.toml"))
    );
    assert_eq!(out.campaign("good").unwrap().error, None);
    let recs = env.store.campaigns().await.unwrap();
    let rec = recs.iter().find(|r| r.id == "other").unwrap();
    assert_eq!(rec.state, "invalid");
    assert!(
        rec.last_error
            .as_deref()
            .is_some_and(|e| e.contains("bogus_key"))
    );
    assert_no_harm(&env.sim, &[other, env.spec("good.toml")]);
}

async fn removing_a_file_completes_its_task(backend: Backend) {
    let files = [
        ("gone.toml", always_open("X", "x.csv", 10, 1)),
        ("x.csv", contacts_csv(30)),
    ];
    let opts = Options {
        talk_secs: (600, 900),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let spec = env.spec("gone.toml");
    let ut = daemon::user_task_id(&spec);
    env.run_until(utc(2026, 11, 2, 11, 0), Duration::minutes(10))
        .await;
    env.remove("gone.toml");
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    let c = out.campaign("gone").unwrap();
    assert_eq!(c.task, TaskState::Completed);
    let task = env.sim.task(&ut).unwrap();
    assert_eq!(task.status, 3);
    // Undialled orders were kept (delCall 0): the platform still lists every order.
    assert_eq!(
        env.sim
            .orders()
            .iter()
            .filter(|o| o.user_task_id == ut)
            .count(),
        30
    );
    // And a new daemon (restart) does not resurrect it.
    env.restart();
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    assert_eq!(env.sim.task(&ut).unwrap().status, 3);
}

async fn polls_only_unfinished_orders_in_chunks_of_at_most_500(backend: Backend) {
    let files = [
        ("p.toml", always_open("P", "p.csv", 1000, 2)),
        ("p.csv", contacts_csv(1200)),
    ];
    let opts = Options {
        poll_interval: Duration::minutes(10),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let spec = env.spec("p.toml");
    env.step().await;
    env.clock.advance(Duration::minutes(15));
    env.step().await;
    let actions = env.store.recent_actions(10_000).await.unwrap();
    let polls: Vec<_> = actions
        .iter()
        .filter(|a| a.endpoint == "listOrderDetail")
        .collect();
    assert!(
        polls.len() >= 3,
        "1200 unfinished orders need at least 3 requests: {}",
        polls.len()
    );
    assert!(
        polls.iter().all(|a| a.outcome == "ok"),
        "the client never sent more than 500 IDs"
    );
    let counts = env.store.order_counts(&spec.id).await.unwrap();
    assert_eq!(counts.sent, 1200);
}

async fn changed_settings_are_sent_while_paused_and_applied_before_resuming(backend: Backend) {
    let files = [
        ("s.toml", always_open("S", "s.csv", 50, 2)),
        ("s.csv", contacts_csv(60)),
    ];
    let opts = Options {
        talk_secs: (600, 900),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let spec = env.spec("s.toml");
    let ut = daemon::user_task_id(&spec);
    env.step().await;
    assert_eq!(env.sim.task(&ut).unwrap().status, 2);

    // More robots: pause, updateTask, wait for the vendor's delay, start again.
    env.write("s.toml", &always_open("S", "s.csv", 50, 4));
    env.clock.advance(Duration::minutes(1));
    let changed_at = env.now();
    let out = env.step().await;
    let c = out.campaign("s").unwrap();
    assert_eq!(
        c.done,
        vec!["pause".to_string(), "update-settings".to_string()],
        "{c:?}"
    );
    assert!(
        c.why.starts_with("waiting for updateTask to apply"),
        "{}",
        c.why
    );
    assert_eq!(c.plan.next_wake, Some(changed_at + Duration::minutes(5)));
    env.clock.advance(Duration::minutes(4));
    let out = env.step().await;
    assert_eq!(
        out.campaign("s").unwrap().task,
        TaskState::Paused,
        "not before the settings apply"
    );
    env.clock.set(changed_at + Duration::minutes(5));
    let out = env.step().await;
    assert!(
        out.campaign("s")
            .unwrap()
            .done
            .contains(&"start".to_string())
    );
    let task = env.sim.task(&ut).unwrap();
    let v2 = &task.settings[1];
    assert_eq!(v2.settings.max_call, 4);
    assert_eq!(
        status_at(&task, v2.requested_at),
        Some(5),
        "updateTask while paused"
    );
    let restarted = task
        .status_history
        .iter()
        .rev()
        .find(|h| h.to == 2)
        .unwrap();
    assert!(
        restarted.at >= v2.effective_at,
        "started only once the new settings were in effect"
    );
    env.run_until(env.now() + Duration::hours(3), Duration::minutes(10))
        .await;
    let new = spec_with(&env, "s.toml");
    assert_no_harm(&env.sim, &[new]);
    assert!(
        env.sim
            .call_log()
            .iter()
            .filter(|c| c.start_utc > v2.effective_at)
            .all(|c| c.max_call == 4)
    );
}

fn spec_with(env: &Env, name: &str) -> campaign::CampaignSpec {
    env.spec(name)
}

async fn paused_in_the_file_pauses_and_unpausing_resumes(backend: Backend) {
    let files = [
        ("h.toml", always_open("H", "h.csv", 50, 1)),
        ("h.csv", contacts_csv(40)),
    ];
    let opts = Options {
        talk_secs: (600, 900),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let ut = daemon::user_task_id(&env.spec("h.toml"));
    env.run_until(utc(2026, 11, 2, 10, 30), Duration::minutes(10))
        .await;
    env.write(
        "h.toml",
        &always_open("H", "h.csv", 50, 1).replace("robots = 1", "robots = 1\npaused = true"),
    );
    env.clock.advance(Duration::minutes(1));
    let paused_at = env.now();
    let out = env.step().await;
    let c = out.campaign("h").unwrap();
    assert_eq!(c.why, "paused in the file (paused = true)");
    assert_eq!(c.task, TaskState::Paused);
    env.run_until(utc(2026, 11, 2, 14, 0), Duration::minutes(30))
        .await;
    // A call in progress at the pause may finish; none starts while paused.
    assert!(env.sim.call_log().iter().all(|c| c.start_utc <= paused_at));
    env.write("h.toml", &always_open("H", "h.csv", 50, 1));
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    assert_eq!(out.campaign("h").unwrap().task, TaskState::Running);
    assert_eq!(env.sim.task(&ut).unwrap().status, 2);
}

async fn a_new_generation_completes_the_old_task_first(backend: Backend) {
    let files = [
        ("g.toml", always_open("GEN", "g.csv", 50, 1)),
        ("g.csv", contacts_csv(30)),
    ];
    let opts = Options {
        talk_secs: (600, 900),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let old = daemon::user_task_id(&env.spec("g.toml"));
    env.run_until(utc(2026, 11, 2, 10, 30), Duration::minutes(10))
        .await;
    env.write(
        "g.toml",
        &format!("generation = 2\n{}", always_open("GEN", "g.csv", 50, 1)),
    );
    env.clock.advance(Duration::minutes(1));
    let bumped_at = env.now();
    let out = env.step().await;
    let c = out.campaign("g").unwrap();
    assert_eq!(c.error, None, "{c:?}");
    let new_spec = env.spec("g.toml");
    let new = daemon::user_task_id(&new_spec);
    assert_ne!(old, new);
    assert_eq!(
        env.sim.task(&old).unwrap().status,
        3,
        "the old generation's task is completed"
    );
    assert_eq!(env.sim.task(&new).unwrap().status, 2);
    env.run_until(utc(2026, 11, 2, 12, 0), Duration::minutes(10))
        .await;
    assert!(
        env.sim
            .call_log()
            .iter()
            .filter(|c| c.user_task_id == old)
            .all(|c| c.start_utc <= bumped_at)
    );
    let accepted = env
        .sim
        .submissions()
        .iter()
        .filter(|s| s.accepted && s.user_task_id == new)
        .count();
    assert_eq!(
        accepted, 30,
        "the new generation calls every contact again, once"
    );
}

async fn two_replicas_share_a_store_and_one_owns_each_campaign(backend: Backend) {
    let files = [
        ("l.toml", always_open("L", "l.csv", 10, 1)),
        ("l.csv", contacts_csv(25)),
    ];
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, Options::default()).await;
    let spec = env.spec("l.toml");
    let mut config = env.config.clone();
    config.owner = "replica-b".into();
    let hub_b = std::sync::Arc::new(daemon::Hub::new(daemon::Metrics::new()));
    let mut b = daemon::Daemon::new(
        env.store.clone(),
        daemon_support::client(&env.sim_url, &env.clock, 3),
        env.clock.shared(),
        hub_b,
        config,
    );
    let out_a = env.step().await;
    let out_b = b.reconcile_once(env.now()).await;
    assert!(!out_a.campaign("l").unwrap().not_owner);
    let cb = out_b.campaign("l").unwrap();
    assert!(cb.not_owner, "{cb:?}");
    assert_eq!(cb.why, "owned by another replica");
    // The owner stops (its lease lapses): the other replica takes over and does not redo anything.
    env.clock.advance(Duration::minutes(5));
    let out_b = b.reconcile_once(env.now()).await;
    let cb = out_b.campaign("l").unwrap();
    assert!(!cb.not_owner);
    assert_eq!(cb.error, None);
    let accepted = assert_no_harm(&env.sim, &[spec]);
    assert_eq!(accepted.values().sum::<usize>(), 25);
    assert_eq!(env.sim.tasks().len(), 1);
}

async fn a_missing_csv_never_keeps_the_calendar_from_being_enforced(backend: Backend) {
    let toml = always_open("M", "m.csv", 10, 1).replace(
        "timezone = \"UTC\"",
        "timezone = \"UTC\"\nend = 2026-11-02T12:00:00",
    );
    let files = [("m.toml", toml), ("m.csv", contacts_csv(20))];
    let opts = Options {
        talk_secs: (600, 900),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let ut = daemon::user_task_id(&env.spec("m.toml"));
    env.step().await;
    assert_eq!(env.sim.task(&ut).unwrap().status, 2);
    env.remove("m.csv");
    env.clock.advance(Duration::minutes(30));
    let out = env.step().await;
    let c = out.campaign("m").unwrap();
    assert!(
        c.file_error.is_some(),
        "the file no longer validates without its CSV: {c:?}"
    );
    assert_eq!(
        c.task,
        TaskState::Running,
        "the last good version keeps running"
    );
    env.clock.set(utc(2026, 11, 2, 12, 0));
    let out = env.step().await;
    assert_eq!(out.campaign("m").unwrap().task, TaskState::Completed);
    assert_eq!(
        env.sim.task(&ut).unwrap().status,
        3,
        "completed at end despite the missing CSV"
    );
}

async fn a_pause_never_waits_for_orders_in_doubt(backend: Backend) {
    let files = [
        ("d.toml", always_open("D", "d.csv", 10, 1)),
        ("d.csv", contacts_csv(10)),
    ];
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, Options::default()).await;
    let ut = daemon::user_task_id(&env.spec("d.toml"));
    env.config.resolve_grace = Duration::minutes(10);
    env.restart();
    env.step().await;
    assert_eq!(env.sim.task(&ut).unwrap().status, 2);
    // New rows whose upload is left in doubt (dropped, not applied).
    env.write("d.csv", &contacts_csv(15));
    env.sim.push_fault(ForcedFault {
        kind: FaultKind::DropAfterRead,
        endpoint: Some("addBatchCall".into()),
        applied: false,
    });
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    assert_eq!(
        env.store
            .orders_in_state(&ut, UploadState::Sending, 100)
            .await
            .unwrap()
            .len(),
        5
    );
    // Paused in the file while the doubt is still too young to ask about: the pause goes out at once.
    env.write(
        "d.toml",
        &always_open("D", "d.csv", 10, 1).replace("robots = 1", "robots = 1\npaused = true"),
    );
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    let c = out.campaign("d").unwrap();
    assert!(c.done.contains(&"pause".to_string()), "{c:?}");
    assert_eq!(env.sim.task(&ut).unwrap().status, 5);
    assert_eq!(
        c.orders.sending, 5,
        "still in doubt until the grace has passed"
    );
    // After the grace the doubt is resolved (not found: planned again) and uploaded exactly once.
    env.clock.advance(Duration::minutes(10));
    env.step().await;
    let accepted = env
        .sim
        .submissions()
        .iter()
        .filter(|s| s.accepted && s.user_task_id == ut)
        .count();
    assert_eq!(accepted, 15);
}

/// Every mgrTaskStatus is applied and its answer lost, and so is every listTask that would tell the daemon what
/// happened (as when the daemon is killed with the request on its way).
fn lose_toggle_answers(env: &Env) {
    env.sim.set_faults(FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::DropAfterRead],
        endpoints: vec!["mgrTaskStatus".into(), "listTask".into()],
        drop_applies: DropApplies::Always,
        ..FaultConfig::default()
    });
}

async fn a_start_or_pause_whose_outcome_was_lost_is_asked_about_not_assumed(backend: Backend) {
    let running = always_open("T", "t.csv", 10, 1);
    let paused = running.replace("robots = 1", "robots = 1\npaused = true");
    let files = [("t.toml", running.clone()), ("t.csv", contacts_csv(10))];
    let opts = Options {
        talk_secs: (600, 900),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let ut = daemon::user_task_id(&env.spec("t.toml"));

    // The start is applied but the daemon never learns it: the store still has the task pending.
    lose_toggle_answers(&env);
    env.step().await;
    assert_eq!(
        env.sim.task(&ut).unwrap().status,
        2,
        "the start was applied"
    );
    // Paused in the file: the task may be running, so it is paused at once, before the platform is asked.
    env.sim.set_faults(FaultConfig::default());
    env.write("t.toml", &paused);
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    assert_eq!(
        env.sim.task(&ut).unwrap().status,
        5,
        "a task that may be running is paused when the file says so: {:?}",
        out.campaign("t")
    );

    // Unpaused in the file: started again, and the store knows it.
    env.write("t.toml", &running);
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    assert_eq!(env.sim.task(&ut).unwrap().status, 2);
    // Paused in the file, the pause applied and its answer lost: the store still has the task running.
    lose_toggle_answers(&env);
    env.write("t.toml", &paused);
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    assert_eq!(
        env.sim.task(&ut).unwrap().status,
        5,
        "the pause was applied"
    );
    // Unpaused again: the daemon asks, finds the task paused and starts it, rather than trust its stored "running"
    // and leave the campaign stopped for good.
    env.sim.set_faults(FaultConfig::default());
    env.write("t.toml", &running);
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    let c = out.campaign("t").unwrap();
    assert_eq!(c.task, TaskState::Running, "{c:?}");
    assert_eq!(env.sim.task(&ut).unwrap().status, 2, "started again");
}

#[test]
fn fixture_phone_numbers_are_valid_and_distinct() {
    let mut seen = std::collections::HashSet::new();
    for i in 0..1400 {
        let raw = daemon_support::phone(i);
        let n = campaign::normalize_phone(&raw, None);
        assert!(n.is_ok(), "{raw}: {n:?}");
        assert!(seen.insert(n.unwrap()));
    }
}

async fn reconciles_only_the_campaigns_that_changed_or_are_due(backend: Backend) {
    let files = [
        ("a.toml", always_open("A", "a.csv", 10, 1)),
        ("a.csv", contacts_csv(3)),
        ("b.toml", always_open("B", "b.csv", 10, 1)),
        ("b.csv", contacts_csv(3)),
        ("c.toml", always_open("C", "c.csv", 10, 1)),
        ("c.csv", contacts_csv(3)),
    ];
    let opts = Options {
        poll_interval: Duration::minutes(20),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, opts).await;
    let out = env.step().await;
    assert_eq!(
        out.reconciled,
        ["a", "b", "c"],
        "every new campaign is reconciled"
    );
    assert!(
        out.campaigns
            .iter()
            .all(|c| c.task == TaskState::Running && c.error.is_none()),
        "{out:?}"
    );

    // Nothing changed and nothing is due: nothing is reconciled, every campaign still reports its last outcome.
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    assert!(out.reconciled.is_empty(), "{:?}", out.reconciled);
    assert_eq!(out.campaigns.len(), 3);
    assert!(out.campaigns.iter().all(|c| c.task == TaskState::Running));

    // One file changes: only its campaign is reconciled, and it acts on the change.
    env.write(
        "b.toml",
        &always_open("B", "b.csv", 10, 1).replace("robots = 1", "robots = 1\npaused = true"),
    );
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    assert_eq!(out.reconciled, ["b"]);
    assert_eq!(out.campaign("b").unwrap().plan.why, Why::PausedInFile);
    assert_eq!(out.campaign("b").unwrap().task, TaskState::Paused);

    // A contacts file grows: only that campaign is reconciled, and the new row is planned and uploaded.
    env.write("a.csv", &contacts_csv(4));
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    assert_eq!(out.reconciled, ["a"]);
    assert_eq!(out.campaign("a").unwrap().orders.sent, 4);

    // The poll interval comes round: the campaigns with unfinished orders are due again.
    env.clock.advance(Duration::minutes(20));
    let out = env.step().await;
    assert!(
        out.reconciled.contains(&"c".to_owned()),
        "{:?}",
        out.reconciled
    );
    assert_no_harm(
        &env.sim,
        &[env.spec("a.toml"), env.spec("b.toml"), env.spec("c.toml")],
    );
}
