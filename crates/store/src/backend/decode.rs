//! Result rows into records, once for every backend.
//!
//! A backend implements [`Columns`] once for its row type: that is where its encodings live (SQLite keeps times
//! and JSON as text, PostgreSQL as `timestamptz` and `jsonb`). Every record is then read from the columns of the
//! same names on both, by its [`FromColumns`] here: the backends' `SELECT` lists name these columns.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::{
    ActionRecord, CallFacts, CallStatusRow, CallbackRecord, CampaignRecord, DailyRow, IntentFact,
    IntentRow, LeaseRecord, OptOutCall, OrderCounts, OrderProgress, OrderRecord, RejectedRow,
    RoundRow, SmsFact, StoreError, Suppression, TaskRecord, TotalsRow, TranscriptLine,
    ZoneGroupRow,
};

/// The columns an [`crate::OrderRecord`] is read from.
pub const ORDER_COLUMNS: &str = "order_id, campaign_id, user_task_id, phone, name, customer, other, variables, \
     source_line, upload_state, reject_reason, state_changed_at, finished, last_call_status, last_polled_at, \
     stop_state, stopped_at, attempt";

/// The columns a [`crate::TaskRecord`] is read from.
pub const TASK_COLUMNS: &str = "user_task_id, campaign_id, generation, task_index, task_id, settings, \
     settings_sent_at, platform_status, updated_at, status_in_doubt_since";

/// The columns a [`crate::LeaseRecord`] is read from.
pub const LEASE_COLUMNS: &str = "campaign_id, owner, expires_at";

/// One result row, column by column, as primitives. A column that is NULL reads as `None`; the required forms
/// (`i64`, `string`, ...) call a NULL corrupt.
pub trait Columns {
    fn opt_i64(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn opt_f64(&self, column: &str) -> Result<Option<f64>, StoreError>;
    fn opt_bool(&self, column: &str) -> Result<Option<bool>, StoreError>;
    fn opt_string(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn opt_date(&self, column: &str) -> Result<Option<NaiveDate>, StoreError>;
    fn opt_json(&self, column: &str) -> Result<Option<serde_json::Value>, StoreError>;

    fn i64(&self, column: &str) -> Result<i64, StoreError> {
        present(column, self.opt_i64(column)?)
    }
    /// A count: never negative (a negative stored count reads as 0).
    fn count(&self, column: &str) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.i64(column)?).unwrap_or(0))
    }
    fn bool(&self, column: &str) -> Result<bool, StoreError> {
        present(column, self.opt_bool(column)?)
    }
    fn string(&self, column: &str) -> Result<String, StoreError> {
        present(column, self.opt_string(column)?)
    }
    fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        present(column, self.opt_time(column)?)
    }
    fn date(&self, column: &str) -> Result<NaiveDate, StoreError> {
        present(column, self.opt_date(column)?)
    }
    fn json(&self, column: &str) -> Result<serde_json::Value, StoreError> {
        present(column, self.opt_json(column)?)
    }
}

fn present<T>(column: &str, v: Option<T>) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::Corrupt(format!("column {column} is NULL")))
}

/// A record read from one row's columns.
pub trait FromColumns: Sized {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError>;
}

/// A child row of a call (an intent, an SMS, a transcript line) with the call it belongs to (column `call_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct OfCall<T> {
    pub call_id: String,
    pub item: T,
}

impl<T: FromColumns> FromColumns for OfCall<T> {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(OfCall {
            call_id: r.string("call_id")?,
            item: T::from_columns(r)?,
        })
    }
}

