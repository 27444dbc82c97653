//! Recurring campaigns: `[schedule] repeat`, a cron expression read in the campaign's zone. Each occurrence starts a
//! new round, which is a new generation of the campaign over its contacts file as it is then.
//!
//! Rounds are counted from the campaign's `start` (which `repeat` requires), so the round in force is a function of
//! the instant alone: a daemon that restarts, or a second replica, finds the same round, and a round started twice
//! by a crash at its occurrence is still one round (its IDs are the same). Round `n` (1 for the first occurrence at
//! or after `start`) runs as generation `generation × 100,000 + n`, so every round has its own task and order IDs,
//! and a generation bumped by hand never meets a round's. Before the first occurrence the first round is in force,
//! waiting for it to open.
//!
//! The expression is evaluated with the `croner` crate (the schedule parser `tokio-cron-scheduler` uses) on the
//! instants the daemon's `Clock` gives, never on the wall clock. Five fields (minute, hour, day of month, month, day
//! of week). A local time that a clock change skips fires at the first instant after the gap; one that occurs twice
//! fires once.

use chrono::{DateTime, FixedOffset, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

use crate::calendar::Zone;
use crate::spec::CampaignSpec;

/// Rounds a generation holds: round `n` of generation `g` runs as generation `g × ROUNDS_PER_GENERATION + n`.
pub const ROUNDS_PER_GENERATION: u32 = 100_000;
/// The most rounds a repeating campaign has; later occurrences start no round.
pub const MAX_ROUNDS: u32 = ROUNDS_PER_GENERATION - 1;
/// The largest `generation` a repeating campaign may have (its rounds' generations must fit 32 bits).
pub const MAX_REPEAT_GENERATION: u32 = u32::MAX / ROUNDS_PER_GENERATION - 1;

/// What happens to a round when the next one is due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextRound {
    /// The previous round is completed at the next occurrence (its undialled orders are kept, not deleted).
    #[default]
    Complete,
    /// The previous round runs out first: the next round starts once it has nothing left to dial (nothing planned,
    /// uploading or unfinished), so two rounds never dial at once. Occurrences that pass meanwhile start no round.
    Keep,
}

impl NextRound {
    pub fn as_str(self) -> &'static str {
        match self {
            NextRound::Complete => "complete",
            NextRound::Keep => "keep",
        }
    }
}

/// `[schedule] repeat` and `on_next_round`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeat {
    /// The cron expression, as written.
    pub cron: String,
    pub on_next_round: NextRound,
}

/// One round of a repeating campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// 1 for the first occurrence at or after `start`.
    pub number: u32,
    /// The occurrence that starts it.
    pub starts: DateTime<Utc>,
    /// The next occurrence (the next round's start), if any before the campaign's end.
    pub next: Option<DateTime<Utc>>,
}

/// Parses a cron expression: five fields, as `repeat` takes them.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(text.trim())
        .map_err(|e| e.to_string())
}

/// The first occurrence of `cron` at or after `from` (`inclusive`) or after it, read in `zone`.
fn next_occurrence(
    cron: &Cron,
    zone: &Zone,
    from: DateTime<Utc>,
    inclusive: bool,
) -> Option<DateTime<Utc>> {
    match zone {
        Zone::Iana(tz) => cron
            .find_next_occurrence(&from.with_timezone(tz), inclusive)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Zone::Fixed(secs) => {
            let offset = FixedOffset::east_opt(*secs)?;
            cron.find_next_occurrence(&from.with_timezone(&offset), inclusive)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }
    }
}

impl Repeat {
    fn compiled(&self) -> Option<Cron> {
        parse_cron(&self.cron).ok()
    }

    /// The first `n` occurrences at or after `from` and before `until`, in `zone`.
    pub fn occurrences(
        &self,
        zone: &Zone,
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let Some(cron) = self.compiled() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(n.min(64));
        let mut at = from;
        let mut inclusive = true;
        while out.len() < n {
            match next_occurrence(&cron, zone, at, inclusive) {
                Some(t) if until.is_none_or(|u| t < u) => {
                    out.push(t);
                    at = t;
                    inclusive = false;
                }
                _ => break,
            }
        }
        out
    }
}

