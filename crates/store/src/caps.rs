//! Frequency caps: how often one phone may be called, across every campaign and task.

use chrono::{DateTime, Duration, Utc};

/// A frequency cap: a phone may have at most `max` calls started within any `within` (counted across every campaign
/// and task, together with its orders the platform may dial any moment). See the crate docs, "Caps".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub within: Duration,
    pub max: u32,
}

/// The planned orders of a task that are held by a cap ([`crate::Store::held_numbers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    /// How many planned orders of the task are at a cap now.
    pub numbers: u64,
    /// The last instant the first of them to be released is still held: the earliest "oldest counted call's start
    /// plus `within`" among them (the window includes its start, so the release comes just after). `None` when
    /// none is held, or when only orders the platform may still dial hold them (their release is not known).
    pub until: Option<DateTime<Utc>>,
}

/// How many planned orders [`crate::Store::held_numbers`] looks at, the first by source line: its cost is bounded
/// whatever the size of the task.
pub const HELD_SCAN_MAX: u32 = 10_000;
