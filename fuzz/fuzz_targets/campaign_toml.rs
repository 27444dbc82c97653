//! Campaign files: parse and validate arbitrary text, then compile the calendar of what is accepted.
//!
//! Invariants: every error has a place inside the text (line and column from 1), a message and a help, none with a
//! raw control character, and the rendered report carries none either (only line breaks); an accepted campaign names
//! a contacts file below its own directory, has a valid id and in-range numbers; the calendar compiler agrees with
//! the schedule at the first open minute of the first stretch, and the stretch is well ordered.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use campaign::chrono::{DateTime, Duration, Utc};
use campaign::{Diagnostics, parse_campaign, stretch_at};
use libfuzzer_sys::fuzz_target;

fn no_raw_controls(text: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "a message carries a raw control character: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("campaigns/fuzz.toml");
    let lines = text.split('\n').count();
    match parse_campaign(file, text) {
        Err(Diagnostics(diags)) => {
            assert!(!diags.is_empty(), "rejected without a reason");
            for d in &diags {
                assert!(d.is_error());
                assert!(
                    d.line >= 1 && d.line <= lines,
                    "line {} of {lines}: {d:?}",
                    d.line
                );
                assert!(d.column >= 1, "{d:?}");
                assert!(!d.message.is_empty() && !d.help.is_empty(), "{d:?}");
                no_raw_controls(&d.message);
                no_raw_controls(&d.help);
            }
            let mut sources = BTreeMap::new();
            sources.insert(PathBuf::from(file), text.to_owned());
            let shown = Diagnostics(diags).render_human(&sources);
            assert!(
                !shown.chars().any(|c| c.is_control() && c != '\n'),
                "the rendered report carries a control character: {shown:?}"
            );
        }
        Ok((spec, warnings)) => {
            for w in &warnings {
                assert!(!w.is_error());
                no_raw_controls(&w.message);
            }
            let csv = spec
                .contacts
                .file
                .strip_prefix("campaigns")
                .expect("the contacts file is resolved next to the campaign file");
            assert!(
                csv.components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
                "the contacts file leaves the campaigns directory: {}",
                spec.contacts.file.display()
            );
            assert!(
                !spec.id.is_empty()
                    && spec.id.len() <= 64
                    && spec
                        .id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{}",
                spec.id
            );
            assert!(spec.robots >= 1 && spec.generation >= 1);
            assert!((1..=campaign::MAX_BATCH_SIZE).contains(&spec.contacts.batch_size));
            assert!(!spec.schedule.windows.is_empty());
            let now: DateTime<Utc> =
                DateTime::from_timestamp(1_795_000_000, 0).expect("a valid instant");
            if let Some(st) = stretch_at(&spec.schedule, now) {
                assert!(st.from >= now);
                if let Some(until) = st.until {
                    assert!(st.from < until, "{st:?}");
                }
                if let Some(open) = st.first_open {
                    assert!(
                        open >= st.from && st.until.is_none_or(|u| open < u),
                        "{st:?}"
                    );
                    assert!(spec.schedule.allows(open), "first_open not allowed: {st:?}");
                    assert!(
                        st.settings.allows(open),
                        "the platform would not dial at first_open: {st:?}"
                    );
                    let before = open - Duration::minutes(1);
                    if before >= st.from {
                        assert!(
                            !spec.schedule.allows(before),
                            "first_open is not the first: {st:?}"
                        );
                    }
                }
            }
        }
    }
});
