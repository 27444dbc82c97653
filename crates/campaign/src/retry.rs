//! Retry rounds: which call outcomes are dialled again, after how long, and how many attempts in all.
//!
//! An attempt is one order on the platform (the platform may itself redial it once within a round, `roundRedial`;
//! that stays inside the attempt). When an attempt's order is finished and its last call ended in a retryable class,
//! the next attempt is a new order for the same contact, in the same task, once `after` has passed since that call
//! ended, while the attempts so far are fewer than the class's `max_attempts` (counting the first).
//!
//! The classes map the vendor's final `callStatus` codes (the callStatus table of the order and call pages):
//!
//! | class | callStatus |
//! |---|---|
//! | `busy` | 10 busy, 11 busy and rejected |
//! | `no_answer` | 22 ring missed, 23 no response, 25 rang too long |
//! | `unreachable` | 9 temporarily unreachable |
//! | `voicemail` | 24 early media / voice mail |
//! | `failed` | 15 TTS synthesis failed, 16 unknown reason |
//!
//! Final, never retried: 6 answered, 8 and 21 invalid number, 12 and 13 rejected, 17 blacklisted, 18 terminated by
//! the user. Any code not in the table (one the vendor adds later, or none at all) is never retried either: calling
//! someone again on an outcome we cannot read is the unsafe reading.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The most attempts in all a `[retry]` rule may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10;

/// An outcome class that `[retry]` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryClass {
    Busy,
    NoAnswer,
    Unreachable,
    Voicemail,
    Failed,
}

impl RetryClass {
    pub const ALL: [RetryClass; 5] = [
        RetryClass::Busy,
        RetryClass::NoAnswer,
        RetryClass::Unreachable,
        RetryClass::Voicemail,
        RetryClass::Failed,
    ];

    /// The key in `[retry]`.
    pub fn name(self) -> &'static str {
        match self {
            RetryClass::Busy => "busy",
            RetryClass::NoAnswer => "no_answer",
            RetryClass::Unreachable => "unreachable",
            RetryClass::Voicemail => "voicemail",
            RetryClass::Failed => "failed",
        }
    }

    pub fn from_name(name: &str) -> Option<RetryClass> {
        RetryClass::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The final `callStatus` codes of the class.
    pub fn statuses(self) -> &'static [i64] {
        match self {
            RetryClass::Busy => &[10, 11],
            RetryClass::NoAnswer => &[22, 23, 25],
            RetryClass::Unreachable => &[9],
            RetryClass::Voicemail => &[24],
            RetryClass::Failed => &[15, 16],
        }
    }

    /// The class of a final `callStatus`; `None` for the final outcomes that are never retried and unknown codes.
    pub fn of_status(status: i64) -> Option<RetryClass> {
        RetryClass::ALL
            .into_iter()
            .find(|c| c.statuses().contains(&status))
    }
}

impl fmt::Display for RetryClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `[retry]` entry: wait `after_secs` since the last call ended, and make at most `max_attempts` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRule {
    pub after_secs: u64,
    pub max_attempts: u32,
}

/// `[retry]`: the rules by outcome class. Empty: every contact gets one attempt, as before retries existed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RetryPolicy {
    pub rules: BTreeMap<RetryClass, RetryRule>,
}

impl RetryPolicy {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule for an attempt whose last call ended with `status`, when that outcome is retried.
    pub fn rule(&self, status: i64) -> Option<RetryRule> {
        RetryClass::of_status(status).and_then(|c| self.rules.get(&c).copied())
    }

    /// Every `callStatus` the policy may retry, ascending.
    pub fn statuses(&self) -> Vec<i64> {
        let mut out: Vec<i64> = self
            .rules
            .keys()
            .flat_map(|c| c.statuses().iter().copied())
            .collect();
        out.sort_unstable();
        out
    }

    /// The most attempts any rule allows (1 when there is none).
    pub fn max_attempts(&self) -> u32 {
        self.rules
            .values()
            .map(|r| r.max_attempts)
            .max()
            .unwrap_or(1)
    }

    /// When attempt `attempt + 1` may be sent, given that attempt `attempt` (1 for the first) finished with a last
    /// call of `status` that ended at `ended_at`. `None`: never (a final outcome, no rule, or no attempts left).
    pub fn next_due(
        &self,
        attempt: u32,
        status: i64,
        ended_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let rule = self.rule(status)?;
        if attempt >= rule.max_attempts {
            return None;
        }
        let after = Duration::seconds(i64::try_from(rule.after_secs).ok()?);
        ended_at.checked_add_signed(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy() -> RetryPolicy {
        let mut rules = BTreeMap::new();
        rules.insert(
            RetryClass::Busy,
            RetryRule {
                after_secs: 1800,
                max_attempts: 3,
            },
        );
        rules.insert(
            RetryClass::NoAnswer,
            RetryRule {
                after_secs: 7200,
                max_attempts: 2,
            },
        );
        RetryPolicy { rules }
    }

    #[test]
    fn every_final_status_has_its_documented_class_and_the_rest_are_never_retried() {
        let expected: &[(i64, Option<RetryClass>)] = &[
            (6, None),
            (8, None),
            (9, Some(RetryClass::Unreachable)),
            (10, Some(RetryClass::Busy)),
            (11, Some(RetryClass::Busy)),
            (12, None),
            (13, None),
            (15, Some(RetryClass::Failed)),
            (16, Some(RetryClass::Failed)),
            (17, None),
            (18, None),
            (21, None),
            (22, Some(RetryClass::NoAnswer)),
            (23, Some(RetryClass::NoAnswer)),
            (24, Some(RetryClass::Voicemail)),
            (25, Some(RetryClass::NoAnswer)),
        ];
        for (status, class) in expected {
            assert_eq!(
                RetryClass::of_status(*status),
                *class,
                "callStatus {status}"
            );
        }
        // In-flight and unknown codes are never a retry class.
        for status in (-5..=5).chain(26..200).chain([7, 14, 19, 20]) {
            assert_eq!(RetryClass::of_status(status), None, "callStatus {status}");
        }
        for c in RetryClass::ALL {
            assert_eq!(RetryClass::from_name(c.name()), Some(c));
        }
        assert_eq!(RetryClass::from_name("answered"), None);
    }

    #[test]
    fn the_next_attempt_waits_its_delay_and_stops_at_the_maximum() {
        let p = policy();
        let end = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        assert_eq!(p.next_due(1, 10, end), Some(end + Duration::minutes(30)));
        assert_eq!(p.next_due(2, 11, end), Some(end + Duration::minutes(30)));
        assert_eq!(p.next_due(3, 10, end), None, "3 attempts in all");
        assert_eq!(p.next_due(1, 22, end), Some(end + Duration::hours(2)));
        assert_eq!(p.next_due(2, 22, end), None);
        assert_eq!(p.next_due(1, 6, end), None, "answered is final");
        assert_eq!(p.next_due(1, 9, end), None, "no rule for unreachable");
        assert_eq!(p.statuses(), vec![10, 11, 22, 23, 25]);
        assert_eq!(p.max_attempts(), 3);
        assert_eq!(RetryPolicy::default().max_attempts(), 1);
        assert!(RetryPolicy::default().statuses().is_empty());
    }

    #[test]
    fn serialises_as_a_map_of_class_names() {
        let json = serde_json::to_value(policy()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "busy": { "after_secs": 1800, "max_attempts": 3 },
                "no_answer": { "after_secs": 7200, "max_attempts": 2 }
            })
        );
        let back: RetryPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, policy());
    }
}
