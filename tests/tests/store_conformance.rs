//! One conformance suite for the store, run against both backends: every case is a function taking a [`Db`]
//! (a fresh database it can open, and reopen), and the macro at the bottom instantiates it as
//! `sqlite::<case>` and `postgres::<case>`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use store::{
    ActionRecord, CallFacts, CallbackIngest, CallbackRecord, CampaignRecord, FactSource,
    IntentFact, NewOrder, OrderFacts, ReportFilter, SmsFact, Store, TranscriptLine, UploadState,
};

/// A fresh database of one backend, kept alive for the test.
enum Db {
    Sqlite(testkit::TestSqlite),
    Postgres(testkit::TestDatabase),
}

impl Db {
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(db) => Arc::new(
                store_sqlite::SqliteStore::open(&db.url)
                    .await
                    .expect("open SQLite store"),
            ),
            Db::Postgres(db) => Arc::new(
                store_postgres::PgStore::connect(&db.url)
                    .await
                    .expect("open PostgreSQL store"),
            ),
        }
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_400_000 + secs, 0).unwrap()
}

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
}

fn new_order(campaign: &str, task: &str, n: usize) -> NewOrder {
    NewOrder {
        order_id: format!("{campaign}-o{n:06}"),
        campaign_id: campaign.into(),
        user_task_id: task.into(),
        phone: format!("8613{n:09}"),
        name: Some(format!("Contact {n}")),
        customer: None,
        other: Some(format!("ref-{n}")),
        variables: serde_json::json!({ "n": n }),
        source_line: n as i64 + 1,
    }
}

fn ids(orders: &[NewOrder]) -> Vec<String> {
    orders.iter().map(|o| o.order_id.clone()).collect()
}

fn call(order_id: &str, call_id: &str, status: i64) -> CallFacts {
    CallFacts {
        call_id: call_id.into(),
        order_id: order_id.into(),
        call_status: status,
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
    }
}

fn line(index: i64, word: &str) -> TranscriptLine {
    TranscriptLine {
        index,
        role: index % 2,
        kind: 8,
        word: word.into(),
        node_id: Some(format!("n{index}")),
        node_desc: None,
        at: Some(at(index)),
    }
}

fn intent(name: &str, tag: &str) -> IntentFact {
    IntentFact {
        intent_id: format!("id-{name}{tag}"),
        intent_tag: tag.into(),
        intent_name: name.into(),
        intent_level: Some(1),
    }
}

fn sms(id: &str, status: Option<i64>) -> SmsFact {
    SmsFact {
        sys_message_id: id.into(),
        sent_at: Some(at(100)),
        content: "Thanks!".into(),
        status,
    }
}

fn facts(order_id: &str, finished: bool, calls: Vec<CallFacts>) -> OrderFacts {
    OrderFacts {
        order_id: order_id.into(),
        user_task_id: "t1".into(),
        finished,
        calls,
    }
}

// ---------------------------------------------------------------------------------------------------------------

async fn migrations_apply_twice_idempotently(db: Db) {
    let first = db.open().await;
    let campaign = CampaignRecord {
        id: "spring".into(),
        generation: 3,
        source_file: "campaigns/spring.toml".into(),
        content_hash: "abc123".into(),
        spec: Some(serde_json::json!({ "name": "Spring", "tasks": [1, 2] })),
        state: "active".into(),
        last_error: None,
        updated_at: at(0),
    };
    first.upsert_campaign(&campaign).await.unwrap();
    assert_eq!(
        first
            .insert_planned_orders(&[new_order("spring", "t1", 1)])
            .await
            .unwrap(),
        1
    );

    // A second open applies the migrations again: nothing changes, nothing is lost.
    let second = db.open().await;
    second.ping().await.unwrap();
    assert_eq!(second.campaigns().await.unwrap(), vec![campaign.clone()]);
    assert_eq!(second.order_counts("spring").await.unwrap().total, 1);

    let mut updated = campaign.clone();
    updated.generation = 4;
    updated.state = "invalid".into();
    updated.last_error = Some("line 3: bad window".into());
    second.upsert_campaign(&updated).await.unwrap();
    assert_eq!(first.campaigns().await.unwrap(), vec![updated]);
}

async fn tasks_upsert_by_user_task_id(db: Db) {
    let store = db.open().await;
    let mut task = store::TaskRecord {
        user_task_id: "spring-g1-0".into(),
        campaign_id: "spring".into(),
        generation: 1,
        task_index: 0,
        task_id: None,
        settings: Some(serde_json::json!({ "dialAtWeekDay": "1,2,3" })),
        settings_sent_at: Some(at(5)),
        platform_status: Some(1),
        desired_status: Some(2),
        updated_at: at(5),
    };
    store.upsert_task(&task).await.unwrap();
    task.task_id = Some("T-991".into());
    task.platform_status = Some(2);
    task.updated_at = at(9);
    store.upsert_task(&task).await.unwrap();
    let mut later = task.clone();
    later.task_id = None; // an update that doesn't know the platform ID keeps it
    store.upsert_task(&later).await.unwrap();
    assert_eq!(store.tasks("spring").await.unwrap(), vec![task]);
    assert!(store.tasks("other").await.unwrap().is_empty());
}

