//! Creating the task with its first batch (`createAndCall`) and uploading the rest (`addBatchCall`), write before
//! send: every order a request carries is durably `sending` before the request leaves.

use std::collections::{HashMap, HashSet};

use callbot_api::wire::{self, AddBatchCallResponse, TaskStatus};
use callbot_api::{ApiError, Endpoint};
use campaign::CampaignSpec;
use chrono::{DateTime, Utc};
use store::{OrderRecord, UploadState};
use tokio::task::JoinSet;

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

    /// addBatchCall for every planned order, write-before-send, with up to `requests_in_flight` requests in flight.
    ///
    /// Batches are claimed one at a time, here (`planned → sending`, committed before the request leaves): each
    /// claim is one transaction that also settles every batch answered since the previous claim (sent or rejected),
    /// so the store's work for one batch overlaps the platform's for the others, and two claims never race for the
    /// same rows. The requests run as tasks of their own, so they progress while a claim commits. When a request
    /// fails, nothing more is claimed; the batches still in flight are awaited and settled, a refused one goes back
    /// to `planned`, and one whose outcome is unknown stays `sending` for the resolve to ask about. If the store
    /// fails, or the process dies, every batch in flight is left `sending` and resolved the same way.
    pub(super) async fn upload(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        now: DateTime<Utc>,
    ) -> StepResult<Learned> {
        let started = std::time::Instant::now();
        let batch_size = spec.contacts.batch_size.max(1);
        let caps = self.caps_for(spec);
        let depth = self.requests_in_flight.max(1);
        // Dropping the set (an early return on a store error) aborts the requests in flight: their batches stay
        // `sending`, which is what a crash would leave.
        let mut in_flight: JoinSet<(Vec<OrderRecord>, Result<AddBatchCallResponse, ApiError>)> =
            JoinSet::new();
        let (mut sent, mut rejected): (Vec<String>, Vec<(String, String)>) = (vec![], vec![]);
        let mut claiming = !self.stop.is_cancelled();
        let mut failed: Option<ApiError> = None;
        let mut refused = false;
        loop {
            while claiming && in_flight.len() < depth {
                // On shutdown, or when this action's budget is spent, settle without claiming: nothing is marked
                // `sending` that will not be sent now. The rest is uploaded at the next reconcile.
                let claim = if self.stop.is_cancelled() || started.elapsed() >= UPLOAD_BUDGET {
                    0
                } else {
                    batch_size
                };
                let batch = self
                    .store
                    .settle_and_claim(&sent, &rejected, ut, claim, now, &caps)
                    .await?;
                sent.clear();
                rejected.clear();
                if batch.is_empty() {
                    claiming = false;
                    break;
                }
                let req = wire::AddBatchCallRequest {
                    product_id: product_id(),
                    user_task_id: ut.to_owned(),
                    call_info_list: call_info_list(&batch, &self.urls),
                };
                let client = self.client.clone();
                in_flight.spawn(async move {
                    let resp = client.add_batch_call(&req).await;
                    (batch, resp)
                });
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let (batch, resp) = match joined {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled (only the runtime shutting down does that): its outcome is unknown, its batch stays
                // `sending`, and nothing more can be learned from this request.
                Err(e) => {
                    claiming = false;
                    failed.get_or_insert(ApiError::Ambiguous {
                        endpoint: Endpoint::AddBatchCall,
                        reason: format!("the request's task ended: {e}"),
                    });
                    continue;
                }
            };
            match resp {
                Ok(resp) => {
                    let (s, r) = batch_outcome(&batch, &resp.err_list);
                    tracing::info!(campaign.id = %spec.id, task.user_id = %ut, orders = batch.len(), rejected = r.len(), "uploaded a batch");
                    sent.extend(s);
                    rejected.extend(r);
                }
                Err(e) => {
                    claiming = false;
                    if matches!(e, ApiError::Rejected { .. } | ApiError::Invalid { .. }) {
                        // Certainly not applied: back to planned, sent again later.
                        let ids: Vec<String> = batch.iter().map(|o| o.order_id.clone()).collect();
                        self.store
                            .set_upload_state(&ids, UploadState::Planned, now)
                            .await?;
                        refused = true;
                    }
                    // Ambiguous, or retryable after the client's retries: stays `sending`, resolved, never resent
                    // blind.
                    failed.get_or_insert(e);
                }
            }
        }
        // What came back after the last claim.
        self.store
            .settle_and_claim(&sent, &rejected, ut, 0, now, &caps)
            .await?;
        if let Some(e) = failed {
            if refused {
                self.refresh_status(ut, now).await;
            }
            return Err(e.into());
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
