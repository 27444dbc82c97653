//! Consent end to end, on both stores, against the simulator: a suppressed number is never uploaded; a number
//! suppressed after its upload is stopped and never dialled; an opt-out intent heard in one campaign's call stops the
//! number's orders in another campaign and keeps it out of later ones. In every test nobody is dialled twice for the
//! same order and nobody outside the calendar (the referee).

#[macro_use]
mod daemon_support;

use daemon_support::utc;

use std::collections::HashSet;

use callbot_sim::{OrderState, Outcome};
use chrono::{DateTime, Duration, Utc};
use daemon_support::{Backend, Env, Options, assert_no_harm, contacts_csv, phone};
use store::{Suppression, SuppressionFilter};

/// A campaign dialling every day between `hours` (UTC), with `opt_out` intents.
fn campaign(csv: &str, hours: &str, opt_out: &[&str]) -> String {
    let intents: Vec<String> = opt_out.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        r#"
scene_id = "SC-CONSENT"
robots = 2

[schedule]
timezone = "UTC"
# Not a test of the legal calling hours (daemon_zones.rs is): the calendar alone decides.
rules = []
windows = [{{ days = "mon-sun", hours = ["{hours}"] }}]

[opt_out]
intents = [{}]

[contacts]
file = "{csv}"
variables = ["amount"]
batch_size = 10
"#,
        intents.join(", ")
    )
}

fn norm(i: usize) -> String {
    campaign::normalize_phone(&phone(i), None).unwrap()
}

fn cli_entry(i: usize, at: DateTime<Utc>) -> Suppression {
    Suppression {
        phone: norm(i),
        source: "cli".into(),
        reason: Some("asked not to be called".into()),
        expires_at: None,
        added_at: at,
    }
}

/// The phones (normalised) the simulator accepted for a task, and the ones it dialled.
fn uploaded(env: &Env, ut: &str) -> HashSet<String> {
    env.sim
        .submissions()
        .into_iter()
        .filter(|s| s.accepted && s.user_task_id == ut)
        .map(|s| s.phone)
        .collect()
}

fn dialled(env: &Env, ut: &str) -> HashSet<String> {
    env.sim
        .call_log()
        .into_iter()
        .filter(|c| c.user_task_id == ut)
        .map(|c| c.phone)
        .collect()
}

both_backends!(
    a_suppressed_number_is_never_uploaded,
    a_number_suppressed_after_upload_is_stopped_and_never_dialled,
    an_opt_out_in_one_campaign_stops_another_and_keeps_the_number_out_of_later_ones,
    a_suppression_file_is_applied_and_its_removal_lifts_it,
    two_campaigns_that_share_numbers_respect_a_daily_cap_together,
);

