//! One function per query: campaigns, tasks, orders, ledger, leases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Sqlite};
use store::{
    ActionRecord, CallbackRecord, CampaignRecord, NewOrder, OrderCounts, OrderProgress,
    OrderRecord, StoreError, TaskRecord, UploadState,
};

use store::TallyDelta;

use crate::util::{
    IDS_PER_CHUNK, apply_tallies, db_err, get, get_opt_json, get_opt_ts, get_ts, json_text, opt_ts,
    parse_json, rows_per_chunk, ts,
};

#[tracing::instrument(skip_all)]
pub(crate) async fn ping(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(campaign.id = %c.id))]
pub(crate) async fn upsert_campaign(
    pool: impl sqlx::SqliteExecutor<'_>,
    c: &CampaignRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO campaigns (campaign_id, generation, source_file, content_hash, spec, state, last_error, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (campaign_id) DO UPDATE SET
             generation = excluded.generation, source_file = excluded.source_file,
             content_hash = excluded.content_hash, spec = excluded.spec, state = excluded.state,
             last_error = excluded.last_error, updated_at = excluded.updated_at",
    )
    .bind(&c.id)
    .bind(c.generation)
    .bind(&c.source_file)
    .bind(&c.content_hash)
    .bind(c.spec.as_ref().map(json_text))
    .bind(&c.state)
    .bind(&c.last_error)
    .bind(ts(c.updated_at))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Several campaigns, one multi-row statement per chunk (in one transaction: the caller's). A campaign given twice
/// keeps its last record, as with one call each.
#[tracing::instrument(skip_all, fields(campaigns = cs.len()))]
pub(crate) async fn upsert_campaigns(
    conn: &mut sqlx::SqliteConnection,
    cs: &[CampaignRecord],
) -> Result<(), StoreError> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, c) in cs.iter().enumerate() {
        last.insert(&c.id, i);
    }
    let mut latest: Vec<usize> = last.into_values().collect();
    latest.sort_unstable();
    let cs: Vec<&CampaignRecord> = latest.into_iter().map(|i| &cs[i]).collect();
    for chunk in cs.chunks(rows_per_chunk(8)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO campaigns (campaign_id, generation, source_file, content_hash, spec, state, last_error, \
             updated_at) ",
        );
        qb.push_values(chunk, |mut b, c| {
            b.push_bind(c.id.clone())
                .push_bind(c.generation)
                .push_bind(c.source_file.clone())
                .push_bind(c.content_hash.clone())
                .push_bind(c.spec.as_ref().map(json_text))
                .push_bind(c.state.clone())
                .push_bind(c.last_error.clone())
                .push_bind(ts(c.updated_at));
        });
        qb.push(
            " ON CONFLICT (campaign_id) DO UPDATE SET
                 generation = excluded.generation, source_file = excluded.source_file,
                 content_hash = excluded.content_hash, spec = excluded.spec, state = excluded.state,
                 last_error = excluded.last_error, updated_at = excluded.updated_at",
        );
        qb.build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

#[tracing::instrument(skip_all)]
pub(crate) async fn campaigns(pool: &SqlitePool) -> Result<Vec<CampaignRecord>, StoreError> {
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
                spec: get_opt_json(r, "spec")?,
                state: get(r, "state")?,
                last_error: get(r, "last_error")?,
                updated_at: get_ts(r, "updated_at")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(task.user_id = %t.user_task_id))]
pub(crate) async fn upsert_task(pool: &SqlitePool, t: &TaskRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tasks (user_task_id, campaign_id, generation, task_index, task_id, settings, settings_sent_at,
                            platform_status, desired_status, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    .bind(t.settings.as_ref().map(json_text))
    .bind(opt_ts(t.settings_sent_at))
    .bind(t.platform_status)
    .bind(t.desired_status)
    .bind(ts(t.updated_at))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id))]
pub(crate) async fn tasks(
    pool: &SqlitePool,
    campaign_id: &str,
) -> Result<Vec<TaskRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT user_task_id, campaign_id, generation, task_index, task_id, settings, settings_sent_at,
                platform_status, desired_status, updated_at
         FROM tasks WHERE campaign_id = ? ORDER BY generation, task_index, user_task_id",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(task_from_row).collect()
}

