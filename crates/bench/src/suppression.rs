//! suppression: a do-not-call list of N numbers (default 10,000,000) loaded and checked the way the daemon does it,
//! with the machine's limits for the same work measured beside it in the same run.
//!
//! - **Load:** the list as a suppression file (`phone,reason`, one row per number), read by
//!   `campaign::read_suppression_file` (normalising every number) and written by
//!   `Store::replace_suppression_source` as one source, as the daemon syncs a file. Limit: the same N normalised
//!   phones written into an unindexed scratch table by the database's fastest bulk path (PostgreSQL `COPY`, SQLite
//!   multi-row INSERTs in one transaction).
//! - **Checks:** M contacts (N / 10, at most 1,000,000), every 10th of them on the list, planned with
//!   `Store::insert_planned_orders` in chunks of 5,000 as the daemon plans: each planned row is one check, made in
//!   the statement that plans it. Limit: the same M phones looked up in the `suppressions` table by its primary key,
//!   5,000 to a statement, nothing written.

use std::fmt::Write as _;
use std::io::{BufWriter, Write as _};
use std::time::Instant;

use anyhow::Context;
use clock::{Clock as _, SystemClock};
use sqlx::{Connection as _, QueryBuilder};
use store::{NewOrder, Suppression};

use crate::env::{self, StoreKind};
use crate::limits::{record_campaign, sqlite_connection};
use crate::report::{Figures, short};

const ID: &str = "bench-suppression";
const SOURCE: &str = "file:dnc.csv";
/// Contacts planned per statement, as the daemon's planning does (`contacts::PLAN_CHUNK`).
const CHUNK: usize = 5_000;

/// The listed number `k`: contacts 0, 10, 20, ... of the checks are listed, the rest of the list lies beyond them.
fn listed(k: u64, checks: u64) -> u64 {
    if k * 10 < checks { k * 10 } else { checks + k }
}

