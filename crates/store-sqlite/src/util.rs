//! Encoding, decoding and error mapping shared by the queries.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use store::StoreError;

/// SQLite allows 32766 bind parameters per statement; chunks stay well below.
pub(crate) const MAX_PARAMS: usize = 30_000;

/// Rows per multi-row statement for a row of `columns` binds.
pub(crate) fn rows_per_chunk(columns: usize) -> usize {
    (MAX_PARAMS / columns).min(1_000)
}

/// IDs per `IN (...)` list.
pub(crate) const IDS_PER_CHUNK: usize = 900;

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp {s:?}: {e}")))
}

pub(crate) fn parse_day(s: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| StoreError::Corrupt(format!("bad date {s:?}: {e}")))
}

pub(crate) fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

pub(crate) fn parse_json(s: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("bad JSON in the store: {e}")))
}

/// Reads a column, mapping failure to `Corrupt`.
pub(crate) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

pub(crate) fn get_ts(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_ts(&get::<String>(row, column)?)
}

pub(crate) fn get_opt_ts(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    get::<Option<String>>(row, column)?
        .as_deref()
        .map(parse_ts)
        .transpose()
}

pub(crate) fn get_opt_json(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    get::<Option<String>>(row, column)?
        .as_deref()
        .map(parse_json)
        .transpose()
}

/// Maps a driver error to what the caller should do about it.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
            let primary = code & 0xff;
            if d.is_unique_violation() || d.is_foreign_key_violation() || d.is_check_violation() {
                StoreError::Conflict(d.message().to_owned())
            } else if matches!(primary, 5 | 6 | 10 | 13 | 14) {
                // BUSY, LOCKED, IOERR, FULL, CANTOPEN
                StoreError::Unavailable(d.message().to_owned())
            } else {
                StoreError::Backend(d.message().to_owned())
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::BeginFailed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        sqlx::Error::Configuration(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::Encode(_) => StoreError::Invalid(e.to_string()),
        sqlx::Error::Migrate(_) => StoreError::Migration(e.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// Writes a transaction's tally changes, just before it commits.
pub(crate) async fn apply_tallies(
    delta: store::TallyDelta,
    conn: &mut sqlx::SqliteConnection,
) -> Result<(), StoreError> {
    for (ut, d) in delta.into_changes() {
        sqlx::query(
            "INSERT INTO order_tallies (user_task_id, planned, sending, sent, rejected) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (user_task_id) DO UPDATE SET
                 planned = planned + excluded.planned, sending = sending + excluded.sending,
                 sent = sent + excluded.sent, rejected = rejected + excluded.rejected",
        )
        .bind(ut)
        .bind(d[0])
        .bind(d[1])
        .bind(d[2])
        .bind(d[3])
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_sort_as_text() {
        let a = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
        let b = DateTime::from_timestamp(1_700_000_001, 0).unwrap();
        assert_eq!(parse_ts(&ts(a)).unwrap(), a);
        assert!(ts(a) < ts(b));
    }
}
