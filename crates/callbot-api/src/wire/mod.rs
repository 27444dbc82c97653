//! Request, response and callback bodies of the Callbot v3 API, field names exactly as the vendor spells them.
//!
//! Requests serialize every documented field. Responses and callbacks are lenient: every field has a default, `null`
//! reads as the default, and unknown fields are ignored, so a newer platform revision does not break parsing.

mod enums;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

pub use enums::{
    AgentCallStatus, CallStatus, CallbackType, DelCall, DispatchType, ManualHangupBy, RecordRole,
    RecordType, SmsStatus, StartupType, TaskOperate, TaskStatus,
};

/// The constant `productID` of every request except ping.
pub const PRODUCT_ID: &str = "callbot";

/// `retCode` values and which of them a retry can fix.
pub mod ret_code {
    /// Success.
    pub const OK: i64 = 0;
    /// General error.
    pub const GENERAL: i64 = 1;
    /// Missing parameter.
    pub const MISSING_PARAM: i64 = 2;
    /// Parameter format error.
    pub const BAD_FORMAT: i64 = 3;
    /// Parameter value error.
    pub const BAD_VALUE: i64 = 4;
    /// Too many array elements.
    pub const TOO_MANY: i64 = 4001;
    /// Server under maintenance.
    pub const MAINTENANCE: i64 = 5;
    /// Internal server error.
    pub const INTERNAL: i64 = 5001;
    /// Signature incorrect.
    pub const BAD_SIGN: i64 = 6;
    /// Signature missing.
    pub const SIGN_MISSING: i64 = 6001;
    /// Account does not exist.
    pub const NO_ACCOUNT: i64 = 6002;
    /// User has no permission.
    pub const NO_PERMISSION: i64 = 6003;
    /// System busy.
    pub const BUSY: i64 = 7;
    /// A batch import is in progress.
    pub const IMPORT_RUNNING: i64 = 1001;

    /// Codes that mean "not done, try again later": maintenance, internal error, busy.
    pub fn is_retryable(code: i64) -> bool {
        matches!(code, MAINTENANCE | INTERNAL | BUSY)
    }
}

