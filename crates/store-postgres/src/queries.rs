//! One function per query: campaigns, tasks, orders, ledger, leases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::types::Json;
use store::{
    ActionRecord, CallbackRecord, CampaignRecord, NewOrder, OrderCounts, OrderProgress,
    OrderRecord, StoreError, TaskRecord, UploadState,
};

use store::TallyDelta;

use crate::util::{apply_tallies, db_err, get};

#[tracing::instrument(skip_all)]
pub(crate) async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(campaign.id = %c.id))]
pub(crate) async fn upsert_campaign(
    pool: impl sqlx::PgExecutor<'_>,
    c: &CampaignRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO campaigns (campaign_id, generation, source_file, content_hash, spec, state, last_error, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (campaign_id) DO UPDATE SET
             generation = excluded.generation, source_file = excluded.source_file,
             content_hash = excluded.content_hash, spec = excluded.spec, state = excluded.state,
             last_error = excluded.last_error, updated_at = excluded.updated_at",
    )
    .bind(&c.id)
    .bind(c.generation)
    .bind(&c.source_file)
    .bind(&c.content_hash)
    .bind(c.spec.as_ref().map(Json))
    .bind(&c.state)
    .bind(&c.last_error)
    .bind(c.updated_at)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Several campaigns in one statement (arrays unnested); a campaign given twice keeps its last record.
#[tracing::instrument(skip_all, fields(campaigns = cs.len()))]
pub(crate) async fn upsert_campaigns(
    pool: &PgPool,
    cs: &[CampaignRecord],
) -> Result<(), StoreError> {
    let mut last: std::collections::HashMap<&str, &CampaignRecord> =
        std::collections::HashMap::new();
    for c in cs {
        last.insert(&c.id, c);
    }
    let cs: Vec<&CampaignRecord> = last.into_values().collect();
    if cs.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
    let generations: Vec<i64> = cs.iter().map(|c| c.generation).collect();
    let sources: Vec<&str> = cs.iter().map(|c| c.source_file.as_str()).collect();
    let hashes: Vec<&str> = cs.iter().map(|c| c.content_hash.as_str()).collect();
    let specs: Vec<Option<String>> = cs
        .iter()
        .map(|c| c.spec.as_ref().map(|v| v.to_string()))
        .collect();
    let states: Vec<&str> = cs.iter().map(|c| c.state.as_str()).collect();
    let errors: Vec<Option<&str>> = cs.iter().map(|c| c.last_error.as_deref()).collect();
    let updated: Vec<DateTime<Utc>> = cs.iter().map(|c| c.updated_at).collect();
    sqlx::query(
        "INSERT INTO campaigns (campaign_id, generation, source_file, content_hash, spec, state, last_error, updated_at)
         SELECT id, generation, source_file, content_hash, spec::jsonb, state, last_error, updated_at
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::timestamptz[])
              AS u (id, generation, source_file, content_hash, spec, state, last_error, updated_at)
         ON CONFLICT (campaign_id) DO UPDATE SET
             generation = excluded.generation, source_file = excluded.source_file,
             content_hash = excluded.content_hash, spec = excluded.spec, state = excluded.state,
             last_error = excluded.last_error, updated_at = excluded.updated_at",
    )
    .bind(&ids)
    .bind(&generations)
    .bind(&sources)
    .bind(&hashes)
    .bind(&specs)
    .bind(&states)
    .bind(&errors)
    .bind(&updated)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub(crate) async fn campaigns(pool: &PgPool) -> Result<Vec<CampaignRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign_id, generation, source_file, content_hash, spec, state, last_error, updated_at
         FROM campaigns ORDER BY campaign_id",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(CampaignRecord {
                id: get(r, "campaign_id")?,
                generation: get(r, "generation")?,
                source_file: get(r, "source_file")?,
                content_hash: get(r, "content_hash")?,
                spec: get::<Option<Json<serde_json::Value>>>(r, "spec")?.map(|j| j.0),
                state: get(r, "state")?,
                last_error: get(r, "last_error")?,
                updated_at: get(r, "updated_at")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(task.user_id = %t.user_task_id))]
