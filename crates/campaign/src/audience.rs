//! Whose local time a campaign dials in, and which legal calling hours narrow it: each contact's zone group, and the
//! calendar of a group compiled to one task's platform settings.
//!
//! A contact's zones are, in order: the CSV's `timezone` column; the zones of its number in libphonenumber's data; with
//! `timezone = "contact"` the file's `fallback_timezone`; otherwise (a campaign with one named zone) the campaign's
//! zone. A contact whose zone is still unknown has no group and is never dialled. Its legal rules are those of its
//! number's country and, in the US, its state (the `region` column, else the area code), filtered by `[schedule]
//! rules` when the file names them.
//!
//! A group's calendar allows a minute only when every one of its constraints does: the campaign's windows, holidays,
//! start and end read in each window zone (each of the group's zones with `timezone = "contact"`; the campaign's zone
//! otherwise), and every legal rule read in each zone of the contacts it applies to. The task's `zoneSecond` is the
//! offset of one zone (the group's first, or the campaign's). Where another zone's offset differs by a part of a
//! half hour (Nepal's +05:45 beside India's +05:30), a platform half hour is allowed only if every minute of it is:
//! rounding is always inward.

use std::collections::BTreeSet;

use chrono::{DateTime, Days, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{Calendar, DaySlots, Schedule, Stretch, Zone, stretch_of, stretches_of};
use crate::contacts::{Contact, ContactReader, ContactsError};
use crate::contacts_file::FileStamp;
use crate::limits::ContactLimits;
use crate::rules::{Rule, auto_rules, rule};
use crate::spec::{CampaignSpec, RuleChoice};
use crate::zones::{us_state_of, zones_of};

/// The half hours of a day.
const ALL_SLOTS: u64 = (1 << 48) - 1;
/// Seconds in a platform half hour.
const SLOT_SECS: i64 = 1800;

/// What decides a contact's calendar: its zones and the legal rules that apply to it. Contacts with the same key
/// share a platform task when the campaign reads windows in each contact's zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ZoneGroup {
    /// The contact's zones, sorted by name, without repeats.
    pub zones: Vec<Zone>,
    /// The names of the legal rules that apply, sorted.
    pub rules: Vec<String>,
}

impl ZoneGroup {
    /// A group from zones and rule names in any order.
    pub fn new(mut zones: Vec<Zone>, mut rules: Vec<String>) -> ZoneGroup {
        zones.sort_by_key(|z| z.to_string());
        zones.dedup();
        rules.sort();
        rules.dedup();
        ZoneGroup { zones, rules }
    }

    /// A short stable text naming the group, e.g. `America/Chicago+America/New_York [us us-fl]`.
    pub fn label(&self) -> String {
        let zones: Vec<String> = self.zones.iter().map(Zone::to_string).collect();
        format!("{} [{}]", zones.join("+"), self.rules.join(" "))
    }

    /// The shipped rules named by the group (names the data no longer has are skipped by the caller's validation).
    fn rule_refs(&self) -> impl Iterator<Item = &'static Rule> + '_ {
        self.rules.iter().filter_map(|n| rule(n))
    }
}

impl Ord for ZoneGroup {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.label().cmp(&other.label())
    }
}

impl PartialOrd for ZoneGroup {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The zone group of a contact, or `None` when its zone is unknown (it is then not dialled).
pub fn group_of(spec: &CampaignSpec, contact: &Contact) -> Option<ZoneGroup> {
    let zones: Vec<Zone> = if let Some(tz) = contact.timezone {
        vec![Zone::Iana(tz)]
    } else if let Some(found) = zones_of(&contact.phone) {
        found.iter().copied().map(Zone::Iana).collect()
    } else if spec.schedule.contact_zones {
        vec![spec.schedule.fallback_zone?]
    } else {
        vec![spec.schedule.zone]
    };
    Some(ZoneGroup::new(zones, rules_of(spec, contact)))
}

/// The names of the legal rules that apply to a contact under the campaign's `rules`.
pub fn rules_of(spec: &CampaignSpec, contact: &Contact) -> Vec<String> {
    let Some(country) = contact.country.as_deref() else {
        return Vec::new();
    };
    let state = match country {
        "US" => contact
            .region
            .as_deref()
            .or_else(|| us_state_of(&contact.phone)),
        _ => contact.region.as_deref(),
    };
    auto_rules(country, state)
        .into_iter()
        .filter(|r| match &spec.rules {
            RuleChoice::Auto => true,
            RuleChoice::Named(names) => names.iter().any(|n| n == &r.name),
        })
        .map(|r| r.name.clone())
        .collect()
}

/// The most zone groups a campaign may have: each is a platform task with its own settings and toggles.
pub const MAX_ZONE_GROUPS: usize = 64;
/// How many lines of contacts without a known zone are kept for reporting.
pub const MAX_UNZONED_LINES: usize = 20;

/// One zone group of a campaign's contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCount {
    /// The group.
    pub group: ZoneGroup,
    /// Its contacts.
    pub contacts: u64,
    /// The CSV line of its first contact.
    pub first_line: u64,
}

