//! Poll and callback facts: applying them (calls, their children, the orders' flags) and reading calls back.
//!
//! Writing facts is one script per transaction (see [`Script`]). No statement reads what an earlier one wrote back
//! to Rust: a call's children are written only where the call's stored status equals the reported one after the
//! upsert, which is exactly when the upsert took the report (a refused report is in flight while the stored status
//! is final, so they differ).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use store::backend::{OfCall, assemble_calls, transcript_json};
use store::{
    CallFacts, FactSource, IntentFact, OrderFacts, SmsFact, StoreError, merge_order_facts,
    talk_secs,
};

use crate::SqliteStore;
use crate::orders::push_mark_polled;
use crate::util::{
    IDS_PER_CHUNK, SQLITE, Script, db_err, decode_all, json_text, opt_ts, push_id_list,
    rows_per_chunk, ts,
};

/// Applies facts in one transaction: calls (never regressing a final status), their children, then the orders'
/// finished flag and last call status.
#[tracing::instrument(skip_all, fields(orders = facts.len(), source = source.as_str()))]
pub(crate) async fn apply_order_facts(
    s: &SqliteStore,
    facts: &[OrderFacts],
    source: FactSource,
) -> Result<(), StoreError> {
    store::backend::apply_order_facts(facts, |merged| async move {
        let mut script = Script::default();
        push_facts(&mut script, &merged, source);
        script.commit_on(s).await
    })
    .await
}

/// [`apply_order_facts`] of a poll and [`crate::orders::mark_polled`] of its chunk, in one transaction (one script).
/// A reported order's poll mark is set by the same statement as its flags, so its row is written once.
#[tracing::instrument(skip_all, fields(orders = facts.len(), polled = polled.len()))]
pub(crate) async fn record_poll(
    s: &SqliteStore,
    facts: &[OrderFacts],
    polled: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let merged = merge_order_facts(facts);
    if merged.is_empty() && polled.is_empty() {
        return Ok(());
    }
    let asked: HashSet<&str> = polled.iter().map(String::as_str).collect();
    let mut script = Script::default();
    push_facts_marked(&mut script, &merged, FactSource::Poll, Some((&asked, at)));
    let reported: HashSet<&str> = merged.iter().map(|o| o.order_id.as_str()).collect();
    let rest: Vec<String> = polled
        .iter()
        .filter(|id| !reported.contains(id.as_str()))
        .cloned()
        .collect();
    push_mark_polled(&mut script, &rest, at);
    script.commit_on(s).await
}

/// Three reads: the calls (with their transcripts), then their intents and SMS.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub(crate) async fn calls_of_order(
    s: &SqliteStore,
    order_id: &str,
) -> Result<Vec<CallFacts>, StoreError> {
    let rows = |sql: String| async move {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .fetch_all(&s.reader)
            .await
            .map_err(db_err)
    };
    let [calls, intents, sms] = SQLITE.calls_of_order();
    let calls: Vec<CallFacts> = decode_all(&rows(calls).await?)?;
    let intents: Vec<OfCall<IntentFact>> = decode_all(&rows(intents).await?)?;
    let sms: Vec<OfCall<SmsFact>> = decode_all(&rows(sms).await?)?;
    Ok(assemble_calls(calls, intents, sms))
}

/// The statements of [`apply_order_facts`]. `merged` comes from [`store::merge_order_facts`] (one entry per order and
/// per call).
pub(crate) fn push_facts(script: &mut Script, merged: &[OrderFacts], source: FactSource) {
    push_facts_marked(script, merged, source, None);
}

