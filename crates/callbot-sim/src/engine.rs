//! The platform's state and its discrete-event clock: tasks, orders, calls, and the callbacks they cause.
//!
//! Nothing here reads a clock or does I/O. Every operation takes `now`; [`Engine::advance_to`] processes, in time
//! order, every event up to a target instant (scheduled starts, window boundaries, call ends, delayed settings,
//! redials), so a test can jump a week and calls still start at the instants they would have in real time.
//!
//! Orders are held compactly by `crate::orders` and the requests that brought them by `crate::requests`; accepting
//! an order costs the same whatever the engine already holds (issue 15: ten million orders in under 5 GB).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::{Value, json};

use crate::fields::{Fields, Reject, check_phone, product_id};
use crate::orders::{NewOrder, OrderBook, OrderIdx, OrderRef, OrderState};
use crate::outcome::{Outcome, OutcomeConfig, transcript};
use crate::requests::{RequestInfo, RequestLog, Submission};
use crate::waiting::Waiting;
use crate::window::DialWindow;

/// Vendor task statuses.
pub(crate) mod status {
    pub const PENDING: i64 = 1;
    pub const RUNNING: i64 = 2;
    pub const COMPLETED: i64 = 3;
    pub const FAILED: i64 = 4;
    pub const PAUSED: i64 = 5;

    pub fn name(s: i64) -> &'static str {
        match s {
            PENDING => "pending",
            RUNNING => "running",
            COMPLETED => "completed",
            FAILED => "failed",
            PAUSED => "paused",
            _ => "unknown",
        }
    }
}

/// Latest accepted `startupAt`; anything above looks like milliseconds.
const MAX_STARTUP_AT_SECS: i64 = 100_000_000_000;

/// Engine limits and behaviour, from [`crate::SimConfig`].
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub call_list_limit: usize,
    pub order_list_limit: usize,
    pub apply_delay: Duration,
    pub speed: f64,
    pub seed: u64,
    pub outcomes: OutcomeConfig,
}

/// One change of a task's status.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusChange {
    /// Sim time of the change.
    pub at: DateTime<Utc>,
    /// Previous status (`None` at creation).
    pub from: Option<i64>,
    /// New status.
    pub to: i64,
    /// Why: `created`, `mgrTaskStatus start`, `scheduled start`, `all orders finished`, ...
    pub cause: String,
}

/// The settings of a task the simulator acts on, parsed from `taskCreateSetting` and `funcFlag`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSettings {
    /// `taskCreateSetting` as last sent (merged across updates).
    pub task_create_setting: Value,
    /// `funcFlag` as last sent (merged across updates).
    pub func_flag: Value,
    pub zone_second: i64,
    pub dial_at_week_day: String,
    pub dial_at_up_hour: String,
    pub dial_at_down_hour: String,
    pub max_call: u32,
    pub startup_type: i64,
    pub startup_at: i64,
    pub max_ring_time: u64,
    pub task_callback_url: Option<String>,
    pub task_keep: bool,
    pub round_redial: bool,
    #[serde(skip)]
    pub(crate) window: DialWindow,
}

/// One version of a task's settings: when it was requested and when it governs dialling.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsVersion {
    /// 1 for the settings the task was created with, then one more per accepted updateTask.
    pub version: u32,
    /// Sim time of the request.
    pub requested_at: DateTime<Utc>,
    /// Sim time from which these settings govern dialling (`requested_at` + apply delay for updates).
    pub effective_at: DateTime<Utc>,
    /// requestID of the request that set them.
    pub request_id: String,
    pub settings: TaskSettings,
}

/// Statistics as the vendor's `taskStat`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TaskStat {
    pub answer_order_count: u64,
    pub finish_order_count: u64,
    pub total_order_count: u64,
    pub finish_rate: f64,
    pub total_answer_call: u64,
    pub total_call: u64,
    pub answer_rate: f64,
}

/// A task as the simulator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub account: String,
    pub user_task_id: String,
    pub task_id: String,
    pub scene_id: String,
    pub created_at: DateTime<Utc>,
    pub status: i64,
    pub status_name: &'static str,
    pub status_history: Vec<StatusChange>,
    /// Every settings version, oldest first.
    pub settings: Vec<SettingsVersion>,
    /// The version governing dialling at the engine's current time.
    pub effective_version: u32,
    pub stat: TaskStat,
    pub active_calls: u32,
}

/// An order as the simulator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub user_task_id: String,
    pub phone: String,
    pub state: OrderState,
    pub finish: bool,
    pub call_ids: Vec<String>,
    pub submitted_at: DateTime<Utc>,
    pub request_id: String,
}

/// One placed call, logged when it starts and completed when it ends, as [`Engine::calls`] gives it: the order's,
/// the task's and the settings version's fields are copied in, so a test can check the call on its own.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub call_id: String,
    pub order_id: String,
    pub user_task_id: String,
    pub account: String,
    pub phone: String,
    /// 1 for the first call of the order, 2 for a roundRedial redial.
    pub round: u32,
    pub start_utc: DateTime<Utc>,
    /// Start in the task's local time (UTC + zoneSecond of the effective settings).
    pub start_local: NaiveDateTime,
    /// The settings version that governed the start, and its window.
    pub settings_version: u32,
    pub zone_second: i64,
    pub dial_at_week_day: String,
    pub dial_at_up_hour: String,
    pub dial_at_down_hour: String,
    pub max_call: u32,
    /// Calls of the task in progress when this one started, itself included.
    pub concurrent_at_start: u32,
    /// Task status at the start (always running).
    pub task_status: i64,
    pub answer_utc: Option<DateTime<Utc>>,
    pub end_utc: Option<DateTime<Utc>>,
    /// 5 (in call) until the end, then the final status.
    pub call_status: i64,
    pub outcome: Outcome,
    /// Talk seconds, as reported in `callDuration`.
    pub call_duration: u64,
}

/// One placed call as the engine keeps it: what was sampled and observed for it, in a few words (at most 80 bytes,
/// no allocation). Everything else a [`CallRecord`] or a report says is found from its order, its task and the
/// settings version that governed its start, so one simulator holds millions of calls.
#[derive(Debug, Clone)]
struct Call {
    /// The order called.
    order: OrderIdx,
    /// The governing settings version's place in its task's `settings`.
    settings: u32,
    /// Calls of the task in progress when this one started, itself included.
    concurrent_at_start: u32,
    /// Talk seconds, as reported in `callDuration`.
    call_duration: u32,
    /// 1 for the first call of the order, 2 for a roundRedial redial.
    round: u8,
    outcome: Outcome,
    /// Task status at the start (always running).
    task_status: i64,
    start_utc: DateTime<Utc>,
    answer_utc: Option<DateTime<Utc>>,
    end_utc: Option<DateTime<Utc>>,
    /// What the call's report says beyond the fields above, as sampled when it was placed: an answered call's
    /// intent (how it hung up follows from its outcome). The report's JSON is built when it is asked for
    /// ([`Engine::call_report`]).
    intent: Option<&'static (&'static str, &'static str, i64)>,
}

