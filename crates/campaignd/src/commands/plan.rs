//! `campaignd plan`: what `run` would do, and the platform settings each campaign compiles to. Offline: no
//! platform calls, no store.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use campaign::chrono::{DateTime, Duration, TimeZone as _, Utc};
use campaign::{CampaignSpec, Stretch, Zone};
use clock::Clock as _;
use serde_json::json;

use super::validate::{ContactsOutcome, OutputFormat, campaign_files, load_all, read_contacts};

/// How long before a new stretch the daemon pauses the task and sends `updateTask`: the vendor says settings take
/// about 5 minutes to apply.
pub const SETTINGS_LEAD_SECONDS: i64 = 300;

/// Arguments of `campaignd plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The campaigns directory.
    #[arg(long, default_value = "campaigns", env = "CAMPAIGND_CAMPAIGNS__DIR")]
    pub campaigns_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Plan as if it were this instant (RFC 3339, e.g. 2026-11-23T08:00:00Z); default: now.
    #[arg(long)]
    pub now: Option<String>,
    /// How many stretches to show per campaign.
    #[arg(long, default_value_t = 4)]
    pub stretches: usize,
}

/// One thing the daemon will do.
struct Action {
    at: DateTime<Utc>,
    action: &'static str,
    detail: String,
}

fn local(zone: Zone, at: DateTime<Utc>) -> String {
    match zone {
        Zone::Iana(tz) => at
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M %:z")
            .to_string(),
        Zone::Fixed(secs) => match campaign::chrono::FixedOffset::east_opt(secs) {
            Some(off) => off
                .from_utc_datetime(&at.naive_utc())
                .format("%Y-%m-%d %H:%M %:z")
                .to_string(),
            None => at.to_rfc3339(),
        },
    }
}

fn rfc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(campaign::chrono::SecondsFormat::Secs, true)
}

