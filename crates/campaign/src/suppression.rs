//! Suppression (do-not-call) files: a CSV with a `phone` column and optional `reason` and `expires` columns. Numbers
//! are normalised like contacts. A bad row is reported with its line and column, and the rest of the file still
//! counts. Reading is linear and bounded like the contacts reader (the same tokenizer and limits).

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

use crate::diagnostics::escape_input;
use crate::limits::ContactLimits;
use crate::records::RecordReader;

/// One suppressed number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionEntry {
    /// Normalised: country code and national number, digits only.
    pub phone: String,
    pub reason: Option<String>,
    /// When the suppression ends; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The line of the row in its file.
    pub line: u64,
}

/// A row left out, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionIssue {
    pub line: u64,
    /// 1-based column of the field at fault, when one is.
    pub column: Option<usize>,
    pub message: String,
}

/// What a suppression file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionFile {
    pub entries: Vec<SuppressionEntry>,
    pub issues: Vec<SuppressionIssue>,
}

/// Why a suppression file cannot be read at all (its rows are then not applied, and the previous version stays).
#[derive(Debug, thiserror::Error)]
pub enum SuppressionFileError {
    #[error("{0}")]
    Open(#[from] crate::ContactsFileError),
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "its header has no `phone` column; the header is `phone` plus optional `reason` and `expires`"
    )]
    NoPhoneColumn,
    #[error(
        "its header has an unknown column `{0}`; the header is `phone` plus optional `reason` and `expires`"
    )]
    UnknownColumn(String),
    #[error("its header cannot be read: {0}")]
    BadHeader(String),
}

/// When a suppression that `expires` on `date` ends: once that date is over everywhere on Earth (12:00 UTC the next
/// day, the end of the date at UTC−12). The safe reading of a bare date: never earlier than the file's author meant.
pub fn expiry_of(date: NaiveDate) -> DateTime<Utc> {
    (date + Duration::days(1))
        .and_time(NaiveTime::from_hms_opt(12, 0, 0).expect("a valid time"))
        .and_utc()
}

/// Opens and reads the suppression file at `path` (a regular file of bounded size inside its directory), reading
/// numbers without a country code in `default_country`.
pub fn read_suppression_file(
    path: &Path,
    default_country: Option<&str>,
    limits: &ContactLimits,
) -> Result<SuppressionFile, SuppressionFileError> {
    let file = crate::open_contacts_file(path, path, limits)?;
    parse_suppressions(
        Box::new(file.take(limits.max_file_bytes)),
        default_country,
        limits,
    )
}

