//! Suppression (do-not-call) lists: the entries, how they are read, and the stop outbox of orders already uploaded.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One suppression entry. A number is suppressed while it has at least one entry that has not expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// Normalised like `orders.phone`: country code and national number, digits only.
    pub phone: String,
    /// Who listed the number: `cli`, `file:<name>`, `opt_out:<campaign>:<callID>` (see [`opt_out_source`]).
    pub source: String,
    pub reason: Option<String>,
    /// When the entry stops counting (`None`: never). An entry counts at `t` while `t < expires_at`.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the entry was first added. An upsert that changes the reason or the expiry keeps it.
    pub added_at: DateTime<Utc>,
}

impl Suppression {
    /// Whether the entry counts at `t`.
    pub fn is_active_at(&self, t: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| t < e)
    }
}

/// Which entries [`crate::Store::suppressions`] returns, ordered by phone, then source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressionFilter {
    /// Only this phone's entries (normalised).
    pub phone: Option<String>,
    /// Only the entries that count at this instant (not expired).
    pub active_at: Option<DateTime<Utc>>,
    /// At most this many (`None`: all).
    pub limit: Option<u32>,
    /// Skip this many first.
    pub offset: u64,
}

/// What [`crate::Store::replace_suppression_source`] did to the source's entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSync {
    /// Phones that were not listed by the source before.
    pub added: u64,
    /// Phones listed before whose reason or expiry changed.
    pub updated: u64,
    /// Phones listed before and no longer.
    pub removed: u64,
    /// Phones listed before, unchanged.
    pub kept: u64,
}

impl SourceSync {
    /// Whether the suppression set changed (and so its version).
    pub fn changed(&self) -> bool {
        self.added + self.updated + self.removed > 0
    }
}

/// Where an order is in being stopped on the platform (`stopOrder`): an outbox written before the request leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopState {
    /// A `stopOrder` carrying it is about to leave or in flight; whether the platform applied it is not known.
    Sending,
    /// The platform acknowledged the stop. Final.
    Stopped,
}

impl StopState {
    pub const ALL: [StopState; 2] = [StopState::Sending, StopState::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            StopState::Sending => "sending",
            StopState::Stopped => "stopped",
        }
    }
}

impl fmt::Display for StopState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StopState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StopState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown stop state {s:?}")))
    }
}

/// A call that carried an opt-out intent and whose phone is not suppressed for it yet
/// ([`crate::Store::opt_out_calls`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutCall {
    pub phone: String,
    pub order_id: String,
    pub call_id: String,
    /// The intent that matched: its name when the name was asked for, else its ID (the call's first matching one).
    pub intent: String,
}

/// How every order rejected because of a suppression has its `reject_reason` begin; [`crate::OrderCounts`]
/// counts them as `suppressed`. The rest is the entry's reason, else its source ([`suppressed_reason`]).
pub const SUPPRESSED_REASON_PREFIX: &str = "suppressed: ";

/// The `reject_reason` of an order rejected because of this entry. The backends build the same text in SQL:
/// `'suppressed: ' || COALESCE(reason, source)`, from the phone's first active entry by source.
pub fn suppressed_reason(reason: Option<&str>, source: &str) -> String {
    format!("{SUPPRESSED_REASON_PREFIX}{}", reason.unwrap_or(source))
}

/// How the source of every suppression file's entries begins: `file:<name>`.
pub const FILE_SOURCE_PREFIX: &str = "file:";

/// The source of the entry an opt-out in call `call_id` of campaign `campaign_id` writes.
pub fn opt_out_source(campaign_id: &str, call_id: &str) -> String {
    format!("opt_out:{campaign_id}:{call_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_counts_until_its_expiry_and_forever_without_one() {
        let t = DateTime::from_timestamp(1_000, 0).unwrap();
        let mut s = Suppression {
            phone: "8613000000001".into(),
            source: "cli".into(),
            reason: None,
            expires_at: None,
            added_at: t,
        };
        assert!(s.is_active_at(t));
        s.expires_at = Some(t);
        assert!(!s.is_active_at(t), "expired at the instant it expires");
        assert!(s.is_active_at(DateTime::from_timestamp(999, 0).unwrap()));
    }

    #[test]
    fn stop_states_round_trip_and_reasons_read_as_documented() {
        for s in StopState::ALL {
            assert_eq!(s.as_str().parse::<StopState>().unwrap(), s);
        }
        assert!("lost".parse::<StopState>().is_err());
        assert_eq!(suppressed_reason(Some("asked"), "cli"), "suppressed: asked");
        assert_eq!(suppressed_reason(None, "file:dnc"), "suppressed: file:dnc");
        assert_eq!(opt_out_source("spring", "C1"), "opt_out:spring:C1");
    }
}
