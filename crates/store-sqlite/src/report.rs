//! The report views, read with a filter.

use sqlx::sqlite::SqliteRow;
use store::{
    CallStatusRow, DailyRow, IntentRow, RejectedRow, Report, ReportFilter, RoundRow, StoreError,
    TotalsRow, ZoneGroupRow,
};

use crate::SqliteStore;
use crate::util::{db_err, decode_all};

#[tracing::instrument(skip_all)]
pub(crate) async fn report(s: &SqliteStore, filter: &ReportFilter) -> Result<Report, StoreError> {
    Ok(Report {
        totals: decode_all::<TotalsRow>(&totals(s, filter).await?)?,
        daily: decode_all::<DailyRow>(&daily(s, filter).await?)?,
        call_status: decode_all::<CallStatusRow>(&call_status(s, filter).await?)?,
        intents: decode_all::<IntentRow>(&intents(s, filter).await?)?,
        rejected: decode_all::<RejectedRow>(&rejected(s, filter).await?)?,
        rounds: decode_all::<RoundRow>(&rounds(s, filter).await?)?,
        zone_groups: decode_all::<ZoneGroupRow>(&zone_groups(s, filter).await?)?,
    })
}

fn since(filter: &ReportFilter) -> Option<String> {
    filter.since.map(|d| d.format("%Y-%m-%d").to_string())
}

async fn totals(s: &SqliteStore, filter: &ReportFilter) -> Result<Vec<SqliteRow>, StoreError> {
    sqlx::query(
        "SELECT campaign_id, orders_total, orders_dialled, orders_answered, orders_finished, calls, calls_answered,
                answer_rate, finish_rate, avg_talk_secs, p90_talk_secs, sms_sent, first_call_at, last_call_at
         FROM report_campaign_totals
         WHERE (?1 IS NULL OR campaign_id = ?1)
         ORDER BY campaign_id",
    )
    .bind(&filter.campaign)
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)
}

async fn daily(s: &SqliteStore, filter: &ReportFilter) -> Result<Vec<SqliteRow>, StoreError> {
    sqlx::query(
        "SELECT campaign_id, day, orders_total, orders_dialled, orders_answered, orders_finished, calls,
                calls_answered, answer_rate, finish_rate, avg_talk_secs, p90_talk_secs, sms_sent
         FROM report_campaign_daily
         WHERE (?1 IS NULL OR campaign_id = ?1) AND (?2 IS NULL OR day >= ?2)
         ORDER BY campaign_id, day",
    )
    .bind(&filter.campaign)
    .bind(since(filter))
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)
}

async fn call_status(s: &SqliteStore, filter: &ReportFilter) -> Result<Vec<SqliteRow>, StoreError> {
    sqlx::query(
        "SELECT campaign_id, day, call_status, status_name, calls FROM report_call_status
         WHERE (?1 IS NULL OR campaign_id = ?1) AND (?2 IS NULL OR day >= ?2)
         ORDER BY campaign_id, day, call_status",
    )
    .bind(&filter.campaign)
    .bind(since(filter))
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)
}

async fn intents(s: &SqliteStore, filter: &ReportFilter) -> Result<Vec<SqliteRow>, StoreError> {
    sqlx::query(
        "SELECT campaign_id, day, intent, calls FROM report_intents
         WHERE (?1 IS NULL OR campaign_id = ?1) AND (?2 IS NULL OR day >= ?2)
         ORDER BY campaign_id, day, calls DESC, intent",
    )
    .bind(&filter.campaign)
    .bind(since(filter))
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)
}

async fn rejected(s: &SqliteStore, filter: &ReportFilter) -> Result<Vec<SqliteRow>, StoreError> {
    sqlx::query(
        "SELECT campaign_id, kind, reason, orders FROM report_rejected
         WHERE (?1 IS NULL OR campaign_id = ?1)
         ORDER BY campaign_id, kind DESC, orders DESC, reason",
    )
    .bind(&filter.campaign)
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)
}

async fn rounds(s: &SqliteStore, filter: &ReportFilter) -> Result<Vec<SqliteRow>, StoreError> {
    sqlx::query(
        "SELECT campaign_id, generation, round, user_task_id, orders_total, orders_finished, calls, calls_answered,
                first_call_at, last_call_at
         FROM report_rounds
         WHERE (?1 IS NULL OR campaign_id = ?1)
         ORDER BY campaign_id, generation",
    )
    .bind(&filter.campaign)
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)
}

async fn zone_groups(s: &SqliteStore, filter: &ReportFilter) -> Result<Vec<SqliteRow>, StoreError> {
    sqlx::query(
        "SELECT campaign_id, generation, user_task_id, zone_group, orders_total, orders_finished, calls,
                calls_answered, first_call_at, last_call_at
         FROM report_zone_groups
         WHERE (?1 IS NULL OR campaign_id = ?1)
         ORDER BY campaign_id, generation, zone_group",
    )
    .bind(&filter.campaign)
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)
}

/// `rebuild_rollups.sql`, in one transaction on the writer.
#[tracing::instrument(skip_all)]
pub(crate) async fn rebuild_rollups(s: &SqliteStore) -> Result<(), StoreError> {
    rebuild_on(&s.writer).await
}

/// Runs the rebuild when a migration asked for it (a row `rebuild_rollups` in `store_maintenance`), once.
pub(crate) async fn maintain(pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
    let due: Option<(String,)> =
        sqlx::query_as("SELECT name FROM store_maintenance WHERE name = 'rebuild_rollups'")
            .fetch_optional(pool)
            .await
            .map_err(db_err)?;
    if due.is_some() {
        tracing::info!(
            "counting the stored facts into the report rollups (once, after an upgrade)"
        );
        rebuild_on(pool).await?;
    }
    Ok(())
}

async fn rebuild_on(pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    sqlx::raw_sql(include_str!("rebuild_rollups.sql"))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}
