//! `campaignd suppress` run as a real process against a SQLite store: add, check, list, remove.

use std::process::{Command, Output};

fn run(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_campaignd"))
        .arg("suppress")
        .args(["--store", store])
        .args(args)
        .env_remove("CAMPAIGND_CONFIG")
        .output()
        .expect("campaignd runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn adds_checks_lists_and_removes_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("c.db").display());
    let out = run(
        &store,
        &[
            "add",
            "+1 202 555 0143",
            "+12025550175",
            "--reason",
            "asked",
            "--expires",
            "2099-01-31",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text(&out).contains("suppressed 2 number(s)"),
        "{}",
        text(&out)
    );

    let out = run(
        &store,
        &["check", "(202) 555-0143", "--default-country", "US"],
    );
    assert!(out.status.success());
    let t = text(&out);
    assert!(
        t.contains("12025550143 is suppressed") && t.contains("by cli: asked"),
        "{t}"
    );
    assert!(t.contains("until 2099-02-01T12:00:00Z"), "{t}");

    let out = run(&store, &["list", "--format", "csv"]);
    let t = text(&out);
    assert!(
        t.starts_with("phone,source,reason,expires_at,added_at\n"),
        "{t}"
    );
    assert_eq!(t.lines().count(), 3, "{t}");

    let out = run(&store, &["remove", "+12025550143"]);
    assert!(out.status.success());
    assert!(text(&out).contains("removed 1 entry"), "{}", text(&out));
    let out = run(&store, &["check", "+12025550143"]);
    assert_eq!(out.status.code(), Some(1), "not suppressed any more");
    assert!(text(&out).contains("is not suppressed"));
}

#[test]
fn a_bad_number_changes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("c.db").display());
    let out = run(&store, &["add", "+12025550143", "not-a-number"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`not-a-number` is not a phone number"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    let out = run(&store, &["list", "--format", "json"]);
    assert_eq!(text(&out).trim(), "[]");
}
