#![doc = include_str!("../README.md")]

mod error;
mod facts;
mod records;
mod report;
mod store;
mod tally;

pub use error::StoreError;
pub use facts::{
    CallFacts, FactSource, IntentFact, OrderFacts, SmsFact, TranscriptLine, call_status_name,
    is_final_call_status, may_replace_call_status, merge_order_facts, talk_secs,
};
pub use records::{
    ActionRecord, CallbackIngest, CallbackRecord, CampaignRecord, NewOrder, OrderCounts,
    OrderProgress, OrderRecord, TaskRecord, UploadState,
};
pub use report::{CallStatusRow, DailyRow, IntentRow, Report, ReportFilter, TotalsRow};
pub use store::Store;
pub use tally::TallyDelta;
