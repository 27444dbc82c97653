//! Orders: planning, upload states (with the per-task tallies), polling marks and counts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row as _, Sqlite, SqliteConnection, Transaction};
use store::backend::upload::{CapWindow, UploadStatements, UploadStore};
use store::backend::{NextAt, ORDER_COLUMNS, PhoneCapCounts, in_order, task_campaigns};
use store::{
    Cap, Held, NewOrder, OrderCounts, OrderProgress, OrderRecord, RetriesDue, RetryQuery,
    StopState, StoreError, TallyDelta, UploadState,
};

use crate::SqliteStore;
use crate::util::{
    IDS_PER_CHUNK, IN_LIST_MAX, SQLITE, Script, apply_tallies, db_err, decode, decode_all,
    decode_all_with, json_text, push_id_list, rows_per_chunk, ts,
};

/// Multi-row inserts in one transaction (`BEGIN IMMEDIATE`: no suppression can change between the look-up and the
/// insert). Per chunk, the phones actively suppressed at `now` are looked up first (the suppressions' primary key);
/// those rows are inserted `rejected` by a statement of their own, so each statement's count of inserted rows
/// belongs to one task and one state (reading the rows back instead doubled the time of an upload with suppressed
/// numbers in every chunk). Rows of one phone are in the same statement, in input order, so of two orders for one
/// `(task, phone)` the first is kept, as in one statement.
pub(crate) async fn insert_planned_orders(
    s: &SqliteStore,
    orders: &[NewOrder],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    insert_planned_orders_in_groups(s, orders, &[], now).await
}

#[tracing::instrument(skip_all, fields(orders = orders.len()))]
pub(crate) async fn insert_planned_orders_in_groups(
    s: &SqliteStore,
    orders: &[NewOrder],
    zone_groups: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if orders.is_empty() {
        return Ok(0);
    }
    let now = ts(now);
    let mut tx = s.begin_write().await?;
    let mut tallies = TallyDelta::default();
    let mut inserted = 0;
    // Runs of one task, so each statement's count of inserted rows belongs to one task's tally.
    for run in orders.chunk_by(|a, b| a.user_task_id == b.user_task_id) {
        for chunk in run.chunks(rows_per_chunk(13)) {
            let why = suppressed_phones(&mut tx, chunk, &now).await?;
            let ut = chunk[0].user_task_id.as_str();
            let (rejected, planned): (Vec<&NewOrder>, Vec<&NewOrder>) =
                chunk.iter().partition(|o| why.contains_key(&o.phone));
            let n = insert_orders(&mut tx, &planned, |_| None).await?;
            tallies.add(ut, UploadState::Planned, n as i64);
            inserted += n;
            let n = insert_orders(&mut tx, &rejected, |o| {
                why.get(&o.phone).map(|r| (r.as_str(), now.as_str()))
            })
            .await?;
            tallies.add(ut, UploadState::Rejected, n as i64);
            inserted += n;
        }
    }
    apply_tallies(tallies, &mut tx).await?;
    for chunk in zone_groups.chunks(rows_per_chunk(2)) {
        let mut q =
            QueryBuilder::<Sqlite>::new("INSERT INTO task_zone_groups (user_task_id, zone_group) ");
        q.push_values(chunk, |mut b, (ut, group)| {
            b.push_bind(ut).push_bind(group);
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    for (ut, campaign) in task_campaigns(orders) {
        sqlx::query(
            "INSERT OR IGNORE INTO order_outcomes (user_task_id, shard, campaign_id) VALUES (?1, 0, ?2)",
        )
        .bind(ut)
        .bind(campaign)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(inserted)
}

/// One multi-row insert of `orders` (at most one chunk), skipping stored ones; `rejected` gives an order's reject
/// reason and time when it goes in `rejected`, else it is planned. Returns how many were inserted.
async fn insert_orders<'a>(
    conn: &mut SqliteConnection,
    orders: &[&NewOrder],
    rejected: impl Fn(&NewOrder) -> Option<(&'a str, &'a str)>,
) -> Result<u64, StoreError> {
    if orders.is_empty() {
        return Ok(0);
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "INSERT INTO orders (order_id, campaign_id, user_task_id, phone, name, customer, other, variables,
                             source_line, attempt, upload_state, reject_reason, state_changed_at) ",
    );
    qb.push_values(orders, |mut b, o| {
        let reject = rejected(o);
        let state = match reject {
            Some(_) => UploadState::Rejected,
            None => UploadState::Planned,
        };
        b.push_bind(o.order_id.as_str())
            .push_bind(o.campaign_id.as_str())
            .push_bind(o.user_task_id.as_str())
            .push_bind(o.phone.as_str())
            .push_bind(o.name.as_deref())
            .push_bind(o.customer.as_deref())
            .push_bind(o.other.as_deref())
            .push_bind(json_text(&o.variables))
            .push_bind(o.source_line)
            .push_bind(i64::from(o.attempt))
            .push_bind(state.as_str())
            .push_bind(reject.map(|(reason, _)| reason))
            .push_bind(reject.map(|(_, at)| at));
    });
    qb.push(" ON CONFLICT DO NOTHING");
    // Statements of up to thousands of binds, shaped by their row count: not kept in the connection's statement
    // cache (each cached one costs memory on every connection; preparing again is cheap beside writing the rows).
    Ok(qb
        .build()
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?
        .rows_affected())
}

/// The phones of `orders` actively suppressed at `now`, each with its reject reason.
async fn suppressed_phones(
    conn: &mut SqliteConnection,
    orders: &[NewOrder],
    now: &str,
) -> Result<HashMap<String, String>, StoreError> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT phone, 'suppressed: ' || COALESCE(reason, source) FROM suppressions WHERE phone IN ",
    );
    push_id_list(
        &mut qb,
        &orders.iter().map(|o| o.phone.as_str()).collect::<Vec<_>>(),
    );
    qb.push(" AND (expires_at IS NULL OR expires_at > ")
        .push_bind(now.to_owned())
        .push(") ORDER BY phone, source");
    let rows: Vec<(String, String)> = qb
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let mut why = HashMap::new();
    for (phone, reason) in rows {
        // The first entry by source gives the reason, as in the claim's rejection.
        why.entry(phone).or_insert(reason);
    }
    Ok(why)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, state = %state))]