impl CampaignSpec {
    /// The round of a repeating campaign in force at `now` by the calendar alone: the last occurrence at or before
    /// `now` (the first round before the first occurrence). `None` when the campaign does not repeat, has no
    /// occurrence before its end, or has passed [`MAX_ROUNDS`].
    pub fn round_at(&self, now: DateTime<Utc>) -> Option<Round> {
        let repeat = self.repeat.as_ref()?;
        let cron = repeat.compiled()?;
        let zone = &self.schedule.zone;
        let start = self.schedule.start_utc()?;
        let end = self.schedule.end_utc();
        let before_end = |t: DateTime<Utc>| end.is_none_or(|e| t < e);
        let mut current = next_occurrence(&cron, zone, start, true).filter(|t| before_end(*t))?;
        let mut number = 1;
        loop {
            let next = next_occurrence(&cron, zone, current, false).filter(|t| before_end(*t));
            match next {
                Some(n) if n <= now => {
                    if number >= MAX_ROUNDS {
                        return None;
                    }
                    number += 1;
                    current = n;
                }
                _ => {
                    return Some(Round {
                        number,
                        starts: current,
                        next,
                    });
                }
            }
        }
    }

    /// The round `number` (1 for the first), by counting occurrences from `start`.
    pub fn round(&self, number: u32) -> Option<Round> {
        let repeat = self.repeat.as_ref()?;
        let start = self.schedule.start_utc()?;
        let n = usize::try_from(number).ok()?;
        let occ = repeat.occurrences(&self.schedule.zone, start, self.schedule.end_utc(), n + 1);
        let starts = *occ.get(n.checked_sub(1)?)?;
        Some(Round {
            number,
            starts,
            next: occ.get(n).copied(),
        })
    }

    /// The generation round `number` runs as.
    pub fn round_generation(&self, number: u32) -> u32 {
        self.generation
            .saturating_mul(ROUNDS_PER_GENERATION)
            .saturating_add(number)
    }

    /// The round a generation of this campaign belongs to, when it is one of its rounds.
    pub fn round_of_generation(&self, generation: u32) -> Option<u32> {
        let base = self.generation.checked_mul(ROUNDS_PER_GENERATION)?;
        let n = generation.checked_sub(base)?;
        (self.repeat.is_some() && (1..=MAX_ROUNDS).contains(&n)).then_some(n)
    }

