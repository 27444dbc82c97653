//! Contacts in their own local time, end to end on both stores against the simulator: a named-zone campaign is
//! narrowed by the legal calling hours of every contact it holds (read in each contact's zone); a `timezone =
//! "contact"` campaign's task is programmed and toggled at its contacts' own instants across a DST change. The
//! referee judges every call by its contact's own zones and rules.

#[macro_use]
mod daemon_support;

use daemon_support::utc;

use callbot_sim::Outcome;
use chrono::{Duration, Timelike};
use daemon_support::{Backend, Env, Options, assert_no_harm};

/// Fictional numbers (555-01xx) in New York, Los Angeles and Miami (Florida: its own, narrower rule).
fn us_csv() -> String {
    let mut s = String::from("phone,name,customer,other\n");
    for (area, city) in [(212, "New York"), (213, "Los Angeles"), (305, "Miami")] {
        for i in 0..3 {
            s.push_str(&format!("({area}) 555-01{i:02},{city} {i},,\n"));
        }
    }
    s
}

const NAMED_ZONE: &str = r#"
scene_id = "SC-ZONES"
robots = 3

[schedule]
timezone = "America/New_York"
windows = [{ days = "mon-sun", hours = ["07:00-22:00"] }]

[contacts]
file = "us.csv"
default_country = "US"
batch_size = 10
"#;

async fn a_named_zone_campaign_is_narrowed_by_each_contacts_legal_hours(backend: Backend) {
    // Monday 06:00 in New York.
    let start = utc(2027, 1, 11, 11, 0);
    let files = [("z.toml", NAMED_ZONE.to_owned()), ("us.csv", us_csv())];
    let mut env = Env::new(backend, start, &files, Options::default()).await;
    let spec = env.spec("z.toml");
    let ut = daemon::user_task_id(&spec);
    assert_eq!(
        ut,
        campaign::user_task_id("z", 1, 0),
        "a named-zone campaign keeps its task ID"
    );
    env.run_until(utc(2027, 1, 12, 12, 0), Duration::minutes(5))
        .await;

    let task = env.sim.task(&ut).expect("the task was created");
    let first = &task.settings[0].settings;
    // 07:00-22:00 asked in New York; 08:00-21:00 federal in New York and in Los Angeles (11:00-24:00 New York time);
    // Florida's 08:00-20:00: 11:00-20:00 New York time is what is left.
    assert_eq!(first.zone_second, -5 * 3600);
    assert_eq!(first.dial_at_up_hour, "11,12,13,14,15,16,17,18,19");
    assert_eq!(first.dial_at_down_hour, "11,12,13,14,15,16,17,18,19");
    let calls = env.sim.call_log();
    assert_eq!(
        calls
            .iter()
            .map(|c| &c.phone)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        9,
        "every contact was dialled"
    );
    for c in &calls {
        let ny = c.start_utc - Duration::hours(5);
        assert!(
            (11..20).contains(&ny.hour()),
            "call at {} New York time",
            ny
        );
    }
    assert_no_harm(&env.sim, &[spec]);
}

/// Contacts in Los Angeles only, dialled in their own 09:00-10:00, every day for four days (a no-answer is retried
/// 20 hours later) across the start of DST (Sunday 2027-03-14).
const CONTACT_ZONE: &str = r#"
scene_id = "SC-LOCAL"
robots = 1

[schedule]
timezone = "contact"
windows = [{ days = "mon-sun", hours = ["09:00-10:00"] }]

[retry]
no_answer = { after = "20h", max_attempts = 4 }

[contacts]
file = "la.csv"
default_country = "US"
batch_size = 10
"#;

both_backends!(
    a_named_zone_campaign_is_narrowed_by_each_contacts_legal_hours,
    a_contact_zone_campaign_is_toggled_at_its_contacts_own_instants_across_dst,
    each_zone_group_is_its_own_task_toggled_at_its_own_instants_across_dst,
    a_contact_who_moves_to_another_group_is_never_uploaded_again_and_its_task_covers_both,
    floridas_limit_of_three_calls_a_day_holds_its_numbers_and_only_them,
);

