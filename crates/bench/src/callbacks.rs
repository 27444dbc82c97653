//! callbacks: a load generator sends signed call callbacks over HTTP to the daemon's webhook listener, first at a
//! fixed offered rate, then at saturation (closed loop). The webhook verifies each one, stores it raw and applies its
//! facts to the order before it answers, as in production.
//!
//! The generator is its own process (`bench loadgen`, see `loadgen`), so its CPU and memory do not count on the
//! daemon side; it renders every signed request before a phase's clock starts. Latency in the fixed-rate phase counts
//! from the moment the request was due, so a stalled server cannot hide its queue (no coordinated omission); in the
//! saturation phase it counts from the send.

use std::sync::Arc;

use anyhow::{Context, bail};
use callbot_api::SecretKey;
use chrono::{DateTime, Utc};
use clock::Clock as _;
use clock::SystemClock;
use daemon::{Hub, Metrics, Webhook};
use serde_json::json;
use store::{NewOrder, TaskKey, UploadState};
use tokio_util::sync::CancellationToken;

use crate::env::{self, StoreKind};
use crate::loadgen::{self, LoadgenArgs, Report};
use crate::report::{Figures, short};
use crate::simproc::SECRET;

/// The campaign and task the callbacks report on (`limit-http` and `limit-ingest` use the same).
pub(crate) const ID: &str = "bench-callbacks";
pub(crate) const TASK: &str = "bench-callbacks-task";

