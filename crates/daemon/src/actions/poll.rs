//! Polling unfinished orders (`listOrderDetail`): the backstop of callbacks.

use std::collections::{HashSet, VecDeque};

use callbot_api::ApiError;
use callbot_api::wire::{ListOrderDetailRequest, ListOrderDetailResponse};
use campaign::CampaignSpec;
use chrono::{DateTime, Utc};
use store::StoreError;
use tokio::task::JoinSet;

use super::resolve::POLL_CHUNK;
use super::{Executor, Learned, StepResult};
use crate::task::TaskView;

/// Work budget of one poll action: no further chunk is requested once this much time went by (measured, not a
/// decision input: it only bounds how long one campaign keeps the reconciler).
const POLL_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);
/// Order IDs read from the store per refill of a poll action's queue, in chunks.
const POLL_PREFETCH_CHUNKS: u32 = 8;

impl Executor {
    /// listOrderDetail for unfinished sent orders, oldest-checked first, in chunks of at most 500, for at most
    /// [`POLL_BUDGET`] of work per action; the orders not reached wait for the next poll, `poll_interval` later (they
    /// are the least recently checked, so they come first then). Polls are the backstop of callbacks: a backlog is
    /// worked off over several intervals rather than taking the reconciler (and the platform's request rate) from
    /// uploads and other campaigns.
    ///
    /// Up to `requests_in_flight` requests are in flight at once, each a task of its own, so they progress while
    /// the answers that came back are written, one chunk after another (a chunk's facts and its orders marked
    /// polled, in one transaction). A failed request ends the action; the requests still in flight are dropped
    /// (reads only).
    pub(super) async fn poll(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        now: DateTime<Utc>,
    ) -> StepResult<Learned> {
        let started = std::time::Instant::now();
        let depth = self.requests_in_flight.max(1);
        // Every order ID taken for a request in this action: never asked twice in one action.
        let mut polled: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<String> = VecDeque::new();
        let mut in_flight: JoinSet<(Vec<String>, Result<ListOrderDetailResponse, ApiError>)> =
            JoinSet::new();
        let mut more = true;
        loop {
            while more && in_flight.len() < depth {
                if self.stop.is_cancelled() || started.elapsed() >= POLL_BUDGET {
                    more = false;
                    break;
                }
                let Some(ids) = self.next_poll_chunk(ut, &mut queue, &mut polled).await? else {
                    more = false;
                    break;
                };
                let client = self.client.clone();
                let req = ListOrderDetailRequest::new(ut, ids.clone());
                in_flight.spawn(async move { (ids, client.list_order_detail(&req).await) });
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let (ids, resp) = match joined {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: only the runtime shutting down does that; a read, nothing to resolve.
                Err(_) => break,
            };
            let r = resp?;
            let facts: Vec<_> = r
                .order_detail_list
                .iter()
                .map(|d| crate::facts::from_order_detail(d, ut))
                .collect();
            let gaps = facts.iter().filter(|f| f.finished).count() as u64;
            self.metrics
                .unknown_call_statuses(&crate::facts::unknown_call_statuses(
                    r.order_detail_list
                        .iter()
                        .flat_map(|d| &d.call_info_detail_list),
                ));
            self.store.record_poll(&facts, &ids, now).await?;
            self.metrics.callback_gaps(gaps);
        }
        let task = self.task_record(&spec.id, ut).await?;
        Ok(Learned::Polled {
            task_terminal: TaskView::of(task.as_ref()).state.is_terminal(),
        })
    }

    /// The next chunk (at most 500) of the task's unfinished orders not yet taken in this poll action, least
    /// recently polled first; refills `queue` from the store a few chunks at a time. `None` when none is left.
    async fn next_poll_chunk(
        &self,
        ut: &str,
        queue: &mut VecDeque<String>,
        polled: &mut HashSet<String>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        if queue.is_empty() {
            let ids = self
                .store
                .orders_to_poll(ut, POLL_CHUNK * POLL_PREFETCH_CHUNKS)
                .await?;
            queue.extend(ids.into_iter().filter(|o| !polled.contains(o)));
        }
        let n = queue.len().min(POLL_CHUNK as usize);
        if n == 0 {
            return Ok(None);
        }
        let ids: Vec<String> = queue.drain(..n).collect();
        polled.extend(ids.iter().cloned());
        Ok(Some(ids))
    }
}
