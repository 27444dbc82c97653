//! The pure steps of the suppression writes: what a batch of entries writes.

use crate::backend::last_of_each;
use crate::{StoreError, Suppression};

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