/// Most IDs bound in one `IN (...)` list (SQLite allows 32,766 variables per statement).
const IN_LIST_MAX: usize = 500;

#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len()))]
pub(crate) async fn tasks_of(
    pool: &SqlitePool,
    campaign_ids: &[String],
) -> Result<Vec<TaskRecord>, StoreError> {
    let mut out = Vec::new();
    for ids in campaign_ids.chunks(IN_LIST_MAX) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT user_task_id, campaign_id, generation, task_index, task_id, settings, settings_sent_at,
                    platform_status, desired_status, updated_at
             FROM tasks WHERE campaign_id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        q.push(") ORDER BY campaign_id, generation, task_index, user_task_id");
        let rows = q.build().fetch_all(pool).await.map_err(db_err)?;
        for r in &rows {
            out.push(task_from_row(r)?);
        }
    }
    Ok(out)
}

fn task_from_row(r: &SqliteRow) -> Result<TaskRecord, StoreError> {
    Ok(TaskRecord {
        user_task_id: get(r, "user_task_id")?,
        campaign_id: get(r, "campaign_id")?,
        generation: get(r, "generation")?,
        task_index: get(r, "task_index")?,
        task_id: get(r, "task_id")?,
        settings: get_opt_json(r, "settings")?,
        settings_sent_at: get_opt_ts(r, "settings_sent_at")?,
        platform_status: get(r, "platform_status")?,
        desired_status: get(r, "desired_status")?,
        updated_at: get_ts(r, "updated_at")?,
    })
}

#[tracing::instrument(skip_all, fields(orders = orders.len()))]
pub(crate) async fn insert_planned_orders(
    pool: &SqlitePool,
    orders: &[NewOrder],
) -> Result<u64, StoreError> {
    if orders.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let mut tallies = TallyDelta::default();
    let mut inserted = 0;
    // Runs of one task, so each statement's count of inserted rows belongs to one task's tally.
    for run in orders.chunk_by(|a, b| a.user_task_id == b.user_task_id) {
        for chunk in run.chunks(rows_per_chunk(10)) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO orders (order_id, campaign_id, user_task_id, phone, name, customer, other, variables,
                                     source_line, upload_state) ",
            );
            qb.push_values(chunk, |mut b, o| {
                b.push_bind(o.order_id.as_str())
                    .push_bind(o.campaign_id.as_str())
                    .push_bind(o.user_task_id.as_str())
                    .push_bind(o.phone.as_str())
                    .push_bind(o.name.as_deref())
                    .push_bind(o.customer.as_deref())
                    .push_bind(o.other.as_deref())
                    .push_bind(json_text(&o.variables))
                    .push_bind(o.source_line)
                    .push_bind(UploadState::Planned.as_str());
            });
            qb.push(" ON CONFLICT DO NOTHING");
            // Statements of up to thousands of binds, shaped by their row count: not kept in the connection's
            // statement cache (each cached one costs memory on every connection; preparing again is cheap beside
            // writing the rows).
            let n = qb
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            tallies.add(&chunk[0].user_task_id, UploadState::Planned, n as i64);
            inserted += n;
        }
    }
    apply_tallies(tallies, &mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(inserted)
}

const ORDER_COLUMNS: &str = "order_id, campaign_id, user_task_id, phone, name, customer, other, variables, \
     source_line, upload_state, reject_reason, state_changed_at, finished, last_call_status, last_polled_at";

