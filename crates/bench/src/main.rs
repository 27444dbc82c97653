#![doc = include_str!("../README.md")]
//!
//! ## Module layout
//! - `procfs`: peak RSS and CPU time from `/proc`.
//! - `report`: one run's figures; min/median/max over runs.
//! - `simproc`: the simulator child process (`serve-sim`).
//! - `loadgen`: the callbacks load generator child process (`loadgen`).
//! - `env`: stores, clients, generated campaign files and contact lists.
//! - one module per scenario: `upload`, `reconcile`, `callbacks`, `campaigns`, `idle`, and the machine limits
//!   `limits` (limit-insert), `limit_normalize`, `limit_sim` (limit-sim-upload), `limit_facts`, and beside
//!   callbacks `limit_http` and `limit_ingest`; `report_reads` (report: status, the report views and a metrics
//!   scrape over a store built in bulk).

mod callbacks;
mod campaigns;
mod env;
mod idle;
mod idle_process;
mod limit_facts;
mod limit_http;
mod limit_ingest;
mod limit_normalize;
mod limit_sim;
mod limits;
mod loadgen;
mod procfs;
mod reconcile;
mod report;
mod report_reads;
mod sim_sandbox;
mod simproc;
mod suppression;
mod upload;

use std::io::{BufRead, BufReader};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

use crate::env::StoreKind;
use crate::report::Figures;

