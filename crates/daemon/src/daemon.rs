//! The reconcile loop: rescan the campaign set, renew leases, and for each due campaign observe → decide → act,
//! isolated from each other; then record the outcomes and sleep until the next one is due. The platform actions
//! live in `actions`, the campaign set in `campaigns`; this module holds only the loop and its per-campaign step.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use callbot_api::Client;
use campaign::CampaignSpec;
use chrono::{DateTime, Duration, Utc};
use clock::SharedClock;
use store::{CampaignRecord, OrderProgress, Store, StoreError, TaskRecord};
use tokio_util::sync::CancellationToken;

use crate::actions::{Executor, Learned, StepError, StepResult};
use crate::campaigns::{CampaignSet, CampaignState};
use crate::config::DaemonConfig;
use crate::desired::local_label;
use crate::hub::Hub;
use crate::ledger::Ledger;
use crate::outcome::{CampaignOutcome, Outcome};
use crate::plan::{Action, Observed, Orders, Plan, TaskState, Why, decide};
use crate::requests::CallbackUrls;
use crate::suppress::{SuppressionFiles, SuppressionWatch};
use crate::task::user_task_id;

/// At most this many decide→act rounds per campaign per reconcile.
const MAX_ROUNDS: usize = 8;
/// After a wake-up, wait this long before reconciling, so a burst of wake-ups makes one reconcile.
const MIN_RECONCILE_GAP: std::time::Duration = std::time::Duration::from_millis(100);
/// A campaign with nothing due is still reconciled at least this often: a safety net for anything that is not
/// modelled as a wake-up (the decision is cheap; a campaign's calendar events, polls, retries and file changes all
/// wake it on time by themselves). It is also how an owner learns of a task callback another replica stored.
const REVISIT_SECS: i64 = 300;
/// How long a reconcile waits for the directory scan before it goes on with the campaigns it knows.
const SCAN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// A campaign whose reconcile failed, or left actions undone, is tried again after this long.
const RETRY_SECS: i64 = 15;

/// The reconciler. `run` is the loop; `reconcile_once` is the step tests drive.
#[derive(Debug)]
pub struct Daemon {
    store: Arc<dyn Store>,
    exec: Executor,
    clock: SharedClock,
    hub: Arc<Hub>,
    ledger: Arc<Ledger>,
    config: DaemonConfig,
    set: CampaignSet,
    loaded_from_store: bool,
    /// Whether a scan has been applied since the start (readiness waits for it).
    scanned: bool,
    /// The suppression files and the store's suppression version, watched at every pass.
    suppression: SuppressionWatch,
}

/// A campaign's task records and its current task's progress, read for its first decision.
type Prefetched = (Vec<TaskRecord>, OrderProgress);

/// What one reconcile of a campaign did, across its tasks.
#[derive(Debug, Default)]
struct RunLog {
    done: Vec<String>,
    error: Option<String>,
}

impl RunLog {
    /// Notes an action done on a task (named by its zone group when the campaign has one task per group).
    fn done(&mut self, ts: &CampaignSpec, action: String) {
        let many = ts.schedule.contact_zones;
        self.done.push(match ts.task_group() {
            Some(g) if many => format!("{action} ({})", g.label()),
            _ => action,
        });
    }
}

/// What a task's first pass leaves for its second.
struct FirstPass {
    live: bool,
    completing: bool,
    /// The prefetched reads, while nothing was written since.
    fresh: Option<Prefetched>,
}