async fn a_suppressed_number_is_never_uploaded(backend: Backend) {
    let start = utc(2026, 11, 2, 10, 0);
    let files = [
        ("s.toml", campaign("s.csv", "00:00-24:00", &[])),
        ("s.csv", contacts_csv(12)),
    ];
    let mut env = Env::new(backend, start, &files, Options::default()).await;
    env.store
        .suppress(&[cli_entry(3, start), cli_entry(7, start)])
        .await
        .unwrap();
    let spec = env.spec("s.toml");
    let ut = daemon::user_task_id(&spec);
    env.run_until(start + Duration::hours(2), Duration::minutes(10))
        .await;
    let up = uploaded(&env, &ut);
    assert_eq!(up.len(), 10, "{up:?}");
    assert!(!up.contains(&norm(3)) && !up.contains(&norm(7)));
    let counts = env.store.order_counts("s").await.unwrap();
    assert_eq!(counts.suppressed, 2, "{counts:?}");
    // The report counts them as suppressed, with the entry's reason.
    let report = env
        .store
        .report(&store::ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(
        report.rejected,
        [store::RejectedRow {
            campaign_id: "s".into(),
            kind: "suppressed".into(),
            reason: "asked not to be called".into(),
            orders: 2,
        }]
    );
    assert_no_harm(&env.sim, &[spec]);
}

async fn a_number_suppressed_after_upload_is_stopped_and_never_dialled(backend: Backend) {
    let start = utc(2026, 11, 2, 10, 0);
    // The window opens at 12:00: everything is uploaded before any call.
    let files = [
        ("l.toml", campaign("l.csv", "12:00-14:00", &[])),
        ("l.csv", contacts_csv(12)),
    ];
    let mut env = Env::new(backend, start, &files, Options::default()).await;
    let spec = env.spec("l.toml");
    let ut = daemon::user_task_id(&spec);
    env.step().await;
    assert_eq!(uploaded(&env, &ut).len(), 12);

    env.clock.set(start + Duration::minutes(5));
    env.store
        .suppress(&[cli_entry(4, start + Duration::minutes(5))])
        .await
        .unwrap();
    // Within one reconcile of the change: the order is stopped on the platform.
    env.step().await;
    let order = env
        .sim
        .orders()
        .into_iter()
        .find(|o| o.user_task_id == ut && o.phone == norm(4))
        .unwrap();
    assert_eq!(order.state, OrderState::Stopped);

    env.run_until(utc(2026, 11, 2, 14, 30), Duration::minutes(10))
        .await;
    let called = dialled(&env, &ut);
    assert!(
        !called.contains(&norm(4)),
        "the suppressed number was dialled"
    );
    assert!(
        called.len() >= 10,
        "the others are dialled: {}",
        called.len()
    );
    assert_no_harm(&env.sim, &[spec]);
}

async fn an_opt_out_in_one_campaign_stops_another_and_keeps_the_number_out_of_later_ones(
    backend: Backend,
) {
    let start = utc(2026, 11, 2, 10, 0);
    let files = [
        // A dials at once and listens for "Not interested"; B shares its contacts and dials from 12:00.
        (
            "a.toml",
            campaign("a.csv", "00:00-24:00", &["Not interested", "D"]),
        ),
        ("a.csv", contacts_csv(24)),
        ("b.toml", campaign("b.csv", "12:00-14:00", &[])),
        ("b.csv", contacts_csv(24)),
    ];
    let opts = Options {
        weights: Some(vec![(Outcome::Answered, 1.0)]),
        talk_secs: (30, 60),
        ..Options::default()
    };
    let mut env = Env::new(backend, start, &files, opts).await;
    let (a, b) = (env.spec("a.toml"), env.spec("b.toml"));
    let (ua, ub) = (daemon::user_task_id(&a), daemon::user_task_id(&b));
    env.run_until(start + Duration::minutes(90), Duration::minutes(5))
        .await;
    assert_eq!(uploaded(&env, &ub).len(), 24, "B uploaded everything early");

    let opted: HashSet<String> = env
        .store
        .suppressions(&SuppressionFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.source.starts_with("opt_out:a:"))
        .map(|s| s.phone)
        .collect();
    assert!(
        !opted.is_empty(),
        "some of A's 24 answered calls carried an opt-out intent (by name or by ID): {:?}",
        env.store.order_counts("a").await.unwrap()
    );
    // B's orders of those numbers are stopped before B ever dials.
    for o in env
        .sim
        .orders()
        .into_iter()
        .filter(|o| o.user_task_id == ub)
    {
        if opted.contains(&o.phone) {
            assert_eq!(o.state, OrderState::Stopped, "{o:?}");
        }
    }
    env.run_until(utc(2026, 11, 2, 14, 30), Duration::minutes(10))
        .await;
    let called_b = dialled(&env, &ub);
    assert!(
        called_b.is_disjoint(&opted),
        "B dialled a number that opted out"
    );
    assert!(!called_b.is_empty());

    // A later campaign over the same contacts never uploads them.
    env.write("c.toml", &campaign("c.csv", "00:00-24:00", &[]));
    env.write("c.csv", &contacts_csv(24));
    let c = env.spec("c.toml");
    let uc = daemon::user_task_id(&c);
    env.clock.advance(Duration::minutes(1));
    env.run_until(env.now() + Duration::minutes(30), Duration::minutes(5))
        .await;
    let up_c = uploaded(&env, &uc);
    assert_eq!(up_c.len(), 24 - opted.len());
    assert!(up_c.is_disjoint(&opted));
    assert_no_harm(&env.sim, &[a, b, c]);
    let _ = ua;
}

async fn a_suppression_file_is_applied_and_its_removal_lifts_it(backend: Backend) {
    let start = utc(2026, 11, 2, 10, 0);
    // The window opens at 12:00, so the file can be read before anything is dialled.
    let files = [
        ("f.toml", campaign("f.csv", "12:00-14:00", &[])),
        ("f.csv", contacts_csv(8)),
    ];
    let mut env = Env::new(backend, start, &files, Options::default()).await;
    let dir = env.dir.path().join("suppress");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("dnc.csv"),
        format!("phone,reason\n{},asked\nnot a phone,x\n", phone(2)),
    )
    .unwrap();
    env.config.suppression = Some(daemon::SuppressionConfig {
        dir: dir.clone(),
        default_country: None,
        limits: campaign::ContactLimits::default(),
    });
    env.restart();
    let spec = env.spec("f.toml");
    let ut = daemon::user_task_id(&spec);
    env.step().await;
    let listed = env
        .store
        .suppressions(&SuppressionFilter::default())
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the bad row is left out, the good one counts"
    );
    assert_eq!(
        (listed[0].phone.as_str(), listed[0].source.as_str()),
        (norm(2).as_str(), "file:dnc.csv")
    );
    let up = uploaded(&env, &ut);
    assert_eq!(up.len(), 7);
    assert!(!up.contains(&norm(2)));

    std::fs::remove_file(dir.join("dnc.csv")).unwrap();
    env.clock.advance(Duration::minutes(1));
    env.step().await;
    assert!(
        env.store
            .suppressions(&SuppressionFilter::default())
            .await
            .unwrap()
            .is_empty(),
        "a removed file's entries go"
    );
    assert_no_harm(&env.sim, &[spec]);
}

