//! The simulator in its own process, so that its memory and its engine never count on the daemon side.
//!
//! `bench serve-sim` binds 127.0.0.1:0, prints `PORT <n>` and serves until its stdin closes (the parent's end of the
//! pipe closes however the parent ends, so the simulator never outlives a run).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use callbot_sim::{Account, SimConfig, Simulator};
use clock::SystemClock;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The simulated account.
pub const UUID: &str = "bench-account";
/// Its secret key.
pub const SECRET: &str = "bench-secret-key";
/// Call durations are divided by this: every simulated call lasts the minimum, one millisecond.
pub const SPEED: f64 = 1_000_000.0;
/// Most numbers per callList; the campaign file allows at most 1000 per batch (`batch_size`).
pub const CALL_LIST_LIMIT: usize = 1000;

/// Arguments of the hidden `serve-sim` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Call durations are divided by this.
    #[arg(long, default_value_t = SPEED)]
    pub speed: f64,
    /// Most entries in one callList.
    #[arg(long, default_value_t = CALL_LIST_LIMIT)]
    pub call_list_limit: usize,
    /// How long after applying a request its answer leaves, ms.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

/// The simulator's configuration in the benchmarks.
pub fn sim_config(args: &ServeArgs) -> SimConfig {
    let mut config = SimConfig::new(vec![Account::new(UUID, SECRET)]);
    config.speed = args.speed;
    config.call_list_limit = args.call_list_limit;
    config.latency = Duration::from_millis(args.latency_ms);
    config
}

/// `bench serve-sim`: serves until stdin closes.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the simulator to 127.0.0.1:0")?;
    let port = listener
        .local_addr()
        .context("reading the simulator's port")?
        .port();
    println!("PORT {port}");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = std::io::Read::read(&mut stdin, &mut buf) {
            if n == 0 {
                break;
            }
        }
        stop.cancel();
    });
    Simulator::new(sim_config(&args), SystemClock::shared())
        .run(listener, shutdown)
        .await
        .context("running the simulator")
}

/// A running simulator child process.
#[derive(Debug)]
pub struct SimProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pid: Option<u32>,
}

impl SimProcess {
    /// Starts `bench serve-sim` and waits for its port.
    pub async fn start() -> anyhow::Result<SimProcess> {
        Self::start_with(Duration::ZERO).await
    }

    /// [`SimProcess::start`], answering each request `latency` after applying it.
    pub async fn start_with(latency: Duration) -> anyhow::Result<SimProcess> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let mut child = Command::new(exe)
            .arg("serve-sim")
            .args(["--latency-ms", &latency.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the simulator process")?;
        let stdout = child.stdout.take().context("simulator stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the simulator did not print its port within 30 s")?
            .context("reading the simulator's port")?;
        let Some(port) = first.as_deref().and_then(|l| l.strip_prefix("PORT ")) else {
            bail!("the simulator printed {first:?} instead of its port");
        };
        let port: u16 = port.trim().parse().context("the simulator's port")?;
        let pid = child.id();
        Ok(SimProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            pid,
        })
    }

    /// The simulator's peak RSS, MB (reported beside the daemon's, never added to it).
    pub fn peak_rss_mb(&self) -> f64 {
        crate::procfs::peak_rss_mb(self.pid)
    }

    /// The simulator's RSS now, MB.
    pub fn rss_mb(&self) -> f64 {
        crate::procfs::rss_mb(self.pid)
    }

    /// CPU seconds the simulator used so far.
    pub fn cpu_secs(&self) -> f64 {
        crate::procfs::cpu_secs(self.pid)
    }

    /// Closes the simulator's stdin and waits for it to exit (killing it after 10 s).
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
