//! Settling what is in doubt by asking the platform (`listTask`, `listOrderDetail`) before anything is resent.

use std::collections::HashSet;

use callbot_api::wire::{self, ListOrderDetailRequest, TaskStatus};
use campaign::CampaignSpec;
use chrono::{DateTime, Utc};
use store::{FactSource, OrderRecord, UploadState};

use super::{Executor, Learned, StepError, StepResult};
use crate::plan::TaskState;
use crate::task::TaskView;

/// listOrderDetail carries at most 500 order IDs (vendor limit).
pub(crate) const POLL_CHUNK: u32 = wire::LIST_ORDER_DETAIL_MAX as u32;

impl Executor {
    /// Resolves everything in doubt by asking the platform: a creation or a start, pause or completion (listTask),
    /// then orders left `sending` (listOrderDetail): found → sent, not found → planned. Nothing is resent, and
    /// nothing started, before this.
    pub(super) async fn resolve(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        now: DateTime<Utc>,
    ) -> StepResult<Learned> {
        let grace = self.resolve_grace;
        let task = self.task_record(&spec.id, ut).await?;
        let view = TaskView::of(task.as_ref());
        if view.status_in_doubt {
            let since = task
                .as_ref()
                .and_then(|t| t.status_in_doubt_since)
                .unwrap_or(now);
            // A request of a killed process may still be on its way: ask once it would have been applied.
            if now < since + grace {
                return Ok(Learned::WaitUntil(since + grace));
            }
            // The task existed when the toggle was sent, so listTask must know it and its status. If it does not,
            // the mark stays (nothing is started) and the step reports it, rather than guessing either way.
            let status = self
                .list_task(ut)
                .await?
                .and_then(|found| found.task_status)
                .ok_or_else(|| {
                    StepError::Unexpected(format!(
                        "task {ut}: listTask gave no status for a task whose last start or pause is in doubt; \
                         nothing is started until it does"
                    ))
                })?;
            self.store
                .task_status_observed(ut, status.code(), None, now)
                .await?;
            tracing::info!(campaign.id = %spec.id, task.user_id = %ut, task.status = status.code(), "resolved: the task's status after a start or pause in doubt");
        }
        if view.state == TaskState::CreateInDoubt {
            let since = task.as_ref().map_or(now, |t| t.updated_at);
            if now < since + grace {
                return Ok(Learned::WaitUntil(since + grace));
            }
            match self.list_task(ut).await? {
                Some(found) => {
                    let status = found.task_status.unwrap_or(TaskStatus::Pending);
                    let task_id = (!found.task_id.is_empty()).then_some(found.task_id.as_str());
                    self.store
                        .task_status_observed(ut, status.code(), task_id, now)
                        .await?;
                    tracing::info!(campaign.id = %spec.id, task.user_id = %ut, "resolved: the task was created");
                }
                None => {
                    self.store.task_not_created(ut, now).await?;
                    // Nothing of it reached the platform: every order in doubt goes back to planned.
                    loop {
                        let stuck = self
                            .store
                            .orders_in_state(ut, UploadState::Sending, POLL_CHUNK)
                            .await?;
                        if stuck.is_empty() {
                            break;
                        }
                        let ids: Vec<String> = stuck.into_iter().map(|o| o.order_id).collect();
                        self.store
                            .set_upload_state(&ids, UploadState::Planned, now)
                            .await?;
                    }
                    tracing::info!(campaign.id = %spec.id, task.user_id = %ut, "resolved: the task was not created; will create again");
                    return Ok(Learned::Done);
                }
            }
        }
        let mut offset_seen: HashSet<String> = HashSet::new();
        loop {
            let stuck = self
                .store
                .orders_in_state(ut, UploadState::Sending, POLL_CHUNK)
                .await?;
            let stuck: Vec<OrderRecord> = stuck
                .into_iter()
                .filter(|o| !offset_seen.contains(&o.order_id))
                .collect();
            if stuck.is_empty() {
                return Ok(Learned::Done);
            }
            if let Some(young) = stuck
                .iter()
                .filter_map(|o| o.state_changed_at)
                .filter(|at| now < *at + grace)
                .min()
            {
                return Ok(Learned::WaitUntil(young + grace));
            }
            let ids: Vec<String> = stuck.iter().map(|o| o.order_id.clone()).collect();
            let resp = self
                .client
                .list_order_detail(&ListOrderDetailRequest::new(ut, ids.clone()))
                .await?;
            let found: HashSet<&str> = resp
                .order_detail_list
                .iter()
                .map(|d| d.order_id.as_str())
                .collect();
            let (yes, no): (Vec<String>, Vec<String>) = ids
                .iter()
                .cloned()
                .partition(|o| found.contains(o.as_str()));
            if !yes.is_empty() {
                self.store
                    .set_upload_state(&yes, UploadState::Sent, now)
                    .await?;
                let facts: Vec<_> = resp
                    .order_detail_list
                    .iter()
                    .map(|d| crate::facts::from_order_detail(d, ut))
                    .collect();
                self.store
                    .apply_order_facts(&facts, FactSource::Poll)
                    .await?;
            }
            if !no.is_empty() {
                self.store
                    .set_upload_state(&no, UploadState::Planned, now)
                    .await?;
            }
            tracing::info!(campaign.id = %spec.id, task.user_id = %ut, found = yes.len(), not_found = no.len(), "resolved orders in doubt");
            offset_seen.extend(ids);
        }
    }
}
