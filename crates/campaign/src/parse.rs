//! Reading a campaign file into a [`CampaignSpec`], with a diagnostic (file, line, column, fix) for every problem.
//!
//! The TOML is parsed into toml's spanned document tree and walked by hand, so every unknown key, wrong type and
//! bad value can point at its exact place.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::calendar::{
    DAY_MINUTES, HourRange, Location, Schedule, WindowRule, Zone, hhmm, offset_changes,
    parse_offset, stretch_at,
};
use crate::contacts::{CsvProblem, inspect_csv};
use crate::contacts_file::{lexical_problem, read_regular_file};
use crate::diagnostics::{Diagnostic, Diagnostics, Severity, closest, escape_input, line_col};
use crate::limits::{ContactLimits, MAX_CAMPAIGN_FILE_BYTES};
use crate::repeat::{MAX_REPEAT_GENERATION, NextRound, Repeat};
use crate::retry::{MAX_ATTEMPTS_LIMIT, RetryClass, RetryPolicy, RetryRule};
use crate::spec::{
    CampaignSpec, CapRule, ContactsSpec, Dispatch, Features, ManualCall, OptOut, RuleChoice,
    SmsRule,
};

type Val<'i> = Spanned<DeValue<'i>>;

/// The largest batch we send until the platform's own limit is known.
pub const MAX_BATCH_SIZE: u32 = 1000;

const TOP_KEYS: &[&str] = &[
    "id",
    "scene_id",
    "task_name",
    "strategy",
    "robots",
    "max_ring_seconds",
    "route_id",
    "paused",
    "generation",
    "schedule",
    "features",
    "sms",
    "manual_call",
    "contacts",
    "lifecycle",
    "opt_out",
    "caps",
    "retry",
];
const RETRY_RULE_KEYS: &[&str] = &["after", "max_attempts"];
const OPT_OUT_KEYS: &[&str] = &["intents"];
const CAPS_KEYS: &[&str] = &["attempts"];
const CAP_KEYS: &[&str] = &["within", "max"];
const SCHEDULE_KEYS: &[&str] = &[
    "repeat",
    "on_next_round",
    "timezone",
    "fallback_timezone",
    "utc_offset",
    "rules",
    "start",
    "end",
    "holidays",
    "windows",
];
const WINDOW_KEYS: &[&str] = &["days", "hours"];
const FEATURE_KEYS: &[&str] = &["task_keep", "round_redial", "whole_tts", "phone_encrypt"];
const SMS_KEYS: &[&str] = &["sms_id", "intent_ids", "intent_names"];
const MANUAL_KEYS: &[&str] = &["agent_group", "dispatch", "rate"];
const CONTACT_KEYS: &[&str] = &["file", "default_country", "variables", "batch_size"];
const LIFECYCLE_KEYS: &[&str] = &["delete_undialled_on_remove"];
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_FULL_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Reads a campaign file and checks it, including the CSV header (not the rows). Warnings are dropped; see
/// [`load_campaign_with_warnings`].
pub fn load_campaign(path: &Path) -> Result<CampaignSpec, Diagnostics> {
    load_campaign_with_warnings(path).map(|(spec, _)| spec)
}

/// Like [`load_campaign`], also returning the warnings that do not depend on the current time.
pub fn load_campaign_with_warnings(
    path: &Path,
) -> Result<(CampaignSpec, Vec<Diagnostic>), Diagnostics> {
    load_campaign_with_limits(path, &ContactLimits::default())
}

/// Like [`load_campaign_with_warnings`], checking the contacts file against `limits`: it must be a regular file
/// inside the campaign file's directory, of at most `max_file_bytes`, with a readable header and no quote left open.
pub fn load_campaign_with_limits(
    path: &Path,
    limits: &ContactLimits,
) -> Result<(CampaignSpec, Vec<Diagnostic>), Diagnostics> {
    let whole_file = |message: String, help: &str| Diagnostic {
        severity: Severity::Error,
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
        help: help.to_string(),
        code: "read".into(),
    };
    let bytes = read_regular_file(path, MAX_CAMPAIGN_FILE_BYTES).map_err(|reason| {
        Diagnostics(vec![whole_file(
            format!("cannot read campaign file: {reason}"),
            "check that the campaign file exists and is a readable, regular file of at most 1 MiB",
        )])
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Diagnostics(vec![whole_file(
            format!("campaign file {} is not UTF-8: {e}", shown(path)),
            "save the file as UTF-8",
        )])
    })?;
    parse_inner(path, &text, Some(limits))
}

/// A path as messages show it (escaped and cut like any quoted input).
fn shown(path: &Path) -> String {
    escape_input(&path.display().to_string())
}

/// Parses and checks a campaign file held in memory. The CSV is not opened. Returns the spec and its warnings, or
/// every error found.
pub fn parse_campaign(
    source_path: &Path,
    text: &str,
) -> Result<(CampaignSpec, Vec<Diagnostic>), Diagnostics> {
    parse_inner(source_path, text, None)
}

/// Rules across files: the same campaign id may not appear in two files. Reports every file after the first.
pub fn validate_set(specs: &[CampaignSpec]) -> Diagnostics {
    let mut first: BTreeMap<&str, &CampaignSpec> = BTreeMap::new();
    let mut out = Diagnostics::default();
    for spec in specs {
        if let Some(prev) = first.get(spec.id.as_str()) {
            out.0.push(Diagnostic {
                severity: Severity::Error,
                file: spec.source.clone(),
                line: spec.id_at.line,
                column: spec.id_at.column,
                message: format!("campaign id `{}` is also used by {}", escape_input(&spec.id), shown(&prev.source)),
                help: "give one of them a different `id` (or rename the file: the file stem is the default id)"
                    .to_string(),
                code: "duplicate-id".into(),
            });
        } else {
            first.insert(&spec.id, spec);
        }
    }
    out
}

/// Warnings that depend on the current time: a calendar with no dialling time left, and (for campaigns without both
/// a start and an end) windows that cross a DST change in the coming year.
pub fn warnings_at(spec: &CampaignSpec, now: DateTime<Utc>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let sched = &spec.schedule;
    // With `timezone = "contact"` the calendar is read in the contacts' zones: time is left when any task's calendar
    // has some (unknown until the contacts are read, so then no warning); the DST warnings concern one named zone.
    let time_left = if sched.contact_zones {
        spec.audience.is_none()
            || spec
                .task_specs()
                .iter()
                .any(|t| t.calendar().stretch_at(now).is_some())
    } else {
        stretch_at(sched, now).is_some()
    };
    if !time_left {
        let reason = match sched.end {
            Some(end) if sched.contact_zones => format!(
                "it ends at {} in its contacts' own zones, or nothing is left before then",
                end.format("%Y-%m-%dT%H:%M")
            ),
            Some(end) if sched.end_utc().is_some_and(|e| e <= now) => {
                format!(
                    "it ended at {} ({})",
                    end.format("%Y-%m-%dT%H:%M"),
                    sched.zone
                )
            }
            _ => "every remaining day is a holiday or outside the windows".to_string(),
        };
        out.push(Diagnostic {
            severity: Severity::Warning,
            file: spec.source.clone(),
            line: sched.at.line,
            column: sched.at.column,
            message: format!("campaign `{}` has no dialling time left: {reason}", escape_input(&spec.id)),
            help: "move `end` later or change the windows, or remove the file when the campaign is over".to_string(),
            code: "no-time-left".into(),
        });
    }
    if !sched.contact_zones && (sched.start.is_none() || sched.end.is_none()) {
        let from = sched.start_utc().map_or(now, |s| s.max(now));
        let to = sched.end_utc().unwrap_or(from + Duration::days(366));
        if from < to {
            out.extend(dst_warnings(&spec.source, sched, from, to));
        }
    }
    out
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(Diagnostic::error_at(
            code, self.file, self.text, span.start, message, help,
        ));
    }

    fn warn(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(
            Diagnostic::error_at(code, self.file, self.text, span.start, message, help).warning(),
        );
    }

    fn location(&self, span: &Range<usize>) -> Location {
        let (line, column) = line_col(self.text, span.start);
        Location { line, column }
    }

    fn check_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], section: &str) {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let help = match closest(name, allowed.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "remove it; the keys allowed in {section} are: {}",
                    allowed.join(", ")
                ),
            };
            self.error(
                "unknown-key",
                key.span(),
                format!("unknown key `{}` in {section}", escape_input(name)),
                help,
            );
        }
    }

    fn wrong_type(&mut self, v: &Val<'_>, key: &str, expected: &str, example: &str) {
        self.error(
            "wrong-type",
            v.span(),
            format!(
                "`{key}` must be {expected}, found {}",
                v.get_ref().type_str()
            ),
            format!("write it like `{key} = {example}`"),
        );
    }

    fn string(&mut self, v: &Val<'_>, key: &str, example: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(v, key, "a string", example);
                None
            }
        }
    }

    fn bool(&mut self, v: &Val<'_>, key: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(v, key, "true or false", "true");
                None
            }
        }
    }

    fn int(&mut self, v: &Val<'_>, key: &str, example: &str) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(
                        "out-of-range",
                        v.span(),
                        format!("`{key}` is too large"),
                        format!("use e.g. {example}"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(v, key, "an integer", example);
                None
            }
        }
    }

    /// An integer in `lo..=hi`, with `what` explaining the range.
    fn u32_in(&mut self, v: &Val<'_>, key: &str, lo: i64, hi: i64, example: &str) -> Option<u32> {
        let n = self.int(v, key, example)?;
        if n < lo || n > hi {
            let range = if hi == i64::from(u32::MAX) {
                format!("at least {lo}")
            } else {
                format!("{lo} to {hi}")
            };
            self.error(
                "out-of-range",
                v.span(),
                format!("`{key}` is {n}, but it must be {range}"),
                format!("set `{key}` to {range}, e.g. `{key} = {example}`"),
            );
            return None;
        }
        u32::try_from(n).ok()
    }

    fn float(&mut self, v: &Val<'_>, key: &str, example: &str) -> Option<f64> {
        match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
            DeValue::Integer(_) => self.int(v, key, example).map(|i| i as f64),
            _ => {
                self.wrong_type(v, key, "a number", example);
                None
            }
        }
    }

    fn table<'t, 'i>(
        &mut self,
        v: &'t Val<'i>,
        key: &str,
        example: &str,
    ) -> Option<&'t DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(v, key, "a table", example);
                None
            }
        }
    }

    fn array<'t, 'i>(&mut self, v: &'t Val<'i>, key: &str, example: &str) -> Option<&'t [Val<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(v, key, "an array", example);
                None
            }
        }
    }

    fn strings(
        &mut self,
        v: &Val<'_>,
        key: &str,
        example: &str,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let items = self.array(v, key, example)?;
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => self.wrong_type(item, key, "an array of strings", example),
            }
        }
        Some(out)
    }

    fn missing(&mut self, span: Range<usize>, key: &str, section: &str, example: &str) {
        self.error(
            "missing-key",
            span,
            format!("missing `{key}` in {section}"),
            format!("add `{key} = {example}` to {section}"),
        );
    }
}

fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Val<'i>> {
    table.get(key)
}

/// The span of `key` itself in `table` (for errors about the whole section).
fn key_span(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(k, _)| k.span())
}

