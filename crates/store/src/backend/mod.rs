//! What every backend needs around its own SQL, written once for all of them: reading result rows into records
//! ([`Columns`], [`FromColumns`]), the SQL that differs between backends only by its spelling ([`Dialect`]),
//! deciding what a callback batch stores and applies ([`ingest_outcomes`], [`ingested_facts`]), the small steps
//! of the batch methods ([`apply_order_facts`], [`prune_in_chunks`], ...), the suppression writes ([`suppress`]),
//! the upload transactions ([`upload`]), the rules of frequency caps ([`cap_windows`], [`held`],
//! [`held_numbers`]), and the backend's `impl Store` itself ([`crate::impl_store!`]). Backends use it; the daemon
//! has no need to.

mod batch;
mod caps;
mod decode;
mod dialect;
mod forward;
mod ingest;
pub mod suppress;
pub mod upload;

#[doc(hidden)]
pub use {async_trait::async_trait, chrono, serde_json};

pub use batch::{
    LEDGER_TABLES, LedgerTable, PRUNE_CHUNK, apply_order_facts, granted_in_order, in_order,
    last_of_each, lease_expiry, prune_in_chunks, task_campaigns,
};
pub use caps::{PhoneCapCounts, cap_windows, held, held_numbers};
pub use decode::{
    Columns, FromColumns, LEASE_COLUMNS, NextAt, ORDER_COLUMNS, OfCall, TASK_COLUMNS,
    assemble_calls, transcript_json,
};
pub use dialect::{Dialect, Params};
pub use ingest::{
    ObservedStatus, ingest_outcomes, ingested_facts, merge_task_statuses, stored_records,
};
pub use suppress::{entries_to_write, source_entries};