pub async fn run(n: u64, kind: StoreKind) -> anyhow::Result<Figures> {
    let checks = (n / 10).clamp(1, 1_000_000);
    let env = env::open_store(kind).await?;
    let now = SystemClock.now();
    record_campaign(env.store.as_ref(), ID, now).await?;
    let dir = tempfile::tempdir().context("creating a directory for the list")?;
    let path = dir.path().join("dnc.csv");
    write_list(&path, n, checks)?;
    let phones: Vec<String> = (0..n)
        .map(|k| env::normalized_phone(listed(k, checks)))
        .collect();

    // Load, as the daemon does.
    let t = Instant::now();
    let file = tokio::task::spawn_blocking({
        let path = path.clone();
        move || campaign::read_suppression_file(&path, None, &campaign::ContactLimits::default())
    })
    .await
    .context("joining the reader")?
    .context("reading the list")?;
    let read_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        file.entries.len() as u64 == n && file.issues.is_empty(),
        "read {} entries and {} issues out of {n} rows",
        file.entries.len(),
        file.issues.len()
    );
    let entries: Vec<Suppression> = file
        .entries
        .into_iter()
        .map(|e| Suppression {
            phone: e.phone,
            source: SOURCE.into(),
            reason: e.reason,
            expires_at: e.expires_at,
            added_at: now,
        })
        .collect();
    let t = Instant::now();
    env.store
        .replace_suppression_source(SOURCE, &entries)
        .await
        .context("writing the list")?;
    let write_secs = t.elapsed().as_secs_f64();
    drop(entries);
    let load_secs = read_secs + write_secs;

    // The load's limit: the bare phones into a table with no index.
    let limit_load_secs = match kind {
        StoreKind::Sqlite => {
            let mut conn = sqlite_connection(&env.url).await?;
            sqlx::raw_sql("CREATE TABLE limit_phones (phone TEXT)")
                .execute(&mut conn)
                .await?;
            let t = Instant::now();
            let mut tx = conn.begin().await?;
            for chunk in phones.chunks(30_000) {
                let mut qb = QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO limit_phones (phone) ");
                qb.push_values(chunk, |mut b, p| {
                    b.push_bind(p.as_str());
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            t.elapsed().as_secs_f64()
        }
        StoreKind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&env.url).await?;
            sqlx::raw_sql("CREATE TABLE limit_phones (phone text)")
                .execute(&mut conn)
                .await?;
            let t = Instant::now();
            let mut copy = conn
                .copy_in_raw("COPY limit_phones FROM STDIN")
                .await
                .context("starting COPY")?;
            let mut buf = String::with_capacity(1 << 20);
            for p in &phones {
                buf.push_str(p);
                buf.push('\n');
                if buf.len() >= 1 << 20 {
                    copy.send(std::mem::take(&mut buf).into_bytes()).await?;
                }
            }
            copy.send(buf.into_bytes()).await?;
            copy.finish().await?;
            t.elapsed().as_secs_f64()
        }
    };
    drop(phones);

    // Checks, as planning makes them.
    let task = campaign::user_task_id(ID, 1, 0);
    let orders: Vec<NewOrder> = (0..checks)
        .map(|i| NewOrder {
            order_id: campaign::order_id(ID, 1, &env::normalized_phone(i)),
            campaign_id: ID.into(),
            user_task_id: task.clone(),
            phone: env::normalized_phone(i),
            name: None,
            customer: None,
            other: None,
            variables: serde_json::json!({}),
            source_line: i as i64 + 2,
            attempt: 1,
        })
        .collect();
    let t = Instant::now();
    for chunk in orders.chunks(CHUNK) {
        env.store.insert_planned_orders(chunk, now).await?;
    }
    let check_secs = t.elapsed().as_secs_f64();
    let counts = env.store.order_counts(ID).await?;
    let want_suppressed = checks.div_ceil(10);
    anyhow::ensure!(
        counts.total == checks && counts.suppressed == want_suppressed,
        "planned {} orders, {} suppressed; expected {checks} and {want_suppressed}",
        counts.total,
        counts.suppressed
    );

    // The checks' limit: the same phones looked up by key, nothing written.
    let probe: Vec<String> = orders.into_iter().map(|o| o.phone).collect();
    let (limit_check_secs, found) = match kind {
        StoreKind::Sqlite => {
            let mut conn = sqlite_connection(&env.url).await?;
            let t = Instant::now();
            let mut found = 0i64;
            for chunk in probe.chunks(CHUNK) {
                let mut qb = QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT COUNT(*) FROM suppressions WHERE phone IN (",
                );
                for (j, p) in chunk.iter().enumerate() {
                    if j > 0 {
                        qb.push(", ");
                    }
                    qb.push_bind(p.as_str());
                }
                qb.push(")");
                let (n,): (i64,) = qb.build_query_as().fetch_one(&mut conn).await?;
                found += n;
            }
            (t.elapsed().as_secs_f64(), found)
        }
        StoreKind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&env.url).await?;
            let t = Instant::now();
            let mut found = 0i64;
            for chunk in probe.chunks(CHUNK) {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM suppressions WHERE phone = ANY($1::text[])",
                )
                .bind(chunk)
                .fetch_one(&mut conn)
                .await?;
                found += n;
            }
            (t.elapsed().as_secs_f64(), found)
        }
    };
    anyhow::ensure!(
        found as u64 == want_suppressed,
        "the lookups found {found} listed numbers, expected {want_suppressed}"
    );

    let mut f = Figures::new("suppression", kind.as_str(), n);
    let check_rate = checks as f64 / check_secs;
    let limit_check_rate = checks as f64 / limit_check_secs;
    f.put("durability", env.durability.clone())
        .put("load_secs", load_secs)
        .put("load_read_secs", read_secs)
        .put("load_write_secs", write_secs)
        .put("limit_load_secs", limit_load_secs)
        .put("checks", checks)
        .put("check_secs", check_secs)
        .put("checks_per_s", check_rate)
        .put("limit_checks_per_s", limit_check_rate)
        .put("peak_rss_mb", crate::procfs::peak_rss_mb(None));
    f.line = format!(
        "suppression [{}] a list of {n} loaded in {} s (read {} s, written {} s; limit: bare rows {} s); {checks} \
         contacts planned against it at {} checks/s (limit: lookups by key {} /s)",
        kind.as_str(),
        short(load_secs),
        short(read_secs),
        short(write_secs),
        short(limit_load_secs),
        short(check_rate),
        short(limit_check_rate)
    );
    Ok(f)
}

/// The list as a suppression file: header `phone,reason`, the numbers written as contacts are (`+86 …`).
fn write_list(path: &std::path::Path, n: u64, checks: u64) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(b"phone,reason\n")?;
    let mut line = String::with_capacity(48);
    for k in 0..n {
        line.clear();
        let _ = writeln!(
            line,
            "{},asked not to be called",
            env::phone(listed(k, checks))
        );
        out.write_all(line.as_bytes())?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}
