//! The rules of the transactions that move orders between upload states, written once over the statements each
//! backend writes ([`UploadStatements`]).

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::{OrderRecord, StoreError, TallyDelta, UploadState};

/// A frequency cap as the backend binds it: the start of its window at the claim's instant, and its `max` (see
/// [`crate::backend::cap_windows`]).
pub type CapWindow = (DateTime<Utc>, i64);

/// The statements of one transaction that moves orders between upload states, in the backend's SQL. Each counts
/// the orders it moves in the tallies it is given.
pub trait UploadStatements: Send {
    /// Moves the orders among `order_ids` that are in `from` (with `task`, only that task's) to `to`, at `at`.
    /// Returns how many moved.
    fn move_from(
        &mut self,
        order_ids: &[String],
        task: Option<&str>,
        from: UploadState,
        to: UploadState,
        at: DateTime<Utc>,
        tallies: &mut TallyDelta,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Moves the task's orders among `rejected` that are in `from` to `rejected`, with their reasons, at `at`.
    /// Returns how many moved.
    fn reject_from(
        &mut self,
        rejected: &[(String, String)],
        task: &str,
        from: UploadState,
        at: DateTime<Utc>,
        tallies: &mut TallyDelta,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Moves up to `n` planned orders of the task whose phone is not actively suppressed at `at` and not at any of
    /// the `caps` (none: no cap is checked), the first by source line (then order ID), to `sending` at `at`, and
    /// returns them as they now are (in any order). The suppressed ones it passes over stay planned (see
    /// [`UploadStatements::reject_suppressed`]), and so do the held ones. Tallies are counted by the caller.
    ///
    /// A phone is at a cap `(since, max)` when its calls (of any order of that phone, any task) started from `since`
    /// to `at`, plus its orders that are `sending`, or `sent`, unfinished and not stopped, are at least `max`. The
    /// counts are those before the claim: a task plans a phone once, so one claim takes at most one order of a
    /// phone, and `count < max` leaves room for it.
    fn claim(
        &mut self,
        task: &str,
        n: u32,
        at: DateTime<Utc>,
        caps: &[CapWindow],
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;

    /// Moves the task's planned orders whose phone is actively suppressed at `at` to `rejected` at `at`, with the
    /// reason `suppressed: <reason, else source>` of the phone's first active entry by source; with `before`, only
    /// those ordered before it by `(source_line, order_id)`. Returns how many moved.
    fn reject_suppressed(
        &mut self,
        task: &str,
        before: Option<(i64, &str)>,
        at: DateTime<Utc>,
        tallies: &mut TallyDelta,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Adds the transaction's tally changes to the per-task tallies, last before the commit.
    fn write_tallies(
        &mut self,
        tallies: TallyDelta,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// [`crate::Store::set_upload_state`] inside the caller's transaction: from each predecessor of `state` in turn, so
/// the tallies know where every moved order came from.
pub async fn set_upload_state(
    st: &mut impl UploadStatements,
    order_ids: &[String],
    state: UploadState,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut tallies = TallyDelta::default();
    let mut moved = 0;
    for &from in state.predecessors() {
        moved += st
            .move_from(order_ids, None, from, state, at, &mut tallies)
            .await?;
    }
    st.write_tallies(tallies).await?;
    Ok(moved)
}

/// [`crate::Store::settle_and_claim`] inside the caller's transaction: the settling, then the claim, which skips
/// suppressed phones and phones at a cap (`caps`, from [`crate::backend::cap_windows`]), then the rejection of the
/// suppressed orders the claim passed over (held ones stay planned).
pub async fn settle_and_claim(
    st: &mut impl UploadStatements,
    sent: &[String],
    rejected: &[(String, String)],
    user_task_id: &str,
    claim: u32,
    at: DateTime<Utc>,
    caps: &[CapWindow],
) -> Result<Vec<OrderRecord>, StoreError> {
    let mut tallies = TallyDelta::default();
    if !rejected.is_empty() {
        for &from in UploadState::Rejected.predecessors() {
            st.reject_from(rejected, user_task_id, from, at, &mut tallies)
                .await?;
        }
    }
    if !sent.is_empty() {
        // The batch was claimed `sending`; only when some of it was not found there is `planned` looked at too.
        let task = Some(user_task_id);
        let found = st
            .move_from(
                sent,
                task,
                UploadState::Sending,
                UploadState::Sent,
                at,
                &mut tallies,
            )
            .await?;
        if found < sent.len() as u64 {
            st.move_from(
                sent,
                task,
                UploadState::Planned,
                UploadState::Sent,
                at,
                &mut tallies,
            )
            .await?;
        }
    }
    let mut claimed = Vec::new();
    if claim > 0 {
        // The claim passes over suppressed phones, so a batch still fills up when enough unsuppressed orders are
        // planned; the suppressed ones it passed over (all of them, when it ran out) then go to `rejected`. Only
        // that window is looked at: the cost follows the batch, not the task's planned orders, and a suppressed
        // order further on is rejected when a claim reaches it.
        claimed = st.claim(user_task_id, claim, at, caps).await?;
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
        st.reject_suppressed(user_task_id, before, at, &mut tallies)
            .await?;
    }
    st.write_tallies(tallies).await?;
    Ok(claimed)
}