async fn a_contact_zone_campaign_is_toggled_at_its_contacts_own_instants_across_dst(
    backend: Backend,
) {
    let csv = "phone,name,customer,other\n(213) 555-0100,A,,\n(213) 555-0101,B,,\n";
    // Friday 2027-03-12, 06:00 in Los Angeles (PST, UTC-8).
    let start = utc(2027, 3, 12, 14, 0);
    let files = [
        ("la.toml", CONTACT_ZONE.to_owned()),
        ("la.csv", csv.to_owned()),
    ];
    let opts = Options {
        weights: Some(vec![(Outcome::NoAnswer, 1.0)]),
        ..Options::default()
    };
    let mut env = Env::new(backend, start, &files, opts).await;
    env.run_until(utc(2027, 3, 16, 0, 0), Duration::minutes(5))
        .await;

    let spec = daemon_support::with_audience(&env.spec("la.toml"));
    let group = spec
        .audience
        .as_ref()
        .and_then(|a| a.single_group())
        .expect("one zone group")
        .clone();
    assert_eq!(group.label(), "America/Los_Angeles [us]");
    let ut = daemon::user_task_id(&spec);
    assert_eq!(ut, campaign::zone_group_task_id("la", 1, &group));
    let task = env.sim.task(&ut).expect("the group's task was created");
    let offsets: Vec<i64> = task
        .settings
        .iter()
        .map(|v| v.settings.zone_second)
        .collect();
    assert_eq!(
        offsets.first(),
        Some(&(-8 * 3600)),
        "PST first: {offsets:?}"
    );
    assert_eq!(offsets.last(), Some(&(-7 * 3600)), "then PDT: {offsets:?}");
    let calls = env.sim.call_log();
    // Four days, two contacts, each dialled once a day at 09:00-10:00 Los Angeles time, before and after the change.
    assert_eq!(calls.len(), 8, "{calls:?}");
    for c in &calls {
        let offset = if c.start_utc < utc(2027, 3, 14, 10, 0) {
            8
        } else {
            7
        };
        let local = c.start_utc - Duration::hours(offset);
        assert_eq!(local.hour(), 9, "call at {local} Los Angeles time");
    }
    assert_no_harm(&env.sim, &[spec]);
}

/// New York, Chicago and Los Angeles contacts with `timezone = "contact"`: three zone groups, three tasks, each
/// programmed in its own zone and updated for DST at its own instant.
async fn each_zone_group_is_its_own_task_toggled_at_its_own_instants_across_dst(backend: Backend) {
    let csv = "phone,name,customer,other\n\
               (212) 555-0100,NY,,\n(312) 555-0101,Chicago,,\n(213) 555-0102,LA,,\n(646) 555-0103,NY 2,,\n";
    let start = utc(2027, 3, 12, 10, 0);
    let files = [
        ("la.toml", CONTACT_ZONE.to_owned()),
        ("la.csv", csv.to_owned()),
    ];
    let opts = Options {
        weights: Some(vec![(Outcome::NoAnswer, 1.0)]),
        ..Options::default()
    };
    let mut env = Env::new(backend, start, &files, opts).await;
    env.run_until(utc(2027, 3, 16, 0, 0), Duration::minutes(5))
        .await;

    let spec = daemon_support::with_audience(&env.spec("la.toml"));
    let audience = spec.audience.clone().unwrap();
    let labels: Vec<String> = audience
        .zone_groups()
        .map(campaign::ZoneGroup::label)
        .collect();
    assert_eq!(
        labels,
        [
            "America/Chicago [us]",
            "America/Los_Angeles [us]",
            "America/New_York [us]"
        ]
    );
    // (zone group, standard offset, daylight offset, contacts)
    let expected = [(-6, -5, 1), (-8, -7, 1), (-5, -4, 2)];
    let mut updates = Vec::new();
    for (g, (std_h, dst_h, contacts)) in audience.zone_groups().zip(expected) {
        let ut = campaign::zone_group_task_id("la", 1, g);
        let task = env
            .sim
            .task(&ut)
            .unwrap_or_else(|| panic!("no task for {}", g.label()));
        let offsets: Vec<i64> = task
            .settings
            .iter()
            .map(|v| v.settings.zone_second)
            .collect();
        assert_eq!(
            offsets.first(),
            Some(&(std_h * 3600)),
            "{}: {offsets:?}",
            g.label()
        );
        assert_eq!(
            offsets.last(),
            Some(&(dst_h * 3600)),
            "{}: {offsets:?}",
            g.label()
        );
        let change = task
            .settings
            .iter()
            .find(|v| v.settings.zone_second == dst_h * 3600)
            .unwrap();
        updates.push(change.requested_at);
        let calls: Vec<_> = env
            .sim
            .call_log()
            .into_iter()
            .filter(|c| c.user_task_id == ut)
            .collect();
        assert_eq!(calls.len(), 4 * contacts, "{}: four days", g.label());
        for c in &calls {
            let dst_from = utc(2027, 3, 14, u32::try_from(2 - std_h).unwrap(), 0);
            let offset = if c.start_utc < dst_from { std_h } else { dst_h };
            let local = c.start_utc + Duration::hours(offset);
            assert_eq!(local.hour(), 9, "{}: call at {local} local time", g.label());
        }
    }
    updates.sort();
    updates.dedup();
    assert_eq!(
        updates.len(),
        3,
        "each task updated at its own instant: {updates:?}"
    );
    // The report by zone group: one row per group's task, with its orders and calls.
    let report = env
        .store
        .report(&store::ReportFilter::default())
        .await
        .unwrap();
    let rows: Vec<(String, i64, i64)> = report
        .zone_groups
        .iter()
        .map(|r| {
            let g: campaign::ZoneGroup = serde_json::from_str(&r.zone_group).unwrap();
            (g.label(), r.orders_total, r.calls)
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("America/Chicago [us]".to_string(), 4, 4),
            ("America/Los_Angeles [us]".to_string(), 4, 4),
            ("America/New_York [us]".to_string(), 8, 8),
        ],
        "four attempts per contact, one call each"
    );
    assert_no_harm(&env.sim, &[spec]);
}

