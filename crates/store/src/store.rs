use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    ActionRecord, CallFacts, CallbackIngest, CallbackRecord, CampaignRecord, FactSource, NewOrder,
    OrderCounts, OrderFacts, OrderProgress, OrderRecord, Report, ReportFilter, StoreError,
    TaskRecord, UploadState,
};

/// Everything the daemon and the reports need from the database. Implemented by `store-postgres` and
/// `store-sqlite`; see the crate docs for the rules every implementation keeps.
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

    /// Inserts or replaces the campaign with this ID.
    async fn upsert_campaign(&self, c: &CampaignRecord) -> Result<(), StoreError>;
    /// Inserts or replaces several campaigns: one transaction where the backend can (the reconciler records every
    /// campaign it reconciled in one call).
    async fn upsert_campaigns(&self, cs: &[CampaignRecord]) -> Result<(), StoreError> {
        for c in cs {
            self.upsert_campaign(c).await?;
        }
        Ok(())
    }
    /// All campaigns, by ID.
    async fn campaigns(&self) -> Result<Vec<CampaignRecord>, StoreError>;
    /// Inserts or replaces the task with this `user_task_id`.
    async fn upsert_task(&self, t: &TaskRecord) -> Result<(), StoreError>;
    /// The campaign's tasks, by generation then index.
    async fn tasks(&self, campaign_id: &str) -> Result<Vec<TaskRecord>, StoreError>;

    /// The tasks of several campaigns in one call where the backend can, by campaign, generation then index.
    async fn tasks_of(&self, campaign_ids: &[String]) -> Result<Vec<TaskRecord>, StoreError> {
        let mut out = Vec::new();
        for id in campaign_ids {
            out.extend(self.tasks(id).await?);
        }
        Ok(out)
    }

    // ---- orders

    /// Plans orders in bulk, skipping any whose `order_id` is stored or whose `(user_task_id, phone)` is already
    /// planned. Returns how many were newly inserted.
    async fn insert_planned_orders(&self, orders: &[NewOrder]) -> Result<u64, StoreError>;
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
    /// Marks orders rejected with their reasons (from `planned` or `sending` only). Returns how many moved.
    async fn reject_orders(
        &self,
        rejected: &[(String, String)],
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Up to `limit` sent, unfinished orders of the task, least recently polled first (never polled first), then
    /// by order ID.
    async fn orders_to_poll(
        &self,
        user_task_id: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Records that these orders were polled at `at`.
    async fn mark_polled(&self, order_ids: &[String], at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Applies what a poll or a callback reported. Idempotent and order-independent (see the crate docs).
    async fn apply_order_facts(
        &self,
        facts: &[OrderFacts],
        source: FactSource,
    ) -> Result<(), StoreError>;
    /// The stored calls of an order, by start time, with their intents, SMS and transcript.
    async fn calls_of_order(&self, order_id: &str) -> Result<Vec<CallFacts>, StoreError>;
    /// The campaign's orders counted by upload state and outcome.
    async fn order_counts(&self, campaign_id: &str) -> Result<OrderCounts, StoreError>;

    /// The task's orders counted by upload state, and its sent orders not finished yet. Meant for every decision:
    /// the backends keep the state counts as tallies updated in the transactions that move orders, and count the
    /// unfinished ones from the poll index, so the cost does not grow with the task's finished orders.
    ///
    /// The default counts through [`Store::orders_in_state`] and [`Store::orders_to_poll`]: correct, slow.
    async fn order_progress(&self, user_task_id: &str) -> Result<OrderProgress, StoreError> {
        let mut p = OrderProgress::default();
        for state in UploadState::ALL {
            let n = self
                .orders_in_state(user_task_id, state, u32::MAX)
                .await?
                .len() as u64;
            match state {
                UploadState::Planned => p.planned = n,
                UploadState::Sending => p.sending = n,
                UploadState::Sent => p.sent = n,
                UploadState::Rejected => p.rejected = n,
            }
        }
        p.total = p.planned + p.sending + p.sent + p.rejected;
        p.unfinished = self.orders_to_poll(user_task_id, u32::MAX).await?.len() as u64;
        Ok(p)
    }
    /// [`Store::order_progress`] of several tasks in one call where the backend can, in the order given.
    async fn order_progress_of(
        &self,
        user_task_ids: &[String],
    ) -> Result<Vec<OrderProgress>, StoreError> {
        let mut out = Vec::with_capacity(user_task_ids.len());
        for ut in user_task_ids {
            out.push(self.order_progress(ut).await?);
        }
        Ok(out)
    }
    /// Settles one uploaded batch and claims the next, in ONE transaction where the backend can: `rejected` orders
    /// move to `rejected` with their reasons and `sent` ones to `sent` (each only from `planned` or `sending`; all of
    /// them orders of `user_task_id`: the backends leave other tasks' orders alone), then
    /// up to `claim` planned orders of `user_task_id` (by source line) move `planned → sending` and are returned as
    /// they now are. The claimed orders are durably `sending` when this returns, before any request carries them.
    /// `claim = 0` only settles.
    ///
    /// The default is built from [`Store::reject_orders`], [`Store::set_upload_state`] and
    /// [`Store::orders_in_state`]: correct, several transactions.
    async fn settle_and_claim(
        &self,
        sent: &[String],
        rejected: &[(String, String)],
        user_task_id: &str,
        claim: u32,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        if !rejected.is_empty() {
            self.reject_orders(rejected, at).await?;
        }
        if !sent.is_empty() {
            self.set_upload_state(sent, UploadState::Sent, at).await?;
        }
        if claim == 0 {
            return Ok(Vec::new());
        }
        let mut batch = self
            .orders_in_state(user_task_id, UploadState::Planned, claim)
            .await?;
        let ids: Vec<String> = batch.iter().map(|o| o.order_id.clone()).collect();
        self.set_upload_state(&ids, UploadState::Sending, at)
            .await?;
        for o in &mut batch {
            o.upload_state = UploadState::Sending;
            o.state_changed_at = Some(at);
        }
        Ok(batch)
    }

    // ---- ledger

    /// Appends one platform request to the ledger.
    async fn record_action(&self, a: &ActionRecord) -> Result<(), StoreError>;
    /// The latest `limit` ledger entries, newest first.
    async fn recent_actions(&self, limit: u32) -> Result<Vec<ActionRecord>, StoreError>;
    /// Appends one received callback; returns its ID.
    async fn record_callback(&self, c: &CallbackRecord) -> Result<i64, StoreError>;
    /// The latest `limit` callbacks, newest first.
    async fn recent_callbacks(&self, limit: u32) -> Result<Vec<CallbackRecord>, StoreError>;
    /// Stores a batch of received callbacks: every raw record, then every fact (applied as by
    /// [`Store::apply_order_facts`] with [`FactSource::Callback`]). When it returns `Ok`, all of it is durable; the
    /// backends do it in ONE transaction, so on `Err` none of it is (the platform delivers them again).
    ///
    /// The default is built from the single-row methods (records first, then the facts in one call): correct, not
    /// atomic across the batch, and slow; it exists so wrappers (e.g. test doubles) need not implement it.
    async fn ingest_callbacks(&self, batch: &[CallbackIngest]) -> Result<(), StoreError> {
        for item in batch {
            self.record_callback(&item.record).await?;
        }
        let facts: Vec<OrderFacts> = batch.iter().filter_map(|i| i.facts.clone()).collect();
        self.apply_order_facts(&facts, FactSource::Callback).await
    }

    // ---- leases (several replicas sharing one database; each campaign owned by one replica at a time)

    /// Takes or renews the campaign's lease for `owner` until `now + ttl`. Refused (false) while another owner
    /// holds an unexpired lease.
    async fn try_acquire_lease(
        &self,
        campaign_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// [`Store::try_acquire_lease`] for several campaigns, one transaction where the backend can. Returns, in the
    /// order given, whether each was granted.
    async fn try_acquire_leases(
        &self,
        campaign_ids: &[String],
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let mut granted = Vec::with_capacity(campaign_ids.len());
        for id in campaign_ids {
            granted.push(self.try_acquire_lease(id, owner, now, ttl).await?);
        }
        Ok(granted)
    }
    /// Gives the lease up if `owner` holds it.
    async fn release_lease(&self, campaign_id: &str, owner: &str) -> Result<(), StoreError>;

    // ---- reports

    /// The report views, filtered.
    async fn report(&self, filter: &ReportFilter) -> Result<Report, StoreError>;
}
