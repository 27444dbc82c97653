//! `campaignd status`.

use tokio_util::sync::CancellationToken;

/// Arguments of `campaignd status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

pub async fn run(_args: StatusArgs, _shutdown: CancellationToken) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`campaignd status` is not built yet")
}
