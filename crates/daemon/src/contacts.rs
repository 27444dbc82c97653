//! Streaming a campaign's CSV into planned orders.

use std::time::SystemTime;

use campaign::{CampaignSpec, ContactReader};
use store::NewOrder;

/// What identifies a version of the contacts: CSV size and mtime, and the campaign file's hash (variables may
/// change how rows read).
pub type CsvStamp = (u64, Option<SystemTime>, String);

pub fn csv_stamp(spec: &CampaignSpec) -> CsvStamp {
    let meta = std::fs::metadata(&spec.contacts.file).ok();
    (
        meta.as_ref().map_or(0, |m| m.len()),
        meta.and_then(|m| m.modified().ok()),
        spec.content_hash.clone(),
    )
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
