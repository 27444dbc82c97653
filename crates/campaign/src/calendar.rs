//! The campaign calendar, the platform's dial window, and the compiler from one to a series of the other.
//!
//! Everything here is pure: instants are arguments, nothing reads a clock.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike,
    Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::diagnostics::escape_input;

/// Minutes in a day.
pub(crate) const DAY_MINUTES: u16 = 1440;
/// Half-hour slots in a day.
const SLOTS: u32 = 48;

/// Where something was written in a campaign file (1-based; 0 when unknown). Kept so that warnings computed later
/// (they need `now`) can still point at the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The campaign's time zone: an IANA zone (DST included) or a fixed UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Zone {
    /// An IANA zone such as `America/New_York`.
    Iana(Tz),
    /// A fixed offset east of UTC, in seconds.
    Fixed(i32),
}

impl Zone {
    /// The UTC offset in seconds (east positive) in force at `at`.
    pub fn offset_at(&self, at: DateTime<Utc>) -> i32 {
        match self {
            Zone::Iana(tz) => tz
                .offset_from_utc_datetime(&at.naive_utc())
                .fix()
                .local_minus_utc(),
            Zone::Fixed(secs) => *secs,
        }
    }

    /// The local wall-clock time at `at`.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.naive_utc() + Duration::seconds(i64::from(self.offset_at(at)))
    }

    /// The instant of a local wall-clock time. An ambiguous time (clocks going back) gives the earlier instant; a time
    /// that does not exist (clocks going forward) gives the instant the gap ends.
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self {
            Zone::Fixed(secs) => (local - Duration::seconds(i64::from(*secs))).and_utc(),
            Zone::Iana(tz) => {
                let mut probe = local;
                for _ in 0..=(26 * 60) {
                    match tz.from_local_datetime(&probe) {
                        chrono::LocalResult::Single(t) => return t.with_timezone(&Utc),
                        chrono::LocalResult::Ambiguous(a, b) => {
                            return a.min(b).with_timezone(&Utc);
                        }
                        chrono::LocalResult::None => {
                            // Inside a gap: the first local minute after it is the end of the gap.
                            probe = (probe + Duration::minutes(1))
                                .with_second(0)
                                .unwrap_or(probe);
                        }
                    }
                }
                // No zone has a gap this long; fall back to the offset before the wall time.
                let before = tz.offset_from_utc_datetime(&local).fix().local_minus_utc();
                (local - Duration::seconds(i64::from(before))).and_utc()
            }
        }
    }

    /// The first instant after `from` at which the UTC offset differs from the one at `from`, searched up to
    /// `horizon` (exclusive). `None` for fixed offsets and when there is no change before the horizon.
    pub fn next_transition(
        &self,
        from: DateTime<Utc>,
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let Zone::Iana(_) = self else { return None };
        let base = self.offset_at(from);
        // Offsets change at most a few times a year; a daily probe finds every change tzdata has in its future.
        let step = Duration::hours(12);
        let mut lo = from;
        while lo < horizon {
            #[cfg(test)]
            OFFSET_PROBES.with(|n| n.set(n.get() + 1));
            let hi = (lo + step).min(horizon);
            if self.offset_at(hi) != base {
                // Invariant: offset(a) == base, offset(b) != base. Offsets change on whole seconds: bisect those.
                let (mut a, mut b) = (lo.timestamp(), hi.timestamp() + 1);
                while b - a > 1 {
                    let mid = a + (b - a) / 2;
                    let at = DateTime::from_timestamp(mid, 0).unwrap_or(hi);
                    if self.offset_at(at) == base {
                        a = mid;
                    } else {
                        b = mid;
                    }
                }
                return DateTime::from_timestamp(b, 0).or(Some(hi));
            }
            if hi == horizon {
                break;
            }
            lo = hi;
        }
        None
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Iana(tz) => f.write_str(tz.name()),
            Zone::Fixed(secs) => f.write_str(&format_offset(*secs)),
        }
    }
}

impl From<Zone> for String {
    fn from(z: Zone) -> String {
        z.to_string()
    }
}

impl TryFrom<String> for Zone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.starts_with('+') || s.starts_with('-') {
            parse_offset(&s)
                .map(Zone::Fixed)
                .ok_or_else(|| format!("bad UTC offset `{}`", escape_input(&s)))
        } else {
            s.parse::<Tz>()
                .map(Zone::Iana)
                .map_err(|_| format!("unknown time zone `{}`", escape_input(&s)))
        }
    }
}

/// Formats an offset in seconds as `+HH:MM`.
pub fn format_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
}

/// Parses `+HH:MM` / `-HH:MM` (at most 14:00) into seconds east of UTC.
pub(crate) fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if m >= 60 || h * 60 + m > 14 * 60 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// One local time range of a window, in minutes from the local midnight of the day it belongs to.
/// `to` is greater than `from`; `to > 1440` means the range crosses midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourRange {
    /// First allowed minute.
    pub from: u16,
    /// First minute no longer allowed (up to 2880).
    pub to: u16,
}

impl fmt::Display for HourRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = if self.to > DAY_MINUTES {
            self.to - DAY_MINUTES
        } else {
            self.to
        };
        write!(f, "{}-{}", hhmm(self.from), hhmm(to))
    }
}

pub(crate) fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A window of the campaign: the weekdays it applies to and its local hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRule {
    /// ISO weekdays, Monday = 1 … Sunday = 7.
    pub days: BTreeSet<u8>,
    /// Local time ranges; a range crossing midnight belongs to the day it starts.
    pub hours: Vec<HourRange>,
    /// Where the window was written.
    #[serde(default)]
    pub at: Location,
}

/// The campaign's own calendar: the truth about when it may dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Time zone of every local time here. With [`Schedule::contact_zones`] it is the fallback zone if one is given,
    /// else `Zone::Fixed(0)`, and it is NOT the zone the windows are read in: each contact's own zones are.
    pub zone: Zone,
    /// `timezone = "contact"`: the windows, holidays, start and end are read in each contact's own local time.
    #[serde(default)]
    pub contact_zones: bool,
    /// `fallback_timezone` (only with `timezone = "contact"`): the zone of contacts whose own zone is unknown; without
    /// it such contacts are not dialled.
    #[serde(default)]
    pub fallback_zone: Option<Zone>,
    /// Local start (inclusive).
    pub start: Option<NaiveDateTime>,
    /// Local end (exclusive); the task is completed then.
    pub end: Option<NaiveDateTime>,
    /// Local dates without any dialling: no minute of that date, and no window that starts on it.
    pub holidays: BTreeSet<NaiveDate>,
    /// When dialling is allowed.
    pub windows: Vec<WindowRule>,
    /// Where `[schedule]` was written.
    #[serde(default)]
    pub at: Location,
}