/// The API's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `createAndCall`.
    CreateAndCall,
    /// `addBatchCall`.
    AddBatchCall,
    /// `updateTask`.
    UpdateTask,
    /// `mgrTaskStatus`.
    MgrTaskStatus,
    /// `listOrderDetail`.
    ListOrderDetail,
    /// `stopOrder`.
    StopOrder,
    /// `listTask`.
    ListTask,
    /// `ping`.
    Ping,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 8] = [
        Endpoint::CreateAndCall,
        Endpoint::AddBatchCall,
        Endpoint::UpdateTask,
        Endpoint::MgrTaskStatus,
        Endpoint::ListOrderDetail,
        Endpoint::StopOrder,
        Endpoint::ListTask,
        Endpoint::Ping,
    ];

    /// The vendor's name, e.g. `createAndCall` (also the metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::CreateAndCall => "createAndCall",
            Endpoint::AddBatchCall => "addBatchCall",
            Endpoint::UpdateTask => "updateTask",
            Endpoint::MgrTaskStatus => "mgrTaskStatus",
            Endpoint::ListOrderDetail => "listOrderDetail",
            Endpoint::StopOrder => "stopOrder",
            Endpoint::ListTask => "listTask",
            Endpoint::Ping => "ping",
        }
    }

    /// The URL path, e.g. `/callcentre/api/v3/createAndCall`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::CreateAndCall => "/callcentre/api/v3/createAndCall",
            Endpoint::AddBatchCall => "/callcentre/api/v3/addBatchCall",
            Endpoint::UpdateTask => "/callcentre/api/v3/updateTask",
            Endpoint::MgrTaskStatus => "/callcentre/api/v3/mgrTaskStatus",
            Endpoint::ListOrderDetail => "/callcentre/api/v3/listOrderDetail",
            Endpoint::StopOrder => "/callcentre/api/v3/stopOrder",
            Endpoint::ListTask => "/callcentre/api/v3/listTask",
            Endpoint::Ping => "/callcentre/api/v3/ping",
        }
    }

    /// The endpoint whose path is `path`.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }

    /// Only reads the platform's state (`listOrderDetail`, `listTask`, `ping`): a request whose answer is lost or
    /// refused changed nothing. Every other endpoint may change a task or its orders.
    pub fn is_read_only(self) -> bool {
        match self {
            Endpoint::ListOrderDetail | Endpoint::ListTask | Endpoint::Ping => true,
            Endpoint::CreateAndCall
            | Endpoint::AddBatchCall
            | Endpoint::UpdateTask
            | Endpoint::MgrTaskStatus
            | Endpoint::StopOrder => false,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `null` or absent reads as the type's default.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn default_product_id() -> String {
    PRODUCT_ID.to_owned()
}

/// The common response envelope, read from every response type.
pub trait Envelope {
    /// `retCode`: 0 is success.
    fn ret_code(&self) -> i64;
    /// `retMsg`.
    fn ret_msg(&self) -> &str;
    /// `responseID`, for support.
    fn response_id(&self) -> &str;
}

/// A request body that belongs to one endpoint and has one response type.
pub trait ApiRequest: Serialize {
    /// Where it is sent.
    const ENDPOINT: Endpoint;
    /// What comes back.
    type Response: DeserializeOwned + Envelope + std::fmt::Debug;
    /// The response field holding the result code (`retCode`; ping's envelope calls it `code`).
    const RESULT_FIELD: &'static str = "retCode";

    /// Checks the documented rules a request can break before it is sent; `Err` says what is wrong.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

fn check_product_id(product_id: &str) -> Result<(), String> {
    if product_id == PRODUCT_ID {
        Ok(())
    } else {
        Err(format!(
            "productID is {product_id:?}; it must be {PRODUCT_ID:?}"
        ))
    }
}

macro_rules! envelope {
    ($($t:ty),+) => {$(
        impl Envelope for $t {
            fn ret_code(&self) -> i64 { self.ret_code }
            fn ret_msg(&self) -> &str { &self.ret_msg }
            fn response_id(&self) -> &str { &self.response_id }
        }
    )+};
}

macro_rules! request {
    ($($req:ty => $resp:ty, $ep:ident;)+) => {$(
        impl ApiRequest for $req {
            const ENDPOINT: Endpoint = Endpoint::$ep;
            type Response = $resp;
            fn check(&self) -> Result<(), String> {
                check_product_id(&self.product_id)
            }
        }
    )+};
}

// ---------------------------------------------------------------------------------------------------------------
// Shared request objects
// ---------------------------------------------------------------------------------------------------------------

/// `taskCreateSetting`: the task's dialing settings, including its calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCreateSetting {
    /// Name of a console dialing strategy, e.g. "默认策略" (default strategy).
    #[serde(default, deserialize_with = "null_default")]
    pub strategy_name: String,
    /// How the task starts.
    pub startup_type: StartupType,
    /// Start time (Unix seconds) when `startup_type` is `Scheduled`; 0 otherwise.
    #[serde(default, deserialize_with = "null_default")]
    pub startup_at: i64,
    /// The task's working time zone as seconds east of UTC (a fixed offset, no daylight saving).
    pub zone_second: i64,
    /// Longest ringing time, seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub max_ring_time: i64,
    /// Call route (line) ID; may be empty.
    #[serde(rename = "routeID", default, deserialize_with = "null_default")]
    pub route_id: String,
    /// Comma-separated weekdays 1 (Monday) to 7 (Sunday).
    pub dial_at_week_day: String,
    /// Comma-separated hours h (0-23) whose first half [h:00, h:30) may be dialled.
    pub dial_at_up_hour: String,
    /// Comma-separated hours h (0-23) whose second half [h:30, h+1:00) may be dialled.
    pub dial_at_down_hour: String,
    /// Robots: the most concurrent calls of the task.
    pub max_call: i64,
    /// Display name.
    #[serde(default, deserialize_with = "null_default")]
    pub task_name: String,
    /// Where task callbacks go.
    #[serde(default, deserialize_with = "null_default")]
    pub task_callback_url: String,
    /// Human-agent settings (AICC templates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_call_setting: Option<ManualCallSetting>,
}

/// `manualCallSetting`: transfer to human agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualCallSetting {
    /// Agent group ID.
    #[serde(default, deserialize_with = "null_default")]
    pub agent_group: String,
    /// Outbound dispatch mode.
    pub dispatch_type: DispatchType,
    /// Calls per idle agent, ratio mode.
    #[serde(default, deserialize_with = "null_default")]
    pub ratio_call_rate: f64,
    /// Call rate, predictive mode.
    #[serde(default, deserialize_with = "null_default")]
    pub predict_call_rate: f64,
}

