//! Reading the report views.

use sqlx::postgres::PgPool;
use store::{CallStatusRow, DailyRow, IntentRow, Report, ReportFilter, StoreError, TotalsRow};

use crate::util::{db_err, get};

#[tracing::instrument(skip_all)]
pub(crate) async fn report(pool: &PgPool, filter: &ReportFilter) -> Result<Report, StoreError> {
    Ok(Report {
        totals: totals(pool, filter).await?,
        daily: daily(pool, filter).await?,
        call_status: call_status(pool, filter).await?,
        intents: intents(pool, filter).await?,
    })
}

#[tracing::instrument(skip_all)]
async fn totals(pool: &PgPool, filter: &ReportFilter) -> Result<Vec<TotalsRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign_id, orders_total, orders_dialled, orders_answered, orders_finished, calls, calls_answered,
                answer_rate, finish_rate, avg_talk_secs, p90_talk_secs, sms_sent, first_call_at, last_call_at
         FROM report_campaign_totals
         WHERE ($1::text IS NULL OR campaign_id = $1)
         ORDER BY campaign_id",
    )
    .bind(&filter.campaign)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(TotalsRow {
                campaign_id: get(r, "campaign_id")?,
                orders_total: get(r, "orders_total")?,
                orders_dialled: get(r, "orders_dialled")?,
                orders_answered: get(r, "orders_answered")?,
                orders_finished: get(r, "orders_finished")?,
                calls: get(r, "calls")?,
                calls_answered: get(r, "calls_answered")?,
                answer_rate: get(r, "answer_rate")?,
                finish_rate: get(r, "finish_rate")?,
                avg_talk_secs: get(r, "avg_talk_secs")?,
                p90_talk_secs: get(r, "p90_talk_secs")?,
                sms_sent: get(r, "sms_sent")?,
                first_call_at: get(r, "first_call_at")?,
                last_call_at: get(r, "last_call_at")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all)]
async fn daily(pool: &PgPool, filter: &ReportFilter) -> Result<Vec<DailyRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign_id, day, orders_total, orders_dialled, orders_answered, orders_finished, calls,
                calls_answered, answer_rate, finish_rate, avg_talk_secs, p90_talk_secs, sms_sent
         FROM report_campaign_daily
         WHERE ($1::text IS NULL OR campaign_id = $1) AND ($2::date IS NULL OR day >= $2)
         ORDER BY campaign_id, day",
    )
    .bind(&filter.campaign)
    .bind(filter.since)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(DailyRow {
                campaign_id: get(r, "campaign_id")?,
                day: get(r, "day")?,
                orders_total: get(r, "orders_total")?,
                orders_dialled: get(r, "orders_dialled")?,
                orders_answered: get(r, "orders_answered")?,
                orders_finished: get(r, "orders_finished")?,
                calls: get(r, "calls")?,
                calls_answered: get(r, "calls_answered")?,
                answer_rate: get(r, "answer_rate")?,
                finish_rate: get(r, "finish_rate")?,
                avg_talk_secs: get(r, "avg_talk_secs")?,
                p90_talk_secs: get(r, "p90_talk_secs")?,
                sms_sent: get(r, "sms_sent")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all)]
async fn call_status(
    pool: &PgPool,
    filter: &ReportFilter,
) -> Result<Vec<CallStatusRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign_id, day, call_status, status_name, calls FROM report_call_status
         WHERE ($1::text IS NULL OR campaign_id = $1) AND ($2::date IS NULL OR day >= $2)
         ORDER BY campaign_id, day, call_status",
    )
    .bind(&filter.campaign)
    .bind(filter.since)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(CallStatusRow {
                campaign_id: get(r, "campaign_id")?,
                day: get(r, "day")?,
                call_status: get(r, "call_status")?,
                status_name: get(r, "status_name")?,
                calls: get(r, "calls")?,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all)]
async fn intents(pool: &PgPool, filter: &ReportFilter) -> Result<Vec<IntentRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign_id, day, intent, calls FROM report_intents
         WHERE ($1::text IS NULL OR campaign_id = $1) AND ($2::date IS NULL OR day >= $2)
         ORDER BY campaign_id, day, calls DESC, intent",
    )
    .bind(&filter.campaign)
    .bind(filter.since)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(IntentRow {
                campaign_id: get(r, "campaign_id")?,
                day: get(r, "day")?,
                intent: get(r, "intent")?,
                calls: get(r, "calls")?,
            })
        })
        .collect()
}