pub(crate) async fn upsert_task(pool: &PgPool, t: &TaskRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tasks (user_task_id, campaign_id, generation, task_index, task_id, settings, settings_sent_at,
                            platform_status, desired_status, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (user_task_id) DO UPDATE SET
             campaign_id = excluded.campaign_id, generation = excluded.generation,
             task_index = excluded.task_index, task_id = COALESCE(excluded.task_id, tasks.task_id),
             settings = excluded.settings, settings_sent_at = excluded.settings_sent_at,
             platform_status = excluded.platform_status, desired_status = excluded.desired_status,
             updated_at = excluded.updated_at",
    )
    .bind(&t.user_task_id)
    .bind(&t.campaign_id)
    .bind(t.generation)
    .bind(t.task_index)
    .bind(&t.task_id)
    .bind(t.settings.as_ref().map(Json))
    .bind(t.settings_sent_at)
    .bind(t.platform_status)
    .bind(t.desired_status)
    .bind(t.updated_at)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id))]
pub(crate) async fn tasks(pool: &PgPool, campaign_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT user_task_id, campaign_id, generation, task_index, task_id, settings, settings_sent_at,
                platform_status, desired_status, updated_at
         FROM tasks WHERE campaign_id = $1 ORDER BY generation, task_index, user_task_id",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(task_from_row).collect()
}

#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len()))]
pub(crate) async fn tasks_of(
    pool: &PgPool,
    campaign_ids: &[String],
) -> Result<Vec<TaskRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT user_task_id, campaign_id, generation, task_index, task_id, settings, settings_sent_at,
                platform_status, desired_status, updated_at
         FROM tasks WHERE campaign_id = ANY($1)
         ORDER BY campaign_id, generation, task_index, user_task_id",
    )
    .bind(campaign_ids)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(task_from_row).collect()
}

fn task_from_row(r: &PgRow) -> Result<TaskRecord, StoreError> {
    Ok(TaskRecord {
        user_task_id: get(r, "user_task_id")?,
        campaign_id: get(r, "campaign_id")?,
        generation: get(r, "generation")?,
        task_index: get(r, "task_index")?,
        task_id: get(r, "task_id")?,
        settings: get::<Option<Json<serde_json::Value>>>(r, "settings")?.map(|j| j.0),
        settings_sent_at: get(r, "settings_sent_at")?,
        platform_status: get(r, "platform_status")?,
        desired_status: get(r, "desired_status")?,
        updated_at: get(r, "updated_at")?,
    })
}

