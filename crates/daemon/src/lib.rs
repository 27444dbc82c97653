#![doc = include_str!("../README.md")]

mod facts;
mod hub;
mod metrics;
mod plan;
mod settings;
mod webhook;

pub use hub::Hub;
pub use metrics::Metrics;
pub use plan::{Action, Desired, Observed, Orders, Plan, Target, TaskState, Why, decide};
pub use settings::{
    ManualCallSetting, SmsSetting, TaskSettings, Window, equivalent_in_stretch,
    equivalent_over_gap, next_open,
};
pub use webhook::Webhook;
