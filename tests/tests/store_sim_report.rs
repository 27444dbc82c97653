//! The real client against the real simulator produces call data; the store keeps it through `apply_order_facts`;
//! the report views show exactly the figures the platform reported. Runs on both backends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use callbot_api::sign::SecretKey;
use callbot_api::wire::{
    CallInfoDetail, CallInfoList, CallItem, CreateAndCallRequest, FuncFlag, ListOrderDetailRequest,
    OrderDetail, StartupType, TaskCreateSetting,
};
use callbot_api::{Client, ClientConfig};
use callbot_sim::{Account, Outcome, SimConfig, Simulator};
use chrono::{DateTime, Duration, TimeZone, Utc};
use clock::ManualClock;
use store::{
    CallFacts, FactSource, IntentFact, NewOrder, OrderFacts, ReportFilter, SmsFact, Store,
    TranscriptLine, UploadState,
};
use tokio_util::sync::CancellationToken;

const UUID: &str = "store-e2e";
const SECRET: &str = "store-e2e-secret";
const TASK: &str = "sim-task";
const CAMPAIGN: &str = "simcamp";

/// (orderID, phone, forced outcome)
const CONTACTS: [(&str, &str, Outcome); 6] = [
    ("sim-o1", "8613900000001", Outcome::Answered),
    ("sim-o2", "8613900000002", Outcome::Answered),
    ("sim-o3", "8613900000003", Outcome::Answered),
    ("sim-o4", "8613900000004", Outcome::Busy),
    ("sim-o5", "8613900000005", Outcome::InvalidNumber),
    ("sim-o6", "8613900000006", Outcome::Answered),
];

/// Monday 2026-03-02 09:00 UTC = 17:00 at UTC+8, inside the task's window.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn ts(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.filter(|s| *s > 0)
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Wire → storage facts (what the daemon does; kept minimal and local so this test depends on public APIs only).
fn call_facts(order_id: &str, c: &CallInfoDetail) -> CallFacts {
    CallFacts {
        call_id: c.call_id.clone(),
        order_id: order_id.to_owned(),
        call_status: c.call_status.map_or(0, |s| s.code()),
        started_at: ts(c.call_start_ts),
        answered_at: ts(c.call_answer_ts),
        ended_at: ts(c.call_end_ts),
        duration_secs: c.call_duration,
        audio_url: non_empty(&c.call_audio_url),
        hangup_cause: non_empty(&c.hangup_cause),
        term_sip_code: non_empty(&c.term_sip_code),
        calling_number: c.calling_number.clone(),
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
        agent: None,
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
    }
}

fn order_facts(d: &OrderDetail) -> OrderFacts {
    OrderFacts {
        order_id: d.order_id.clone(),
        user_task_id: TASK.into(),
        finished: d.finish.unwrap_or(false),
        calls: d
            .call_info_detail_list
            .iter()
            .map(|c| call_facts(&d.order_id, c))
            .collect(),
    }
}

fn create_request() -> CreateAndCallRequest {
    CreateAndCallRequest {
        product_id: callbot_api::PRODUCT_ID.into(),
        user_task_id: TASK.into(),
        scene_id: "scene-1".into(),
        task_create_setting: TaskCreateSetting {
            strategy_name: "default".into(),
            startup_type: StartupType::Immediate,
            startup_at: 0,
            zone_second: 28_800,
            max_ring_time: 30,
            route_id: String::new(),
            dial_at_week_day: "1,2,3,4,5".into(),
            dial_at_up_hour: "9,10,11,14,15,16,17".into(),
            dial_at_down_hour: "9,10,11,13,14,15,16,17".into(),
            max_call: 1,
            task_name: "store e2e".into(),
            task_callback_url: String::new(),
            manual_call_setting: None,
        },
        func_flag: FuncFlag {
            task_keep: true,
            ..FuncFlag::default()
        },
        call_info_list: CallInfoList {
            order_callback_url: String::new(),
            call_callback_url: String::new(),
            call_list: CONTACTS
                .iter()
                .map(|(id, phone, _)| CallItem {
                    order_id: (*id).into(),
                    user_phone: (*phone).into(),
                    user_name: "Test".into(),
                    ..CallItem::default()
                })
                .collect(),
        },
    }
}

