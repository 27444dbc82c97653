//! Shared harness for the daemon's end-to-end tests: the real simulator over a socket, a real store (SQLite or
//! PostgreSQL), the real webhook listener, and the daemon driven step by step on a manual clock shared with the
//! simulator. No sleeps: time moves only when the test moves it.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use callbot_api::sign::SecretKey;
use callbot_api::{Client, ClientConfig, RetryPolicy};
use callbot_sim::{Account, FaultConfig, SimConfig, SimHandle, Simulator};
use chrono::{DateTime, Duration, Utc};
use clock::ManualClock;
use daemon::{Daemon, DaemonConfig, Hub, Metrics, Outcome, Webhook};
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const UUID: &str = "acct-e2e";
pub const SECRET: &str = "e2e-secret-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Area codes used for fictional US numbers (555-0100 to 555-0199 is reserved for fiction in every area code).
const AREAS: [u32; 14] = [
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216,
];

/// An instant in UTC, to the minute.
pub fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

/// A fictional phone number for contact `i` (up to 1400 distinct ones).
pub fn phone(i: usize) -> String {
    format!("+1 {} 555 01{:02}", AREAS[i / 100], i % 100)
}

/// A contacts CSV with `n` fictional contacts.
pub fn contacts_csv(n: usize) -> String {
    let mut s = String::from("phone,name,customer,other,amount\n");
    for i in 0..n {
        s.push_str(&format!(
            "{},Person {i},C{i},row-{i},{}.00\n",
            phone(i),
            10 + i
        ));
    }
    s
}

pub struct Env {
    pub clock: ManualClock,
    pub sim: SimHandle,
    pub sim_url: String,
    pub store: Arc<dyn Store>,
    pub store_url: String,
    pub daemon: Daemon,
    pub hub: Arc<Hub>,
    pub dir: tempfile::TempDir,
    pub webhook_url: String,
    pub shutdown: CancellationToken,
    pub config: DaemonConfig,
    _pg: Option<testkit::TestDatabase>,
}

pub struct Options {
    pub faults: FaultConfig,
    /// The simulator's outcome weights; `None`: its default mix.
    pub weights: Option<Vec<(callbot_sim::Outcome, f64)>>,
    pub talk_secs: (u64, u64),
    pub poll_interval: Duration,
    pub client_retries: u32,
    /// Outcomes the simulator gives every call to these (normalised) phones.
    pub forced: Vec<(String, callbot_sim::Outcome)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            faults: FaultConfig::default(),
            weights: None,
            talk_secs: (20, 120),
            poll_interval: Duration::minutes(20),
            client_retries: 3,
            forced: Vec::new(),
        }
    }
}

impl Env {
    pub async fn new(
        backend: Backend,
        start: DateTime<Utc>,
        files: &[(&str, String)],
        opts: Options,
    ) -> Env {
        callbot_api::ensure_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let clock = ManualClock::new(start);
        let shutdown = CancellationToken::new();

        let mut cfg = SimConfig::new(vec![Account::new(UUID, SECRET)]);
        cfg.faults = opts.faults;
        cfg.seed = 11;
        cfg.outcomes.talk_secs = opts.talk_secs;
        if let Some(w) = opts.weights {
            cfg.outcomes.weights = w;
        }
        cfg.outcomes.forced.extend(opts.forced);
        let sim = Simulator::with_manual_clock(cfg, clock.clone());
        let handle = sim.handle();
        let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_url = format!("http://{}", sim_listener.local_addr().unwrap());
        tokio::spawn(sim.run(sim_listener, shutdown.clone()));

        let (store, store_url, pg) = open_store(backend, dir.path()).await;

        let hub = Arc::new(Hub::new(Metrics::new()));
        let wl = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let webhook_url = format!("http://{}", wl.local_addr().unwrap());
        let webhook = Webhook::new(
            store.clone(),
            SecretKey::new(SECRET.into()),
            clock.shared(),
            hub.clone(),
        );
        tokio::spawn(webhook.run(wl, shutdown.clone()));

        let mut config = DaemonConfig::new(dir.path());
        config.public_url = Some(webhook_url.clone());
        config.poll_interval = opts.poll_interval;
        config.owner = "e2e".into();
        let client = client(&sim_url, &clock, opts.client_retries);
        let daemon = Daemon::new(
            store.clone(),
            client,
            clock.shared(),
            hub.clone(),
            config.clone(),
        );
        Env {
            clock,
            sim: handle,
            sim_url,
            store,
            store_url,
            daemon,
            hub,
            dir,
            webhook_url,
            shutdown,
            config,
            _pg: pg,
        }
    }