/// `funcFlag`: task feature switches.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FuncFlag {
    /// Keep the task alive when it has no orders left.
    #[serde(default, deserialize_with = "null_default")]
    pub task_keep: bool,
    /// Redial unanswered calls once within the round.
    #[serde(default, deserialize_with = "null_default")]
    pub round_redial: bool,
    /// Synthesize sentences with variables whole (required when the template has variables).
    #[serde(rename = "wholeTTS", default, deserialize_with = "null_default")]
    pub whole_tts: bool,
    /// Send an SMS after a call when an intent matches.
    #[serde(default, deserialize_with = "null_default")]
    pub sms_enable: bool,
    /// Which SMS template goes with which intents.
    #[serde(default, deserialize_with = "null_default")]
    pub sms_func_flag: Vec<SmsFuncFlag>,
    /// Mask phone numbers in the console.
    #[serde(default, deserialize_with = "null_default")]
    pub phone_encrypt: bool,
}

/// One `smsFuncFlag` item. Serialized as `smsID`/`intentID` (createAndCall, updateTask); `smsId`/`intentId`
/// (createTask's spelling) are accepted too.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SmsFuncFlag {
    /// SMS template ID.
    #[serde(
        rename = "smsID",
        alias = "smsId",
        default,
        deserialize_with = "null_default"
    )]
    pub sms_id: String,
    /// Intent IDs that trigger the SMS.
    #[serde(
        rename = "intentID",
        alias = "intentId",
        default,
        deserialize_with = "null_default"
    )]
    pub intent_id: Vec<String>,
    /// Intent names that trigger the SMS (same effect as `intent_id`).
    #[serde(rename = "intentName", default, deserialize_with = "null_default")]
    pub intent_name: Vec<String>,
}

/// `callInfoList`: the orders to add and where their callbacks go.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallInfoList {
    /// URL for order callbacks.
    #[serde(default, deserialize_with = "null_default")]
    pub order_callback_url: String,
    /// URL for per-call callbacks.
    #[serde(default, deserialize_with = "null_default")]
    pub call_callback_url: String,
    /// One item per number (order).
    #[serde(default, deserialize_with = "null_default")]
    pub call_list: Vec<CallItem>,
}

/// One order: a number to call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallItem {
    /// Caller-made, globally unique order ID.
    #[serde(rename = "orderID", default, deserialize_with = "null_default")]
    pub order_id: String,
    /// Country code and national number, digits only (e.g. `8615600000000`).
    #[serde(default, deserialize_with = "null_default")]
    pub user_phone: String,
    /// Passthrough, returned in callbacks and lists.
    #[serde(default, deserialize_with = "null_default")]
    pub other: String,
    /// User name; may be empty.
    #[serde(default, deserialize_with = "null_default")]
    pub user_name: String,
    /// Customer name; may be empty.
    #[serde(default, deserialize_with = "null_default")]
    pub customer_name: String,
    /// Script variables; every variable of the template must be given.
    #[serde(default, deserialize_with = "null_default")]
    pub params: Vec<Param>,
}

/// A script variable.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Param {
    /// Variable name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Variable value.
    #[serde(default, deserialize_with = "null_default")]
    pub value: String,
}

/// A per-item failure: createAndCall reports `phone`, stopOrder reports `orderID`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrItem {
    /// The number that failed to import (createAndCall, addBatchCall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The order that failed (stopOrder; perhaps addBatchCall).
    #[serde(rename = "orderID", default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Why.
    #[serde(default, deserialize_with = "null_default")]
    pub err_msg: String,
}

// ---------------------------------------------------------------------------------------------------------------
// createAndCall
// ---------------------------------------------------------------------------------------------------------------

/// `createAndCall`: create a task and add orders in one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAndCallRequest {
    /// Always [`PRODUCT_ID`].
    #[serde(rename = "productID", default = "default_product_id")]
    pub product_id: String,
    /// Caller's unique task ID.
    #[serde(rename = "userTaskID")]
    pub user_task_id: String,
    /// Script template ID.
    #[serde(rename = "sceneID")]
    pub scene_id: String,
    /// Dialing settings.
    pub task_create_setting: TaskCreateSetting,
    /// Feature switches.
    #[serde(default)]
    pub func_flag: FuncFlag,
    /// The orders.
    pub call_info_list: CallInfoList,
}

/// Response of `createAndCall`. A partial import comes back with `retCode` 0 and the failures in `err_list`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateAndCallResponse {
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub ret_code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub ret_msg: String,
    /// Tracing ID.
    #[serde(rename = "responseID", deserialize_with = "null_default")]
    pub response_id: String,
    /// Platform task ID.
    #[serde(rename = "taskID", deserialize_with = "null_default")]
    pub task_id: String,
    /// Numbers submitted.
    pub total_count: Option<i64>,
    /// Numbers imported.
    pub success_count: Option<i64>,
    /// Numbers that failed to import.
    #[serde(deserialize_with = "null_default")]
    pub err_list: Vec<ErrItem>,
}

// ---------------------------------------------------------------------------------------------------------------
// addBatchCall
// ---------------------------------------------------------------------------------------------------------------

