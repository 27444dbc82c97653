//! limit-facts: what the machine allows for the reconcile's store work, measured outside the store crate, as
//! `limit-insert` does for the upload. For N sent orders (seeded first, not timed), the rows one finished call writes,
//! with the database's fastest bulk path: one calls row per order with its transcript lines on it (a JSON array, as
//! the store keeps them), and its intent row.
//!
//! First the limit proper, the simplest shape that holds those facts: the same rows appended to tables with the
//! same columns and no index, key or trigger (`lim_calls`, `lim_call_intents`), and each order's end appended as a
//! row of `lim_finished` (order ID, last call status) instead of an update of the order. Then the same rows into
//! today's migrated tables (`calls`, `call_intents`), indexes and rollup triggers included, and the orders' `finished`
//! flag set by key: that second figure is our own schema measured again, not a machine limit.
//! The mix follows the simulator's default outcome (see `callbot-sim`'s `OutcomeConfig` and `transcript`): 55 %
//! of calls answered, each with one intent and four transcript lines; the others with none (0.55 intents and 2.2
//! lines per call on average; one call per order, as the bench campaigns do not redial). Then the orders' `finished`
//! flag and last call status, as bulk UPDATEs by key.
//!
//! SQLite: multi-row INSERTs in ONE transaction, then the UPDATEs (1000 keys per statement, one statement per call
//! status in each chunk) or the `lim_finished` INSERTs in another. PostgreSQL: one `COPY ... FROM STDIN` per table in
//! one transaction, then `UPDATE ... FROM UNNEST(...)` of 1000 keys per statement, or a `COPY` into `lim_finished`,
//! in another.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clock::{Clock as _, SystemClock};
use sqlx::{Connection, QueryBuilder};

use crate::env::{self, StoreKind};
use crate::limits;
use crate::report::{Figures, short};

const ID: &str = "bench-limit-facts";
const TASK: &str = "bench-limit-facts-task";
/// Keys per UPDATE statement.
const KEYS_PER_UPDATE: usize = 1000;

/// The final `callStatus` of order i's call: out of every 20, 11 answered (6) and the rest spread over the
/// simulator's other outcomes, close to its default weights.
fn call_status(i: usize) -> i64 {
    match i % 20 {
        0..=10 => 6,
        11..=13 => 22,
        14 | 15 => 10,
        16 => 23,
        17 => 12,
        18 => 9,
        _ => 8,
    }
}

fn answered(i: usize) -> bool {
    call_status(i) == 6
}

/// Transcript lines of an answered call: (role, recordType, words); the last one is the intent's name.
const LINES: [(i64, i64, &str); 4] = [
    (0, 8, "Good morning, this is a call about your account."),
    (1, 7, "Yes, I am listening."),
    (0, 8, "We can offer you a payment plan today."),
    (1, 7, "Interested"),
];
/// The intent of an answered call: (intentID, intentName, intentLevel).
const INTENT: (&str, &str, i64) = ("A", "Interested", 1);

/// Order i's transcript as the `calls.transcript` column keeps it (a JSON array of its lines by record index), with
/// its times written by `ts`; `None` for an unanswered call.
fn transcript(i: usize, start: DateTime<Utc>, ts: fn(DateTime<Utc>) -> String) -> Option<String> {
    if !answered(i) {
        return None;
    }
    let (started, _, _) = times(start, i);
    let lines: Vec<serde_json::Value> = LINES
        .iter()
        .enumerate()
        .map(|(k, (role, kind, word))| {
            serde_json::json!({
                "index": k + 1,
                "role": role,
                "kind": kind,
                "word": word,
                "node_id": format!("node-{}", k + 1),
                "node_desc": if *role == 0 { "robot" } else { "user" },
                "at": ts(started + chrono::Duration::seconds(5 * k as i64)),
            })
        })
        .collect();
    Some(serde_json::Value::Array(lines).to_string())
}

/// The rows written, by table (transcript lines are counted as rows, though they are written on their call's row).
#[derive(Debug, Clone, Copy)]
struct Rows {
    calls: u64,
    intents: u64,
    lines: u64,
}

impl Rows {
    fn of(n: usize) -> Rows {
        let answered = (0..n).filter(|&i| answered(i)).count() as u64;
        Rows {
            calls: n as u64,
            intents: answered,
            lines: answered * LINES.len() as u64,
        }
    }

    fn total(self) -> u64 {
        self.calls + self.intents + self.lines
    }
}