pub(crate) async fn orders_in_state(
    s: &SqliteStore,
    user_task_id: &str,
    state: UploadState,
    limit: u32,
) -> Result<Vec<OrderRecord>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(SQLITE.orders_in_state(state)))
        .bind(user_task_id)
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

/// One read: the task's first planned orders (the (task, state, source line) index), each phone's counts through
/// the orders_by_phone and calls_by_order indexes; only the held ones come back.
#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, caps = caps.len()))]
pub(crate) async fn held_numbers(
    s: &SqliteStore,
    user_task_id: &str,
    caps: &[Cap],
    at: DateTime<Utc>,
) -> Result<Held, StoreError> {
    store::backend::held_numbers(caps, at, |windows| async move {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(SQLITE.held_phones(windows.len())))
            .bind(ts(at))
            .bind(user_task_id)
            .bind(i64::from(store::HELD_SCAN_MAX));
        for (since, max) in &windows {
            q = q.bind(ts(*since)).bind(*max);
        }
        let rows = q.fetch_all(&s.reader).await.map_err(db_err)?;
        decode_all_with(&rows, |c| PhoneCapCounts::read(c, windows.len()))
    })
    .await
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn orders_to_poll(
    s: &SqliteStore,
    user_task_id: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    // SQLite sorts NULL before any value, so never-polled orders come first, and this order is the orders_to_poll
    // index's own: no sort of the task's unfinished orders (an `IS NOT NULL` term here would force one).
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(SQLITE.orders_to_poll()))
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
    let mut script = Script::default();
    push_mark_polled(&mut script, order_ids, at);
    script.commit_on(s).await?;
    Ok(())
}

/// The statements of [`mark_polled`]: `last_polled_at = at` for each order, by key.
pub(crate) fn push_mark_polled(script: &mut Script, order_ids: &[String], at: DateTime<Utc>) {
    for chunk in order_ids.chunks(IDS_PER_CHUNK) {
        let qb = script.statement();
        qb.push("UPDATE orders SET last_polled_at = ");
        qb.push_bind(ts(at)).push(" WHERE order_id IN ");
        push_id_list(qb, chunk);
    }
}

