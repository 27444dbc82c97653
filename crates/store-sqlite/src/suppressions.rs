//! Suppression (do-not-call) lists: their entries, their version, and the calls that carried an opt-out.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction that bumps `suppression_version` when it changed a row.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, Transaction};
use store::backend::suppress::{Replaced, SuppressionStore, SuppressionWrites};
use store::{OptOutCall, StoreError, Suppression, SuppressionFilter};

use crate::SqliteStore;
use crate::util::{IDS_PER_CHUNK, db_err, decode_all, opt_ts, push_id_list, rows_per_chunk, ts};

#[tracing::instrument(skip_all)]
pub(crate) async fn suppressions(
    s: &SqliteStore,
    filter: &SuppressionFilter,
) -> Result<Vec<Suppression>, StoreError> {
    let rows = sqlx::query(
        "SELECT phone, source, reason, expires_at, added_at FROM suppressions
         WHERE (?1 IS NULL OR phone = ?1) AND (?2 IS NULL OR expires_at IS NULL OR expires_at > ?2)
         ORDER BY phone, source
         LIMIT ?3 OFFSET ?4",
    )
    .bind(filter.phone.as_deref())
    .bind(opt_ts(filter.active_at))
    // LIMIT -1: no limit.
    .bind(filter.limit.map_or(-1, i64::from))
    .bind(i64::try_from(filter.offset).unwrap_or(i64::MAX))
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

/// A loose scan of the `suppressions_by_source` index: the first source at or after `file:`, then each next one,
/// until past the prefix (`file;` is the first text after every `file:…`).
#[tracing::instrument(skip_all)]
pub(crate) async fn suppression_file_sources(s: &SqliteStore) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "WITH RECURSIVE src (source) AS (
             SELECT (SELECT MIN(source) FROM suppressions WHERE source >= 'file:' AND source < 'file;')
             UNION ALL
             SELECT (SELECT MIN(source) FROM suppressions WHERE source > src.source AND source < 'file;')
             FROM src WHERE src.source IS NOT NULL
         )
         SELECT source FROM src WHERE source IS NOT NULL ORDER BY source",
    )
    .fetch_all(&s.reader)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().map(|(source,)| source).collect())
}

#[tracing::instrument(skip_all)]
pub(crate) async fn suppression_version(s: &SqliteStore) -> Result<i64, StoreError> {
    let (version,): (i64,) = sqlx::query_as("SELECT version FROM suppression_version WHERE id = 1")
        .fetch_one(&s.reader)
        .await
        .map_err(db_err)?;
    Ok(version)
}

/// From the intents (their ID and name indexes) to the calls, their orders (of the campaign), and the opt-out
/// entries not written yet. Per call, the first matching intent by position.
#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id, intents = intents.len()))]
pub(crate) async fn opt_out_calls(
    s: &SqliteStore,
    campaign_id: &str,
    intents: &[String],
    limit: u32,
) -> Result<Vec<OptOutCall>, StoreError> {
    if intents.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new("WITH wanted (v) AS (");
    qb.push_values(intents, |mut b, i| {
        b.push_bind(i.as_str());
    });
    qb.push(
        "), matched AS (
             SELECT i.call_id,
                    CASE WHEN i.intent_name IN (SELECT v FROM wanted) THEN i.intent_name ELSE i.intent_id END AS intent,
                    ROW_NUMBER() OVER (PARTITION BY i.call_id ORDER BY i.position) AS rn
             FROM call_intents i
             WHERE i.intent_id IN (SELECT v FROM wanted) OR i.intent_name IN (SELECT v FROM wanted)
         )
         SELECT o.phone, o.order_id, c.call_id, m.intent
         FROM matched m
         JOIN calls c ON c.call_id = m.call_id
         JOIN orders o ON o.order_id = c.order_id
         WHERE m.rn = 1 AND o.campaign_id = ",
    );
    qb.push_bind(campaign_id);
    qb.push(
        " AND NOT EXISTS (SELECT 1 FROM suppressions s
                          WHERE s.phone = o.phone AND s.source = 'opt_out:' || o.campaign_id || ':' || c.call_id)
         ORDER BY c.call_id
         LIMIT ",
    );
    qb.push_bind(i64::from(limit));
    let rows = qb
        .build()
        .persistent(false)
        .fetch_all(&s.reader)
        .await
        .map_err(db_err)?;
    decode_all(&rows)
}

