//! Decoding and error mapping shared by the queries.

use sqlx::Row;
use sqlx::postgres::PgRow;
use store::StoreError;

/// Reads a column, mapping failure to `Corrupt`.
pub(crate) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// Maps a driver error to what the caller should do about it.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = format!("{} (SQLSTATE {code})", d.message());
            if code.starts_with("23") {
                StoreError::Conflict(message)
            } else if code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
            {
                // connection, resources, shutdown, serialization failure, deadlock: try again
                StoreError::Unavailable(message)
            } else {
                StoreError::Backend(message)
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

/// Writes a transaction's tally changes (one statement), just before it commits.
pub(crate) async fn apply_tallies(
    delta: store::TallyDelta,
    conn: &mut sqlx::PgConnection,
) -> Result<(), StoreError> {
    let rows = delta.into_changes();
    if rows.is_empty() {
        return Ok(());
    }
    let col = |i: usize| rows.iter().map(|(_, d)| d[i]).collect::<Vec<i64>>();
    sqlx::query(
        "INSERT INTO order_tallies (user_task_id, planned, sending, sent, rejected)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
         ON CONFLICT (user_task_id) DO UPDATE SET
             planned = order_tallies.planned + excluded.planned,
             sending = order_tallies.sending + excluded.sending,
             sent = order_tallies.sent + excluded.sent,
             rejected = order_tallies.rejected + excluded.rejected",
    )
    .bind(
        rows.iter()
            .map(|(ut, _)| ut.as_str())
            .collect::<Vec<&str>>(),
    )
    .bind(col(0))
    .bind(col(1))
    .bind(col(2))
    .bind(col(3))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}