/// Text of one field in `COPY ... FROM STDIN` (text format): `\N` for NULL, else the value with backslash, tab,
/// newline and carriage return escaped.
fn copy_field(buf: &mut Vec<u8>, value: Option<&str>) {
    let Some(v) = value else {
        buf.extend_from_slice(b"\\N");
        return;
    };
    for b in v.bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

/// The orders as `COPY` text rows, in the column order of the `planned_in` temporary table.
fn copy_rows(orders: &[NewOrder]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(orders.len() * 160);
    for (n, o) in orders.iter().enumerate() {
        let variables = o.variables.to_string();
        let fields = [
            Some(o.order_id.as_str()),
            Some(o.campaign_id.as_str()),
            Some(o.user_task_id.as_str()),
            Some(o.phone.as_str()),
            o.name.as_deref(),
            o.customer.as_deref(),
            o.other.as_deref(),
            Some(variables.as_str()),
        ];
        for f in fields {
            copy_field(&mut buf, f);
            buf.push(b'\t');
        }
        buf.extend_from_slice(o.source_line.to_string().as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(n.to_string().as_bytes());
        buf.push(b'\n');
    }
    buf
}

/// `COPY` into a temporary table dropped at commit, then one `INSERT .. SELECT .. ON CONFLICT DO NOTHING` that also
/// tells how many rows of each task were new (for the tallies), all in one transaction.
#[tracing::instrument(skip_all, fields(orders = orders.len()))]
pub(crate) async fn insert_planned_orders(
    pool: &PgPool,
    orders: &[NewOrder],
) -> Result<u64, StoreError> {
    if orders.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await.map_err(db_err)?;
    sqlx::query(
        "CREATE TEMPORARY TABLE planned_in (
             order_id text, campaign_id text, user_task_id text, phone text, name text, customer text, other text,
             variables text, source_line int8, n int8
         ) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    let mut copy = tx
        .copy_in_raw("COPY planned_in FROM STDIN")
        .await
        .map_err(db_err)?;
    copy.send(copy_rows(orders)).await.map_err(db_err)?;
    copy.finish().await.map_err(db_err)?;
    let per_task: Vec<(String, i64)> = sqlx::query_as(
        "WITH ins AS (
             INSERT INTO orders (order_id, campaign_id, user_task_id, phone, name, customer, other, variables,
                                 source_line)
             SELECT order_id, campaign_id, user_task_id, phone, name, customer, other, variables::jsonb, source_line
             FROM planned_in ORDER BY n
             ON CONFLICT DO NOTHING
             RETURNING user_task_id
         )
         SELECT user_task_id, COUNT(*) FROM ins GROUP BY user_task_id",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    let mut tallies = TallyDelta::default();
    let mut inserted = 0;
    for (ut, n) in &per_task {
        tallies.add(ut, UploadState::Planned, *n);
        inserted += u64::try_from(*n).unwrap_or(0);
    }
    apply_tallies(tallies, &mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(inserted)
}

const ORDER_COLUMNS: &str = "order_id, campaign_id, user_task_id, phone, name, customer, other, variables, \
     source_line, upload_state, reject_reason, state_changed_at, finished, last_call_status, last_polled_at";

fn order_from_row(r: &PgRow) -> Result<OrderRecord, StoreError> {
    Ok(OrderRecord {
        order_id: get(r, "order_id")?,
        campaign_id: get(r, "campaign_id")?,
        user_task_id: get(r, "user_task_id")?,
        phone: get(r, "phone")?,
        name: get(r, "name")?,
        customer: get(r, "customer")?,
        other: get(r, "other")?,
        variables: get::<Json<serde_json::Value>>(r, "variables")?.0,
        source_line: get(r, "source_line")?,
        upload_state: get::<String>(r, "upload_state")?.parse()?,
        reject_reason: get(r, "reject_reason")?,
        state_changed_at: get(r, "state_changed_at")?,
        finished: get(r, "finished")?,
        last_call_status: get(r, "last_call_status")?,
        last_polled_at: get(r, "last_polled_at")?,
    })
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, state = %state))]
pub(crate) async fn orders_in_state(
    pool: &PgPool,
    user_task_id: &str,
    state: UploadState,
    limit: u32,
) -> Result<Vec<OrderRecord>, StoreError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE user_task_id = $1 AND upload_state = $2
         ORDER BY source_line, order_id LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user_task_id)
        .bind(state.as_str())
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(order_from_row).collect()
}

#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub(crate) async fn order(
    pool: &PgPool,
    order_id: &str,
) -> Result<Option<OrderRecord>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(order_from_row).transpose()
}

#[tracing::instrument(skip_all, fields(orders = order_ids.len(), state = %state))]
pub(crate) async fn set_upload_state(
    pool: &PgPool,
    order_ids: &[String],
    state: UploadState,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if order_ids.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut tallies = TallyDelta::default();
    let moved = move_orders(&mut tx, order_ids, None, state, at, &mut tallies).await?;
    apply_tallies(tallies, &mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(moved)
}

/// Moves orders to `state` from each of its predecessors in turn (one statement each, so the tallies know where
/// every moved order came from); with `task`, only that task's orders.
async fn move_orders(
    conn: &mut sqlx::PgConnection,
    order_ids: &[String],
    task: Option<&str>,
    state: UploadState,
    at: DateTime<Utc>,
    tallies: &mut TallyDelta,
) -> Result<u64, StoreError> {
    let mut moved = 0;
    for &from in state.predecessors() {
        moved += move_orders_from(conn, order_ids, task, from, state, at, tallies).await?;
    }
    Ok(moved)
}

/// [`move_orders`] from one predecessor.
async fn move_orders_from(
    conn: &mut sqlx::PgConnection,
    order_ids: &[String],
    task: Option<&str>,
    from: UploadState,
    state: UploadState,
    at: DateTime<Utc>,
    tallies: &mut TallyDelta,
) -> Result<u64, StoreError> {
    let mut moved = 0;
    {
        let per_task: Vec<(String, i64)> = sqlx::query_as(
            "WITH locked AS MATERIALIZED (
                 SELECT order_id FROM orders WHERE order_id = ANY($3) ORDER BY order_id FOR UPDATE
             ), m AS (
                 UPDATE orders o SET upload_state = $1, state_changed_at = $2
                 FROM locked l
                 WHERE o.order_id = l.order_id AND o.upload_state = $4 AND ($5::text IS NULL OR o.user_task_id = $5)
                 RETURNING o.user_task_id
             )
             SELECT user_task_id, COUNT(*) FROM m GROUP BY user_task_id",
        )
        .bind(state.as_str())
        .bind(at)
        .bind(order_ids)
        .bind(from.as_str())
        .bind(task)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        for (ut, n) in &per_task {
            tallies.moved(ut, from, state, *n);
            moved += u64::try_from(*n).unwrap_or(0);
        }
    }
    Ok(moved)
}