/// Parses and checks `text`; with `csv_limits`, also the contacts file under those limits.
fn parse_inner(
    path: &Path,
    text: &str,
    csv_limits: Option<&ContactLimits>,
) -> Result<(CampaignSpec, Vec<Diagnostic>), Diagnostics> {
    let mut cx = Ctx {
        file: path,
        text,
        diags: Vec::new(),
    };
    let root = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            cx.error(
                "toml-syntax",
                at..at,
                format!(
                    "this is not valid TOML: {}",
                    escape_input(e.message().trim())
                ),
                "fix the TOML syntax at the marked place",
            );
            return Err(Diagnostics(cx.diags));
        }
    };
    let root = root.get_ref();
    let top = 0..0;
    cx.check_keys(root, TOP_KEYS, "the campaign file");

    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    let (id, id_at) = match get(root, "id") {
        Some(v) => (
            cx.string(v, "id", "\"spring-renewals\"")
                .unwrap_or_default(),
            v.span(),
        ),
        None => (stem, 0..0),
    };
    let id_valid = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !id_valid {
        cx.error(
            "bad-id",
            id_at.clone(),
            format!(
                "campaign id `{}` must be 1-64 letters, digits, `-`, `_` or `.`",
                escape_input(&id)
            ),
            "set `id = \"spring-renewals\"` or rename the file",
        );
    }

    let scene_id = match get(root, "scene_id") {
        Some(v) => {
            let s = cx.string(v, "scene_id", "\"SC-1029\"");
            if s.as_deref().is_some_and(|s| s.trim().is_empty()) {
                cx.error(
                    "empty-value",
                    v.span(),
                    "`scene_id` is empty",
                    "copy the template's sceneID from the vendor console",
                );
            }
            s.unwrap_or_default()
        }
        None => {
            cx.missing(top.clone(), "scene_id", "the campaign file", "\"SC-1029\"");
            String::new()
        }
    };
    let opt_string = |cx: &mut Ctx<'_>, key: &str, example: &str| {
        get(root, key).and_then(|v| cx.string(v, key, example))
    };
    let task_name =
        opt_string(&mut cx, "task_name", "\"Spring renewals\"").unwrap_or_else(|| id.clone());
    let strategy = opt_string(&mut cx, "strategy", "\"\"").unwrap_or_default();
    let route_id = opt_string(&mut cx, "route_id", "\"\"").unwrap_or_default();
    let robots = get(root, "robots").map_or(Some(1), |v| {
        cx.u32_in(v, "robots", 1, i64::from(u32::MAX), "20")
    });
    let max_ring_seconds = get(root, "max_ring_seconds")
        .map_or(Some(40), |v| cx.u32_in(v, "max_ring_seconds", 1, 600, "40"));
    let generation = get(root, "generation").map_or(Some(1), |v| {
        cx.u32_in(v, "generation", 1, i64::from(u32::MAX), "1")
    });
    let paused = get(root, "paused").map_or(Some(false), |v| cx.bool(v, "paused"));

    let schedule = match get(root, "schedule") {
        Some(v) => {
            let at = cx.location(&key_span(root, "schedule").unwrap_or(v.span()));
            cx.table(v, "schedule", "{ timezone = \"UTC\", windows = [...] }")
                .and_then(|t| {
                    parse_schedule(
                        &mut cx,
                        t,
                        key_span(root, "schedule").unwrap_or(v.span()),
                        at,
                    )
                })
        }
        None => {
            cx.error(
                "missing-key",
                top.clone(),
                "missing [schedule]",
                "add a [schedule] table with `timezone` and `windows`",
            );
            None
        }
    };

    let repeat = match (get(root, "schedule").map(|v| v.get_ref()), &schedule) {
        (Some(DeValue::Table(t)), Some(schedule)) => {
            parse_repeat(&mut cx, t, schedule, generation.unwrap_or(1))
        }
        _ => None,
    };
    let rules = match get(root, "schedule").map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => parse_rules(&mut cx, t),
        _ => RuleChoice::Auto,
    };

    let features = get(root, "features")
        .and_then(|v| cx.table(v, "features", "{ whole_tts = true }"))
        .map(|t| {
            cx.check_keys(t, FEATURE_KEYS, "[features]");
            let mut flag = |key: &str, default: bool| {
                get(t, key).and_then(|v| cx.bool(v, key)).unwrap_or(default)
            };
            Features {
                task_keep: flag("task_keep", false),
                round_redial: flag("round_redial", false),
                whole_tts: flag("whole_tts", true),
                phone_encrypt: flag("phone_encrypt", false),
            }
        })
        .unwrap_or(Features {
            task_keep: false,
            round_redial: false,
            whole_tts: true,
            phone_encrypt: false,
        });

    let sms = match get(root, "sms") {
        None => Vec::new(),
        Some(v) => parse_sms(&mut cx, v),
    };
    let manual_call = get(root, "manual_call").and_then(|v| parse_manual_call(&mut cx, v));
    let caps = get(root, "caps")
        .and_then(|v| cx.table(v, "caps", "{ attempts = [{ within = \"24h\", max = 2 }] }"))
        .map(|t| {
            cx.check_keys(t, CAPS_KEYS, "[caps]");
            parse_caps(&mut cx, get(t, "attempts"))
        })
        .unwrap_or_default();
    let retry = get(root, "retry")
        .and_then(|v| cx.table(v, "retry", RETRY_EXAMPLE))
        .map(|t| parse_retry(&mut cx, t))
        .unwrap_or_default();
    let opt_out = get(root, "opt_out")
        .and_then(|v| cx.table(v, "opt_out", "{ intents = [\"Do not call\"] }"))
        .map(|t| {
            cx.check_keys(t, OPT_OUT_KEYS, "[opt_out]");
            let intents = get(t, "intents")
                .and_then(|v| cx.strings(v, "intents", "[\"Do not call\"]"))
                .unwrap_or_default();
            for (name, span) in &intents {
                if name.trim().is_empty() {
                    cx.error(
                        "empty-intent",
                        span.clone(),
                        "an empty intent in [opt_out] intents would match nothing",
                        "write the intent's name or ID as the platform reports it, e.g. \"Do not call\"",
                    );
                }
            }
            OptOut {
                intents: intents
                    .into_iter()
                    .map(|(s, _)| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            }
        })
        .unwrap_or_default();
    let delete_undialled_on_remove = get(root, "lifecycle")
        .and_then(|v| cx.table(v, "lifecycle", "{ delete_undialled_on_remove = false }"))
        .and_then(|t| {
            cx.check_keys(t, LIFECYCLE_KEYS, "[lifecycle]");
            get(t, "delete_undialled_on_remove")
                .and_then(|v| cx.bool(v, "delete_undialled_on_remove"))
        })
        .unwrap_or(false);

    let contacts = match get(root, "contacts") {
        Some(v) => cx
            .table(v, "contacts", "{ file = \"contacts.csv\" }")
            .and_then(|t| {
                parse_contacts(
                    &mut cx,
                    t,
                    key_span(root, "contacts").unwrap_or(v.span()),
                    csv_limits,
                )
            }),
        None => {
            cx.error(
                "missing-key",
                top.clone(),
                "missing [contacts]",
                "add a [contacts] table with `file = \"contacts.csv\"`",
            );
            None
        }
    };

    if let (Some(c), false) = (&contacts, features.whole_tts)
        && !c.variables.is_empty()
    {
        let span = get(root, "features")
            .and_then(|v| match v.get_ref() {
                DeValue::Table(t) => get(t, "whole_tts").map(|w| w.span()),
                _ => None,
            })
            .unwrap_or(0..0);
        cx.error(
            "whole-tts",
            span,
            "`whole_tts = false` but the template has variables; the platform requires wholeTTS with variables",
            "set `whole_tts = true` (or leave it out: it defaults to true)",
        );
    }

    let mut errors: Vec<Diagnostic> = cx.diags.iter().filter(|d| d.is_error()).cloned().collect();
    if !errors.is_empty() {
        errors.sort_by_key(|d| (d.line, d.column));
        return Err(Diagnostics(errors));
    }
    let (
        Some(schedule),
        Some(contacts),
        Some(robots),
        Some(max_ring_seconds),
        Some(generation),
        Some(paused),
    ) = (
        schedule,
        contacts,
        robots,
        max_ring_seconds,
        generation,
        paused,
    )
    else {
        // Every `None` above pushed an error; this is unreachable in practice but never silently accepted.
        return Err(Diagnostics(vec![Diagnostic::error_at(
            "invalid",
            path,
            text,
            0,
            "the campaign file is incomplete",
            "fix the errors above",
        )]));
    };

    let mut warnings: Vec<Diagnostic> = cx.diags.into_iter().filter(|d| !d.is_error()).collect();
    if let (Some(from), Some(to)) = (schedule.start_utc(), schedule.end_utc()) {
        let to = to.min(from + Duration::days(5 * 366));
        warnings.extend(dst_warnings(path, &schedule, from, to));
    }
    warnings.sort_by_key(|d| (d.line, d.column));

    let (line, column) = line_col(text, id_at.start);
    let spec = CampaignSpec {
        id,
        scene_id,
        task_name,
        strategy,
        robots,
        max_ring_seconds,
        route_id,
        paused,
        generation,
        schedule,
        features,
        sms,
        manual_call,
        contacts,
        opt_out,
        caps,
        retry,
        rules,
        repeat,
        audience: None,
        delete_undialled_on_remove,
        source: path.to_path_buf(),
        content_hash: hex::encode(Sha256::digest(text.as_bytes())),
        id_at: Location { line, column },
    };
    Ok((spec, warnings))
}

fn parse_sms(cx: &mut Ctx<'_>, v: &Val<'_>) -> Vec<SmsRule> {
    let example = "[{ sms_id = \"SMS-7\", intent_ids = [\"I1\"] }]";
    let Some(items) = cx.array(v, "sms", example) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(t) = cx.table(item, "sms", example) else {
            continue;
        };
        cx.check_keys(t, SMS_KEYS, "[[sms]]");
        let sms_id = match get(t, "sms_id") {
            Some(v) => cx.string(v, "sms_id", "\"SMS-7\"").unwrap_or_default(),
            None => {
                cx.missing(item.span(), "sms_id", "[[sms]]", "\"SMS-7\"");
                String::new()
            }
        };
        let list = |cx: &mut Ctx<'_>, key: &str| {
            get(t, key)
                .and_then(|v| cx.strings(v, key, "[\"I1\"]"))
                .map(|l| l.into_iter().map(|(s, _)| s).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let intent_ids = list(cx, "intent_ids");
        let intent_names = list(cx, "intent_names");
        if intent_ids.is_empty() && intent_names.is_empty() {
            cx.error(
                "sms-no-intent",
                item.span(),
                "this [[sms]] rule has no intents, so it would never send",
                "add `intent_ids = [\"I1\"]` or `intent_names = [\"...\"]`",
            );
        }
        out.push(SmsRule {
            sms_id,
            intent_ids,
            intent_names,
        });
    }
    out
}

fn parse_caps(cx: &mut Ctx<'_>, v: Option<&Val<'_>>) -> Vec<CapRule> {
    let example = "[{ within = \"24h\", max = 2 }]";
    let Some(items) = v.and_then(|v| cx.array(v, "attempts", example)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(t) = cx.table(item, "attempts", example) else {
            continue;
        };
        cx.check_keys(t, CAP_KEYS, "a cap");
        let within = match get(t, "within") {
            Some(w) => match cx.string(w, "within", "\"24h\"") {
                Some(text) => match CapRule::parse_within(&text) {
                    Ok(secs) => Some(secs),
                    Err(why) => {
                        cx.error(
                            "bad-cap",
                            w.span(),
                            &why,
                            "write a window like \"24h\" or \"30d\"",
                        );
                        None
                    }
                },
                None => None,
            },
            None => {
                cx.missing(item.span(), "within", "a cap", "\"24h\"");
                None
            }
        };
        let max = match get(t, "max") {
            Some(m) => cx.u32_in(m, "max", 1, 1000, "2"),
            None => {
                cx.missing(item.span(), "max", "a cap", "2");
                None
            }
        };
        if let (Some(within_secs), Some(max)) = (within, max) {
            out.push(CapRule { within_secs, max });
        }
    }
    out
}

