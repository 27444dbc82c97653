//! `campaignd report`: prints the store's report views (per campaign and UTC day of the call start), and the numbers
//! the frequency caps hold now.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use campaign::chrono::{DateTime, NaiveDate, Utc};
use store::{Report, ReportFilter, Store};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// Arguments of `campaignd report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Only this campaign (its ID).
    pub campaign: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Which view to print.
    #[arg(long, value_enum, default_value_t = View::All)]
    pub view: View,
    /// Only days on or after this UTC date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<NaiveDate>,
    /// Store URL; defaults to `[store] url` from the configuration (sqlite://campaignd.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Count the held numbers at this instant (RFC 3339, e.g. 2026-11-23T14:00:00Z) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    /// All the views.
    All,
    /// `report_campaign_totals`: per campaign over all days (`--since` does not apply).
    Totals,
    /// `report_campaign_daily`: orders, calls, rates, talk time, SMS.
    Daily,
    /// `report_call_status`: calls by callStatus.
    CallStatus,
    /// `report_intents`: calls by intent.
    Intents,
    /// `report_rejected`: orders never uploaded, by kind (`suppressed` or `rejected`) and reason (`--since` does
    /// not apply).
    Rejected,
    /// `report_rounds`: each task, a generation or a round of a repeating campaign, with its orders and calls
    /// (`--since` does not apply).
    Rounds,
    /// `report_zone_groups`: each task that dials one zone group (each group of a `timezone = "contact"` campaign),
    /// with the group's zones and rules, its orders and calls (`--since` does not apply).
    Zones,
    /// `held`: numbers planned but held now by a frequency cap (`[caps]` of the configuration and of the campaign),
    /// and until when the first of them is held. Computed when the report is asked for, not a view.
    Held,
    /// `unzoned`: per campaign, the contacts whose time zone is unknown (with `timezone = "contact"` and no
    /// `fallback_timezone`): never dialled, with the first of their lines in the contacts file. From the campaigns as
    /// the daemon last recorded them.
    Unzoned,
}

/// What `report` prints: the store's views, and the numbers the caps hold now.
#[derive(Debug, Default, serde::Serialize)]
struct Shown {
    #[serde(flatten)]
    report: Report,
    held: Vec<HeldRow>,
    unzoned: Vec<UnzonedRow>,
}

/// One campaign's contacts without a known zone: never dialled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct UnzonedRow {
    campaign_id: String,
    contacts: u64,
    /// The first of their lines in the contacts file.
    lines: Vec<u64>,
}

/// The contacts without a known zone of every campaign the store keeps (or only `campaign`), from the contacts file
/// as the daemon last read it.
async fn unzoned(store: &dyn Store, campaign: Option<&str>) -> anyhow::Result<Vec<UnzonedRow>> {
    let records = store
        .campaigns()
        .await
        .context("cannot read the campaigns from the store")?;
    Ok(records
        .into_iter()
        .filter(|rec| campaign.is_none_or(|c| c == rec.id))
        .filter_map(|rec| {
            let spec: campaign::CampaignSpec = serde_json::from_value(rec.spec?).ok()?;
            let a = spec.audience?;
            (a.unzoned > 0).then_some(UnzonedRow {
                campaign_id: spec.id,
                contacts: a.unzoned,
                lines: a.unzoned_lines,
            })
        })
        .collect())
}

/// One campaign's numbers held by a frequency cap now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct HeldRow {
    campaign_id: String,
    /// Planned numbers at a cap now (not uploaded until it allows).
    numbers: u64,
    /// The last instant the first of them is still held; `None` when only orders the platform may still dial hold
    /// them (their release is not known).
    until: Option<DateTime<Utc>>,
}

