//! `campaignd validate` run as a real process, as a user would, on files written to a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GOOD: &str = r#"scene_id = "SC-1"
robots = 2

[schedule]
timezone = "Europe/London"
windows = [{ days = "mon-fri", hours = ["09:00-17:00"] }]

[contacts]
file = "people.csv"
default_country = "GB"
variables = ["amount"]
"#;

const CSV: &str = "phone,name,amount\n020 7946 0001,Ann,10\n020 7946 0002,Bob,20\n";

fn validate(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_campaignd"))
        .arg("validate")
        .arg("--campaigns-dir")
        .arg(dir)
        .args(extra)
        .env_remove("CAMPAIGND_CAMPAIGNS__DIR")
        .output()
        .expect("campaignd runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn the_example_campaigns_pass() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../campaigns");
    let out = validate(&examples, &[]);
    let stdout = text(&out);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("file(s) checked: 0 error(s)"), "{stdout}");
    assert!(
        stdout
            .contains("demo: 200 contacts valid, 0 invalid, 0 duplicate; 4 batch(es) of up to 50"),
        "{stdout}"
    );
    // The deliberate bad rows of the US example are reported with their lines.
    assert!(
        stdout.contains("spring-renewals.csv:122: duplicate of line 2 (+12015550100)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("spring-renewals.csv:123: invalid phone `555-12`"),
        "{stdout}"
    );
}

#[test]
fn a_good_file_exits_zero_and_counts_contacts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    write(dir.path(), "people.csv", CSV);
    let out = validate(dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("good: 2 contacts valid, 0 invalid, 0 duplicate; 1 batch(es) of up to 500")
    );
}

#[test]
fn an_error_is_rendered_like_a_compiler_diagnostic_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.toml",
        &GOOD.replace("robots = 2", "robot = 2"),
    );
    write(dir.path(), "people.csv", CSV);
    let out = validate(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out);
    assert!(
        stdout.contains("error[unknown-key]: unknown key `robot` in the campaign file"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("--> {}:2:1", file.display())),
        "{stdout}"
    );
    assert!(stdout.contains("2 | robot = 2\n  | ^\n"), "{stdout}");
    assert!(
        stdout.contains("= help: did you mean `robots`?"),
        "{stdout}"
    );
    assert!(stdout.contains("1 error(s), 0 warning(s)"), "{stdout}");
}

#[test]
fn every_rejected_case_names_its_place_and_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "\"09:00-17:00\"",
            "\"09:10-17:00\"",
            "window `09:10-17:00` is not aligned to half hours",
        ),
        (
            "\"09:00-17:00\"",
            "\"09:00-09:00\"",
            "window `09:00-09:00` is empty",
        ),
        (
            "\"09:00-17:00\"]",
            "\"09:00-17:00\", \"16:00-18:00\"]",
            "window `16:00-18:00` overlaps `09:00-17:00`",
        ),
        (
            "mon-fri",
            "mon-fro",
            "`fro` is not a day of the week (mon..sun)",
        ),
        (
            "Europe/London",
            "Europe/Londn",
            "unknown time zone `Europe/Londn`",
        ),
        (
            "timezone = \"Europe/London\"",
            "timezone = \"UTC\"\nutc_offset = \"+01:00\"",
            "has both `timezone` and `utc_offset`",
        ),
        (
            "timezone = \"Europe/London\"\n",
            "",
            "[schedule] has no time zone",
        ),
        (
            "timezone = \"Europe/London\"",
            "timezone = \"Europe/London\"\nstart = 2027-01-10T00:00:00\nend = 2027-01-01T00:00:00",
            "the end 2027-01-01T00:00 is not after the start 2027-01-10T00:00",
        ),
        (
            "variables = [\"amount\"]",
            "variables = [\"amount\"]\nbatch_size = 0",
            "`batch_size` is 0, but it must be 1 to 1000",
        ),
        (
            "variables = [\"amount\"]",
            "variables = [\"amount\"]\nbatch_size = 1001",
            "`batch_size` is 1001, but it must be 1 to 1000",
        ),
        (
            "robots = 2",
            "robots = 0",
            "`robots` is 0, but it must be at least 1",
        ),
        (
            "robots = 2",
            "robots = \"2\"",
            "`robots` must be an integer, found string",
        ),
        (
            "variables = [\"amount\"]",
            "variables = [\"amount\", \"due\"]",
            "variable `due` is not a column of people.csv",
        ),
    ];
    for (from, to, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let body = GOOD.replace(from, to);
        assert_ne!(body, GOOD, "case {message} did not change the file");
        let file = write(dir.path(), "c.toml", &body);
        write(dir.path(), "people.csv", CSV);
        let out = validate(dir.path(), &[]);
        let stdout = text(&out);
        assert_eq!(out.status.code(), Some(1), "{message}: {stdout}");
        assert!(
            stdout.contains(message),
            "expected `{message}` in:\n{stdout}"
        );
        let located = format!("--> {}:", file.display());
        assert!(
            stdout.contains(&located),
            "no file:line:col for `{message}`:\n{stdout}"
        );
        assert!(
            stdout.contains("= help: "),
            "no help for `{message}`:\n{stdout}"
        );
    }
}

