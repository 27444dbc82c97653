//! Task callbacks go down the store's path: a terminal status reported by the platform is durable before its 200,
//! survives a daemon that dies right after answering, reaches the replica that owns the campaign wherever it was
//! received, and is never undone by the daemon's own later writes.

#[macro_use]
mod daemon_support;

use daemon_support::utc;
mod webhook_support;

use callbot_api::Algorithm;
use chrono::{DateTime, Duration, Utc};
use daemon::TaskState;
use daemon_support::{Backend, Env, Options, SECRET, contacts_csv};
use tokio::net::TcpListener;

fn always_open() -> String {
    r#"
scene_id = "SC-TASK"
robots = 1

[schedule]
timezone = "UTC"
# Not a test of the legal calling hours (daemon_zones.rs is): the calendar alone decides.
rules = []
windows = [{ days = "mon-sun", hours = ["00:00-24:00"] }]

[contacts]
file = "t.csv"
variables = ["amount"]
batch_size = 10
"#
    .to_owned()
}

/// A task callback as the platform sends it, reporting `status` for `ut`.
fn task_callback(ut: &str, status: i64) -> Vec<u8> {
    serde_json::json!({
        "callbackType": 1,
        "userTaskID": ut,
        "taskID": "platform-task",
        "sceneID": "SC-TASK",
        "taskStatus": status,
        "createTs": 0,
    })
    .to_string()
    .into_bytes()
}

async fn post_task_callback(webhook_url: &str, body: &[u8], now: DateTime<Utc>, rid: &str) -> u16 {
    webhook_support::post_signed(
        &format!("{webhook_url}/callbacks/task"),
        body,
        SECRET,
        Algorithm::Md5,
        true,
        now.timestamp(),
        rid,
    )
    .await
}

both_backends!(
    a_terminal_task_callback_survives_a_crash_right_after_its_answer,
    a_task_callback_at_a_replica_that_does_not_own_the_campaign_reaches_the_owner,
    a_terminal_status_is_never_undone_by_a_later_callback_or_toggle,
);

async fn a_terminal_task_callback_survives_a_crash_right_after_its_answer(backend: Backend) {
    let files = [("t.toml", always_open()), ("t.csv", contacts_csv(20))];
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, Options::default()).await;
    let ut = daemon::user_task_id(&env.spec("t.toml"));
    let out = env.step().await;
    assert_eq!(out.campaign("t").unwrap().task, TaskState::Running);

    let status =
        post_task_callback(&env.webhook_url, &task_callback(&ut, 4), env.now(), "r-1").await;
    assert_eq!(status, 200);
    // The daemon dies right after the answer (nothing of it survives but the store) and starts again.
    env.restart();
    env.clock.advance(Duration::seconds(1));
    let out = env.step().await;
    let c = out.campaign("t").unwrap();
    assert_eq!(c.task, TaskState::Failed, "{c:?}");
    assert!(
        !c.done.iter().any(|a| a == "start" || a == "pause"),
        "an ended task is not toggled: {c:?}"
    );
    let record = env
        .store
        .campaigns()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == "t")
        .unwrap();
    assert_eq!(record.state, "done", "the campaign is recorded as finished");
}

async fn a_task_callback_at_a_replica_that_does_not_own_the_campaign_reaches_the_owner(
    backend: Backend,
) {
    let files = [("t.toml", always_open()), ("t.csv", contacts_csv(20))];
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, Options::default()).await;
    let ut = daemon::user_task_id(&env.spec("t.toml"));
    let out = env.step().await;
    assert_eq!(out.campaign("t").unwrap().task, TaskState::Running);

    // Replica B: its own hub and webhook on the same store; it does not own the campaign.
    let mut config = env.config.clone();
    config.owner = "replica-b".into();
    let hub_b = std::sync::Arc::new(daemon::Hub::new(daemon::Metrics::new()));
    let mut b = daemon::Daemon::new(
        env.store.clone(),
        daemon_support::client(&env.sim_url, &env.clock, 3),
        env.clock.shared(),
        hub_b.clone(),
        config,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_url = format!("http://{}", listener.local_addr().unwrap());
    let webhook_b = daemon::Webhook::new(
        env.store.clone(),
        callbot_api::sign::SecretKey::new(SECRET.into()),
        env.clock.shared(),
        hub_b,
    );
    tokio::spawn(webhook_b.run(listener, env.shutdown.clone()));
    assert!(
        b.reconcile_once(env.now())
            .await
            .campaign("t")
            .unwrap()
            .not_owner
    );

    let status = post_task_callback(&b_url, &task_callback(&ut, 3), env.now(), "r-2").await;
    assert_eq!(status, 200);
    // The owner learns it at its next reconcile of the campaign, at most five minutes later.
    let deadline = env.now() + Duration::minutes(5);
    let mut seen = None;
    for out in env.run_until(deadline, Duration::minutes(1)).await {
        if let Some(c) = out.campaign("t")
            && c.task == TaskState::Completed
        {
            seen = Some(c.clone());
            break;
        }
    }
    let c = seen.expect("the owner saw the completed status within five minutes");
    assert!(!c.not_owner);
    let again = b.reconcile_once(env.now()).await;
    assert!(
        again.campaign("t").unwrap().not_owner,
        "B still does not own it"
    );
}

async fn a_terminal_status_is_never_undone_by_a_later_callback_or_toggle(backend: Backend) {
    let files = [("t.toml", always_open()), ("t.csv", contacts_csv(20))];
    let mut env = Env::new(backend, utc(2026, 11, 2, 10, 0), &files, Options::default()).await;
    let ut = daemon::user_task_id(&env.spec("t.toml"));
    env.step().await;
    let now = env.now();
    assert_eq!(
        post_task_callback(&env.webhook_url, &task_callback(&ut, 3), now, "r-3").await,
        200
    );
    // A late "running" and a late "ended": neither replaces the first terminal status.
    assert_eq!(
        post_task_callback(&env.webhook_url, &task_callback(&ut, 2), now, "r-4").await,
        200
    );
    assert_eq!(
        post_task_callback(&env.webhook_url, &task_callback(&ut, 4), now, "r-5").await,
        200
    );
    // The daemon's own narrow writes do not undo it either.
    env.store
        .task_status_observed(&ut, 5, None, now)
        .await
        .unwrap();
    env.store.task_not_created(&ut, now).await.unwrap();
    let task = env
        .store
        .tasks("t")
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.user_task_id == ut)
        .unwrap();
    assert_eq!(task.platform_status, Some(3));
    env.clock.advance(Duration::seconds(1));
    let out = env.step().await;
    assert_eq!(out.campaign("t").unwrap().task, TaskState::Completed);
}