fn order_from_row(r: &SqliteRow) -> Result<OrderRecord, StoreError> {
    Ok(OrderRecord {
        order_id: get(r, "order_id")?,
        campaign_id: get(r, "campaign_id")?,
        user_task_id: get(r, "user_task_id")?,
        phone: get(r, "phone")?,
        name: get(r, "name")?,
        customer: get(r, "customer")?,
        other: get(r, "other")?,
        variables: parse_json(&get::<String>(r, "variables")?)?,
        source_line: get(r, "source_line")?,
        upload_state: get::<String>(r, "upload_state")?.parse()?,
        reject_reason: get(r, "reject_reason")?,
        state_changed_at: get_opt_ts(r, "state_changed_at")?,
        finished: get::<bool>(r, "finished")?,
        last_call_status: get(r, "last_call_status")?,
        last_polled_at: get_opt_ts(r, "last_polled_at")?,
    })
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, state = %state))]
pub(crate) async fn orders_in_state(
    pool: &SqlitePool,
    user_task_id: &str,
    state: UploadState,
    limit: u32,
) -> Result<Vec<OrderRecord>, StoreError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE user_task_id = ? AND upload_state = ?
         ORDER BY source_line, order_id LIMIT ?"
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
    pool: &SqlitePool,
    order_id: &str,
) -> Result<Option<OrderRecord>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(order_from_row).transpose()
}

#[tracing::instrument(skip_all, fields(orders = order_ids.len(), state = %state))]
pub(crate) async fn set_upload_state(
    pool: &SqlitePool,
    order_ids: &[String],
    state: UploadState,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if order_ids.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let mut tallies = TallyDelta::default();
    let moved = move_orders(&mut tx, order_ids, None, state, at, &mut tallies).await?;
    apply_tallies(tallies, &mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(moved)
}

/// Moves orders to `state` from each of its predecessors in turn (one statement per predecessor and chunk, so the
/// tallies know where every moved order came from). With `task`, only that task's orders move, and the counts are
/// attributed without reading the rows back.
async fn move_orders(
    conn: &mut sqlx::SqliteConnection,
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
    conn: &mut sqlx::SqliteConnection,
    order_ids: &[String],
    task: Option<&str>,
    from: UploadState,
    state: UploadState,
    at: DateTime<Utc>,
    tallies: &mut TallyDelta,
) -> Result<u64, StoreError> {
    let at = ts(at);
    let mut moved = 0;
    {
        for chunk in order_ids.chunks(IDS_PER_CHUNK) {
            // The unary `+` keeps SQLite on the primary key: on the (task, state) index it would scan every order
            // of the task in that state for each batch.
            let mut qb = QueryBuilder::<Sqlite>::new("UPDATE orders SET upload_state = ");
            qb.push_bind(state.as_str())
                .push(", state_changed_at = ")
                .push_bind(at.as_str())
                .push(" WHERE order_id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.as_str());
            }
            qb.push(") AND +upload_state = ").push_bind(from.as_str());
            if let Some(ut) = task {
                qb.push(" AND +user_task_id = ").push_bind(ut);
            }
            match task {
                Some(ut) => {
                    let n = qb
                        .build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?
                        .rows_affected();
                    tallies.moved(ut, from, state, n as i64);
                    moved += n;
                }
                None => {
                    qb.push(" RETURNING user_task_id");
                    let rows: Vec<(String,)> = qb
                        .build_query_as()
                        .persistent(false)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_err)?;
                    for (ut,) in &rows {
                        tallies.moved(ut, from, state, 1);
                    }
                    moved += rows.len() as u64;
                }
            }
        }
    }
    Ok(moved)
}

#[tracing::instrument(skip_all, fields(orders = rejected.len()))]
pub(crate) async fn reject_orders(
    pool: &SqlitePool,
    rejected: &[(String, String)],
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if rejected.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let mut tallies = TallyDelta::default();
    let moved = reject_in(&mut tx, rejected, None, at, &mut tallies).await?;
    apply_tallies(tallies, &mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(moved)
}

/// Marks orders rejected with their reasons, from `planned` or `sending` only (one statement per predecessor and
/// chunk); with `task`, only that task's orders.
async fn reject_in(
    conn: &mut sqlx::SqliteConnection,
    rejected: &[(String, String)],
    task: Option<&str>,
    at: DateTime<Utc>,
    tallies: &mut TallyDelta,
) -> Result<u64, StoreError> {
    let at = ts(at);
    let mut moved = 0;
    for &from in UploadState::Rejected.predecessors() {
        for chunk in rejected.chunks(rows_per_chunk(2).min(IDS_PER_CHUNK)) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "UPDATE orders SET upload_state = 'rejected', state_changed_at = ",
            );
            qb.push_bind(at.as_str());
            qb.push(", reject_reason = v.column2 FROM (");
            qb.push_values(chunk, |mut b, (id, reason)| {
                b.push_bind(id.as_str()).push_bind(reason.as_str());
            });
            qb.push(") AS v WHERE orders.order_id = v.column1 AND +orders.upload_state = ")
                .push_bind(from.as_str());
            if let Some(ut) = task {
                qb.push(" AND +orders.user_task_id = ").push_bind(ut);
            }
            qb.push(" RETURNING orders.user_task_id");
            let rows: Vec<(String,)> = qb
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?;
            for (ut,) in &rows {
                tallies.moved(ut, from, UploadState::Rejected, 1);
            }
            moved += rows.len() as u64;
        }
    }
    Ok(moved)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, sent = sent.len(), rejected = rejected.len(), claim))]