async fn two_campaigns_that_share_numbers_respect_a_daily_cap_together(backend: Backend) {
    let start = utc(2026, 11, 2, 10, 0);
    let files = [
        ("a.toml", campaign("a.csv", "00:00-24:00", &[])),
        ("a.csv", contacts_csv(6)),
        ("b.toml", campaign("b.csv", "00:00-24:00", &[])),
        ("b.csv", contacts_csv(6)),
    ];
    let opts = Options {
        weights: Some(vec![(Outcome::Answered, 1.0)]),
        talk_secs: (30, 60),
        ..Options::default()
    };
    let mut env = Env::new(backend, start, &files, opts).await;
    env.config.caps = vec![campaign::CapRule {
        within_secs: 86_400,
        max: 1,
    }];
    env.restart();
    let (a, b) = (env.spec("a.toml"), env.spec("b.toml"));
    let (ua, ub) = (daemon::user_task_id(&a), daemon::user_task_id(&b));
    env.run_until(start + Duration::hours(23), Duration::hours(1))
        .await;
    assert_eq!(
        dialled(&env, &ua).len(),
        6,
        "A, reconciled first, dials everyone"
    );
    assert!(
        dialled(&env, &ub).is_empty(),
        "B holds every shared number while A's call is within 24 h"
    );
    assert!(
        uploaded(&env, &ub).is_empty(),
        "held numbers are not even uploaded"
    );
    let out = env.step().await;
    assert!(out.campaign("b").unwrap().error.is_none());
    // `campaignd report` shows them, with the caps of its configuration (here from the environment).
    let report = std::process::Command::new(daemon_support::campaignd_bin())
        .args(["report", "--store", &env.store_url, "--view", "held"])
        .args(["--format", "json", "--now", &env.now().to_rfc3339()])
        .env(
            "CAMPAIGND_CAPS__ATTEMPTS",
            r#"[{ within = "24h", max = 1 }]"#,
        )
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        report.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let held: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{held}");
    assert_eq!(held[0]["campaign_id"], "b", "{held}");
    assert_eq!(held[0]["numbers"], 6, "{held}");
    assert!(held[0]["until"].is_string(), "{held}");

    env.run_until(start + Duration::hours(26), Duration::hours(1))
        .await;
    assert_eq!(
        dialled(&env, &ub).len(),
        6,
        "released once A's calls leave the window"
    );
    // Nobody got two calls within any 24 hours.
    let mut calls: Vec<(String, DateTime<Utc>)> = env
        .sim
        .call_log()
        .into_iter()
        .map(|c| (c.phone, c.start_utc))
        .collect();
    calls.sort();
    for w in calls.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(
                w[1].1 - w[0].1 >= Duration::hours(24),
                "{} called at {} and {}",
                w[0].0,
                w[0].1,
                w[1].1
            );
        }
    }
    assert_no_harm(&env.sim, &[a, b]);
}
