//! What every backend needs around its own SQL, written once for all of them: reading result rows into records
//! ([`Columns`], [`FromColumns`]), deciding what a callback batch stores and applies ([`ingest_outcomes`],
//! [`ingested_facts`]), the small pure steps of the batch methods (the suppression writes' among them:
//! [`entries_to_write`], [`source_entries`]), the rules of the upload transactions ([`upload`]) and of frequency caps ([`cap_windows`], [`held`]), and the backend's
//! `impl Store` itself ([`crate::impl_store!`]). Backends use it; the daemon has no need to.

mod batch;
mod caps;
mod decode;
mod forward;
mod ingest;
mod suppress;
pub mod upload;

#[doc(hidden)]
pub use {async_trait::async_trait, chrono, serde_json};

pub use batch::{
    LEDGER_TABLES, LedgerTable, PRUNE_CHUNK, granted_in_order, in_order, last_of_each,
    lease_expiry, prune_in_chunks,
};
pub use caps::{PhoneCapCounts, cap_windows, held};
pub use decode::{Columns, FromColumns, OfCall, assemble_calls};
pub use ingest::{
    ObservedStatus, ingest_outcomes, ingested_facts, merge_task_statuses, stored_records,
};
pub use suppress::{entries_to_write, source_entries};