impl Call {
    /// 5 (in call) until the end, then the final status.
    fn call_status(&self) -> i64 {
        if self.end_utc.is_some() {
            self.outcome.call_status()
        } else {
            5
        }
    }
}

/// The ID of call `idx` of the call log.
fn call_id(idx: usize) -> String {
    format!("sim-call-{}", idx + 1)
}

/// The call-log index a [`call_id`] names; `None` for an ID the simulator never gives.
fn call_idx(id: &str) -> Option<usize> {
    let n: usize = id.strip_prefix("sim-call-")?.parse().ok()?;
    let idx = n.checked_sub(1)?;
    (call_id(idx) == id).then_some(idx)
}

/// A callback the engine wants delivered.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub account: String,
    pub url: String,
    pub callback_type: u8,
    pub body: Value,
}

/// Result of importing a callList.
#[derive(Debug, Clone)]
pub(crate) struct Imported {
    pub task_id: String,
    pub total: usize,
    pub success: usize,
    /// `(phone, orderID, errMsg)` of every item not imported (stopOrder: phone empty).
    pub err_list: Vec<(String, String, String)>,
}

#[derive(Debug)]
struct Task {
    account: String,
    user_task_id: String,
    task_id: String,
    scene_id: String,
    created_at: DateTime<Utc>,
    status: i64,
    history: Vec<StatusChange>,
    settings: Vec<SettingsVersion>,
    /// Its orders in upload order.
    orders: Vec<OrderIdx>,
    /// Its orders in state Waiting.
    waiting: Waiting,
    active_calls: u32,
}

impl Task {
    fn effective(&self, t: DateTime<Utc>) -> &SettingsVersion {
        &self.settings[self.effective_index(t)]
    }

    /// Where the version in force at `t` is in `settings`: the last that took effect by then, else the first.
    fn effective_index(&self, t: DateTime<Utc>) -> usize {
        self.settings
            .iter()
            .rposition(|v| v.effective_at <= t)
            .unwrap_or(0)
    }

    /// The settings an updateTask merges onto: the latest requested.
    fn latest(&self) -> &SettingsVersion {
        self.settings.last().unwrap_or(&self.settings[0])
    }

    fn is_final(&self) -> bool {
        matches!(self.status, status::COMPLETED | status::FAILED)
    }
}

/// Something due at an instant. Tasks are named by their index in `Engine::tasks`, calls by theirs in the call log.
#[derive(Debug, Clone)]
enum Event {
    CallEnd(usize),
    SettingsEffective(usize),
    ScheduledStart(usize),
    Wake,
}

/// The simulated platform.
#[derive(Debug)]
pub(crate) struct Engine {
    cfg: EngineConfig,
    rng: StdRng,
    now: DateTime<Utc>,
    /// Tasks in creation order, and their indices by userTaskID.
    tasks: Vec<Task>,
    task_index: HashMap<String, usize>,
    orders: OrderBook,
    /// The requests that carried orders, accepted or not.
    requests: RequestLog,
    calls: Vec<Call>,
    events: BTreeMap<(DateTime<Utc>, u64), Event>,
    seq: u64,
    outbox: Vec<Outgoing>,
}

