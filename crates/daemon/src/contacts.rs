//! Streaming a campaign's CSV into the store as planned orders. Reads files and writes orders; never calls the
//! platform.

use campaign::{CampaignSpec, ContactReader};
use store::{NewOrder, Store};

use crate::actions::{StepError, StepResult};
use crate::scan::FileStamp;

/// Orders written to the store per bulk insert while streaming a CSV.
const PLAN_CHUNK: usize = 5_000;
/// Chunks the CSV reader may run ahead of the store writes.
const PLAN_CHUNKS_AHEAD: usize = 2;

/// What identifies a version of the contacts: the CSV's file stamp (the same stamp as the campaign files'), and the
/// campaign file's hash (variables may change how rows read).
pub(crate) type CsvStamp = (Option<FileStamp>, String);

pub(crate) fn csv_stamp(spec: &CampaignSpec) -> CsvStamp {
    (
        FileStamp::of(&spec.contacts.file),
        spec.content_hash.clone(),
    )
}

/// Streams the campaign's CSV into the store as planned orders of task `ut`. Idempotent: order IDs are
/// deterministic and inserts skip IDs already present, so rows uploaded before are never planned (or sent) again,
/// and rows appended later are picked up. Returns how many orders were newly planned, and the counts of the rows.
pub(crate) async fn plan_into_store(
    store: &dyn Store,
    spec: &CampaignSpec,
    ut: &str,
) -> StepResult<(u64, Stats)> {
    let reader = read(spec, ut).map_err(StepError::Contacts)?;
    let (mut chunks, reading) = read_in_chunks(reader, PLAN_CHUNK, PLAN_CHUNKS_AHEAD);
    let mut inserted = 0u64;
    let mut failed = None;
    while let Some(chunk) = chunks.recv().await {
        match store.insert_planned_orders(&chunk).await {
            Ok(n) => inserted += n,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // Dropping the receiver stops the reader if it is still going (after a failed write).
    drop(chunks);
    let stats = reading
        .await
        .map_err(|e| StepError::Reader(e.to_string()))?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok((inserted, stats))
}

/// Counts of the rows read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub valid: u64,
    pub issues: u64,
}

/// A streaming reader of planned orders.
#[derive(Debug)]
pub struct Reader {
    inner: ContactReader,
    campaign_id: String,
    user_task_id: String,
}

/// Opens the campaign's CSV.
pub fn read(spec: &CampaignSpec, user_task_id: &str) -> Result<Reader, String> {
    let inner = ContactReader::open(spec)
        .map_err(|e| format!("cannot read contacts {}: {e}", spec.contacts.file.display()))?;
    Ok(Reader {
        inner,
        campaign_id: spec.id.clone(),
        user_task_id: user_task_id.to_owned(),
    })
}

impl Reader {
    /// The next valid contact as a planned order; rows with issues are counted and skipped.
    pub fn next_order(&mut self, stats: &mut Stats) -> Option<NewOrder> {
        loop {
            match self.inner.next()? {
                Ok(c) => {
                    stats.valid += 1;
                    let variables: serde_json::Map<String, serde_json::Value> = c
                        .variables
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect();
                    return Some(NewOrder {
                        order_id: c.order_id,
                        campaign_id: self.campaign_id.clone(),
                        user_task_id: self.user_task_id.clone(),
                        phone: c.phone,
                        name: opt(c.name),
                        customer: opt(c.customer),
                        other: opt(c.other),
                        variables: serde_json::Value::Object(variables),
                        source_line: i64::try_from(c.line).unwrap_or(i64::MAX),
                    });
                }
                Err(_) => stats.issues += 1,
            }
        }
    }
}

/// Reads the contacts on a blocking thread, `chunk` orders at a time, at most `ahead` chunks ahead of the consumer
/// (so parsing and normalising the CSV runs on one core while the store writes on the other, in bounded memory).
/// The thread stops early when the receiver is dropped; its handle returns the counts of the rows it read.
pub fn read_in_chunks(
    mut reader: Reader,
    chunk: usize,
    ahead: usize,
) -> (
    tokio::sync::mpsc::Receiver<Vec<NewOrder>>,
    tokio::task::JoinHandle<Stats>,
) {
    let chunk = chunk.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel(ahead.max(1));
    let handle = tokio::task::spawn_blocking(move || {
        let mut stats = Stats::default();
        let mut buf = Vec::with_capacity(chunk);
        while let Some(order) = reader.next_order(&mut stats) {
            buf.push(order);
            if buf.len() >= chunk {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk));
                if tx.blocking_send(full).is_err() {
                    return stats;
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(buf);
        }
        stats
    });
    (rx, handle)
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}
