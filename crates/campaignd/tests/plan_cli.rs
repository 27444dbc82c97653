//! `campaignd plan` run as a real process on the example campaigns and on files written to a temporary directory.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn plan(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_campaignd"))
        .arg("plan")
        .arg("--campaigns-dir")
        .arg(dir)
        .args(extra)
        .env_remove("CAMPAIGND_CAMPAIGNS__DIR")
        .output()
        .expect("campaignd runs")
}

fn plan_json(dir: &Path, now: &str) -> Value {
    let out = plan(dir, &["--format", "json", "--now", now]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan prints JSON")
}

fn campaign<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .expect("campaign in plan")
}

fn regular(dir: &Path, zone: &str) {
    let body = format!(
        "scene_id = \"S\"\n[schedule]\ntimezone = \"{zone}\"\nwindows = [{{ days = \"mon-fri\", hours = [\"09:00-17:00\"] }}]\n\
         [contacts]\nfile = \"c.csv\"\ndefault_country = \"GB\"\nbatch_size = 2\n"
    );
    std::fs::write(dir.join("weekdays.toml"), body).unwrap();
    std::fs::write(
        dir.join("c.csv"),
        "phone\n020 7946 0001\n020 7946 0002\n020 7946 0003\nbad\n020 7946 0001\n",
    )
    .unwrap();
}