    /// A new daemon on the same store, directory and simulator: what a restart looks like.
    pub fn restart(&mut self) {
        let client = client(&self.sim_url, &self.clock, 3);
        self.hub = Arc::new(Hub::new(Metrics::new()));
        self.daemon = Daemon::new(
            self.store.clone(),
            client,
            self.clock.shared(),
            self.hub.clone(),
            self.config.clone(),
        );
    }

    pub fn now(&self) -> DateTime<Utc> {
        use clock::Clock;
        self.clock.now()
    }

    /// One step at the clock's current instant: the simulator catches up, the daemon reconciles, callbacks land.
    pub async fn step(&mut self) -> Outcome {
        let now = self.now();
        self.sim.advance_to(now);
        let out = self.daemon.reconcile_once(now).await;
        self.sim.flush_callbacks().await;
        out
    }

    /// Steps from now until `until`, jumping to each wake-up the daemon asks for (at most `max_step` apart).
    pub async fn run_until(&mut self, until: DateTime<Utc>, max_step: Duration) -> Vec<Outcome> {
        let mut outs = Vec::new();
        loop {
            let out = self.step().await;
            let now = self.now();
            let next = out
                .next_wake
                .unwrap_or(now + max_step)
                .min(now + max_step)
                .max(now + Duration::seconds(1));
            outs.push(out);
            if now >= until {
                break;
            }
            self.clock.set(next.min(until));
        }
        outs
    }

    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).unwrap();
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).unwrap();
    }

    pub fn spec(&self, name: &str) -> campaign::CampaignSpec {
        campaign::load_campaign(&self.dir.path().join(name)).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn client(sim_url: &str, clock: &ManualClock, retries: u32) -> Client {
    let mut cc = ClientConfig::new(sim_url, UUID, SecretKey::new(SECRET.into()));
    cc.requests_per_second = 0;
    cc.request_timeout = std::time::Duration::from_millis(1500);
    cc.retry = RetryPolicy {
        max_attempts: retries.max(1),
        base_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(20),
    };
    Client::new(cc, clock.shared()).unwrap()
}

async fn open_store(
    backend: Backend,
    dir: &Path,
) -> (Arc<dyn Store>, String, Option<testkit::TestDatabase>) {
    match backend {
        Backend::Sqlite => {
            let url = testkit::sqlite_url(dir);
            let s = store_sqlite::SqliteStore::open(&url).await.unwrap();
            (Arc::new(s), url, None)
        }
        Backend::Postgres => {
            let db = testkit::postgres_database().await;
            let url = db.url.clone();
            let s = store_postgres::PgStore::connect(&url).await.unwrap();
            (Arc::new(s), url, Some(db))
        }
    }
}

/// Checks the harms on the simulator's logs: no call outside its campaign's calendar, no order ID accepted twice, and
/// no phone accepted twice in one task unless it is a retry the campaign's `[retry]` allows (the outcome, the delay
/// since the previous attempt's last call ended, and the attempts in all). Returns the number of accepted submissions per campaign task.
pub fn assert_no_harm(sim: &SimHandle, specs: &[campaign::CampaignSpec]) -> HashMap<String, usize> {
    // Each campaign with its contacts' zone groups read from its file, as the daemon reads them.
    let specs: Vec<campaign::CampaignSpec> = specs.iter().map(with_audience).collect();
    let by_task: HashMap<String, &campaign::CampaignSpec> = specs
        .iter()
        .flat_map(|s| daemon::user_task_ids(s).into_iter().map(move |ut| (ut, s)))
        .collect();
    let groups: HashMap<String, HashMap<String, campaign::ZoneGroup>> = specs
        .iter()
        .map(|s| (s.id.clone(), contact_groups(s)))
        .collect();
    for call in sim.call_log() {
        let spec = by_task
            .get(&call.user_task_id)
            .expect("every call belongs to a campaign's task");
        // The call is judged by its contact's own zones and legal rules: the campaign's windows read in the
        // campaign's zone (or, with timezone = "contact", in each of the contact's zones), narrowed by every rule
        // that applies to the contact, read in each of its zones.
        let phone: String = call.phone.chars().filter(char::is_ascii_digit).collect();
        let group = groups[&spec.id].get(&phone);
        let allowed = match group {
            Some(g) if spec.schedule.contact_zones => {
                campaign::ContactCalendar::for_group(&spec.schedule, g).allows(call.start_utc)
            }
            Some(g) => campaign::ContactCalendar::for_named_zone(&spec.schedule, [g])
                .allows(call.start_utc),
            None => spec.calendar().allows(call.start_utc),
        };
        assert!(
            allowed,
            "call {} of {} to {phone} ({}) at {} (campaign-local {}) is outside the contact's allowed hours",
            call.call_id,
            spec.id,
            group.map_or("no group".to_string(), campaign::ZoneGroup::label),
            call.start_utc,
            spec.schedule.zone.local(call.start_utc)
        );
        assert!(
            call.concurrent_at_start <= spec.robots,
            "more concurrent calls than robots: {call:?}"
        );
    }
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut phones: BTreeMap<(String, String), Vec<callbot_sim::Submission>> = BTreeMap::new();
    let mut per_task: HashMap<String, usize> = HashMap::new();
    for s in sim.submissions().into_iter().filter(|s| s.accepted) {
        *ids.entry(s.order_id.clone()).or_default() += 1;
        *per_task.entry(s.user_task_id.clone()).or_default() += 1;
        phones
            .entry((s.user_task_id.clone(), s.phone.clone()))
            .or_default()
            .push(s);
    }
    let dup_ids: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup_ids.is_empty(), "order IDs accepted twice: {dup_ids:?}");
    // A phone accepted again in one task is a retry: it must be one the campaign's [retry] allows, after the
    // previous attempt's last call ended in a retried outcome and the rule's delay passed, within max_attempts.
    let calls = sim.call_log();
    for ((task, phone), subs) in phones.iter().filter(|(_, v)| v.len() > 1) {
        let spec = by_task.get(task).unwrap_or_else(|| {
            panic!("phone {phone} accepted {} times in task {task}", subs.len())
        });
        assert!(
            subs.len() as u32 <= spec.retry.max_attempts(),
            "phone {phone} accepted {} times in {}, more than [retry] allows",
            subs.len(),
            spec.id
        );
        for (n, pair) in subs.windows(2).enumerate() {
            let (prev, next) = (&pair[0], &pair[1]);
            let last = calls
                .iter()
                .filter(|c| c.order_id == prev.order_id)
                .max_by_key(|c| c.start_utc)
                .unwrap_or_else(|| {
                    panic!(
                        "attempt {} of {phone} in {} was never dialled, yet retried",
                        n + 1,
                        spec.id
                    )
                });
            let ended = last.end_utc.expect("a retried attempt's call ended");
            // The campaign crate's own rule (the daemon computes the same in SQL): when the next attempt may go.
            let due = spec
                .retry
                .next_due(n as u32 + 1, last.call_status, ended)
                .unwrap_or_else(|| {
                    panic!(
                        "{phone} in {}: attempt {} after callStatus {} is not one [retry] allows (no rule, or past \
                         max_attempts)",
                        spec.id,
                        n + 2,
                        last.call_status
                    )
                });
            assert!(
                next.at >= due,
                "{phone} in {}: attempt {} uploaded at {}, before it was due at {due} (the last call ended at {ended})",
                spec.id,
                n + 2,
                next.at
            );
        }
    }
    per_task
}

