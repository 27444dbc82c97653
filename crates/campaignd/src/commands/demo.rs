//! `campaignd demo`.

use tokio_util::sync::CancellationToken;

/// Arguments of `campaignd demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs, _shutdown: CancellationToken) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`campaignd demo` is not built yet")
}
