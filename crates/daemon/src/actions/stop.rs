//! Consent after upload: numbers that said no in a call (the campaign's opt-out intents) are suppressed, and the
//! task's unfinished orders of suppressed numbers are stopped (`stopOrder`), write before send: an order is marked
//! `sending` in the stop outbox before its request leaves, `stopped` once the platform acknowledged it; an order
//! left `sending` by a crash is simply asked again (stopping a stopped order changes nothing).

use callbot_api::wire::{DelCall, StopOrderRequest};
use campaign::CampaignSpec;
use chrono::{DateTime, Utc};
use store::{StopState, Suppression};

use super::resolve::POLL_CHUNK;
use super::{Executor, StepResult};
use crate::requests::product_id;

/// Calls read per look for opt-out intents.
const OPT_OUT_CHUNK: u32 = 1_000;

/// What a campaign's consent step did.
#[derive(Debug, Default)]
pub(crate) struct Consent {
    /// Numbers suppressed because they opted out in this campaign's calls.
    pub(crate) opted_out: u64,
    /// This task's orders stopped because their numbers are suppressed.
    pub(crate) stopped: u64,
    /// What failed (the campaign goes on; it is tried again at the next reconcile).
    pub(crate) error: Option<String>,
}

impl Executor {
    /// The consent step of one campaign: its opt-outs (while its file is there), then the stops of its live task.
    pub(crate) async fn consent(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        file_present: bool,
        task_live: bool,
        now: DateTime<Utc>,
    ) -> Consent {
        let mut out = Consent::default();
        if file_present {
            match self.apply_opt_outs(spec, now).await {
                Ok(n) => out.opted_out = n,
                Err(e) => {
                    tracing::warn!(campaign.id = %spec.id, error = %e, "cannot apply the opt-outs now");
                    out.error = Some(format!("opt-out: {e}"));
                }
            }
        }
        if task_live {
            match self.stop_suppressed(spec, ut, now).await {
                Ok(n) => out.stopped = n,
                Err(e) => {
                    tracing::warn!(campaign.id = %spec.id, error = %e, "cannot stop the orders of suppressed numbers now");
                    out.error = Some(format!("stop-order: {e}"));
                }
            }
        }
        out
    }

    /// Suppresses the numbers whose calls in this campaign carried one of its opt-out intents (source
    /// `opt_out:<campaign>:<callID>`, so each call suppresses once). Returns how many numbers were suppressed.
    pub(crate) async fn apply_opt_outs(
        &self,
        spec: &CampaignSpec,
        now: DateTime<Utc>,
    ) -> StepResult<u64> {
        if spec.opt_out.intents.is_empty() {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let calls = self
                .store
                .opt_out_calls(&spec.id, &spec.opt_out.intents, OPT_OUT_CHUNK)
                .await?;
            if calls.is_empty() {
                return Ok(total);
            }
            let entries: Vec<Suppression> = calls
                .iter()
                .map(|c| Suppression {
                    phone: c.phone.clone(),
                    source: format!("opt_out:{}:{}", spec.id, c.call_id),
                    reason: Some(format!(
                        "opted out in a call of campaign {} (intent {}, order {})",
                        spec.id, c.intent, c.order_id
                    )),
                    expires_at: None,
                    added_at: now,
                })
                .collect();
            self.store.suppress(&entries).await?;
            tracing::info!(campaign.id = %spec.id, numbers = entries.len(), "suppressed numbers that opted out in a call");
            total += entries.len() as u64;
            if calls.len() < OPT_OUT_CHUNK as usize {
                return Ok(total);
            }
        }
    }

    /// Stops the task's unfinished orders whose numbers are suppressed. Returns how many were stopped.
    pub(crate) async fn stop_suppressed(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        now: DateTime<Utc>,
    ) -> StepResult<u64> {
        let mut stopped = 0;
        loop {
            let ids = self.store.orders_to_stop(ut, now, POLL_CHUNK).await?;
            if ids.is_empty() {
                return Ok(stopped);
            }
            self.store.mark_stop(&ids, StopState::Sending, now).await?;
            let req = StopOrderRequest {
                product_id: product_id(),
                user_task_id: ut.to_owned(),
                order_ids: ids.clone(),
                del_call: Some(DelCall::Keep),
            };
            // Any failure leaves them `sending`: they are asked again at the next reconcile.
            self.client.stop_order(&req).await?;
            self.store.mark_stop(&ids, StopState::Stopped, now).await?;
            tracing::info!(campaign.id = %spec.id, task.user_id = %ut, orders = ids.len(), "stopped the orders of suppressed numbers");
            stopped += ids.len() as u64;
        }
    }
}