pub async fn run(
    n: u64,
    kind: StoreKind,
    rate: u64,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let env = env::open_store(kind).await?;
    let now = SystemClock.now();
    seed(env.store.as_ref(), n, now).await?;

    let hub = Arc::new(Hub::new(Metrics::new()));
    let webhook = Webhook::new(
        env.store.clone(),
        SecretKey::new(SECRET.to_owned()),
        SystemClock::shared(),
        hub,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the webhook listener")?;
    let url = format!("http://{}/callbacks/call", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(webhook.run(listener, shutdown.clone()));
    let load = load(url, n, rate, concurrency);
    let mut f = drive("callbacks", kind.as_str(), &load, server, shutdown).await?;
    let counts = env.store.order_counts(ID).await?;
    let stored = env.store.recent_callbacks(1).await?.len();
    if counts.finished != n || stored == 0 {
        bail!("the callbacks did not reach the store: {counts:?}");
    }
    f.put("durability", env.durability.clone());
    Ok(f)
}

/// The generator's load for `url`: N callbacks per phase about [`ID`]'s orders, at `rate` then with `concurrency`
/// senders.
pub(crate) fn load(url: String, n: u64, rate: u64, concurrency: usize) -> LoadgenArgs {
    LoadgenArgs {
        url,
        n,
        rate,
        concurrency,
        campaign: ID.into(),
        task: TASK.into(),
    }
}

/// Runs the load generator (`load`) while `server` serves its URL, then stops the server with `shutdown` and fails
/// if it failed; the figures of both phases, with the harness's CPU while the generator ran.
pub(crate) async fn drive(
    scenario: &str,
    store: &str,
    load: &LoadgenArgs,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: CancellationToken,
) -> anyhow::Result<Figures> {
    let cpu0 = crate::procfs::cpu_secs(None);
    let generated = loadgen::spawn(load).await;
    let harness_cpu = crate::procfs::cpu_secs(None) - cpu0;
    shutdown.cancel();
    server
        .await
        .context("the server task failed")?
        .context("serving")?;
    load_figures(scenario, store, load, &generated?, harness_cpu)
}

/// The figures of a run of the load generator ([`drive`]): both phases, the generator's own
/// figures, and the CPU the harness process used while the generator ran (`harness_cpu`, seconds). Fails if any
/// request was not answered 200.
fn load_figures(
    scenario: &str,
    store: &str,
    load: &LoadgenArgs,
    generated: &Report,
    harness_cpu: f64,
) -> anyhow::Result<Figures> {
    let Report {
        fixed,
        saturation: sat,
        pacing,
        cpu_secs: gen_cpu,
        peak_rss_mb: gen_peak,
    } = generated;
    let (n, rate, concurrency) = (load.n, load.rate, load.concurrency);
    if fixed.failed + sat.failed > 0 {
        bail!(
            "{} callbacks were not answered 200 (fixed rate {}, saturation {})",
            fixed.failed + sat.failed,
            fixed.failed,
            sat.failed
        );
    }
    let mut f = Figures::new(scenario, store, n);
    f.put("offered_per_s", rate)
        .put("fixed_achieved_per_s", fixed.per_s)
        .put("fixed_p50_ms", fixed.p50_ms)
        .put("fixed_p99_ms", fixed.p99_ms)
        .put("fixed_max_ms", fixed.max_ms)
        .put("saturation_per_s", sat.per_s)
        .put("saturation_p50_ms", sat.p50_ms)
        .put("saturation_p99_ms", sat.p99_ms)
        .put("concurrency", concurrency as u64)
        .put("peak_rss_mb", crate::procfs::peak_rss_mb(None))
        .put("harness_cpu_secs", harness_cpu)
        .put("fixed_max_in_flight", pacing.max_in_flight)
        .put("loadgen_lag_p99_ms", pacing.lag_p99_ms)
        .put("loadgen_lag_max_ms", pacing.lag_max_ms)
        .put("loadgen_cpu_secs", *gen_cpu)
        .put("loadgen_peak_rss_mb", *gen_peak);
    f.line = format!(
        "{scenario} [{store}] at {rate}/s offered: {}/s achieved, p50 {} ms, p99 {} ms (max {} ms; at most {} in \
         flight; generator late by {} ms at p99); at saturation ({concurrency} senders): {}/s, p50 {} ms, p99 {} ms; \
         {n} callbacks per phase (harness: {} s CPU; generator: {} s CPU, {} MB)",
        short(fixed.per_s),
        short(fixed.p50_ms),
        short(fixed.p99_ms),
        short(fixed.max_ms),
        pacing.max_in_flight,
        short(pacing.lag_p99_ms),
        short(sat.per_s),
        short(sat.p50_ms),
        short(sat.p99_ms),
        short(harness_cpu),
        short(*gen_cpu),
        short(*gen_peak)
    );
    Ok(f)
}

/// A campaign, its task and `n` sent orders for the callbacks to land on: order i is the contact
/// `env::normalized_phone(i)`, as the load generator builds its callbacks.
pub(crate) async fn seed(
    store: &dyn store::Store,
    n: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    crate::limits::record_campaign(store, ID, now).await?;
    let key = TaskKey {
        user_task_id: TASK.into(),
        campaign_id: ID.into(),
        generation: 1,
        task_index: 0,
    };
    store.task_create_intent(&key, &json!({}), now).await?;
    store
        .task_status_observed(TASK, 2, Some("sim-task-1"), now)
        .await?;
    let all: Vec<(String, String)> = (0..n)
        .map(|i| {
            let phone = env::normalized_phone(i);
            (campaign::order_id(ID, 1, &phone), phone)
        })
        .collect();
    for (c, chunk) in all.chunks(2000).enumerate() {
        let new: Vec<NewOrder> = chunk
            .iter()
            .enumerate()
            .map(|(j, (order_id, phone))| NewOrder {
                order_id: order_id.clone(),
                campaign_id: ID.into(),
                user_task_id: TASK.into(),
                phone: phone.clone(),
                name: Some("Contact".into()),
                customer: None,
                other: None,
                variables: json!({"amount": "10.00"}),
                source_line: (c * 2000 + j + 2) as i64,
                attempt: 1,
            })
            .collect();
        store
            .insert_planned_orders(&new, chrono::DateTime::UNIX_EPOCH)
            .await?;
        let ids: Vec<String> = chunk.iter().map(|(o, _)| o.clone()).collect();
        store.set_upload_state(&ids, UploadState::Sent, now).await?;
    }
    Ok(())
}