/// Runs the simulator, dials the contacts, and returns what `listOrderDetail` reports once every call is over.
async fn simulated_order_details() -> Vec<OrderDetail> {
    callbot_api::ensure_crypto_provider();
    let clock = ManualClock::new(t0());
    let mut cfg = SimConfig::new(vec![Account::new(UUID, SECRET)]);
    for (_, phone, outcome) in CONTACTS {
        cfg.outcomes.forced.insert(phone.into(), outcome);
    }
    let sim = Simulator::with_manual_clock(cfg, clock.clone());
    let handle = sim.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(sim.run(listener, shutdown.clone()));

    let mut cc = ClientConfig::new(&base, UUID, SecretKey::from(SECRET));
    cc.requests_per_second = 0;
    cc.request_timeout = StdDuration::from_secs(5);
    let client = Client::new(cc, clock.shared()).unwrap();
    let created = client.create_and_call(&create_request()).await.unwrap();
    assert_eq!(created.success_count, Some(CONTACTS.len() as i64));

    clock.advance(Duration::minutes(20));
    handle.advance_to_now();
    let ids: Vec<String> = CONTACTS.iter().map(|(id, _, _)| (*id).to_owned()).collect();
    let details = client
        .list_order_detail(&ListOrderDetailRequest::new(TASK, ids))
        .await
        .unwrap();
    shutdown.cancel();
    server.await.unwrap().unwrap();
    details.order_detail_list
}