impl Engine {
    pub fn new(cfg: EngineConfig, now: DateTime<Utc>) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            rng,
            now,
            tasks: Vec::new(),
            task_index: HashMap::new(),
            orders: OrderBook::new(),
            requests: RequestLog::default(),
            calls: Vec::new(),
            events: BTreeMap::new(),
            seq: 0,
            outbox: Vec::new(),
        }
    }

    /// The instant up to which events have been processed.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Callbacks produced since the last call.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    pub fn set_speed(&mut self, speed: f64) {
        self.cfg.speed = speed;
    }

    // ---------------------------------------------------------------- time

    /// Processes every event up to `target` in time order. A target before the engine's time is ignored (the
    /// engine's time never goes backwards).
    pub fn advance_to(&mut self, target: DateTime<Utc>) {
        loop {
            let next_event = self.events.first_key_value().map(|(k, _)| k.0);
            let next_boundary = self.next_window_boundary();
            let next = match (next_event, next_boundary) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    while let Some(entry) = self.events.first_entry() {
                        if entry.key().0 > self.now {
                            break;
                        }
                        let event = entry.remove();
                        self.process(event);
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        if target > self.now {
            self.now = target;
        }
        self.settle();
    }

    /// The earliest local half-hour boundary after now of a running task that has orders waiting.
    fn next_window_boundary(&self) -> Option<DateTime<Utc>> {
        self.tasks
            .iter()
            .filter(|t| t.status == status::RUNNING && !t.waiting.is_empty())
            .filter_map(|t| {
                let w = &t.effective(self.now).settings.window;
                (!w.is_never_open()).then(|| w.next_boundary(self.now))
            })
            .min()
    }

    fn schedule(&mut self, at: DateTime<Utc>, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    fn process(&mut self, event: Event) {
        match event {
            Event::CallEnd(idx) => self.end_call(idx),
            Event::SettingsEffective(t) => self.settings_took_effect(t),
            Event::ScheduledStart(t) => self.scheduled_start(t),
            Event::Wake => {}
        }
    }

    /// After anything changed: auto-complete finished tasks, then start every call that may start now.
    fn settle(&mut self) {
        for t in 0..self.tasks.len() {
            self.maybe_auto_complete(t);
        }
        for t in 0..self.tasks.len() {
            self.dispatch(t);
        }
    }

    fn maybe_auto_complete(&mut self, t: usize) {
        let now = self.now;
        let Some(task) = self.tasks.get(t) else {
            return;
        };
        if task.status != status::RUNNING
            || task.effective(now).settings.task_keep
            || task.active_calls > 0
        {
            return;
        }
        // Every order is Waiting (and then in `waiting`), InCall (counted in `active_calls`) or finished.
        let all_done = task.waiting.is_empty();

        if all_done {
            self.set_status(
                t,
                status::COMPLETED,
                "all orders finished (no funcFlag.taskKeep)",
            );
        }
    }

    fn dispatch(&mut self, t: usize) {
        let now = self.now;
        loop {
            let Some(task) = self.tasks.get_mut(t) else {
                return;
            };
            if task.status != status::RUNNING {
                return;
            }
            let eff = task.effective(now);
            if !eff.settings.window.allows(now) || task.active_calls >= eff.settings.max_call {
                return;
            }
            let next = task.waiting.next(&task.orders, &self.orders, now);
            let Some(o) = next else { return };
            self.place_call(t, o);
        }
    }

    /// Starts a call to order `oi` of task `t`, which leaves the task's waiting set whatever happens.
    fn place_call(&mut self, t: usize, oi: OrderIdx) {
        let now = self.now;
        let speed = self.cfg.speed;
        let idx = self.calls.len();
        let Some(task) = self.tasks.get_mut(t) else {
            return;
        };
        task.waiting.left(oi, &task.orders);
        let Some(order) = self.orders.get_mut(oi) else {
            return;
        };
        let Some(round) = order.calls.push(idx) else {
            // Never happens: an order is dialled twice at most (one roundRedial redial).
            order.state = OrderState::Finished;
            return;
        };
        order.state = OrderState::InCall;
        task.active_calls += 1;
        let settings = task.effective_index(now);
        let max_ring_time = task.settings[settings].settings.max_ring_time;
        let Some(phone) = self.orders.get(oi).map(|o| o.phone()) else {
            return;
        };
        let s = self
            .cfg
            .outcomes
            .sample(&mut self.rng, phone, max_ring_time, speed);
        let end = now + Duration::from_std(s.total).unwrap_or(Duration::seconds(1));
        let answer = s
            .answer_after
            .map(|a| now + Duration::from_std(a).unwrap_or(Duration::zero()));
        self.calls.push(Call {
            order: oi,
            settings: u32::try_from(settings).unwrap_or(0),
            concurrent_at_start: task.active_calls,
            call_duration: u32::try_from(s.talk_secs).unwrap_or(u32::MAX),
            round: u8::try_from(round).unwrap_or(u8::MAX),
            outcome: s.outcome,
            task_status: task.status,
            start_utc: now,
            answer_utc: answer,
            end_utc: None,
            intent: s.intent,
        });
        tracing::debug!(call.idx = idx, order.idx = oi, task.user_id = %task.user_task_id, "sim placed a call");
        self.schedule(end, Event::CallEnd(idx));
    }

    fn end_call(&mut self, idx: usize) {
        let now = self.now;
        let redial_after =
            Duration::seconds(i64::try_from(self.cfg.outcomes.redial_after_secs).unwrap_or(60));
        let Some(call) = self.calls.get_mut(idx) else {
            return;
        };
        call.end_utc = Some(now);
        let (oi, outcome, round) = (call.order, call.outcome, call.round);
        let Some(order) = self.orders.get_mut(oi) else {
            return;
        };
        let Some(task) = self.tasks.get_mut(order.task as usize) else {
            return;
        };
        task.active_calls = task.active_calls.saturating_sub(1);
        let redial = task.effective(now).settings.round_redial;
        let again = redial
            && outcome.is_redialable()
            && round == 1
            && !order.stop_requested
            && !task.is_final();
        if again {
            order.state = OrderState::Waiting;
            order.not_before = now + redial_after;
            task.waiting.redial(oi);
            let at = order.not_before;
            self.schedule(at, Event::Wake);
        } else if order.stop_requested {
            order.state = OrderState::Stopped;
        } else {
            order.state = OrderState::Finished;
        }
        self.emit_call_callbacks(idx);
    }

    fn settings_took_effect(&mut self, t: usize) {
        let now = self.now;
        let Some(task) = self.tasks.get(t) else {
            return;
        };
        if task.status == status::PENDING {
            let s = &task.effective(now).settings;
            match s.startup_type {
                3 => self.set_status(t, status::RUNNING, "startupType 3 (immediate) took effect"),
                2 => {
                    let at = DateTime::from_timestamp(s.startup_at, 0)
                        .unwrap_or(now)
                        .max(now);
                    self.schedule(at, Event::ScheduledStart(t));
                }
                _ => {}
            }
        }
    }

    fn scheduled_start(&mut self, t: usize) {
        let now = self.now;
        let Some(task) = self.tasks.get(t) else {
            return;
        };
        let s = &task.effective(now).settings;
        if task.status == status::PENDING && s.startup_type == 2 && s.startup_at <= now.timestamp()
        {
            self.set_status(
                t,
                status::RUNNING,
                "scheduled start (startupType 2 at startupAt)",
            );
        }
    }

    fn set_status(&mut self, t: usize, to: i64, cause: &str) {
        let now = self.now;
        let Some(task) = self.tasks.get_mut(t) else {
            return;
        };
        let from = task.status;
        if from == to {
            return;
        }
        task.status = to;
        task.history.push(StatusChange {
            at: now,
            from: Some(from),
            to,
            cause: cause.to_owned(),
        });
        tracing::debug!(task.user_id = %task.user_task_id, from = status::name(from), to = status::name(to), cause, "sim task status");
        if to == status::COMPLETED || to == status::FAILED {
            // Nothing waits any more; what has not been dialled stays undialled.
            for oi in task.waiting.take_all(&task.orders, &self.orders) {
                if let Some(o) = self.orders.get_mut(oi) {
                    o.state = OrderState::Stopped;
                }
            }
        }
        self.emit_task_callback(t);
    }

    // ---------------------------------------------------------------- callbacks

    fn stat(&self, task: &Task) -> TaskStat {
        let mut s = TaskStat {
            answer_order_count: 0,
            finish_order_count: 0,
            total_order_count: 0,
            finish_rate: 0.0,
            total_answer_call: 0,
            total_call: 0,
            answer_rate: 0.0,
        };
        for o in task.orders.iter().filter_map(|&o| self.orders.get(o)) {
            if o.state == OrderState::Deleted {
                continue;
            }
            s.total_order_count += 1;
            s.finish_order_count += u64::from(o.finish());
            let answered = o
                .calls
                .iter()
                .filter(|&c| self.calls.get(c).is_some_and(|c| c.call_status() == 6))
                .count() as u64;
            s.answer_order_count += u64::from(answered > 0);
            s.total_answer_call += answered;
            s.total_call += o.calls.len() as u64;
        }
        let rate = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                (a as f64 / b as f64 * 100.0).round() / 100.0
            }
        };
        s.finish_rate = rate(s.finish_order_count, s.total_order_count);
        s.answer_rate = rate(s.total_answer_call, s.total_call);
        s
    }

    fn task_json(&self, task: &Task) -> Value {
        let s = self.stat(task);
        json!({
            "userTaskID": task.user_task_id,
            "taskID": task.task_id,
            "sceneID": task.scene_id,
            "taskStatus": task.status,
            "createTs": task.created_at.timestamp(),
            "taskStat": {
                "answerOrderCount": s.answer_order_count,
                "finishOrderCount": s.finish_order_count,
                "totalOrderCount": s.total_order_count,
                "finishRate": s.finish_rate,
                "totalAnswerCall": s.total_answer_call,
                "totalCall": s.total_call,
                "answerRate": s.answer_rate,
            }
        })
    }

    fn emit_task_callback(&mut self, t: usize) {
        let Some(task) = self.tasks.get(t) else {
            return;
        };
        let Some(url) = task.effective(self.now).settings.task_callback_url.clone() else {
            return;
        };
        let mut body = self.task_json(task);
        body["callbackType"] = json!(1);
        self.outbox.push(Outgoing {
            account: task.account.clone(),
            url,
            callback_type: 1,
            body,
        });
    }

    fn emit_call_callbacks(&mut self, idx: usize) {
        let Some(call) = self.calls.get(idx) else {
            return;
        };
        let Some(order) = self.orders.get(call.order) else {
            return;
        };
        let Some(task) = self.tasks.get(order.task as usize) else {
            return;
        };
        let Some(request) = self.requests.get(order.request) else {
            return;
        };
        let mut base = self.order_json(task, order);
        let mut detail = self.call_report(idx, call);
        if !request.call_callback_url.is_empty() {
            let mut body = base.clone();
            body["callbackType"] = json!(3);
            body["callInfoDetail"] = detail.clone();
            self.outbox.push(Outgoing {
                account: task.account.clone(),
                url: request.call_callback_url.to_string(),
                callback_type: 3,
                body,
            });
        }
        if !request.order_callback_url.is_empty() {
            if let Some(d) = detail.as_object_mut() {
                d.remove("callingNumber");
                d.remove("lineAddress");
            }
            // The vendor's orderCallback page types callbackType as a string.
            base["callbackType"] = json!("2");
            base["callInfoDetail"] = detail;
            self.outbox.push(Outgoing {
                account: task.account.clone(),
                url: request.order_callback_url.to_string(),
                callback_type: 2,
                body: base,
            });
        }
    }

    // ---------------------------------------------------------------- requests

    /// The task named by the body's `userTaskID`, if `account` owns it.
    fn owned_task(&self, account: &str, body: &Fields<'_>) -> Result<usize, Reject> {
        let ut = body.str("userTaskID")?;
        self.task_index
            .get(ut)
            .copied()
            .filter(|&t| self.tasks.get(t).is_some_and(|t| t.account == account))
            .ok_or_else(|| {
                Reject::value(format!(
                    "userTaskID {ut:?} does not exist; create it with createAndCall first"
                ))
            })
    }

    fn refuse_final(task: &Task, operation: &str) -> Result<(), Reject> {
        if task.is_final() {
            return Err(Reject::new(
                1,
                format!(
                    "task {:?} is {} and refuses every operation ({operation})",
                    task.user_task_id,
                    status::name(task.status)
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a callList that would take the engine past what its 32-bit order numbers can count.
    fn check_room(&self, items: usize) -> Result<(), Reject> {
        let max = OrderIdx::MAX as usize;
        if self.orders.len().saturating_add(items) > max {
            return Err(Reject::new(
                4001,
                format!("the simulator holds at most {max} orders; start a new simulator"),
            ));
        }
        Ok(())
    }

    /// createAndCall (with `callInfoList`) and createTask (without).
    pub fn create_task(
        &mut self,
        account: &str,
        request_id: &str,
        body: &Value,
        with_calls: bool,
    ) -> Result<Imported, Reject> {
        let endpoint = if with_calls {
            "createAndCall"
        } else {
            "createTask"
        };
        let result = self.create_task_inner(account, request_id, body, with_calls, endpoint);
        if let Err(e) = &result {
            self.log_rejected_items(account, request_id, body, endpoint, &e.msg);
        }
        result
    }

    fn create_task_inner(
        &mut self,
        account: &str,
        request_id: &str,
        body: &Value,
        with_calls: bool,
        endpoint: &'static str,
    ) -> Result<Imported, Reject> {
        let now = self.now;
        let f = Fields::root(body)?;
        product_id(&f)?;
        let ut = f.str("userTaskID")?;
        if ut.is_empty() {
            return Err(Reject::value("userTaskID must not be empty"));
        }
        let scene = f.str("sceneID")?;
        if self.task_index.contains_key(ut) {
            return Err(Reject::value(format!(
                "userTaskID {ut:?} already exists; userTaskID must be unique"
            )));
        }
        let mut tcs = f.obj("taskCreateSetting")?.raw();
        let ff = f
            .opt_obj("funcFlag")?
            .map_or_else(|| json!({}), |o| o.raw());
        if !with_calls {
            // createTask carries the task callback URL at the top level.
            if let (Some(url), Some(obj)) = (f.opt_str("taskCallbackUrl")?, tcs.as_object_mut()) {
                obj.entry("taskCallbackUrl").or_insert_with(|| json!(url));
            }
        }
        let settings = parse_settings(tcs, ff)?;
        let (order_url, call_url, list) = if with_calls {
            let cil = f.obj("callInfoList")?;
            let list = cil.arr("callList")?;
            if list.len() > self.cfg.call_list_limit {
                return Err(Reject::new(
                    4001,
                    format!(
                        "callInfoList.callList has {} entries; at most {} per request",
                        list.len(),
                        self.cfg.call_list_limit
                    ),
                ));
            }
            (
                cil.str("orderCallbackUrl")?,
                cil.str("callCallbackUrl")?,
                list.as_slice(),
            )
        } else {
            (
                f.opt_str("orderCallbackUrl")?.unwrap_or_default(),
                f.opt_str("callCallbackUrl")?.unwrap_or_default(),
                &[][..],
            )
        };
        self.check_room(list.len())?;
        if settings.startup_type == 2 && settings.startup_at <= now.timestamp() {
            tracing::debug!(task.user_id = %ut, "startupAt is in the past; the task starts at once");
        }
        let t = self.tasks.len();
        let task_id = format!("sim-task-{}", t + 1);
        let startup_type = settings.startup_type;
        let startup_at = settings.startup_at;
        self.tasks.push(Task {
            account: account.to_owned(),
            user_task_id: ut.to_owned(),
            task_id: task_id.clone(),
            scene_id: scene.to_owned(),
            created_at: now,
            status: status::PENDING,
            history: vec![StatusChange {
                at: now,
                from: None,
                to: status::PENDING,
                cause: format!("{endpoint} (startupType {startup_type})"),
            }],
            settings: vec![SettingsVersion {
                version: 1,
                requested_at: now,
                effective_at: now,
                request_id: request_id.to_owned(),
                settings,
            }],
            orders: Vec::new(),
            waiting: Waiting::default(),
            active_calls: 0,
        });
        self.task_index.insert(ut.to_owned(), t);
        let imported = self.import(
            RequestInfo {
                at: now,
                request_id,
                endpoint,
                account,
                user_task_id: ut,
                order_callback_url: order_url,
                call_callback_url: call_url,
            },
            t,
            list,
        );
        match startup_type {
            3 => self.set_status(t, status::RUNNING, "startupType 3: immediate start"),
            2 => {
                let at = DateTime::from_timestamp(startup_at, 0)
                    .unwrap_or(now)
                    .max(now);
                self.schedule(at, Event::ScheduledStart(t));
            }
            _ => {}
        }
        self.settle();
        Ok(Imported {
            task_id,
            ..imported
        })
    }

    /// addBatchCall.
    pub fn add_batch_call(
        &mut self,
        account: &str,
        request_id: &str,
        body: &Value,
    ) -> Result<Imported, Reject> {
        let result = self.add_batch_inner(account, request_id, body);
        if let Err(e) = &result {
            self.log_rejected_items(account, request_id, body, "addBatchCall", &e.msg);
        }
        result
    }

    fn add_batch_inner(
        &mut self,
        account: &str,
        request_id: &str,
        body: &Value,
    ) -> Result<Imported, Reject> {
        let f = Fields::root(body)?;
        product_id(&f)?;
        let t = self.owned_task(account, &f)?;
        let task = &self.tasks[t];
        Self::refuse_final(task, "addBatchCall")?;
        let task_id = task.task_id.clone();
        let cil = f.obj("callInfoList")?;
        let list = cil.arr("callList")?;
        if list.len() > self.cfg.call_list_limit {
            return Err(Reject::new(
                4001,
                format!(
                    "callInfoList.callList has {} entries; at most {} per request",
                    list.len(),
                    self.cfg.call_list_limit
                ),
            ));
        }
        let order_url = cil.str("orderCallbackUrl")?;
        let call_url = cil.str("callCallbackUrl")?;
        self.check_room(list.len())?;
        let ut = f.str("userTaskID")?;
        let imported = self.import(
            RequestInfo {
                at: self.now,
                request_id,
                endpoint: "addBatchCall",
                account,
                user_task_id: ut,
                order_callback_url: order_url,
                call_callback_url: call_url,
            },
            t,
            list,
        );
        self.settle();
        Ok(Imported {
            task_id,
            ..imported
        })
    }

    /// Imports a callList into task `t`: each item becomes an order or an `errList` entry, and is logged either way.
    /// The work per item does not depend on how many orders the engine holds.
    fn import(&mut self, info: RequestInfo<'_>, t: usize, list: &[Value]) -> Imported {
        let mut err_list = Vec::new();
        let mut success = 0;
        let request = match list {
            [] => None,
            _ => self.requests.open(info, self.orders.len()),
        };
        let task_no = u32::try_from(t).ok();
        let mut seen_here = HashSet::with_capacity(list.len());
        for item in list {
            let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
            let (order_id, phone) = (text("orderID"), text("userPhone"));
            let problem = if order_id.is_empty() {
                Some("orderID is required".to_owned())
            } else if let Err(e) = check_phone(phone) {
                Some(e)
            } else if !seen_here.insert(order_id) {
                Some(format!(
                    "orderID {order_id:?} appears more than once in this request"
                ))
            } else if let Some(existing) =
                self.orders.find(order_id).and_then(|o| self.orders.get(o))
            {
                if task_no == Some(existing.task) {
                    Some(format!("orderID {order_id:?} already exists in this task"))
                } else {
                    Some(format!(
                        "orderID {order_id:?} already exists in another task; orderID must be globally unique"
                    ))
                }
            } else {
                None
            };
            let (Some(r), Some(task_no)) = (request, task_no) else {
                // Only past 2^32 logged requests or tasks, which no run reaches.
                err_list.push((
                    phone.to_owned(),
                    order_id.to_owned(),
                    "the simulator is full".to_owned(),
                ));
                continue;
            };
            let new = NewOrder {
                order_id,
                phone,
                user_name: text("userName"),
                other: text("other"),
                params: item.get("params"),
                task: task_no,
                request: r,
                at: info.at,
            };
            let accepted = match problem {
                Some(msg) => Err(msg),
                None => self.orders.push(new).ok_or_else(|| {
                    "the order's text is over 4 GiB, or the simulator is full".to_owned()
                }),
            };
            match accepted {
                Ok(o) => {
                    self.requests.accept(r, o);
                    if let Some(task) = self.tasks.get_mut(t) {
                        task.orders.push(o);
                        task.waiting.uploaded();
                    }
                    success += 1;
                }
                Err(msg) => {
                    self.requests
                        .refuse(r, order_id, phone, msg.as_str().into());
                    err_list.push((phone.to_owned(), order_id.to_owned(), msg));
                }
            }
        }
        Imported {
            task_id: String::new(),
            total: list.len(),
            success,
            err_list,
        }
    }

    fn log_rejected_items(
        &mut self,
        account: &str,
        request_id: &str,
        body: &Value,
        endpoint: &'static str,
        why: &str,
    ) {
        let ut = body
            .get("userTaskID")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let items = body
            .pointer("/callInfoList/callList")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if items.is_empty() {
            return;
        }
        let info = RequestInfo {
            at: self.now,
            request_id,
            endpoint,
            account,
            user_task_id: ut,
            order_callback_url: "",
            call_callback_url: "",
        };
        let Some(r) = self.requests.open(info, self.orders.len()) else {
            return;
        };
        let error: std::sync::Arc<str> = format!("request rejected: {why}").into();
        for item in items {
            let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
            self.requests
                .refuse(r, text("orderID"), text("userPhone"), error.clone());
        }
    }

    /// updateTask: only on pending or paused tasks; takes effect after the apply delay.
    pub fn update_task(
        &mut self,
        account: &str,
        request_id: &str,
        body: &Value,
    ) -> Result<String, Reject> {
        let now = self.now;
        let f = Fields::root(body)?;
        product_id(&f)?;
        let t = self.owned_task(account, &f)?;
        let task = &self.tasks[t];
        Self::refuse_final(task, "updateTask")?;
        if !matches!(task.status, status::PENDING | status::PAUSED) {
            return Err(Reject::new(
                1,
                format!(
                    "task {:?} is {}; updateTask works only on paused or not-started tasks: pause it first",
                    task.user_task_id,
                    status::name(task.status)
                ),
            ));
        }
        let latest = task.latest();
        let tcs = merge(
            &latest.settings.task_create_setting,
            f.opt_obj("taskCreateSetting")?.map(|o| o.raw()),
        );
        let ff = merge(
            &latest.settings.func_flag,
            f.opt_obj("funcFlag")?.map(|o| o.raw()),
        );
        let settings = parse_settings(tcs, ff)?;
        let effective_at = now + self.cfg.apply_delay;
        let task = &mut self.tasks[t];
        let task_id = task.task_id.clone();
        let version = u32::try_from(task.settings.len() + 1).unwrap_or(u32::MAX);
        task.settings.push(SettingsVersion {
            version,
            requested_at: now,
            effective_at,
            request_id: request_id.to_owned(),
            settings,
        });
        self.schedule(effective_at, Event::SettingsEffective(t));
        self.settle();
        Ok(task_id)
    }

    /// mgrTaskStatus: 1 start, 2 pause, 3 complete.
    pub fn mgr_task_status(
        &mut self,
        account: &str,
        body: &Value,
    ) -> Result<(String, i64), Reject> {
        let f = Fields::root(body)?;
        product_id(&f)?;
        let t = self.owned_task(account, &f)?;
        let task = &self.tasks[t];
        Self::refuse_final(task, "mgrTaskStatus")?;
        let operate = f.i64("taskOperate")?;
        let del_call = f.opt_i64("delCall")?.unwrap_or(0);
        if !matches!(del_call, 0 | 1) {
            return Err(Reject::value(format!(
                "delCall must be 0 or 1, got {del_call}"
            )));
        }
        let from = task.status;
        match operate {
            1 => {
                if from != status::RUNNING {
                    self.set_status(t, status::RUNNING, "mgrTaskStatus start");
                }
            }
            2 => {
                if from != status::PAUSED {
                    self.set_status(t, status::PAUSED, "mgrTaskStatus pause");
                }
            }
            3 => {
                if del_call == 1 {
                    self.delete_undialled(t);
                }
                self.set_status(t, status::COMPLETED, "mgrTaskStatus complete");
            }
            other => {
                return Err(Reject::value(format!(
                    "taskOperate must be 1 (start), 2 (pause) or 3 (complete), got {other}"
                )));
            }
        }
        self.settle();
        let task = &self.tasks[t];
        Ok((task.task_id.clone(), task.status))
    }

    /// Marks the undialled waiting orders of a task as Deleted.
    fn delete_undialled(&mut self, t: usize) {
        let Some(task) = self.tasks.get_mut(t) else {
            return;
        };
        for oi in task.waiting.take_fresh(&task.orders, &self.orders) {
            if let Some(o) = self.orders.get_mut(oi) {
                o.state = OrderState::Deleted;
            }
        }
    }

    /// stopOrder: stops listed orders that are not finished; irreversible.
    pub fn stop_order(&mut self, account: &str, body: &Value) -> Result<Imported, Reject> {
        let f = Fields::root(body)?;
        product_id(&f)?;
        let t = self.owned_task(account, &f)?;
        let task = &self.tasks[t];
        Self::refuse_final(task, "stopOrder")?;
        let task_id = task.task_id.clone();
        let ids = f.strings("orderIDs")?;
        if ids.len() > self.cfg.call_list_limit {
            return Err(Reject::new(
                4001,
                format!(
                    "orderIDs has {} entries; at most {}",
                    ids.len(),
                    self.cfg.call_list_limit
                ),
            ));
        }
        let del_call = f.opt_i64("delCall")?.unwrap_or(0) == 1;
        let mut err_list = Vec::new();
        let mut success = 0;
        for id in &ids {
            let found = self
                .orders
                .find(id)
                .filter(|&o| self.orders.get(o).is_some_and(|o| o.task as usize == t));
            let Some(order) = found.and_then(|o| self.orders.get_mut(o)) else {
                err_list.push((
                    String::new(),
                    (*id).to_owned(),
                    format!("orderID {id:?} does not exist in this task"),
                ));
                continue;
            };
            match order.state {
                OrderState::Waiting => {
                    order.state = if del_call && order.calls.is_empty() {
                        OrderState::Deleted
                    } else {
                        OrderState::Stopped
                    };
                    if let (Some(task), Some(o)) = (self.tasks.get_mut(t), found) {
                        task.waiting.left(o, &task.orders);
                    }
                    success += 1;
                }
                OrderState::InCall => {
                    order.stop_requested = true;
                    success += 1;
                }
                OrderState::Stopped | OrderState::Deleted => success += 1,
                OrderState::Finished => {
                    err_list.push((
                        String::new(),
                        (*id).to_owned(),
                        format!("orderID {id:?} is already finished"),
                    ));
                }
            }
        }
        self.settle();
        Ok(Imported {
            task_id,
            total: ids.len(),
            success,
            err_list,
        })
    }

    /// The orders of task `t` named in `ids` that it holds, in the order named.
    fn named_orders<'s>(
        &'s self,
        t: usize,
        ids: &'s [&str],
    ) -> impl Iterator<Item = OrderRef<'s>> + 's {
        ids.iter()
            .filter_map(|id| self.orders.find(id))
            .filter_map(|o| self.orders.get(o))
            .filter(move |o| o.task as usize == t)
    }

    /// listOrderDetail: every call of up to `order_list_limit` orders of one task.
    pub fn list_order_detail(&self, account: &str, body: &Value) -> Result<Vec<Value>, Reject> {
        let f = Fields::root(body)?;
        product_id(&f)?;
        let t = self.owned_task(account, &f)?;
        let task = &self.tasks[t];
        let ids = f.strings("orderList")?;
        if ids.len() > self.cfg.order_list_limit {
            return Err(Reject::new(
                4001,
                format!(
                    "orderList has {} entries; at most {}",
                    ids.len(),
                    self.cfg.order_list_limit
                ),
            ));
        }
        Ok(self
            .named_orders(t, &ids)
            .filter(|o| o.state != OrderState::Deleted)
            .map(|o| {
                let mut v = self.order_json(task, o);
                v["callInfoDetailList"] =
                    Value::Array(o.calls.iter().map(|c| self.call_detail(c)).collect());
                v
            })
            .collect())
    }

    fn order_json(&self, task: &Task, o: OrderRef<'_>) -> Value {
        json!({
            "orderID": o.order_id(),
            "userPhone": o.phone(),
            "userName": o.user_name(),
            "sceneID": task.scene_id,
            "userTaskID": task.user_task_id,
            "taskID": task.task_id,
            "finish": o.finish(),
            "other": o.other(),
        })
    }

    /// A call's report (`callInfoDetail`) as it ends: its final status and times, the intent and the transcript of
    /// an answered call, and the order's `params`.
    fn call_report(&self, idx: usize, c: &Call) -> Value {
        let call_id = call_id(idx);
        let (hangup_cause, term_sip_code) = c.outcome.hangup_cause();
        let start_ts = c.start_utc.timestamp();
        let intents: Vec<Value> = c
            .intent
            .iter()
            .map(|(id, name, level)| json!({"intentID": id, "intentTag": id, "intentName": name, "intentLevel": level}))
            .collect();
        let record = c
            .intent
            .map(|&(_, name, _)| transcript(name, start_ts))
            .unwrap_or_default();
        let params = self
            .orders
            .get(c.order)
            .map_or_else(|| Value::Array(Vec::new()), |o| o.params());
        // The call's end once it came; a call still going on is shown by `call_detail`, which empties the final
        // fields.
        let end_ts = c.end_utc.unwrap_or(c.start_utc).timestamp();
        json!({
            "callID": call_id,
            "callingNumber": "10000000000",
            "lineAddress": "127.0.0.1",
            "callStatus": c.outcome.call_status(),
            "callStartTs": start_ts,
            "callAnswerTs": c.answer_utc.map_or(0, |a| a.timestamp()),
            "callEndTs": end_ts,
            "callDuration": c.call_duration,
            "callAudioUrl": if c.answer_utc.is_some() { format!("https://sim.invalid/audio/{call_id}.wav") } else { String::new() },
            "hangupCause": hangup_cause,
            "termSipCode": term_sip_code,
            "intents": intents,
            "sms": [],
            "agent": {
                "agentName": null, "agentGroup": null, "agentCallStatus": null, "agentCallElapsed": null,
                "agentLabel": null, "manualCallStart": null, "manualCallAnswer": null, "manualCallEnd": null,
                "manualHangupBy": 0
            },
            "params": params,
            "recordDetail": record,
        })
    }

    fn call_detail(&self, idx: usize) -> Value {
        let c = &self.calls[idx];
        let mut d = self.call_report(idx, c);
        if c.end_utc.is_none()
            && let Some(obj) = d.as_object_mut()
        {
            // In progress: the final fields are not known yet.
            obj.insert("callStatus".into(), json!(5));
            obj.insert("callEndTs".into(), json!(0));
            obj.insert("callDuration".into(), json!(0));
            obj.insert("intents".into(), json!([]));
            obj.insert("recordDetail".into(), json!([]));
            obj.insert("hangupCause".into(), json!(""));
            obj.insert("termSipCode".into(), json!(""));
            obj.insert("callAudioUrl".into(), json!(""));
        }
        d
    }

    /// listTask: tasks of the account, filtered, one page.
    pub fn list_task(&self, account: &str, body: &Value) -> Result<Vec<Value>, Reject> {
        let f = Fields::root(body)?;
        product_id(&f)?;
        let (page, size) = paging(&f)?;
        let q = f.opt_obj("queryConditions")?;
        let statuses: Option<Vec<i64>> =
            match q.and_then(|q| q.opt_arr(&["taskStatus"]).transpose()) {
                Some(a) => Some(a?.iter().filter_map(Value::as_i64).collect()),
                None => None,
            };
        let ids: Option<Vec<&str>> = match q.and_then(|q| q.opt_arr(&["userTaskID"]).transpose()) {
            Some(a) => Some(a?.iter().filter_map(Value::as_str).collect()),
            None => None,
        };
        Ok(self
            .tasks
            .iter()
            .filter(|t| t.account == account)
            .filter(|t| {
                statuses
                    .as_ref()
                    .is_none_or(|s| s.is_empty() || s.contains(&t.status))
            })
            .filter(|t| {
                ids.as_ref()
                    .is_none_or(|s| s.is_empty() || s.contains(&t.user_task_id.as_str()))
            })
            .skip((page - 1) * size)
            .take(size)
            .map(|t| self.task_json(t))
            .collect())
    }

    /// listOrder: orders of a task with their last call, filtered by `options.orderID` and `options.finish`.
    pub fn list_order(&self, account: &str, body: &Value) -> Result<Vec<Value>, Reject> {
        let f = Fields::root(body)?;
        product_id(&f)?;
        let task = &self.tasks[self.owned_task(account, &f)?];
        let (page, size) = paging(&f)?;
        let opts = f.opt_obj("options")?;
        let ids: Option<Vec<&str>> = match opts.and_then(|o| o.opt_arr(&["orderID"]).transpose()) {
            Some(a) => Some(a?.iter().filter_map(Value::as_str).collect()),
            None => None,
        };
        let finish = opts.map(|o| o.opt_i64("finish")).transpose()?.flatten();
        Ok(task
            .orders
            .iter()
            .filter_map(|&o| self.orders.get(o))
            .filter(|o| o.state != OrderState::Deleted)
            .filter(|o| {
                ids.as_ref()
                    .is_none_or(|s| s.is_empty() || s.contains(&o.order_id()))
            })
            .filter(|o| finish.is_none_or(|f| (f == 1) == o.finish()))
            .skip((page - 1) * size)
            .take(size)
            .map(|o| {
                let mut v = self.order_json(task, o);
                v["callInfoDetail"] = o.calls.last().map_or(Value::Null, |c| self.call_detail(c));
                v
            })
            .collect())
    }

    /// listCall: calls of a task, filtered by `options.callID`, `options.callStatus`, `options.startTs/endTs`.
    pub fn list_call(&self, account: &str, body: &Value) -> Result<Vec<Value>, Reject> {
        let f = Fields::root(body)?;
        product_id(&f)?;
        let t = self.owned_task(account, &f)?;
        let task = &self.tasks[t];
        let (page, size) = paging(&f)?;
        let opts = f.opt_obj("options")?;
        // The calls named, as call-log indices (an ID the simulator never gave names none); all of them when the
        // list names none.
        let ids: Option<(bool, HashSet<usize>)> =
            match opts.and_then(|o| o.opt_arr(&["callID"]).transpose()) {
                Some(a) => {
                    let named: Vec<&str> = a?.iter().filter_map(Value::as_str).collect();
                    Some((
                        named.is_empty(),
                        named.into_iter().filter_map(call_idx).collect(),
                    ))
                }
                None => None,
            };
        let statuses: Option<Vec<i64>> =
            match opts.and_then(|o| o.opt_arr(&["callStatus"]).transpose()) {
                Some(a) => Some(a?.iter().filter_map(Value::as_i64).collect()),
                None => None,
            };
        let start = opts
            .map(|o| o.opt_i64("startTs"))
            .transpose()?
            .flatten()
            .filter(|&t| t > 0);
        let end = opts
            .map(|o| o.opt_i64("endTs"))
            .transpose()?
            .flatten()
            .filter(|&t| t > 0);
        Ok(self
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                self.orders
                    .get(c.order)
                    .is_some_and(|o| o.task as usize == t)
            })
            .filter(|(i, _)| {
                ids.as_ref()
                    .is_none_or(|(all, named)| *all || named.contains(i))
            })
            .filter(|(_, c)| {
                statuses
                    .as_ref()
                    .is_none_or(|s| s.is_empty() || s.contains(&c.call_status()))
            })
            .filter(|(_, c)| start.is_none_or(|s| c.start_utc.timestamp() >= s))
            .filter(|(_, c)| end.is_none_or(|e| c.start_utc.timestamp() <= e))
            .skip((page - 1) * size)
            .take(size)
            .map(|(i, c)| {
                let mut v = self.call_detail(i);
                if let Some(o) = self.orders.get(c.order) {
                    v["orderID"] = json!(o.order_id());
                    v["userPhone"] = json!(o.phone());
                    v["userTaskID"] = json!(task.user_task_id);
                    v["taskID"] = json!(task.task_id);
                }
                v
            })
            .collect())
    }

    // ---------------------------------------------------------------- inspection and test controls

    pub fn tasks(&self) -> Vec<TaskView> {
        self.tasks
            .iter()
            .map(|t| TaskView {
                account: t.account.clone(),
                user_task_id: t.user_task_id.clone(),
                task_id: t.task_id.clone(),
                scene_id: t.scene_id.clone(),
                created_at: t.created_at,
                status: t.status,
                status_name: status::name(t.status),
                status_history: t.history.clone(),
                settings: t.settings.clone(),
                effective_version: t.effective(self.now).version,
                stat: self.stat(t),
                active_calls: t.active_calls,
            })
            .collect()
    }

    pub fn orders(&self) -> Vec<OrderView> {
        let mut v: Vec<OrderView> = self
            .tasks
            .iter()
            .flat_map(|t| {
                t.orders
                    .iter()
                    .filter_map(|&o| self.orders.get(o))
                    .map(move |o| (t, o))
            })
            .filter_map(|(t, o)| {
                let request = self.requests.get(o.request)?;
                Some(OrderView {
                    order_id: o.order_id().to_owned(),
                    user_task_id: t.user_task_id.clone(),
                    phone: o.phone().to_owned(),
                    state: o.state,
                    finish: o.finish(),
                    call_ids: o
                        .calls
                        .iter()
                        .filter(|&c| c < self.calls.len())
                        .map(call_id)
                        .collect(),
                    submitted_at: request.at,
                    request_id: request.request_id.to_string(),
                })
            })
            .collect();
        v.sort_by_key(|a| a.submitted_at);
        v
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls
            .iter()
            .enumerate()
            .filter_map(|(idx, c)| {
                let o = self.orders.get(c.order)?;
                let task = self.tasks.get(o.task as usize)?;
                let v = task.settings.get(c.settings as usize)?;
                Some(CallRecord {
                    call_id: call_id(idx),
                    order_id: o.order_id().to_owned(),
                    user_task_id: task.user_task_id.clone(),
                    account: task.account.clone(),
                    phone: o.phone().to_owned(),
                    round: u32::from(c.round),
                    start_utc: c.start_utc,
                    start_local: v.settings.window.local(c.start_utc),
                    settings_version: v.version,
                    zone_second: v.settings.zone_second,
                    dial_at_week_day: v.settings.dial_at_week_day.clone(),
                    dial_at_up_hour: v.settings.dial_at_up_hour.clone(),
                    dial_at_down_hour: v.settings.dial_at_down_hour.clone(),
                    max_call: v.settings.max_call,
                    concurrent_at_start: c.concurrent_at_start,
                    task_status: c.task_status,
                    answer_utc: c.answer_utc,
                    end_utc: c.end_utc,
                    call_status: c.call_status(),
                    outcome: c.outcome,
                    call_duration: u64::from(c.call_duration),
                })
            })
            .collect()
    }

    pub fn submissions(&self) -> Vec<Submission> {
        self.requests.submissions(&self.orders)
    }

    /// Marks a task failed (status 4), as the platform may do; for tests of the daemon's handling.
    pub fn fail_task(&mut self, ut: &str, cause: &str) -> bool {
        let Some(&t) = self.task_index.get(ut) else {
            return false;
        };
        if self.tasks.get(t).is_none_or(Task::is_final) {
            return false;
        }
        self.set_status(t, status::FAILED, cause);
        true
    }
}

fn paging(f: &Fields<'_>) -> Result<(usize, usize), Reject> {
    let page = f.opt_i64("page")?.unwrap_or(1);
    let size = f.opt_i64("size")?.unwrap_or(100);
    if page < 1 {
        return Err(Reject::value(format!("page must be 1 or more, got {page}")));
    }
    if !(1..=1000).contains(&size) {
        return Err(Reject::value(format!("size must be 1-1000, got {size}")));
    }
    Ok((
        usize::try_from(page).unwrap_or(1),
        usize::try_from(size).unwrap_or(100),
    ))
}

fn trim_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.trim().to_owned(), v))
                .collect(),
        ),
        other => other,
    }
}

