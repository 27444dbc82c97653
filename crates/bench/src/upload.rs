//! upload: a CSV of N contacts, from file until every contact is acknowledged by the simulator and recorded in the
//! store, through the daemon's own reconcile (plan the CSV into the store, createAndCall, addBatchCall batches).

use std::time::Instant;

use anyhow::{Context, bail};
use clock::SystemClock;

use crate::env::{self, StoreKind};
use crate::report::{Figures, short};
use crate::simproc::SimProcess;

const ID: &str = "bench-upload";

pub async fn run(n: u64, kind: StoreKind, platform: env::Platform) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    env::write_csv(&dir.path().join("contacts.csv"), 0, n)?;
    // Paused: the task is created and filled but never started, so the simulator dials nothing meanwhile.
    std::fs::write(
        dir.path().join(format!("{ID}.toml")),
        env::campaign_toml("contacts.csv", true, 20),
    )?;
    let sim = SimProcess::start_with(platform.latency).await?;
    let env = env::open_store(kind).await?;
    let clock = SystemClock::shared();
    let client = env::client(&sim.base_url, clock.clone())?;
    let (mut daemon, hub) = env::daemon_with(
        env.store.clone(),
        client,
        clock.clone(),
        dir.path(),
        chrono::Duration::days(1),
        platform,
    );

    // Only the daemon's reconciles are timed; the end is read from the outcome the daemon computed itself.
    let cpu0 = crate::procfs::cpu_secs(None);
    let mut busy = std::time::Duration::ZERO;
    let mut reconciles = 0u32;
    let orders = loop {
        let t = Instant::now();
        let outcome = daemon.reconcile_once(clock.now()).await;
        busy += t.elapsed();
        reconciles += 1;
        if let Some((path, e)) = outcome.file_errors.first() {
            bail!("{}: {e}", path.display());
        }
        let Some(c) = outcome.campaign(ID) else {
            // The scan reads the whole contacts file (its zone groups) before the campaign is known: a large file
            // takes a few passes of the loop.
            if outcome.file_errors.is_empty() && reconciles < 600 {
                continue;
            }
            bail!("the daemon does not know campaign {ID}: {outcome:?}");
        };
        let o = c.orders;
        if o.planned == 0 && o.sending == 0 && o.sent + o.rejected >= n {
            break o;
        }
        if let Some(e) = &c.error
            && reconciles >= 3
        {
            bail!("the upload keeps failing: {e}");
        }
        if reconciles > 10_000 {
            bail!("no end after {reconciles} reconciles: {o:?}");
        }
    };
    let secs = busy.as_secs_f64();
    let cpu = crate::procfs::cpu_secs(None) - cpu0;
    let peak = crate::procfs::peak_rss_mb(None);
    let api_secs = env::metric_sum(&hub, "campaignd_api_request_duration_seconds_sum", "");
    let requests = env::metric_sum(&hub, "campaignd_api_requests_total", "");
    let batches = env::metric_sum(&hub, "campaignd_api_requests_total", "addBatchCall")
        + env::metric_sum(&hub, "campaignd_api_requests_total", "createAndCall");
    let sim_peak = sim.peak_rss_mb();
    let sim_cpu = sim.cpu_secs();
    sim.stop().await;

    let rate = n as f64 / secs;
    let mut f = Figures::new("upload", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    f.put("in_flight", platform.in_flight as u64)
        .put("latency_ms", platform.latency.as_millis() as u64);
    f.put("secs", secs)
        .put("contacts_per_s", rate)
        .put("peak_rss_mb", peak)
        .put("sent", orders.sent)
        .put("rejected", orders.rejected)
        .put("requests", requests)
        .put("upload_requests", batches)
        .put("api_secs", api_secs)
        .put("reconciles", reconciles)
        .put("cpu_secs", cpu)
        .put("sim_cpu_secs", sim_cpu)
        .put("sim_peak_rss_mb", sim_peak);
    f.line = format!(
        "upload [{}] {n} contacts in {} s: {} contacts/s, peak RSS {} MB (daemon side; simulator {} MB), {} requests \
         ({} s waiting on the platform), {} rejected",
        kind.as_str(),
        short(secs),
        short(rate),
        short(peak),
        short(sim_peak),
        requests,
        short(api_secs),
        orders.rejected
    );
    Ok(f)
}