pub(crate) async fn settle_and_claim(
    pool: &SqlitePool,
    sent: &[String],
    rejected: &[(String, String)],
    user_task_id: &str,
    claim: u32,
    at: DateTime<Utc>,
) -> Result<Vec<OrderRecord>, StoreError> {
    if sent.is_empty() && rejected.is_empty() && claim == 0 {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
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
        let sql = format!(
            "UPDATE orders SET upload_state = 'sending', state_changed_at = ?
             WHERE +upload_state = 'planned'
               AND rowid IN (SELECT rowid FROM orders WHERE user_task_id = ? AND upload_state = 'planned'
                             ORDER BY source_line, order_id LIMIT ?)
             RETURNING {ORDER_COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ts(at))
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
    pool: &SqlitePool,
    user_task_id: &str,
) -> Result<OrderProgress, StoreError> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(planned), 0) AS planned, COALESCE(SUM(sending), 0) AS sending,
                COALESCE(SUM(sent), 0) AS sent, COALESCE(SUM(rejected), 0) AS rejected,
                (SELECT COUNT(*) FROM orders INDEXED BY orders_to_poll
                 WHERE user_task_id = ?1 AND upload_state = 'sent' AND finished = 0) AS unfinished
         FROM order_tallies WHERE user_task_id = ?1",
    )
    .bind(user_task_id)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    progress_from_row(&row)
}

#[tracing::instrument(skip_all, fields(tasks = user_task_ids.len()))]
pub(crate) async fn order_progress_of(
    pool: &SqlitePool,
    user_task_ids: &[String],
) -> Result<Vec<OrderProgress>, StoreError> {
    let mut found: std::collections::HashMap<String, OrderProgress> =
        std::collections::HashMap::new();
    for ids in user_task_ids.chunks(IN_LIST_MAX) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT t.user_task_id, t.planned, t.sending, t.sent, t.rejected,
                    (SELECT COUNT(*) FROM orders INDEXED BY orders_to_poll
                     WHERE user_task_id = t.user_task_id AND upload_state = 'sent' AND finished = 0) AS unfinished
             FROM order_tallies t WHERE t.user_task_id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        q.push(")");
        for r in q.build().fetch_all(pool).await.map_err(db_err)? {
            let p = progress_from_row(&r)?;
            found.insert(get(&r, "user_task_id")?, p);
        }
    }
    Ok(user_task_ids
        .iter()
        .map(|ut| found.get(ut).cloned().unwrap_or_default())
        .collect())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn orders_to_poll(
    pool: &SqlitePool,
    user_task_id: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    // SQLite sorts NULL before any value, so never-polled orders come first, and this order is the orders_to_poll
    // index's own: no sort of the task's unfinished orders (an `IS NOT NULL` term here would force one).
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT order_id FROM orders
         WHERE user_task_id = ? AND upload_state = 'sent' AND finished = 0
         ORDER BY last_polled_at, order_id
         LIMIT ?",
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
    pool: &SqlitePool,
    order_ids: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    for chunk in order_ids.chunks(IDS_PER_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE orders SET last_polled_at = ");
        qb.push_bind(ts(at)).push(" WHERE order_id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(id.clone());
        }
        qb.push(")");
        qb.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id))]
