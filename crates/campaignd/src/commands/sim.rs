//! `campaignd sim`: the local platform simulator on the real clock.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use callbot_api::sign::Algorithm;
use callbot_sim::{Account, FaultConfig, SimConfig, Simulator};
use clock::SystemClock;
use tokio_util::sync::CancellationToken;

/// Arguments of `campaignd sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to serve the Callbot v3 API on (and `/_sim/state`).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// The account's `uuid`.
    #[arg(long, env = "CAMPAIGND_SIM_UUID")]
    pub uuid: String,

    /// The account's secret key.
    #[arg(long, env = "CAMPAIGND_SIM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,

    /// Pin the account to one signature algorithm (md5 or sha256); callbacks are signed with it. Unpinned: requests
    /// may use either, callbacks use MD5.
    #[arg(long)]
    pub algorithm: Option<Algorithm>,

    /// Call durations are divided by this (e.g. 60 makes a one-minute call last a second).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,

    /// Fraction of API requests that get an injected fault (retCode 7/5001, HTTP 502, late answer, dropped
    /// connection), 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,

    /// Seed of the call outcomes and of the fault coin.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Most entries accepted in one callList (the vendor states no limit).
    #[arg(long, default_value_t = 1000)]
    pub call_list_limit: usize,

    /// Seconds after updateTask before its settings take effect (the vendor says about 5 minutes).
    #[arg(long, default_value_t = 300)]
    pub apply_delay_secs: u64,

    /// How late (seconds) a delayed answer comes when the fault is injected.
    #[arg(long, default_value_t = 30)]
    pub fault_delay_secs: u64,
}

pub async fn run(args: SimArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        anyhow::bail!("--fault-rate {} is outside 0.0..=1.0", args.fault_rate);
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("--speed {} must be a positive number", args.speed);
    }
    let mut account = Account::new(args.uuid.clone(), args.secret_key);
    account.algorithm = args.algorithm;
    let mut config = SimConfig::new(vec![account]);
    config.speed = args.speed;
    config.seed = args.seed;
    config.call_list_limit = args.call_list_limit;
    config.apply_delay = Duration::from_secs(args.apply_delay_secs);
    config.faults = FaultConfig {
        rate: args.fault_rate,
        seed: args.seed,
        delay: Duration::from_secs(args.fault_delay_secs),
        ..FaultConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "binding the simulator to {} (is the port in use? pick another with --listen)",
                args.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .context("reading the simulator's bound address")?;
    tracing::info!(
        listen = %addr,
        uuid = %args.uuid,
        algorithm = args.algorithm.map_or("either", Algorithm::as_config),
        speed = args.speed,
        fault_rate = args.fault_rate,
        seed = args.seed,
        "simulator serving the Callbot v3 API; inspect it at /_sim/state"
    );
    Simulator::new(config, SystemClock::shared())
        .run(listener, shutdown)
        .await
        .context("running the simulator")?;
    Ok(ExitCode::SUCCESS)
}
