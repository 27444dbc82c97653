#![doc = include_str!("../README.md")]
//!
//! ## Module layout
//! - `window`: the dial-window referee (pure).
//! - `outcome`: the seeded outcome distribution.
//! - `engine`: tasks, orders, calls and the discrete-event clock (pure: time is an argument).
//! - `orders`: the orders the engine holds, compactly, and their index by orderID.
//! - `requests`: the log of order-carrying requests, from which `submissions()` is built.
//! - `waiting`: the orders of a task that wait to be dialled.
//! - `fields`: strict reading of request bodies, with vendor retCodes.
//! - `faults`: choosing and recording injected faults.
//! - `server`: HTTP: signatures, faults, endpoints, `/_sim/*`.
//! - `listener`: a listener whose connections a handler can cut (drop-after-read).
//! - `callbacks`: signed callback delivery with retries.

mod callbacks;
mod config;
mod engine;
mod faults;
mod fields;
mod listener;
mod orders;
mod outcome;
mod requests;
mod server;
mod waiting;
mod window;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use clock::{ManualClock, SharedClock};
use tokio_util::sync::CancellationToken;

pub use callbacks::CallbackAttempt;
pub use config::{Account, CallbackPolicy, DropApplies, FaultConfig, FaultKind, SimConfig};
pub use engine::{
    CallRecord, OrderView, SettingsVersion, StatusChange, TaskSettings, TaskStat, TaskView,
};
pub use faults::{FaultRecord, ForcedFault};
pub use orders::OrderState;
pub use outcome::{Outcome, OutcomeConfig};
pub use requests::Submission;
pub use server::SimState;
pub use window::{DialWindow, WindowError};

use crate::callbacks::lock;
use crate::server::Shared;

/// Why the simulator stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The HTTP server failed.
    #[error("simulator HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The HTTP client for callbacks could not be built.
    #[error("could not build the callback HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// The simulated platform. Build it, take a [`SimHandle`], then [`Simulator::run`] it on a bound listener.
#[derive(Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
    http: Option<reqwest::Client>,
}

impl Simulator {
    /// A simulator on `clock`. With [`SimConfig::tick`] set, `run` follows the clock in real time.
    pub fn new(config: SimConfig, clock: SharedClock) -> Self {
        Self {
            shared: Arc::new(Shared::new(config, clock, None)),
            http: None,
        }
    }

    /// A simulator driven by a manual clock: `POST /_sim/clock` moves it. Sets no tick: time moves only when the
    /// test (or `/_sim/clock`) says so.
    pub fn with_manual_clock(mut config: SimConfig, clock: ManualClock) -> Self {
        config.tick = None;
        Self {
            shared: Arc::new(Shared::new(config, clock.shared(), Some(clock))),
            http: None,
        }
    }

    /// Uses `client` to deliver callbacks (instead of one built by `run`).
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The in-process handle for tests and the demo.
    pub fn handle(&self) -> SimHandle {
        SimHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves the API on `listener` until `shutdown`, with the callback worker and (in real-time mode) the ticker.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), SimError> {
        let http = match self.http {
            Some(c) => c,
            None => {
                server::ensure_crypto_provider();
                reqwest::Client::builder()
                    .timeout(self.shared.config.callbacks.timeout)
                    .build()
                    .map_err(SimError::HttpClient)?
            }
        };
        let shared = self.shared;
        let tracker = tokio_util::task::TaskTracker::new();
        tracker.spawn(callbacks::deliver(
            shared.outbox.clone(),
            http,
            shared.clock.clone(),
            shared.config.callbacks.clone(),
            shutdown.clone(),
        ));
        if let Some(tick) = shared.config.tick {
            let (sim, stop) = (shared.clone(), shutdown.clone());
            tracker.spawn(async move {
                let mut every = tokio::time::interval(tick);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = every.tick() => sim.advance_to(sim.clock.now()),
                    }
                }
            });
        }
        tracker.close();
        let app =
            server::router(shared).into_make_service_with_connect_info::<listener::ConnMeta>();
        let stop = shutdown.clone();
        let served = axum::serve(listener::KillableListener(listener), app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        shutdown.cancel();
        tracker.wait().await;
        served.map_err(SimError::Serve)
    }
}

/// A cheap, clonable in-process view and control of a [`Simulator`].
#[derive(Debug, Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
}

impl SimHandle {
    /// API requests being handled right now (answers held back by [`SimConfig::latency`] included).
    pub fn requests_in_flight(&self) -> usize {
        self.shared.in_flight.now()
    }

    /// The most API requests handled at once so far.
    pub fn most_requests_in_flight(&self) -> usize {
        self.shared.in_flight.most()
    }

    /// Processes every event up to `t` (scheduled starts, window boundaries, call ends, delayed settings). The
    /// engine's time never goes backwards.
    pub fn advance_to(&self, t: DateTime<Utc>) {
        self.shared.advance_to(t);
    }

    /// Processes every event up to the simulator clock's now.
    pub fn advance_to_now(&self) {
        self.shared.advance_to(self.shared.clock.now());
    }

    /// Everything at once (what `GET /_sim/state` returns).
    pub fn state(&self) -> SimState {
        self.shared.state()
    }

    /// Every call placed, in start order.
    pub fn call_log(&self) -> Vec<CallRecord> {
        lock(&self.shared.engine).calls()
    }

    /// Every order submitted as new, accepted or not.
    pub fn submissions(&self) -> Vec<Submission> {
        lock(&self.shared.engine).submissions()
    }

    /// Tasks with settings and status history.
    pub fn tasks(&self) -> Vec<TaskView> {
        lock(&self.shared.engine).tasks()
    }

    /// One task by `userTaskID`.
    pub fn task(&self, user_task_id: &str) -> Option<TaskView> {
        self.tasks()
            .into_iter()
            .find(|t| t.user_task_id == user_task_id)
    }

    /// Orders in submission order.
    pub fn orders(&self) -> Vec<OrderView> {
        lock(&self.shared.engine).orders()
    }

    /// Every callback delivery attempt so far.
    pub fn callbacks(&self) -> Vec<CallbackAttempt> {
        self.shared.outbox.attempts()
    }

    /// Every injected fault so far.
    pub fn faults(&self) -> Vec<FaultRecord> {
        lock(&self.shared.faults).log()
    }

    /// Replaces the fault configuration (its seed restarts the coin).
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.shared.faults).set_config(faults);
    }

    /// Queues one fault for the next matching request, ahead of the random ones.
    pub fn push_fault(&self, fault: ForcedFault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Changes how much call durations are shortened, for calls placed from now on.
    pub fn set_speed(&self, speed: f64) {
        lock(&self.shared.engine).set_speed(speed);
    }

    /// Marks a task failed (status 4), as the platform may; returns false if unknown or already final.
    pub fn fail_task(&self, user_task_id: &str, cause: &str) -> bool {
        self.shared
            .with_engine(|e| e.fail_task(user_task_id, cause))
    }

    /// Returns when every queued callback has been delivered or given up on. Needs [`Simulator::run`] running.
    pub async fn flush_callbacks(&self) {
        self.shared.outbox.flush().await;
    }
}
