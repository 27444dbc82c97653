//! report: what reading a large campaign costs. A store of N orders with their calls (the simulator's default outcome
//! mix, over 30 UTC days) is built with the database's fastest bulk path, outside the store crate, then
//! `Store::rebuild_rollups` derives the orders' flags and every rollup from those raw rows; none of that is timed
//! (`build_secs` says how long it took). Then, each warmed once and timed [`RUNS`] times (median and max, ms):
//!
//! - `status_ms`: the store reads `campaignd status <campaign>` makes (`commands/status.rs`), in-process through the
//!   daemon library: the campaign records, the lease, the round in force, the task's recorded zone groups, the
//!   snapshot (`order_counts`, `order_progress`, `tasks`), the held numbers under campaignd's default caps, the
//!   tasks again, and the pure decisions. Not the directory scan, which reads the campaign's contacts file.
//! - `views_ms`: `SELECT * FROM <view> WHERE campaign_id = ?`, every row fetched, for each report view.
//! - `report_ms`: `Store::report` for the campaign (what `campaignd report` reads from the store).
//! - `metrics_ms`: a `/metrics` scrape only renders memory (`metrics_reads_store: false`): the reconciler refreshes
//!   the order gauges from the store at each pass. So this is the reads of that refresh (`tasks_of` and
//!   `order_progress_of`, at once, as the prefetch does), setting the gauges, and the render.
//!
//! The raw rows: one campaign (generation 2) with two tasks, generation 1 (completed) holding the first fifth of the
//! orders and generation 2 (running) the rest. 0.5 % of the orders were never uploaded (`rejected`, half of them
//! `suppressed: cli`); the last 4 % are sent and not dialled yet; every other order has one finished call, started
//! in source-line order over the 30 days, its status drawn from `callbot_sim::OutcomeConfig::default()` by a
//! fixed permutation of the order's index (so every day has the mix), with the simulator's durations; every answered
//! call has one of the simulator's four intents, and one answered call in 40 an SMS. Order and call IDs are UUID
//! shaped and in no particular order, as real ones are. No transcript lines: no report reads them.
//!
//! SQLite: per million orders one transaction of `INSERT ... SELECT` over a recursive CTE (the rows are made inside
//! SQLite), on a connection with a 1 GB page cache (the build's only; the store's own connections keep theirs).
//! PostgreSQL: the same statements over `generate_series`, with the session's triggers off
//! (`session_replication_role = replica`, when the role may set it; `load_triggers` says), then after the rebuild
//! `VACUUM ANALYZE`, as autovacuum would do soon after such a load. After the build the rollups are checked against
//! counts of the raw rows; a mismatch fails the run.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clock::{Clock as _, SystemClock};
use serde_json::{Map, Value, json};
use sqlx::{AssertSqlSafe, Connection as _};
use store::{OrderCounts, ReportFilter, Store, TaskKey};

use crate::env::{self, StoreKind};
use crate::limits;
use crate::report::{Figures, short};

const ID: &str = "bench-report";
/// The calls' start times span this many UTC days, ending at the last midnight.
const DAYS: i64 = 30;
/// Timed repetitions of each read, after one warm-up.
const RUNS: usize = 5;
/// The largest store whose `_raw` twins are read too.
const RAW_MAX: u64 = 1_000_000;
/// Orders written per transaction.
const CHUNK: u64 = 1_000_000;
/// The report views, each read with `WHERE campaign_id = ?`.
const VIEWS: [&str; 7] = [
    "report_campaign_daily",
    "report_campaign_totals",
    "report_call_status",
    "report_intents",
    "report_rejected",
    "report_rounds",
    "report_zone_groups",
];
/// The simulator's four intents (`callbot-sim`'s `outcome.rs`): ID, name, level.
const INTENTS: [(&str, &str, i64); 4] = [
    ("A", "Interested", 1),
    ("B", "Call back later", 2),
    ("C", "Not interested", 3),
    ("D", "Wrong person", 4),
];
/// campaignd's default `[caps] attempts` (3 calls a day, 4 in 30 days per number): `status` reads the held numbers
/// under them.
const DEFAULT_CAPS: [(u64, u32); 2] = [(86_400, 3), (30 * 86_400, 4)];

