//! Gathering the decision's inputs from a campaign spec and the store (no platform calls): shared by the
//! reconciler and by `campaignd status`.

use campaign::CampaignSpec;
use chrono::{DateTime, Duration, Utc};
use store::{OrderCounts, Store, StoreError, TaskRecord};

use crate::daemon::{task_view, user_task_id};
use crate::desired::{desired, fit};
use crate::plan::{Desired, Observed, Orders, Plan, TaskState, decide};

/// Everything known about one campaign at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub desired: Desired,
    pub observed: Observed,
    pub task: Option<TaskRecord>,
    pub counts: OrderCounts,
    pub plan: Plan,
}

/// The observed state, computed purely from the stored task record and order counts.
pub fn observed_at(
    spec: &CampaignSpec,
    task: Option<&TaskRecord>,
    counts: &OrderCounts,
    d: &Desired,
    apply_delay: Duration,
    next_poll_at: Option<DateTime<Utc>>,
) -> Observed {
    let (state, sent, sent_at) = task_view(task);
    let (matches, safe) = fit(
        &spec.schedule,
        d.target.as_ref(),
        sent.as_ref().map(|s| &s.settings),
        d.now,
    );
    let effective_at = match (&sent, sent_at) {
        (Some(s), Some(at)) if s.via == "update" => Some(at + apply_delay),
        (Some(_), Some(at)) => Some(at),
        _ => None,
    };
    Observed {
        task: state,
        sent_matches_target: matches,
        sent_safe_now: safe,
        settings_effective_at: effective_at,
        orders: Orders {
            planned: counts.planned,
            sending: counts.sending,
            sent: counts.sent,
            rejected: counts.rejected,
            unfinished: counts.sent.saturating_sub(counts.finished),
        },
        next_poll_at: if matches!(state, TaskState::NotCreated | TaskState::CreateInDoubt) {
            None
        } else {
            next_poll_at
        },
    }
}

/// Reads the store and decides, without acting.
pub async fn snapshot(
    store: &dyn Store,
    spec: &CampaignSpec,
    file_present: bool,
    valid_contacts: u64,
    now: DateTime<Utc>,
    apply_delay: Duration,
    next_poll_at: Option<DateTime<Utc>>,
) -> Result<Snapshot, StoreError> {
    let ut = user_task_id(spec);
    let counts = store.order_counts(&spec.id).await?;
    let task = store
        .tasks(&spec.id)
        .await?
        .into_iter()
        .find(|t| t.user_task_id == ut);
    let d = desired(
        spec,
        now,
        file_present,
        valid_contacts > 0 || counts.total > 0,
        apply_delay,
    );
    let observed = observed_at(spec, task.as_ref(), &counts, &d, apply_delay, next_poll_at);
    let plan = decide(&d, &observed);
    Ok(Snapshot {
        desired: d,
        observed,
        task,
        counts,
        plan,
    })
}