#[tracing::instrument(skip_all, fields(orders = rejected.len()))]
pub(crate) async fn reject_orders(
    pool: &PgPool,
    rejected: &[(String, String)],
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if rejected.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut tallies = TallyDelta::default();
    let moved = reject_in(&mut tx, rejected, None, at, &mut tallies).await?;
    apply_tallies(tallies, &mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(moved)
}

/// Marks orders rejected with their reasons, from `planned` or `sending` only (one statement per predecessor); with
/// `task`, only that task's orders.
async fn reject_in(
    conn: &mut sqlx::PgConnection,
    rejected: &[(String, String)],
    task: Option<&str>,
    at: DateTime<Utc>,
    tallies: &mut TallyDelta,
) -> Result<u64, StoreError> {
    let ids: Vec<&str> = rejected.iter().map(|(id, _)| id.as_str()).collect();
    let reasons: Vec<&str> = rejected.iter().map(|(_, r)| r.as_str()).collect();
    let mut moved = 0;
    for &from in UploadState::Rejected.predecessors() {
        let per_task: Vec<(String, i64)> = sqlx::query_as(
            "WITH locked AS MATERIALIZED (
                 SELECT order_id FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE
             ), m AS (
                 UPDATE orders o SET upload_state = 'rejected', reject_reason = u.reason, state_changed_at = $3
                 FROM locked l JOIN UNNEST($1::text[], $2::text[]) AS u(order_id, reason) ON u.order_id = l.order_id
                 WHERE o.order_id = l.order_id AND o.upload_state = $4
                       AND ($5::text IS NULL OR o.user_task_id = $5)
                 RETURNING o.user_task_id
             )
             SELECT user_task_id, COUNT(*) FROM m GROUP BY user_task_id",
        )
        .bind(&ids)
        .bind(&reasons)
        .bind(at)
        .bind(from.as_str())
        .bind(task)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        for (ut, n) in &per_task {
            tallies.moved(ut, from, UploadState::Rejected, *n);
            moved += u64::try_from(*n).unwrap_or(0);
        }
    }
    Ok(moved)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, sent = sent.len(), rejected = rejected.len(), claim))]