pub async fn run(n: u64, kind: StoreKind) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    let spec = campaign_spec(dir.path())?;
    let env = env::open_store(kind).await?;
    let now = SystemClock.now();
    let layout = Layout::new(n, &spec, now);

    let t = Instant::now();
    seed(env.store.as_ref(), &spec, &layout, now).await?;
    // SQLite cannot switch its triggers off: they are taken out for the load and the rebuild (which counts
    // everything from the raw rows anyway) and put back before anything is read.
    let sqlite_triggers = match kind {
        StoreKind::Sqlite => Some(take_out_triggers_sqlite(&env.url).await?),
        StoreKind::Postgres => None,
    };
    let (rows, load_triggers, load_secs) = match kind {
        StoreKind::Sqlite => load_sqlite(&env.url, &layout).await?,
        StoreKind::Postgres => load_postgres(&env.url, &layout).await?,
    };
    let rebuild_t = Instant::now();
    env.store
        .rebuild_rollups()
        .await
        .context("rebuilding the rollups from the raw rows")?;
    let rebuild_secs = rebuild_t.elapsed().as_secs_f64();
    if let Some(triggers) = sqlite_triggers {
        put_back_triggers_sqlite(&env.url, &triggers).await?;
    }
    // What a store in service has done long since: PostgreSQL's statistics, and SQLite's WAL copied back into the
    // database (the build writes gigabytes of it in one transaction; every read would search it).
    let (settle, settle_secs) = match kind {
        StoreKind::Sqlite => ("wal_checkpoint_secs", checkpoint_sqlite(&env.url).await?),
        StoreKind::Postgres => ("vacuum_analyze_secs", vacuum_analyze(&env.url).await?),
    };
    let build_secs = t.elapsed().as_secs_f64();
    let raw = match kind {
        StoreKind::Sqlite => {
            let mut conn = limits::sqlite_connection(&env.url).await?;
            raw_counts_sqlite(&mut conn).await?
        }
        StoreKind::Postgres => {
            let mut conn = pg_connection(&env.url).await?;
            raw_counts_pg(&mut conn).await?
        }
    };
    check_rollups(env.store.as_ref(), &raw).await?;
    // The build's memory (its page cache, the row counts) is not the reads': measure the peak from here on.
    let rss_scope = if reset_peak_rss() { "reads" } else { "run" };

    let store = env.store.as_ref();
    let apply_delay = daemon::DaemonConfig::new(dir.path()).apply_delay;
    let (status, counts) = timed(async || status_reads(store, now, apply_delay).await).await?;
    let filter = ReportFilter {
        campaign: Some(ID.to_owned()),
        since: None,
    };
    let (report, report_rows) = timed(async || {
        let r = store.report(&filter).await.context("Store::report")?;
        Ok(r.totals.len()
            + r.daily.len()
            + r.call_status.len()
            + r.intents.len()
            + r.rejected.len()
            + r.rounds.len()
            + r.zone_groups.len())
    })
    .await?;
    // Each view, then (once, not warmed) its `_raw` twin: the same figures aggregated from the raw tables, as every
    // view read them before the rollups; and a bare round trip, the least any read costs.
    let mut reads = ViewReads::open(kind, &env.url).await?;
    let mut views = Vec::new();
    for view in VIEWS {
        let sql = format!("SELECT * FROM {view} WHERE campaign_id = {}", reads.param());
        let (t, rows) = timed(async || {
            reads
                .rows(&sql)
                .await
                .with_context(|| format!("reading {view}"))
        })
        .await?;
        views.push((view, t, rows));
    }
    // Up to RAW_MAX orders: past that each raw twin takes minutes, and what they cost there is no longer news.
    let mut raw_views = Vec::new();
    for view in VIEWS.into_iter().filter(|_| n <= RAW_MAX) {
        let sql = format!(
            "SELECT * FROM {view}_raw WHERE campaign_id = {}",
            reads.param()
        );
        let t = Instant::now();
        reads
            .rows(&sql)
            .await
            .with_context(|| format!("reading {view}_raw"))?;
        raw_views.push((view, t.elapsed().as_secs_f64() * 1000.0));
    }
    let (roundtrip, _) = timed(async || reads.rows("SELECT 1").await).await?;
    let metrics = daemon::Metrics::new();
    let ids = [ID.to_owned()];
    let uts = [layout.tasks[1].0.clone()];
    let (scrape, scrape_bytes) =
        timed(async || metrics_refresh_and_render(store, &metrics, &ids, &uts).await).await?;
    let (render, _) = timed(async || Ok(metrics.render().len())).await?;
    let peak = crate::procfs::peak_rss_mb(None);
    let rss = crate::procfs::rss_mb(None);

    let mut f = Figures::new("report", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    f.put("status_ms", status.median_ms)
        .put("status_max_ms", status.max_ms)
        .put("report_ms", report.median_ms)
        .put("report_max_ms", report.max_ms)
        .put("report_rows", report_rows as u64)
        .put("metrics_ms", scrape.median_ms)
        .put("metrics_max_ms", scrape.max_ms)
        .put("metrics_render_ms", render.median_ms)
        .put("metrics_bytes", scrape_bytes as u64)
        .put("metrics_reads_store", false);
    let mut views_ms = Map::new();
    let mut views_max_ms = Map::new();
    let mut views_rows = Map::new();
    for (view, t, rows) in &views {
        views_ms.insert((*view).into(), rounded(t.median_ms));
        views_max_ms.insert((*view).into(), rounded(t.max_ms));
        views_rows.insert((*view).into(), json!(rows));
    }
    let slowest = views
        .iter()
        .max_by(|a, b| a.1.median_ms.total_cmp(&b.1.median_ms))
        .map(|(v, t, _)| (*v, t.median_ms))
        .unwrap_or(("", f64::NAN));
    let raw_ms: Map<String, Value> = raw_views
        .iter()
        .map(|(v, ms)| ((*v).into(), rounded(*ms)))
        .collect();
    f.put("views_raw_ms", Value::Object(raw_ms))
        .put("roundtrip_ms", roundtrip.median_ms);
    f.put("views_ms", Value::Object(views_ms))
        .put("views_max_ms", Value::Object(views_max_ms))
        .put("views_rows", Value::Object(views_rows))
        .put("slowest_view", slowest.0)
        .put("slowest_view_ms", slowest.1)
        .put("timed_runs", RUNS as u64)
        .put("orders", rows.orders)
        .put("calls", rows.calls)
        .put("intents", rows.intents)
        .put("sms", rows.sms)
        .put("orders_dialled", counts.dialled)
        .put("orders_answered", counts.answered)
        .put("build_secs", build_secs)
        .put("load_secs", load_secs)
        .put("load_triggers", load_triggers)
        .put("rebuild_secs", rebuild_secs);
    f.put(settle, settle_secs);
    f.put("peak_rss_mb", peak)
        .put("peak_rss_scope", rss_scope)
        .put("rss_mb", rss);
    let views_line: Vec<String> = views
        .iter()
        .map(|(v, t, _)| format!("{} {}", v.trim_start_matches("report_"), short(t.median_ms)))
        .collect();
    let raw_line: Vec<String> = raw_views
        .iter()
        .map(|(v, ms)| format!("{} {}", v.trim_start_matches("report_"), short(*ms)))
        .collect();
    f.line = format!(
        "report [{}] {n} orders, {} calls over {DAYS} days (built in {} s, not timed): status {} ms, report {} ms, \
         /metrics {} ms (gauge refresh reads + render; the scrape itself renders memory in {} ms); views (ms): {}; \
         median of {RUNS} after a warm-up; the same views from the raw tables, once (ms): {}; a round trip {} ms; \
         peak RSS {} MB ({})",
        kind.as_str(),
        rows.calls,
        short(build_secs),
        short(status.median_ms),
        short(report.median_ms),
        short(scrape.median_ms),
        short(render.median_ms),
        views_line.join(", "),
        raw_line.join(", "),
        short(roundtrip.median_ms),
        short(peak),
        rss_scope,
    );
    Ok(f)
}

