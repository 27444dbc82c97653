//! The ledger (platform requests and received callbacks, with their retention) and the campaign leases.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use store::backend::{
    LEASE_COLUMNS, LedgerTable, granted_in_order, ingest_outcomes, ingested_facts, lease_expiry,
    prune_in_chunks, stored_records,
};
use store::{
    ActionRecord, CallbackIngest, CallbackRecord, FactSource, Ingested, LeaseRecord, StoreError,
};

use crate::util::{POSTGRES, db_err, decode_all, nul_free, nul_free_opt};
use crate::{PgStore, campaigns, facts};

/// One statement (arrays unnested).
#[tracing::instrument(skip_all, fields(actions = actions.len()))]
pub(crate) async fn record_actions(
    s: &PgStore,
    actions: &[ActionRecord],
) -> Result<(), StoreError> {
    if actions.is_empty() {
        return Ok(());
    }
    let text =
        |f: fn(&ActionRecord) -> &str| actions.iter().map(|a| nul_free(f(a))).collect::<Vec<_>>();
    let opt_text = |f: fn(&ActionRecord) -> Option<&str>| {
        actions
            .iter()
            .map(|a| nul_free_opt(f(a)))
            .collect::<Vec<_>>()
    };
    let opt_int = |f: fn(&ActionRecord) -> Option<i64>| actions.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO api_actions (at, endpoint, request_id, response_id, ret_code, message, http_status, duration_ms,
                                  outcome, campaign_id, user_task_id)
         SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[],
                              $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[])",
    )
    .bind(actions.iter().map(|a| a.at).collect::<Vec<_>>())
    .bind(text(|a| &a.endpoint))
    .bind(text(|a| &a.request_id))
    .bind(opt_text(|a| a.response_id.as_deref()))
    .bind(opt_int(|a| a.ret_code))
    .bind(opt_text(|a| a.message.as_deref()))
    .bind(opt_int(|a| a.http_status))
    .bind(actions.iter().map(|a| a.duration_ms).collect::<Vec<_>>())
    .bind(text(|a| &a.outcome))
    .bind(opt_text(|a| a.campaign_id.as_deref()))
    .bind(opt_text(|a| a.user_task_id.as_deref()))
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub(crate) async fn recent_actions(
    s: &PgStore,
    limit: u32,
) -> Result<Vec<ActionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, endpoint, request_id, response_id, ret_code, message, http_status, duration_ms, outcome,
                campaign_id, user_task_id
         FROM api_actions ORDER BY action_id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all)]
pub(crate) async fn recent_callbacks(
    s: &PgStore,
    limit: u32,
) -> Result<Vec<CallbackRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT received_at, kind, request_id, verified, body FROM callbacks ORDER BY callback_id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

/// One transaction (one WAL flush): the raw records in one insert that skips stored replay keys (a concurrent writer
/// inserting the same key makes this one wait for its commit, then skip it), then the facts and task statuses of the
/// callbacks that were new.
#[tracing::instrument(skip_all, fields(callbacks = batch.len()))]
pub(crate) async fn ingest_callbacks(
    s: &PgStore,
    batch: &[CallbackIngest],
) -> Result<Vec<Ingested>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = s.pool.begin().await.map_err(db_err)?;
    let first_in_batch = ingest_outcomes(batch, &HashSet::new());
    let inserted = insert_callbacks(&mut tx, batch, &first_in_batch).await?;
    // The keys tried but not inserted were stored before.
    let before: HashSet<String> = batch
        .iter()
        .zip(&first_in_batch)
        .filter(|(_, o)| **o == Ingested::Stored)
        .filter_map(|(i, _)| i.replay_key())
        .filter(|k| !inserted.contains(nul_free(k).as_ref()))
        .map(str::to_owned)
        .collect();
    let outcomes = ingest_outcomes(batch, &before);
    let (facts, statuses) = ingested_facts(batch, &outcomes);
    if !facts.is_empty() {
        facts::apply_merged(&mut tx, facts, FactSource::Callback).await?;
    }
    campaigns::apply_task_statuses(&mut tx, &statuses).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(outcomes)
}