/// [`push_facts`], the orders among `polled.0` also marked polled at `polled.1` by the update of their flags.
fn push_facts_marked(
    script: &mut Script,
    merged: &[OrderFacts],
    source: FactSource,
    polled: Option<(&HashSet<&str>, DateTime<Utc>)>,
) {
    if merged.is_empty() {
        return;
    }
    let calls: Vec<&CallFacts> = merged.iter().flat_map(|o| o.calls.iter()).collect();
    push_upsert_calls(script, &calls, source);
    let intents: Vec<(&CallFacts, usize, &IntentFact)> = calls
        .iter()
        .flat_map(|c| c.intents.iter().enumerate().map(move |(i, f)| (*c, i, f)))
        .collect();
    let with_intents: Vec<&CallFacts> = calls
        .iter()
        .copied()
        .filter(|c| !c.intents.is_empty())
        .collect();
    // A non-empty intent list replaces the stored one; an empty one leaves it.
    push_delete_children(script, "call_intents", &with_intents);
    for chunk in intents.chunks(rows_per_chunk(7)) {
        let qb = script.statement();
        qb.push(
            "INSERT INTO call_intents (call_id, position, intent_id, intent_tag, intent_name, intent_level)
             SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6 FROM (",
        );
        qb.push_values(chunk, |mut b, (c, pos, f)| {
            b.push_bind(c.call_id.clone())
                .push_bind(*pos as i64)
                .push_bind(f.intent_id.clone())
                .push_bind(f.intent_tag.clone())
                .push_bind(f.intent_name.clone())
                .push_bind(f.intent_level)
                .push_bind(c.call_status);
        });
        qb.push(") AS v JOIN calls c ON c.call_id = v.column1 AND c.call_status = v.column7");
    }
    // The same for SMS.
    let sms: Vec<(&CallFacts, usize, &SmsFact)> = calls
        .iter()
        .flat_map(|c| c.sms.iter().enumerate().map(move |(i, f)| (*c, i, f)))
        .collect();
    let with_sms: Vec<&CallFacts> = calls
        .iter()
        .copied()
        .filter(|c| !c.sms.is_empty())
        .collect();
    push_delete_children(script, "call_sms", &with_sms);
    for chunk in sms.chunks(rows_per_chunk(7)) {
        let qb = script.statement();
        qb.push(
            "INSERT INTO call_sms (call_id, position, sys_message_id, sent_at, content, status)
             SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6 FROM (",
        );
        qb.push_values(chunk, |mut b, (c, pos, f)| {
            b.push_bind(c.call_id.clone())
                .push_bind(*pos as i64)
                .push_bind(f.sys_message_id.clone())
                .push_bind(opt_ts(f.sent_at))
                .push_bind(f.content.clone())
                .push_bind(f.status)
                .push_bind(c.call_status);
        });
        qb.push(") AS v JOIN calls c ON c.call_id = v.column1 AND c.call_status = v.column7");
    }
    push_update_orders(script, merged, polled);
}

fn push_upsert_calls(script: &mut Script, calls: &[&CallFacts], source: FactSource) {
    for chunk in calls.chunks(rows_per_chunk(15)) {
        let qb = script.statement();
        qb.push(
            "INSERT INTO calls (call_id, order_id, call_status, started_at, answered_at, ended_at, duration_secs,
                                talk_secs, audio_url, hangup_cause, term_sip_code, calling_number, agent, source,
                                transcript) ",
        );
        qb.push_values(chunk, |mut b, c| {
            b.push_bind(c.call_id.clone())
                .push_bind(c.order_id.clone())
                .push_bind(c.call_status)
                .push_bind(opt_ts(c.started_at))
                .push_bind(opt_ts(c.answered_at))
                .push_bind(opt_ts(c.ended_at))
                .push_bind(c.duration_secs)
                .push_bind(talk_secs(c))
                .push_bind(c.audio_url.clone())
                .push_bind(c.hangup_cause.clone())
                .push_bind(c.term_sip_code.clone())
                .push_bind(c.calling_number.clone())
                .push_bind(c.agent.as_ref().map(json_text))
                .push_bind(source.as_str())
                .push_bind(transcript_json(&c.transcript));
        });
        qb.push(
            " ON CONFLICT (call_id) DO UPDATE SET
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
                 transcript = CASE
                     WHEN excluded.transcript IS NULL THEN calls.transcript
                     WHEN calls.transcript IS NULL THEN excluded.transcript
                     ELSE (SELECT json_group_array(json(l.line) ORDER BY l.i) FROM (
                               SELECT n.value AS line, n.value ->> '$.index' AS i FROM json_each(excluded.transcript) n
                               UNION ALL
                               SELECT s.value, s.value ->> '$.index' FROM json_each(calls.transcript) s
                               WHERE s.value ->> '$.index' NOT IN
                                     (SELECT n.value ->> '$.index' FROM json_each(excluded.transcript) n)) l)
                 END
             WHERE NOT (calls.call_status >= 6 AND excluded.call_status < 6)",
        );
    }
}

/// Deletes the children in `table` of the calls the upsert took (see the module docs).
fn push_delete_children(script: &mut Script, table: &str, calls: &[&CallFacts]) {
    for chunk in calls.chunks(rows_per_chunk(2)) {
        let qb = script.statement();
        qb.push(format!(
            "DELETE FROM {table} WHERE call_id IN (SELECT v.column1 FROM ("
        ));
        qb.push_values(chunk, |mut b, c| {
            b.push_bind(c.call_id.clone()).push_bind(c.call_status);
        });
        qb.push(") AS v JOIN calls c ON c.call_id = v.column1 AND c.call_status = v.column2)");
    }
}

/// Sets the orders' finished flag (sticky: only ever set) and their `last_call_status` (the status of the latest
/// call by start time), in one statement per chunk.
fn push_update_orders(
    script: &mut Script,
    merged: &[OrderFacts],
    polled: Option<(&HashSet<&str>, DateTime<Utc>)>,
) {
    // At most three ID lists per chunk (all orders, the finished ones, the polled ones among them).
    for chunk in merged.chunks(IDS_PER_CHUNK / 3) {
        let qb = script.statement();
        qb.push("UPDATE orders SET finished = ");
        let finished: Vec<&str> = chunk
            .iter()
            .filter(|o| o.finished)
            .map(|o| o.order_id.as_str())
            .collect();
        if finished.is_empty() {
            qb.push("finished");
        } else {
            qb.push("CASE WHEN order_id IN ");
            push_id_list(qb, &finished);
            qb.push(" THEN 1 ELSE finished END");
        }
        if let Some((asked, at)) = polled {
            let marked: Vec<&str> = chunk
                .iter()
                .map(|o| o.order_id.as_str())
                .filter(|id| asked.contains(id))
                .collect();
            if marked.len() == chunk.len() {
                qb.push(", last_polled_at = ").push_bind(ts(at));
            } else if !marked.is_empty() {
                qb.push(", last_polled_at = CASE WHEN order_id IN ");
                push_id_list(qb, &marked);
                qb.push(" THEN ")
                    .push_bind(ts(at))
                    .push(" ELSE last_polled_at END");
            }
        }
        qb.push(
            ", dialled = EXISTS (SELECT 1 FROM calls c WHERE c.order_id = orders.order_id),
               answered = EXISTS (SELECT 1 FROM calls c WHERE c.order_id = orders.order_id AND c.call_status = 6),
               answered_started = EXISTS (SELECT 1 FROM calls c WHERE c.order_id = orders.order_id
                                                                  AND c.call_status = 6 AND c.started_at IS NOT NULL),
               last_call_day = (SELECT date(MAX(c.started_at)) FROM calls c WHERE c.order_id = orders.order_id),
               last_call_status = (
                 SELECT c.call_status FROM calls c WHERE c.order_id = orders.order_id
                 ORDER BY c.started_at IS NULL, c.started_at DESC, c.call_id DESC LIMIT 1)
             WHERE order_id IN ",
        );
        let ids: Vec<&str> = chunk.iter().map(|o| o.order_id.as_str()).collect();
        push_id_list(qb, &ids);
    }
}
