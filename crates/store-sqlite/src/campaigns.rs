//! Campaigns and tasks: the campaign records, the task rows and their narrow writes.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};
use store::backend::{Dialect, ObservedStatus, TASK_COLUMNS, last_of_each};
use store::{CampaignRecord, StoreError, TERMINAL_TASK_STATUSES, TaskKey, TaskRecord};

use crate::SqliteStore;
use crate::util::{IN_LIST_MAX, Script, db_err, decode_all, json_text, rows_per_chunk, ts};

/// `(<status> IS NULL OR <status> NOT IN (3, 4))`: the stored task status is not terminal.
fn not_terminal(status: &str) -> String {
    let [a, b] = TERMINAL_TASK_STATUSES;
    format!("({status} IS NULL OR {status} NOT IN ({a}, {b}))")
}

/// One multi-row statement per chunk, in one transaction.
#[tracing::instrument(skip_all, fields(campaigns = cs.len()))]
pub(crate) async fn upsert_campaigns(
    s: &SqliteStore,
    cs: &[CampaignRecord],
) -> Result<(), StoreError> {
    let cs = last_of_each(cs, |c| c.id.as_str());
    if cs.is_empty() {
        return Ok(());
    }
    let mut tx = s.writer.begin().await.map_err(db_err)?;
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
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

#[tracing::instrument(skip_all)]
pub(crate) async fn campaigns(s: &SqliteStore) -> Result<Vec<CampaignRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign_id, generation, source_file, content_hash, spec, state, last_error, updated_at
         FROM campaigns ORDER BY campaign_id",
    )
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id))]
pub(crate) async fn tasks(
    s: &SqliteStore,
    campaign_id: &str,
) -> Result<Vec<TaskRecord>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE campaign_id = ? ORDER BY generation, task_index, user_task_id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(campaign_id)
        .fetch_all(&s.reader)
        .await
        .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len()))]
pub(crate) async fn tasks_of(
    s: &SqliteStore,
    campaign_ids: &[String],
) -> Result<Vec<TaskRecord>, StoreError> {
    let mut out = Vec::new();
    for ids in campaign_ids.chunks(IN_LIST_MAX) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE campaign_id IN ("
        ));
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        q.push(") ORDER BY campaign_id, generation, task_index, user_task_id");
        let rows = q.build().fetch_all(&s.reader).await.map_err(db_err)?;
        out.extend(decode_all::<TaskRecord>(&rows)?);
    }
    Ok(out)
}

#[tracing::instrument(skip_all, fields(orders = orders.len()))]
pub(crate) async fn record_zone_groups_of_orders(
    s: &SqliteStore,
    orders: &[(String, String)],
) -> Result<(), StoreError> {
    for chunk in orders.chunks(rows_per_chunk(2)) {
        let mut q = QueryBuilder::<Sqlite>::new("WITH v (order_id, zone_group) AS (");
        q.push_values(chunk, |mut b, (order_id, group)| {
            b.push_bind(order_id).push_bind(group);
        });
        // `WHERE true` keeps SQLite from reading ON CONFLICT as a join constraint.
        q.push(
            ") INSERT INTO task_zone_groups (user_task_id, zone_group)
             SELECT o.user_task_id, v.zone_group FROM v JOIN orders o ON o.order_id = v.order_id WHERE true
             ON CONFLICT DO NOTHING",
        );
        q.build().execute(&s.writer).await.map_err(db_err)?;
    }
    Ok(())
}

#[tracing::instrument(skip_all, fields(tasks = user_task_ids.len()))]
pub(crate) async fn zone_groups_of(
    s: &SqliteStore,
    user_task_ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    for ids in user_task_ids.chunks(IN_LIST_MAX) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT user_task_id, zone_group FROM task_zone_groups WHERE user_task_id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        q.push(") ORDER BY user_task_id, zone_group");
        let rows: Vec<(String, String)> = q
            .build_query_as()
            .fetch_all(&s.reader)
            .await
            .map_err(db_err)?;
        out.extend(rows);
    }
    Ok(out)
}

#[tracing::instrument(skip_all, fields(tasks = planned.len()))]
pub(crate) async fn record_contacts_planned(
    s: &SqliteStore,
    planned: &[(String, String, u64)],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if planned.is_empty() {
        return Ok(());
    }
    let rows = last_of_each(planned, |(ut, _, _)| ut.as_str());
    let at = ts(at);
    let mut tx = s.writer.begin().await.map_err(db_err)?;
    for chunk in rows.chunks(rows_per_chunk(4)) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO contacts_planned (user_task_id, contacts_version, valid_contacts, planned_at) ",
        );
        q.push_values(chunk, |mut b, (ut, version, valid)| {
            b.push_bind(ut.as_str())
                .push_bind(version.as_str())
                .push_bind(i64::try_from(*valid).unwrap_or(i64::MAX))
                .push_bind(at.as_str());
        });
        q.push(Dialect::CONTACTS_PLANNED_REPLACES);
        q.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