/// A call's transcript as the `calls.transcript` column keeps it: a JSON array of its lines (a [`TranscriptLine`]
/// each, by its serde names), one per record index, by index; a line given twice keeps the last. `None` when there
/// is no line (the column is then left as it is: a report without lines never removes any). The fact writers merge
/// it into the stored array by record index, in SQL, so a repeated or partial report never duplicates or loses a line.
pub fn transcript_json(lines: &[TranscriptLine]) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    let mut by_index: std::collections::BTreeMap<i64, &TranscriptLine> = Default::default();
    for l in lines {
        by_index.insert(l.index, l);
    }
    let lines: Vec<&TranscriptLine> = by_index.into_values().collect();
    Some(serde_json::to_string(&lines).expect("transcript lines serialise"))
}

/// Gives each call its intents and SMS, in the order read; children of calls not in `calls` are left out.
pub fn assemble_calls(
    mut calls: Vec<CallFacts>,
    intents: Vec<OfCall<IntentFact>>,
    sms: Vec<OfCall<SmsFact>>,
) -> Vec<CallFacts> {
    let index: HashMap<String, usize> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| (c.call_id.clone(), i))
        .collect();
    for c in intents {
        if let Some(&i) = index.get(&c.call_id) {
            calls[i].intents.push(c.item);
        }
    }
    for c in sms {
        if let Some(&i) = index.get(&c.call_id) {
            calls[i].sms.push(c.item);
        }
    }
    calls
}

impl FromColumns for CampaignRecord {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(CampaignRecord {
            id: r.string("campaign_id")?,
            generation: r.i64("generation")?,
            source_file: r.string("source_file")?,
            content_hash: r.string("content_hash")?,
            spec: r.opt_json("spec")?,
            state: r.string("state")?,
            last_error: r.opt_string("last_error")?,
            updated_at: r.time("updated_at")?,
        })
    }
}

impl FromColumns for TaskRecord {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(TaskRecord {
            user_task_id: r.string("user_task_id")?,
            campaign_id: r.string("campaign_id")?,
            generation: r.i64("generation")?,
            task_index: r.i64("task_index")?,
            task_id: r.opt_string("task_id")?,
            settings: r.opt_json("settings")?,
            settings_sent_at: r.opt_time("settings_sent_at")?,
            platform_status: r.opt_i64("platform_status")?,
            updated_at: r.time("updated_at")?,
            status_in_doubt_since: r.opt_time("status_in_doubt_since")?,
        })
    }
}

impl FromColumns for OrderRecord {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(OrderRecord {
            order_id: r.string("order_id")?,
            campaign_id: r.string("campaign_id")?,
            user_task_id: r.string("user_task_id")?,
            phone: r.string("phone")?,
            name: r.opt_string("name")?,
            customer: r.opt_string("customer")?,
            other: r.opt_string("other")?,
            variables: r.json("variables")?,
            source_line: r.i64("source_line")?,
            upload_state: r.string("upload_state")?.parse()?,
            reject_reason: r.opt_string("reject_reason")?,
            state_changed_at: r.opt_time("state_changed_at")?,
            finished: r.bool("finished")?,
            last_call_status: r.opt_i64("last_call_status")?,
            last_polled_at: r.opt_time("last_polled_at")?,
            stop_state: r.opt_string("stop_state")?.map(|s| s.parse()).transpose()?,
            stopped_at: r.opt_time("stopped_at")?,
            attempt: u32::try_from(r.i64("attempt")?)
                .map_err(|_| StoreError::Corrupt("attempt out of range".into()))?,
        })
    }
}

/// An instant that may be absent, from the column `next_at` (a `MIN` over no rows is NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextAt(pub Option<DateTime<Utc>>);

impl FromColumns for NextAt {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(NextAt(r.opt_time("next_at")?))
    }
}

impl FromColumns for OrderProgress {
    /// Columns `planned`, `sending`, `sent`, `rejected` and `unfinished`.
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(OrderProgress::from_counts(
            r.i64("planned")?,
            r.i64("sending")?,
            r.i64("sent")?,
            r.i64("rejected")?,
            r.i64("unfinished")?,
        ))
    }
}

