//! How a placed call ends: a seeded distribution of outcomes and durations.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The ways a simulated call can end, each mapped to the vendor's final `callStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Answered; the robot talked (callStatus 6), with intents and a transcript.
    Answered,
    /// User busy (10).
    Busy,
    /// Rang without an answer (22, "ring missed").
    NoAnswer,
    /// No response (23).
    NoResponse,
    /// User rejected (12).
    Rejected,
    /// Temporarily unreachable (9).
    Unreachable,
    /// Invalid number (8). Never redialled.
    InvalidNumber,
}

impl Outcome {
    /// The vendor's final `callStatus` for this outcome.
    pub fn call_status(self) -> i64 {
        match self {
            Outcome::Answered => 6,
            Outcome::Busy => 10,
            Outcome::NoAnswer => 22,
            Outcome::NoResponse => 23,
            Outcome::Rejected => 12,
            Outcome::Unreachable => 9,
            Outcome::InvalidNumber => 8,
        }
    }

    /// Whether `roundRedial` would dial the order once more after this outcome ("unanswered calls").
    pub fn is_redialable(self) -> bool {
        !matches!(self, Outcome::Answered | Outcome::InvalidNumber)
    }

    pub(crate) fn hangup_cause(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Answered => ("NORMAL_CLEARING", "200"),
            Outcome::Busy => ("USER_BUSY", "486"),
            Outcome::NoAnswer => ("NO_ANSWER", "480"),
            Outcome::NoResponse => ("NO_USER_RESPONSE", "408"),
            Outcome::Rejected => ("CALL_REJECTED", "603"),
            Outcome::Unreachable => ("NETWORK_OUT_OF_ORDER", "503"),
            Outcome::InvalidNumber => ("UNALLOCATED_NUMBER", "404"),
        }
    }
}

/// The outcome distribution and the durations, in SIMULATED seconds before `speed` is applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutcomeConfig {
    /// Relative weights; outcomes not listed never happen. All zero means every call is answered.
    pub weights: Vec<(Outcome, f64)>,
    /// Ringing before an answer, inclusive range, seconds.
    pub ring_secs: (u64, u64),
    /// Talk time of an answered call, inclusive range, seconds.
    pub talk_secs: (u64, u64),
    /// Length of a call that fails fast (busy, rejected, invalid, unreachable), seconds.
    pub fast_fail_secs: u64,
    /// Ringing of an unanswered call when the task sets no `maxRingTime`, seconds.
    pub default_max_ring_secs: u64,
    /// Outcomes forced for given phone numbers (every round), for tests that need a known result.
    pub forced: BTreeMap<String, Outcome>,
    /// Sim time between an unanswered call and its `roundRedial` redial, seconds.
    pub redial_after_secs: u64,
}

impl Default for OutcomeConfig {
    fn default() -> Self {
        Self {
            weights: vec![
                (Outcome::Answered, 55.0),
                (Outcome::NoAnswer, 15.0),
                (Outcome::Busy, 10.0),
                (Outcome::NoResponse, 5.0),
                (Outcome::Rejected, 7.0),
                (Outcome::Unreachable, 4.0),
                (Outcome::InvalidNumber, 4.0),
            ],
            ring_secs: (3, 15),
            talk_secs: (20, 120),
            fast_fail_secs: 4,
            default_max_ring_secs: 30,
            forced: BTreeMap::new(),
            redial_after_secs: 60,
        }
    }
}

/// A sampled call: its outcome and timings in simulated milliseconds (already divided by speed).
#[derive(Debug, Clone)]
pub(crate) struct Sampled {
    pub outcome: Outcome,
    /// From dialling to answer; `None` when not answered.
    pub answer_after: Option<Duration>,
    /// From dialling to hang-up.
    pub total: Duration,
    /// Talk time in (unscaled) seconds, reported as `callDuration`.
    pub talk_secs: u64,
    /// An answered call's intent: (ID, name, level).
    pub intent: Option<&'static (&'static str, &'static str, i64)>,
}

static INTENTS: [(&str, &str, i64); 4] = [
    ("A", "Interested", 1),
    ("B", "Call back later", 2),
    ("C", "Not interested", 3),
    ("D", "Wrong person", 4),
];