#[test]
fn the_same_campaign_id_in_two_files_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", &format!("id = \"same\"\n{GOOD}"));
    write(dir.path(), "b.toml", &format!("id = \"same\"\n{GOOD}"));
    write(dir.path(), "people.csv", CSV);
    let out = validate(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out);
    assert!(
        stdout.contains("error[duplicate-id]: campaign id `same` is also used by"),
        "{stdout}"
    );
    assert!(stdout.contains("b.toml:1:6"), "{stdout}");
}

#[test]
fn warnings_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let body = GOOD
        .replace(
            "timezone = \"Europe/London\"",
            "timezone = \"Europe/London\"\nstart = 2027-03-01T00:00:00\nend = 2027-04-30",
        )
        .replace("mon-fri", "sun")
        .replace("09:00-17:00", "00:00-03:00");
    write(dir.path(), "dst.toml", &body);
    write(dir.path(), "people.csv", CSV);
    let out = validate(dir.path(), &[]);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning[dst]: on 2027-03-28 the clocks go forward: 01:00-02:00 does not exist; the window 00:00-03:00 is one hour shorter that day"),
        "{stdout}"
    );
}

#[test]
fn contact_issues_are_listed_with_lines_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", GOOD);
    let mut csv = String::from("phone,name,amount\n020 7946 0001,Ann,10\n");
    for i in 0..25 {
        csv.push_str(&format!("nope{i},X,1\n"));
    }
    csv.push_str("020 7946 0001,Ann twice,10\n020 7946 0003,No amount,\n");
    write(dir.path(), "people.csv", &csv);
    let out = validate(dir.path(), &["--max-contact-issues", "3"]);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("c: 1 contacts valid, 26 invalid, 1 duplicate"),
        "{stdout}"
    );
    assert!(
        stdout.contains("people.csv:3: invalid phone `nope0`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("… and 24 more contact issue(s)"),
        "{stdout}"
    );

    let out = validate(dir.path(), &["--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issues = doc["campaigns"][0]["contacts"]["issues"]
        .as_array()
        .unwrap();
    assert_eq!(issues.len(), 20);
    assert_eq!(doc["campaigns"][0]["contacts"]["more_issues"], 7);
    assert_eq!(issues[0]["line"], 3);
    assert_eq!(issues[0]["kind"], "invalid_phone");
}

#[test]
fn strict_contacts_fails_on_rows_left_out() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", GOOD);
    write(dir.path(), "people.csv", &format!("{CSV}12345,Bad,1\n"));
    assert!(validate(dir.path(), &[]).status.success());
    let out = validate(dir.path(), &["--strict-contacts"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("--strict-contacts: 1 contact row(s) left out"),
        "{}",
        text(&out)
    );
    write(dir.path(), "people.csv", CSV);
    assert!(
        validate(dir.path(), &["--strict-contacts"])
            .status
            .success()
    );
}

#[test]
fn json_output_carries_the_same_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "c.toml",
        &GOOD.replace("09:00-17:00", "09:00-17:15"),
    );
    write(dir.path(), "people.csv", CSV);
    let out = validate(dir.path(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["ok"], false);
    let d = &doc["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["code"], "not-half-hour");
    assert_eq!(d["line"], 6);
    assert_eq!(d["column"], 41);
    assert!(
        d["help"].as_str().unwrap().contains("\"09:00-17:00\""),
        "{d}"
    );
}

#[test]
fn explicit_files_are_checked_instead_of_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", GOOD);
    write(dir.path(), "bad.toml", "this is not toml");
    write(dir.path(), "people.csv", CSV);
    let out = Command::new(env!("CARGO_BIN_EXE_campaignd"))
        .arg("validate")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 file(s) checked"));
}

/// Runs `campaignd validate` on `dir` with a deadline, so that a read that blocks (a FIFO) or never ends (a device)
/// fails the test instead of hanging it. `secret` is put in the child's environment, to check it never leaks.
fn validate_within(dir: &Path, secret: &str) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_campaignd"))
        .arg("validate")
        .arg("--campaigns-dir")
        .arg(dir)
        .env_remove("CAMPAIGND_CAMPAIGNS__DIR")
        .env("CAMPAIGND_TEST_SECRET", secret)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("campaignd runs");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out.expect("campaignd output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("campaignd validate did not finish within 60 s");
        }
    }
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_contacts_file_outside_the_campaigns_directory_is_refused_and_never_quoted() {
    let secret = "hunter2-4d1e9";
    // Named directly: an absolute path.
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        &GOOD.replace("\"people.csv\"", "\"/proc/self/environ\""),
    );
    let out = validate_within(dir.path(), secret);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("error[contacts-outside-dir]"), "{all}");
    assert!(
        all.contains(&format!("--> {}:9:8", file.display())),
        "{all}"
    );
    assert!(!all.contains(secret), "the environment leaked:\n{all}");

    // Through a symbolic link in the campaigns directory, and with `..`.
    #[cfg(unix)]
    for (name, target) in [("env.csv", "/proc/self/environ"), ("zero.csv", "/dev/zero")] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "c.toml", &GOOD.replace("people.csv", name));
        std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
        let out = validate_within(dir.path(), secret);
        let all = all_output(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {all}");
        assert!(all.contains("error[contacts-outside-dir]"), "{name}: {all}");
        assert!(all.contains("is outside the campaigns directory"), "{all}");
        assert!(all.contains("= help: move the CSV into"), "{all}");
        assert!(!all.contains(secret), "the environment leaked:\n{all}");
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("campaigns");
    std::fs::create_dir(&dir).unwrap();
    write(root.path(), "people.csv", CSV);
    write(&dir, "c.toml", &GOOD.replace("people.csv", "../people.csv"));
    let out = validate_within(&dir, secret);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("leaves the campaigns directory with `..`"),
        "{}",
        text(&out)
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_as_contacts_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "c.toml", GOOD);
    let made = Command::new("mkfifo")
        .arg(dir.path().join("people.csv"))
        .status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let out = validate_within(dir.path(), "x");
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("error[contacts-not-a-file]"), "{all}");
    assert!(all.contains("is a FIFO, not a regular file"), "{all}");
    assert!(
        all.contains(&format!("--> {}:9:8", file.display())),
        "{all}"
    );
}

