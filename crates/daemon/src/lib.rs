#![doc = include_str!("../README.md")]

mod plan;
mod settings;

pub use plan::{Action, Desired, Observed, Orders, Plan, Target, TaskState, Why, decide};
pub use settings::{
    ManualCallSetting, SmsSetting, TaskSettings, Window, equivalent_in_stretch,
    equivalent_over_gap, next_open,
};