/// `[schedule] repeat` and `on_next_round`: a five-field cron expression that occurs before the campaign's end, on a
/// campaign with a `start` to count its rounds from.
fn parse_repeat(
    cx: &mut Ctx<'_>,
    t: &DeTable<'_>,
    schedule: &Schedule,
    generation: u32,
) -> Option<Repeat> {
    let on_next_round = match get(t, "on_next_round") {
        None => NextRound::Complete,
        Some(v) => match cx.string(v, "on_next_round", "\"complete\"")?.as_str() {
            "complete" => NextRound::Complete,
            "keep" => NextRound::Keep,
            other => {
                cx.error(
                    "bad-value",
                    v.span(),
                    format!("unknown on_next_round `{}`", escape_input(other)),
                    "write \"complete\" (the next round completes this one) or \"keep\" (this one runs out first)",
                );
                return None;
            }
        },
    };
    let Some(v) = get(t, "repeat") else {
        if let Some(n) = get(t, "on_next_round") {
            cx.warn(
                "no-repeat",
                n.span(),
                "`on_next_round` does nothing without `repeat`",
                "add `repeat = \"0 9 1 * *\"` (a cron expression), or remove `on_next_round`",
            );
        }
        return None;
    };
    if schedule.contact_zones {
        cx.error(
            "repeat-contact-zone",
            v.span(),
            "`repeat` cannot be used with `timezone = \"contact\"`: its cron expression needs one named time zone to be \
             read in, and each contact has its own",
            "set `timezone` to the zone the rounds should start in (e.g. \"America/New_York\"), or remove `repeat` and \
             bump `generation` for each new round",
        );
        return None;
    }
    let cron = cx.string(v, "repeat", "\"0 9 1 * *\"")?;
    if let Err(why) = crate::repeat::parse_cron(&cron) {
        cx.error(
            "bad-repeat",
            v.span(),
            format!("`{}` is not a cron expression: {}", escape_input(&cron), escape_input(&why)),
            "write five fields, minute hour day-of-month month day-of-week, read in the campaign's zone, e.g. \"0 9 1 * *\" (09:00 on the 1st of each month)",
        );
        return None;
    }
    let Some(start) = schedule.start_utc() else {
        cx.error(
            "repeat-start",
            v.span(),
            "`repeat` needs `start` in [schedule]: rounds are counted from it",
            "add `start = 2026-01-01T00:00:00` (local time) to [schedule]",
        );
        return None;
    };
    if generation > MAX_REPEAT_GENERATION {
        cx.error(
            "out-of-range",
            v.span(),
            format!("`generation = {generation}` is too large for a repeating campaign (at most {MAX_REPEAT_GENERATION})"),
            "each round runs as generation × 100,000 + its number; use a smaller generation",
        );
        return None;
    }
    let repeat = Repeat {
        cron,
        on_next_round,
    };
    if repeat
        .occurrences(&schedule.zone, start, schedule.end_utc(), 1)
        .is_empty()
    {
        cx.error(
            "repeat-never",
            v.span(),
            "`repeat` never occurs between the campaign's `start` and its `end`",
            "check the expression's fields, or move `start` or `end`",
        );
        return None;
    }
    Some(repeat)
}

const RETRY_EXAMPLE: &str = "{ busy = { after = \"30m\", max_attempts = 3 } }";

/// `[retry]`: one entry per outcome class, each `{ after, max_attempts }`.
fn parse_retry(cx: &mut Ctx<'_>, t: &DeTable<'_>) -> RetryPolicy {
    let classes: Vec<&str> = RetryClass::ALL.iter().map(|c| c.name()).collect();
    cx.check_keys(t, &classes, "[retry]");
    let mut policy = RetryPolicy::default();
    for class in RetryClass::ALL {
        let Some(v) = get(t, class.name()) else {
            continue;
        };
        let example = "{ after = \"30m\", max_attempts = 3 }";
        let Some(rule) = cx.table(v, class.name(), example) else {
            continue;
        };
        cx.check_keys(rule, RETRY_RULE_KEYS, &format!("[retry] {class}"));
        let after = match get(rule, "after") {
            Some(a) => cx.string(a, "after", "\"30m\"").and_then(|text| {
                match CapRule::parse_within(&text) {
                    Ok(secs) => Some(secs),
                    Err(why) => {
                        cx.error(
                            "bad-retry",
                            a.span(),
                            &why,
                            "write the wait since the last call ended, like \"30m\", \"2h\" or \"1d\"",
                        );
                        None
                    }
                }
            }),
            None => {
                cx.missing(v.span(), "after", &format!("[retry] {class}"), "\"30m\"");
                None
            }
        };
        let max_attempts = match get(rule, "max_attempts") {
            Some(m) => cx.u32_in(m, "max_attempts", 1, i64::from(MAX_ATTEMPTS_LIMIT), "3"),
            None => {
                cx.missing(v.span(), "max_attempts", &format!("[retry] {class}"), "3");
                None
            }
        };
        if let (Some(after_secs), Some(max_attempts)) = (after, max_attempts) {
            if max_attempts == 1 {
                cx.warn(
                    "retry-never",
                    v.span(),
                    format!("`max_attempts = 1` in [retry] {class} counts the first attempt, so nothing is retried"),
                    "set `max_attempts` to the attempts in all (2 or more), or remove the entry",
                );
            }
            policy.rules.insert(
                class,
                RetryRule {
                    after_secs,
                    max_attempts,
                },
            );
        }
    }
    policy
}

fn parse_manual_call(cx: &mut Ctx<'_>, v: &Val<'_>) -> Option<ManualCall> {
    let t = cx.table(
        v,
        "manual_call",
        "{ agent_group = \"G1\", dispatch = \"ratio\", rate = 1.5 }",
    )?;
    cx.check_keys(t, MANUAL_KEYS, "[manual_call]");
    let agent_group = match get(t, "agent_group") {
        Some(v) => cx.string(v, "agent_group", "\"G1\"")?,
        None => {
            cx.missing(v.span(), "agent_group", "[manual_call]", "\"G1\"");
            return None;
        }
    };
    let dispatch = match get(t, "dispatch") {
        None => Dispatch::None,
        Some(d) => match cx.string(d, "dispatch", "\"ratio\"")?.as_str() {
            "none" => Dispatch::None,
            "ratio" => Dispatch::Ratio,
            "predictive" => Dispatch::Predictive,
            other => {
                cx.error(
                    "bad-value",
                    d.span(),
                    format!("unknown dispatch `{}`", escape_input(other)),
                    "use one of \"none\", \"ratio\", \"predictive\"",
                );
                return None;
            }
        },
    };
    let rate = match get(t, "rate") {
        Some(r) => cx.float(r, "rate", "1.5")?,
        None => 0.0,
    };
    if dispatch != Dispatch::None && !(rate > 0.0 && rate.is_finite()) {
        let span = get(t, "rate").map_or(v.span(), |r| r.span());
        cx.error(
            "bad-value",
            span,
            "a ratio or predictive dispatch needs a positive `rate`",
            "set e.g. `rate = 1.5`",
        );
        return None;
    }
    Some(ManualCall {
        agent_group,
        dispatch,
        rate,
    })
}

fn parse_contacts(
    cx: &mut Ctx<'_>,
    t: &DeTable<'_>,
    section: Range<usize>,
    csv_limits: Option<&ContactLimits>,
) -> Option<ContactsSpec> {
    cx.check_keys(t, CONTACT_KEYS, "[contacts]");
    let (file, file_span) = match get(t, "file") {
        Some(v) => (cx.string(v, "file", "\"contacts.csv\"")?, v.span()),
        None => {
            cx.missing(section, "file", "[contacts]", "\"contacts.csv\"");
            return None;
        }
    };
    let default_country = match get(t, "default_country") {
        None => None,
        Some(v) => {
            let c = cx.string(v, "default_country", "\"US\"")?;
            if c.parse::<phonenumber::country::Id>().is_err() {
                cx.error(
                    "bad-country",
                    v.span(),
                    format!("`{}` is not a region code", escape_input(&c)),
                    "use a two-letter ISO 3166 code in capitals, e.g. \"US\", \"GB\", \"SG\"",
                );
                return None;
            }
            Some(c)
        }
    };
    let variables = match get(t, "variables") {
        None => Vec::new(),
        Some(v) => cx.strings(v, "variables", "[\"amount\", \"due_date\"]")?,
    };
    let mut seen = BTreeSet::new();
    for (name, span) in &variables {
        let reserved = ["phone", "name", "customer", "other"].contains(&name.as_str());
        if name.trim().is_empty() || reserved || !seen.insert(name.clone()) {
            cx.error(
                "bad-variable",
                span.clone(),
                format!(
                    "variable `{}` is empty, repeated, or a reserved column",
                    escape_input(name)
                ),
                "list each template variable once; phone, name, customer and other are not variables",
            );
        }
    }
    let batch_size = get(t, "batch_size").map_or(Some(500), |v| {
        cx.u32_in(v, "batch_size", 1, i64::from(MAX_BATCH_SIZE), "500")
    })?;
    if let Some(problem) = lexical_problem(&file) {
        cx.error(
            "contacts-outside-dir",
            file_span,
            format!(
                "the contacts file `{}` {problem}; it must be inside the campaigns directory",
                escape_input(&file)
            ),
            "name a CSV in the campaign file's directory (or a folder inside it), relative to the campaign file, \
             e.g. `file = \"contacts.csv\"`",
        );
        return None;
    }
    let base = cx.file.parent().unwrap_or(Path::new(""));
    let resolved = base.join(&file);
    if let Some(limits) = csv_limits {
        check_csv_header(cx, &resolved, &file, file_span, &variables, limits);
    }
    Some(ContactsSpec {
        file: resolved,
        default_country,
        variables: variables.into_iter().map(|(v, _)| v).collect(),
        batch_size,
    })
}

fn check_csv_header(
    cx: &mut Ctx<'_>,
    csv_path: &Path,
    written: &str,
    file_span: Range<usize>,
    variables: &[(String, Range<usize>)],
    limits: &ContactLimits,
) {
    let written = escape_input(written);
    let headers = match inspect_csv(cx.file, csv_path, limits) {
        Ok(h) => h,
        Err(problem) => {
            let (code, message, help) = match problem {
                CsvProblem::File(e) => (e.code(), e.to_string(), e.help()),
                CsvProblem::Read(e) => (
                    "contacts-file",
                    format!("cannot read the contacts file {}: {e}", shown(csv_path)),
                    "check that the CSV is readable".to_string(),
                ),
                CsvProblem::Empty => (
                    "contacts-header",
                    format!("{written} is empty; it needs a header line"),
                    "make the first line of the CSV a header such as `phone,name,customer,other,<variables>`"
                        .to_string(),
                ),
                CsvProblem::Header(line, e) => (
                    "contacts-header",
                    format!("the header of {written} (line {line}) cannot be read: {e}"),
                    "make the first line of the CSV a header such as `phone,name,customer,other,<variables>`"
                        .to_string(),
                ),
                CsvProblem::Unclosed(line, e) => (
                    "contacts-unclosed-quote",
                    format!("{written}, the record on line {line}: {e}"),
                    "fix the CSV: until the quote is closed, no contact after it can be read".to_string(),
                ),
            };
            cx.error(code, file_span, message, help);
            return;
        }
    };
    let columns: Vec<&str> = headers.iter().map(String::as_str).collect();
    if !columns.contains(&"phone") {
        let help = match closest("phone", columns.iter().copied()) {
            Some(c) => format!(
                "the header has `{}`: did you mean `phone`? Column names are case-sensitive",
                escape_input(c)
            ),
            None => "make the first line of the CSV a header such as `phone,name,customer,other,<variables>`"
                .to_string(),
        };
        cx.error(
            "contacts-header",
            file_span.clone(),
            format!("{written} has no `phone` column in its header (line 1)"),
            help,
        );
    }
    for (name, span) in variables {
        if !columns.contains(&name.as_str()) {
            let name = escape_input(name);
            let help = match closest(&name, columns.iter().copied()) {
                Some(c) => format!(
                    "the CSV has `{}`: did you mean that? Otherwise add a `{name}` column",
                    escape_input(c)
                ),
                None => format!(
                    "add a `{name}` column to {written}, or remove `{name}` from `variables`"
                ),
            };
            cx.error(
                "missing-variable",
                span.clone(),
                format!("variable `{name}` is not a column of {written}"),
                help,
            );
        }
    }
    for col in &columns {
        let known = ["phone", "name", "customer", "other", "timezone", "region"].contains(col)
            || variables.iter().any(|(v, _)| v == col);
        if !known {
            let col = escape_input(col);
            cx.warn(
                "unused-column",
                file_span.clone(),
                format!(
                    "column `{col}` of {written} is not a declared variable and will not be sent"
                ),
                format!("add \"{col}\" to `variables` if the template uses it"),
            );
        }
    }
}

