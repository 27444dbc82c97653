//! The executor: observe → decide → act, per campaign, isolated from each other.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use callbot_api::wire::{
    self, DelCall, ListOrderDetailRequest, ListTaskRequest, MgrTaskStatusRequest, QueryConditions,
    TaskOperate,
};
use callbot_api::{ApiError, Client};
use campaign::CampaignSpec;
use chrono::{DateTime, Duration, Utc};
use clock::SharedClock;
use serde::{Deserialize, Serialize};
use store::{
    CampaignRecord, FactSource, OrderProgress, OrderRecord, Store, StoreError, TaskRecord,
    UploadState,
};
use tokio_util::sync::CancellationToken;

use crate::desired::local_label;
use crate::hub::Hub;
use crate::ledger::Ledger;
use crate::plan::{Action, Observed, Orders, Plan, TaskState, Why, decide};
use crate::requests::{CallbackUrls, call_info_list, func_flag, product_id, task_create_setting};
use crate::scan::{DirChanges, Scanned, Scanner};
use crate::settings::TaskSettings;

/// At most this many decide→act rounds per campaign per reconcile.
const MAX_ROUNDS: usize = 8;
/// listOrderDetail carries at most 500 order IDs (vendor limit).
const POLL_CHUNK: u32 = wire::LIST_ORDER_DETAIL_MAX as u32;
/// Work budget of one poll action: no further chunk is requested once this much time went by (measured, not a
/// decision input: it only bounds how long one campaign keeps the reconciler).
const POLL_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);
/// Work budget of one upload action (same reason as [`POLL_BUDGET`]): a campaign of millions of contacts uploads
/// over several reconciles, and every other due campaign (a pause at a window's close among them) is reconciled in
/// between.
const UPLOAD_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);
/// Order IDs read from the store per refill of a poll action's queue, in chunks.
const POLL_PREFETCH_CHUNKS: u32 = 8;
/// After a wake-up, wait this long before reconciling, so a burst of wake-ups makes one reconcile.
const MIN_RECONCILE_GAP: std::time::Duration = std::time::Duration::from_millis(100);
/// A campaign with nothing due is still reconciled at least this often: a safety net for anything that is not
/// modelled as a wake-up (the decision is cheap; a campaign's calendar events, polls, retries and file changes all
/// wake it on time by themselves).
const REVISIT_SECS: i64 = 300;
/// A campaign whose reconcile failed, or left actions undone, is tried again after this long.
const RETRY_SECS: i64 = 15;
/// Campaign records written to the store per call.
const RECORD_CHUNK: usize = 256;
/// Orders written to the store per bulk insert while streaming a CSV.
const PLAN_CHUNK: usize = 5_000;
/// Chunks the CSV reader may run ahead of the store writes.
const PLAN_CHUNKS_AHEAD: usize = 2;

/// The daemon's own settings (the binary maps its config onto these).
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where the campaign files are.
    pub campaigns_dir: PathBuf,
    /// How long updateTask takes to apply (vendor: ~5 min).
    pub apply_delay: Duration,
    /// How often unfinished orders are polled.
    pub poll_interval: Duration,
    /// The URL the platform calls back (`<public_url>/callbacks/...`); `None`: polling only.
    pub public_url: Option<String>,
    /// This replica's name in the store's leases.
    pub owner: String,
    /// Lease lifetime; renewed at every reconcile.
    pub lease_ttl: std::time::Duration,
    /// How long an order (or a creation) must have been in doubt before the platform is asked about it; covers a
    /// request still being processed after the client gave up on it.
    pub resolve_grace: Duration,
    /// Periodic rescan / reconcile interval at most (the loop also wakes on file changes and callbacks).
    pub max_sleep: std::time::Duration,
}

impl DaemonConfig {
    /// Defaults for everything but the directory.
    pub fn new(campaigns_dir: impl Into<PathBuf>) -> DaemonConfig {
        DaemonConfig {
            campaigns_dir: campaigns_dir.into(),
            apply_delay: Duration::minutes(5),
            poll_interval: Duration::seconds(30),
            public_url: None,
            owner: format!("campaignd-{}", std::process::id()),
            lease_ttl: std::time::Duration::from_secs(120),
            resolve_grace: Duration::seconds(0),
            max_sleep: std::time::Duration::from_secs(10),
        }
    }
}

/// What the daemon knows about one campaign between reconciles.
#[derive(Debug)]
struct Campaign {
    /// The last good version of the file.
    spec: CampaignSpec,
    file_present: bool,
    /// Why the current version of the file is not in use (the last good one runs).
    file_error: Option<String>,
    /// (size, mtime, spec hash) of the CSV when it was last planned into the store.
    csv_planned: Option<(u64, Option<std::time::SystemTime>, String)>,
    valid_contacts: u64,
    contact_issues: u64,
    last_poll_at: Option<DateTime<Utc>>,
    final_poll_done: bool,
    /// When the campaign must be reconciled next; `None`: at the next reconcile (new, changed, or never done).
    due: Option<DateTime<Utc>>,
    /// The outcome of its last reconcile, reported again while it is not due.
    last: Option<CampaignOutcome>,
    /// When this replica last took or renewed the campaign's lease.
    lease_at: Option<DateTime<Utc>>,
    /// A digest of the record last written to the store, so an unchanged campaign is not written again.
    recorded: Option<u64>,
}

/// The outcome of one reconcile of one campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignOutcome {
    pub id: String,
    /// The last decision taken (after the actions ran, what remains to be done).
    pub plan: Plan,
    /// The reason in words.
    pub why: String,
    /// Actions executed, in order.
    pub done: Vec<String>,
    /// The error that stopped this campaign's reconcile, if any.
    pub error: Option<String>,
    /// A bad campaign file (its last good version keeps running).
    pub file_error: Option<String>,
    pub task: TaskState,
    pub user_task_id: String,
    pub orders: Orders,
    /// Another replica owns the campaign.
    pub not_owner: bool,
}

/// The outcome of one reconcile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub campaigns: Vec<CampaignOutcome>,
    /// Files that failed and belong to no campaign known so far.
    pub file_errors: Vec<(PathBuf, String)>,
    pub next_wake: Option<DateTime<Utc>>,
    /// The campaigns reconciled this time (the others were not due; their last outcome is repeated).
    #[serde(default)]
    pub reconciled: Vec<String>,
}

impl Outcome {
    pub fn campaign(&self, id: &str) -> Option<&CampaignOutcome> {
        self.campaigns.iter().find(|c| c.id == id)
    }
}

/// The settings last sent, as kept in the task record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SentSettings {
    pub(crate) settings: TaskSettings,
    /// `create` (in effect at once) or `update` (in effect after the apply delay).
    pub(crate) via: String,
}