/// A task's last decision after its second pass.
struct TaskPass {
    ut: String,
    plan: Plan,
    obs: Observed,
    extra_wake: Option<DateTime<Utc>>,
    retry_now: bool,
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
        let suppression_files = config.suppression.clone().map(SuppressionFiles::new);
        let exec = Executor {
            store: store.clone(),
            client: client.with_observer(ledger.clone()),
            urls: CallbackUrls::from_public_url(config.public_url.as_deref()),
            metrics: hub.metrics.clone(),
            stop: CancellationToken::new(),
            resolve_grace: config.resolve_grace,
            requests_in_flight: config.requests_in_flight.max(1),
            caps: config.caps.clone(),
        };
        Daemon {
            store,
            exec,
            clock,
            hub,
            ledger,
            set: CampaignSet::with_contact_limits(config.contact_limits),
            config,
            loaded_from_store: false,
            scanned: false,
            suppression: SuppressionWatch::new(suppression_files),
        }
    }

    /// The loop: reconcile, then sleep until the earliest of the next wake, a file change or callback, the periodic
    /// rescan, or shutdown. A reconcile that has started is finished before shutdown returns (each step is short
    /// and leaves nothing half-written: the outbox makes every send resumable).
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.exec.stop = shutdown.clone();
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
            self.hub.set_ready(self.loaded_from_store && self.scanned);
            self.hub.pass_completed(std::time::Instant::now());
            let now = self.clock.now();
            self.hub
                .metrics
                .reconcile_pass(now.timestamp_millis() as f64 / 1000.0);
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
        for id in self.set.ids() {
            let _ = self.store.release_lease(&id, &self.config.owner).await;
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
            match self.store.campaigns().await {
                Ok(records) => {
                    for id in self.set.load_stored(&records, false) {
                        tracing::warn!(campaign.id = %id, "cannot read the stored spec; ignoring it");
                    }
                    self.loaded_from_store = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the campaigns kept in the store; retrying later")
                }
            }
        }
        self.rescan(&mut outcome).await;
        self.sync_suppressions(now).await;

        let due = self.set.due(now, |ut| self.hub.is_touched(ut));
        let leases = self.renew_leases(&due, now).await;
        let owned_due: Vec<String> = match &leases {
            Ok(granted) => self
                .set
                .ids()
                .into_iter()
                .filter(|id| due.contains(id) && granted.contains(id))
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut prefetched = self.prefetch(&owned_due).await;
        self.prefetch_zone_groups(&owned_due).await;
        self.prefetch_planned_versions(&owned_due).await;
        let mut records = Vec::new();
        for id in self.set.ids() {
            let c = self.set.get(&id).expect("campaign exists");
            if !due.contains(&id) {
                if let Some(last) = &c.last {
                    outcome.campaigns.push(last.clone());
                }
                continue;
            }
            if self.exec.stop.is_cancelled() {
                break;
            }
            let ut = crate::task::user_task_ids(c.in_force()).swap_remove(0);
            let result = match &leases {
                Err(e) => Err(StepError::Lease(e.to_string())),
                Ok(granted) if !granted.contains(&id) => Ok((self.unreconciled(&id, None), None)),
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
                    self.unreconciled(&id, Some(e.to_string()))
                }
            };
            let c = self.set.get_mut(&id).expect("campaign exists");
            c.due = Some(next_due(&co, now, self.config.lease_ttl));
            c.last = Some(co.clone());
            outcome.campaigns.push(co);
            outcome.reconciled.push(id);
        }
        crate::records::record_campaigns(self.store.as_ref(), &mut self.set, records).await;
        crate::records::record_contacts_planned(self.store.as_ref(), &mut self.set, now).await;
        if let Err(e) = self.ledger.flush(self.store.as_ref()).await {
            tracing::warn!(error = %e, pending = self.ledger.pending(), "cannot write the action ledger yet");
        }
        crate::records::publish_metrics(&self.hub.metrics, &outcome);
        let renew_every = renew_interval(self.config.lease_ttl);
        outcome.next_wake = self
            .set
            .campaigns
            .values()
            .flat_map(|c| [c.due, c.lease_at.map(|at| at + renew_every)])
            .flatten()
            .min();
        if self.set.scan_pending() {
            // Collect the scan soon.
            let soon = now + Duration::from_std(SCAN_WAIT).unwrap_or_default();
            outcome.next_wake = Some(outcome.next_wake.map_or(soon, |w| w.min(soon)));
        }
        outcome
    }

    /// Merges a directory scan into the campaign set, counting and reporting the files that fail. The scan reads
    /// files, so it runs on a blocking thread; a scan that takes longer than [`SCAN_WAIT`] is left running and
    /// collected at a later pass, so a slow or huge directory never holds back a pause or a start that is due.
    async fn rescan(&mut self, outcome: &mut Outcome) {
        let Some(diff) = self
            .set
            .scan_bounded(&self.config.campaigns_dir, SCAN_WAIT)
            .await
        else {
            return;
        };
        self.scanned = true;
        if let Some(e) = &diff.dir_error {
            // The directory itself is unreadable: change nothing (a missing mount must not complete campaigns).
            tracing::warn!(dir = %self.config.campaigns_dir.display(), error = %e, "cannot read the campaigns directory");
        }
        if !diff.rescan.is_empty() {
            self.hub.wake();
        }
        for (path, error, new) in self.set.apply(diff) {
            if new {
                self.hub.metrics.file_error();
                tracing::warn!(file = %path.display(), error = %error, "campaign file rejected; its last good version (if any) keeps running");
            }
            outcome.file_errors.push((path, error));
        }
    }

    /// Brings the suppression files into the store, and makes every campaign due when the store's suppression set
    /// changed (a file, `campaignd suppress`, an opt-out), so each stops its newly suppressed numbers now.
    async fn sync_suppressions(&mut self, now: DateTime<Utc>) {
        if self
            .suppression
            .pass(self.store.as_ref(), &self.hub.metrics, now)
            .await
        {
            tracing::info!("the suppression list changed: every campaign checks its numbers now");
            for id in self.set.ids() {
                if let Some(c) = self.set.get_mut(&id) {
                    c.due = None;
                }
            }
        }
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
        let lease_ttl = Duration::from_std(self.config.lease_ttl).unwrap_or(Duration::MAX);
        let ids: Vec<String> = self
            .set
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
            let c = self.set.get_mut(&id).expect("campaign exists");
            if granted {
                if c.lease_at.is_none_or(|at| now >= at + lease_ttl) {
                    // Taken anew: another replica may have planned contacts meanwhile.
                    c.forget_recorded_groups();
                }
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

    /// The outcome of a campaign that was not reconciled: another replica owns it (`error` None), or its reconcile
    /// failed before deciding.
    fn unreconciled(&self, id: &str, error: Option<String>) -> CampaignOutcome {
        let c = self.set.get(id).expect("campaign exists");
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
            user_task_id: crate::task::user_task_ids(c.in_force()).swap_remove(0),
            orders: Orders::default(),
            wait_until: None,
        }
    }

    /// Observes, decides and acts for one campaign whose lease this replica holds. Returns the outcome and the
    /// campaign's record for the store.
    ///
    /// A campaign is one platform task, or with `timezone = "contact"` one task per zone group; each task is
    /// observed, decided and acted on by itself, with its own calendar. The calendar (pauses and completions) comes
    /// first for every task, then the contacts are planned (into each contact's task), then each task's retries and
    /// decide → act rounds.
    ///
    /// `prefetched` is what the store held for the campaign a moment ago (read for every due campaign at once): it
    /// stands in for the first decision's reads of a one-task campaign unless this reconcile wrote something first
    /// (an earlier generation completed, contacts planned) or a task callback arrived since; every later decision
    /// reads the store again.
    async fn reconcile_campaign(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        prefetched: Option<Prefetched>,
    ) -> StepResult<(CampaignOutcome, Option<CampaignRecord>)> {
        let mut fresh = prefetched;
        if self.find_round(id, now).await? {
            // A new round: what was read a moment ago belongs to the previous one.
            fresh = None;
        }
        // Each task with the zone groups planned into it before: its calendar covers them whatever the file says now.
        let mut tasks = self.task_specs(id).await?;
        if tasks.len() > 1 {
            fresh = None;
        }
        let uts: Vec<String> = tasks.iter().map(user_task_id).collect();
        for ut in &uts {
            if self.hub.take_touched(ut) {
                // A task callback stored its status after the prefetch may have read.
                fresh = None;
            }
        }
        let spec = self.spec(id).clone();
        let file_present = self.set.get(id).is_some_and(|c| c.file_present);
        if file_present {
            let records = match &fresh {
                Some((t, _)) => t.clone(),
                None => self.store.tasks(id).await?,
            };
            if self
                .exec
                .retire_old_generations(&spec, &uts, &records, now)
                .await?
            {
                fresh = None;
            }
        }
        let mut log = RunLog::default();
        // The calendar first: a pause or a completion that is due never waits for the contacts to be read.
        let mut firsts = Vec::with_capacity(tasks.len());
        for (i, ts) in tasks.iter().enumerate() {
            let pre = if i == 0 { fresh.take() } else { None };
            let first = crate::ledger::CONTEXT
                .scope(
                    (id.to_owned(), uts[i].clone()),
                    self.task_first_pass(id, ts, now, pre, file_present, &mut log),
                )
                .await?;
            firsts.push(first);
        }
        // A contacts problem (an unreadable CSV, a row the store refuses) must never keep the calendar from being
        // enforced: report it and go on deciding with the orders already planned. A store outage stops the
        // campaign's step (nothing can be recorded), as it would at any other point.
        let (planned, passes) = match self.plan_beside(id, &uts) {
            // A file planned on from an earlier reconcile, in groups its task already covers: its next rows are
            // read and inserted while the task decides and uploads what was planned before, so the reading, the
            // store's writes and the platform's requests overlap.
            Some(admitted) => {
                // The reader is taken out while it plans; the decisions beside it read the version planned and
                // its valid rows from the campaign as they were.
                let c = self.set.get_mut(id).expect("campaign exists");
                let spec = c.in_force().clone();
                let mut state = crate::contacts::ContactsState {
                    planning: c.contacts.planning.take(),
                    planned: c.contacts.planned.clone(),
                    valid: c.contacts.valid,
                    to_record: c.contacts.to_record.take(),
                };
                let store = Arc::clone(&self.store);
                let limits = self.config.contact_limits;
                let plan = crate::contacts::plan_step(
                    store.as_ref(),
                    &spec,
                    &limits,
                    &mut state,
                    now,
                    Some(&admitted),
                );
                let second =
                    self.second_passes(id, &tasks, &uts, now, firsts, file_present, &mut log);
                let (planned, passes) = tokio::join!(plan, second);
                self.set.get_mut(id).expect("campaign exists").contacts = state;
                let planned = planned.map(|(inserted, complete, written)| {
                    self.absorb_planned(id, inserted, written);
                    // Orders planned after the decision was made wait for the next reconcile, at once, as the
                    // rest of the file does.
                    (inserted, complete && inserted == 0)
                });
                (planned, passes)
            }
            None => {
                let planned = match self.plan_contacts(id, now).await {
                    Err(StepError::Store(e)) if e.is_retryable() => {
                        return Err(StepError::Store(e));
                    }
                    planned => planned,
                };
                match &planned {
                    Ok((inserted, _)) if *inserted > 0 => {
                        // Contacts of a group a task's calendar did not cover yet (a file read before it was
                        // rescanned) are covered before the decision that uploads them.
                        tasks = self.task_specs(id).await?;
                        for f in &mut firsts {
                            f.fresh = None;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        for f in &mut firsts {
                            f.fresh = None;
                        }
                    }
                }
                let passes = self
                    .second_passes(id, &tasks, &uts, now, firsts, file_present, &mut log)
                    .await;
                (planned, passes)
            }
        };
        let mut planning_left = false;
        match planned {
            Ok((_, complete)) => planning_left = !complete,
            Err(StepError::Store(e)) if e.is_retryable() => return Err(StepError::Store(e)),
            Err(e) => {
                tracing::warn!(campaign.id = %id, error = %e, "cannot read the contacts; the campaign goes on with the orders already planned");
                self.hub.metrics.reconcile_error(id);
                log.error = Some(format!("contacts: {e}"));
            }
        }
        let mut passes = passes?;

        let next_round = self
            .set
            .get(id)
            .and_then(|c| c.round.as_ref())
            .and_then(crate::rounds::InForce::next_change)
            .filter(|at| *at > now);
        let many = passes.len() > 1;
        let mut whys = Vec::with_capacity(passes.len());
        for (ts, pass) in tasks.iter().zip(passes.iter_mut()) {
            if planning_left || pass.retry_now {
                // More of the contacts file, or more due retries, to plan: at the next reconcile, which comes at once.
                pass.extra_wake = Some(now);
            }
            let mut wakes: Vec<DateTime<Utc>> =
                pass.extra_wake.into_iter().chain(next_round).collect();
            if log.error.is_some() {
                // Try again soon, not at the next calendar event.
                wakes.push(now + Duration::seconds(RETRY_SECS));
            }
            for at in wakes {
                pass.plan.next_wake = Some(pass.plan.next_wake.map_or(at, |w| w.min(at)));
            }
            let why = pass.plan.why.describe(&|at| local_label(ts, at));
            whys.push(match ts.task_group() {
                Some(g) if many => format!("{}: {why}", g.label()),
                _ => why,
            });
        }

        let c = self.set.get(id).expect("campaign exists");
        let why = whys.join("; ");
        let all_terminal = passes.iter().all(|p| p.obs.task.is_terminal());
        let state = if !c.file_present {
            CampaignState::Removed
        } else if all_terminal {
            CampaignState::Done
        } else if c.file_error.is_some() {
            CampaignState::Invalid
        } else {
            CampaignState::Active
        };
        let record = CampaignRecord {
            id: id.to_owned(),
            generation: i64::from(spec.generation),
            source_file: spec.source.display().to_string(),
            content_hash: spec.content_hash.clone(),
            // Filled in only when the record is written (see `records::record_campaigns`).
            spec: None,
            state: state.as_str().to_owned(),
            last_error: c.file_error.clone().or_else(|| log.error.clone()),
            updated_at: now,
        };
        if log.done.iter().any(|a| a != Action::Poll.name()) {
            tracing::info!(campaign.id = %id, tasks = ?uts, actions = ?log.done, why = %why, "reconciled");
        }
        // The campaign's outcome is its first task's, with every task's next wake and orders, and each task's
        // reason in words.
        let wait_until = passes
            .iter()
            .filter_map(|p| p.extra_wake)
            .filter(|at| *at > now)
            .min();
        let next_wake = passes.iter().filter_map(|p| p.plan.next_wake).min();
        let mut orders = Orders::default();
        for p in &passes {
            orders.planned += p.obs.orders.planned;
            orders.sending += p.obs.orders.sending;
            orders.sent += p.obs.orders.sent;
            orders.rejected += p.obs.orders.rejected;
            orders.unfinished += p.obs.orders.unfinished;
        }
        let first = passes.into_iter().next().expect("a campaign has a task");
        let mut plan = first.plan;
        plan.next_wake = next_wake;
        let outcome = CampaignOutcome {
            id: id.to_owned(),
            plan,
            why,
            done: log.done,
            error: log.error,
            file_error: c.file_error.clone(),
            task: first.obs.task,
            user_task_id: first.ut,
            orders,
            not_owner: false,
            wait_until,
        };
        Ok((outcome, Some(record)))
    }

    /// The first pass over one task: decide; apply the campaign's opt-outs and stop this task's orders of
    /// suppressed numbers; then the actions that narrow what the platform may do (pause, complete).
    async fn task_first_pass(
        &self,
        id: &str,
        ts: &CampaignSpec,
        now: DateTime<Utc>,
        mut fresh: Option<Prefetched>,
        file_present: bool,
        log: &mut RunLog,
    ) -> StepResult<FirstPass> {
        let ut = user_task_id(ts);
        let (plan, obs) = match &fresh {
            Some((tasks, progress)) => self.decide_from(id, ts, now, tasks, *progress),
            None => self.decide_now(id, ts, now).await?,
        };
        // Consent next: numbers that said no in this campaign's calls are suppressed everywhere, and this task's
        // orders of suppressed numbers are stopped, before anything new is uploaded.
        let consent = self
            .exec
            .consent(ts, &ut, file_present, obs.task.is_live(), now)
            .await;
        if consent.opted_out > 0 {
            // The suppression version moved: the next pass makes every campaign stop these numbers.
            self.hub.wake();
        }
        if consent.stopped > 0 {
            fresh = None;
            log.done(ts, format!("stop {} suppressed", consent.stopped));
        }
        if let Some(e) = consent.error {
            self.hub.metrics.reconcile_error(id);
            log.error = Some(e);
        }
        let completing = plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Complete { .. }));
        for action in plan.actions {
            if matches!(action, Action::Pause | Action::Complete { .. }) {
                fresh = None;
                match self.exec.execute(ts, &ut, &action, now).await {
                    Ok(_) => log.done(ts, action.name().to_owned()),
                    Err(e) => {
                        tracing::warn!(campaign.id = %id, task.user_id = %ut, action = action.name(), error = %e, "action failed");
                        self.hub.metrics.reconcile_error(id);
                        log.error = Some(format!("{}: {e}", action.name()));
                    }
                }
            }
        }
        Ok(FirstPass {
            live: obs.task.is_live(),
            completing,
            fresh,
        })
    }

    /// The second pass over one task: its due retries, then decide → act rounds until nothing is left to do now.
    async fn task_second_pass(
        &mut self,
        id: &str,
        ts: &CampaignSpec,
        now: DateTime<Utc>,
        first: FirstPass,
        file_present: bool,
        log: &mut RunLog,
    ) -> StepResult<TaskPass> {
        let ut = user_task_id(ts);
        let mut fresh = first.fresh;
        // Retries: the attempts whose delay has passed are planned into the task, to be uploaded below like any
        // planned order. Never into a task that is being completed, or one not created yet.
        let mut retry_now = false;
        if !ts.retry.is_empty() && file_present && first.live && !first.completing {
            match crate::retries::plan(self.store.as_ref(), ts, &ut, now).await {
                Ok(r) => {
                    if r.planned > 0 {
                        fresh = None;
                        log.done(ts, format!("retry {}", r.planned));
                        tracing::info!(campaign.id = %id, task.user_id = %ut, orders.new = r.planned, "planned retries");
                    }
                    retry_now = r.more;
                    self.set
                        .get_mut(id)
                        .expect("campaign exists")
                        .task_loop(&ut)
                        .next_retry_at = r.next_due;
                }
                Err(e) if e.is_retryable() => return Err(StepError::Store(e)),
                Err(e) => {
                    tracing::warn!(campaign.id = %id, error = %e, "cannot plan retries");
                    self.hub.metrics.reconcile_error(id);
                    log.error = Some(format!("retries: {e}"));
                }
            }
        }

        let mut last_actions: Option<Vec<Action>> = None;
        let mut extra_wake: Option<DateTime<Utc>> = None;
        let (mut plan, mut obs) = match fresh {
            Some((tasks, progress)) => self.decide_from(id, ts, now, &tasks, progress),
            None => self.decide_now(id, ts, now).await?,
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
                match self.exec.execute(ts, &ut, &action, now).await {
                    Ok(Learned::Done) => log.done(ts, action.name().to_owned()),
                    Ok(Learned::Polled { task_terminal }) => {
                        let c = self.set.get_mut(id).expect("campaign exists");
                        let l = c.task_loop(&ut);
                        l.last_poll_at = Some(now);
                        l.final_poll_done |= task_terminal;
                        log.done(ts, action.name().to_owned());
                    }
                    Ok(Learned::WaitUntil(at)) => {
                        extra_wake = Some(extra_wake.map_or(at, |w| w.min(at)));
                        stop = true;
                    }
                    Err(e) => {
                        tracing::warn!(campaign.id = %id, task.user_id = %ut, action = action.name(), error = %e, "action failed");
                        self.hub.metrics.reconcile_error(id);
                        log.error = Some(format!("{}: {e}", action.name()));
                        stop = true;
                    }
                }
            }
            (plan, obs) = self.decide_now(id, ts, now).await?;
            if stop {
                break;
            }
        }
        Ok(TaskPass {
            ut,
            plan,
            obs,
            extra_wake,
            retry_now,
        })
    }

    /// For a repeating campaign, finds the round in force at `now` ([`crate::rounds::in_force`]), unless the one
    /// found before is still in force by the calendar. Returns whether a new round came into force: it starts with
    /// its contacts file read again, as it is now, into its own task.
    async fn find_round(&mut self, id: &str, now: DateTime<Utc>) -> StepResult<bool> {
        let c = self.set.get(id).expect("campaign exists");
        if c.spec.repeat.is_none() {
            return Ok(false);
        }
        let settled = c.round.as_ref().is_some_and(|r| {
            r.waiting.is_none()
                && r.round.is_some()
                && r.next_change().is_none_or(|next| now < next)
        });
        if settled {
            return Ok(false);
        }
        let found = crate::rounds::in_force(self.store.as_ref(), &c.spec, now).await?;
        let c = self.set.get_mut(id).expect("campaign exists");
        let before = c.round.as_ref().map(|r| r.spec.generation);
        let changed = before != Some(found.spec.generation);
        if changed {
            if let Some(r) = found.round {
                tracing::info!(campaign.id = %id, round = r.number, generation = found.spec.generation, "round in force");
            }
            c.contacts = crate::contacts::ContactsState::default();
            c.loops.clear();
        }
        c.round = Some(found);
        Ok(changed)
    }

    /// The campaign's tasks in force ([`CampaignSpec::task_specs`]), each with the zone groups the store recorded
    /// for it merged into its audience, so that its calendar covers every order it holds. The groups are read once
    /// and kept until the campaign's contacts are planned again or its lease is taken anew.
    async fn task_specs(&mut self, id: &str) -> StepResult<Vec<CampaignSpec>> {
        let mut out = self.spec(id).task_specs();
        for ts in &mut out {
            let ut = user_task_id(ts);
            let cached = self
                .set
                .get(id)
                .and_then(|c| c.recorded_groups.get(&ut))
                .cloned();
            let groups = match cached {
                Some(g) => g,
                None => {
                    let g = crate::observe::recorded_groups(self.store.as_ref(), &ut).await?;
                    self.set
                        .get_mut(id)
                        .expect("campaign exists")
                        .recorded_groups
                        .insert(ut, g.clone());
                    g
                }
            };
            ts.audience
                .get_or_insert_with(Default::default)
                .merge_recorded(groups);
        }
        Ok(out)
    }

    /// Plans the campaign's contacts into the store (see [`crate::contacts::plan_step`]).
    async fn plan_contacts(&mut self, id: &str, now: DateTime<Utc>) -> StepResult<(u64, bool)> {
        let c = self.set.get_mut(id).expect("campaign exists");
        if !c.file_present {
            // A removed campaign plans nothing more.
            c.contacts.planning = None;
            return Ok((0, true));
        }
        // The spec in force, borrowed field by field beside the planning state.
        let spec = c.round.as_ref().map_or(&c.spec, |r| &r.spec);
        if c.contacts.planned.is_none() && c.contacts.planning.is_none() {
            crate::contacts::restore_planned(
                self.store.as_ref(),
                spec,
                &self.config.contact_limits,
                &mut c.planned_versions,
                &mut c.contacts,
            )
            .await;
        }
        let (inserted, complete, written) = crate::contacts::plan_step(
            self.store.as_ref(),
            spec,
            &self.config.contact_limits,
            &mut c.contacts,
            now,
            None,
        )
        .await?;
        self.absorb_planned(id, inserted, written);
        Ok((inserted, complete))
    }

    /// A planning step's groups join what is known of each task's; groups written for orders already stored went to
    /// tasks only the store knows: they are all read again.
    fn absorb_planned(&mut self, id: &str, inserted: u64, written: crate::contacts::GroupsWritten) {
        let c = self.set.get_mut(id).expect("campaign exists");
        if written.of_stored_orders {
            c.forget_recorded_groups();
        } else {
            for (ut, text) in written.groups {
                if let (Some(known), Ok(g)) = (
                    c.recorded_groups.get_mut(&ut),
                    serde_json::from_str::<campaign::ZoneGroup>(&text),
                ) && !known.contains(&g)
                {
                    known.push(g);
                }
            }
        }
        if inserted > 0 {
            tracing::info!(campaign.id = %id, orders.new = inserted, "planned contacts");
        }
    }

    /// The zone groups whose contacts this reconcile may plan while the campaign's task decides and uploads, or
    /// `None` when it must plan first and decide after. Only a campaign of one task, part way through a file it
    /// is still planning (nothing held back), plans beside: its new orders then go into that task, in groups the
    /// task already records, which its calendar, and so the decision being made beside them, covers. A contact
    /// already planned in this generation is in the same task, so the groups recorded for stored orders are those
    /// too. A new group (or a task per group, where a contact that moved records its group for another task that
    /// may be uploading) plans first, as a new file does.
    fn plan_beside(&self, id: &str, uts: &[String]) -> Option<crate::contacts::Admitted> {
        let c = self.set.get(id)?;
        let spec = c.in_force();
        let planning = c.contacts.planning.as_ref()?;
        let [ut] = uts else { return None };
        if !c.file_present
            || planning.holds_chunk()
            || planning.stamp != crate::contacts::csv_stamp(spec)
            || crate::task::user_task_ids(spec).len() != 1
            || *ut != user_task_id(spec)
        {
            return None;
        }
        let groups = c.recorded_groups.get(ut)?;
        let admitted: crate::contacts::Admitted = groups
            .iter()
            .filter_map(|g| Some((ut.clone(), serde_json::to_string(g).ok()?)))
            .collect();
        (!admitted.is_empty()).then_some(admitted)
    }

    /// The second pass over each of the campaign's tasks ([`Daemon::task_second_pass`]), in order.
    #[allow(clippy::too_many_arguments)]
    async fn second_passes(
        &mut self,
        id: &str,
        tasks: &[CampaignSpec],
        uts: &[String],
        now: DateTime<Utc>,
        firsts: Vec<FirstPass>,
        file_present: bool,
        log: &mut RunLog,
    ) -> StepResult<Vec<TaskPass>> {
        let mut passes = Vec::with_capacity(tasks.len());
        for ((ts, ut), first) in tasks.iter().zip(uts).zip(firsts) {
            let pass = crate::ledger::CONTEXT
                .scope(
                    (id.to_owned(), ut.clone()),
                    self.task_second_pass(id, ts, now, first, file_present, log),
                )
                .await?;
            passes.push(pass);
        }
        Ok(passes)
    }

    /// The decision for one task of the campaign, from the store as it is now.
    async fn decide_now(
        &self,
        id: &str,
        ts: &CampaignSpec,
        now: DateTime<Utc>,
    ) -> StepResult<(Plan, Observed)> {
        let (tasks, progress) = crate::observe::decision_inputs(self.store.as_ref(), ts).await?;
        Ok(self.decide_from(id, ts, now, &tasks, progress))
    }

    /// The decision for one task of the campaign, from the campaign's task records and the task's progress, as
    /// just read.
    fn decide_from(
        &self,
        id: &str,
        ts: &CampaignSpec,
        now: DateTime<Utc>,
        tasks: &[TaskRecord],
        progress: OrderProgress,
    ) -> (Plan, Observed) {
        let c = self.set.get(id).expect("campaign exists");
        let state = c.loops.get(&user_task_id(ts)).cloned().unwrap_or_default();
        let next_poll_at = Some(
            state
                .last_poll_at
                .map_or(now, |at| at + self.config.poll_interval),
        );
        let (d, _) = crate::observe::decision_from(
            ts,
            tasks,
            progress,
            c.file_present,
            c.contacts.valid,
            now,
            self.config.apply_delay,
            next_poll_at,
        );
        let (mut plan, mut observed) = (d.plan, d.observed);
        if observed.task.is_terminal() && state.final_poll_done {
            // One last poll after completion; then the task's unfinished orders are left alone.
            observed.next_poll_at = None;
            plan = decide(&d.desired, &observed);
        }
        if state.next_retry_at.is_some() && observed.task.is_live() {
            observed.next_retry_at = state.next_retry_at;
            plan = decide(&d.desired, &observed);
        }
        (plan, observed)
    }

    /// The zone groups recorded for the tasks of the given campaigns that are not known yet, read in one store call
    /// (each campaign would otherwise read its own at its reconcile). A failure only costs the reads it was meant to
    /// save.
    async fn prefetch_zone_groups(&mut self, ids: &[String]) {
        let mut wanted: Vec<(String, String)> = Vec::new();
        for id in ids {
            let c = self.set.get(id).expect("campaign exists");
            for ut in crate::task::user_task_ids(c.in_force()) {
                if !c.recorded_groups.contains_key(&ut) {
                    wanted.push((id.clone(), ut));
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        let uts: Vec<String> = wanted.iter().map(|(_, ut)| ut.clone()).collect();
        let rows = match self.store.zone_groups_of(&uts).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the zone groups of the due campaigns at once");
                return;
            }
        };
        let mut by_task: HashMap<String, Vec<campaign::ZoneGroup>> = HashMap::new();
        for (ut, text) in rows {
            if let Some(g) = crate::observe::read_group(&ut, &text) {
                by_task.entry(ut).or_default().push(g);
            }
        }
        for (id, ut) in wanted {
            let groups = by_task.get(&ut).cloned().unwrap_or_default();
            self.set
                .get_mut(&id)
                .expect("campaign exists")
                .recorded_groups
                .insert(ut, groups);
        }
    }

    /// The contacts versions the store holds for the tasks in force of the given campaigns whose contacts this
    /// process has not planned yet, read in one store call (each would otherwise read its own as it plans; see
    /// [`crate::contacts::restore_planned`]). A failure only costs the reads it was meant to save.
    async fn prefetch_planned_versions(&mut self, ids: &[String]) {
        let mut wanted: Vec<(String, String)> = Vec::new();
        for id in ids {
            let c = self.set.get(id).expect("campaign exists");
            let ut = user_task_id(c.in_force());
            if c.contacts.planned.is_none()
                && c.contacts.planning.is_none()
                && !c.planned_versions.contains_key(&ut)
            {
                wanted.push((id.clone(), ut));
            }
        }
        if wanted.is_empty() {
            return;
        }
        let uts: Vec<String> = wanted.iter().map(|(_, ut)| ut.clone()).collect();
        let rows = match self.store.contacts_planned_of(&uts).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read which contacts files were planned, at once");
                return;
            }
        };
        let mut by_task: HashMap<String, (String, u64)> = rows
            .into_iter()
            .map(|(ut, version, valid)| (ut, (version, valid)))
            .collect();
        for (id, ut) in wanted {
            let found = by_task.remove(&ut);
            self.set
                .get_mut(&id)
                .expect("campaign exists")
                .planned_versions
                .insert(ut, found);
        }
    }

    /// The task records and task progress of the given campaigns, read in two store calls. A failure only costs
    /// the per-campaign reads it was meant to save.
    async fn prefetch(&self, ids: &[String]) -> HashMap<String, Prefetched> {
        if ids.is_empty() {
            return HashMap::new();
        }
        let uts: Vec<String> = ids.iter().map(|id| user_task_id(self.spec(id))).collect();
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

    fn spec(&self, id: &str) -> &CampaignSpec {
        self.set.get(id).expect("campaign exists").in_force()
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
    if let (None, Some(wait)) = (&co.error, co.wait_until) {
        // What is left waits for an instant of its own (a cap's release, a grace): then, not in a retry loop.
        at = at.min(wait);
    } else if co.error.is_none() && only_budgeted_left {
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

/// Leases are renewed when a third of their lifetime has passed, so two renewals can fail before one expires.
fn renew_interval(lease_ttl: std::time::Duration) -> Duration {
    Duration::from_std(lease_ttl / 3).unwrap_or(Duration::seconds(40))
}
