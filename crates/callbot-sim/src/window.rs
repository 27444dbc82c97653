//! The dial-window referee: pure functions over a task's window settings and an instant.
//!
//! The vendor's rule (updateTask/createAndCall pages): local time is UTC + `zoneSecond` (a fixed offset, east
//! positive); the local weekday (Monday = 1 .. Sunday = 7) must be listed in `dialAtWeekDay`; if the local minute is
//! below 30 the local hour must be listed in `dialAtUpHour`, otherwise in `dialAtDownHour`.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Timelike, Utc};
use serde::Serialize;

/// Largest accepted |zoneSecond|: UTC-12 .. UTC+14.
const MIN_ZONE_SECS: i64 = -12 * 3600;
const MAX_ZONE_SECS: i64 = 14 * 3600;
const HALF_HOUR_MS: i64 = 30 * 60 * 1000;

/// A parsed dial window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DialWindow {
    /// Bit `d` set: weekday `d` (1 = Monday .. 7 = Sunday) may be dialled.
    weekdays: u8,
    /// Bit `h` set: `[h:00, h:30)` may be dialled.
    up_hours: u32,
    /// Bit `h` set: `[h:30, h+1:00)` may be dialled.
    down_hours: u32,
    /// Offset of the task's local time from UTC, seconds, east positive.
    zone_secs: i64,
}

/// Why a window setting was refused; the message names the field and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct WindowError {
    /// The request field at fault, e.g. `taskCreateSetting.dialAtWeekDay`.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub problem: String,
}

impl DialWindow {
    /// Parses the four vendor fields. Items are comma separated; blanks around items are tolerated, an empty string
    /// means "none" (a window that never opens).
    pub fn parse(
        zone_second: i64,
        dial_at_week_day: &str,
        dial_at_up_hour: &str,
        dial_at_down_hour: &str,
    ) -> Result<Self, WindowError> {
        if !(MIN_ZONE_SECS..=MAX_ZONE_SECS).contains(&zone_second) {
            return Err(WindowError {
                field: "taskCreateSetting.zoneSecond",
                problem: format!(
                    "{zone_second} is outside {MIN_ZONE_SECS}..={MAX_ZONE_SECS} (UTC-12 to UTC+14, in seconds)"
                ),
            });
        }
        let weekdays = parse_set("taskCreateSetting.dialAtWeekDay", dial_at_week_day, 1, 7)?;
        let up_hours = parse_set("taskCreateSetting.dialAtUpHour", dial_at_up_hour, 0, 23)?;
        let down_hours = parse_set("taskCreateSetting.dialAtDownHour", dial_at_down_hour, 0, 23)?;
        Ok(Self {
            weekdays: u8::try_from(weekdays).unwrap_or(0),
            up_hours,
            down_hours,
            zone_secs: zone_second,
        })
    }

    /// The offset from UTC, seconds.
    pub fn zone_secs(&self) -> i64 {
        self.zone_secs
    }

    /// The task's local wall-clock time at `t`.
    pub fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.naive_utc() + Duration::seconds(self.zone_secs)
    }

    /// Whether a call may START at `t`.
    pub fn allows(&self, t: DateTime<Utc>) -> bool {
        let local = self.local(t);
        let weekday = local.weekday().number_from_monday();
        if self.weekdays & (1 << weekday) == 0 {
            return false;
        }
        let hours = if local.minute() < 30 {
            self.up_hours
        } else {
            self.down_hours
        };
        hours & (1 << local.hour()) != 0
    }

    /// Whether the window ever opens.
    pub fn is_never_open(&self) -> bool {
        self.weekdays == 0 || (self.up_hours == 0 && self.down_hours == 0)
    }

    /// The first local half-hour boundary strictly after `t` (the only instants at which `allows` can change).
    pub fn next_boundary(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        // Floor to the millisecond, so a sub-millisecond instant still lands exactly on the boundary.
        let local_ms = t.timestamp_millis() + self.zone_secs * 1000;
        let next_local_ms = (local_ms.div_euclid(HALF_HOUR_MS) + 1) * HALF_HOUR_MS;
        DateTime::from_timestamp_millis(next_local_ms - self.zone_secs * 1000)
            .unwrap_or(t + Duration::minutes(30))
    }
}