const MOVING: &str = r#"
scene_id = "SC-MOVE"
robots = 2

[schedule]
timezone = "contact"
windows = [{ days = "mon-sun", hours = ["09:00-20:00"] }]

[contacts]
file = "m.csv"
default_country = "US"
batch_size = 10
"#;

/// A Los Angeles contact uploaded in its group's task moves to Chicago (the file's `timezone` column says so) before
/// it is dialled: its order stays in the Los Angeles task and is never uploaded again, and that task now dials only
/// when Chicago allows it as well.
async fn a_contact_who_moves_to_another_group_is_never_uploaded_again_and_its_task_covers_both(
    backend: Backend,
) {
    let before = "phone,name,customer,other,timezone\n\
                  (212) 555-0100,A,,,\n(213) 555-0101,B,,,\n(213) 555-0102,C,,,\n";
    let after = "phone,name,customer,other,timezone\n\
                 (212) 555-0100,A,,,\n(213) 555-0101,B,,,America/Chicago\n(213) 555-0102,C,,,\n";
    // Monday 2027-01-11, midnight in New York: nothing open anywhere yet.
    let start = utc(2027, 1, 11, 5, 0);
    let files = [("m.toml", MOVING.to_owned()), ("m.csv", before.to_owned())];
    let mut env = Env::new(backend, start, &files, Options::default()).await;
    env.run_until(utc(2027, 1, 11, 6, 0), Duration::minutes(5))
        .await;
    let la = campaign::ZoneGroup::new(
        vec![campaign::Zone::Iana(
            campaign::chrono_tz::Tz::America__Los_Angeles,
        )],
        vec!["us".into()],
    );
    let la_task = campaign::zone_group_task_id("m", 1, &la);
    let b = campaign::normalize_phone("(213) 555-0101", Some("US")).unwrap();
    let b_subs = |env: &Env| {
        env.sim
            .submissions()
            .into_iter()
            .filter(|s| s.accepted && s.phone == b)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        b_subs(&env).len(),
        1,
        "B uploaded once, in the Los Angeles task"
    );
    assert_eq!(b_subs(&env)[0].user_task_id, la_task);

    env.write("m.csv", after);
    env.run_until(utc(2027, 1, 12, 6, 0), Duration::minutes(5))
        .await;
    let subs = b_subs(&env);
    assert_eq!(subs.len(), 1, "never uploaded again: {subs:?}");
    let task = env.sim.task(&la_task).unwrap();
    let last = &task.settings.last().unwrap().settings;
    // 09:00-20:00 in Los Angeles and in Chicago (07:00-18:00 Los Angeles time): 09:00-18:00 Los Angeles time.
    assert_eq!(last.zone_second, -8 * 3600);
    assert_eq!(last.dial_at_up_hour, "9,10,11,12,13,14,15,16,17");
    let calls: Vec<_> = env
        .sim
        .call_log()
        .into_iter()
        .filter(|c| c.phone == b)
        .collect();
    assert_eq!(calls.len(), 1, "B dialled once");
    let spec = env.spec("m.toml");
    assert_no_harm(&env.sim, &[spec]);
}

const HOURLY: &str = r#"
scene_id = "SC-FL"
robots = 2

[schedule]
timezone = "contact"
windows = [{ days = "mon-sun", hours = ["09:00-20:00"] }]

[retry]
no_answer = { after = "1h", max_attempts = 6 }

[contacts]
file = "fl.csv"
default_country = "US"
batch_size = 10
"#;

/// Unanswered numbers are retried hourly up to six attempts: New York's gets six in the day, Miami's three (Fla.
/// Stat. 501.616(6): at most 3 calls in 24 hours), held by the rule's cap.
async fn floridas_limit_of_three_calls_a_day_holds_its_numbers_and_only_them(backend: Backend) {
    let csv = "phone,name,customer,other\n(212) 555-0100,NY,,\n(305) 555-0101,Miami,,\n";
    let start = utc(2027, 1, 11, 13, 0);
    let files = [("fl.toml", HOURLY.to_owned()), ("fl.csv", csv.to_owned())];
    let opts = Options {
        weights: Some(vec![(Outcome::NoAnswer, 1.0)]),
        ..Options::default()
    };
    let mut env = Env::new(backend, start, &files, opts).await;
    env.run_until(utc(2027, 1, 12, 13, 0), Duration::minutes(5))
        .await;
    let calls = |area: &str| {
        let phone = campaign::normalize_phone(&format!("({area}) 555-0100"), Some("US"))
            .unwrap()
            .replace("0100", "");
        env.sim
            .call_log()
            .into_iter()
            .filter(|c| c.phone.starts_with(&phone))
            .count()
    };
    assert_eq!(calls("212"), 6, "New York: every attempt");
    assert_eq!(calls("305"), 3, "Miami: three in 24 hours");
    assert_no_harm(&env.sim, &[env.spec("fl.toml")]);
}
