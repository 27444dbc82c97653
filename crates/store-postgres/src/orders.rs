//! Orders: planning, upload states (with the per-task tallies), polling marks and counts.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use store::backend::upload::{CapWindow, UploadStatements, UploadStore};
use store::backend::{NextAt, ORDER_COLUMNS, PhoneCapCounts, task_campaigns};
use store::{
    Cap, Held, NewOrder, OrderCounts, OrderProgress, OrderRecord, RetriesDue, RetryQuery,
    StopState, StoreError, TallyDelta, UploadState,
};

use crate::PgStore;
use crate::util::{
    POSTGRES, apply_tallies, db_err, decode, decode_all, decode_all_with, json_text, nul_free,
};

/// The key of the transaction-level advisory lock every claim that checks frequency caps takes first ("caps").
const CAPS_LOCK_KEY: i64 = 0x6361_7073;

/// `COPY` into a temporary table dropped at commit, then one `INSERT .. SELECT .. ON CONFLICT DO NOTHING` that looks
/// up each phone's active suppression (inserting those rows `rejected`) and tells how many rows of each task and
/// state were new (for the tallies), all in one transaction.
#[tracing::instrument(skip_all, fields(orders = orders.len()))]
pub(crate) async fn insert_planned_orders(
    s: &PgStore,
    orders: &[NewOrder],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    insert_planned_orders_in_groups(s, orders, &[], now).await
}

#[tracing::instrument(skip_all, fields(orders = orders.len()))]
pub(crate) async fn insert_planned_orders_in_groups(
    s: &PgStore,
    orders: &[NewOrder],
    zone_groups: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if orders.is_empty() {
        return Ok(0);
    }
    let mut tx = s.pool.begin().await.map_err(db_err)?;
    sqlx::query(
        "CREATE TEMPORARY TABLE planned_in (
             order_id text, campaign_id text, user_task_id text, phone text, name text, customer text, other text,
             variables text, source_line int8, attempt int8, n int8
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
    let sql = format!(
        "WITH ins AS (
             INSERT INTO orders (order_id, campaign_id, user_task_id, phone, name, customer, other, variables,
                                 source_line, attempt, upload_state, reject_reason, state_changed_at)
             SELECT p.order_id, p.campaign_id, p.user_task_id, p.phone, p.name, p.customer, p.other,
                    p.variables::jsonb, p.source_line, p.attempt,
                    CASE WHEN w.why IS NULL THEN 'planned' ELSE 'rejected' END, w.why,
                    CASE WHEN w.why IS NULL THEN NULL ELSE $1::timestamptz END
             FROM planned_in p
             LEFT JOIN LATERAL (SELECT {} AS why) w ON true
             ORDER BY p.n
             ON CONFLICT DO NOTHING
             RETURNING user_task_id, upload_state
         )
         SELECT user_task_id, upload_state, COUNT(*) FROM ins GROUP BY user_task_id, upload_state",
        POSTGRES.suppressed_reason("p.phone", "$1::timestamptz")
    );
    let per_task: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    let mut tallies = TallyDelta::default();
    let mut inserted = 0;
    for (ut, state, n) in &per_task {
        tallies.add(ut, state.parse()?, *n);
        inserted += u64::try_from(*n).unwrap_or(0);
    }
    apply_tallies(tallies, &mut tx).await?;
    if !zone_groups.is_empty() {
        let uts: Vec<String> = zone_groups
            .iter()
            .map(|(u, _)| nul_free(u).into_owned())
            .collect();
        let groups: Vec<String> = zone_groups
            .iter()
            .map(|(_, g)| nul_free(g).into_owned())
            .collect();
        sqlx::query(
            "INSERT INTO task_zone_groups (user_task_id, zone_group)
             SELECT DISTINCT ut, g FROM unnest($1::text[], $2::text[]) AS u (ut, g)
             ON CONFLICT DO NOTHING",
        )
        .bind(&uts)
        .bind(&groups)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    let pairs = task_campaigns(orders);
    sqlx::query(
        "INSERT INTO order_outcomes (user_task_id, shard, campaign_id)
         SELECT ut, 0, campaign FROM UNNEST($1::text[], $2::text[]) AS p(ut, campaign)
         ON CONFLICT (user_task_id, shard) DO NOTHING",
    )
    .bind(pairs.iter().map(|(ut, _)| nul_free(ut)).collect::<Vec<_>>())
    .bind(pairs.iter().map(|(_, c)| nul_free(c)).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(inserted)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, state = %state))]