fn parse_set(field: &'static str, text: &str, min: u32, max: u32) -> Result<u32, WindowError> {
    let mut set = 0u32;
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let value: u32 = item.parse().map_err(|_| WindowError {
            field,
            problem: format!("'{item}' is not a number; use comma-separated integers {min}-{max}"),
        })?;
        if !(min..=max).contains(&value) {
            return Err(WindowError {
                field,
                problem: format!("{value} is outside {min}-{max}"),
            });
        }
        set |= 1 << value;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// Monday 2026-03-02 00:00 UTC.
    fn monday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
    }

    /// An independent statement of the rule, half-hour by half-hour in local time.
    fn expected(days: &[u32], up: &[u32], down: &[u32], local: NaiveDateTime) -> bool {
        let day = local.weekday().number_from_monday();
        let list = if local.minute() < 30 { up } else { down };
        days.contains(&day) && list.contains(&local.hour())
    }

    fn join(v: &[u32]) -> String {
        v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn referee_matches_the_rule_over_every_half_hour_of_a_week_for_several_zones() {
        let days = [1, 2, 3, 4, 5];
        let up = [9, 10, 11, 14, 15, 16, 17];
        let down = [9, 10, 11, 13, 14, 15, 16, 17];
        for zone in [0_i64, 28800, -28800, 20700, -12600, 19800, 50400, -43200] {
            let w = DialWindow::parse(zone, &join(&days), &join(&up), &join(&down)).unwrap();
            // Every minute-start of the week, both sides of every boundary, for this zone.
            let start = monday() - Duration::days(1);
            let mut open_minutes = 0;
            for minute in 0..(9 * 24 * 60) {
                let t = start + Duration::minutes(minute);
                let local = t.naive_utc() + Duration::seconds(zone);
                let want = expected(&days, &up, &down, local);
                assert_eq!(w.allows(t), want, "zone {zone} at {t} (local {local})");
                open_minutes += i32::from(want);
            }
            // 15 half-hours a day, five days, 30 minutes each; the 9-day scan covers each weekday at least once.
            assert!(open_minutes >= 15 * 5 * 30, "zone {zone}: {open_minutes}");
        }
    }

    #[test]
    fn window_reads_local_time_for_a_quarter_hour_zone() {
        // Nepal, UTC+05:45: local 09:00 Monday is 03:15 UTC Monday.
        let w = DialWindow::parse(20700, "1", "9", "").unwrap();
        let open = monday() + Duration::minutes(3 * 60 + 15);
        assert!(!w.allows(open - Duration::milliseconds(1)));
        assert!(w.allows(open));
        assert!(w.allows(open + Duration::minutes(29)));
        assert!(!w.allows(open + Duration::minutes(30)));
        assert_eq!(w.next_boundary(open - Duration::minutes(10)), open);
    }

    #[test]
    fn negative_half_hour_zone_crosses_the_date_line_back_a_day() {
        // UTC-03:30. Monday 02:00 UTC is Sunday 22:30 local.
        let w = DialWindow::parse(-12600, "7", "", "22").unwrap();
        let t = monday() + Duration::hours(2);
        assert!(w.allows(t));
        assert!(!w.allows(t + Duration::minutes(30)));
        assert!(!w.allows(t - Duration::minutes(1)));
    }

    #[test]
    fn rejects_out_of_range_and_garbage_items_naming_the_field() {
        let e = DialWindow::parse(0, "1,8", "9", "9").unwrap_err();
        assert_eq!(e.field, "taskCreateSetting.dialAtWeekDay");
        let e = DialWindow::parse(0, "1", "9,24", "9").unwrap_err();
        assert_eq!(e.field, "taskCreateSetting.dialAtUpHour");
        let e = DialWindow::parse(0, "1", "9", "x").unwrap_err();
        assert_eq!(e.field, "taskCreateSetting.dialAtDownHour");
        let e = DialWindow::parse(15 * 3600, "1", "9", "9").unwrap_err();
        assert_eq!(e.field, "taskCreateSetting.zoneSecond");
        assert!(DialWindow::parse(0, " 1 , 2 ", "", "").is_ok());
        assert!(DialWindow::parse(0, "", "", "").unwrap().is_never_open());
    }

    proptest! {
        #[test]
        fn next_boundary_is_the_next_local_half_hour(
            secs in 0_i64..4_000_000_000,
            ms in 0_i64..1000,
            nanos in 0_i64..1_000_000,
            zone_quarters in -48_i64..=56,
        ) {
            let zone = zone_quarters * 900;
            let w = DialWindow::parse(zone, "1,2,3,4,5,6,7", "1,3,5,7,9,11", "0,2,4,6,8").unwrap();
            let t = Utc.timestamp_opt(secs, 0).unwrap() + Duration::milliseconds(ms) + Duration::nanoseconds(nanos);
            let b = w.next_boundary(t);
            prop_assert!(b > t);
            prop_assert!(b - t <= Duration::minutes(30));
            let local = w.local(b);
            prop_assert_eq!(local.second(), 0);
            prop_assert_eq!(local.nanosecond(), 0);
            prop_assert!(local.minute() == 0 || local.minute() == 30);
            // `allows` is constant between t and the boundary.
            let before = b - Duration::milliseconds(1);
            prop_assert_eq!(w.allows(t.max(before)), w.allows(t));
        }
    }
}
