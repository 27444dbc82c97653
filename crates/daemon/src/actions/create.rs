//! Creating the task with its first batch (`createAndCall`) and uploading the rest (`addBatchCall`), write before
//! send: every order a request carries is durably `sending` before the request leaves.

use std::collections::{HashMap, HashSet};

use callbot_api::ApiError;
use callbot_api::wire::{self, TaskStatus};
use campaign::CampaignSpec;
use chrono::{DateTime, Utc};
use store::{OrderRecord, UploadState};

use super::{Executor, Learned, StepResult};
use crate::requests::{call_info_list, func_flag, product_id, task_create_setting};
use crate::settings::TaskSettings;
use crate::task::{SentSettings, SentVia, task_key};

/// Work budget of one upload action: a campaign of millions of contacts uploads over several reconciles, and every
/// other due campaign (a pause at a window's close among them) is reconciled in between.
const UPLOAD_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

impl Executor {
    /// createAndCall with the first batch. The task record (with the settings) and the batch's `sending` marks are
    /// written BEFORE the request leaves, so a crash at any point leaves something the next run resolves.
    pub(super) async fn create(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> StepResult<Learned> {
        if self
            .store
            .orders_in_state(ut, UploadState::Planned, 1)
            .await?
            .is_empty()
        {
            return Ok(Learned::Done);
        }
        let sent = SentSettings::new(settings, SentVia::Create).to_json();
        // In doubt from here on: settings recorded, no platform status yet.
        self.store
            .task_create_intent(&task_key(spec), &sent, now)
            .await?;
        // The first batch is claimed like every other (`planned → sending`, committed before the request leaves),
        // in the transaction that also leaves out numbers suppressed since they were planned.
        let batch = self
            .store
            .settle_and_claim(
                &[],
                &[],
                ut,
                spec.contacts.batch_size.max(1),
                now,
                &self.caps_for(spec),
            )
            .await?;
        if batch.is_empty() {
            // Every planned number was suppressed meanwhile, or is held by a cap: nothing to create the task with.
            self.store.task_not_created(ut, now).await?;
            return self.held(spec, ut, now).await;
        }
        let ids: Vec<String> = batch.iter().map(|o| o.order_id.clone()).collect();

        let req = wire::CreateAndCallRequest {
            product_id: product_id(),
            user_task_id: ut.to_owned(),
            scene_id: spec.scene_id.clone(),
            task_create_setting: task_create_setting(settings, &self.urls),
            func_flag: func_flag(settings),
            call_info_list: call_info_list(&batch, &self.urls),
        };
        match self.client.create_and_call(&req).await {
            Ok(resp) => {
                let task_id = (!resp.task_id.is_empty()).then_some(resp.task_id.as_str());
                self.store
                    .task_status_observed(ut, TaskStatus::Pending.code(), task_id, now)
                    .await?;
                let (sent, rejected) = batch_outcome(&batch, &resp.err_list);
                self.store
                    .settle_and_claim(&sent, &rejected, ut, 0, now, &[])
                    .await?;
                tracing::info!(campaign.id = %spec.id, task.user_id = %ut, orders = batch.len(), rejected = resp.err_list.len(), "task created with the first batch");
                Ok(Learned::Done)
            }
            Err(e @ ApiError::Rejected { .. }) => {
                // Refused: most likely not applied, but a refusal of a duplicate userTaskID means an earlier create
                // did apply, and vendors word that differently. Leave it in doubt: the resolve asks listTask and
                // either records the task or puts the batch back to planned.
                Err(e.into())
            }
            Err(e @ ApiError::Invalid { .. }) => {
                // Not sent: back to planned, no task.
                self.store
                    .set_upload_state(&ids, UploadState::Planned, now)
                    .await?;
                self.store.task_not_created(ut, now).await?;
                Err(e.into())
            }
            // Ambiguous, or Retryable after the client's retries: may or may not exist. Resolve, never resend blind.
            Err(e) => Err(e.into()),
        }
    }

    /// addBatchCall for every planned order, one batch at a time, write-before-send: each batch is claimed
    /// (`planned → sending`, committed) before its request leaves, in the same transaction that settles the batch
    /// before it (sent or rejected), so a batch costs one commit.
    pub(super) async fn upload(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        now: DateTime<Utc>,
    ) -> StepResult<Learned> {
        let started = std::time::Instant::now();
        let batch_size = spec.contacts.batch_size.max(1);
        if self.stop.is_cancelled() {
            return Ok(Learned::Done);
        }
        let caps = self.caps_for(spec);
        let mut batch = self
            .store
            .settle_and_claim(&[], &[], ut, batch_size, now, &caps)
            .await?;
        while !batch.is_empty() {
            let req = wire::AddBatchCallRequest {
                product_id: product_id(),
                user_task_id: ut.to_owned(),
                call_info_list: call_info_list(&batch, &self.urls),
            };
            match self.client.add_batch_call(&req).await {
                Ok(resp) => {
                    let (sent, rejected) = batch_outcome(&batch, &resp.err_list);
                    // On shutdown, or when this action's budget is spent, settle without claiming: nothing is marked
                    // `sending` that will not be sent now. The rest is uploaded at the next reconcile.
                    let claim = if self.stop.is_cancelled() || started.elapsed() >= UPLOAD_BUDGET {
                        0
                    } else {
                        batch_size
                    };
                    let next = self
                        .store
                        .settle_and_claim(&sent, &rejected, ut, claim, now, &caps)
                        .await?;
                    tracing::info!(campaign.id = %spec.id, task.user_id = %ut, orders = batch.len(), rejected = rejected.len(), "uploaded a batch");
                    batch = next;
                }
                Err(e @ ApiError::Rejected { .. }) | Err(e @ ApiError::Invalid { .. }) => {
                    let ids: Vec<String> = batch.iter().map(|o| o.order_id.clone()).collect();
                    self.store
                        .set_upload_state(&ids, UploadState::Planned, now)
                        .await?;
                    self.refresh_status(ut, now).await;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        // The claims found nothing more to send: either nothing is planned, or what is planned is held by a cap.
        self.held(spec, ut, now).await
    }

    /// `WaitUntil` the first release when some of the task's planned numbers are held by a cap (in 5 minutes when
    /// only unfinished orders hold them, whose end is not known), `Done` otherwise.
    async fn held(&self, spec: &CampaignSpec, ut: &str, now: DateTime<Utc>) -> StepResult<Learned> {
        let caps = self.caps_for(spec);
        if caps.is_empty() {
            return Ok(Learned::Done);
        }
        let held = self.store.held_numbers(ut, &caps, now).await?;
        if held.numbers == 0 {
            return Ok(Learned::Done);
        }
        // `until` is the last instant still held: look again just after it.
        let until = held
            .until
            .map(|at| at + chrono::Duration::seconds(1))
            .unwrap_or(now + chrono::Duration::minutes(5))
            .max(now + chrono::Duration::seconds(1));
        tracing::info!(campaign.id = %spec.id, task.user_id = %ut, numbers = held.numbers, until = %until, "numbers held by a cap");
        Ok(Learned::WaitUntil(until))
    }
}

/// A batch's outcome from the platform's errList (matched by orderID, else by phone): the order IDs accepted, and
/// the refused ones with the reason.
fn batch_outcome(
    batch: &[OrderRecord],
    errs: &[wire::ErrItem],
) -> (Vec<String>, Vec<(String, String)>) {
    let by_phone: HashMap<&str, &str> = batch
        .iter()
        .map(|o| (o.phone.as_str(), o.order_id.as_str()))
        .collect();
    let in_batch: HashSet<&str> = batch.iter().map(|o| o.order_id.as_str()).collect();
    let mut rejected: Vec<(String, String)> = Vec::new();
    for e in errs {
        let oid = e
            .order_id
            .as_deref()
            .filter(|o| in_batch.contains(o))
            .or_else(|| e.phone.as_deref().and_then(|p| by_phone.get(p).copied()));
        if let Some(oid) = oid {
            rejected.push((oid.to_owned(), e.err_msg.clone()));
        }
    }
    let rejected_ids: HashSet<&str> = rejected.iter().map(|(o, _)| o.as_str()).collect();
    let sent: Vec<String> = batch
        .iter()
        .map(|o| o.order_id.clone())
        .filter(|o| !rejected_ids.contains(o.as_str()))
        .collect();
    (sent, rejected)
}
