//! The daemon's commands as a user runs them: `campaignd status` on a store a daemon wrote, and `campaignd demo`,
//! the README's first command.

mod daemon_support;

use std::process::Command;

use chrono::{TimeZone, Utc};
use daemon_support::{Backend, Env, Options, campaignd_bin, contacts_csv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_why_each_campaign_is_or_is_not_dialling() {
    let weekday = r#"
scene_id = "SC-W"
robots = 1

[schedule]
timezone = "America/New_York"
holidays = [2026-11-26]
windows = [{ days = "mon-fri", hours = ["09:00-17:00"] }]

[contacts]
file = "w.csv"
variables = ["amount"]
batch_size = 10
"#;
    let files = [("w.toml", weekday.to_string()), ("w.csv", contacts_csv(12))];
    // Saturday: the task is created and uploaded, but the window is closed until Monday 09:00.
    let sat = Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap();
    let mut env = Env::new(Backend::Sqlite, sat, &files, Options::default()).await;
    env.step().await;
    env.write("broken.toml", "scene_id = \"x\"\nnot_a_key = 1\n");

    let run = |now: &str, format: &str| {
        Command::new(campaignd_bin())
            .args(["status", "--store", &env.store_url, "--campaigns-dir"])
            .arg(env.dir.path())
            .args(["--now", now, "--format", format])
            .current_dir(env.dir.path())
            .output()
            .unwrap()
    };
    let out = run("2026-11-21T15:00:00Z", "human");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("campaign w ("), "{text}");
    assert!(
        text.contains("why:      outside the window until Mon 2026-11-23 09:00 America/New_York"),
        "{text}"
    );
    assert!(text.contains("12 contacts: 12 uploaded"), "{text}");
    assert!(
        text.contains("broken.toml is not a valid campaign"),
        "{text}"
    );
    assert!(text.contains("not_a_key"), "{text}");

    // On the holiday, in JSON.
    let out = run("2026-11-26T15:00:00Z", "json");
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "w")
        .unwrap();
    assert_eq!(w["dialling"], false);
    assert!(
        w["why"]
            .as_str()
            .unwrap()
            .starts_with("holiday 2026-11-26; dialling resumes Fri 2026-11-27 09:00"),
        "{w}"
    );
    assert_eq!(w["orders"]["sent"], 12);
}

#[test]
fn demo_runs_the_whole_loop_and_prints_the_report() {
    let out = Command::new(campaignd_bin())
        .args(["demo", "--max-secs", "110"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CAMPAIGND_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("all contacts finished in"), "{text}");
    assert!(text.contains("report_campaign_daily"), "{text}");
    // Not a terminal: plain progress lines, no bar.
    assert!(!text.contains("[###"), "{text}");
}
