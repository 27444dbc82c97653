//! `campaignd sign` run as a real process against vectors computed independently with coreutils.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run_sign(args: &[&str], env_secret: Option<&str>, stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_campaignd"));
    cmd.arg("sign")
        .args(args)
        .env_remove("CAMPAIGND_SIGN_SECRET_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = env_secret {
        cmd.env("CAMPAIGND_SIGN_SECRET_KEY", s);
    }
    let mut child = cmd.spawn().expect("campaignd runs");
    // A run that fails at once (no secret) may exit before reading its input: that is not the test's failure.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}, stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn prints_sha256_sign_of_chinese_body() {
    // printf '%s' '秘钥SecretKey&body={"productID": "callbot", "taskCreateSetting": {"strategyName": "默认策略", "taskName": "回访"}}&createTs=1732190400&requestID=7f1c0e3a-0000-4000-8000-000000000001&uuid=u-42' | sha256sum
    let body = r#"{"productID": "callbot", "taskCreateSetting": {"strategyName": "默认策略", "taskName": "回访"}}"#;
    let out = run_sign(
        &[
            "--uuid",
            "u-42",
            "--secret-key",
            "秘钥SecretKey",
            "--request-id",
            "7f1c0e3a-0000-4000-8000-000000000001",
            "--create-ts",
            "1732190400",
            "--algorithm",
            "SHA256",
        ],
        None,
        body.as_bytes(),
    );
    assert_eq!(
        stdout(&out),
        "2526B9DDDA5F5C53232C671ABA9F9F7C85C13D398F999426EAB6FBAA6AD8F7E3\n"
    );
}

const NEWLINE_ARGS: [&str; 6] = [
    "--uuid",
    "u2",
    "--request-id",
    "r2",
    "--create-ts",
    "1732190402",
];

#[test]
fn keeps_trailing_newline_unless_trim_is_given() {
    // printf 'abc&body={"data":"ping"}\n&createTs=1732190402&requestID=r2&uuid=u2' | md5sum
    let out = run_sign(&NEWLINE_ARGS, Some("abc"), b"{\"data\":\"ping\"}\n");
    assert_eq!(stdout(&out), "7096CA5526F772CAE0CCB85D553B823C\n");
    // printf '%s' 'abc&body={"data":"ping"}&createTs=1732190402&requestID=r2&uuid=u2' | md5sum
    let mut args = NEWLINE_ARGS.to_vec();
    args.push("--trim");
    let out = run_sign(&args, Some("abc"), b"{\"data\":\"ping\"}\n");
    assert_eq!(stdout(&out), "1C006DBA3477BA9FCB7614ED0FD8C9D4\n");
}

#[test]
fn reads_secret_from_file_and_masks_it_in_verbose_output() {
    let path = std::env::temp_dir().join(format!("campaignd-sign-test-{}.key", std::process::id()));
    std::fs::write(&path, "abc\n").unwrap();
    let mut args = NEWLINE_ARGS.to_vec();
    let p = path.to_str().unwrap().to_owned();
    args.extend(["--secret-key-file", &p, "--verbose"]);
    let out = run_sign(&args, None, b"{\"data\":\"ping\"}\n");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(stdout(&out), "7096CA5526F772CAE0CCB85D553B823C\n");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("***&body={\"data\":\"ping\"}\n&createTs=1732190402&requestID=r2&uuid=u2"),
        "{err}"
    );
    assert!(!err.contains("abc&body"), "{err}");
}

#[test]
fn fails_without_a_secret_and_on_unknown_algorithm() {
    let out = run_sign(&NEWLINE_ARGS, None, b"{}");
    assert!(!out.status.success());
    let mut args = NEWLINE_ARGS.to_vec();
    args.extend(["--algorithm", "sha1"]);
    let out = run_sign(&args, Some("abc"), b"{}");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sha1"));
}