/// The daemon's actions for these stretches, in time order.
fn actions(
    spec: &CampaignSpec,
    stretches: &[Stretch],
    valid: Option<u64>,
    now: DateTime<Utc>,
) -> Vec<Action> {
    let mut out = Vec::new();
    if spec.paused {
        out.push(Action {
            at: now,
            action: "hold",
            detail: "`paused = true` in the file: the task stays paused".to_string(),
        });
        return out;
    }
    let lead = Duration::seconds(SETTINGS_LEAD_SECONDS);
    let contacts = valid.map_or("the contacts".to_string(), |n| {
        let batches = n.div_ceil(u64::from(spec.contacts.batch_size.max(1)));
        format!("{n} contacts in {batches} batch(es)")
    });
    let mut created = false;
    for (i, s) in stretches.iter().enumerate() {
        // A stretch without dialling is not programmed: the task just stays paused through it.
        let Some(open) = s.first_open else { continue };
        if !created {
            created = true;
            out.push(Action {
                at: now.min(s.from),
                action: "create",
                detail: format!(
                    "create task {} (not started) with stretch {} settings; upload {contacts}",
                    campaign::user_task_id(&spec.id, spec.generation, 0),
                    i + 1
                ),
            });
            out.push(Action {
                at: open,
                action: "start",
                detail: format!("start the task: stretch {} opens", i + 1),
            });
            continue;
        }
        // Pause right after the previous stretch's last open minute if that leaves the lead time, else `lead`
        // before the new settings are needed.
        let prev = &stretches[i - 1];
        let quiet_from = prev.last_close.unwrap_or(prev.from);
        out.push(Action {
            at: (s.from - lead).min(quiet_from).max(prev.from),
            action: "pause_and_update",
            detail: format!(
                "pause, then updateTask to stretch {} settings (zoneSecond {}, days {}) at least {} min before they are needed",
                i + 1,
                s.settings.zone_second,
                s.settings.dial_at_week_day(),
                SETTINGS_LEAD_SECONDS / 60
            ),
        });
        out.push(Action {
            at: open,
            action: "resume",
            detail: format!("resume the task: stretch {} opens", i + 1),
        });
    }
    if let Some(end) = spec.schedule.end_utc() {
        out.push(Action {
            at: end,
            action: "complete",
            detail: "the campaign's end: complete the task (no further dialling)".to_string(),
        });
    }
    out.sort_by_key(|a| a.at);
    out
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let now = match &args.now {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| {
                format!("--now `{s}` is not an RFC 3339 instant such as 2026-11-23T08:00:00Z")
            })?
            .with_timezone(&Utc),
        None => clock::SystemClock.now(),
    };
    let files = campaign_files(&args.campaigns_dir)?;
    let loaded = load_all(&files, now);
    let errors = loaded.diagnostics.error_count();

    let mut human = String::new();
    let mut docs = Vec::new();
    for spec in &loaded.specs {
        let zone = spec.schedule.zone;
        let list = campaign::stretches(&spec.schedule, now, args.stretches.max(1));
        let (contacts_json, valid) = match read_contacts(spec, 0) {
            ContactsOutcome::Read(s) => (
                json!({
                    "valid": s.valid,
                    "invalid": s.invalid,
                    "duplicate": s.duplicate,
                    "batch_size": spec.contacts.batch_size,
                    "batches": s.batches(spec.contacts.batch_size),
                }),
                Some(s),
            ),
            ContactsOutcome::Failed(e) => (json!({ "error": e }), None),
        };
        let acts = actions(spec, &list, valid.as_ref().map(|s| s.valid), now);
        let task_id = campaign::user_task_id(&spec.id, spec.generation, 0);

        let _ = writeln!(human, "campaign {} ({})", spec.id, spec.source.display());
        let _ = writeln!(
            human,
            "  task      {task_id} (generation {}), zone {zone}, robots {}{}",
            spec.generation,
            spec.robots,
            if spec.paused {
                ", PAUSED in the file"
            } else {
                ""
            }
        );
        match &valid {
            Some(s) => {
                let _ = writeln!(
                    human,
                    "  contacts  {} valid, {} invalid, {} duplicate; {} batch(es) of up to {}",
                    s.valid,
                    s.invalid,
                    s.duplicate,
                    s.batches(spec.contacts.batch_size),
                    spec.contacts.batch_size
                );
            }
            None => {
                let _ = writeln!(
                    human,
                    "  contacts  not readable: {}",
                    contacts_json["error"]
                );
            }
        }
        if list.is_empty() {
            let _ = writeln!(human, "  no dialling time left: nothing to program");
        }
        let mut stretch_docs = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let until = s.until.map_or("forever".to_string(), rfc);
            let until_local = s.until.map_or("forever".to_string(), |u| local(zone, u));
            let _ = writeln!(human, "  stretch {}  {} .. {}", i + 1, rfc(s.from), until);
            let _ = writeln!(
                human,
                "            local {} .. {}",
                local(zone, s.from),
                until_local
            );
            let _ = writeln!(
                human,
                "            zoneSecond={} dialAtWeekDay={} dialAtUpHour={} dialAtDownHour={}",
                s.settings.zone_second,
                s.settings.dial_at_week_day(),
                s.settings.dial_at_up_hour(),
                s.settings.dial_at_down_hour()
            );
            match s.first_open {
                Some(o) => {
                    let _ = writeln!(
                        human,
                        "            first open {} ({})",
                        rfc(o),
                        local(zone, o)
                    );
                }
                None => {
                    let _ = writeln!(human, "            no dialling in this stretch");
                }
            }
            stretch_docs.push(json!({
                "from": rfc(s.from),
                "until": s.until.map(rfc),
                "from_local": local(zone, s.from),
                "until_local": s.until.map(|u| local(zone, u)),
                "first_open": s.first_open.map(rfc),
                "last_close": s.last_close.map(rfc),
                "settings": {
                    "zoneSecond": s.settings.zone_second,
                    "dialAtWeekDay": s.settings.dial_at_week_day(),
                    "dialAtUpHour": s.settings.dial_at_up_hour(),
                    "dialAtDownHour": s.settings.dial_at_down_hour(),
                },
            }));
        }
        let _ = writeln!(human, "  actions");
        for a in &acts {
            let _ = writeln!(
                human,
                "    {}  ({})  {}: {}",
                rfc(a.at),
                local(zone, a.at),
                a.action,
                a.detail
            );
        }
        human.push('\n');
        docs.push(json!({
            "id": spec.id,
            "file": spec.source.display().to_string(),
            "user_task_id": task_id,
            "generation": spec.generation,
            "paused": spec.paused,
            "zone": zone.to_string(),
            "contacts": contacts_json,
            "stretches": stretch_docs,
            "actions": acts.iter().map(|a| json!({
                "at": rfc(a.at),
                "local": local(zone, a.at),
                "action": a.action,
                "detail": a.detail,
            })).collect::<Vec<_>>(),
        }));
    }

    match args.format {
        OutputFormat::Human => {
            if !loaded.diagnostics.is_empty() {
                print!("{}", loaded.diagnostics.render_human(&loaded.sources));
            }
            println!(
                "plan at {} (offline: nothing is sent to the platform)\n",
                rfc(now)
            );
            print!("{human}");
            if errors > 0 {
                println!(
                    "{errors} error(s): the files above are left out of the plan; fix them and run again"
                );
            }
        }
        OutputFormat::Json => {
            let doc = json!({
                "version": 1,
                "now": rfc(now),
                "campaigns": docs,
                "diagnostics": serde_json::to_value(&loaded.diagnostics.0).unwrap_or_default(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).context("cannot encode the JSON output")?
            );
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
