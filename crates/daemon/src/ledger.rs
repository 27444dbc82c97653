//! Records every platform request attempt in the store's ledger, without ever blocking the request on the store.
//!
//! The client calls [`Ledger::record`] synchronously after each attempt; the record is buffered in memory (and
//! counted in the metrics at once). The reconcile loop flushes the buffer into the store after each step; when the
//! store is down the records stay buffered (up to a cap; beyond it the oldest are dropped and a warning is logged).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use callbot_api::{ActionObserver, ActionRecord};
use store::Store;

use crate::metrics::Metrics;

const MAX_BUFFERED: usize = 50_000;

tokio::task_local! {
    /// The campaign and task being reconciled, so ledger rows name them (the client knows nothing of campaigns).
    pub static CONTEXT: (String, String);
}

#[derive(Debug)]
pub struct Ledger {
    buffer: Mutex<VecDeque<store::ActionRecord>>,
    metrics: Metrics,
}

impl Ledger {
    pub fn new(metrics: Metrics) -> Arc<Ledger> {
        Arc::new(Ledger {
            buffer: Mutex::new(VecDeque::new()),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<store::ActionRecord>> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the buffered records to the store. On a store error the unwritten records stay buffered.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize, store::StoreError> {
        let mut written = 0;
        loop {
            let Some(next) = self.lock().front().cloned() else {
                return Ok(written);
            };
            store.record_action(&next).await?;
            self.lock().pop_front();
            written += 1;
        }
    }

    pub fn pending(&self) -> usize {
        self.lock().len()
    }
}

impl ActionObserver for Ledger {
    fn record(&self, a: &ActionRecord) {
        self.metrics.api_request(
            a.endpoint.name(),
            a.outcome.as_str(),
            a.duration_ms as f64 / 1000.0,
        );
        let row = store::ActionRecord {
            endpoint: a.endpoint.name().to_owned(),
            request_id: a.request_id.clone(),
            response_id: a.response_id.clone().filter(|r| !r.is_empty()),
            ret_code: a.ret_code,
            message: (!a.message.is_empty()).then(|| a.message.clone()),
            http_status: a.http_status.map(i64::from),
            duration_ms: i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
            at: a.at,
            outcome: a.outcome.as_str().to_owned(),
            campaign_id: CONTEXT.try_with(|(c, _)| c.clone()).ok(),
            user_task_id: CONTEXT.try_with(|(_, t)| t.clone()).ok(),
        };
        let mut buf = self.lock();
        if buf.len() >= MAX_BUFFERED {
            buf.pop_front();
            tracing::warn!(
                buffered = MAX_BUFFERED,
                "ledger buffer full (store down?): dropping the oldest record"
            );
        }
        buf.push_back(row);
    }
}