/// Two reads over the orders_to_retry index: the due attempts, then the earliest end of a last call still to come.
#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn retries_due(
    s: &SqliteStore,
    user_task_id: &str,
    q: &RetryQuery,
    limit: u32,
) -> Result<RetriesDue, StoreError> {
    let [due, next] = SQLITE.retries_due(&q.statuses, q.max_attempts);
    let due = sqlx::query(sqlx::AssertSqlSafe(due))
        .bind(user_task_id)
        .bind(ts(q.ended_by))
        .bind(i64::from(limit))
        .fetch_all(&s.reader)
        .await
        .map_err(db_err)?;
    let next = sqlx::query(sqlx::AssertSqlSafe(next))
        .bind(user_task_id)
        .bind(ts(q.ended_by))
        .fetch_one(&s.reader)
        .await
        .map_err(db_err)?;
    Ok(RetriesDue {
        due: decode_all(&due)?,
        next_ended_at: decode::<NextAt>(&next)?.0,
    })
}

/// The task's sent, unfinished orders come from the orders_to_poll index; each is checked against the
/// suppressions' primary key.
#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn orders_to_stop(
    s: &SqliteStore,
    user_task_id: &str,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(SQLITE.orders_to_stop()))
        .bind(user_task_id)
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&s.reader)
        .await
        .map_err(db_err)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// One statement per chunk of IDs, in one transaction.