/// A campaign's contacts by zone group: what its task or tasks are compiled from, and what `validate` and `plan`
/// show. Computed from the whole contacts file whenever it or the campaign file changes, so every contact that can be
/// uploaded is in a group the settings were compiled for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    /// The groups, sorted by their label.
    pub groups: Vec<GroupCount>,
    /// Contacts whose zone is unknown (never dialled).
    pub unzoned: u64,
    /// The CSV lines of the first [`MAX_UNZONED_LINES`] of them.
    pub unzoned_lines: Vec<u64>,
    /// Groups not in the file whose contacts were planned into the task before (the daemon's store keeps them): a
    /// contact the file dropped or moved may still have an order on the platform, so the task's calendar keeps
    /// covering its zones and rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<ZoneGroup>,
    /// The contacts file version and the code that grouped it, when read by [`Audience::read`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AudienceSource>,
}

/// Which version of the contacts file an [`Audience`] was read from, and by which grouping (the crate and its data:
/// libphonenumber's zones, the rules, the holidays). `campaignd status` shows a stored audience again only while both
/// are the same ([`Audience::still_matches`]), instead of reading millions of contacts for a display; the daemon
/// always reads the file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceSource {
    /// The contacts file's stamp, taken before it was read (a write during the read changes it).
    pub stamp: FileStamp,
    /// [`Audience::grouping`] when it was read.
    pub grouping: String,
}

impl Audience {
    /// Groups the accepted contacts of a campaign.
    pub fn of(spec: &CampaignSpec, contacts: impl IntoIterator<Item = Contact>) -> Audience {
        let mut by_group: std::collections::HashMap<ZoneGroup, (u64, u64)> =
            std::collections::HashMap::new();
        let mut out = Audience::default();
        for c in contacts {
            match group_of(spec, &c) {
                Some(g) => {
                    by_group
                        .entry(g)
                        .and_modify(|(n, _)| *n += 1)
                        .or_insert((1, c.line));
                }
                None => {
                    out.unzoned += 1;
                    if out.unzoned_lines.len() < MAX_UNZONED_LINES {
                        out.unzoned_lines.push(c.line);
                    }
                }
            }
        }
        out.groups = by_group
            .into_iter()
            .map(|(group, (contacts, first_line))| GroupCount {
                group,
                contacts,
                first_line,
            })
            .collect();
        out.groups.sort_by(|a, b| a.group.cmp(&b.group));
        out
    }

    /// Reads the campaign's whole contacts file (with `limits`) and groups the contacts it accepts.
    pub fn read(spec: &CampaignSpec, limits: &ContactLimits) -> Result<Audience, ContactsError> {
        let stamp = FileStamp::of(&spec.contacts.file);
        let reader = ContactReader::open_with_limits(spec, limits)?;
        let mut audience = Audience::of(spec, reader.filter_map(Result::ok));
        audience.source = stamp.map(|stamp| AudienceSource {
            stamp,
            grouping: Audience::grouping(),
        });
        Ok(audience)
    }

    /// What groups contacts: this crate's version and the versions of the data it reads.
    pub fn grouping() -> String {
        format!(
            "campaign {}, libphonenumber {}, rules {}, holidays {}",
            env!("CARGO_PKG_VERSION"),
            crate::zones::libphonenumber_data_version(),
            crate::rules::rules_version(),
            crate::rules::holidays_data_version()
        )
    }

    /// Whether this audience was read from the contacts file as it is now (same stamp) by the same grouping.
    pub fn still_matches(&self, contacts_file: &std::path::Path) -> bool {
        self.source.as_ref().is_some_and(|s| {
            s.grouping == Audience::grouping()
                && FileStamp::of(contacts_file).as_ref() == Some(&s.stamp)
        })
    }

    /// The calendars of a campaign's tasks: with a named zone, one (`None`), narrowed by the legal rules of every
    /// group; with `timezone = "contact"`, one per group.
    pub fn calendars<'a>(
        &'a self,
        spec: &'a CampaignSpec,
    ) -> Vec<(Option<&'a ZoneGroup>, ContactCalendar<'a>)> {
        if spec.schedule.contact_zones {
            self.zone_groups()
                .map(|g| (Some(g), ContactCalendar::for_group(&spec.schedule, g)))
                .collect()
        } else {
            vec![(
                None,
                ContactCalendar::for_named_zone(&spec.schedule, self.zone_groups()),
            )]
        }
    }

    /// The groups of the file, then the recorded ones the file no longer has: every group the task's calendar
    /// must cover.
    pub fn zone_groups(&self) -> impl Iterator<Item = &ZoneGroup> {
        self.groups
            .iter()
            .map(|g| &g.group)
            .chain(self.recorded.iter())
    }

    /// Adds the groups recorded for the task that the file does not have (see [`Audience::recorded`]).
    pub fn merge_recorded(&mut self, recorded: impl IntoIterator<Item = ZoneGroup>) {
        for g in recorded {
            if !self.zone_groups().any(|have| *have == g) {
                self.recorded.push(g);
            }
        }
        self.recorded.sort();
    }

    /// The file's only group, when it has exactly one.
    pub fn single_group(&self) -> Option<&ZoneGroup> {
        match self.groups.as_slice() {
            [one] => Some(&one.group),
            _ => None,
        }
    }
}

/// A calendar read in several zones and narrowed by legal rules: one platform task's truth.
#[derive(Debug, Clone)]
pub struct ContactCalendar<'a> {
    schedule: &'a Schedule,
    task_zone: Zone,
    /// The zones the campaign's windows, holidays, start and end are read in.
    window_zones: Vec<Zone>,
    /// Each legal rule with a zone it is read in.
    rules: Vec<(Zone, &'static Rule)>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    /// Allows nothing at all (a contact-zone campaign without a group to dial).
    closed: bool,
}

