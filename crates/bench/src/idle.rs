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

pub(crate) const CONTACTS: u64 = 10;

pub async fn run(n: u64, kind: StoreKind, secs: u64) -> anyhow::Result<Figures> {
    let dir = campaigns_dir(n)?;
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
    let sent = uploaded(env.store.as_ref(), n).await?;
    if sent != n * CONTACTS {
        bail!(
            "after the first reconcile {sent} of {} contacts were uploaded",
            n * CONTACTS
        );
    }
    let requests0 = env::metric_sum(&hub, "campaignd_api_requests_total", "");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let w = Window::measure(None, secs).await;
    let requests = env::metric_sum(&hub, "campaignd_api_requests_total", "") - requests0;

    shutdown.cancel();
    tracker.wait().await;
    let sim_peak = sim.peak_rss_mb();
    sim.stop().await;

    let mut f = w.figures("idle", kind, n, startup_secs, &env.durability);
    f.put("requests_in_window", requests)
        .put("sim_peak_rss_mb", sim_peak);
    f.line = format!(
        "idle [{}] {n} campaigns held for {}, {requests} requests in the window",
        kind.as_str(),
        w.line()
    );
    Ok(f)
}

/// A directory of `n` campaign files (`idle-NNNN.toml`, paused), each with its CSV of [`CONTACTS`] contacts.
pub(crate) fn campaigns_dir(n: u64) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    for i in 0..n {
        let csv = format!("idle-{i:04}.csv");
        env::write_csv(&dir.path().join(&csv), i * CONTACTS, CONTACTS)?;
        std::fs::write(
            dir.path().join(format!("idle-{i:04}.toml")),
            env::campaign_toml(&csv, true, 20),
        )?;
    }
    Ok(dir)
}

/// The contacts of the `n` campaigns of [`campaigns_dir`] the store counts as sent.
pub(crate) async fn uploaded(store: &dyn store::Store, n: u64) -> anyhow::Result<u64> {
    let mut sent = 0;
    for i in 0..n {
        sent += store.order_counts(&format!("idle-{i:04}")).await?.sent;
    }
    Ok(sent)
}

/// RSS and CPU of a process (`None`: this one) over a window.
#[derive(Debug)]
pub(crate) struct Window {
    elapsed: f64,
    cpu_percent: f64,
    rss_end: f64,
    rss_max: f64,
    peak: f64,
    /// Of the RSS at the end: anonymous memory (heap, stacks) and file pages (the binary's code and data, shared
    /// libraries), MB.
    rss_anon: f64,
    rss_file: f64,
}

impl Window {
    /// Samples the process's RSS every 500 ms for `secs` seconds (at least 1).
    pub(crate) async fn measure(pid: Option<u32>, secs: u64) -> Window {
        let cpu0 = crate::procfs::cpu_secs(pid);
        let t0 = Instant::now();
        let mut samples = Vec::new();
        let window = Duration::from_secs(secs.max(1));
        while t0.elapsed() < window {
            samples.push(crate::procfs::rss_mb(pid));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = crate::procfs::cpu_secs(pid) - cpu0;
        let rss_end = crate::procfs::rss_mb(pid);
        Window {
            elapsed,
            cpu_percent: cpu / elapsed * 100.0,
            rss_end,
            rss_max: samples.iter().copied().fold(rss_end, f64::max),
            peak: crate::procfs::peak_rss_mb(pid),
            rss_anon: crate::procfs::status_kb(pid, "RssAnon").unwrap_or(0) as f64 / 1024.0,
            rss_file: crate::procfs::status_kb(pid, "RssFile").unwrap_or(0) as f64 / 1024.0,
        }
    }

    /// The scenario's figures with the window's.
    pub(crate) fn figures(
        &self,
        scenario: &str,
        kind: StoreKind,
        n: u64,
        startup_secs: f64,
        durability: &str,
    ) -> Figures {
        let mut f = Figures::new(scenario, kind.as_str(), n);
        f.put("durability", durability.to_owned());
        f.put("rss_mb", self.rss_end)
            .put("rss_max_mb", self.rss_max)
            .put("cpu_percent", self.cpu_percent)
            .put("window_secs", self.elapsed)
            .put("peak_rss_mb", self.peak)
            .put("rss_anon_mb", self.rss_anon)
            .put("rss_file_mb", self.rss_file)
            .put("startup_secs", startup_secs);
        f
    }

    /// The window in words.
    pub(crate) fn line(&self) -> String {
        format!(
            "{} s: RSS {} MB ({} MB anonymous, {} MB file pages; max {} MB in the window, peak {} MB at start-up), CPU {} \
             % of one core",
            short(self.elapsed),
            short(self.rss_end),
            short(self.rss_anon),
            short(self.rss_file),
            short(self.rss_max),
            short(self.peak),
            short(self.cpu_percent)
        )
    }
}
