//! Poll and callback facts: applying them (calls, their children, the orders' flags) and reading calls back.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use store::backend::{OfCall, assemble_calls, transcript_json};
use store::{
    CallFacts, FactSource, IntentFact, OrderFacts, SmsFact, StoreError, merge_order_facts,
    talk_secs,
};

use crate::PgStore;
use crate::util::{POSTGRES, db_err, decode_all, json_text, nul_free};

/// Applies facts in one transaction: calls (never regressing a final status), their children, then the orders'
/// finished flag and last call status.
#[tracing::instrument(skip_all, fields(orders = facts.len(), source = source.as_str()))]
pub(crate) async fn apply_order_facts(
    s: &PgStore,
    facts: &[OrderFacts],
    source: FactSource,
) -> Result<(), StoreError> {
    store::backend::apply_order_facts(facts, |merged| async move {
        let mut tx = s.pool.begin().await.map_err(db_err)?;
        apply_merged(&mut tx, merged, source).await?;
        tx.commit().await.map_err(db_err)
    })
    .await
}

/// [`apply_order_facts`] of a poll and [`crate::orders::mark_polled`] of its chunk, in one transaction. Every order
/// either touches is locked first, in ID order, so this waits for (never deadlocks with) a callback writer; then the
/// calls and their children, then ONE update of the orders: the flags of those reported and the poll mark of those
/// asked, so each order's row is written once.
#[tracing::instrument(skip_all, fields(orders = facts.len(), polled = polled.len()))]
pub(crate) async fn record_poll(
    s: &PgStore,
    facts: &[OrderFacts],
    polled: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let merged = sorted_nul_free(merge_order_facts(facts));
    if merged.is_empty() && polled.is_empty() {
        return Ok(());
    }
    // Per order: (reported, finished, polled), by ID.
    let mut orders: BTreeMap<&str, (bool, bool, bool)> = BTreeMap::new();
    for o in &merged {
        orders.insert(o.order_id.as_str(), (true, o.finished, false));
    }
    for id in polled {
        orders.entry(id.as_str()).or_insert((false, false, false)).2 = true;
    }
    let mut tx = s.pool.begin().await.map_err(db_err)?;
    let ids: Vec<&str> = orders.keys().copied().collect();
    lock_order_ids(&mut tx, &ids).await?;
    write_calls(&mut tx, &merged, FactSource::Poll).await?;
    update_polled_orders(&mut tx, &orders, at).await?;
    tx.commit().await.map_err(db_err)
}

/// Three reads: the calls (with their transcripts), then their intents and SMS.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub(crate) async fn calls_of_order(
    s: &PgStore,
    order_id: &str,
) -> Result<Vec<CallFacts>, StoreError> {
    let rows = |sql: String| async move {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .fetch_all(&s.pool)
            .await
            .map_err(db_err)
    };
    let [calls, intents, sms] = POSTGRES.calls_of_order();
    let calls: Vec<CallFacts> = decode_all(&rows(calls).await?)?;
    let intents: Vec<OfCall<IntentFact>> = decode_all(&rows(intents).await?)?;
    let sms: Vec<OfCall<SmsFact>> = decode_all(&rows(sms).await?)?;
    Ok(assemble_calls(calls, intents, sms))
}

/// The statements of [`apply_order_facts`], inside the caller's transaction. `merged` comes from
/// [`merge_order_facts`] (one entry per order and per call).
pub(crate) async fn apply_merged(
    conn: &mut PgConnection,
    merged: Vec<OrderFacts>,
    source: FactSource,
) -> Result<(), StoreError> {
    let merged = sorted_nul_free(merged);
    // The orders first: the rollup triggers on calls count an order's calls of each day, so two writers of one
    // order's calls (a poll and a callback) must take turns.
    lock_orders(conn, &merged).await?;
    write_calls(conn, &merged, source).await?;
    update_orders(conn, &merged).await
}

/// The facts NUL-free (see [`nul_free_facts`]), by order ID: row locks are taken in ID order, so concurrent writers
/// of overlapping orders and calls cannot deadlock.
fn sorted_nul_free(merged: Vec<OrderFacts>) -> Vec<OrderFacts> {
    let mut merged = nul_free_facts(merged);
    merged.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    merged
}

