//! The vendor's own JSON examples (copied verbatim from the seed pages into `fixtures/`) must parse, and typed
//! values must survive a serialize/parse round trip.

use super::*;
use serde_json::{Value, json};

const CREATE_AND_CALL_REQUEST: &str = include_str!("fixtures/create_and_call_request.json");
const CREATE_AND_CALL_RESPONSE: &str = include_str!("fixtures/create_and_call_response.json");
const UPDATE_TASK_REQUEST: &str = include_str!("fixtures/update_task_request.json");
const UPDATE_TASK_RESPONSE: &str = include_str!("fixtures/update_task_response.json");
const MGR_TASK_STATUS_REQUEST: &str = include_str!("fixtures/mgr_task_status_request.json");
const MGR_TASK_STATUS_RESPONSE: &str = include_str!("fixtures/mgr_task_status_response.json");
const LIST_ORDER_DETAIL_REQUEST: &str = include_str!("fixtures/list_order_detail_request.json");
const LIST_ORDER_DETAIL_RESPONSE: &str = include_str!("fixtures/list_order_detail_response.json");
const TASK_CALLBACK: &str = include_str!("fixtures/task_callback.json");
const TASK_CALLBACK_ACK: &str = include_str!("fixtures/task_callback_ack.json");

/// Numbers compared as f64, so the example's `0` equals our `0.0` for float fields.
fn normalize(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        other => other,
    }
}

/// Serializing `t` gives JSON equal to `original` (as values), so no documented field is lost or renamed.
fn assert_same_json<T: Serialize>(t: &T, original: &str) {
    let ours: Value = serde_json::to_value(t).unwrap();
    let theirs: Value = serde_json::from_str(original).unwrap();
    assert_eq!(normalize(ours), normalize(theirs));
}

#[test]
fn parses_seed_create_and_call_request_and_serializes_it_back() {
    let r: CreateAndCallRequest = serde_json::from_str(CREATE_AND_CALL_REQUEST).unwrap();
    assert_eq!(r.product_id, PRODUCT_ID);
    assert_eq!(r.task_create_setting.strategy_name, "默认策略");
    assert_eq!(r.task_create_setting.startup_type, StartupType::Manual);
    assert_eq!(r.func_flag.sms_func_flag[0].sms_id, "string");
    assert_eq!(
        r.func_flag.sms_func_flag[0].intent_id,
        vec!["string".to_owned()]
    );
    assert!(r.func_flag.phone_encrypt);
    let item = &r.call_info_list.call_list[0];
    assert_eq!(item.order_id, "string");
    // The seed example has `"name": null` in params; it reads as empty.
    assert_eq!(item.params, vec![Param::default()]);
    let manual = r.task_create_setting.manual_call_setting.as_ref().unwrap();
    assert_eq!(manual.dispatch_type, DispatchType::None);

    // Round trip apart from the nulls we normalise to "".
    let mut expected: Value = serde_json::from_str(CREATE_AND_CALL_REQUEST).unwrap();
    expected["callInfoList"]["callList"][0]["params"] = json!([{"name": "", "value": ""}]);
    assert_eq!(
        normalize(serde_json::to_value(&r).unwrap()),
        normalize(expected)
    );
}

#[test]
fn parses_seed_create_and_call_response() {
    let r: CreateAndCallResponse = serde_json::from_str(CREATE_AND_CALL_RESPONSE).unwrap();
    assert_eq!(r.ret_code, 0);
    assert_eq!(r.task_id, "string");
    assert_eq!(r.total_count, Some(0));
    assert_eq!(r.err_list[0].phone.as_deref(), Some("string"));
    assert_eq!(r.err_list[0].order_id, None);
    assert_same_json(&r, CREATE_AND_CALL_RESPONSE);
}

#[test]
fn parses_seed_update_task_request_and_response() {
    let r: UpdateTaskRequest = serde_json::from_str(UPDATE_TASK_REQUEST).unwrap();
    assert_eq!(r.task_create_setting.max_call, 0);
    assert_eq!(r.task_create_setting.dial_at_up_hour, "string");
    assert_same_json(&r, UPDATE_TASK_REQUEST);
    let resp: UpdateTaskResponse = serde_json::from_str(UPDATE_TASK_RESPONSE).unwrap();
    assert_eq!(resp.task_id, "string");
    assert_same_json(&resp, UPDATE_TASK_RESPONSE);
}

