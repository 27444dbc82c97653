//! The transactions that move orders between upload states, [`crate::Store::set_upload_state`] and
//! [`crate::Store::settle_and_claim`], written once over the transaction each backend begins ([`UploadStore`]) and
//! the statements it writes ([`UploadStatements`]).

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::backend::cap_windows;
use crate::{Cap, OrderRecord, StoreError, TallyDelta, UploadState};

/// A frequency cap as the backend binds it: the start of its window at the claim's instant, and its `max` (see
/// [`crate::backend::cap_windows`]).
pub type CapWindow = (DateTime<Utc>, i64);

/// A backend's upload transactions.
pub trait UploadStore: Sync {
    /// The statements of one upload transaction.
    type Upload: UploadStatements;

    /// Begins an upload transaction whose statements happen at `at`. With `caps_checked`, its claim checks frequency
    /// caps: two such claims must not run side by side, or two tasks that share a phone could both pass a cap.
    fn begin_upload(
        &self,
        at: DateTime<Utc>,
        caps_checked: bool,
    ) -> impl Future<Output = Result<Self::Upload, StoreError>> + Send;
}

/// The statements of one upload transaction, in the backend's SQL, at the transaction's instant `at`. The caller
/// counts what they move in the tallies.
pub trait UploadStatements: Send + Sized {
    /// Moves the orders among `order_ids` that are in `from` (with `task`, only that task's) to `to`. Returns how
    /// many moved, per task.
    fn move_from(
        &mut self,
        order_ids: &[String],
        task: Option<&str>,
        from: UploadState,
        to: UploadState,
    ) -> impl Future<Output = Result<Vec<(String, i64)>, StoreError>> + Send;

    /// Moves the task's orders among `rejected` that are in `from` to `rejected`, with their reasons. Returns how
    /// many moved.
    fn reject_from(
        &mut self,
        rejected: &[(String, String)],
        task: &str,
        from: UploadState,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Moves up to `n` planned orders of the task whose phone is not actively suppressed at `at` and not at any of
    /// the `caps` (none: no cap is checked), the first by source line (then order ID), to `sending`, and returns
    /// them as they now are (in any order). The suppressed ones it passes over stay planned (see
    /// [`UploadStatements::reject_suppressed`]), and so do the held ones.
    ///
    /// A phone is at a cap `(since, max)` when its calls (of any order of that phone, any task) started from `since`
    /// to `at`, plus its orders that are `sending`, or `sent`, unfinished and not stopped, are at least `max`. The
    /// counts are those before the claim: a task plans a phone once, so one claim takes at most one order of a
    /// phone, and `count < max` leaves room for it. The statement is [`crate::backend::Dialect::not_capped`]'s.
    fn claim(
        &mut self,
        task: &str,
        n: u32,
        caps: &[CapWindow],
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;

    /// Moves the task's planned orders whose phone is actively suppressed at `at` to `rejected`, with the reason
    /// `suppressed: <reason, else source>` of the phone's first active entry by source; with `before`, only those
    /// ordered before it by `(source_line, order_id)` ([`crate::backend::Dialect::claimed_before`]). Returns how
    /// many moved.
    fn reject_suppressed(
        &mut self,
        task: &str,
        before: Option<(i64, &str)>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Adds the transaction's tally changes to the per-task tallies, then commits.
    fn commit(self, tallies: TallyDelta) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// [`crate::Store::set_upload_state`]: one transaction, moving the orders from each predecessor of `state` in turn,
/// so the tallies know where every moved order came from.
#[tracing::instrument(skip_all, fields(orders = order_ids.len(), state = %state))]
pub async fn set_upload_state(
    store: &impl UploadStore,
    order_ids: &[String],
    state: UploadState,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if order_ids.is_empty() {
        return Ok(0);
    }
    let mut st = store.begin_upload(at, false).await?;
    let mut tallies = TallyDelta::default();
    let mut moved = 0;
    for &from in state.predecessors() {
        moved += move_counted(&mut st, order_ids, None, from, state, &mut tallies).await?;
    }
    st.commit(tallies).await?;
    Ok(moved)
}

/// [`crate::Store::settle_and_claim`]: one transaction, the settling, then the claim, which skips suppressed phones
/// and phones at a cap, then the rejection of the suppressed orders the claim passed over (held ones stay planned).
#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, sent = sent.len(), rejected = rejected.len(), claim))]
pub async fn settle_and_claim(
    store: &impl UploadStore,
    sent: &[String],
    rejected: &[(String, String)],
    user_task_id: &str,
    claim: u32,
    at: DateTime<Utc>,
    caps: &[Cap],
) -> Result<Vec<OrderRecord>, StoreError> {
    if sent.is_empty() && rejected.is_empty() && claim == 0 {
        return Ok(Vec::new());
    }
    let caps = cap_windows(caps, at)?;
    let mut st = store
        .begin_upload(at, claim > 0 && !caps.is_empty())
        .await?;
    let mut tallies = TallyDelta::default();
    if !rejected.is_empty() {
        for &from in UploadState::Rejected.predecessors() {
            let n = st.reject_from(rejected, user_task_id, from).await?;
            tallies.moved(user_task_id, from, UploadState::Rejected, n as i64);
        }
    }
    if !sent.is_empty() {
        // The batch was claimed `sending`; only when some of it was not found there is `planned` looked at too.
        let task = Some(user_task_id);
        let (from, to) = (UploadState::Sending, UploadState::Sent);
        let found = move_counted(&mut st, sent, task, from, to, &mut tallies).await?;
        if found < sent.len() as u64 {
            let from = UploadState::Planned;
            move_counted(&mut st, sent, task, from, to, &mut tallies).await?;
        }
    }
    let mut claimed = Vec::new();
    if claim > 0 {
        // The claim passes over suppressed phones, so a batch still fills up when enough unsuppressed orders are
        // planned; the suppressed ones it passed over (all of them, when it ran out) then go to `rejected`. Only
        // that window is looked at: the cost follows the batch, not the task's planned orders, and a suppressed
        // order further on is rejected when a claim reaches it.
        claimed = st.claim(user_task_id, claim, &caps).await?;
        claimed.sort_by(|a, b| (a.source_line, &a.order_id).cmp(&(b.source_line, &b.order_id)));
        tallies.moved(
            user_task_id,
            UploadState::Planned,
            UploadState::Sending,
            claimed.len() as i64,
        );
        let before = match claimed.last() {
            Some(last) if claimed.len() as u64 >= u64::from(claim) => {
                Some((last.source_line, last.order_id.as_str()))
            }
            _ => None,
        };
        let n = st.reject_suppressed(user_task_id, before).await?;
        tallies.moved(
            user_task_id,
            UploadState::Planned,
            UploadState::Rejected,
            n as i64,
        );
    }
    st.commit(tallies).await?;
    Ok(claimed)
}

/// [`UploadStatements::move_from`], with the moves it reports per task counted in the tallies; returns how many
/// moved.
async fn move_counted(
    st: &mut impl UploadStatements,
    order_ids: &[String],
    task: Option<&str>,
    from: UploadState,
    to: UploadState,
    tallies: &mut TallyDelta,
) -> Result<u64, StoreError> {
    let mut moved = 0;
    for (ut, n) in st.move_from(order_ids, task, from, to).await? {
        tallies.moved(&ut, from, to, n);
        moved += u64::try_from(n).unwrap_or(0);
    }
    Ok(moved)
}
