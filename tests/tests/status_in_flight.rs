//! `campaignd status` tells a batch in flight from one a crash left behind, on the real binary: while `campaignd run`
//! waits for the platform's answer to a batch, status says it is uploading, held by that replica; after SIGKILL, once
//! the replica's lease has expired (status evaluated at a later `--now`), it says the batch was interrupted, by which
//! replica and when its lease expired.
//!
//! The simulator holds every `addBatchCall` answer back (after applying it) far longer than the test runs, so the
//! batches after the first (three, all in flight at once under `requests_in_flight`'s default of 4) stay in flight
//! for as long as the test looks at them: no race with the upload.

#[macro_use]
mod daemon_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use callbot_sim::{Account, FaultConfig, FaultKind, SimConfig};
use chrono::{DateTime, Utc};
use daemon_support::{
    Backend, SECRET, UUID, accepted_of, contacts_csv, free_port, fresh_store_url, real_time_sim,
    run_command, wait_for,
};
use tokio_util::sync::CancellationToken;

const BATCH: usize = 10;
const REPLICA: &str = "replica-east";
/// The daemon's lease lifetime (`DaemonConfig::lease_ttl`, not a setting of the binary).
const LEASE_TTL: chrono::Duration = chrono::Duration::seconds(120);

const CAMPAIGN: &str = r#"
scene_id = "SC-FLIGHT"
robots = 2

[schedule]
timezone = "UTC"
# Not a test of the legal calling hours (daemon_zones.rs is): the calendar alone decides.
rules = []
windows = [{ days = "mon-sun", hours = ["00:00-24:00"] }]

[contacts]
file = "flight.csv"
variables = ["amount"]
batch_size = 10
"#;

/// `campaignd status --format json` at `now` (the system clock when `None`): the object of campaign `flight`.
fn status(dir: &Path, store_url: &str, now: Option<DateTime<Utc>>) -> serde_json::Value {
    let mut cmd = Command::new(daemon_support::campaignd_bin());
    cmd.args(["status", "flight", "--format", "json", "--store", store_url])
        .arg("--campaigns-dir")
        .arg(dir.join("campaigns"))
        .current_dir(dir);
    if let Some(now) = now {
        cmd.args(["--now", &now.to_rfc3339()]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json.as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == "flight"))
        .cloned()
        .unwrap_or_else(|| panic!("no campaign flight in {json}"))
}

fn instant(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not an instant: {v}"))
        .with_timezone(&Utc)
}

async fn status_tells_an_upload_in_flight_from_an_interrupted_one(backend: Backend) {
    callbot_api::ensure_crypto_provider();
    let shutdown = CancellationToken::new();
    let mut cfg = SimConfig::new(vec![Account::new(UUID, SECRET)]);
    cfg.faults = FaultConfig {
        rate: 1.0,
        kinds: vec![FaultKind::Delay],
        endpoints: vec!["addBatchCall".into()],
        delay: Duration::from_secs(600),
        ..FaultConfig::default()
    };
    let (handle, sim_url) = real_time_sim(cfg, &shutdown).await;

    let work = tempfile::tempdir().unwrap();
    let campaigns = work.path().join("campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("flight.toml"), CAMPAIGN).unwrap();
    std::fs::write(campaigns.join("flight.csv"), contacts_csv(4 * BATCH)).unwrap();
    let ut =
        daemon::user_task_id(&campaign::load_campaign(&campaigns.join("flight.toml")).unwrap());

    let (store_url, _pg) = fresh_store_url(backend, work.path()).await;

    // The client waits for the held answer longer than the test runs.
    let mut child = run_command(work.path(), &sim_url, &store_url, free_port())
        .env("CAMPAIGND_REPLICA", REPLICA)
        .env("CAMPAIGND_PLATFORM__REQUEST_TIMEOUT", "300s")
        .spawn()
        .expect("the campaignd binary starts");
    // The first batch went with createAndCall; the other three, by addBatchCall, are applied and their answers held.
    wait_for(
        &handle,
        "every batch on the platform",
        Duration::from_secs(60),
        |sim| accepted_of(sim, &ut) == 4 * BATCH,
    )
    .await;

    let live = status(work.path(), &store_url, None);
    assert_eq!(live["orders"]["sending"], 3 * BATCH, "{live:#}");
    let upload = &live["upload"];
    assert_eq!(upload["state"], "uploading", "{live:#}");
    assert_eq!(upload["replica"], REPLICA, "{live:#}");
    let lease_until = instant(&upload["lease_until"]);
    assert!(lease_until > Utc::now(), "{live:#}");
    let why = live["why"].as_str().unwrap();
    assert!(
        why.starts_with(
            "uploading: orders are in flight, held by replica replica-east (lease until "
        ),
        "{why}"
    );

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = Utc::now();

    // Once its lease has expired: its last renewal, before the kill, lasts one lifetime at most.
    let later = killed_at + LEASE_TTL + chrono::Duration::seconds(1);
    let left = status(work.path(), &store_url, Some(later));
    assert_eq!(left["orders"]["sending"], 3 * BATCH, "{left:#}");
    let upload = &left["upload"];
    assert_eq!(upload["state"], "interrupted", "{left:#}");
    assert_eq!(upload["replica"], REPLICA, "{left:#}");
    let expired_at = instant(&upload["lease_expired_at"]);
    assert!(lease_until <= expired_at && expired_at <= later, "{left:#}");
    let why = left["why"].as_str().unwrap();
    assert!(
        why.starts_with(
            "interrupted: replica replica-east left orders in flight (its lease expired "
        ),
        "{why}"
    );
    assert!(
        why.ends_with(
            "the next owner checks with the platform what it did before sending anything again"
        ),
        "{why}"
    );
    assert_eq!(
        accepted_of(&handle, &ut),
        4 * BATCH,
        "nothing was sent twice"
    );
    shutdown.cancel();
}

both_backends!(status_tells_an_upload_in_flight_from_an_interrupted_one);