impl CampaignSpec {
    /// The calendar of the campaign's one task (see [`CampaignSpec::task_specs`]): with a named zone, the windows in
    /// that zone narrowed by the legal rules of every group of its contacts, recorded ones included (none when the
    /// contacts were not read); with `timezone = "contact"`, the calendar of its group, narrowed by every group
    /// recorded for its task (contacts who moved keep their order in it). A contact-zone task with no group gets a
    /// calendar that allows nothing.
    pub fn calendar(&self) -> ContactCalendar<'_> {
        let groups: Vec<&ZoneGroup> = self
            .audience
            .as_ref()
            .map(|a| a.zone_groups().collect())
            .unwrap_or_default();
        if !self.schedule.contact_zones {
            return ContactCalendar::for_named_zone(&self.schedule, groups);
        }
        if groups.is_empty() {
            return ContactCalendar::closed(&self.schedule);
        }
        ContactCalendar::for_groups(&self.schedule, groups)
    }
}

impl CampaignSpec {
    /// The campaign as its platform tasks: itself, or with `timezone = "contact"` and several zone groups one spec per
    /// group, whose audience is that group alone (its task ID and its calendar are the group's).
    pub fn task_specs(&self) -> Vec<CampaignSpec> {
        let groups = match &self.audience {
            Some(a) if self.schedule.contact_zones && a.groups.len() > 1 => &a.groups,
            _ => return vec![self.clone()],
        };
        groups
            .iter()
            .map(|g| {
                let mut spec = self.clone();
                spec.audience = Some(Audience {
                    groups: vec![g.clone()],
                    unzoned: 0,
                    unzoned_lines: Vec::new(),
                    recorded: Vec::new(),
                    source: None,
                });
                spec
            })
            .collect()
    }

    /// The call limits of the legal rules of the task's contacts (Florida's and Oklahoma's 3 calls in 24 hours,
    /// France's 4 in 30 days), each once. The daemon adds them to the caps, which count a number's calls in every
    /// campaign: stricter than the laws' "on one subject", the safe reading. A named-zone task applies them to all its
    /// contacts when any of them has the rule (the task cannot hold its numbers to different caps).
    pub fn legal_caps(&self) -> Vec<crate::spec::CapRule> {
        let mut out: Vec<crate::spec::CapRule> = Vec::new();
        let Some(audience) = &self.audience else {
            return out;
        };
        for rule in audience.zone_groups().flat_map(ZoneGroup::rule_refs) {
            if let Some(c) = &rule.max_calls {
                let cap = crate::spec::CapRule {
                    within_secs: c.within_secs,
                    max: c.max,
                };
                if !out.contains(&cap) {
                    out.push(cap);
                }
            }
        }
        out
    }

    /// The zone group a task spec of [`CampaignSpec::task_specs`] stands for (`None` for a named-zone campaign).
    pub fn task_group(&self) -> Option<&ZoneGroup> {
        if !self.schedule.contact_zones {
            return None;
        }
        self.audience.as_ref().and_then(Audience::single_group)
    }
}

impl<'a> ContactCalendar<'a> {
    /// A calendar that allows nothing.
    pub fn closed(schedule: &'a Schedule) -> ContactCalendar<'a> {
        let mut cal = Self::build(schedule, schedule.zone, vec![schedule.zone], Vec::new());
        cal.closed = true;
        cal
    }

    /// The calendar of one group of a campaign with `timezone = "contact"`: the windows in each of the group's zones,
    /// each rule in each zone. The task's zone is the group's first.
    pub fn for_group(schedule: &'a Schedule, group: &ZoneGroup) -> ContactCalendar<'a> {
        Self::for_groups(schedule, [group])
    }

    /// The calendar of a `timezone = "contact"` task that holds contacts of several groups (its own first, then those
    /// recorded for it: contacts who moved): dialling only when every group allows it. The task's zone is the first
    /// group's first.
    pub fn for_groups<'g>(
        schedule: &'a Schedule,
        groups: impl IntoIterator<Item = &'g ZoneGroup>,
    ) -> ContactCalendar<'a> {
        let groups: Vec<&ZoneGroup> = groups.into_iter().collect();
        let rules = pairs(groups.iter().copied());
        let mut zones: Vec<Zone> = Vec::new();
        for z in groups.iter().flat_map(|g| &g.zones) {
            if !zones.contains(z) {
                zones.push(*z);
            }
        }
        let task_zone = zones.first().copied().unwrap_or(schedule.zone);
        Self::build(schedule, task_zone, zones, rules)
    }

