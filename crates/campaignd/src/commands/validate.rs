//! `campaignd validate`: lint campaign files and their contacts; exit status 1 on any error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use campaign::chrono::{DateTime, Duration, DurationRound as _, Utc};
use campaign::{
    Audience, CampaignSpec, ContactCalendar, ContactIssue, ContactIssueKind, ContactLimits,
    ContactReader, Diagnostic, Diagnostics, GroupCount, MAX_ZONE_GROUPS, Rule, Severity, Zone,
    ZoneGroup,
};
use clock::Clock as _;
use serde_json::json;

/// Output format of `validate` and `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Compiler-style text for people.
    #[default]
    Human,
    /// One JSON document for machines.
    Json,
}

/// Arguments of `campaignd validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Campaign files to check; default: every `*.toml` in the campaigns directory.
    pub files: Vec<PathBuf>,
    /// The campaigns directory.
    #[arg(long, default_value = "campaigns", env = "CAMPAIGND_CAMPAIGNS__DIR")]
    pub campaigns_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// How many contact issues to list per campaign.
    #[arg(long, default_value_t = 20)]
    pub max_contact_issues: usize,
    /// Also fail (exit status 1) when a contact row is left out: a bad phone, a duplicate, an empty variable.
    /// Without it such rows are reported, left out, and do not fail.
    #[arg(long)]
    pub strict_contacts: bool,
    /// Check as if it were this instant (RFC 3339, e.g. 2027-01-11T17:00:00Z): the warnings that look ahead (no
    /// dialling time left, DST, legal hours) start there. Default: now.
    #[arg(long)]
    pub now: Option<String>,
}

/// The instant of `--now`, or the system clock's.
pub(crate) fn now_arg(now: Option<&str>) -> anyhow::Result<DateTime<Utc>> {
    Ok(match now {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| {
                format!("--now `{s}` is not an RFC 3339 instant such as 2026-11-23T08:00:00Z")
            })?
            .with_timezone(&Utc),
        None => clock::SystemClock.now(),
    })
}

/// The campaign files of `dir`, by the daemon's own rule (hidden and temporary files are not campaigns), sorted.
pub(crate) fn campaign_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    daemon::campaign_files(dir).with_context(|| {
        format!(
            "cannot list the campaigns directory {} (set --campaigns-dir)",
            dir.display()
        )
    })
}

/// The files' parsed campaigns, every diagnostic (errors and warnings, including the cross-file ones and the
/// warnings that depend on `now`) and the texts for quoting source lines.
pub(crate) struct Loaded {
    pub specs: Vec<CampaignSpec>,
    pub diagnostics: Diagnostics,
    pub sources: BTreeMap<PathBuf, String>,
}

/// The `[contacts]` limits of the configuration (file, then environment), which `validate` and `plan` check files
/// against exactly as the daemon does.
pub(crate) fn contact_limits() -> anyhow::Result<ContactLimits> {
    Ok(crate::config::Settings::from_cli()
        .context("cannot read the configuration, which holds the [contacts] limits")?
        .contacts)
}

pub(crate) fn load_all(
    files: &[PathBuf],
    limits: &ContactLimits,
    now: campaign::chrono::DateTime<campaign::chrono::Utc>,
) -> Loaded {
    let mut specs = Vec::new();
    let mut diagnostics = Diagnostics::default();
    let mut sources = BTreeMap::new();
    for file in files {
        if let Ok(text) = std::fs::read_to_string(file) {
            sources.insert(file.clone(), text);
        }
        match campaign::load_campaign_with_limits(file, limits) {
            Ok((spec, warnings)) => {
                diagnostics.extend(warnings);
                diagnostics.extend(campaign::warnings_at(&spec, now));
                specs.push(spec);
            }
            Err(errors) => diagnostics.extend(errors),
        }
    }
    diagnostics.extend(campaign::validate_set(&specs));
    Loaded {
        specs,
        diagnostics,
        sources,
    }
}