/// ISO weekday number of a date, Monday = 1.
fn iso_weekday(d: NaiveDate) -> u8 {
    d.weekday().number_from_monday() as u8
}

impl Schedule {
    /// The start as an instant.
    pub fn start_utc(&self) -> Option<DateTime<Utc>> {
        self.start.map(|s| self.zone.to_utc(s))
    }

    /// The end as an instant.
    pub fn end_utc(&self) -> Option<DateTime<Utc>> {
        self.end.map(|e| self.zone.to_utc(e))
    }

    /// The allowed half-hour slots of a local date (bit `s` = local minutes `[30 s, 30 s + 30)`), ignoring
    /// start and end.
    pub(crate) fn day_mask(&self, date: NaiveDate) -> u64 {
        if self.holidays.contains(&date) {
            return 0;
        }
        let today = iso_weekday(date);
        let yesterday = date
            .pred_opt()
            .filter(|d| !self.holidays.contains(d))
            .map(iso_weekday);
        let mut mask = 0u64;
        for rule in &self.windows {
            for r in &rule.hours {
                if rule.days.contains(&today) {
                    mask |= slot_bits(r.from, r.to.min(DAY_MINUTES));
                }
                if r.to > DAY_MINUTES && yesterday.is_some_and(|y| rule.days.contains(&y)) {
                    mask |= slot_bits(0, r.to - DAY_MINUTES);
                }
            }
        }
        mask
    }

    /// Whether the campaign allows dialling at `at`.
    pub fn allows(&self, at: DateTime<Utc>) -> bool {
        if self.start_utc().is_some_and(|s| at < s) || self.end_utc().is_some_and(|e| at >= e) {
            return false;
        }
        let local = self.zone.local(at);
        let slot = (local.hour() * 60 + local.minute()) / 30;
        self.day_mask(local.date()) & (1 << slot) != 0
    }
}

/// Slot bits covering local minutes `[from, to)` (both multiples of 30, `to <= 1440`).
fn slot_bits(from: u16, to: u16) -> u64 {
    let (a, b) = (u32::from(from / 30), u32::from(to.div_ceil(30)));
    if b <= a {
        return 0;
    }
    let upper = if b >= 64 { u64::MAX } else { (1u64 << b) - 1 };
    upper & !((1u64 << a) - 1)
}

/// The platform's reading of a task's dial window (`zoneSecond`, `dialAtWeekDay`, `dialAtUpHour`, `dialAtDownHour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialWindow {
    /// `zoneSecond`: fixed offset east of UTC, seconds.
    pub zone_second: i32,
    /// `dialAtWeekDay` as a bitmask: bit `d` set means ISO weekday `d` (Monday = 1 … Sunday = 7). Bit 0 is unused.
    pub weekdays: u8,
    /// `dialAtUpHour`: bit `h` set means `[h:00, h:30)` may be dialled.
    pub up_hours: u32,
    /// `dialAtDownHour`: bit `h` set means `[h:30, h+1:00)` may be dialled.
    pub down_hours: u32,
}

impl DialWindow {
    /// Whether the platform, left alone with these settings, may dial at `at`: local = UTC + zoneSecond; the weekday
    /// of the local date must be listed; minute < 30 uses the up hours, otherwise the down hours.
    pub fn allows(&self, at: DateTime<Utc>) -> bool {
        let local = at.naive_utc() + Duration::seconds(i64::from(self.zone_second));
        let day = iso_weekday(local.date());
        if self.weekdays & (1 << day) == 0 {
            return false;
        }
        let hours = if local.minute() < 30 {
            self.up_hours
        } else {
            self.down_hours
        };
        hours & (1 << local.hour()) != 0
    }

    /// `dialAtWeekDay`: e.g. `"1,2,3,4,5"` (empty when no day is allowed).
    pub fn dial_at_week_day(&self) -> String {
        comma_list((1..=7u32).filter(|d| self.weekdays & (1 << d) != 0))
    }

    /// `dialAtUpHour`: e.g. `"9,10,11"`.
    pub fn dial_at_up_hour(&self) -> String {
        comma_list((0..24u32).filter(|h| self.up_hours & (1 << h) != 0))
    }

    /// `dialAtDownHour`: e.g. `"9,10,11"`.
    pub fn dial_at_down_hour(&self) -> String {
        comma_list((0..24u32).filter(|h| self.down_hours & (1 << h) != 0))
    }

    /// Whether these settings allow no time at all.
    pub fn is_closed(&self) -> bool {
        self.weekdays & 0b1111_1110 == 0 || (self.up_hours | self.down_hours) == 0
    }

    /// Reads the platform's fields back (e.g. from `getTaskDetail`); `None` if a field is not a comma list of numbers
    /// in range.
    pub fn from_platform_fields(
        zone_second: i32,
        week_days: &str,
        up_hours: &str,
        down_hours: &str,
    ) -> Option<Self> {
        fn bits(s: &str, lo: u32, hi: u32) -> Option<u32> {
            let mut out = 0u32;
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let n: u32 = part.parse().ok()?;
                if n < lo || n > hi {
                    return None;
                }
                out |= 1 << n;
            }
            Some(out)
        }
        Some(Self {
            zone_second,
            weekdays: u8::try_from(bits(week_days, 1, 7)?).ok()?,
            up_hours: bits(up_hours, 0, 23)?,
            down_hours: bits(down_hours, 0, 23)?,
        })
    }
}

fn comma_list(items: impl Iterator<Item = u32>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// A run of time in which one fixed [`DialWindow`] allows exactly what the campaign allows, minute for minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stretch {
    /// The platform settings for the whole stretch.
    pub settings: DialWindow,
    /// Start of the stretch.
    pub from: DateTime<Utc>,
    /// End of the stretch (exclusive); `None` = these settings stay right forever.
    pub until: Option<DateTime<Utc>>,
    /// First instant in `[from, until)` the campaign allows; `None` if it allows none.
    pub first_open: Option<DateTime<Utc>>,
    /// End of the last allowed period in the stretch (at most `until`); `None` if nothing is allowed or the stretch
    /// never ends.
    pub last_close: Option<DateTime<Utc>>,
}