/// Top-level keys of `update` replace those of `base`.
fn merge(base: &Value, update: Option<Value>) -> Value {
    let mut out = base.clone();
    if let (Some(out), Some(Value::Object(update))) = (out.as_object_mut(), update) {
        for (k, v) in update {
            out.insert(k, v);
        }
    }
    out
}

/// Reads the settings the simulator acts on. The window, maxCall and startupType are required: the simulator never
/// guesses a calendar.
fn parse_settings(tcs: Value, ff: Value) -> Result<TaskSettings, Reject> {
    // The createTask page's example spells one key `"dialAtUpHour "`: accept keys with stray blanks.
    let tcs = trim_keys(tcs);
    let s = Fields::named(&tcs, "taskCreateSetting")?;
    let req_i64 = |n: &str| s.i64(n);
    let req_str = |n: &str| s.str(n);
    let zone_second = req_i64("zoneSecond")?;
    let week = req_str("dialAtWeekDay")?.to_owned();
    let up = req_str("dialAtUpHour")?.to_owned();
    let down = req_str("dialAtDownHour")?.to_owned();
    let window = DialWindow::parse(zone_second, &week, &up, &down)
        .map_err(|e| Reject::value(e.to_string()))?;
    let max_call = req_i64("maxCall")?;
    if max_call < 1 {
        return Err(Reject::value(format!(
            "taskCreateSetting.maxCall must be at least 1, got {max_call}"
        )));
    }
    let startup_type = req_i64("startupType")?;
    if !(1..=3).contains(&startup_type) {
        return Err(Reject::value(format!(
            "taskCreateSetting.startupType must be 1 (manual), 2 (scheduled) or 3 (immediate), got {startup_type}"
        )));
    }
    let startup_at = s.opt_i64("startupAt")?.unwrap_or(0);
    if startup_type == 2 && startup_at <= 0 {
        return Err(Reject::value(
            "taskCreateSetting.startupAt is required (Unix seconds) when startupType is 2",
        ));
    }
    if startup_at > MAX_STARTUP_AT_SECS {
        return Err(Reject::value(format!(
            "taskCreateSetting.startupAt {startup_at} looks like milliseconds; send Unix seconds"
        )));
    }
    let max_ring_time = s.opt_i64("maxRingTime")?.unwrap_or(0);
    let task_callback_url = s
        .opt_str("taskCallbackUrl")?
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let fl = Fields::named(&ff, "funcFlag")?;
    let task_keep = fl.opt_bool("taskKeep")?.unwrap_or(false);
    let round_redial = fl.opt_bool("roundRedial")?.unwrap_or(false);
    Ok(TaskSettings {
        task_create_setting: tcs.clone(),
        func_flag: ff.clone(),
        zone_second,
        dial_at_week_day: week,
        dial_at_up_hour: up,
        dial_at_down_hour: down,
        max_call: u32::try_from(max_call).unwrap_or(u32::MAX),
        startup_type,
        startup_at,
        max_ring_time: u64::try_from(max_ring_time).unwrap_or(0),
        task_callback_url,
        task_keep,
        round_redial,
        window,
    })
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