/// `addBatchCall`: add orders to an existing task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddBatchCallRequest {
    /// Always [`PRODUCT_ID`].
    #[serde(rename = "productID", default = "default_product_id")]
    pub product_id: String,
    /// Target task.
    #[serde(rename = "userTaskID")]
    pub user_task_id: String,
    /// The orders.
    pub call_info_list: CallInfoList,
}

/// Response of `addBatchCall`. The vendor page shows no response body; this reads the createAndCall/stopOrder
/// fields when present.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AddBatchCallResponse {
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub ret_code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub ret_msg: String,
    /// Tracing ID.
    #[serde(rename = "responseID", deserialize_with = "null_default")]
    pub response_id: String,
    /// Platform task ID, if sent.
    #[serde(rename = "taskID", skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Numbers submitted, if sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i64>,
    /// Numbers imported, if sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_count: Option<i64>,
    /// Per-number failures, if sent.
    #[serde(deserialize_with = "null_default")]
    pub err_list: Vec<ErrItem>,
}

// ---------------------------------------------------------------------------------------------------------------
// updateTask
// ---------------------------------------------------------------------------------------------------------------

/// `updateTask`: change settings of a paused or not-started task (takes effect after about 5 minutes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTaskRequest {
    /// Always [`PRODUCT_ID`].
    #[serde(rename = "productID", default = "default_product_id")]
    pub product_id: String,
    /// The task.
    #[serde(rename = "userTaskID")]
    pub user_task_id: String,
    /// Script template ID.
    #[serde(rename = "sceneID", default, deserialize_with = "null_default")]
    pub scene_id: String,
    /// New dialing settings.
    pub task_create_setting: TaskCreateSetting,
    /// New feature switches.
    #[serde(default)]
    pub func_flag: FuncFlag,
}

/// Response of `updateTask`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateTaskResponse {
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub ret_code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub ret_msg: String,
    /// Tracing ID.
    #[serde(rename = "responseID", deserialize_with = "null_default")]
    pub response_id: String,
    /// Platform task ID.
    #[serde(rename = "taskID", deserialize_with = "null_default")]
    pub task_id: String,
}

// ---------------------------------------------------------------------------------------------------------------
// mgrTaskStatus
// ---------------------------------------------------------------------------------------------------------------

/// `mgrTaskStatus`: start, pause or complete a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MgrTaskStatusRequest {
    /// Always [`PRODUCT_ID`].
    #[serde(rename = "productID", default = "default_product_id")]
    pub product_id: String,
    /// The task.
    #[serde(rename = "userTaskID")]
    pub user_task_id: String,
    /// What to do.
    pub task_operate: TaskOperate,
    /// Whether to delete undialed numbers; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub del_call: Option<DelCall>,
}

impl MgrTaskStatusRequest {
    /// A request for `operate` on `user_task_id`, keeping undialed numbers.
    pub fn new(user_task_id: impl Into<String>, operate: TaskOperate) -> Self {
        Self {
            product_id: default_product_id(),
            user_task_id: user_task_id.into(),
            task_operate: operate,
            del_call: None,
        }
    }
}

/// Response of `mgrTaskStatus`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MgrTaskStatusResponse {
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub ret_code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub ret_msg: String,
    /// Tracing ID.
    #[serde(rename = "responseID", deserialize_with = "null_default")]
    pub response_id: String,
    /// Platform task ID.
    #[serde(rename = "taskID", deserialize_with = "null_default")]
    pub task_id: String,
    /// The task's status after the operation.
    pub task_status: Option<TaskStatus>,
}

// ---------------------------------------------------------------------------------------------------------------
// listOrderDetail
// ---------------------------------------------------------------------------------------------------------------

/// Most order IDs one `listOrderDetail` request may carry.
pub const LIST_ORDER_DETAIL_MAX: usize = 500;

/// `listOrderDetail`: every call of the given orders (at most [`LIST_ORDER_DETAIL_MAX`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOrderDetailRequest {
    /// Always [`PRODUCT_ID`].
    #[serde(rename = "productID", default = "default_product_id")]
    pub product_id: String,
    /// The task.
    #[serde(rename = "userTaskID")]
    pub user_task_id: String,
    /// Order IDs.
    pub order_list: Vec<String>,
}

impl ListOrderDetailRequest {
    /// A request for `orders` of `user_task_id`.
    pub fn new(user_task_id: impl Into<String>, orders: Vec<String>) -> Self {
        Self {
            product_id: default_product_id(),
            user_task_id: user_task_id.into(),
            order_list: orders,
        }
    }
}

