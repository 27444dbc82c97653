//! `campaignd plan`: what `run` would do, and the platform settings each campaign compiles to. Offline: no
//! platform calls, no store.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use campaign::chrono::{DateTime, Duration, TimeZone as _, Utc};
use campaign::{
    Audience, CampaignSpec, ContactCalendar, GroupCount, MAX_ZONE_GROUPS, Rule, Stretch, Zone,
};
use serde_json::json;

use super::validate::{
    ContactsOutcome, OutputFormat, campaign_files, contact_limits, load_all, now_arg, read_contacts,
};

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
    /// Also show what the store records as already on the platform (task, settings last sent, orders) and the
    /// actions `run` would take now. Read-only: the store must exist; the platform is not called.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

/// What the store says is on the platform for one campaign, and what `run` would do about it now.
fn on_platform(
    rt: &tokio::runtime::Runtime,
    store: &dyn store::Store,
    spec: &CampaignSpec,
    valid_contacts: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<(serde_json::Value, String)> {
    let zone = spec.schedule.zone;
    // The zone groups recorded for the task count as the daemon counts them.
    let spec = &rt
        .block_on(daemon::with_recorded_groups(store, spec))
        .with_context(|| format!("cannot read campaign {}'s zone groups", spec.id))?;
    let snap = rt
        .block_on(daemon::snapshot(
            store,
            spec,
            true,
            valid_contacts,
            now,
            Duration::seconds(SETTINGS_LEAD_SECONDS),
            None,
        ))
        .with_context(|| format!("cannot read campaign {} from the store", spec.id))?;
    let why = snap.plan.why.describe(&|t| local(zone, t));
    let would: Vec<&str> = snap.plan.actions.iter().map(|a| a.name()).collect();
    let c = &snap.counts;
    let task = snap.task.as_ref();
    let mut human = String::new();
    let _ = writeln!(
        human,
        "  platform  task {} ({}), settings last sent {}",
        task.and_then(|t| t.task_id.as_deref()).unwrap_or("-"),
        snap.observed.task.as_str(),
        task.and_then(|t| t.settings_sent_at)
            .map_or("never".to_string(), |t| local(zone, t)),
    );
    let _ = writeln!(
        human,
        "            orders: {} planned, {} sending, {} sent, {} rejected, {} finished",
        c.planned, c.sending, c.sent, c.rejected, c.finished
    );
    let _ = writeln!(
        human,
        "  run now   {}; {why}",
        if would.is_empty() {
            "nothing".to_string()
        } else {
            would.join(", ")
        }
    );
    let doc = json!({
        "task_id": task.and_then(|t| t.task_id.clone()),
        "task_state": snap.observed.task.as_str(),
        "settings_sent_at": task.and_then(|t| t.settings_sent_at).map(rfc),
        "orders": c,
        "run_would_now": would,
        "why": why,
        "next_wake": snap.plan.next_wake.map(rfc),
    });
    Ok((doc, human))
}

/// Opens the store named by `--store` without creating it: a plan never writes a new database.
fn open_existing_store(
    rt: &tokio::runtime::Runtime,
    url: &str,
) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or(rest);
        if !path.contains(":memory:") && !std::path::Path::new(path).exists() {
            anyhow::bail!(
                "--store {url}: no database at {path}; nothing has run against this store yet (drop --store for an offline plan)"
            );
        }
    }
    rt.block_on(crate::open_store::open_store(url))
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
    task_id: &str,
    stretches: &[Stretch],
    valid: Option<u64>,
    end: Option<DateTime<Utc>>,
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
                    "create task {task_id} (not started) with stretch {} settings; upload {contacts}",
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
    if let Some(end) = end {
        out.push(Action {
            at: end,
            action: "complete",
            detail: "the campaign's end: complete the task (no further dialling)".to_string(),
        });
    }
    out.sort_by_key(|a| a.at);
    out
}