/// The numbers held now in every campaign that is not finished (or only `campaign`), by the caps in force for it.
async fn held_now(
    store: &dyn Store,
    daemon_caps: &[campaign::CapRule],
    campaign: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<HeldRow>> {
    let records = store
        .campaigns()
        .await
        .context("cannot read the campaigns from the store")?;
    let mut out = Vec::new();
    for rec in records {
        if campaign.is_some_and(|c| c != rec.id)
            || daemon::CampaignState::parse(&rec.state)
                .is_some_and(daemon::CampaignState::is_finished)
        {
            continue;
        }
        let Some(spec) = rec
            .spec
            .and_then(|v| serde_json::from_value::<campaign::CampaignSpec>(v).ok())
        else {
            continue;
        };
        let caps = daemon::caps_in_force(daemon_caps, &spec);
        if caps.is_empty() {
            continue;
        }
        // Every task of the campaign (one per zone group with `timezone = "contact"`).
        let mut row = HeldRow {
            campaign_id: spec.id.clone(),
            numbers: 0,
            until: None,
        };
        for ut in daemon::user_task_ids(&spec) {
            let held = store
                .held_numbers(&ut, &caps, now)
                .await
                .with_context(|| format!("cannot read campaign {}'s held numbers", spec.id))?;
            row.numbers += held.numbers;
            row.until = match (row.until, held.until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if row.numbers > 0 {
            out.push(row);
        }
    }
    Ok(out)
}

/// A zone group as stored (JSON) in words, e.g. `America/New_York [us us-fl]`; the text as stored when it does not read.
fn zone_group_label(json: &str) -> String {
    serde_json::from_str::<campaign::ZoneGroup>(json)
        .map_or_else(|_| json.to_owned(), |g| g.label())
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("expected a date like 2026-03-02: {e}"))
}

pub async fn run(args: ReportArgs, _shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_cli()?;
    let url = args.store.unwrap_or_else(|| settings.store.url.clone());
    let store = crate::open_store::open_store(&url).await?;
    let held = if matches!(args.view, View::All | View::Held) {
        let now = super::instant(args.now.as_deref())?;
        held_now(
            store.as_ref(),
            &settings.caps,
            args.campaign.as_deref(),
            now,
        )
        .await?
    } else {
        Vec::new()
    };
    let unzoned = if matches!(args.view, View::All | View::Unzoned) {
        unzoned(store.as_ref(), args.campaign.as_deref()).await?
    } else {
        Vec::new()
    };
    let filter = ReportFilter {
        campaign: args.campaign,
        since: args.since,
    };
    let report = store
        .report(&filter)
        .await
        .context("cannot read the report views")?;
    print!(
        "{}",
        render(
            &Shown {
                report,
                held,
                unzoned,
            },
            args.format,
            args.view
        )?
    );
    Ok(ExitCode::SUCCESS)
}

/// One rendered view: a title, column names and rows of cells.
struct Table {
    title: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

fn rate(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_default()
}

fn secs(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.1}")).unwrap_or_default()
}

fn tables(shown: &Shown, view: View, raw: bool) -> Vec<Table> {
    let report = &shown.report;
    let rate = |r: Option<f64>| {
        if raw {
            r.map(|r| r.to_string()).unwrap_or_default()
        } else {
            rate(r)
        }
    };
    let secs = |s: Option<f64>| {
        if raw {
            s.map(|s| s.to_string()).unwrap_or_default()
        } else {
            secs(s)
        }
    };
    let mut out = Vec::new();
    if matches!(view, View::All | View::Totals) {
        out.push(Table {
            title: "report_campaign_totals",
            columns: &[
                "campaign_id",
                "orders_total",
                "orders_dialled",
                "orders_answered",
                "orders_finished",
                "calls",
                "calls_answered",
                "answer_rate",
                "finish_rate",
                "avg_talk_secs",
                "p90_talk_secs",
                "sms_sent",
                "first_call_at",
                "last_call_at",
            ],
            rows: report
                .totals
                .iter()
                .map(|r| {
                    vec![
                        r.campaign_id.clone(),
                        r.orders_total.to_string(),
                        r.orders_dialled.to_string(),
                        r.orders_answered.to_string(),
                        r.orders_finished.to_string(),
                        r.calls.to_string(),
                        r.calls_answered.to_string(),
                        rate(r.answer_rate),
                        rate(r.finish_rate),
                        secs(r.avg_talk_secs),
                        r.p90_talk_secs.map(|v| v.to_string()).unwrap_or_default(),
                        r.sms_sent.to_string(),
                        r.first_call_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        r.last_call_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    ]
                })
                .collect(),
        });
    }
    if matches!(view, View::All | View::Daily) {
        out.push(Table {
            title: "report_campaign_daily",
            columns: &[
                "campaign_id",
                "day",
                "orders_total",
                "orders_dialled",
                "orders_answered",
                "orders_finished",
                "calls",
                "calls_answered",
                "answer_rate",
                "finish_rate",
                "avg_talk_secs",
                "p90_talk_secs",
                "sms_sent",
            ],
            rows: report
                .daily
                .iter()
                .map(|r| {
                    vec![
                        r.campaign_id.clone(),
                        r.day.to_string(),
                        r.orders_total.to_string(),
                        r.orders_dialled.to_string(),
                        r.orders_answered.to_string(),
                        r.orders_finished.to_string(),
                        r.calls.to_string(),
                        r.calls_answered.to_string(),
                        rate(r.answer_rate),
                        rate(r.finish_rate),
                        secs(r.avg_talk_secs),
                        r.p90_talk_secs.map(|v| v.to_string()).unwrap_or_default(),
                        r.sms_sent.to_string(),
                    ]
                })
                .collect(),
        });
    }
    if matches!(view, View::All | View::CallStatus) {
        out.push(Table {
            title: "report_call_status",
            columns: &["campaign_id", "day", "call_status", "status_name", "calls"],
            rows: report
                .call_status
                .iter()
                .map(|r| {
                    vec![
                        r.campaign_id.clone(),
                        r.day.to_string(),
                        r.call_status.to_string(),
                        r.status_name.clone(),
                        r.calls.to_string(),
                    ]
                })
                .collect(),
        });
    }
    if matches!(view, View::All | View::Intents) {
        out.push(Table {
            title: "report_intents",
            columns: &["campaign_id", "day", "intent", "calls"],
            rows: report
                .intents
                .iter()
                .map(|r| {
                    vec![
                        r.campaign_id.clone(),
                        r.day.to_string(),
                        r.intent.clone(),
                        r.calls.to_string(),
                    ]
                })
                .collect(),
        });
    }
    if matches!(view, View::All | View::Rejected) {
        out.push(Table {
            title: "report_rejected",
            columns: &["campaign_id", "kind", "reason", "orders"],
            rows: report
                .rejected
                .iter()
                .map(|r| {
                    vec![
                        r.campaign_id.clone(),
                        r.kind.clone(),
                        r.reason.clone(),
                        r.orders.to_string(),
                    ]
                })
                .collect(),
        });
    }
    if matches!(view, View::All | View::Rounds) {
        out.push(Table {
            title: "report_rounds",
            columns: &[
                "campaign_id",
                "generation",
                "round",
                "user_task_id",
                "orders_total",
                "orders_finished",
                "calls",
                "calls_answered",
                "first_call_at",
                "last_call_at",
            ],
            rows: report
                .rounds
                .iter()
                .map(|r| {
                    vec![
                        r.campaign_id.clone(),
                        r.generation.to_string(),
                        r.round.map(|n| n.to_string()).unwrap_or_default(),
                        r.user_task_id.clone(),
                        r.orders_total.to_string(),
                        r.orders_finished.to_string(),
                        r.calls.to_string(),
                        r.calls_answered.to_string(),
                        r.first_call_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        r.last_call_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    ]
                })
                .collect(),
        });
    }
    if matches!(view, View::All | View::Zones) {
        out.push(Table {
            title: "report_zone_groups",
            columns: &[
                "campaign_id",
                "generation",
                "zone_group",
                "user_task_id",
                "orders_total",
                "orders_finished",
                "calls",
                "calls_answered",
                "first_call_at",
                "last_call_at",
            ],
            rows: report
                .zone_groups
                .iter()
                .map(|r| {
                    vec![
                        r.campaign_id.clone(),
                        r.generation.to_string(),
                        zone_group_label(&r.zone_group),
                        r.user_task_id.clone(),
                        r.orders_total.to_string(),
                        r.orders_finished.to_string(),
                        r.calls.to_string(),
                        r.calls_answered.to_string(),
                        r.first_call_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        r.last_call_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    ]
                })
                .collect(),
        });
    }
    if matches!(view, View::All | View::Held) {
        out.push(Table {
            title: "held (now, by the caps in force)",
            columns: &["campaign_id", "numbers", "until"],
            rows: shown
                .held
                .iter()
                .map(|r| {
                    vec![
                        r.campaign_id.clone(),
                        r.numbers.to_string(),
                        r.until.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    ]
                })
                .collect(),
        });
    }
    if matches!(view, View::All | View::Unzoned) {
        out.push(Table {
            title: "unzoned (contacts without a known time zone: never dialled)",
            columns: &["campaign_id", "contacts", "first_lines"],
            rows: shown
                .unzoned
                .iter()
                .map(|r| {
                    let lines: Vec<String> = r.lines.iter().map(u64::to_string).collect();
                    vec![
                        r.campaign_id.clone(),
                        r.contacts.to_string(),
                        lines.join(" "),
                    ]
                })
                .collect(),
        });
    }
    out
}

fn render(shown: &Shown, format: Format, view: View) -> anyhow::Result<String> {
    let report = &shown.report;
    let mut out = String::new();
    match format {
        Format::Json => {
            let value = match view {
                View::All => serde_json::to_value(shown)?,
                View::Totals => serde_json::to_value(&report.totals)?,
                View::Daily => serde_json::to_value(&report.daily)?,
                View::CallStatus => serde_json::to_value(&report.call_status)?,
                View::Intents => serde_json::to_value(&report.intents)?,
                View::Rejected => serde_json::to_value(&report.rejected)?,
                View::Rounds => serde_json::to_value(&report.rounds)?,
                View::Zones => serde_json::to_value(&report.zone_groups)?,
                View::Held => serde_json::to_value(&shown.held)?,
                View::Unzoned => serde_json::to_value(&shown.unzoned)?,
            };
            out = serde_json::to_string_pretty(&value)?;
            out.push('\n');
        }
        Format::Csv => {
            // One CSV block per view; with several views, blocks are separated by a blank line.
            for (i, t) in tables(shown, view, true).iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&csv_line(t.columns.iter().copied()));
                for row in &t.rows {
                    out.push_str(&csv_line(row.iter().map(String::as_str)));
                }
            }
        }
        Format::Table => {
            for (i, t) in tables(shown, view, false).iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let _ = writeln!(out, "{}", t.title);
                if t.rows.is_empty() {
                    out.push_str("  (no rows yet)\n");
                    continue;
                }
                let widths: Vec<usize> = (0..t.columns.len())
                    .map(|c| {
                        t.rows
                            .iter()
                            .map(|r| r[c].chars().count())
                            .chain([t.columns[c].len()])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let line = |cells: Vec<&str>| {
                    let mut l = String::new();
                    for (c, cell) in cells.iter().enumerate() {
                        let pad = widths[c] - cell.chars().count();
                        // Text left, numbers right.
                        if matches!(
                            t.columns[c],
                            "campaign_id"
                                | "day"
                                | "status_name"
                                | "intent"
                                | "kind"
                                | "reason"
                                | "until"
                        ) {
                            let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
                        } else {
                            let _ = write!(l, "{}{cell}  ", " ".repeat(pad));
                        }
                    }
                    l.trim_end().to_owned() + "\n"
                };
                out.push_str(&line(t.columns.to_vec()));
                for row in &t.rows {
                    out.push_str(&line(row.iter().map(String::as_str).collect()));
                }
            }
        }
    }
    Ok(out)
}

fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = cells
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_owned()
            }
        })
        .collect();
    quoted.join(",") + "\n"
}

