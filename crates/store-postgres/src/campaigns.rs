//! Campaigns and tasks: the campaign records, the task rows and their narrow writes.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use store::backend::{Dialect, ObservedStatus, TASK_COLUMNS, last_of_each};
use store::{CampaignRecord, StoreError, TERMINAL_TASK_STATUSES, TaskKey, TaskRecord};

use crate::PgStore;
use crate::util::{db_err, decode_all, json_text, jsonb, nul_free, nul_free_opt};

/// One statement (arrays unnested).
#[tracing::instrument(skip_all, fields(campaigns = cs.len()))]
pub(crate) async fn upsert_campaigns(s: &PgStore, cs: &[CampaignRecord]) -> Result<(), StoreError> {
    let cs = last_of_each(cs, |c| c.id.as_str());
    if cs.is_empty() {
        return Ok(());
    }
    let text =
        |f: fn(&CampaignRecord) -> &str| cs.iter().map(|c| nul_free(f(c))).collect::<Vec<_>>();
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
    .bind(text(|c| &c.id))
    .bind(cs.iter().map(|c| c.generation).collect::<Vec<i64>>())
    .bind(text(|c| &c.source_file))
    .bind(text(|c| &c.content_hash))
    .bind(cs.iter().map(|c| c.spec.as_ref().map(json_text)).collect::<Vec<_>>())
    .bind(text(|c| &c.state))
    .bind(cs.iter().map(|c| nul_free_opt(c.last_error.as_deref())).collect::<Vec<_>>())
    .bind(cs.iter().map(|c| c.updated_at).collect::<Vec<_>>())
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub(crate) async fn campaigns(s: &PgStore) -> Result<Vec<CampaignRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign_id, generation, source_file, content_hash, spec, state, last_error, updated_at
         FROM campaigns ORDER BY campaign_id",
    )
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id))]
pub(crate) async fn tasks(s: &PgStore, campaign_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE campaign_id = $1 ORDER BY generation, task_index, user_task_id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(campaign_id)
        .fetch_all(&s.pool)
        .await
        .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all, fields(campaigns = campaign_ids.len()))]
pub(crate) async fn tasks_of(
    s: &PgStore,
    campaign_ids: &[String],
) -> Result<Vec<TaskRecord>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE campaign_id = ANY($1)
         ORDER BY campaign_id, generation, task_index, user_task_id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(campaign_ids)
        .fetch_all(&s.pool)
        .await
        .map_err(db_err)?;
    decode_all(&rows)
}

#[tracing::instrument(skip_all, fields(orders = orders.len()))]
pub(crate) async fn record_zone_groups_of_orders(
    s: &PgStore,
    orders: &[(String, String)],
) -> Result<(), StoreError> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = orders
        .iter()
        .map(|(o, _)| nul_free(o).into_owned())
        .collect();
    let groups: Vec<String> = orders
        .iter()
        .map(|(_, g)| nul_free(g).into_owned())
        .collect();
    sqlx::query(
        "INSERT INTO task_zone_groups (user_task_id, zone_group)
         SELECT DISTINCT o.user_task_id, v.zone_group
         FROM unnest($1::text[], $2::text[]) AS v (order_id, zone_group)
         JOIN orders o ON o.order_id = v.order_id
         ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&groups)
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(tasks = planned.len()))]
pub(crate) async fn record_contacts_planned(
    s: &PgStore,
    planned: &[(String, String, u64)],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if planned.is_empty() {
        return Ok(());
    }
    // One row per task: an upsert may not touch a row twice.
    let rows = last_of_each(planned, |(ut, _, _)| ut.as_str());
    let sql = format!(
        "INSERT INTO contacts_planned (user_task_id, contacts_version, valid_contacts, planned_at)
         SELECT u.user_task_id, u.contacts_version, u.valid_contacts, $4
         FROM unnest($1::text[], $2::text[], $3::int8[]) AS u (user_task_id, contacts_version, valid_contacts){}",
        Dialect::CONTACTS_PLANNED_REPLACES
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(
            rows.iter()
                .map(|(ut, _, _)| nul_free(ut))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, v, _)| nul_free(v)).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, _, n)| i64::try_from(*n).unwrap_or(i64::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(at)
        .execute(&s.pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(tasks = user_task_ids.len()))]
pub(crate) async fn contacts_planned_of(
    s: &PgStore,
    user_task_ids: &[String],
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT user_task_id, contacts_version, valid_contacts FROM contacts_planned
         WHERE user_task_id = ANY($1) ORDER BY user_task_id COLLATE \"C\"",
    )
    .bind(user_task_ids)
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(ut, v, n)| (ut, v, n.max(0) as u64))
        .collect())
}

#[tracing::instrument(skip_all, fields(tasks = user_task_ids.len()))]
pub(crate) async fn zone_groups_of(
    s: &PgStore,
    user_task_ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    sqlx::query_as(
        "SELECT user_task_id, zone_group FROM task_zone_groups WHERE user_task_id = ANY($1)
         ORDER BY user_task_id COLLATE \"C\", zone_group COLLATE \"C\"",
    )
    .bind(user_task_ids)
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn zone_groups(
    s: &PgStore,
    user_task_id: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT zone_group FROM task_zone_groups WHERE user_task_id = $1 ORDER BY zone_group COLLATE \"C\"",
    )
    .bind(user_task_id)
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)
}