#[tracing::instrument(skip_all, fields(tasks = user_task_ids.len()))]
pub(crate) async fn contacts_planned_of(
    s: &SqliteStore,
    user_task_ids: &[String],
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let mut out = Vec::new();
    for ids in user_task_ids.chunks(IN_LIST_MAX) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT user_task_id, contacts_version, valid_contacts FROM contacts_planned WHERE user_task_id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        q.push(") ORDER BY user_task_id");
        let rows: Vec<(String, String, i64)> = q
            .build_query_as()
            .fetch_all(&s.reader)
            .await
            .map_err(db_err)?;
        out.extend(rows.into_iter().map(|(ut, v, n)| (ut, v, n.max(0) as u64)));
    }
    Ok(out)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn zone_groups(
    s: &SqliteStore,
    user_task_id: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT zone_group FROM task_zone_groups WHERE user_task_id = ? ORDER BY zone_group",
    )
    .bind(user_task_id)
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)
}

#[tracing::instrument(skip_all, fields(task.user_id = %key.user_task_id))]
pub(crate) async fn task_create_intent(
    s: &SqliteStore,
    key: &TaskKey,
    settings: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO tasks (user_task_id, campaign_id, generation, task_index, settings, settings_sent_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (user_task_id) DO UPDATE SET
             settings = excluded.settings, settings_sent_at = excluded.settings_sent_at, platform_status = NULL,
             task_id = NULL, status_in_doubt_since = NULL, updated_at = excluded.updated_at
         WHERE {}",
        not_terminal("tasks.platform_status")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&key.user_task_id)
        .bind(&key.campaign_id)
        .bind(key.generation)
        .bind(key.task_index)
        .bind(json_text(settings))
        .bind(ts(at))
        .execute(&s.writer)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, status))]
pub(crate) async fn task_status_observed(
    s: &SqliteStore,
    user_task_id: &str,
    status: i64,
    task_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE tasks SET platform_status = ?, task_id = COALESCE(?, task_id), status_in_doubt_since = NULL,
             updated_at = ?
         WHERE user_task_id = ? AND {}",
        not_terminal("platform_status")
    );
    let changed = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(status)
        .bind(task_id)
        .bind(ts(at))
        .bind(user_task_id)
        .execute(&s.writer)
        .await
        .map_err(db_err)?
        .rows_affected();
    Ok(changed == 1)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn task_settings_sent(
    s: &SqliteStore,
    user_task_id: &str,
    settings: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasks SET settings = ?1, settings_sent_at = ?2, updated_at = ?2 WHERE user_task_id = ?3",
    )
    .bind(json_text(settings))
    .bind(ts(at))
    .bind(user_task_id)
    .execute(&s.writer)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn task_toggle_intent(
    s: &SqliteStore,
    user_task_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE tasks SET status_in_doubt_since = ?1, updated_at = ?1 WHERE user_task_id = ?2 AND {}",
        not_terminal("platform_status")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ts(at))
        .bind(user_task_id)
        .execute(&s.writer)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn task_settings_forgotten(
    s: &SqliteStore,
    user_task_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The JSON value null (text `null`), not SQL NULL: "sent once, whether the platform has them is unknown".
    sqlx::query("UPDATE tasks SET settings = 'null', updated_at = ? WHERE user_task_id = ?")
        .bind(ts(at))
        .bind(user_task_id)
        .execute(&s.writer)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn task_not_created(
    s: &SqliteStore,
    user_task_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE tasks SET settings = NULL, settings_sent_at = NULL, platform_status = NULL, status_in_doubt_since = NULL,
             updated_at = ?
         WHERE user_task_id = ? AND {}",
        not_terminal("platform_status")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ts(at))
        .bind(user_task_id)
        .execute(&s.writer)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The statements that apply task statuses reported by callbacks (merged: one per task), with the rule of
/// [`task_status_observed`].
pub(crate) fn push_task_statuses(script: &mut Script, statuses: &[ObservedStatus]) {
    for chunk in statuses.chunks(rows_per_chunk(4)) {
        let qb = script.statement();
        qb.push(
            "UPDATE tasks SET platform_status = v.column2, task_id = COALESCE(v.column3, tasks.task_id),
                 updated_at = v.column4
             FROM (",
        );
        qb.push_values(chunk, |mut b, o| {
            b.push_bind(o.fact.user_task_id.clone())
                .push_bind(o.fact.status)
                .push_bind(o.fact.task_id.clone())
                .push_bind(ts(o.at));
        });
        qb.push(") AS v WHERE tasks.user_task_id = v.column1 AND ");
        qb.push(not_terminal("tasks.platform_status"));
    }
}
