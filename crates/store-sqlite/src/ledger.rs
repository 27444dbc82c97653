//! The ledger (platform requests and received callbacks, with their retention) and the campaign leases.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use store::backend::{
    LEASE_COLUMNS, LedgerTable, granted_in_order, ingest_outcomes, ingested_facts, lease_expiry,
    prune_in_chunks, stored_records,
};
use store::{
    ActionRecord, CallbackIngest, CallbackRecord, FactSource, Ingested, LeaseRecord, StoreError,
};

use crate::util::{IN_LIST_MAX, SQLITE, Script, db_err, decode_all, rows_per_chunk, ts};
use crate::{SqliteStore, campaigns, facts};

/// One multi-row statement per chunk, in one transaction.
#[tracing::instrument(skip_all, fields(actions = actions.len()))]
pub(crate) async fn record_actions(
    s: &SqliteStore,
    actions: &[ActionRecord],
) -> Result<(), StoreError> {
    if actions.is_empty() {
        return Ok(());
    }
    let mut script = Script::default();
    for chunk in actions.chunks(rows_per_chunk(11)) {
        let qb = script.statement();
        qb.push(
            "INSERT INTO api_actions (at, endpoint, request_id, response_id, ret_code, message, http_status,
                                      duration_ms, outcome, campaign_id, user_task_id) ",
        );
        qb.push_values(chunk, |mut b, a| {
            b.push_bind(ts(a.at))
                .push_bind(a.endpoint.clone())
                .push_bind(a.request_id.clone())
                .push_bind(a.response_id.clone())
                .push_bind(a.ret_code)
                .push_bind(a.message.clone())
                .push_bind(a.http_status)
                .push_bind(a.duration_ms)
                .push_bind(a.outcome.clone())
                .push_bind(a.campaign_id.clone())
                .push_bind(a.user_task_id.clone());
        });
    }
    script.commit_on(s).await
}

#[tracing::instrument(skip_all)]
pub(crate) async fn recent_actions(
    s: &SqliteStore,
    limit: u32,
) -> Result<Vec<ActionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, endpoint, request_id, response_id, ret_code, message, http_status, duration_ms, outcome,
                campaign_id, user_task_id
         FROM api_actions ORDER BY action_id DESC LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all)]
pub(crate) async fn recent_callbacks(
    s: &SqliteStore,
    limit: u32,
) -> Result<Vec<CallbackRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT received_at, kind, request_id, verified, body FROM callbacks ORDER BY callback_id DESC LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

/// One transaction: which of the batch's replay keys are stored already (read under the write lock, so no other
/// writer adds one meanwhile), then one script with the new raw records, their facts and their task statuses.
#[tracing::instrument(skip_all, fields(callbacks = batch.len()))]
pub(crate) async fn ingest_callbacks(
    s: &SqliteStore,
    batch: &[CallbackIngest],
) -> Result<Vec<Ingested>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = s.begin_write().await?;
    let before = stored_replays(&mut tx, batch).await?;
    let outcomes = ingest_outcomes(batch, &before);
    let (facts, statuses) = ingested_facts(batch, &outcomes);
    let mut script = Script::default();
    push_callbacks(&mut script, batch, &outcomes);
    facts::push_facts(&mut script, &facts, FactSource::Callback);
    campaigns::push_task_statuses(&mut script, &statuses);
    script.run(&mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(outcomes)
}

/// One short statement (its own transaction) per chunk of rows, through the writer connection, so writes queue
/// behind one chunk at most.
#[tracing::instrument(skip_all, fields(max_rows))]
pub(crate) async fn prune_ledger(
    s: &SqliteStore,
    older_than: DateTime<Utc>,
    max_rows: u32,
) -> Result<u64, StoreError> {
    let cutoff = ts(older_than);
    prune_in_chunks(max_rows, |t, n| delete_oldest(s, t, &cutoff, n)).await
}

