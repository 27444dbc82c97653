//! `campaignd demo`: the whole loop on a fresh machine, loopback only. Starts the simulator in-process (accelerated
//! call durations), an SQLite store in a temporary directory, the demo campaign(s) from `campaigns/`, the webhook
//! listener and the daemon; shows progress; prints the report table at the end.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use callbot_api::sign::SecretKey;
use callbot_api::{Client, ClientConfig, RetryPolicy};
use callbot_sim::{Account, SimConfig, Simulator};
use clock::SystemClock;
use daemon::{Daemon, DaemonConfig, Hub, Metrics, Watcher, Webhook};
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Arguments of `campaignd demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The directory with the demo campaign(s): `demo*.toml` there (or every campaign file, if none is called
    /// demo). Default: `./campaigns`, else the repository's `campaigns/`.
    #[arg(long, value_name = "DIR")]
    pub campaigns_dir: Option<PathBuf>,
    /// How many times faster than real life simulated calls go.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Give up after this many seconds (the demo normally finishes well before).
    #[arg(long, default_value_t = 110)]
    pub max_secs: u64,
    /// Keep the SQLite store in this file instead of a temporary directory (inspect it later with
    /// `campaignd report --store sqlite://FILE`).
    #[arg(long, value_name = "FILE")]
    pub keep_store: Option<PathBuf>,
}

fn default_campaigns_dir() -> PathBuf {
    let local = PathBuf::from("campaigns");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../campaigns")
}

/// Copies the demo campaign files and their CSVs into `to`; returns their ids.
fn stage_campaigns(from: &Path, to: &Path) -> anyhow::Result<Vec<String>> {
    let files =
        daemon::campaign_files(from).with_context(|| format!("cannot read {}", from.display()))?;
    let demo: Vec<PathBuf> = files
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("demo"))
        })
        .cloned()
        .collect();
    let chosen = if demo.is_empty() { files } else { demo };
    if chosen.is_empty() {
        bail!(
            "no campaign files in {}: pass --campaigns-dir DIR with at least one *.toml",
            from.display()
        );
    }
    let mut ids = Vec::new();
    for path in chosen {
        let spec = campaign::load_campaign(&path).map_err(|d| {
            let mut sources = std::collections::BTreeMap::new();
            if let Ok(text) = std::fs::read_to_string(&path) {
                sources.insert(path.clone(), text);
            }
            anyhow::anyhow!(
                "the demo campaign does not validate:\n{}",
                d.render_human(&sources)
            )
        })?;
        let name = path.file_name().context("campaign file name")?;
        std::fs::copy(&path, to.join(name))
            .with_context(|| format!("cannot copy {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let rel = spec.contacts.file.strip_prefix(dir).unwrap_or(Path::new(
            spec.contacts
                .file
                .file_name()
                .context("contacts file name")?,
        ));
        let target = to.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&spec.contacts.file, &target)
            .with_context(|| format!("cannot copy {}", spec.contacts.file.display()))?;
        ids.push(spec.id);
    }
    Ok(ids)
}

pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let source = args
        .campaigns_dir
        .clone()
        .unwrap_or_else(default_campaigns_dir);
    let work = tempfile_dir()?;
    let dir = work.join("campaigns");
    std::fs::create_dir_all(&dir)?;
    let ids = stage_campaigns(&source, &dir)?;
    let db = args
        .keep_store
        .clone()
        .unwrap_or_else(|| work.join("campaignd.db"));
    let store_url = format!("sqlite://{}", db.display());
    let store: Arc<dyn Store> = Arc::new(
        store_sqlite::SqliteStore::open(&store_url)
            .await
            .context("cannot open the demo store")?,
    );

    let inner = shutdown.child_token();
    let clock = SystemClock::shared();
    let (uuid, secret) = ("demo-account", format!("demo-{}", uuid_like()));

    // The simulated platform, in real time with accelerated calls.
    let mut sim_config = SimConfig::new(vec![Account::new(uuid, secret.clone())]);
    sim_config.speed = args.speed.max(1.0);
    sim_config.tick = Some(Duration::from_millis(100));
    let sim = Simulator::new(sim_config, clock.clone());
    let sim_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the simulator")?;
    let sim_url = format!("http://{}", sim_listener.local_addr()?);
    let sim_task = tokio::spawn(sim.run(sim_listener, inner.clone()));

    let hub = Arc::new(Hub::new(Metrics::new()));
    let web_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the webhook listener")?;
    let web_url = format!("http://{}", web_listener.local_addr()?);
    let webhook = Webhook::new(
        store.clone(),
        SecretKey::new(secret.clone()),
        clock.clone(),
        hub.clone(),
    );

    let mut cc = ClientConfig::new(&sim_url, uuid, SecretKey::new(secret.clone()));
    cc.requests_per_second = 0;
    cc.request_timeout = Duration::from_secs(5);
    cc.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
    };
    let client = Client::new(cc, clock.clone()).context("cannot build the client")?;
    let mut dc = DaemonConfig::new(&dir);
    dc.public_url = Some(web_url.clone());
    dc.poll_interval = campaign::chrono::Duration::seconds(5);
    dc.owner = "demo".into();
    dc.max_sleep = Duration::from_secs(1);
    let daemon = Daemon::new(store.clone(), client, clock.clone(), hub.clone(), dc);
    let watcher = Watcher::new(&dir, hub.clone(), Duration::from_secs(5));
    let serve = tokio::spawn(super::run::serve(
        daemon,
        webhook,
        watcher,
        None,
        web_listener,
        None,
        inner.clone(),
    ));

    println!("campaignd demo: simulator {sim_url}, webhook {web_url}, store {store_url}");
    println!(
        "campaigns: {} (calls run {}x faster than real life)\n",
        ids.join(", "),
        args.speed
    );

    let tty = std::io::stdout().is_terminal();
    let deadline = started + Duration::from_secs(args.max_secs);
    let mut last_log = Instant::now() - Duration::from_secs(60);
    let mut drawn = 0usize;
    let mut done = false;
    while !done && !shutdown.is_cancelled() && Instant::now() < deadline {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let mut lines = Vec::new();
        let mut all_done = true;
        for id in &ids {
            let c = store.order_counts(id).await.unwrap_or_default();
            let finished = c.finished;
            let total = c.total.max(1);
            all_done &= c.total > 0 && finished >= c.total;
            lines.push(progress_line(id, &c, finished * 100 / total, tty));
        }
        done = all_done;
        if tty {
            let mut out = std::io::stdout().lock();
            if drawn > 0 {
                let _ = write!(out, "\x1b[{drawn}A");
            }
            for l in &lines {
                let _ = writeln!(out, "\x1b[2K{l}");
            }
            let _ = out.flush();
            drawn = lines.len();
        } else if last_log.elapsed() >= Duration::from_secs(5) || done {
            for l in &lines {
                println!("{l}");
            }
            last_log = Instant::now();
        }
    }
    let finished_in = started.elapsed();
    inner.cancel();
    let served = serve.await;
    let _ = sim_task.await;
    if let Ok(Err(e)) = served {
        tracing::warn!(error = format!("{e:#}"), "the daemon stopped with an error");
    }
    if !done {
        println!(
            "\nthe demo stopped before every contact was finished ({:.0} s)",
            finished_in.as_secs_f64()
        );
    } else {
        println!(
            "\nall contacts finished in {:.0} s\n",
            finished_in.as_secs_f64()
        );
    }
    let report = super::report::ReportArgs {
        campaign: None,
        format: super::report::Format::Table,
        view: super::report::View::All,
        since: None,
        store: Some(store_url.clone()),
        now: None,
    };
    super::report::run(report, CancellationToken::new()).await?;
    if args.keep_store.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("\nthe store is kept: campaignd report --store {store_url}");
    }
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn progress_line(id: &str, c: &store::OrderCounts, pct: u64, tty: bool) -> String {
    let width = 30usize;
    let filled = (pct as usize * width / 100).min(width);
    let bar = if tty {
        format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
    } else {
        String::new()
    };
    format!(
        "{id:<20} {bar} {pct:>3}%  uploaded {}/{}  dialled {}  answered {}  finished {}",
        c.sent, c.total, c.dialled, c.answered, c.finished
    )
}

/// A fresh directory under the system temp dir (removed at the end unless the store is kept).
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("campaignd-demo-{}", uuid_like()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// A unique-enough token from the process ID and a monotonic counter (no clock read needed).
fn uuid_like() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}
