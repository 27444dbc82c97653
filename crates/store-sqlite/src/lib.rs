#![doc = include_str!("../README.md")]

mod campaigns;
mod facts;
mod ledger;
mod orders;
mod report;
mod suppressions;
mod util;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use store::StoreError;
use tokio::sync::watch;

use crate::util::db_err;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The SQLite store. Cheap to clone (two pool handles).
///
/// Every write goes through one dedicated connection, `writer`; reads and the checkpointer use `reader`. SQLite takes
/// one writer at a time anyway, and a connection discards its whole page cache whenever another connection wrote
/// since its previous transaction. With writes alternating between two connections, a write transaction could start
/// cold and read its B-tree pages back from the operating system; the dedicated writer keeps its cache warm (upload
/// of 200,000 contacts: 13 % faster, 12 % less CPU; no measurable change for callbacks). Reads that follow a write see
/// it: each read transaction starts from the latest commit.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// Keeps the WAL checkpointer running while any clone of the store lives (file databases only).
    _checkpointer: Option<Arc<watch::Sender<()>>>,
}

/// How often the checkpointer copies the WAL back into the database file. A checkpoint syncs the database file, and
/// the commits that come meanwhile wait for that sync: the less it has to write, the shorter they wait. p99 of
/// callbacks at 5,000/s offered (`synchronous = FULL`, two runs each, the same minutes): every second 24.6 and
/// 21.3 ms, every 200 ms 13.1 and 13.7 ms, every 100 ms 14.6 and 12.3 ms (BENCHMARKS.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// How often the checkpointer looks at an empty log.
const EMPTY_LOG_EVERY: Duration = Duration::from_secs(1);
/// How often, at most, a RESTART checkpoint is tried: it holds writers back while it waits (up to [`RESTART_WAIT`]),
/// so a long read that keeps it waiting must not do that at every round.
const RESTART_EVERY: Duration = Duration::from_secs(1);
/// Rounds with nothing written (one second) after which the checkpointer empties the WAL file.
const IDLE_ROUNDS: u32 = 5;
/// WAL pages (4 KB each: 32 MB) past which the checkpointer restarts the log (see `checkpointer`).
const WAL_RESTART_PAGES: i64 = 8_192;
/// WAL pages (256 MB) past which a RESTART waits for writers and readers as long as they would wait for each other.
const WAL_HARD_PAGES: i64 = 65_536;
/// The size the WAL file is cut back to when the log restarts (`journal_size_limit`): [`WAL_HARD_PAGES`] pages. A
/// lower bound would cut the file at every restart under a steady load, and the commit that cuts it stalls every
/// callback waiting on it (p99 at 5,000 callbacks/s offered, two runs each: 28.0 and 41.7 ms with this bound, 55.6
/// and 79.0 ms with 32 MB; BENCHMARKS.md).
const WAL_LIMIT_BYTES: i64 = WAL_HARD_PAGES * 4_096;

