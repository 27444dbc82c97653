//! campaigns: N campaign files loaded, validated and planned by the daemon's reconciler (its first reconcile, which
//! also records every campaign in the store); then one file is changed and the time until the daemon's plan shows the
//! change is measured, through the real file watcher (with its settle time) and the next reconcile.
//!
//! Every campaign has the product's reference calendar and an empty contact list (so nothing is sent to the
//! platform: the client points at a closed port and must never be used). The change sets `paused = true`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clock::SystemClock;
use daemon::{Watcher, Why};
use tokio_util::sync::CancellationToken;

use crate::env::{self, StoreKind};
use crate::report::{Figures, short};

fn campaign_file(paused: bool) -> String {
    format!(
        r#"scene_id = "SC-1029"
robots = 20
max_ring_seconds = 40
paused = {paused}

[schedule]
timezone = "America/New_York"
holidays = [2026-11-26, 2026-12-25]
windows = [
  {{ days = "mon-fri", hours = ["09:00-12:00", "13:30-20:00"] }},
  {{ days = "sat",     hours = ["10:00-14:00"] }},
]

[features]
whole_tts = true

[contacts]
file = "contacts.csv"
default_country = "US"
variables = ["amount"]
"#
    )
}

fn name(i: u64) -> String {
    format!("c{i:06}")
}

pub async fn run(n: u64, kind: StoreKind) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    env::write_csv(&dir.path().join("contacts.csv"), 0, 0)?;
    for i in 0..n {
        std::fs::write(
            dir.path().join(format!("{}.toml", name(i))),
            campaign_file(false),
        )?;
    }
    // Write the new files back to disk before timing anything: the kernel flushing them during the load would be
    // measured as the daemon's time.
    let synced = std::process::Command::new("sync").status();
    if !synced.as_ref().is_ok_and(|s| s.success()) {
        bail!("`sync` failed after writing the campaign files: {synced:?}");
    }
    let env = env::open_store(kind).await?;
    let clock = SystemClock::shared();

    // The pure part alone: read, parse and validate every file, then compile each calendar at now.
    let t = Instant::now();
    let scan = daemon::scan_dir(dir.path(), &campaign::ContactLimits::default());
    let scan_secs = t.elapsed().as_secs_f64();
    let specs: Vec<_> = scan.files.into_iter().filter_map(|(_, r)| r.ok()).collect();
    if specs.len() as u64 != n {
        bail!("only {} of {n} files validated", specs.len());
    }
    let t = Instant::now();
    let now = clock.now();
    let targets = specs
        .iter()
        .filter(|s| {
            daemon::desired(s, now, true, false, chrono::Duration::minutes(5))
                .target
                .is_some()
        })
        .count();
    let compile_secs = t.elapsed().as_secs_f64();
    drop(specs);

    // The daemon: its first reconcile loads, validates and plans every campaign and records it in the store.
    let client = env::client("http://127.0.0.1:9", clock.clone())?;
    let (mut daemon, hub) = env::daemon(
        env.store.clone(),
        client,
        clock.clone(),
        dir.path(),
        chrono::Duration::seconds(30),
    );
    let t = Instant::now();
    let outcome = daemon.reconcile_once(clock.now()).await;
    let load_secs = t.elapsed().as_secs_f64();
    let errors = outcome
        .campaigns
        .iter()
        .filter(|c| c.error.is_some())
        .count();
    if outcome.campaigns.len() as u64 != n || errors > 0 || !outcome.file_errors.is_empty() {
        bail!(
            "the first reconcile saw {} campaigns, {errors} with errors ({:?}), {} bad files",
            outcome.campaigns.len(),
            outcome.campaigns.iter().find_map(|c| c.error.clone()),
            outcome.file_errors.len()
        );
    }
    let rss_after_load = crate::procfs::rss_mb(None);

    // The watcher, as `campaignd run` starts it (rescan every 10 s besides OS notifications).
    let shutdown = CancellationToken::new();
    let watcher = Watcher::new(dir.path(), hub.clone(), Duration::from_secs(10));
    let watching = tokio::spawn(watcher.run(shutdown.clone()));
    // Let it take its first snapshot of the directory before anything changes.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Drop a wake-up left over from start-up, so the one measured comes from the change.
    while tokio::time::timeout(Duration::from_millis(50), hub.woken())
        .await
        .is_ok()
    {}

    let changed = name(0);
    let t = Instant::now();
    std::fs::write(
        dir.path().join(format!("{changed}.toml")),
        campaign_file(true),
    )?;
    let (seen, wake_ms, reconcile_ms) = loop {
        if tokio::time::timeout(Duration::from_secs(60), hub.woken())
            .await
            .is_err()
        {
            bail!("the watcher did not report the change within 60 s");
        }
        let wake_ms = t.elapsed().as_secs_f64() * 1000.0;
        let r = Instant::now();
        let outcome = daemon.reconcile_once(clock.now()).await;
        let reconcile_ms = r.elapsed().as_secs_f64() * 1000.0;
        if outcome
            .campaign(&changed)
            .is_some_and(|c| matches!(c.plan.why, Why::PausedInFile))
        {
            break (t.elapsed().as_secs_f64() * 1000.0, wake_ms, reconcile_ms);
        }
    };
    shutdown.cancel();
    let _ = watching.await;

    let peak = crate::procfs::peak_rss_mb(None);
    let mut f = Figures::new("campaigns", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    f.put("load_secs", load_secs)
        .put("scan_secs", scan_secs)
        .put("compile_secs", compile_secs)
        .put("change_ms", seen)
        .put("change_wake_ms", wake_ms)
        .put("change_reconcile_ms", reconcile_ms)
        .put("rss_after_load_mb", rss_after_load)
        .put("peak_rss_mb", peak)
        .put("targets", targets as u64);
    f.line = format!(
        "campaigns [{}] {n} files: first reconcile (load, validate, plan, record) {} s (of which read+validate {} s, \
         calendar {} s); a change seen in the plan after {} ms (watcher woke the loop at {} ms, reconcile {} ms); \
         RSS {} MB after load, peak {} MB",
        kind.as_str(),
        short(load_secs),
        short(scan_secs),
        short(compile_secs),
        short(seen),
        short(wake_ms),
        short(reconcile_ms),
        short(rss_after_load),
        short(peak)
    );
    Ok(f)
}
