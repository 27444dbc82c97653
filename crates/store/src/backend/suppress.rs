//! The suppression writes, [`crate::Store::suppress`], [`crate::Store::unsuppress`] and
//! [`crate::Store::replace_suppression_source`], written once over the transaction each backend begins
//! ([`SuppressionStore`]) and the statements it writes ([`SuppressionWrites`]); and their pure steps: what a batch of
//! entries writes.

use std::borrow::Cow;
use std::future::Future;

use crate::backend::last_of_each;
use crate::{SourceSync, StoreError, Suppression};

/// A backend's suppression writes: each is one transaction, which bumps the suppression version when it changed a
/// row.
pub trait SuppressionStore: Sync {
    /// The statements of one suppression write.
    type Writes: SuppressionWrites;

    /// Text as the backend stores it: the entries are checked and compared as stored. The default keeps it as it is.
    fn stored_text(text: &str) -> Cow<'_, str> {
        Cow::Borrowed(text)
    }

    /// Begins a suppression write.
    fn begin_suppression_write(
        &self,
    ) -> impl Future<Output = Result<Self::Writes, StoreError>> + Send;
}

/// The statements of one suppression write, in the backend's SQL.
pub trait SuppressionWrites: Send + Sized {
    /// Upserts `entries` (one per `(phone, source)`) by `(phone, source)`, keeping `added_at`; an entry whose reason
    /// and expiry are stored already is not written. Returns how many were written.
    fn upsert(
        &mut self,
        entries: &[&Suppression],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes the entries of `phones` (with `source`, only that source's). Returns how many were deleted.
    fn delete(
        &mut self,
        phones: &[String],
        source: Option<&str>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Makes `entries` (one per phone, all of `source`) the source's entries: deletes those no longer listed,
    /// updates those whose reason or expiry changed, inserts the new ones.
    fn replace(
        &mut self,
        source: &str,
        entries: &[&Suppression],
    ) -> impl Future<Output = Result<Replaced, StoreError>> + Send;

    /// Moves the suppression version on when the write `changed` a row, then commits.
    fn commit(self, changed: bool) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How many entries [`SuppressionWrites::replace`] added, updated and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replaced {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
}

/// [`crate::Store::suppress`]: one transaction. An entry whose reason and expiry are already stored is not written
/// (and not counted).
#[tracing::instrument(skip_all, fields(entries = entries.len()))]
pub async fn suppress<S: SuppressionStore>(
    store: &S,
    entries: &[Suppression],
) -> Result<u64, StoreError> {
    let stored = as_stored::<S>(entries);
    let entries = entries_to_write(&stored)?;
    if entries.is_empty() {
        return Ok(0);
    }
    let mut w = store.begin_suppression_write().await?;
    let written = w.upsert(&entries).await?;
    w.commit(written > 0).await?;
    Ok(written)
}

/// [`crate::Store::unsuppress`]: one transaction.
#[tracing::instrument(skip_all, fields(phones = phones.len(), source))]
pub async fn unsuppress(
    store: &impl SuppressionStore,
    phones: &[String],
    source: Option<&str>,
) -> Result<u64, StoreError> {
    if phones.is_empty() {
        return Ok(0);
    }
    let mut w = store.begin_suppression_write().await?;
    let deleted = w.delete(phones, source).await?;
    w.commit(deleted > 0).await?;
    Ok(deleted)
}

/// [`crate::Store::replace_suppression_source`]: one transaction.
#[tracing::instrument(skip_all, fields(source = %source, entries = entries.len()))]
pub async fn replace_suppression_source<S: SuppressionStore>(
    store: &S,
    source: &str,
    entries: &[Suppression],
) -> Result<SourceSync, StoreError> {
    let stored = as_stored::<S>(entries);
    let source = S::stored_text(source);
    let entries = source_entries(&source, &stored)?;
    let mut w = store.begin_suppression_write().await?;
    let Replaced {
        added,
        updated,
        removed,
    } = w.replace(&source, &entries).await?;
    let sync = SourceSync {
        added,
        updated,
        removed,
        kept: (entries.len() as u64).saturating_sub(added + updated),
    };
    w.commit(sync.changed()).await?;
    Ok(sync)
}

/// The entries with every text as the backend stores it ([`SuppressionStore::stored_text`]), borrowed when already
/// so.
fn as_stored<S: SuppressionStore>(entries: &[Suppression]) -> Cow<'_, [Suppression]> {
    let changes = |t: &str| matches!(S::stored_text(t), Cow::Owned(_));
    let changed = |e: &Suppression| {
        changes(&e.phone) || changes(&e.source) || e.reason.as_deref().is_some_and(changes)
    };
    if !entries.iter().any(changed) {
        return Cow::Borrowed(entries);
    }
    Cow::Owned(
        entries
            .iter()
            .map(|e| Suppression {
                phone: S::stored_text(&e.phone).into_owned(),
                source: S::stored_text(&e.source).into_owned(),
                reason: e.reason.as_deref().map(|r| S::stored_text(r).into_owned()),
                ..e.clone()
            })
            .collect(),
    )
}

/// The entries [`crate::Store::suppress`] writes: the last of each `(phone, source)` (one bulk statement never
/// touches a row twice). An empty phone or source is invalid input.
pub fn entries_to_write(entries: &[Suppression]) -> Result<Vec<&Suppression>, StoreError> {
    for e in entries {
        check(e)?;
    }
    Ok(last_of_each(entries, |e| {
        (e.phone.as_str(), e.source.as_str())
    }))
}

/// The entries [`crate::Store::replace_suppression_source`] leaves for `source`: the last of each phone. Every entry
/// must be of `source` (a caller that mixes sources is told so rather than have entries moved between them).
pub fn source_entries<'a>(
    source: &str,
    entries: &'a [Suppression],
) -> Result<Vec<&'a Suppression>, StoreError> {
    if source.is_empty() {
        return Err(StoreError::Invalid(
            "a suppression source cannot be empty".into(),
        ));
    }
    for e in entries {
        check(e)?;
        if e.source != source {
            return Err(StoreError::Invalid(format!(
                "an entry of source {:?} was given to replace the entries of source {source:?}",
                e.source
            )));
        }
    }
    Ok(last_of_each(entries, |e| e.phone.as_str()))
}

fn check(e: &Suppression) -> Result<(), StoreError> {
    if e.phone.is_empty() {
        return Err(StoreError::Invalid(format!(
            "a suppression entry of source {:?} has an empty phone",
            e.source
        )));
    }
    if e.source.is_empty() {
        return Err(StoreError::Invalid(format!(
            "the suppression entry of phone {:?} has an empty source",
            e.phone
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn entry(phone: &str, source: &str, reason: &str) -> Suppression {
        Suppression {
            phone: phone.into(),
            source: source.into(),
            reason: Some(reason.into()),
            expires_at: None,
            added_at: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    #[test]
    fn the_last_entry_of_a_key_wins_and_empty_keys_are_invalid() {
        let es = [
            entry("1", "cli", "a"),
            entry("1", "file:x", "b"),
            entry("1", "cli", "c"),
        ];
        let kept: Vec<&str> = entries_to_write(&es)
            .unwrap()
            .iter()
            .map(|e| e.reason.as_deref().unwrap())
            .collect();
        assert_eq!(kept, ["b", "c"]);
        assert!(matches!(
            entries_to_write(&[entry("", "cli", "a")]),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            entries_to_write(&[entry("1", "", "a")]),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn a_source_is_replaced_only_by_its_own_entries() {
        let es = [entry("1", "file:x", "a"), entry("1", "file:x", "b")];
        let kept = source_entries("file:x", &es).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].reason.as_deref(), Some("b"));
        assert!(matches!(
            source_entries("file:y", &es),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            source_entries("", &[]),
            Err(StoreError::Invalid(_))
        ));
    }
}