impl SqliteStore {
    /// Begins a write transaction on the one writer connection, taking SQLite's write lock at once (`BEGIN
    /// IMMEDIATE`), so a transaction that reads before it writes cannot fail to upgrade its lock.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)
    }

    /// Opens (creating if missing) the database at `url` (`sqlite://path`, `sqlite:path` or `sqlite::memory:`) and
    /// applies the migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("cannot parse the SQLite URL: {e}")))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Each commit syncs the WAL before it returns, so what the store acknowledged (a callback answered 200,
            // a batch marked `sending` before it leaves) survives a power loss or an OS crash, as on PostgreSQL. With
            // NORMAL, the WAL was synced only at checkpoints: a crash of the machine could roll back the last
            // commits. FULL also shortens the stall a checkpoint's sync causes, since the WAL holds little unsynced
            // data by then: p99 of callbacks at 5,000/s offered, two runs each in the same minutes, 35.3 and 51.5 ms
            // with NORMAL, 24.6 and 21.3 ms with FULL (checkpoints every second; BENCHMARKS.md).
            .synchronous(SqliteSynchronous::Full)
            // Statement journals (a multi-row upsert inside a larger transaction) stay in memory, not in a temp file.
            .pragma("temp_store", "memory")
            // No checkpoint at commit time: a checkpoint copies the WAL into the database file and syncs it, which
            // stalled the committing writer (and every callback waiting on its group commit) for tens of
            // milliseconds. The store's own checkpointer runs them beside the writers instead (see `checkpointer`).
            .pragma("wal_autocheckpoint", if memory { "1000" } else { "0" })
            // The log file is reused, not shrunk, when it restarts: without a limit a burst of writes (a poll of
            // thousands of orders, or planning against a database of gigabytes, whose every transaction dirties
            // pages all over it) leaves it at its largest size for good (900 MB after 10,000,000 contacts). With
            // it, the first commit after a restart cuts the file back to 256 MB, the bound past which the
            // checkpointer waits to restart it; once the writes pause, the checkpointer empties it (see
            // `checkpointer`).
            .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string())
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            });
        // One connection for writes (see [`SqliteStore`]) and one for reads (a report, `status`, the
        // checkpointer), which go on during a write. More would only queue on the same lock, and each costs about
        // 0.5 MB of the daemon's memory (BENCHMARKS.md, idle). In-memory databases are per connection: one, shared.
        let one = || SqlitePoolOptions::new().max_connections(1);
        if memory {
            let pool = one()
                .idle_timeout(None)
                .max_lifetime(None)
                .min_connections(1)
                .connect_with(options)
                .await
                .map_err(db_err)?;
            migrate(&pool).await?;
            report::maintain(&pool).await?;
            return Ok(SqliteStore {
                writer: pool.clone(),
                reader: pool,
                _checkpointer: None,
            });
        }
        let writer = one().connect_with(options.clone()).await.map_err(db_err)?;
        migrate(&writer).await?;
        report::maintain(&writer).await?;
        let reader = one().connect_with(options).await.map_err(db_err)?;
        let (alive, stopped) = watch::channel(());
        tokio::spawn(checkpointer(reader.clone(), stopped));
        Ok(SqliteStore {
            writer,
            reader,
            _checkpointer: Some(Arc::new(alive)),
        })
    }

    /// Closes both pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`] with a PASSIVE checkpoint, which never waits
