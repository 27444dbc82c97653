//! Orders: planning, upload states (with the per-task tallies), polling marks and counts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row as _, Sqlite, SqliteConnection};
use store::backend::in_order;
use store::backend::upload::{self, UploadStatements};
use store::{
    NewOrder, OrderCounts, OrderProgress, OrderRecord, StoreError, TallyDelta, UploadState,
};

use crate::SqliteStore;
use crate::util::{
    IDS_PER_CHUNK, IN_LIST_MAX, apply_tallies, db_err, decode, decode_all, json_text,
    rows_per_chunk, ts,
};

const ORDER_COLUMNS: &str = "order_id, campaign_id, user_task_id, phone, name, customer, other, variables, \
     source_line, upload_state, reject_reason, state_changed_at, finished, last_call_status, last_polled_at";

#[tracing::instrument(skip_all, fields(orders = orders.len()))]
pub(crate) async fn insert_planned_orders(
    s: &SqliteStore,
    orders: &[NewOrder],
) -> Result<u64, StoreError> {
    if orders.is_empty() {
        return Ok(0);
    }
    let mut tx = s
        .writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db_err)?;
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

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, state = %state))]
pub(crate) async fn orders_in_state(
    s: &SqliteStore,
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
        .fetch_all(&s.reader)
        .await
        .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub(crate) async fn order(
    s: &SqliteStore,
    order_id: &str,
) -> Result<Option<OrderRecord>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(&s.reader)
        .await
        .map_err(db_err)?;
    row.as_ref().map(decode).transpose()
}

#[tracing::instrument(skip_all, fields(orders = order_ids.len(), state = %state))]
pub(crate) async fn set_upload_state(
    s: &SqliteStore,
    order_ids: &[String],
    state: UploadState,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if order_ids.is_empty() {
        return Ok(0);
    }
    let mut tx = s
        .writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db_err)?;
    let moved = upload::set_upload_state(&mut Upload(&mut tx), order_ids, state, at).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(moved)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, sent = sent.len(), rejected = rejected.len(), claim))]
pub(crate) async fn settle_and_claim(
    s: &SqliteStore,
    sent: &[String],
    rejected: &[(String, String)],
    user_task_id: &str,
    claim: u32,
    at: DateTime<Utc>,
) -> Result<Vec<OrderRecord>, StoreError> {
    if sent.is_empty() && rejected.is_empty() && claim == 0 {
        return Ok(Vec::new());
    }
    let mut tx = s
        .writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db_err)?;
    let mut upload = Upload(&mut tx);
    let claimed =
        upload::settle_and_claim(&mut upload, sent, rejected, user_task_id, claim, at).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(claimed)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn orders_to_poll(
    s: &SqliteStore,
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
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[tracing::instrument(skip_all, fields(orders = order_ids.len()))]
pub(crate) async fn mark_polled(
    s: &SqliteStore,
    order_ids: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let mut tx = s
        .writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db_err)?;
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
    s: &SqliteStore,
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
    .fetch_one(&s.reader)
    .await
    .map_err(db_err)?;
    decode(&row)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn order_progress(
    s: &SqliteStore,
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
    .fetch_one(&s.reader)
    .await
    .map_err(db_err)?;
    decode(&row)
}

#[tracing::instrument(skip_all, fields(tasks = user_task_ids.len()))]
pub(crate) async fn order_progress_of(
    s: &SqliteStore,
    user_task_ids: &[String],
) -> Result<Vec<OrderProgress>, StoreError> {
    let mut found: HashMap<String, OrderProgress> = HashMap::new();
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
        for r in q.build().fetch_all(&s.reader).await.map_err(db_err)? {
            found.insert(r.try_get("user_task_id").map_err(db_err)?, decode(&r)?);
        }
    }
    Ok(in_order(user_task_ids, &found))
}

/// The statements of an upload transaction, on its connection. Moves through the primary key in chunks of IDs; with
/// a task, the counts are attributed without reading the rows back.
struct Upload<'c>(&'c mut SqliteConnection);

impl UploadStatements for Upload<'_> {
    async fn move_from(
        &mut self,
        order_ids: &[String],
        task: Option<&str>,
        from: UploadState,
        to: UploadState,
        at: DateTime<Utc>,
        tallies: &mut TallyDelta,
    ) -> Result<u64, StoreError> {
        let at = ts(at);
        let mut moved = 0;
        for chunk in order_ids.chunks(IDS_PER_CHUNK) {
            // The unary `+` keeps SQLite on the primary key: on the (task, state) index it would scan every order
            // of the task in that state for each batch.
            let mut qb = QueryBuilder::<Sqlite>::new("UPDATE orders SET upload_state = ");
            qb.push_bind(to.as_str())
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
                let n = qb
                    .build()
                    .persistent(false)
                    .execute(&mut *self.0)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                tallies.moved(ut, from, to, n as i64);
                moved += n;
            } else {
                qb.push(" RETURNING user_task_id");
                let rows: Vec<(String,)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *self.0)
                    .await
                    .map_err(db_err)?;
                for (ut,) in &rows {
                    tallies.moved(ut, from, to, 1);
                }
                moved += rows.len() as u64;
            }
        }
        Ok(moved)
    }

    async fn reject_from(
        &mut self,
        rejected: &[(String, String)],
        task: &str,
        from: UploadState,
        at: DateTime<Utc>,
        tallies: &mut TallyDelta,
    ) -> Result<u64, StoreError> {
        let at = ts(at);
        let mut moved = 0;
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
                .push_bind(from.as_str())
                .push(" AND +orders.user_task_id = ")
                .push_bind(task);
            let n = qb
                .build()
                .persistent(false)
                .execute(&mut *self.0)
                .await
                .map_err(db_err)?
                .rows_affected();
            tallies.moved(task, from, UploadState::Rejected, n as i64);
            moved += n;
        }
        Ok(moved)
    }

    async fn claim(
        &mut self,
        task: &str,
        n: u32,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let sql = format!(
            "UPDATE orders SET upload_state = 'sending', state_changed_at = ?
             WHERE +upload_state = 'planned'
               AND rowid IN (SELECT rowid FROM orders WHERE user_task_id = ? AND upload_state = 'planned'
                             ORDER BY source_line, order_id LIMIT ?)
             RETURNING {ORDER_COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ts(at))
            .bind(task)
            .bind(i64::from(n))
            .fetch_all(&mut *self.0)
            .await
            .map_err(db_err)?;
        decode_all(&rows)
    }

    async fn write_tallies(&mut self, tallies: TallyDelta) -> Result<(), StoreError> {
        apply_tallies(tallies, self.0).await
    }
}
