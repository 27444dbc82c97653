//! Suppression (do-not-call) lists: their entries, their version, and the calls that carried an opt-out.
//!
//! Every write is one transaction that first locks the `suppression_version` row, so suppression writers run one at
//! a time (and take their row locks in one order: no deadlock), and bumps it when it changed a row. Readers (the
//! order inserts and claims) never wait for it.

use std::borrow::Cow;

use sqlx::postgres::PgConnection;
use sqlx::{Postgres, Transaction};
use store::backend::suppress::{Replaced, SuppressionStore, SuppressionWrites};
use store::{OptOutCall, StoreError, Suppression, SuppressionFilter};

use crate::PgStore;
use crate::util::{db_err, decode_all, nul_free};

#[tracing::instrument(skip_all)]
pub(crate) async fn suppressions(
    s: &PgStore,
    filter: &SuppressionFilter,
) -> Result<Vec<Suppression>, StoreError> {
    let rows = sqlx::query(
        "SELECT phone, source, reason, expires_at, added_at FROM suppressions
         WHERE ($1::text IS NULL OR phone = $1)
           AND ($2::timestamptz IS NULL OR expires_at IS NULL OR expires_at > $2)
         ORDER BY phone, source
         LIMIT $3 OFFSET $4",
    )
    .bind(filter.phone.as_deref().map(nul_free))
    .bind(filter.active_at)
    // LIMIT NULL: no limit.
    .bind(filter.limit.map(i64::from))
    .bind(i64::try_from(filter.offset).unwrap_or(i64::MAX))
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

/// A loose scan of the `suppressions_by_source` index: the first source at or after `file:`, then each next one,
/// until past the prefix (`file;` is the first text after every `file:…`).
#[tracing::instrument(skip_all)]
pub(crate) async fn suppression_file_sources(s: &PgStore) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "WITH RECURSIVE src (source) AS (
             SELECT (SELECT MIN(source) FROM suppressions WHERE source >= 'file:' AND source < 'file;')
             UNION ALL
             SELECT (SELECT MIN(source) FROM suppressions WHERE source > src.source AND source < 'file;')
             FROM src WHERE src.source IS NOT NULL
         )
         SELECT source FROM src WHERE source IS NOT NULL ORDER BY source",
    )
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().map(|(source,)| source).collect())
}

#[tracing::instrument(skip_all)]
pub(crate) async fn suppression_version(s: &PgStore) -> Result<i64, StoreError> {
    let (version,): (i64,) = sqlx::query_as("SELECT version FROM suppression_version WHERE id = 1")
        .fetch_one(&s.pool)
        .await
        .map_err(db_err)?;
    Ok(version)
}

/// From the intents (their ID and name indexes) to the calls, their orders (of the campaign), and the opt-out
/// entries not written yet. Per call, the first matching intent by position.
#[tracing::instrument(skip_all, fields(campaign.id = %campaign_id, intents = intents.len()))]
pub(crate) async fn opt_out_calls(
    s: &PgStore,
    campaign_id: &str,
    intents: &[String],
    limit: u32,
) -> Result<Vec<OptOutCall>, StoreError> {
    if intents.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "WITH matched AS (
             SELECT i.call_id,
                    CASE WHEN i.intent_name = ANY($2::text[]) THEN i.intent_name ELSE i.intent_id END AS intent,
                    ROW_NUMBER() OVER (PARTITION BY i.call_id ORDER BY i.position) AS rn
             FROM call_intents i
             WHERE i.intent_id = ANY($2::text[]) OR i.intent_name = ANY($2::text[])
         )
         SELECT o.phone, o.order_id, c.call_id, m.intent
         FROM matched m
         JOIN calls c ON c.call_id = m.call_id
         JOIN orders o ON o.order_id = c.order_id
         WHERE m.rn = 1 AND o.campaign_id = $1
           AND NOT EXISTS (SELECT 1 FROM suppressions s
                           WHERE s.phone = o.phone AND s.source = 'opt_out:' || o.campaign_id || ':' || c.call_id)
         ORDER BY c.call_id
         LIMIT $3",
    )
    .bind(nul_free(campaign_id))
    .bind(intents.iter().map(|i| nul_free(i)).collect::<Vec<_>>())
    .bind(i64::from(limit))
    .fetch_all(&s.pool)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