    /// The calendar of the one task of a campaign with a named zone: the windows in that zone, and the rules of
    /// every group of its contacts, each in that group's zones.
    pub fn for_named_zone<'g>(
        schedule: &'a Schedule,
        groups: impl IntoIterator<Item = &'g ZoneGroup>,
    ) -> ContactCalendar<'a> {
        let rules = pairs(groups);
        Self::build(schedule, schedule.zone, vec![schedule.zone], rules)
    }

    fn build(
        schedule: &'a Schedule,
        task_zone: Zone,
        window_zones: Vec<Zone>,
        rules: Vec<(Zone, &'static Rule)>,
    ) -> ContactCalendar<'a> {
        // Read in each zone, the campaign starts at the latest of its local starts and ends at the earliest end.
        let start = schedule
            .start
            .and_then(|s| window_zones.iter().map(|z| z.to_utc(s)).max());
        let end = schedule
            .end
            .and_then(|e| window_zones.iter().map(|z| z.to_utc(e)).min());
        ContactCalendar {
            schedule,
            task_zone,
            window_zones,
            rules,
            start,
            end,
            closed: false,
        }
    }

    /// The zones the campaign's windows are read in.
    pub fn window_zones(&self) -> &[Zone] {
        &self.window_zones
    }

    /// Each legal rule with a zone it is read in.
    pub fn rules(&self) -> &[(Zone, &'static Rule)] {
        &self.rules
    }

    /// Whether it allows nothing at all.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The first instant it may dial, if it starts later than now.
    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }

    /// The instant it ends.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }

    /// Whether `date` (a local date in `zone`) is a holiday of the campaign or of a rule read in that zone: the name,
    /// for "why isn't it dialling".
    pub fn holiday(&self, zone: &Zone, date: NaiveDate) -> Option<String> {
        if self.window_zones.contains(zone) && self.schedule.holidays.contains(&date) {
            return Some("a holiday of the campaign".to_string());
        }
        self.rules
            .iter()
            .filter(|(z, _)| z == zone)
            .find_map(|(_, r)| {
                r.holiday_name(date)
                    .map(|n| format!("{n} ({} public holiday)", r.name))
            })
    }

    /// The zone whose offset is the task's `zoneSecond`.
    pub fn task_zone(&self) -> Zone {
        self.task_zone
    }

    /// The stretch containing `now` (see [`crate::stretch_at`]).
    pub fn stretch_at(&self, now: DateTime<Utc>) -> Option<Stretch> {
        stretch_of(self, now)
    }

    /// The next `n` stretches from `now` (see [`crate::stretches`]).
    pub fn stretches(&self, now: DateTime<Utc>, n: usize) -> Vec<Stretch> {
        stretches_of(self, now, n)
    }

    /// Whether every constraint allows dialling at `at`: the minute's slot in each window zone and in each rule's
    /// zone, and the start and end.
    pub fn allows(&self, at: DateTime<Utc>) -> bool {
        if self.closed || self.start.is_some_and(|s| at < s) || self.end.is_some_and(|e| at >= e) {
            return false;
        }
        let open = |zone: &Zone, mask: &dyn Fn(NaiveDate) -> u64| {
            let local = zone.local(at);
            let slot = (local.hour() * 60 + local.minute()) / 30;
            mask(local.date()) & (1 << slot) != 0
        };
        self.window_zones
            .iter()
            .all(|z| open(z, &|d| self.schedule.day_mask(d)))
            && self.rules.iter().all(|(z, r)| open(z, &|d| r.day_mask(d)))
    }

    /// Every zone the calendar reads, the task's first, without repeats.
    fn zones(&self) -> Vec<Zone> {
        let mut out = vec![self.task_zone];
        for z in self
            .window_zones
            .iter()
            .chain(self.rules.iter().map(|(z, _)| z))
        {
            if !out.contains(z) {
                out.push(*z);
            }
        }
        out
    }
}

/// Each rule of each group, with each zone of that group, without repeats.
fn pairs<'g>(groups: impl IntoIterator<Item = &'g ZoneGroup>) -> Vec<(Zone, &'static Rule)> {
    let mut out: Vec<(Zone, &'static Rule)> = Vec::new();
    for g in groups {
        for r in g.rule_refs() {
            for z in &g.zones {
                if !out.iter().any(|(oz, or)| oz == z && or.name == r.name) {
                    out.push((*z, r));
                }
            }
        }
    }
    out
}

/// One constraint of a fixed view: where its local days come from.
#[derive(Debug, Clone, Copy)]
enum Part<'c> {
    Windows(&'c Schedule),
    Rule(&'static Rule),
}

impl Part<'_> {
    fn day_mask(&self, date: NaiveDate) -> u64 {
        match self {
            Part::Windows(s) => s.day_mask(date),
            Part::Rule(r) => r.day_mask(date),
        }
    }

    fn irregular_dates(&self) -> Vec<NaiveDate> {
        match self {
            Part::Windows(s) => s.holidays.iter().copied().collect(),
            Part::Rule(r) => r.irregular_dates().to_vec(),
        }
    }
}

/// The calendar with every offset fixed: each constraint with its offset from the task's.
pub(crate) struct FixedContactCalendar<'c> {
    /// (zone offset − task offset in seconds, the constraint).
    parts: Vec<(i64, Part<'c>)>,
    /// Task-local dates on which a day's slots may differ from its weekday's pattern.
    irregular: BTreeSet<NaiveDate>,
    /// Allows nothing.
    closed: bool,
}

impl DaySlots for FixedContactCalendar<'_> {
    fn mask(&self, day: NaiveDate) -> u64 {
        if self.closed {
            return 0;
        }
        let mut out = ALL_SLOTS;
        for (shift, part) in &self.parts {
            if out == 0 {
                break;
            }
            if *shift == 0 {
                out &= part.day_mask(day);
                continue;
            }
            // The masks of the zone-local dates around `day`, from two days before to two after.
            let mut near = [None::<u64>; 5];
            let mut bit = |secs: i64| {
                let d = secs.div_euclid(86_400);
                let slot = secs.rem_euclid(86_400) / SLOT_SECS;
                let idx = usize::try_from(d + 2).unwrap_or(0).min(4);
                let mask = *near[idx].get_or_insert_with(|| {
                    shift_days(day, d).map_or(0, |date| part.day_mask(date))
                });
                mask & (1 << slot) != 0
            };
            let mut m = 0u64;
            for s in 0..48i64 {
                // The task's slot s covers task-local seconds [1800 s, 1800 s + 1800) of `day`; in the zone's local
                // time that is shifted by `shift`, and it may straddle two of the zone's slots: both must be open.
                let a = s * SLOT_SECS + shift;
                if bit(a) && bit(a + SLOT_SECS - 1) {
                    m |= 1 << s;
                }
            }
            out &= m;
        }
        out
    }

    fn is_irregular(&self, day: NaiveDate) -> bool {
        self.irregular.contains(&day)
    }

    fn next_irregular(&self, from: NaiveDate) -> Option<NaiveDate> {
        self.irregular.range(from..).next().copied()
    }

    fn last_irregular(&self, from: NaiveDate) -> Option<NaiveDate> {
        self.irregular.range(from..).next_back().copied()
    }
}