#[tracing::instrument(skip_all, fields(task.user_id = %key.user_task_id))]
pub(crate) async fn task_create_intent(
    s: &PgStore,
    key: &TaskKey,
    settings: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tasks (user_task_id, campaign_id, generation, task_index, settings, settings_sent_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (user_task_id) DO UPDATE SET
             settings = excluded.settings, settings_sent_at = excluded.settings_sent_at, platform_status = NULL,
             task_id = NULL, status_in_doubt_since = NULL, updated_at = excluded.updated_at
         WHERE tasks.platform_status IS NULL OR tasks.platform_status <> ALL($7)",
    )
    .bind(nul_free(&key.user_task_id))
    .bind(nul_free(&key.campaign_id))
    .bind(key.generation)
    .bind(key.task_index)
    .bind(jsonb(settings))
    .bind(at)
    .bind(&TERMINAL_TASK_STATUSES[..])
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id, status))]
pub(crate) async fn task_status_observed(
    s: &PgStore,
    user_task_id: &str,
    status: i64,
    task_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE tasks SET platform_status = $2, task_id = COALESCE($3, task_id), status_in_doubt_since = NULL,
             updated_at = $4
         WHERE user_task_id = $1 AND (platform_status IS NULL OR platform_status <> ALL($5))",
    )
    .bind(nul_free(user_task_id).as_ref())
    .bind(status)
    .bind(nul_free_opt(task_id))
    .bind(at)
    .bind(&TERMINAL_TASK_STATUSES[..])
    .execute(&s.pool)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(changed == 1)
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn task_toggle_intent(
    s: &PgStore,
    user_task_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasks SET status_in_doubt_since = $2, updated_at = $2
         WHERE user_task_id = $1 AND (platform_status IS NULL OR platform_status <> ALL($3))",
    )
    .bind(nul_free(user_task_id).as_ref())
    .bind(at)
    .bind(&TERMINAL_TASK_STATUSES[..])
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn task_settings_sent(
    s: &PgStore,
    user_task_id: &str,
    settings: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasks SET settings = $2, settings_sent_at = $3, updated_at = $3 WHERE user_task_id = $1",
    )
    .bind(nul_free(user_task_id).as_ref())
    .bind(jsonb(settings))
    .bind(at)
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn task_settings_forgotten(
    s: &PgStore,
    user_task_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The JSON value null, not SQL NULL: "sent once, whether the platform has them is unknown".
    sqlx::query(
        "UPDATE tasks SET settings = 'null'::jsonb, updated_at = $2 WHERE user_task_id = $1",
    )
    .bind(nul_free(user_task_id).as_ref())
    .bind(at)
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(task.user_id = %user_task_id))]
pub(crate) async fn task_not_created(
    s: &PgStore,
    user_task_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasks SET settings = NULL, settings_sent_at = NULL, platform_status = NULL, status_in_doubt_since = NULL,
             updated_at = $2
         WHERE user_task_id = $1 AND (platform_status IS NULL OR platform_status <> ALL($3))",
    )
    .bind(nul_free(user_task_id).as_ref())
    .bind(at)
    .bind(&TERMINAL_TASK_STATUSES[..])
    .execute(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Applies task statuses reported by callbacks (merged: one per task, by ID), with the rule of
/// [`task_status_observed`], in the caller's transaction. The rows are locked in ID order first, so concurrent
/// writers wait for each other instead of deadlocking.
pub(crate) async fn apply_task_statuses(
    conn: &mut PgConnection,
    statuses: &[ObservedStatus],
) -> Result<(), StoreError> {
    if statuses.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH locked AS MATERIALIZED (
             SELECT user_task_id FROM tasks WHERE user_task_id = ANY($1::text[]) ORDER BY user_task_id FOR UPDATE)
         UPDATE tasks t SET platform_status = u.status, task_id = COALESCE(u.task_id, t.task_id), updated_at = u.at
         FROM locked l
         JOIN UNNEST($1::text[], $2::int8[], $3::text[], $4::timestamptz[]) AS u (user_task_id, status, task_id, at)
              ON u.user_task_id = l.user_task_id
         WHERE t.user_task_id = l.user_task_id AND (t.platform_status IS NULL OR t.platform_status <> ALL($5))",
    )
    .bind(statuses.iter().map(|o| nul_free(&o.fact.user_task_id)).collect::<Vec<_>>())
    .bind(statuses.iter().map(|o| o.fact.status).collect::<Vec<_>>())
    .bind(
        statuses
            .iter()
            .map(|o| nul_free_opt(o.fact.task_id.as_deref()))
            .collect::<Vec<_>>(),
    )
    .bind(statuses.iter().map(|o| o.at).collect::<Vec<_>>())
    .bind(&TERMINAL_TASK_STATUSES[..])
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}
