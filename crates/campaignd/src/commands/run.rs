//! `campaignd run`.

use tokio_util::sync::CancellationToken;

/// Arguments of `campaignd run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

pub async fn run(_args: RunArgs, _shutdown: CancellationToken) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`campaignd run` is not built yet")
}