/// What reading a campaign's contacts found.
pub(crate) enum ContactsOutcome {
    Read(campaign::ContactSummary),
    Failed(String),
}

pub(crate) fn read_contacts(
    spec: &CampaignSpec,
    limits: &ContactLimits,
    keep: usize,
) -> ContactsOutcome {
    match ContactReader::open_with_limits(spec, limits) {
        Ok(reader) => ContactsOutcome::Read(reader.summarize(keep)),
        Err(e) => ContactsOutcome::Failed(e.to_string()),
    }
}

pub(crate) fn issue_json(issue: &ContactIssue) -> serde_json::Value {
    let kind = match &issue.kind {
        ContactIssueKind::InvalidPhone { .. } => "invalid_phone",
        ContactIssueKind::Duplicate { .. } => "duplicate",
        ContactIssueKind::MissingVariable { .. } => "missing_variable",
        ContactIssueKind::Malformed { .. } => "malformed",
        ContactIssueKind::ControlCharacter { .. } => "control_character",
        ContactIssueKind::BadTimezone { .. } => "bad_timezone",
        ContactIssueKind::BadRegion { .. } => "bad_region",
        _ => "other",
    };
    json!({ "line": issue.line, "kind": kind, "message": issue.kind.to_string() })
}

/// How far ahead `validate` compares what the windows ask for with what the legal calling hours leave.
const LEGAL_HOURS_LOOKAHEAD_DAYS: i64 = 7;
/// The comparison's step. Every UTC offset is a whole number of quarter hours and every window or rule edge is on a
/// half hour, so whether a calendar allows dialling cannot change inside a UTC quarter hour.
const SAMPLE_MINUTES: i64 = 15;
/// How many lines of contacts without a zone a `no-zone` warning names.
const NO_ZONE_LINES_SHOWN: usize = 5;
/// How many removed ranges of one day a `legal-hours` warning shows as its example.
const EXAMPLE_RANGES_SHOWN: usize = 3;
/// How many zones a `legal-hours` warning names per rule.
const RULE_ZONES_SHOWN: usize = 3;

/// What a campaign's contacts say about its calendar: contacts without a known zone (`no-zone`), too many zone
/// groups (`too-many-groups`), and hours the windows ask for that the legal calling hours remove over the next
/// [`LEGAL_HOURS_LOOKAHEAD_DAYS`] days from `now` (`legal-hours`, one per task).
pub(crate) fn audience_diagnostics(
    spec: &CampaignSpec,
    audience: &Audience,
    now: DateTime<Utc>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if audience.unzoned > 0 {
        out.push(no_zone(spec, audience));
    }
    if spec.schedule.contact_zones && audience.groups.len() > MAX_ZONE_GROUPS {
        out.push(too_many_groups(spec, audience.groups.len()));
        return out;
    }
    for (group, task) in audience.calendars(spec) {
        let asked = match group {
            Some(g) => ContactCalendar::for_group(
                &spec.schedule,
                &ZoneGroup::new(g.zones.clone(), Vec::new()),
            ),
            None => ContactCalendar::for_named_zone(&spec.schedule, std::iter::empty()),
        };
        if let Some(n) = narrowing(&asked, &task, now) {
            out.push(legal_hours(spec, audience, group, &task, &n));
        }
    }
    out
}

fn no_zone(spec: &CampaignSpec, audience: &Audience) -> Diagnostic {
    let shown: Vec<String> = audience
        .unzoned_lines
        .iter()
        .take(NO_ZONE_LINES_SHOWN)
        .map(u64::to_string)
        .collect();
    let more = if audience.unzoned > shown.len() as u64 {
        ", …"
    } else {
        ""
    };
    Diagnostic {
        severity: Severity::Warning,
        file: spec.contacts.file.clone(),
        line: audience.unzoned_lines.first().map_or(0, |l| *l as usize),
        column: 1,
        message: format!(
            "{} contact(s) of campaign `{}` have no known time zone and are not dialled (line(s) {}{more})",
            audience.unzoned,
            campaign::escape_input(&spec.id),
            shown.join(", ")
        ),
        help: "fill the CSV's `timezone` column (an IANA name such as America/Chicago) for those rows, or set \
               `fallback_timezone` in [schedule]"
            .to_string(),
        code: "no-zone".into(),
    }
}