async fn bulk_planned_insert_is_idempotent(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..20_000).map(|n| new_order("bulk", "t1", n)).collect();
    assert_eq!(store.insert_planned_orders(&orders).await.unwrap(), 20_000);
    assert_eq!(
        store.insert_planned_orders(&orders).await.unwrap(),
        0,
        "a second insert adds nothing"
    );

    // Same phone under a new order ID in the same task: skipped (never dial a contact twice).
    let mut again = new_order("bulk", "t1", 7);
    again.order_id = "bulk-other-id".into();
    assert_eq!(store.insert_planned_orders(&[again]).await.unwrap(), 0);
    assert!(store.order("bulk-other-id").await.unwrap().is_none());
    // The same phone in the campaign's next generation (a new task) is a new order: the user asked for a re-run.
    let mut rerun = new_order("bulk", "t2", 7);
    rerun.order_id = "bulk-gen2-o7".into();
    assert_eq!(store.insert_planned_orders(&[rerun]).await.unwrap(), 1);
    assert!(store.order("bulk-gen2-o7").await.unwrap().is_some());
    // The same phone in another campaign is another order.
    assert_eq!(
        store
            .insert_planned_orders(&[new_order("other", "t9", 7)])
            .await
            .unwrap(),
        1
    );

    let counts = store.order_counts("bulk").await.unwrap();
    assert_eq!(
        (counts.total, counts.planned, counts.sent),
        (20_001, 20_001, 0)
    );

    let first = store
        .orders_in_state("t1", UploadState::Planned, 3)
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|o| o.source_line).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let o = &first[0];
    assert_eq!(o.order_id, "bulk-o000000");
    assert_eq!(o.phone, "8613000000000");
    assert_eq!(o.variables, serde_json::json!({ "n": 0 }));
    assert_eq!(o.other.as_deref(), Some("ref-0"));
    assert!(!o.finished && o.last_call_status.is_none() && o.state_changed_at.is_none());
}

async fn upload_state_moves_only_forward(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..6).map(|n| new_order("up", "t1", n)).collect();
    store.insert_planned_orders(&orders).await.unwrap();
    let all = ids(&orders);

    assert_eq!(
        store
            .set_upload_state(&all[..4], UploadState::Sending, at(10))
            .await
            .unwrap(),
        4
    );
    // sending -> planned is allowed (the request was definitely not applied) ...
    assert_eq!(
        store
            .set_upload_state(&all[3..4], UploadState::Planned, at(11))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .set_upload_state(&all[..3], UploadState::Sent, at(12))
            .await
            .unwrap(),
        3
    );
    // ... but sent never goes back, and planned never jumps to planned again.
    assert_eq!(
        store
            .set_upload_state(&all[..3], UploadState::Planned, at(13))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .set_upload_state(&all[..3], UploadState::Sending, at(13))
            .await
            .unwrap(),
        0
    );

    let rejected = vec![
        (all[3].clone(), "retCode 4: bad phone".to_string()),
        (all[0].clone(), "already sent: must not move".to_string()),
    ];
    assert_eq!(store.reject_orders(&rejected, at(14)).await.unwrap(), 1);
    assert_eq!(
        store
            .set_upload_state(&all[3..4], UploadState::Sent, at(15))
            .await
            .unwrap(),
        0,
        "rejected is final"
    );

    let o0 = store.order(&all[0]).await.unwrap().unwrap();
    assert_eq!(o0.upload_state, UploadState::Sent);
    assert_eq!(o0.state_changed_at, Some(at(12)));
    assert_eq!(o0.reject_reason, None);
    let o3 = store.order(&all[3]).await.unwrap().unwrap();
    assert_eq!(o3.upload_state, UploadState::Rejected);
    assert_eq!(o3.reject_reason.as_deref(), Some("retCode 4: bad phone"));
    assert_eq!(o3.state_changed_at, Some(at(14)));

    let counts = store.order_counts("up").await.unwrap();
    assert_eq!(
        (counts.planned, counts.sending, counts.sent, counts.rejected),
        (2, 0, 3, 1)
    );
    let planned = store
        .orders_in_state("t1", UploadState::Planned, 10)
        .await
        .unwrap();
    assert_eq!(
        planned
            .iter()
            .map(|o| o.order_id.clone())
            .collect::<Vec<_>>(),
        all[4..].to_vec()
    );
}

async fn polls_oldest_checked_first(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..7).map(|n| new_order("poll", "t1", n)).collect();
    store.insert_planned_orders(&orders).await.unwrap();
    let all = ids(&orders);
    store
        .set_upload_state(&all[..6], UploadState::Sent, at(0))
        .await
        .unwrap(); // all[6] stays planned
    // all[5] finished: never polled again.
    store
        .apply_order_facts(
            &[facts(&all[5], true, vec![call(&all[5], "c5", 8)])],
            FactSource::Callback,
        )
        .await
        .unwrap();
    store.mark_polled(&all[0..1], at(30)).await.unwrap();
    store.mark_polled(&all[1..2], at(10)).await.unwrap();
    store.mark_polled(&all[2..3], at(20)).await.unwrap();

    let next = store.orders_to_poll("t1", 10).await.unwrap();
    let expected = vec![
        all[3].clone(),
        all[4].clone(),
        all[1].clone(),
        all[2].clone(),
        all[0].clone(),
    ];
    assert_eq!(
        next, expected,
        "never polled first (by ID), then least recently polled"
    );
    assert_eq!(
        store.orders_to_poll("t1", 2).await.unwrap(),
        expected[..2].to_vec(),
        "limit honoured"
    );
    assert!(
        store
            .orders_to_poll("other-task", 10)
            .await
            .unwrap()
            .is_empty()
    );

    store.mark_polled(&expected[..2], at(40)).await.unwrap();
    assert_eq!(
        store.orders_to_poll("t1", 1).await.unwrap(),
        vec![all[1].clone()]
    );
}