#[test]
fn an_unclosed_quote_in_the_contacts_fails_validation_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", GOOD);
    let mut csv = format!("{CSV}020 7946 0003,\"Cid,30\n");
    for i in 0..2000 {
        csv.push_str(&format!("020 7946 {:04},Row {i},1\n", 1000 + i % 9000));
    }
    write(dir.path(), "people.csv", &csv);
    let out = validate(dir.path(), &[]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error[contacts-unclosed-quote]: people.csv, the record on line 4: the quoted field opened on line 4 is never closed"),
        "{stdout}"
    );
}

#[test]
fn a_nul_in_a_contact_field_is_a_bad_row_and_the_rest_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", GOOD);
    write(
        dir.path(),
        "people.csv",
        "phone,name,amount\n020 7946 0001,Ann,10\n020 7946 0002,B\u{0}b,20\n020 7946 0003,Cid,\"3\u{1b}[2J\"\n020 7946 0004,Dee,40\n",
    );
    let out = validate(dir.path(), &[]);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("c: 2 contacts valid, 2 invalid, 0 duplicate"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "people.csv:3: column 2 (`name`) contains the control character U+0000; remove it"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("people.csv:4: column 3 (`amount`) contains the control character U+001B"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{0}'),
        "{stdout:?}"
    );
    assert_eq!(
        validate(dir.path(), &["--strict-contacts"]).status.code(),
        Some(1)
    );
}