/// Response of `listOrderDetail`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListOrderDetailResponse {
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub ret_code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub ret_msg: String,
    /// Tracing ID.
    #[serde(rename = "responseID", deserialize_with = "null_default")]
    pub response_id: String,
    /// One item per known order.
    #[serde(deserialize_with = "null_default")]
    pub order_detail_list: Vec<OrderDetail>,
}

/// An order with all its calls.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderDetail {
    /// Order ID.
    #[serde(rename = "orderID", deserialize_with = "null_default")]
    pub order_id: String,
    /// Number.
    #[serde(deserialize_with = "null_default")]
    pub user_phone: String,
    /// User name.
    #[serde(deserialize_with = "null_default")]
    pub user_name: String,
    /// Script template ID.
    #[serde(rename = "sceneID", deserialize_with = "null_default")]
    pub scene_id: String,
    /// Caller's task ID.
    #[serde(rename = "userTaskID", deserialize_with = "null_default")]
    pub user_task_id: String,
    /// Platform task ID.
    #[serde(rename = "taskID", deserialize_with = "null_default")]
    pub task_id: String,
    /// The order is complete; no further rounds follow.
    pub finish: Option<bool>,
    /// Passthrough.
    #[serde(deserialize_with = "null_default")]
    pub other: String,
    /// Its calls.
    #[serde(deserialize_with = "null_default")]
    pub call_info_detail_list: Vec<CallInfoDetail>,
}

/// One call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallInfoDetail {
    /// Platform call ID.
    #[serde(rename = "callID", deserialize_with = "null_default")]
    pub call_id: String,
    /// Caller ID used (newer revisions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calling_number: Option<String>,
    /// Line IP (newer revisions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_address: Option<String>,
    /// Status.
    pub call_status: Option<CallStatus>,
    /// Start, Unix seconds.
    pub call_start_ts: Option<i64>,
    /// Answer, Unix seconds; present even for unanswered calls, so read `call_status`.
    pub call_answer_ts: Option<i64>,
    /// End, Unix seconds.
    pub call_end_ts: Option<i64>,
    /// Duration (seconds, presumably).
    pub call_duration: Option<i64>,
    /// Recording URL (wav, valid for 3 months).
    #[serde(deserialize_with = "null_default")]
    pub call_audio_url: String,
    /// Hangup cause.
    #[serde(deserialize_with = "null_default")]
    pub hangup_cause: String,
    /// Final SIP code.
    #[serde(deserialize_with = "null_default")]
    pub term_sip_code: String,
    /// Matched intents.
    #[serde(deserialize_with = "null_default")]
    pub intents: Vec<Intent>,
    /// SMS sent after the call.
    #[serde(deserialize_with = "null_default")]
    pub sms: Vec<Sms>,
    /// Human-agent part of the call, if any.
    pub agent: Option<Agent>,
    /// Script variables.
    #[serde(deserialize_with = "null_default")]
    pub params: Vec<Param>,
    /// Transcript.
    #[serde(deserialize_with = "null_default")]
    pub record_detail: Vec<RecordDetail>,
}

/// A matched intent label.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Intent {
    /// Intent label ID.
    #[serde(
        rename = "intentID",
        alias = "intentId",
        deserialize_with = "null_default"
    )]
    pub intent_id: String,
    /// Customer-defined tag.
    #[serde(deserialize_with = "null_default")]
    pub intent_tag: String,
    /// Label name.
    #[serde(deserialize_with = "null_default")]
    pub intent_name: String,
    /// Level; its meaning is not documented.
    pub intent_level: Option<i64>,
}

/// An SMS sent after a call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sms {
    /// Documented as the send timestamp, but the enum table lists status values under this name (see README).
    pub sms_send_ts: Option<i64>,
    /// SMS message ID.
    #[serde(rename = "sysMessageID", deserialize_with = "null_default")]
    pub sys_message_id: String,
    /// Text sent.
    #[serde(deserialize_with = "null_default")]
    pub sms_content: String,
}

/// The human-agent part of a call; every field is `null` when no agent took part.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Agent {
    /// Agent name.
    pub agent_name: Option<String>,
    /// Agent group.
    pub agent_group: Option<String>,
    /// Agent leg status.
    pub agent_call_status: Option<AgentCallStatus>,
    /// Agent leg duration.
    pub agent_call_elapsed: Option<i64>,
    /// Agent label.
    pub agent_label: Option<String>,
    /// Manual call start, Unix seconds.
    pub manual_call_start: Option<i64>,
    /// Manual call answer, Unix seconds.
    pub manual_call_answer: Option<i64>,
    /// Manual call end, Unix seconds.
    pub manual_call_end: Option<i64>,
    /// Who hung up.
    pub manual_hangup_by: Option<ManualHangupBy>,
}

