//! Retry rounds end to end, on both stores, against the simulator: busy numbers are dialled again after the delay and
//! no sooner, at most `max_attempts` times in all; unanswered ones by their own rule; answered numbers never again;
//! a retry of a number suppressed meanwhile is never uploaded; a retry that falls due outside the calendar waits for
//! the next window. The referee checks every call against the calendar and every repeated phone against `[retry]`.

#[macro_use]
mod daemon_support;

use daemon_support::utc;

use callbot_sim::Outcome;
use chrono::Duration;
use daemon_support::{Backend, Env, Options, assert_no_harm, contacts_csv, phone};
use store::{Suppression, UploadState};

const CAMPAIGN: &str = r#"
scene_id = "SC-RETRY"
robots = 2

[schedule]
timezone = "UTC"
# Not a test of the legal calling hours (daemon_zones.rs is): the calendar alone decides.
rules = []
windows = [{ days = "mon-sun", hours = ["09:00-17:00"] }]

[retry]
busy      = { after = "30m", max_attempts = 3 }
no_answer = { after = "8h",  max_attempts = 2 }

[contacts]
file = "r.csv"
variables = ["amount"]
batch_size = 10
"#;

fn norm(i: usize) -> String {
    campaign::normalize_phone(&phone(i), None).unwrap()
}

/// The simulator's accepted orders of one phone in the task, in upload order.
fn attempts_of(env: &Env, ut: &str, i: usize) -> Vec<callbot_sim::Submission> {
    env.sim
        .submissions()
        .into_iter()
        .filter(|s| s.accepted && s.user_task_id == ut && s.phone == norm(i))
        .collect()
}

fn calls_of(env: &Env, ut: &str, i: usize) -> Vec<callbot_sim::CallRecord> {
    env.sim
        .call_log()
        .into_iter()
        .filter(|c| c.user_task_id == ut && c.phone == norm(i))
        .collect()
}

/// `report_attempts` of the campaign, read as a dashboard would: (phone, attempts, outcome).
async fn attempts_view(env: &Env) -> Vec<(String, i64, String)> {
    let sql = "SELECT phone, attempts, outcome FROM report_attempts WHERE campaign_id = 'r' ORDER BY phone";
    if env.store_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&env.store_url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&env.store_url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    }
}

both_backends!(busy_and_unanswered_numbers_are_retried_on_their_rules_and_answered_ones_never,);

async fn busy_and_unanswered_numbers_are_retried_on_their_rules_and_answered_ones_never(
    backend: Backend,
) {
    let start = utc(2026, 11, 2, 8, 50);
    let files = [("r.toml", CAMPAIGN.to_owned()), ("r.csv", contacts_csv(8))];
    let opts = Options {
        weights: Some(vec![(Outcome::Answered, 1.0)]),
        forced: vec![
            (norm(0), Outcome::Busy),
            (norm(1), Outcome::Busy),
            (norm(2), Outcome::NoAnswer),
            (norm(3), Outcome::Unreachable),
            (norm(5), Outcome::Busy),
        ],
        ..Options::default()
    };
    let mut env = Env::new(backend, start, &files, opts).await;
    let spec = env.spec("r.toml");
    let ut = daemon::user_task_id(&spec);

    // Until 09:20: every contact dialled once; none of the busy ones again within 30 minutes of its call.
    env.run_until(utc(2026, 11, 2, 9, 20), Duration::minutes(2))
        .await;
    for i in 0..8 {
        assert_eq!(attempts_of(&env, &ut, i).len(), 1, "phone {i}");
    }
    // Phone 5 says no after its first busy call: its retry is planned suppressed and never uploaded.
    env.store
        .suppress(&[Suppression {
            phone: norm(5),
            source: "cli".into(),
            reason: Some("asked not to be called".into()),
            expires_at: None,
            added_at: env.now(),
        }])
        .await
        .unwrap();

    // Through the day and into the next morning: the no-answer retry falls due 8 hours after a call made just after
    // 09:00, past the window's close at 17:00, so it waits for the next morning's window.
    env.run_until(utc(2026, 11, 3, 12, 0), Duration::minutes(5))
        .await;
    for i in [0, 1] {
        let subs = attempts_of(&env, &ut, i);
        assert_eq!(subs.len(), 3, "busy phone {i}: three attempts in all");
        assert_eq!(
            calls_of(&env, &ut, i).len(),
            3,
            "busy phone {i}: one call each"
        );
        let ids: Vec<String> = subs.iter().map(|s| s.order_id.clone()).collect();
        let expected: Vec<String> = (1..=3)
            .map(|n| campaign::attempt_order_id(&spec.id, spec.generation, &norm(i), n))
            .collect();
        assert_eq!(
            ids, expected,
            "deterministic attempt IDs, the first the usual one"
        );
    }
    assert_eq!(
        attempts_of(&env, &ut, 2).len(),
        2,
        "no answer: two attempts in all"
    );
    assert_eq!(
        attempts_of(&env, &ut, 3).len(),
        1,
        "unreachable: no [retry] rule"
    );
    assert_eq!(
        attempts_of(&env, &ut, 5).len(),
        1,
        "suppressed: the retry never leaves"
    );
    for i in [4, 6, 7] {
        assert_eq!(attempts_of(&env, &ut, i).len(), 1, "answered phone {i}");
        assert_eq!(calls_of(&env, &ut, i).len(), 1, "answered phone {i}");
    }
    let second_of_5 = campaign::attempt_order_id(&spec.id, spec.generation, &norm(5), 2);
    let stored = env.store.order(&second_of_5).await.unwrap().unwrap();
    assert_eq!(
        (stored.attempt, stored.upload_state),
        (2, UploadState::Rejected)
    );
    let third_of_0 = campaign::attempt_order_id(&spec.id, spec.generation, &norm(0), 3);
    let stored = env.store.order(&third_of_0).await.unwrap().unwrap();
    assert_eq!(
        (stored.attempt, stored.finished, stored.last_call_status),
        (3, true, Some(10))
    );
    // The report view: each contact's attempts and the last one's outcome.
    let view = attempts_view(&env).await;
    let row = |i: usize| {
        view.iter()
            .find(|(p, _, _)| *p == norm(i))
            .map(|(_, n, o)| (*n, o.as_str()))
            .unwrap()
    };
    assert_eq!(row(0), (3, "busy"));
    assert_eq!(row(2), (2, "ring missed"));
    assert_eq!(row(3), (1, "temporarily unreachable"));
    assert_eq!(row(4), (1, "completed (answered)"));
    assert_eq!(row(5), (2, "not uploaded"));
    assert_eq!(view.len(), 8);
    // The task is not completed while retries may follow, and every call stayed in the calendar (referee).
    assert_no_harm(&env.sim, &[spec]);
    let out = env.step().await;
    let c = out.campaigns.iter().find(|c| c.id == "r").unwrap();
    assert!(c.task.is_live(), "{c:?}");
}