/// The task's status at `at`, from the simulator's status history.
pub fn status_at(task: &callbot_sim::TaskView, at: DateTime<Utc>) -> Option<i64> {
    task.status_history
        .iter()
        .rfind(|c| c.at <= at)
        .map(|c| c.to)
}

/// The `campaignd` binary of this workspace, built on demand (the e2e package cannot depend on a binary).
pub fn campaignd_bin() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--quiet", "-p", "campaignd", "--bin", "campaignd"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build -p campaignd failed");
            // target/<profile>/deps/<this test> -> target/<profile>/campaignd
            let exe = std::env::current_exe().unwrap();
            let bin = exe
                .parent()
                .and_then(std::path::Path::parent)
                .unwrap()
                .join("campaignd");
            assert!(bin.exists(), "no campaignd binary at {}", bin.display());
            bin
        })
        .clone()
}

/// The simulator over a loopback socket in real time, for a daemon the test runs as a process of its own (it reads
/// the system clock), until `shutdown`. Returns its handle and its URL.
pub async fn real_time_sim(cfg: SimConfig, shutdown: &CancellationToken) -> (SimHandle, String) {
    let sim = Simulator::new(cfg, clock::SystemClock::shared());
    let handle = sim.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.run(listener, shutdown.clone()));
    (handle, url)
}

