#![doc = include_str!("../README.md")]

pub mod backend;
mod caps;
mod error;
mod facts;
mod records;
mod report;
mod store;
mod suppression;
mod tally;

pub use caps::{Cap, HELD_SCAN_MAX, Held};
pub use error::StoreError;
pub use facts::{
    CallFacts, FactSource, IntentFact, OrderFacts, SmsFact, TranscriptLine, call_status_name,
    is_final_call_status, may_replace_call_status, merge_order_facts, talk_secs,
};
pub use records::{
    ActionRecord, CallbackIngest, CallbackRecord, CampaignRecord, Ingested, LeaseRecord, NewOrder,
    OrderCounts, OrderProgress, OrderRecord, RETRYABLE_STATUSES, RetriesDue, RetryQuery,
    TERMINAL_TASK_STATUSES, TaskKey, TaskRecord, TaskStatusFact, UploadState,
    is_terminal_task_status,
};
pub use report::{
    CallStatusRow, DailyRow, IntentRow, RejectedRow, Report, ReportFilter, RoundRow, TotalsRow,
    ZoneGroupRow,
};
pub use store::Store;
pub use suppression::{
    FILE_SOURCE_PREFIX, OptOutCall, SUPPRESSED_REASON_PREFIX, SourceSync, StopState, Suppression,
    SuppressionFilter, opt_out_source, suppressed_reason,
};
pub use tally::TallyDelta;
