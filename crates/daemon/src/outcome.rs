//! What a reconcile reports: per campaign, the decision left, the reason in words, the actions done and the error.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::{Orders, Plan, TaskState};

/// The outcome of one reconcile of one campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignOutcome {
    pub id: String,
    /// The last decision taken (after the actions ran, what remains to be done).
    pub plan: Plan,
    /// The reason in words.
    pub why: String,
    /// Actions executed, in order.
    pub done: Vec<String>,
    /// The error that stopped this campaign's reconcile, if any.
    pub error: Option<String>,
    /// A bad campaign file (its last good version keeps running).
    pub file_error: Option<String>,
    pub task: TaskState,
    pub user_task_id: String,
    pub orders: Orders,
    /// Another replica owns the campaign.
    pub not_owner: bool,
    /// Actions wait until then (orders in doubt too young to ask about, numbers held by a cap): the campaign is
    /// reconciled again then, not in a retry loop.
    #[serde(default)]
    pub wait_until: Option<DateTime<Utc>>,
}

/// The outcome of one reconcile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub campaigns: Vec<CampaignOutcome>,
    /// Files that failed and belong to no campaign known so far.
    pub file_errors: Vec<(PathBuf, String)>,
    pub next_wake: Option<DateTime<Utc>>,
    /// The campaigns reconciled this time (the others were not due; their last outcome is repeated).
    #[serde(default)]
    pub reconciled: Vec<String>,
}

impl Outcome {
    pub fn campaign(&self, id: &str) -> Option<&CampaignOutcome> {
        self.campaigns.iter().find(|c| c.id == id)
    }
}