/// A figure in ms rounded to 3 decimals, as [`Figures::put`] rounds its numbers.
fn rounded(ms: f64) -> Value {
    json!((ms * 1000.0).round() / 1000.0)
}

/// One connection for the view reads, of either backend.
enum ViewReads {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl ViewReads {
    async fn open(kind: StoreKind, url: &str) -> anyhow::Result<ViewReads> {
        Ok(match kind {
            StoreKind::Sqlite => ViewReads::Sqlite(limits::sqlite_connection(url).await?),
            StoreKind::Postgres => ViewReads::Postgres(pg_connection(url).await?),
        })
    }

    /// The placeholder of the campaign ID.
    fn param(&self) -> &'static str {
        match self {
            ViewReads::Sqlite(_) => "?",
            ViewReads::Postgres(_) => "$1",
        }
    }

    /// Fetches every row of `sql` (binding the campaign ID when it has a placeholder); returns how many.
    async fn rows(&mut self, sql: &str) -> anyhow::Result<usize> {
        let bound = sql.contains(self.param());
        Ok(match self {
            ViewReads::Sqlite(conn) => {
                let q = sqlx::query(AssertSqlSafe(sql.to_owned()));
                let q = if bound { q.bind(ID) } else { q };
                q.fetch_all(&mut *conn).await?.len()
            }
            ViewReads::Postgres(conn) => {
                let q = sqlx::query(AssertSqlSafe(sql.to_owned()));
                let q = if bound { q.bind(ID) } else { q };
                q.fetch_all(&mut *conn).await?.len()
            }
        })
    }
}

/// Median and max of one read's timed runs.
#[derive(Debug, Clone, Copy)]
struct Timing {
    median_ms: f64,
    max_ms: f64,
}

/// Runs `f` once to warm up, then [`RUNS`] times timed; returns the timing and the last run's value.
async fn timed<T>(mut f: impl AsyncFnMut() -> anyhow::Result<T>) -> anyhow::Result<(Timing, T)> {
    let mut last = f().await?;
    let mut ms = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        last = f().await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let median = if RUNS % 2 == 1 {
        ms[RUNS / 2]
    } else {
        (ms[RUNS / 2 - 1] + ms[RUNS / 2]) / 2.0
    };
    Ok((
        Timing {
            median_ms: median,
            max_ms: ms[RUNS - 1],
        },
        last,
    ))
}

/// The campaign file (generation 2, dialling around the clock, as the other scenarios' files) with its audience
/// read from a short contacts file of the same numbers: the spec the daemon would store.
fn campaign_spec(dir: &std::path::Path) -> anyhow::Result<campaign::CampaignSpec> {
    env::write_csv(&dir.join("contacts.csv"), 0, 10)?;
    let file = dir.join(format!("{ID}.toml"));
    std::fs::write(
        &file,
        format!(
            "generation = 2\n{}",
            env::campaign_toml("contacts.csv", false, 100)
        ),
    )?;
    let mut spec = campaign::load_campaign(&file).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let audience = campaign::Audience::read(&spec, &campaign::ContactLimits::default())
        .context("reading the contacts' zone groups")?;
    spec.audience = Some(audience);
    Ok(spec)
}

/// Where the rows go and what they hold, as the SQL that writes them reads it.
#[derive(Debug)]
struct Layout {
    n: u64,
    /// `(user_task_id, generation)`: generation 1 holds orders `0..first_task`, generation 2 the rest.
    tasks: [(String, u32); 2],
    first_task: u64,
    /// Orders `0..dialled_below` (unless rejected) have a call; the rest are sent and not dialled yet.
    dialled_below: u64,
    /// Unix time of the first call's start (a midnight, UTC).
    start: i64,
    /// The zone group of the tasks (JSON, as the daemon records it).
    zone_group: String,
}