pub(crate) async fn settle_and_claim(
    pool: &PgPool,
    sent: &[String],
    rejected: &[(String, String)],
    user_task_id: &str,
    claim: u32,
    at: DateTime<Utc>,
) -> Result<Vec<OrderRecord>, StoreError> {
    if sent.is_empty() && rejected.is_empty() && claim == 0 {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut tallies = TallyDelta::default();
    if !rejected.is_empty() {
        reject_in(&mut tx, rejected, Some(user_task_id), at, &mut tallies).await?;
    }
    if !sent.is_empty() {
        // The batch was claimed `sending`; only when some of it was not found there is `planned` looked at too.
        let found = move_orders_from(
            &mut tx,
            sent,
            Some(user_task_id),
            UploadState::Sending,
            UploadState::Sent,
            at,
            &mut tallies,
        )
        .await?;
        if found < sent.len() as u64 {
            move_orders_from(
                &mut tx,
                sent,
                Some(user_task_id),
                UploadState::Planned,
                UploadState::Sent,
                at,
                &mut tallies,
            )
            .await?;
        }
    }
    let mut claimed = Vec::new();
    if claim > 0 {
        // The outer state check makes a concurrent claim of the same rows (two replicas racing for a lease) skip
        // them once the first commits, instead of claiming them twice. `= ANY(ARRAY(..))` evaluates the batch's
        // IDs once and keeps the planner on primary-key look-ups (an `IN (subquery)` may become a hash join over a
        // scan of the whole table).
        let sql = format!(
            "UPDATE orders SET upload_state = 'sending', state_changed_at = $1
             WHERE upload_state = 'planned'
               AND order_id = ANY(ARRAY(SELECT order_id FROM orders WHERE user_task_id = $2 AND upload_state = 'planned'
                                        ORDER BY source_line, order_id LIMIT $3))
             RETURNING {ORDER_COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at)
            .bind(user_task_id)
            .bind(i64::from(claim))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        claimed = rows
            .iter()
            .map(order_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| (a.source_line, &a.order_id).cmp(&(b.source_line, &b.order_id)));
        tallies.moved(
            user_task_id,
            UploadState::Planned,
            UploadState::Sending,
            claimed.len() as i64,
        );
    }
    apply_tallies(tallies, &mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(claimed)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn order_progress(
    pool: &PgPool,
    user_task_id: &str,
) -> Result<OrderProgress, StoreError> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(planned), 0)::int8 AS planned, COALESCE(SUM(sending), 0)::int8 AS sending,
                COALESCE(SUM(sent), 0)::int8 AS sent, COALESCE(SUM(rejected), 0)::int8 AS rejected,
                (SELECT COUNT(*) FROM orders
                 WHERE user_task_id = $1 AND upload_state = 'sent' AND NOT finished) AS unfinished
         FROM order_tallies WHERE user_task_id = $1",
    )
    .bind(user_task_id)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    progress_from_row(&row)
}

#[tracing::instrument(skip_all, fields(tasks = user_task_ids.len()))]
pub(crate) async fn order_progress_of(
    pool: &PgPool,
    user_task_ids: &[String],
) -> Result<Vec<OrderProgress>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.user_task_id,
                COALESCE(t.planned, 0)::int8 AS planned, COALESCE(t.sending, 0)::int8 AS sending,
                COALESCE(t.sent, 0)::int8 AS sent, COALESCE(t.rejected, 0)::int8 AS rejected,
                (SELECT COUNT(*) FROM orders o
                 WHERE o.user_task_id = u.user_task_id AND o.upload_state = 'sent' AND NOT o.finished) AS unfinished
         FROM unnest($1::text[]) WITH ORDINALITY AS u (user_task_id, position)
         LEFT JOIN order_tallies t ON t.user_task_id = u.user_task_id
         ORDER BY u.position",
    )
    .bind(user_task_ids)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(progress_from_row).collect()
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn orders_to_poll(
    pool: &PgPool,
    user_task_id: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT order_id FROM orders
         WHERE user_task_id = $1 AND upload_state = 'sent' AND NOT finished
         ORDER BY last_polled_at NULLS FIRST, order_id
         LIMIT $2",
    )
    .bind(user_task_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[tracing::instrument(skip_all, fields(orders = order_ids.len()))]
pub(crate) async fn mark_polled(
    pool: &PgPool,
    order_ids: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if order_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH locked AS MATERIALIZED (
             SELECT order_id FROM orders WHERE order_id = ANY($2) ORDER BY order_id FOR UPDATE)
         UPDATE orders o SET last_polled_at = $1 FROM locked l WHERE o.order_id = l.order_id",
    )
    .bind(at)
    .bind(order_ids)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id))]
pub(crate) async fn order_counts(
    pool: &PgPool,
    campaign_id: &str,
) -> Result<OrderCounts, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS total,
                COUNT(*) FILTER (WHERE upload_state = 'planned') AS planned,
                COUNT(*) FILTER (WHERE upload_state = 'sending') AS sending,
                COUNT(*) FILTER (WHERE upload_state = 'sent') AS sent,
                COUNT(*) FILTER (WHERE upload_state = 'rejected') AS rejected,
                COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id)) AS dialled,
                COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM calls c
                                               WHERE c.order_id = o.order_id AND c.call_status = 6)) AS answered,
                COUNT(*) FILTER (WHERE finished) AS finished
         FROM orders o WHERE campaign_id = $1",
    )
    .bind(campaign_id)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    let n = |c: &str| get::<i64>(&row, c).map(|v| u64::try_from(v).unwrap_or(0));
    Ok(OrderCounts {
        total: n("total")?,
        planned: n("planned")?,
        sending: n("sending")?,
        sent: n("sent")?,
        rejected: n("rejected")?,
        dialled: n("dialled")?,
        answered: n("answered")?,
        finished: n("finished")?,
    })
}