/// One transcript line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordDetail {
    /// Text.
    #[serde(deserialize_with = "null_default")]
    pub record_word: String,
    /// Order within the call.
    pub record_index: Option<i64>,
    /// Speaker.
    pub record_role: Option<RecordRole>,
    /// Kind of line.
    pub record_type: Option<RecordType>,
    /// Script node ID.
    #[serde(rename = "nodeID", deserialize_with = "null_default")]
    pub node_id: String,
    /// Script node description.
    #[serde(deserialize_with = "null_default")]
    pub node_desc: String,
    /// Time, Unix seconds.
    pub create_ts: Option<i64>,
}

// ---------------------------------------------------------------------------------------------------------------
// stopOrder
// ---------------------------------------------------------------------------------------------------------------

/// `stopOrder`: stop calling the given orders. Cannot be undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopOrderRequest {
    /// Always [`PRODUCT_ID`].
    #[serde(rename = "productID", default = "default_product_id")]
    pub product_id: String,
    /// The task.
    #[serde(rename = "userTaskID")]
    pub user_task_id: String,
    /// Orders to stop.
    #[serde(rename = "orderIDs")]
    pub order_ids: Vec<String>,
    /// Whether to delete undialed data; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub del_call: Option<DelCall>,
}

/// Response of `stopOrder`. A partial success comes back with `retCode` 0.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StopOrderResponse {
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub ret_code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub ret_msg: String,
    /// Tracing ID.
    #[serde(rename = "responseID", deserialize_with = "null_default")]
    pub response_id: String,
    /// Orders submitted.
    pub total_count: Option<i64>,
    /// Orders stopped.
    pub success_count: Option<i64>,
    /// Orders not stopped, with the reason.
    #[serde(deserialize_with = "null_default")]
    pub err_list: Vec<ErrItem>,
}

// ---------------------------------------------------------------------------------------------------------------
// listTask
// ---------------------------------------------------------------------------------------------------------------

/// `listTask`: tasks with statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTaskRequest {
    /// Always [`PRODUCT_ID`].
    #[serde(rename = "productID", default = "default_product_id")]
    pub product_id: String,
    /// Page number (1-based, presumably).
    pub page: u32,
    /// Page size.
    pub size: u32,
    /// Filters; may be empty.
    #[serde(default)]
    pub query_conditions: QueryConditions,
}

/// Filters of `listTask`; every member is optional and omitted when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryConditions {
    /// Statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_status: Option<Vec<TaskStatus>>,
    /// Names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<Vec<String>>,
    /// Script template.
    #[serde(rename = "sceneID", default, skip_serializing_if = "Option::is_none")]
    pub scene_id: Option<String>,
    /// Caller task IDs.
    #[serde(
        rename = "userTaskID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_task_id: Option<Vec<String>>,
    /// Created at or after, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ts: Option<i64>,
    /// Created before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ts: Option<i64>,
}

/// Response of `listTask`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListTaskResponse {
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub ret_code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub ret_msg: String,
    /// Tracing ID.
    #[serde(rename = "responseID", deserialize_with = "null_default")]
    pub response_id: String,
    /// The page of tasks.
    #[serde(deserialize_with = "null_default")]
    pub task_data: Vec<TaskData>,
}

/// One task of `listTask`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskData {
    /// Caller's task ID.
    #[serde(rename = "userTaskID", deserialize_with = "null_default")]
    pub user_task_id: String,
    /// Platform task ID.
    #[serde(rename = "taskID", deserialize_with = "null_default")]
    pub task_id: String,
    /// Script template ID.
    #[serde(rename = "sceneID", deserialize_with = "null_default")]
    pub scene_id: String,
    /// Status.
    pub task_status: Option<TaskStatus>,
    /// Creation time, Unix seconds.
    pub create_ts: Option<i64>,
    /// Statistics.
    pub task_stat: Option<TaskStat>,
}

/// Task statistics (listTask and the task callback). Rates are rounded to 2 decimals by the platform.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskStat {
    /// Orders answered at least once.
    #[serde(deserialize_with = "null_default")]
    pub answer_order_count: i64,
    /// Orders finished.
    #[serde(deserialize_with = "null_default")]
    pub finish_order_count: i64,
    /// All orders.
    #[serde(deserialize_with = "null_default")]
    pub total_order_count: i64,
    /// finish / total.
    #[serde(deserialize_with = "null_default")]
    pub finish_rate: f64,
    /// Calls answered.
    #[serde(deserialize_with = "null_default")]
    pub total_answer_call: i64,
    /// Calls placed.
    #[serde(deserialize_with = "null_default")]
    pub total_call: i64,
    /// answered / placed.
    #[serde(deserialize_with = "null_default")]
    pub answer_rate: f64,
}

