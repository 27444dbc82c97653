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
    buffer: Mutex<Buffer>,
    metrics: Metrics,
}

/// The records not written yet, each with its sequence number (so a flush removes exactly what it wrote, even when
/// the cap dropped older records meanwhile).
#[derive(Debug, Default)]
struct Buffer {
    records: VecDeque<(u64, store::ActionRecord)>,
    next: u64,
}

impl Ledger {
    pub fn new(metrics: Metrics) -> Arc<Ledger> {
        Arc::new(Ledger {
            buffer: Mutex::new(Buffer::default()),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the buffered records to the store, a chunk per call. On a store error the unwritten records stay
    /// buffered.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize, store::StoreError> {
        const CHUNK: usize = 500;
        let mut written = 0;
        loop {
            let (last, chunk): (Option<u64>, Vec<store::ActionRecord>) = {
                let buf = self.lock();
                let chunk: Vec<_> = buf.records.iter().take(CHUNK).cloned().collect();
                (
                    chunk.last().map(|(seq, _)| *seq),
                    chunk.into_iter().map(|(_, r)| r).collect(),
                )
            };
            let Some(last) = last else {
                return Ok(written);
            };
            store.record_actions(&chunk).await?;
            let mut buf = self.lock();
            while buf.records.front().is_some_and(|(seq, _)| *seq <= last) {
                buf.records.pop_front();
            }
            written += chunk.len();
        }
    }

    pub fn pending(&self) -> usize {
        self.lock().records.len()
    }
}

impl ActionObserver for Ledger {
    fn response_signature(&self, check: &callbot_api::SignatureCheck) {
        self.metrics.response_signature(check.outcome.as_str());
    }

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
        if buf.records.len() >= MAX_BUFFERED {
            buf.records.pop_front();
            tracing::warn!(
                buffered = MAX_BUFFERED,
                "ledger buffer full (store down?): dropping the oldest record"
            );
        }
        let seq = buf.next;
        buf.next += 1;
        buf.records.push_back((seq, row));
    }
}
