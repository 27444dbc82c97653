//! limit-insert: what the machine allows for the upload's store work, measured outside the store crate.
//!
//! First the limit proper, the simplest shape that holds an upload's data: the N order rows (same columns and
//! values) written once into an append-only table keyed by (task, source line) with no other index, and one outbox
//! row per batch of 1,000 written `sending` and then moved to `sent`; SQLite with multi-row INSERTs in ONE
//! transaction, PostgreSQL with one `COPY ... FROM STDIN` (the batch rows with UNNEST).
//!
//! Then today's schema, for comparison: the same rows into the real, migrated `orders` table (same indexes and
//! constraints) the same way, then the two upload-state changes the uploader makes per row (planned → sending →
//! sent) as bulk UPDATEs by key, 1000 keys per statement, all in one transaction.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context;
use clock::{Clock as _, SystemClock};
use sqlx::{Connection, QueryBuilder};
use store::CampaignRecord;

use crate::env::{self, StoreKind};
use crate::report::{Figures, short};

const ID: &str = "bench-limit";
const TASK: &str = "bench-limit-task";

pub async fn run(n: u64, kind: StoreKind) -> anyhow::Result<Figures> {
    let env = env::open_store(kind).await?;
    let now = SystemClock.now();
    record_campaign(env.store.as_ref(), ID, now).await?;
    let ids: Vec<String> = (0..n)
        .map(|i| campaign::order_id(ID, 1, &env::normalized_phone(i)))
        .collect();
    let at = now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let append_secs = match kind {
        StoreKind::Sqlite => append_only_sqlite(&env.url, &ids).await?,
        StoreKind::Postgres => append_only_pg(&env.url, &ids).await?,
    };
    let (insert_secs, update_secs) = match kind {
        StoreKind::Sqlite => sqlite(&env.url, &ids, &at).await?,
        StoreKind::Postgres => postgres(&env.url, &ids).await?,
    };
    let mut f = Figures::new("limit-insert", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    let append_rate = n as f64 / append_secs;
    f.put("append_only_secs", append_secs)
        .put("append_only_per_s", append_rate);
    let insert_rate = n as f64 / insert_secs;
    let update_rate = 2.0 * n as f64 / update_secs;
    let upload_rate = n as f64 / (insert_secs + update_secs);
    f.put("insert_secs", insert_secs)
        .put("insert_rows_per_s", insert_rate)
        .put("update_secs", update_secs)
        .put("update_rows_per_s", update_rate)
        .put("upload_store_work_per_s", upload_rate);
    f.line = format!(
        "limit-insert [{}] {n} order rows: append-only with a batch outbox {} contacts/s (the limit); today's schema: \
         raw bulk insert {} rows/s, bulk state updates {} rows/s; insert + two updates per row: {} contacts/s",
        kind.as_str(),
        short(append_rate),
        short(insert_rate),
        short(update_rate),
        short(upload_rate)
    );
    Ok(f)
}

/// The campaign record the raw rows belong to.
pub(crate) async fn record_campaign(
    store: &dyn store::Store,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    store
        .upsert_campaigns(&[CampaignRecord {
            id: id.into(),
            generation: 1,
            source_file: format!("{id}.toml"),
            content_hash: "bench".into(),
            spec: None,
            state: "active".into(),
            last_error: None,
            updated_at: now,
        }])
        .await?;
    Ok(())
}

pub(crate) fn variables() -> &'static str {
    r#"{"amount":"10.00"}"#
}

/// A connection to the bench's SQLite file, as the daemon opens it (WAL, `synchronous = FULL`).
pub(crate) async fn sqlite_connection(url: &str) -> anyhow::Result<sqlx::SqliteConnection> {
    let mut conn = sqlx::SqliteConnection::connect(url)
        .await
        .context("connecting")?;
    sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
        .execute(&mut conn)
        .await?;
    // BENCH_SQLITE_CACHE_MB: the page cache of this connection (SQLite's default is 2 MB), to show what it costs.
    if let Some(mb) = std::env::var("BENCH_SQLITE_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        let pragma = format!("PRAGMA cache_size = -{}", mb * 1024);
        sqlx::raw_sql(sqlx::AssertSqlSafe(pragma))
            .execute(&mut conn)
            .await?;
    }
    Ok(conn)
}

