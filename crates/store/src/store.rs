use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    ActionRecord, CallFacts, CallbackIngest, CallbackRecord, CampaignRecord, Cap, FactSource, Held,
    Ingested, LeaseRecord, NewOrder, OptOutCall, OrderCounts, OrderFacts, OrderProgress,
    OrderRecord, Report, ReportFilter, RetriesDue, RetryQuery, SourceSync, StopState, StoreError,
    Suppression, SuppressionFilter, TaskKey, TaskRecord, UploadState,
};

/// Everything the daemon and the reports need from the database. Implemented by `store-postgres` and
/// `store-sqlite`; see the crate docs for the rules every implementation keeps.
///
/// Every method is required: each write is one transaction (or one statement) in the backend, and a new backend
/// (or a test double) must say how it keeps that, rather than inherit a slower, non-atomic composition.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How many write transactions the backend runs well at once; the callback writers use this many. The default,
    /// one, suits a database that takes one writer at a time (SQLite).
    fn write_concurrency(&self) -> usize {
        1
    }

    // ---- campaigns and tasks

    /// Inserts or replaces campaigns by ID, in one transaction. A campaign given twice keeps its last record.
    async fn upsert_campaigns(&self, cs: &[CampaignRecord]) -> Result<(), StoreError>;
    /// All campaigns, by ID.
    async fn campaigns(&self) -> Result<Vec<CampaignRecord>, StoreError>;
    /// The campaign's tasks, by generation then index.
    async fn tasks(&self, campaign_id: &str) -> Result<Vec<TaskRecord>, StoreError>;
    /// The tasks of several campaigns, by campaign, generation then index.
    async fn tasks_of(&self, campaign_ids: &[String]) -> Result<Vec<TaskRecord>, StoreError>;
    /// For each `(order_id, group)` whose order is stored, records the group for the order's task, once,
    /// never removed (orders not stored are skipped): a contact planned again in another group
    /// keeps its order in its first task, whose calendar must then cover the new group as well.
    async fn record_zone_groups_of_orders(
        &self,
        orders: &[(String, String)],
    ) -> Result<(), StoreError>;
    /// The zone groups ever recorded for the task, sorted.
    async fn zone_groups(&self, user_task_id: &str) -> Result<Vec<String>, StoreError>;
    /// The zone groups recorded for each of several tasks: `(user_task_id, group)` pairs, by task then group.
    async fn zone_groups_of(
        &self,
        user_task_ids: &[String],
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// Records, for each `(user_task_id, version, valid_contacts)`, that the version (opaque text) of the task's
    /// contacts was planned into it to its end, with that many valid rows, replacing the task's earlier record; at
    /// `at`, in one transaction. A task given twice keeps its last row.
    async fn record_contacts_planned(
        &self,
        planned: &[(String, String, u64)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The contacts versions recorded for several tasks ([`Store::record_contacts_planned`]): `(user_task_id, version,
    /// valid_contacts)`, by task; a task with none recorded is absent.
    async fn contacts_planned_of(
        &self,
        user_task_ids: &[String],
    ) -> Result<Vec<(String, String, u64)>, StoreError>;
    /// The daemon is about to create the task with `settings`. Inserts the task's row when missing (settings sent
    /// at `at`, no platform status, no platform task ID); otherwise sets its settings, `settings_sent_at = at`, and
    /// clears its platform status and task ID (in doubt until the platform answers). A task whose stored status is
    /// terminal is left as it is.
    async fn task_create_intent(
        &self,
        key: &TaskKey,
        settings: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The platform reported the task's `taskStatus` (and maybe its `taskID`). Updates the stored row only (a
    /// missing one stays missing): the status, the task ID when one is given, `updated_at`, and clears the mark of
    /// [`Store::task_toggle_intent`]. A stored terminal status
    /// ([`crate::TERMINAL_TASK_STATUSES`]) is never replaced, not even by another terminal one. Returns whether the
    /// row was written (it exists and its status was not terminal).
    async fn task_status_observed(
        &self,
        user_task_id: &str,
        status: i64,
        task_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// A start, pause or completion of the task is about to be sent: marks its stored status as in doubt, from
    /// `at`, until [`Store::task_status_observed`] records one. A task whose stored status is terminal is left as it
    /// is.
    async fn task_toggle_intent(
        &self,
        user_task_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The task's settings were sent (`updateTask`): records them, sent at `at`.
    async fn task_settings_sent(
        &self,
        user_task_id: &str,
        settings: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Whether the platform holds the task's settings is not known: marks them to be sent again. The mark is the
    /// JSON value `null` in `settings` (not SQL NULL, which means "never sent"); `settings_sent_at` is kept.
    async fn task_settings_forgotten(
        &self,
        user_task_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The task was certainly not created: clears its settings, their time and its platform status (the next
    /// create starts afresh). A task whose stored status is terminal is left as it is.
    async fn task_not_created(
        &self,
        user_task_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    // ---- orders

    /// Plans orders in bulk, skipping any whose `order_id` is stored or whose `(user_task_id, phone)` is already
    /// planned. An order whose phone is actively suppressed at `now` is inserted `rejected` (reason `suppressed:
    /// <reason, else source>`, changed at `now`) in the same transaction, and counted as rejected in the tallies.
    /// Returns how many were newly inserted (the rejected ones included).
    async fn insert_planned_orders(
        &self,
        orders: &[NewOrder],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// [`Store::insert_planned_orders`], recording in the same transaction the zone groups (`(user_task_id, group)`:
    /// opaque texts, each a JSON object; kept once each, never removed) of the orders' contacts: a task's calendar covers every order it
    /// holds from the moment the orders exist.
    async fn insert_planned_orders_in_groups(
        &self,
        orders: &[NewOrder],
        zone_groups: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Up to `limit` orders of the task in `state`, by source line.
    async fn orders_in_state(
        &self,
        user_task_id: &str,
        state: UploadState,
        limit: u32,
    ) -> Result<Vec<OrderRecord>, StoreError>;
    /// One order, if stored.
    async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError>;
    /// Moves orders to `state` from one of its [`UploadState::predecessors`]; others are left alone.
    /// Returns how many moved.
    async fn set_upload_state(
        &self,
        order_ids: &[String],
        state: UploadState,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Settles one uploaded batch and claims the next, in ONE transaction: `rejected` orders move to `rejected` with
    /// their reasons and `sent` ones to `sent` (each only from `planned` or `sending`; all of them orders of
    /// `user_task_id`: other tasks' orders are left alone), then up to `claim` planned orders of `user_task_id` (by
    /// source line) move `planned → sending` and are returned as they now are. The claimed orders are durably
    /// `sending` when this returns, before any request carries them. `claim = 0` only settles.
    ///
    /// The claim is the last check of the suppression list before the batch leaves: it passes over every planned
    /// order whose phone is actively suppressed at `at`, and those it passed over (all the task's suppressed
    /// planned orders, when fewer than `claim` were left) move to `rejected` (`suppressed: …`) in the same
    /// transaction. So a batch is still `claim` orders when enough unsuppressed ones are planned.
    ///
    /// The claim also keeps the frequency `caps` (see the crate docs, "Caps"): it passes over every planned order
    /// whose phone is at a cap at `at`, counted across every campaign and task, and those stay `planned` (held, not
    /// rejected); the batch fills up with the next ones. With no caps nothing is held. A cap with a negative window
    /// is [`StoreError::Invalid`].
    async fn settle_and_claim(
        &self,
        sent: &[String],
        rejected: &[(String, String)],
        user_task_id: &str,
        claim: u32,
        at: DateTime<Utc>,
        caps: &[Cap],
    ) -> Result<Vec<OrderRecord>, StoreError>;
    /// How many planned orders of the task are held by `caps` at `at` (their phone is at a cap; a suppressed one is
    /// not counted: the claim rejects it), and the last instant the first of them to be released is still held
    /// ([`Held::until`]). Looks at the first [`crate::HELD_SCAN_MAX`] planned orders by source line only, so its cost
    /// is bounded whatever the size of the task.
    async fn held_numbers(
        &self,
        user_task_id: &str,
        caps: &[Cap],
        at: DateTime<Utc>,
    ) -> Result<Held, StoreError>;
    /// Up to `limit` sent, unfinished orders of the task, least recently polled first (never polled first), then
    /// in upload order (source line, then order ID).
    async fn orders_to_poll(
        &self,
        user_task_id: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Records that these orders were polled at `at`.
    async fn mark_polled(&self, order_ids: &[String], at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Records one poll chunk in ONE transaction: `facts` applied as by [`Store::apply_order_facts`] with
    /// [`FactSource::Poll`], and the orders `polled` (the chunk asked for, whether the platform reported them or not)
    /// marked polled at `at` as by [`Store::mark_polled`]. When it returns `Ok`, both are durable; on `Err`, neither.
    async fn record_poll(
        &self,
        facts: &[OrderFacts],
        polled: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Applies what a poll or a callback reported, in one transaction. Idempotent and order-independent (see the
    /// crate docs).
    async fn apply_order_facts(
        &self,
        facts: &[OrderFacts],
        source: FactSource,
    ) -> Result<(), StoreError>;
    /// The stored calls of an order, by start time, with their intents, SMS and transcript.
    async fn calls_of_order(&self, order_id: &str) -> Result<Vec<CallFacts>, StoreError>;
    /// The task's attempts that a retry rule may follow now, and when the next one may: finished, not stopped, the
    /// last attempt of their phone, below `q.max_attempts`, their last call's status one of `q.statuses`. `due` are
    /// those whose last call ended at or before `q.ended_by` (the first `limit` by source line); `next_ended_at` is
    /// the earliest last-call end after it. An attempt whose calls carry no time at all is never a candidate.
    async fn retries_due(
        &self,
        user_task_id: &str,
        q: &RetryQuery,
        limit: u32,
    ) -> Result<RetriesDue, StoreError>;
    /// Orders of the task to stop on the platform, by order ID, at most `limit`: uploaded (`sent`), not finished,
    /// not stopped (no stop state, or `sending`: its stop may not have applied), whose phone is actively suppressed
    /// at `now`.
    async fn orders_to_stop(
        &self,
        user_task_id: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// The stop outbox (write before send): [`StopState::Sending`] is written before a `stopOrder` carrying the
    /// orders leaves, [`StopState::Stopped`] once the platform acknowledged it. Moves orders without a stop state
    /// or in `sending` to `state` at `at` (`stopped_at`); `stopped` is final. Returns how many were written.
    async fn mark_stop(
        &self,
        order_ids: &[String],
        state: StopState,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// The campaign's orders counted by upload state and outcome.
    async fn order_counts(&self, campaign_id: &str) -> Result<OrderCounts, StoreError>;
    /// The task's orders counted by upload state, and its sent orders not finished yet. Meant for every decision:
    /// the backends keep the state counts as tallies updated in the transactions that move orders, and count the
    /// unfinished ones from the poll index, so the cost does not grow with the task's finished orders.
    async fn order_progress(&self, user_task_id: &str) -> Result<OrderProgress, StoreError>;
    /// [`Store::order_progress`] of several tasks in one call, in the order given (a task with no orders reads as
    /// all zeros).
    async fn order_progress_of(
        &self,
        user_task_ids: &[String],
    ) -> Result<Vec<OrderProgress>, StoreError>;

    // ---- suppression (do-not-call) lists

    /// Adds entries, or updates the reason and expiry of the stored ones, by `(phone, source)`, in one transaction
    /// (an entry given twice keeps its last record; a stored entry keeps its `added_at`). Returns how many rows were
    /// inserted or changed; the version moves when that is not 0. An empty phone or source is
    /// [`StoreError::Invalid`].
    async fn suppress(&self, entries: &[Suppression]) -> Result<u64, StoreError>;
    /// Deletes the entries of these phones: those of `source`, or of every source when `None`. Returns how many;
    /// the version moves when that is not 0.
    async fn unsuppress(&self, phones: &[String], source: Option<&str>) -> Result<u64, StoreError>;
    /// Makes the entries of `source` exactly `entries` (a suppression file read again), in ONE transaction: adds
    /// the new phones, updates the reason and expiry of those that changed (keeping their `added_at`), deletes
    /// the phones no longer listed, and leaves other sources alone. Every entry must be of `source`
    /// ([`StoreError::Invalid`] otherwise); a phone given twice keeps its last entry. The version moves only when
    /// something changed.
    async fn replace_suppression_source(
        &self,
        source: &str,
        entries: &[Suppression],
    ) -> Result<SourceSync, StoreError>;
    /// Entries by phone, then source, filtered.
    async fn suppressions(
        &self,
        filter: &SuppressionFilter,
    ) -> Result<Vec<Suppression>, StoreError>;
    /// The sources of suppression files that have entries (`file:<name>`), by name: what the daemon compares with
    /// the suppression directory at start-up, so the entries of a file removed meanwhile go too. One index look-up
    /// per source, however many entries each has.
    async fn suppression_file_sources(&self) -> Result<Vec<String>, StoreError>;
    /// The suppression set's version: it increases in the same transaction as every change to the set (a
    /// [`Store::suppress`], [`Store::unsuppress`] or [`Store::replace_suppression_source`] that changed a row), and
    /// only then. One row: cheap to poll, to learn whether the set changed since the version last read.
    async fn suppression_version(&self) -> Result<i64, StoreError>;
    /// Calls of the campaign's orders that carried an intent whose ID or name is among `intents`, and whose phone
    /// has no entry of source [`crate::opt_out_source`]`(campaign_id, call_id)` yet: the opt-outs not recorded. By
    /// call ID, at most `limit`.
    async fn opt_out_calls(
        &self,
        campaign_id: &str,
        intents: &[String],
        limit: u32,
    ) -> Result<Vec<OptOutCall>, StoreError>;

    // ---- ledger

    /// Appends platform requests to the ledger, in one transaction.
    async fn record_actions(&self, actions: &[ActionRecord]) -> Result<(), StoreError>;
    /// The latest `limit` ledger entries, newest first.
    async fn recent_actions(&self, limit: u32) -> Result<Vec<ActionRecord>, StoreError>;
    /// The latest `limit` callbacks, newest first.
    async fn recent_callbacks(&self, limit: u32) -> Result<Vec<CallbackRecord>, StoreError>;
    /// Stores a batch of received callbacks in ONE transaction: every raw record that is not a repeat, then the
    /// order facts and task statuses those carry (facts as by [`Store::apply_order_facts`] with
    /// [`FactSource::Callback`], statuses as by [`Store::task_status_observed`]). When it returns `Ok`, all of it is
    /// durable; on `Err` none of it is (the platform delivers them again).
    ///
    /// A verified callback whose `requestID` is already stored, or came earlier in the batch, is a
    /// [`Ingested::Repeat`]: not stored again, its facts not applied again. Unverified callbacks are always stored
    /// and never count as repeats. Returns, per callback in input order, what was done with it.
    async fn ingest_callbacks(&self, batch: &[CallbackIngest])
    -> Result<Vec<Ingested>, StoreError>;
    /// Deletes ledger rows (`api_actions` by `at`, `callbacks` by `received_at`) older than `older_than`, oldest
    /// first, at most `max_rows` in all: the actions first, then the callbacks with what is left. Deletes in short
    /// transactions of a bounded number of rows, so writers wait at most one of them. Returns how many rows went;
    /// fewer than `max_rows` means nothing older is left.
    async fn prune_ledger(
        &self,
        older_than: DateTime<Utc>,
        max_rows: u32,
    ) -> Result<u64, StoreError>;

    // ---- leases (several replicas sharing one database; each campaign owned by one replica at a time)

    /// Takes or renews each campaign's lease for `owner` until `now + ttl`, in one transaction. Refused while another
    /// owner holds an unexpired lease. Returns, in the order given, whether each was granted.
    async fn try_acquire_leases(
        &self,
        campaign_ids: &[String],
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError>;
    /// Gives the lease up if `owner` holds it.
    async fn release_lease(&self, campaign_id: &str, owner: &str) -> Result<(), StoreError>;
    /// The stored leases of these campaigns, by campaign ID, expired ones included ([`LeaseRecord::is_current`] says
    /// whether one is held at a given instant); a campaign without one is left out.
    async fn leases(&self, campaign_ids: &[String]) -> Result<Vec<LeaseRecord>, StoreError>;

    // ---- reports

    /// The report views, filtered.
    async fn report(&self, filter: &ReportFilter) -> Result<Report, StoreError>;
    /// Recomputes, in one transaction, everything the store keeps about the raw facts: the orders' flags derived
    /// from their calls (`dialled`, `answered`, `last_call_status`, `last_call_day`, `answered_started`) and every
    /// rollup (`order_tallies`, `order_outcomes`, the report rollups). The triggers and the store's own writes keep
    /// them as facts are written; this is for rows written around the store (a bulk load, a manual repair, a
    /// deletion of old calls). Readers see the old figures until it commits.
    async fn rebuild_rollups(&self) -> Result<(), StoreError>;
}
