//! Report rows: one type per view. Both backends define the views with the same names and meanings.
//!
//! The day of every row is the UTC date of the call's start. Calls without a start time are not in the reports.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Which rows a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFilter {
    /// Only this campaign.
    pub campaign: Option<String>,
    /// Only days on or after this UTC date.
    pub since: Option<NaiveDate>,
}

/// All the report views, filtered, ordered by campaign, day, then the row's own key.
/// `since` does not apply to `totals` (they cover all days).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub totals: Vec<TotalsRow>,
    pub daily: Vec<DailyRow>,
    pub call_status: Vec<CallStatusRow>,
    pub intents: Vec<IntentRow>,
    /// `since` does not apply (orders are rejected before any call).
    #[serde(default)]
    pub rejected: Vec<RejectedRow>,
    /// Each task: a generation, or a round of a repeating campaign. `since` does not apply.
    #[serde(default)]
    pub rounds: Vec<RoundRow>,
    /// `report_zone_groups`.
    #[serde(default)]
    pub zone_groups: Vec<ZoneGroupRow>,
}

/// A row of `report_campaign_totals`: one campaign over all days (same definitions as [`DailyRow`], except that
/// `orders_finished` counts every finished order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotalsRow {
    pub campaign_id: String,
    pub orders_total: i64,
    pub orders_dialled: i64,
    pub orders_answered: i64,
    pub orders_finished: i64,
    pub calls: i64,
    pub calls_answered: i64,
    pub answer_rate: Option<f64>,
    pub finish_rate: Option<f64>,
    pub avg_talk_secs: Option<f64>,
    pub p90_talk_secs: Option<i64>,
    pub sms_sent: i64,
    pub first_call_at: Option<DateTime<Utc>>,
    pub last_call_at: Option<DateTime<Utc>>,
}

/// A row of `report_campaign_daily`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyRow {
    pub campaign_id: String,
    /// UTC date of the calls' start.
    pub day: NaiveDate,
    /// All orders of the campaign, whatever the day.
    pub orders_total: i64,
    /// Orders with a call that started this day.
    pub orders_dialled: i64,
    /// Orders with an answered call (callStatus 6) that started this day.
    pub orders_answered: i64,
    /// Finished orders whose latest call started this day (so each finished order counts on one day only).
    pub orders_finished: i64,
    /// Calls that started this day.
    pub calls: i64,
    /// Of which answered (callStatus 6).
    pub calls_answered: i64,
    /// `calls_answered / calls`, as the platform's taskStat.answerRate (a fraction, not a percentage).
    pub answer_rate: Option<f64>,
    /// `orders_finished / orders_total` (a fraction).
    pub finish_rate: Option<f64>,
    /// Mean talk time of answered calls, seconds.
    pub avg_talk_secs: Option<f64>,
    /// 90th percentile (nearest rank) of the talk time of answered calls, seconds.
    pub p90_talk_secs: Option<i64>,
    /// SMS reported for this day's calls, not counting those reported as not sent (0) or failed (3).
    pub sms_sent: i64,
}

/// A row of `report_call_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStatusRow {
    pub campaign_id: String,
    pub day: NaiveDate,
    pub call_status: i64,
    /// The vendor's name for the status (`unknown` when it has none).
    pub status_name: String,
    pub calls: i64,
}

/// A row of `report_intents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRow {
    pub campaign_id: String,
    pub day: NaiveDate,
    /// The intent's name, else its tag, else its ID.
    pub intent: String,
    /// Calls carrying this intent.
    pub calls: i64,
}

/// A row of `report_rejected`: the orders of one campaign never uploaded for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    pub campaign_id: String,
    /// `suppressed` (the number was on the suppression list when it was planned or claimed), else `rejected` (the
    /// platform refused it in errList, or the daemon did).
    pub kind: String,
    /// For `suppressed`, the entry's reason, else its source (`cli`, `file:<name>`, `opt_out:<campaign>:<call>`);
    /// otherwise the reject reason as recorded.
    pub reason: String,
    pub orders: i64,
}

/// A row of `report_zone_groups`: one task that dials one zone group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneGroupRow {
    pub campaign_id: String,
    pub generation: i64,
    pub user_task_id: String,
    /// The group as JSON: `{"zones": [...], "rules": [...]}`.
    pub zone_group: String,
    pub orders_total: i64,
    pub orders_finished: i64,
    pub calls: i64,
    pub calls_answered: i64,
    pub first_call_at: Option<DateTime<Utc>>,
    pub last_call_at: Option<DateTime<Utc>>,
}

/// A row of `report_rounds`: one task of a campaign (a generation, or a round of a repeating campaign).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRow {
    pub campaign_id: String,
    pub generation: i64,
    /// The round's number for a repeating campaign's generation (`generation % 100000` from 100000), else `None`.
    pub round: Option<i64>,
    pub user_task_id: String,
    pub orders_total: i64,
    pub orders_finished: i64,
    /// Calls of the task's orders (every attempt).
    pub calls: i64,
    pub calls_answered: i64,
    pub first_call_at: Option<DateTime<Utc>>,
    pub last_call_at: Option<DateTime<Utc>>,
}
