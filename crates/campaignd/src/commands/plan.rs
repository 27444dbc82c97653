//! `campaignd plan`.

/// Arguments of `campaignd plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {}

pub fn run(_args: PlanArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`campaignd plan` is not built yet")
}