/// How far ahead to look for the zone's next offset change. tzdata's future rules are finite, so past this horizon
/// nothing would change anyway.
const TRANSITION_HORIZON_DAYS: i64 = 100 * 366;

/// What the stretch walk reads of a calendar once every UTC offset it involves is fixed: the allowed half-hour slots
/// of each day in the task's offset, and the days on which those may differ from their weekday's pattern.
pub(crate) trait DaySlots {
    /// The allowed slots of a local date in the task's offset (bit `s` = local minutes `[30 s, 30 s + 30)`), ignoring
    /// start and end.
    fn mask(&self, day: NaiveDate) -> u64;
    /// Whether `day` is irregular: its slots, or the next day's, may differ from its weekday's pattern (a holiday).
    /// A day whose slots depend on its weekday alone is neither irregular nor the day after an irregular one.
    fn is_irregular(&self, day: NaiveDate) -> bool;
    /// The first irregular day at or after `from`.
    fn next_irregular(&self, from: NaiveDate) -> Option<NaiveDate>;
    /// The last irregular day at or after `from` (`None` when there is none).
    fn last_irregular(&self, from: NaiveDate) -> Option<NaiveDate>;
}

impl DaySlots for Schedule {
    fn mask(&self, day: NaiveDate) -> u64 {
        self.day_mask(day)
    }

    fn is_irregular(&self, day: NaiveDate) -> bool {
        self.holidays.contains(&day)
    }

    fn next_irregular(&self, from: NaiveDate) -> Option<NaiveDate> {
        self.holidays.range(from..).next().copied()
    }

    fn last_irregular(&self, from: NaiveDate) -> Option<NaiveDate> {
        self.holidays.range(from..).next_back().copied()
    }
}

/// A calendar the stretch compiler can compile: one or several time zones, one of which is the task's (its offset is
/// `zoneSecond`). [`Schedule`] is the one-zone case; `audience::ContactCalendar` reads windows and legal hours in
/// each contact zone of a group.
pub(crate) trait Calendar {
    /// The walk's view of the calendar with every offset fixed as it is at `at`.
    type Fixed<'a>: DaySlots
    where
        Self: 'a;
    /// `zoneSecond` at `at`: the task zone's offset.
    fn task_offset_at(&self, at: DateTime<Utc>) -> i32;
    /// The calendar with every offset fixed as it is at `at`.
    fn fixed_at(&self, at: DateTime<Utc>) -> Self::Fixed<'_>;
    /// The first instant after `from` and before `horizon` at which any offset the calendar reads changes.
    fn next_transition(&self, from: DateTime<Utc>, horizon: DateTime<Utc>)
    -> Option<DateTime<Utc>>;
    /// The first instant it may dial (inclusive).
    fn start_utc(&self) -> Option<DateTime<Utc>>;
    /// The instant it ends (exclusive).
    fn end_utc(&self) -> Option<DateTime<Utc>>;
}

impl Calendar for Schedule {
    type Fixed<'a> = &'a Schedule;

    fn task_offset_at(&self, at: DateTime<Utc>) -> i32 {
        self.zone.offset_at(at)
    }

    fn fixed_at(&self, _at: DateTime<Utc>) -> &Schedule {
        self
    }

    fn next_transition(
        &self,
        from: DateTime<Utc>,
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.zone.next_transition(from, horizon)
    }

    fn start_utc(&self) -> Option<DateTime<Utc>> {
        Schedule::start_utc(self)
    }

    fn end_utc(&self) -> Option<DateTime<Utc>> {
        Schedule::end_utc(self)
    }
}

impl<T: DaySlots + ?Sized> DaySlots for &T {
    fn mask(&self, day: NaiveDate) -> u64 {
        (**self).mask(day)
    }

    fn is_irregular(&self, day: NaiveDate) -> bool {
        (**self).is_irregular(day)
    }

    fn next_irregular(&self, from: NaiveDate) -> Option<NaiveDate> {
        (**self).next_irregular(from)
    }

    fn last_irregular(&self, from: NaiveDate) -> Option<NaiveDate> {
        (**self).last_irregular(from)
    }
}

/// Compiles the stretch that starts at `from` (which must be at or after the calendar's start).
fn compile<C: Calendar + ?Sized>(calendar: &C, from: DateTime<Utc>) -> Stretch {
    let offset = calendar.task_offset_at(from);
    let end = calendar.end_utc();
    let days = calendar.fixed_at(from);
    // Walk first as if the offsets never changed: irregular calendars end within days, and only that span needs
    // searching for an offset change (the search is the costly part for stretches that last for years).
    let fixed = walk(&days, from, offset, end, true);
    // Past the horizon nothing changes, however far the stretch goes (a holiday in 9999 would otherwise mean probing
    // the zone every 12 hours until then).
    let cap = from + Duration::days(TRANSITION_HORIZON_DAYS);
    let horizon = fixed.until.map_or(cap, |u| u.min(cap));
    match calendar.next_transition(from, horizon) {
        Some(t) => walk(&days, from, offset, Some(end.map_or(t, |e| e.min(t))), true),
        None => fixed,
    }
}

/// Regular days (not the first day, not a holiday, not the day after one) walked in a row before whole weeks may be
/// skipped: one full week brings the requirements and the forbidden slots to their fixed point.
const REGULAR_DAYS_BEFORE_SKIP: u32 = 7;

/// Seconds in a half-hour slot.
const SLOT_SECS: i64 = 30 * 60;

/// An instant as whole seconds since the Unix epoch and nanoseconds: ordered as the instants are, and stepped by
/// plain integer addition. [`walk`]'s own form of `DateTime<Utc>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Moment {
    secs: i64,
    nanos: u32,
}

impl Moment {
    fn of(t: DateTime<Utc>) -> Moment {
        Moment {
            secs: t.timestamp(),
            nanos: t.timestamp_subsec_nanos(),
        }
    }

    fn at_second(secs: i64) -> Moment {
        Moment { secs, nanos: 0 }
    }

    /// Back to a `DateTime`. The walk's instants are the ones it was given and slot boundaries between them, or a
    /// few weeks past the last (the calendar's dates are years, not millennia, apart), far inside chrono's range;
    /// the clamp only keeps this function total.
    fn to_utc(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.secs, self.nanos).unwrap_or(if self.secs < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }
}

