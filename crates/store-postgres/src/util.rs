//! Text the database accepts, row reading, error mapping and the tallies, shared by the queries.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::types::Json;
use store::backend::{Columns, Dialect, FromColumns, Params};
use store::{StoreError, TallyDelta};

/// How PostgreSQL spells what the backends' SQL differs by: `$1` (cast where it cannot tell the type), no index
/// hints, booleans of their own type, and NULL after every value.
pub(crate) const POSTGRES: Dialect = Dialect {
    params: Params::Dollar,
    index_hints: false,
    integer_booleans: false,
    nulls_first: false,
    rowid_indexes: false,
};

/// Text as PostgreSQL takes it: it refuses U+0000 in `text` (SQLSTATE 22021) and `\u0000` in `jsonb` (22P05), so
/// every NUL becomes U+FFFD, the replacement character, and the rest of the value is kept. All text the store writes
/// goes through here (or [`nul_free_json`]) before it is bound: a NUL in a callback body, a transcript or a contact
/// is the sender's defect, and must never cost the write of everything around it. SQLite keeps text as it is.
pub(crate) fn nul_free(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`nul_free`] for an optional text.
pub(crate) fn nul_free_opt(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(nul_free)
}

/// [`nul_free`] for every string (keys too) of a JSON value.
pub(crate) fn nul_free_json(v: &serde_json::Value) -> Cow<'_, serde_json::Value> {
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn scrub(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => serde_json::Value::String(nul_free(s).into_owned()),
            serde_json::Value::Array(a) => a.iter().map(scrub).collect(),
            serde_json::Value::Object(o) => o
                .iter()
                .map(|(k, v)| (nul_free(k).into_owned(), scrub(v)))
                .collect(),
            other => other.clone(),
        }
    }
    if has_nul(v) {
        Cow::Owned(scrub(v))
    } else {
        Cow::Borrowed(v)
    }
}

/// A JSON value as `jsonb` text (for arrays cast with `::jsonb`), NUL-free.
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    nul_free_json(v).to_string()
}

/// A JSON value to bind as `jsonb`, NUL-free.
pub(crate) fn jsonb(v: &serde_json::Value) -> Json<Cow<'_, serde_json::Value>> {
    Json(nul_free_json(v))
}

/// Reads a column, mapping failure to `Corrupt`.
fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// A result row as [`Columns`]: times are `timestamptz`, days `date`, JSON is `jsonb`.
struct Row<'r>(&'r PgRow);

impl Columns for Row<'_> {
    fn opt_i64(&self, column: &str) -> Result<Option<i64>, StoreError> {
        get(self.0, column)
    }
    fn opt_f64(&self, column: &str) -> Result<Option<f64>, StoreError> {
        get(self.0, column)
    }
    fn opt_bool(&self, column: &str) -> Result<Option<bool>, StoreError> {
        get(self.0, column)
    }
    fn opt_string(&self, column: &str) -> Result<Option<String>, StoreError> {
        get(self.0, column)
    }
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        get(self.0, column)
    }
    fn opt_date(&self, column: &str) -> Result<Option<NaiveDate>, StoreError> {
        get(self.0, column)
    }
    fn opt_json(&self, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(get::<Option<Json<serde_json::Value>>>(self.0, column)?.map(|j| j.0))
    }
}

/// One row as a record.
pub(crate) fn decode<T: FromColumns>(row: &PgRow) -> Result<T, StoreError> {
    T::from_columns(&Row(row))
}

/// Rows read by `read` from their columns (records whose shape depends on the query).
pub(crate) fn decode_all_with<T>(
    rows: &[PgRow],
    read: impl Fn(&dyn Columns) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|r| read(&Row(r))).collect()
}

/// Rows as records.
pub(crate) fn decode_all<T: FromColumns>(rows: &[PgRow]) -> Result<Vec<T>, StoreError> {
    rows.iter().map(decode).collect()
}

/// Maps a driver error to what the caller should do about it.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = format!("{} (SQLSTATE {code})", d.message());
            if code == "23505" {
                StoreError::Conflict(message)
            } else if code.starts_with("22") || code.starts_with("23") {
                // data exception, integrity constraint: the data is refused
                StoreError::Refused(message)
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

#[tracing::instrument(skip_all)]
pub(crate) async fn ping(s: &crate::PgStore) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(&s.pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Writes a transaction's tally changes (one statement), just before it commits.
pub(crate) async fn apply_tallies(
    delta: TallyDelta,
    conn: &mut PgConnection,
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
    .bind(rows.iter().map(|(ut, _)| nul_free(ut)).collect::<Vec<_>>())
    .bind(col(0))
    .bind(col(1))
    .bind(col(2))
    .bind(col(3))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character_and_clean_text_is_not_copied() {
        assert_eq!(nul_free("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert!(matches!(nul_free("clean"), Cow::Borrowed("clean")));
        let v = serde_json::json!({ "k\u{0}": ["x\u{0}", 1, { "n": "\u{0}" }], "ok": "y" });
        assert_eq!(
            nul_free_json(&v).into_owned(),
            serde_json::json!({ "k\u{FFFD}": ["x\u{FFFD}", 1, { "n": "\u{FFFD}" }], "ok": "y" })
        );
        let clean = serde_json::json!({ "a": ["b"] });
        assert!(matches!(nul_free_json(&clean), Cow::Borrowed(_)));
        // A backslash followed by `u0000` is text, not an escaped NUL: left alone.
        let text = serde_json::json!("\\u0000");
        assert_eq!(json_text(&text), r#""\\u0000""#);
    }
}
