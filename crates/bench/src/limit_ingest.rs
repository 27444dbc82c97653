//! limit-ingest: the webhook's store work alone, no HTTP. The orders are seeded as in `callbacks`; then the N call
//! callbacks the load generator would send (the same bodies) are built as the webhook builds them once a signature
//! has verified (the raw record, and the order facts parsed from the body), all before the clock starts. Timed: the
//! store writes them with `Store::ingest_callbacks` in batches of `--batch`, with `Store::write_concurrency` batches
//! in flight at once, as the webhook's writers do (one on SQLite, several on PostgreSQL).
//! Each callback is built by `daemon::callback_ingest`, the function the webhook's handler calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use callbot_api::Callback;
use chrono::{DateTime, Utc};
use clock::{Clock as _, SystemClock};
use store::{CallbackIngest, Store};

use crate::callbacks::{self, ID, TASK};
use crate::env::{self, StoreKind};
use crate::loadgen::{self, Phase};
use crate::report::{Figures, short};

pub async fn run(n: u64, kind: StoreKind, batch: usize) -> anyhow::Result<Figures> {
    let batch = batch.max(1);
    let env = env::open_store(kind).await?;
    let now = SystemClock.now();
    callbacks::seed(env.store.as_ref(), n, now).await?;

    let t = Instant::now();
    let ingests: Vec<CallbackIngest> = (0..n)
        .map(|i| {
            let body = loadgen::call_callback_body(ID, TASK, "s", i, now.timestamp());
            ingest(body, uuid::Uuid::new_v4().to_string(), now)
        })
        .collect::<anyhow::Result<_>>()?;
    let build_secs = t.elapsed().as_secs_f64();

    let writers = env.store.write_concurrency().max(1);
    let cpu0 = crate::procfs::cpu_secs(None);
    let t = Instant::now();
    let took = write(env.store.clone(), ingests.into(), batch, writers).await?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = crate::procfs::cpu_secs(None) - cpu0;

    let counts = env.store.order_counts(ID).await?;
    if counts.finished != n {
        bail!("the callbacks did not reach the store: {counts:?}");
    }
    let batches = took.len() as u64;
    let Phase {
        p50_ms: p50,
        p99_ms: p99,
        max_ms: max,
        ..
    } = Phase::from(took, 0, Duration::from_secs_f64(secs));
    let rate = n as f64 / secs;
    let build_us = build_secs * 1e6 / n as f64;

    let mut f = Figures::new("limit-ingest", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    f.put("batch", batch as u64)
        .put("writers", writers as u64)
        .put("batches", batches)
        .put("secs", secs)
        .put("callbacks_per_s", rate)
        .put("batch_p50_ms", p50)
        .put("batch_p99_ms", p99)
        .put("batch_max_ms", max)
        .put("harness_cpu_secs", cpu)
        .put("build_us_per_callback", build_us)
        .put("peak_rss_mb", crate::procfs::peak_rss_mb(None));
    f.line = format!(
        "limit-ingest [{}] {n} call callbacks stored with Store::ingest_callbacks in batches of {batch}, {writers} \
         at once: {}/s; ms per batch p50 {}, p99 {}, max {} (harness: {} s CPU; building each callback before the \
         clock: {} µs)",
        kind.as_str(),
        short(rate),
        short(p50),
        short(p99),
        short(max),
        short(cpu),
        short(build_us)
    );
    Ok(f)
}

/// Writes `items` in batches of `batch`, `writers` batches at once (each writer takes the next batch as soon as
/// its last one is stored); the time each batch took.
async fn write(
    store: Arc<dyn Store>,
    items: Arc<[CallbackIngest]>,
    batch: usize,
    writers: usize,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (store, items, next) = (store.clone(), items.clone(), next.clone());
        set.spawn(async move {
            let mut took = Vec::new();
            loop {
                let start = next.fetch_add(1, Ordering::Relaxed) * batch;
                if start >= items.len() {
                    return Ok::<_, store::StoreError>(took);
                }
                let end = (start + batch).min(items.len());
                let t = Instant::now();
                store.ingest_callbacks(&items[start..end]).await?;
                took.push(t.elapsed());
            }
        });
    }
    let mut took = Vec::new();
    while let Some(ended) = set.join_next().await {
        took.extend(ended.context("a writer task failed")??);
    }
    Ok(took)
}

/// One verified callback as the webhook hands it to its writers ([`daemon::callback_ingest`], the webhook's own
/// function): the raw record and the facts parsed from it. `body` is the load generator's call callback.
fn ingest(body: String, request_id: String, now: DateTime<Utc>) -> anyhow::Result<CallbackIngest> {
    let (ingest, parsed) = daemon::callback_ingest(body.into_bytes(), Some(request_id), now);
    match parsed.context("parsing a generated callback")? {
        Callback::Call(_) => Ok(ingest),
        other => bail!(
            "the load generator sent a {:?} callback, not a call callback",
            other.callback_type()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_facts_of_a_generated_call_callback() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let body = loadgen::call_callback_body("c", "t", "s", 7, now.timestamp());
        let item = ingest(body.clone(), "r-7".into(), now).unwrap();
        assert_eq!(item.record.body, body);
        assert_eq!(item.record.kind, "call");
        assert_eq!(item.record.request_id.as_deref(), Some("r-7"));
        let facts = item.facts.unwrap();
        assert_eq!(
            facts.order_id,
            campaign::order_id("c", 1, &env::normalized_phone(7))
        );
        assert_eq!(facts.user_task_id, "t");
        assert!(facts.finished);
        let call = &facts.calls[0];
        assert_eq!(call.call_id, "bench-s-7");
        assert_eq!(call.call_status, 6);
        assert_eq!(call.ended_at, Some(now));
        assert_eq!(call.intents.len(), 1);
        assert_eq!(call.agent, None, "an agent block of nulls is no agent");
    }
}