/// Reads a suppression CSV from `source`.
pub fn parse_suppressions(
    source: Box<dyn Read + Send>,
    default_country: Option<&str>,
    limits: &ContactLimits,
) -> Result<SuppressionFile, SuppressionFileError> {
    let mut reader = RecordReader::new(source, *limits)?;
    let Some((_, header)) = reader.next_record()? else {
        return Ok(SuppressionFile::default());
    };
    let header = header.map_err(|e| SuppressionFileError::BadHeader(e.to_string()))?;
    let (mut phone, mut reason, mut expires) = (None, None, None);
    for (i, name) in header.iter().enumerate() {
        match name.trim().to_ascii_lowercase().as_str() {
            "phone" => phone = Some(i),
            "reason" => reason = Some(i),
            "expires" => expires = Some(i),
            other => {
                return Err(SuppressionFileError::UnknownColumn(escape_input(other)));
            }
        }
    }
    let phone = phone.ok_or(SuppressionFileError::NoPhoneColumn)?;
    let mut out = SuppressionFile::default();
    while let Some((line, fields)) = reader.next_record()? {
        let fields = match fields {
            Ok(f) => f,
            Err(e) => {
                out.issues.push(SuppressionIssue {
                    line,
                    column: None,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let field = |i: Option<usize>| i.and_then(|i| fields.get(i)).map(|s| s.trim());
        let raw = field(Some(phone)).unwrap_or("");
        let number = match crate::normalize_phone(raw, default_country) {
            Ok(n) => n,
            Err(why) => {
                out.issues.push(SuppressionIssue {
                    line,
                    column: Some(phone + 1),
                    message: format!("phone `{}`: {why}", escape_input(raw)),
                });
                continue;
            }
        };
        let expires_at = match field(expires).filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(d) => Some(expiry_of(d)),
                Err(_) => {
                    out.issues.push(SuppressionIssue {
                        line,
                        column: expires.map(|i| i + 1),
                        message: format!(
                            "expires `{}` is not a date like 2027-01-31",
                            escape_input(text)
                        ),
                    });
                    continue;
                }
            },
        };
        out.entries.push(SuppressionEntry {
            phone: number,
            reason: field(reason).filter(|s| !s.is_empty()).map(str::to_owned),
            expires_at,
            line,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, country: Option<&str>) -> Result<SuppressionFile, SuppressionFileError> {
        parse_suppressions(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            country,
            &ContactLimits::default(),
        )
    }

    #[test]
    fn reads_phones_reasons_and_expiry_and_reports_bad_rows_by_line() {
        let text = "phone,reason,expires\n\
                    +1 202-555-0143,asked by phone,2027-01-31\n\
                    not a number,x,\n\
                    (202) 555-0175,,\n\
                    +12025550199,late,31/01/2027\n";
        let f = parse(text, Some("US")).unwrap();
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.entries[0].phone, "12025550143");
        assert_eq!(f.entries[0].reason.as_deref(), Some("asked by phone"));
        assert_eq!(
            f.entries[0].expires_at,
            Some(Utc.with_ymd_and_hms(2027, 2, 1, 12, 0, 0).unwrap())
        );
        assert_eq!(
            (f.entries[1].phone.as_str(), f.entries[1].line),
            ("12025550175", 4)
        );
        assert_eq!(f.entries[1].expires_at, None);
        let lines: Vec<(u64, Option<usize>)> =
            f.issues.iter().map(|i| (i.line, i.column)).collect();
        assert_eq!(lines, vec![(3, Some(1)), (5, Some(3))]);
    }

    #[test]
    fn a_number_without_a_country_code_needs_the_default_country() {
        let f = parse("phone\n2025550143\n", None).unwrap();
        assert!(f.entries.is_empty());
        assert!(
            f.issues[0].message.contains("country code"),
            "{:?}",
            f.issues
        );
        let f = parse("phone\n2025550143\n", Some("US")).unwrap();
        assert_eq!(f.entries[0].phone, "12025550143");
    }

    #[test]
    fn a_header_without_phone_or_with_unknown_columns_is_refused() {
        assert!(matches!(
            parse("number\n1\n", None),
            Err(SuppressionFileError::UnknownColumn(_))
        ));
        assert!(matches!(
            parse("reason\nx\n", None),
            Err(SuppressionFileError::NoPhoneColumn)
        ));
        assert_eq!(parse("", None).unwrap(), SuppressionFile::default());
    }

    #[test]
    fn an_unclosed_quote_is_a_bad_row_and_the_rows_before_it_count() {
        let f = parse(
            "phone,reason\n+12025550143,ok\n+12025550175,\"never closed\n",
            None,
        )
        .unwrap();
        assert_eq!(f.entries.len(), 1);
        assert_eq!(f.issues.len(), 1);
        assert_eq!(f.issues[0].line, 3);
    }

    #[test]
    fn a_bare_date_expires_only_once_it_is_over_everywhere() {
        let d = NaiveDate::from_ymd_opt(2027, 1, 31).unwrap();
        let end = expiry_of(d);
        // 23:59 on that date at UTC−12 is 11:59 UTC the next day: still suppressed.
        assert!(Utc.with_ymd_and_hms(2027, 2, 1, 11, 59, 0).unwrap() < end);
        assert_eq!(end, Utc.with_ymd_and_hms(2027, 2, 1, 12, 0, 0).unwrap());
    }

    use chrono::TimeZone as _;
}