impl OutcomeConfig {
    pub(crate) fn sample(
        &self,
        rng: &mut impl Rng,
        phone: &str,
        max_ring_secs: u64,
        speed: f64,
    ) -> Sampled {
        let outcome = self
            .forced
            .get(phone)
            .copied()
            .unwrap_or_else(|| self.pick(rng));
        let max_ring = if max_ring_secs > 0 {
            max_ring_secs
        } else {
            self.default_max_ring_secs
        };
        let (answer, total_secs, talk) = match outcome {
            Outcome::Answered => {
                let ring = range(rng, self.ring_secs).min(max_ring.max(1));
                let talk = range(rng, self.talk_secs).max(1);
                (Some(ring), ring + talk, talk)
            }
            Outcome::NoAnswer | Outcome::NoResponse => (None, max_ring, 0),
            Outcome::Busy | Outcome::Rejected | Outcome::Unreachable | Outcome::InvalidNumber => {
                (None, self.fast_fail_secs.max(1), 0)
            }
        };
        let intent =
            (outcome == Outcome::Answered).then(|| &INTENTS[rng.random_range(0..INTENTS.len())]);
        Sampled {
            outcome,
            answer_after: answer.map(|s| scaled(s, speed)),
            total: scaled(total_secs, speed),
            talk_secs: talk,
            intent,
        }
    }

    fn pick(&self, rng: &mut impl Rng) -> Outcome {
        let total: f64 = self.weights.iter().map(|(_, w)| w.max(0.0)).sum();
        if total <= 0.0 {
            return Outcome::Answered;
        }
        let mut x = rng.random_range(0.0..total);
        for (outcome, w) in &self.weights {
            let w = w.max(0.0);
            if x < w {
                return *outcome;
            }
            x -= w;
        }
        self.weights.last().map_or(Outcome::Answered, |(o, _)| *o)
    }
}

fn range(rng: &mut impl Rng, (lo, hi): (u64, u64)) -> u64 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// Simulated seconds shortened by `speed`, never below one millisecond.
fn scaled(secs: u64, speed: f64) -> Duration {
    let speed = if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    };
    let ms = (secs as f64 * 1000.0 / speed).round().max(1.0);
    Duration::from_millis(ms as u64)
}

/// A short transcript of an answered call, vendor `recordDetail` items.
pub(crate) fn transcript(intent_name: &str, start_ts: i64) -> Vec<serde_json::Value> {
    let lines = [
        (
            0,
            8,
            "Hello, this is an automated call. Do you have a minute?",
        ),
        (1, 7, "Yes, go ahead."),
        (
            0,
            8,
            "Thank you. We would like to tell you about our offer.",
        ),
        (1, 7, intent_name),
    ];
    lines
        .iter()
        .enumerate()
        .map(|(i, (role, kind, word))| {
            serde_json::json!({
                "recordWord": word,
                "recordIndex": i + 1,
                "recordRole": role,
                "recordType": kind,
                "nodeID": format!("node-{}", i + 1),
                "nodeDesc": if *role == 0 { "robot" } else { "user" },
                "createTs": start_ts + i as i64 * 5,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn same_seed_gives_same_outcomes_and_all_weighted_kinds_appear() {
        let cfg = OutcomeConfig::default();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..500)
                .map(|_| cfg.sample(&mut rng, "4915112345678", 0, 1.0).outcome)
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        for (kind, _) in &cfg.weights {
            assert!(a.contains(kind), "{kind:?} never drawn in 500 calls");
        }
    }

    #[test]
    fn speed_shortens_durations_and_forced_phone_wins() {
        let mut cfg = OutcomeConfig::default();
        cfg.forced.insert("4915100000000".into(), Outcome::NoAnswer);
        let mut rng = StdRng::seed_from_u64(1);
        let slow = cfg.sample(&mut rng, "4915100000000", 40, 1.0);
        let fast = cfg.sample(&mut rng, "4915100000000", 40, 100.0);
        assert_eq!(slow.outcome, Outcome::NoAnswer);
        assert_eq!(slow.total, Duration::from_secs(40));
        assert_eq!(fast.total, Duration::from_millis(400));
        assert!(slow.answer_after.is_none());
    }
}
