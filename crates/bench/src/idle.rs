//! idle: the running daemon (reconciler, webhook listener and file watcher, as `campaignd run` wires them) holding
//! N campaigns, each with 10 contacts uploaded to a task that the file holds paused. Once its first reconcile is
//! done, RSS and CPU are measured over the window, which includes the periodic rescans (every 10 s) and polls (every
//! 30 s) of the daemon's defaults.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use callbot_api::SecretKey;
use clock::SystemClock;
use daemon::{Watcher, Webhook};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::env::{self, StoreKind};
use crate::report::{Figures, short};
use crate::simproc::{SECRET, SimProcess};

const CONTACTS: u64 = 10;

pub async fn run(n: u64, kind: StoreKind, secs: u64) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    for i in 0..n {
        let csv = format!("idle-{i:04}.csv");
        env::write_csv(&dir.path().join(&csv), i * CONTACTS, CONTACTS)?;
        std::fs::write(
            dir.path().join(format!("idle-{i:04}.toml")),
            env::campaign_toml(&csv, true, 20),
        )?;
    }
    let sim = SimProcess::start().await?;
    let env = env::open_store(kind).await?;
    let clock = SystemClock::shared();
    let client = env::client(&sim.base_url, clock.clone())?;
    let (daemon, hub) = env::daemon(
        env.store.clone(),
        client,
        clock.clone(),
        dir.path(),
        chrono::Duration::seconds(30),
    );
    let webhook = Webhook::new(
        env.store.clone(),
        SecretKey::new(SECRET.to_owned()),
        clock.clone(),
        hub.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the webhook listener")?;
    let watcher = Watcher::new(dir.path(), hub.clone(), Duration::from_secs(10));

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(daemon.run(shutdown.clone()));
    tracker.spawn(webhook.run(listener, shutdown.clone()));
    tracker.spawn(watcher.run(shutdown.clone()));
    tracker.close();

    let t = Instant::now();
    while !hub.is_ready() {
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the daemon did not finish its first reconcile within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let startup_secs = t.elapsed().as_secs_f64();
    let mut sent = 0;
    for i in 0..n {
        sent += env.store.order_counts(&format!("idle-{i:04}")).await?.sent;
    }
    if sent != n * CONTACTS {
        bail!(
            "after the first reconcile {sent} of {} contacts were uploaded",
            n * CONTACTS
        );
    }
    let requests0 = env::metric_sum(&hub, "campaignd_api_requests_total", "");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let cpu0 = crate::procfs::cpu_secs(None);
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let window = Duration::from_secs(secs.max(1));
    while t0.elapsed() < window {
        samples.push(crate::procfs::rss_mb(None));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = crate::procfs::cpu_secs(None) - cpu0;
    let requests = env::metric_sum(&hub, "campaignd_api_requests_total", "") - requests0;
    let rss_end = crate::procfs::rss_mb(None);
    let rss_max = samples.iter().copied().fold(rss_end, f64::max);
    let peak = crate::procfs::peak_rss_mb(None);

    shutdown.cancel();
    tracker.wait().await;
    let sim_peak = sim.peak_rss_mb();
    sim.stop().await;

    let cpu_percent = cpu / elapsed * 100.0;
    let mut f = Figures::new("idle", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    f.put("rss_mb", rss_end)
        .put("rss_max_mb", rss_max)
        .put("cpu_percent", cpu_percent)
        .put("window_secs", elapsed)
        .put("requests_in_window", requests)
        .put("peak_rss_mb", peak)
        .put("startup_secs", startup_secs)
        .put("sim_peak_rss_mb", sim_peak);
    f.line = format!(
        "idle [{}] {n} campaigns held for {} s: RSS {} MB (max {} MB in the window, peak {} MB at start-up), CPU {} % \
         of one core, {requests} requests in the window",
        kind.as_str(),
        short(elapsed),
        short(rss_end),
        short(rss_max),
        short(peak),
        short(cpu_percent)
    );
    Ok(f)
}