/// The round in force of a repeating campaign and its next occurrences, as JSON and as text in `human`.
fn round_section(
    file: &CampaignSpec,
    round: Option<campaign::Round>,
    human: &mut String,
) -> Option<serde_json::Value> {
    let zone = file.schedule.zone;
    match (&file.repeat, round) {
        (Some(repeat), Some(r)) => {
            // The occurrences after the round in force's: the next rounds.
            let next = repeat.occurrences(
                &zone,
                r.starts + Duration::seconds(1),
                file.schedule.end_utc(),
                4,
            );
            let next = next.iter();
            let upcoming: Vec<serde_json::Value> = next
                .enumerate()
                .map(|(i, at)| {
                    let number = r.number + 1 + u32::try_from(i).unwrap_or(0);
                    let what = match repeat.on_next_round {
                        campaign::NextRound::Complete => format!(
                            "round {number}: complete round {}'s task (undialled orders are kept), then create task {} \
                             (generation {}) with the contacts file as it is then",
                            number - 1,
                            campaign::user_task_id(&file.id, file.round_generation(number), 0),
                            file.round_generation(number)
                        ),
                        campaign::NextRound::Keep => format!(
                            "round {number}: starts once round {}'s task has nothing left to dial (task {}, \
                             generation {})",
                            number - 1,
                            campaign::user_task_id(&file.id, file.round_generation(number), 0),
                            file.round_generation(number)
                        ),
                    };
                    json!({ "round": number, "at": rfc(*at), "local": local(zone, *at), "action": what })
                })
                .collect();
            let _ = writeln!(
                human,
                "  round     {} of `{}` (on_next_round = {}), started {} ({})",
                r.number,
                repeat.cron,
                repeat.on_next_round.as_str(),
                rfc(r.starts),
                local(zone, r.starts)
            );
            for u in &upcoming {
                let _ = writeln!(
                    human,
                    "  next      {}  ({})  {}",
                    u["at"].as_str().unwrap_or_default(),
                    u["local"].as_str().unwrap_or_default(),
                    u["action"].as_str().unwrap_or_default()
                );
            }
            Some(json!({
                "repeat": repeat.cron,
                "on_next_round": repeat.on_next_round.as_str(),
                "number": r.number,
                "started": rfc(r.starts),
                "next": upcoming,
            }))
        }
        (Some(_), None) => {
            let _ = writeln!(
                human,
                "  round     none left: `repeat` has no occurrence before the end"
            );
            None
        }
        _ => None,
    }
}

/// One platform task of a campaign: its calendar (read in its zones, narrowed by its contacts' legal rules) and its
/// contacts.
struct TaskPlan<'a> {
    user_task_id: String,
    /// Its zone group, with `timezone = "contact"`.
    group: Option<&'a GroupCount>,
    calendar: ContactCalendar<'a>,
    /// How many contacts it dials and the CSV line of the first; `None` when the contacts were not read.
    contacts: Option<(u64, u64)>,
}

/// The tasks of a campaign: one with a named zone (without the legal rules when the contacts could not be read), one
/// per zone group with `timezone = "contact"`.
fn tasks_of<'a>(spec: &'a CampaignSpec, audience: Option<&'a Audience>) -> Vec<TaskPlan<'a>> {
    let Some(audience) = audience else {
        if spec.schedule.contact_zones {
            return Vec::new();
        }
        return vec![TaskPlan {
            user_task_id: campaign::user_task_id(&spec.id, spec.generation, 0),
            group: None,
            calendar: ContactCalendar::for_named_zone(&spec.schedule, std::iter::empty()),
            contacts: None,
        }];
    };
    audience
        .calendars(spec)
        .into_iter()
        .map(|(group, calendar)| match group {
            Some(g) => {
                let count = audience.groups.iter().find(|c| &c.group == g);
                TaskPlan {
                    user_task_id: campaign::zone_group_task_id(&spec.id, spec.generation, g),
                    group: count,
                    calendar,
                    contacts: count.map(|c| (c.contacts, c.first_line)),
                }
            }
            None => TaskPlan {
                user_task_id: campaign::user_task_id(&spec.id, spec.generation, 0),
                group: None,
                calendar,
                contacts: audience
                    .groups
                    .iter()
                    .map(|g| g.first_line)
                    .min()
                    .map(|first| (audience.groups.iter().map(|g| g.contacts).sum(), first)),
            },
        })
        .collect()
}

/// Whether this version of `run` dials the campaign, and if not, why.
fn runs(spec: &CampaignSpec, audience: Option<&Audience>) -> Result<(), String> {
    if !spec.schedule.contact_zones {
        return Ok(());
    }
    match audience.map(|a| a.groups.len()) {
        None => {
            Err("its contacts file cannot be read, so its zone groups are not known".to_string())
        }
        Some(0) => Err("no contact has a known time zone: there is nothing to dial".to_string()),
        Some(n) if n > MAX_ZONE_GROUPS => Err(format!(
            "its contacts fall into {n} zone groups, more than the {MAX_ZONE_GROUPS} tasks a campaign may have; split \
             the contacts into several campaigns, or name one `timezone`"
        )),
        Some(_) => Ok(()),
    }
}