#[test]
fn plans_the_example_campaigns() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../campaigns");
    let doc = plan_json(&examples, "2026-11-21T19:30:00Z");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["now"], "2026-11-21T19:30:00Z");

    let spring = campaign(&doc, "spring-renewals");
    assert_eq!(
        spring["user_task_id"],
        "90fdc0cb-46f1-56a6-bd8b-d18f6e332150"
    );
    assert_eq!(spring["contacts"]["valid"], 120);
    assert_eq!(spring["contacts"]["invalid"], 1);
    assert_eq!(spring["contacts"]["duplicate"], 1);
    assert_eq!(spring["contacts"]["batches"], 1);
    let first = &spring["stretches"][0];
    // Starts at the campaign's start; Thanksgiving (Thursday) is left out of the first week's settings. A third of
    // the contacts are in San Francisco (415): federal law lets them be called from 08:00 their time, 11:00 in New
    // York, so the morning window 09:00-12:00 keeps only 11:00-12:00.
    assert_eq!(first["from"], "2026-11-23T14:00:00Z");
    assert_eq!(first["from_local"], "2026-11-23 09:00 -05:00");
    assert_eq!(first["settings"]["zoneSecond"], -18000);
    assert_eq!(first["settings"]["dialAtWeekDay"], "1,2,3,5");
    assert_eq!(first["settings"]["dialAtUpHour"], "11,14,15,16,17,18,19");
    assert_eq!(
        first["settings"]["dialAtDownHour"],
        "11,13,14,15,16,17,18,19"
    );
    let task = &spring["tasks"][0];
    assert_eq!(spring["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(task["user_task_id"], spring["user_task_id"]);
    assert_eq!(task["stretches"], spring["stretches"]);
    assert_eq!(task["contacts"], 120);
    assert_eq!(task["rules"][0]["name"], "us");
    assert_eq!(
        task["rules"][0]["zones"],
        serde_json::json!(["America/Los_Angeles", "America/New_York"])
    );
    assert_eq!(spring["runs"], true);
    assert_eq!(spring["stretches"].as_array().unwrap().len(), 4);
    let actions: Vec<(&str, &str)> = spring["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["at"].as_str().unwrap()))
        .collect();
    assert_eq!(actions[0], ("create", "2026-11-21T19:30:00Z"));
    assert_eq!(actions[1], ("start", "2026-11-23T16:00:00Z"));
    assert_eq!(actions[2].0, "pause_and_update");
    assert_eq!(
        actions.last().unwrap(),
        &("complete", "2027-03-31T22:00:00Z")
    );

    let demo = campaign(&doc, "demo");
    assert_eq!(demo["stretches"].as_array().unwrap().len(), 1);
    assert_eq!(demo["stretches"][0]["until"], Value::Null);
    assert_eq!(demo["stretches"][0]["first_open"], "2026-11-21T19:30:00Z");

    let uk = campaign(&doc, "uk-payment-reminders");
    assert_eq!(uk["paused"], true);
    assert_eq!(uk["actions"][0]["action"], "hold");

    // The monthly survey repeats: before its first occurrence the first round is in force, waiting for it.
    let survey = campaign(&doc, "monthly-survey");
    assert_eq!(survey["generation"], 100_001);
    assert_eq!(survey["round"]["number"], 1);
    assert_eq!(survey["round"]["started"], "2027-01-01T14:00:00Z");
    assert_eq!(survey["round"]["next"][0]["round"], 2);
    assert_eq!(survey["round"]["next"][0]["at"], "2027-02-01T14:00:00Z");
    assert_eq!(
        survey["round"]["next"][2]["at"], "2027-04-01T13:00:00Z",
        "09:00 EDT"
    );
    // Jan 1 is a holiday and Jan 2-3 a weekend: round 1 first dials on Monday Jan 4, at 11:00 because one member
    // is in Los Angeles (08:00 there).
    assert_eq!(survey["stretches"][0]["first_open"], "2027-01-04T16:00:00Z");
    assert_eq!(
        survey["stretches"].as_array().unwrap().last().unwrap()["until"],
        "2027-02-01T14:00:00Z"
    );
}

#[test]
fn a_weekday_calendar_without_dst_is_one_stretch_forever() {
    let dir = tempfile::tempdir().unwrap();
    regular(dir.path(), "Asia/Shanghai");
    let doc = plan_json(dir.path(), "2026-11-21T19:30:00Z");
    let c = campaign(&doc, "weekdays");
    let stretches = c["stretches"].as_array().unwrap();
    assert_eq!(stretches.len(), 1);
    assert_eq!(stretches[0]["until"], Value::Null);
    assert_eq!(stretches[0]["settings"]["zoneSecond"], 28800);
    assert_eq!(stretches[0]["settings"]["dialAtWeekDay"], "1,2,3,4,5");
    assert_eq!(c["contacts"]["valid"], 3);
    assert_eq!(c["contacts"]["invalid"], 1);
    assert_eq!(c["contacts"]["duplicate"], 1);
    assert_eq!(c["contacts"]["batches"], 2);
}

#[test]
fn a_weekday_calendar_in_new_york_changes_at_dst() {
    let dir = tempfile::tempdir().unwrap();
    regular(dir.path(), "America/New_York");
    let doc = plan_json(dir.path(), "2026-11-21T19:30:00Z");
    let c = campaign(&doc, "weekdays");
    assert_eq!(c["stretches"][0]["until"], "2027-03-14T07:00:00Z");
    assert_eq!(c["stretches"][1]["settings"]["zoneSecond"], -14400);
    let update = c["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "pause_and_update")
        .unwrap();
    // Friday 17:00 EST, right after the last open minute before the change.
    assert_eq!(update["at"], "2027-03-12T22:00:00Z");
}

#[test]
fn human_output_shows_the_platform_fields() {
    let dir = tempfile::tempdir().unwrap();
    regular(dir.path(), "UTC");
    let out = plan(dir.path(), &["--now", "2026-11-21T19:30:00Z"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("plan at 2026-11-21T19:30:00Z (offline"),
        "{stdout}"
    );
    assert!(
        stdout.contains("zoneSecond=0 dialAtWeekDay=1,2,3,4,5 dialAtUpHour=9,10,11,12,13,14,15,16 dialAtDownHour=9,10,11,12,13,14,15,16"),
        "{stdout}"
    );
    assert!(
        stdout.contains("start: start the task: stretch 1 opens"),
        "{stdout}"
    );
}

#[test]
fn a_bad_now_is_refused_with_the_expected_format() {
    let dir = tempfile::tempdir().unwrap();
    regular(dir.path(), "UTC");
    let out = plan(dir.path(), &["--now", "tomorrow"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--now `tomorrow` is not an RFC 3339 instant")
    );
}

#[test]
fn an_invalid_file_is_reported_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    regular(dir.path(), "UTC");
    std::fs::write(dir.path().join("broken.toml"), "scene_id = 1\n").unwrap();
    let out = plan(
        dir.path(),
        &["--format", "json", "--now", "2026-11-21T19:30:00Z"],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["campaigns"].as_array().unwrap().len(), 1);
    assert!(
        doc["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["code"] == "wrong-type")
    );
}

#[test]
fn with_a_store_that_does_not_exist_plan_refuses_rather_than_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    regular(dir.path(), "Asia/Shanghai");
    let db = dir.path().join("none.db");
    let url = format!("sqlite://{}", db.display());
    let out = plan(dir.path(), &["--store", &url]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no database at"), "{err}");
    assert!(!db.exists(), "plan created a database");
}

#[tokio::test]
async fn with_a_store_plan_shows_what_is_on_the_platform_and_what_run_would_do() {
    use store::{NewOrder, Store, TaskKey, UploadState};
    let dir = tempfile::tempdir().unwrap();
    regular(dir.path(), "Asia/Shanghai");
    let db = dir.path().join("campaignd.db");
    let url = format!("sqlite://{}", db.display());
    let store = store_sqlite::SqliteStore::open(&url).await.unwrap();
    let ut = campaign::user_task_id("weekdays", 1, 0);
    let now: campaign::chrono::DateTime<campaign::chrono::Utc> =
        "2026-11-23T02:00:00Z".parse().unwrap(); // Monday 10:00 in Shanghai
    let key = TaskKey {
        user_task_id: ut.clone(),
        campaign_id: "weekdays".into(),
        generation: 1,
        task_index: 0,
    };
    let sent_at = now - campaign::chrono::Duration::hours(1);
    store
        .task_create_intent(&key, &serde_json::Value::Null, sent_at)
        .await
        .unwrap();
    assert!(
        store
            .task_status_observed(&ut, 5, Some("P-77"), now)
            .await
            .unwrap()
    );
    let orders: Vec<NewOrder> = ["442079460001", "442079460002"]
        .iter()
        .enumerate()
        .map(|(i, phone)| NewOrder {
            order_id: campaign::order_id("weekdays", 1, phone),
            campaign_id: "weekdays".into(),
            user_task_id: ut.clone(),
            phone: (*phone).into(),
            name: None,
            customer: None,
            other: None,
            variables: serde_json::json!({}),
            source_line: i as i64 + 2,
            attempt: 1,
        })
        .collect();
    store.insert_planned_orders(&orders, now).await.unwrap();
    store
        .set_upload_state(&[orders[0].order_id.clone()], UploadState::Sending, now)
        .await
        .unwrap();
    drop(store);

    let out = plan(
        dir.path(),
        &[
            "--format",
            "json",
            "--now",
            "2026-11-23T02:00:00Z",
            "--store",
            &url,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &campaign(&doc, "weekdays")["platform"];
    assert_eq!(p["task_id"], "P-77");
    assert_eq!(p["task_state"], "paused");
    assert_eq!(p["orders"]["planned"], 1);
    assert_eq!(p["orders"]["sending"], 1);
    // An order left `sending` is resolved with the platform before anything else touches orders.
    assert_eq!(p["run_would_now"][0], "resolve-sending", "{p}");

    let human = plan(
        dir.path(),
        &["--now", "2026-11-23T02:00:00Z", "--store", &url],
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("platform  task P-77 (paused)"), "{text}");
    assert!(text.contains("run now   resolve-sending"), "{text}");
}

/// The example campaign with per-contact zones, copied into `dir`; `windows` replaces its window when given.
fn us_contacts(dir: &Path, windows: Option<&str>) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../campaigns");
    let mut toml = std::fs::read_to_string(examples.join("us-contacts.toml")).unwrap();
    if let Some(w) = windows {
        let with = toml.replace(r#"{ days = "mon-sat", hours = ["09:00-20:00"] }"#, w);
        assert_ne!(with, toml, "the example's window was not found");
        toml = with;
    }
    std::fs::write(dir.join("us-contacts.toml"), toml).unwrap();
    std::fs::copy(
        examples.join("us-contacts.csv"),
        dir.join("us-contacts.csv"),
    )
    .unwrap();
}

/// The task of a campaign's zone group, by the group's label.
fn task<'a>(c: &'a Value, label: &str) -> &'a Value {
    c["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["group"] == label)
        .unwrap_or_else(|| panic!("no task for {label} in {}", c["tasks"]))
}

const EVERY_HOUR_8_TO_20: &str = "8,9,10,11,12,13,14,15,16,17,18,19,20";
const EVERY_HOUR_8_TO_19: &str = "8,9,10,11,12,13,14,15,16,17,18,19";

#[test]
fn each_zone_group_is_its_own_task_with_its_zone_second_in_winter_and_in_summer() {
    let dir = tempfile::tempdir().unwrap();
    // Windows wider than the law allows, to see the legal hours clip them in each contact's own time.
    us_contacts(
        dir.path(),
        Some(r#"{ days = "mon-sun", hours = ["07:00-22:00"] }"#),
    );
    for (now, ny) in [
        ("2027-01-11T17:00:00Z", -18_000),
        ("2027-07-12T16:00:00Z", -14_400),
    ] {
        let doc = plan_json(dir.path(), now);
        let c = campaign(&doc, "us-contacts");
        assert_eq!(c["zone"], "contact");
        assert_eq!(c["unzoned"]["count"], 0);
        let groups: Vec<&str> = c["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["group"].as_str().unwrap())
            .collect();
        assert_eq!(
            groups,
            [
                "America/Chicago [us]",
                "America/Denver [us]",
                "America/Los_Angeles [us]",
                "America/New_York [us us-fl]",
                "America/New_York [us]",
                "America/Phoenix [us]",
                "Asia/Tokyo [us]",
                "Pacific/Honolulu [us]",
            ],
            "at {now}"
        );
        for (label, zone_second, contacts) in [
            ("America/New_York [us]", ny, 2),
            ("America/New_York [us us-fl]", ny, 1),
            ("America/Chicago [us]", ny - 3600, 1),
            ("America/Denver [us]", ny - 7200, 1),
            ("America/Los_Angeles [us]", ny - 10_800, 1),
            // Arizona and Hawaii keep no daylight saving time.
            ("America/Phoenix [us]", -25_200, 1),
            ("Pacific/Honolulu [us]", -36_000, 1),
            ("Asia/Tokyo [us]", 32_400, 1),
        ] {
            let t = task(c, label);
            assert_eq!(t["zoneSecond"], zone_second, "{label} at {now}");
            assert_eq!(t["contacts"], contacts, "{label}");
            let settings = &t["stretches"][0]["settings"];
            assert_eq!(settings["zoneSecond"], zone_second, "{label} at {now}");
            assert_eq!(settings["dialAtWeekDay"], "1,2,3,4,5,6,7");
            // 07:00-22:00 asked; federal law leaves 08:00-21:00, Florida's 08:00-20:00, in the contact's time.
            let hours = if label.contains("us-fl") {
                EVERY_HOUR_8_TO_19
            } else {
                EVERY_HOUR_8_TO_20
            };
            assert_eq!(settings["dialAtUpHour"], hours, "{label} at {now}");
            assert_eq!(settings["dialAtDownHour"], hours, "{label} at {now}");
            assert!(t["first_open"].is_string(), "{label}");
        }
        let florida = task(c, "America/New_York [us us-fl]");
        let group = campaign::ZoneGroup::new(
            vec![campaign::Zone::Iana(
                campaign::chrono_tz::Tz::America__New_York,
            )],
            vec!["us".to_string(), "us-fl".to_string()],
        );
        assert_eq!(
            florida["user_task_id"],
            campaign::zone_group_task_id("us-contacts", 1, &group)
        );
        let rules: Vec<&str> = florida["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(rules, ["us", "us-fl"]);
        assert_eq!(florida["rules"][1]["source"], "Fla. Stat. 501.616(6), 2021");
    }
}

#[test]
fn the_us_contacts_example_plans_its_windows_in_each_contacts_time_and_says_it_does_not_run_yet() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../campaigns");
    let doc = plan_json(&examples, "2027-01-11T17:00:00Z");
    let c = campaign(&doc, "us-contacts");
    assert_eq!(c["tasks"].as_array().unwrap().len(), 8);
    // 09:00-20:00 Monday to Saturday is inside every contact's legal hours: nothing is clipped.
    for t in c["tasks"].as_array().unwrap() {
        let settings = &t["stretches"][0]["settings"];
        assert_eq!(settings["dialAtWeekDay"], "1,2,3,4,5,6");
        assert_eq!(settings["dialAtUpHour"], "9,10,11,12,13,14,15,16,17,18,19");
        assert_eq!(
            settings["dialAtDownHour"],
            "9,10,11,12,13,14,15,16,17,18,19"
        );
        // Each group's task is created with its first batch, in its own settings.
        assert_eq!(t["actions"][0]["action"], "create", "{}", t["actions"]);
    }
    // 09:00 on Tuesday in Tokyo is 00:00 UTC.
    assert_eq!(
        task(c, "Asia/Tokyo [us]")["first_open"],
        "2027-01-12T00:00:00Z"
    );
    assert_eq!(c["runs"], true);
    assert_eq!(c["runs_reason"], Value::Null);
    // The fields from before zone groups describe a single task; there are eight.
    assert_eq!(c["user_task_id"], Value::Null);
    assert_eq!(c["stretches"], serde_json::json!([]));
    assert_eq!(c["actions"], serde_json::json!([]));

    let out = plan(&examples, &["--now", "2027-01-11T17:00:00Z"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  zones     each contact's own (timezone = \"contact\"): 8 zone group(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  group 4   America/New_York [us us-fl]: 1 contact(s), first at line 9"),
        "{stdout}"
    );
    assert!(
        stdout.contains("zoneSecond -36000 (Pacific/Honolulu)"),
        "{stdout}"
    );
    assert!(!stdout.contains("  runs      no:"), "{stdout}");
}

/// A campaign in `zone` (or `contact`) dialling 07:00-22:00 every day, with these US numbers.
fn us_campaign(dir: &Path, zone: &str, phones: &[&str]) {
    let body = format!(
        "scene_id = \"S\"\n[schedule]\ntimezone = \"{zone}\"\nwindows = [{{ days = \"mon-sun\", hours = [\"07:00-22:00\"] }}]\n\
         [contacts]\nfile = \"c.csv\"\ndefault_country = \"US\"\n"
    );
    std::fs::write(dir.join("us.toml"), body).unwrap();
    std::fs::write(dir.join("c.csv"), format!("phone\n{}\n", phones.join("\n"))).unwrap();
}

#[test]
fn a_named_zone_campaign_is_narrowed_by_the_legal_hours_of_its_los_angeles_contact() {
    let dir = tempfile::tempdir().unwrap();
    us_campaign(dir.path(), "America/New_York", &["(212) 555-0100"]);
    let doc = plan_json(dir.path(), "2027-01-11T17:00:00Z");
    let c = campaign(&doc, "us");
    // New York's own legal hours: 08:00-21:00.
    assert_eq!(
        c["stretches"][0]["settings"]["dialAtUpHour"],
        EVERY_HOUR_8_TO_20
    );

    us_campaign(
        dir.path(),
        "America/New_York",
        &["(212) 555-0100", "(213) 555-0101"],
    );
    let doc = plan_json(dir.path(), "2027-01-11T17:00:00Z");
    let c = campaign(&doc, "us");
    // Los Angeles may be called from 08:00 there, 11:00 in New York: 11:00-21:00 New York time is left.
    let settings = &c["stretches"][0]["settings"];
    assert_eq!(settings["zoneSecond"], -18_000);
    assert_eq!(settings["dialAtUpHour"], "11,12,13,14,15,16,17,18,19,20");
    assert_eq!(settings["dialAtDownHour"], "11,12,13,14,15,16,17,18,19,20");
    assert_eq!(c["runs"], true);
    assert_eq!(c["zone"], "America/New_York");
    assert_eq!(c["user_task_id"], campaign::user_task_id("us", 1, 0));
    let tasks = c["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["group"], Value::Null);
    assert_eq!(tasks[0]["contacts"], 2);
    assert_eq!(
        tasks[0]["rules"][0]["zones"],
        serde_json::json!(["America/Los_Angeles", "America/New_York"])
    );
    assert_eq!(tasks[0]["actions"], c["actions"]);
    assert_eq!(c["actions"][1]["action"], "start");
    assert_eq!(c["actions"][1]["at"], "2027-01-11T17:00:00Z");
}

#[test]
fn a_contact_zone_campaign_with_one_group_runs_as_that_groups_task() {
    let dir = tempfile::tempdir().unwrap();
    us_campaign(
        dir.path(),
        "contact",
        &["(212) 555-0100", "(646) 555-0101", "+800 1234 5678"],
    );
    let doc = plan_json(dir.path(), "2027-01-11T17:00:00Z");
    let c = campaign(&doc, "us");
    assert_eq!(c["runs"], true);
    assert_eq!(c["runs_reason"], Value::Null);
    let group = campaign::ZoneGroup::new(
        vec![campaign::Zone::Iana(
            campaign::chrono_tz::Tz::America__New_York,
        )],
        vec!["us".to_string()],
    );
    let id = campaign::zone_group_task_id("us", 1, &group);
    assert_eq!(c["user_task_id"], id.as_str());
    assert_eq!(c["tasks"][0]["contacts"], 2);
    assert_eq!(
        c["stretches"][0]["settings"]["dialAtUpHour"],
        EVERY_HOUR_8_TO_20
    );
    assert_eq!(c["actions"][0]["action"], "create");
    assert!(
        c["actions"][0]["detail"].as_str().unwrap().contains(&id),
        "{}",
        c["actions"][0]
    );
    // The freephone number has no zone: it is listed, not dialled.
    assert_eq!(c["unzoned"]["count"], 1);
    assert_eq!(c["unzoned"]["lines"], serde_json::json!([4]));
    let out = plan(dir.path(), &["--now", "2027-01-11T17:00:00Z"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  unzoned   1 contact(s) with no known time zone, not dialled: line(s) 4"),
        "{stdout}"
    );
    assert!(!stdout.contains("runs      no"), "{stdout}");
}
