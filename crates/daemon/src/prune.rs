//! Ledger retention: deletes platform-action and callback records older than the retention, in short chunks, on
//! its own task, so the ledger cannot grow without bound and no writer waits on a long delete.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clock::SharedClock;
use store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// Rows deleted per store call (each its own short transactions in the backends).
const PRUNE_CHUNK: u32 = 5_000;

/// Prunes the ledger every `every`, keeping `retention` of it.
#[derive(Debug)]
pub struct Pruner {
    store: Arc<dyn Store>,
    clock: SharedClock,
    retention: chrono::Duration,
    every: Duration,
}

impl Pruner {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        retention: chrono::Duration,
        every: Duration,
    ) -> Pruner {
        Pruner {
            store,
            clock,
            retention,
            every,
        }
    }

    /// One pass at `now`: deletes everything older than `now - retention`, a chunk at a time (stopping between
    /// chunks at shutdown). Returns how many records went.
    pub async fn prune_once(
        &self,
        now: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Result<u64, StoreError> {
        let cutoff = now - self.retention;
        let mut total = 0;
        loop {
            let n = self.store.prune_ledger(cutoff, PRUNE_CHUNK).await?;
            total += n;
            if n < u64::from(PRUNE_CHUNK) || stop.is_cancelled() {
                return Ok(total);
            }
            // Let writers in between chunks.
            tokio::task::yield_now().await;
        }
    }

    /// Prunes at start and then every `every`, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        loop {
            match self.prune_once(self.clock.now(), &shutdown).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "pruned the ledger past its retention"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune the ledger now; trying again later")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }
}