/// What a callback and a poll both say about one order: a final answered call with its transcript (the callback),
/// and a stale in-flight view of it (the poll), plus a later second round the poll already knows.
fn convergence_facts(order_id: &str) -> (Vec<OrderFacts>, Vec<OrderFacts>) {
    let mut done = call(order_id, &format!("{order_id}-c1"), 6);
    done.started_at = Some(at(100));
    done.answered_at = Some(at(105));
    done.ended_at = Some(at(165));
    done.duration_secs = Some(60);
    done.audio_url = Some("https://rec.example/1.mp3".into());
    done.hangup_cause = Some("NORMAL_CLEARING".into());
    done.term_sip_code = Some("200".into());
    done.intents = vec![intent("interested", "hot")];
    done.sms = vec![sms("sms-1", Some(1))];
    done.agent = Some(serde_json::json!({ "agentName": "Ann" }));
    done.transcript = vec![line(1, "Hello"), line(2, "Hi"), line(3, "Bye")];
    let callback = vec![facts(order_id, true, vec![done.clone()])];

    let mut stale = call(order_id, &format!("{order_id}-c1"), 5);
    stale.started_at = Some(at(100));
    stale.answered_at = Some(at(105));
    stale.transcript = vec![line(1, "Hello"), line(2, "Hi")];
    let mut round2 = call(order_id, &format!("{order_id}-c0"), 10);
    round2.started_at = Some(at(50)); // an earlier round: the latest call by start time stays c1
    let poll = vec![facts(order_id, false, vec![stale, round2])];
    (callback, poll)
}

async fn callback_and_poll_converge_in_either_order(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..2).map(|n| new_order("conv", "t1", n)).collect();
    store.insert_planned_orders(&orders).await.unwrap();
    store
        .set_upload_state(&ids(&orders), UploadState::Sent, at(0))
        .await
        .unwrap();
    let (a, b) = (&orders[0].order_id, &orders[1].order_id);

    let (callback, poll) = convergence_facts(a);
    store
        .apply_order_facts(&callback, FactSource::Callback)
        .await
        .unwrap();
    store
        .apply_order_facts(&poll, FactSource::Poll)
        .await
        .unwrap();
    store
        .apply_order_facts(&callback, FactSource::Callback)
        .await
        .unwrap(); // a duplicate delivery

    let (callback, poll) = convergence_facts(b);
    store
        .apply_order_facts(&poll, FactSource::Poll)
        .await
        .unwrap();
    store
        .apply_order_facts(&callback, FactSource::Callback)
        .await
        .unwrap();
    store
        .apply_order_facts(&poll, FactSource::Poll)
        .await
        .unwrap(); // the stale poll again

    for id in [a, b] {
        let order = store.order(id).await.unwrap().unwrap();
        assert!(order.finished, "{id}: finished never goes back to false");
        assert_eq!(
            order.last_call_status,
            Some(6),
            "{id}: status of the latest call by start time"
        );
        let calls = store.calls_of_order(id).await.unwrap();
        assert_eq!(calls.len(), 2, "{id}: two rounds");
        assert_eq!(calls[0].call_status, 10);
        let c1 = &calls[1];
        assert_eq!(
            c1.call_status, 6,
            "{id}: a final status is not regressed by an in-flight one"
        );
        assert_eq!(c1.ended_at, Some(at(165)));
        assert_eq!(c1.duration_secs, Some(60));
        assert_eq!(c1.audio_url.as_deref(), Some("https://rec.example/1.mp3"));
        assert_eq!(c1.term_sip_code.as_deref(), Some("200"));
        assert_eq!(c1.agent, Some(serde_json::json!({ "agentName": "Ann" })));
        assert_eq!(c1.intents, vec![intent("interested", "hot")]);
        assert_eq!(c1.sms, vec![sms("sms-1", Some(1))]);
        let words: Vec<&str> = c1.transcript.iter().map(|l| l.word.as_str()).collect();
        assert_eq!(
            words,
            vec!["Hello", "Hi", "Bye"],
            "{id}: transcript not duplicated"
        );
        assert_eq!(c1.transcript[0], line(1, "Hello"));
    }
    let counts = store.order_counts("conv").await.unwrap();
    assert_eq!(
        (counts.dialled, counts.answered, counts.finished),
        (2, 2, 2)
    );
    assert!(
        store.orders_to_poll("t1", 10).await.unwrap().is_empty(),
        "finished orders are not polled"
    );
}