impl Layout {
    fn new(n: u64, spec: &campaign::CampaignSpec, now: DateTime<Utc>) -> Layout {
        let mut first = spec.clone();
        first.generation = 1;
        let midnight = now.timestamp() - now.timestamp().rem_euclid(86_400);
        let zone_group = spec
            .audience
            .as_ref()
            .and_then(|a| a.groups.first())
            .and_then(|g| serde_json::to_string(&g.group).ok())
            .unwrap_or_default();
        Layout {
            n,
            tasks: [
                (daemon::user_task_id(&first), 1),
                (daemon::user_task_id(spec), spec.generation),
            ],
            first_task: n / 5,
            dialled_below: n - n / 25,
            start: midnight - DAYS * 86_400,
            zone_group,
        }
    }

    /// Whether order `i` was never uploaded (SQL condition on `i`).
    fn rejected(&self) -> &'static str {
        "(i % 200 = 199)"
    }

    /// Whether order `i` has a call.
    fn dialled(&self) -> String {
        format!("(i % 200 <> 199 AND i < {})", self.dialled_below)
    }

    /// When order `i` was uploaded (Unix seconds): source-line order over the [`DAYS`] days, an hour before its call.
    fn uploaded_at(&self) -> String {
        format!(
            "({} - 3600 + i * {} / {})",
            self.start,
            DAYS * 86_400,
            self.n.max(1)
        )
    }

    /// The start of order `i`'s call (Unix seconds): source-line order over [`DAYS`] days.
    fn call_start(&self) -> String {
        format!(
            "({} + i * {} / {})",
            self.start,
            DAYS * 86_400,
            self.dialled_below.max(1)
        )
    }
}

/// One outcome of the simulator's default mix, as a per-mille bucket of `b = i * 37 % 1000` (a permutation of every
/// 1000 consecutive orders).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The bucket is `b < upper` (and above the previous one's).
    upper: i64,
    call_status: i64,
    /// From dialling to hang-up when not answered, seconds.
    secs: u64,
    hangup_cause: &'static str,
    sip_code: &'static str,
}

/// The simulator's default outcome mix (`callbot_sim::OutcomeConfig::default()`), answered first.
fn outcome_buckets() -> Vec<Bucket> {
    use callbot_sim::Outcome;
    let config = callbot_sim::OutcomeConfig::default();
    let total: f64 = config.weights.iter().map(|(_, w)| w.max(0.0)).sum();
    let mut cumulative = 0.0;
    config
        .weights
        .iter()
        .map(|(o, w)| {
            cumulative += w.max(0.0);
            let upper = (cumulative / total * 1000.0).round() as i64;
            let (secs, cause, sip) = match o {
                Outcome::Answered => (0, "NORMAL_CLEARING", "200"),
                Outcome::NoAnswer => (config.default_max_ring_secs, "NO_ANSWER", "480"),
                Outcome::NoResponse => (config.default_max_ring_secs, "NO_USER_RESPONSE", "408"),
                Outcome::Busy => (config.fast_fail_secs, "USER_BUSY", "486"),
                Outcome::Rejected => (config.fast_fail_secs, "CALL_REJECTED", "603"),
                Outcome::Unreachable => (config.fast_fail_secs, "NETWORK_OUT_OF_ORDER", "503"),
                Outcome::InvalidNumber => (config.fast_fail_secs, "UNALLOCATED_NUMBER", "404"),
                _ => (config.fast_fail_secs, "UNSPECIFIED", "500"),
            };
            Bucket {
                upper,
                call_status: o.call_status(),
                secs,
                hangup_cause: cause,
                sip_code: sip,
            }
        })
        .collect()
}

/// The answered calls' ring and talk seconds, from the simulator's ranges, as SQL on `i`.
fn ring_and_talk() -> (String, String) {
    let c = callbot_sim::OutcomeConfig::default();
    let span = |(lo, hi): (u64, u64), k: u64| format!("({lo} + (i * {k}) % {})", hi - lo + 1);
    (span(c.ring_secs, 7), span(c.talk_secs, 7919))
}

/// SQL that differs between the backends.
#[derive(Debug, Clone, Copy)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A CTE `s(i)` of the integers `lo..hi`.
    fn series(self, lo: u64, hi: u64) -> String {
        match self {
            Dialect::Sqlite => format!(
                "WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {hi})"
            ),
            Dialect::Postgres => {
                format!("WITH s(i) AS (SELECT generate_series({lo}::bigint, {hi}::bigint - 1))")
            }
        }
    }

    /// Order `i`'s phone, as the contact reader normalises [`env::phone`]`(i)`.
    fn phone(self) -> &'static str {
        match self {
            Dialect::Sqlite => "'86138' || printf('%08d', i % 100000000)",
            Dialect::Postgres => "'86138' || lpad((i % 100000000)::text, 8, '0')",
        }
    }

    /// The UTC day of Unix seconds, as the store keeps `last_call_day`.
    fn day(self, secs: &str) -> String {
        match self {
            Dialect::Sqlite => format!("date({secs}, 'unixepoch')"),
            Dialect::Postgres => format!("(to_timestamp({secs}) AT TIME ZONE 'UTC')::date"),
        }
    }

    /// A time stamp from Unix seconds, in the store's format.
    fn ts(self, secs: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("(strftime('%Y-%m-%dT%H:%M:%S', {secs}, 'unixepoch') || '.000000Z')")
            }
            Dialect::Postgres => format!("to_timestamp({secs})"),
        }
    }

    /// A UUID-shaped ID for `i`, distinct per `i` and in no particular order; `salt` (0..4) tells ID kinds apart.
    fn uuid(self, salt: u32) -> String {
        match self {
            // The first field scatters (a bijection of i mod 2^32), the last is i itself: distinct.
            Dialect::Sqlite => format!(
                "printf('%08x-%04x-5%03x-%04x-%012x', (i * {}) % 4294967296, (i * 40503) % 65536, \
                 (i * 2473) % 4096, 32768 + (i * 9973 + {salt}) % 16384, i)",
                [2_654_435_761u64, 2_246_822_519, 3_266_489_917, 668_265_263][salt as usize % 4]
            ),
            Dialect::Postgres => format!("md5('{salt}-' || i)::uuid::text"),
        }
    }
}

