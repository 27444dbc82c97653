//! `campaignd sign`.

/// Arguments of `campaignd sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {}

pub fn run(_args: SignArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`campaignd sign` is not built yet")
}