/// Order rows for contacts 0..ids.len() of campaign `id` (task `task`, in `upload_state` `state`): multi-row
/// INSERTs in one transaction.
pub(crate) async fn insert_orders_sqlite(
    conn: &mut sqlx::SqliteConnection,
    (id, task): (&str, &str),
    ids: &[String],
    state: &str,
) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    for (c, chunk) in ids.chunks(3000).enumerate() {
        let mut qb = QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO orders (order_id, campaign_id, user_task_id, phone, name, customer, other, variables, \
             source_line, upload_state) ",
        );
        qb.push_values(chunk.iter().enumerate(), |mut b, (j, order_id)| {
            let i = (c * 3000 + j) as u64;
            b.push_bind(order_id.clone())
                .push_bind(id.to_owned())
                .push_bind(task.to_owned())
                .push_bind(env::normalized_phone(i))
                .push_bind(format!("Contact {i}"))
                .push_bind(format!("C{i}"))
                .push_bind(format!("ref-{i}"))
                .push_bind(variables())
                .push_bind(i as i64 + 2)
                .push_bind(state.to_owned());
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The same order rows as [`insert_orders_sqlite`], with one `COPY ... FROM STDIN`.
pub(crate) async fn copy_orders_pg(
    conn: &mut sqlx::PgConnection,
    (id, task): (&str, &str),
    ids: &[String],
    state: &str,
) -> anyhow::Result<()> {
    let copy = conn
        .copy_in_raw(
            "COPY orders (order_id, campaign_id, user_task_id, phone, name, customer, other, variables, \
             source_line, upload_state) FROM STDIN",
        )
        .await?;
    copy_lines(copy, ids, |buf, i, order_id| {
        writeln!(
            buf,
            "{order_id}\t{id}\t{task}\t{}\tContact {i}\tC{i}\tref-{i}\t{}\t{}\t{state}",
            env::normalized_phone(i as u64),
            variables(),
            i + 2
        )
    })
    .await
}

/// Sends one COPY line per order ID (`line` writes it, with the ID's index), in chunks of about 1 MB, then ends the
/// COPY.
async fn copy_lines<C: std::ops::DerefMut<Target = sqlx::PgConnection>>(
    mut copy: sqlx::postgres::PgCopyIn<C>,
    ids: &[String],
    line: impl Fn(&mut String, usize, &str) -> std::fmt::Result,
) -> anyhow::Result<()> {
    let mut buf = String::with_capacity(1 << 20);
    for (i, order_id) in ids.iter().enumerate() {
        line(&mut buf, i, order_id)?;
        if buf.len() > (1 << 20) - 512 {
            copy.send(std::mem::take(&mut buf).into_bytes()).await?;
            buf.reserve(1 << 20);
        }
    }
    if !buf.is_empty() {
        copy.send(buf.into_bytes()).await?;
    }
    copy.finish().await?;
    Ok(())
}

async fn sqlite(url: &str, ids: &[String], at: &str) -> anyhow::Result<(f64, f64)> {
    let mut conn = sqlite_connection(url).await?;
    let t = Instant::now();
    insert_orders_sqlite(&mut conn, (ID, TASK), ids, "planned").await?;
    let insert_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut tx = conn.begin().await?;
    for state in ["sending", "sent"] {
        for chunk in ids.chunks(1000) {
            let mut qb = QueryBuilder::<sqlx::Sqlite>::new("UPDATE orders SET upload_state = ");
            qb.push_bind(state)
                .push(", state_changed_at = ")
                .push_bind(at)
                .push(" WHERE order_id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.clone());
            }
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok((insert_secs, t.elapsed().as_secs_f64()))
}

async fn postgres(url: &str, ids: &[String]) -> anyhow::Result<(f64, f64)> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting")?;
    let t = Instant::now();
    copy_orders_pg(&mut conn, (ID, TASK), ids, "planned").await?;
    let insert_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut tx = conn.begin().await?;
    for state in ["sending", "sent"] {
        for chunk in ids.chunks(1000) {
            sqlx::query(
                "UPDATE orders SET upload_state = $1, state_changed_at = now() WHERE order_id = ANY($2::text[])",
            )
            .bind(state)
            .bind(chunk)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok((insert_secs, t.elapsed().as_secs_f64()))
}

/// The append-only table and the batch outbox of the limit (see the module docs); the same on both databases.
const APPEND_ONLY_SCHEMA: [&str; 2] = [
    "CREATE TABLE limit_orders (user_task_id TEXT NOT NULL, source_line BIGINT NOT NULL, order_id TEXT NOT NULL, \
     phone TEXT NOT NULL, name TEXT, customer TEXT, other TEXT, variables TEXT, PRIMARY KEY (user_task_id, source_line))",
    "CREATE TABLE limit_batches (user_task_id TEXT NOT NULL, first_line BIGINT NOT NULL, orders INT NOT NULL, \
     state TEXT NOT NULL, PRIMARY KEY (user_task_id, first_line))",
];

/// The limit on SQLite: the rows and the batch outbox, in one transaction. Returns the seconds it took.
async fn append_only_sqlite(url: &str, ids: &[String]) -> anyhow::Result<f64> {
    let mut conn = sqlite_connection(url).await?;
    for ddl in APPEND_ONLY_SCHEMA {
        sqlx::raw_sql(ddl).execute(&mut conn).await?;
    }
    let t = Instant::now();
    let mut tx = conn.begin().await?;
    for (c, chunk) in ids.chunks(3000).enumerate() {
        let mut qb = QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO limit_orders (user_task_id, source_line, order_id, phone, name, customer, other, variables) ",
        );
        qb.push_values(chunk.iter().enumerate(), |mut b, (j, order_id)| {
            let i = (c * 3000 + j) as u64;
            b.push_bind(TASK)
                .push_bind(i as i64 + 2)
                .push_bind(order_id.clone())
                .push_bind(env::normalized_phone(i))
                .push_bind(format!("Contact {i}"))
                .push_bind(format!("C{i}"))
                .push_bind(format!("ref-{i}"))
                .push_bind(variables());
        });
        qb.build().execute(&mut *tx).await?;
    }
    let batches = batch_starts(ids.len());
    for state in ["sending", "sent"] {
        for chunk in batches.chunks(1000) {
            let mut qb = QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO limit_batches (user_task_id, first_line, orders, state) ",
            );
            qb.push_values(chunk, |mut b, (line, orders)| {
                b.push_bind(TASK)
                    .push_bind(*line)
                    .push_bind(*orders)
                    .push_bind(state);
            });
            qb.push(" ON CONFLICT (user_task_id, first_line) DO UPDATE SET state = excluded.state");
            qb.build().execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(t.elapsed().as_secs_f64())
}

/// The limit on PostgreSQL: the rows with one COPY, the batch outbox with UNNEST, in one transaction.
async fn append_only_pg(url: &str, ids: &[String]) -> anyhow::Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting")?;
    for ddl in APPEND_ONLY_SCHEMA {
        sqlx::raw_sql(ddl).execute(&mut conn).await?;
    }
    let t = Instant::now();
    let mut tx = conn.begin().await?;
    let copy = tx
        .copy_in_raw(
            "COPY limit_orders (user_task_id, source_line, order_id, phone, name, customer, other, variables) \
             FROM STDIN",
        )
        .await?;
    copy_lines(copy, ids, |buf, i, order_id| {
        writeln!(
            buf,
            "{TASK}\t{}\t{order_id}\t{}\tContact {i}\tC{i}\tref-{i}\t{}",
            i + 2,
            env::normalized_phone(i as u64),
            variables(),
        )
    })
    .await?;
    let (lines, orders): (Vec<i64>, Vec<i32>) = batch_starts(ids.len()).into_iter().unzip();
    for state in ["sending", "sent"] {
        sqlx::query(
            "INSERT INTO limit_batches (user_task_id, first_line, orders, state)
             SELECT $1, l, n, $4 FROM UNNEST($2::int8[], $3::int4[]) AS u(l, n)
             ON CONFLICT (user_task_id, first_line) DO UPDATE SET state = excluded.state",
        )
        .bind(TASK)
        .bind(&lines)
        .bind(&orders)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(t.elapsed().as_secs_f64())
}

/// Each batch of 1,000 of `n` rows: its first source line and its size.
fn batch_starts(n: usize) -> Vec<(i64, i32)> {
    (0..n)
        .step_by(1000)
        .map(|i| (i as i64 + 2, (n - i).min(1000) as i32))
        .collect()
}