/// The campaign's record (with its spec, as the daemon stores it) and its two tasks, through the store.
async fn seed(
    store: &dyn Store,
    spec: &campaign::CampaignSpec,
    layout: &Layout,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    store
        .upsert_campaigns(&[store::CampaignRecord {
            id: ID.into(),
            generation: i64::from(spec.generation),
            source_file: spec.source.display().to_string(),
            content_hash: spec.content_hash.clone(),
            spec: Some(serde_json::to_value(spec).context("the spec as JSON")?),
            state: "active".into(),
            last_error: None,
            updated_at: now,
        }])
        .await?;
    let apply_delay = daemon::DaemonConfig::new(".").apply_delay;
    let desired = daemon::desired(spec, now, true, true, apply_delay);
    let settings = desired
        .target
        .map(|t| json!({ "settings": t.settings, "via": "create" }))
        .context("the campaign's calendar allows nothing")?;
    let created = now - chrono::Duration::days(DAYS + 1);
    // Generation 1 completed (3), generation 2 running (2).
    for ((ut, generation), status) in layout.tasks.iter().zip([3, 2]) {
        store
            .task_create_intent(
                &TaskKey {
                    user_task_id: ut.clone(),
                    campaign_id: ID.into(),
                    generation: i64::from(*generation),
                    task_index: 0,
                },
                &settings,
                created,
            )
            .await?;
        store
            .task_status_observed(ut, status, Some(&format!("task-{generation}")), created)
            .await?;
    }
    Ok(())
}

/// Rows written, by table.
#[derive(Debug, Default, Clone, Copy)]
struct Rows {
    orders: u64,
    calls: u64,
    intents: u64,
    sms: u64,
}