#[test]
fn errors_quote_at_most_the_offending_field_never_a_csv_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", GOOD);
    let header = "mobile,name,amount,token=hunter2-4d1e9";
    write(
        dir.path(),
        "people.csv",
        &format!("{header}\n020 7946 0001,Ann,10,x\n"),
    );
    let out = validate(dir.path(), &[]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "error[contacts-header]: people.csv has no `phone` column in its header (line 1)"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains(header), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

// `campaignd config check` (here because it is the other command that prints what a user configured).
#[test]
fn config_check_never_prints_the_store_password() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://app:s3cret@db:5432/campaignd?sslpassword=k3y",
        "host=db user=app password='s3cret k3y' dbname=campaignd",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_campaignd"))
            .args(["config", "check"])
            .current_dir(dir.path())
            .env_remove("CAMPAIGND_CONFIG")
            .env("CAMPAIGND_STORE__URL", url)
            .output()
            .expect("campaignd runs");
        let all = all_output(&out);
        assert!(out.status.success(), "{all}");
        assert!(all.contains("***"), "{all}");
        assert!(
            !all.contains("s3cret") && !all.contains("k3y"),
            "the password leaked:\n{all}"
        );
    }
}

#[test]
fn the_contacts_limits_are_the_configurations() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    let long_name = "N".repeat(300);
    let mut csv = format!("{CSV}020 7946 0003,{long_name},30\n");
    for i in 4..40 {
        csv.push_str(&format!("020 7946 00{i:02},P{i},1\n"));
    }
    write(dir.path(), "people.csv", &csv);
    let with = |key: &str, value: &str| {
        Command::new(env!("CARGO_BIN_EXE_campaignd"))
            .arg("validate")
            .arg("--campaigns-dir")
            .arg(dir.path())
            .env_remove("CAMPAIGND_CAMPAIGNS__DIR")
            .env(format!("CAMPAIGND_CONTACTS__{key}"), value)
            .output()
            .expect("campaignd runs")
    };
    // The defaults take the file whole.
    let out = validate(dir.path(), &[]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        text(&out).contains("good: 39 contacts valid"),
        "{}",
        text(&out)
    );

    // A smaller file limit refuses the file, naming the setting.
    let out = with("MAX_FILE_BYTES", "1024");
    assert!(!out.status.success());
    let said = all_output(&out);
    assert!(
        said.contains("more than the limit `[contacts] max_file_bytes` (1024 bytes)"),
        "{said}"
    );
    // A smaller record limit makes the long row a bad row, with its line; the rest still counts.
    let out = with("MAX_RECORD_BYTES", "256");
    let said = all_output(&out);
    assert!(
        said.contains("good: 38 contacts valid, 1 invalid"),
        "{said}"
    );
    assert!(
        said.contains("people.csv:4:") && said.contains("`[contacts] max_record_bytes`"),
        "{said}"
    );
    // A useless value is refused with the key.
    let out = with("MAX_FIELDS", "1");
    assert!(!out.status.success());
    assert!(
        all_output(&out).contains("[contacts] max_fields = 1 cannot hold"),
        "{}",
        all_output(&out)
    );
}

/// Contacts read in their own time zones, dialled 07:00-22:00 every day: wider than any legal hours.
const CONTACT_ZONES: &str = r#"scene_id = "S"

[schedule]
timezone = "contact"
windows = [{ days = "mon-sun", hours = ["07:00-22:00"] }]

