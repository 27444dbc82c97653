//! The contacts CSV reader, on arbitrary bytes, with small limits so that every limit is reached.
//!
//! Invariants: it never yields more rows than the input has lines after the header; every row names a line within
//! the input, in increasing order; an accepted contact has a normalised phone (digits, at most 15), its order ID, a
//! non-empty value for every variable, no control character in what is sent or stored, and no earlier duplicate;
//! no message ever carries a raw control character.
#![no_main]

use std::collections::HashSet;
use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use campaign::{CampaignSpec, ContactLimits, ContactReader, order_id, parse_campaign};
use libfuzzer_sys::fuzz_target;

const CAMPAIGN: &str = r#"scene_id = "S"
[schedule]
utc_offset = "+00:00"
windows = [{ days = "mon-sun", hours = ["00:00-24:00"] }]
[contacts]
file = "c.csv"
default_country = "GB"
variables = ["amount"]
"#;

const LIMITS: ContactLimits = ContactLimits {
    max_file_bytes: 1 << 20,
    max_record_bytes: 256,
    max_fields: 8,
};

fn spec() -> &'static CampaignSpec {
    static SPEC: OnceLock<CampaignSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        parse_campaign(Path::new("campaigns/c.toml"), CAMPAIGN)
            .expect("the fuzz campaign parses")
            .0
    })
}

fn no_raw_controls(text: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "a message carries a raw control character: {text:?}"
    );
}

fn text_ok(field: &str) {
    assert!(
        !field
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')),
        "an accepted field holds a control character: {field:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let spec = spec();
    let lines = data.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let reader = match ContactReader::from_reader(spec, Cursor::new(data.to_vec()), &LIMITS) {
        Ok(r) => r,
        Err(e) => {
            no_raw_controls(&e.to_string());
            return;
        }
    };
    let mut rows = 0u64;
    let mut last_line = 0u64;
    let mut phones = HashSet::new();
    let (mut valid, mut invalid, mut duplicate) = (0u64, 0u64, 0u64);
    for item in reader {
        rows += 1;
        let line = match &item {
            Ok(c) => c.line,
            Err(issue) => issue.line,
        };
        // The header is on line 1 at the earliest, so a row is on line 2 or later, and within the input.
        assert!(line >= 2 && line <= lines, "row on line {line} of {lines}");
        assert!(
            line > last_line,
            "rows out of order: {line} after {last_line}"
        );
        last_line = line;
        match item {
            Ok(c) => {
                valid += 1;
                assert!(!c.phone.is_empty() && c.phone.len() <= 15, "{}", c.phone);
                assert!(c.phone.bytes().all(|b| b.is_ascii_digit()), "{}", c.phone);
                assert!(
                    phones.insert(c.phone.clone()),
                    "duplicate accepted: {}",
                    c.phone
                );
                assert_eq!(c.order_id, order_id(&spec.id, spec.generation, &c.phone));
                assert_eq!(c.variables.len(), 1);
                for (_, v) in &c.variables {
                    assert!(!v.trim().is_empty());
                    text_ok(v);
                }
                for f in [&c.name, &c.customer, &c.other] {
                    text_ok(f);
                }
            }
            Err(issue) => {
                no_raw_controls(&issue.to_string());
                if matches!(issue.kind, campaign::ContactIssueKind::Duplicate { .. }) {
                    duplicate += 1;
                } else {
                    invalid += 1;
                }
            }
        }
    }
    assert!(
        rows < lines,
        "{rows} rows from {lines} lines (one is the header)"
    );
    assert_eq!(valid + invalid + duplicate, rows);
});