#[tracing::instrument(skip_all, fields(orders = order_ids.len(), state = %state))]
pub(crate) async fn mark_stop(
    s: &SqliteStore,
    order_ids: &[String],
    state: StopState,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if order_ids.is_empty() {
        return Ok(0);
    }
    let at = ts(at);
    let mut tx = s.begin_write().await?;
    let mut written = 0;
    for chunk in order_ids.chunks(IDS_PER_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE orders SET stop_state = ");
        qb.push_bind(state.as_str())
            .push(", stopped_at = ")
            .push_bind(at.as_str())
            .push(" WHERE order_id IN ");
        push_id_list(&mut qb, chunk);
        qb.push(" AND (stop_state IS NULL OR stop_state = 'sending')");
        written += qb
            .build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
    }
    tx.commit().await.map_err(db_err)?;
    Ok(written)
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id))]
pub(crate) async fn order_counts(
    s: &SqliteStore,
    campaign_id: &str,
) -> Result<OrderCounts, StoreError> {
    // The rollups: the upload-state tallies of the campaign's tasks, and the outcome counts the triggers on orders
    // keep. A few rows per task, whatever the number of orders.
    let row = sqlx::query(
        "SELECT COALESCE(SUM(t.planned + t.sending + t.sent + t.rejected), 0) AS total,
                COALESCE(SUM(t.planned), 0) AS planned, COALESCE(SUM(t.sending), 0) AS sending,
                COALESCE(SUM(t.sent), 0) AS sent, COALESCE(SUM(t.rejected), 0) AS rejected,
                (SELECT COALESCE(SUM(suppressed), 0) FROM order_outcomes WHERE campaign_id = ?1) AS suppressed,
                (SELECT COALESCE(SUM(dialled), 0) FROM order_outcomes WHERE campaign_id = ?1) AS dialled,
                (SELECT COALESCE(SUM(answered), 0) FROM order_outcomes WHERE campaign_id = ?1) AS answered,
                (SELECT COALESCE(SUM(finished), 0) FROM order_outcomes WHERE campaign_id = ?1) AS finished
         FROM order_tallies t
         WHERE t.user_task_id IN (SELECT user_task_id FROM order_outcomes WHERE campaign_id = ?1)",
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

impl UploadStore for SqliteStore {
    type Upload = Upload;

    /// `BEGIN IMMEDIATE`: SQLite takes one writer at a time, so two claims that share phones cannot both pass a cap.
    async fn begin_upload(
        &self,
        at: DateTime<Utc>,
        _caps_checked: bool,
    ) -> Result<Upload, StoreError> {
        let tx = self.begin_write().await?;
        Ok(Upload { tx, at: ts(at) })
    }
}

/// The statements of an upload transaction, at `at`. Moves through the primary key in chunks of IDs; with a task,
/// the counts are attributed without reading the rows back.
#[derive(Debug)]
pub struct Upload {
    tx: Transaction<'static, Sqlite>,
    at: String,
}

impl UploadStatements for Upload {
    async fn move_from(
        &mut self,
        order_ids: &[String],
        task: Option<&str>,
        from: UploadState,
        to: UploadState,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut moved = Vec::new();
        for chunk in order_ids.chunks(IDS_PER_CHUNK) {
            // The unary `+` keeps SQLite on the primary key: on the (task, state) index it would scan every order
            // of the task in that state for each batch.
            let mut qb = QueryBuilder::<Sqlite>::new("UPDATE orders SET upload_state = ");
            qb.push_bind(to.as_str())
                .push(", state_changed_at = ")
                .push_bind(self.at.as_str())
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
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                moved.push((ut.to_owned(), n as i64));
            } else {
                qb.push(" RETURNING user_task_id");
                let rows: Vec<(String,)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                moved.extend(rows.into_iter().map(|(ut,)| (ut, 1)));
            }
        }
        Ok(moved)
    }

    async fn reject_from(
        &mut self,
        rejected: &[(String, String)],
        task: &str,
        from: UploadState,
    ) -> Result<u64, StoreError> {
        let mut moved = 0;
        for chunk in rejected.chunks(rows_per_chunk(2).min(IDS_PER_CHUNK)) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "UPDATE orders SET upload_state = 'rejected', state_changed_at = ",
            );
            qb.push_bind(self.at.as_str());
            qb.push(", reject_reason = v.column2 FROM (");
            qb.push_values(chunk, |mut b, (id, reason)| {
                b.push_bind(id.as_str()).push_bind(reason.as_str());
            });
            qb.push(") AS v WHERE orders.order_id = v.column1 AND +orders.upload_state = ")
                .push_bind(from.as_str())
                .push(" AND +orders.user_task_id = ")
                .push_bind(task);
            moved += qb
                .build()
                .persistent(false)
                .execute(&mut *self.tx)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        Ok(moved)
    }

    async fn claim(
        &mut self,
        task: &str,
        n: u32,
        caps: &[CapWindow],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        // The `IN (subquery)` is evaluated once, before any row moves: the cap counts are those before the claim.
        let sql = format!(
            "UPDATE orders SET upload_state = 'sending', state_changed_at = ?1
             WHERE +upload_state = 'planned'
               AND rowid IN (SELECT o.rowid FROM orders o WHERE o.user_task_id = ?2 AND o.upload_state = 'planned'
                                 AND NOT {}{}
                             ORDER BY o.source_line, o.order_id LIMIT ?3)
             RETURNING {ORDER_COLUMNS}",
            SQLITE.suppressed("o.phone", "?1"),
            SQLITE.not_capped("o.phone", "?1", 4, caps.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.at.as_str())
            .bind(task)
            .bind(i64::from(n));
        for (since, max) in caps {
            q = q.bind(ts(*since)).bind(*max);
        }
        let rows = q.fetch_all(&mut *self.tx).await.map_err(db_err)?;
        decode_all(&rows)
    }

    async fn reject_suppressed(
        &mut self,
        task: &str,
        before: Option<(i64, &str)>,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE orders SET upload_state = 'rejected', state_changed_at = ?1,
                 reject_reason = COALESCE({}, 'suppressed: ')
             WHERE +upload_state = 'planned'
               AND rowid IN (SELECT o.rowid FROM orders o WHERE o.user_task_id = ?2 AND o.upload_state = 'planned'
                                 {} AND {})",
            SQLITE.suppressed_reason("orders.phone", "?1"),
            SQLITE.claimed_before(before.is_some()),
            SQLITE.suppressed("o.phone", "?1")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.at.as_str())
            .bind(task);
        if let Some((line, id)) = before {
            q = q.bind(line).bind(id);
        }
        let done = q.execute(&mut *self.tx).await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn commit(mut self, tallies: TallyDelta) -> Result<(), StoreError> {
        apply_tallies(tallies, &mut self.tx).await?;
        self.tx.commit().await.map_err(db_err)
    }
}