/// Deletes up to `n` of the table's rows older than `cutoff`, oldest first, as its own transaction.
async fn delete_oldest(
    s: &SqliteStore,
    t: LedgerTable,
    cutoff: &str,
    n: u32,
) -> Result<u64, StoreError> {
    let done = sqlx::query(sqlx::AssertSqlSafe(SQLITE.prune_ledger(t)))
        .bind(cutoff)
        .bind(i64::from(n))
        .execute(&s.writer)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected())
}

/// One multi-row statement per chunk, in one transaction; whether each was granted, in the order given, read from
/// the rows the upsert inserted or updated.
#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len(), owner = %owner))]
pub(crate) async fn try_acquire_leases(
    s: &SqliteStore,
    campaign_ids: &[String],
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Vec<bool>, StoreError> {
    let (expires, now) = (ts(lease_expiry(now, ttl)?), ts(now));
    let mut granted = Vec::new();
    let mut tx = s.writer.begin().await.map_err(db_err)?;
    // Three binds per row, one for the whole statement.
    for chunk in campaign_ids.chunks(rows_per_chunk(3) - 1) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO leases (campaign_id, owner, expires_at) ");
        qb.push_values(chunk, |mut b, id| {
            b.push_bind(id.clone())
                .push_bind(owner.to_owned())
                .push_bind(expires.clone());
        });
        qb.push(
            " ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
             WHERE leases.owner = excluded.owner OR leases.expires_at <= ",
        );
        qb.push_bind(now.clone());
        qb.push(" RETURNING campaign_id");
        let rows: Vec<(String,)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        granted.extend(rows.into_iter().map(|(id,)| id));
    }
    tx.commit().await.map_err(db_err)?;
    Ok(granted_in_order(campaign_ids, granted))
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id, owner = %owner))]
pub(crate) async fn release_lease(
    s: &SqliteStore,
    campaign_id: &str,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM leases WHERE campaign_id = ? AND owner = ?")
        .bind(campaign_id)
        .bind(owner)
        .execute(&s.writer)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// One `IN (...)` list per chunk of IDs, through the reader.
#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len()))]
pub(crate) async fn leases(
    s: &SqliteStore,
    campaign_ids: &[String],
) -> Result<Vec<LeaseRecord>, StoreError> {
    let mut out = Vec::new();
    for ids in campaign_ids.chunks(IN_LIST_MAX) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE campaign_id IN ("
        ));
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        q.push(")");
        let rows = q.build().fetch_all(&s.reader).await.map_err(db_err)?;
        out.extend(decode_all::<LeaseRecord>(&rows)?);
    }
    out.sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
    out.dedup_by(|a, b| a.campaign_id == b.campaign_id);
    Ok(out)
}

/// The batch's replay keys that are stored already (the `callbacks_replay` index).
async fn stored_replays(
    conn: &mut SqliteConnection,
    batch: &[CallbackIngest],
) -> Result<HashSet<String>, StoreError> {
    let keys: Vec<&str> = batch
        .iter()
        .filter_map(CallbackIngest::replay_key)
        .collect();
    let mut stored = HashSet::new();
    for chunk in keys.chunks(IN_LIST_MAX) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT request_id FROM callbacks WHERE verified = 1 AND request_id IN (",
        );
        let mut list = qb.separated(", ");
        for key in chunk {
            list.push_bind(*key);
        }
        qb.push(")");
        let rows: Vec<(String,)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        stored.extend(rows.into_iter().map(|(id,)| id));
    }
    Ok(stored)
}

/// The statements that insert the raw records `outcomes` calls stored, in input order.
fn push_callbacks(script: &mut Script, batch: &[CallbackIngest], outcomes: &[Ingested]) {
    for chunk in stored_records(batch, outcomes).chunks(rows_per_chunk(5)) {
        let qb = script.statement();
        qb.push("INSERT INTO callbacks (received_at, kind, request_id, verified, body) ");
        qb.push_values(chunk, |mut b, c| {
            b.push_bind(ts(c.received_at))
                .push_bind(c.kind.clone())
                .push_bind(c.request_id.clone())
                .push_bind(c.verified)
                .push_bind(c.body.clone());
        });
    }
}
