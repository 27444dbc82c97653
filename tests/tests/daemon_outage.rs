//! Store outages: the webhook answers 503 (so the platform delivers again) and loses no callback; readiness follows
//! the store; the reconciler reports the outage per campaign and recovers without a restart.
//!
//! The outage is injected by a thin wrapper around a real SQLite store that refuses every call while "down" (the
//! database itself is real; only its reachability is switched).

mod daemon_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use callbot_api::sign::{SecretKey, SignedHeaders};
use chrono::{DateTime, TimeZone, Utc};
use clock::ManualClock;
use daemon::{Hub, Metrics, Webhook};
use daemon_support::{SECRET, UUID};
use store::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Switchable {
    inner: Arc<dyn Store>,
    down: AtomicBool,
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "connection refused (test outage)".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// Every method checks the switch, then forwards.
#[async_trait]
impl Store for Switchable {
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }
    async fn upsert_campaigns(&self, cs: &[CampaignRecord]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.upsert_campaigns(cs).await
    }
    async fn campaigns(&self) -> Result<Vec<CampaignRecord>, StoreError> {
        self.check()?;
        self.inner.campaigns().await
    }
    async fn tasks(&self, campaign_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        self.check()?;
        self.inner.tasks(campaign_id).await
    }
    async fn tasks_of(&self, campaign_ids: &[String]) -> Result<Vec<TaskRecord>, StoreError> {
        self.check()?;
        self.inner.tasks_of(campaign_ids).await
    }
    async fn record_zone_groups_of_orders(
        &self,
        orders: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_zone_groups_of_orders(orders).await
    }
    async fn insert_planned_orders_in_groups(
        &self,
        orders: &[NewOrder],
        zone_groups: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner
            .insert_planned_orders_in_groups(orders, zone_groups, now)
            .await
    }
    async fn zone_groups_of(
        &self,
        user_task_ids: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.check()?;
        self.inner.zone_groups_of(user_task_ids).await
    }
    async fn zone_groups(&self, user_task_id: &str) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.zone_groups(user_task_id).await
    }
    async fn record_contacts_planned(
        &self,
        planned: &[(String, String, u64)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_contacts_planned(planned, at).await
    }
    async fn contacts_planned_of(
        &self,
        user_task_ids: &[String],
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.check()?;
        self.inner.contacts_planned_of(user_task_ids).await
    }
    async fn task_create_intent(
        &self,
        key: &TaskKey,
        settings: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.task_create_intent(key, settings, at).await
    }
    async fn task_status_observed(
        &self,
        ut: &str,
        status: i64,
        task_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner
            .task_status_observed(ut, status, task_id, at)
            .await
    }
    async fn task_settings_sent(
        &self,
        ut: &str,
        settings: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.task_settings_sent(ut, settings, at).await
    }
    async fn task_settings_forgotten(&self, ut: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.task_settings_forgotten(ut, at).await
    }
    async fn task_toggle_intent(&self, ut: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.task_toggle_intent(ut, at).await
    }
    async fn task_not_created(&self, ut: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.task_not_created(ut, at).await
    }
    async fn insert_planned_orders(
        &self,
        orders: &[NewOrder],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.insert_planned_orders(orders, now).await
    }
    async fn orders_in_state(
        &self,
        ut: &str,
        state: UploadState,
        limit: u32,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.check()?;
        self.inner.orders_in_state(ut, state, limit).await
    }
    async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        self.check()?;
        self.inner.order(order_id).await
    }
    async fn set_upload_state(
        &self,
        ids: &[String],
        state: UploadState,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.set_upload_state(ids, state, at).await
    }
    async fn settle_and_claim(
        &self,
        sent: &[String],
        rejected: &[(String, String)],
        ut: &str,
        claim: u32,
        at: DateTime<Utc>,
        caps: &[Cap],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.check()?;
        self.inner
            .settle_and_claim(sent, rejected, ut, claim, at, caps)
            .await
    }
    async fn held_numbers(
        &self,
        ut: &str,
        caps: &[Cap],
        at: DateTime<Utc>,
    ) -> Result<Held, StoreError> {
        self.check()?;
        self.inner.held_numbers(ut, caps, at).await
    }
    async fn orders_to_poll(&self, ut: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.orders_to_poll(ut, limit).await
    }
    async fn mark_polled(&self, ids: &[String], at: DateTime<Utc>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.mark_polled(ids, at).await
    }
    async fn apply_order_facts(
        &self,
        facts: &[OrderFacts],
        source: FactSource,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.apply_order_facts(facts, source).await
    }
    async fn record_poll(
        &self,
        facts: &[OrderFacts],
        polled: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_poll(facts, polled, at).await
    }
    async fn calls_of_order(&self, order_id: &str) -> Result<Vec<CallFacts>, StoreError> {
        self.check()?;
        self.inner.calls_of_order(order_id).await
    }
    async fn orders_to_stop(
        &self,
        ut: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.orders_to_stop(ut, now, limit).await
    }
    async fn retries_due(
        &self,
        ut: &str,
        q: &store::RetryQuery,
        limit: u32,
    ) -> Result<store::RetriesDue, StoreError> {
        self.check()?;
        self.inner.retries_due(ut, q, limit).await
    }
    async fn mark_stop(
        &self,
        ids: &[String],
        state: StopState,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.mark_stop(ids, state, at).await
    }
    async fn order_counts(&self, campaign_id: &str) -> Result<OrderCounts, StoreError> {
        self.check()?;
        self.inner.order_counts(campaign_id).await
    }
    async fn order_progress(&self, ut: &str) -> Result<OrderProgress, StoreError> {
        self.check()?;
        self.inner.order_progress(ut).await
    }
    async fn order_progress_of(&self, uts: &[String]) -> Result<Vec<OrderProgress>, StoreError> {
        self.check()?;
        self.inner.order_progress_of(uts).await
    }
    async fn suppress(&self, entries: &[Suppression]) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.suppress(entries).await
    }
    async fn unsuppress(&self, phones: &[String], source: Option<&str>) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.unsuppress(phones, source).await
    }
    async fn replace_suppression_source(
        &self,
        source: &str,
        entries: &[Suppression],
    ) -> Result<SourceSync, StoreError> {
        self.check()?;
        self.inner.replace_suppression_source(source, entries).await
    }
    async fn suppressions(
        &self,
        filter: &SuppressionFilter,
    ) -> Result<Vec<Suppression>, StoreError> {
        self.check()?;
        self.inner.suppressions(filter).await
    }
    async fn suppression_file_sources(&self) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.suppression_file_sources().await
    }
    async fn suppression_version(&self) -> Result<i64, StoreError> {
        self.check()?;
        self.inner.suppression_version().await
    }
    async fn opt_out_calls(
        &self,
        campaign_id: &str,
        intents: &[String],
        limit: u32,
    ) -> Result<Vec<OptOutCall>, StoreError> {
        self.check()?;
        self.inner.opt_out_calls(campaign_id, intents, limit).await
    }
    async fn record_actions(&self, actions: &[ActionRecord]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_actions(actions).await
    }
    async fn recent_actions(&self, limit: u32) -> Result<Vec<ActionRecord>, StoreError> {
        self.check()?;
        self.inner.recent_actions(limit).await
    }
    async fn recent_callbacks(&self, limit: u32) -> Result<Vec<CallbackRecord>, StoreError> {
        self.check()?;
        self.inner.recent_callbacks(limit).await
    }
    async fn ingest_callbacks(
        &self,
        batch: &[CallbackIngest],
    ) -> Result<Vec<Ingested>, StoreError> {
        self.check()?;
        self.inner.ingest_callbacks(batch).await
    }
    async fn prune_ledger(
        &self,
        older_than: DateTime<Utc>,
        max_rows: u32,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.prune_ledger(older_than, max_rows).await
    }
    async fn try_acquire_leases(
        &self,
        campaign_ids: &[String],
        owner: &str,
        now: DateTime<Utc>,
        ttl: StdDuration,
    ) -> Result<Vec<bool>, StoreError> {
        self.check()?;
        self.inner
            .try_acquire_leases(campaign_ids, owner, now, ttl)
            .await
    }
    async fn release_lease(&self, campaign_id: &str, owner: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release_lease(campaign_id, owner).await
    }
    async fn leases(&self, campaign_ids: &[String]) -> Result<Vec<LeaseRecord>, StoreError> {
        self.check()?;
        self.inner.leases(campaign_ids).await
    }
    async fn report(&self, filter: &ReportFilter) -> Result<Report, StoreError> {
        self.check()?;
        self.inner.report(filter).await
    }
    async fn rebuild_rollups(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.rebuild_rollups().await
    }
}