/// The calls of `merged` (sorted, NUL-free, their orders locked) and their children; not the orders' flags.
async fn write_calls(
    conn: &mut PgConnection,
    merged: &[OrderFacts],
    source: FactSource,
) -> Result<(), StoreError> {
    let mut calls: Vec<&CallFacts> = merged.iter().flat_map(|o| o.calls.iter()).collect();
    calls.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    // Only the calls the upsert actually wrote (not refused by the final-status rule, judged under the row lock)
    // get their children written.
    let written = upsert_calls(conn, &calls, source).await?;
    let accepted: Vec<&CallFacts> = calls
        .into_iter()
        .filter(|c| written.contains_key(&c.call_id))
        .collect();
    // A call the upsert just inserted has no children yet: only updated ones need their lists deleted first (the
    // common callback is a new call, and the delete is a scan while the table's statistics are young).
    let updated: HashSet<&str> = accepted
        .iter()
        .filter(|c| written.get(&c.call_id) == Some(&false))
        .map(|c| c.call_id.as_str())
        .collect();
    replace_intents(conn, &accepted, &updated).await?;
    replace_sms(conn, &accepted, &updated).await
}

/// The facts with every text NUL-free (see [`nul_free`]), so that everything below binds them as they are; merged
/// again when that made two IDs equal (one statement must not touch a row twice).
fn nul_free_facts(mut merged: Vec<OrderFacts>) -> Vec<OrderFacts> {
    let mut changed = false;
    let mut fix = |s: &mut String| {
        if let Cow::Owned(clean) = nul_free(s) {
            *s = clean;
            changed = true;
        }
    };
    for o in &mut merged {
        fix(&mut o.order_id);
        fix(&mut o.user_task_id);
        for c in &mut o.calls {
            fix(&mut c.call_id);
            fix(&mut c.order_id);
            for s in [
                &mut c.audio_url,
                &mut c.hangup_cause,
                &mut c.term_sip_code,
                &mut c.calling_number,
            ] {
                s.iter_mut().for_each(&mut fix);
            }
            for i in &mut c.intents {
                fix(&mut i.intent_id);
                fix(&mut i.intent_tag);
                fix(&mut i.intent_name);
            }
            for m in &mut c.sms {
                fix(&mut m.sys_message_id);
                fix(&mut m.content);
            }
            for l in &mut c.transcript {
                fix(&mut l.word);
                l.node_id.iter_mut().for_each(&mut fix);
                l.node_desc.iter_mut().for_each(&mut fix);
            }
        }
    }
    if changed {
        merge_order_facts(&merged)
    } else {
        merged
    }
}