/// The statements that write orders `lo..hi` and their facts, in this order.
fn chunk_sql(d: Dialect, l: &Layout, lo: u64, hi: u64) -> [String; 4] {
    let s = d.series(lo, hi);
    let order_id = d.uuid(0);
    let call_id = d.uuid(1);
    let (ut1, ut2) = (&l.tasks[0].0, &l.tasks[1].0);
    let rejected = l.rejected();
    let dialled = l.dialled();
    let start = l.call_start();
    let buckets = outcome_buckets();
    let case = |f: &dyn Fn(&Bucket) -> String| {
        let arms: String = buckets
            .iter()
            .map(|b| format!(" WHEN b < {} THEN {}", b.upper, f(b)))
            .collect();
        format!("CASE{arms} END")
    };
    let answered_upper = buckets.first().map_or(0, |b| b.upper);
    // The orders carry the flags their one call gives them (as the fact writes would set them), so the rebuild
    // that follows only counts: rewriting ten million orders there made SQLite's WAL, read in the same
    // transaction, the slowest part of the build.
    let bucket = "((i * 37) % 1000)";
    let orders = format!(
        "{s}
         INSERT INTO orders (order_id, campaign_id, user_task_id, phone, name, customer, other, source_line,
                             upload_state, reject_reason, state_changed_at, finished, dialled, answered,
                             answered_started, last_call_day, last_call_status)
         SELECT {order_id}, '{ID}', CASE WHEN i < {first} THEN '{ut1}' ELSE '{ut2}' END,
                {phone}, 'Contact ' || i, 'C' || i, 'ref-' || i,
                i + 2,
                CASE WHEN {rejected} THEN 'rejected' ELSE 'sent' END,
                CASE WHEN {rejected} THEN CASE WHEN (i / 200) % 2 = 0 THEN 'suppressed: cli'
                                               ELSE 'invalid phone number' END END,
                {changed},
                {dialled}, {dialled}, {answered}, {answered},
                CASE WHEN {dialled} THEN {day} END,
                CASE WHEN {dialled} THEN {status} END
         FROM s",
        first = l.first_task,
        phone = d.phone(),
        changed = d.ts(&l.uploaded_at()),
        answered = format!("({dialled} AND {bucket} < {answered_upper})"),
        day = d.day(&start),
        status = case(&|b| b.call_status.to_string()).replace("WHEN b <", &format!("WHEN {bucket} <")),
    );
    let (ring, talk) = ring_and_talk();
    let calls = format!(
        "{s},
         c(i, b, st) AS (SELECT i, (i * 37) % 1000, {start} FROM s WHERE {dialled})
         INSERT INTO calls (call_id, order_id, call_status, started_at, answered_at, ended_at, duration_secs,
                            talk_secs, audio_url, hangup_cause, term_sip_code, calling_number, agent, source)
         SELECT {call_id}, {order_id}, {status},
                {started},
                CASE WHEN b < {answered_upper} THEN {answered} END,
                CASE WHEN b < {answered_upper} THEN {ended_talking} ELSE {ended_ringing} END,
                CASE WHEN b < {answered_upper} THEN {talk} ELSE 0 END,
                CASE WHEN b < {answered_upper} THEN {talk} ELSE 0 END,
                CASE WHEN b < {answered_upper} THEN 'https://sim.invalid/audio/' || i || '.wav' END,
                {cause}, {sip}, '10000000000', NULL, 'callback'
         FROM c",
        status = case(&|b| b.call_status.to_string()),
        started = d.ts("st"),
        answered = d.ts(&format!("(st + {ring})")),
        ended_talking = d.ts(&format!("(st + {ring} + {talk})")),
        ended_ringing = d.ts(&format!("(st + {})", case(&|b| b.secs.max(1).to_string()))),
        cause = case(&|b| format!("'{}'", b.hangup_cause)),
        sip = case(&|b| format!("'{}'", b.sip_code)),
    );
    let answered_calls = format!("{dialled} AND (i * 37) % 1000 < {answered_upper}");
    let intent = |k: usize| {
        let arms: String = INTENTS
            .iter()
            .enumerate()
            .map(|(j, x)| {
                let v = match k {
                    0 => format!("'{}'", x.0),
                    1 => format!("'{}'", x.1),
                    _ => x.2.to_string(),
                };
                format!(" WHEN {j} THEN {v}")
            })
            .collect();
        format!("CASE i % {}{arms} END", INTENTS.len())
    };
    let intents = format!(
        "{s}
         INSERT INTO call_intents (call_id, position, intent_id, intent_tag, intent_name, intent_level)
         SELECT {call_id}, 0, {id}, {id}, {name}, {level} FROM s WHERE {answered_calls}",
        id = intent(0),
        name = intent(1),
        level = intent(2),
    );
    let sms = format!(
        "{s}
         INSERT INTO call_sms (call_id, position, sys_message_id, sent_at, content, status)
         SELECT {call_id}, 0, 'sms-' || i, {sent}, 'Thank you for your time. Reply STOP to opt out.',
                CASE i % 3 WHEN 0 THEN 2 WHEN 1 THEN 1 ELSE 3 END
         FROM s WHERE {answered_calls} AND i % 40 = 0",
        sent = d.ts(&format!("({start} + 600)")),
    );
    [orders, calls, intents, sms]
}

/// Writes the raw rows into the SQLite file: per [`CHUNK`] orders one transaction. Returns the rows, whether the
/// store's triggers ran on them, and the seconds taken.
async fn load_sqlite(url: &str, l: &Layout) -> anyhow::Result<(Rows, &'static str, f64)> {
    let t = Instant::now();
    let mut conn = limits::sqlite_connection(url).await?;
    sqlx::raw_sql("PRAGMA cache_size = -1048576")
        .execute(&mut conn)
        .await?;
    let mut rows = Rows::default();
    let mut lo = 0;
    while lo < l.n {
        let hi = (lo + CHUNK).min(l.n);
        let mut tx = conn.begin().await?;
        let [o, c, i, s] = chunk_sql(Dialect::Sqlite, l, lo, hi);
        rows.orders += exec_sqlite(&mut tx, o, "orders").await?;
        rows.calls += exec_sqlite(&mut tx, c, "calls").await?;
        rows.intents += exec_sqlite(&mut tx, i, "call_intents").await?;
        rows.sms += exec_sqlite(&mut tx, s, "call_sms").await?;
        tx.commit().await?;
        // Each chunk's WAL back into the database file, or every later read searches gigabytes of it.
        sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await?;
        tracing::info!(orders = hi, "report: raw rows written");
        lo = hi;
    }
    record_zone_groups_sqlite(&mut conn, l).await?;
    conn.close().await?;
    Ok((rows, "off", t.elapsed().as_secs_f64()))
}

/// Drops every trigger of the SQLite store; returns their definitions, for [`put_back_triggers_sqlite`].
async fn take_out_triggers_sqlite(url: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut conn = limits::sqlite_connection(url).await?;
    let triggers: Vec<(String, String)> =
        sqlx::query_as("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            .fetch_all(&mut conn)
            .await?;
    for (name, _) in &triggers {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP TRIGGER \"{name}\"")))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(triggers)
}

