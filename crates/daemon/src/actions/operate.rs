//! Starting, pausing and completing a task (`mgrTaskStatus`), changing its settings (`updateTask`), and learning its
//! status (`listTask`) when an answer was unclear.

use callbot_api::wire::{
    self, DelCall, ListTaskRequest, MgrTaskStatusRequest, QueryConditions, TaskOperate, TaskStatus,
};
use campaign::CampaignSpec;
use chrono::{DateTime, Utc};
use store::TaskRecord;

use super::{Executor, Learned, StepResult};
use crate::requests::{func_flag, product_id, task_create_setting};
use crate::settings::TaskSettings;
use crate::task::{SentSettings, SentVia, TaskView};

impl Executor {
    /// mgrTaskStatus. The store marks the status in doubt before the request leaves and records the resulting
    /// status after; a refusal or an unclear answer refreshes the status from the platform. If the daemon dies, or
    /// the answer and the refresh are both lost, the mark stays, and the next step asks the platform (`resolve`)
    /// before it starts anything.
    pub(super) async fn operate(
        &self,
        ut: &str,
        op: TaskOperate,
        del: Option<DelCall>,
        now: DateTime<Utc>,
    ) -> StepResult<Learned> {
        let mut req = MgrTaskStatusRequest::new(ut, op);
        req.del_call = del;
        let expected = match op {
            TaskOperate::Start => TaskStatus::Running,
            TaskOperate::Pause => TaskStatus::Paused,
            _ => TaskStatus::Completed,
        };
        self.store.task_toggle_intent(ut, now).await?;
        match self.client.mgr_task_status(&req).await {
            Ok(resp) => {
                let status = resp.task_status.unwrap_or(expected);
                self.store
                    .task_status_observed(ut, status.code(), None, now)
                    .await?;
                tracing::info!(task.user_id = %ut, operate = ?op, task.status = status.code(), "task status changed");
                Ok(Learned::Done)
            }
            Err(e) => {
                // Whatever happened, ask the platform where the task stands before deciding again.
                self.refresh_status(ut, now).await;
                Err(e.into())
            }
        }
    }

    /// updateTask. An unclear outcome forgets the settings (so they are sent again, never assumed).
    pub(super) async fn update(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> StepResult<Learned> {
        let req = wire::UpdateTaskRequest {
            product_id: product_id(),
            user_task_id: ut.to_owned(),
            scene_id: spec.scene_id.clone(),
            task_create_setting: task_create_setting(settings, &self.urls),
            func_flag: func_flag(settings),
        };
        match self.client.update_task(&req).await {
            Ok(_) => {
                let sent = SentSettings::new(settings, SentVia::Update).to_json();
                self.store.task_settings_sent(ut, &sent, now).await?;
                tracing::info!(campaign.id = %spec.id, task.user_id = %ut, zone_second = settings.window.zone_second, week_days = %settings.window.dial_at_week_day(), "settings sent");
                Ok(Learned::Done)
            }
            Err(e) => {
                if e.is_ambiguous() {
                    // Unknown which settings the platform has now: remember none, so they are sent again.
                    self.store.task_settings_forgotten(ut, now).await?;
                }
                self.refresh_status(ut, now).await;
                Err(e.into())
            }
        }
    }

    /// Best effort: learn the task's status from listTask (after a refusal or an unclear toggle).
    pub(super) async fn refresh_status(&self, ut: &str, now: DateTime<Utc>) {
        match self.list_task(ut).await {
            Ok(Some(found)) => {
                if let Some(status) = found.task_status {
                    let _ = self
                        .store
                        .task_status_observed(ut, status.code(), None, now)
                        .await;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(task.user_id = %ut, error = %e, "cannot refresh the task status")
            }
        }
    }

    /// The platform's record of task `ut`, if it has one.
    pub(super) async fn list_task(
        &self,
        ut: &str,
    ) -> Result<Option<wire::TaskData>, callbot_api::ApiError> {
        let req = ListTaskRequest {
            product_id: product_id(),
            page: 1,
            size: 10,
            query_conditions: QueryConditions {
                user_task_id: Some(vec![ut.to_owned()]),
                ..Default::default()
            },
        };
        let resp = self.client.list_task(&req).await?;
        Ok(resp.task_data.into_iter().find(|t| t.user_task_id == ut))
    }

    /// Completes the live tasks of earlier generations (delCall 0: their data is kept). A bumped generation runs
    /// the campaign again for the same contacts; the old task must not keep dialling them at the same time.
    /// Returns whether any was completed. `tasks`: the campaign's task records as just read.
    pub(crate) async fn retire_old_generations(
        &self,
        spec: &CampaignSpec,
        current: &[String],
        tasks: &[TaskRecord],
        now: DateTime<Utc>,
    ) -> StepResult<bool> {
        // Every live task that is not one of the campaign's tasks in force: an earlier generation's or round's, or a
        // zone group the contacts file no longer has (its orders not dialled yet are left undialled).
        let old: Vec<&TaskRecord> = tasks
            .iter()
            .filter(|t| !current.contains(&t.user_task_id) && TaskView::of(Some(t)).state.is_live())
            .collect();
        for t in &old {
            tracing::info!(campaign.id = %spec.id, task.user_id = %t.user_task_id, generation = t.generation, "completing the task of an earlier generation");
            self.operate(
                &t.user_task_id,
                TaskOperate::Complete,
                Some(DelCall::Keep),
                now,
            )
            .await?;
        }
        Ok(!old.is_empty())
    }
}
