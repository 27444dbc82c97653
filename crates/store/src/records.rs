//! Rows the daemon writes and reads: campaigns, tasks, orders, and the ledger.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{OrderFacts, StopState, StoreError};

/// One campaign file as the daemon last loaded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRecord {
    /// Campaign ID (from the file).
    pub id: String,
    /// Bumped by the daemon each time the file's content changes.
    pub generation: i64,
    /// Path of the campaign file.
    pub source_file: String,
    /// Hash of the file's content.
    pub content_hash: String,
    /// The last spec that parsed and validated, as JSON.
    pub spec: Option<serde_json::Value>,
    /// The daemon's state for the campaign (free text chosen by the daemon, e.g. `active`, `invalid`, `done`).
    pub state: String,
    /// Why the last load or action failed, if it did.
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One platform task (`userTaskID`) of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Our key for the task on the platform (`userTaskID`).
    pub user_task_id: String,
    pub campaign_id: String,
    pub generation: i64,
    /// Index of the task within the campaign.
    pub task_index: i64,
    /// The platform's own `taskID`, once known.
    pub task_id: Option<String>,
    /// The settings last sent to the platform (createTask/updateTask body), as JSON.
    pub settings: Option<serde_json::Value>,
    pub settings_sent_at: Option<DateTime<Utc>>,
    /// The platform's `taskStatus` as last seen (1 pending, 2 running, 3 completed, 4 ended, 5 paused). A terminal
    /// one ([`TERMINAL_TASK_STATUSES`]) is never replaced.
    pub platform_status: Option<i64>,
    pub updated_at: DateTime<Utc>,
    /// When a start, pause or completion was about to be sent whose outcome is not recorded
    /// ([`crate::Store::task_toggle_intent`]); `None` once an answer or a `listTask` gave the status.
    #[serde(default)]
    pub status_in_doubt_since: Option<DateTime<Utc>>,
}

/// What identifies a task row when the daemon is about to create the task: its key and where it belongs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskKey {
    pub user_task_id: String,
    pub campaign_id: String,
    pub generation: i64,
    pub task_index: i64,
}

/// The platform's terminal `taskStatus` values: 3 completed, 4 ended. A task in one of them never runs again, so
/// the store never replaces a stored terminal status by anything (not by another terminal one either).
pub const TERMINAL_TASK_STATUSES: [i64; 2] = [3, 4];

/// Whether a `taskStatus` is terminal (see [`TERMINAL_TASK_STATUSES`]).
pub fn is_terminal_task_status(status: i64) -> bool {
    TERMINAL_TASK_STATUSES.contains(&status)
}

/// A task status the platform reported in a task callback, applied by [`crate::Store::ingest_callbacks`] with the
/// rule of [`crate::Store::task_status_observed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatusFact {
    pub user_task_id: String,
    /// `taskStatus`.
    pub status: i64,
    /// The platform's `taskID`, when the callback gives one.
    pub task_id: Option<String>,
}

/// Where an order is in its upload to the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Planned, not sent yet.
    Planned,
    /// A request carrying it is in flight; whether the platform has it is not known yet.
    Sending,
    /// The platform accepted it.
    Sent,
    /// The platform refused it (see `reject_reason`).
    Rejected,
}

impl UploadState {
    pub const ALL: [UploadState; 4] = [
        UploadState::Planned,
        UploadState::Sending,
        UploadState::Sent,
        UploadState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Planned => "planned",
            UploadState::Sending => "sending",
            UploadState::Sent => "sent",
            UploadState::Rejected => "rejected",
        }
    }

    /// The states an order may move to `self` from. `sent` and `rejected` are final.
    pub fn predecessors(self) -> &'static [UploadState] {
        match self {
            UploadState::Planned => &[UploadState::Sending],
            UploadState::Sending => &[UploadState::Planned],
            UploadState::Sent => &[UploadState::Planned, UploadState::Sending],
            UploadState::Rejected => &[UploadState::Planned, UploadState::Sending],
        }
    }
}

impl fmt::Display for UploadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UploadState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UploadState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown upload state {s:?}")))
    }
}

/// An order to plan (one phone number of one campaign).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOrder {
    /// Our globally unique `orderID`.
    pub order_id: String,
    pub campaign_id: String,
    pub user_task_id: String,
    /// Normalized phone: country code and national number, digits only.
    pub phone: String,
    pub name: Option<String>,
    /// The customer's own reference for the contact, if the source has one.
    pub customer: Option<String>,
    /// Passthrough sent to the platform as `other`.
    pub other: Option<String>,
    /// Script variables, as a JSON object.
    pub variables: serde_json::Value,
    /// Line of the contact in its source file (1-based), which is also the upload order.
    pub source_line: i64,
    /// The contact's attempt in its task: 1 for the first order, one more for each retry.
    pub attempt: u32,
}

/// A stored order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: String,
    pub campaign_id: String,
    pub user_task_id: String,
    pub phone: String,
    pub name: Option<String>,
    pub customer: Option<String>,
    pub other: Option<String>,
    pub variables: serde_json::Value,
    pub source_line: i64,
    pub upload_state: UploadState,
    pub reject_reason: Option<String>,
    /// When the upload state last changed (None while still planned from the start).
    pub state_changed_at: Option<DateTime<Utc>>,
    /// The platform says no further call rounds will follow. Never goes back to false.
    pub finished: bool,
    /// Status of the latest call by start time.
    pub last_call_status: Option<i64>,
    pub last_polled_at: Option<DateTime<Utc>>,
    /// Where stopping it on the platform is (`None`: never asked); see [`crate::Store::mark_stop`].
    pub stop_state: Option<StopState>,
    /// When `stop_state` last changed.
    pub stopped_at: Option<DateTime<Utc>>,
    /// The contact's attempt in its task: 1 for the first order, one more for each retry.
    pub attempt: u32,
}