fn local_datetime(cx: &mut Ctx<'_>, v: &Val<'_>, key: &str, is_end: bool) -> Option<NaiveDateTime> {
    let example = "2026-11-23T09:00:00";
    let DeValue::Datetime(dt) = v.get_ref() else {
        cx.wrong_type(v, key, "a local date-time (no quotes)", example);
        return None;
    };
    if dt.offset.is_some() {
        cx.error(
            "bad-datetime",
            v.span(),
            format!("`{key}` has a UTC offset, but times are local to the campaign's time zone"),
            format!("drop the offset: `{key} = {example}`"),
        );
        return None;
    }
    let Some(d) = dt.date else {
        cx.wrong_type(v, key, "a local date-time", example);
        return None;
    };
    let date = NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))?;
    match dt.time {
        Some(t) => {
            let time = NaiveTime::from_hms_opt(
                u32::from(t.hour),
                u32::from(t.minute),
                u32::from(t.second.unwrap_or(0)),
            )?;
            Some(date.and_time(time))
        }
        // A bare date: the start of that day, or (for `end`) the end of it.
        None if is_end => date.succ_opt().map(|d| d.and_time(NaiveTime::MIN)),
        None => Some(date.and_time(NaiveTime::MIN)),
    }
}

fn parse_schedule(
    cx: &mut Ctx<'_>,
    t: &DeTable<'_>,
    section: Range<usize>,
    at: Location,
) -> Option<Schedule> {
    cx.check_keys(t, SCHEDULE_KEYS, "[schedule]");
    let mut contact_zones = false;
    let zone = match (get(t, "timezone"), get(t, "utc_offset")) {
        (Some(_), Some(off)) => {
            cx.error(
                "zone",
                off.span(),
                "[schedule] has both `timezone` and `utc_offset`",
                "keep one: `timezone` (an IANA name, follows DST, or \"contact\") or `utc_offset` (fixed)",
            );
            None
        }
        (None, None) => {
            cx.error(
                "zone",
                section.clone(),
                "[schedule] has no time zone",
                "add `timezone = \"America/New_York\"` (an IANA name), `utc_offset = \"+08:00\"`, or \
                 `timezone = \"contact\"` (each contact's own zone)",
            );
            None
        }
        (Some(tz), None) => {
            let name = cx.string(tz, "timezone", "\"Europe/London\"")?;
            if name == "contact" {
                contact_zones = true;
                match get(t, "fallback_timezone") {
                    None => Some(Zone::Fixed(0)),
                    Some(fb) => iana_zone(cx, fb, "fallback_timezone").map(Zone::Iana),
                }
            } else {
                iana_zone(cx, tz, "timezone").map(Zone::Iana)
            }
        }
        (None, Some(off)) => {
            let s = cx.string(off, "utc_offset", "\"+08:00\"")?;
            match parse_offset(&s) {
                Some(secs) => Some(Zone::Fixed(secs)),
                None => {
                    cx.error(
                        "zone",
                        off.span(),
                        format!("`{}` is not a UTC offset", escape_input(&s)),
                        "write it as \"+HH:MM\" or \"-HH:MM\", at most 14:00, e.g. \"+08:00\"",
                    );
                    None
                }
            }
        }
    };
    let fallback_zone = if contact_zones {
        get(t, "fallback_timezone").and(zone)
    } else {
        if let Some(fb) = get(t, "fallback_timezone") {
            cx.error(
                "fallback-zone",
                key_span(t, "fallback_timezone").unwrap_or(fb.span()),
                "`fallback_timezone` only applies with `timezone = \"contact\"`",
                "remove `fallback_timezone` (the campaign's own zone is every contact's), or set \
                 `timezone = \"contact\"` to read the windows in each contact's own zone",
            );
        }
        None
    };
    let start = get(t, "start").and_then(|v| local_datetime(cx, v, "start", false));
    let end = get(t, "end").and_then(|v| local_datetime(cx, v, "end", true));
    if let (Some(s), Some(e), Some(ev)) = (start, end, get(t, "end"))
        && e <= s
    {
        cx.error(
            "end-before-start",
            ev.span(),
            format!(
                "the end {} is not after the start {}",
                e.format("%Y-%m-%dT%H:%M"),
                s.format("%Y-%m-%dT%H:%M")
            ),
            "move `end` after `start` (or swap them)",
        );
    }
    let mut holidays = BTreeSet::new();
    if let Some(v) = get(t, "holidays")
        && let Some(items) = cx.array(v, "holidays", "[2026-11-26]")
    {
        for item in items {
            match item.get_ref() {
                DeValue::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                    if let Some(d) = dt.date.and_then(|d| {
                        NaiveDate::from_ymd_opt(
                            i32::from(d.year),
                            u32::from(d.month),
                            u32::from(d.day),
                        )
                    }) {
                        holidays.insert(d);
                    }
                }
                _ => cx.wrong_type(
                    item,
                    "holidays",
                    "an array of local dates (no quotes)",
                    "[2026-11-26]",
                ),
            }
        }
    }
    let windows = match get(t, "windows") {
        Some(v) => parse_windows(cx, v),
        None => {
            cx.missing(
                section,
                "windows",
                "[schedule]",
                "[{ days = \"mon-fri\", hours = [\"09:00-17:00\"] }]",
            );
            None
        }
    };
    Some(Schedule {
        zone: zone?,
        contact_zones,
        fallback_zone,
        start,
        end,
        holidays,
        windows: windows?,
        at,
    })
}

/// An IANA zone name written at `v` (`timezone` or `fallback_timezone`); an unknown one is an error with the nearest
/// name. `timezone` may also be `"contact"`, so that is suggested too.
fn iana_zone(cx: &mut Ctx<'_>, v: &Val<'_>, key: &str) -> Option<Tz> {
    let name = cx.string(v, key, "\"Europe/London\"")?;
    if let Ok(z) = name.parse::<Tz>() {
        return Some(z);
    }
    let contact = (key == "timezone").then_some("contact");
    let names = contact
        .into_iter()
        .chain(chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()));
    let help = if parse_offset(&name).is_some() {
        match key {
            "timezone" => format!(
                "a fixed offset is written `utc_offset = \"{}\"`",
                escape_input(&name)
            ),
            _ => format!(
                "`{key}` takes an IANA zone name, which follows DST, such as \"America/Chicago\"; a fixed offset \
                 is not accepted"
            ),
        }
    } else {
        match closest(&name, names) {
            Some(s) => format!("did you mean \"{s}\"?"),
            None => {
                "use an IANA zone name such as \"Europe/London\" or \"Asia/Singapore\"".to_string()
            }
        }
    };
    cx.error(
        "zone",
        v.span(),
        format!("unknown time zone `{}`", escape_input(&name)),
        help,
    );
    None
}

/// `[schedule] rules`: `["auto"]` (also the default), a list of rule names, or `[]` (off, with a warning).
fn parse_rules(cx: &mut Ctx<'_>, t: &DeTable<'_>) -> RuleChoice {
    let Some(v) = get(t, "rules") else {
        return RuleChoice::Auto;
    };
    let Some(items) = cx.strings(v, "rules", "[\"auto\"]") else {
        return RuleChoice::Auto;
    };
    if items.is_empty() {
        cx.warn(
            "no-rules",
            v.span(),
            "`rules = []` turns off the legal calling hours: contacts may be called at any hour the windows allow, \
             whatever the law of their country or state says",
            "remove `rules` to apply each contact's own (the default, \"auto\"), or name the rules that apply, e.g. \
             `rules = [\"us\"]`",
        );
        return RuleChoice::Named(Vec::new());
    }
    let mut seen = BTreeSet::new();
    let mut names = Vec::new();
    let mut auto = false;
    for (name, span) in &items {
        if !seen.insert(name.as_str()) {
            cx.error(
                "bad-rules",
                span.clone(),
                format!("rule `{}` is listed twice in `rules`", escape_input(name)),
                "list each rule once",
            );
        } else if name == "auto" {
            auto = true;
            if items.iter().any(|(other, _)| other != "auto") {
                cx.error(
                    "bad-rules",
                    span.clone(),
                    "\"auto\" cannot be combined with rule names in `rules`",
                    "write `rules = [\"auto\"]` for each contact's country and state, or list the rules by name \
                     without \"auto\"",
                );
            }
        } else if crate::rules::rule(name).is_some() {
            names.push(name.clone());
        } else {
            let known = crate::rules::rules().iter().map(|r| r.name.as_str());
            let help = match closest(name, std::iter::once("auto").chain(known.clone())) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None => format!(
                    "the rules are: auto, {}",
                    known.collect::<Vec<_>>().join(", ")
                ),
            };
            cx.error(
                "unknown-rule",
                span.clone(),
                format!("unknown rule `{}`", escape_input(name)),
                help,
            );
        }
    }
    if auto {
        RuleChoice::Auto
    } else {
        RuleChoice::Named(names)
    }
}

/// Parses `days`: names (`mon` … `sun`, or full names), comma lists, and ranges; a range may wrap (`fri-mon`).
pub(crate) fn parse_days(s: &str) -> Result<BTreeSet<u8>, String> {
    let day = |w: &str| -> Result<u8, String> {
        let w = w.trim().to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|d| *d == w)
            .or_else(|| DAY_FULL_NAMES.iter().position(|d| *d == w))
            .map(|i| i as u8 + 1)
            .ok_or(w)
    };
    let mut out = BTreeSet::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    out.insert(d);
                    if d == b {
                        break;
                    }
                    d = d % 7 + 1;
                }
            }
            None => {
                out.insert(day(part)?);
            }
        }
    }
    Ok(out)
}

/// Why an hour range was rejected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HoursError {
    Syntax,
    NotAligned { from: u16, to: u16 },
    Empty,
}

/// Parses `"HH:MM-HH:MM"`; an end at or before the start crosses midnight; `24:00` may end a range.
pub(crate) fn parse_hours(s: &str) -> Result<HourRange, HoursError> {
    fn time(t: &str) -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return None;
        }
        Some(h * 60 + m)
    }
    let (a, b) = s.split_once('-').ok_or(HoursError::Syntax)?;
    let (from, to) = (
        time(a).ok_or(HoursError::Syntax)?,
        time(b).ok_or(HoursError::Syntax)?,
    );
    if from == DAY_MINUTES {
        return Err(HoursError::Syntax);
    }
    if from % 30 != 0 || to % 30 != 0 {
        return Err(HoursError::NotAligned { from, to });
    }
    if from == to {
        return Err(HoursError::Empty);
    }
    let to = if to < from { to + DAY_MINUTES } else { to };
    Ok(HourRange { from, to })
}

/// The most overlapping windows reported for one campaign file; the overlap check stops there.
const MAX_OVERLAP_ERRORS: usize = 20;

/// A window range on one weekday after unfolding midnight: (from, to, span of the hours string, the range as text).
type Piece = (u16, u16, Range<usize>, String);