/// The URL of a fresh store for a daemon run as a process: SQLite in `dir`, or a new PostgreSQL database, which
/// lives as long as the returned guard.
pub async fn fresh_store_url(
    backend: Backend,
    dir: &Path,
) -> (String, Option<testkit::TestDatabase>) {
    match backend {
        Backend::Sqlite => (testkit::sqlite_url(dir), None),
        Backend::Postgres => {
            let db = testkit::postgres_database().await;
            (db.url.clone(), Some(db))
        }
    }
}

/// How many orders of the task the simulator accepted.
pub fn accepted_of(sim: &SimHandle, user_task_id: &str) -> usize {
    sim.submissions()
        .iter()
        .filter(|s| s.accepted && s.user_task_id == user_task_id)
        .count()
}

/// A free loopback port (bound and released), for a daemon the test runs as a process of its own.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `campaignd run` in `dir` (its campaigns in `dir/campaigns`), against the simulator at `sim_url` and the store at
/// `store_url`, its webhook listening on `port`, with a clean environment, quiet, platform requests timing out
/// after 1 s. The caller may set more (a later `env` of the same name wins), then spawns it.
pub fn run_command(dir: &Path, sim_url: &str, store_url: &str, port: u16) -> std::process::Command {
    let mut cmd = std::process::Command::new(campaignd_bin());
    cmd.arg("run")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CAMPAIGND_PLATFORM__BASE_URL", sim_url)
        .env("CAMPAIGND_PLATFORM__UUID", UUID)
        .env("CAMPAIGND_PLATFORM__SECRET_KEY", SECRET)
        .env("CAMPAIGND_PLATFORM__REQUESTS_PER_SECOND", "10")
        .env("CAMPAIGND_PLATFORM__REQUEST_TIMEOUT", "1s")
        .env("CAMPAIGND_STORE__URL", store_url)
        .env("CAMPAIGND_CAMPAIGNS__DIR", dir.join("campaigns"))
        .env("CAMPAIGND_CAMPAIGNS__RESCAN_INTERVAL", "1s")
        .env("CAMPAIGND_WEBHOOK__LISTEN", format!("127.0.0.1:{port}"))
        .env("CAMPAIGND_RECONCILE__POLL_INTERVAL", "1s")
        .env("CAMPAIGND_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// Waits (bounded) for a condition on the simulator's state, for a daemon that runs as another process: there is no
/// step to drive, so this is the one place such a test waits on real time.
pub async fn wait_for(
    sim: &SimHandle,
    what: &str,
    limit: std::time::Duration,
    cond: impl Fn(&SimHandle) -> bool,
) {
    let deadline = std::time::Instant::now() + limit;
    while !cond(sim) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Runs each named `async fn name(backend: Backend)` of the including test file as two tests, `sqlite::name` and
/// `postgres::name`.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// The campaign with its audience read from its contacts file (when a test built the spec without it).
pub fn with_audience(spec: &campaign::CampaignSpec) -> campaign::CampaignSpec {
    let mut spec = spec.clone();
    if spec.audience.is_none() {
        spec.audience = campaign::Audience::read(&spec, &campaign::ContactLimits::default()).ok();
    }
    spec
}

/// Each phone of the campaign's contacts file (normalised) with its zone group.
fn contact_groups(spec: &campaign::CampaignSpec) -> HashMap<String, campaign::ZoneGroup> {
    let Ok(reader) = campaign::ContactReader::open(spec) else {
        return HashMap::new();
    };
    reader
        .filter_map(Result::ok)
        .filter_map(|c| campaign::group_of(spec, &c).map(|g| (c.phone.clone(), g)))
        .collect()
}
