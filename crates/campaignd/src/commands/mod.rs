//! One module per subcommand. Each exposes its clap `Args` and a `run` function.

pub mod demo;
pub mod plan;
pub mod report;
pub mod run;
pub mod sign;
pub mod sim;
pub mod status;
pub mod suppress;
pub mod validate;

/// The instant a read-only command evaluates at: `--now` (RFC 3339) when given, else the system clock.
pub(crate) fn instant(
    now: Option<&str>,
) -> anyhow::Result<campaign::chrono::DateTime<campaign::chrono::Utc>> {
    use anyhow::Context as _;
    use clock::Clock as _;
    match now {
        Some(s) => Ok(campaign::chrono::DateTime::parse_from_rfc3339(s)
            .with_context(|| {
                format!("--now {s:?} is not an RFC 3339 instant such as 2026-11-23T14:00:00Z")
            })?
            .with_timezone(&campaign::chrono::Utc)),
        None => Ok(clock::SystemClock.now()),
    }
}
