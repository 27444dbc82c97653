//! What a reconcile leaves behind outside the daemon: the campaign records written to the store, and the gauges
//! published to the metrics. Reads outcomes; never decides or acts.

use std::collections::{BTreeMap, HashSet};

use store::{CampaignRecord, Store};

use crate::campaigns::CampaignSet;
use crate::metrics::Metrics;
use crate::outcome::{CampaignOutcome, Outcome};
use crate::plan::Why;

/// Campaign records written to the store per call.
const RECORD_CHUNK: usize = 256;

/// Writes the campaign records that changed since they were last written, in one store call per chunk.
pub(crate) async fn record_campaigns(
    store: &dyn Store,
    set: &mut CampaignSet,
    records: Vec<CampaignRecord>,
) {
    let changed: Vec<(CampaignRecord, u64)> = records
        .into_iter()
        .map(|r| {
            let digest = record_digest(&r);
            (r, digest)
        })
        .filter(|(r, digest)| set.get(&r.id).is_some_and(|c| c.recorded != Some(*digest)))
        .collect();
    // In chunks: each record carries its spec as a JSON tree (several KB), built just before it is written.
    for chunk in changed.chunks(RECORD_CHUNK) {
        let records: Vec<CampaignRecord> = chunk
            .iter()
            .map(|(r, _)| CampaignRecord {
                spec: set
                    .get(&r.id)
                    .and_then(|c| serde_json::to_value(&c.spec).ok()),
                ..r.clone()
            })
            .collect();
        if let Err(e) = store.upsert_campaigns(&records).await {
            tracing::warn!(campaigns = changed.len(), error = %e, "cannot record the campaigns' state");
            return;
        }
        for (r, digest) in chunk {
            if let Some(c) = set.get_mut(&r.id) {
                c.recorded = Some(*digest);
            }
        }
    }
}

/// Records in the store, in one call, the contacts versions the campaigns planned to their end in this pass
/// ([`crate::contacts::ContactsState::to_record`]). A failure costs only a restart's shortcut (it would read those
/// files again, which adds nothing twice): they are tried again at the next pass.
pub(crate) async fn record_contacts_planned(
    store: &dyn Store,
    set: &mut CampaignSet,
    at: chrono::DateTime<chrono::Utc>,
) {
    let planned: Vec<(String, String, u64)> = set
        .campaigns
        .values()
        .filter_map(|c| c.contacts.to_record.clone())
        .collect();
    if planned.is_empty() {
        return;
    }
    if let Err(e) = store.record_contacts_planned(&planned, at).await {
        tracing::warn!(tasks = planned.len(), error = %e, "cannot record which contacts files were planned; a restart would read them again");
        return;
    }
    for c in set.campaigns.values_mut() {
        c.contacts.to_record = None;
    }
}

/// A digest of everything in a campaign record but its time stamp. The spec is left out: it is a function of the
/// file's content and path, which are in.
fn record_digest(r: &CampaignRecord) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &r.id,
        r.generation,
        &r.source_file,
        &r.content_hash,
        &r.state,
        &r.last_error,
    )
        .hash(&mut h);
    h.finish()
}

/// Sets the order gauges of the campaigns reconciled this time, and the campaigns-by-state gauge.
pub(crate) fn publish_metrics(metrics: &Metrics, outcome: &Outcome) {
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    let reconciled: HashSet<&str> = outcome.reconciled.iter().map(String::as_str).collect();
    for c in &outcome.campaigns {
        *by_state.entry(metric_state(c).to_owned()).or_default() += 1;
        if !reconciled.contains(c.id.as_str()) {
            // Unchanged since its gauges were last set.
            continue;
        }
        metrics.orders(&c.id, "planned", c.orders.planned);
        metrics.orders(&c.id, "sending", c.orders.sending);
        metrics.orders(&c.id, "sent", c.orders.sent);
        metrics.orders(&c.id, "rejected", c.orders.rejected);
        metrics.orders(&c.id, "unfinished", c.orders.unfinished);
    }
    metrics.campaigns(&by_state);
}

/// A one-word state for metrics.
fn metric_state(c: &CampaignOutcome) -> &'static str {
    if c.not_owner {
        "other_replica"
    } else if c.error.is_some() {
        "error"
    } else if c.task.is_terminal() {
        "done"
    } else if c.plan.why.is_dialling() {
        "dialling"
    } else if matches!(c.plan.why, Why::PausedInFile) {
        "paused"
    } else {
        "waiting"
    }
}