fn too_many_groups(spec: &CampaignSpec, groups: usize) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: spec.source.clone(),
        line: spec.schedule.at.line,
        column: spec.schedule.at.column,
        message: format!(
            "the contacts of campaign `{}` fall into {groups} zone groups, more than the {MAX_ZONE_GROUPS} a \
             campaign may have (each group is a platform task of its own)",
            campaign::escape_input(&spec.id)
        ),
        help: "split the contacts over several campaign files (by region or time zone), or name one `timezone`: \
               one task then dials everyone, narrowed by every contact's legal hours"
            .to_string(),
        code: "too-many-groups".into(),
    }
}

/// Where a task's calendar allows less than its windows ask for.
struct Narrowing {
    /// Quarter hours the windows ask for.
    asked: u32,
    /// Of those, the quarter hours the legal rules remove.
    removed: u32,
    /// The removed ranges `[from, until)` that start on the task-local date of the first one.
    first_day: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Each rule, with a zone it is read in, that forbids some of the removed time.
    by: Vec<(Zone, &'static Rule)>,
}

/// Compares two calendars of the same windows over the look-ahead: `asked` without rules, `task` with them.
fn narrowing(
    asked: &ContactCalendar<'_>,
    task: &ContactCalendar<'_>,
    now: DateTime<Utc>,
) -> Option<Narrowing> {
    let step = Duration::minutes(SAMPLE_MINUTES);
    let from = now.duration_trunc(step).unwrap_or(now);
    let samples = LEGAL_HOURS_LOOKAHEAD_DAYS * 24 * 60 / SAMPLE_MINUTES;
    let mut n = Narrowing {
        asked: 0,
        removed: 0,
        first_day: Vec::new(),
        by: Vec::new(),
    };
    let mut runs: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut open_run: Option<DateTime<Utc>> = None;
    // One sample past the end closes a range still open there.
    for i in 0..=samples {
        let t = from + step * i32::try_from(i).unwrap_or(i32::MAX);
        let is_asked = i < samples && asked.allows(t);
        n.asked += u32::from(is_asked);
        if is_asked && !task.allows(t) {
            n.removed += 1;
            open_run.get_or_insert(t);
            for (z, r) in task.rules() {
                if !rule_allows(z, r, t)
                    && !n.by.iter().any(|(bz, br)| bz == z && br.name == r.name)
                {
                    n.by.push((*z, r));
                }
            }
        } else if let Some(start) = open_run.take() {
            runs.push((start, t));
        }
    }
    let first = runs.first()?.0;
    let zone = task.task_zone();
    let day = zone.local(first).date();
    n.first_day = runs
        .into_iter()
        .filter(|(s, _)| zone.local(*s).date() == day)
        .collect();
    Some(n)
}

/// Whether `rule`, read in `zone`, allows the minute at `at`.
fn rule_allows(zone: &Zone, rule: &Rule, at: DateTime<Utc>) -> bool {
    use campaign::chrono::Timelike as _;
    let local = zone.local(at);
    let slot = (local.hour() * 60 + local.minute()) / 30;
    rule.day_mask(local.date()) & (1 << slot) != 0
}

fn legal_hours(
    spec: &CampaignSpec,
    audience: &Audience,
    group: Option<&ZoneGroup>,
    task: &ContactCalendar<'_>,
    n: &Narrowing,
) -> Diagnostic {
    // The contacts whose rules removed something: the group's, or (one named zone) those of every group with a
    // forbidding rule in one of its zones.
    let affected: Vec<&GroupCount> = audience
        .groups
        .iter()
        .filter(|g| match group {
            Some(own) => &g.group == own,
            None => n.by.iter().any(|(z, r)| {
                g.group.zones.contains(z) && g.group.rules.iter().any(|name| name == &r.name)
            }),
        })
        .collect();
    let contacts: u64 = affected.iter().map(|g| g.contacts).sum();
    let first_line = affected.iter().map(|g| g.first_line).min();
    let csv = spec.contacts.file.display();
    let whose = match (group, first_line) {
        (Some(g), Some(l)) => format!(
            "the {contacts} contact(s) of zone group {} (first at {csv}:{l})",
            g.label()
        ),
        (None, Some(l)) => format!("{contacts} contact(s) (first at {csv}:{l})"),
        (_, None) => "its contacts".to_string(),
    };
    let zone = task.task_zone();
    let example = n
        .first_day
        .first()
        .map(|(from, _)| {
            let ranges: Vec<String> = n
                .first_day
                .iter()
                .take(EXAMPLE_RANGES_SHOWN)
                .map(|(a, b)| {
                    format!(
                        "{}-{}",
                        zone.local(*a).format("%H:%M"),
                        zone.local(*b).format("%H:%M")
                    )
                })
                .collect();
            format!(
                "{} {} ({zone})",
                zone.local(*from).format("%a %Y-%m-%d"),
                ranges.join(", ")
            )
        })
        .unwrap_or_default();
    Diagnostic {
        severity: Severity::Warning,
        file: spec.source.clone(),
        line: spec.schedule.windows.first().map_or(spec.schedule.at.line, |w| w.at.line),
        column: spec.schedule.windows.first().map_or(spec.schedule.at.column, |w| w.at.column),
        message: format!(
            "in the next {LEGAL_HOURS_LOOKAHEAD_DAYS} days the legal calling hours remove {} of the {} the windows \
             of campaign `{}` ask for, for {whose}: e.g. {example}; by {}",
            duration(n.removed),
            duration(n.asked),
            campaign::escape_input(&spec.id),
            rules_text(&n.by)
        ),
        help: "those hours are never dialled; to make the file say what happens, narrow `windows` to the legal \
               hours (`campaignd plan` shows the narrowed settings)"
            .to_string(),
        code: "legal-hours".into(),
    }
}

/// A number of quarter hours as `13 h 30 min`.
fn duration(quarters: u32) -> String {
    let (h, m) = (quarters / 4, quarters % 4 * 15);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The rules with their sources and the zones they are read in: `us-fl (Fla. Stat. 501.616(6), 2021; checked
/// 2026-12-07) in America/New_York`.
pub(crate) fn rules_text(by: &[(Zone, &'static Rule)]) -> String {
    let mut names: Vec<&str> = by.iter().map(|(_, r)| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let parts: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let rule = by.iter().find(|(_, r)| r.name == *name)?.1;
            let mut zones: Vec<String> = by
                .iter()
                .filter(|(_, r)| r.name == *name)
                .map(|(z, _)| z.to_string())
                .collect();
            zones.sort();
            let more = zones.len().saturating_sub(RULE_ZONES_SHOWN);
            let mut shown = zones
                .into_iter()
                .take(RULE_ZONES_SHOWN)
                .collect::<Vec<_>>()
                .join(", ");
            if more > 0 {
                shown.push_str(&format!(" and {more} more zone(s)"));
            }
            Some(format!(
                "{} ({}; checked {}) in {shown}",
                rule.name, rule.source, rule.checked
            ))
        })
        .collect();
    parts.join("; ")
}

/// A campaign's zone groups and its contacts without a zone, for `--format json`.
pub(crate) fn audience_json(a: &Audience) -> serde_json::Value {
    json!({
        "groups": a.groups.iter().map(|g| json!({
            "label": g.group.label(),
            "zones": g.group.zones.iter().map(Zone::to_string).collect::<Vec<_>>(),
            "rules": g.group.rules,
            "contacts": g.contacts,
            "first_line": g.first_line,
        })).collect::<Vec<_>>(),
        "unzoned": a.unzoned,
        "unzoned_lines": a.unzoned_lines,
    })
}

fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::to_value(d).unwrap_or(serde_json::Value::Null)
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let files = if args.files.is_empty() {
        campaign_files(&args.campaigns_dir)?
    } else {
        args.files.clone()
    };
    let now = now_arg(args.now.as_deref())?;
    let limits = contact_limits()?;
    let mut loaded = load_all(&files, &limits, now);

    let mut campaigns = Vec::new();
    let mut human = String::new();
    let mut contact_failures = 0u64;
    let mut audience_found = Vec::new();
    for spec in &loaded.specs {
        let csv = spec.contacts.file.display().to_string();
        // A CSV that cannot be read is reported below, from the summary.
        let audience = Audience::read(spec, &limits).ok();
        if let Some(a) = &audience {
            audience_found.extend(audience_diagnostics(spec, a, now));
        }
        let audience_json = audience.as_ref().map(audience_json);
        match read_contacts(spec, &limits, args.max_contact_issues) {
            ContactsOutcome::Read(s) => {
                contact_failures += s.invalid + s.duplicate;
                let listed = s.issues.len() as u64;
                let more = (s.invalid + s.duplicate).saturating_sub(listed);
                human.push_str(&format!(
                    "{}: {} contacts valid, {} invalid, {} duplicate; {} batch(es) of up to {}\n",
                    spec.id,
                    s.valid,
                    s.invalid,
                    s.duplicate,
                    s.batches(spec.contacts.batch_size),
                    spec.contacts.batch_size
                ));
                for issue in &s.issues {
                    human.push_str(&format!("  {csv}:{}: {}\n", issue.line, issue.kind));
                }
                if more > 0 {
                    human.push_str(&format!("  … and {more} more contact issue(s)\n"));
                }
                campaigns.push(json!({
                    "id": spec.id,
                    "file": spec.source.display().to_string(),
                    "contacts": {
                        "file": csv,
                        "valid": s.valid,
                        "invalid": s.invalid,
                        "duplicate": s.duplicate,
                        "batches": s.batches(spec.contacts.batch_size),
                        "issues": s.issues.iter().map(issue_json).collect::<Vec<_>>(),
                        "more_issues": more,
                    },
                    "audience": audience_json,
                }));
            }
            ContactsOutcome::Failed(e) => {
                contact_failures += 1;
                human.push_str(&format!("{}: contacts not read: {e}\n", spec.id));
                campaigns.push(json!({
                    "id": spec.id,
                    "file": spec.source.display().to_string(),
                    "contacts": { "file": csv, "error": e },
                    "audience": audience_json,
                }));
            }
        }
    }
    loaded.diagnostics.extend(audience_found);

    let errors = loaded.diagnostics.error_count();
    let warnings = loaded.diagnostics.warning_count();
    let failed = errors > 0 || (args.strict_contacts && contact_failures > 0);
    match args.format {
        OutputFormat::Human => {
            print!("{}", loaded.diagnostics.render_human(&loaded.sources));
            print!("{human}");
            println!(
                "{} file(s) checked: {errors} error(s), {warnings} warning(s){}",
                files.len(),
                if errors == 0 {
                    ""
                } else {
                    "; fix the errors above, then run `campaignd validate` again"
                }
            );
        }
        OutputFormat::Json => {
            let doc = json!({
                "version": 1,
                "ok": !failed,
                "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                "errors": errors,
                "warnings": warnings,
                "diagnostics": loaded.diagnostics.0.iter().map(diagnostic_json).collect::<Vec<_>>(),
                "campaigns": campaigns,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).context("cannot encode the JSON output")?
            );
        }
    }
    if failed && errors == 0 && args.format == OutputFormat::Human {
        println!(
            "--strict-contacts: {contact_failures} contact row(s) left out; fix the CSV rows listed above"
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
