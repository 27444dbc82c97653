//! What every scenario needs: a store, a client for the simulator, campaign files and contact lists.

use std::fmt::Write as _;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use callbot_api::{Client, ClientConfig, SecretKey};
use clock::SharedClock;
use daemon::{Daemon, DaemonConfig, Hub, Metrics};
use store::Store;

use crate::simproc::{SECRET, UUID};

/// Which store backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// A fresh store; the SQLite file or the PostgreSQL database lives as long as this value.
#[derive(Debug)]
pub struct StoreEnv {
    pub store: Arc<dyn Store>,
    pub url: String,
    /// How commits reach the disk: SQLite `wal/full`; PostgreSQL `fsync/synchronous_commit`.
    pub durability: String,
    _sqlite_dir: Option<tempfile::TempDir>,
    _pg: Option<testkit::TestDatabase>,
}

/// A fresh, migrated store: a SQLite file on disk (WAL, as the daemon opens it), or a fresh database on a real
/// PostgreSQL server (`TEST_DATABASE_URL`, or a throwaway cluster, see `testkit`).
pub async fn open_store(kind: StoreKind) -> anyhow::Result<StoreEnv> {
    match kind {
        StoreKind::Sqlite => {
            let dir = tempfile::Builder::new()
                .prefix("bench-sqlite-")
                .tempdir()
                .context("creating a directory for the SQLite file")?;
            let url = testkit::sqlite_url(dir.path());
            let store = store_sqlite::SqliteStore::open(&url)
                .await
                .with_context(|| format!("opening {url}"))?;
            Ok(StoreEnv {
                store: Arc::new(store),
                url,
                durability: "wal/full".into(),
                _sqlite_dir: Some(dir),
                _pg: None,
            })
        }
        StoreKind::Postgres => {
            let db = testkit::postgres_database().await;
            let durable = durability(&db.url).await?;
            let store = store_postgres::PgStore::connect(&db.url)
                .await
                .context("connecting to the PostgreSQL database")?;
            Ok(StoreEnv {
                store: Arc::new(store),
                url: db.url.clone(),
                durability: durable,
                _sqlite_dir: None,
                _pg: Some(db),
            })
        }
    }
}

/// Whether the PostgreSQL server flushes commits: `fsync` and `synchronous_commit`, e.g. `"on/on"`. testkit's
/// throwaway cluster runs with both off (fast tests); the figures in BENCHMARKS.md come from a server with both on,
/// given by `TEST_DATABASE_URL`.
async fn durability(url: &str) -> anyhow::Result<String> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    let (fsync, sync): (String, String) =
        sqlx::query_as("SELECT current_setting('fsync'), current_setting('synchronous_commit')")
            .fetch_one(&mut conn)
            .await
            .context("reading the durability settings")?;
    Ok(format!("{fsync}/{sync}"))
}

/// The phone number of contact `i`: a Chinese mobile number, valid and distinct for i < 10^8.
pub fn phone(i: u64) -> String {
    format!("+86138{:08}", i % 100_000_000)
}

/// The same number as the contact reader normalises it (country code and national number, digits only).
pub fn normalized_phone(i: u64) -> String {
    format!("86138{:08}", i % 100_000_000)
}