/// The reconciler. `run` is the loop; `reconcile_once` is the step tests drive.
#[derive(Debug)]
pub struct Daemon {
    store: Arc<dyn Store>,
    client: Client,
    clock: SharedClock,
    hub: Arc<Hub>,
    ledger: Arc<Ledger>,
    config: DaemonConfig,
    urls: CallbackUrls,
    campaigns: BTreeMap<String, Campaign>,
    /// Parses a campaign file again only when it changed.
    scanner: Scanner,
    /// File path → error text already counted (so a bad file is counted once per version).
    counted_file_errors: HashMap<PathBuf, String>,
    loaded_from_store: bool,
    /// Cancelled at shutdown: long loops (uploads, polls, campaigns) stop between two requests.
    stop: CancellationToken,
}

type StepResult<T> = Result<T, StepError>;

/// A campaign's task records and its current task's progress, read for its first decision.
type Prefetched = (Vec<TaskRecord>, OrderProgress);

/// Why a campaign's reconcile stopped early. Never stops other campaigns.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    Other(String),
}

impl Daemon {
    /// Builds the daemon. The client gets an observer that writes every attempt to the store's ledger.
    pub fn new(
        store: Arc<dyn Store>,
        client: Client,
        clock: SharedClock,
        hub: Arc<Hub>,
        config: DaemonConfig,
    ) -> Daemon {
        let ledger = Ledger::new(hub.metrics.clone());
        let client = client.with_observer(ledger.clone());
        let urls = CallbackUrls::from_public_url(config.public_url.as_deref());
        Daemon {
            store,
            client,
            clock,
            hub,
            ledger,
            config,
            urls,
            campaigns: BTreeMap::new(),
            scanner: Scanner::default(),
            counted_file_errors: HashMap::new(),
            loaded_from_store: false,
            stop: CancellationToken::new(),
        }
    }