#[cfg(test)]
thread_local! {
    /// Days walked by [`walk`] on this thread, for the tests that count the work.
    static DAYS_WALKED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Zone probes made by [`Zone::next_transition`] on this thread, for the same tests.
    static OFFSET_PROBES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The stretch from `from` in the fixed offset `offset`, ending at `hard_end` at the latest.
///
/// With `skip`, whole weeks of regular days are jumped over once [`REGULAR_DAYS_BEFORE_SKIP`] have been walked,
/// leaving the last full week before the next holiday, the hard end or the point where the pattern is proved to be
/// walked as usual. A regular week after the fixed point can neither add a requirement nor end the stretch, and the
/// day skipped to has the weekday of the day skipped from, so whether an open run is in progress is the same. The
/// instants the walk keeps (the last close, where the open run began) are set again by the week walked before they
/// are used, unless nothing opens in it (then they are the same with or without the skip) or everything does (then
/// the run began before the skip, with or without it). So a holiday years ahead costs a few weeks of walking, not
/// every half hour until then (without the skip, a campaign whose only holiday was in 9999 took seconds). The
/// result is the same as without the skip; a property test checks it.
pub(crate) fn walk<D: DaySlots + ?Sized>(
    schedule: &D,
    from: DateTime<Utc>,
    offset: i32,
    hard_end: Option<DateTime<Utc>>,
    skip: bool,
) -> Stretch {
    let offset_d = Duration::seconds(i64::from(offset));
    // The walk steps by half-hour slots, hundreds of them per call: it keeps its instants as `Moment`s (whole
    // seconds and nanoseconds, ordered as the instants are) and turns them back into `DateTime`s once at the end,
    // rather than doing chrono's checked date arithmetic twice per slot (most of the first reconcile's time with
    // 10,000 campaigns).
    let from_i = Moment::of(from);

    let local_from = from.naive_utc() + offset_d;
    let from_day = local_from.date();
    let first_slot = (local_from.hour() * 60 + local_from.minute()) / 30;
    // From this day on, every day's mask depends only on its weekday: one clean week then proves forever.
    let mut stable_from = from_day.succ_opt().unwrap_or(from_day);
    if let Some(last) = schedule.last_irregular(from_day) {
        stable_from = stable_from.max(last.checked_add_days(chrono::Days::new(2)).unwrap_or(last));
    }
    let forever_from = stable_from
        .checked_add_days(chrono::Days::new(7))
        .unwrap_or(stable_from);

    let mut req_days: u8 = 0; // weekdays that must be on (bit d)
    let mut req_slots: u64 = 0; // half-hour slots that must be on
    let mut forbidden = [0u64; 8]; // per weekday: slots seen closed on that weekday
    let mut first_open: Option<Moment> = None;
    let mut last_close: Option<Moment> = None;
    let hard_end_i = hard_end.map(Moment::of);
    let mut until = hard_end_i;
    // The open run being walked: where it began, and the state just before it, so that a stretch that would end
    // in the middle of an open run can end where that run began instead (the daemon then pauses and updates in
    // closed time and no dialling is cut short).
    let mut in_run = false;
    let mut run_start = from_i;
    let mut before_run = (req_days, req_slots, first_open, last_close);

    let mut day = from_day;
    let mut stable = false;
    let mut regular_days = 0u32;
    let hard_end_day = hard_end.map(|h| (h.naive_utc() + offset_d).date());
    'walk: loop {
        if day >= forever_from {
            stable = true;
            break;
        }
        let regular = day != from_day
            && !schedule.is_irregular(day)
            && !day.pred_opt().is_some_and(|d| schedule.is_irregular(d));
        regular_days = if regular { regular_days + 1 } else { 0 };
        if skip && regular && regular_days > REGULAR_DAYS_BEFORE_SKIP {
            let mut limit = forever_from;
            if let Some(h) = schedule.next_irregular(day) {
                limit = limit.min(h);
            }
            if let Some(h) = hard_end_day {
                limit = limit.min(h);
            }
            let weeks = (limit - day).num_days() / 7 - 1;
            if weeks > 0 {
                day += Duration::weeks(weeks);
            }
        }
        #[cfg(test)]
        DAYS_WALKED.with(|n| n.set(n.get() + 1));
        let mask = schedule.mask(day);
        let w = iso_weekday(day);
        let start_slot = if day == from_day { first_slot } else { 0 };
        // The UTC second at which this local day begins in the fixed offset.
        let day_start = day.and_time(NaiveTime::MIN).and_utc().timestamp() - i64::from(offset);
        for s in start_slot..SLOTS {
            let slot_start = Moment::at_second(day_start + i64::from(s) * SLOT_SECS);
            if hard_end_i.is_some_and(|h| slot_start >= h) {
                break 'walk;
            }
            let open_from = slot_start.max(from_i);
            let open = mask & (1 << s) != 0;
            if open && !in_run {
                in_run = true;
                run_start = open_from;
                before_run = (req_days, req_slots, first_open, last_close);
            }
            let conflict = if open {
                let days = req_days | (1 << w);
                let slots = req_slots | (1 << s);
                let conflict = (1..=7u8)
                    .any(|d| days & (1 << d) != 0 && forbidden[usize::from(d)] & slots != 0);
                if !conflict {
                    req_days = days;
                    req_slots = slots;
                    first_open.get_or_insert(open_from);
                    last_close = Some(Moment::at_second(slot_start.secs + SLOT_SECS));
                }
                conflict
            } else {
                let conflict = req_days & (1 << w) != 0 && req_slots & (1 << s) != 0;
                forbidden[usize::from(w)] |= 1 << s;
                conflict
            };
            if conflict {
                if in_run && run_start > from_i && run_start < open_from {
                    until = Some(run_start);
                    (req_days, req_slots, first_open, last_close) = before_run;
                } else {
                    until = Some(open_from);
                }
                break 'walk;
            }
            if !open {
                in_run = false;
            }
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }

    let until = until.map(Moment::to_utc);
    let first_open = first_open.map(Moment::to_utc);
    let mut last_close = last_close.map(Moment::to_utc);
    if stable && let Some(end) = until {
        // The walk proved the weekly pattern and stopped early: find the last open slot before the end.
        if let Some(close) = last_open_before(schedule, offset_d, from, end) {
            last_close = Some(close);
        }
    }

    let (up_hours, down_hours) = split_slots(req_slots);
    let settings = DialWindow {
        zone_second: offset,
        weekdays: req_days,
        up_hours,
        down_hours,
    };
    let last_close = match (until, last_close) {
        (Some(u), Some(c)) => Some(c.min(u)),
        _ => None,
    };
    Stretch {
        settings,
        from,
        until,
        first_open,
        last_close,
    }
}

/// The end of the last open slot in `[from, end)`, looking back at most 8 days (local days in the fixed offset).
fn last_open_before<D: DaySlots + ?Sized>(
    schedule: &D,
    offset_d: Duration,
    from: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let end_local = end.naive_utc() + offset_d;
    let mut day = end_local.date();
    for _ in 0..9 {
        let mask = schedule.mask(day);
        for s in (0..SLOTS).rev() {
            let slot_start = (day.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(s) * 30)
                - offset_d)
                .and_utc();
            if slot_start >= end {
                continue;
            }
            if slot_start + Duration::minutes(30) <= from {
                return None;
            }
            if mask & (1 << s) != 0 {
                return Some((slot_start + Duration::minutes(30)).min(end));
            }
        }
        day = day.pred_opt()?;
    }
    None
}