fn shift_days(day: NaiveDate, by: i64) -> Option<NaiveDate> {
    let n = Days::new(by.unsigned_abs());
    if by >= 0 {
        day.checked_add_days(n)
    } else {
        day.checked_sub_days(n)
    }
}

impl Calendar for ContactCalendar<'_> {
    type Fixed<'c>
        = FixedContactCalendar<'c>
    where
        Self: 'c;

    fn task_offset_at(&self, at: DateTime<Utc>) -> i32 {
        self.task_zone.offset_at(at)
    }

    fn fixed_at(&self, at: DateTime<Utc>) -> FixedContactCalendar<'_> {
        let task = i64::from(self.task_offset_at(at));
        let mut parts: Vec<(i64, Part<'_>)> = self
            .window_zones
            .iter()
            .map(|z| {
                (
                    i64::from(z.offset_at(at)) - task,
                    Part::Windows(self.schedule),
                )
            })
            .collect();
        parts.extend(
            self.rules
                .iter()
                .map(|(z, r)| (i64::from(z.offset_at(at)) - task, Part::Rule(r))),
        );
        let mut irregular = BTreeSet::new();
        for (shift, part) in &parts {
            for d in part.irregular_dates() {
                if *shift == 0 {
                    irregular.insert(d);
                } else {
                    // A zone-local date touches the task-local days around it (offsets differ by under 27 hours).
                    irregular.extend((-2..=2).filter_map(|k| shift_days(d, k)));
                }
            }
        }
        FixedContactCalendar {
            parts,
            irregular,
            closed: self.closed,
        }
    }

    fn next_transition(
        &self,
        from: DateTime<Utc>,
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut found: Option<DateTime<Utc>> = None;
        for z in self.zones() {
            // Each zone searches only up to the earliest change found so far.
            let limit = found.unwrap_or(horizon);
            if let Some(t) = z.next_transition(from, limit) {
                found = Some(t);
            }
        }
        found
    }

    fn start_utc(&self) -> Option<DateTime<Utc>> {
        self.start
    }

    fn end_utc(&self) -> Option<DateTime<Utc>> {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{HourRange, Location, WindowRule};
    use chrono::Duration;
    use chrono_tz::Tz;

    /// The example: contacts across the US, one in Florida, and one whose CSV names Tokyo.
    const US_CONTACTS: &str = "phone,name,customer,other,timezone\n\
        (212) 555-0100,New York,,,\n\
        (312) 555-0101,Chicago,,,\n\
        (303) 555-0102,Denver,,,\n\
        (602) 555-0103,Phoenix,,,\n\
        (213) 555-0104,Los Angeles,,,\n\
        (808) 555-0105,Honolulu,,,\n\
        (305) 555-0106,Miami,,,\n\
        (646) 555-0107,Also New York,,,\n\
        (917) 555-0108,Tokyo,,,Asia/Tokyo\n";

    fn contact_campaign(extra: &str) -> CampaignSpec {
        let text = format!(
            "scene_id = \"S\"\n[schedule]\ntimezone = \"contact\"\n{extra}\
             windows = [{{ days = \"mon-sun\", hours = [\"07:00-22:00\"] }}]\n\
             [contacts]\nfile = \"c.csv\"\ndefault_country = \"US\"\n"
        );
        crate::parse_campaign(std::path::Path::new("/c/us.toml"), &text)
            .unwrap()
            .0
    }

    fn audience(spec: &CampaignSpec, csv: &'static str) -> Audience {
        let reader =
            ContactReader::from_reader(spec, csv.as_bytes(), &ContactLimits::default()).unwrap();
        Audience::of(spec, reader.filter_map(Result::ok))
    }

    #[test]
    fn contacts_are_grouped_by_their_zones_and_rules() {
        let spec = contact_campaign("");
        let a = audience(&spec, US_CONTACTS);
        let labels: Vec<(String, u64)> = a
            .groups
            .iter()
            .map(|g| (g.group.label(), g.contacts))
            .collect();
        assert_eq!(
            labels,
            [
                ("America/Chicago [us]".to_string(), 1),
                ("America/Denver [us]".to_string(), 1),
                ("America/Los_Angeles [us]".to_string(), 1),
                ("America/New_York [us us-fl]".to_string(), 1),
                ("America/New_York [us]".to_string(), 2),
                ("America/Phoenix [us]".to_string(), 1),
                ("Asia/Tokyo [us]".to_string(), 1),
                ("Pacific/Honolulu [us]".to_string(), 1),
            ]
        );
        assert_eq!(a.unzoned, 0);
        // In winter and in summer: each group's zoneSecond, and the US hours clipped to 08:00-21:00 (Florida's to
        // 08:00-20:00) in the contacts' own time.
        for (now, ny) in [("2027-01-11T12:00:00Z", -5), ("2027-07-12T12:00:00Z", -4)] {
            let cals = a.calendars(&spec);
            assert_eq!(cals.len(), 8);
            for (g, cal) in &cals {
                let st = cal.stretch_at(utc(now)).unwrap();
                let label = g.unwrap().label();
                if label == "America/New_York [us us-fl]" {
                    assert_eq!(st.settings.zone_second, ny * 3600);
                    assert_eq!(
                        st.settings.dial_at_up_hour(),
                        "8,9,10,11,12,13,14,15,16,17,18,19"
                    );
                } else {
                    assert_eq!(
                        st.settings.dial_at_up_hour(),
                        "8,9,10,11,12,13,14,15,16,17,18,19,20"
                    );
                }
                if label.starts_with("America/Phoenix") {
                    assert_eq!(st.settings.zone_second, -7 * 3600, "Phoenix keeps no DST");
                }
                check(cal, &st);
            }
        }
    }

    #[test]
    fn the_legal_call_limits_of_a_tasks_contacts_become_caps() {
        let spec = contact_campaign("");
        let mut spec = spec;
        spec.audience = Some(audience(&spec, US_CONTACTS));
        let tasks = spec.task_specs();
        let caps = |label: &str| {
            tasks
                .iter()
                .find(|t| t.task_group().is_some_and(|g| g.label() == label))
                .unwrap()
                .legal_caps()
        };
        // Miami (Florida): 3 calls in 24 hours; Chicago: no limit in the rules.
        assert_eq!(
            caps("America/New_York [us us-fl]"),
            [crate::spec::CapRule {
                within_secs: 86_400,
                max: 3
            }]
        );
        assert!(caps("America/Chicago [us]").is_empty());
        // The campaign as a whole (a named-zone task would be all of them): Florida's limit once.
        assert_eq!(spec.legal_caps().len(), 1);
    }

    #[test]
    fn a_contact_zone_campaign_has_time_left_while_any_group_has() {
        let mut spec = contact_campaign("end = 2027-01-11T12:00:00\n");
        let no_time = |spec: &CampaignSpec, at: &str| {
            crate::warnings_at(spec, utc(at))
                .iter()
                .any(|d| d.code == "no-time-left")
        };
        assert!(
            !no_time(&spec, "2027-01-12T00:00:00Z"),
            "the groups are not known yet"
        );
        spec.audience = Some(audience(&spec, US_CONTACTS));
        // 10:30 in Honolulu: its contacts still have until noon.
        assert!(!no_time(&spec, "2027-01-11T20:30:00Z"));
        // 12:30 in Honolulu: noon has passed in every contact's zone.
        assert!(no_time(&spec, "2027-01-11T22:30:00Z"));
    }

    #[test]
    fn a_number_without_a_known_zone_is_not_dialled_unless_the_file_names_a_fallback() {
        // +800 is the international freephone code: libphonenumber gives it no zone.
        const CSV: &str =
            "phone,name,customer,other\n+800 1234 5678,Freephone,,\n(212) 555-0100,NY,,\n";
        let spec = contact_campaign("");
        let a = audience(&spec, CSV);
        assert_eq!((a.unzoned, a.unzoned_lines.clone()), (1, vec![2]));
        assert_eq!(a.groups.len(), 1);
        let spec = contact_campaign("fallback_timezone = \"America/Chicago\"\n");
        let a = audience(&spec, CSV);
        assert_eq!(a.unzoned, 0);
        assert_eq!(a.groups[0].group.label(), "America/Chicago []");
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_day(from: u16, to: u16) -> Schedule {
        Schedule {
            zone: Zone::Fixed(0),
            contact_zones: true,
            fallback_zone: None,
            start: None,
            end: None,
            holidays: BTreeSet::new(),
            windows: vec![WindowRule {
                days: (1..=7).collect(),
                hours: vec![HourRange { from, to }],
                at: Location::default(),
            }],
            at: Location::default(),
        }
    }

    fn group(zones: &[Tz], rules: &[&str]) -> ZoneGroup {
        ZoneGroup::new(
            zones.iter().copied().map(Zone::Iana).collect(),
            rules.iter().map(|r| r.to_string()).collect(),
        )
    }

    /// How long a stretch is checked minute by minute.
    const CHECK_SPAN: Duration = Duration::days(9);

    /// Every minute of the stretch: the platform's settings allow it exactly when the calendar does.
    fn check(cal: &ContactCalendar<'_>, st: &Stretch) {
        check_minutes(cal, st, true);
    }

    /// Every minute of the stretch: the platform's settings allow it only if the calendar does, and (`exact`) always
    /// when it does.
    fn check_minutes(cal: &ContactCalendar<'_>, st: &Stretch, exact: bool) {
        let end = st
            .until
            .unwrap_or(st.from + CHECK_SPAN)
            .min(st.from + CHECK_SPAN);
        let mut t = st.from;
        while t < end {
            let (platform, truth) = (st.settings.allows(t), cal.allows(t));
            assert!(
                !platform || truth,
                "the platform dials at {t}, which is forbidden"
            );
            assert!(
                !exact || platform == truth,
                "at {t}: settings {:?}",
                st.settings
            );
            t += Duration::minutes(1);
        }
    }

    #[test]
    fn los_angeles_contacts_are_called_in_los_angeles_hours_and_clipped_by_federal_law() {
        let s = every_day(7 * 60, 22 * 60);
        let g = group(&[Tz::America__Los_Angeles], &["us"]);
        let cal = ContactCalendar::for_group(&s, &g);
        let st = cal.stretch_at(utc("2027-01-11T00:00:00Z")).unwrap();
        assert_eq!(st.settings.zone_second, -8 * 3600);
        // 07:00-22:00 asked, 08:00-21:00 allowed.
        assert_eq!(
            st.settings.dial_at_up_hour(),
            "8,9,10,11,12,13,14,15,16,17,18,19,20"
        );
        assert_eq!(
            st.settings.dial_at_down_hour(),
            "8,9,10,11,12,13,14,15,16,17,18,19,20"
        );
        check(&cal, &st);
    }

    #[test]
    fn a_group_spanning_two_zones_dials_only_when_both_allow() {
        let s = every_day(9 * 60, 17 * 60);
        let g = group(&[Tz::America__Boise, Tz::America__Los_Angeles], &["us"]);
        let cal = ContactCalendar::for_group(&s, &g);
        let st = cal.stretch_at(utc("2027-01-11T00:00:00Z")).unwrap();
        // Boise (UTC-7) is the task's zone; 09:00-17:00 in both is 10:00-17:00 Boise time.
        assert_eq!(st.settings.zone_second, -7 * 3600);
        assert_eq!(st.settings.dial_at_up_hour(), "10,11,12,13,14,15,16");
        check(&cal, &st);
    }

    #[test]
    fn a_quarter_hour_offset_rounds_the_platform_half_hours_inward() {
        // Kolkata (+05:30) is the task zone; Kathmandu (+05:45) is 15 minutes ahead.
        let s = every_day(9 * 60, 17 * 60);
        let g = group(&[Tz::Asia__Kathmandu, Tz::Asia__Kolkata], &[]);
        let cal = ContactCalendar::for_group(&s, &g);
        let st = cal.stretch_at(utc("2027-01-11T00:00:00Z")).unwrap();
        assert_eq!(
            st.settings.zone_second,
            5 * 3600 + 45 * 60,
            "Kathmandu sorts first"
        );
        // In Kathmandu time: Kathmandu 09:00-17:00, Kolkata 09:15-17:15: half hours fully inside both are 09:30-17:00.
        assert_eq!(st.settings.dial_at_up_hour(), "10,11,12,13,14,15,16");
        assert_eq!(st.settings.dial_at_down_hour(), "9,10,11,12,13,14,15,16");
        // Kolkata's 09:15-09:30 and Kathmandu's 17:00-17:15 stay undialled: inward, never outward.
        check_minutes(&cal, &st, false);
    }

    #[test]
    fn a_named_zone_campaign_is_narrowed_by_its_contacts_legal_hours() {
        let mut s = every_day(7 * 60, 22 * 60);
        s.contact_zones = false;
        s.zone = Zone::Iana(Tz::America__New_York);
        let groups = [
            group(&[Tz::America__New_York], &["us"]),
            group(&[Tz::America__Los_Angeles], &["us"]),
        ];
        let cal = ContactCalendar::for_named_zone(&s, &groups);
        let st = cal.stretch_at(utc("2027-01-11T00:00:00Z")).unwrap();
        assert_eq!(st.settings.zone_second, -5 * 3600);
        // New York time: asked 07-22; NY law 08-21; LA law 08-21 LA = 11-24 NY. Left: 11:00-21:00.
        assert_eq!(
            st.settings.dial_at_up_hour(),
            "11,12,13,14,15,16,17,18,19,20"
        );
        check(&cal, &st);
    }

    #[test]
    fn each_zones_dst_change_ends_the_stretch() {
        // Europe changes on 2027-03-28, the US on 2027-03-14.
        let s = every_day(9 * 60, 17 * 60);
        let g = group(&[Tz::America__New_York, Tz::Europe__London], &[]);
        let cal = ContactCalendar::for_group(&s, &g);
        let all = cal.stretches(utc("2027-03-01T00:00:00Z"), 3);
        assert_eq!(all[0].until, Some(utc("2027-03-14T07:00:00Z")));
        assert_eq!(all[1].until, Some(utc("2027-03-28T01:00:00Z")));
        for st in &all {
            check(&cal, st);
        }
    }

    #[test]
    fn start_and_end_are_read_in_every_zone() {
        let mut s = every_day(0, 24 * 60);
        s.start = Some(
            NaiveDate::from_ymd_opt(2027, 1, 11)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap(),
        );
        s.end = Some(
            NaiveDate::from_ymd_opt(2027, 1, 12)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap(),
        );
        let g = group(&[Tz::America__New_York, Tz::America__Chicago], &[]);
        let cal = ContactCalendar::for_group(&s, &g);
        // Starts at 09:00 in Chicago (the later), ends at 09:00 in New York (the earlier).
        assert_eq!(cal.start_utc(), Some(utc("2027-01-11T15:00:00Z")));
        assert_eq!(cal.end_utc(), Some(utc("2027-01-12T14:00:00Z")));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Zones with whole-hour, half-hour and quarter-hour offsets, DST north and south, and Lord Howe's
        /// half-hour DST.
        const ZONES: [Tz; 10] = [
            Tz::America__New_York,
            Tz::America__Los_Angeles,
            Tz::America__Phoenix,
            Tz::America__St_Johns,
            Tz::Asia__Kathmandu,
            Tz::Asia__Kolkata,
            Tz::Australia__Lord_Howe,
            Tz::Australia__Sydney,
            Tz::Europe__Paris,
            Tz::Pacific__Chatham,
        ];

        fn schedule() -> impl Strategy<Value = Schedule> {
            let window = (
                prop::collection::btree_set(1u8..=7, 1..=7),
                (0u16..47, 1u16..=48),
            )
                .prop_map(|(days, (a, len))| WindowRule {
                    days,
                    hours: vec![HourRange {
                        from: a * 30,
                        to: (a + len).min(48) * 30,
                    }],
                    at: Location::default(),
                });
            (
                prop::collection::vec(window, 1..=3),
                prop::collection::btree_set(0i64..730, 0..4),
            )
                .prop_map(|(windows, holidays)| {
                    let base = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
                    Schedule {
                        zone: Zone::Fixed(0),
                        contact_zones: true,
                        fallback_zone: None,
                        start: None,
                        end: None,
                        holidays: holidays
                            .into_iter()
                            .map(|d| base + Duration::days(d))
                            .collect(),
                        windows,
                        at: Location::default(),
                    }
                })
        }

        fn group() -> impl Strategy<Value = ZoneGroup> {
            (
                prop::collection::vec(0..ZONES.len(), 1..=3),
                prop::collection::btree_set(0..crate::rules::rules().len(), 0..=2),
            )
                .prop_map(|(zones, rules)| {
                    ZoneGroup::new(
                        zones.into_iter().map(|i| Zone::Iana(ZONES[i])).collect(),
                        rules
                            .into_iter()
                            .map(|i| crate::rules::rules()[i].name.clone())
                            .collect(),
                    )
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// The settings of each stretch never allow a minute that a zone or a rule of the group forbids; where
            /// the zones' offsets differ by whole half hours they allow exactly what the calendar allows.
            #[test]
            fn platform_settings_never_allow_a_forbidden_minute(
                s in schedule(),
                g in group(),
                minutes in 0i64..(2 * 365 * 1440),
            ) {
                let cal = ContactCalendar::for_group(&s, &g);
                let now = utc("2027-01-01T00:00:00Z") + Duration::minutes(minutes);
                for st in cal.stretches(now, 2) {
                    let exact = cal.zones().windows(2).all(|w| {
                        (w[0].offset_at(st.from) - w[1].offset_at(st.from)) % 1800 == 0
                    });
                    let end = st.until.unwrap_or(st.from + CHECK_SPAN).min(st.from + CHECK_SPAN);
                    // Allowed-ness changes only on quarter hours (offsets and windows are quarter-hour multiples).
                    let mut t = st.from;
                    while t < end {
                        let (platform, truth) = (st.settings.allows(t), cal.allows(t));
                        prop_assert!(!platform || truth, "platform dials at {} which the group forbids", t);
                        if exact {
                            prop_assert_eq!(platform, truth, "at {}", t);
                        }
                        let next = t + Duration::minutes(15);
                        t = next - Duration::seconds(next.timestamp().rem_euclid(900));
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]

            /// A named-zone campaign with contacts in random groups: its one task's settings never allow a minute that
            /// any one contact's own zones and rules forbid.
            #[test]
            fn a_named_zone_task_never_dials_a_contact_outside_its_own_hours(
                mut s in schedule(),
                zone in 0..ZONES.len(),
                contacts in prop::collection::vec(group(), 1..=4),
                minutes in 0i64..(2 * 365 * 1440),
            ) {
                s.contact_zones = false;
                s.zone = Zone::Iana(ZONES[zone]);
                let cal = ContactCalendar::for_named_zone(&s, &contacts);
                let each: Vec<ContactCalendar<'_>> = contacts
                    .iter()
                    .map(|g| ContactCalendar::for_named_zone(&s, [g]))
                    .collect();
                let now = utc("2027-01-01T00:00:00Z") + Duration::minutes(minutes);
                for st in cal.stretches(now, 2) {
                    let end = st.until.unwrap_or(st.from + CHECK_SPAN).min(st.from + CHECK_SPAN);
                    let mut t = st.from;
                    while t < end {
                        if st.settings.allows(t) {
                            for (g, c) in contacts.iter().zip(&each) {
                                prop_assert!(c.allows(t), "the task dials {} at {}", g.label(), t);
                            }
                        }
                        let next = t + Duration::minutes(15);
                        t = next - Duration::seconds(next.timestamp().rem_euclid(900));
                    }
                }
            }
        }
    }
}
