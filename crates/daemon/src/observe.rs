//! Gathering the decision's inputs from a campaign spec and the store (no platform calls): shared by the
//! reconciler and by `campaignd status`.

use campaign::{CampaignSpec, ZoneGroup};
use chrono::{DateTime, Duration, Utc};
use store::{OrderCounts, OrderProgress, Store, StoreError, TaskRecord};

use crate::desired::{desired, fit};
use crate::plan::{Desired, Observed, Orders, Plan, TaskState, decide};
use crate::task::{TaskView, user_task_id};

/// Everything known about one campaign at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub desired: Desired,
    pub observed: Observed,
    pub task: Option<TaskRecord>,
    /// The campaign's orders over all its tasks, with outcomes (for display; the decision uses `progress`).
    pub counts: OrderCounts,
    /// The current task's orders by upload state: what the decision was made on.
    pub progress: OrderProgress,
    pub plan: Plan,
}

/// What the reconciler decides on: like [`Snapshot`] without the campaign-wide counts of outcomes, which cost a
/// look-up of every order's calls.
#[derive(Debug, Clone)]
pub struct Decision {
    pub desired: Desired,
    pub observed: Observed,
    pub progress: OrderProgress,
    pub plan: Plan,
}

/// The decision's view of the orders.
fn orders_of(p: &OrderProgress) -> Orders {
    Orders {
        planned: p.planned,
        sending: p.sending,
        sent: p.sent,
        rejected: p.rejected,
        unfinished: p.unfinished,
    }
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
    let orders = Orders {
        planned: counts.planned,
        sending: counts.sending,
        sent: counts.sent,
        rejected: counts.rejected,
        unfinished: counts.sent.saturating_sub(counts.finished),
    };
    observed_with(spec, task, orders, d, apply_delay, next_poll_at)
}

/// The observed state from the stored task record and the task's orders.
fn observed_with(
    spec: &CampaignSpec,
    task: Option<&TaskRecord>,
    orders: Orders,
    d: &Desired,
    apply_delay: Duration,
    next_poll_at: Option<DateTime<Utc>>,
) -> Observed {
    let view = TaskView::of(task);
    let state = view.state;
    let (matches, safe) = fit(
        &spec.calendar(),
        d.target.as_ref(),
        view.sent.as_ref().map(|s| &s.settings),
        d.now,
    );
    let effective_at = view.settings_effective_at(apply_delay);
    Observed {
        task: state,
        sent_matches_target: matches,
        sent_safe_now: safe,
        settings_effective_at: effective_at,
        status_in_doubt: view.status_in_doubt,
        orders,
        next_poll_at: if matches!(state, TaskState::NotCreated | TaskState::CreateInDoubt) {
            None
        } else {
            next_poll_at
        },
        next_retry_at: None,
    }
}

/// The zone groups the store recorded for a task (see [`campaign::Audience::recorded`]). A record that no longer
/// reads as a group is skipped with a warning.
pub(crate) async fn recorded_groups(
    store: &dyn Store,
    user_task_id: &str,
) -> Result<Vec<ZoneGroup>, StoreError> {
    let texts = store.zone_groups(user_task_id).await?;
    Ok(texts
        .iter()
        .filter_map(|t| read_group(user_task_id, t))
        .collect())
}

/// A zone group as the store keeps it (JSON); `None`, with a warning, when it does not read.
pub(crate) fn read_group(user_task_id: &str, text: &str) -> Option<ZoneGroup> {
    match serde_json::from_str::<ZoneGroup>(text) {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(task.user_id = %user_task_id, group = %text, error = %e, "a recorded zone group does not read");
            None
        }
    }
}

/// The campaign with the zone groups recorded for its task merged into its audience: what its task's calendar must
/// cover, as the reconciler sees it.
pub async fn with_recorded_groups(
    store: &dyn Store,
    spec: &CampaignSpec,
) -> Result<CampaignSpec, StoreError> {
    let recorded = recorded_groups(store, &user_task_id(spec)).await?;
    let mut spec = spec.clone();
    spec.audience
        .get_or_insert_with(Default::default)
        .merge_recorded(recorded);
    Ok(spec)
}

/// Reads the store and decides, without acting; also counts the campaign's orders with their outcomes (for
/// `status` and `plan`; the reconciler uses [`decision`], which skips those counts). `spec` is a task's, with its
/// recorded zone groups merged ([`with_recorded_groups`]), as the reconciler decides with.
pub async fn snapshot(
    store: &dyn Store,
    spec: &CampaignSpec,
    file_present: bool,
    valid_contacts: u64,
    now: DateTime<Utc>,
    apply_delay: Duration,
    next_poll_at: Option<DateTime<Utc>>,
) -> Result<Snapshot, StoreError> {
    let counts = store.order_counts(&spec.id).await?;
    let (d, task) = decision_with_task(
        store,
        spec,
        file_present,
        valid_contacts,
        now,
        apply_delay,
        next_poll_at,
    )
    .await?;
    let (mut observed, mut plan) = (d.observed, d.plan);
    if !spec.retry.is_empty() && observed.task.is_live() {
        // What the daemon would plan: due retries make the next one "now".
        let (due, found) = crate::retries::due(store, spec, &user_task_id(spec), now).await?;
        observed.next_retry_at = if due.is_empty() {
            found.next_due
        } else {
            Some(now)
        };
        if observed.next_retry_at.is_some() {
            plan = decide(&d.desired, &observed);
        }
    }
    Ok(Snapshot {
        desired: d.desired,
        observed,
        task,
        counts,
        progress: d.progress,
        plan,
    })
}

/// What a decision reads from the store: the campaign's task records, and its current task's tallies and unfinished
/// orders.
pub(crate) async fn decision_inputs(
    store: &dyn Store,
    spec: &CampaignSpec,
) -> Result<(Vec<TaskRecord>, OrderProgress), StoreError> {
    let progress = store.order_progress(&user_task_id(spec)).await?;
    let tasks = store.tasks(&spec.id).await?;
    Ok((tasks, progress))
}

/// Reads what the decision needs ([`decision_inputs`]) and decides.
async fn decision_with_task(
    store: &dyn Store,
    spec: &CampaignSpec,
    file_present: bool,
    valid_contacts: u64,
    now: DateTime<Utc>,
    apply_delay: Duration,
    next_poll_at: Option<DateTime<Utc>>,
) -> Result<(Decision, Option<TaskRecord>), StoreError> {
    let (tasks, progress) = decision_inputs(store, spec).await?;
    Ok(decision_from(
        spec,
        &tasks,
        progress,
        file_present,
        valid_contacts,
        now,
        apply_delay,
        next_poll_at,
    ))
}

/// The decision from what was read: the campaign's task records and its current task's progress. Pure.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decision_from(
    spec: &CampaignSpec,
    tasks: &[TaskRecord],
    progress: OrderProgress,
    file_present: bool,
    valid_contacts: u64,
    now: DateTime<Utc>,
    apply_delay: Duration,
    next_poll_at: Option<DateTime<Utc>>,
) -> (Decision, Option<TaskRecord>) {
    let ut = user_task_id(spec);
    let task = tasks.iter().find(|t| t.user_task_id == ut).cloned();
    let d = desired(
        spec,
        now,
        file_present,
        valid_contacts > 0 || progress.total > 0,
        apply_delay,
    );
    let observed = observed_with(
        spec,
        task.as_ref(),
        orders_of(&progress),
        &d,
        apply_delay,
        next_poll_at,
    );
    let plan = decide(&d, &observed);
    (
        Decision {
            desired: d,
            observed,
            progress,
            plan,
        },
        task,
    )
}
