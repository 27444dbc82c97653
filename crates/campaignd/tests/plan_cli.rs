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
    // Starts at the campaign's start; Thanksgiving (Thursday) is left out of the first week's settings.
    assert_eq!(first["from"], "2026-11-23T14:00:00Z");
    assert_eq!(first["from_local"], "2026-11-23 09:00 -05:00");
    assert_eq!(first["settings"]["zoneSecond"], -18000);
    assert_eq!(first["settings"]["dialAtWeekDay"], "1,2,3,5");
    assert_eq!(
        first["settings"]["dialAtUpHour"],
        "9,10,11,14,15,16,17,18,19"
    );
    assert_eq!(
        first["settings"]["dialAtDownHour"],
        "9,10,11,13,14,15,16,17,18,19"
    );
    assert_eq!(spring["stretches"].as_array().unwrap().len(), 4);
    let actions: Vec<(&str, &str)> = spring["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["at"].as_str().unwrap()))
        .collect();
    assert_eq!(actions[0], ("create", "2026-11-21T19:30:00Z"));
    assert_eq!(actions[1], ("start", "2026-11-23T14:00:00Z"));
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
    // Jan 1 is a holiday and Jan 2-3 a weekend: round 1 first dials on Monday Jan 4.
    assert_eq!(survey["stretches"][0]["first_open"], "2027-01-04T14:00:00Z");
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