    /// The loop: reconcile, then sleep until the earliest of the next wake, a file change or callback, the periodic
    /// rescan, or shutdown. A reconcile that has started is finished before shutdown returns (each step is short
    /// and leaves nothing half-written: the outbox makes every send resumable).
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.stop = shutdown.clone();
        let mut due: Option<DateTime<Utc>> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let now = self.clock.now();
            if let Some(due) = due {
                self.hub
                    .metrics
                    .reconcile_lag((now - due).num_milliseconds() as f64 / 1000.0);
            }
            let outcome = self.reconcile_once(now).await;
            // Ready once the campaigns are loaded (the files scanned and the store's last good specs read).
            self.hub.set_ready(self.loaded_from_store);
            let now = self.clock.now();
            let sleep = outcome
                .next_wake
                .map(|at| (at - now).to_std().unwrap_or_default())
                .unwrap_or(self.config.max_sleep)
                .min(self.config.max_sleep);
            due = Some(now + Duration::from_std(sleep).unwrap_or_default());
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.hub.woken() => {
                    due = None;
                    // Coalesce bursts of wake-ups (a directory being written, many callbacks).
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(MIN_RECONCILE_GAP) => {}
                    }
                }
                () = tokio::time::sleep(sleep) => {}
            }
        }
        let _ = self.ledger.flush(self.store.as_ref()).await;
        for id in self.campaigns.keys() {
            let _ = self.store.release_lease(id, &self.config.owner).await;
        }
        tracing::info!("reconciler stopped");
        Ok(())
    }

    /// One reconcile at `now`: rescan the files (parsing only the changed ones), renew the leases, then observe,
    /// decide and act for every campaign that is due: new or changed files, a calendar event, a poll or a retry
    /// that has come, a task callback, a changed contacts file. The others keep their last outcome until their own
    /// time comes, so a change to one campaign among thousands is acted on without reconciling the rest.
    pub async fn reconcile_once(&mut self, now: DateTime<Utc>) -> Outcome {
        let mut outcome = Outcome::default();
        if !self.loaded_from_store {
            match self.load_from_store().await {
                Ok(()) => self.loaded_from_store = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the campaigns kept in the store; retrying later")
                }
            }
        }
        let scan = self.scanner.scan(&self.config.campaigns_dir);
        self.apply_scan(scan, &mut outcome);

        let due = self.due_campaigns(now);
        let leases = self.renew_leases(&due, now).await;
        let owned_due: Vec<String> = match &leases {
            Ok(granted) => self
                .campaigns
                .keys()
                .filter(|id| due.contains(*id) && granted.contains(*id))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut prefetched = self.prefetch(&owned_due).await;
        let ids: Vec<String> = self.campaigns.keys().cloned().collect();
        let mut records = Vec::new();
        for id in ids {
            if !due.contains(&id) {
                if let Some(last) = &self.campaigns[&id].last {
                    outcome.campaigns.push(last.clone());
                }
                continue;
            }
            if self.stop.is_cancelled() {
                break;
            }
            let ut = user_task_id(&self.campaigns[&id].spec);
            let result = match &leases {
                Err(e) => Err(StepError::Other(format!(
                    "cannot take the campaign's lease: {e}"
                ))),
                Ok(granted) if !granted.contains(&id) => {
                    Ok((self.unreconciled_outcome(&id, None), None))
                }
                Ok(_) => {
                    crate::ledger::CONTEXT
                        .scope(
                            (id.clone(), ut),
                            self.reconcile_campaign(&id, now, prefetched.remove(&id)),
                        )
                        .await
                }
            };
            let co = match result {
                Ok((co, record)) => {
                    records.extend(record);
                    co
                }
                Err(e) => {
                    self.hub.metrics.reconcile_error(&id);
                    tracing::warn!(campaign.id = %id, error = %e, "reconcile failed");
                    self.unreconciled_outcome(&id, Some(e.to_string()))
                }
            };
            let c = self.campaigns.get_mut(&id).expect("campaign exists");
            c.due = Some(next_due(&co, now, self.config.lease_ttl));
            c.last = Some(co.clone());
            outcome.campaigns.push(co);
            outcome.reconciled.push(id);
        }
        self.record_campaigns(records).await;
        if let Err(e) = self.ledger.flush(self.store.as_ref()).await {
            tracing::warn!(error = %e, pending = self.ledger.pending(), "cannot write the action ledger yet");
        }
        self.publish_metrics(&outcome);
        let renew_every = renew_interval(self.config.lease_ttl);
        outcome.next_wake = self
            .campaigns
            .values()
            .flat_map(|c| [c.due, c.lease_at.map(|at| at + renew_every)])
            .flatten()
            .min();
        outcome
    }

    /// The campaigns to reconcile now.
    fn due_campaigns(&self, now: DateTime<Utc>) -> HashSet<String> {
        self.campaigns
            .iter()
            .filter(|(_, c)| {
                c.due.is_none_or(|at| at <= now)
                    || self.hub.has_task_status(&user_task_id(&c.spec))
                    || c.csv_planned
                        .as_ref()
                        .is_some_and(|planned| *planned != crate::contacts::csv_stamp(&c.spec))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Takes or renews, in one store call, the leases of the due campaigns and of every other campaign whose lease
    /// is a third of its lifetime old. Returns the due campaigns this replica owns. A campaign not due that another
    /// replica took meanwhile is made due, so its outcome says so.
    async fn renew_leases(
        &mut self,
        due: &HashSet<String>,
        now: DateTime<Utc>,
    ) -> Result<HashSet<String>, StoreError> {
        let renew_every = renew_interval(self.config.lease_ttl);
        let ids: Vec<String> = self
            .campaigns
            .iter()
            .filter(|(id, c)| {
                due.contains(*id) || c.lease_at.is_some_and(|at| now >= at + renew_every)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let granted = self
            .store
            .try_acquire_leases(&ids, &self.config.owner, now, self.config.lease_ttl)
            .await?;
        let mut owned = HashSet::new();
        for (id, granted) in ids.into_iter().zip(granted) {
            let c = self.campaigns.get_mut(&id).expect("campaign exists");
            if granted {
                c.lease_at = Some(now);
                owned.insert(id);
            } else {
                if c.lease_at.is_some() {
                    tracing::warn!(campaign.id = %id, "another replica took the campaign's lease");
                    c.due = None;
                }
                c.lease_at = None;
            }
        }
        Ok(owned)
    }

    /// Writes the campaign records that changed since they were last written, in one store call.
    async fn record_campaigns(&mut self, records: Vec<CampaignRecord>) {
        let changed: Vec<(CampaignRecord, u64)> = records
            .into_iter()
            .map(|r| {
                let digest = record_digest(&r);
                (r, digest)
            })
            .filter(|(r, digest)| self.campaigns[&r.id].recorded != Some(*digest))
            .collect();
        // In chunks: each record carries its spec as a JSON tree (several KB), built just before it is written.
        for chunk in changed.chunks(RECORD_CHUNK) {
            let records: Vec<CampaignRecord> = chunk
                .iter()
                .map(|(r, _)| CampaignRecord {
                    spec: serde_json::to_value(&self.campaigns[&r.id].spec).ok(),
                    ..r.clone()
                })
                .collect();
            if let Err(e) = self.store.upsert_campaigns(&records).await {
                tracing::warn!(campaigns = changed.len(), error = %e, "cannot record the campaigns' state");
                return;
            }
            for (r, digest) in chunk {
                if let Some(c) = self.campaigns.get_mut(&r.id) {
                    c.recorded = Some(*digest);
                }
            }
        }
    }

    /// The outcome of a campaign that was not reconciled: another replica owns it (`error` None), or its reconcile
    /// failed before deciding.
    fn unreconciled_outcome(&self, id: &str, error: Option<String>) -> CampaignOutcome {
        let c = &self.campaigns[id];
        CampaignOutcome {
            id: id.to_owned(),
            plan: Plan {
                actions: vec![],
                next_wake: None,
                why: Why::CheckingInDoubt,
            },
            why: error.as_ref().map_or_else(
                || "owned by another replica".into(),
                |e| format!("error: {e}"),
            ),
            done: vec![],
            not_owner: error.is_none(),
            error,
            file_error: c.file_error.clone(),
            task: TaskState::NotCreated,
            user_task_id: user_task_id(&c.spec),
            orders: Orders::default(),
        }
    }

    fn publish_metrics(&self, outcome: &Outcome) {
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        let reconciled: HashSet<&str> = outcome.reconciled.iter().map(String::as_str).collect();
        for c in &outcome.campaigns {
            let state = campaign_state(c);
            *by_state.entry(state.to_owned()).or_default() += 1;
            if !reconciled.contains(c.id.as_str()) {
                // Unchanged since its gauges were last set.
                continue;
            }
            self.hub.metrics.orders(&c.id, "planned", c.orders.planned);
            self.hub.metrics.orders(&c.id, "sending", c.orders.sending);
            self.hub.metrics.orders(&c.id, "sent", c.orders.sent);
            self.hub
                .metrics
                .orders(&c.id, "rejected", c.orders.rejected);
            self.hub
                .metrics
                .orders(&c.id, "unfinished", c.orders.unfinished);
        }
        self.hub.metrics.campaigns(&by_state);
    }

    async fn load_from_store(&mut self) -> Result<(), StoreError> {
        for rec in self.store.campaigns().await? {
            let Some(value) = rec.spec else { continue };
            let spec: CampaignSpec = match serde_json::from_value(value) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(campaign.id = %rec.id, error = %e, "cannot read the stored spec; ignoring it");
                    continue;
                }
            };
            if rec.state == "removed" || rec.state == "done" {
                // Finished with; a file with this id would start it again.
                continue;
            }
            self.campaigns
                .entry(rec.id.clone())
                .or_insert_with(|| Campaign::new(spec, false));
        }
        Ok(())
    }

    /// Merges a directory scan: new and changed files replace the spec, bad files keep the last good one, removed
    /// files are marked (the next decision completes their task).
    fn apply_scan(&mut self, scan: DirChanges, outcome: &mut Outcome) {
        if let Some(e) = &scan.dir_error {
            // The directory itself is unreadable: change nothing (a missing mount must not complete campaigns).
            tracing::warn!(dir = %self.config.campaigns_dir.display(), error = %e, "cannot read the campaigns directory");
            return;
        }
        let mut seen_ids: HashSet<String> = HashSet::new();
        let mut by_source: HashMap<PathBuf, String> = self
            .campaigns
            .iter()
            .map(|(id, c)| (c.spec.source.clone(), id.clone()))
            .collect();
        for (path, scanned) in scan.files {
            match scanned {
                Scanned::Unchanged { id } => {
                    if self.campaigns.contains_key(&id) && seen_ids.insert(id.clone()) {
                        let c = self.campaigns.get_mut(&id).expect("campaign exists");
                        if !c.file_present {
                            c.file_present = true;
                            c.due = None;
                        }
                        continue;
                    }
                    // Unknown to the reconciler, or now a duplicate of a file sorted before it: read it again (next
                    // scan) so it gets the treatment of a new file.
                    self.scanner.forget(&path);
                    self.hub.wake();
                }
                Scanned::Loaded(spec) => {
                    let spec = *spec;
                    self.counted_file_errors.remove(&path);
                    let id = spec.id.clone();
                    if !seen_ids.insert(id.clone()) {
                        let msg = format!(
                            "campaign id `{id}` is already used by another file in {}; rename one of them",
                            self.config.campaigns_dir.display()
                        );
                        self.file_error(&path, &msg, outcome);
                        continue;
                    }
                    match self.campaigns.get_mut(&id) {
                        Some(c) => {
                            if c.spec.content_hash != spec.content_hash {
                                tracing::info!(campaign.id = %id, file = %path.display(), "campaign file changed");
                                c.due = None;
                            }
                            if !c.file_present || c.file_error.is_some() {
                                c.due = None;
                            }
                            c.spec = spec;
                            c.file_present = true;
                            c.file_error = None;
                        }
                        None => {
                            tracing::info!(campaign.id = %id, file = %path.display(), "campaign file loaded");
                            self.campaigns.insert(id.clone(), Campaign::new(spec, true));
                        }
                    }
                    by_source.insert(path, id);
                }
                Scanned::Failed(msg) => {
                    // Keep the last good version of whatever campaign this file was.
                    if let Some(id) = by_source.get(&path).cloned()
                        && let Some(c) = self.campaigns.get_mut(&id)
                    {
                        seen_ids.insert(id.clone());
                        if !c.file_present || c.file_error.as_ref() != Some(&msg) {
                            c.due = None;
                        }
                        c.file_present = true;
                        c.file_error = Some(msg.clone());
                    }
                    self.file_error(&path, &msg, outcome);
                }
            }
        }
        for (id, c) in self.campaigns.iter_mut() {
            if !seen_ids.contains(id) && c.file_present {
                tracing::info!(campaign.id = %id, "campaign file removed: its task will be completed");
                c.file_present = false;
                c.due = None;
            }
        }
    }

    fn file_error(&mut self, path: &Path, msg: &str, outcome: &mut Outcome) {
        if self.counted_file_errors.get(path).map(String::as_str) != Some(msg) {
            self.hub.metrics.file_error();
            tracing::warn!(file = %path.display(), error = %msg, "campaign file rejected; its last good version (if any) keeps running");
            self.counted_file_errors
                .insert(path.to_owned(), msg.to_owned());
        }
        outcome.file_errors.push((path.to_owned(), msg.to_owned()));
    }

    /// Observes, decides and acts for one campaign whose lease this replica holds. Returns the outcome and the
    /// campaign's record for the store.
    ///
    /// `prefetched` is what the store held for the campaign a moment ago (read for every due campaign at once): it
    /// stands in for the first decision's reads unless this reconcile wrote something first (a task status, an
    /// earlier generation completed, contacts planned); every later decision reads the store again.
    async fn reconcile_campaign(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        prefetched: Option<Prefetched>,
    ) -> StepResult<(CampaignOutcome, Option<CampaignRecord>)> {
        let ut = user_task_id(&self.campaigns[id].spec);
        let mut fresh = prefetched;
        if let Some(status) = self.hub.take_task_status(&ut) {
            self.set_status(&ut, id, status, now).await?;
            fresh = None;
        }
        if self
            .retire_old_generations(id, &ut, now, fresh.as_ref().map(|(t, _)| t.as_slice()))
            .await?
        {
            fresh = None;
        }
        // A contacts problem (unreadable CSV) must never keep the calendar from being enforced: report it and go on
        // deciding with the orders already planned. A store outage stops the campaign's step (nothing can be
        // recorded), as it would at any other point.
        let mut error = None;
        match self.plan_contacts(id, now).await {
            Ok(0) => {}
            Ok(_) => fresh = None,
            Err(StepError::Store(e)) => return Err(StepError::Store(e)),
            Err(e) => {
                tracing::warn!(campaign.id = %id, error = %e, "cannot read the contacts; the campaign goes on with the orders already planned");
                self.hub.metrics.reconcile_error(id);
                error = Some(format!("contacts: {e}"));
                fresh = None;
            }
        }

        let mut done = Vec::new();
        let mut last_actions: Option<Vec<Action>> = None;
        let mut extra_wake: Option<DateTime<Utc>> = None;
        let (mut plan, mut obs) = match fresh {
            Some((tasks, progress)) => self.decide_from(id, now, &tasks, progress),
            None => self.decide_now(id, now).await?,
        };
        for _ in 0..MAX_ROUNDS {
            if plan.actions.is_empty() || last_actions.as_ref() == Some(&plan.actions) {
                break;
            }
            last_actions = Some(plan.actions.clone());
            let mut stop = false;
            for action in plan.actions.clone() {
                // After a failure or a wait, only the actions that narrow what the platform may do still run: a
                // pause or a completion never waits for an upload question to be settled.
                if stop && !matches!(action, Action::Pause | Action::Complete { .. }) {
                    continue;
                }
                match self.execute(id, &ut, &action, now).await {
                    Ok(ActResult::Done) => done.push(action.name().to_owned()),
                    Ok(ActResult::WaitUntil(at)) => {
                        extra_wake = Some(extra_wake.map_or(at, |w| w.min(at)));
                        stop = true;
                    }
                    Err(e) => {
                        tracing::warn!(campaign.id = %id, action = action.name(), error = %e, "action failed");
                        self.hub.metrics.reconcile_error(id);
                        error = Some(format!("{}: {e}", action.name()));
                        stop = true;
                    }
                }
            }
            (plan, obs) = self.decide_now(id, now).await?;
            if stop {
                break;
            }
        }
        if let Some(at) = extra_wake {
            plan.next_wake = Some(plan.next_wake.map_or(at, |w| w.min(at)));
        }
        if error.is_some() {
            // Try again soon, not at the next calendar event.
            let retry = now + Duration::seconds(15);
            plan.next_wake = Some(plan.next_wake.map_or(retry, |w| w.min(retry)));
        }

        let c = &self.campaigns[id];
        let schedule = c.spec.schedule.clone();
        let why = plan.why.describe(&|at| local_label(&schedule, at));
        let state = if !c.file_present {
            "removed"
        } else if obs.task.is_terminal() {
            "done"
        } else if c.file_error.is_some() {
            "invalid"
        } else {
            "active"
        };
        let record = CampaignRecord {
            id: id.to_owned(),
            generation: i64::from(c.spec.generation),
            source_file: c.spec.source.display().to_string(),
            content_hash: c.spec.content_hash.clone(),
            // Filled in only when the record is written (see `record_campaigns`).
            spec: None,
            state: state.to_owned(),
            last_error: c.file_error.clone().or_else(|| error.clone()),
            updated_at: now,
        };
        if done.iter().any(|a| a != "poll") {
            tracing::info!(campaign.id = %id, task.user_id = %ut, actions = ?done, why = %why, "reconciled");
        }
        let outcome = CampaignOutcome {
            id: id.to_owned(),
            plan,
            why,
            done,
            error,
            file_error: c.file_error.clone(),
            task: obs.task,
            user_task_id: ut,
            orders: obs.orders,
            not_owner: false,
        };
        Ok((outcome, Some(record)))
    }

    /// Completes the live tasks of earlier generations (delCall 0: their data is kept). A bumped generation runs
    /// the campaign again for the same contacts; the old task must not keep dialling them at the same time.
    /// Returns whether any was completed. `tasks`: the campaign's task records if just read.
    async fn retire_old_generations(
        &mut self,
        id: &str,
        ut: &str,
        now: DateTime<Utc>,
        tasks: Option<&[TaskRecord]>,
    ) -> StepResult<bool> {
        if !self.campaigns[id].file_present {
            return Ok(false);
        }
        let tasks = match tasks {
            Some(t) => t.to_vec(),
            None => self.store.tasks(id).await?,
        };
        let old: Vec<TaskRecord> = tasks
            .into_iter()
            .filter(|t| t.user_task_id != ut && task_view(Some(t)).0.is_live())
            .collect();
        let retired = !old.is_empty();
        for t in old {
            tracing::info!(campaign.id = %id, task.user_id = %t.user_task_id, generation = t.generation, "completing the task of an earlier generation");
            self.operate(
                id,
                &t.user_task_id,
                TaskOperate::Complete,
                Some(DelCall::Keep),
                now,
            )
            .await?;
        }
        Ok(retired)
    }

    /// Streams the campaign's CSV into the store as planned orders, when the CSV (or the file) changed since the
    /// last time. Idempotent: order IDs are deterministic and inserts skip IDs already present, so rows uploaded
    /// before are never planned (or sent) again, and rows appended later are picked up. Returns how many orders were
    /// newly planned.
    async fn plan_contacts(&mut self, id: &str, now: DateTime<Utc>) -> StepResult<u64> {
        let c = &self.campaigns[id];
        if !c.file_present {
            return Ok(0);
        }
        if c.spec.schedule.end_utc().is_some_and(|end| now >= end) {
            return Ok(0);
        }
        let stamp = crate::contacts::csv_stamp(&c.spec);
        if c.csv_planned.as_ref() == Some(&stamp) {
            return Ok(0);
        }
        let spec = c.spec.clone();
        let ut = user_task_id(&spec);
        let reader = crate::contacts::read(&spec, &ut).map_err(StepError::Other)?;
        let (mut chunks, reading) =
            crate::contacts::read_in_chunks(reader, PLAN_CHUNK, PLAN_CHUNKS_AHEAD);
        let mut inserted = 0u64;
        let mut failed = None;
        while let Some(chunk) = chunks.recv().await {
            match self.store.insert_planned_orders(&chunk).await {
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
            .map_err(|e| StepError::Other(format!("the contacts reader failed: {e}")))?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        if inserted > 0 {
            tracing::info!(campaign.id = %id, orders.new = inserted, contacts.valid = stats.valid, contacts.issues = stats.issues, "planned contacts");
        }
        let c = self.campaigns.get_mut(id).expect("campaign exists");
        c.csv_planned = Some(stamp);
        c.valid_contacts = stats.valid;
        c.contact_issues = stats.issues;
        Ok(inserted)
    }

    async fn decide_now(&self, id: &str, now: DateTime<Utc>) -> StepResult<(Plan, Observed)> {
        let (tasks, progress) =
            crate::observe::decision_inputs(self.store.as_ref(), &self.campaigns[id].spec).await?;
        Ok(self.decide_from(id, now, &tasks, progress))
    }

    /// The decision from the campaign's task records and its task's progress, as just read.
    fn decide_from(
        &self,
        id: &str,
        now: DateTime<Utc>,
        tasks: &[TaskRecord],
        progress: OrderProgress,
    ) -> (Plan, Observed) {
        let c = &self.campaigns[id];
        let next_poll_at = Some(
            c.last_poll_at
                .map_or(now, |at| at + self.config.poll_interval),
        );
        let (d, _) = crate::observe::decision_from(
            &c.spec,
            tasks,
            progress,
            c.file_present,
            c.valid_contacts,
            now,
            self.config.apply_delay,
            next_poll_at,
        );
        let (mut plan, mut observed) = (d.plan, d.observed);
        if observed.task.is_terminal() && c.final_poll_done {
            // One last poll after completion; then the task's unfinished orders are left alone.
            observed.next_poll_at = None;
            plan = decide(&d.desired, &observed);
        }
        (plan, observed)
    }

    /// The task records and task progress of the given campaigns, read in two store calls. A failure only costs
    /// the per-campaign reads it was meant to save.
    async fn prefetch(&self, ids: &[String]) -> HashMap<String, Prefetched> {
        if ids.is_empty() {
            return HashMap::new();
        }
        let uts: Vec<String> = ids
            .iter()
            .map(|id| user_task_id(&self.campaigns[id].spec))
            .collect();
        let read = tokio::try_join!(self.store.tasks_of(ids), self.store.order_progress_of(&uts));
        let (tasks, progress) = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the due campaigns at once; reading them one by one");
                return HashMap::new();
            }
        };
        let mut by_campaign: HashMap<String, Prefetched> = ids
            .iter()
            .cloned()
            .zip(progress)
            .map(|(id, p)| (id, (Vec::new(), p)))
            .collect();
        for t in tasks {
            if let Some(entry) = by_campaign.get_mut(&t.campaign_id) {
                entry.0.push(t);
            }
        }
        by_campaign
    }

    async fn task_record(&self, id: &str, ut: &str) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self
            .store
            .tasks(id)
            .await?
            .into_iter()
            .find(|t| t.user_task_id == ut))
    }

    async fn execute(
        &mut self,
        id: &str,
        ut: &str,
        action: &Action,
        now: DateTime<Utc>,
    ) -> StepResult<ActResult> {
        match action {
            Action::ResolveSending => self.resolve(id, ut, now).await,
            Action::CreateTask { settings } => self
                .create(id, ut, settings, now)
                .await
                .map(|()| ActResult::Done),
            Action::UploadBatches => self.upload(id, ut, now).await.map(|()| ActResult::Done),
            Action::Pause => self
                .operate(id, ut, TaskOperate::Pause, None, now)
                .await
                .map(|()| ActResult::Done),
            Action::Start => self
                .operate(id, ut, TaskOperate::Start, None, now)
                .await
                .map(|()| ActResult::Done),
            Action::Complete { delete_undialled } => {
                let del = if *delete_undialled {
                    DelCall::DeleteUndialed
                } else {
                    DelCall::Keep
                };
                self.operate(id, ut, TaskOperate::Complete, Some(del), now)
                    .await
                    .map(|()| ActResult::Done)
            }
            Action::UpdateSettings { settings } => self
                .update(id, ut, settings, now)
                .await
                .map(|()| ActResult::Done),
            Action::Poll => self.poll(id, ut, now).await.map(|()| ActResult::Done),
        }
    }

    fn spec(&self, id: &str) -> &CampaignSpec {
        &self.campaigns[id].spec
    }

    async fn write_task(
        &self,
        id: &str,
        ut: &str,
        f: impl FnOnce(&mut TaskRecord),
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let spec = self.spec(id);
        let mut rec = self
            .task_record(id, ut)
            .await?
            .unwrap_or_else(|| TaskRecord {
                user_task_id: ut.to_owned(),
                campaign_id: id.to_owned(),
                generation: i64::from(spec.generation),
                task_index: 0,
                task_id: None,
                settings: None,
                settings_sent_at: None,
                platform_status: None,
                desired_status: None,
                updated_at: now,
            });
        f(&mut rec);
        rec.updated_at = now;
        self.store.upsert_task(&rec).await
    }

    async fn set_status(
        &self,
        ut: &str,
        id: &str,
        status: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_task(id, ut, |t| t.platform_status = Some(status), now)
            .await
    }

    /// createAndCall with the first batch. The task record (with the settings) and the batch's `sending` marks are
    /// written BEFORE the request leaves, so a crash at any point leaves something the next run resolves.
    async fn create(
        &mut self,
        id: &str,
        ut: &str,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> StepResult<()> {
        let spec = self.spec(id).clone();
        let batch = self
            .store
            .orders_in_state(ut, UploadState::Planned, spec.contacts.batch_size.max(1))
            .await?;
        if batch.is_empty() {
            return Ok(());
        }
        let sent = SentSettings {
            settings: settings.clone(),
            via: "create".into(),
        };
        let sent_json = serde_json::to_value(&sent).map_err(|e| StepError::Other(e.to_string()))?;
        // In doubt from here on: settings recorded, no platform status yet.
        self.write_task(
            id,
            ut,
            |t| {
                t.settings = Some(sent_json.clone());
                t.settings_sent_at = Some(now);
                t.platform_status = None;
                t.task_id = None;
                t.desired_status = Some(1);
            },
            now,
        )
        .await?;
        let ids: Vec<String> = batch.iter().map(|o| o.order_id.clone()).collect();
        self.store
            .set_upload_state(&ids, UploadState::Sending, now)
            .await?;

        let req = wire::CreateAndCallRequest {
            product_id: product_id(),
            user_task_id: ut.to_owned(),
            scene_id: spec.scene_id.clone(),
            task_create_setting: task_create_setting(settings, &self.urls),
            func_flag: func_flag(settings),
            call_info_list: call_info_list(&batch, &self.urls),
        };
        match self.client.create_and_call(&req).await {
            Ok(resp) => {
                let task_id = (!resp.task_id.is_empty()).then(|| resp.task_id.clone());
                self.write_task(
                    id,
                    ut,
                    |t| {
                        t.platform_status = Some(1);
                        t.task_id = task_id;
                    },
                    now,
                )
                .await?;
                self.settle_batch(&batch, &resp.err_list, now).await?;
                tracing::info!(campaign.id = %id, task.user_id = %ut, orders = batch.len(), rejected = resp.err_list.len(), "task created with the first batch");
                Ok(())
            }
            Err(e @ ApiError::Rejected { .. }) => {
                // Refused: most likely not applied, but a refusal of a duplicate userTaskID means an earlier create
                // did apply, and vendors word that differently. Leave it in doubt: the resolve asks listTask and
                // either records the task or puts the batch back to planned.
                Err(e.into())
            }
            Err(e @ ApiError::Invalid { .. }) => {
                // Not sent: back to planned, no task.
                self.store
                    .set_upload_state(&ids, UploadState::Planned, now)
                    .await?;
                self.write_task(
                    id,
                    ut,
                    |t| {
                        t.settings = None;
                        t.settings_sent_at = None;
                        t.platform_status = None;
                        t.desired_status = None;
                    },
                    now,
                )
                .await?;
                Err(e.into())
            }
            // Ambiguous, or Retryable after the client's retries: may or may not exist. Resolve, never resend blind.
            Err(e) => Err(e.into()),
        }
    }

    /// Marks a batch's outcome: refused numbers (errList, by phone or orderID) rejected, the rest sent.
    async fn settle_batch(
        &self,
        batch: &[OrderRecord],
        errs: &[wire::ErrItem],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let (sent, rejected) = batch_outcome(batch, errs);
        self.store
            .settle_and_claim(&sent, &rejected, &first.user_task_id, 0, now)
            .await?;
        Ok(())
    }

    /// addBatchCall for every planned order, one batch at a time, write-before-send: each batch is claimed
    /// (`planned → sending`, committed) before its request leaves, in the same transaction that settles the batch
    /// before it (sent or rejected), so a batch costs one commit.
    async fn upload(&mut self, id: &str, ut: &str, now: DateTime<Utc>) -> StepResult<()> {
        let started = std::time::Instant::now();
        let batch_size = self.spec(id).contacts.batch_size.max(1);
        if self.stop.is_cancelled() {
            return Ok(());
        }
        let mut batch = self
            .store
            .settle_and_claim(&[], &[], ut, batch_size, now)
            .await?;
        while !batch.is_empty() {
            let req = wire::AddBatchCallRequest {
                product_id: product_id(),
                user_task_id: ut.to_owned(),
                call_info_list: call_info_list(&batch, &self.urls),
            };
            match self.client.add_batch_call(&req).await {
                Ok(resp) => {
                    let (sent, rejected) = batch_outcome(&batch, &resp.err_list);
                    // On shutdown, or when this action's budget is spent, settle without claiming: nothing is marked
                    // `sending` that will not be sent now. The rest is uploaded at the next reconcile.
                    let claim = if self.stop.is_cancelled() || started.elapsed() >= UPLOAD_BUDGET {
                        0
                    } else {
                        batch_size
                    };
                    let next = self
                        .store
                        .settle_and_claim(&sent, &rejected, ut, claim, now)
                        .await?;
                    tracing::info!(campaign.id = %id, task.user_id = %ut, orders = batch.len(), rejected = rejected.len(), "uploaded a batch");
                    batch = next;
                }
                Err(e @ ApiError::Rejected { .. }) | Err(e @ ApiError::Invalid { .. }) => {
                    let ids: Vec<String> = batch.iter().map(|o| o.order_id.clone()).collect();
                    self.store
                        .set_upload_state(&ids, UploadState::Planned, now)
                        .await?;
                    self.refresh_status(id, ut, now).await;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Resolves everything in doubt by asking the platform: a creation (listTask), then orders left `sending`
    /// (listOrderDetail): found → sent, not found → planned. Nothing is resent before this.
    async fn resolve(&mut self, id: &str, ut: &str, now: DateTime<Utc>) -> StepResult<ActResult> {
        let grace = self.config.resolve_grace;
        let task = self.task_record(id, ut).await?;
        let (state, _, _) = task_view(task.as_ref());
        if state == TaskState::CreateInDoubt {
            let since = task.as_ref().map_or(now, |t| t.updated_at);
            if now < since + grace {
                return Ok(ActResult::WaitUntil(since + grace));
            }
            let req = ListTaskRequest {
                product_id: product_id(),
                page: 1,
                size: 10,
                query_conditions: QueryConditions {
                    user_task_id: Some(vec![ut.to_owned()]),
                    ..Default::default()
                },
            };
            let resp = self.client.list_task(&req).await?;
            match resp.task_data.iter().find(|t| t.user_task_id == ut) {
                Some(found) => {
                    let status = found.task_status.map_or(1, |s| s.code());
                    let task_id = (!found.task_id.is_empty()).then(|| found.task_id.clone());
                    self.write_task(
                        id,
                        ut,
                        |t| {
                            t.platform_status = Some(status);
                            t.task_id = task_id;
                        },
                        now,
                    )
                    .await?;
                    tracing::info!(campaign.id = %id, task.user_id = %ut, "resolved: the task was created");
                }
                None => {
                    self.write_task(
                        id,
                        ut,
                        |t| {
                            t.settings = None;
                            t.settings_sent_at = None;
                            t.platform_status = None;
                            t.desired_status = None;
                        },
                        now,
                    )
                    .await?;
                    // Nothing of it reached the platform: every order in doubt goes back to planned.
                    loop {
                        let stuck = self
                            .store
                            .orders_in_state(ut, UploadState::Sending, POLL_CHUNK)
                            .await?;
                        if stuck.is_empty() {
                            break;
                        }
                        let ids: Vec<String> = stuck.into_iter().map(|o| o.order_id).collect();
                        self.store
                            .set_upload_state(&ids, UploadState::Planned, now)
                            .await?;
                    }
                    tracing::info!(campaign.id = %id, task.user_id = %ut, "resolved: the task was not created; will create again");
                    return Ok(ActResult::Done);
                }
            }
        }
        let mut offset_seen: HashSet<String> = HashSet::new();
        loop {
            let stuck = self
                .store
                .orders_in_state(ut, UploadState::Sending, POLL_CHUNK)
                .await?;
            let stuck: Vec<OrderRecord> = stuck
                .into_iter()
                .filter(|o| !offset_seen.contains(&o.order_id))
                .collect();
            if stuck.is_empty() {
                return Ok(ActResult::Done);
            }
            if let Some(young) = stuck
                .iter()
                .filter_map(|o| o.state_changed_at)
                .filter(|at| now < *at + grace)
                .min()
            {
                return Ok(ActResult::WaitUntil(young + grace));
            }
            let ids: Vec<String> = stuck.iter().map(|o| o.order_id.clone()).collect();
            let resp = self
                .client
                .list_order_detail(&ListOrderDetailRequest::new(ut, ids.clone()))
                .await?;
            let found: HashSet<&str> = resp
                .order_detail_list
                .iter()
                .map(|d| d.order_id.as_str())
                .collect();
            let (yes, no): (Vec<String>, Vec<String>) = ids
                .iter()
                .cloned()
                .partition(|o| found.contains(o.as_str()));
            if !yes.is_empty() {
                self.store
                    .set_upload_state(&yes, UploadState::Sent, now)
                    .await?;
                let facts: Vec<_> = resp
                    .order_detail_list
                    .iter()
                    .map(|d| crate::facts::from_order_detail(d, ut))
                    .collect();
                self.store
                    .apply_order_facts(&facts, FactSource::Poll)
                    .await?;
            }
            if !no.is_empty() {
                self.store
                    .set_upload_state(&no, UploadState::Planned, now)
                    .await?;
            }
            tracing::info!(campaign.id = %id, task.user_id = %ut, found = yes.len(), not_found = no.len(), "resolved orders in doubt");
            offset_seen.extend(ids);
        }
    }

    /// mgrTaskStatus. The store records the resulting status; a refusal refreshes the status from the platform.
    async fn operate(
        &mut self,
        id: &str,
        ut: &str,
        op: TaskOperate,
        del: Option<DelCall>,
        now: DateTime<Utc>,
    ) -> StepResult<()> {
        let mut req = MgrTaskStatusRequest::new(ut, op);
        req.del_call = del;
        let expected = match op {
            TaskOperate::Start => 2,
            TaskOperate::Pause => 5,
            _ => 3,
        };
        match self.client.mgr_task_status(&req).await {
            Ok(resp) => {
                let status = resp.task_status.map_or(expected, |s| s.code());
                self.write_task(id, ut, |t| t.platform_status = Some(status), now)
                    .await?;
                tracing::info!(campaign.id = %id, task.user_id = %ut, operate = ?op, task.status = status, "task status changed");
                Ok(())
            }
            Err(e) => {
                // Whatever happened, ask the platform where the task stands before deciding again.
                self.refresh_status(id, ut, now).await;
                Err(e.into())
            }
        }
    }

    /// updateTask. An unclear outcome forgets the settings (so they are sent again, never assumed).
    async fn update(
        &mut self,
        id: &str,
        ut: &str,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> StepResult<()> {
        let spec = self.spec(id).clone();
        let req = wire::UpdateTaskRequest {
            product_id: product_id(),
            user_task_id: ut.to_owned(),
            scene_id: spec.scene_id.clone(),
            task_create_setting: task_create_setting(settings, &self.urls),
            func_flag: func_flag(settings),
        };
        match self.client.update_task(&req).await {
            Ok(_) => {
                let sent = SentSettings {
                    settings: settings.clone(),
                    via: "update".into(),
                };
                let json =
                    serde_json::to_value(&sent).map_err(|e| StepError::Other(e.to_string()))?;
                self.write_task(
                    id,
                    ut,
                    |t| {
                        t.settings = Some(json);
                        t.settings_sent_at = Some(now);
                    },
                    now,
                )
                .await?;
                tracing::info!(campaign.id = %id, task.user_id = %ut, zone_second = settings.window.zone_second, week_days = %settings.window.dial_at_week_day(), "settings sent");
                Ok(())
            }
            Err(e) => {
                if e.is_ambiguous() {
                    // Unknown which settings the platform has now: remember none, so they are sent again.
                    self.write_task(id, ut, |t| t.settings = Some(serde_json::Value::Null), now)
                        .await?;
                }
                self.refresh_status(id, ut, now).await;
                Err(e.into())
            }
        }
    }

    /// Best effort: learn the task's status from listTask (after a refusal or an unclear toggle).
    async fn refresh_status(&self, id: &str, ut: &str, now: DateTime<Utc>) {
        let req = ListTaskRequest {
            product_id: product_id(),
            page: 1,
            size: 10,
            query_conditions: QueryConditions {
                user_task_id: Some(vec![ut.to_owned()]),
                ..Default::default()
            },
        };
        match self.client.list_task(&req).await {
            Ok(resp) => {
                if let Some(status) = resp
                    .task_data
                    .iter()
                    .find(|t| t.user_task_id == ut)
                    .and_then(|t| t.task_status)
                {
                    let _ = self.set_status(ut, id, status.code(), now).await;
                }
            }
            Err(e) => {
                tracing::debug!(campaign.id = %id, error = %e, "cannot refresh the task status")
            }
        }
    }

    /// listOrderDetail for unfinished sent orders, oldest-checked first, in chunks of at most 500, for at most
    /// [`POLL_BUDGET`] of work per action; the orders not reached wait for the next poll, `poll_interval` later (they
    /// are the least recently checked, so they come first then). Polls are the backstop of callbacks: a backlog is
    /// worked off over several intervals rather than taking the reconciler (and the platform's request rate) from
    /// uploads and other campaigns.
    /// The request for the next chunk is in flight while the previous chunk's facts are written.
    async fn poll(&mut self, id: &str, ut: &str, now: DateTime<Utc>) -> StepResult<()> {
        let started = std::time::Instant::now();
        // Every order ID taken for a request in this action: never asked twice in one action.
        let mut polled: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<String> = VecDeque::new();
        let mut current: Vec<String> = self
            .next_poll_chunk(ut, &mut queue, &mut polled)
            .await?
            .unwrap_or_default();
        let mut resp = if current.is_empty() {
            None
        } else {
            Some(
                self.client
                    .list_order_detail(&ListOrderDetailRequest::new(ut, current.clone()))
                    .await?,
            )
        };
        while let Some(r) = resp.take() {
            let facts: Vec<_> = r
                .order_detail_list
                .iter()
                .map(|d| crate::facts::from_order_detail(d, ut))
                .collect();
            let gaps = facts.iter().filter(|f| f.finished).count() as u64;
            let next = if self.stop.is_cancelled() || started.elapsed() >= POLL_BUDGET {
                None
            } else {
                self.next_poll_chunk(ut, &mut queue, &mut polled).await?
            };
            let store = &self.store;
            let write = async {
                store.apply_order_facts(&facts, FactSource::Poll).await?;
                store.mark_polled(&current, now).await
            };
            let client = &self.client;
            let fetch = async {
                match &next {
                    Some(ids) => Some(
                        client
                            .list_order_detail(&ListOrderDetailRequest::new(ut, ids.clone()))
                            .await,
                    ),
                    None => None,
                }
            };
            let (written, fetched) = tokio::join!(write, fetch);
            written?;
            self.hub.metrics.callback_gaps(gaps);
            if let (Some(ids), Some(fetched)) = (next, fetched) {
                current = ids;
                resp = Some(fetched?);
            }
        }
        let terminal = {
            let task = self.task_record(id, ut).await?;
            task_view(task.as_ref()).0.is_terminal()
        };
        let c = self.campaigns.get_mut(id).expect("campaign exists");
        c.last_poll_at = Some(now);
        if terminal {
            c.final_poll_done = true;
        }
        Ok(())
    }

    /// The next chunk (at most 500) of the task's unfinished orders not yet taken in this poll action, least
    /// recently polled first; refills `queue` from the store a few chunks at a time. `None` when none is left.
    async fn next_poll_chunk(
        &self,
        ut: &str,
        queue: &mut VecDeque<String>,
        polled: &mut HashSet<String>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        if queue.is_empty() {
            let ids = self
                .store
                .orders_to_poll(ut, POLL_CHUNK * POLL_PREFETCH_CHUNKS)
                .await?;
            queue.extend(ids.into_iter().filter(|o| !polled.contains(o)));
        }
        let n = queue.len().min(POLL_CHUNK as usize);
        if n == 0 {
            return Ok(None);
        }
        let ids: Vec<String> = queue.drain(..n).collect();
        polled.extend(ids.iter().cloned());
        Ok(Some(ids))
    }
}

enum ActResult {
    Done,
    /// Nothing to do before this instant (an order or creation in doubt is too young to ask about).
    WaitUntil(DateTime<Utc>),
}

impl Campaign {
    fn new(spec: CampaignSpec, file_present: bool) -> Campaign {
        Campaign {
            spec,
            file_present,
            file_error: None,
            csv_planned: None,
            valid_contacts: 0,
            contact_issues: 0,
            last_poll_at: None,
            final_poll_done: false,
            due: None,
            last: None,
            lease_at: None,
            recorded: None,
        }
    }
}

/// When a campaign that was just reconciled is due again: its plan's next wake, sooner after an error, a refused
/// lease or actions left undone, and never later than [`REVISIT_SECS`].
fn next_due(
    co: &CampaignOutcome,
    now: DateTime<Utc>,
    lease_ttl: std::time::Duration,
) -> DateTime<Utc> {
    let mut at = now + Duration::seconds(REVISIT_SECS);
    if let Some(wake) = co.plan.next_wake {
        at = at.min(wake);
    }
    // Uploads stop at a work budget, and a poll is left due when `poll_interval` is zero; if that is all that is left
    // and it ran this time, go on at the next reconcile (each run moves orders forward, so this cannot spin without
    // progress).
    let only_budgeted_left = !co.plan.actions.is_empty()
        && co.plan.actions.iter().all(|a| {
            matches!(a, Action::Poll | Action::UploadBatches)
                && co.done.iter().any(|d| d == a.name())
        });
    if co.error.is_none() && only_budgeted_left {
        at = now;
    } else if co.error.is_some() || !co.plan.actions.is_empty() {
        // Anything else left undone: not in a tight loop (an action that succeeds without changing what the store
        // says would otherwise be sent again and again).
        at = at.min(now + Duration::seconds(RETRY_SECS));
    }
    if co.not_owner {
        at = at.min(now + renew_interval(lease_ttl));
    }
    at
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

/// Leases are renewed when a third of their lifetime has passed, so two renewals can fail before one expires.
fn renew_interval(lease_ttl: std::time::Duration) -> Duration {
    Duration::from_std(lease_ttl / 3).unwrap_or(Duration::seconds(40))
}

/// A batch's outcome from the platform's errList (matched by orderID, else by phone): the order IDs accepted, and
/// the refused ones with the reason.
fn batch_outcome(
    batch: &[OrderRecord],
    errs: &[wire::ErrItem],
) -> (Vec<String>, Vec<(String, String)>) {
    let by_phone: HashMap<&str, &str> = batch
        .iter()
        .map(|o| (o.phone.as_str(), o.order_id.as_str()))
        .collect();
    let in_batch: HashSet<&str> = batch.iter().map(|o| o.order_id.as_str()).collect();
    let mut rejected: Vec<(String, String)> = Vec::new();
    for e in errs {
        let oid = e
            .order_id
            .as_deref()
            .filter(|o| in_batch.contains(o))
            .or_else(|| e.phone.as_deref().and_then(|p| by_phone.get(p).copied()));
        if let Some(oid) = oid {
            rejected.push((oid.to_owned(), e.err_msg.clone()));
        }
    }
    let rejected_ids: HashSet<&str> = rejected.iter().map(|(o, _)| o.as_str()).collect();
    let sent: Vec<String> = batch
        .iter()
        .map(|o| o.order_id.clone())
        .filter(|o| !rejected_ids.contains(o.as_str()))
        .collect();
    (sent, rejected)
}

/// The campaign's task for its generation (one task per generation).
pub fn user_task_id(spec: &CampaignSpec) -> String {
    campaign::user_task_id(&spec.id, spec.generation, 0)
}

/// Reads the task record: its state, the settings last sent, and when they were sent.
pub(crate) fn task_view(
    t: Option<&TaskRecord>,
) -> (TaskState, Option<SentSettings>, Option<DateTime<Utc>>) {
    let Some(t) = t else {
        return (TaskState::NotCreated, None, None);
    };
    let sent: Option<SentSettings> = t
        .settings
        .clone()
        .and_then(|v| serde_json::from_value(v).ok());
    let state = match (t.platform_status, &t.settings) {
        (Some(code), _) => TaskState::from_platform(code),
        // Settings recorded (the create was about to be sent) but no status: the create is in doubt.
        (None, Some(v)) if !v.is_null() => TaskState::CreateInDoubt,
        (None, _) => TaskState::NotCreated,
    };
    (state, sent, t.settings_sent_at)
}

/// A one-word state for metrics.
fn campaign_state(c: &CampaignOutcome) -> &'static str {
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