/// campaignd benchmarks: each scenario prints one JSON line and one readable line per run.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A CSV of N contacts (default 1,000,000) until every contact is acknowledged and recorded.
    Upload(Args),
    /// N unfinished orders (default 1,000,000) polled via listOrderDetail into the store.
    Reconcile(Args),
    /// Signed callbacks over HTTP to the webhook at a fixed rate (--rate) and at saturation; N per phase (default 50,000).
    Callbacks(Args),
    /// N campaign files (default 10,000) loaded, validated and planned; then one changed and the change seen.
    Campaigns(Args),
    /// RSS and CPU of the running daemon holding N campaigns (default 100) between actions, over --secs.
    Idle(Args),
    /// RSS and CPU of the real `campaignd run` process (the release binary beside this one) holding N campaigns
    /// (default 100) between actions, over --secs.
    IdleProcess(Args),
    /// Machine limit: N order rows (default 1,000,000) written with a raw multi-row INSERT (SQLite) or COPY
    /// (PostgreSQL), then updated by key in bulk, outside the store crate.
    LimitInsert(Args),
    /// Machine limit: the contacts CSV of N rows (default 1,000,000) read, normalised and deduplicated by the daemon's
    /// reader on one thread, no store (--store is ignored).
    LimitNormalize(Args),
    /// Machine limit: the simulator alone accepting N contacts (default 1,000,000): createAndCall, then addBatchCall
    /// of 1000, one request in flight, no store (--store is ignored).
    LimitSimUpload(Args),
    /// The simulator as a sandbox: N orders (default 1,000,000) accepted, then dialled and finished; its RSS per
    /// order and its acceptance rate as it fills, no store (--store is ignored).
    SimSandbox(Args),
    /// Machine limit: the rows N finished calls write (default 200,000: calls, intents, transcript lines) with a raw
    /// multi-row INSERT (SQLite) or COPY (PostgreSQL), then the orders' finished flag updated by key in bulk.
    LimitFacts(Args),
    /// Machine limit beside callbacks: the callbacks load (same generator, same requests, both phases; N per phase,
    /// default 50,000) against a bare axum server that only reads the body and acks, no store (--store is ignored).
    LimitHttp(Args),
    /// Machine limit beside callbacks: N callbacks (default 100,000) built as the webhook builds them, then written
    /// with Store::ingest_callbacks in batches of --batch, write_concurrency batches at once, no HTTP.
    LimitIngest(Args),
    /// A do-not-call list of N numbers (default 10,000,000) loaded from a file as the daemon loads it, then N / 10
    /// contacts (at most 1,000,000) planned against it; with the machine's limits for both beside.
    Suppression(Args),
    /// N orders (default 1,000,000) with their calls written in bulk and their rollups rebuilt (not timed), then
    /// `status` for the campaign, each report view, `Store::report` and a `/metrics` scrape timed.
    Report(Args),
    /// Every scenario at a tiny size on both stores, in seconds (for CI).
    Smoke,
    /// The simulator in its own process (used by the scenarios).
    #[command(hide = true)]
    ServeSim(simproc::ServeArgs),
    /// The callbacks scenario's load generator in its own process (used by `callbacks`).
    #[command(hide = true)]
    Loadgen(loadgen::LoadgenArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct Args {
    /// Scale of the scenario (contacts, orders, callbacks, campaign files); each scenario has its own default.
    #[arg(long)]
    size: Option<u64>,
    /// Store backend.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// Runs, each in a fresh process; with more than one, min/median/max are printed after them.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// callbacks: offered rate of the fixed-rate phase, callbacks per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// callbacks: concurrent senders of the saturation phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// limit-ingest: callbacks per store batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// idle: seconds measured once the daemon has done its work.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// upload, reconcile: the daemon's requests in flight per task (`[platform] requests_in_flight`).
    #[arg(long, default_value_t = env::Platform::default().in_flight)]
    in_flight: usize,
    /// upload, reconcile: how long the simulator takes to answer a request after applying it, ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Do the work in this process (set on the child processes).
    #[arg(long, hide = true)]
    single: bool,
}

impl Args {
    fn platform(&self) -> env::Platform {
        env::Platform {
            in_flight: self.in_flight.max(1),
            latency: std::time::Duration::from_millis(self.latency_ms),
        }
    }
}

/// The scenarios, with their names and default sizes.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    Upload,
    Reconcile,
    Callbacks,
    Campaigns,
    Idle,
    IdleProcess,
    LimitInsert,
    LimitNormalize,
    LimitSimUpload,
    SimSandbox,
    LimitFacts,
    LimitHttp,
    LimitIngest,
    Suppression,
    Report,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Upload => "upload",
            Scenario::Reconcile => "reconcile",
            Scenario::Callbacks => "callbacks",
            Scenario::Campaigns => "campaigns",
            Scenario::Idle => "idle",
            Scenario::IdleProcess => "idle-process",
            Scenario::LimitInsert => "limit-insert",
            Scenario::LimitNormalize => "limit-normalize",
            Scenario::LimitSimUpload => "limit-sim-upload",
            Scenario::SimSandbox => "sim-sandbox",
            Scenario::LimitFacts => "limit-facts",
            Scenario::LimitHttp => "limit-http",
            Scenario::LimitIngest => "limit-ingest",
            Scenario::Suppression => "suppression",
            Scenario::Report => "report",
        }
    }

    fn default_size(self) -> u64 {
        match self {
            Scenario::Upload
            | Scenario::Reconcile
            | Scenario::LimitInsert
            | Scenario::LimitNormalize
            | Scenario::LimitSimUpload
            | Scenario::SimSandbox
            | Scenario::Report => 1_000_000,
            Scenario::LimitFacts => 200_000,
            Scenario::Callbacks | Scenario::LimitHttp => 50_000,
            Scenario::LimitIngest => 100_000,
            Scenario::Suppression => 10_000_000,
            Scenario::Campaigns => 10_000,
            Scenario::Idle | Scenario::IdleProcess => 100,
        }
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    // BENCH_SPANS=1 logs every closed span with its busy/idle time (with RUST_LOG selecting the spans): a cheap
    // profile of where the wall-clock time goes, e.g. per store query.
    let spans = if std::env::var_os("BENCH_SPANS").is_some() {
        tracing_subscriber::fmt::format::FmtSpan::CLOSE
    } else {
        tracing_subscriber::fmt::format::FmtSpan::NONE
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(spans)
        .with_writer(std::io::stderr)
        .init();
    callbot_api::ensure_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Upload(a) => scenario(Scenario::Upload, a),
        Command::Reconcile(a) => scenario(Scenario::Reconcile, a),
        Command::Callbacks(a) => scenario(Scenario::Callbacks, a),
        Command::Campaigns(a) => scenario(Scenario::Campaigns, a),
        Command::Idle(a) => scenario(Scenario::Idle, a),
        Command::IdleProcess(a) => scenario(Scenario::IdleProcess, a),
        Command::LimitInsert(a) => scenario(Scenario::LimitInsert, a),
        Command::LimitNormalize(a) => scenario(Scenario::LimitNormalize, a),
        Command::LimitSimUpload(a) => scenario(Scenario::LimitSimUpload, a),
        Command::SimSandbox(a) => scenario(Scenario::SimSandbox, a),
        Command::LimitFacts(a) => scenario(Scenario::LimitFacts, a),
        Command::LimitHttp(a) => scenario(Scenario::LimitHttp, a),
        Command::LimitIngest(a) => scenario(Scenario::LimitIngest, a),
        Command::Suppression(a) => scenario(Scenario::Suppression, a),
        Command::Report(a) => scenario(Scenario::Report, a),
        Command::Smoke => smoke(),
        Command::ServeSim(a) => runtime().and_then(|rt| rt.block_on(simproc::serve(a))),
        Command::Loadgen(a) => loadgen::main(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")
}

fn scenario(s: Scenario, args: Args) -> anyhow::Result<()> {
    if args.single {
        let figures = runtime()?.block_on(run_one(s, &args))?;
        println!("{}", figures.json_line());
        println!("{}", figures.line);
        return Ok(());
    }
    let runs = orchestrate(s, &args)?;
    if runs.len() > 1 {
        let (json, line) = report::summarize(&runs);
        println!("{json}");
        println!("{line}");
    }
    Ok(())
}

async fn run_one(s: Scenario, args: &Args) -> anyhow::Result<Figures> {
    let size = args.size.unwrap_or(s.default_size()).max(1);
    match s {
        Scenario::Upload => upload::run(size, args.store, args.platform()).await,
        Scenario::Reconcile => reconcile::run(size, args.store, args.platform()).await,
        Scenario::Callbacks => callbacks::run(size, args.store, args.rate, args.concurrency).await,
        Scenario::Campaigns => campaigns::run(size, args.store).await,
        Scenario::Idle => idle::run(size, args.store, args.secs).await,
        Scenario::IdleProcess => idle_process::run(size, args.store, args.secs).await,
        Scenario::LimitInsert => limits::run(size, args.store).await,
        Scenario::LimitNormalize => limit_normalize::run(size).await,
        Scenario::LimitSimUpload => limit_sim::run(size).await,
        Scenario::SimSandbox => sim_sandbox::run(size).await,
        Scenario::LimitFacts => limit_facts::run(size, args.store).await,
        Scenario::LimitHttp => limit_http::run(size, args.rate, args.concurrency).await,
        Scenario::LimitIngest => limit_ingest::run(size, args.store, args.batch).await,
        Scenario::Suppression => suppression::run(size, args.store).await,
        Scenario::Report => report_reads::run(size, args.store).await,
    }
}

/// Runs the scenario `args.runs` times, each in a fresh child process (so `VmHWM` is the run's own), passing its
/// output through; returns each run's JSON figures.
fn orchestrate(s: Scenario, args: &Args) -> anyhow::Result<Vec<Map<String, Value>>> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let size = args.size.unwrap_or(s.default_size());
    let mut out = Vec::new();
    for run in 1..=args.runs.max(1) {
        let mut child = std::process::Command::new(&exe)
            .arg(s.name())
            .args(["--size", &size.to_string()])
            .args(["--store", args.store.as_str()])
            .args(["--rate", &args.rate.to_string()])
            .args(["--concurrency", &args.concurrency.to_string()])
            .args(["--batch", &args.batch.to_string()])
            .args(["--secs", &args.secs.to_string()])
            .args(["--in-flight", &args.in_flight.to_string()])
            .args(["--latency-ms", &args.latency_ms.to_string()])
            .arg("--single")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a run")?;
        let stdout = child.stdout.take().context("run stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading a run's output")?;
            println!("{line}");
            if line.starts_with('{')
                && let Ok(Value::Object(m)) = serde_json::from_str(&line)
            {
                out.push(m);
            }
        }
        let status = child.wait().context("waiting for a run")?;
        if !status.success() {
            bail!("{} run {run} of {} failed ({status})", s.name(), args.runs);
        }
    }
    Ok(out)
}