#[tracing::instrument(skip_all, fields(calls = calls.len()))]
async fn upsert_calls(
    conn: &mut PgConnection,
    calls: &[&CallFacts],
    source: FactSource,
) -> Result<HashMap<String, bool>, StoreError> {
    if calls.is_empty() {
        return Ok(HashMap::new());
    }
    let s = |f: fn(&CallFacts) -> String| calls.iter().map(|c| f(c)).collect::<Vec<String>>();
    let os = |f: fn(&CallFacts) -> Option<String>| {
        calls.iter().map(|c| f(c)).collect::<Vec<Option<String>>>()
    };
    let ot =
        |f: fn(&CallFacts) -> Option<DateTime<Utc>>| calls.iter().map(|c| f(c)).collect::<Vec<_>>();
    let oi =
        |f: fn(&CallFacts) -> Option<i64>| calls.iter().map(|c| f(c)).collect::<Vec<Option<i64>>>();
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "INSERT INTO calls (call_id, order_id, call_status, started_at, answered_at, ended_at, duration_secs,
                            talk_secs, audio_url, hangup_cause, term_sip_code, calling_number, agent, source,
                            transcript)
         SELECT u.call_id, u.order_id, u.call_status, u.started_at, u.answered_at, u.ended_at, u.duration_secs,
                u.talk_secs, u.audio_url, u.hangup_cause, u.term_sip_code, u.calling_number, u.agent::jsonb, $14,
                u.transcript::jsonb
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
                     $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                     $15::text[])
              AS u(call_id, order_id, call_status, started_at, answered_at, ended_at, duration_secs, talk_secs,
                   audio_url, hangup_cause, term_sip_code, calling_number, agent, transcript)
         ON CONFLICT (call_id) DO UPDATE SET
             order_id = excluded.order_id,
             call_status = excluded.call_status,
             started_at = COALESCE(excluded.started_at, calls.started_at),
             answered_at = COALESCE(excluded.answered_at, calls.answered_at),
             ended_at = COALESCE(excluded.ended_at, calls.ended_at),
             duration_secs = COALESCE(excluded.duration_secs, calls.duration_secs),
             talk_secs = COALESCE(excluded.talk_secs, calls.talk_secs),
             audio_url = COALESCE(excluded.audio_url, calls.audio_url),
             hangup_cause = COALESCE(excluded.hangup_cause, calls.hangup_cause),
             term_sip_code = COALESCE(excluded.term_sip_code, calls.term_sip_code),
             calling_number = COALESCE(excluded.calling_number, calls.calling_number),
             agent = COALESCE(excluded.agent, calls.agent),
             source = excluded.source,
             -- The lines merged by record index: the report's replace the stored ones of their index.
             transcript = CASE
                 WHEN excluded.transcript IS NULL THEN calls.transcript
                 WHEN calls.transcript IS NULL THEN excluded.transcript
                 ELSE (SELECT jsonb_agg(l.line ORDER BY (l.line ->> 'index')::bigint) FROM (
                           SELECT n.line FROM jsonb_array_elements(excluded.transcript) AS n(line)
                           UNION ALL
                           SELECT s.line FROM jsonb_array_elements(calls.transcript) AS s(line)
                           WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(excluded.transcript) AS n(line)
                                             WHERE n.line -> 'index' = s.line -> 'index')) l)
             END
         WHERE NOT (calls.call_status >= 6 AND excluded.call_status < 6)
         RETURNING call_id, (xmax = 0) AS inserted",
    )
    .bind(s(|c| c.call_id.clone()))
    .bind(s(|c| c.order_id.clone()))
    .bind(calls.iter().map(|c| c.call_status).collect::<Vec<i64>>())
    .bind(ot(|c| c.started_at))
    .bind(ot(|c| c.answered_at))
    .bind(ot(|c| c.ended_at))
    .bind(oi(|c| c.duration_secs))
    .bind(oi(talk_secs))
    .bind(os(|c| c.audio_url.clone()))
    .bind(os(|c| c.hangup_cause.clone()))
    .bind(os(|c| c.term_sip_code.clone()))
    .bind(os(|c| c.calling_number.clone()))
    .bind(os(|c| c.agent.as_ref().map(json_text)))
    .bind(source.as_str())
    .bind(
        calls
            .iter()
            .map(|c| transcript_json(&c.transcript))
            .collect::<Vec<Option<String>>>(),
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

/// A non-empty intent list replaces the stored one; an empty one leaves it.
#[tracing::instrument(skip_all)]
async fn replace_intents(
    conn: &mut PgConnection,
    calls: &[&CallFacts],
    updated: &HashSet<&str>,
) -> Result<(), StoreError> {
    let with: Vec<&&CallFacts> = calls.iter().filter(|c| !c.intents.is_empty()).collect();
    if with.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = with
        .iter()
        .map(|c| c.call_id.as_str())
        .filter(|id| updated.contains(id))
        .collect();
    if !ids.is_empty() {
        sqlx::query("DELETE FROM call_intents WHERE call_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let rows: Vec<(&str, i64, &IntentFact)> = with
        .iter()
        .flat_map(|c| {
            c.intents
                .iter()
                .enumerate()
                .map(|(i, f)| (c.call_id.as_str(), i as i64, f))
        })
        .collect();
    sqlx::query(
        "INSERT INTO call_intents (call_id, position, intent_id, intent_tag, intent_name, intent_level)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[])",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.intent_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.intent_tag.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.intent_name.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.intent_level).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// A non-empty SMS list replaces the stored one; an empty one leaves it.
#[tracing::instrument(skip_all)]
async fn replace_sms(
    conn: &mut PgConnection,
    calls: &[&CallFacts],
    updated: &HashSet<&str>,
) -> Result<(), StoreError> {
    let with: Vec<&&CallFacts> = calls.iter().filter(|c| !c.sms.is_empty()).collect();
    if with.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = with
        .iter()
        .map(|c| c.call_id.as_str())
        .filter(|id| updated.contains(id))
        .collect();
    if !ids.is_empty() {
        sqlx::query("DELETE FROM call_sms WHERE call_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let rows: Vec<(&str, i64, &SmsFact)> = with
        .iter()
        .flat_map(|c| {
            c.sms
                .iter()
                .enumerate()
                .map(|(i, f)| (c.call_id.as_str(), i as i64, f))
        })
        .collect();
    sqlx::query(
        "INSERT INTO call_sms (call_id, position, sys_message_id, sent_at, content, status)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::timestamptz[], $5::text[], $6::int8[])",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.sys_message_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.sent_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.content.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.status).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Locks the orders' rows, in order ID order (`merged` is sorted), until the transaction ends.
async fn lock_orders(conn: &mut PgConnection, merged: &[OrderFacts]) -> Result<(), StoreError> {
    let ids: Vec<&str> = merged.iter().map(|o| o.order_id.as_str()).collect();
    lock_order_ids(conn, &ids).await
}

/// Locks these orders' rows, in order ID order, until the transaction ends.
async fn lock_order_ids(conn: &mut PgConnection, ids: &[&str]) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT 1 FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The flags an order takes from its calls, in one pass over them (`calls c`, to be narrowed to one order by a
/// `WHERE` on `c.order_id`): whether it was dialled, answered (callStatus 6), answered with a start, the UTC day of
/// its latest start, and the status of its latest call by start time. As a LATERAL subquery it can only be an index
/// look-up (`calls_by_order`).
macro_rules! call_flags {
    () => {
        "SELECT COUNT(*) > 0 AS dialled,
                COALESCE(bool_or(c.call_status = 6), false) AS answered,
                COALESCE(bool_or(c.call_status = 6 AND c.started_at IS NOT NULL), false) AS answered_started,
                (MAX(c.started_at) AT TIME ZONE 'UTC')::date AS last_call_day,
                (array_agg(c.call_status ORDER BY c.started_at DESC NULLS LAST, c.call_id DESC))[1]
                    AS last_call_status
         FROM calls c"
    };
}

/// Sets the orders' finished flag (sticky: only ever set) and their `last_call_status` (the status of the latest
/// call by start time), in one statement. The rows are locked in order ID order first, so two transactions writing
/// overlapping orders at once (parallel callback writers, a poll) wait for each other instead of deadlocking.
///
/// The flags come from one pass over each order's calls, a LATERAL subquery that can only be an index look-up
/// (`calls_by_order`). Written as five `EXISTS`/scalar subqueries, a plan made while `calls` was small turned two of
/// them into hashed subplans over a scan of the whole table, once per statement: on a connection that kept that
/// plan, every batch of callbacks read every call (3,812 callbacks/s at 100,000, falling as calls grew).
#[tracing::instrument(skip_all, fields(orders = merged.len()))]
async fn update_orders(conn: &mut PgConnection, merged: &[OrderFacts]) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "WITH locked AS MATERIALIZED (
             SELECT order_id FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE)
         UPDATE orders o SET finished = o.finished OR u.finished,
             dialled = f.dialled,
             answered = f.answered,
             answered_started = f.answered_started,
             last_call_day = f.last_call_day,
             last_call_status = f.last_call_status
         FROM locked l JOIN UNNEST($1::text[], $2::bool[]) AS u(order_id, finished) ON u.order_id = l.order_id
         CROSS JOIN LATERAL (",
        call_flags!(),
        "    WHERE c.order_id = u.order_id) f
         WHERE o.order_id = l.order_id"
    ),
    )
    .bind(
        merged
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(merged.iter().map(|o| o.finished).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// [`record_poll`]'s one update of its orders (already locked): for those reported (`.0`), the finished flag
/// (sticky: `.1` only ever sets it) and the flags derived from their calls, read in one pass over each order's calls;
/// for those asked (`.2`), `last_polled_at = at`. One row version per order, so the indexes of `orders` are written
/// once per order, not once per flag change and once more per poll mark.
#[tracing::instrument(skip_all, fields(orders = orders.len()))]
async fn update_polled_orders(
    conn: &mut PgConnection,
    orders: &BTreeMap<&str, (bool, bool, bool)>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if orders.is_empty() {
        return Ok(());
    }
    sqlx::query(concat!(
        "UPDATE orders o SET finished = o.finished OR u.finished,
             dialled = CASE WHEN u.reported THEN f.dialled ELSE o.dialled END,
             answered = CASE WHEN u.reported THEN f.answered ELSE o.answered END,
             answered_started = CASE WHEN u.reported THEN f.answered_started ELSE o.answered_started END,
             last_call_day = CASE WHEN u.reported THEN f.last_call_day ELSE o.last_call_day END,
             last_call_status = CASE WHEN u.reported THEN f.last_call_status ELSE o.last_call_status END,
             last_polled_at = CASE WHEN u.polled THEN $5 ELSE o.last_polled_at END
         FROM UNNEST($1::text[], $2::bool[], $3::bool[], $4::bool[]) AS u(order_id, reported, finished, polled)
         CROSS JOIN LATERAL (",
        call_flags!(),
        "    WHERE u.reported AND c.order_id = u.order_id) f
         WHERE o.order_id = u.order_id"
    ),
    )
    .bind(orders.keys().copied().collect::<Vec<_>>())
    .bind(orders.values().map(|v| v.0).collect::<Vec<_>>())
    .bind(orders.values().map(|v| v.1).collect::<Vec<_>>())
    .bind(orders.values().map(|v| v.2).collect::<Vec<_>>())
    .bind(at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}