/// Each rule with its source, the date it was checked, and the zones it is read in.
fn rules_json(pairs: &[(Zone, &'static Rule)]) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for (zone, rule) in pairs {
        match out.iter_mut().find(|r| r["name"] == rule.name.as_str()) {
            Some(r) => {
                if let Some(zones) = r["zones"].as_array_mut() {
                    zones.push(json!(zone.to_string()));
                }
            }
            None => out.push(json!({
                "name": rule.name,
                "source": rule.source,
                "checked": rule.checked.to_string(),
                "zones": [zone.to_string()],
            })),
        }
    }
    out
}

/// The stretches of one task, as JSON and as text, with local times in its zone.
fn stretches_section(zone: Zone, list: &[Stretch]) -> (Vec<serde_json::Value>, String) {
    let mut human = String::new();
    if list.is_empty() {
        let _ = writeln!(human, "  no dialling time left: nothing to program");
    }
    let mut docs = Vec::new();
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
        docs.push(json!({
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
    (docs, human)
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let now = now_arg(args.now.as_deref())?;
    let files = campaign_files(&args.campaigns_dir)?;
    let limits = contact_limits()?;
    let loaded = load_all(&files, &limits, now);
    let errors = loaded.diagnostics.error_count();

    let online = match &args.store {
        Some(url) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let store = open_existing_store(&rt, url)?;
            Some((rt, store))
        }
        None => None,
    };

    let mut human = String::new();
    let mut docs = Vec::new();
    for file in &loaded.specs {
        // A repeating campaign is planned as its round in force by the calendar (offline, `keep` cannot see
        // whether the previous round has run out; `status` can).
        let round = file.round_at(now);
        let round_spec = round.map(|r| file.for_round(&r));
        let spec = round_spec.as_ref().unwrap_or(file);
        let zone = spec.schedule.zone;
        let contact_zones = spec.schedule.contact_zones;
        let (contacts_json, valid) = match read_contacts(spec, &limits, 0) {
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
        // The contacts by zone group: the tasks, and the legal rules that narrow them. A file that cannot be read
        // is reported through `contacts`.
        let audience = Audience::read(spec, &limits).ok();
        let tasks = tasks_of(spec, audience.as_ref());
        let runs = runs(spec, audience.as_ref());

        let _ = writeln!(human, "campaign {} ({})", spec.id, spec.source.display());
        let rounds_json = round_section(file, round, &mut human);
        let paused = if spec.paused {
            ", PAUSED in the file"
        } else {
            ""
        };
        if contact_zones {
            let _ = writeln!(
                human,
                "  zones     each contact's own (timezone = \"contact\"): {} zone group(s), robots {}{paused}",
                tasks.len(),
                spec.robots,
            );
        } else if let Some(t) = tasks.first() {
            let _ = writeln!(
                human,
                "  task      {} (generation {}), zone {zone}, robots {}{paused}",
                t.user_task_id, spec.generation, spec.robots,
            );
            if !t.calendar.rules().is_empty() {
                let _ = writeln!(
                    human,
                    "  rules     {}",
                    super::validate::rules_text(t.calendar.rules())
                );
            }
        }
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
        if let Some(a) = audience.as_ref().filter(|a| a.unzoned > 0) {
            let lines: Vec<String> = a.unzoned_lines.iter().map(u64::to_string).collect();
            let more = if a.unzoned > lines.len() as u64 {
                ", …"
            } else {
                ""
            };
            let _ = writeln!(
                human,
                "  unzoned   {} contact(s) with no known time zone, not dialled: line(s) {}{more}",
                a.unzoned,
                lines.join(", ")
            );
        }
        if let Err(why) = &runs {
            let _ = writeln!(human, "  runs      no: {why}");
        }

        let mut task_docs = Vec::new();
        for (n, t) in tasks.iter().enumerate() {
            let task_zone = t.calendar.task_zone();
            let list = t.calendar.stretches(now, args.stretches.max(1));
            if let Some(g) = t.group {
                let _ = writeln!(
                    human,
                    "  group {:<3} {}: {} contact(s), first at line {}",
                    n + 1,
                    g.group.label(),
                    g.contacts,
                    g.first_line
                );
                let _ = writeln!(
                    human,
                    "            task {} (generation {}), zoneSecond {} ({task_zone})",
                    t.user_task_id,
                    spec.generation,
                    task_zone.offset_at(now)
                );
                if !t.calendar.rules().is_empty() {
                    let _ = writeln!(
                        human,
                        "            rules {}",
                        super::validate::rules_text(t.calendar.rules())
                    );
                }
            }
            let (stretch_docs, text) = stretches_section(task_zone, &list);
            human.push_str(&text);
            let contacts = match t.group {
                Some(g) => Some(g.contacts),
                None => valid.as_ref().map(|s| s.valid),
            };
            let mut acts = if runs.is_ok() {
                actions(
                    spec,
                    &t.user_task_id,
                    &list,
                    contacts,
                    t.calendar.end(),
                    now,
                )
            } else {
                Vec::new()
            };
            if round.is_some() {
                for a in acts.iter_mut().filter(|a| a.action == "complete") {
                    a.detail = "the round's end (the next occurrence, or the campaign's end): complete its task".into();
                }
            }
            if runs.is_err() {
                let _ = writeln!(
                    human,
                    "  actions   none: `run` does not dial this campaign (see runs)"
                );
            } else {
                let _ = writeln!(human, "  actions");
                for a in &acts {
                    let _ = writeln!(
                        human,
                        "    {}  ({})  {}: {}",
                        rfc(a.at),
                        local(task_zone, a.at),
                        a.action,
                        a.detail
                    );
                }
            }
            let rules: Vec<serde_json::Value> = rules_json(t.calendar.rules());
            task_docs.push(json!({
                "user_task_id": t.user_task_id,
                "group": t.group.map(|g| g.group.label()),
                "zones": t.calendar.window_zones().iter().map(Zone::to_string).collect::<Vec<_>>(),
                "task_zone": task_zone.to_string(),
                "zoneSecond": task_zone.offset_at(now),
                "rules": rules,
                "contacts": t.contacts.map(|(n, _)| n),
                "first_line": t.contacts.map(|(_, l)| l),
                "first_open": list.iter().find_map(|s| s.first_open).map(rfc),
                "stretches": stretch_docs,
                "actions": acts.iter().map(|a| json!({
                    "at": rfc(a.at),
                    "local": local(task_zone, a.at),
                    "action": a.action,
                    "detail": a.detail,
                })).collect::<Vec<_>>(),
            }));
        }
        if tasks.is_empty() {
            let _ = writeln!(human, "  no task: no contact to dial");
        }
        let platform = match &online {
            Some((rt, store)) => {
                let valid_contacts = valid.as_ref().map_or(0, |s| s.valid);
                let (doc, text) = on_platform(rt, store.as_ref(), spec, valid_contacts, now)?;
                human.push_str(&text);
                Some(doc)
            }
            None => None,
        };
        human.push('\n');
        // The fields from before zone groups describe the one task a campaign has when it has exactly one.
        let one = match task_docs.as_slice() {
            [one] => Some(one),
            _ => None,
        };
        docs.push(json!({
            "platform": platform,
            "id": spec.id,
            "file": spec.source.display().to_string(),
            "user_task_id": one.map(|t| t["user_task_id"].clone()),
            "generation": spec.generation,
            "round": rounds_json,
            "paused": spec.paused,
            "zone": if contact_zones { "contact".to_string() } else { zone.to_string() },
            "contacts": contacts_json,
            "stretches": one.map_or(json!([]), |t| t["stretches"].clone()),
            "actions": one.map_or(json!([]), |t| t["actions"].clone()),
            "runs": runs.is_ok(),
            "runs_reason": runs.err(),
            "unzoned": audience.as_ref().map(|a| json!({ "count": a.unzoned, "lines": a.unzoned_lines })),
            "tasks": task_docs,
        }));
    }

    match args.format {
        OutputFormat::Human => {
            if !loaded.diagnostics.is_empty() {
                print!("{}", loaded.diagnostics.render_human(&loaded.sources));
            }
            let source = match &args.store {
                Some(url) => format!("the store {}", crate::open_store::redact(url)),
                None => "offline".to_string(),
            };
            println!(
                "plan at {} ({source}; nothing is sent to the platform)\n",
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