impl SuppressionStore for SqliteStore {
    type Writes = Writes;

    async fn begin_suppression_write(&self) -> Result<Writes, StoreError> {
        let tx = self.begin_write().await?;
        Ok(Writes(tx))
    }
}

/// The statements of a suppression write.
#[derive(Debug)]
pub struct Writes(Transaction<'static, Sqlite>);

impl SuppressionWrites for Writes {
    /// Multi-row upserts.
    async fn upsert(&mut self, entries: &[&Suppression]) -> Result<u64, StoreError> {
        let mut written = 0;
        for chunk in entries.chunks(rows_per_chunk(5)) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO suppressions (phone, source, reason, expires_at, added_at) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(e.phone.as_str())
                    .push_bind(e.source.as_str())
                    .push_bind(e.reason.as_deref())
                    .push_bind(opt_ts(e.expires_at))
                    .push_bind(ts(e.added_at));
            });
            qb.push(
                " ON CONFLICT (phone, source) DO UPDATE SET reason = excluded.reason, expires_at = excluded.expires_at
                  WHERE suppressions.reason IS NOT excluded.reason OR suppressions.expires_at IS NOT excluded.expires_at",
            );
            written += qb
                .build()
                .persistent(false)
                .execute(&mut *self.0)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        Ok(written)
    }

    /// One delete per chunk of phones.
    async fn delete(&mut self, phones: &[String], source: Option<&str>) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for chunk in phones.chunks(IDS_PER_CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM suppressions WHERE phone IN ");
            push_id_list(&mut qb, chunk);
            if let Some(source) = source {
                qb.push(" AND source = ").push_bind(source.to_owned());
            }
            deleted += qb
                .build()
                .persistent(false)
                .execute(&mut *self.0)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// The entries go to a temporary table (multi-row inserts), then three statements compare it with the source's
    /// stored entries: delete those no longer listed, update those that changed, insert the new ones.
    async fn replace(
        &mut self,
        source: &str,
        entries: &[&Suppression],
    ) -> Result<Replaced, StoreError> {
        let tx = &mut self.0;
        // Created and dropped inside the transaction: a failure rolls both back, so the name is always free.
        sqlx::query(
            "CREATE TEMPORARY TABLE suppression_in (
                 phone TEXT PRIMARY KEY, reason TEXT, expires_at TEXT, added_at TEXT NOT NULL
             ) WITHOUT ROWID",
        )
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        for chunk in entries.chunks(rows_per_chunk(4)) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO temp.suppression_in (phone, reason, expires_at, added_at) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(e.phone.as_str())
                    .push_bind(e.reason.as_deref())
                    .push_bind(opt_ts(e.expires_at))
                    .push_bind(ts(e.added_at));
            });
            qb.build()
                .persistent(false)
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
        }
        let run = |sql: &'static str| sqlx::query(sql).bind(source);
        let removed = run("DELETE FROM suppressions
             WHERE source = ?1 AND phone NOT IN (SELECT phone FROM temp.suppression_in)")
        .execute(&mut **tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        let updated = run(
            "UPDATE suppressions SET reason = i.reason, expires_at = i.expires_at
             FROM temp.suppression_in i
             WHERE suppressions.source = ?1 AND suppressions.phone = i.phone
               AND (suppressions.reason IS NOT i.reason OR suppressions.expires_at IS NOT i.expires_at)",
        )
        .execute(&mut **tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        // `WHERE true` tells the parser the `ON CONFLICT` belongs to the insert, not to a join.
        let added = run(
            "INSERT INTO suppressions (phone, source, reason, expires_at, added_at)
             SELECT phone, ?1, reason, expires_at, added_at FROM temp.suppression_in WHERE true
             ON CONFLICT (phone, source) DO NOTHING",
        )
        .execute(&mut **tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        sqlx::query("DROP TABLE temp.suppression_in")
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        Ok(Replaced {
            added,
            updated,
            removed,
        })
    }

    async fn commit(mut self, changed: bool) -> Result<(), StoreError> {
        if changed {
            bump_version(&mut self.0).await?;
        }
        self.0.commit().await.map_err(db_err)
    }
}

/// Moves the version on: the transaction changed a row.
async fn bump_version(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE suppression_version SET version = version + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