pub(crate) async fn orders_in_state(
    s: &PgStore,
    user_task_id: &str,
    state: UploadState,
    limit: u32,
) -> Result<Vec<OrderRecord>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(POSTGRES.orders_in_state(state)))
        .bind(user_task_id)
        .bind(i64::from(limit))
        .fetch_all(&s.pool)
        .await
        .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub(crate) async fn order(s: &PgStore, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(&s.pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(decode).transpose()
}

/// One read: the task's first planned orders (the (task, state, source line) index), each phone's counts through
/// the orders_by_phone and calls_by_order indexes; only the held ones come back.
#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, caps = caps.len()))]
pub(crate) async fn held_numbers(
    s: &PgStore,
    user_task_id: &str,
    caps: &[Cap],
    at: DateTime<Utc>,
) -> Result<Held, StoreError> {
    store::backend::held_numbers(caps, at, |windows| async move {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(POSTGRES.held_phones(windows.len())))
            .bind(at)
            .bind(user_task_id)
            .bind(i64::from(store::HELD_SCAN_MAX));
        for (since, max) in &windows {
            q = q.bind(*since).bind(*max);
        }
        let rows = q.fetch_all(&s.pool).await.map_err(db_err)?;
        decode_all_with(&rows, |c| PhoneCapCounts::read(c, windows.len()))
    })
    .await
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn orders_to_poll(
    s: &PgStore,
    user_task_id: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(POSTGRES.orders_to_poll()))
        .bind(user_task_id)
        .bind(i64::from(limit))
        .fetch_all(&s.pool)
        .await
        .map_err(db_err)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[tracing::instrument(skip_all, fields(orders = order_ids.len()))]
pub(crate) async fn mark_polled(
    s: &PgStore,
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
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Two reads over the orders_to_retry index: the due attempts, then the earliest end of a last call still to come.
#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn retries_due(
    s: &PgStore,
    user_task_id: &str,
    q: &RetryQuery,
    limit: u32,
) -> Result<RetriesDue, StoreError> {
    let [due, next] = POSTGRES.retries_due(&q.statuses, q.max_attempts);
    let due = sqlx::query(sqlx::AssertSqlSafe(due))
        .bind(user_task_id)
        .bind(q.ended_by)
        .bind(i64::from(limit))
        .fetch_all(&s.pool)
        .await
        .map_err(db_err)?;
    let next = sqlx::query(sqlx::AssertSqlSafe(next))
        .bind(user_task_id)
        .bind(q.ended_by)
        .fetch_one(&s.pool)
        .await
        .map_err(db_err)?;
    Ok(RetriesDue {
        due: decode_all(&due)?,
        next_ended_at: decode::<NextAt>(&next)?.0,
    })
}

/// The task's sent, unfinished orders (the orders_to_poll index), each checked against the suppressions' primary
/// key.
#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn orders_to_stop(
    s: &PgStore,
    user_task_id: &str,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(POSTGRES.orders_to_stop()))
        .bind(user_task_id)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&s.pool)
        .await
        .map_err(db_err)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// One statement; the rows are locked in order-ID order first.
