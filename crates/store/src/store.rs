use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    ActionRecord, CallFacts, CallbackIngest, CallbackRecord, CampaignRecord, FactSource, NewOrder,
    OrderCounts, OrderFacts, OrderRecord, Report, ReportFilter, StoreError, TaskRecord,
    UploadState,
};

/// Everything the daemon and the reports need from the database. Implemented by `store-postgres` and
/// `store-sqlite`; see the crate docs for the rules every implementation keeps.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    // ---- campaigns and tasks

    /// Inserts or replaces the campaign with this ID.
    async fn upsert_campaign(&self, c: &CampaignRecord) -> Result<(), StoreError>;
    /// All campaigns, by ID.
    async fn campaigns(&self) -> Result<Vec<CampaignRecord>, StoreError>;
    /// Inserts or replaces the task with this `user_task_id`.
    async fn upsert_task(&self, t: &TaskRecord) -> Result<(), StoreError>;
    /// The campaign's tasks, by generation then index.
    async fn tasks(&self, campaign_id: &str) -> Result<Vec<TaskRecord>, StoreError>;

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
    /// Gives the lease up if `owner` holds it.
    async fn release_lease(&self, campaign_id: &str, owner: &str) -> Result<(), StoreError>;

    // ---- reports

    /// The report views, filtered.
    async fn report(&self, filter: &ReportFilter) -> Result<Report, StoreError>;
}