async fn facts_within_one_batch_converge(db: Db) {
    let store = db.open().await;
    store
        .insert_planned_orders(&[new_order("batch", "t1", 0)])
        .await
        .unwrap();
    let id = "batch-o000000";
    let (mut callback, poll) = convergence_facts(id);
    // The callback and the stale poll in one batch, final first: one statement must not touch a row twice.
    callback.extend(poll);
    store
        .apply_order_facts(&callback, FactSource::Poll)
        .await
        .unwrap();
    let calls = store.calls_of_order(id).await.unwrap();
    assert_eq!(
        calls.iter().map(|c| c.call_status).collect::<Vec<_>>(),
        vec![10, 6]
    );
    assert_eq!(calls[1].transcript.len(), 3);
    assert!(store.order(id).await.unwrap().unwrap().finished);
}

async fn concurrent_callbacks_and_polls_converge(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..20).map(|n| new_order("race", "t1", n)).collect();
    store.insert_planned_orders(&orders).await.unwrap();
    // Callbacks and stale polls for the same calls, written at the same time from several tasks.
    let mut writers = Vec::new();
    for round in 0..4 {
        for o in &orders {
            let (callback, poll) = convergence_facts(&o.order_id);
            let (batch, source) = if round % 2 == 0 {
                (callback, FactSource::Callback)
            } else {
                (poll, FactSource::Poll)
            };
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                store.apply_order_facts(&batch, source).await
            }));
        }
    }
    for w in writers {
        w.await.unwrap().unwrap();
    }
    for o in &orders {
        let calls = store.calls_of_order(&o.order_id).await.unwrap();
        assert_eq!(
            calls.iter().map(|c| c.call_status).collect::<Vec<_>>(),
            vec![10, 6],
            "{}",
            o.order_id
        );
        assert_eq!(calls[1].transcript.len(), 3);
        assert_eq!(calls[1].intents.len(), 1);
        let order = store.order(&o.order_id).await.unwrap().unwrap();
        assert!(order.finished);
        assert_eq!(order.last_call_status, Some(6));
    }
}

/// A batch as the webhook hands it over: per order, the final callback, a stale in-flight report of the same call
/// (a late delivery), and a task callback without facts; plus one unreadable body.
fn ingest_batch(order_ids: &[String]) -> Vec<CallbackIngest> {
    let record = |n: usize, kind: &str| CallbackRecord {
        kind: kind.into(),
        body: format!(r#"{{"callbackType":"{kind}","n":{n}}}"#),
        verified: true,
        received_at: at(n as i64),
        request_id: Some(format!("cb-{n}")),
    };
    let mut batch = Vec::new();
    for id in order_ids {
        let (callback, poll) = convergence_facts(id);
        for f in callback.into_iter().chain(poll) {
            batch.push(CallbackIngest {
                record: record(batch.len(), "call"),
                facts: Some(f),
            });
        }
        batch.push(CallbackIngest {
            record: record(batch.len(), "task"),
            facts: None,
        });
    }
    batch.push(CallbackIngest {
        record: CallbackRecord {
            body: "not json {".into(),
            kind: "unknown".into(),
            ..record(batch.len(), "unknown")
        },
        facts: None,
    });
    batch
}

/// What the store holds about an order, with the order's ID replaced by `ORDER` so two orders can be compared.
async fn order_view(store: &dyn Store, order_id: &str) -> String {
    let order = store.order(order_id).await.unwrap().unwrap();
    let calls = store.calls_of_order(order_id).await.unwrap();
    format!(
        "{:?} {:?} {:?}",
        order.finished, order.last_call_status, calls
    )
    .replace(order_id, "ORDER")
}

async fn ingested_batch_equals_facts_applied_one_by_one(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..6).map(|n| new_order("ingest", "t1", n)).collect();
    store.insert_planned_orders(&orders).await.unwrap();
    store
        .set_upload_state(&ids(&orders), UploadState::Sent, at(0))
        .await
        .unwrap();
    let all = ids(&orders);
    let (batched, single) = (all[..3].to_vec(), all[3..].to_vec());

    let batch = ingest_batch(&batched);
    store.ingest_callbacks(&batch).await.unwrap();
    for item in ingest_batch(&single) {
        if let Some(f) = item.facts {
            store
                .apply_order_facts(&[f], FactSource::Callback)
                .await
                .unwrap();
        }
    }

    let mut stored = store.recent_callbacks(1_000).await.unwrap();
    stored.reverse();
    let records: Vec<CallbackRecord> = batch.iter().map(|i| i.record.clone()).collect();
    assert_eq!(
        stored, records,
        "every raw record is stored, in order, byte for byte"
    );
    for (b, s) in batched.iter().zip(&single) {
        let view = order_view(store.as_ref(), b).await;
        assert_eq!(view, order_view(store.as_ref(), s).await, "{b} vs {s}");
        assert!(view.starts_with("true Some(6)"), "{view}");
    }
}

