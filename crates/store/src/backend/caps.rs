//! The rules of frequency caps that are not SQL: each cap's window, and [`crate::Held`] from what the backend counted
//! per held phone.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::backend::Columns;
use crate::backend::upload::CapWindow;
use crate::{Cap, Held, StoreError};

/// Each cap as the backend binds it: the start of its window at `at` (calls started from then to `at` count) and
/// its `max`. A negative `within`, or one reaching before the earliest time, is [`StoreError::Invalid`].
pub fn cap_windows(caps: &[Cap], at: DateTime<Utc>) -> Result<Vec<CapWindow>, StoreError> {
    caps.iter()
        .map(|c| {
            if c.within < chrono::Duration::zero() {
                return Err(StoreError::Invalid(format!(
                    "frequency cap: negative window {}",
                    c.within
                )));
            }
            let since = at.checked_sub_signed(c.within).ok_or_else(|| {
                StoreError::Invalid(format!("frequency cap: window {} is too long", c.within))
            })?;
            Ok((since, i64::from(c.max)))
        })
        .collect()
}

/// What the backend counted for one phone held by a cap: its orders the platform may dial any moment (`pending`),
/// and per cap, in the order given, its calls in the window (`calls_<i>`) and the oldest one's start (`oldest_<i>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneCapCounts {
    pub pending: i64,
    pub calls: Vec<(i64, Option<DateTime<Utc>>)>,
}

impl PhoneCapCounts {
    /// Reads the columns `pending`, `calls_<i>` and `oldest_<i>` for `caps` caps.
    pub fn read(r: &dyn Columns, caps: usize) -> Result<Self, StoreError> {
        let mut calls = Vec::with_capacity(caps);
        for i in 0..caps {
            calls.push((
                r.i64(&format!("calls_{i}"))?,
                r.opt_time(&format!("oldest_{i}"))?,
            ));
        }
        Ok(PhoneCapCounts {
            pending: r.i64("pending")?,
            calls,
        })
    }
}

/// [`Held`] from the counts of the task's planned orders: one is held when it is at any cap. It is released when
/// every cap holding it is; a cap is known to release it when its oldest counted call leaves the window (at the
/// earliest: more calls may have to), and never known when it has no counted call (only unfinished orders hold it).
pub fn held(caps: &[Cap], phones: &[PhoneCapCounts]) -> Held {
    let mut out = Held::default();
    for p in phones {
        let mut at_cap = false;
        let mut release = Some(DateTime::<Utc>::MIN_UTC);
        for (cap, &(calls, oldest)) in caps.iter().zip(&p.calls) {
            if p.pending + calls < i64::from(cap.max) {
                continue;
            }
            at_cap = true;
            let this = match oldest {
                Some(t) if calls > 0 => t.checked_add_signed(cap.within),
                _ => None,
            };
            release = match (release, this) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        if !at_cap {
            continue;
        }
        out.numbers += 1;
        if let Some(r) = release {
            out.until = Some(out.until.map_or(r, |u| u.min(r)));
        }
    }
    out
}

/// [`crate::Store::held_numbers`] around the backend's one read: `read(windows)` runs
/// [`crate::backend::Dialect::held_phones`] with the caps' windows at `at` and returns what it counted per held phone.
/// No caps, no read.
pub async fn held_numbers<F, Fut>(
    caps: &[Cap],
    at: DateTime<Utc>,
    read: F,
) -> Result<Held, StoreError>
where
    F: FnOnce(Vec<CapWindow>) -> Fut,
    Fut: Future<Output = Result<Vec<PhoneCapCounts>, StoreError>>,
{
    let windows = cap_windows(caps, at)?;
    if windows.is_empty() {
        return Ok(Held::default());
    }
    let phones = read(windows).await?;
    Ok(held(caps, &phones))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn held_takes_the_earliest_known_release_and_skips_unknown_ones() {
        let caps = [
            Cap {
                within: Duration::seconds(100),
                max: 2,
            },
            Cap {
                within: Duration::seconds(1000),
                max: 3,
            },
        ];
        let phones = [
            // At the first cap only: released when its oldest call leaves the first window.
            PhoneCapCounts {
                pending: 0,
                calls: vec![(2, Some(t(10))), (2, Some(t(10)))],
            },
            // At both caps: the later release holds.
            PhoneCapCounts {
                pending: 1,
                calls: vec![(2, Some(t(5))), (2, Some(t(5)))],
            },
            // Held by unfinished orders alone: release unknown.
            PhoneCapCounts {
                pending: 2,
                calls: vec![(0, None), (0, None)],
            },
            // Under both caps: not held.
            PhoneCapCounts {
                pending: 0,
                calls: vec![(1, Some(t(1))), (1, Some(t(1)))],
            },
        ];
        assert_eq!(
            held(&caps, &phones),
            Held {
                numbers: 3,
                until: Some(t(110))
            }
        );
        assert_eq!(
            held(&caps, &phones[2..]),
            Held {
                numbers: 1,
                until: None
            }
        );
        assert_eq!(held(&[], &phones), Held::default());
    }

    #[test]
    fn cap_windows_refuse_negative_windows() {
        let cap = |s| Cap {
            within: Duration::seconds(s),
            max: 1,
        };
        assert_eq!(cap_windows(&[cap(60)], t(100)).unwrap(), [(t(40), 1)]);
        assert!(matches!(
            cap_windows(&[cap(-1)], t(100)),
            Err(StoreError::Invalid(_))
        ));
    }
}
