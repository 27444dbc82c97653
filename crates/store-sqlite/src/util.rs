//! Encodings, row reading, error mapping and the statement script shared by the queries.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{QueryBuilder, Row as _, Sqlite};
use store::backend::{Columns, Dialect, FromColumns, Params};
use store::{StoreError, TallyDelta};

/// How SQLite spells what the backends' SQL differs by: `?1`, `INDEXED BY` (its planner may otherwise walk another
/// index), booleans as 0 or 1, NULL before every value, and indexes that end with the rowid.
pub(crate) const SQLITE: Dialect = Dialect {
    params: Params::Question,
    index_hints: true,
    integer_booleans: true,
    nulls_first: true,
    rowid_indexes: true,
};

/// SQLite allows 32766 bind parameters per statement; chunks stay well below.
pub(crate) const MAX_PARAMS: usize = 30_000;

/// Rows per multi-row statement for a row of `columns` binds.
pub(crate) fn rows_per_chunk(columns: usize) -> usize {
    (MAX_PARAMS / columns).min(1_000)
}

/// IDs per `IN (...)` list in a write.
pub(crate) const IDS_PER_CHUNK: usize = 900;

/// Most IDs bound in one `IN (...)` list of a read.
pub(crate) const IN_LIST_MAX: usize = 500;

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp {s:?}: {e}")))
}

fn parse_day(s: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| StoreError::Corrupt(format!("bad date {s:?}: {e}")))
}

pub(crate) fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

fn parse_json(s: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("bad JSON in the store: {e}")))
}

/// Reads a column, mapping failure to `Corrupt`.
fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// A result row as [`Columns`]: times are UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), days `YYYY-MM-DD`, JSON is
/// text, booleans are 0 or 1.
struct Row<'r>(&'r SqliteRow);

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
        let text: Option<String> = get(self.0, column)?;
        text.as_deref().map(parse_ts).transpose()
    }
    fn opt_date(&self, column: &str) -> Result<Option<NaiveDate>, StoreError> {
        let text: Option<String> = get(self.0, column)?;
        text.as_deref().map(parse_day).transpose()
    }
    fn opt_json(&self, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<String> = get(self.0, column)?;
        text.as_deref().map(parse_json).transpose()
    }
}

/// One row as a record.
pub(crate) fn decode<T: FromColumns>(row: &SqliteRow) -> Result<T, StoreError> {
    T::from_columns(&Row(row))
}

/// Rows read by `read` from their columns (records whose shape depends on the query).
pub(crate) fn decode_all_with<T>(
    rows: &[SqliteRow],
    read: impl Fn(&dyn Columns) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|r| read(&Row(r))).collect()
}

/// Rows as records.
pub(crate) fn decode_all<T: FromColumns>(rows: &[SqliteRow]) -> Result<Vec<T>, StoreError> {
    rows.iter().map(decode).collect()
}

/// Maps a driver error to what the caller should do about it.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
            let message = d.message().to_owned();
            if d.is_unique_violation() {
                StoreError::Conflict(message)
            } else {
                match code & 0xff {
                    // CONSTRAINT (NOT NULL, CHECK, FOREIGN KEY, DATATYPE), TOOBIG, MISMATCH: the data is refused
                    18..=20 => StoreError::Refused(message),
                    // BUSY, LOCKED, IOERR, FULL, CANTOPEN
                    5 | 6 | 10 | 13 | 14 => StoreError::Unavailable(message),
                    _ => StoreError::Backend(message),
                }
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
pub(crate) async fn ping(s: &crate::SqliteStore) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(&s.reader)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Writes a transaction's tally changes, just before it commits.
pub(crate) async fn apply_tallies(
    delta: TallyDelta,
    conn: &mut SqliteConnection,
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

/// Several statements and their binds, run as one query: every statement goes to the connection's worker thread in
/// one command, so a transaction costs three hand-offs (`BEGIN`, the script, `COMMIT`) whatever its size. Each
/// statement stays under SQLite's bind limit (the limit is per statement).
pub(crate) struct Script {
    qb: QueryBuilder<Sqlite>,
    statements: usize,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            qb: QueryBuilder::new(""),
            statements: 0,
        }
    }
}

impl Script {
    /// Starts a statement; the caller pushes its text and binds.
    pub(crate) fn statement(&mut self) -> &mut QueryBuilder<Sqlite> {
        if self.statements > 0 {
            self.qb.push(";\n");
        }
        self.statements += 1;
        &mut self.qb
    }

    /// Runs the script in a write transaction of its own, committed.
    pub(crate) async fn commit_on(self, s: &crate::SqliteStore) -> Result<(), StoreError> {
        let mut tx = s.begin_write().await?;
        self.run(&mut tx).await?;
        tx.commit().await.map_err(db_err)
    }

    #[tracing::instrument(skip_all, fields(statements = self.statements))]
    pub(crate) async fn run(mut self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        if self.statements == 0 {
            return Ok(());
        }
        // The text depends on the batch's size: not worth a slot in the connection's statement cache.
        self.qb
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Pushes `(?, ?, ...)` binding each ID.
pub(crate) fn push_id_list<S: AsRef<str>>(qb: &mut QueryBuilder<Sqlite>, ids: &[S]) {
    qb.push("(");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.as_ref().to_owned());
    }
    qb.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite refuses about the data itself is refused input; a duplicate key is a conflict.
    #[tokio::test]
    async fn data_errors_are_refusals_and_duplicates_conflicts() {
        let store = crate::SqliteStore::open("sqlite::memory:").await.unwrap();
        let insert = |state: &'static str| {
            sqlx::query(
                "INSERT INTO orders (order_id, campaign_id, user_task_id, phone, source_line, upload_state)
                 VALUES ('o1', 'c', 't', '1', 1, ?)",
            )
            .bind(state)
        };
        let e = db_err(insert("lost").execute(&store.writer).await.unwrap_err());
        assert!(matches!(e, StoreError::Refused(_)), "CHECK: {e:?}");
        let e = db_err(
            sqlx::query("INSERT INTO campaigns (campaign_id) VALUES ('c')")
                .execute(&store.writer)
                .await
                .unwrap_err(),
        );
        assert!(matches!(e, StoreError::Refused(_)), "NOT NULL: {e:?}");
        insert("planned").execute(&store.writer).await.unwrap();
        let e = db_err(insert("planned").execute(&store.writer).await.unwrap_err());
        assert!(matches!(e, StoreError::Conflict(_)), "UNIQUE: {e:?}");
    }

    #[test]
    fn timestamps_round_trip_and_sort_as_text() {
        let a = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
        let b = DateTime::from_timestamp(1_700_000_001, 0).unwrap();
        assert_eq!(parse_ts(&ts(a)).unwrap(), a);
        assert!(ts(a) < ts(b));
    }
}