/// Splits 48 half-hour slots into up hours (even slots) and down hours (odd slots).
fn split_slots(slots: u64) -> (u32, u32) {
    let (mut up, mut down) = (0u32, 0u32);
    for h in 0..24 {
        if slots & (1 << (2 * h)) != 0 {
            up |= 1 << h;
        }
        if slots & (1 << (2 * h + 1)) != 0 {
            down |= 1 << h;
        }
    }
    (up, down)
}

/// The stretch containing `now` (or starting at the schedule's start, if that is later): the longest run of time
/// from there in which one fixed [`DialWindow`] allows exactly what the campaign allows. It may begin with closed
/// time; `first_open` says when dialling may begin. `None` when the campaign allows nothing ever again.
pub fn stretch_at(schedule: &Schedule, now: DateTime<Utc>) -> Option<Stretch> {
    stretch_of(schedule, now)
}

/// The next `n` stretches from `now`, each starting where the previous one ended. Fewer when the calendar runs out.
pub fn stretches(schedule: &Schedule, now: DateTime<Utc>, n: usize) -> Vec<Stretch> {
    stretches_of(schedule, now, n)
}

/// [`stretch_at`] for any calendar.
pub(crate) fn stretch_of<C: Calendar + ?Sized>(
    calendar: &C,
    now: DateTime<Utc>,
) -> Option<Stretch> {
    let from = calendar.start_utc().map_or(now, |s| s.max(now));
    if calendar.end_utc().is_some_and(|e| from >= e) {
        return None;
    }
    let first = compile(calendar, from);
    if first.first_open.is_some() {
        return Some(first);
    }
    // Nothing open in this stretch: only worth returning if a later one opens.
    let mut next = first.until;
    for _ in 0..10_000 {
        let at = next?;
        if calendar.end_utc().is_some_and(|e| at >= e) {
            return None;
        }
        let s = compile(calendar, at);
        if s.first_open.is_some() {
            return Some(first);
        }
        next = s.until;
    }
    None
}

/// [`stretches`] for any calendar.
pub(crate) fn stretches_of<C: Calendar + ?Sized>(
    calendar: &C,
    now: DateTime<Utc>,
    n: usize,
) -> Vec<Stretch> {
    let mut out = Vec::with_capacity(n);
    let Some(first) = stretch_of(calendar, now) else {
        return out;
    };
    let mut next = first.until;
    out.push(first);
    while out.len() < n {
        let Some(at) = next else { break };
        if calendar.end_utc().is_some_and(|e| at >= e) {
            break;
        }
        let s = compile(calendar, at);
        next = s.until;
        out.push(s);
    }
    out
}

/// A change of the zone's UTC offset and the local wall-clock times it skips or repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetChange {
    pub at: DateTime<Utc>,
    pub before: i32,
    pub after: i32,
}

