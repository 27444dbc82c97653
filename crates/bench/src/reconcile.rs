//! reconcile: N unfinished orders whose calls have all finished in the simulator, polled via listOrderDetail by the
//! daemon's own poller (a fresh reconciler, as after a restart) until every call detail is in the store.
//!
//! Set-up (not timed): the daemon uploads and starts the campaign; the simulator dials every order (each call lasts
//! one simulated millisecond); the set-up reconciler polls only once, at the start.
//!
//! The measured reconciler is made before the set-up and reads the campaigns directory while the bench holds the
//! campaign's lease, so it knows the file when it first owns the campaign: a reconciler whose first scan is still
//! reading a large contacts file takes a campaign it loaded from the store for one whose file was removed, and
//! completes its task.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use callbot_api::wire::ListOrderDetailRequest;
use clock::SystemClock;

use crate::env::{self, StoreKind};
use crate::report::{Figures, short};
use crate::simproc::SimProcess;

const ID: &str = "bench-reconcile";

pub async fn run(n: u64, kind: StoreKind, platform: env::Platform) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    env::write_csv(&dir.path().join("contacts.csv"), 0, n)?;
    let file = dir.path().join(format!("{ID}.toml"));
    // Not paused: the measured reconciler reads the file once, as it stays (the set-up reconciler's one poll, at
    // its first reconcile, finds the first calls finished at most: they are not counted).
    std::fs::write(&file, env::campaign_toml("contacts.csv", false, 10_000))?;
    let spec = campaign::load_campaign(&file).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let ut = daemon::user_task_id(&spec);

    let sim = SimProcess::start_with(platform.latency).await?;
    let env = env::open_store(kind).await?;
    let clock = SystemClock::shared();

    // The measured reconciler reads the directory first, while another owner holds the lease (it acts on nothing).
    let (mut daemon, hub) = env::daemon_with(
        env.store.clone(),
        env::client(&sim.base_url, clock.clone())?,
        clock.clone(),
        dir.path(),
        chrono::Duration::zero(),
        platform,
    );
    const HOLD: &str = "bench-reconcile-hold";
    let held = env
        .store
        .try_acquire_leases(
            &[ID.to_owned()],
            HOLD,
            clock.now(),
            Duration::from_secs(3600),
        )
        .await?;
    if held != [true] {
        bail!("set-up: cannot hold the lease of {ID}");
    }
    for attempt in 0.. {
        let outcome = daemon.reconcile_once(clock.now()).await;
        if outcome.campaign(ID).is_some() {
            break;
        }
        if !outcome.file_errors.is_empty() || attempt > 600 {
            bail!("set-up: the measured reconciler does not know campaign {ID}: {outcome:?}");
        }
    }
    env.store.release_lease(ID, HOLD).await?;

    // Set-up: upload and start.
    let setup_t0 = Instant::now();
    {
        let client = env::client(&sim.base_url, clock.clone())?;
        let (mut setup, _) = env::daemon(
            env.store.clone(),
            client,
            clock.clone(),
            dir.path(),
            chrono::Duration::days(1),
        );
        for attempt in 0.. {
            let outcome = setup.reconcile_once(clock.now()).await;
            let Some(c) = outcome.campaign(ID) else {
                // The scan reads the whole contacts file (its zone groups) before the campaign is known.
                if outcome.file_errors.is_empty() && attempt < 600 {
                    continue;
                }
                bail!("set-up: the daemon does not know campaign {ID}: {outcome:?}");
            };
            let o = c.orders;
            // The daemon plans the contacts a few seconds' worth per reconcile: every one of the N must be sent
            // before the task starts (or the simulator would finish the first ones while the rest are planned).
            let all_sent = o.planned == 0 && o.sending == 0 && o.sent + o.rejected >= n;
            if c.task == daemon::TaskState::Running && all_sent {
                break;
            }
            if attempt > 10_000 {
                bail!("set-up: the campaign did not start: {:?}", c.why);
            }
        }
    }
    // Wait until the simulator has finished the last orders (it dials them in upload order).
    let client = env::client(&sim.base_url, clock.clone())?;
    let last: Vec<String> = (n.saturating_sub(500)..n)
        .map(|i| campaign::order_id(&spec.id, spec.generation, &env::normalized_phone(i)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let resp = client
            .list_order_detail(&ListOrderDetailRequest::new(&ut, last.clone()))
            .await
            .context("asking the simulator whether the calls are over")?;
        let done = resp
            .order_detail_list
            .iter()
            .filter(|d| d.finish == Some(true))
            .count();
        if done == last.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the simulator finished only {done} of the last {} orders",
                last.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let setup_secs = setup_t0.elapsed().as_secs_f64();
    let before = env.store.order_counts(ID).await?;

    // Measured: a reconciler that has not polled yet polls everything unfinished, 500 orders per request.
    // Only the daemon's reconciles are timed; the end is read from the outcome the daemon computed itself.
    let cpu0 = crate::procfs::cpu_secs(None);
    let mut busy = Duration::ZERO;
    let mut reconciles = 0u32;
    let mut last_unfinished = u64::MAX;
    let mut stalled = 0;
    loop {
        let t = Instant::now();
        let outcome = daemon.reconcile_once(clock.now()).await;
        busy += t.elapsed();
        reconciles += 1;
        let Some(c) = outcome.campaign(ID) else {
            // The scan reads the whole contacts file (its zone groups) before the campaign is known: a large file
            // takes a few passes of the loop.
            if outcome.file_errors.is_empty() && reconciles < 600 {
                continue;
            }
            bail!("the daemon does not know campaign {ID}: {outcome:?}");
        };
        if !outcome.reconciled.iter().any(|r| r == ID) {
            // Its last outcome repeated (from before it owned the campaign): due at once, as after a callback.
            hub.task_touched(&ut);
            continue;
        }
        let unfinished = c.orders.unfinished;
        if unfinished == 0 {
            break;
        }
        if unfinished >= last_unfinished {
            stalled += 1;
            if stalled >= 5 {
                bail!(
                    "polling makes no progress at {unfinished} unfinished: {:?} {:?}",
                    c.why,
                    c.error
                );
            }
        } else {
            stalled = 0;
        }
        last_unfinished = unfinished;
    }
    let secs = busy.as_secs_f64();
    let cpu = crate::procfs::cpu_secs(None) - cpu0;
    let counts = env.store.order_counts(ID).await?;
    let polled = counts.finished - before.finished;
    let requests = env::metric_sum(&hub, "campaignd_api_requests_total", "");
    let poll_requests = env::metric_sum(&hub, "campaignd_api_requests_total", "listOrderDetail");
    let api_secs = env::metric_sum(&hub, "campaignd_api_request_duration_seconds_sum", "");
    let peak = crate::procfs::peak_rss_mb(None);
    let sim_peak = sim.peak_rss_mb();
    sim.stop().await;

    let rate = polled as f64 / secs;
    let mut f = Figures::new("reconcile", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    f.put("in_flight", platform.in_flight as u64)
        .put("latency_ms", platform.latency.as_millis() as u64);
    f.put("secs", secs)
        .put("orders_per_s", rate)
        .put("orders_polled", polled)
        .put("finished_before", before.finished)
        .put("requests", requests)
        .put("poll_requests", poll_requests)
        .put("api_secs", api_secs)
        .put("reconciles", reconciles)
        .put("peak_rss_mb", peak)
        .put("cpu_secs", cpu)
        .put("setup_secs", setup_secs)
        .put("sim_peak_rss_mb", sim_peak);
    f.line = format!(
        "reconcile [{}] {polled} orders polled to their final state in {} s: {} orders/s, {requests} requests \
         ({poll_requests} listOrderDetail, {} s waiting on the platform), peak RSS {} MB (simulator {} MB)",
        kind.as_str(),
        short(secs),
        short(rate),
        short(api_secs),
        short(peak),
        short(sim_peak)
    );
    Ok(f)
}
