//! Wire (callbot-api) → storage (store) conversion of what the platform reports about orders and calls.
//!
//! Unix seconds of 0 on the wire mean "absent". A `callStatus` this client does not know is stored as 0 (no status):
//! the store treats 6 and above as final, so an unknown code taken as it is would finish a call that may still be in
//! flight, or replace a real final status. It is counted ([`unknown_call_statuses`]) and kept in the raw callback.

use callbot_api::wire::{CallCallback, CallInfoDetail, CallStatus, OrderCallback, OrderDetail};
use chrono::{DateTime, Utc};
use store::{CallFacts, IntentFact, OrderFacts, SmsFact, TranscriptLine};

fn ts(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.filter(|s| *s > 0)
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The `callStatus` codes of these calls that this client does not know.
pub fn unknown_call_statuses<'a>(calls: impl IntoIterator<Item = &'a CallInfoDetail>) -> Vec<i64> {
    calls
        .into_iter()
        .filter_map(|c| match c.call_status {
            Some(CallStatus::Unknown(code)) => Some(code),
            _ => None,
        })
        .collect()
}

/// One call as the store keeps it. `None` when the platform sent no callID (nothing to key it by).
pub fn call_facts(order_id: &str, c: &CallInfoDetail) -> Option<CallFacts> {
    if c.call_id.is_empty() {
        return None;
    }
    Some(CallFacts {
        call_id: c.call_id.clone(),
        order_id: order_id.to_owned(),
        call_status: c.call_status.map_or(0, |s| match s {
            CallStatus::Unknown(_) => 0,
            known => known.code(),
        }),
        started_at: ts(c.call_start_ts),
        answered_at: ts(c.call_answer_ts),
        ended_at: ts(c.call_end_ts),
        duration_secs: c.call_duration,
        audio_url: non_empty(&c.call_audio_url),
        hangup_cause: non_empty(&c.hangup_cause),
        term_sip_code: non_empty(&c.term_sip_code),
        calling_number: c.calling_number.as_deref().and_then(non_empty),
        intents: c
            .intents
            .iter()
            .map(|i| IntentFact {
                intent_id: i.intent_id.clone(),
                intent_tag: i.intent_tag.clone(),
                intent_name: i.intent_name.clone(),
                intent_level: i.intent_level,
            })
            .collect(),
        sms: c
            .sms
            .iter()
            .map(|s| SmsFact {
                sys_message_id: s.sys_message_id.clone(),
                sent_at: ts(s.sms_send_ts),
                content: s.sms_content.clone(),
                status: None,
            })
            .collect(),
        agent: c
            .agent
            .as_ref()
            .filter(|a| {
                a.agent_name.is_some() || a.agent_group.is_some() || a.agent_call_status.is_some()
            })
            .and_then(|a| serde_json::to_value(a).ok()),
        transcript: c
            .record_detail
            .iter()
            .enumerate()
            .map(|(i, r)| TranscriptLine {
                index: r.record_index.unwrap_or(i as i64),
                role: r.record_role.map_or(-1, |x| x.code()),
                kind: r.record_type.map_or(-1, |x| x.code()),
                word: r.record_word.clone(),
                node_id: non_empty(&r.node_id),
                node_desc: non_empty(&r.node_desc),
                at: ts(r.create_ts),
            })
            .collect(),
    })
}

/// A polled order (listOrderDetail item).
pub fn from_order_detail(d: &OrderDetail, user_task_id: &str) -> OrderFacts {
    OrderFacts {
        order_id: d.order_id.clone(),
        user_task_id: if d.user_task_id.is_empty() {
            user_task_id.to_owned()
        } else {
            d.user_task_id.clone()
        },
        finished: d.finish.unwrap_or(false),
        calls: d
            .call_info_detail_list
            .iter()
            .filter_map(|c| call_facts(&d.order_id, c))
            .collect(),
    }
}

/// An order callback.
pub fn from_order_callback(c: &OrderCallback) -> OrderFacts {
    OrderFacts {
        order_id: c.order_id.clone(),
        user_task_id: c.user_task_id.clone(),
        finished: c.finish.unwrap_or(false),
        calls: c
            .call_info_detail
            .iter()
            .filter_map(|d| call_facts(&c.order_id, d))
            .collect(),
    }
}

/// A call callback.
pub fn from_call_callback(c: &CallCallback) -> OrderFacts {
    OrderFacts {
        order_id: c.order_id.clone(),
        user_task_id: c.user_task_id.clone(),
        finished: c.finish.unwrap_or(false),
        calls: c
            .call_info_detail
            .iter()
            .filter_map(|d| call_facts(&c.order_id, d))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_call_status_is_stored_without_a_status_and_counted() {
        let mut c = CallInfoDetail {
            call_id: "c-1".into(),
            call_status: Some(CallStatus::from_code(99)),
            ..CallInfoDetail::default()
        };
        let facts = call_facts("o-1", &c).unwrap();
        assert_eq!(facts.call_status, 0);
        assert!(!store::is_final_call_status(facts.call_status));
        assert_eq!(unknown_call_statuses([&c]), vec![99]);
        c.call_status = Some(CallStatus::Busy);
        assert_eq!(call_facts("o-1", &c).unwrap().call_status, 10);
        assert!(unknown_call_statuses([&c]).is_empty());
    }

    #[test]
    fn zero_timestamps_are_absent_and_ids_are_kept() {
        let detail: OrderDetail = serde_json::from_value(serde_json::json!({
            "orderID": "o1", "userTaskID": "t1", "finish": true,
            "callInfoDetailList": [
                {"callID": "c1", "callStatus": 6, "callStartTs": 1700000000, "callAnswerTs": 0,
                 "callEndTs": 1700000030, "callDuration": 30, "hangupCause": "",
                 "recordDetail": [{"recordWord": "hello", "recordIndex": 1, "recordRole": 0, "recordType": 8}]},
                {"callID": "", "callStatus": 3}
            ]
        }))
        .unwrap();
        let f = from_order_detail(&detail, "ignored");
        assert_eq!(f.user_task_id, "t1");
        assert!(f.finished);
        assert_eq!(f.calls.len(), 1, "a call without callID is dropped");
        let c = &f.calls[0];
        assert_eq!(c.call_status, 6);
        assert_eq!(c.answered_at, None);
        assert_eq!(c.started_at.map(|t| t.timestamp()), Some(1_700_000_000));
        assert_eq!(c.hangup_cause, None);
        assert_eq!(c.transcript[0].word, "hello");
        assert_eq!(c.transcript[0].kind, 8);
    }
}