/// for (nor locks out) readers or writers; the frames it could not copy are copied next time. Its sync of the
/// database file still delays the commits that come meanwhile (their own syncs queue behind it), which is why it
/// runs often and small.
///
/// The log itself starts again from its beginning only when a write begins after every frame was copied, which a
/// steady stream of writes never allows: in a 1,000,000-contact upload the WAL grew to 3 GB. So once it holds more
/// than [`WAL_RESTART_PAGES`], a RESTART checkpoint follows the PASSIVE one, at most every [`RESTART_EVERY`]: it
/// waits for the write in progress, holds the next one back while it copies what the PASSIVE one left (about a
/// round's worth) and restarts the log.
/// It gives up after [`RESTART_WAIT`] (250 ms) when a write or an older read is still going (see [`checkpoint_wal`]),
/// unless the log is past [`WAL_HARD_PAGES`] (256 MB): then it waits as long as a writer would.
///
/// The file is reused when the log restarts, so after a burst it keeps its largest size (at most 256 MB: the
/// `journal_size_limit`). When nothing was written for a second ([`IDLE_ROUNDS`]) and every frame is copied, a
/// TRUNCATE checkpoint empties it; while writes go on, the file is left alone, since cutting it stalls the commit after.
///
/// Stops when every clone of the store is dropped or the pool is closed. (Closing the last connection also
/// checkpoints, as SQLite always does.)
async fn checkpointer(pool: SqlitePool, mut stopped: watch::Receiver<()>) {
    // The frames in the log at the previous round: the same number again means nothing was written since; and the
    // rounds in a row that found the same number.
    let mut previous = 0;
    let mut unchanged = 0;
    let mut restarted_at: Option<tokio::time::Instant> = None;
    loop {
        // An empty log (the daemon idle, the file emptied) is looked at once a second: five looks a second cost an
        // idle daemon 0.3 % of a core (2.33 % against 2.0 %, `bench idle-process`).
        let round = if previous == 0 && unchanged > 0 {
            EMPTY_LOG_EVERY
        } else {
            CHECKPOINT_EVERY
        };
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(round) => {}
        }
        if pool.is_closed() {
            return;
        }
        // The row is (busy, frames in the log, frames copied).
        let (log_frames, copied) =
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
            {
                Ok((_, log, copied)) => (log, copied),
                Err(e) => {
                    tracing::debug!(error = %e, "WAL checkpoint failed; retrying at the next one");
                    continue;
                }
            };
        unchanged = if log_frames == previous {
            unchanged + 1
        } else {
            0
        };
        previous = log_frames;
        let idle = log_frames > 0 && unchanged >= IDLE_ROUNDS && copied == log_frames;
        if idle {
            match checkpoint_wal(&pool, TRUNCATE, RESTART_WAIT).await {
                Ok(true) => {
                    previous = 0;
                    unchanged = 0;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "WAL truncate failed; retrying at the next one")
                }
            }
            continue;
        }
        // Past the hard limit the RESTART waits as long as any writer would: the log must not grow without bound
        // because writes or reads kept it busy every time.
        let wait = if log_frames > WAL_HARD_PAGES {
            POOL_WAIT
        } else {
            RESTART_WAIT
        };
        let restart_due = restarted_at.is_none_or(|at| at.elapsed() >= RESTART_EVERY);
        if log_frames > WAL_RESTART_PAGES && restart_due {
            restarted_at = Some(tokio::time::Instant::now());
            match checkpoint_wal(&pool, RESTART, wait).await {
                Ok(true) => {}
                // A RESTART that could not wait long enough says so in its result row, not as an error.
                Ok(false) if log_frames > WAL_HARD_PAGES => tracing::warn!(
                    wal_pages = log_frames,
                    "the WAL could not be restarted: a write or a read outlasted the wait; retrying in a second"
                ),
                Ok(false) => tracing::debug!(
                    wal_pages = log_frames,
                    "WAL restart busy; retrying at the next one"
                ),
                Err(e) => {
                    tracing::debug!(error = %e, "WAL restart failed; retrying at the next one")
                }
            }
        }
    }
}

/// How long a RESTART checkpoint may wait for the write in progress and for readers of older snapshots (250 ms). It
/// holds new writers back meanwhile, so a long read (a report) must not stall them for the pool's busy timeout; a
/// RESTART that gives up is tried again a second later ([`RESTART_EVERY`]).
const RESTART_WAIT: &str = "PRAGMA busy_timeout = 250";
/// The pool's busy timeout, [`BUSY_TIMEOUT`], as a pragma.
const POOL_WAIT: &str = "PRAGMA busy_timeout = 30000";
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Restarts the log once every frame is copied.
const RESTART: &str = "PRAGMA wal_checkpoint(RESTART)";
/// Restarts the log and empties the file.
const TRUNCATE: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

/// A RESTART or TRUNCATE checkpoint (`checkpoint`) on one connection, with the busy timeout set by `wait` while it
/// runs; whether it was done (false: a writer or a reader outlasted the wait). A connection whose busy timeout could
/// not be put back is closed rather than returned to the pool.
async fn checkpoint_wal(
    pool: &SqlitePool,
    checkpoint: &'static str,
    wait: &'static str,
) -> Result<bool, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(wait).execute(&mut *conn).await?;
    // The row is (busy, frames in the log, frames copied), as for PASSIVE.
    let restarted = sqlx::query_as::<_, (i64, i64, i64)>(checkpoint)
        .fetch_one(&mut *conn)
        .await;
    if sqlx::query(POOL_WAIT).execute(&mut *conn).await.is_err() {
        conn.close_on_drop();
    }
    restarted.map(|(busy, _, _)| busy == 0)
}

// Each method is the function of the same name in `campaigns`, `orders`, `facts`, `suppressions`, `ledger` or
// `report`: writes go through the writer connection, reads through the reader. One writer: SQLite takes one at a
// time.
store::impl_store!(SqliteStore, write_concurrency = 1);