async fn sqlite(dir: &std::path::Path) -> Arc<Switchable> {
    let inner = store_sqlite::SqliteStore::open(&testkit::sqlite_url(dir))
        .await
        .unwrap();
    Arc::new(Switchable {
        inner: Arc::new(inner),
        down: AtomicBool::new(false),
    })
}

fn signed(body: &[u8], now: DateTime<Utc>, request_id: &str) -> reqwest::header::HeaderMap {
    let h = SignedHeaders::signed(
        &SecretKey::new(SECRET.into()),
        body,
        now.timestamp().to_string(),
        request_id,
        UUID,
        callbot_api::Algorithm::Md5,
    );
    let mut headers = reqwest::header::HeaderMap::new();
    h.write_to(&mut headers);
    headers
}

#[tokio::test]
async fn webhook_answers_503_while_the_store_is_down_and_loses_no_callback() {
    callbot_api::ensure_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap();
    let clock = ManualClock::new(now);
    let hub = Arc::new(Hub::new(Metrics::new()));
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let webhook = Webhook::new(
        store.clone(),
        SecretKey::new(SECRET.into()),
        clock.shared(),
        hub.clone(),
    );
    let server = tokio::spawn(webhook.run(listener, shutdown.clone()));
    let http = reqwest::Client::new();

    // Liveness is unconditional; readiness needs the campaigns loaded and the store reachable.
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    hub.set_ready(true);
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let body = br#"{"callbackType":3,"orderID":"o-1","userTaskID":"t-1","finish":true,"callInfoDetail":{"callID":"c-1","callStatus":6,"callStartTs":1793613600}}"#;
    store.down.store(true, Ordering::SeqCst);
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    let r = http
        .post(format!("{base}/callbacks/call"))
        .headers(signed(body, now, "r-1"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        503,
        "the platform is told to deliver again"
    );

    // The store is back: the platform's retry is accepted and stored.
    store.down.store(false, Ordering::SeqCst);
    let r = http
        .post(format!("{base}/callbacks/call"))
        .headers(signed(body, now, "r-2"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let stored = store.recent_callbacks(10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, "call");
    assert_eq!(stored[0].request_id.as_deref(), Some("r-2"));
    let calls = store.calls_of_order("o-1").await.unwrap();
    assert_eq!(calls.len(), 1, "the callback's facts were applied");
    assert_eq!(
        hub.metrics
            .counter("campaignd_callbacks_total", &[("outcome", "unavailable")]),
        1.0
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("campaignd_callbacks_total{type=\"call\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_reports_a_store_outage_and_recovers_without_restart() {
    use daemon_support::{Backend, Env, Options};
    let files = [
        ("o.toml", "scene_id = \"SC-O\"\nrobots = 1\n\n[schedule]\ntimezone = \"UTC\"\nrules = []\nwindows = [{ days = \"mon-sun\", hours = [\"00:00-24:00\"] }]\n\n[contacts]\nfile = \"o.csv\"\nvariables = [\"amount\"]\nbatch_size = 5\n".to_string()),
        ("o.csv", daemon_support::contacts_csv(12)),
    ];
    let start = Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap();
    let mut env = Env::new(Backend::Sqlite, start, &files, Options::default()).await;
    // Swap in a switchable store over the same database, for a fresh daemon.
    let switch = Arc::new(Switchable {
        inner: env.store.clone(),
        down: AtomicBool::new(true),
    });
    env.store = switch.clone();
    env.restart();
    let out = env.step().await;
    let c = out.campaign("o");
    // The campaign file is known (from the directory) but nothing could be read or written.
    assert!(
        c.is_some_and(|c| c
            .error
            .as_deref()
            .is_some_and(|e| e.contains("unavailable"))),
        "{out:?}"
    );
    assert!(
        env.sim.submissions().is_empty(),
        "nothing is sent while the outbox cannot be written"
    );

    switch.down.store(false, Ordering::SeqCst);
    env.clock.advance(chrono::Duration::seconds(20));
    let out = env.step().await;
    let c = out.campaign("o").unwrap();
    assert_eq!(c.error, None);
    assert_eq!(c.orders.sent, 12);
    let accepted = env.sim.submissions().iter().filter(|s| s.accepted).count();
    assert_eq!(accepted, 12);
}