/// The final `callStatus` codes a retry rule may name (the union of the campaign crate's retry classes), ascending:
/// only orders whose last call ended in one of these are in the orders_to_retry index.
pub const RETRYABLE_STATUSES: [i64; 9] = [9, 10, 11, 15, 16, 22, 23, 24, 25];

/// Which attempts [`crate::Store::retries_due`] looks for: one retry rule's outcomes, at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryQuery {
    /// The final `callStatus` codes the rule retries.
    pub statuses: Vec<i64>,
    /// Attempts in all: only attempts numbered below it may be followed.
    pub max_attempts: u32,
    /// Due: the last call ended at or before this (now, less the rule's delay).
    pub ended_by: DateTime<Utc>,
}

/// What [`crate::Store::retries_due`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetriesDue {
    /// The attempts that may be followed now.
    pub due: Vec<OrderRecord>,
    /// The earliest end of a last call after `ended_by` among the rest: when the next one falls due, less the delay.
    pub next_ended_at: Option<DateTime<Utc>>,
}

/// Orders of one campaign counted by upload state and outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCounts {
    pub total: u64,
    pub planned: u64,
    pub sending: u64,
    pub sent: u64,
    /// Rejected orders, suppressed ones included.
    pub rejected: u64,
    /// Rejected orders whose phone was suppressed (their `reject_reason` begins with
    /// [`crate::SUPPRESSED_REASON_PREFIX`]); also counted in `rejected`.
    pub suppressed: u64,
    /// Orders with at least one call.
    pub dialled: u64,
    /// Orders with at least one answered call (callStatus 6).
    pub answered: u64,
    pub finished: u64,
}

/// One task's orders counted by upload state, plus the sent orders not finished yet: what the daemon decides on.
/// Cheap to read (kept as tallies in the transactions that move orders, and counted from the poll index), unlike
/// [`OrderCounts`], which also looks up every order's calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderProgress {
    pub total: u64,
    pub planned: u64,
    pub sending: u64,
    pub sent: u64,
    pub rejected: u64,
    /// Sent and not finished: the orders a poll would ask about.
    pub unfinished: u64,
}

impl OrderProgress {
    /// The progress from counted rows (as read from a database: negative counts read as 0); `total` is their sum.
    pub fn from_counts(
        planned: i64,
        sending: i64,
        sent: i64,
        rejected: i64,
        unfinished: i64,
    ) -> OrderProgress {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let (planned, sending, sent, rejected) = (n(planned), n(sending), n(sent), n(rejected));
        OrderProgress {
            total: planned + sending + sent + rejected,
            planned,
            sending,
            sent,
            rejected,
            unfinished: n(unfinished),
        }
    }
}

/// A campaign's lease: which replica owns the campaign, until when. A lease that has expired is still stored until
/// another replica takes it over or its owner gives it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub campaign_id: String,
    /// The replica's name (`campaignd run --replica`).
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

impl LeaseRecord {
    /// Whether its owner still holds it at `now`: another replica may take it over from `expires_at` on.
    pub fn is_current(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// One request the daemon made to the platform, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Endpoint name, e.g. `addBatchCall`.
    pub endpoint: String,
    pub request_id: String,
    pub response_id: Option<String>,
    pub ret_code: Option<i64>,
    pub message: Option<String>,
    pub http_status: Option<i64>,
    pub duration_ms: i64,
    pub at: DateTime<Utc>,
    /// How the daemon classified it: e.g. `ok`, `rejected`, `retryable`, `ambiguous`.
    pub outcome: String,
    pub campaign_id: Option<String>,
    pub user_task_id: Option<String>,
}

/// One callback the platform delivered, stored before it is processed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackRecord {
    /// Callback kind: `task`, `order` or `call` (or the raw `callbackType` when unknown).
    pub kind: String,
    /// The body exactly as received.
    pub body: String,
    /// Whether its signature verified.
    pub verified: bool,
    pub received_at: DateTime<Utc>,
    /// The `requestID` header, if any.
    pub request_id: Option<String>,
}

/// One received callback as the webhook hands it to [`crate::Store::ingest_callbacks`]: the raw record, plus the
/// order facts it carries when it was readable and is an order or call callback, and the task status it carries
/// when it is a task callback the daemon trusts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackIngest {
    pub record: CallbackRecord,
    pub facts: Option<OrderFacts>,
    pub task_status: Option<TaskStatusFact>,
}

impl CallbackIngest {
    /// A callback carrying nothing but its raw record.
    pub fn raw(record: CallbackRecord) -> CallbackIngest {
        CallbackIngest {
            record,
            facts: None,
            task_status: None,
        }
    }

    /// The key under which a replay of this callback is recognised: its `requestID` when its signature verified.
    /// Unverified records have none (anyone can send them, so they never suppress anything).
    pub fn replay_key(&self) -> Option<&str> {
        match (&self.record.request_id, self.record.verified) {
            (Some(id), true) => Some(id.as_str()),
            _ => None,
        }
    }
}

/// What [`crate::Store::ingest_callbacks`] did with one callback of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ingested {
    /// Stored, and its facts applied.
    Stored,
    /// A verified callback whose `requestID` is already stored (a replay, or a second delivery of one already
    /// answered): not stored again, and its facts not applied again.
    Repeat,
}