    /// The campaign as its round `round` runs it: its own generation, its calendar from the round's occurrence, and,
    /// when the next round completes this one, until the next occurrence.
    pub fn for_round(&self, round: &Round) -> CampaignSpec {
        let mut spec = self.clone();
        spec.generation = self.round_generation(round.number);
        let zone = spec.schedule.zone;
        let starts = zone.local(round.starts);
        spec.schedule.start = Some(spec.schedule.start.map_or(starts, |s| s.max(starts)));
        let complete = self
            .repeat
            .as_ref()
            .is_some_and(|r| r.on_next_round == NextRound::Complete);
        if let (true, Some(next)) = (complete, round.next) {
            let next = zone.local(next);
            spec.schedule.end = Some(spec.schedule.end.map_or(next, |e| e.min(next)));
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::path::Path;

    fn spec(extra_schedule: &str) -> CampaignSpec {
        let text = format!(
            "scene_id = \"S\"\n[schedule]\ntimezone = \"America/New_York\"\nstart = 2027-01-01T00:00:00\n{extra_schedule}\n\
             windows = [{{ days = \"mon-sun\", hours = [\"09:00-17:00\"] }}]\n[contacts]\nfile = \"c.csv\"\n"
        );
        crate::parse_campaign(Path::new("campaigns/m.toml"), &text)
            .unwrap()
            .0
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn monthly_rounds_start_at_nine_local_on_both_sides_of_each_dst_change() {
        let s = spec("repeat = \"0 9 1 * *\"");
        // Before the first occurrence the first round is in force, opening at 09:00 EST.
        let r = s.round_at(utc(2026, 12, 31, 12, 0)).unwrap();
        assert_eq!((r.number, r.starts), (1, utc(2027, 1, 1, 14, 0)));
        assert_eq!(r.next, Some(utc(2027, 2, 1, 14, 0)));
        // April is on EDT (09:00 = 13:00 UTC), November back on EST.
        let r = s.round_at(utc(2027, 4, 15, 0, 0)).unwrap();
        assert_eq!((r.number, r.starts), (4, utc(2027, 4, 1, 13, 0)));
        let r = s.round_at(utc(2027, 11, 1, 14, 0)).unwrap();
        assert_eq!(
            (r.number, r.starts),
            (11, utc(2027, 11, 1, 13, 0)),
            "Nov 1 is still EDT"
        );
        let r = s.round_at(utc(2027, 12, 1, 14, 0)).unwrap();
        assert_eq!((r.number, r.starts), (12, utc(2027, 12, 1, 14, 0)));
        // The occurrence itself starts the round; a minute before it the previous one is in force.
        assert_eq!(s.round_at(utc(2027, 3, 1, 14, 0)).unwrap().number, 3);
        assert_eq!(s.round_at(utc(2027, 3, 1, 13, 59)).unwrap().number, 2);
        assert_eq!(s.round(4), s.round_at(utc(2027, 4, 15, 0, 0)));
        assert_eq!(s.round(0), None);
    }

    #[test]
    fn a_round_runs_as_its_own_generation_from_its_occurrence_to_the_next() {
        let s = spec("repeat = \"0 9 1 * *\"");
        let r = s.round_at(utc(2027, 3, 10, 0, 0)).unwrap();
        let round = s.for_round(&r);
        assert_eq!(round.generation, 100_003);
        assert_eq!(s.round_of_generation(100_003), Some(3));
        assert_eq!(s.round_of_generation(1), None);
        assert_eq!(round.schedule.start_utc(), Some(utc(2027, 3, 1, 14, 0)));
        assert_eq!(round.schedule.end_utc(), Some(utc(2027, 4, 1, 13, 0)));
        assert!(!round.schedule.allows(utc(2027, 2, 28, 15, 0)));
        assert!(round.schedule.allows(utc(2027, 3, 1, 14, 0)));
        assert!(!round.schedule.allows(utc(2027, 4, 1, 14, 0)));

        let keep = spec("repeat = \"0 9 1 * *\"\non_next_round = \"keep\"");
        let round = keep.for_round(&keep.round_at(utc(2027, 3, 10, 0, 0)).unwrap());
        assert_eq!(
            round.schedule.end, None,
            "keep: the round runs out on its own"
        );
    }

    #[test]
    fn rounds_stop_at_the_campaigns_end() {
        let s = spec("end = 2027-03-15T00:00:00\nrepeat = \"0 9 1 * *\"");
        let r = s.round_at(utc(2027, 6, 1, 0, 0)).unwrap();
        assert_eq!((r.number, r.next), (3, None));
        assert_eq!(
            s.for_round(&r).schedule.end_utc(),
            Some(utc(2027, 3, 15, 4, 0))
        );
        assert_eq!(
            s.repeat.as_ref().unwrap().occurrences(
                &s.schedule.zone,
                utc(2027, 1, 1, 0, 0),
                s.schedule.end_utc(),
                10
            ),
            vec![
                utc(2027, 1, 1, 14, 0),
                utc(2027, 2, 1, 14, 0),
                utc(2027, 3, 1, 14, 0)
            ]
        );
        let none = spec("");
        assert_eq!(none.round_at(utc(2027, 6, 1, 0, 0)), None);
    }

    #[test]
    fn a_time_skipped_by_the_clock_change_fires_once_after_the_gap() {
        // 02:30 on 14 March 2027 does not exist in New York.
        let s = spec("repeat = \"30 2 * * *\"");
        let occ = s.repeat.as_ref().unwrap().occurrences(
            &s.schedule.zone,
            utc(2027, 3, 13, 12, 0),
            None,
            3,
        );
        assert_eq!(
            occ[0],
            utc(2027, 3, 14, 7, 0),
            "03:00 EDT, the first instant after the gap"
        );
        assert_eq!(occ[1], utc(2027, 3, 15, 6, 30));
        assert_eq!(occ.len(), 3);
    }
}
