#![doc = include_str!("../README.md")]

mod campaigns;
mod facts;
mod ledger;
mod orders;
mod report;
mod suppressions;
mod util;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use store::StoreError;

use crate::util::db_err;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The PostgreSQL store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
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

// Each method is the function of the same name in `campaigns`, `orders`, `facts`, `suppressions`, `ledger` or
// `report`. Three writers: PostgreSQL commits transactions in parallel (while one batch waits for its WAL flush, the
// next is written), and three leave most of the pool's eight connections to the reconciler and the reports.
store::impl_store!(PgStore, write_concurrency = 3);