impl FromColumns for OrderCounts {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(OrderCounts {
            total: r.count("total")?,
            planned: r.count("planned")?,
            sending: r.count("sending")?,
            sent: r.count("sent")?,
            rejected: r.count("rejected")?,
            suppressed: r.count("suppressed")?,
            dialled: r.count("dialled")?,
            answered: r.count("answered")?,
            finished: r.count("finished")?,
        })
    }
}

impl FromColumns for Suppression {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(Suppression {
            phone: r.string("phone")?,
            source: r.string("source")?,
            reason: r.opt_string("reason")?,
            expires_at: r.opt_time("expires_at")?,
            added_at: r.time("added_at")?,
        })
    }
}

impl FromColumns for OptOutCall {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(OptOutCall {
            phone: r.string("phone")?,
            order_id: r.string("order_id")?,
            call_id: r.string("call_id")?,
            intent: r.string("intent")?,
        })
    }
}

impl FromColumns for CallFacts {
    /// The call's own row, its transcript included (column `transcript`, see [`transcript_json`]): its intents and
    /// SMS come from [`assemble_calls`].
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        let transcript = match r.opt_json("transcript")? {
            None => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|e| {
                StoreError::Corrupt(format!("column transcript: not a list of lines: {e}"))
            })?,
        };
        Ok(CallFacts {
            call_id: r.string("call_id")?,
            order_id: r.string("order_id")?,
            call_status: r.i64("call_status")?,
            started_at: r.opt_time("started_at")?,
            answered_at: r.opt_time("answered_at")?,
            ended_at: r.opt_time("ended_at")?,
            duration_secs: r.opt_i64("duration_secs")?,
            audio_url: r.opt_string("audio_url")?,
            hangup_cause: r.opt_string("hangup_cause")?,
            term_sip_code: r.opt_string("term_sip_code")?,
            calling_number: r.opt_string("calling_number")?,
            intents: Vec::new(),
            sms: Vec::new(),
            agent: r.opt_json("agent")?,
            transcript,
        })
    }
}

impl FromColumns for IntentFact {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(IntentFact {
            intent_id: r.string("intent_id")?,
            intent_tag: r.string("intent_tag")?,
            intent_name: r.string("intent_name")?,
            intent_level: r.opt_i64("intent_level")?,
        })
    }
}

impl FromColumns for SmsFact {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(SmsFact {
            sys_message_id: r.string("sys_message_id")?,
            sent_at: r.opt_time("sent_at")?,
            content: r.string("content")?,
            status: r.opt_i64("status")?,
        })
    }
}

impl FromColumns for TranscriptLine {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(TranscriptLine {
            index: r.i64("record_index")?,
            role: r.i64("role")?,
            kind: r.i64("kind")?,
            word: r.string("word")?,
            node_id: r.opt_string("node_id")?,
            node_desc: r.opt_string("node_desc")?,
            at: r.opt_time("at")?,
        })
    }
}

impl FromColumns for LeaseRecord {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(LeaseRecord {
            campaign_id: r.string("campaign_id")?,
            owner: r.string("owner")?,
            expires_at: r.time("expires_at")?,
        })
    }
}

impl FromColumns for ActionRecord {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(ActionRecord {
            endpoint: r.string("endpoint")?,
            request_id: r.string("request_id")?,
            response_id: r.opt_string("response_id")?,
            ret_code: r.opt_i64("ret_code")?,
            message: r.opt_string("message")?,
            http_status: r.opt_i64("http_status")?,
            duration_ms: r.i64("duration_ms")?,
            at: r.time("at")?,
            outcome: r.string("outcome")?,
            campaign_id: r.opt_string("campaign_id")?,
            user_task_id: r.opt_string("user_task_id")?,
        })
    }
}

impl FromColumns for CallbackRecord {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(CallbackRecord {
            kind: r.string("kind")?,
            body: r.string("body")?,
            verified: r.bool("verified")?,
            received_at: r.time("received_at")?,
            request_id: r.opt_string("request_id")?,
        })
    }
}

