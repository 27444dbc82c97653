#![doc = include_str!("../README.md")]

mod facts;
mod queries;
mod report;
mod util;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use store::{
    ActionRecord, CallFacts, CallbackIngest, CallbackRecord, CampaignRecord, FactSource, NewOrder,
    OrderCounts, OrderFacts, OrderProgress, OrderRecord, Report, ReportFilter, Store, StoreError,
    TaskRecord, UploadState,
};

use crate::util::db_err;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The PostgreSQL store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://` or `postgresql://`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("cannot parse the PostgreSQL URL: {e}")))?
            .application_name("campaignd");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(PgStore { pool })
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        queries::ping(&self.pool).await
    }

    /// PostgreSQL commits transactions in parallel: while one batch waits for its WAL flush, the next is written.
    /// Three leaves most of the pool's eight connections to the reconciler and the reports.
    fn write_concurrency(&self) -> usize {
        3
    }

    async fn upsert_campaign(&self, c: &CampaignRecord) -> Result<(), StoreError> {
        queries::upsert_campaign(&self.pool, c).await
    }

    async fn upsert_campaigns(&self, cs: &[CampaignRecord]) -> Result<(), StoreError> {
        queries::upsert_campaigns(&self.pool, cs).await
    }

    async fn campaigns(&self) -> Result<Vec<CampaignRecord>, StoreError> {
        queries::campaigns(&self.pool).await
    }

    async fn upsert_task(&self, t: &TaskRecord) -> Result<(), StoreError> {
        queries::upsert_task(&self.pool, t).await
    }

    async fn tasks(&self, campaign_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        queries::tasks(&self.pool, campaign_id).await
    }

    async fn tasks_of(&self, campaign_ids: &[String]) -> Result<Vec<TaskRecord>, StoreError> {
        queries::tasks_of(&self.pool, campaign_ids).await
    }

    async fn insert_planned_orders(&self, orders: &[NewOrder]) -> Result<u64, StoreError> {
        queries::insert_planned_orders(&self.pool, orders).await
    }

    async fn orders_in_state(
        &self,
        user_task_id: &str,
        state: UploadState,
        limit: u32,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        queries::orders_in_state(&self.pool, user_task_id, state, limit).await
    }

    async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        queries::order(&self.pool, order_id).await
    }

    async fn set_upload_state(
        &self,
        order_ids: &[String],
        state: UploadState,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        queries::set_upload_state(&self.pool, order_ids, state, at).await
    }

    async fn reject_orders(
        &self,
        rejected: &[(String, String)],
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        queries::reject_orders(&self.pool, rejected, at).await
    }

    async fn orders_to_poll(
        &self,
        user_task_id: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        queries::orders_to_poll(&self.pool, user_task_id, limit).await
    }

    async fn mark_polled(&self, order_ids: &[String], at: DateTime<Utc>) -> Result<(), StoreError> {
        queries::mark_polled(&self.pool, order_ids, at).await
    }

    async fn apply_order_facts(
        &self,
        facts: &[OrderFacts],
        source: FactSource,
    ) -> Result<(), StoreError> {
        facts::apply_order_facts(&self.pool, facts, source).await
    }

    async fn calls_of_order(&self, order_id: &str) -> Result<Vec<CallFacts>, StoreError> {
        facts::calls_of_order(&self.pool, order_id).await
    }

    async fn order_counts(&self, campaign_id: &str) -> Result<OrderCounts, StoreError> {
        queries::order_counts(&self.pool, campaign_id).await
    }

    async fn order_progress(&self, user_task_id: &str) -> Result<OrderProgress, StoreError> {
        queries::order_progress(&self.pool, user_task_id).await
    }

    async fn order_progress_of(
        &self,
        user_task_ids: &[String],
    ) -> Result<Vec<OrderProgress>, StoreError> {
        queries::order_progress_of(&self.pool, user_task_ids).await
    }

    async fn settle_and_claim(
        &self,
        sent: &[String],
        rejected: &[(String, String)],
        user_task_id: &str,
        claim: u32,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        queries::settle_and_claim(&self.pool, sent, rejected, user_task_id, claim, at).await
    }

    async fn record_action(&self, a: &ActionRecord) -> Result<(), StoreError> {
        queries::record_action(&self.pool, a).await
    }

    async fn recent_actions(&self, limit: u32) -> Result<Vec<ActionRecord>, StoreError> {
        queries::recent_actions(&self.pool, limit).await
    }

    async fn record_callback(&self, c: &CallbackRecord) -> Result<i64, StoreError> {
        queries::record_callback(&self.pool, c).await
    }

    async fn recent_callbacks(&self, limit: u32) -> Result<Vec<CallbackRecord>, StoreError> {
        queries::recent_callbacks(&self.pool, limit).await
    }

    async fn ingest_callbacks(&self, batch: &[CallbackIngest]) -> Result<(), StoreError> {
        facts::ingest_callbacks(&self.pool, batch).await
    }

    async fn try_acquire_lease(
        &self,
        campaign_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        queries::try_acquire_lease(&self.pool, campaign_id, owner, now, ttl).await
    }

    async fn try_acquire_leases(
        &self,
        campaign_ids: &[String],
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        queries::try_acquire_leases(&self.pool, campaign_ids, owner, now, ttl).await
    }

    async fn release_lease(&self, campaign_id: &str, owner: &str) -> Result<(), StoreError> {
        queries::release_lease(&self.pool, campaign_id, owner).await
    }

    async fn report(&self, filter: &ReportFilter) -> Result<Report, StoreError> {
        report::report(&self.pool, filter).await
    }
}
