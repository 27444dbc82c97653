#![doc = include_str!("../README.md")]

mod engine;
mod fields;
mod outcome;
mod window;

pub use outcome::{Outcome, OutcomeConfig};
pub use window::{DialWindow, WindowError};