impl FromColumns for TotalsRow {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(TotalsRow {
            campaign_id: r.string("campaign_id")?,
            orders_total: r.i64("orders_total")?,
            orders_dialled: r.i64("orders_dialled")?,
            orders_answered: r.i64("orders_answered")?,
            orders_finished: r.i64("orders_finished")?,
            calls: r.i64("calls")?,
            calls_answered: r.i64("calls_answered")?,
            answer_rate: r.opt_f64("answer_rate")?,
            finish_rate: r.opt_f64("finish_rate")?,
            avg_talk_secs: r.opt_f64("avg_talk_secs")?,
            p90_talk_secs: r.opt_i64("p90_talk_secs")?,
            sms_sent: r.i64("sms_sent")?,
            first_call_at: r.opt_time("first_call_at")?,
            last_call_at: r.opt_time("last_call_at")?,
        })
    }
}

impl FromColumns for DailyRow {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(DailyRow {
            campaign_id: r.string("campaign_id")?,
            day: r.date("day")?,
            orders_total: r.i64("orders_total")?,
            orders_dialled: r.i64("orders_dialled")?,
            orders_answered: r.i64("orders_answered")?,
            orders_finished: r.i64("orders_finished")?,
            calls: r.i64("calls")?,
            calls_answered: r.i64("calls_answered")?,
            answer_rate: r.opt_f64("answer_rate")?,
            finish_rate: r.opt_f64("finish_rate")?,
            avg_talk_secs: r.opt_f64("avg_talk_secs")?,
            p90_talk_secs: r.opt_i64("p90_talk_secs")?,
            sms_sent: r.i64("sms_sent")?,
        })
    }
}

impl FromColumns for CallStatusRow {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(CallStatusRow {
            campaign_id: r.string("campaign_id")?,
            day: r.date("day")?,
            call_status: r.i64("call_status")?,
            status_name: r.string("status_name")?,
            calls: r.i64("calls")?,
        })
    }
}

impl FromColumns for RoundRow {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(RoundRow {
            campaign_id: r.string("campaign_id")?,
            generation: r.i64("generation")?,
            round: r.opt_i64("round")?,
            user_task_id: r.string("user_task_id")?,
            orders_total: r.i64("orders_total")?,
            orders_finished: r.i64("orders_finished")?,
            calls: r.i64("calls")?,
            calls_answered: r.i64("calls_answered")?,
            first_call_at: r.opt_time("first_call_at")?,
            last_call_at: r.opt_time("last_call_at")?,
        })
    }
}

impl FromColumns for ZoneGroupRow {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(ZoneGroupRow {
            campaign_id: r.string("campaign_id")?,
            generation: r.i64("generation")?,
            user_task_id: r.string("user_task_id")?,
            zone_group: r.string("zone_group")?,
            orders_total: r.i64("orders_total")?,
            orders_finished: r.i64("orders_finished")?,
            calls: r.i64("calls")?,
            calls_answered: r.i64("calls_answered")?,
            first_call_at: r.opt_time("first_call_at")?,
            last_call_at: r.opt_time("last_call_at")?,
        })
    }
}

impl FromColumns for RejectedRow {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(RejectedRow {
            campaign_id: r.string("campaign_id")?,
            kind: r.string("kind")?,
            reason: r.string("reason")?,
            orders: r.i64("orders")?,
        })
    }
}