impl SuppressionStore for PgStore {
    type Writes = Writes;

    /// NUL-free (see `util::nul_free`).
    fn stored_text(text: &str) -> Cow<'_, str> {
        nul_free(text)
    }

    /// Locks the version row first.
    async fn begin_suppression_write(&self) -> Result<Writes, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        lock_version(&mut tx).await?;
        Ok(Writes(tx))
    }
}

/// The statements of a suppression write.
#[derive(Debug)]
pub struct Writes(Transaction<'static, Postgres>);

impl SuppressionWrites for Writes {
    /// One upsert (arrays unnested).
    async fn upsert(&mut self, entries: &[&Suppression]) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO suppressions (phone, source, reason, expires_at, added_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
             ON CONFLICT (phone, source) DO UPDATE SET reason = excluded.reason, expires_at = excluded.expires_at
             WHERE suppressions.reason IS DISTINCT FROM excluded.reason
                OR suppressions.expires_at IS DISTINCT FROM excluded.expires_at",
        )
        .bind(entries.iter().map(|e| e.phone.as_str()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.source.as_str()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.reason.as_deref()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.expires_at).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.added_at).collect::<Vec<_>>())
        .execute(&mut *self.0)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    /// One delete.
    async fn delete(&mut self, phones: &[String], source: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM suppressions WHERE phone = ANY($1::text[]) AND ($2::text IS NULL OR source = $2)",
        )
        .bind(phones.iter().map(|p| nul_free(p)).collect::<Vec<_>>())
        .bind(source.map(nul_free))
        .execute(&mut *self.0)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    /// One statement (arrays unnested): three data-modifying CTEs over one snapshot and disjoint rows: delete the
    /// source's phones no longer listed, update those listed whose reason or expiry changed, insert the new ones.
    async fn replace(
        &mut self,
        source: &str,
        entries: &[&Suppression],
    ) -> Result<Replaced, StoreError> {
        let (removed, updated, added): (i64, i64, i64) = sqlx::query_as(
            "WITH input AS (
                 SELECT * FROM UNNEST($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
                     AS u (phone, reason, expires_at, added_at)
             ), removed AS (
                 DELETE FROM suppressions s
                 WHERE s.source = $1 AND NOT EXISTS (SELECT 1 FROM input i WHERE i.phone = s.phone)
                 RETURNING 1
             ), updated AS (
                 UPDATE suppressions s SET reason = i.reason, expires_at = i.expires_at
                 FROM input i
                 WHERE s.source = $1 AND s.phone = i.phone
                   AND (s.reason IS DISTINCT FROM i.reason OR s.expires_at IS DISTINCT FROM i.expires_at)
                 RETURNING 1
             ), added AS (
                 INSERT INTO suppressions (phone, source, reason, expires_at, added_at)
                 SELECT i.phone, $1, i.reason, i.expires_at, i.added_at FROM input i
                 WHERE NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.source = $1 AND s.phone = i.phone)
                 ON CONFLICT (phone, source) DO NOTHING
                 RETURNING 1
             )
             SELECT (SELECT COUNT(*) FROM removed), (SELECT COUNT(*) FROM updated), (SELECT COUNT(*) FROM added)",
        )
        .bind(source)
        .bind(entries.iter().map(|e| e.phone.as_str()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.reason.as_deref()).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.expires_at).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.added_at).collect::<Vec<_>>())
        .fetch_one(&mut *self.0)
        .await
        .map_err(db_err)?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Replaced {
            added: n(added),
            updated: n(updated),
            removed: n(removed),
        })
    }

    async fn commit(mut self, changed: bool) -> Result<(), StoreError> {
        if changed {
            bump_version(&mut self.0).await?;
        }
        self.0.commit().await.map_err(db_err)
    }
}

/// Takes the version row's lock: the first statement of every suppression write.
async fn lock_version(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT version FROM suppression_version WHERE id = 1 FOR UPDATE")
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Moves the version on: the transaction changed a row.
async fn bump_version(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE suppression_version SET version = version + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