async fn a_refused_stale_report_leaves_the_calls_children(db: Db) {
    let store = db.open().await;
    store
        .insert_planned_orders(&[new_order("stale", "t1", 0)])
        .await
        .unwrap();
    let id = "stale-o000000";
    let (callback, _) = convergence_facts(id);
    let mut stale = call(id, &format!("{id}-c1"), 5);
    stale.intents = vec![intent("stale", "cold")];
    stale.sms = vec![sms("sms-stale", None)];
    stale.transcript = vec![line(1, "STALE"), line(9, "STALE")];
    let stale = vec![facts(id, false, vec![stale])];
    let ingest = |facts: &[OrderFacts]| -> Vec<CallbackIngest> {
        facts
            .iter()
            .map(|f| CallbackIngest {
                record: CallbackRecord {
                    kind: "call".into(),
                    body: "{}".into(),
                    verified: true,
                    received_at: at(1),
                    request_id: None,
                },
                facts: Some(f.clone()),
            })
            .collect()
    };
    store.ingest_callbacks(&ingest(&callback)).await.unwrap();
    let before = order_view(store.as_ref(), id).await;
    // The stale report, alone, through both write paths: the upsert refuses it, so its children are not written.
    store.ingest_callbacks(&ingest(&stale)).await.unwrap();
    store
        .apply_order_facts(&stale, FactSource::Poll)
        .await
        .unwrap();
    assert_eq!(order_view(store.as_ref(), id).await, before);
    let calls = store.calls_of_order(id).await.unwrap();
    assert_eq!(calls[0].intents, vec![intent("interested", "hot")]);
    assert_eq!(calls[0].transcript.len(), 3);
}

async fn ingesting_the_same_batch_twice_changes_no_fact(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..3).map(|n| new_order("twice", "t1", n)).collect();
    store.insert_planned_orders(&orders).await.unwrap();
    let batch = ingest_batch(&ids(&orders));
    store.ingest_callbacks(&batch).await.unwrap();
    let mut once = Vec::new();
    for o in &orders {
        once.push(order_view(store.as_ref(), &o.order_id).await);
    }
    store.ingest_callbacks(&batch).await.unwrap();
    for (o, before) in orders.iter().zip(&once) {
        assert_eq!(&order_view(store.as_ref(), &o.order_id).await, before);
    }
    // Each delivery is logged: the raw ledger holds both.
    assert_eq!(
        store.recent_callbacks(1_000).await.unwrap().len(),
        2 * batch.len()
    );
    store.ingest_callbacks(&[]).await.unwrap();
}

async fn ledger_keeps_every_action_and_callback(db: Db) {
    let store = db.open().await;
    let ok = ActionRecord {
        endpoint: "addBatchCall".into(),
        request_id: "req-1".into(),
        response_id: Some("resp-1".into()),
        ret_code: Some(0),
        message: Some("success".into()),
        http_status: Some(200),
        duration_ms: 84,
        at: at(1),
        outcome: "ok".into(),
        campaign_id: Some("spring".into()),
        user_task_id: Some("t1".into()),
    };
    let timeout = ActionRecord {
        endpoint: "mgrTaskStatus".into(),
        request_id: "req-2".into(),
        response_id: None,
        ret_code: None,
        message: Some("timed out".into()),
        http_status: None,
        duration_ms: 30_000,
        at: at(2),
        outcome: "ambiguous".into(),
        campaign_id: None,
        user_task_id: None,
    };
    store.record_action(&ok).await.unwrap();
    store.record_action(&timeout).await.unwrap();
    assert_eq!(
        store.recent_actions(10).await.unwrap(),
        vec![timeout.clone(), ok]
    );
    assert_eq!(store.recent_actions(1).await.unwrap(), vec![timeout]);

    let raw = r#"{"callbackType":"1","orderID":"o1", "finish":true}"#;
    let good = CallbackRecord {
        kind: "order".into(),
        body: raw.into(),
        verified: true,
        received_at: at(3),
        request_id: Some("cb-1".into()),
    };
    let bad = CallbackRecord {
        verified: false,
        request_id: None,
        received_at: at(4),
        ..good.clone()
    };
    let id1 = store.record_callback(&good).await.unwrap();
    let id2 = store.record_callback(&bad).await.unwrap();
    assert!(id2 > id1);
    let stored = store.recent_callbacks(10).await.unwrap();
    assert_eq!(stored, vec![bad, good]);
    assert_eq!(stored[1].body, raw, "the raw body is kept byte for byte");
}