/// Every offset change in `[from, to)`.
pub(crate) fn offset_changes(
    zone: &Zone,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<OffsetChange> {
    let mut out = Vec::new();
    let mut at = from;
    while let Some(t) = zone.next_transition(at, to) {
        out.push(OffsetChange {
            at: t,
            before: zone.offset_at(t - Duration::seconds(1)),
            after: zone.offset_at(t),
        });
        at = t;
        if out.len() > 1000 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn weekdays_9_to_17(zone: Zone) -> Schedule {
        Schedule {
            zone,
            contact_zones: false,
            fallback_zone: None,
            start: None,
            end: None,
            holidays: BTreeSet::new(),
            windows: vec![WindowRule {
                days: (1..=5).collect(),
                hours: vec![HourRange {
                    from: 9 * 60,
                    to: 17 * 60,
                }],
                at: Location::default(),
            }],
            at: Location::default(),
        }
    }

    #[test]
    fn product_example_compiles_to_documented_hours() {
        let mut s = weekdays_9_to_17(Zone::Fixed(0));
        s.windows[0].hours = vec![
            HourRange { from: 540, to: 720 },
            HourRange {
                from: 810,
                to: 1080,
            },
        ];
        let st = stretch_at(&s, utc("2026-11-23T00:00:00Z")).unwrap();
        assert_eq!(st.settings.dial_at_up_hour(), "9,10,11,14,15,16,17");
        assert_eq!(st.settings.dial_at_down_hour(), "9,10,11,13,14,15,16,17");
        assert_eq!(st.settings.dial_at_week_day(), "1,2,3,4,5");
    }

    #[test]
    fn regular_calendar_without_dst_is_one_stretch_forever() {
        let s = weekdays_9_to_17(Zone::Iana(Tz::Asia__Shanghai));
        let st = stretch_at(&s, utc("2026-11-21T19:30:00Z")).unwrap();
        assert_eq!(st.until, None);
        assert_eq!(st.settings.zone_second, 8 * 3600);
        assert_eq!(st.settings.dial_at_week_day(), "1,2,3,4,5");
        assert_eq!(st.settings.dial_at_up_hour(), "9,10,11,12,13,14,15,16");
        assert_eq!(st.settings.dial_at_down_hour(), "9,10,11,12,13,14,15,16");
        // Saturday 03:30 Shanghai: the first open minute is Monday 09:00 local = 01:00 UTC.
        assert_eq!(st.first_open, Some(utc("2026-11-23T01:00:00Z")));
    }

    #[test]
    fn regular_calendar_in_new_york_ends_at_the_next_dst_change() {
        let s = weekdays_9_to_17(Zone::Iana(Tz::America__New_York));
        let st = stretch_at(&s, utc("2026-11-21T19:30:00Z")).unwrap();
        assert_eq!(st.settings.zone_second, -5 * 3600);
        // 2027-03-14 02:00 EST = 07:00 UTC.
        assert_eq!(st.until, Some(utc("2027-03-14T07:00:00Z")));
        // Friday 2027-03-12 17:00 EST.
        assert_eq!(st.last_close, Some(utc("2027-03-12T22:00:00Z")));
        let next = stretches(&s, utc("2026-11-21T19:30:00Z"), 2);
        assert_eq!(next[1].settings.zone_second, -4 * 3600);
        assert_eq!(next[1].from, utc("2027-03-14T07:00:00Z"));
    }

    #[test]
    fn a_holiday_ends_the_stretch_where_the_settings_would_break() {
        let mut s = weekdays_9_to_17(Zone::Fixed(0));
        s.holidays
            .insert(NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()); // Thursday
        let st = stretch_at(&s, utc("2026-11-23T00:00:00Z")).unwrap();
        // Thursday is left out of the first stretch; it ends when Thursday is needed again.
        assert_eq!(st.settings.dial_at_week_day(), "1,2,3,5");
        assert_eq!(st.until, Some(utc("2026-12-03T09:00:00Z")));
        assert_eq!(st.last_close, Some(utc("2026-12-02T17:00:00Z")));
    }

    #[test]
    fn instants_keep_their_fractions_of_a_second() {
        // The walk counts in whole seconds and nanoseconds: a `from` inside an open slot, with a fraction of a
        // second, is where dialling starts, exactly; a holiday's hard end is still a slot boundary.
        let mut s = weekdays_9_to_17(Zone::Fixed(3600));
        s.holidays
            .insert(NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()); // Thursday
        let from = utc("2026-11-23T09:15:30.123456789Z"); // Monday 10:15:30 local
        let st = stretch_at(&s, from).unwrap();
        assert_eq!(st.from, from);
        assert_eq!(st.first_open, Some(from));
        assert_eq!(st.until, Some(utc("2026-12-03T08:00:00Z")));
        assert_eq!(st.last_close, Some(utc("2026-12-02T16:00:00Z")));
        // Just before the close, the fraction still counts: the stretch is open from it.
        let late = utc("2026-11-23T15:59:59.999999999Z");
        assert_eq!(stretch_at(&s, late).unwrap().first_open, Some(late));
    }

    #[test]
    fn different_hours_on_saturday_split_the_week() {
        let mut s = weekdays_9_to_17(Zone::Fixed(0));
        s.windows.push(WindowRule {
            days: [6].into_iter().collect(),
            hours: vec![HourRange { from: 600, to: 840 }],
            at: Location::default(),
        });
        let all = stretches(&s, utc("2026-11-23T00:00:00Z"), 3);
        assert_eq!(all[0].settings.dial_at_week_day(), "1,2,3,4,5");
        assert_eq!(all[0].until, Some(utc("2026-11-28T10:00:00Z")));
        // Saturday 10-14 and Monday 09:00-14:00 would agree until Monday 14:00, but the stretch ends where that
        // open run begins, so the daemon switches settings in closed time.
        assert_eq!(all[1].until, Some(utc("2026-11-30T09:00:00Z")));
        assert_eq!(all[1].settings.dial_at_week_day(), "6");
        assert_eq!(all[1].last_close, Some(utc("2026-11-28T14:00:00Z")));
        assert_eq!(all[2].settings.dial_at_week_day(), "1,2,3,4,5");
    }

    #[test]
    fn window_crossing_midnight_belongs_to_its_start_day() {
        let mut s = weekdays_9_to_17(Zone::Fixed(0));
        s.windows[0] = WindowRule {
            days: [5].into_iter().collect(),
            hours: vec![HourRange {
                from: 22 * 60,
                to: 26 * 60,
            }],
            at: Location::default(),
        };
        assert!(s.allows(utc("2026-11-28T01:59:00Z"))); // Saturday 01:59 from Friday's window
        assert!(!s.allows(utc("2026-11-28T02:00:00Z")));
        assert!(!s.allows(utc("2026-11-27T01:00:00Z"))); // Friday 01:00: Thursday has no window
        let all = stretches(&s, utc("2026-11-23T00:00:00Z"), 2);
        // Friday 22:00-24:00 and Saturday 00:00-02:00 can't share settings with Friday 00:00-02:00 closed, so the
        // first stretch is all closed time and ends when Friday's window opens.
        assert_eq!(all[0].first_open, None);
        assert!(all[0].settings.is_closed());
        assert_eq!(all[0].until, Some(utc("2026-11-27T22:00:00Z")));
        assert_eq!(all[1].first_open, Some(utc("2026-11-27T22:00:00Z")));
        assert_eq!(all[1].last_close, Some(utc("2026-11-28T02:00:00Z")));
        assert_eq!(all[1].settings.dial_at_week_day(), "5,6");
        // Saturday 22:00 is closed but the settings would allow it.
        assert_eq!(all[1].until, Some(utc("2026-11-28T22:00:00Z")));
    }

    #[test]
    fn end_completes_the_last_stretch_and_nothing_is_left_after_it() {
        let mut s = weekdays_9_to_17(Zone::Fixed(0));
        s.end = Some(
            NaiveDate::from_ymd_opt(2026, 11, 25)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap(),
        );
        let st = stretch_at(&s, utc("2026-11-23T00:00:00Z")).unwrap();
        assert_eq!(st.until, Some(utc("2026-11-25T12:00:00Z")));
        assert_eq!(st.last_close, Some(utc("2026-11-25T12:00:00Z")));
        assert!(stretch_at(&s, utc("2026-11-25T12:00:00Z")).is_none());
        assert!(stretch_at(&s, utc("2026-11-25T11:00:00Z")).is_some());
    }

    #[test]
    fn kathmandu_works_in_local_half_hours() {
        let s = weekdays_9_to_17(Zone::Iana(Tz::Asia__Kathmandu));
        let st = stretch_at(&s, utc("2026-11-23T00:00:00Z")).unwrap();
        assert_eq!(st.settings.zone_second, 5 * 3600 + 45 * 60);
        // 09:00 +05:45 = 03:15 UTC
        assert_eq!(st.first_open, Some(utc("2026-11-23T03:15:00Z")));
        assert!(st.settings.allows(utc("2026-11-23T03:15:00Z")));
        assert!(!st.settings.allows(utc("2026-11-23T03:14:00Z")));
    }

    #[test]
    fn dial_window_reads_back_platform_fields() {
        let w = DialWindow::from_platform_fields(3600, "1,2,7", "9,10", "23").unwrap();
        assert_eq!(w.dial_at_week_day(), "1,2,7");
        assert_eq!(w.dial_at_up_hour(), "9,10");
        assert_eq!(w.dial_at_down_hour(), "23");
        assert!(DialWindow::from_platform_fields(0, "0", "", "").is_none());
        assert!(DialWindow::from_platform_fields(0, "1", "24", "").is_none());
    }

    #[test]
    fn zone_round_trips_through_its_string_form() {
        for z in [
            Zone::Iana(Tz::Australia__Lord_Howe),
            Zone::Fixed(-(3 * 3600 + 30 * 60)),
            Zone::Fixed(0),
        ] {
            let s: String = z.into();
            assert_eq!(Zone::try_from(s).unwrap(), z);
        }
        assert_eq!(parse_offset("+05:45"), Some(20700));
        assert_eq!(parse_offset("+14:01"), None);
        assert_eq!(parse_offset("08:00"), None);
    }

    #[test]
    fn nonexistent_local_time_maps_to_the_end_of_the_gap() {
        let z = Zone::Iana(Tz::America__New_York);
        let t = z.to_utc(
            NaiveDate::from_ymd_opt(2027, 3, 14)
                .unwrap()
                .and_hms_opt(2, 30, 0)
                .unwrap(),
        );
        assert_eq!(t, utc("2027-03-14T07:00:00Z"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const ZONES: [Zone; 8] = [
            Zone::Iana(Tz::Asia__Kathmandu),
            Zone::Iana(Tz::Australia__Lord_Howe),
            Zone::Iana(Tz::America__St_Johns),
            Zone::Iana(Tz::America__New_York),
            Zone::Iana(Tz::Europe__London),
            Zone::Iana(Tz::Asia__Shanghai),
            Zone::Iana(Tz::UTC),
            Zone::Fixed(-(9 * 3600 + 30 * 60)),
        ];
        /// 2026-01-01T00:00:00Z
        const T0: i64 = 1_767_225_600;
        const TWO_YEARS_MIN: i64 = 2 * 365 * 1440;

        fn window() -> impl Strategy<Value = WindowRule> {
            (1u8..128, prop::collection::vec((0u16..48, 1u16..=48), 1..3)).prop_map(
                |(days, ranges)| WindowRule {
                    days: (1..=7).filter(|d| days & (1 << (d - 1)) != 0).collect(),
                    hours: ranges
                        .into_iter()
                        .map(|(f, l)| HourRange {
                            from: f * 30,
                            to: (f + l) * 30,
                        })
                        .collect(),
                    at: Location::default(),
                },
            )
        }

        fn schedule() -> impl Strategy<Value = Schedule> {
            (
                0..ZONES.len(),
                prop::collection::vec(window(), 1..4),
                prop::collection::btree_set(0i64..(2 * 365 + 30), 0..6),
                prop::option::of(0i64..TWO_YEARS_MIN),
                prop::option::of(1i64..(60 * 1440)),
            )
                .prop_map(|(z, windows, holidays, start, len)| {
                    let day0 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
                    let local = |m: i64| day0.and_time(NaiveTime::MIN) + Duration::minutes(m);
                    let start = start.map(|m| local(m - m % 30));
                    let end = len.map(|l| start.unwrap_or(local(0)) + Duration::minutes(l));
                    Schedule {
                        zone: ZONES[z],
                        contact_zones: false,
                        fallback_zone: None,
                        start,
                        end,
                        holidays: holidays
                            .into_iter()
                            .map(|d| day0 + Duration::days(d))
                            .collect(),
                        windows,
                        at: Location::default(),
                    }
                })
        }

        fn check_minutes(schedule: &Schedule, st: &Stretch) -> Result<(), TestCaseError> {
            let cap = st.from + Duration::days(21);
            let stop = st.until.map_or(cap, |u| u.min(cap));
            prop_assert!(st.until.is_none_or(|u| u > st.from), "empty stretch {st:?}");
            let mut m = st.from;
            let mut seen_open = false;
            let mut last_open = None;
            while m < stop {
                let want = schedule.allows(m);
                if want {
                    last_open = Some(m + Duration::minutes(1));
                }
                prop_assert_eq!(st.settings.allows(m), want, "minute {} in {:?}", m, st);
                if want && !seen_open {
                    prop_assert_eq!(st.first_open, Some(m));
                    seen_open = true;
                }
                m += Duration::minutes(1);
            }
            if let Some(u) = st.until.filter(|u| *u > cap) {
                // A long stretch: also check its last 8 days, which hold its last open minute.
                let mut m = (u - Duration::days(8)).max(cap);
                let mut tail_open = None;
                while m < u {
                    let want = schedule.allows(m);
                    prop_assert_eq!(st.settings.allows(m), want, "tail minute {} in {:?}", m, st);
                    if want {
                        tail_open = Some(m + Duration::minutes(1));
                    }
                    m += Duration::minutes(1);
                }
                if tail_open.is_some() {
                    prop_assert_eq!(st.last_close, tail_open, "last close of {:?}", st);
                }
            }
            if st.until.is_some_and(|u| u <= cap) {
                prop_assert_eq!(st.last_close, last_open, "last close of {:?}", st);
                if !seen_open {
                    prop_assert_eq!(st.first_open, None);
                }
            }
            Ok(())
        }

        /// Schedules with holidays up to three years ahead and long or no ends: the walks that skip weeks. Half
        /// are regular (one rule: the same hours on each of its days, which the platform can express for weeks on
        /// end), half have several rules (which may disagree on any weekday, the seventh included).
        fn sparse_schedule() -> impl Strategy<Value = Schedule> {
            let one_rule = (1u8..128, prop::collection::vec((0u16..48, 1u16..48), 1..3)).prop_map(
                |(days, ranges)| {
                    vec![WindowRule {
                        days: (1..=7).filter(|d| days & (1 << (d - 1)) != 0).collect(),
                        hours: ranges
                            .into_iter()
                            .map(|(f, l)| HourRange {
                                from: f * 30,
                                to: (f + l) * 30,
                            })
                            .collect(),
                        at: Location::default(),
                    }]
                },
            );
            (
                0..ZONES.len(),
                prop_oneof![one_rule, prop::collection::vec(window(), 2..5)],
                prop::collection::btree_set(0i64..(3 * 366), 0..4),
                prop::option::of(0i64..TWO_YEARS_MIN),
                prop::option::of(1i64..(4 * 366 * 1440)),
            )
                .prop_map(|(z, windows, holidays, start, len)| {
                    let day0 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
                    let local = |m: i64| day0.and_time(NaiveTime::MIN) + Duration::minutes(m);
                    let start = start.map(|m| local(m - m % 30));
                    Schedule {
                        zone: ZONES[z],
                        contact_zones: false,
                        fallback_zone: None,
                        start,
                        end: len.map(|l| start.unwrap_or(local(0)) + Duration::minutes(l)),
                        holidays: holidays
                            .into_iter()
                            .map(|d| day0 + Duration::days(d))
                            .collect(),
                        windows,
                        at: Location::default(),
                    }
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

            #[test]
            fn skipping_regular_weeks_changes_nothing(
                schedule in sparse_schedule(),
                now_min in 0i64..TWO_YEARS_MIN,
            ) {
                let now = DateTime::from_timestamp(T0 + now_min * 60, 0).unwrap();
                let from = schedule.start_utc().map_or(now, |s| s.max(now));
                prop_assume!(schedule.end_utc().is_none_or(|e| from < e));
                let offset = schedule.zone.offset_at(from);
                let end = schedule.end_utc();
                prop_assert_eq!(
                    walk(&schedule, from, offset, end, true),
                    walk(&schedule, from, offset, end, false)
                );
            }
        }

        /// The skip waits for every weekday to be walked whole: here Monday's morning is first seen a week after
        /// the walk starts (on a Monday afternoon), and it is where the stretch ends.
        #[test]
        fn the_skip_waits_for_a_whole_week_of_every_weekday() {
            let rule = |days: &[u8], from: u16, to: u16| WindowRule {
                days: days.iter().copied().collect(),
                hours: vec![HourRange { from, to }],
                at: Location::default(),
            };
            let schedule = Schedule {
                zone: Zone::Fixed(0),
                contact_zones: false,
                fallback_zone: None,
                start: None,
                end: None,
                holidays: [NaiveDate::from_ymd_opt(2031, 6, 5).unwrap()]
                    .into_iter()
                    .collect(),
                windows: vec![rule(&[2, 3, 4, 5, 6, 7], 540, 600), rule(&[1], 480, 540)],
                at: Location::default(),
            };
            // Monday 2026-11-23, 12:00 UTC.
            let from = DateTime::from_timestamp(1_795_435_200, 0).unwrap();
            let skipped = walk(&schedule, from, 0, None, true);
            assert_eq!(skipped, walk(&schedule, from, 0, None, false));
            assert_eq!(
                skipped.until,
                Some(DateTime::from_timestamp(1_795_435_200 + 7 * 86_400 - 4 * 3600, 0).unwrap())
            );
        }

        #[test]
        fn a_holiday_centuries_ahead_is_compiled_without_probing_the_zone_until_then() {
            let schedule = Schedule {
                zone: Zone::Iana(Tz::UTC),
                contact_zones: false,
                fallback_zone: None,
                start: None,
                end: None,
                holidays: [NaiveDate::from_ymd_opt(9999, 12, 30).unwrap()]
                    .into_iter()
                    .collect(),
                windows: vec![WindowRule {
                    days: (1..=5).collect(),
                    hours: vec![HourRange {
                        from: 540,
                        to: 1020,
                    }],
                    at: Location::default(),
                }],
                at: Location::default(),
            };
            let probes = || OFFSET_PROBES.with(std::cell::Cell::get);
            let before = probes();
            let st = stretch_at(&schedule, DateTime::from_timestamp(T0, 0).unwrap()).unwrap();
            // Every 12 hours for the 100-year horizon at most, not for 8,000 years.
            let made = probes() - before;
            assert!(made <= 2 * 366 * 100 + 1, "{made} probes");
            assert_eq!(
                st.until.map(|u| u.date_naive()),
                NaiveDate::from_ymd_opt(9999, 12, 30)
            );
        }

        #[test]
        fn a_holiday_centuries_ahead_is_compiled_without_walking_to_it() {
            let schedule = Schedule {
                zone: Zone::Fixed(0),
                contact_zones: false,
                fallback_zone: None,
                start: None,
                end: None,
                holidays: [NaiveDate::from_ymd_opt(9999, 12, 30).unwrap()]
                    .into_iter()
                    .collect(),
                windows: vec![WindowRule {
                    days: (1..=5).collect(),
                    hours: vec![HourRange {
                        from: 540,
                        to: 1020,
                    }],
                    at: Location::default(),
                }],
                at: Location::default(),
            };
            let now = DateTime::from_timestamp(T0, 0).unwrap();
            let walked = || DAYS_WALKED.with(std::cell::Cell::get);
            let before = walked();
            let st = stretch_at(&schedule, now).unwrap();
            // Counted in days walked: the plain walk would visit every day to 9999 (nearly three million of them).
            let days = walked() - before;
            assert!(days < 100, "walked {days} days");
            // Thursday 9999-12-30 is the first day the settings cannot express.
            let until = st.until.unwrap();
            assert_eq!(
                until.date_naive(),
                NaiveDate::from_ymd_opt(9999, 12, 30).unwrap()
            );
            assert_eq!(st.settings.weekdays, 0b0011_1110);
            assert_eq!(
                st.last_close,
                Some(
                    NaiveDate::from_ymd_opt(9999, 12, 29)
                        .unwrap()
                        .and_hms_opt(17, 0, 0)
                        .unwrap()
                        .and_utc()
                )
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

            #[test]
            fn stretch_settings_allow_exactly_what_the_campaign_allows(
                schedule in schedule(),
                now_min in 0i64..TWO_YEARS_MIN,
                near_dst in any::<bool>(),
                before_min in 0i64..(10 * 1440),
            ) {
                let mut now = DateTime::from_timestamp(T0 + now_min * 60, 0).unwrap();
                if near_dst {
                    // Half the cases start shortly before an offset change, found by a plain hourly scan.
                    let base = schedule.zone.offset_at(now);
                    let mut t = now;
                    while t < now + Duration::days(366) && schedule.zone.offset_at(t) == base {
                        t += Duration::hours(1);
                    }
                    now = t - Duration::minutes(before_min);
                }
                let all = stretches(&schedule, now, 2);
                for (i, st) in all.iter().enumerate() {
                    if i > 0 {
                        prop_assert_eq!(Some(st.from), all[i - 1].until);
                    }
                    check_minutes(&schedule, st)?;
                }
                if all.is_empty() {
                    // Nothing is allowed from now on: spot-check the next 21 days.
                    let mut m = now;
                    while m < now + Duration::days(21) {
                        prop_assert!(!schedule.allows(m), "allowed at {} but no stretch", m);
                        m += Duration::minutes(7);
                    }
                }
            }
        }
    }
}