async fn report_shows_what_the_simulator_reported(store: Arc<dyn Store>) {
    let details = simulated_order_details().await;
    assert_eq!(details.len(), CONTACTS.len());

    let planned: Vec<NewOrder> = CONTACTS
        .iter()
        .enumerate()
        .map(|(i, (id, phone, _))| NewOrder {
            order_id: (*id).into(),
            campaign_id: CAMPAIGN.into(),
            user_task_id: TASK.into(),
            phone: (*phone).into(),
            name: Some("Test".into()),
            customer: None,
            other: None,
            variables: serde_json::json!({}),
            source_line: i as i64 + 1,
            attempt: 1,
        })
        .collect();
    store
        .insert_planned_orders(&planned, chrono::DateTime::UNIX_EPOCH)
        .await
        .unwrap();
    let ids: Vec<String> = planned.iter().map(|o| o.order_id.clone()).collect();
    store
        .set_upload_state(&ids, UploadState::Sent, t0())
        .await
        .unwrap();

    let facts: Vec<OrderFacts> = details.iter().map(order_facts).collect();
    store
        .apply_order_facts(&facts, FactSource::Poll)
        .await
        .unwrap();
    let first = store
        .report(&ReportFilter {
            campaign: Some(CAMPAIGN.into()),
            since: None,
        })
        .await
        .unwrap();
    // The same facts again, as callbacks: nothing changes.
    store
        .apply_order_facts(&facts, FactSource::Callback)
        .await
        .unwrap();
    let report = store
        .report(&ReportFilter {
            campaign: Some(CAMPAIGN.into()),
            since: None,
        })
        .await
        .unwrap();
    assert_eq!(report, first);

    // What the platform said, worked out here from the wire data.
    let calls: Vec<&CallInfoDetail> = details
        .iter()
        .flat_map(|d| d.call_info_detail_list.iter())
        .filter(|c| c.call_start_ts.unwrap_or(0) > 0)
        .collect();
    let answered: Vec<&&CallInfoDetail> = calls
        .iter()
        .filter(|c| c.call_status.map(|s| s.code()) == Some(6))
        .collect();
    assert_eq!(
        calls.len(),
        CONTACTS.len(),
        "one call per contact (maxCall 1)"
    );
    assert_eq!(answered.len(), 4, "the four forced answers");
    let mut talk: Vec<i64> = answered
        .iter()
        .map(|c| {
            c.call_duration
                .unwrap_or_else(|| c.call_end_ts.unwrap() - c.call_answer_ts.unwrap())
        })
        .collect();
    talk.sort_unstable();
    let p90 = talk[(talk.len() * 9).div_ceil(10) - 1];
    let avg = talk.iter().sum::<i64>() as f64 / talk.len() as f64;
    let finished = details.iter().filter(|d| d.finish == Some(true)).count() as i64;
    let sms: i64 = calls.iter().map(|c| c.sms.len() as i64).sum();
    let mut by_status: BTreeMap<i64, i64> = BTreeMap::new();
    for c in &calls {
        *by_status.entry(c.call_status.unwrap().code()).or_default() += 1;
    }
    let mut by_intent: BTreeMap<String, i64> = BTreeMap::new();
    for c in &calls {
        let mut names: Vec<String> = c
            .intents
            .iter()
            .map(|i| {
                [&i.intent_name, &i.intent_tag, &i.intent_id]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .unwrap()
                    .clone()
            })
            .collect();
        names.sort();
        names.dedup();
        for n in names {
            *by_intent.entry(n).or_default() += 1;
        }
    }

    assert_eq!(
        report.daily.len(),
        1,
        "all calls on 2026-03-02 (UTC): {:?}",
        report.daily
    );
    let row = &report.daily[0];
    assert_eq!(row.day, t0().date_naive());
    assert_eq!(row.orders_total, CONTACTS.len() as i64);
    assert_eq!(row.orders_dialled, CONTACTS.len() as i64);
    assert_eq!(row.calls, calls.len() as i64);
    assert_eq!(row.calls_answered, 4);
    assert_eq!(row.orders_answered, 4);
    assert_eq!(row.orders_finished, finished);
    assert_eq!(row.answer_rate, Some(4.0 / calls.len() as f64));
    assert_eq!(
        row.finish_rate,
        Some(finished as f64 / CONTACTS.len() as f64)
    );
    assert_eq!(row.p90_talk_secs, Some(p90));
    assert!(
        (row.avg_talk_secs.unwrap() - avg).abs() < 1e-9,
        "{:?} vs {avg}",
        row.avg_talk_secs
    );
    assert_eq!(row.sms_sent, sms);

    assert_eq!(report.totals.len(), 1);
    let tot = &report.totals[0];
    assert_eq!(
        (
            tot.orders_total,
            tot.calls,
            tot.calls_answered,
            tot.orders_finished
        ),
        (6, 6, 4, finished)
    );
    assert_eq!(tot.p90_talk_secs, Some(p90));

    let status: BTreeMap<i64, i64> = report
        .call_status
        .iter()
        .map(|r| (r.call_status, r.calls))
        .collect();
    assert_eq!(status, by_status);
    assert_eq!(status.get(&6), Some(&4));
    assert_eq!(status.get(&10), Some(&1), "busy");
    assert_eq!(status.get(&8), Some(&1), "invalid number");
    let intents: BTreeMap<String, i64> = report
        .intents
        .iter()
        .map(|r| (r.intent.clone(), r.calls))
        .collect();
    assert_eq!(intents, by_intent);
    assert!(!intents.is_empty(), "answered calls carry intents");

    // Answered calls keep their transcript, once.
    let calls_o1 = store.calls_of_order("sim-o1").await.unwrap();
    assert_eq!(calls_o1.len(), 1);
    let wire_o1 = &details
        .iter()
        .find(|d| d.order_id == "sim-o1")
        .unwrap()
        .call_info_detail_list[0];
    assert_eq!(calls_o1[0].transcript.len(), wire_o1.record_detail.len());
    assert!(!calls_o1[0].transcript.is_empty());
}

#[tokio::test]
async fn sqlite_report_shows_what_the_simulator_reported() {
    let db = testkit::sqlite_database();
    let store = Arc::new(store_sqlite::SqliteStore::open(&db.url).await.unwrap());
    report_shows_what_the_simulator_reported(store).await;
}

#[tokio::test]
async fn postgres_report_shows_what_the_simulator_reported() {
    let db = testkit::postgres_database().await;
    let store = Arc::new(store_postgres::PgStore::connect(&db.url).await.unwrap());
    report_shows_what_the_simulator_reported(store).await;
}
