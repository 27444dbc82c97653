//! `campaignd suppress add|remove|list|check`: the store's do-not-call list, shared by every campaign and every
//! replica. Works while the daemon runs: the daemon notices the change at its next pass and stops the numbers'
//! unfinished orders everywhere.

use std::process::ExitCode;

use anyhow::{Context, bail};
use campaign::chrono::{NaiveDate, Utc};
use clock::Clock as _;
use store::{Store, Suppression, SuppressionFilter};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// The source of entries written by this command.
const CLI_SOURCE: &str = "cli";

/// Arguments of `campaignd suppress`.
#[derive(Debug, clap::Args)]
pub struct SuppressArgs {
    #[command(subcommand)]
    pub command: SuppressCommand,
    /// Store URL; defaults to `[store] url` from the configuration.
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// For numbers written without a country code; defaults to `[suppression] default_country`.
    #[arg(long, global = true, value_name = "REGION")]
    pub default_country: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum SuppressCommand {
    /// Suppress numbers: they are never uploaded again, and their unfinished orders are stopped.
    Add {
        #[arg(required = true, value_name = "PHONE")]
        phones: Vec<String>,
        /// Why (shown by `check` and in the report).
        #[arg(long)]
        reason: Option<String>,
        /// The last date the suppression holds (YYYY-MM-DD); it ends once that date is over everywhere.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        expires: Option<NaiveDate>,
    },
    /// Remove numbers added with `suppress add` (entries from files and opt-outs stay; `--all-sources` removes
    /// those too, until a file is read again or the number opts out again).
    Remove {
        #[arg(required = true, value_name = "PHONE")]
        phones: Vec<String>,
        #[arg(long)]
        all_sources: bool,
    },
    /// List the suppressed numbers.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also list entries that have expired.
        #[arg(long)]
        include_expired: bool,
    },
    /// Say whether a number is suppressed, and why. Exit status 0 when it is, 1 when it is not.
    Check {
        #[arg(value_name = "PHONE")]
        phone: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("expected a date like 2027-01-31: {e}"))
}

pub async fn run(args: SuppressArgs, _shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let (url, configured_country) = match &args.store {
        Some(url) => (url.clone(), None),
        None => {
            let s = Settings::from_cli()?;
            (s.store.url, s.suppression.default_country)
        }
    };
    let country = args.default_country.clone().or(configured_country);
    let store = crate::open_store::open_store(&url).await?;
    let now = clock::SystemClock.now();
    match args.command {
        SuppressCommand::Add {
            phones,
            reason,
            expires,
        } => {
            let phones = normalise_all(&phones, country.as_deref())?;
            let entries: Vec<Suppression> = phones
                .iter()
                .map(|p| Suppression {
                    phone: p.clone(),
                    source: CLI_SOURCE.into(),
                    reason: reason.clone(),
                    expires_at: expires.map(campaign::expiry_of),
                    added_at: now,
                })
                .collect();
            store
                .suppress(&entries)
                .await
                .context("cannot write the suppression list")?;
            println!("suppressed {} number(s)", entries.len());
        }
        SuppressCommand::Remove {
            phones,
            all_sources,
        } => {
            let phones = normalise_all(&phones, country.as_deref())?;
            let source = (!all_sources).then_some(CLI_SOURCE);
            let n = store
                .unsuppress(&phones, source)
                .await
                .context("cannot write the suppression list")?;
            println!("removed {n} entr{}", if n == 1 { "y" } else { "ies" });
            let left = still_suppressed(store.as_ref(), &phones, now).await?;
            for s in left {
                println!(
                    "note: {} is still suppressed by {} (use --all-sources, or edit that file)",
                    s.phone, s.source
                );
            }
        }
        SuppressCommand::List {
            format,
            include_expired,
        } => {
            let filter = SuppressionFilter {
                phone: None,
                active_at: (!include_expired).then_some(now),
                ..SuppressionFilter::default()
            };
            let list = store
                .suppressions(&filter)
                .await
                .context("cannot read the suppression list")?;
            print!("{}", render(&list, format)?);
        }
        SuppressCommand::Check { phone } => {
            let phone = normalise_all(std::slice::from_ref(&phone), country.as_deref())?.remove(0);
            let active =
                still_suppressed(store.as_ref(), std::slice::from_ref(&phone), now).await?;
            if active.is_empty() {
                println!("{phone} is not suppressed");
                return Ok(ExitCode::FAILURE);
            }
            println!("{phone} is suppressed:");
            for s in &active {
                println!("  {}", describe(s));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The numbers normalised like contacts; any bad one stops the command before anything is written.
fn normalise_all(phones: &[String], country: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(phones.len());
    for raw in phones {
        match campaign::normalize_phone(raw, country) {
            Ok(p) => out.push(p),
            Err(why) => bail!(
                "`{}` is not a phone number: {why} (nothing was changed)",
                campaign::escape_input(raw)
            ),
        }
    }
    Ok(out)
}

async fn still_suppressed(
    store: &dyn Store,
    phones: &[String],
    now: campaign::chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<Suppression>> {
    let mut out = Vec::new();
    for phone in phones {
        let filter = SuppressionFilter {
            phone: Some(phone.clone()),
            active_at: Some(now),
            ..SuppressionFilter::default()
        };
        out.extend(
            store
                .suppressions(&filter)
                .await
                .context("cannot read the suppression list")?,
        );
    }
    Ok(out)
}

fn describe(s: &Suppression) -> String {
    let mut text = format!("by {}", s.source);
    if let Some(r) = &s.reason {
        text.push_str(&format!(": {r}"));
    }
    match s.expires_at {
        Some(at) => text.push_str(&format!(" (until {})", at.format("%Y-%m-%dT%H:%M:%SZ"))),
        None => text.push_str(" (no end)"),
    }
    text
}

fn render(list: &[Suppression], format: Format) -> anyhow::Result<String> {
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|s| {
            [
                s.phone.clone(),
                s.source.clone(),
                s.reason.clone().unwrap_or_default(),
                s.expires_at
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default(),
                s.added_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ]
        })
        .collect();
    const COLUMNS: [&str; 5] = ["phone", "source", "reason", "expires_at", "added_at"];
    Ok(match format {
        Format::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::Value::Object(
                        COLUMNS
                            .iter()
                            .zip(r)
                            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
                            .collect(),
                    )
                })
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&items)?)
        }
        Format::Csv => {
            let mut out = format!("{}\n", COLUMNS.join(","));
            for r in &rows {
                let cells: Vec<String> = r.iter().map(|c| csv_cell(c)).collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
            out
        }
        Format::Table => {
            let mut widths: Vec<usize> = COLUMNS.iter().map(|c| c.len()).collect();
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                format!("{}\n", padded.join("  ").trim_end())
            };
            let mut out = line(COLUMNS.to_vec());
            for r in &rows {
                out.push_str(&line(r.iter().map(String::as_str).collect()));
            }
            out.push_str(&format!(
                "({} entr{})\n",
                rows.len(),
                if rows.len() == 1 { "y" } else { "ies" }
            ));
            out
        }
    })
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