#[tracing::instrument(skip_all, fields(endpoint = %a.endpoint))]
pub(crate) async fn record_action(pool: &PgPool, a: &ActionRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_actions (at, endpoint, request_id, response_id, ret_code, message, http_status, duration_ms,
                                  outcome, campaign_id, user_task_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(a.at)
    .bind(&a.endpoint)
    .bind(&a.request_id)
    .bind(&a.response_id)
    .bind(a.ret_code)
    .bind(&a.message)
    .bind(a.http_status)
    .bind(a.duration_ms)
    .bind(&a.outcome)
    .bind(&a.campaign_id)
    .bind(&a.user_task_id)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub(crate) async fn recent_actions(
    pool: &PgPool,
    limit: u32,
) -> Result<Vec<ActionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, endpoint, request_id, response_id, ret_code, message, http_status, duration_ms, outcome,
                campaign_id, user_task_id
         FROM api_actions ORDER BY action_id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(ActionRecord {
                endpoint: get(r, "endpoint")?,
                request_id: get(r, "request_id")?,
                response_id: get(r, "response_id")?,
                ret_code: get(r, "ret_code")?,
                message: get(r, "message")?,
                http_status: get(r, "http_status")?,
                duration_ms: get(r, "duration_ms")?,
                at: get(r, "at")?,
                outcome: get(r, "outcome")?,
                campaign_id: get(r, "campaign_id")?,
                user_task_id: get(r, "user_task_id")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(kind = %c.kind))]
pub(crate) async fn record_callback(pool: &PgPool, c: &CallbackRecord) -> Result<i64, StoreError> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO callbacks (received_at, kind, request_id, verified, body) VALUES ($1, $2, $3, $4, $5)
         RETURNING callback_id",
    )
    .bind(c.received_at)
    .bind(&c.kind)
    .bind(&c.request_id)
    .bind(c.verified)
    .bind(&c.body)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(id)
}

#[tracing::instrument(skip_all)]
pub(crate) async fn recent_callbacks(
    pool: &PgPool,
    limit: u32,
) -> Result<Vec<CallbackRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT received_at, kind, request_id, verified, body FROM callbacks ORDER BY callback_id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(CallbackRecord {
                kind: get(r, "kind")?,
                body: get(r, "body")?,
                verified: get(r, "verified")?,
                received_at: get(r, "received_at")?,
                request_id: get(r, "request_id")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id, owner = %owner))]
pub(crate) async fn try_acquire_lease(
    pool: impl sqlx::PgExecutor<'_>,
    campaign_id: &str,
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))?;
    let expires = now
        .checked_add_signed(ttl)
        .ok_or_else(|| StoreError::Invalid("lease ttl too long".into()))?;
    let changed = sqlx::query(
        "INSERT INTO leases (campaign_id, owner, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE leases.owner = excluded.owner OR leases.expires_at <= $4",
    )
    .bind(campaign_id)
    .bind(owner)
    .bind(expires)
    .bind(now)
    .execute(pool)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(changed == 1)
}

/// Several leases in one statement: the IDs granted come back from `RETURNING`.
#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len(), owner = %owner))]
pub(crate) async fn try_acquire_leases(
    pool: &PgPool,
    campaign_ids: &[String],
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Vec<bool>, StoreError> {
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))?;
    let expires = now
        .checked_add_signed(ttl)
        .ok_or_else(|| StoreError::Invalid("lease ttl too long".into()))?;
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
    .bind(owner)
    .bind(expires)
    .bind(now)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    let granted: std::collections::HashSet<String> = granted.into_iter().map(|(id,)| id).collect();
    Ok(campaign_ids.iter().map(|id| granted.contains(id)).collect())
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id, owner = %owner))]
pub(crate) async fn release_lease(
    pool: &PgPool,
    campaign_id: &str,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM leases WHERE campaign_id = $1 AND owner = $2")
        .bind(campaign_id)
        .bind(owner)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// An `OrderProgress` from a row with the columns `planned`, `sending`, `sent`, `rejected` and `unfinished`.
fn progress_from_row(r: &PgRow) -> Result<OrderProgress, StoreError> {
    let n = |c: &str| get::<i64>(r, c);
    Ok(OrderProgress::from_counts(
        n("planned")?,
        n("sending")?,
        n("sent")?,
        n("rejected")?,
        n("unfinished")?,
    ))
}