#[tracing::instrument(skip_all, fields(orders = order_ids.len(), state = %state))]
pub(crate) async fn mark_stop(
    s: &PgStore,
    order_ids: &[String],
    state: StopState,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if order_ids.is_empty() {
        return Ok(0);
    }
    let written = sqlx::query(
        "WITH locked AS MATERIALIZED (
             SELECT order_id FROM orders WHERE order_id = ANY($3) ORDER BY order_id FOR UPDATE)
         UPDATE orders o SET stop_state = $1, stopped_at = $2
         FROM locked l
         WHERE o.order_id = l.order_id AND (o.stop_state IS NULL OR o.stop_state = 'sending')",
    )
    .bind(state.as_str())
    .bind(at)
    .bind(order_ids)
    .execute(&s.pool)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(written)
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id))]
pub(crate) async fn order_counts(
    s: &PgStore,
    campaign_id: &str,
) -> Result<OrderCounts, StoreError> {
    // The rollups: the upload-state tallies of the campaign's tasks, and the outcome counts the triggers on orders
    // keep (summed over their shards). A few rows per task, whatever the number of orders.
    let row = sqlx::query(
        "SELECT COALESCE(SUM(t.planned + t.sending + t.sent + t.rejected), 0)::int8 AS total,
                COALESCE(SUM(t.planned), 0)::int8 AS planned, COALESCE(SUM(t.sending), 0)::int8 AS sending,
                COALESCE(SUM(t.sent), 0)::int8 AS sent, COALESCE(SUM(t.rejected), 0)::int8 AS rejected,
                (SELECT COALESCE(SUM(suppressed), 0)::int8 FROM order_outcomes WHERE campaign_id = $1) AS suppressed,
                (SELECT COALESCE(SUM(dialled), 0)::int8 FROM order_outcomes WHERE campaign_id = $1) AS dialled,
                (SELECT COALESCE(SUM(answered), 0)::int8 FROM order_outcomes WHERE campaign_id = $1) AS answered,
                (SELECT COALESCE(SUM(finished), 0)::int8 FROM order_outcomes WHERE campaign_id = $1) AS finished
         FROM order_tallies t
         WHERE t.user_task_id IN (SELECT user_task_id FROM order_outcomes WHERE campaign_id = $1)",
    )
    .bind(campaign_id)
    .fetch_one(&s.pool)
    .await
    .map_err(db_err)?;
    decode(&row)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn order_progress(
    s: &PgStore,
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
    .fetch_one(&s.pool)
    .await
    .map_err(db_err)?;
    decode(&row)
}

#[tracing::instrument(skip_all, fields(tasks = user_task_ids.len()))]
pub(crate) async fn order_progress_of(
    s: &PgStore,
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
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

impl UploadStore for PgStore {
    type Upload = Upload;

    async fn begin_upload(
        &self,
        at: DateTime<Utc>,
        caps_checked: bool,
    ) -> Result<Upload, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if caps_checked {
            // Two claims for tasks that share phones must not both pass a cap, so the claims that check caps run one
            // at a time: one transaction-level advisory lock, taken first (before the settling locks any order, so
            // it cannot deadlock with them), held to the commit. The claim's statement, a later one, then counts
            // what the previous claim committed. One lock rather than one per candidate phone: the candidates are
            // only known while the claim walks past the held ones, and up to a thousand advisory locks per claim
            // would fill the shared lock table (`max_locks_per_transaction`); a claim is one short transaction per
            // batch per task, so queueing them costs little. Claims without caps, and every other writer, never
            // wait for it.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CAPS_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        Ok(Upload { tx, at })
    }
}

/// The statements of an upload transaction, at `at`. Every statement that moves orders locks them in order-ID
/// order first, so overlapping transactions wait for each other instead of deadlocking.
#[derive(Debug)]
pub struct Upload {
    tx: Transaction<'static, Postgres>,
    at: DateTime<Utc>,
}

impl UploadStatements for Upload {
    async fn move_from(
        &mut self,
        order_ids: &[String],
        task: Option<&str>,
        from: UploadState,
        to: UploadState,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as(
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
        .bind(to.as_str())
        .bind(self.at)
        .bind(order_ids)
        .bind(from.as_str())
        .bind(task)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err)
    }

    async fn reject_from(
        &mut self,
        rejected: &[(String, String)],
        task: &str,
        from: UploadState,
    ) -> Result<u64, StoreError> {
        let per_task: Vec<(String, i64)> = sqlx::query_as(
            "WITH locked AS MATERIALIZED (
                 SELECT order_id FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE
             ), m AS (
                 UPDATE orders o SET upload_state = 'rejected', reject_reason = u.reason, state_changed_at = $3
                 FROM locked l JOIN UNNEST($1::text[], $2::text[]) AS u(order_id, reason) ON u.order_id = l.order_id
                 WHERE o.order_id = l.order_id AND o.upload_state = $4 AND o.user_task_id = $5
                 RETURNING o.user_task_id
             )
             SELECT user_task_id, COUNT(*) FROM m GROUP BY user_task_id",
        )
        .bind(rejected.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
        .bind(rejected.iter().map(|(_, r)| nul_free(r)).collect::<Vec<_>>())
        .bind(self.at)
        .bind(from.as_str())
        .bind(task)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err)?;
        // Of the one task.
        Ok(per_task
            .iter()
            .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
            .sum())
    }

    async fn claim(
        &mut self,
        task: &str,
        n: u32,
        caps: &[CapWindow],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        // The outer state check makes a concurrent claim of the same rows (two replicas racing for a lease) skip
        // them once the first commits, instead of claiming them twice. `= ANY(ARRAY(..))` evaluates the batch's
        // IDs once and keeps the planner on primary-key look-ups (an `IN (subquery)` may become a hash join over a
        // scan of the whole table). The `ARRAY(..)` is evaluated before any row moves: the cap counts are those
        // before the claim. The outer check reads the state through `COALESCE` (it is never NULL) so that it is
        // never answered from the partial index of planned orders (migration 24): with statistics taken while the
        // table was small, the planner read that whole index into a bitmap for every batch.
        let sql = format!(
            "UPDATE orders SET upload_state = 'sending', state_changed_at = $1
             WHERE COALESCE(upload_state, '') = 'planned'
               AND order_id = ANY(ARRAY(SELECT o.order_id FROM orders o
                                        WHERE o.user_task_id = $2 AND o.upload_state = 'planned' AND NOT {}{}
                                        ORDER BY o.source_line, o.order_id LIMIT $3))
             RETURNING {ORDER_COLUMNS}",
            POSTGRES.suppressed("o.phone", "$1"),
            POSTGRES.not_capped("o.phone", "$1", 4, caps.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.at)
            .bind(task)
            .bind(i64::from(n));
        for (since, max) in caps {
            q = q.bind(*since).bind(*max);
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
            "WITH locked AS MATERIALIZED (
                 SELECT o.order_id FROM orders o
                 WHERE o.user_task_id = $2 AND o.upload_state = 'planned' {} AND {}
                 ORDER BY o.order_id FOR UPDATE
             ), m AS (
                 UPDATE orders o SET upload_state = 'rejected', state_changed_at = $1,
                     reject_reason = COALESCE({}, 'suppressed: ')
                 FROM locked l
                 WHERE o.order_id = l.order_id AND o.upload_state = 'planned'
                 RETURNING 1
             )
             SELECT COUNT(*) FROM m",
            POSTGRES.claimed_before(before.is_some()),
            POSTGRES.suppressed("o.phone", "$1"),
            POSTGRES.suppressed_reason("o.phone", "$1")
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(self.at)
            .bind(task);
        if let Some((line, id)) = before {
            q = q.bind(line).bind(id);
        }
        let (n,): (i64,) = q.fetch_one(&mut *self.tx).await.map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn commit(mut self, tallies: TallyDelta) -> Result<(), StoreError> {
        apply_tallies(tallies, &mut self.tx).await?;
        self.tx.commit().await.map_err(db_err)
    }
}

/// Text of one field in `COPY ... FROM STDIN` (text format): `\N` for NULL, else the value, NUL-free, with
/// backslash, tab, newline and carriage return escaped.
fn copy_field(buf: &mut Vec<u8>, value: Option<&str>) {
    let Some(v) = value else {
        buf.extend_from_slice(b"\\N");
        return;
    };
    for b in nul_free(v).bytes() {
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
        let variables = json_text(&o.variables);
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
        buf.extend_from_slice(o.attempt.to_string().as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(n.to_string().as_bytes());
        buf.push(b'\n');
    }
    buf
}
