//! Recurring campaigns end to end, on both stores, on a manual clock: a monthly campaign runs twelve rounds across
//! both DST changes of its zone. Each round dials its contacts once, inside its own calendar; the previous round is
//! completed by the next occurrence at the latest; a restart at an occurrence still makes one round; and a cap of one call per 30
//! days holds across rounds (March's round waits for February's calls to leave the window).

#[macro_use]
mod daemon_support;

use daemon_support::utc;

use std::collections::BTreeMap;

use callbot_sim::Outcome;
use chrono::{DateTime, Duration, Utc};
use daemon_support::{Backend, Env, Options, assert_no_harm, contacts_csv};

const CAMPAIGN: &str = r#"
scene_id = "SC-ROUNDS"
robots = 3

[schedule]
timezone = "America/New_York"
start = 2027-01-01T00:00:00
repeat = "0 9 1 * *"
windows = [{ days = "mon-sun", hours = ["09:00-17:00"] }]

[caps]
attempts = [{ within = "30d", max = 1 }]

[contacts]
file = "m.csv"
variables = ["amount"]
batch_size = 4
"#;

const CONTACTS: usize = 6;

/// Steps until every contact of the round's task has a finished call (or `until`).
async fn run_round(env: &mut Env, ut: &str, until: DateTime<Utc>) {
    loop {
        env.run_until(env.now() + Duration::minutes(30), Duration::minutes(10))
            .await;
        let done = env
            .sim
            .call_log()
            .iter()
            .filter(|c| c.user_task_id == ut && c.end_utc.is_some())
            .count();
        if done >= CONTACTS || env.now() >= until {
            return;
        }
    }
}

both_backends!(
    a_monthly_campaign_runs_twelve_rounds_across_both_dst_changes,
    a_kept_round_runs_out_before_the_next_one_starts,
);

async fn a_monthly_campaign_runs_twelve_rounds_across_both_dst_changes(backend: Backend) {
    let start = utc(2026, 12, 31, 12, 0);
    let files = [
        ("m.toml", CAMPAIGN.to_owned()),
        ("m.csv", contacts_csv(CONTACTS)),
    ];
    let opts = Options {
        weights: Some(vec![(Outcome::Answered, 1.0)]),
        ..Options::default()
    };
    let mut env = Env::new(backend, start, &files, opts).await;
    let file = env.spec("m.toml");
    let rounds: Vec<campaign::Round> = (1..=12).map(|n| file.round(n).unwrap()).collect();
    let specs: Vec<campaign::CampaignSpec> = rounds.iter().map(|r| file.for_round(r)).collect();
    let uts: Vec<String> = specs.iter().map(daemon::user_task_id).collect();
    // 09:00 in New York: 14:00 UTC in winter, 13:00 UTC from March 14 to November 7, 2027.
    assert_eq!(rounds[0].starts, utc(2027, 1, 1, 14, 0));
    assert_eq!(rounds[5].starts, utc(2027, 6, 1, 13, 0));
    assert_eq!(rounds[11].starts, utc(2027, 12, 1, 14, 0));

    for (i, round) in rounds.iter().enumerate() {
        env.clock.set(round.starts - Duration::hours(1));
        if i == 5 {
            // A crash at the occurrence: the round starts, the daemon dies after its first step, a new one goes on.
            env.run_until(round.starts, Duration::minutes(10)).await;
            env.restart();
        }
        run_round(&mut env, &uts[i], round.starts + Duration::days(4)).await;
    }
    // December's round is completed once its calendar is over, before January's occurrence starts the next.
    env.clock.set(utc(2028, 1, 1, 13, 0));
    env.run_until(utc(2028, 1, 1, 13, 30), Duration::minutes(10))
        .await;

    let tasks = env.sim.tasks();
    let calls = env.sim.call_log();
    for (i, ut) in uts.iter().enumerate() {
        let n = i + 1;
        // One task per round, whatever the restarts.
        let task: Vec<_> = tasks.iter().filter(|t| t.user_task_id == *ut).collect();
        assert_eq!(task.len(), 1, "round {n}: one task");
        // Each contact dialled once in the round.
        let mut per_phone: BTreeMap<&str, usize> = BTreeMap::new();
        for c in calls.iter().filter(|c| c.user_task_id == *ut) {
            *per_phone.entry(c.phone.as_str()).or_default() += 1;
            assert!(
                c.start_utc >= rounds[i].starts,
                "round {n}: a call before its occurrence"
            );
        }
        assert_eq!(
            per_phone.len(),
            CONTACTS,
            "round {n}: every contact dialled"
        );
        assert!(
            per_phone.values().all(|k| *k == 1),
            "round {n}: {per_phone:?}"
        );
        // Completed by the next occurrence at the latest (its calendar ends there; a round whose last window
        // closed before is completed as soon as the daemon sees it has no dialling left), after its last call.
        let next = rounds[i].next.unwrap_or(utc(2028, 1, 1, 14, 0));
        let completed = task[0]
            .status_history
            .iter()
            .find(|c| c.to == 3)
            .unwrap_or_else(|| panic!("round {n} was never completed"));
        let last_end = calls
            .iter()
            .filter(|c| c.user_task_id == *ut)
            .filter_map(|c| c.end_utc)
            .max()
            .unwrap();
        assert!(
            completed.at >= last_end && completed.at <= next + Duration::minutes(10),
            "round {n} completed at {}, its last call ended at {last_end}, its next occurrence is {next}",
            completed.at
        );
    }
    // Winter rounds run on UTC-5, summer rounds on UTC-4.
    let zone_of = |i: usize| {
        calls
            .iter()
            .find(|c| c.user_task_id == uts[i])
            .map(|c| c.zone_second)
            .unwrap()
    };
    assert_eq!(
        (zone_of(0), zone_of(5), zone_of(11)),
        (-18_000, -14_400, -18_000)
    );
    // The cap holds across rounds: each number's calls are at least 30 days apart, so March's round (28 days after
    // February's) waited.
    let mut by_phone: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
    for c in &calls {
        by_phone
            .entry(c.phone.as_str())
            .or_default()
            .push(c.start_utc);
    }
    for (phone, mut starts) in by_phone {
        starts.sort();
        assert_eq!(starts.len(), 12, "{phone}");
        for w in starts.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::days(30),
                "{phone}: calls at {} and {}",
                w[0],
                w[1]
            );
        }
    }
    let march: Vec<_> = calls.iter().filter(|c| c.user_task_id == uts[2]).collect();
    assert!(
        march.iter().all(|c| c.start_utc >= utc(2027, 3, 3, 0, 0)),
        "March's round is held until February's calls are 30 days old"
    );
    assert_no_harm(&env.sim, &specs);

    // The report groups the campaign by round: twelve rounds, each with its six contacts dialled and answered.
    let report = env
        .store
        .report(&store::ReportFilter {
            campaign: Some("m".into()),
            since: None,
        })
        .await
        .unwrap();
    let rows: Vec<(Option<i64>, i64, i64, i64)> = report
        .rounds
        .iter()
        .map(|r| (r.round, r.orders_total, r.calls, r.calls_answered))
        .collect();
    let expected: Vec<(Option<i64>, i64, i64, i64)> =
        (1..=12).map(|n| (Some(n), 6, 6, 6)).collect();
    assert_eq!(rows, expected);
    assert_eq!(
        report.rounds[2]
            .first_call_at
            .map(|t| t >= utc(2027, 3, 3, 0, 0)),
        Some(true)
    );

    // `status` names the round in force, the next occurrence and the rounds so far.
    let out = std::process::Command::new(daemon_support::campaignd_bin())
        .args(["status", "--store", &env.store_url, "--format", "json"])
        .args(["--now", "2027-12-15T12:00:00Z", "--campaigns-dir"])
        .arg(env.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let round = &doc[0]["round"];
    assert_eq!(round["number"], 12, "{doc}");
    assert_eq!(round["next_at"], "2028-01-01T14:00:00Z");
    assert_eq!(round["rounds_so_far"], 12);
    assert_eq!(doc[0]["user_task_id"], uts[11].as_str());
}