/// Writes a CSV of contacts `first..first + n` (header `phone,name,customer,other,amount`).
pub fn write_csv(path: &Path, first: u64, n: u64) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut line = String::with_capacity(96);
    out.write_all(b"phone,name,customer,other,amount\n")?;
    for i in first..first + n {
        line.clear();
        let _ = writeln!(
            line,
            "{},Contact {i},C{i},ref-{i},{}.00",
            phone(i),
            10 + i % 990
        );
        out.write_all(line.as_bytes())?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A campaign file dialling every day around the clock (so the simulator's referee allows every call whenever the
/// benchmark runs), `task_keep` on and `round_redial` off (one call per order), batches of 1000 (the largest).
pub fn campaign_toml(csv_file: &str, paused: bool, robots: u32) -> String {
    format!(
        r#"scene_id = "SC-BENCH"
robots = {robots}
max_ring_seconds = 30
paused = {paused}

[schedule]
timezone = "UTC"
windows = [
  {{ days = "mon-sun", hours = ["00:00-24:00"] }},
]

[features]
task_keep = true
round_redial = false
whole_tts = true
phone_encrypt = false

[contacts]
file = "{csv_file}"
variables = ["amount"]
batch_size = 1000
"#
    )
}

/// A client for the simulator with no request-rate limit (the daemon's default is 20/s; see BENCHMARKS.md).
pub fn client(base_url: &str, clock: SharedClock) -> anyhow::Result<Client> {
    Client::new(client_config(base_url), clock).context("building the platform client")
}

/// [`client`], waiting up to `timeout` for each answer.
pub fn client_with_timeout(
    base_url: &str,
    clock: SharedClock,
    timeout: std::time::Duration,
) -> anyhow::Result<Client> {
    let mut cc = client_config(base_url);
    cc.request_timeout = timeout;
    Client::new(cc, clock).context("building the platform client")
}

fn client_config(base_url: &str) -> ClientConfig {
    let mut cc = ClientConfig::new(base_url, UUID, SecretKey::new(SECRET.to_owned()));
    cc.requests_per_second = 0;
    cc
}

/// The daemon's reconciler over `dir`, without callbacks (polling only), as `campaignd run` builds it.
pub fn daemon(
    store: Arc<dyn Store>,
    client: Client,
    clock: SharedClock,
    dir: &Path,
    poll_interval: chrono::Duration,
) -> (Daemon, Arc<Hub>) {
    daemon_with(
        store,
        client,
        clock,
        dir,
        poll_interval,
        Platform::default(),
    )
}

/// How the platform is reached in `upload` and `reconcile`: the daemon's requests in flight (`--in-flight`) and the
/// simulator's answer latency (`--latency-ms`).
#[derive(Debug, Clone, Copy)]
pub struct Platform {
    pub in_flight: usize,
    pub latency: std::time::Duration,
}

impl Default for Platform {
    /// The daemon's default requests in flight; the simulator answering at once.
    fn default() -> Self {
        Platform {
            in_flight: DaemonConfig::new(".").requests_in_flight,
            latency: std::time::Duration::ZERO,
        }
    }
}

/// [`daemon`], with `platform.in_flight` requests in flight.
pub fn daemon_with(
    store: Arc<dyn Store>,
    client: Client,
    clock: SharedClock,
    dir: &Path,
    poll_interval: chrono::Duration,
    platform: Platform,
) -> (Daemon, Arc<Hub>) {
    let hub = Arc::new(Hub::new(Metrics::new()));
    let mut config = DaemonConfig::new(dir);
    config.poll_interval = poll_interval;
    config.requests_in_flight = platform.in_flight;
    config.owner = "bench".into();
    // Ten million contacts make a CSV of about 590 MB, over the default `[contacts] max_file_bytes` (512 MiB): an
    // operator uploading that many in one file raises the limit, and so does the bench.
    config.contact_limits.max_file_bytes = 4 << 30;
    let d = Daemon::new(store, client, clock, hub.clone(), config);
    (d, hub)
}

/// The sum of every sample of a metric family in the daemon's Prometheus text (`name{...} value` lines).
pub fn metric_sum(hub: &Hub, name: &str, label_filter: &str) -> f64 {
    hub.metrics
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(label_filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_contacts_are_valid_and_distinct() {
        let a = campaign::normalize_phone(&phone(0), None).unwrap();
        let b = campaign::normalize_phone(&phone(999_999), None).unwrap();
        assert_eq!(a, normalized_phone(0));
        assert_eq!(b, normalized_phone(999_999));
        assert_ne!(a, b);
    }

    #[test]
    fn generated_campaign_file_validates() {
        let dir = tempfile::tempdir().unwrap();
        write_csv(&dir.path().join("c.csv"), 0, 3).unwrap();
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, campaign_toml("c.csv", false, 100)).unwrap();
        let spec = campaign::load_campaign(&path).unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(spec.robots, 100);
        assert_eq!(spec.contacts.batch_size, 1000);
    }
}
