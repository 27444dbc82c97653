//! `campaignd report`.

use tokio_util::sync::CancellationToken;

/// Arguments of `campaignd report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

pub async fn run(_args: ReportArgs, _shutdown: CancellationToken) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`campaignd report` is not built yet")
}
