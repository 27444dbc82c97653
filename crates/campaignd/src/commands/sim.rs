//! `campaignd sim`.

use tokio_util::sync::CancellationToken;

/// Arguments of `campaignd sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {}

pub async fn run(_args: SimArgs, _shutdown: CancellationToken) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`campaignd sim` is not built yet")
}
