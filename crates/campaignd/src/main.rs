//! `campaignd`: runs outbound AI-call campaigns on NXCloud Callbot.
//!
//! This binary only wires the crates together: it parses the command line, sets up logging and shutdown, and
//! dispatches to one module per subcommand under `commands/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

mod commands;
mod config;
mod logging;
mod notify;
mod open_store;

/// Runs outbound AI-call campaigns on NXCloud Callbot, from campaign files in a watched directory.
#[derive(Debug, Parser)]
#[command(name = "campaignd", version, about)]
struct Cli {
    /// Log format: `text` for a terminal, `json` for a service.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CAMPAIGND_LOG_FORMAT")]
    log_format: LogFormat,

    /// The configuration file. Default: `campaignd.toml` in the current directory, if there is one.
    #[arg(long, global = true, env = "CAMPAIGND_CONFIG", value_name = "PATH")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Run(commands::run::RunArgs),
    /// Lint campaign files; exit status 1 on any error.
    Validate(commands::validate::ValidateArgs),
    /// Show what `run` would do now and the platform settings each campaign compiles to; touches nothing.
    Plan(commands::plan::PlanArgs),
    /// Per-campaign state, the next action, and why it is or isn't dialling.
    Status(commands::status::StatusArgs),
    /// Outcomes from the store.
    Report(commands::report::ReportArgs),
    /// Run the local platform simulator.
    Sim(commands::sim::SimArgs),
    /// The whole loop on a fresh machine: simulator, SQLite, the example campaigns, progress, report.
    Demo(commands::demo::DemoArgs),
    /// Print the signature for given inputs (body on stdin), to debug an integration.
    Sign(commands::sign::SignArgs),
    /// The do-not-call list shared by every campaign: add, remove, list or check numbers.
    Suppress(commands::suppress::SuppressArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the commented example configuration (every default, documented).
    Example,
    /// Load the configuration as `run` would and print the result (the secret masked).
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo draws progress bars on the terminal; routine log lines would interleave with them.
    // One-shot commands print their answer on stdout; only real problems reach stderr, never routine notices (a
    // slow statement, a migration applied) in the middle of a table.
    let default_filter = match cli.command {
        Command::Run(_) | Command::Sim(_) => "info",
        _ => "warn,sqlx=error",
    };
    init_logging(cli.log_format, default_filter);
    // reqwest is built without a bundled crypto provider; install ring's once for HTTPS to the platform.
    let _ = rustls::crypto::ring::default_provider().install_default();
    config::set_config_path(cli.config);

    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Sign(args) => commands::sign::run(args),
        Command::Run(args) => block_on(|shutdown| commands::run::run(args, shutdown)),
        Command::Status(args) => block_on(|shutdown| commands::status::run(args, shutdown)),
        Command::Report(args) => block_on(|shutdown| commands::report::run(args, shutdown)),
        Command::Sim(args) => block_on(|shutdown| commands::sim::run(args, shutdown)),
        Command::Demo(args) => block_on(|shutdown| commands::demo::run(args, shutdown)),
        Command::Suppress(args) => block_on(|shutdown| commands::suppress::run(args, shutdown)),
        Command::Config(ConfigCommand::Example) => {
            print!("{}", config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check) => config::Settings::from_cli().map(|s| {
            println!("{s:#?}");
            ExitCode::SUCCESS
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an async command on a multi-threaded runtime, with SIGINT and SIGTERM cancelling `shutdown`.
fn block_on<F, Fut>(command: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(forward_signals(shutdown.clone()));
        command(shutdown).await
    })
}

async fn forward_signals(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        _ = term => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
    shutdown.cancel();
}

fn init_logging(format: LogFormat, default_filter: &str) {
    logging::init(matches!(format, LogFormat::Json), default_filter);
}