#[test]
fn parses_seed_mgr_task_status_request_and_response() {
    let r: MgrTaskStatusRequest = serde_json::from_str(MGR_TASK_STATUS_REQUEST).unwrap();
    assert_eq!(r.task_operate, TaskOperate::Start);
    assert_eq!(r.del_call, Some(DelCall::Keep));
    assert_same_json(&r, MGR_TASK_STATUS_REQUEST);
    let resp: MgrTaskStatusResponse = serde_json::from_str(MGR_TASK_STATUS_RESPONSE).unwrap();
    assert_eq!(resp.task_status, Some(TaskStatus::Pending));
    assert_same_json(&resp, MGR_TASK_STATUS_RESPONSE);
}

#[test]
fn parses_seed_list_order_detail_request_and_response() {
    let r: ListOrderDetailRequest = serde_json::from_str(LIST_ORDER_DETAIL_REQUEST).unwrap();
    assert_eq!(r.order_list, vec!["string".to_owned()]);
    assert_same_json(&r, LIST_ORDER_DETAIL_REQUEST);

    let resp: ListOrderDetailResponse = serde_json::from_str(LIST_ORDER_DETAIL_RESPONSE).unwrap();
    let order = &resp.order_detail_list[0];
    assert_eq!(order.finish, Some(true));
    let call = &order.call_info_detail_list[0];
    assert_eq!(call.call_status, Some(CallStatus::Preparing));
    assert_eq!(call.calling_number.as_deref(), Some("string"));
    // `intents: [{}]` parses into an all-default intent.
    assert_eq!(call.intents, vec![Intent::default()]);
    let agent = call.agent.as_ref().unwrap();
    assert_eq!(agent.agent_name, None);
    assert_eq!(agent.manual_hangup_by, Some(ManualHangupBy::None));
    assert_eq!(call.record_detail.len(), 1);
}

#[test]
fn parses_seed_task_callback_and_ack() {
    let cb = Callback::parse(TASK_CALLBACK.as_bytes()).unwrap();
    let Callback::Task(t) = &cb else {
        panic!("expected a task callback, got {cb:?}")
    };
    assert_eq!(t.task_status, Some(TaskStatus::Pending));
    assert_eq!(t.task_stat.as_ref().unwrap().total_call, 0);
    // Rates are integers (0) in the example and floats in the table; both read as f64.
    assert_same_json(&cb, TASK_CALLBACK);
    let ack: CallbackAck = serde_json::from_str(TASK_CALLBACK_ACK).unwrap();
    assert_eq!(ack.ret_code(), 0);
}

fn order_callback_json(callback_type: Value) -> Value {
    json!({
        "callbackType": callback_type,
        "orderID": "o-1",
        "userPhone": "8615600000000",
        "userName": "张三",
        "sceneID": "scene",
        "userTaskID": "ut-1",
        "taskID": "t-1",
        "finish": true,
        "other": "x",
        "callInfoDetail": {
            "callID": "c-1",
            "callStatus": 10,
            "callStartTs": 1732190400,
            "callAnswerTs": 0,
            "callEndTs": 1732190430,
            "callDuration": 0,
            "callAudioUrl": "",
            "hangupCause": "busy",
            "termSipCode": "486",
            "intents": [],
            "sms": [],
            "agent": null,
            "params": [{"name": "amount", "value": "100"}],
            "someFutureField": {"nested": true}
        },
        "anotherFutureField": 1
    })
}

#[test]
fn parses_callback_type_as_string_or_number() {
    for ty in [json!("2"), json!(2)] {
        let body = serde_json::to_vec(&order_callback_json(ty)).unwrap();
        let cb = Callback::parse(&body).unwrap();
        let Callback::Order(o) = cb else {
            panic!("expected an order callback")
        };
        assert_eq!(o.finish, Some(true));
        let call = o.call_info_detail.unwrap();
        assert_eq!(call.call_status, Some(CallStatus::Busy));
        assert_eq!(call.agent, None);
        assert_eq!(call.params[0].value, "100");
    }
    for ty in [json!("3"), json!(3)] {
        let body = serde_json::to_vec(&order_callback_json(ty)).unwrap();
        assert!(matches!(Callback::parse(&body).unwrap(), Callback::Call(_)));
    }
}