// ---------------------------------------------------------------------------------------------------------------
// ping
// ---------------------------------------------------------------------------------------------------------------

/// `ping`: liveness check; `data` is echoed back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PingRequest {
    /// Free text.
    #[serde(default, deserialize_with = "null_default")]
    pub data: String,
}

/// Response of `ping`, which has its own envelope (`code`/`msg`/`reqId`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PingResponse {
    /// Echo of the request.
    #[serde(deserialize_with = "null_default")]
    pub data: String,
    /// Server time, Unix seconds.
    pub timestamp: Option<i64>,
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub msg: String,
    /// Tracing ID.
    #[serde(deserialize_with = "null_default")]
    pub req_id: String,
}

impl Envelope for PingResponse {
    fn ret_code(&self) -> i64 {
        self.code
    }
    fn ret_msg(&self) -> &str {
        &self.msg
    }
    fn response_id(&self) -> &str {
        &self.req_id
    }
}

envelope!(
    CreateAndCallResponse,
    AddBatchCallResponse,
    UpdateTaskResponse,
    MgrTaskStatusResponse,
    ListOrderDetailResponse,
    StopOrderResponse,
    ListTaskResponse,
    CallbackAck
);

request! {
    CreateAndCallRequest => CreateAndCallResponse, CreateAndCall;
    AddBatchCallRequest => AddBatchCallResponse, AddBatchCall;
    UpdateTaskRequest => UpdateTaskResponse, UpdateTask;
    MgrTaskStatusRequest => MgrTaskStatusResponse, MgrTaskStatus;
    StopOrderRequest => StopOrderResponse, StopOrder;
    ListTaskRequest => ListTaskResponse, ListTask;
}

impl ApiRequest for ListOrderDetailRequest {
    const ENDPOINT: Endpoint = Endpoint::ListOrderDetail;
    type Response = ListOrderDetailResponse;
    fn check(&self) -> Result<(), String> {
        check_product_id(&self.product_id)?;
        if self.order_list.len() > LIST_ORDER_DETAIL_MAX {
            return Err(format!(
                "orderList has {} order IDs; the platform allows at most {LIST_ORDER_DETAIL_MAX} per request",
                self.order_list.len()
            ));
        }
        Ok(())
    }
}

impl ApiRequest for PingRequest {
    const ENDPOINT: Endpoint = Endpoint::Ping;
    type Response = PingResponse;
    const RESULT_FIELD: &'static str = "code";
}

// ---------------------------------------------------------------------------------------------------------------
// Callbacks (platform -> customer)
// ---------------------------------------------------------------------------------------------------------------

/// The body a callback receiver answers with (the task-callback page's response example).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallbackAck {
    /// 0 on success.
    #[serde(deserialize_with = "null_default")]
    pub ret_code: i64,
    /// Message.
    #[serde(deserialize_with = "null_default")]
    pub ret_msg: String,
    /// Tracing ID.
    #[serde(rename = "responseID", deserialize_with = "null_default")]
    pub response_id: String,
}

fn task_callback_type() -> CallbackType {
    CallbackType::Task
}
fn order_callback_type() -> CallbackType {
    CallbackType::Order
}
fn call_callback_type() -> CallbackType {
    CallbackType::Call
}

/// Task callback (`callbackType` 1), sent to `taskCallbackUrl` when the task's status changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCallback {
    /// Always `Task`.
    #[serde(default = "task_callback_type")]
    pub callback_type: CallbackType,
    /// Caller's task ID.
    #[serde(rename = "userTaskID", default, deserialize_with = "null_default")]
    pub user_task_id: String,
    /// Platform task ID.
    #[serde(rename = "taskID", default, deserialize_with = "null_default")]
    pub task_id: String,
    /// Script template ID.
    #[serde(rename = "sceneID", default, deserialize_with = "null_default")]
    pub scene_id: String,
    /// New status.
    #[serde(default)]
    pub task_status: Option<TaskStatus>,
    /// Task creation time, Unix seconds.
    #[serde(default)]
    pub create_ts: Option<i64>,
    /// Statistics.
    #[serde(default)]
    pub task_stat: Option<TaskStat>,
}

