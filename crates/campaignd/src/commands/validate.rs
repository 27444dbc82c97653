//! `campaignd validate`.

/// Arguments of `campaignd validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}

pub fn run(_args: ValidateArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`campaignd validate` is not built yet")
}