async fn put_back_triggers_sqlite(url: &str, triggers: &[(String, String)]) -> anyhow::Result<()> {
    let mut conn = limits::sqlite_connection(url).await?;
    for (_, sql) in triggers {
        sqlx::raw_sql(AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(())
}

/// The same rows into PostgreSQL, with the session's triggers off when the role may turn them off.
async fn load_postgres(url: &str, l: &Layout) -> anyhow::Result<(Rows, &'static str, f64)> {
    let t = Instant::now();
    let mut conn = pg_connection(url).await?;
    // The rollups are rebuilt from the raw rows afterwards: the triggers that keep them would only slow the load.
    let triggers = match sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut conn)
        .await
    {
        Ok(_) => "off",
        Err(_) => "on",
    };
    let mut rows = Rows::default();
    let mut lo = 0;
    while lo < l.n {
        let hi = (lo + CHUNK).min(l.n);
        let mut tx = conn.begin().await?;
        let [o, c, i, s] = chunk_sql(Dialect::Postgres, l, lo, hi);
        rows.orders += exec_pg(&mut tx, o, "orders").await?;
        rows.calls += exec_pg(&mut tx, c, "calls").await?;
        rows.intents += exec_pg(&mut tx, i, "call_intents").await?;
        rows.sms += exec_pg(&mut tx, s, "call_sms").await?;
        tx.commit().await?;
        tracing::info!(orders = hi, "report: raw rows written");
        lo = hi;
    }
    sqlx::raw_sql("RESET session_replication_role")
        .execute(&mut conn)
        .await?;
    record_zone_groups_pg(&mut conn, l).await?;
    conn.close().await?;
    Ok((rows, triggers, t.elapsed().as_secs_f64()))
}

async fn exec_sqlite(
    conn: &mut sqlx::SqliteConnection,
    sql: String,
    table: &str,
) -> anyhow::Result<u64> {
    Ok(sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .with_context(|| format!("writing the {table} rows"))?
        .rows_affected())
}

async fn exec_pg(conn: &mut sqlx::PgConnection, sql: String, table: &str) -> anyhow::Result<u64> {
    Ok(sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .with_context(|| format!("writing the {table} rows"))?
        .rows_affected())
}

/// The tasks' zone group, as planning records it (`task_zone_groups`: raw, not a rollup).
async fn record_zone_groups_sqlite(
    conn: &mut sqlx::SqliteConnection,
    l: &Layout,
) -> anyhow::Result<()> {
    for (ut, _) in &l.tasks {
        sqlx::query(
            "INSERT OR IGNORE INTO task_zone_groups (user_task_id, zone_group) VALUES (?, ?)",
        )
        .bind(ut)
        .bind(&l.zone_group)
        .execute(&mut *conn)
        .await
        .context("recording the tasks' zone group")?;
    }
    Ok(())
}

async fn record_zone_groups_pg(conn: &mut sqlx::PgConnection, l: &Layout) -> anyhow::Result<()> {
    for (ut, _) in &l.tasks {
        sqlx::query(
            "INSERT INTO task_zone_groups (user_task_id, zone_group) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(ut)
        .bind(&l.zone_group)
        .execute(&mut *conn)
        .await
        .context("recording the tasks' zone group")?;
    }
    Ok(())
}

async fn pg_connection(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")
}

/// `VACUUM ANALYZE` of the whole database (seconds): the statistics and visibility autovacuum would give the
/// tables shortly after the load.
async fn checkpoint_sqlite(url: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut conn = limits::sqlite_connection(url).await?;
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .context("PRAGMA wal_checkpoint(TRUNCATE)")?;
    conn.close().await?;
    Ok(t.elapsed().as_secs_f64())
}

async fn vacuum_analyze(url: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut conn = pg_connection(url).await?;
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .context("VACUUM ANALYZE")?;
    conn.close().await?;
    Ok(t.elapsed().as_secs_f64())
}

/// The campaign's orders and calls counted from the raw tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Raw {
    total: i64,
    sent: i64,
    rejected: i64,
    suppressed: i64,
    finished: i64,
    dialled: i64,
    answered: i64,
    calls: i64,
}

const RAW_ORDERS: &str = "SELECT COUNT(*),
       COUNT(CASE WHEN upload_state = 'sent' THEN 1 END),
       COUNT(CASE WHEN upload_state = 'rejected' THEN 1 END),
       COUNT(CASE WHEN upload_state = 'rejected' AND substr(reject_reason, 1, 12) = 'suppressed: ' THEN 1 END),
       COUNT(CASE WHEN finished THEN 1 END)
FROM orders WHERE campaign_id = 'bench-report'";
const RAW_CALLS: &str = "SELECT COUNT(DISTINCT c.order_id),
       COUNT(DISTINCT CASE WHEN c.call_status = 6 THEN c.order_id END),
       COUNT(*)
FROM calls c JOIN orders o ON o.order_id = c.order_id
WHERE o.campaign_id = 'bench-report'";

type Five = (i64, i64, i64, i64, i64);
type Three = (i64, i64, i64);

fn raw_of(o: Five, c: Three) -> Raw {
    Raw {
        total: o.0,
        sent: o.1,
        rejected: o.2,
        suppressed: o.3,
        finished: o.4,
        dialled: c.0,
        answered: c.1,
        calls: c.2,
    }
}

async fn raw_counts_sqlite(conn: &mut sqlx::SqliteConnection) -> anyhow::Result<Raw> {
    let o: Five = sqlx::query_as(RAW_ORDERS).fetch_one(&mut *conn).await?;
    let c: Three = sqlx::query_as(RAW_CALLS).fetch_one(&mut *conn).await?;
    Ok(raw_of(o, c))
}

async fn raw_counts_pg(conn: &mut sqlx::PgConnection) -> anyhow::Result<Raw> {
    let o: Five = sqlx::query_as(RAW_ORDERS).fetch_one(&mut *conn).await?;
    let c: Three = sqlx::query_as(RAW_CALLS).fetch_one(&mut *conn).await?;
    Ok(raw_of(o, c))
}

/// Fails unless what `status` and the report read (the rollups) agrees with the raw rows.
async fn check_rollups(store: &dyn Store, raw: &Raw) -> anyhow::Result<()> {
    let counts = store.order_counts(ID).await?;
    let report = store
        .report(&ReportFilter {
            campaign: Some(ID.to_owned()),
            since: None,
        })
        .await?;
    let totals = report
        .totals
        .first()
        .context("the report has no totals row for the campaign")?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let pairs = [
        ("order_counts.total", n(counts.total), raw.total),
        ("order_counts.sent", n(counts.sent), raw.sent),
        ("order_counts.rejected", n(counts.rejected), raw.rejected),
        (
            "order_counts.suppressed",
            n(counts.suppressed),
            raw.suppressed,
        ),
        ("order_counts.finished", n(counts.finished), raw.finished),
        ("order_counts.dialled", n(counts.dialled), raw.dialled),
        ("order_counts.answered", n(counts.answered), raw.answered),
        ("report totals.orders_total", totals.orders_total, raw.total),
        (
            "report totals.orders_dialled",
            totals.orders_dialled,
            raw.dialled,
        ),
        (
            "report totals.orders_answered",
            totals.orders_answered,
            raw.answered,
        ),
        (
            "report totals.orders_finished",
            totals.orders_finished,
            raw.finished,
        ),
        ("report totals.calls", totals.calls, raw.calls),
    ];
    let wrong: Vec<String> = pairs
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| format!("{what} reads {got}, the raw rows hold {want}"))
        .collect();
    if !wrong.is_empty() {
        bail!(
            "after Store::rebuild_rollups the store disagrees with its raw rows: {}",
            wrong.join("; ")
        );
    }
    Ok(())
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS (Linux: `5` to `/proc/self/clear_refs`); whether
/// it could.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The store reads of `campaignd status bench-report` and its pure decisions (see the module docs); returns the
/// campaign's order counts.
async fn status_reads(
    store: &dyn Store,
    now: DateTime<Utc>,
    apply_delay: chrono::Duration,
) -> anyhow::Result<OrderCounts> {
    let records = store.campaigns().await?;
    let mut set = daemon::CampaignSet::new();
    set.load_stored(&records, true);
    let file_spec = set
        .entries()
        .find(|c| c.spec.id == ID)
        .map(|c| c.spec.clone())
        .context("the stored campaign record has no readable spec")?;
    store.leases(&[ID.to_owned()]).await?;
    let in_force = daemon::round_in_force(store, &file_spec, now).await?;
    let daemon_caps: Vec<campaign::CapRule> = DEFAULT_CAPS
        .iter()
        .map(|&(within_secs, max)| campaign::CapRule { within_secs, max })
        .collect();
    let mut counts = None;
    for task_spec in in_force.spec.task_specs() {
        let spec = daemon::with_recorded_groups(store, &task_spec).await?;
        let snap = daemon::snapshot(store, &spec, true, 1, now, apply_delay, None).await?;
        let caps = daemon::caps_in_force(&daemon_caps, &spec);
        if !caps.is_empty() {
            store
                .held_numbers(&daemon::user_task_id(&spec), &caps, now)
                .await?;
        }
        store.tasks(&spec.id).await?;
        // What the daemon would do at the next wake-up (status's `describe`).
        if let Some(at) = snap.plan.next_wake {
            let d = daemon::desired(&spec, at, true, snap.desired.has_contacts, apply_delay);
            let o = daemon::observed_at(
                &spec,
                snap.task.as_ref(),
                &snap.counts,
                &d,
                apply_delay,
                None,
            );
            let _then = daemon::decide(&d, &o);
        }
        counts = Some(snap.counts);
    }
    counts.context("the campaign has no task")
}

/// What refreshing the order gauges costs the reconciler (its prefetch reads of the due campaigns, then the gauges
/// set as `publish_metrics` sets them), then a scrape's render; returns the text's length.
async fn metrics_refresh_and_render(
    store: &dyn Store,
    metrics: &daemon::Metrics,
    ids: &[String],
    uts: &[String],
) -> anyhow::Result<usize> {
    let (_tasks, progress) = tokio::try_join!(store.tasks_of(ids), store.order_progress_of(uts))?;
    for p in &progress {
        metrics.orders(ID, "planned", p.planned);
        metrics.orders(ID, "sending", p.sending);
        metrics.orders(ID, "sent", p.sent);
        metrics.orders(ID, "rejected", p.rejected);
        metrics.orders(ID, "unfinished", p.unfinished);
    }
    metrics.campaigns(&BTreeMap::from([("dialling".to_owned(), 1)]));
    Ok(metrics.render().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_simulators_default_mix() {
        let b = outcome_buckets();
        // 55 % answered first, then the other outcomes up to the whole.
        assert_eq!(b.first().map(|x| (x.upper, x.call_status)), Some((550, 6)));
        assert_eq!(b.last().map(|x| x.upper), Some(1000));
        assert!(b.windows(2).all(|w| w[0].upper <= w[1].upper));
        // Every 1000 consecutive orders take every bucket value once.
        let mut seen: Vec<i64> = (0..1000).map(|i: i64| (i * 37) % 1000).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    }
}