/// Order callback (`callbackType` 2), sent to `orderCallbackUrl` when a round or the whole order ends.
/// The vendor page types `callbackType` as a string here, so it is serialized as `"2"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCallback {
    /// Always `Order`.
    #[serde(
        default = "order_callback_type",
        serialize_with = "CallbackType::serialize_as_string"
    )]
    pub callback_type: CallbackType,
    /// Order ID.
    #[serde(rename = "orderID", default, deserialize_with = "null_default")]
    pub order_id: String,
    /// Number.
    #[serde(default, deserialize_with = "null_default")]
    pub user_phone: String,
    /// User name.
    #[serde(default, deserialize_with = "null_default")]
    pub user_name: String,
    /// Script template ID.
    #[serde(rename = "sceneID", default, deserialize_with = "null_default")]
    pub scene_id: String,
    /// Caller's task ID.
    #[serde(rename = "userTaskID", default, deserialize_with = "null_default")]
    pub user_task_id: String,
    /// Platform task ID.
    #[serde(rename = "taskID", default, deserialize_with = "null_default")]
    pub task_id: String,
    /// The order is complete; no further rounds follow.
    #[serde(default)]
    pub finish: Option<bool>,
    /// Passthrough.
    #[serde(default, deserialize_with = "null_default")]
    pub other: String,
    /// The call this callback reports.
    #[serde(default)]
    pub call_info_detail: Option<CallInfoDetail>,
}

/// Call callback (`callbackType` 3), sent to `callCallbackUrl` per call. Same shape as the order callback, with an
/// integer `callbackType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCallback {
    /// Always `Call`.
    #[serde(default = "call_callback_type")]
    pub callback_type: CallbackType,
    /// Order ID.
    #[serde(rename = "orderID", default, deserialize_with = "null_default")]
    pub order_id: String,
    /// Number.
    #[serde(default, deserialize_with = "null_default")]
    pub user_phone: String,
    /// User name.
    #[serde(default, deserialize_with = "null_default")]
    pub user_name: String,
    /// Script template ID.
    #[serde(rename = "sceneID", default, deserialize_with = "null_default")]
    pub scene_id: String,
    /// Caller's task ID.
    #[serde(rename = "userTaskID", default, deserialize_with = "null_default")]
    pub user_task_id: String,
    /// Platform task ID.
    #[serde(rename = "taskID", default, deserialize_with = "null_default")]
    pub task_id: String,
    /// The order is complete; no further rounds follow.
    #[serde(default)]
    pub finish: Option<bool>,
    /// Passthrough.
    #[serde(default, deserialize_with = "null_default")]
    pub other: String,
    /// The call this callback reports.
    #[serde(default)]
    pub call_info_detail: Option<CallInfoDetail>,
}

/// Any callback, told apart by `callbackType`.
#[derive(Debug, Clone, PartialEq)]
pub enum Callback {
    /// `callbackType` 1.
    Task(TaskCallback),
    /// `callbackType` 2.
    Order(OrderCallback),
    /// `callbackType` 3.
    Call(CallCallback),
}

/// A callback body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackParseError {
    /// Not a JSON object, or a field has the wrong type.
    #[error("callback body is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// The body has no `callbackType`.
    #[error("callback body has no `callbackType`")]
    MissingType,
    /// `callbackType` is not 1, 2 or 3.
    #[error("unknown callbackType {0}")]
    UnknownType(i64),
}

impl Callback {
    /// Parses a callback body, dispatching on `callbackType` (a number or a string holding one).
    pub fn parse(body: &[u8]) -> Result<Callback, CallbackParseError> {
        let value: serde_json::Value = serde_json::from_slice(body)?;
        let ty = value
            .get("callbackType")
            .filter(|v| !v.is_null())
            .ok_or(CallbackParseError::MissingType)?;
        let ty = CallbackType::deserialize(ty)?;
        Ok(match ty {
            CallbackType::Task => Callback::Task(serde_json::from_value(value)?),
            CallbackType::Order => Callback::Order(serde_json::from_value(value)?),
            CallbackType::Call => Callback::Call(serde_json::from_value(value)?),
            CallbackType::Unknown(c) => return Err(CallbackParseError::UnknownType(c)),
        })
    }

    /// Its `callbackType`.
    pub fn callback_type(&self) -> CallbackType {
        match self {
            Callback::Task(_) => CallbackType::Task,
            Callback::Order(_) => CallbackType::Order,
            Callback::Call(_) => CallbackType::Call,
        }
    }

    /// The caller's task ID it concerns.
    pub fn user_task_id(&self) -> &str {
        match self {
            Callback::Task(c) => &c.user_task_id,
            Callback::Order(c) => &c.user_task_id,
            Callback::Call(c) => &c.user_task_id,
        }
    }
}

impl Serialize for Callback {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Callback::Task(c) => c.serialize(s),
            Callback::Order(c) => c.serialize(s),
            Callback::Call(c) => c.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests;