async fn leases_refuse_a_second_owner_until_expiry(db: Db) {
    let store = db.open().await;
    let ttl = Duration::from_secs(30);
    assert!(
        store
            .try_acquire_lease("spring", "replica-a", at(0), ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_acquire_lease("spring", "replica-b", at(10), ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_lease("summer", "replica-b", at(10), ttl)
            .await
            .unwrap(),
        "leases are per campaign"
    );
    assert!(
        store
            .try_acquire_lease("spring", "replica-a", at(20), ttl)
            .await
            .unwrap(),
        "the owner renews"
    );
    assert!(
        !store
            .try_acquire_lease("spring", "replica-b", at(49), ttl)
            .await
            .unwrap(),
        "renewed until 50"
    );
    assert!(
        store
            .try_acquire_lease("spring", "replica-b", at(50), ttl)
            .await
            .unwrap(),
        "expired: taken over"
    );
    assert!(
        !store
            .try_acquire_lease("spring", "replica-a", at(51), ttl)
            .await
            .unwrap()
    );
    store.release_lease("spring", "replica-a").await.unwrap(); // not the owner: no effect
    assert!(
        !store
            .try_acquire_lease("spring", "replica-a", at(52), ttl)
            .await
            .unwrap()
    );
    store.release_lease("spring", "replica-b").await.unwrap();
    assert!(
        store
            .try_acquire_lease("spring", "replica-a", at(53), ttl)
            .await
            .unwrap()
    );
}

async fn batched_leases_and_campaigns_match_the_single_calls(db: Db) {
    let store = db.open().await;
    let ttl = Duration::from_secs(30);
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(
        store
            .try_acquire_lease("b", "replica-b", at(0), ttl)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .try_acquire_leases(&ids(&["a", "b", "c"]), "replica-a", at(1), ttl)
            .await
            .unwrap(),
        [true, false, true],
        "granted in the order asked; the other owner's unexpired lease is refused"
    );
    assert_eq!(
        store
            .try_acquire_leases(&ids(&["c", "b", "a"]), "replica-a", at(31), ttl)
            .await
            .unwrap(),
        [true, true, true],
        "renewed, and the expired one taken over"
    );
    assert!(
        !store
            .try_acquire_lease("a", "replica-b", at(60), ttl)
            .await
            .unwrap(),
        "the batch renewal holds until 61"
    );
    assert_eq!(
        store
            .try_acquire_leases(&[], "replica-a", at(62), ttl)
            .await
            .unwrap(),
        Vec::<bool>::new()
    );

    let record = |id: &str, state: &str| CampaignRecord {
        id: id.into(),
        generation: 1,
        source_file: format!("campaigns/{id}.toml"),
        content_hash: format!("hash-{id}"),
        spec: Some(serde_json::json!({ "id": id })),
        state: state.into(),
        last_error: None,
        updated_at: at(5),
    };
    store.upsert_campaign(&record("b", "active")).await.unwrap();
    store
        .upsert_campaigns(&[record("a", "active"), record("b", "done")])
        .await
        .unwrap();
    store.upsert_campaigns(&[]).await.unwrap();
    assert_eq!(
        store.campaigns().await.unwrap(),
        vec![record("a", "active"), record("b", "done")]
    );
    store
        .upsert_campaigns(&[record("c", "active"), record("c", "paused")])
        .await
        .unwrap();
    assert_eq!(
        store.campaigns().await.unwrap()[2],
        record("c", "paused"),
        "a campaign given twice keeps its last record"
    );

    // Batches larger than one statement's worth of rows: every lease is granted once, and refused to another owner.
    let many: Vec<String> = (0..2500).map(|i| format!("m{i:04}")).collect();
    let granted = store
        .try_acquire_leases(&many, "replica-a", at(100), ttl)
        .await
        .unwrap();
    assert_eq!(granted, vec![true; many.len()]);
    let mut mixed = many[..1200].to_vec();
    mixed.push("fresh".into());
    let granted = store
        .try_acquire_leases(&mixed, "replica-b", at(101), ttl)
        .await
        .unwrap();
    assert_eq!(granted.iter().filter(|g| **g).count(), 1);
    assert!(granted[1200], "only the campaign nobody held is granted");
    let records: Vec<CampaignRecord> = many.iter().map(|id| record(id, "active")).collect();
    store.upsert_campaigns(&records).await.unwrap();
    assert_eq!(store.campaigns().await.unwrap().len(), 3 + many.len());

    // Tasks and progress of several campaigns at once equal the single reads, in the order asked.
    let task = |ut: &str, campaign: &str, generation: i64| store::TaskRecord {
        user_task_id: ut.into(),
        campaign_id: campaign.into(),
        generation,
        task_index: 0,
        task_id: Some(format!("T-{ut}")),
        settings: Some(serde_json::json!({ "maxCall": 2 })),
        settings_sent_at: Some(at(1)),
        platform_status: Some(5),
        desired_status: None,
        updated_at: at(2),
    };
    for t in [
        task("a-2", "a", 2),
        task("a-1", "a", 1),
        task("c-1", "c", 1),
    ] {
        store.upsert_task(&t).await.unwrap();
    }
    let mut orders = vec![new_order("a", "a-2", 1), new_order("a", "a-2", 2)];
    orders.push(new_order("c", "c-1", 3));
    store.insert_planned_orders(&orders).await.unwrap();
    let many: Vec<String> = (0..1200).map(|i| format!("x{i}")).collect();
    let asked: Vec<String> = ids(&["c", "b", "a"]).into_iter().chain(many).collect();
    let mut single = Vec::new();
    for id in &asked {
        single.extend(store.tasks(id).await.unwrap());
    }
    let batched = store.tasks_of(&asked).await.unwrap();
    let key = |t: &store::TaskRecord| (t.campaign_id.clone(), t.generation);
    let mut sorted = single.clone();
    sorted.sort_by_key(key);
    assert_eq!(batched, sorted, "by campaign, then generation");
    assert_eq!(batched.len(), 3);
    let uts: Vec<String> = ids(&["c-1", "nobody", "a-2", "a-1"]);
    let mut progress = Vec::new();
    for ut in &uts {
        progress.push(store.order_progress(ut).await.unwrap());
    }
    assert_eq!(store.order_progress_of(&uts).await.unwrap(), progress);
    assert_eq!(progress[2].planned, 2);
    assert_eq!(progress[1].total, 0);
}

/// A known data set; the figures below are worked out by hand in the comments.
async fn seed_report_data(store: &dyn Store) {
    let alpha: Vec<NewOrder> = (0..5).map(|n| new_order("alpha", "ta", n)).collect();
    let gamma: Vec<NewOrder> = (0..10).map(|n| new_order("gamma", "tg", n)).collect();
    let beta = vec![new_order("beta", "tb", 0)];
    for batch in [&alpha, &gamma, &beta] {
        store.insert_planned_orders(batch).await.unwrap();
        store
            .set_upload_state(&ids(batch), UploadState::Sent, at(0))
            .await
            .unwrap();
    }
    let o = |n: usize| alpha[n].order_id.clone();
    let timed = |order: &str, id: &str, status: i64, start: DateTime<Utc>, talk: Option<i64>| {
        let mut c = call(order, id, status);
        c.started_at = Some(start);
        if status == 6 {
            c.answered_at = Some(start + chrono::Duration::seconds(5));
            c.duration_secs = talk;
        }
        c
    };
    let d1 = |h: u32| utc(2026, 3, 2, h, 0, 0);
    let d2 = |h: u32| utc(2026, 3, 3, h, 0, 0);

    // Day 1 (2026-03-02), alpha: 4 calls, 3 answered (30 s, 10 s, 50 s), o0 and o1 finished.
    let mut c1 = timed(&o(0), "a-c1", 6, d1(9), Some(30));
    c1.intents = vec![intent("interested", "hot")];
    c1.sms = vec![sms("s1", None)];
    let mut c2 = timed(&o(1), "a-c2", 6, d1(10), Some(10));
    c2.intents = vec![intent("interested", "hot"), intent("call back", "later")];
    let c3 = timed(&o(2), "a-c3", 10, d1(11), None);
    // Answered at 23:59:35, ended 50 s later on day 2: still day 1 (the day of the start); talk from the times.
    let mut c4 = timed(&o(3), "a-c4", 6, utc(2026, 3, 2, 23, 59, 30), None);
    c4.ended_at = Some(utc(2026, 3, 3, 0, 0, 25));
    c4.sms = vec![sms("s2", Some(3)), sms("s3", Some(0))]; // failed and not sent: not counted
    // Day 2 (2026-03-03), alpha: o2 called again and answered (20 s); o4 no response. Both finished.
    let mut c5 = timed(&o(2), "a-c5", 6, d2(9), Some(20));
    c5.intents = vec![intent("", "later")]; // no name: the tag names it
    c5.sms = vec![sms("s4", Some(2))];
    let c6 = timed(&o(4), "a-c6", 23, d2(10), None);
    // A call not started yet is not in the reports.
    let c7 = call(&o(4), "a-c7", 1);
    store
        .apply_order_facts(
            &[
                facts(&o(0), true, vec![c1]),
                facts(&o(1), true, vec![c2]),
                facts(&o(2), false, vec![c3]),
                facts(&o(3), false, vec![c4]),
            ],
            FactSource::Poll,
        )
        .await
        .unwrap();
    store
        .apply_order_facts(
            &[
                facts(&o(2), true, vec![c5]),
                facts(&o(4), true, vec![c6, c7]),
            ],
            FactSource::Callback,
        )
        .await
        .unwrap();

    // gamma, day 1: ten answered calls talking 1..=10 s: mean 5.5, p90 (nearest rank) 9.
    let g: Vec<OrderFacts> = gamma
        .iter()
        .enumerate()
        .map(|(i, order)| {
            facts(
                &order.order_id,
                true,
                vec![timed(
                    &order.order_id,
                    &format!("g-c{i}"),
                    6,
                    d1(12),
                    Some(i as i64 + 1),
                )],
            )
        })
        .collect();
    store.apply_order_facts(&g, FactSource::Poll).await.unwrap();

    // beta, day 1: one invalid number.
    let b = &beta[0].order_id;
    store
        .apply_order_facts(
            &[facts(b, true, vec![timed(b, "b-c1", 8, d1(8), None)])],
            FactSource::Poll,
        )
        .await
        .unwrap();
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

async fn report_figures_match_a_known_data_set(db: Db) {
    let store = db.open().await;
    seed_report_data(store.as_ref()).await;

    let report = store.report(&ReportFilter::default()).await.unwrap();
    let keys: Vec<(&str, NaiveDate)> = report
        .daily
        .iter()
        .map(|r| (r.campaign_id.as_str(), r.day))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("alpha", day(2)),
            ("alpha", day(3)),
            ("beta", day(2)),
            ("gamma", day(2))
        ]
    );

    let totals: Vec<&str> = report
        .totals
        .iter()
        .map(|t| t.campaign_id.as_str())
        .collect();
    assert_eq!(totals, vec!["alpha", "beta", "gamma"]);
    let tot = &report.totals[0];
    // alpha over both days: 6 started calls (the unstarted one left out), 4 answered (10, 20, 30, 50 s).
    assert_eq!(
        (
            tot.orders_total,
            tot.orders_dialled,
            tot.orders_answered,
            tot.orders_finished,
            tot.calls,
            tot.calls_answered
        ),
        (5, 5, 4, 4, 6, 4)
    );
    assert_eq!(tot.answer_rate, Some(4.0 / 6.0));
    assert_eq!(tot.finish_rate, Some(0.8));
    assert_eq!(tot.avg_talk_secs, Some(27.5));
    assert_eq!(tot.p90_talk_secs, Some(50));
    assert_eq!(tot.sms_sent, 2);
    assert_eq!(tot.first_call_at, Some(utc(2026, 3, 2, 9, 0, 0)));
    assert_eq!(tot.last_call_at, Some(utc(2026, 3, 3, 10, 0, 0)));
    assert_eq!(report.totals[2].p90_talk_secs, Some(9));

    let a1 = &report.daily[0];
    assert_eq!(
        (
            a1.orders_total,
            a1.orders_dialled,
            a1.orders_answered,
            a1.orders_finished,
            a1.calls,
            a1.calls_answered
        ),
        (5, 4, 3, 2, 4, 3)
    );
    assert_eq!(a1.answer_rate, Some(0.75));
    assert_eq!(a1.finish_rate, Some(0.4));
    assert_eq!(a1.avg_talk_secs, Some(30.0));
    assert_eq!(a1.p90_talk_secs, Some(50));
    assert_eq!(a1.sms_sent, 1);

    let a2 = &report.daily[1];
    assert_eq!(
        (
            a2.orders_total,
            a2.orders_dialled,
            a2.orders_answered,
            a2.orders_finished,
            a2.calls,
            a2.calls_answered
        ),
        (5, 2, 1, 2, 2, 1)
    );
    assert_eq!(a2.answer_rate, Some(0.5));
    assert_eq!(a2.finish_rate, Some(0.4));
    assert_eq!(a2.avg_talk_secs, Some(20.0));
    assert_eq!(a2.p90_talk_secs, Some(20));
    assert_eq!(a2.sms_sent, 1);

    let b1 = &report.daily[2];
    assert_eq!((b1.calls, b1.calls_answered, b1.orders_finished), (1, 0, 1));
    assert_eq!(b1.answer_rate, Some(0.0));
    assert_eq!(b1.finish_rate, Some(1.0));
    assert_eq!((b1.avg_talk_secs, b1.p90_talk_secs), (None, None));

    let g1 = &report.daily[3];
    assert_eq!((g1.orders_total, g1.calls_answered), (10, 10));
    assert_eq!(g1.avg_talk_secs, Some(5.5));
    assert_eq!(g1.p90_talk_secs, Some(9));

    let status: Vec<(&str, NaiveDate, i64, &str, i64)> = report
        .call_status
        .iter()
        .filter(|r| r.campaign_id == "alpha")
        .map(|r| {
            (
                r.campaign_id.as_str(),
                r.day,
                r.call_status,
                r.status_name.as_str(),
                r.calls,
            )
        })
        .collect();
    assert_eq!(
        status,
        vec![
            ("alpha", day(2), 6, "completed (answered)", 3),
            ("alpha", day(2), 10, "busy", 1),
            ("alpha", day(3), 6, "completed (answered)", 1),
            ("alpha", day(3), 23, "no response", 1),
        ]
    );

    let intents: Vec<(&str, NaiveDate, &str, i64)> = report
        .intents
        .iter()
        .map(|r| (r.campaign_id.as_str(), r.day, r.intent.as_str(), r.calls))
        .collect();
    assert_eq!(
        intents,
        vec![
            ("alpha", day(2), "interested", 2),
            ("alpha", day(2), "call back", 1),
            ("alpha", day(3), "later", 1)
        ]
    );

    // Filters: one campaign, from a day on.
    let filtered = store
        .report(&ReportFilter {
            campaign: Some("alpha".into()),
            since: Some(day(3)),
        })
        .await
        .unwrap();
    assert_eq!(filtered.daily, vec![a2.clone()]);
    assert_eq!(
        filtered.totals,
        vec![report.totals[0].clone()],
        "totals cover all days"
    );
    assert_eq!(filtered.call_status.len(), 2);
    assert_eq!(filtered.intents.len(), 1);
    assert!(
        store
            .report(&ReportFilter {
                campaign: Some("nope".into()),
                since: None
            })
            .await
            .unwrap()
            .daily
            .is_empty()
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Db::Sqlite(testkit::sqlite_database())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Db::Postgres(testkit::postgres_database().await)).await;
                }
            )*
        }
    };
}

conformance!(
    migrations_apply_twice_idempotently,
    tasks_upsert_by_user_task_id,
    bulk_planned_insert_is_idempotent,
    upload_state_moves_only_forward,
    polls_oldest_checked_first,
    callback_and_poll_converge_in_either_order,
    facts_within_one_batch_converge,
    concurrent_callbacks_and_polls_converge,
    ingested_batch_equals_facts_applied_one_by_one,
    ingesting_the_same_batch_twice_changes_no_fact,
    a_refused_stale_report_leaves_the_calls_children,
    ledger_keeps_every_action_and_callback,
    leases_refuse_a_second_owner_until_expiry,
    batched_leases_and_campaigns_match_the_single_calls,
    report_figures_match_a_known_data_set,
);