pub async fn run(n: u64, kind: StoreKind) -> anyhow::Result<Figures> {
    let env = env::open_store(kind).await?;
    let now = SystemClock.now();
    limits::record_campaign(env.store.as_ref(), ID, now).await?;
    let ids: Vec<String> = (0..n)
        .map(|i| campaign::order_id(ID, 1, &env::normalized_phone(i)))
        .collect();
    let rows = Rows::of(ids.len());
    // Every call started an hour ago, one order a millisecond apart.
    let start = now - chrono::Duration::hours(1);
    let (append_write, append_finish) = match kind {
        StoreKind::Sqlite => sqlite(&env.url, &ids, start, Shape::AppendOnly).await?,
        StoreKind::Postgres => postgres(&env.url, &ids, start, Shape::AppendOnly).await?,
    };
    let (write_secs, update_secs) = match kind {
        StoreKind::Sqlite => sqlite(&env.url, &ids, start, Shape::Migrated).await?,
        StoreKind::Postgres => postgres(&env.url, &ids, start, Shape::Migrated).await?,
    };
    let append_secs = append_write + append_finish;
    let append_orders_rate = n as f64 / append_secs;

    let secs = write_secs + update_secs;
    let orders_rate = n as f64 / secs;
    let rows_rate = (rows.total() + n) as f64 / secs;
    let mut f = Figures::new("limit-facts", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    f.put("append_only_write_secs", append_write)
        .put("append_only_finish_secs", append_finish)
        .put("append_only_secs", append_secs)
        .put("append_only_orders_per_s", append_orders_rate)
        .put(
            "append_only_rows_per_s",
            (rows.total() + n) as f64 / append_secs,
        );
    f.put("calls", rows.calls)
        .put("intents", rows.intents)
        .put("transcript_lines", rows.lines)
        .put("write_secs", write_secs)
        .put("write_rows_per_s", rows.total() as f64 / write_secs)
        .put("update_secs", update_secs)
        .put("update_rows_per_s", n as f64 / update_secs)
        .put("secs", secs)
        .put("orders_per_s", orders_rate)
        .put("rows_per_s", rows_rate)
        .put("peak_rss_mb", crate::procfs::peak_rss_mb(None));
    f.line = format!(
        "limit-facts [{}] {n} finished calls ({} rows: {} calls, {} intents, {} transcript lines): append-only {} \
         orders/s (the limit); today's tables: bulk write {} rows/s, orders' finished update {} rows/s; together {} \
         orders/s ({} rows/s with the order updates)",
        kind.as_str(),
        rows.total(),
        rows.calls,
        rows.intents,
        rows.lines,
        short(append_orders_rate),
        short(rows.total() as f64 / write_secs),
        short(n as f64 / update_secs),
        short(orders_rate),
        short(rows_rate),
    );
    Ok(f)
}

/// Where the facts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Fresh tables with the same columns and no index, key or trigger; each order's end appended to `lim_finished`.
    AppendOnly,
    /// Today's migrated tables; each order's end an update of its row.
    Migrated,
}

impl Shape {
    /// The tables the calls and the intents go into.
    fn tables(self) -> (&'static str, &'static str) {
        match self {
            Shape::AppendOnly => ("lim_calls", "lim_call_intents"),
            Shape::Migrated => ("calls", "call_intents"),
        }
    }
}

/// When order i's call started, was answered and ended (answered `None` for an unanswered call).
fn times(start: DateTime<Utc>, i: usize) -> (DateTime<Utc>, Option<DateTime<Utc>>, DateTime<Utc>) {
    let started = start + chrono::Duration::milliseconds(i as i64);
    if answered(i) {
        (
            started,
            Some(started + chrono::Duration::seconds(5)),
            started + chrono::Duration::seconds(65),
        )
    } else {
        (started, None, started + chrono::Duration::seconds(30))
    }
}

fn hangup(i: usize) -> (&'static str, &'static str) {
    if answered(i) {
        ("NORMAL_CLEARING", "200")
    } else {
        ("NO_ANSWER", "480")
    }
}

/// The time format of the SQLite store (RFC 3339, microseconds, `Z`).
fn sqlite_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