/// Every scenario at a tiny size on both stores: keeps the harness from rotting. Fails if any run fails.
fn smoke() -> anyhow::Result<()> {
    let tiny = |size: u64, store: StoreKind| Args {
        size: Some(size),
        store,
        runs: 1,
        rate: 2000,
        concurrency: 16,
        batch: 64,
        secs: 1,
        in_flight: env::Platform::default().in_flight,
        latency_ms: 0,
        single: false,
    };
    for store in [StoreKind::Sqlite, StoreKind::Postgres] {
        orchestrate(Scenario::Upload, &tiny(2000, store))?;
        orchestrate(Scenario::Reconcile, &tiny(2000, store))?;
        orchestrate(Scenario::Callbacks, &tiny(1000, store))?;
        orchestrate(Scenario::Campaigns, &tiny(50, store))?;
        orchestrate(Scenario::Idle, &tiny(3, store))?;
        orchestrate(Scenario::IdleProcess, &tiny(3, store))?;
        orchestrate(Scenario::LimitInsert, &tiny(2000, store))?;
        orchestrate(Scenario::LimitFacts, &tiny(2000, store))?;
        orchestrate(Scenario::LimitIngest, &tiny(1000, store))?;
        orchestrate(Scenario::Suppression, &tiny(2000, store))?;
        orchestrate(Scenario::Report, &tiny(2000, store))?;
    }
    // No store: once.
    orchestrate(Scenario::LimitNormalize, &tiny(2000, StoreKind::Sqlite))?;
    orchestrate(Scenario::LimitSimUpload, &tiny(2000, StoreKind::Sqlite))?;
    orchestrate(Scenario::SimSandbox, &tiny(2000, StoreKind::Sqlite))?;
    orchestrate(Scenario::LimitHttp, &tiny(1000, StoreKind::Sqlite))?;
    Ok(())
}
