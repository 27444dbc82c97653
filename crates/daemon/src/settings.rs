//! The platform settings of a task (what createAndCall/updateTask carry besides orders), and the check that the
//! settings last sent still fit the campaign's calendar.
//!
//! Pure: no clock, no I/O.

use callbot_api::wire::DispatchType;
use chrono::{DateTime, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// The platform's dial window (the campaign crate's reading of `zoneSecond` + weekday + half-hour fields).
pub use campaign::DialWindow as Window;

/// One SMS rule (`smsFuncFlag` item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSetting {
    pub sms_id: String,
    pub intent_ids: Vec<String>,
    pub intent_names: Vec<String>,
}

/// `manualCallSetting`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManualCallSetting {
    pub agent_group: String,
    /// How calls are dispatched to agents (stored as its wire code, so settings recorded before keep reading).
    pub dispatch_type: DispatchType,
    pub ratio_call_rate: f64,
    pub predict_call_rate: f64,
}

/// Everything the daemon programs into a task: `taskCreateSetting` + `funcFlag`, minus the callback URLs (which
/// belong to the deployment, not the campaign).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSettings {
    pub window: Window,
    pub task_name: String,
    pub strategy_name: String,
    pub max_call: u32,
    pub max_ring_time: u32,
    pub route_id: String,
    /// Always true while the campaign file exists: see the crate docs.
    pub task_keep: bool,
    pub round_redial: bool,
    pub whole_tts: bool,
    pub phone_encrypt: bool,
    pub sms: Vec<SmsSetting>,
    pub manual_call: Option<ManualCallSetting>,
}

impl TaskSettings {
    /// Everything but the dial window is equal.
    pub fn same_apart_from_window(&self, other: &TaskSettings) -> bool {
        let mut a = self.clone();
        a.window = other.window;
        a == *other
    }
}

/// The longest span checked minute by minute at once. Within one stretch both the campaign and any fixed window are
/// weekly periodic, so one week (plus a day for the partial first day) decides the whole stretch.
const PERIODIC_SPAN: i64 = 8;
/// A gap (before a stretch) longer than this is not checked; it counts as not fitting (fail closed).
const MAX_GAP_DAYS: i64 = 62;

