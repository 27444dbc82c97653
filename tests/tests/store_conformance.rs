//! One conformance suite for the store, run against both backends: every case is a function taking a [`Db`]
//! (a fresh database it can open, and reopen), and the macro at the bottom instantiates it as
//! `sqlite::<case>` and `postgres::<case>`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use store::{
    ActionRecord, CallFacts, CallbackIngest, CallbackRecord, CampaignRecord, Cap, FactSource, Held,
    Ingested, IntentFact, LeaseRecord, NewOrder, OptOutCall, OrderCounts, OrderFacts, OrderRecord,
    ReportFilter, SmsFact, SourceSync, StopState, Store, StoreError, Suppression,
    SuppressionFilter, TaskKey, TaskRecord, TaskStatusFact, TranscriptLine, UploadState,
    opt_out_source, suppressed_reason,
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

    fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Text as this backend stores it: PostgreSQL replaces NUL by U+FFFD, SQLite keeps it.
    fn stored(&self, text: &str) -> String {
        if self.is_postgres() {
            text.replace('\0', "\u{FFFD}")
        } else {
            text.to_owned()
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
        attempt: 1,
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

/// One campaign's lease, through the batch call (the store has no single-lease method).
trait LeaseOne {
    async fn lease(
        &self,
        campaign_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
}

impl<S: Store + ?Sized> LeaseOne for S {
    async fn lease(
        &self,
        campaign_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let granted = self
            .try_acquire_leases(&[campaign_id.to_owned()], owner, now, ttl)
            .await?;
        Ok(granted == [true])
    }
}

fn task_key(ut: &str) -> TaskKey {
    TaskKey {
        user_task_id: ut.into(),
        campaign_id: "spring".into(),
        generation: 1,
        task_index: 0,
    }
}

/// The stored row of one task of the campaign `spring`.
async fn task(store: &dyn Store, ut: &str) -> Option<TaskRecord> {
    store
        .tasks("spring")
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.user_task_id == ut)
}

/// A task callback as the webhook hands it over (verified, its own requestID), carrying a status.
fn task_callback(request_id: &str, ut: &str, status: i64, task_id: Option<&str>) -> CallbackIngest {
    CallbackIngest {
        record: CallbackRecord {
            kind: "task".into(),
            body: format!(r#"{{"callbackType":"task","userTaskID":"{ut}","taskStatus":{status}}}"#),
            verified: true,
            received_at: at(status * 10),
            request_id: Some(request_id.into()),
        },
        facts: None,
        task_status: Some(TaskStatusFact {
            user_task_id: ut.into(),
            status,
            task_id: task_id.map(str::to_owned),
        }),
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
    first
        .upsert_campaigns(std::slice::from_ref(&campaign))
        .await
        .unwrap();
    assert_eq!(
        first
            .insert_planned_orders(&[new_order("spring", "t1", 1)], at(0))
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
    second
        .upsert_campaigns(std::slice::from_ref(&updated))
        .await
        .unwrap();
    assert_eq!(first.campaigns().await.unwrap(), vec![updated]);
}

async fn narrow_task_writes_touch_only_their_fields(db: Db) {
    let store = db.open().await;
    let ut = "spring-g1-0";
    let first = serde_json::json!({ "dialAtWeekDay": "1,2,3" });
    // Updates only: a task never created stays missing.
    assert!(
        !store
            .task_status_observed(ut, 2, Some("T-1"), at(1))
            .await
            .unwrap()
    );
    store.task_settings_sent(ut, &first, at(1)).await.unwrap();
    store.task_settings_forgotten(ut, at(1)).await.unwrap();
    store.task_not_created(ut, at(1)).await.unwrap();
    assert_eq!(task(store.as_ref(), ut).await, None);

    // The intent to create inserts the row, in doubt: settings recorded, no status, no platform ID.
    store
        .task_create_intent(&task_key(ut), &first, at(5))
        .await
        .unwrap();
    let created = TaskRecord {
        user_task_id: ut.into(),
        campaign_id: "spring".into(),
        generation: 1,
        task_index: 0,
        task_id: None,
        settings: Some(first.clone()),
        settings_sent_at: Some(at(5)),
        platform_status: None,
        updated_at: at(5),
        status_in_doubt_since: None,
    };
    assert_eq!(task(store.as_ref(), ut).await.unwrap(), created);

    // A status with the platform's ID, then one without: the ID is kept.
    assert!(
        store
            .task_status_observed(ut, 1, Some("T-991"), at(6))
            .await
            .unwrap()
    );
    assert!(
        store
            .task_status_observed(ut, 2, None, at(7))
            .await
            .unwrap()
    );
    let running = TaskRecord {
        task_id: Some("T-991".into()),
        platform_status: Some(2),
        updated_at: at(7),
        ..created.clone()
    };
    assert_eq!(task(store.as_ref(), ut).await.unwrap(), running);

    // A pause about to be sent: only the mark (and the time) change, until a status is observed, which clears it.
    store.task_toggle_intent(ut, at(7)).await.unwrap();
    assert_eq!(
        task(store.as_ref(), ut).await.unwrap(),
        TaskRecord {
            status_in_doubt_since: Some(at(7)),
            ..running.clone()
        }
    );
    assert!(
        store
            .task_status_observed(ut, 2, None, at(7))
            .await
            .unwrap()
    );
    assert_eq!(task(store.as_ref(), ut).await.unwrap(), running);

    // Settings sent: only they and their time change.
    let second = serde_json::json!({ "dialAtWeekDay": "4,5" });
    store.task_settings_sent(ut, &second, at(8)).await.unwrap();
    let updated = TaskRecord {
        settings: Some(second.clone()),
        settings_sent_at: Some(at(8)),
        updated_at: at(8),
        ..running
    };
    assert_eq!(task(store.as_ref(), ut).await.unwrap(), updated);

    // Forgotten: the JSON value null (send again), not SQL NULL (never sent); when they were sent is kept.
    store.task_settings_forgotten(ut, at(9)).await.unwrap();
    let forgotten = task(store.as_ref(), ut).await.unwrap();
    assert_eq!(forgotten.settings, Some(serde_json::Value::Null));
    assert_eq!(
        forgotten,
        TaskRecord {
            settings: Some(serde_json::Value::Null),
            updated_at: at(9),
            ..updated
        }
    );

    // A second intent to create (the first is known not to have applied) puts the task in doubt again, and drops a
    // toggle's mark (a task about to be created has no status to doubt).
    store.task_toggle_intent(ut, at(10)).await.unwrap();
    store
        .task_create_intent(&task_key(ut), &first, at(10))
        .await
        .unwrap();
    assert_eq!(
        task(store.as_ref(), ut).await.unwrap(),
        TaskRecord {
            settings_sent_at: Some(at(10)),
            updated_at: at(10),
            ..created.clone()
        }
    );

    // Not created: settings, their time and the status cleared (SQL NULL).
    store.task_not_created(ut, at(11)).await.unwrap();
    let cleared = task(store.as_ref(), ut).await.unwrap();
    assert_eq!(
        (
            &cleared.settings,
            cleared.settings_sent_at,
            cleared.platform_status,
            cleared.updated_at
        ),
        (&None, None, None, at(11))
    );
    assert!(store.tasks("other").await.unwrap().is_empty());
}

async fn a_terminal_task_status_is_never_replaced(db: Db) {
    let store = db.open().await;
    let settings = serde_json::json!({ "maxCall": 1 });
    // (terminal, what comes after it): an older running status, a pause, the other terminal one, the same again.
    for (n, (terminal, later)) in [(3, 2), (3, 5), (3, 4), (4, 3), (4, 1), (4, 4)]
        .into_iter()
        .enumerate()
    {
        let ut = format!("spring-g1-{n}");
        store
            .task_create_intent(&task_key(&ut), &settings, at(0))
            .await
            .unwrap();
        assert!(
            store
                .task_status_observed(&ut, 2, Some("T-1"), at(1))
                .await
                .unwrap()
        );
        assert!(
            store
                .task_status_observed(&ut, terminal, None, at(2))
                .await
                .unwrap(),
            "a running task ends"
        );
        let ended = task(store.as_ref(), &ut).await.unwrap();
        assert_eq!(ended.platform_status, Some(terminal));

        assert!(
            !store
                .task_status_observed(&ut, later, Some("T-2"), at(3))
                .await
                .unwrap(),
            "{terminal} then {later}: refused"
        );
        store
            .task_create_intent(&task_key(&ut), &serde_json::json!({}), at(4))
            .await
            .unwrap();
        store.task_not_created(&ut, at(5)).await.unwrap();
        store.task_toggle_intent(&ut, at(5)).await.unwrap();
        assert_eq!(
            task(store.as_ref(), &ut).await.unwrap(),
            ended,
            "{terminal}: nothing changes a task that ended"
        );
    }
}

async fn a_terminal_task_status_from_callbacks_is_never_replaced(db: Db) {
    let store = db.open().await;
    let settings = serde_json::json!({ "maxCall": 1 });
    for ut in ["t-a", "t-b", "t-c"] {
        store
            .task_create_intent(&task_key(ut), &settings, at(0))
            .await
            .unwrap();
    }
    let status = |tasks: Vec<TaskRecord>, ut: &str| {
        tasks
            .iter()
            .find(|t| t.user_task_id == ut)
            .map(|t| (t.platform_status, t.task_id.clone()))
    };
    // Within one batch: t-a ends (4), then a late "running" for it; t-b completes (3). A task never created is
    // not created by its callback.
    let batch = [
        task_callback("r1", "t-a", 2, Some("P-a")),
        task_callback("r2", "t-a", 4, None),
        task_callback("r3", "t-a", 2, Some("P-late")),
        task_callback("r4", "t-b", 3, Some("P-b")),
        task_callback("r5", "t-missing", 4, None),
    ];
    assert_eq!(
        store.ingest_callbacks(&batch).await.unwrap(),
        vec![Ingested::Stored; 5]
    );
    let tasks = store.tasks("spring").await.unwrap();
    assert_eq!(
        status(tasks.clone(), "t-a"),
        Some((Some(4), Some("P-a".into())))
    );
    assert_eq!(
        status(tasks.clone(), "t-b"),
        Some((Some(3), Some("P-b".into())))
    );
    assert_eq!(tasks.len(), 3, "no row for the task never created");

    // In a later batch: the other terminal status and a pause are refused; t-c takes its first status.
    store
        .ingest_callbacks(&[
            task_callback("r6", "t-a", 3, None),
            task_callback("r7", "t-b", 5, Some("P-x")),
            task_callback("r8", "t-c", 2, Some("P-c")),
        ])
        .await
        .unwrap();
    let tasks = store.tasks("spring").await.unwrap();
    assert_eq!(
        status(tasks.clone(), "t-a"),
        Some((Some(4), Some("P-a".into())))
    );
    assert_eq!(
        status(tasks.clone(), "t-b"),
        Some((Some(3), Some("P-b".into())))
    );
    assert_eq!(status(tasks, "t-c"), Some((Some(2), Some("P-c".into()))));

    // A poll says t-c ended; its late "running" callback does not bring it back.
    assert!(
        store
            .task_status_observed("t-c", 3, None, at(50))
            .await
            .unwrap()
    );
    store
        .ingest_callbacks(&[task_callback("r9", "t-c", 2, None)])
        .await
        .unwrap();
    let tasks = store.tasks("spring").await.unwrap();
    assert_eq!(status(tasks, "t-c"), Some((Some(3), Some("P-c".into()))));
}

async fn zone_groups_are_kept_once_per_task_and_never_forgotten(db: Db) {
    let store = db.open().await;
    assert!(store.zone_groups("t1").await.unwrap().is_empty());
    let (ny, la) = (
        r#"{"zones":["America/New_York"]}"#,
        r#"{"zones":["America/Los_Angeles"]}"#,
    );
    let pair = |t: &str, g: &str| (t.to_string(), g.to_string());
    let planned = |n| [new_order("c", "t1", n)];
    store
        .insert_planned_orders_in_groups(&planned(10), &[pair("t1", ny)], at(0))
        .await
        .unwrap();
    store
        .insert_planned_orders_in_groups(&planned(11), &[pair("t1", la), pair("t1", ny)], at(0))
        .await
        .unwrap();
    // Recorded with the orders even when every order is already stored.
    store
        .insert_planned_orders_in_groups(&planned(11), &[pair("t2", la)], at(0))
        .await
        .unwrap();
    assert_eq!(store.order_counts("c").await.unwrap().total, 2);
    assert_eq!(store.zone_groups("t1").await.unwrap(), vec![la, ny]);
    assert_eq!(store.zone_groups("t2").await.unwrap(), vec![la]);

    // A contact planned again in another group: its stored order's task gets the group; unknown orders are skipped.
    let orders = [new_order("c", "t3", 1), new_order("c", "t4", 2)];
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    let chicago = r#"{"zones":["America/Chicago"]}"#;
    store
        .record_zone_groups_of_orders(&[
            (orders[0].order_id.clone(), chicago.into()),
            (orders[0].order_id.clone(), chicago.into()),
            (orders[1].order_id.clone(), ny.into()),
            ("no-such-order".into(), la.into()),
        ])
        .await
        .unwrap();
    store.record_zone_groups_of_orders(&[]).await.unwrap();
    assert_eq!(store.zone_groups("t3").await.unwrap(), vec![chicago]);
    assert_eq!(store.zone_groups("t4").await.unwrap(), vec![ny]);
    let of = store
        .zone_groups_of(&["t4".into(), "t1".into(), "none".into()])
        .await
        .unwrap();
    let pair = |t: &str, g: &str| (t.to_string(), g.to_string());
    assert_eq!(of, vec![pair("t1", la), pair("t1", ny), pair("t4", ny)]);
}

async fn the_planned_contacts_version_is_kept_per_task_and_replaced(db: Db) {
    let store = db.open().await;
    let tasks = |ids: &[&str]| ids.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    assert!(
        store
            .contacts_planned_of(&tasks(&["t1"]))
            .await
            .unwrap()
            .is_empty()
    );
    let row = |t: &str, v: &str, n: u64| (t.to_string(), v.to_string(), n);
    store.record_contacts_planned(&[], at(0)).await.unwrap();
    // A task given twice in one call keeps its last row.
    store
        .record_contacts_planned(
            &[row("t1", "v0", 1), row("t2", "v1", 0), row("t1", "v1", 3)],
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(
        store.contacts_planned_of(&tasks(&["t1"])).await.unwrap(),
        vec![row("t1", "v1", 3)]
    );
    // A newer version replaces the task's record; another task's stays.
    store
        .record_contacts_planned(&[row("t1", "v2", 5)], at(10))
        .await
        .unwrap();
    assert_eq!(
        store
            .contacts_planned_of(&tasks(&["t2", "none", "t1"]))
            .await
            .unwrap(),
        vec![row("t1", "v2", 5), row("t2", "v1", 0)]
    );
    assert!(store.contacts_planned_of(&[]).await.unwrap().is_empty());
}

async fn bulk_planned_insert_is_idempotent(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..20_000).map(|n| new_order("bulk", "t1", n)).collect();
    assert_eq!(
        store.insert_planned_orders(&orders, at(0)).await.unwrap(),
        20_000
    );
    assert_eq!(
        store.insert_planned_orders(&orders, at(0)).await.unwrap(),
        0,
        "a second insert adds nothing"
    );

    // Same phone under a new order ID in the same task: skipped (never dial a contact twice).
    let mut again = new_order("bulk", "t1", 7);
    again.order_id = "bulk-other-id".into();
    assert_eq!(
        store.insert_planned_orders(&[again], at(0)).await.unwrap(),
        0
    );
    assert!(store.order("bulk-other-id").await.unwrap().is_none());
    // The same phone in the campaign's next generation (a new task) is a new order: the user asked for a re-run.
    let mut rerun = new_order("bulk", "t2", 7);
    rerun.order_id = "bulk-gen2-o7".into();
    assert_eq!(
        store.insert_planned_orders(&[rerun], at(0)).await.unwrap(),
        1
    );
    assert!(store.order("bulk-gen2-o7").await.unwrap().is_some());
    // The same phone in another campaign is another order.
    assert_eq!(
        store
            .insert_planned_orders(&[new_order("other", "t9", 7)], at(0))
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
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
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
    // Settling rejects from planned or sending only; nothing is claimed.
    assert!(
        store
            .settle_and_claim(&[], &rejected, "t1", 0, at(14), &[])
            .await
            .unwrap()
            .is_empty()
    );
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
    let mut orders: Vec<NewOrder> = (0..7).map(|n| new_order("poll", "t1", n)).collect();
    // Upload order is not ID order: all[3] comes from the file's last line.
    orders[3].source_line = 100;
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
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
        all[4].clone(),
        all[3].clone(),
        all[1].clone(),
        all[2].clone(),
        all[0].clone(),
    ];
    assert_eq!(
        next, expected,
        "never polled first (in upload order), then least recently polled"
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

/// A poll chunk recorded in one call ([`Store::record_poll`]) leaves the store as the facts applied and then the
/// chunk marked polled, in two calls: the same calls, flags and poll marks; an order asked for but not reported is
/// marked too; a stale poll after a callback changes nothing; a finished order leaves the poll set.
async fn a_poll_chunk_recorded_at_once_equals_facts_then_marks(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..8).map(|n| new_order("rp", "t1", n)).collect();
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    let all = ids(&orders);
    store
        .set_upload_state(&all, UploadState::Sent, at(0))
        .await
        .unwrap();
    // Two halves, each written by one path: orders 0..4 by two calls, 4..8 by record_poll.
    let (two, one) = (&all[..4], &all[4..]);
    // Order 0 of each half: a callback first, then the stale poll; order 1: the poll only; order 2: nothing
    // reported; order 3: an in-flight call, not finished.
    for half in [two, one] {
        let (callback, _) = convergence_facts(&half[0]);
        store
            .apply_order_facts(&callback, FactSource::Callback)
            .await
            .unwrap();
    }
    let chunk_facts = |half: &[String]| -> Vec<OrderFacts> {
        let (_, stale) = convergence_facts(&half[0]);
        let (mut done, _) = convergence_facts(&half[1]);
        let mut v = stale;
        v.append(&mut done);
        let mut ringing = call(&half[3], &format!("{}-c1", half[3]), 4);
        ringing.started_at = Some(at(200));
        ringing.transcript = vec![line(1, "Hello")];
        v.push(facts(&half[3], false, vec![ringing]));
        v
    };
    store
        .apply_order_facts(&chunk_facts(two), FactSource::Poll)
        .await
        .unwrap();
    store.mark_polled(two, at(300)).await.unwrap();
    store
        .record_poll(&chunk_facts(one), one, at(300))
        .await
        .unwrap();
    for (a, b) in two.iter().zip(one) {
        let (va, vb) = (
            order_view(store.as_ref(), a).await,
            order_view(store.as_ref(), b).await,
        );
        assert_eq!(va, vb, "{a} (two calls) vs {b} (record_poll)");
        let (oa, ob) = (
            store.order(a).await.unwrap().unwrap(),
            store.order(b).await.unwrap().unwrap(),
        );
        assert_eq!(oa.last_polled_at, Some(at(300)), "{a}");
        assert_eq!(ob.last_polled_at, Some(at(300)), "{b}");
        assert_eq!(
            (oa.finished, oa.last_call_status),
            (ob.finished, ob.last_call_status)
        );
    }
    assert!(
        order_view(store.as_ref(), &one[0])
            .await
            .starts_with("true Some(6)")
    );
    assert_eq!(store.calls_of_order(&one[2]).await.unwrap(), vec![]);
    // Left to poll: the unreported and the in-flight orders of each half, least recently polled first.
    let mut left = store.orders_to_poll("t1", 10).await.unwrap();
    left.sort();
    assert_eq!(
        left,
        vec![
            two[2].clone(),
            two[3].clone(),
            one[2].clone(),
            one[3].clone()
        ]
    );
    // A later chunk: the in-flight call ends, the order finishes; the unreported one is marked again.
    let mut ended = call(&one[3], &format!("{}-c1", one[3]), 10);
    ended.started_at = Some(at(200));
    ended.transcript = vec![line(2, "Bye")];
    store
        .record_poll(&[facts(&one[3], true, vec![ended])], &one[2..], at(400))
        .await
        .unwrap();
    let calls = store.calls_of_order(&one[3]).await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].call_status, 10);
    assert_eq!(
        calls[0].transcript,
        vec![line(1, "Hello"), line(2, "Bye")],
        "a later report adds lines, keeps the earlier ones"
    );
    // A callback restating line 2 and adding line 5 (out of order): line 2 replaced, the others kept, by index.
    let mut restated = call(&one[3], &format!("{}-c1", one[3]), 10);
    restated.started_at = Some(at(200));
    restated.transcript = vec![line(5, "Later"), line(2, "Bye!")];
    store
        .apply_order_facts(
            &[facts(&one[3], true, vec![restated])],
            FactSource::Callback,
        )
        .await
        .unwrap();
    assert_eq!(
        store.calls_of_order(&one[3]).await.unwrap()[0].transcript,
        vec![line(1, "Hello"), line(2, "Bye!"), line(5, "Later")],
        "merged by record index"
    );
    assert_eq!(
        store.order(&one[2]).await.unwrap().unwrap().last_polled_at,
        Some(at(400))
    );
    assert_eq!(
        store.orders_to_poll("t1", 10).await.unwrap(),
        vec![two[2].clone(), two[3].clone(), one[2].clone()],
        "the finished order left the poll set; the others by last poll"
    );
    // Nothing reported and nothing asked: nothing to do.
    store.record_poll(&[], &[], at(500)).await.unwrap();
    let counts = store.order_counts("rp").await.unwrap();
    assert_eq!(
        (counts.dialled, counts.answered, counts.finished),
        (6, 4, 5)
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
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
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
        .insert_planned_orders(&[new_order("batch", "t1", 0)], at(0))
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
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
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
                task_status: None,
            });
        }
        batch.push(CallbackIngest::raw(record(batch.len(), "task")));
    }
    batch.push(CallbackIngest::raw(CallbackRecord {
        body: "not json {".into(),
        kind: "unknown".into(),
        ..record(batch.len(), "unknown")
    }));
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
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    store
        .set_upload_state(&ids(&orders), UploadState::Sent, at(0))
        .await
        .unwrap();
    let all = ids(&orders);
    let (batched, single) = (all[..3].to_vec(), all[3..].to_vec());

    let batch = ingest_batch(&batched);
    assert_eq!(
        store.ingest_callbacks(&batch).await.unwrap(),
        vec![Ingested::Stored; batch.len()]
    );
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
        .insert_planned_orders(&[new_order("stale", "t1", 0)], at(0))
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
                task_status: None,
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

async fn a_replayed_batch_is_stored_once_and_changes_no_fact(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..3).map(|n| new_order("twice", "t1", n)).collect();
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    let batch = ingest_batch(&ids(&orders));
    store.ingest_callbacks(&batch).await.unwrap();
    let mut once = Vec::new();
    for o in &orders {
        once.push(order_view(store.as_ref(), &o.order_id).await);
    }
    // Every callback of the batch is verified and has a requestID: the second delivery is all repeats.
    assert_eq!(
        store.ingest_callbacks(&batch).await.unwrap(),
        vec![Ingested::Repeat; batch.len()]
    );
    for (o, before) in orders.iter().zip(&once) {
        assert_eq!(&order_view(store.as_ref(), &o.order_id).await, before);
    }
    assert_eq!(
        store.recent_callbacks(1_000).await.unwrap().len(),
        batch.len(),
        "a replay is not stored again"
    );
    assert!(store.ingest_callbacks(&[]).await.unwrap().is_empty());
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
    store
        .record_actions(&[ok.clone(), timeout.clone()])
        .await
        .unwrap();
    store.record_actions(&[]).await.unwrap();
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
    store
        .ingest_callbacks(&[CallbackIngest::raw(good.clone())])
        .await
        .unwrap();
    store
        .ingest_callbacks(&[CallbackIngest::raw(bad.clone())])
        .await
        .unwrap();
    let stored = store.recent_callbacks(10).await.unwrap();
    assert_eq!(stored, vec![bad, good]);
    assert_eq!(stored[1].body, raw, "the raw body is kept byte for byte");
}

async fn leases_refuse_a_second_owner_until_expiry(db: Db) {
    let store = db.open().await;
    let ttl = Duration::from_secs(30);
    assert!(
        store
            .lease("spring", "replica-a", at(0), ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .lease("spring", "replica-b", at(10), ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .lease("summer", "replica-b", at(10), ttl)
            .await
            .unwrap(),
        "leases are per campaign"
    );
    assert!(
        store
            .lease("spring", "replica-a", at(20), ttl)
            .await
            .unwrap(),
        "the owner renews"
    );
    assert!(
        !store
            .lease("spring", "replica-b", at(49), ttl)
            .await
            .unwrap(),
        "renewed until 50"
    );
    assert!(
        store
            .lease("spring", "replica-b", at(50), ttl)
            .await
            .unwrap(),
        "expired: taken over"
    );
    assert!(
        !store
            .lease("spring", "replica-a", at(51), ttl)
            .await
            .unwrap()
    );
    store.release_lease("spring", "replica-a").await.unwrap(); // not the owner: no effect
    assert!(
        !store
            .lease("spring", "replica-a", at(52), ttl)
            .await
            .unwrap()
    );
    store.release_lease("spring", "replica-b").await.unwrap();
    assert!(
        store
            .lease("spring", "replica-a", at(53), ttl)
            .await
            .unwrap()
    );
}

async fn leases_read_as_stored_expired_ones_included(db: Db) {
    let store = db.open().await;
    let ttl = Duration::from_secs(30);
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let lease = |id: &str, owner: &str, expires_at| LeaseRecord {
        campaign_id: id.into(),
        owner: owner.into(),
        expires_at,
    };
    for (id, owner, t) in [("spring", "replica-a", 0), ("summer", "replica-b", 10)] {
        assert!(store.lease(id, owner, at(t), ttl).await.unwrap());
    }
    assert_eq!(
        store
            .leases(&ids(&["summer", "nobody", "spring", "summer"]))
            .await
            .unwrap(),
        [
            lease("spring", "replica-a", at(30)),
            lease("summer", "replica-b", at(40))
        ],
        "by campaign ID, each once; a campaign without a lease is left out"
    );
    assert_eq!(store.leases(&[]).await.unwrap(), []);

    // Current until the instant another replica may take it over.
    let spring = store.leases(&ids(&["spring"])).await.unwrap().remove(0);
    assert!(spring.is_current(at(29)));
    assert!(!spring.is_current(at(30)));
    assert!(
        store
            .lease("spring", "replica-b", at(30), ttl)
            .await
            .unwrap()
    );
    assert_eq!(
        store.leases(&ids(&["spring"])).await.unwrap(),
        [lease("spring", "replica-b", at(60))],
        "taken over"
    );

    // An expired lease is still read, with its owner, until it is given up.
    assert_eq!(
        store.leases(&ids(&["summer"])).await.unwrap(),
        [lease("summer", "replica-b", at(40))]
    );
    store.release_lease("summer", "replica-b").await.unwrap();
    assert_eq!(store.leases(&ids(&["summer"])).await.unwrap(), []);

    // More IDs than one statement's list.
    let many: Vec<String> = (0..1200).map(|i| format!("m{i:04}")).collect();
    let granted = store
        .try_acquire_leases(&many, "replica-a", at(100), ttl)
        .await
        .unwrap();
    assert_eq!(granted, vec![true; many.len()]);
    let mut asked = many.clone();
    asked.push("spring".into());
    let read = store.leases(&asked).await.unwrap();
    assert_eq!(read.len(), many.len() + 1);
    assert_eq!(read[0], lease("m0000", "replica-a", at(130)));
    assert_eq!(read[many.len()], lease("spring", "replica-b", at(60)));
}

async fn batched_leases_and_campaigns_match_the_single_calls(db: Db) {
    let store = db.open().await;
    let ttl = Duration::from_secs(30);
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(store.lease("b", "replica-b", at(0), ttl).await.unwrap());
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
        !store.lease("a", "replica-b", at(60), ttl).await.unwrap(),
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
    store
        .upsert_campaigns(&[record("b", "active")])
        .await
        .unwrap();
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
    for (ut, campaign, generation) in [("a-2", "a", 2), ("a-1", "a", 1), ("c-1", "c", 1)] {
        let key = TaskKey {
            user_task_id: ut.into(),
            campaign_id: campaign.into(),
            generation,
            task_index: 0,
        };
        let settings = serde_json::json!({ "maxCall": 2 });
        store
            .task_create_intent(&key, &settings, at(1))
            .await
            .unwrap();
        let task_id = format!("T-{ut}");
        assert!(
            store
                .task_status_observed(ut, 5, Some(&task_id), at(2))
                .await
                .unwrap()
        );
    }
    let mut orders = vec![new_order("a", "a-2", 1), new_order("a", "a-2", 2)];
    orders.push(new_order("c", "c-1", 3));
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    let many: Vec<String> = (0..1200).map(|i| format!("x{i}")).collect();
    let asked: Vec<String> = ids(&["c", "b", "a"]).into_iter().chain(many).collect();
    let mut single = Vec::new();
    for id in &asked {
        single.extend(store.tasks(id).await.unwrap());
    }
    let batched = store.tasks_of(&asked).await.unwrap();
    let key = |t: &TaskRecord| (t.campaign_id.clone(), t.generation);
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
        store.insert_planned_orders(batch, at(0)).await.unwrap();
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

async fn a_replayed_callback_is_stored_once_and_applied_once(db: Db) {
    let store = db.open().await;
    store
        .insert_planned_orders(&[new_order("replay", "t1", 0)], at(0))
        .await
        .unwrap();
    store
        .task_create_intent(&task_key("t1"), &serde_json::json!({}), at(0))
        .await
        .unwrap();
    let id = "replay-o000000";
    let record = |request_id: &str, verified: bool, n: i64| CallbackRecord {
        kind: "call".into(),
        body: format!(r#"{{"callbackType":3,"n":{n}}}"#),
        verified,
        received_at: at(n),
        request_id: Some(request_id.into()),
    };
    let first = CallbackIngest {
        record: record("r1", true, 1),
        facts: Some(facts(id, false, vec![call(id, "c1", 3)])),
        task_status: Some(TaskStatusFact {
            user_task_id: "t1".into(),
            status: 2,
            task_id: None,
        }),
    };
    // The same requestID again, carrying other facts: were they applied, the order would be finished, its call
    // final, and the task ended.
    let replay = CallbackIngest {
        record: record("r1", true, 2),
        facts: Some(facts(id, true, vec![call(id, "c1", 6)])),
        task_status: Some(TaskStatusFact {
            user_task_id: "t1".into(),
            status: 4,
            task_id: None,
        }),
    };
    // Unverified: anyone could have sent it, so it never suppresses (nor is suppressed by) a verified one.
    let forged = CallbackIngest::raw(record("r1", false, 3));
    let other = CallbackIngest::raw(record("r2", true, 4));
    use Ingested::{Repeat, Stored};
    assert_eq!(
        store
            .ingest_callbacks(&[first.clone(), replay.clone(), forged.clone(), other.clone()])
            .await
            .unwrap(),
        [Stored, Repeat, Stored, Stored],
        "the second r1 in one batch is a repeat"
    );
    assert_eq!(
        store
            .ingest_callbacks(&[
                replay.clone(),
                forged.clone(),
                other,
                CallbackIngest::raw(record("r3", true, 5))
            ])
            .await
            .unwrap(),
        [Repeat, Stored, Repeat, Stored],
        "stored ones are repeats in a later batch"
    );

    let stored = store.recent_callbacks(100).await.unwrap();
    let keys: Vec<(Option<&str>, bool)> = stored
        .iter()
        .rev()
        .map(|c| (c.request_id.as_deref(), c.verified))
        .collect();
    assert_eq!(
        keys,
        [
            (Some("r1"), true),
            (Some("r1"), false),
            (Some("r2"), true),
            (Some("r1"), false),
            (Some("r3"), true)
        ]
    );
    assert_eq!(
        stored.last().unwrap(),
        &first.record,
        "the first delivery is the one kept"
    );
    let order = store.order(id).await.unwrap().unwrap();
    assert!(!order.finished, "the repeat's facts were not applied");
    assert_eq!(order.last_call_status, Some(3));
    assert_eq!(
        task(store.as_ref(), "t1").await.unwrap().platform_status,
        Some(2),
        "nor its task status"
    );
}

async fn text_with_nul_is_stored_never_refused(db: Db) {
    let store = db.open().await;
    // A contact whose fields carry NUL (PostgreSQL refuses it in text and in jsonb).
    let mut o = new_order("nul", "t1", 1);
    o.phone = "86130\u{0}000001".into();
    o.name = Some("A\0B".into());
    o.other = Some("ref\0".into());
    o.variables = serde_json::json!({ "k\u{0}": "v\u{0}" });
    assert_eq!(
        store
            .insert_planned_orders(std::slice::from_ref(&o), at(0))
            .await
            .unwrap(),
        1
    );
    let stored = store.order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(stored.phone, db.stored(&o.phone));
    assert_eq!(stored.name.as_deref(), Some(db.stored("A\0B").as_str()));
    assert_eq!(stored.other.as_deref(), Some(db.stored("ref\0").as_str()));
    let key = db.stored("k\0");
    assert_eq!(
        stored.variables,
        serde_json::json!({ key: db.stored("v\0") })
    );
    let reason = "retCode 7: bad\0number";
    store
        .settle_and_claim(
            &[],
            &[(o.order_id.clone(), reason.into())],
            "t1",
            0,
            at(1),
            &[],
        )
        .await
        .unwrap();
    let rejected = store.order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(rejected.reject_reason, Some(db.stored(reason)));

    // A callback whose body, transcript, intents and SMS carry NUL.
    let mut c = call(&o.order_id, "nul-c1", 6);
    c.hangup_cause = Some("NORMAL\0".into());
    c.intents = vec![intent("in\0terested", "hot")];
    c.sms = vec![SmsFact {
        content: "thanks\0".into(),
        ..sms("s1", Some(1))
    }];
    c.transcript = vec![line(1, "hello\0there")];
    c.agent = Some(serde_json::json!({ "agentName": "A\u{0}nn" }));
    let body = "{\"callbackType\":3,\"word\":\"\0\"}";
    let ingest = CallbackIngest {
        record: CallbackRecord {
            kind: "call".into(),
            body: body.into(),
            verified: true,
            received_at: at(2),
            request_id: Some("req\0nul".into()),
        },
        facts: Some(facts(&o.order_id, true, vec![c])),
        task_status: None,
    };
    assert_eq!(
        store
            .ingest_callbacks(std::slice::from_ref(&ingest))
            .await
            .unwrap(),
        [Ingested::Stored]
    );
    let cb = &store.recent_callbacks(1).await.unwrap()[0];
    assert_eq!(cb.body, db.stored(body));
    assert_eq!(cb.request_id, Some(db.stored("req\0nul")));
    let calls = store.calls_of_order(&o.order_id).await.unwrap();
    assert_eq!(calls[0].transcript[0].word, db.stored("hello\0there"));
    assert_eq!(calls[0].intents[0].intent_name, db.stored("in\0terested"));
    assert_eq!(calls[0].sms[0].content, db.stored("thanks\0"));
    assert_eq!(calls[0].hangup_cause, Some(db.stored("NORMAL\0")));
    assert_eq!(
        calls[0].agent,
        Some(serde_json::json!({ "agentName": db.stored("A\0nn") }))
    );
    assert!(store.order(&o.order_id).await.unwrap().unwrap().finished);
    // Its replay is recognised by the requestID as stored.
    assert_eq!(
        store.ingest_callbacks(&[ingest]).await.unwrap(),
        [Ingested::Repeat]
    );

    // The ledger's texts and a campaign's error.
    let action = ActionRecord {
        endpoint: "addBatchCall".into(),
        request_id: "req-1".into(),
        response_id: None,
        ret_code: Some(3),
        message: Some("bad\0message".into()),
        http_status: Some(200),
        duration_ms: 5,
        at: at(3),
        outcome: "rejected".into(),
        campaign_id: Some("nul".into()),
        user_task_id: Some("t1".into()),
    };
    store
        .record_actions(std::slice::from_ref(&action))
        .await
        .unwrap();
    assert_eq!(
        store.recent_actions(1).await.unwrap()[0].message,
        Some(db.stored("bad\0message"))
    );
    let campaign = CampaignRecord {
        id: "nul".into(),
        generation: 1,
        source_file: "nul.toml".into(),
        content_hash: "h".into(),
        spec: Some(serde_json::json!({ "name": "N\u{0}" })),
        state: "invalid".into(),
        last_error: Some("line 3: \0".into()),
        updated_at: at(4),
    };
    store.upsert_campaigns(&[campaign]).await.unwrap();
    let campaign = &store.campaigns().await.unwrap()[0];
    assert_eq!(campaign.last_error, Some(db.stored("line 3: \0")));
    assert_eq!(
        campaign.spec,
        Some(serde_json::json!({ "name": db.stored("N\0") }))
    );

    // A suppression entry whose texts carry NUL suppresses the order of that phone (stored the same way).
    let phone = "86131\u{0}000002";
    let source = "file:n\0.csv";
    store
        .suppress(&[entry(phone, source, Some("said\0no"), None)])
        .await
        .unwrap();
    let filter = SuppressionFilter {
        phone: Some(phone.into()),
        ..SuppressionFilter::default()
    };
    assert_eq!(
        store.suppressions(&filter).await.unwrap(),
        [entry(
            &db.stored(phone),
            &db.stored(source),
            Some(&db.stored("said\0no")),
            None
        )]
    );
    let mut o2 = new_order("nul", "t1", 2);
    o2.phone = phone.into();
    store
        .insert_planned_orders(std::slice::from_ref(&o2), at(5))
        .await
        .unwrap();
    assert_eq!(
        store
            .order(&o2.order_id)
            .await
            .unwrap()
            .unwrap()
            .reject_reason,
        Some(db.stored("suppressed: said\0no"))
    );
    let sync = store
        .replace_suppression_source(source, &[entry(phone, source, None, None)])
        .await
        .unwrap();
    assert_eq!((sync.updated, sync.kept), (1, 0));
    assert_eq!(
        store
            .unsuppress(&[phone.to_owned()], Some(source))
            .await
            .unwrap(),
        1
    );
}

async fn prune_ledger_deletes_the_oldest_rows_in_bounded_steps(db: Db) {
    let store = db.open().await;
    let action = |n: i64| ActionRecord {
        endpoint: "listOrderDetail".into(),
        request_id: format!("req-{n}"),
        response_id: None,
        ret_code: Some(0),
        message: None,
        http_status: Some(200),
        duration_ms: 3,
        at: at(n),
        outcome: "ok".into(),
        campaign_id: None,
        user_task_id: None,
    };
    // Written newest first: age, not insertion order, decides.
    let actions: Vec<ActionRecord> = (0..2_500).rev().map(action).collect();
    store.record_actions(&actions).await.unwrap();
    let callbacks: Vec<CallbackIngest> = (0..30)
        .map(|n| {
            CallbackIngest::raw(CallbackRecord {
                kind: "task".into(),
                body: "{}".into(),
                verified: n % 2 == 0,
                received_at: at(n),
                request_id: Some(format!("cb-{n}")),
            })
        })
        .collect();
    store.ingest_callbacks(&callbacks).await.unwrap();
    let oldest_action = |actions: Vec<ActionRecord>| actions.iter().map(|a| a.at).min();

    assert_eq!(
        store.prune_ledger(at(0), 100).await.unwrap(),
        0,
        "nothing is older"
    );
    // The limit holds, the actions go first, oldest first, across several short transactions.
    assert_eq!(store.prune_ledger(at(2_000), 1_500).await.unwrap(), 1_500);
    let left = store.recent_actions(10_000).await.unwrap();
    assert_eq!(left.len(), 1_000);
    assert_eq!(oldest_action(left), Some(at(1_500)));
    assert_eq!(store.recent_callbacks(100).await.unwrap().len(), 30);
    // Fewer than asked: nothing older is left in either table.
    assert_eq!(
        store.prune_ledger(at(2_000), 10_000).await.unwrap(),
        500 + 30
    );
    let left = store.recent_actions(10_000).await.unwrap();
    assert_eq!(left.len(), 500);
    assert_eq!(oldest_action(left), Some(at(2_000)));
    assert!(store.recent_callbacks(100).await.unwrap().is_empty());
    assert_eq!(store.prune_ledger(at(2_000), 10).await.unwrap(), 0);
}

// ---- suppression (do-not-call) lists

fn entry(
    phone: &str,
    source: &str,
    reason: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Suppression {
    Suppression {
        phone: phone.into(),
        source: source.into(),
        reason: reason.map(str::to_owned),
        expires_at,
        added_at: at(1),
    }
}

fn phone_of(n: usize) -> String {
    new_order("x", "x", n).phone
}

/// The counts of a one-task campaign agree with the task's tallies (what the daemon decides on).
async fn assert_tallies_match_counts(store: &dyn Store, campaign: &str, ut: &str) -> OrderCounts {
    let counts = store.order_counts(campaign).await.unwrap();
    let p = store.order_progress(ut).await.unwrap();
    assert_eq!(
        (p.total, p.planned, p.sending, p.sent, p.rejected),
        (
            counts.total,
            counts.planned,
            counts.sending,
            counts.sent,
            counts.rejected
        ),
        "tallies of {ut} against the counted orders of {campaign}"
    );
    counts
}

async fn a_suppressed_number_is_planned_rejected_with_its_reason(db: Db) {
    let store = db.open().await;
    store
        .suppress(&[
            entry(&phone_of(1), "cli", Some("asked us"), None),
            entry(&phone_of(2), "file:dnc.csv", None, None),
            // Expired before the insert: does not count.
            entry(&phone_of(3), "cli", Some("old"), Some(at(10))),
            // Expires after it: counts; the first active entry by source gives the reason.
            entry(&phone_of(4), "file:a.csv", Some("from a"), Some(at(100))),
            entry(&phone_of(4), "cli", None, Some(at(11))),
        ])
        .await
        .unwrap();
    let orders: Vec<NewOrder> = (0..6).map(|n| new_order("sup", "t1", n)).collect();
    assert_eq!(
        store.insert_planned_orders(&orders, at(10)).await.unwrap(),
        6
    );
    let all = ids(&orders);
    let state = |o: OrderRecord| (o.upload_state, o.reject_reason, o.state_changed_at);
    let rejected = |why: &str| {
        (
            UploadState::Rejected,
            Some(format!("suppressed: {why}")),
            Some(at(10)),
        )
    };
    let planned = (UploadState::Planned, None, None);
    let mut got = Vec::new();
    for id in &all {
        got.push(state(store.order(id).await.unwrap().unwrap()));
    }
    assert_eq!(
        got,
        [
            planned.clone(),
            rejected("asked us"),
            rejected("file:dnc.csv"),
            planned.clone(),
            rejected("cli"),
            planned.clone(),
        ]
    );
    assert_eq!(
        got[1].1.as_deref(),
        Some(suppressed_reason(Some("asked us"), "cli").as_str())
    );
    // A platform rejection is a rejection, not a suppression.
    store
        .settle_and_claim(
            &[],
            &[(all[0].clone(), "retCode 4: bad phone".into())],
            "t1",
            0,
            at(12),
            &[],
        )
        .await
        .unwrap();
    let counts = assert_tallies_match_counts(store.as_ref(), "sup", "t1").await;
    assert_eq!(
        (
            counts.total,
            counts.planned,
            counts.rejected,
            counts.suppressed
        ),
        (6, 2, 4, 3)
    );
    // Inserting them again changes nothing (the orders are stored).
    assert_eq!(
        store.insert_planned_orders(&orders, at(13)).await.unwrap(),
        0
    );
    assert_eq!(
        assert_tallies_match_counts(store.as_ref(), "sup", "t1").await,
        counts
    );
}

async fn a_number_suppressed_after_planning_is_rejected_at_claim(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..10).map(|n| new_order("late", "t1", n)).collect();
    assert_eq!(
        store.insert_planned_orders(&orders, at(0)).await.unwrap(),
        10
    );
    let all = ids(&orders);
    store
        .suppress(&[
            entry(&orders[1].phone, "cli", Some("asked"), None),
            entry(&orders[2].phone, "file:dnc.csv", None, None),
            // Further on than the first batch: rejected when a claim reaches it.
            entry(&orders[7].phone, "cli", None, None),
            // Expired by the claim that reaches it (at the very instant): sent as usual.
            entry(&orders[9].phone, "cli", None, Some(at(30))),
        ])
        .await
        .unwrap();
    let claimed = |c: Vec<OrderRecord>| c.into_iter().map(|o| o.order_id).collect::<Vec<_>>();
    let pick = |ns: &[usize]| ns.iter().map(|&n| all[n].clone()).collect::<Vec<_>>();

    // The batch still fills up: the two suppressed orders in its way are passed over and rejected.
    let first = store
        .settle_and_claim(&[], &[], "t1", 4, at(20), &[])
        .await
        .unwrap();
    assert_eq!(claimed(first), pick(&[0, 3, 4, 5]));
    let o1 = store.order(&all[1]).await.unwrap().unwrap();
    assert_eq!(o1.upload_state, UploadState::Rejected);
    assert_eq!(o1.reject_reason.as_deref(), Some("suppressed: asked"));
    assert_eq!(o1.state_changed_at, Some(at(20)));
    assert_eq!(
        store
            .order(&all[2])
            .await
            .unwrap()
            .unwrap()
            .reject_reason
            .as_deref(),
        Some("suppressed: file:dnc.csv")
    );
    assert_eq!(
        store.order(&all[7]).await.unwrap().unwrap().upload_state,
        UploadState::Planned,
        "beyond the batch: not looked at yet"
    );
    let counts = assert_tallies_match_counts(store.as_ref(), "late", "t1").await;
    assert_eq!(
        (
            counts.planned,
            counts.sending,
            counts.rejected,
            counts.suppressed
        ),
        (4, 4, 2, 2)
    );

    // The last batch is short: every suppressed planned order left goes to rejected.
    let sent = pick(&[0, 3, 4, 5]);
    let second = store
        .settle_and_claim(&sent, &[], "t1", 4, at(30), &[])
        .await
        .unwrap();
    assert_eq!(claimed(second), pick(&[6, 8, 9]));
    assert_eq!(
        store
            .order(&all[7])
            .await
            .unwrap()
            .unwrap()
            .reject_reason
            .as_deref(),
        Some("suppressed: cli")
    );
    let counts = assert_tallies_match_counts(store.as_ref(), "late", "t1").await;
    assert_eq!(
        (
            counts.planned,
            counts.sending,
            counts.sent,
            counts.rejected,
            counts.suppressed
        ),
        (0, 3, 4, 3, 3)
    );
    // Nothing is left to claim; a suppression now does not touch orders already claimed or sent.
    store
        .suppress(&[entry(&orders[6].phone, "cli", None, None)])
        .await
        .unwrap();
    assert!(
        store
            .settle_and_claim(&[], &[], "t1", 4, at(40), &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.order(&all[6]).await.unwrap().unwrap().upload_state,
        UploadState::Sending
    );
    assert_eq!(
        assert_tallies_match_counts(store.as_ref(), "late", "t1").await,
        counts
    );
}

async fn a_suppression_source_is_replaced_exactly(db: Db) {
    let store = db.open().await;
    let v0 = store.suppression_version().await.unwrap();
    let file = "file:dnc.csv";
    let (a, b, c, d) = (phone_of(1), phone_of(2), phone_of(3), phone_of(4));
    let sync = store
        .replace_suppression_source(
            file,
            &[
                entry(&a, file, Some("r1"), None),
                entry(&b, file, None, None),
                entry(&c, file, None, Some(at(50))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        sync,
        SourceSync {
            added: 3,
            updated: 0,
            removed: 0,
            kept: 0
        }
    );
    let v1 = store.suppression_version().await.unwrap();
    assert!(v1 > v0, "changed: {v0} -> {v1}");
    // Another source lists A too, and E, which the file never had.
    let e = phone_of(5);
    assert_eq!(
        store
            .suppress(&[entry(&a, "cli", None, None), entry(&e, "cli", None, None)])
            .await
            .unwrap(),
        2
    );
    let v2 = store.suppression_version().await.unwrap();
    assert!(v2 > v1);

    // The file again: A kept, B's reason changed, C gone, D new. A phone given twice keeps its last entry; a
    // stored entry keeps when it was first added.
    let added_later = |mut e: Suppression| {
        e.added_at = at(99);
        e
    };
    let sync = store
        .replace_suppression_source(
            file,
            &[
                entry(&b, file, Some("first"), None),
                added_later(entry(&a, file, Some("r1"), None)),
                added_later(entry(&b, file, Some("now a reason"), None)),
                entry(&d, file, None, None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        sync,
        SourceSync {
            added: 1,
            updated: 1,
            removed: 1,
            kept: 1
        }
    );
    let v3 = store.suppression_version().await.unwrap();
    assert!(v3 > v2);
    let listed = store
        .suppressions(&SuppressionFilter::default())
        .await
        .unwrap();
    assert_eq!(
        listed,
        [
            entry(&a, "cli", None, None),
            entry(&a, file, Some("r1"), None),
            entry(&b, file, Some("now a reason"), None),
            entry(&d, file, None, None),
            entry(&e, "cli", None, None),
        ],
        "by phone then source; other sources left alone; a stored entry keeps its added_at"
    );
    // The same file once more changes nothing, and the version stays.
    let sync = store
        .replace_suppression_source(
            file,
            &[
                entry(&a, file, Some("r1"), None),
                entry(&b, file, Some("now a reason"), None),
                entry(&d, file, None, None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        sync,
        SourceSync {
            added: 0,
            updated: 0,
            removed: 0,
            kept: 3
        }
    );
    assert!(!sync.changed());
    assert_eq!(store.suppression_version().await.unwrap(), v3);
    // So does suppressing what is stored; a new expiry is a change.
    assert_eq!(
        store
            .suppress(&[entry(&a, "cli", None, None)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.suppression_version().await.unwrap(), v3);
    assert_eq!(
        store
            .suppress(&[added_later(entry(&a, "cli", None, Some(at(500))))])
            .await
            .unwrap(),
        1
    );
    let v4 = store.suppression_version().await.unwrap();
    assert!(v4 > v3);
    // A source is replaced only by its own entries.
    let e = store
        .replace_suppression_source(file, &[entry(&a, "cli", None, None)])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");

    // The file sources, by name, however many entries each has.
    store
        .suppress(&[
            entry(&c, "file:b.csv", None, None),
            entry(&d, "file:b.csv", None, None),
            entry(&c, "opt_out:spring:C1", None, None),
            entry(&c, "file-list", None, None),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.suppression_file_sources().await.unwrap(),
        ["file:b.csv", file]
    );

    // Unsuppress by source, then for every source.
    assert_eq!(
        store
            .unsuppress(std::slice::from_ref(&a), Some(file))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .suppressions(&SuppressionFilter {
                phone: Some(a.clone()),
                ..Default::default()
            })
            .await
            .unwrap(),
        [entry(&a, "cli", None, Some(at(500)))],
        "the other source's entry stays"
    );
    let v5 = store.suppression_version().await.unwrap();
    assert!(v5 > v4);
    assert_eq!(
        store
            .unsuppress(&[a.clone(), c.clone()], None)
            .await
            .unwrap(),
        4,
        "A's cli entry and C's three"
    );
    assert_eq!(
        store
            .unsuppress(std::slice::from_ref(&a), None)
            .await
            .unwrap(),
        0
    );
    let v6 = store.suppression_version().await.unwrap();
    assert!(v6 > v5);
    // An empty file: its entries go, and so does its source.
    let sync = store.replace_suppression_source(file, &[]).await.unwrap();
    assert_eq!(
        sync,
        SourceSync {
            added: 0,
            updated: 0,
            removed: 2,
            kept: 0
        }
    );
    assert_eq!(
        store.suppression_file_sources().await.unwrap(),
        ["file:b.csv"]
    );
    assert!(store.suppression_version().await.unwrap() > v6);
}

async fn uploaded_orders_of_suppressed_numbers_are_stopped_once(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..8).map(|n| new_order("stop", "t1", n)).collect();
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    let all = ids(&orders);
    store
        .set_upload_state(&all[..7], UploadState::Sent, at(1))
        .await
        .unwrap(); // all[7] stays planned
    store
        .apply_order_facts(
            &[facts(&all[5], true, vec![call(&all[5], "c5", 8)])],
            FactSource::Poll,
        )
        .await
        .unwrap();
    // Another task's sent order of a suppressed number.
    let mut other = new_order("stop", "t2", 1);
    other.order_id = "stop-t2-o1".into();
    store
        .insert_planned_orders(&[other.clone()], at(0))
        .await
        .unwrap();
    store
        .set_upload_state(
            std::slice::from_ref(&other.order_id),
            UploadState::Sent,
            at(1),
        )
        .await
        .unwrap();
    store
        .suppress(&[
            entry(&orders[1].phone, "cli", None, None),
            entry(&orders[2].phone, "file:dnc.csv", None, Some(at(100))),
            entry(&orders[3].phone, "cli", None, Some(at(20))), // expired at `now`
            entry(&orders[5].phone, "cli", None, None),         // finished
            entry(&orders[7].phone, "cli", None, None),         // not uploaded
        ])
        .await
        .unwrap();
    let now = at(20);
    let pick = |ns: &[usize]| ns.iter().map(|&n| all[n].clone()).collect::<Vec<_>>();
    assert_eq!(
        store.orders_to_stop("t1", now, 10).await.unwrap(),
        pick(&[1, 2])
    );
    assert_eq!(
        store.orders_to_stop("t1", now, 1).await.unwrap(),
        pick(&[1]),
        "limit"
    );
    assert_eq!(
        store.orders_to_stop("t2", now, 10).await.unwrap(),
        ["stop-t2-o1"]
    );
    assert!(
        store.orders_to_stop("t1", at(200), 10).await.unwrap() == pick(&[1]),
        "the file entry expired by then"
    );

    // Write before send: `sending` is still to stop (the request may not have applied) ...
    assert_eq!(
        store
            .mark_stop(&pick(&[1]), StopState::Sending, at(21))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.orders_to_stop("t1", now, 10).await.unwrap(),
        pick(&[1, 2])
    );
    let o1 = store.order(&all[1]).await.unwrap().unwrap();
    assert_eq!(
        (o1.stop_state, o1.stopped_at),
        (Some(StopState::Sending), Some(at(21)))
    );
    // ... `stopped` is not, and is final.
    assert_eq!(
        store
            .mark_stop(&pick(&[1]), StopState::Stopped, at(22))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.orders_to_stop("t1", now, 10).await.unwrap(),
        pick(&[2])
    );
    assert_eq!(
        store
            .mark_stop(&pick(&[1]), StopState::Sending, at(23))
            .await
            .unwrap(),
        0,
        "stopped is final"
    );
    let o1 = store.order(&all[1]).await.unwrap().unwrap();
    assert_eq!(
        (o1.stop_state, o1.stopped_at),
        (Some(StopState::Stopped), Some(at(22)))
    );
    assert_eq!(
        o1.upload_state,
        UploadState::Sent,
        "the upload state is not the stop's"
    );
    assert_eq!(
        store
            .mark_stop(&pick(&[2, 4]), StopState::Stopped, at(24))
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .orders_to_stop("t1", now, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.order(&all[0]).await.unwrap().unwrap().stop_state,
        None,
        "never asked"
    );
}

async fn opt_out_calls_match_intents_by_id_and_by_name(db: Db) {
    let store = db.open().await;
    let orders: Vec<NewOrder> = (0..4).map(|n| new_order("optc", "t1", n)).collect();
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    let mut elsewhere = new_order("other", "t9", 0);
    elsewhere.order_id = "other-o0".into();
    store
        .insert_planned_orders(&[elsewhere.clone()], at(0))
        .await
        .unwrap();
    let all = ids(&orders);
    let by_id = IntentFact {
        intent_id: "OPT-9".into(),
        intent_tag: "".into(),
        intent_name: "whatever".into(),
        intent_level: None,
    };
    let with = |order: &str, call_id: &str, intents: Vec<IntentFact>| {
        let mut c = call(order, call_id, 6);
        c.intents = intents;
        c
    };
    store
        .apply_order_facts(
            &[
                facts(
                    &all[0],
                    true,
                    vec![with(&all[0], "c0", vec![intent("stop", "x")])],
                ),
                facts(
                    &all[1],
                    true,
                    vec![with(
                        &all[1],
                        "c1",
                        vec![intent("maybe", ""), by_id.clone()],
                    )],
                ),
                facts(
                    &all[2],
                    true,
                    vec![with(&all[2], "c2", vec![intent("interested", "")])],
                ),
                // Two matching intents: the first by position is the one named.
                facts(
                    &all[3],
                    true,
                    vec![
                        with(&all[3], "c3a", vec![by_id.clone(), intent("stop", "")]),
                        with(&all[3], "c3b", vec![]),
                    ],
                ),
                OrderFacts {
                    user_task_id: "t9".into(),
                    ..facts(
                        "other-o0",
                        true,
                        vec![with("other-o0", "c9", vec![intent("stop", "")])],
                    )
                },
            ],
            FactSource::Callback,
        )
        .await
        .unwrap();
    let wanted: Vec<String> = vec!["stop".into(), "OPT-9".into()];
    let found = |calls: Vec<OptOutCall>| {
        calls
            .into_iter()
            .map(|c| (c.call_id, c.intent))
            .collect::<Vec<_>>()
    };
    let pair = |c: &str, i: &str| (c.to_owned(), i.to_owned());
    let calls = store.opt_out_calls("optc", &wanted, 10).await.unwrap();
    assert_eq!(
        calls[0],
        OptOutCall {
            phone: orders[0].phone.clone(),
            order_id: all[0].clone(),
            call_id: "c0".into(),
            intent: "stop".into(),
        }
    );
    assert_eq!(
        found(calls),
        [
            pair("c0", "stop"),
            pair("c1", "OPT-9"),
            pair("c3a", "OPT-9")
        ]
    );
    assert_eq!(
        found(store.opt_out_calls("optc", &wanted, 1).await.unwrap()),
        [pair("c0", "stop")],
        "limit"
    );
    assert!(
        store
            .opt_out_calls("optc", &[], 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Once its opt-out entry exists, a call is not returned again; an entry of another source does not count.
    store
        .suppress(&[
            entry(&orders[0].phone, &opt_out_source("optc", "c0"), None, None),
            entry(&orders[1].phone, "cli", None, None),
            entry(
                &orders[3].phone,
                &opt_out_source("other", "c3a"),
                None,
                None,
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        found(store.opt_out_calls("optc", &wanted, 10).await.unwrap()),
        [pair("c1", "OPT-9"), pair("c3a", "OPT-9")]
    );
    assert_eq!(
        found(store.opt_out_calls("other", &wanted, 10).await.unwrap()),
        [pair("c9", "stop")]
    );
}

async fn suppressions_read_by_phone_and_activity_and_in_bulk(db: Db) {
    let store = db.open().await;
    // 100,000 entries in one call (a few statements, one transaction): one change of the version.
    let v0 = store.suppression_version().await.unwrap();
    let big: Vec<Suppression> = (0..100_000)
        .map(|n| {
            let expires = (n % 10 == 0).then(|| at(50));
            entry(&phone_of(n), "file:big.csv", Some("listed"), expires)
        })
        .collect();
    assert_eq!(store.suppress(&big).await.unwrap(), 100_000);
    assert_eq!(store.suppression_version().await.unwrap(), v0 + 1);
    store
        .suppress(&[
            entry(&phone_of(7), "cli", Some("asked"), Some(at(200))),
            entry(&phone_of(7), "opt_out:c:x", None, None),
        ])
        .await
        .unwrap();
    let page = |phone: Option<String>, active_at: Option<DateTime<Utc>>, limit, offset| {
        SuppressionFilter {
            phone,
            active_at,
            limit,
            offset,
        }
    };
    let all = store
        .suppressions(&page(None, None, None, 0))
        .await
        .unwrap();
    assert_eq!(all.len(), 100_002);
    assert!(
        all.windows(2)
            .all(|w| (&w[0].phone, &w[0].source) < (&w[1].phone, &w[1].source)),
        "by phone, then source"
    );
    assert_eq!(all[0], big[0]);
    let sources = |v: Vec<Suppression>| v.into_iter().map(|s| s.source).collect::<Vec<_>>();
    let p7 = Some(phone_of(7));
    assert_eq!(
        sources(
            store
                .suppressions(&page(p7.clone(), None, None, 0))
                .await
                .unwrap()
        ),
        ["cli", "file:big.csv", "opt_out:c:x"]
    );
    assert_eq!(
        sources(
            store
                .suppressions(&page(p7.clone(), Some(at(200)), None, 0))
                .await
                .unwrap()
        ),
        ["file:big.csv", "opt_out:c:x"],
        "expired at the instant it expires"
    );
    assert_eq!(
        sources(
            store
                .suppressions(&page(p7.clone(), None, Some(1), 1))
                .await
                .unwrap()
        ),
        ["file:big.csv"]
    );
    // Active at 50: every tenth entry of the file has expired.
    let active = store
        .suppressions(&page(None, Some(at(50)), None, 0))
        .await
        .unwrap();
    assert_eq!(active.len(), 90_000 + 2);
    assert!(active.iter().all(|s| s.is_active_at(at(50))));
    assert_eq!(
        store
            .suppressions(&page(None, Some(at(49)), Some(5), 99_998))
            .await
            .unwrap()
            .len(),
        4,
        "the last page"
    );
    // The same file re-read without one of its numbers, in one call.
    let sync = store
        .replace_suppression_source("file:big.csv", &big[1..])
        .await
        .unwrap();
    assert_eq!(
        sync,
        SourceSync {
            added: 0,
            updated: 0,
            removed: 1,
            kept: 99_999
        }
    );
}

/// Plans `orders` (all of `task`) and uploads them: claimed, then settled `sent`.
async fn upload_all(store: &dyn Store, orders: &[NewOrder], task: &str, when: DateTime<Utc>) {
    store.insert_planned_orders(orders, when).await.unwrap();
    let claimed = store
        .settle_and_claim(&[], &[], task, orders.len() as u32, when, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), orders.len());
    store
        .settle_and_claim(&ids(orders), &[], task, 0, when, &[])
        .await
        .unwrap();
}

/// The order's calls, started at `starts`.
fn called(order: &NewOrder, starts: &[DateTime<Utc>], finished: bool) -> OrderFacts {
    OrderFacts {
        order_id: order.order_id.clone(),
        user_task_id: order.user_task_id.clone(),
        finished,
        calls: starts
            .iter()
            .enumerate()
            .map(|(i, t)| CallFacts {
                started_at: Some(*t),
                ..call(&order.order_id, &format!("{}-c{i}", order.order_id), 7)
            })
            .collect(),
    }
}

fn claimed_ids(c: Vec<OrderRecord>) -> Vec<String> {
    c.into_iter().map(|o| o.order_id).collect()
}

async fn a_phone_called_up_to_its_cap_is_held_until_a_call_leaves_the_window(db: Db) {
    let store = db.open().await;
    let hour = chrono::Duration::hours(1);
    let t = at(200_000);
    let caps = [Cap {
        within: chrono::Duration::hours(24),
        max: 3,
    }];
    // Another campaign called phone 0 three times in the last 24 hours (finished), phone 1 twice, phone 2 three
    // times but the first 25 hours ago.
    let past: Vec<NewOrder> = (0..3).map(|n| new_order("past", "tp", n)).collect();
    upload_all(store.as_ref(), &past, "tp", t - hour * 30).await;
    store
        .apply_order_facts(
            &[
                called(&past[0], &[t - hour * 20, t - hour * 10, t - hour], true),
                called(&past[1], &[t - hour * 20, t - hour], true),
                called(&past[2], &[t - hour * 25, t - hour * 2, t - hour], true),
            ],
            FactSource::Poll,
        )
        .await
        .unwrap();
    let orders: Vec<NewOrder> = (0..5).map(|n| new_order("now", "tn", n)).collect();
    store.insert_planned_orders(&orders, t).await.unwrap();
    let all = ids(&orders);
    let pick = |ns: &[usize]| ns.iter().map(|&n| all[n].clone()).collect::<Vec<_>>();

    assert_eq!(
        store.held_numbers("tn", &caps, t).await.unwrap(),
        Held {
            numbers: 1,
            until: Some(t + hour * 4)
        },
        "phone 0 is held until its call of 20 hours ago leaves the window"
    );
    assert_eq!(
        store.held_numbers("tn", &[], t).await.unwrap(),
        Held::default()
    );
    // The held order is passed over and stays planned; the batch fills up with the next ones.
    let first = store
        .settle_and_claim(&[], &[], "tn", 2, t, &caps)
        .await
        .unwrap();
    assert_eq!(claimed_ids(first), pick(&[1, 2]));
    let o0 = store.order(&all[0]).await.unwrap().unwrap();
    assert_eq!(
        (o0.upload_state, o0.reject_reason),
        (UploadState::Planned, None)
    );
    assert_eq!(
        store.held_numbers("tn", &caps, t).await.unwrap(),
        Held {
            numbers: 1,
            until: Some(t + hour * 4)
        },
        "phones 1 and 2 are claimed, not planned: only phone 0 is held"
    );
    // At the very end of its window the oldest call still counts: the batch of one takes phone 3.
    let second = store
        .settle_and_claim(&[], &[], "tn", 1, t + hour * 4, &caps)
        .await
        .unwrap();
    assert_eq!(claimed_ids(second), pick(&[3]));
    // Just after, it has left the window: phone 0 is claimed again, first by source line.
    let later = t + hour * 4 + chrono::Duration::seconds(1);
    assert_eq!(
        store.held_numbers("tn", &caps, later).await.unwrap(),
        Held::default()
    );
    let third = store
        .settle_and_claim(&[], &[], "tn", 2, later, &caps)
        .await
        .unwrap();
    assert_eq!(claimed_ids(third), pick(&[0, 4]));
    let counts = assert_tallies_match_counts(store.as_ref(), "now", "tn").await;
    assert_eq!((counts.planned, counts.sending), (0, 5));
}

async fn orders_the_platform_may_dial_count_towards_a_cap_in_every_task(db: Db) {
    let store = db.open().await;
    let t = at(300_000);
    let day = chrono::Duration::hours(24);
    let one = [Cap {
        within: day,
        max: 1,
    }];
    // Task A uploaded phones 0 and 1; phone 1 is finished, phone 0 is not: the platform may dial it any moment.
    let a: Vec<NewOrder> = (0..2).map(|n| new_order("a", "ta", n)).collect();
    upload_all(store.as_ref(), &a, "ta", t).await;
    store
        .apply_order_facts(&[called(&a[1], &[], true)], FactSource::Poll)
        .await
        .unwrap();
    // Task B plans the same phones, and phone 2.
    let b: Vec<NewOrder> = (0..3).map(|n| new_order("b", "tb", n)).collect();
    store.insert_planned_orders(&b, t).await.unwrap();
    assert_eq!(
        store.held_numbers("tb", &one, t).await.unwrap(),
        Held {
            numbers: 1,
            until: None
        },
        "held by an unfinished order alone: release unknown"
    );
    // With no caps nothing is held: the claim is what it always was.
    let c: Vec<NewOrder> = (0..3).map(|n| new_order("c", "tc", n)).collect();
    store.insert_planned_orders(&c, t).await.unwrap();
    assert_eq!(
        claimed_ids(
            store
                .settle_and_claim(&[], &[], "tc", 3, t, &[])
                .await
                .unwrap()
        ),
        ids(&c)
    );
    // Task C's claimed (sending) orders now count too: B is held on every phone.
    assert_eq!(store.held_numbers("tb", &one, t).await.unwrap().numbers, 3);
    assert!(
        store
            .settle_and_claim(&[], &[], "tb", 3, t, &one)
            .await
            .unwrap()
            .is_empty()
    );
    // Stopped orders are no longer dialled; C's orders are settled and finished.
    store
        .mark_stop(&[a[0].order_id.clone()], StopState::Stopped, t)
        .await
        .unwrap();
    store
        .settle_and_claim(&ids(&c), &[], "tc", 0, t, &[])
        .await
        .unwrap();
    store
        .apply_order_facts(
            &c.iter().map(|o| called(o, &[], true)).collect::<Vec<_>>(),
            FactSource::Poll,
        )
        .await
        .unwrap();
    assert_eq!(
        store.held_numbers("tb", &one, t).await.unwrap(),
        Held::default()
    );
    // A call of A's on phone 0 reaches the second cap (not the first): any cap reached holds the phone.
    store
        .apply_order_facts(&[called(&a[0], &[t], false)], FactSource::Poll)
        .await
        .unwrap();
    let caps = [
        Cap {
            within: day,
            max: 5,
        },
        Cap {
            within: chrono::Duration::hours(1),
            max: 1,
        },
    ];
    assert_eq!(
        store.held_numbers("tb", &caps, t).await.unwrap(),
        Held {
            numbers: 1,
            until: Some(t + chrono::Duration::hours(1))
        }
    );
    assert_eq!(
        claimed_ids(
            store
                .settle_and_claim(&[], &[], "tb", 3, t, &caps)
                .await
                .unwrap()
        ),
        ids(&b[1..])
    );
}

/// A binary of the release before migration 17, still running during a rolling deploy, writes a call's transcript
/// as rows of `call_transcript` (upserted by record index). Those lines reach the call's transcript, merged by record
/// index with the lines this release wrote, so none is lost once the rollout ends.
async fn transcript_lines_an_earlier_release_writes_reach_the_call(db: Db) {
    let store = db.open().await;
    let orders = vec![new_order("tr", "t1", 0)];
    store.insert_planned_orders(&orders, at(0)).await.unwrap();
    let id = orders[0].order_id.clone();
    let mut c = call(&id, "tr-c1", 7);
    c.transcript = vec![line(1, "Hello"), line(2, "Hi")];
    store
        .apply_order_facts(&[facts(&id, false, vec![c])], FactSource::Callback)
        .await
        .unwrap();
    // The earlier release's statement: restates line 2 and adds line 3, as rows.
    let old_lines = [line(2, "Hi again"), line(3, "Bye")];
    let upsert = |p: [&str; 8]| {
        format!(
            "INSERT INTO call_transcript (call_id, record_index, role, kind, word, node_id, node_desc, at)
             VALUES ({}, {}, {}, {}, {}, {}, {}, {})
             ON CONFLICT (call_id, record_index) DO UPDATE SET role = excluded.role, kind = excluded.kind,
                 word = excluded.word, node_id = excluded.node_id, node_desc = excluded.node_desc, at = excluded.at",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
        )
    };
    match &db {
        Db::Sqlite(d) => {
            let pool = sqlx::SqlitePool::connect(&d.url).await.unwrap();
            for l in &old_lines {
                let sql = upsert(["?1", "?2", "?3", "?4", "?5", "?6", "?7", "?8"]);
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind("tr-c1")
                    .bind(l.index)
                    .bind(l.role)
                    .bind(l.kind)
                    .bind(&l.word)
                    .bind(&l.node_id)
                    .bind(&l.node_desc)
                    .bind(l.at.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        Db::Postgres(d) => {
            let pool = sqlx::PgPool::connect(&d.url).await.unwrap();
            for l in &old_lines {
                let sql = upsert(["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8"]);
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind("tr-c1")
                    .bind(l.index)
                    .bind(l.role)
                    .bind(l.kind)
                    .bind(&l.word)
                    .bind(&l.node_id)
                    .bind(&l.node_desc)
                    .bind(l.at)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    }
    assert_eq!(
        store.calls_of_order(&id).await.unwrap()[0].transcript,
        vec![line(1, "Hello"), line(2, "Hi again"), line(3, "Bye")],
        "the earlier release's lines merged by record index"
    );
    // And a later report of this release merges with them as with its own.
    let mut later = call(&id, "tr-c1", 10);
    later.transcript = vec![line(4, "Later")];
    store
        .apply_order_facts(&[facts(&id, true, vec![later])], FactSource::Poll)
        .await
        .unwrap();
    assert_eq!(
        store.calls_of_order(&id).await.unwrap()[0].transcript,
        vec![
            line(1, "Hello"),
            line(2, "Hi again"),
            line(3, "Bye"),
            line(4, "Later")
        ]
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
    narrow_task_writes_touch_only_their_fields,
    a_terminal_task_status_is_never_replaced,
    a_terminal_task_status_from_callbacks_is_never_replaced,
    bulk_planned_insert_is_idempotent,
    zone_groups_are_kept_once_per_task_and_never_forgotten,
    the_planned_contacts_version_is_kept_per_task_and_replaced,
    upload_state_moves_only_forward,
    polls_oldest_checked_first,
    a_poll_chunk_recorded_at_once_equals_facts_then_marks,
    callback_and_poll_converge_in_either_order,
    facts_within_one_batch_converge,
    concurrent_callbacks_and_polls_converge,
    ingested_batch_equals_facts_applied_one_by_one,
    a_replayed_batch_is_stored_once_and_changes_no_fact,
    a_replayed_callback_is_stored_once_and_applied_once,
    text_with_nul_is_stored_never_refused,
    prune_ledger_deletes_the_oldest_rows_in_bounded_steps,
    a_refused_stale_report_leaves_the_calls_children,
    ledger_keeps_every_action_and_callback,
    leases_refuse_a_second_owner_until_expiry,
    leases_read_as_stored_expired_ones_included,
    batched_leases_and_campaigns_match_the_single_calls,
    report_figures_match_a_known_data_set,
    a_suppressed_number_is_planned_rejected_with_its_reason,
    a_number_suppressed_after_planning_is_rejected_at_claim,
    a_suppression_source_is_replaced_exactly,
    uploaded_orders_of_suppressed_numbers_are_stopped_once,
    opt_out_calls_match_intents_by_id_and_by_name,
    suppressions_read_by_phone_and_activity_and_in_bulk,
    a_phone_called_up_to_its_cap_is_held_until_a_call_leaves_the_window,
    orders_the_platform_may_dial_count_towards_a_cap_in_every_task,
    attempts_due_for_a_retry_are_found_once_each_by_outcome_and_time,
    campaign_counts_kept_as_facts_are_written_equal_the_raw_aggregation,
    report_views_kept_as_facts_are_written_equal_the_raw_aggregation,
    transcript_lines_an_earlier_release_writes_reach_the_call,
);

/// PostgreSQL has no timestamps before 4713 BC: writing one is a data exception (SQLSTATE 22008), which the store
/// reports as refused data, not as an outage, and the next write goes through. (SQLite stores any text; its own
/// refusals are mapped in `store_sqlite`'s unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reports_data_it_refuses_as_bad_input() {
    let db = Db::Postgres(testkit::postgres_database().await);
    let store = db.open().await;
    let campaign = |id: &str, updated_at: DateTime<Utc>| CampaignRecord {
        id: id.into(),
        generation: 1,
        source_file: format!("{id}.toml"),
        content_hash: "h".into(),
        spec: None,
        state: "active".into(),
        last_error: None,
        updated_at,
    };
    let e = store
        .upsert_campaigns(&[campaign("ancient", DateTime::<Utc>::MIN_UTC)])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Refused(_)), "{e:?}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("retrying will not help"), "{e}");
    store
        .upsert_campaigns(&[campaign("fine", at(1))])
        .await
        .unwrap();
    assert_eq!(store.campaigns().await.unwrap(), [campaign("fine", at(1))]);
}

/// One finished call of `order` with `status`, started at `start` and ended a minute later (`end: false`: no end).
fn ended(order: &NewOrder, status: i64, start: DateTime<Utc>, end: bool) -> OrderFacts {
    OrderFacts {
        order_id: order.order_id.clone(),
        user_task_id: order.user_task_id.clone(),
        finished: true,
        calls: vec![CallFacts {
            started_at: Some(start),
            ended_at: end.then(|| start + chrono::Duration::minutes(1)),
            ..call(&order.order_id, &format!("{}-c", order.order_id), status)
        }],
    }
}

async fn attempts_due_for_a_retry_are_found_once_each_by_outcome_and_time(db: Db) {
    let store = db.open().await;
    let t = at(300_000);
    let min = chrono::Duration::minutes(1);
    let orders: Vec<NewOrder> = (0..6).map(|n| new_order("re", "tr", n)).collect();
    upload_all(store.as_ref(), &orders, "tr", t).await;
    // 0 busy (ended t+11m), 1 busy (ended t+41m), 2 answered, 3 no answer (no end: its start counts),
    // 4 busy but not finished, 5 busy and stopped.
    let mut facts = vec![
        ended(&orders[0], 10, t + min * 10, true),
        ended(&orders[1], 11, t + min * 40, true),
        ended(&orders[2], 6, t + min * 10, true),
        ended(&orders[3], 22, t + min * 20, false),
        ended(&orders[4], 10, t + min * 10, true),
        ended(&orders[5], 10, t + min * 10, true),
    ];
    facts[4].finished = false;
    store
        .apply_order_facts(&facts, FactSource::Poll)
        .await
        .unwrap();
    store
        .mark_stop(&ids(&orders[5..6]), StopState::Stopped, t + min * 12)
        .await
        .unwrap();

    let busy = |ended_by: DateTime<Utc>, max_attempts: u32| store::RetryQuery {
        statuses: vec![10, 11],
        max_attempts,
        ended_by,
    };
    let found = store
        .retries_due("tr", &busy(t + min * 20, 3), 100)
        .await
        .unwrap();
    assert_eq!(claimed_ids(found.due), ids(&orders[..1]));
    assert_eq!(found.next_ended_at, Some(t + min * 41));
    let found = store
        .retries_due("tr", &busy(t + min * 60, 3), 100)
        .await
        .unwrap();
    assert_eq!(claimed_ids(found.due), ids(&orders[..2]));
    assert_eq!(found.next_ended_at, None);
    let first = store
        .retries_due("tr", &busy(t + min * 60, 3), 1)
        .await
        .unwrap();
    assert_eq!(
        claimed_ids(first.due),
        ids(&orders[..1]),
        "the limit, by source line"
    );
    let no_answer = store::RetryQuery {
        statuses: vec![22, 23, 25],
        max_attempts: 2,
        ended_by: t + min * 20,
    };
    let found = store.retries_due("tr", &no_answer, 100).await.unwrap();
    assert_eq!(
        claimed_ids(found.due),
        ids(&orders[3..4]),
        "no end: the start counts"
    );
    assert!(
        store
            .retries_due("tr", &busy(t + min * 60, 1), 100)
            .await
            .unwrap()
            .due
            .is_empty(),
        "one attempt in all: nothing to follow"
    );

    // The second attempt of phone 0: same task and phone, its own ID. Planning it twice plans it once; a second
    // first attempt of the phone is still refused.
    let second = NewOrder {
        order_id: "re-o000000-a2".into(),
        attempt: 2,
        ..orders[0].clone()
    };
    assert_eq!(
        store
            .insert_planned_orders(&[second.clone(), second.clone()], t + min * 61)
            .await
            .unwrap(),
        1
    );
    let again_first = NewOrder {
        order_id: "re-o000000-dup".into(),
        ..orders[0].clone()
    };
    assert_eq!(
        store
            .insert_planned_orders(&[again_first], t + min * 61)
            .await
            .unwrap(),
        0
    );
    let stored = store.order("re-o000000-a2").await.unwrap().unwrap();
    assert_eq!(
        (stored.attempt, stored.upload_state),
        (2, UploadState::Planned)
    );
    let found = store
        .retries_due("tr", &busy(t + min * 60, 3), 100)
        .await
        .unwrap();
    assert_eq!(
        claimed_ids(found.due),
        ids(&orders[1..2]),
        "phone 0's first attempt has a successor: only the last attempt is followed"
    );
    // The second attempt is busy too; with three attempts in all it is followed by a third, with two it is not.
    upload_all(
        store.as_ref(),
        std::slice::from_ref(&second),
        "tr",
        t + min * 62,
    )
    .await;
    store
        .apply_order_facts(&[ended(&second, 10, t + min * 100, true)], FactSource::Poll)
        .await
        .unwrap();
    let due = |max| {
        let store = store.clone();
        async move {
            claimed_ids(
                store
                    .retries_due("tr", &busy(t + min * 200, max), 100)
                    .await
                    .unwrap()
                    .due,
            )
        }
    };
    assert_eq!(
        due(3).await,
        vec!["re-o000000-a2".to_owned(), orders[1].order_id.clone()],
        "by source line"
    );
    assert_eq!(due(2).await, vec![orders[1].order_id.clone()]);
}

/// The campaign's counts aggregated from the raw tables, as `order_counts` computed them before the rollups: what
/// the rollups must equal.
async fn raw_counts(db: &Db, campaign: &str) -> OrderCounts {
    let c = |v: i64| u64::try_from(v).unwrap();
    let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64) = match db {
        Db::Sqlite(d) => {
            let pool = sqlx::SqlitePool::connect(&d.url).await.unwrap();
            sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(upload_state = 'planned'), 0), COALESCE(SUM(upload_state = 'sending'), 0),
                        COALESCE(SUM(upload_state = 'sent'), 0), COALESCE(SUM(upload_state = 'rejected'), 0),
                        COALESCE(SUM(upload_state = 'rejected' AND substr(reject_reason, 1, 12) = 'suppressed: '), 0),
                        COALESCE(SUM(EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id)), 0),
                        COALESCE(SUM(EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id AND c.call_status = 6)), 0),
                        COALESCE(SUM(finished), 0)
                 FROM orders o WHERE campaign_id = ?1",
            )
            .bind(campaign)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
        Db::Postgres(d) => {
            let pool = sqlx::PgPool::connect(&d.url).await.unwrap();
            sqlx::query_as(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE upload_state = 'planned'),
                        COUNT(*) FILTER (WHERE upload_state = 'sending'), COUNT(*) FILTER (WHERE upload_state = 'sent'),
                        COUNT(*) FILTER (WHERE upload_state = 'rejected'),
                        COUNT(*) FILTER (WHERE upload_state = 'rejected' AND starts_with(reject_reason, 'suppressed: ')),
                        COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id)),
                        COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id
                                                                            AND c.call_status = 6)),
                        COUNT(*) FILTER (WHERE finished)
                 FROM orders o WHERE campaign_id = $1",
            )
            .bind(campaign)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    OrderCounts {
        total: c(row.0),
        planned: c(row.1),
        sending: c(row.2),
        sent: c(row.3),
        rejected: c(row.4),
        suppressed: c(row.5),
        dialled: c(row.6),
        answered: c(row.7),
        finished: c(row.8),
    }
}

/// A small deterministic generator (xorshift), so each seed replays.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn campaign_counts_kept_as_facts_are_written_equal_the_raw_aggregation(db: Db) {
    let store = db.open().await;
    for seed in [3_u64, 17, 2026] {
        let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let campaign = format!("rc{seed}");
        let t = at(400_000 + seed as i64 * 10_000);
        // Two tasks (two generations) of one campaign; some numbers suppressed before they are planned.
        let tasks = [format!("{campaign}-g1"), format!("{campaign}-g2")];
        let orders: Vec<NewOrder> = (0..60)
            .map(|n| NewOrder {
                phone: format!("44{seed:03}{n:07}"),
                ..new_order(&campaign, &tasks[n % 2], n)
            })
            .collect();
        let suppressed: Vec<Suppression> = orders
            .iter()
            .filter(|_| dice.below(8) == 0)
            .map(|o| entry(&o.phone, "cli", Some("no"), None))
            .collect();
        store.suppress(&suppressed).await.unwrap();
        store.insert_planned_orders(&orders, t).await.unwrap();
        assert_eq!(
            store.order_counts(&campaign).await.unwrap(),
            raw_counts(&db, &campaign).await
        );
        // Claims, some acknowledged, some refused by the platform, some left in flight; a late suppression.
        let late = orders[dice.below(60) as usize].phone.clone();
        store
            .suppress(&[entry(&late, "file:late.csv", None, None)])
            .await
            .unwrap();
        for task in &tasks {
            let claimed = claimed_ids(
                store
                    .settle_and_claim(&[], &[], task, 25, t, &[])
                    .await
                    .unwrap(),
            );
            let (refused, sent): (Vec<String>, Vec<String>) =
                claimed.into_iter().partition(|_| dice.below(6) == 0);
            let refused: Vec<(String, String)> = refused
                .into_iter()
                .map(|id| (id, "bad number".into()))
                .collect();
            store
                .settle_and_claim(&sent, &refused, task, 5, t, &[])
                .await
                .unwrap();
        }
        assert_eq!(
            store.order_counts(&campaign).await.unwrap(),
            raw_counts(&db, &campaign).await
        );
        // Facts for the sent orders, by poll and by callback, in random order, some repeated, some stale (an
        // in-flight report of a call already final), across several batches.
        let sent: Vec<OrderRecord> = {
            let mut all = Vec::new();
            for task in &tasks {
                all.extend(
                    store
                        .orders_in_state(task, UploadState::Sent, 1000)
                        .await
                        .unwrap(),
                );
            }
            all
        };
        for round in 0..4 {
            let mut batch = Vec::new();
            for o in &sent {
                if dice.below(3) != 0 {
                    continue;
                }
                let status = [6, 10, 22, 5, 6, 9][dice.below(6) as usize];
                let mut c = call(
                    &o.order_id,
                    &format!("{}-c{}", o.order_id, dice.below(2)),
                    status,
                );
                c.started_at = Some(t + chrono::Duration::minutes(round * 10 + 1));
                batch.push(OrderFacts {
                    order_id: o.order_id.clone(),
                    user_task_id: o.user_task_id.clone(),
                    finished: status != 5 && dice.below(2) == 0,
                    calls: vec![c],
                });
            }
            let (first, second) = batch.split_at(batch.len() / 2);
            let sources = if dice.below(2) == 0 {
                [FactSource::Poll, FactSource::Callback]
            } else {
                [FactSource::Callback, FactSource::Poll]
            };
            store.apply_order_facts(second, sources[0]).await.unwrap();
            store.apply_order_facts(first, sources[1]).await.unwrap();
            store.apply_order_facts(second, sources[1]).await.unwrap();
            assert_eq!(
                store.order_counts(&campaign).await.unwrap(),
                raw_counts(&db, &campaign).await,
                "seed {seed}, round {round}"
            );
        }
        let counts = store.order_counts(&campaign).await.unwrap();
        assert!(
            counts.dialled > 0
                && counts.answered > 0
                && counts.finished > 0
                && counts.suppressed > 0,
            "{counts:?}"
        );
    }
    // A store opened again reads the same counts (they are stored, not remembered).
    let again = db.open().await;
    assert_eq!(
        again.order_counts("rc3").await.unwrap(),
        raw_counts(&db, "rc3").await
    );
}

/// Each report view and the columns compared, rounding the fractions (the rollups divide sums where the raw views
/// average).
const REPORT_VIEWS: [(&str, &[&str], &[&str]); 7] = [
    (
        "report_rejected",
        &["campaign_id", "kind", "reason", "orders"],
        &[],
    ),
    (
        "report_campaign_daily",
        &[
            "campaign_id",
            "day",
            "orders_total",
            "orders_dialled",
            "orders_answered",
            "orders_finished",
            "calls",
            "calls_answered",
            "p90_talk_secs",
            "sms_sent",
        ],
        &["answer_rate", "finish_rate", "avg_talk_secs"],
    ),
    (
        "report_campaign_totals",
        &[
            "campaign_id",
            "orders_total",
            "orders_dialled",
            "orders_answered",
            "orders_finished",
            "calls",
            "calls_answered",
            "p90_talk_secs",
            "sms_sent",
            "first_call_at",
            "last_call_at",
        ],
        &["answer_rate", "finish_rate", "avg_talk_secs"],
    ),
    (
        "report_call_status",
        &["campaign_id", "day", "call_status", "status_name", "calls"],
        &[],
    ),
    (
        "report_intents",
        &["campaign_id", "day", "intent", "calls"],
        &[],
    ),
    (
        "report_rounds",
        &[
            "campaign_id",
            "generation",
            "round",
            "user_task_id",
            "orders_total",
            "orders_finished",
            "calls",
            "calls_answered",
            "first_call_at",
            "last_call_at",
        ],
        &[],
    ),
    (
        "report_zone_groups",
        &[
            "campaign_id",
            "generation",
            "user_task_id",
            "zone_group",
            "orders_total",
            "orders_finished",
            "calls",
            "calls_answered",
            "first_call_at",
            "last_call_at",
        ],
        &[],
    ),
];

/// The rows of `view`, each as one text, sorted.
async fn view_rows(db: &Db, view: &str, cols: &[&str], fractions: &[&str]) -> Vec<String> {
    let postgres = matches!(db, Db::Postgres(_));
    let text = |e: String| format!("COALESCE(CAST({e} AS TEXT), 'null')");
    let exprs: Vec<String> = cols
        .iter()
        .map(|c| text((*c).to_owned()))
        .chain(fractions.iter().map(|c| {
            text(if postgres {
                format!("round(CAST({c} AS numeric), 6)")
            } else {
                format!("round({c}, 6)")
            })
        }))
        .collect();
    let sql = format!("SELECT {} FROM {view}", exprs.join(" || '|' || "));
    let mut rows: Vec<String> = match db {
        Db::Sqlite(d) => {
            let pool = sqlx::SqlitePool::connect(&d.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .unwrap()
        }
        Db::Postgres(d) => {
            let pool = sqlx::PgPool::connect(&d.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    rows.sort();
    rows
}

/// Every report view read from the rollups equals its `_raw` twin, which aggregates the raw tables.
async fn assert_views_equal_raw(db: &Db, when: &str) -> usize {
    let mut rows = 0;
    for (view, cols, fractions) in REPORT_VIEWS {
        let kept = view_rows(db, view, cols, fractions).await;
        let raw = view_rows(db, &format!("{view}_raw"), cols, fractions).await;
        assert_eq!(
            kept, raw,
            "{view} (rollups, left) against {view}_raw, {when}"
        );
        rows += kept.len();
    }
    rows
}

async fn report_views_kept_as_facts_are_written_equal_the_raw_aggregation(db: Db) {
    let store = db.open().await;
    let day = 86_400;
    for seed in [5_u64, 23, 2027] {
        let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let campaign = format!("rv{seed}");
        // Starts spread over three UTC days, near midnight too.
        let t = utc(2026, 3, 1, 22, 0, 0) + chrono::Duration::seconds(seed as i64 * 3 * day);
        let tasks = [format!("{campaign}-g1"), format!("{campaign}-g2")];
        for (g, ut) in tasks.iter().enumerate() {
            let key = TaskKey {
                user_task_id: ut.clone(),
                campaign_id: campaign.clone(),
                generation: g as i64 + 1,
                task_index: 0,
            };
            store
                .task_create_intent(&key, &serde_json::json!({ "maxCall": 2 }), t)
                .await
                .unwrap();
        }
        let orders: Vec<NewOrder> = (0..50)
            .map(|n| NewOrder {
                phone: format!("45{seed:03}{n:07}"),
                ..new_order(&campaign, &tasks[n % 2], n)
            })
            .collect();
        // The first task dials one zone group; the second two (so it is left out of report_zone_groups).
        let groups: Vec<(String, String)> = vec![
            (tasks[0].clone(), "{\"zones\":[\"Europe/Paris\"]}".into()),
            (tasks[1].clone(), "{\"zones\":[\"Europe/Madrid\"]}".into()),
            (tasks[1].clone(), "{\"zones\":[\"Atlantic/Canary\"]}".into()),
        ];
        // Some numbers suppressed before they are planned (rejected with the entry's reason or source).
        let suppressed: Vec<Suppression> = orders
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 9 == seed as usize % 9)
            .map(|(n, o)| entry(&o.phone, "cli", ["no", ""][n % 2].into(), None))
            .collect();
        store.suppress(&suppressed).await.unwrap();
        store
            .insert_planned_orders_in_groups(&orders, &groups, t)
            .await
            .unwrap();
        for task in &tasks {
            let claimed = claimed_ids(
                store
                    .settle_and_claim(&[], &[], task, 100, t, &[])
                    .await
                    .unwrap(),
            );
            let (refused, sent): (Vec<String>, Vec<String>) =
                claimed.into_iter().partition(|_| dice.below(10) == 0);
            let refused: Vec<(String, String)> = refused
                .into_iter()
                .map(|id| (id, "bad number".into()))
                .collect();
            store
                .settle_and_claim(&sent, &refused, task, 0, t, &[])
                .await
                .unwrap();
        }
        let sent: Vec<OrderRecord> = {
            let mut all = Vec::new();
            for task in &tasks {
                all.extend(
                    store
                        .orders_in_state(task, UploadState::Sent, 1000)
                        .await
                        .unwrap(),
                );
            }
            all
        };
        let labels = ["yes", "no", "", "callback"];
        for round in 0..6 {
            let mut batch = Vec::new();
            for o in &sent {
                if dice.below(3) == 0 {
                    continue;
                }
                let status = [6, 10, 22, 5, 6, 9, 3][dice.below(7) as usize];
                let mut c = call(
                    &o.order_id,
                    &format!("{}-c{}", o.order_id, dice.below(3)),
                    status,
                );
                // Mostly a start; sometimes none yet; sometimes a restated start on another day.
                c.started_at = match dice.below(6) {
                    0 => None,
                    n => Some(t + chrono::Duration::minutes(i64::from(round) * 37 + n as i64 * 71)),
                };
                c.duration_secs =
                    (status == 6 && dice.below(4) != 0).then(|| dice.below(300) as i64);
                c.intents = (0..dice.below(3))
                    .map(|i| IntentFact {
                        intent_id: format!("id{}", dice.below(4)),
                        intent_tag: if i == 0 { String::new() } else { "tag".into() },
                        intent_name: labels[dice.below(4) as usize].into(),
                        intent_level: None,
                    })
                    .collect();
                c.sms = (0..dice.below(3))
                    .map(|i| SmsFact {
                        sys_message_id: format!("m{i}"),
                        sent_at: None,
                        content: "hello".into(),
                        status: [None, Some(0), Some(1), Some(2), Some(3), Some(4)]
                            [dice.below(6) as usize],
                    })
                    .collect();
                batch.push(OrderFacts {
                    order_id: o.order_id.clone(),
                    user_task_id: o.user_task_id.clone(),
                    finished: status != 5 && status != 3 && dice.below(2) == 0,
                    calls: vec![c],
                });
            }
            let (first, second) = batch.split_at(batch.len() / 2);
            let sources = if dice.below(2) == 0 {
                [FactSource::Poll, FactSource::Callback]
            } else {
                [FactSource::Callback, FactSource::Poll]
            };
            store.apply_order_facts(second, sources[0]).await.unwrap();
            store.apply_order_facts(first, sources[1]).await.unwrap();
            // The same calls again by the other path (a callback after a poll, or the reverse).
            store.apply_order_facts(second, sources[1]).await.unwrap();
            assert_views_equal_raw(&db, &format!("seed {seed}, round {round}")).await;
        }
    }
    let rows = assert_views_equal_raw(&db, "at the end").await;
    assert!(rows > 50, "the data set is not trivial: {rows} rows");
    // Counted again from the raw tables: the same.
    store.rebuild_rollups().await.unwrap();
    assert_eq!(
        assert_views_equal_raw(&db, "after rebuild_rollups").await,
        rows
    );
    // The README's drill-downs run on both backends as written: one campaign's calls on one day, one phone's history.
    let calls_on_day = "SELECT call_id FROM report_calls WHERE campaign_id = 'rv5' \
                        AND started_at >= '2026-03-16' AND started_at < '2026-03-17'";
    let history = "SELECT o.order_id FROM orders o JOIN calls c USING (order_id) \
                   WHERE o.phone = (SELECT phone FROM orders JOIN calls USING (order_id) LIMIT 1) \
                   ORDER BY c.started_at";
    for sql in [calls_on_day, history] {
        let found: Vec<String> = match &db {
            Db::Sqlite(d) => {
                let pool = sqlx::SqlitePool::connect(&d.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
            }
            Db::Postgres(d) => {
                let pool = sqlx::PgPool::connect(&d.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
            }
        };
        assert!(!found.is_empty(), "{sql}");
    }
    // Each view has rows, and the figures that need the rarer facts are there.
    for (view, cols, fractions) in REPORT_VIEWS {
        assert!(
            !view_rows(&db, view, cols, fractions).await.is_empty(),
            "{view} is empty"
        );
    }
}

/// No two writing transactions in flight share a rollup shard (migration 20), whatever their backends' process IDs:
/// 32 open transactions hold the 32 shards, a 33rd waits until one of them ends, and a transaction keeps its shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_each_writing_transaction_holds_a_rollup_shard_of_its_own() {
    let db = Db::Postgres(testkit::postgres_database().await);
    let _migrated = db.open().await;
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(34)
        .connect(&pg.url)
        .await
        .unwrap();
    async fn shard(tx: &mut sqlx::PgConnection) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar("SELECT rollup_shard()")
            .fetch_one(tx)
            .await
    }
    // Every rollup function takes its shard from rollup_shard(); none from the process ID any more.
    let (by_pid, by_shard): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE strpos(prosrc, 'pg_backend_pid() % 32') > 0),
                COUNT(*) FILTER (WHERE strpos(prosrc, 'rollup_shard()') > 0)
          FROM pg_proc WHERE proname <> 'rollup_shard'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (by_pid, by_shard),
        (0, 6),
        "functions writing rollups by process ID, by rollup_shard()"
    );
    let mut open = Vec::new();
    let mut held = std::collections::BTreeSet::new();
    for _ in 0..32 {
        let mut tx = pool.begin().await.unwrap();
        let s = shard(&mut tx).await.unwrap();
        assert_eq!(
            shard(&mut tx).await.unwrap(),
            s,
            "a transaction keeps its shard"
        );
        assert!(held.insert(s), "shard {s} handed out twice");
        open.push(tx);
    }
    assert_eq!(held.len(), 32);

    let mut waiting = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL statement_timeout = '300ms'")
        .execute(&mut *waiting)
        .await
        .unwrap();
    let e = shard(&mut waiting).await.unwrap_err();
    assert!(e.to_string().contains("statement timeout"), "{e}");
    drop(waiting);

    let freed = open.pop().unwrap();
    freed.commit().await.unwrap();
    let mut next = pool.begin().await.unwrap();
    let s = shard(&mut next).await.unwrap();
    assert!((0..32).contains(&s));
    next.commit().await.unwrap();
}