/// One short statement (its own transaction) per chunk of rows.
#[tracing::instrument(skip_all, fields(max_rows))]
pub(crate) async fn prune_ledger(
    s: &PgStore,
    older_than: DateTime<Utc>,
    max_rows: u32,
) -> Result<u64, StoreError> {
    prune_in_chunks(max_rows, |t, n| delete_oldest(s, t, older_than, n)).await
}

/// Deletes up to `n` of the table's rows older than `cutoff`, oldest first, as its own transaction.
async fn delete_oldest(
    s: &PgStore,
    t: LedgerTable,
    cutoff: DateTime<Utc>,
    n: u32,
) -> Result<u64, StoreError> {
    let done = sqlx::query(sqlx::AssertSqlSafe(POSTGRES.prune_ledger(t)))
        .bind(cutoff)
        .bind(i64::from(n))
        .execute(&s.pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected())
}

/// One statement: the IDs granted come back from `RETURNING`.
#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len(), owner = %owner))]
pub(crate) async fn try_acquire_leases(
    s: &PgStore,
    campaign_ids: &[String],
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Vec<bool>, StoreError> {
    let expires = lease_expiry(now, ttl)?;
    let mut unique: Vec<&str> = campaign_ids.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    let granted: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO leases (campaign_id, owner, expires_at)
         SELECT id, $2, $3 FROM unnest($1::text[]) AS u (id)
         ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE leases.owner = excluded.owner OR leases.expires_at <= $4
         RETURNING campaign_id",
    )
    .bind(&unique)
    .bind(nul_free(owner))
    .bind(expires)
    .bind(now)
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(granted_in_order(
        campaign_ids,
        granted.into_iter().map(|(id,)| id),
    ))
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id, owner = %owner))]
pub(crate) async fn release_lease(
    s: &PgStore,
    campaign_id: &str,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM leases WHERE campaign_id = $1 AND owner = $2")
        .bind(campaign_id)
        .bind(nul_free(owner))
        .execute(&s.pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// One statement (the IDs as an array).
#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len()))]
pub(crate) async fn leases(
    s: &PgStore,
    campaign_ids: &[String],
) -> Result<Vec<LeaseRecord>, StoreError> {
    let sql = format!(
        "SELECT {LEASE_COLUMNS} FROM leases WHERE campaign_id = ANY($1) ORDER BY campaign_id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(campaign_ids)
        .fetch_all(&s.pool)
        .await
        .map_err(db_err)?;
    decode_all(&rows)
}

/// Inserts the raw records `outcomes` calls stored, in input order, skipping any whose replay key is stored
/// already (the `callbacks_replay` index). Returns the replay keys it inserted (as stored: NUL-free).
#[tracing::instrument(skip_all, fields(callbacks = batch.len()))]
async fn insert_callbacks(
    conn: &mut PgConnection,
    batch: &[CallbackIngest],
    outcomes: &[Ingested],
) -> Result<HashSet<String>, StoreError> {
    let new = stored_records(batch, outcomes);
    let rows: Vec<(Option<String>, bool)> = sqlx::query_as(
        "INSERT INTO callbacks (received_at, kind, request_id, verified, body)
         SELECT received_at, kind, request_id, verified, body
         FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::bool[], $5::text[]) WITH ORDINALITY
              AS u (received_at, kind, request_id, verified, body, n)
         ORDER BY n
         ON CONFLICT (request_id) WHERE verified AND request_id IS NOT NULL DO NOTHING
         RETURNING request_id, verified",
    )
    .bind(new.iter().map(|c| c.received_at).collect::<Vec<_>>())
    .bind(new.iter().map(|c| nul_free(&c.kind)).collect::<Vec<_>>())
    .bind(new.iter().map(|c| nul_free_opt(c.request_id.as_deref())).collect::<Vec<_>>())
    .bind(new.iter().map(|c| c.verified).collect::<Vec<_>>())
    .bind(new.iter().map(|c| nul_free(&c.body)).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .filter(|(_, verified)| *verified)
        .filter_map(|(id, _)| id)
        .collect())
}