/// Whether `window` allows exactly what `campaign` allows over `[from, until)`, where that span is known to lie in
/// one stretch (both sides weekly periodic), checked minute by minute.
pub fn equivalent_in_stretch(
    window: &Window,
    campaign: &dyn Fn(DateTime<Utc>) -> bool,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> bool {
    let horizon = from + Duration::days(PERIODIC_SPAN);
    let end = until.map_or(horizon, |u| u.min(horizon));
    equivalent_minutes(window, campaign, from, end)
}

/// Whether `window` allows exactly what `campaign` allows over the arbitrary span `[from, to)` (no periodicity
/// assumed), checked minute by minute; spans longer than about two months count as not equivalent.
pub fn equivalent_over_gap(
    window: &Window,
    campaign: &dyn Fn(DateTime<Utc>) -> bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> bool {
    if to - from > Duration::days(MAX_GAP_DAYS) {
        return false;
    }
    equivalent_minutes(window, campaign, from, to)
}

fn equivalent_minutes(
    window: &Window,
    campaign: &dyn Fn(DateTime<Utc>) -> bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> bool {
    // Start at the minute containing `from`: the platform works in whole minutes at best.
    let mut at = from
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(from);
    while at < to {
        if window.allows(at) != campaign(at) {
            return false;
        }
        at += Duration::minutes(1);
    }
    true
}

/// The first instant in `[from, from + horizon)` (to the minute) at which `campaign` allows dialling.
///
/// Samples every quarter hour (UTC), then refines to the minute: campaign windows are half-hour aligned in local
/// time and every zone offset is a multiple of 15 minutes, so an opening is never skipped (only an interval cut to
/// under 15 minutes by `start`/`end` could be; this is for reporting, never for safety).
pub fn next_open(
    campaign: &dyn Fn(DateTime<Utc>) -> bool,
    from: DateTime<Utc>,
    horizon: Duration,
) -> Option<DateTime<Utc>> {
    if campaign(from) {
        return Some(from);
    }
    let minute = from
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(from);
    let end = from + horizon;
    // The first quarter hour after `from`.
    let mut at = minute + Duration::minutes(15 - i64::from(minute.minute() % 15));
    let mut previous = minute;
    while at < end {
        if campaign(at) {
            // Refine: the first allowed minute in (previous, at].
            let mut m = previous + Duration::minutes(1);
            while m < at {
                if m > from && campaign(m) {
                    return Some(m);
                }
                m += Duration::minutes(1);
            }
            return Some(at);
        }
        previous = at;
        at += Duration::minutes(15);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn weekday_window(zone_second: i32) -> Window {
        // Mon-Fri, 09:00-12:00 and 13:30-18:00.
        Window {
            zone_second,
            weekdays: 0b0011_1110,
            up_hours: bits(&[9, 10, 11, 14, 15, 16, 17]),
            down_hours: bits(&[9, 10, 11, 13, 14, 15, 16, 17]),
        }
    }

    fn bits(hours: &[u32]) -> u32 {
        hours.iter().fold(0, |acc, h| acc | (1 << h))
    }

    #[test]
    fn formats_window_fields_like_the_vendor_example() {
        let w = weekday_window(0);
        assert_eq!(w.dial_at_week_day(), "1,2,3,4,5");
        assert_eq!(w.dial_at_up_hour(), "9,10,11,14,15,16,17");
        assert_eq!(w.dial_at_down_hour(), "9,10,11,13,14,15,16,17");
    }

    #[test]
    fn window_reads_local_time_with_zone_second() {
        let w = weekday_window(-5 * 3600);
        // Monday 2026-11-23 13:45 local (UTC-5) = 18:45 UTC: 13:30-14:00 is a down hour.
        assert!(w.allows(Utc.with_ymd_and_hms(2026, 11, 23, 18, 45, 0).unwrap()));
        // 13:15 local is not.
        assert!(!w.allows(Utc.with_ymd_and_hms(2026, 11, 23, 18, 15, 0).unwrap()));
        // Saturday never.
        assert!(!w.allows(Utc.with_ymd_and_hms(2026, 11, 28, 15, 0, 0).unwrap()));
    }

    #[test]
    fn equivalence_detects_a_single_differing_half_hour() {
        let w = weekday_window(0);
        let mut other = w;
        other.down_hours &= !(1 << 13);
        let campaign = move |at: DateTime<Utc>| other.allows(at);
        let from = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
        assert!(!equivalent_in_stretch(&w, &campaign, from, None));
        let same = move |at: DateTime<Utc>| w.allows(at);
        assert!(equivalent_in_stretch(&w, &same, from, None));
    }

    #[test]
    fn next_open_finds_monday_morning_from_saturday() {
        let w = weekday_window(0);
        let campaign = move |at: DateTime<Utc>| w.allows(at);
        let sat = Utc.with_ymd_and_hms(2026, 11, 21, 10, 17, 0).unwrap();
        assert_eq!(
            next_open(&campaign, sat, Duration::days(14)),
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap())
        );
    }

    #[test]
    fn settings_equal_apart_from_window() {
        let base = TaskSettings {
            window: weekday_window(0),
            task_name: "t".into(),
            strategy_name: String::new(),
            max_call: 3,
            max_ring_time: 40,
            route_id: String::new(),
            task_keep: true,
            round_redial: true,
            whole_tts: true,
            phone_encrypt: false,
            sms: vec![],
            manual_call: None,
        };
        let mut other = base.clone();
        other.window.zone_second = 3600;
        assert!(base.same_apart_from_window(&other));
        other.max_call = 4;
        assert!(!base.same_apart_from_window(&other));
    }
}

#[cfg(test)]
mod next_open_props {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    proptest! {
        /// The quarter-hour sampling finds the same first opening as a minute-by-minute scan.
        #[test]
        fn matches_a_minute_scan(open_min in 0i64..3000, len in 15i64..400, from_min in 0i64..2800) {
            let base = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
            // Openings on quarter hours (as real calendars have), arbitrary lengths of at least 15 minutes.
            let open_at = base + Duration::minutes(open_min / 15 * 15);
            let close_at = open_at + Duration::minutes(len);
            let campaign = move |t: DateTime<Utc>| t >= open_at && t < close_at;
            let from = base + Duration::minutes(from_min);
            let slow = {
                let mut t = from;
                let mut found = None;
                while t < from + Duration::days(3) {
                    if campaign(t) { found = Some(t); break; }
                    t += Duration::minutes(1);
                }
                found
            };
            prop_assert_eq!(next_open(&campaign, from, Duration::days(3)), slow);
        }
    }
}