#[test]
fn rejects_callbacks_without_or_with_unknown_type() {
    let mut v = order_callback_json(json!(9));
    assert!(matches!(
        Callback::parse(&serde_json::to_vec(&v).unwrap()),
        Err(CallbackParseError::UnknownType(9))
    ));
    v.as_object_mut().unwrap().remove("callbackType");
    assert!(matches!(
        Callback::parse(&serde_json::to_vec(&v).unwrap()),
        Err(CallbackParseError::MissingType)
    ));
    assert!(matches!(
        Callback::parse(b"not json"),
        Err(CallbackParseError::Json(_))
    ));
}

#[test]
fn order_callback_serializes_type_as_string_and_call_callback_as_number() {
    let body = serde_json::to_vec(&order_callback_json(json!(2))).unwrap();
    let Callback::Order(o) = Callback::parse(&body).unwrap() else {
        panic!()
    };
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(v["callbackType"], json!("2"));
    // And it parses back to the same value.
    assert_eq!(
        Callback::parse(&serde_json::to_vec(&v).unwrap()).unwrap(),
        Callback::Order(o.clone())
    );

    let call = CallCallback {
        callback_type: CallbackType::Call,
        order_id: o.order_id,
        user_phone: o.user_phone,
        user_name: o.user_name,
        scene_id: o.scene_id,
        user_task_id: o.user_task_id,
        task_id: o.task_id,
        finish: Some(false),
        other: o.other,
        call_info_detail: o.call_info_detail,
    };
    let v = serde_json::to_value(&call).unwrap();
    assert_eq!(v["callbackType"], json!(3));
    assert_eq!(
        Callback::parse(&serde_json::to_vec(&v).unwrap()).unwrap(),
        Callback::Call(call)
    );
}

#[test]
fn accepts_sms_id_and_intent_id_in_either_casing_and_writes_upper() {
    let f: SmsFuncFlag =
        serde_json::from_value(json!({"smsId": "s1", "intentId": ["i1"], "intentName": ["n"]}))
            .unwrap();
    assert_eq!(f.sms_id, "s1");
    assert_eq!(f.intent_id, vec!["i1".to_owned()]);
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(
        v,
        json!({"smsID": "s1", "intentID": ["i1"], "intentName": ["n"]})
    );
    let g: SmsFuncFlag = serde_json::from_value(v).unwrap();
    assert_eq!(g, f);
}

#[test]
fn responses_parse_with_fields_missing_null_or_unknown() {
    let r: CreateAndCallResponse = serde_json::from_str(r#"{"retCode":7}"#).unwrap();
    assert_eq!(r.ret_code, 7);
    assert_eq!(r.task_id, "");
    assert!(r.err_list.is_empty());
    let r: StopOrderResponse =
        serde_json::from_str(r#"{"retCode":0,"retMsg":null,"errList":null,"brandNew":[1,2]}"#)
            .unwrap();
    assert_eq!(r.ret_msg, "");
    let r: ListTaskResponse = serde_json::from_str("{}").unwrap();
    assert!(r.task_data.is_empty());
    let r: MgrTaskStatusResponse = serde_json::from_str(r#"{"taskStatus":99}"#).unwrap();
    assert_eq!(r.task_status, Some(TaskStatus::Unknown(99)));
}

#[test]
fn stop_order_err_list_uses_order_id() {
    let r: StopOrderResponse = serde_json::from_value(json!({
        "retCode": 0, "retMsg": "ok", "responseID": "r", "totalCount": 2, "successCount": 1,
        "errList": [{"orderID": "o-2", "errMsg": "already finished"}]
    }))
    .unwrap();
    assert_eq!(r.err_list[0].order_id.as_deref(), Some("o-2"));
    let v = serde_json::to_value(&r.err_list[0]).unwrap();
    assert_eq!(v, json!({"orderID": "o-2", "errMsg": "already finished"}));
}

#[test]
fn requests_serialize_vendor_field_names() {
    let r = StopOrderRequest {
        product_id: PRODUCT_ID.into(),
        user_task_id: "ut".into(),
        order_ids: vec!["a".into()],
        del_call: None,
    };
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"productID": "callbot", "userTaskID": "ut", "orderIDs": ["a"]})
    );
    let r = ListTaskRequest {
        product_id: PRODUCT_ID.into(),
        page: 1,
        size: 100,
        query_conditions: QueryConditions {
            task_status: Some(vec![TaskStatus::Running]),
            user_task_id: Some(vec!["ut".into()]),
            ..Default::default()
        },
    };
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"productID": "callbot", "page": 1, "size": 100,
               "queryConditions": {"taskStatus": [2], "userTaskID": ["ut"]}})
    );
    let p: PingResponse = serde_json::from_value(
        json!({"data": "hi", "timestamp": 5, "code": 0, "msg": "ok", "reqId": "q"}),
    )
    .unwrap();
    assert_eq!((p.ret_code(), p.response_id()), (0, "q"));
    assert_eq!(
        serde_json::to_value(&PingRequest { data: "hi".into() }).unwrap(),
        json!({"data": "hi"})
    );
    assert_eq!(
        serde_json::to_value(MgrTaskStatusRequest::new("ut", TaskOperate::Pause)).unwrap(),
        json!({"productID": "callbot", "userTaskID": "ut", "taskOperate": 2})
    );
}