[contacts]
file = "people.csv"
default_country = "US"
"#;

/// Monday 12:00 in New York.
const WINTER_MONDAY: &str = "2027-01-11T17:00:00Z";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../campaigns")
}

fn diagnostics_with_code<'a>(doc: &'a serde_json::Value, code: &str) -> Vec<&'a serde_json::Value> {
    doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == code)
        .collect()
}

#[test]
fn the_us_contacts_example_validates_and_a_named_zone_example_warns_of_its_california_contacts() {
    let out = validate(&examples(), &["--now", WINTER_MONDAY]);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("file(s) checked: 0 error(s)"), "{stdout}");
    assert!(
        stdout.contains("us-contacts: 9 contacts valid, 0 invalid, 0 duplicate"),
        "{stdout}"
    );
    // Its windows (09:00-20:00) are inside every contact's legal hours.
    assert!(
        !stdout.contains("campaign `us-contacts` ask for"),
        "{stdout}"
    );
    // Spring renewals dials New York time from 09:00; its San Francisco contacts may be called from 08:00 theirs.
    assert!(
        stdout.contains(
            "warning[legal-hours]: in the next 7 days the legal calling hours remove 11 h of the 51 h 30 min the \
             windows of campaign `spring-renewals` ask for, for 40 contact(s) (first at "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "e.g. Tue 2027-01-12 09:00-11:00 (America/New_York); by us (47 CFR 64.1200(c)(1); checked "
        ),
        "{stdout}"
    );
    assert!(stdout.contains(") in America/Los_Angeles\n"), "{stdout}");

    let out = validate(&examples(), &["--now", WINTER_MONDAY, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let us = doc["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "us-contacts")
        .unwrap();
    assert_eq!(us["audience"]["groups"].as_array().unwrap().len(), 8);
    assert_eq!(us["audience"]["unzoned"], 0);
    let tokyo = us["audience"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["label"] == "Asia/Tokyo [us]")
        .expect("the row whose timezone column says Tokyo");
    assert_eq!(tokyo["first_line"], 10);
}

#[test]
fn legal_hours_are_summarised_per_task_with_rule_sources_and_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let toml = std::fs::read_to_string(examples().join("us-contacts.toml")).unwrap();
    let wide = toml.replace(
        r#"{ days = "mon-sat", hours = ["09:00-20:00"] }"#,
        r#"{ days = "mon-sun", hours = ["07:00-22:00"] }"#,
    );
    assert_ne!(wide, toml);
    write(dir.path(), "us-contacts.toml", &wide);
    let csv = std::fs::read_to_string(examples().join("us-contacts.csv")).unwrap();
    let csv_path = write(dir.path(), "us-contacts.csv", &csv);

    let out = validate(dir.path(), &["--now", WINTER_MONDAY]);
    let stdout = text(&out);
    assert!(out.status.success(), "warnings do not fail: {stdout}");
    assert!(stdout.contains("0 error(s), 8 warning(s)"), "{stdout}");
    // Florida: 07:00-08:00 and 20:00-22:00 of 07:00-22:00 every day, by federal and state law.
    assert!(
        stdout.contains(&format!(
            "warning[legal-hours]: in the next 7 days the legal calling hours remove 21 h of the 105 h the windows \
             of campaign `us-contacts` ask for, for the 1 contact(s) of zone group America/New_York [us us-fl] \
             (first at {}:9): e.g. Mon 2027-01-11 20:00-22:00 (America/New_York); by us (47 CFR 64.1200(c)(1); \
             checked ",
            csv_path.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("us-fl (Fla. Stat. 501.616(6), 2021; checked "),
        "{stdout}"
    );
    // Honolulu: 07:00-08:00 and 21:00-22:00 its time; it is 07:00 there now.
    assert!(
        stdout.contains(
            "remove 14 h of the 105 h the windows of campaign `us-contacts` ask for, for the 1 contact(s) of zone \
             group Pacific/Honolulu [us]"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("e.g. Mon 2027-01-11 07:00-08:00, 21:00-22:00 (Pacific/Honolulu)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("= help: those hours are never dialled; to make the file say what happens, narrow `windows`"),
        "{stdout}"
    );
    // One warning per task, never one per half hour.
    let out = validate(dir.path(), &["--now", WINTER_MONDAY, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diagnostics_with_code(&doc, "legal-hours").len(), 8);
    assert_eq!(doc["ok"], true);
}

#[test]
fn a_named_zone_campaign_warns_where_a_distant_contacts_legal_hours_narrow_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ny.toml",
        &CONTACT_ZONES.replace("\"contact\"", "\"America/New_York\""),
    );
    write(
        dir.path(),
        "people.csv",
        "phone\n(212) 555-0100\n(213) 555-0101\n",
    );
    let out = validate(dir.path(), &["--now", WINTER_MONDAY]);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    // 07:00-22:00 New York time; New York's law leaves 08:00-21:00, Los Angeles's 11:00-24:00 New York time.
    assert!(
        stdout.contains(
            "remove 35 h of the 105 h the windows of campaign `ny` ask for, for 2 contact(s) (first at "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(") in America/Los_Angeles, America/New_York\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("no-zone"), "{stdout}");
}

#[test]
fn contacts_without_a_known_zone_are_warned_about_unless_there_is_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", CONTACT_ZONES);
    // +800 is the international freephone code: no zone.
    let csv = write(
        dir.path(),
        "people.csv",
        "phone\n(212) 555-0100\n+800 1234 5678\n+800 1234 5679\n",
    );
    let out = validate(dir.path(), &["--now", WINTER_MONDAY]);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "warning[no-zone]: 2 contact(s) of campaign `c` have no known time zone and are not dialled (line(s) 3, 4)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("--> {}:3:1", csv.display())),
        "{stdout}"
    );
    assert!(stdout.contains("`fallback_timezone`"), "{stdout}");

    write(
        dir.path(),
        "c.toml",
        &CONTACT_ZONES.replace(
            "timezone = \"contact\"",
            "timezone = \"contact\"\nfallback_timezone = \"America/Chicago\"",
        ),
    );
    let out = validate(dir.path(), &["--now", WINTER_MONDAY]);
    assert!(!text(&out).contains("no-zone"), "{}", text(&out));
}

#[test]
fn more_zone_groups_than_the_bound_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let toml = write(dir.path(), "c.toml", CONTACT_ZONES);
    let zones: Vec<&str> = campaign::chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .filter(|n| n.starts_with("America/"))
        .take(campaign::MAX_ZONE_GROUPS + 1)
        .collect();
    assert_eq!(zones.len(), 65);
    let mut csv = String::from("phone,timezone\n");
    for (i, zone) in zones.iter().enumerate() {
        csv.push_str(&format!("(212) 555-01{i:02},{zone}\n"));
    }
    write(dir.path(), "people.csv", &csv);
    let out = validate(dir.path(), &["--now", WINTER_MONDAY]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "error[too-many-groups]: the contacts of campaign `c` fall into 65 zone groups, more than the 64 a \
             campaign may have"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("--> {}:3:2", toml.display())),
        "{stdout}"
    );
    assert!(stdout.contains("= help: split the contacts"), "{stdout}");
}

#[test]
fn bad_timezone_and_region_rows_have_their_own_json_kinds() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", CONTACT_ZONES);
    write(
        dir.path(),
        "people.csv",
        "phone,timezone,region\n(212) 555-0100,America/New_Yrok,\n(212) 555-0101,,ZZ\n(212) 555-0102,,NY\n",
    );
    let out = validate(dir.path(), &["--format", "json", "--now", WINTER_MONDAY]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issues = doc["campaigns"][0]["contacts"]["issues"]
        .as_array()
        .unwrap();
    let kinds: Vec<(u64, &str)> = issues
        .iter()
        .map(|i| (i["line"].as_u64().unwrap(), i["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [(2, "bad_timezone"), (3, "bad_region")]);
}

#[test]
fn a_bad_now_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    write(dir.path(), "people.csv", CSV);
    let out = validate(dir.path(), &["--now", "soon"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--now `soon` is not an RFC 3339 instant"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