const KEEP: &str = r#"
scene_id = "SC-KEEP"
robots = 1

[schedule]
timezone = "America/New_York"
start = 2027-01-04T00:00:00
repeat = "0 9 * * *"
on_next_round = "keep"
windows = [{ days = "mon", hours = ["09:00-10:00"] }]

[contacts]
file = "k.csv"
variables = ["amount"]
batch_size = 10
"#;

/// With `on_next_round = "keep"`, a daily round whose contacts need more than one Monday hour runs out first: the
/// occurrences that pass meanwhile start no round, and the next round starts only once the first has nothing left
/// to dial, so two rounds never dial at once.
async fn a_kept_round_runs_out_before_the_next_one_starts(backend: Backend) {
    let start = utc(2027, 1, 4, 13, 0);
    let files = [("k.toml", KEEP.to_owned()), ("k.csv", contacts_csv(3))];
    let opts = Options {
        weights: Some(vec![(Outcome::Answered, 1.0)]),
        talk_secs: (2400, 2400),
        ..Options::default()
    };
    let mut env = Env::new(backend, start, &files, opts).await;
    let file = env.spec("k.toml");
    env.run_until(utc(2027, 1, 11, 17, 0), Duration::minutes(10))
        .await;

    let first = file.for_round(&file.round(1).unwrap());
    let eighth = file.for_round(&file.round(8).unwrap());
    let (ut1, ut8) = (daemon::user_task_id(&first), daemon::user_task_id(&eighth));
    let tasks = env.sim.tasks();
    let ids: Vec<&str> = tasks.iter().map(|t| t.user_task_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        2,
        "round 1, then round 8 (Monday Jan 11): {ids:?}"
    );
    assert!(
        ids.contains(&ut1.as_str()) && ids.contains(&ut8.as_str()),
        "{ids:?}"
    );
    let calls = env.sim.call_log();
    let of = |ut: &str| {
        calls
            .iter()
            .filter(|c| c.user_task_id == ut)
            .collect::<Vec<_>>()
    };
    let (c1, c8) = (of(&ut1), of(&ut8));
    assert_eq!(
        c1.len(),
        3,
        "round 1 dials all three, the last one a week later"
    );
    assert!(c1.iter().any(|c| c.start_utc >= utc(2027, 1, 11, 0, 0)));
    let round1_done = c1.iter().filter_map(|c| c.end_utc).max().unwrap();
    assert!(!c8.is_empty(), "round 8 starts once round 1 has run out");
    assert!(
        c8.iter().all(|c| c.start_utc >= round1_done),
        "round 8 dialled before round 1 ran out at {round1_done}"
    );
    let task1 = tasks.iter().find(|t| t.user_task_id == ut1).unwrap();
    let task8 = tasks.iter().find(|t| t.user_task_id == ut8).unwrap();
    let completed = task1.status_history.iter().find(|c| c.to == 3).unwrap();
    assert!(completed.at >= round1_done && task8.created_at >= round1_done);
    assert_no_harm(&env.sim, &[first, eighth]);
}