#[cfg(test)]
mod tests {
    use store::{CallStatusRow, DailyRow, IntentRow, RejectedRow};

    use super::*;

    fn shown() -> Shown {
        Shown {
            report: sample(),
            held: vec![HeldRow {
                campaign_id: "spring, north".into(),
                numbers: 4,
                until: None,
            }],
            unzoned: vec![UnzonedRow {
                campaign_id: "local".into(),
                contacts: 2,
                lines: vec![7, 19],
            }],
        }
    }

    #[test]
    fn contacts_without_a_zone_are_reported_with_their_lines() {
        let out = render(&shown(), Format::Table, View::Unzoned).unwrap();
        assert!(
            out.starts_with("unzoned (contacts without a known time zone"),
            "{out}"
        );
        assert!(out.contains("7 19"), "{out}");
        let json = render(&shown(), Format::Json, View::Unzoned).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["lines"], serde_json::json!([7, 19]));
    }

    fn sample() -> Report {
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        Report {
            totals: vec![],
            daily: vec![DailyRow {
                campaign_id: "spring, north".into(),
                day,
                orders_total: 5,
                orders_dialled: 4,
                orders_answered: 3,
                orders_finished: 2,
                calls: 4,
                calls_answered: 3,
                answer_rate: Some(0.75),
                finish_rate: Some(0.4),
                avg_talk_secs: Some(30.0),
                p90_talk_secs: Some(50),
                sms_sent: 1,
            }],
            call_status: vec![CallStatusRow {
                campaign_id: "spring, north".into(),
                day,
                call_status: 10,
                status_name: "busy".into(),
                calls: 1,
            }],
            intents: vec![IntentRow {
                campaign_id: "spring, north".into(),
                day,
                intent: "interested".into(),
                calls: 2,
            }],
            rejected: vec![RejectedRow {
                campaign_id: "spring, north".into(),
                kind: "suppressed".into(),
                reason: "customer asked".into(),
                orders: 3,
            }],
            rounds: vec![store::RoundRow {
                campaign_id: "monthly".into(),
                generation: 100_002,
                round: Some(2),
                user_task_id: "t-2".into(),
                orders_total: 6,
                orders_finished: 6,
                calls: 7,
                calls_answered: 5,
                first_call_at: None,
                last_call_at: None,
            }],
            zone_groups: vec![store::ZoneGroupRow {
                campaign_id: "local".into(),
                generation: 1,
                user_task_id: "t-la".into(),
                zone_group: r#"{"zones":["America/Los_Angeles"],"rules":["us"]}"#.into(),
                orders_total: 4,
                orders_finished: 4,
                calls: 4,
                calls_answered: 1,
                first_call_at: None,
                last_call_at: None,
            }],
        }
    }

    #[test]
    fn the_zone_group_view_names_each_group_in_words() {
        let out = render(&shown(), Format::Table, View::Zones).unwrap();
        assert!(
            out.starts_with(
                "report_zone_groups
"
            ),
            "{out}"
        );
        assert!(out.contains("America/Los_Angeles [us]"), "{out}");
        let json = render(&shown(), Format::Json, View::Zones).unwrap();
        assert!(json.contains("\"zone_group\""), "{json}");
    }

    #[test]
    fn table_shows_rates_as_percentages_under_view_titles() {
        let out = render(&shown(), Format::Table, View::All).unwrap();
        assert!(
            out.starts_with("report_campaign_totals\n  (no rows yet)\n\nreport_campaign_daily\n"),
            "{out}"
        );
        assert!(
            out.contains("75.0%") && out.contains("40.0%") && out.contains("30.0"),
            "{out}"
        );
        assert!(
            out.contains("report_call_status") && out.contains("busy"),
            "{out}"
        );
        assert!(
            out.contains("report_intents") && out.contains("interested"),
            "{out}"
        );
        assert!(
            out.contains("report_rounds") && out.contains("100002"),
            "{out}"
        );
        assert!(
            out.contains("report_rejected") && out.contains("customer asked"),
            "{out}"
        );
        assert!(out.contains("held (now, by the caps in force)"), "{out}");
    }

    #[test]
    fn csv_quotes_cells_and_keeps_raw_fractions() {
        let out = render(&shown(), Format::Csv, View::Daily).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0].split(',').count(), 13);
        assert_eq!(
            lines[1],
            "\"spring, north\",2026-03-02,5,4,3,2,4,3,0.75,0.4,30,50,1"
        );
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn json_of_one_view_is_an_array_of_rows() {
        let out = render(&shown(), Format::Json, View::Intents).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["intent"], "interested");
        assert_eq!(v[0]["day"], "2026-03-02");
    }

    #[test]
    fn rejects_a_bad_since_date_with_an_example() {
        assert!(parse_date("2026-13-01").unwrap_err().contains("2026-03-02"));
        assert_eq!(
            parse_date("2026-03-02").unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
        );
    }
}