fn parse_windows(cx: &mut Ctx<'_>, v: &Val<'_>) -> Option<Vec<WindowRule>> {
    let example = "[{ days = \"mon-fri\", hours = [\"09:00-17:00\"] }]";
    let items = cx.array(v, "windows", example)?;
    if items.is_empty() {
        cx.error(
            "empty-window",
            v.span(),
            "`windows` is empty, so the campaign would never dial",
            format!("add a window, e.g. `windows = {example}`"),
        );
        return None;
    }
    let mut rules = Vec::new();
    // Per weekday: (from, to, rule index, span) of every piece after unfolding midnight crossings.
    let mut pieces: BTreeMap<u8, Vec<Piece>> = BTreeMap::new();
    let mut ok = true;
    for item in items {
        let Some(t) = cx.table(item, "windows", example) else {
            ok = false;
            continue;
        };
        cx.check_keys(t, WINDOW_KEYS, "a window");
        let days = match get(t, "days") {
            Some(d) => match cx.string(d, "days", "\"mon-fri\"") {
                Some(s) => match parse_days(&s) {
                    Ok(days) => Some(days),
                    Err(bad) => {
                        let help = match closest(&bad, DAY_NAMES.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`? Days are mon, tue, wed, thu, fri, sat, sun"),
                            None => "use mon, tue, wed, thu, fri, sat, sun: e.g. \"mon-fri\", \"sat,sun\"".to_string(),
                        };
                        cx.error(
                            "bad-days",
                            d.span(),
                            format!(
                                "`{}` is not a day of the week (mon..sun)",
                                escape_input(&bad)
                            ),
                            help,
                        );
                        None
                    }
                },
                None => None,
            },
            None => {
                cx.missing(item.span(), "days", "a window", "\"mon-fri\"");
                None
            }
        };
        let mut hours = Vec::new();
        match get(t, "hours") {
            None => cx.missing(item.span(), "hours", "a window", "[\"09:00-17:00\"]"),
            Some(h) => {
                let written = cx.strings(h, "hours", "[\"09:00-12:00\", \"13:30-20:00\"]");
                if written.as_ref().is_some_and(Vec::is_empty) {
                    cx.error(
                        "empty-window",
                        h.span(),
                        "this window has no hours",
                        "add e.g. `hours = [\"09:00-17:00\"]`",
                    );
                }
                for (s, span) in written.unwrap_or_default() {
                    match parse_hours(&s) {
                        Ok(r) => hours.push((r, span)),
                        Err(HoursError::Syntax) => cx.error(
                            "bad-hours",
                            span,
                            format!("`{}` is not a time range", escape_input(&s)),
                            "write it as \"HH:MM-HH:MM\" in 24-hour local time, e.g. \"09:00-17:00\"",
                        ),
                        Err(HoursError::NotAligned { from, to }) => {
                            let up = from.div_ceil(30) * 30;
                            let down = to / 30 * 30;
                            cx.error(
                                "not-half-hour",
                                span,
                                format!("window `{}` is not aligned to half hours", escape_input(&s)),
                                format!(
                                    "the platform dials in half hours: start and end on :00 or :30, e.g. \"{}-{}\"",
                                    hhmm(up.min(DAY_MINUTES - 30)),
                                    hhmm(down)
                                ),
                            );
                        }
                        Err(HoursError::Empty) => cx.error(
                            "empty-window",
                            span,
                            format!("window `{}` is empty", escape_input(&s)),
                            "give an end different from the start, e.g. \"09:00-17:00\" (\"00:00-24:00\" is the whole day)",
                        ),
                    }
                }
            }
        }
        let Some(days) = days else {
            ok = false;
            continue;
        };
        for (r, span) in &hours {
            for d in &days {
                let text = r.to_string();
                pieces.entry(*d).or_default().push((
                    r.from,
                    r.to.min(DAY_MINUTES),
                    span.clone(),
                    text.clone(),
                ));
                if r.to > DAY_MINUTES {
                    pieces.entry(d % 7 + 1).or_default().push((
                        0,
                        r.to - DAY_MINUTES,
                        span.clone(),
                        text,
                    ));
                }
            }
        }
        rules.push(WindowRule {
            days,
            hours: hours.into_iter().map(|(r, _)| r).collect(),
            at: cx.location(&item.span()),
        });
    }
    // Overlaps: same weekday, after unfolding midnight crossings. Report each offending range once, and at most
    // MAX_OVERLAP_ERRORS: since ranges that do not overlap are at least 30 minutes long, at most 48 pieces of a day
    // go unreported, so the check stops within (48 + MAX_OVERLAP_ERRORS)^2 comparisons a day, however many ranges
    // the file has.
    let mut reported = BTreeSet::new();
    'days: for (day, list) in &mut pieces {
        list.sort_by_key(|p| (p.0, p.2.start));
        for i in 1..list.len() {
            if reported.len() >= MAX_OVERLAP_ERRORS {
                break 'days;
            }
            for j in 0..i {
                let (a, b) = (&list[j], &list[i]);
                if b.0 < a.1 && a.0 < b.1 {
                    let later = if a.2.start > b.2.start { a } else { b };
                    let other = if a.2.start > b.2.start { b } else { a };
                    if reported.insert(later.2.start) {
                        let (line, _) = line_col(cx.text, other.2.start);
                        cx.error(
                            "overlap",
                            later.2.clone(),
                            format!(
                                "window `{}` overlaps `{}` (line {line}) on {}",
                                later.3,
                                other.3,
                                DAY_FULL_NAMES[usize::from(*day - 1)]
                            ),
                            "merge them into one range, or move one so they only touch",
                        );
                    }
                }
            }
        }
    }
    if ok { Some(rules) } else { None }
}

/// Warnings for windows that a DST change in `[from, to)` shortens or lengthens.
fn dst_warnings(
    file: &Path,
    sched: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for change in offset_changes(&sched.zone, from, to) {
        let before_local = change.at.naive_utc() + Duration::seconds(i64::from(change.before));
        let after_local = change.at.naive_utc() + Duration::seconds(i64::from(change.after));
        let forward = change.after > change.before;
        // The affected local range on its date: skipped (forward) or repeated (back).
        let start = if forward { before_local } else { after_local };
        let date = start.date();
        let len = (i64::from(change.after) - i64::from(change.before)).unsigned_abs() / 60;
        let g0 = u16::try_from(
            start
                .time()
                .signed_duration_since(NaiveTime::MIN)
                .num_minutes(),
        )
        .unwrap_or(0);
        let g1 = g0.saturating_add(u16::try_from(len).unwrap_or(0));
        let weekday = date.weekday().number_from_monday() as u8;
        let prev_weekday = weekday.checked_sub(1).filter(|d| *d > 0).unwrap_or(7);
        for rule in &sched.windows {
            for r in &rule.hours {
                let mut overlap = 0u16;
                if rule.days.contains(&weekday) && !sched.holidays.contains(&date) {
                    overlap += intersect(r.from, r.to.min(DAY_MINUTES), g0, g1);
                }
                let prev_ok = date
                    .pred_opt()
                    .is_some_and(|p| !sched.holidays.contains(&p));
                if r.to > DAY_MINUTES && rule.days.contains(&prev_weekday) && prev_ok {
                    overlap += intersect(0, r.to - DAY_MINUTES, g0, g1);
                }
                if overlap == 0 {
                    continue;
                }
                let amount = describe_minutes(overlap);
                let message = if forward {
                    format!(
                        "on {date} the clocks go forward: {}-{} does not exist; the window {r} is {amount} shorter that day",
                        hhmm(g0),
                        hhmm(g1)
                    )
                } else {
                    format!(
                        "on {date} the clocks go back: {}-{} happens twice; the window {r} is {amount} longer that day",
                        hhmm(g0),
                        hhmm(g1)
                    )
                };
                out.push(Diagnostic {
                    severity: Severity::Warning,
                    file: file.to_path_buf(),
                    line: rule.at.line,
                    column: rule.at.column,
                    message,
                    help: format!(
                        "nothing to do if that is intended (the daemon reprograms the platform at the change); otherwise move the window off {}-{}",
                        hhmm(g0),
                        hhmm(g1)
                    ),
                    code: "dst".into(),
                });
            }
        }
    }
    out
}

fn intersect(a0: u16, a1: u16, b0: u16, b1: u16) -> u16 {
    a1.min(b1).saturating_sub(a0.max(b0))
}

fn describe_minutes(m: u16) -> String {
    match m {
        60 => "one hour".to_string(),
        m if m % 60 == 0 => format!("{} hours", m / 60),
        m => format!("{m} minutes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{RetryClass, RetryRule};

    const BASE: &str = r#"scene_id = "SC-1029"
robots = 20

[schedule]
timezone = "America/New_York"
windows = [
  { days = "mon-fri", hours = ["09:00-12:00", "13:30-20:00"] },
]

[contacts]
file = "c.csv"
default_country = "US"
variables = ["amount"]
"#;

    fn parse(text: &str) -> Result<(CampaignSpec, Vec<Diagnostic>), Diagnostics> {
        parse_campaign(Path::new("campaigns/c.toml"), text)
    }

    /// The errors of `text`, which must fail.
    fn errors(text: &str) -> Vec<Diagnostic> {
        match parse(text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(d) => d.0,
        }
    }

    fn only_error(text: &str, code: &str) -> Diagnostic {
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].code, code, "{errs:#?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn accepts_the_product_reference_file() {
        let text = r#"scene_id = "SC-1029"
task_name = "Spring renewals"
strategy = ""
robots = 20
max_ring_seconds = 40
route_id = ""
paused = false
generation = 1

[schedule]
timezone = "America/New_York"
start = 2026-11-23T09:00:00
end = 2026-12-05T18:00:00
holidays = [2026-11-26]
windows = [
  { days = "mon-fri", hours = ["09:00-12:00", "13:30-20:00"] },
  { days = "sat",     hours = ["10:00-14:00"] },
]

[features]
task_keep = false
round_redial = true
whole_tts = true
phone_encrypt = true

[[sms]]
sms_id = "SMS-7"
intent_ids = ["I1"]

[manual_call]
agent_group = "G1"
dispatch = "ratio"
rate = 1.5

[contacts]
file = "spring-renewals.csv"
default_country = "US"
variables = ["amount", "due_date"]
batch_size = 500
"#;
        let (spec, warnings) =
            parse_campaign(Path::new("campaigns/spring-renewals.toml"), text).unwrap();
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_eq!(spec.id, "spring-renewals");
        assert_eq!(spec.scene_id, "SC-1029");
        assert_eq!(spec.robots, 20);
        assert_eq!(spec.schedule.zone, Zone::Iana(Tz::America__New_York));
        assert_eq!(spec.schedule.windows.len(), 2);
        assert_eq!(spec.schedule.windows[1].days, [6].into_iter().collect());
        assert_eq!(spec.schedule.holidays.len(), 1);
        assert!(
            spec.features.round_redial && spec.features.phone_encrypt && !spec.features.task_keep
        );
        assert_eq!(spec.sms[0].intent_ids, vec!["I1".to_string()]);
        assert_eq!(
            spec.manual_call.as_ref().unwrap().dispatch.dispatch_type(),
            1
        );
        assert_eq!(
            spec.contacts.file,
            Path::new("campaigns/spring-renewals.csv")
        );
        assert_eq!(
            spec.contacts.variables,
            vec!["amount".to_string(), "due_date".to_string()]
        );
        assert_eq!(spec.content_hash.len(), 64);
        assert!(!spec.delete_undialled_on_remove);
        // Serde round trip, as the store keeps it.
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<CampaignSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn defaults_are_filled_in() {
        let (spec, _) = parse(BASE).unwrap();
        assert_eq!(spec.id, "c");
        assert_eq!(spec.task_name, "c");
        assert_eq!(spec.generation, 1);
        assert_eq!(spec.contacts.batch_size, 500);
        assert!(spec.features.whole_tts);
    }

    #[test]
    fn windows_may_be_written_as_an_array_of_tables() {
        let text = r#"scene_id = "S"
[schedule]
utc_offset = "+05:45"

[[schedule.windows]]
days = "sat-sun"
hours = ["22:00-02:00"]

[[schedule.windows]]
days = "fri-mon"
hours = ["10:00-11:00"]
colour = "red"

[contacts]
file = "c.csv"
"#;
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].message, "unknown key `colour` in a window");
        assert_eq!(errs[0].line, 12);
        let (spec, _) = parse(&text.replace("colour = \"red\"\n", "")).unwrap();
        assert_eq!(spec.schedule.zone, Zone::Fixed(20700));
        assert_eq!(
            spec.schedule.windows[0].hours[0],
            HourRange {
                from: 1320,
                to: 1560
            }
        );
        assert_eq!(
            spec.schedule.windows[1].days,
            [5, 6, 7, 1].into_iter().collect()
        );
    }

    #[test]
    fn rejects_unknown_key_with_a_suggestion_and_its_position() {
        let d = only_error(&BASE.replace("robots = 20", "robot = 20"), "unknown-key");
        assert_eq!(d.message, "unknown key `robot` in the campaign file");
        assert_eq!(d.help, "did you mean `robots`?");
        assert_eq!((d.line, d.column), (2, 1));
        let d = only_error(&BASE.replace("variables", "variabels"), "unknown-key");
        assert_eq!(d.help, "did you mean `variables`?");
        assert_eq!(d.message, "unknown key `variabels` in [contacts]");
    }

    #[test]
    fn rejects_a_wrong_type() {
        let d = only_error(
            &BASE.replace("robots = 20", "robots = \"20\""),
            "wrong-type",
        );
        assert_eq!(d.message, "`robots` must be an integer, found string");
        assert_eq!((d.line, d.column), (2, 10));
    }

    #[test]
    fn rejects_windows_not_aligned_to_half_hours() {
        let d = only_error(&BASE.replace("09:00-12:00", "09:15-12:00"), "not-half-hour");
        assert_eq!(
            d.message,
            "window `09:15-12:00` is not aligned to half hours"
        );
        assert!(d.help.contains("\"09:30-12:00\""), "{}", d.help);
        assert_eq!((d.line, d.column), (7, 32));
    }

    #[test]
    fn rejects_empty_windows() {
        let d = only_error(&BASE.replace("09:00-12:00", "09:00-09:00"), "empty-window");
        assert_eq!(d.message, "window `09:00-09:00` is empty");
        let d = only_error(
            &BASE.replace("[\"09:00-12:00\", \"13:30-20:00\"]", "[]"),
            "empty-window",
        );
        assert_eq!(d.message, "this window has no hours");
    }

    #[test]
    fn rejects_overlapping_windows() {
        let text = BASE.replace(
            "  { days = \"mon-fri\", hours = [\"09:00-12:00\", \"13:30-20:00\"] },",
            "  { days = \"mon-fri\", hours = [\"09:00-12:00\"] },\n  { days = \"wed\", hours = [\"11:30-13:00\"] },",
        );
        let d = only_error(&text, "overlap");
        assert_eq!(
            d.message,
            "window `11:30-13:00` overlaps `09:00-12:00` (line 7) on wednesday"
        );
        assert_eq!(d.line, 8);
    }

    #[test]
    fn rejects_overlap_after_unfolding_midnight() {
        let text = BASE.replace(
            "  { days = \"mon-fri\", hours = [\"09:00-12:00\", \"13:30-20:00\"] },",
            "  { days = \"fri\", hours = [\"22:00-02:00\"] },\n  { days = \"sat\", hours = [\"01:00-03:00\"] },",
        );
        let d = only_error(&text, "overlap");
        assert_eq!(
            d.message,
            "window `01:00-03:00` overlaps `22:00-02:00` (line 7) on saturday"
        );
    }

    #[test]
    fn accepts_touching_windows_and_a_whole_day() {
        let text = BASE.replace(
            "\"09:00-12:00\", \"13:30-20:00\"",
            "\"00:00-12:00\", \"12:00-24:00\"",
        );
        let (spec, _) = parse(&text).unwrap();
        assert_eq!(spec.schedule.windows[0].hours[1].to, 1440);
    }

    #[test]
    fn rejects_days_outside_mon_to_sun() {
        let d = only_error(&BASE.replace("mon-fri", "mon-fry"), "bad-days");
        assert_eq!(d.message, "`fry` is not a day of the week (mon..sun)");
        assert!(d.help.starts_with("did you mean `fri`?"), "{}", d.help);
    }

    #[test]
    fn day_ranges_may_wrap_around_the_week() {
        assert_eq!(
            parse_days("fri-mon").unwrap(),
            [5, 6, 7, 1].into_iter().collect()
        );
        assert_eq!(
            parse_days("mon,wed,fri").unwrap(),
            [1, 3, 5].into_iter().collect()
        );
        assert_eq!(
            parse_days("Saturday-sun").unwrap(),
            [6, 7].into_iter().collect()
        );
    }

    #[test]
    fn rejects_an_end_before_the_start() {
        let text = BASE.replace(
            "timezone = \"America/New_York\"",
            "timezone = \"America/New_York\"\nstart = 2026-12-01T09:00:00\nend = 2026-11-01T09:00:00",
        );
        let d = only_error(&text, "end-before-start");
        assert_eq!(
            d.message,
            "the end 2026-11-01T09:00 is not after the start 2026-12-01T09:00"
        );
        assert_eq!(d.line, 7);
    }

    #[test]
    fn rejects_an_unknown_time_zone_with_a_near_name() {
        let d = only_error(
            &BASE.replace("America/New_York", "America/New_Yrok"),
            "zone",
        );
        assert_eq!(d.message, "unknown time zone `America/New_Yrok`");
        assert_eq!(d.help, "did you mean \"America/New_York\"?");
    }

    #[test]
    fn rejects_both_or_neither_zone_keys() {
        let both = BASE.replace(
            "timezone = \"America/New_York\"",
            "timezone = \"UTC\"\nutc_offset = \"+08:00\"",
        );
        assert_eq!(
            only_error(&both, "zone").message,
            "[schedule] has both `timezone` and `utc_offset`"
        );
        let neither = BASE.replace("timezone = \"America/New_York\"\n", "");
        assert_eq!(
            only_error(&neither, "zone").message,
            "[schedule] has no time zone"
        );
        let fixed = BASE.replace("timezone = \"America/New_York\"", "utc_offset = \"-03:30\"");
        assert_eq!(parse(&fixed).unwrap().0.schedule.zone, Zone::Fixed(-12600));
    }

    #[test]
    fn rejects_batch_size_outside_1_to_1000() {
        for bad in ["0", "1001"] {
            let d = only_error(&format!("{BASE}batch_size = {bad}\n"), "out-of-range");
            assert_eq!(
                d.message,
                format!("`batch_size` is {bad}, but it must be 1 to 1000")
            );
        }
        assert_eq!(
            parse(&format!("{BASE}batch_size = 1000\n"))
                .unwrap()
                .0
                .contacts
                .batch_size,
            1000
        );
    }

    #[test]
    fn rejects_robots_below_one() {
        let d = only_error(&BASE.replace("robots = 20", "robots = 0"), "out-of-range");
        assert_eq!(d.message, "`robots` is 0, but it must be at least 1");
    }

    #[test]
    fn rejects_a_toml_syntax_error_with_its_place() {
        let d = only_error(&BASE.replace("robots = 20", "robots = = 20"), "toml-syntax");
        assert_eq!(d.line, 2);
    }

    #[test]
    fn rejects_a_missing_template_variable_in_the_csv_header() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("c.csv"),
            "phone,name,amout\n+14155550100,A,1\n",
        )
        .unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, BASE).unwrap();
        let errs = load_campaign(&path).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].code, "missing-variable");
        // The message names the variable and the file; it never quotes the header line.
        assert_eq!(
            errs[0].message,
            "variable `amount` is not a column of c.csv"
        );
        assert!(
            errs[0].help.starts_with("the CSV has `amout`"),
            "{}",
            errs[0].help
        );
        assert_eq!(errs[0].line, 13);
        std::fs::write(dir.path().join("c.csv"), "phone,name,amount\n").unwrap();
        let spec = load_campaign(&path).unwrap();
        assert_eq!(spec.contacts.file, dir.path().join("c.csv"));
    }

    /// A campaign file `c.toml` (BASE with `file = "<file>"`) in `<tmp>/campaigns`, and its load errors.
    fn load_with_file(root: &Path, file: &str) -> Vec<Diagnostic> {
        let dir = root.join("campaigns");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, BASE.replace("\"c.csv\"", &format!("\"{file}\""))).unwrap();
        load_campaign(&path).unwrap_err().0
    }

    #[test]
    fn refuses_a_contacts_file_outside_the_campaigns_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("secret.csv"), "phone,amount\n").unwrap();
        for (file, problem) in [
            ("/proc/self/environ", "is an absolute path"),
            ("/dev/zero", "is an absolute path"),
            ("../secret.csv", "leaves the campaigns directory with `..`"),
        ] {
            let errs = load_with_file(root.path(), file);
            assert_eq!(errs.len(), 1, "{errs:#?}");
            let d = &errs[0];
            assert_eq!(d.code, "contacts-outside-dir", "{d:#?}");
            assert_eq!(
                d.message,
                format!(
                    "the contacts file `{file}` {problem}; it must be inside the campaigns directory"
                )
            );
            assert_eq!((d.line, d.column), (11, 8), "on the `file` value");
            assert!(
                d.help.contains("relative to the campaign file"),
                "{}",
                d.help
            );
        }
        // The in-memory parse (no I/O) refuses them too.
        let text = BASE.replace("\"c.csv\"", "\"/etc/passwd\"");
        assert_eq!(only_error(&text, "contacts-outside-dir").line, 11);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_symlink_out_of_the_campaigns_directory_without_quoting_the_target() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("campaigns");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", dir.join("env.csv")).unwrap();
        let errs = load_with_file(root.path(), "env.csv");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].code, "contacts-outside-dir");
        assert_eq!((errs[0].line, errs[0].column), (11, 8));
        assert!(
            errs[0]
                .message
                .contains("is outside the campaigns directory"),
            "{}",
            errs[0].message
        );
        let environ = std::fs::read("/proc/self/environ").unwrap_or_default();
        let first =
            String::from_utf8_lossy(environ.split(|b| *b == 0).next().unwrap_or(b"")).into_owned();
        if !first.is_empty() {
            assert!(!errs[0].message.contains(&first) && !errs[0].help.contains(&first));
        }
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_fifo_at_once_instead_of_hanging() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("campaigns");
        std::fs::create_dir_all(&dir).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("f.csv"))
            .status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let errs = load_with_file(root.path(), "f.csv");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].code, "contacts-not-a-file");
        assert!(
            errs[0].message.ends_with("is a FIFO, not a regular file"),
            "{}",
            errs[0].message
        );
        assert_eq!((errs[0].line, errs[0].column), (11, 8));
    }

    #[test]
    fn refuses_a_contacts_file_over_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.csv"), "phone,amount\n+14155550100,1\n").unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, BASE).unwrap();
        let limits = ContactLimits {
            max_file_bytes: 16,
            ..ContactLimits::default()
        };
        let errs = load_campaign_with_limits(&path, &limits).unwrap_err().0;
        assert_eq!(errs[0].code, "contacts-too-large");
        assert!(
            errs[0]
                .message
                .contains("the limit `[contacts] max_file_bytes` (16 bytes)"),
            "{}",
            errs[0].message
        );
        assert!(load_campaign(&path).is_ok());
    }

    #[test]
    fn an_unclosed_quote_in_the_contacts_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("phone,amount\n+14155550100,1\n+14155550101,\"2\n");
        for i in 0..1000 {
            csv.push_str(&format!("+1415555{i:04},3\n"));
        }
        std::fs::write(dir.path().join("c.csv"), &csv).unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, BASE).unwrap();
        let errs = load_campaign(&path).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].code, "contacts-unclosed-quote");
        assert!(
            errs[0].message.starts_with(
                "c.csv, the record on line 3: the quoted field opened on line 3 is never closed"
            ),
            "{}",
            errs[0].message
        );
        assert_eq!((errs[0].line, errs[0].column), (11, 8));
    }

    #[test]
    fn a_header_without_phone_is_not_quoted_and_control_characters_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("c.csv"),
            "Phone,amount,API_KEY=hunter2,\"\u{1b}[2J\"\n+14155550100,1,x,y\n",
        )
        .unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, BASE).unwrap();
        let errs = load_campaign(&path).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].code, "contacts-header");
        assert_eq!(
            errs[0].message,
            "c.csv has no `phone` column in its header (line 1)"
        );
        assert!(
            errs[0].help.starts_with("the header has `Phone`"),
            "{}",
            errs[0].help
        );
        std::fs::write(
            dir.path().join("c.csv"),
            "phone,amount,\"\u{1b}[2J\"\n+14155550100,1,y\n",
        )
        .unwrap();
        let (_, warnings) = load_campaign_with_warnings(&path).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(
            warnings[0].message,
            "column `\\u{1b}[2J` of c.csv is not a declared variable and will not be sent"
        );
    }

    #[test]
    fn messages_escape_control_characters_in_the_campaign_file() {
        let d = only_error(&format!("\"bad\\u001b[31mkey\" = 1\n{BASE}"), "unknown-key");
        assert_eq!(
            d.message,
            "unknown key `bad\\u{1b}[31mkey` in the campaign file"
        );
        let d = only_error(&BASE.replace("America/New_York", "Evil\\u0007Zone"), "zone");
        assert_eq!(d.message, "unknown time zone `Evil\\u{7}Zone`");
    }

    #[test]
    fn thousands_of_overlapping_windows_are_reported_up_to_a_cap() {
        let hours = vec!["\"09:00-10:00\""; 5000].join(", ");
        let text = BASE.replace("\"09:00-12:00\", \"13:30-20:00\"", &hours);
        let errs = errors(&text);
        assert_eq!(errs.len(), MAX_OVERLAP_ERRORS, "{:#?}", &errs[..3]);
        assert!(errs.iter().all(|d| d.code == "overlap"));
    }

    #[test]
    fn load_refuses_a_campaign_file_that_is_not_a_regular_file_or_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(
            &big,
            format!(
                "{BASE}\n#{}\n",
                "x".repeat(MAX_CAMPAIGN_FILE_BYTES as usize)
            ),
        )
        .unwrap();
        let d = &load_campaign(&big).unwrap_err().0[0];
        assert_eq!((d.code.as_ref(), d.line), ("read", 0));
        assert!(
            d.message
                .contains("more than the limit `MAX_CAMPAIGN_FILE_BYTES`"),
            "{}",
            d.message
        );
        let d = &load_campaign(dir.path()).unwrap_err().0[0];
        assert!(
            d.message.ends_with("is a directory, not a regular file"),
            "{}",
            d.message
        );
        #[cfg(unix)]
        {
            let fifo = dir.path().join("f.toml");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            assert!(made.is_ok_and(|s| s.success()), "mkfifo");
            // Reading a FIFO would block until a writer came; this returns at once.
            let d = &load_campaign(&fifo).unwrap_err().0[0];
            assert!(
                d.message.ends_with("is a FIFO, not a regular file"),
                "{}",
                d.message
            );
            let d = &load_campaign(Path::new("/dev/zero")).unwrap_err().0[0];
            assert!(
                d.message
                    .ends_with("is a character device, not a regular file"),
                "{}",
                d.message
            );
        }
    }

    #[test]
    fn rejects_a_missing_contacts_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, BASE).unwrap();
        let errs = load_campaign(&path).unwrap_err().0;
        assert_eq!(errs[0].code, "contacts-file");
    }

    #[test]
    fn reads_opt_out_intents_and_refuses_empty_or_unknown_keys() {
        let (spec, _) = parse_campaign(
            Path::new("campaigns/a.toml"),
            &format!("{BASE}\n[opt_out]\nintents = [\"Do not call\", \"I9\"]\n"),
        )
        .unwrap();
        assert_eq!(spec.opt_out.intents, vec!["Do not call", "I9"]);
        let (spec, _) = parse_campaign(Path::new("campaigns/a.toml"), BASE).unwrap();
        assert!(spec.opt_out.intents.is_empty());
        let errs = parse_campaign(
            Path::new("campaigns/a.toml"),
            &format!("{BASE}\n[opt_out]\nintents = [\" \"]\nintent = 1\n"),
        )
        .unwrap_err()
        .0;
        let codes: Vec<&str> = errs.iter().map(|d| d.code.as_ref()).collect();
        assert!(codes.contains(&"empty-intent"), "{codes:?}");
        assert!(
            errs.iter()
                .any(|d| d.message == "unknown key `intent` in [opt_out]"),
            "{errs:?}"
        );
        let stored = serde_json::to_value(&spec).unwrap();
        let mut old = stored.clone();
        old.as_object_mut().unwrap().remove("opt_out");
        let read: CampaignSpec = serde_json::from_value(old).unwrap();
        assert!(
            read.opt_out.intents.is_empty(),
            "a spec stored before [opt_out] still reads"
        );
    }

    #[test]
    fn reads_retry_rules_and_refuses_unknown_classes_and_bad_values_where_they_are_written() {
        let (spec, warnings) = parse(&format!(
            "{BASE}\n[retry]\nbusy = {{ after = \"30m\", max_attempts = 3 }}\nno_answer = {{ after = \"2h\", max_attempts = 1 }}\n"
        ))
        .unwrap();
        assert_eq!(
            spec.retry.rules.get(&RetryClass::Busy),
            Some(&RetryRule {
                after_secs: 1800,
                max_attempts: 3
            })
        );
        assert_eq!(spec.retry.rules.len(), 2);
        assert!(
            warnings
                .iter()
                .any(|w| w.code == "retry-never" && w.line == 17),
            "{warnings:?}"
        );
        let (spec, _) = parse(BASE).unwrap();
        assert!(spec.retry.is_empty());

        let errs = errors(&format!(
            "{BASE}\n[retry]\nanswered = {{ after = \"1h\", max_attempts = 2 }}\nbusy = {{ after = \"soon\", max_attempts = 11 }}\nvoicemail = {{ max_attempts = 2 }}\nfailed = {{ after = \"1h\", max_attempts = 2, jitter = 1 }}\n"
        ));
        let at = |code: &str, line: usize| errs.iter().any(|d| d.code == code && d.line == line);
        assert!(
            errs.iter()
                .any(|d| d.line == 16 && d.message == "unknown key `answered` in [retry]"),
            "{errs:?}"
        );
        assert!(at("bad-retry", 17), "{errs:?}");
        assert!(
            errs.iter()
                .any(|d| d.line == 17 && d.message.contains("max_attempts")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|d| d.line == 18 && d.message == "missing `after` in [retry] voicemail"),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|d| d.line == 19 && d.message == "unknown key `jitter` in [retry] failed"),
            "{errs:?}"
        );
        let errs = errors(&format!("{BASE}\n[retry]\nbusy = 3\n"));
        assert!(errs.iter().any(|d| d.line == 16), "{errs:?}");

        let mut old = serde_json::to_value(&spec).unwrap();
        old.as_object_mut().unwrap().remove("retry");
        let read: CampaignSpec = serde_json::from_value(old).unwrap();
        assert!(
            read.retry.is_empty(),
            "a spec stored before [retry] still reads"
        );
    }

    #[test]
    fn reads_repeat_and_refuses_bad_expressions_where_they_are_written() {
        let with = |schedule: &str| {
            BASE.replace(
                "timezone = \"America/New_York\"\n",
                &format!("timezone = \"America/New_York\"\n{schedule}\n"),
            )
        };
        let (spec, _) = parse(&with(
            "start = 2027-01-01T00:00:00\nrepeat = \"0 9 1 * *\"\non_next_round = \"keep\"",
        ))
        .unwrap();
        let repeat = spec.repeat.unwrap();
        assert_eq!(repeat.cron, "0 9 1 * *");
        assert_eq!(repeat.on_next_round, crate::repeat::NextRound::Keep);
        let (spec, _) = parse(&with(
            "start = 2027-01-01T00:00:00\nrepeat = \"0 9 * * mon\"",
        ))
        .unwrap();
        assert_eq!(
            spec.repeat.unwrap().on_next_round,
            crate::repeat::NextRound::Complete,
            "complete by default"
        );
        assert!(parse(BASE).unwrap().0.repeat.is_none());

        let one = |schedule: &str| {
            let errs = errors(&with(schedule));
            assert_eq!(errs.len(), 1, "{errs:?}");
            errs.into_iter().next().unwrap()
        };
        let e = one("start = 2027-01-01T00:00:00\nrepeat = \"61 9 1 * *\"");
        assert_eq!(
            (e.code.as_ref(), e.line, e.column),
            ("bad-repeat", 7, 10),
            "{e:?}"
        );
        let e = one("start = 2027-01-01T00:00:00\nrepeat = \"0 9 1 * * 2027\"");
        assert_eq!(e.code, "bad-repeat", "{e:?}");
        let e = one("repeat = \"0 9 1 * *\"");
        assert_eq!((e.code.as_ref(), e.line), ("repeat-start", 6), "{e:?}");
        let e =
            one("start = 2027-01-01T00:00:00\nrepeat = \"0 9 1 * *\"\non_next_round = \"later\"");
        assert_eq!((e.code.as_ref(), e.line), ("bad-value", 8), "{e:?}");
        let e =
            one("start = 2027-01-01T00:00:00\nend = 2027-01-20T00:00:00\nrepeat = \"0 9 1 2 *\"");
        assert_eq!((e.code.as_ref(), e.line), ("repeat-never", 8), "{e:?}");
        let e = errors(&format!(
            "generation = 50000\n{}",
            with("start = 2027-01-01T00:00:00\nrepeat = \"0 9 1 * *\"")
        ));
        assert!(e.iter().any(|d| d.code == "out-of-range"), "{e:?}");
        let (_, warnings) = parse(&with("on_next_round = \"keep\"")).unwrap();
        assert!(
            warnings.iter().any(|w| w.code == "no-repeat"),
            "{warnings:?}"
        );
    }

    #[test]
    fn reads_caps_and_refuses_bad_windows() {
        let (spec, _) = parse_campaign(
            Path::new("campaigns/a.toml"),
            &format!("{BASE}\n[caps]\nattempts = [{{ within = \"24h\", max = 2 }}, {{ within = \"30d\", max = 4 }}]\n"),
        )
        .unwrap();
        assert_eq!(
            spec.caps,
            vec![
                CapRule {
                    within_secs: 86_400,
                    max: 2
                },
                CapRule {
                    within_secs: 30 * 86_400,
                    max: 4
                }
            ]
        );
        let errs = parse_campaign(
            Path::new("campaigns/a.toml"),
            &format!("{BASE}\n[caps]\nattempts = [{{ within = \"soon\", max = 2 }}, {{ within = \"1h\", max = 0 }}]\n"),
        )
        .unwrap_err()
        .0;
        assert!(errs.iter().any(|d| d.code == "bad-cap"), "{errs:?}");
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn rejects_the_same_campaign_id_in_two_files() {
        let (a, _) = parse_campaign(
            Path::new("campaigns/a.toml"),
            &format!("id = \"x\"\n{BASE}"),
        )
        .unwrap();
        let (b, _) = parse_campaign(
            Path::new("campaigns/b.toml"),
            &format!("id = \"x\"\n{BASE}"),
        )
        .unwrap();
        let d = validate_set(&[a, b]);
        assert_eq!(d.0.len(), 1);
        assert_eq!(
            d.0[0].message,
            "campaign id `x` is also used by campaigns/a.toml"
        );
        assert_eq!(d.0[0].file, Path::new("campaigns/b.toml"));
        assert_eq!((d.0[0].line, d.0[0].column), (1, 6));
    }

    #[test]
    fn rejects_whole_tts_off_with_variables() {
        let d = only_error(
            &format!("{BASE}\n[features]\nwhole_tts = false\n"),
            "whole-tts",
        );
        assert!(
            d.message
                .starts_with("`whole_tts = false` but the template has variables")
        );
    }

    #[test]
    fn warns_about_a_window_crossing_a_dst_change() {
        let text = BASE
            .replace(
                "timezone = \"America/New_York\"",
                "timezone = \"America/New_York\"\nstart = 2027-03-01T00:00:00\nend = 2027-03-31",
            )
            .replace(
                "days = \"mon-fri\", hours = [\"09:00-12:00\", \"13:30-20:00\"]",
                "days = \"sun\", hours = [\"01:00-04:00\"]",
            );
        let (spec, warnings) = parse(&text).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(
            warnings[0].message,
            "on 2027-03-14 the clocks go forward: 02:00-03:00 does not exist; the window 01:00-04:00 is one hour shorter that day"
        );
        assert_eq!(warnings[0].line, 9);
        // A bare end date means the end of that day.
        assert_eq!(
            spec.schedule.end,
            NaiveDate::from_ymd_opt(2027, 4, 1).map(|d| d.and_time(NaiveTime::MIN))
        );
    }

    #[test]
    fn warns_when_no_dialling_time_is_left() {
        let text = BASE.replace(
            "timezone = \"America/New_York\"",
            "timezone = \"America/New_York\"\nend = 2026-01-31",
        );
        let (spec, _) = parse(&text).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let w = warnings_at(&spec, now);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(
            w[0].message,
            "campaign `c` has no dialling time left: it ended at 2026-02-01T00:00 (America/New_York)"
        );
        let earlier = DateTime::parse_from_rfc3339("2026-01-05T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(
            warnings_at(&spec, earlier)
                .iter()
                .all(|d| d.code != "no-time-left")
        );
    }

    #[test]
    fn open_ended_campaigns_get_dst_warnings_for_the_coming_year() {
        let text = BASE
            .replace("\"09:00-12:00\", \"13:30-20:00\"", "\"00:00-03:00\"")
            .replace("mon-fri", "sun");
        let (spec, warnings) = parse(&text).unwrap();
        assert!(warnings.is_empty());
        let now = DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let w = warnings_at(&spec, now);
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(
            w[0].message
                .starts_with("on 2027-03-14 the clocks go forward"),
            "{}",
            w[0].message
        );
        assert!(
            w[1].message
                .starts_with("on 2027-11-07 the clocks go back: 01:00-02:00 happens twice"),
            "{}",
            w[1].message
        );
    }

    /// BASE with its `timezone` line replaced by `lines`.
    fn with_zone(lines: &str) -> String {
        BASE.replace("timezone = \"America/New_York\"", lines)
    }

    #[test]
    fn reads_contact_zones_with_and_without_a_fallback() {
        let (spec, warnings) = parse(&with_zone("timezone = \"contact\"")).unwrap();
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert!(spec.schedule.contact_zones);
        assert_eq!(spec.schedule.fallback_zone, None);
        assert_eq!(spec.schedule.zone, Zone::Fixed(0));

        let (spec, _) = parse(&with_zone(
            "timezone = \"contact\"\nfallback_timezone = \"America/Chicago\"",
        ))
        .unwrap();
        assert!(spec.schedule.contact_zones);
        let chicago = Zone::Iana(Tz::America__Chicago);
        assert_eq!(spec.schedule.fallback_zone, Some(chicago));
        assert_eq!(spec.schedule.zone, chicago);

        let (spec, _) = parse(BASE).unwrap();
        assert!(!spec.schedule.contact_zones);
        assert_eq!(spec.schedule.fallback_zone, None);
    }

    #[test]
    fn rejects_a_fallback_timezone_without_contact_zones() {
        let d = only_error(
            &with_zone("timezone = \"America/New_York\"\nfallback_timezone = \"America/Chicago\""),
            "fallback-zone",
        );
        assert_eq!(
            d.message,
            "`fallback_timezone` only applies with `timezone = \"contact\"`"
        );
        assert_eq!(
            d.help,
            "remove `fallback_timezone` (the campaign's own zone is every contact's), or set `timezone = \
             \"contact\"` to read the windows in each contact's own zone"
        );
        assert_eq!(
            (d.file.as_path(), d.line, d.column),
            (Path::new("campaigns/c.toml"), 6, 1)
        );
        let d = only_error(
            &with_zone("utc_offset = \"+01:00\"\nfallback_timezone = \"UTC\""),
            "fallback-zone",
        );
        assert_eq!((d.line, d.column), (6, 1));
    }

    #[test]
    fn rejects_an_unknown_or_fixed_fallback_timezone() {
        let d = only_error(
            &with_zone("timezone = \"contact\"\nfallback_timezone = \"America/Chicgo\""),
            "zone",
        );
        assert_eq!(d.message, "unknown time zone `America/Chicgo`");
        assert_eq!(d.help, "did you mean \"America/Chicago\"?");
        assert_eq!((d.line, d.column), (6, 21));
        let d = only_error(
            &with_zone("timezone = \"contact\"\nfallback_timezone = \"-05:00\""),
            "zone",
        );
        assert_eq!(d.message, "unknown time zone `-05:00`");
        assert_eq!(
            d.help,
            "`fallback_timezone` takes an IANA zone name, which follows DST, such as \"America/Chicago\"; a fixed \
             offset is not accepted"
        );
        // A fallback is a zone, not "contact" again.
        let d = only_error(
            &with_zone("timezone = \"contact\"\nfallback_timezone = \"contact\""),
            "zone",
        );
        assert_eq!(d.message, "unknown time zone `contact`");
    }

    #[test]
    fn suggests_contact_and_utc_offset_for_near_misses_of_timezone() {
        let d = only_error(&with_zone("timezone = \"Contact\""), "zone");
        assert_eq!(d.message, "unknown time zone `Contact`");
        assert_eq!(d.help, "did you mean \"contact\"?");
        assert_eq!((d.line, d.column), (5, 12));
        let d = only_error(&with_zone("timezone = \"+08:00\""), "zone");
        assert_eq!(
            d.help,
            "a fixed offset is written `utc_offset = \"+08:00\"`"
        );
        let d = only_error(
            &with_zone("timezone = \"contact\"\nutc_offset = \"+08:00\""),
            "zone",
        );
        assert_eq!(d.message, "[schedule] has both `timezone` and `utc_offset`");
    }

    #[test]
    fn rejects_repeat_with_contact_zones() {
        let d = only_error(
            &with_zone(
                "timezone = \"contact\"\nstart = 2027-01-01T00:00:00\nrepeat = \"0 9 1 * *\"",
            ),
            "repeat-contact-zone",
        );
        assert_eq!(
            d.message,
            "`repeat` cannot be used with `timezone = \"contact\"`: its cron expression needs one named time zone \
             to be read in, and each contact has its own"
        );
        assert_eq!(
            d.help,
            "set `timezone` to the zone the rounds should start in (e.g. \"America/New_York\"), or remove `repeat` \
             and bump `generation` for each new round"
        );
        assert_eq!((d.line, d.column), (7, 10));
    }

    #[test]
    fn reads_rules_auto_by_default_and_names_in_order() {
        let rules = |list: &str| {
            parse(&with_zone(&format!(
                "timezone = \"America/New_York\"\nrules = {list}"
            )))
        };
        assert_eq!(parse(BASE).unwrap().0.rules, RuleChoice::Auto);
        assert_eq!(rules("[\"auto\"]").unwrap().0.rules, RuleChoice::Auto);
        let (spec, warnings) = rules("[\"us-fl\", \"us\"]").unwrap();
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_eq!(
            spec.rules,
            RuleChoice::Named(vec!["us-fl".to_string(), "us".to_string()])
        );
        assert!(!spec.rules.is_off());
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<CampaignSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn warns_that_an_empty_rules_list_turns_the_legal_hours_off() {
        let (spec, warnings) =
            parse(&with_zone("timezone = \"America/New_York\"\nrules = []")).unwrap();
        assert!(spec.rules.is_off());
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        let w = &warnings[0];
        assert_eq!(
            (w.code.as_ref(), w.severity),
            ("no-rules", Severity::Warning)
        );
        assert_eq!((w.line, w.column), (6, 9));
        assert_eq!(
            w.message,
            "`rules = []` turns off the legal calling hours: contacts may be called at any hour the windows allow, \
             whatever the law of their country or state says"
        );
        assert_eq!(
            w.help,
            "remove `rules` to apply each contact's own (the default, \"auto\"), or name the rules that apply, e.g. \
             `rules = [\"us\"]`"
        );
    }

    #[test]
    fn rejects_unknown_repeated_or_mixed_rules_where_they_are_written() {
        let rules = |list: &str| {
            errors(&with_zone(&format!(
                "timezone = \"America/New_York\"\nrules = {list}"
            )))
        };
        let errs = rules("[\"us\", \"US-FL\"]");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        let d = &errs[0];
        assert_eq!((d.code.as_ref(), d.line, d.column), ("unknown-rule", 6, 16));
        assert_eq!(d.message, "unknown rule `US-FL`");
        assert_eq!(d.help, "did you mean \"us-fl\"?");

        let d = &rules("[\"national-do-not-call\"]")[0];
        assert_eq!(d.code, "unknown-rule");
        let mut names: Vec<&str> = crate::rules::rules()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert!(names.contains(&"us") && names.contains(&"fr"), "{names:?}");
        names.insert(0, "auto");
        assert_eq!(d.help, format!("the rules are: {}", names.join(", ")));

        let errs = rules("[\"us\", \"fr\", \"us\"]");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!((errs[0].code.as_ref(), errs[0].column), ("bad-rules", 22));
        assert_eq!(errs[0].message, "rule `us` is listed twice in `rules`");
        assert_eq!(errs[0].help, "list each rule once");

        let errs = rules("[\"us\", \"auto\"]");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(
            (errs[0].code.as_ref(), errs[0].line, errs[0].column),
            ("bad-rules", 6, 16)
        );
        assert_eq!(
            errs[0].message,
            "\"auto\" cannot be combined with rule names in `rules`"
        );
        assert_eq!(
            errs[0].help,
            "write `rules = [\"auto\"]` for each contact's country and state, or list the rules by name without \
             \"auto\""
        );

        let d = only_error(
            &with_zone("timezone = \"America/New_York\"\nrules = \"auto\""),
            "wrong-type",
        );
        assert_eq!(d.message, "`rules` must be an array, found string");
    }

    #[test]
    fn a_spec_stored_before_contact_zones_and_rules_still_reads() {
        let (spec, _) = parse(BASE).unwrap();
        let mut old = serde_json::to_value(&spec).unwrap();
        old.as_object_mut().unwrap().remove("rules");
        let schedule = old["schedule"].as_object_mut().unwrap();
        schedule.remove("contact_zones");
        schedule.remove("fallback_zone");
        let read: CampaignSpec = serde_json::from_value(old).unwrap();
        assert_eq!(read, spec);
    }

    #[test]
    fn the_timezone_and_region_columns_are_not_unused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("c.csv"),
            "phone,amount,timezone,region,note\n+14155550100,1,,,\n",
        )
        .unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, BASE).unwrap();
        let (_, warnings) = load_campaign_with_warnings(&path).unwrap();
        let unused: Vec<&str> = warnings
            .iter()
            .filter(|w| w.code == "unused-column")
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(
            unused,
            ["column `note` of c.csv is not a declared variable and will not be sent"]
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn aligned_hour_ranges_round_trip(from in 0u16..48, len in 1u16..48) {
                let (a, b) = (from * 30, (from * 30 + len * 30) % DAY_MINUTES);
                let b_text = if b == 0 && a + len * 30 == DAY_MINUTES { "24:00".to_string() } else { hhmm(b) };
                let text = format!("{}-{}", hhmm(a), b_text);
                let r = parse_hours(&text).unwrap();
                prop_assert_eq!(r.from, a);
                prop_assert_eq!(r.to, a + len * 30);
                let shown = r.to_string();
                prop_assert_eq!(parse_hours(&shown).unwrap(), r);
            }

            #[test]
            fn unaligned_hours_are_always_rejected(h in 0u16..24, m in 0u16..60, len in 1u16..600) {
                prop_assume!(m % 30 != 0);
                let text = format!("{}-{}", hhmm(h * 60 + m), hhmm((h * 60 + m + len) % DAY_MINUTES));
                let rejected = matches!(parse_hours(&text), Err(HoursError::NotAligned { .. }));
                prop_assert!(rejected, "{} accepted", text);
            }

            #[test]
            fn day_lists_parse_to_their_set(days in prop::collection::btree_set(1u8..=7, 1..=7)) {
                let text = days.iter().map(|d| DAY_NAMES[usize::from(*d - 1)]).collect::<Vec<_>>().join(",");
                prop_assert_eq!(parse_days(&text).unwrap(), days);
            }

            #[test]
            fn arbitrary_text_never_panics_and_errors_have_places(text in "\\PC{0,200}") {
                if let Err(d) = parse(&text) {
                    prop_assert!(!d.0.is_empty());
                    for e in &d.0 {
                        prop_assert!(e.line >= 1 && e.column >= 1, "{:?}", e);
                        prop_assert!(!e.help.is_empty());
                    }
                }
            }

            #[test]
            fn edits_of_a_good_file_never_panic(pos in 0usize..300, junk in "[a-z_=\\[\\]\"0-9:, -]{0,12}") {
                let mut text = BASE.to_string();
                let at = (0..=pos.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                text.insert_str(at, &junk);
                if let Err(d) = parse(&text) {
                    prop_assert!(d.0.iter().all(|e| e.line >= 1 && !e.message.is_empty()));
                }
            }
        }
    }
}