impl FromColumns for IntentRow {
    fn from_columns(r: &dyn Columns) -> Result<Self, StoreError> {
        Ok(IntentRow {
            campaign_id: r.string("campaign_id")?,
            day: r.date("day")?,
            intent: r.string("intent")?,
            calls: r.i64("calls")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as a map of column to JSON value (null for NULL).
    struct MapRow(serde_json::Map<String, serde_json::Value>);

    impl MapRow {
        fn get(&self, c: &str) -> Result<Option<&serde_json::Value>, StoreError> {
            match self.0.get(c) {
                None => Err(StoreError::Corrupt(format!("no column {c}"))),
                Some(serde_json::Value::Null) => Ok(None),
                Some(v) => Ok(Some(v)),
            }
        }
    }

    impl Columns for MapRow {
        fn opt_i64(&self, c: &str) -> Result<Option<i64>, StoreError> {
            Ok(self.get(c)?.and_then(|v| v.as_i64()))
        }
        fn opt_f64(&self, c: &str) -> Result<Option<f64>, StoreError> {
            Ok(self.get(c)?.and_then(|v| v.as_f64()))
        }
        fn opt_bool(&self, c: &str) -> Result<Option<bool>, StoreError> {
            Ok(self.get(c)?.and_then(|v| v.as_bool()))
        }
        fn opt_string(&self, c: &str) -> Result<Option<String>, StoreError> {
            Ok(self.get(c)?.and_then(|v| v.as_str()).map(str::to_owned))
        }
        fn opt_time(&self, c: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
            Ok(self
                .get(c)?
                .and_then(|v| v.as_i64())
                .and_then(|s| DateTime::from_timestamp(s, 0)))
        }
        fn opt_date(&self, _: &str) -> Result<Option<NaiveDate>, StoreError> {
            Ok(None)
        }
        fn opt_json(&self, c: &str) -> Result<Option<serde_json::Value>, StoreError> {
            Ok(self.get(c)?.cloned())
        }
    }

    fn row(v: serde_json::Value) -> MapRow {
        MapRow(v.as_object().unwrap().clone())
    }

    #[test]
    fn a_null_in_a_required_column_is_corrupt_data() {
        let r = row(serde_json::json!({
            "user_task_id": "ut", "campaign_id": "c", "generation": 1, "task_index": 0, "task_id": null,
            "settings": null, "settings_sent_at": null, "platform_status": 4, "updated_at": null
        }));
        let e = TaskRecord::from_columns(&r).unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt(m) if m.contains("updated_at")),
            "{e}"
        );
    }

    #[test]
    fn children_join_their_calls_in_the_order_read() {
        let call = |id: &str| CallFacts {
            call_id: id.into(),
            order_id: "o".into(),
            call_status: 6,
            started_at: None,
            answered_at: None,
            ended_at: None,
            duration_secs: None,
            audio_url: None,
            hangup_cause: None,
            term_sip_code: None,
            calling_number: None,
            intents: vec![],
            sms: vec![],
            agent: None,
            transcript: vec![],
        };
        let sms = |call_id: &str, id: &str| OfCall {
            call_id: call_id.into(),
            item: SmsFact {
                sys_message_id: id.into(),
                sent_at: None,
                content: String::new(),
                status: None,
            },
        };
        let calls = assemble_calls(
            vec![call("a"), call("b")],
            vec![],
            vec![
                sms("b", "1"),
                sms("a", "1"),
                sms("b", "2"),
                sms("gone", "1"),
            ],
        );
        let ids = |c: &CallFacts| {
            c.sms
                .iter()
                .map(|s| s.sys_message_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&calls[0]), ["1"]);
        assert_eq!(ids(&calls[1]), ["1", "2"]);
    }

    #[test]
    fn a_transcript_is_kept_one_line_per_index_by_index_and_read_back() {
        let line = |index: i64, word: &str| TranscriptLine {
            index,
            role: 1,
            kind: 7,
            word: word.into(),
            node_id: Some("n".into()),
            node_desc: None,
            at: DateTime::from_timestamp(1_772_400_000, 5_000),
        };
        assert_eq!(transcript_json(&[]), None);
        let text = transcript_json(&[line(3, "c"), line(1, "a"), line(3, "C")]).unwrap();
        let back: Vec<TranscriptLine> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, [line(1, "a"), line(3, "C")]);
    }
}
