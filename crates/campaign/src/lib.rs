#![doc = include_str!("../README.md")]

mod calendar;
mod diagnostics;
mod ids;

pub use calendar::{
    DialWindow, HourRange, Location, Schedule, Stretch, WindowRule, Zone, format_offset,
    stretch_at, stretches,
};
pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use ids::{ID_NAMESPACE, order_id, user_task_id};