pub(crate) async fn order_counts(
    pool: &SqlitePool,
    campaign_id: &str,
) -> Result<OrderCounts, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS total,
                COALESCE(SUM(upload_state = 'planned'), 0) AS planned,
                COALESCE(SUM(upload_state = 'sending'), 0) AS sending,
                COALESCE(SUM(upload_state = 'sent'), 0) AS sent,
                COALESCE(SUM(upload_state = 'rejected'), 0) AS rejected,
                COALESCE(SUM(EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id)), 0) AS dialled,
                COALESCE(SUM(EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id AND c.call_status = 6)), 0)
                    AS answered,
                COALESCE(SUM(finished), 0) AS finished
         FROM orders o WHERE campaign_id = ?",
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
pub(crate) async fn record_action(pool: &SqlitePool, a: &ActionRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_actions (at, endpoint, request_id, response_id, ret_code, message, http_status, duration_ms,
                                  outcome, campaign_id, user_task_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ts(a.at))
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
    pool: &SqlitePool,
    limit: u32,
) -> Result<Vec<ActionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, endpoint, request_id, response_id, ret_code, message, http_status, duration_ms, outcome,
                campaign_id, user_task_id
         FROM api_actions ORDER BY action_id DESC LIMIT ?",
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
                at: get_ts(r, "at")?,
                outcome: get(r, "outcome")?,
                campaign_id: get(r, "campaign_id")?,
                user_task_id: get(r, "user_task_id")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(kind = %c.kind))]
pub(crate) async fn record_callback(
    pool: &SqlitePool,
    c: &CallbackRecord,
) -> Result<i64, StoreError> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO callbacks (received_at, kind, request_id, verified, body) VALUES (?, ?, ?, ?, ?)
         RETURNING callback_id",
    )
    .bind(ts(c.received_at))
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
    pool: &SqlitePool,
    limit: u32,
) -> Result<Vec<CallbackRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT received_at, kind, request_id, verified, body FROM callbacks ORDER BY callback_id DESC LIMIT ?",
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
                received_at: get_ts(r, "received_at")?,
                request_id: get(r, "request_id")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id, owner = %owner))]
pub(crate) async fn try_acquire_lease(
    pool: impl sqlx::SqliteExecutor<'_>,
    campaign_id: &str,
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let expires = lease_expiry(now, ttl)?;
    let changed = sqlx::query(
        "INSERT INTO leases (campaign_id, owner, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE leases.owner = excluded.owner OR leases.expires_at <= ?",
    )
    .bind(campaign_id)
    .bind(owner)
    .bind(ts(expires))
    .bind(ts(now))
    .execute(pool)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(changed == 1)
}

/// Several leases, one multi-row statement per chunk (in one transaction: the caller's); whether each was granted,
/// in the order given, read from the rows the upsert inserted or updated.
#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len(), owner = %owner))]
pub(crate) async fn try_acquire_leases(
    conn: &mut sqlx::SqliteConnection,
    campaign_ids: &[String],
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Vec<bool>, StoreError> {
    let expires = lease_expiry(now, ttl)?;
    let (expires, now) = (ts(expires), ts(now));
    let mut granted = std::collections::HashSet::new();
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
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        for r in &rows {
            granted.insert(get::<String>(r, "campaign_id")?);
        }
    }
    Ok(campaign_ids.iter().map(|id| granted.contains(id)).collect())
}

fn lease_expiry(now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>, StoreError> {
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))?;
    now.checked_add_signed(ttl)
        .ok_or_else(|| StoreError::Invalid("lease ttl too long".into()))
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id, owner = %owner))]
pub(crate) async fn release_lease(
    pool: &SqlitePool,
    campaign_id: &str,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM leases WHERE campaign_id = ? AND owner = ?")
        .bind(campaign_id)
        .bind(owner)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// An `OrderProgress` from a row with the columns `planned`, `sending`, `sent`, `rejected` and `unfinished`.
fn progress_from_row(r: &SqliteRow) -> Result<OrderProgress, StoreError> {
    let n = |c: &str| get::<i64>(r, c);
    Ok(OrderProgress::from_counts(
        n("planned")?,
        n("sending")?,
        n("sent")?,
        n("rejected")?,
        n("unfinished")?,
    ))
}