async fn sqlite(
    url: &str,
    ids: &[String],
    start: DateTime<Utc>,
    shape: Shape,
) -> anyhow::Result<(f64, f64)> {
    let mut conn = limits::sqlite_connection(url).await?;
    let (calls, intents) = shape.tables();
    if shape == Shape::AppendOnly {
        // Seeded once, before both shapes: the append-only one runs first.
        limits::insert_orders_sqlite(&mut conn, (ID, TASK), ids, "sent")
            .await
            .context("seeding the sent orders")?;
        for ddl in [
            "CREATE TABLE lim_calls AS SELECT * FROM calls WHERE 0",
            "CREATE TABLE lim_call_intents AS SELECT * FROM call_intents WHERE 0",
            "CREATE TABLE lim_finished (order_id TEXT NOT NULL, last_call_status INTEGER NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&mut conn).await?;
        }
    }

    let t = Instant::now();
    let mut tx = conn.begin().await?;
    // Under SQLite's 32,766 bound parameters per statement.
    const CALLS_PER_STATEMENT: usize = 2000; // 15 parameters each
    let all: Vec<usize> = (0..ids.len()).collect();
    for chunk in all.chunks(CALLS_PER_STATEMENT) {
        let mut qb = QueryBuilder::<sqlx::Sqlite>::new(format!(
            "INSERT INTO {calls} (call_id, order_id, call_status, started_at, answered_at, ended_at, \
             duration_secs, talk_secs, audio_url, hangup_cause, term_sip_code, calling_number, agent, source, \
             transcript) ",
        ));
        qb.push_values(chunk, |mut b, &i| {
            let (started, answer, ended) = times(start, i);
            let (cause, sip) = hangup(i);
            let talk = answer.map_or(0, |_| 60i64);
            b.push_bind(format!("lim-call-{i}"))
                .push_bind(ids[i].clone())
                .push_bind(call_status(i))
                .push_bind(sqlite_ts(started))
                .push_bind(answer.map(sqlite_ts))
                .push_bind(sqlite_ts(ended))
                .push_bind(talk)
                .push_bind(talk)
                .push_bind(answer.map(|_| format!("https://sim.invalid/audio/lim-call-{i}.wav")))
                .push_bind(cause)
                .push_bind(sip)
                .push_bind("10000000000")
                .push_bind(None::<String>)
                .push_bind("poll")
                .push_bind(transcript(i, start, sqlite_ts));
        });
        qb.build().execute(&mut *tx).await?;
    }
    let answered: Vec<usize> = all.iter().copied().filter(|&i| answered(i)).collect();
    for chunk in answered.chunks(5000) {
        let mut qb = QueryBuilder::<sqlx::Sqlite>::new(format!(
            "INSERT INTO {intents} (call_id, position, intent_id, intent_tag, intent_name, intent_level) ",
        ));
        qb.push_values(chunk, |mut b, &i| {
            b.push_bind(format!("lim-call-{i}"))
                .push_bind(0i64)
                .push_bind(INTENT.0)
                .push_bind(INTENT.0)
                .push_bind(INTENT.1)
                .push_bind(INTENT.2);
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let write_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut tx = conn.begin().await?;
    if shape == Shape::AppendOnly {
        for (c, chunk) in ids.chunks(KEYS_PER_UPDATE).enumerate() {
            let mut qb = QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO lim_finished (order_id, last_call_status) ",
            );
            qb.push_values(chunk.iter().enumerate(), |mut b, (j, id)| {
                b.push_bind(id)
                    .push_bind(call_status(c * KEYS_PER_UPDATE + j));
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        return Ok((write_secs, t.elapsed().as_secs_f64()));
    }
    for (c, chunk) in ids.chunks(KEYS_PER_UPDATE).enumerate() {
        // One statement per call status among the chunk's orders.
        let mut by_status: Vec<(i64, Vec<&str>)> = Vec::new();
        for (j, id) in chunk.iter().enumerate() {
            let s = call_status(c * KEYS_PER_UPDATE + j);
            match by_status.iter_mut().find(|(k, _)| *k == s) {
                Some((_, v)) => v.push(id),
                None => by_status.push((s, vec![id])),
            }
        }
        for (status, keys) in by_status {
            let mut qb = QueryBuilder::<sqlx::Sqlite>::new(
                "UPDATE orders SET finished = 1, last_call_status = ",
            );
            qb.push_bind(status).push(" WHERE order_id IN (");
            let mut sep = qb.separated(", ");
            for k in keys {
                sep.push_bind(k);
            }
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok((write_secs, t.elapsed().as_secs_f64()))
}

/// PostgreSQL's text COPY format for a timestamp (UTC).
fn pg_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// A timestamp in a JSON line on PostgreSQL (RFC 3339, as the store writes it).
fn pg_json_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Sends `buf` to `copy` once it holds about a megabyte.
async fn flush_at_1mb(
    copy: &mut sqlx::postgres::PgCopyIn<&mut sqlx::PgConnection>,
    buf: &mut String,
) -> anyhow::Result<()> {
    if buf.len() > (1 << 20) - 1024 {
        copy.send(std::mem::take(buf).into_bytes()).await?;
        buf.reserve(1 << 20);
    }
    Ok(())
}

async fn postgres(
    url: &str,
    ids: &[String],
    start: DateTime<Utc>,
    shape: Shape,
) -> anyhow::Result<(f64, f64)> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting")?;
    let (calls, intents) = shape.tables();
    if shape == Shape::AppendOnly {
        // Seeded once, before both shapes: the append-only one runs first.
        limits::copy_orders_pg(&mut conn, (ID, TASK), ids, "sent")
            .await
            .context("seeding the sent orders")?;
        for ddl in [
            "CREATE TABLE lim_calls (LIKE calls)",
            "CREATE TABLE lim_call_intents (LIKE call_intents)",
            "CREATE TABLE lim_finished (order_id text NOT NULL, last_call_status bigint NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&mut conn).await?;
        }
    }

    let t = Instant::now();
    let mut tx = conn.begin().await?;
    let mut buf = String::with_capacity(1 << 20);
    {
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {calls} (call_id, order_id, call_status, started_at, answered_at, ended_at, duration_secs, \
                 talk_secs, audio_url, hangup_cause, term_sip_code, calling_number, agent, source, transcript) \
                 FROM STDIN",
            ))
            .await?;
        for (i, id) in ids.iter().enumerate() {
            let (started, answer, ended) = times(start, i);
            let (cause, sip) = hangup(i);
            let talk = answer.map_or(0, |_| 60);
            let _ = writeln!(
                buf,
                "lim-call-{i}\t{id}\t{}\t{}\t{}\t{}\t{talk}\t{talk}\t{}\t{cause}\t{sip}\t10000000000\t\\N\tpoll\t{}",
                call_status(i),
                pg_ts(started),
                answer.map_or_else(|| "\\N".to_owned(), pg_ts),
                pg_ts(ended),
                answer.map_or_else(
                    || "\\N".to_owned(),
                    |_| format!("https://sim.invalid/audio/lim-call-{i}.wav")
                ),
                // No tab, newline or backslash in the lines: the JSON goes into COPY's text format as it is.
                transcript(i, start, pg_json_ts).unwrap_or_else(|| "\\N".to_owned()),
            );
            flush_at_1mb(&mut copy, &mut buf).await?;
        }
        copy.send(std::mem::take(&mut buf).into_bytes()).await?;
        copy.finish().await?;
    }
    {
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {intents} (call_id, position, intent_id, intent_tag, intent_name, intent_level) FROM STDIN",
            ))
            .await?;
        for i in (0..ids.len()).filter(|&i| answered(i)) {
            let _ = writeln!(
                buf,
                "lim-call-{i}\t0\t{}\t{}\t{}\t{}",
                INTENT.0, INTENT.0, INTENT.1, INTENT.2
            );
            flush_at_1mb(&mut copy, &mut buf).await?;
        }
        copy.send(std::mem::take(&mut buf).into_bytes()).await?;
        copy.finish().await?;
    }
    tx.commit().await?;
    let write_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut tx = conn.begin().await?;
    if shape == Shape::AppendOnly {
        {
            let mut copy = tx
                .copy_in_raw("COPY lim_finished (order_id, last_call_status) FROM STDIN")
                .await?;
            for (i, id) in ids.iter().enumerate() {
                let _ = writeln!(buf, "{id}\t{}", call_status(i));
                flush_at_1mb(&mut copy, &mut buf).await?;
            }
            copy.send(std::mem::take(&mut buf).into_bytes()).await?;
            copy.finish().await?;
        }
        tx.commit().await?;
        return Ok((write_secs, t.elapsed().as_secs_f64()));
    }
    for (c, chunk) in ids.chunks(KEYS_PER_UPDATE).enumerate() {
        let statuses: Vec<i64> = (0..chunk.len())
            .map(|j| call_status(c * KEYS_PER_UPDATE + j))
            .collect();
        sqlx::query(
            "UPDATE orders o SET finished = true, last_call_status = u.status
             FROM UNNEST($1::text[], $2::bigint[]) AS u(order_id, status)
             WHERE o.order_id = u.order_id",
        )
        .bind(chunk)
        .bind(&statuses)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((write_secs, t.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_simulators_default_mix() {
        let rows = Rows::of(2000);
        assert_eq!(rows.calls, 2000);
        // 55 % answered, each with one intent and four transcript lines.
        assert_eq!(rows.intents, 1100);
        assert_eq!(rows.lines, 4400);
    }
}