#[test]
fn endpoints_have_v3_paths_and_names() {
    for e in Endpoint::ALL {
        assert_eq!(e.path(), format!("/callcentre/api/v3/{}", e.name()));
        assert_eq!(Endpoint::from_path(e.path()), Some(e));
    }
    assert_eq!(
        <ListOrderDetailRequest as ApiRequest>::ENDPOINT,
        Endpoint::ListOrderDetail
    );
    assert!(ret_code::is_retryable(ret_code::BUSY));
    assert!(ret_code::is_retryable(ret_code::INTERNAL));
    assert!(ret_code::is_retryable(ret_code::MAINTENANCE));
    assert!(!ret_code::is_retryable(ret_code::BAD_SIGN));
    assert!(!ret_code::is_retryable(ret_code::OK));
    let reads: Vec<&str> = Endpoint::ALL
        .into_iter()
        .filter(|e| e.is_read_only())
        .map(Endpoint::name)
        .collect();
    assert_eq!(reads, ["listOrderDetail", "listTask", "ping"]);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn call_item() -> impl Strategy<Value = CallItem> {
        (
            "[a-zA-Z0-9-]{1,36}",
            "[0-9]{8,15}",
            "\\PC{0,20}",
            "\\PC{0,10}",
            proptest::collection::vec(("\\PC{0,8}", "\\PC{0,8}"), 0..3),
        )
            .prop_map(
                |(order_id, user_phone, other, user_name, params)| CallItem {
                    order_id,
                    user_phone,
                    other,
                    user_name: user_name.clone(),
                    customer_name: user_name,
                    params: params
                        .into_iter()
                        .map(|(name, value)| Param { name, value })
                        .collect(),
                },
            )
    }

    proptest! {
        #[test]
        fn add_batch_call_round_trips(
            items in proptest::collection::vec(call_item(), 0..5), task in "\\PC{1,20}", url in "\\PC{0,30}",
        ) {
            let req = AddBatchCallRequest {
                product_id: PRODUCT_ID.into(),
                user_task_id: task,
                call_info_list: CallInfoList {
                    order_callback_url: url.clone(),
                    call_callback_url: url,
                    call_list: items,
                },
            };
            let bytes = serde_json::to_vec(&req).unwrap();
            let back: AddBatchCallRequest = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(back, req);
        }

        #[test]
        fn enums_round_trip_any_code(code in any::<i64>()) {
            let s = CallStatus::from_code(code);
            prop_assert_eq!(s.code(), code);
            let back: CallStatus = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            prop_assert_eq!(back, s);
            let from_string: TaskStatus = serde_json::from_str(&format!("\"{code}\"")).unwrap();
            prop_assert_eq!(from_string.code(), code);
        }
    }
}
