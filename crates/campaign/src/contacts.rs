//! Streaming the contacts CSV: phone normalisation, per-row checks, duplicates, and order IDs.
//!
//! The file is read one record at a time; only a `u64` per accepted number (and its first line) is kept, for
//! duplicate detection. The normalised number is at most 15 digits and never starts with 0 (it starts with the
//! country code), so it fits a `u64` exactly: there are no hash collisions. Memory is about 16-32 bytes per unique
//! number: around 300 MB for 10 million distinct numbers.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;

use crate::contacts_file::{ContactsFileError, open_contacts_file};
use crate::diagnostics::escape_input;
use crate::ids::order_id;
use crate::limits::ContactLimits;
use crate::records::{RecordError, RecordReader};
use crate::spec::CampaignSpec;

/// One accepted contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// 1-based line of the record in the CSV.
    pub line: u64,
    /// Country code + national number, digits only (e.g. `442079460123`).
    pub phone: String,
    /// The `name` column (may be empty).
    pub name: String,
    /// The `customer` column (may be empty).
    pub customer: String,
    /// The `other` column (may be empty).
    pub other: String,
    /// Template variables, in declared order; every value is non-empty.
    pub variables: Vec<(String, String)>,
    /// Deterministic `orderID`, from (campaign id, generation, phone).
    pub order_id: String,
    /// The `timezone` column: the contact's own IANA zone, which wins over the zones of the number; `None` when the
    /// column is absent or empty.
    pub timezone: Option<Tz>,
    /// The `region` column, trimmed and upper-cased: for a US number its USPS state code (which wins over the state
    /// of the area code); `None` when the column is absent or empty.
    pub region: Option<String>,
    /// The ISO 3166 region of the number as libphonenumber reads it (`US`, `CA`, `FR`, ...); `None` when it names
    /// none (a non-geographic number such as +800).
    pub country: Option<String>,
}

/// A row left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactIssue {
    /// 1-based line in the CSV.
    pub line: u64,
    /// What is wrong.
    pub kind: ContactIssueKind,
}

/// What is wrong with a row.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContactIssueKind {
    /// The phone number does not parse or is not valid for its country.
    InvalidPhone {
        /// As written.
        raw: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The number (after normalisation) was already accepted on an earlier line.
    Duplicate {
        /// Normalised number.
        phone: String,
        /// The line that was kept.
        first_line: u64,
    },
    /// A declared template variable is empty on this row.
    MissingVariable {
        /// The variable.
        name: String,
    },
    /// The record could not be read (e.g. not UTF-8, a stray quote, too long, too many fields).
    Malformed {
        /// Why.
        reason: String,
    },
    /// A field that is sent or stored holds a control character other than tab and line breaks (a NUL, which
    /// PostgreSQL cannot store, an escape sequence, ...).
    ControlCharacter {
        /// 1-based column of the field in the CSV.
        column: usize,
        /// The column's name in the header.
        name: String,
        /// The character.
        character: char,
    },
    /// The `timezone` column is not an IANA time zone name.
    BadTimezone {
        /// As written.
        raw: String,
    },
    /// The `region` column is not a region code: for a US number, not a USPS state or territory code.
    BadRegion {
        /// As written.
        raw: String,
    },
}

impl fmt::Display for ContactIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl fmt::Display for ContactIssueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactIssueKind::InvalidPhone { raw, reason } => {
                write!(f, "invalid phone `{}`: {reason}", escape_input(raw))
            }
            ContactIssueKind::Duplicate { phone, first_line } => {
                write!(f, "duplicate of line {first_line} (+{phone})")
            }
            ContactIssueKind::MissingVariable { name } => {
                write!(f, "variable `{}` is empty", escape_input(name))
            }
            ContactIssueKind::Malformed { reason } => write!(f, "unreadable record: {reason}"),
            ContactIssueKind::ControlCharacter {
                column,
                name,
                character,
            } => write!(
                f,
                "column {column} (`{}`) contains the control character U+{:04X}; remove it (only tab and quoted \
                 line breaks may appear in a field)",
                escape_input(name),
                u32::from(*character)
            ),
            ContactIssueKind::BadTimezone { raw } => {
                write!(
                    f,
                    "timezone `{}` is not an IANA time zone name; ",
                    escape_input(raw)
                )?;
                let names = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name());
                match crate::diagnostics::closest(raw.trim(), names) {
                    Some(near) => write!(f, "did you mean `{near}`?"),
                    None => f.write_str(
                        "write one such as `America/New_York` or `Asia/Tokyo`, or leave it empty to use the \
                         number's own zones",
                    ),
                }
            }
            ContactIssueKind::BadRegion { raw } => write!(
                f,
                "region `{}` is not a region code; for a US number write its state's two-letter USPS code (such as \
                 `FL`, `NY`, `DC` or `PR`), for another country a code of 1 to 3 letters or digits, or leave it empty \
                 to use the number's own",
                escape_input(raw)
            ),
        }
    }
}

/// Why the contacts file cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContactsError {
    /// The file is refused before it is read: outside the campaigns directory, not a regular file, or too large.
    #[error(transparent)]
    Refused(#[from] ContactsFileError),
    /// The file cannot be read or its header is unreadable.
    #[error("cannot read contacts file {}: {source}", escape_input(&path.display().to_string()))]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The header has no `phone` column.
    #[error(
        "contacts file {} has no `phone` column; add a header line starting with `phone`",
        escape_input(&path.display().to_string())
    )]
    NoPhoneColumn {
        /// The file.
        path: PathBuf,
    },
    /// A declared variable is not a column.
    #[error(
        "contacts file {} has no column for the declared variable `{}`",
        escape_input(&path.display().to_string()),
        escape_input(name)
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The variable.
        name: String,
    },
    /// `default_country` is not a region code.
    #[error("`default_country = \"{}\"` is not a region code", escape_input(.0))]
    BadCountry(String),
}

/// How many compiled patterns the phone library keeps: enough for every pattern its metadata can build (890 were
/// built when numbers of every country code from 1 to 999 were read), so none is ever built twice.
///
/// The library compiles its patterns lazily into one least-recently-used cache shared by every region, 100 by
/// default. A number of the +1 plan alone may try some 35 patterns (one set per NANP region), and 20 countries read
/// in turn need about 130, so with the default a file spanning 20 countries rebuilt patterns for nearly every number:
/// 2.1 ms a number instead of 4 µs (release build, measured). The cost is memory, about 180 KB a pattern built, so
/// some 120 MB at worst, for a file spanning nearly every country; a file of a few countries builds a few dozen.
pub const PHONE_PATTERNS: usize = 1024;

/// Gives the phone library's pattern cache room for [`PHONE_PATTERNS`], once.
fn phone_patterns() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(mut cache) = phonenumber::metadata::DATABASE.cache().lock() {
            cache.set_capacity(PHONE_PATTERNS);
        }
    });
}

/// Normalises a phone number to country code + national number, digits only. Numbers without a `+`/IDD prefix are
/// read in `default_country`'s national format. Returns the reason when the number is not valid.
pub fn normalize_phone(raw: &str, default_country: Option<&str>) -> Result<String, String> {
    let country = match default_country {
        Some(c) => Some(
            c.parse::<Id>()
                .map_err(|_| format!("`{c}` is not a region code"))?,
        ),
        None => None,
    };
    parse_phone(raw, country).map(|(digits, _)| digits)
}

/// [`normalize_phone`], also giving the ISO region of the number as the library reads it (`None` where it names
/// none: a non-geographic number, and numbers with a leading zero in a country code shared by several regions,
/// such as +39 0..., which the library places in no region). The region comes from the metadata that the validity
/// check needs anyway: asking the library for the number's country after `is_valid` would look it up a second time,
/// which for a number of the +1 plan means trying up to 25 regions' patterns again (about a quarter more time per
/// number, measured in a release build).
pub(crate) fn parse_phone(
    raw: &str,
    country: Option<Id>,
) -> Result<(String, Option<&'static str>), String> {
    phone_patterns();
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("empty".to_string());
    }
    // A number written with `+` names its own country: read it without the default one. (With a default region,
    // the library strips that region's national prefix from a foreign number: "+49 1512 3456789" read with US as the
    // default became +49 512 3456789, another valid number and someone else's.)
    let international = raw.starts_with('+') || raw.starts_with('\u{FF0B}');
    let country = if international { None } else { country };
    let number = phonenumber::parse(country, raw).map_err(|e| match (e, country) {
        (phonenumber::ParseError::InvalidCountryCode, None) => {
            "no country code; write it as +<country code><number> or set `default_country`"
                .to_string()
        }
        (e, _) => e.to_string(),
    })?;
    let metadata = number.metadata(&DATABASE);
    let region = metadata
        .map(|m| m.id())
        .filter(|id| id.len() == 2 && id.bytes().all(|b| b.is_ascii_uppercase()));
    // The library looks a number's region up by its national number without leading zeros, and checks validity with
    // them; the two agree, and one look-up serves both, when there are none (anything but Italian-style numbers).
    let valid = if number.national().zeros() == 0 {
        metadata.is_some_and(|m| is_valid_in(m, &number.national().to_string()))
    } else {
        number.is_valid()
    };
    if !valid {
        return Err(format!(
            "not a valid number in {}",
            region.unwrap_or("its country")
        ));
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 15 {
        return Err("not an E.164 number".to_string());
    }
    // A number written with an international dialling prefix (011, 00, ...) for another country than the default
    // one must keep every digit written after the prefix; the library may have dropped one (see above). Refused,
    // never guessed: the wrong person would be called.
    let home = country
        .and_then(|c| DATABASE.by_id(c.as_ref()))
        .map(|m| m.country_code());
    if home.is_some_and(|cc| cc != number.code().value()) {
        let written: String = raw.chars().filter(char::is_ascii_digit).collect();
        if !written.ends_with(&digits) {
            return Err(format!(
                "it would be read as +{digits}, which drops digits that are written; write the number with + and \
                 its country code"
            ));
        }
    }
    Ok((digits, region))
}

/// Whether a national number is valid in the region of `metadata`: libphonenumber's definition, which is that it
/// matches the region's general pattern and the pattern of at least one kind of number (fixed line, mobile, toll
/// free, ...). `PhoneNumber::is_valid` decides the same from metadata it looks up again; a test checks that the two
/// agree.
fn is_valid_in(metadata: &phonenumber::Metadata, national: &str) -> bool {
    let kinds = metadata.descriptors();
    kinds.general().is_match(national)
        && [
            kinds.fixed_line(),
            kinds.mobile(),
            kinds.toll_free(),
            kinds.premium_rate(),
            kinds.shared_cost(),
            kinds.personal_number(),
            kinds.voip(),
            kinds.pager(),
            kinds.uan(),
            kinds.voicemail(),
        ]
        .into_iter()
        .flatten()
        .any(|kind| kind.is_match(national))
}

/// USPS codes of the 50 states, the District of Columbia and the territories of the +1 plan.
const US_REGIONS: &[&str] = &[
    "AK", "AL", "AR", "AS", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "GU", "HI", "IA", "ID",
    "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MP", "MS", "MT", "NC", "ND",
    "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "PR", "RI", "SC", "SD", "TN", "TX",
    "UT", "VA", "VI", "VT", "WA", "WI", "WV", "WY",
];

/// The `region` column of a number of `country`: trimmed and upper-cased, `None` when empty, `Err` when it is not a
/// region code (for a US number, one of [`US_REGIONS`]; otherwise 1 to 3 ASCII letters or digits).
fn parse_region(raw: &str, country: Option<&str>) -> Result<Option<String>, ()> {
    let region = raw.trim().to_ascii_uppercase();
    if region.is_empty() {
        return Ok(None);
    }
    let ok = if country == Some("US") {
        US_REGIONS.binary_search(&region.as_str()).is_ok()
    } else {
        region.len() <= 3 && region.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    if ok { Ok(Some(region)) } else { Err(()) }
}

/// What [`inspect_csv`] found wrong with a contacts file as a whole.
#[derive(Debug)]
pub(crate) enum CsvProblem {
    /// Refused before reading: outside the directory, not a regular file, too large, or missing.
    File(ContactsFileError),
    /// A read failed part-way.
    Read(std::io::Error),
    /// The file has no header line.
    Empty,
    /// The header record cannot be read.
    Header(u64, RecordError),
    /// A quote is never closed: every line after it would be one field.
    Unclosed(u64, RecordError),
}

/// Checks a contacts file the way a campaign file's validation needs: opens it under the directory rule and the
/// limits, reads the header, and passes once over the rest to find a quote that is never closed (which would swallow
/// the rest of the file). Rows are not checked here; [`ContactReader`] does that. Returns the header's columns.
pub(crate) fn inspect_csv(
    campaign_file: &Path,
    csv: &Path,
    limits: &ContactLimits,
) -> Result<Vec<String>, CsvProblem> {
    let file = open_contacts_file(campaign_file, csv, limits).map_err(CsvProblem::File)?;
    let mut reader = RecordReader::new(Box::new(file), *limits).map_err(CsvProblem::Read)?;
    let columns = match reader.next_record().map_err(CsvProblem::Read)? {
        Some((_, Ok(fields))) => fields,
        Some((line, Err(e @ RecordError::Unclosed { .. }))) => {
            return Err(CsvProblem::Unclosed(line, e));
        }
        Some((line, Err(e))) => return Err(CsvProblem::Header(line, e)),
        None => return Err(CsvProblem::Empty),
    };
    reader.skip_fields();
    while let Some((line, record)) = reader.next_record().map_err(CsvProblem::Read)? {
        if let Err(e @ RecordError::Unclosed { .. }) = record {
            return Err(CsvProblem::Unclosed(line, e));
        }
    }
    Ok(columns)
}

/// Streams the contacts of a campaign: `Ok` for each accepted contact, `Err` for each row left out.
#[derive(Debug)]
pub struct ContactReader {
    reader: RecordReader,
    phone: usize,
    name: Option<usize>,
    customer: Option<usize>,
    other: Option<usize>,
    timezone: Option<usize>,
    region: Option<usize>,
    variables: Vec<(String, usize)>,
    /// The columns that are sent or stored, in CSV order, with their names (for the control-character check).
    checked: Vec<(usize, String)>,
    default_country: Option<Id>,
    campaign_id: String,
    generation: u32,
    seen: HashMap<PhoneKey, u32>,
    done: bool,
}

/// A normalised phone (at most 15 digits) as the key of the phones already read, in two halves: with the line it was
/// first read on, an entry takes 12 bytes instead of the 16 of a `(u64, u32)` (its padding). With millions of
/// contacts this map is the largest thing the reader holds (10,000,000 contacts: about 200 MB instead of 285 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PhoneKey([u32; 2]);

impl PhoneKey {
    fn of(phone: u64) -> PhoneKey {
        // The halves of the number, low and high: `as` keeps the low 32 bits of each.
        PhoneKey([phone as u32, (phone >> 32) as u32])
    }
}

impl ContactReader {
    /// Opens the campaign's CSV, with the default [`ContactLimits`], and checks its header. The campaign id and
    /// generation are needed for order IDs. The file must be inside the directory of the campaign file
    /// (`campaign.source`); see [`open_contacts_file`].
    pub fn open(campaign: &CampaignSpec) -> Result<Self, ContactsError> {
        Self::open_with_limits(campaign, &ContactLimits::default())
    }

    /// Like [`ContactReader::open`], with the given limits.
    pub fn open_with_limits(
        campaign: &CampaignSpec,
        limits: &ContactLimits,
    ) -> Result<Self, ContactsError> {
        check_country(campaign)?;
        let file = open_contacts_file(&campaign.source, &campaign.contacts.file, limits)?;
        Self::start(campaign, Box::new(file), limits)
    }

    /// Reads the contacts from `source` instead of the campaign's file: for tests and fuzzing. The directory rule
    /// and the file checks do not apply (the caller chose the bytes); every other limit does.
    pub fn from_reader(
        campaign: &CampaignSpec,
        source: impl Read + Send + 'static,
        limits: &ContactLimits,
    ) -> Result<Self, ContactsError> {
        check_country(campaign)?;
        Self::start(campaign, Box::new(source), limits)
    }

    fn start(
        campaign: &CampaignSpec,
        source: Box<dyn Read + Send>,
        limits: &ContactLimits,
    ) -> Result<Self, ContactsError> {
        let spec = &campaign.contacts;
        let path = spec.file.clone();
        let io = |source| ContactsError::Io {
            path: path.clone(),
            source,
        };
        let mut reader = RecordReader::new(source, *limits).map_err(io)?;
        let columns = match reader.next_record().map_err(io)? {
            Some((_, Ok(fields))) => fields,
            Some((line, Err(reason))) => {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {line}: {reason}"),
                )));
            }
            None => Vec::new(),
        };
        let find = |name: &str| columns.iter().position(|c| c == name);
        let phone =
            find("phone").ok_or_else(|| ContactsError::NoPhoneColumn { path: path.clone() })?;
        let mut variables = Vec::new();
        for name in &spec.variables {
            let idx = find(name).ok_or_else(|| ContactsError::MissingColumn {
                path: path.clone(),
                name: name.clone(),
            })?;
            variables.push((name.clone(), idx));
        }
        let (name, customer, other) = (find("name"), find("customer"), find("other"));
        let (timezone, region) = (find("timezone"), find("region"));
        let mut checked: Vec<(usize, String)> =
            [Some(phone), name, customer, other, timezone, region]
                .into_iter()
                .flatten()
                .chain(variables.iter().map(|(_, i)| *i))
                .map(|i| (i, columns[i].clone()))
                .collect();
        checked.sort();
        checked.dedup();
        Ok(Self {
            reader,
            phone,
            name,
            customer,
            other,
            timezone,
            region,
            variables,
            checked,
            // Checked by `check_country` before the reader starts.
            default_country: spec.default_country.as_deref().and_then(|c| c.parse().ok()),
            campaign_id: campaign.id.clone(),
            generation: campaign.generation,
            seen: HashMap::new(),
            done: false,
        })
    }

    /// Reads everything and counts it, keeping the first `keep_issues` issues.
    pub fn summarize(self, keep_issues: usize) -> ContactSummary {
        let mut s = ContactSummary::default();
        for item in self {
            match item {
                Ok(_) => s.valid += 1,
                Err(issue) => {
                    match issue.kind {
                        ContactIssueKind::Duplicate { .. } => s.duplicate += 1,
                        _ => s.invalid += 1,
                    }
                    if s.issues.len() < keep_issues {
                        s.issues.push(issue);
                    }
                }
            }
        }
        s
    }

    fn row(&mut self, line: u64, fields: &[String]) -> Result<Contact, ContactIssue> {
        let issue = |kind| ContactIssue { line, kind };
        for (idx, name) in &self.checked {
            let bad = fields.get(*idx).and_then(|f| {
                f.chars()
                    .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            });
            if let Some(character) = bad {
                return Err(issue(ContactIssueKind::ControlCharacter {
                    column: idx + 1,
                    name: name.clone(),
                    character,
                }));
            }
        }
        let field =
            |idx: Option<usize>| idx.and_then(|i| fields.get(i)).cloned().unwrap_or_default();
        let raw = field(Some(self.phone));
        let (phone, country) = parse_phone(&raw, self.default_country).map_err(|reason| {
            issue(ContactIssueKind::InvalidPhone {
                raw: raw.clone(),
                reason,
            })
        })?;
        let timezone = match self.timezone.and_then(|i| fields.get(i)) {
            Some(written) if !written.trim().is_empty() => {
                Some(written.trim().parse::<Tz>().map_err(|_| {
                    issue(ContactIssueKind::BadTimezone {
                        raw: written.clone(),
                    })
                })?)
            }
            _ => None,
        };
        let region = match self.region.and_then(|i| fields.get(i)) {
            Some(written) => parse_region(written, country).map_err(|()| {
                issue(ContactIssueKind::BadRegion {
                    raw: written.clone(),
                })
            })?,
            None => None,
        };
        let mut variables = Vec::with_capacity(self.variables.len());
        for (name, idx) in &self.variables {
            let value = field(Some(*idx));
            if value.trim().is_empty() {
                return Err(issue(ContactIssueKind::MissingVariable {
                    name: name.clone(),
                }));
            }
            variables.push((name.clone(), value));
        }
        let key: u64 = phone.parse().map_err(|_| {
            issue(ContactIssueKind::InvalidPhone {
                raw: raw.clone(),
                reason: "longer than 15 digits".to_string(),
            })
        })?;
        let key = PhoneKey::of(key);
        if let Some(first) = self.seen.get(&key) {
            return Err(issue(ContactIssueKind::Duplicate {
                phone,
                first_line: u64::from(*first),
            }));
        }
        self.seen
            .insert(key, u32::try_from(line).unwrap_or(u32::MAX));
        Ok(Contact {
            line,
            name: field(self.name),
            customer: field(self.customer),
            other: field(self.other),
            variables,
            order_id: order_id(&self.campaign_id, self.generation, &phone),
            phone,
            timezone,
            region,
            country: country.map(str::to_owned),
        })
    }
}

impl Iterator for ContactReader {
    type Item = Result<Contact, ContactIssue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.reader.next_record() {
            Ok(None) => {
                self.done = true;
                None
            }
            Ok(Some((line, Ok(fields)))) => Some(self.row(line, &fields)),
            Ok(Some((line, Err(reason)))) => Some(Err(ContactIssue {
                line,
                kind: ContactIssueKind::Malformed {
                    reason: reason.to_string(),
                },
            })),
            Err(e) => {
                self.done = true;
                let line = self.reader.line() + 1;
                Some(Err(ContactIssue {
                    line,
                    kind: ContactIssueKind::Malformed {
                        reason: format!("read error: {e}"),
                    },
                }))
            }
        }
    }
}

fn check_country(campaign: &CampaignSpec) -> Result<(), ContactsError> {
    match &campaign.contacts.default_country {
        Some(c) if c.parse::<Id>().is_err() => Err(ContactsError::BadCountry(c.clone())),
        _ => Ok(()),
    }
}

/// Counts over a whole contacts file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactSummary {
    /// Accepted contacts.
    pub valid: u64,
    /// Rows left out for a bad phone, an empty variable, or an unreadable record.
    pub invalid: u64,
    /// Rows left out as duplicates.
    pub duplicate: u64,
    /// The first issues, in file order.
    pub issues: Vec<ContactIssue>,
}

impl ContactSummary {
    /// Number of `createAndCall`/`addBatchCall` requests for the valid contacts.
    pub fn batches(&self, batch_size: u32) -> u64 {
        self.valid.div_ceil(u64::from(batch_size.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_campaign;
    use proptest::prelude::*;
    use std::path::Path;

    #[test]
    fn a_phone_seen_takes_12_bytes_and_its_halves_tell_numbers_apart() {
        assert_eq!(std::mem::size_of::<(PhoneKey, u32)>(), 12);
        let a = 447_700_900_123u64;
        assert_eq!(PhoneKey::of(a), PhoneKey::of(a));
        assert_ne!(PhoneKey::of(a), PhoneKey::of(a + (1 << 32)));
        assert_ne!(PhoneKey::of(a), PhoneKey::of(a + 1));
        assert_ne!(PhoneKey::of(999_999_999_999_999), PhoneKey::of(0));
    }

    const TOML: &str = r#"scene_id = "S"
[schedule]
utc_offset = "+00:00"
windows = [{ days = "mon-sun", hours = ["00:00-24:00"] }]
[contacts]
file = "c.csv"
default_country = "GB"
variables = ["amount"]
"#;

    fn campaign(dir: &Path, csv: &str) -> CampaignSpec {
        std::fs::write(dir.join("c.csv"), csv).unwrap();
        let (spec, _) = parse_campaign(&dir.join("c.toml"), TOML).unwrap();
        spec
    }

    #[test]
    fn numbers_of_many_countries_never_evict_each_others_patterns() {
        // Sixty country codes read in turn, three times: with the library's default cache of 100 patterns they evict
        // each other and every number builds some again; with room for every pattern nothing is ever evicted.
        let codes = [
            1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52,
            53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94,
            95, 98, 212, 213, 216, 234, 254, 255, 256, 351, 352, 353, 354, 420, 852, 972,
        ];
        for round in 0..3u64 {
            for (i, code) in codes.iter().enumerate() {
                let _ = normalize_phone(
                    &format!("+{code}{}", 20_123_456 + round * 97 + i as u64),
                    None,
                );
            }
        }
        let cache = phonenumber::metadata::DATABASE.cache();
        let cache = cache.lock().unwrap();
        assert_eq!(cache.capacity(), PHONE_PATTERNS);
        assert!(
            cache.len() > 100 && cache.len() < cache.capacity(),
            "{} patterns built: more than the library's default keeps, and none evicted",
            cache.len()
        );
    }

    #[test]
    fn normalizes_national_and_international_numbers() {
        assert_eq!(
            normalize_phone("020 7946 0123", Some("GB")).unwrap(),
            "442079460123"
        );
        assert_eq!(
            normalize_phone("+44 20 7946 0123", None).unwrap(),
            "442079460123"
        );
        // Ofcom's drama range for mobiles is not in libphonenumber's valid ranges.
        assert!(normalize_phone("07700 900123", Some("GB")).is_err());
        assert_eq!(
            normalize_phone("+61 491 570 156", Some("GB")).unwrap(),
            "61491570156"
        );
        assert_eq!(
            normalize_phone("(201) 555-0123", Some("US")).unwrap(),
            "12015550123"
        );
    }

    #[test]
    fn a_foreign_number_keeps_every_digit_whatever_the_default_country() {
        // With a default region, the library used to drop that region's national prefix from foreign numbers.
        for default in [None, Some("US"), Some("GB"), Some("DE")] {
            assert_eq!(
                normalize_phone("+49 1512 3456789", default).unwrap(),
                "4915123456789",
                "{default:?}"
            );
            assert_eq!(
                normalize_phone("+49 171 2345678", default).unwrap(),
                "491712345678"
            );
            assert_eq!(
                normalize_phone("+61 1300 123 456", default).unwrap(),
                "611300123456"
            );
            assert_eq!(
                normalize_phone("+33 1 23 45 67 89", default).unwrap(),
                "33123456789"
            );
        }
        // Written with an international dialling prefix: the digits after it are the number, or it is refused. The
        // library reads this one as +49 512 3456789, so it is refused, never guessed.
        let e = normalize_phone("011 49 1512 3456789", Some("US")).unwrap_err();
        assert!(e.contains("write the number with +"), "{e}");
        assert_eq!(
            normalize_phone("00 33 1 23 45 67 89", Some("GB")).unwrap(),
            "33123456789"
        );
    }

    #[test]
    fn rejects_invalid_numbers_with_a_reason() {
        assert_eq!(normalize_phone("", Some("GB")).unwrap_err(), "empty");
        assert!(normalize_phone("hello", Some("GB")).is_err());
        assert!(normalize_phone("12", Some("GB")).is_err());
        let e = normalize_phone("2079460123", None).unwrap_err();
        assert!(e.starts_with("no country code"), "{e}");
    }

    #[test]
    fn streams_contacts_and_reports_issues_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "phone,name,customer,other,amount\n\
                   020 7946 0001,Ann,C1,x,10\n\
                   +442079460001,Ann again,C1,x,10\n\
                   not a phone,Bob,C2,,20\n\
                   020 7946 0002,Cid,C3,,\n\
                   \n\
                   020 7946 0003,Dee,C4,,30\n";
        let spec = campaign(dir.path(), csv);
        let items: Vec<_> = ContactReader::open(&spec).unwrap().collect();
        assert_eq!(items.len(), 5);
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.line, 2);
        assert_eq!(first.phone, "442079460001");
        assert_eq!(
            first.variables,
            vec![("amount".to_string(), "10".to_string())]
        );
        assert_eq!(first.order_id, order_id("c", 1, "442079460001"));
        assert_eq!(
            items[1].as_ref().unwrap_err().kind,
            ContactIssueKind::Duplicate {
                phone: "442079460001".into(),
                first_line: 2
            }
        );
        assert!(matches!(
            items[2].as_ref().unwrap_err().kind,
            ContactIssueKind::InvalidPhone { .. }
        ));
        assert_eq!(items[2].as_ref().unwrap_err().line, 4);
        assert_eq!(
            items[3].as_ref().unwrap_err().to_string(),
            "line 5: variable `amount` is empty"
        );
        assert_eq!(items[4].as_ref().unwrap().line, 7);
        let summary = ContactReader::open(&spec).unwrap().summarize(1);
        assert_eq!(
            (summary.valid, summary.invalid, summary.duplicate),
            (2, 2, 1)
        );
        assert_eq!(summary.issues.len(), 1);
        assert_eq!(summary.batches(1), 2);
    }

    #[test]
    fn line_numbers_count_blank_lines_crlf_and_quoted_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "phone,name,amount\r\n\r\n020 7946 0001,\"Ann\r\nSmith, \"\"A\"\"\",1\r\n\r\n020 7946 0002,B,2\r\n";
        let spec = campaign(dir.path(), csv);
        let items: Vec<_> = ContactReader::open(&spec)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(items[0].line, 3);
        assert_eq!(items[0].name, "Ann\r\nSmith, \"A\"");
        assert_eq!(items[1].line, 6);
        assert_eq!(items[1].variables[0].1, "2");
    }

    #[test]
    fn reports_unreadable_records_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let spec = campaign(
            dir.path(),
            "phone,amount\n020 7946 0001,\"1\"x\n020 7946 0002,2\n",
        );
        let items: Vec<_> = ContactReader::open(&spec).unwrap().collect();
        assert!(matches!(
            items[0].as_ref().unwrap_err().kind,
            ContactIssueKind::Malformed { .. }
        ));
        assert_eq!(items[1].as_ref().unwrap().line, 3);
    }

    #[test]
    fn a_control_character_in_a_field_is_a_bad_row_and_the_rest_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "phone,name,amount,unused\n\
                   020 7946 0001,Ann,10,\u{0}\n\
                   020 7946 0002,B\u{0}b,20,x\n\
                   020 7946 0003,Cid,\"3\u{1b}[2J\",x\n\
                   020 7946 0004,\"Dee\tE\r\nF\",40,x\n";
        let spec = campaign(dir.path(), csv);
        let items: Vec<_> = ContactReader::open(&spec).unwrap().collect();
        assert_eq!(items.len(), 4);
        // A NUL in a column that is neither sent nor stored does no harm.
        assert_eq!(items[0].as_ref().unwrap().line, 2);
        let e = items[1].as_ref().unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(
            e.kind,
            ContactIssueKind::ControlCharacter {
                column: 2,
                name: "name".into(),
                character: '\0'
            }
        );
        assert_eq!(
            e.to_string(),
            "line 3: column 2 (`name`) contains the control character U+0000; remove it (only tab and quoted \
             line breaks may appear in a field)"
        );
        let e = items[2].as_ref().unwrap_err();
        assert_eq!(
            (e.line, &e.kind),
            (
                4,
                &ContactIssueKind::ControlCharacter {
                    column: 3,
                    name: "amount".into(),
                    character: '\u{1b}'
                }
            )
        );
        // Tab and quoted line breaks are text.
        assert_eq!(items[3].as_ref().unwrap().name, "Dee\tE\r\nF");
        let s = ContactReader::open(&spec).unwrap().summarize(10);
        assert_eq!((s.valid, s.invalid), (2, 2));
    }

    #[test]
    fn quoted_input_in_issues_is_escaped_and_cut() {
        let kind = ContactIssueKind::InvalidPhone {
            raw: format!("\u{202e}12{}", "9".repeat(200)),
            reason: "r".into(),
        };
        let text = kind.to_string();
        assert!(text.starts_with("invalid phone `\\u{202e}12999"), "{text}");
        assert!(text.contains("…`"), "{text}");
        assert!(text.chars().count() < 120, "{text}");
    }

    #[test]
    fn rows_over_the_limits_are_bad_rows_naming_the_limit_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let wide = vec!["x"; 300].join(",");
        let long = "y".repeat(70_000);
        let csv = format!(
            "phone,amount\n020 7946 0001,{wide}\n020 7946 0002,\"{long}\"\n020 7946 0003,3\n"
        );
        let spec = campaign(dir.path(), &csv);
        let items: Vec<_> = ContactReader::open(&spec).unwrap().collect();
        assert_eq!(items.len(), 3);
        let e = items[0].as_ref().unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string()
                .contains("more than 256 fields (the limit `[contacts] max_fields`)"),
            "{e}"
        );
        let e = items[1].as_ref().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.to_string()
                .contains("longer than 65536 bytes (the limit `[contacts] max_record_bytes`)"),
            "{e}"
        );
        assert_eq!(items[2].as_ref().unwrap().line, 4);
    }

    #[test]
    fn an_unclosed_quote_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let spec = campaign(
            dir.path(),
            "phone,amount\n020 7946 0001,1\n020 7946 0002,\"2\n020 7946 0003,3\n",
        );
        let items: Vec<_> = ContactReader::open(&spec).unwrap().collect();
        assert_eq!(items.len(), 2);
        let e = items[1].as_ref().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.to_string().contains("opened on line 3 is never closed"),
            "{e}"
        );
    }

    #[test]
    fn the_reader_refuses_a_file_outside_the_campaigns_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("campaigns");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(root.path().join("c.csv"), "phone,amount\n").unwrap();
        // The spec as a stored, older version might have it: resolved outside the campaign file's directory.
        let (mut spec, _) = parse_campaign(&dir.join("c.toml"), TOML).unwrap();
        spec.contacts.file = root.path().join("c.csv");
        let e = ContactReader::open(&spec).unwrap_err();
        assert!(
            matches!(e, ContactsError::Refused(ContactsFileError::Outside { .. })),
            "{e}"
        );
    }

    #[test]
    fn reads_from_any_source_for_tests_and_fuzzing() {
        let dir = tempfile::tempdir().unwrap();
        let spec = campaign(dir.path(), "phone\n");
        let bytes = b"phone,amount\n020 7946 0001,1\n".to_vec();
        let items: Vec<_> = ContactReader::from_reader(
            &spec,
            std::io::Cursor::new(bytes),
            &ContactLimits::default(),
        )
        .unwrap()
        .collect();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap().phone, "442079460001");
    }

    #[test]
    fn refuses_a_file_without_the_declared_variable_column() {
        let dir = tempfile::tempdir().unwrap();
        let spec = campaign(dir.path(), "phone,name\n");
        assert!(matches!(
            ContactReader::open(&spec),
            Err(ContactsError::MissingColumn { .. })
        ));
    }

    /// The contacts of `csv` (read in `US` national format), in file order.
    fn read_us(csv: &str) -> Vec<Result<Contact, ContactIssue>> {
        let dir = tempfile::tempdir().unwrap();
        let toml = TOML
            .replace("default_country = \"GB\"", "default_country = \"US\"")
            .replace("variables = [\"amount\"]", "variables = []");
        let (spec, _) = parse_campaign(&dir.path().join("c.toml"), &toml).unwrap();
        ContactReader::from_reader(
            &spec,
            std::io::Cursor::new(csv.as_bytes().to_vec()),
            &ContactLimits::default(),
        )
        .unwrap()
        .collect()
    }

    #[test]
    fn reads_the_timezone_and_region_columns_and_the_country_of_the_number() {
        let items = read_us(
            "phone,timezone,region\n\
             (212) 555-0100, America/New_York ,ny\n\
             +1 416 555 0100,,on\n\
             +33 6 12 34 56 78,Europe/Paris,\n\
             +44 20 7946 0001,,ENG\n\
             +800 2345 6789,,\n",
        );
        let ok: Vec<&Contact> = items.iter().map(|c| c.as_ref().unwrap()).collect();
        assert_eq!(ok[0].timezone, Some(Tz::America__New_York));
        assert_eq!(ok[0].region.as_deref(), Some("NY"));
        assert_eq!(ok[0].country.as_deref(), Some("US"));
        assert_eq!(
            (
                ok[1].timezone,
                ok[1].region.as_deref(),
                ok[1].country.as_deref()
            ),
            (None, Some("ON"), Some("CA"))
        );
        assert_eq!(
            (
                ok[2].timezone,
                ok[2].region.as_deref(),
                ok[2].country.as_deref()
            ),
            (Some(Tz::Europe__Paris), None, Some("FR"))
        );
        assert_eq!(
            (ok[3].region.as_deref(), ok[3].country.as_deref()),
            (Some("ENG"), Some("GB"))
        );
        // A non-geographic number (International Freephone) is valid and has no country.
        assert_eq!(ok[4].phone, "80023456789");
        assert_eq!(ok[4].country, None);
        // Without the columns, nothing is read into them.
        let c = read_us("phone\n(212) 555-0100\n").remove(0).unwrap();
        assert_eq!(
            (c.timezone, c.region, c.country.as_deref()),
            (None, None, Some("US"))
        );
    }

    #[test]
    fn an_unknown_timezone_is_a_bad_row_with_its_line_and_a_near_name() {
        let items = read_us(
            "phone,timezone\n\
             (212) 555-0100,America/New_Yrok\n\
             (212) 555-0101,Mars/Olympus_Mons\n\
             (212) 555-0102,+05:00\n\
             (212) 555-0103,Asia/Tokyo\n",
        );
        let e = items[0].as_ref().unwrap_err();
        assert_eq!(
            e.kind,
            ContactIssueKind::BadTimezone {
                raw: "America/New_Yrok".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "line 2: timezone `America/New_Yrok` is not an IANA time zone name; did you mean `America/New_York`?"
        );
        assert_eq!(
            items[1].as_ref().unwrap_err().to_string(),
            "line 3: timezone `Mars/Olympus_Mons` is not an IANA time zone name; write one such as \
             `America/New_York` or `Asia/Tokyo`, or leave it empty to use the number's own zones"
        );
        assert!(matches!(
            items[2].as_ref().unwrap_err().kind,
            ContactIssueKind::BadTimezone { .. }
        ));
        assert_eq!(items[3].as_ref().unwrap().timezone, Some(Tz::Asia__Tokyo));
    }

    #[test]
    fn a_region_that_is_not_a_code_is_a_bad_row() {
        let items = read_us(
            "phone,region\n\
             (305) 555-0100,Florida\n\
             (305) 555-0101,fl\n\
             (305) 555-0102,ZZ\n\
             (787) 555-0100,PR\n\
             +44 20 7946 0001,England\n\
             +44 20 7946 0002,SCT\n\
             +44 20 7946 0003,N-I\n",
        );
        let e = items[0].as_ref().unwrap_err();
        assert_eq!(
            (e.line, &e.kind),
            (
                2,
                &ContactIssueKind::BadRegion {
                    raw: "Florida".into()
                }
            )
        );
        assert_eq!(
            e.to_string(),
            "line 2: region `Florida` is not a region code; for a US number write its state's two-letter USPS \
             code (such as `FL`, `NY`, `DC` or `PR`), for another country a code of 1 to 3 letters or digits, or \
             leave it empty to use the number's own"
        );
        assert_eq!(items[1].as_ref().unwrap().region.as_deref(), Some("FL"));
        // Not a USPS code, for a US number.
        assert_eq!(items[2].as_ref().unwrap_err().line, 4);
        // Puerto Rico's numbers are their own region of the +1 plan.
        let pr = items[3].as_ref().unwrap();
        assert_eq!(
            (pr.country.as_deref(), pr.region.as_deref()),
            (Some("PR"), Some("PR"))
        );
        assert_eq!(items[4].as_ref().unwrap_err().line, 6);
        assert_eq!(items[5].as_ref().unwrap().region.as_deref(), Some("SCT"));
        assert_eq!(items[6].as_ref().unwrap_err().line, 8);
    }

    #[test]
    fn the_timezone_and_region_columns_are_checked_for_control_characters() {
        let items =
            read_us("phone,timezone,region\n(212) 555-0100,UTC\u{1b},\n(212) 555-0101,,N\u{0}Y\n");
        assert_eq!(
            items[0].as_ref().unwrap_err().kind,
            ContactIssueKind::ControlCharacter {
                column: 2,
                name: "timezone".into(),
                character: '\u{1b}'
            }
        );
        assert_eq!(
            items[1].as_ref().unwrap_err().kind,
            ContactIssueKind::ControlCharacter {
                column: 3,
                name: "region".into(),
                character: '\0'
            }
        );
    }

    #[test]
    fn the_usps_codes_are_sorted_for_the_binary_search() {
        assert!(US_REGIONS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(US_REGIONS.len(), 50 + 1 + 5);
    }

    /// What the library's own `is_valid` and `country().id()` make of `raw` (written with its country code), as
    /// [`parse_phone`] should report it: `Some(country)` for a valid number of at most 15 digits, `None` for a number
    /// to refuse.
    fn library_reading(raw: &str) -> Option<Option<String>> {
        let number = phonenumber::parse(None, raw).ok()?;
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        (number.is_valid() && e164.len() <= 16)
            .then(|| number.country().id().map(|id| id.as_ref().to_string()))
    }

    #[test]
    fn validity_and_country_agree_with_the_library_own_answers() {
        // The reader decides validity and the country from one metadata look-up; the library's `is_valid` and
        // `country().id()` each look it up again. Every country code, with numbers of many lengths and prefixes.
        let mut checked = 0;
        for code in 1..=999u32 {
            for national in [
                "2015550123",
                "4165550123",
                "8095550123",
                "7911123456",
                "612345678",
                "2079460123",
                "312345678",
                "91234567",
                "12345678",
                "5512345678",
                "1234567",
                "800123456",
                "0312345678",
            ] {
                let raw = format!("+{code}{national}");
                let ours = parse_phone(&raw, None).map(|(_, c)| c.map(str::to_owned));
                let theirs = library_reading(&raw);
                assert_eq!(ours.ok(), theirs, "{raw}");
                checked += usize::from(theirs.is_some());
            }
        }
        assert!(checked > 100, "{checked} valid numbers compared");
    }

    proptest! {
        #[test]
        fn normalized_numbers_are_stable_digits(national in 0u32..1000) {
            let raw = format!("020 7946 {national:04}");
            let once = normalize_phone(&raw, Some("GB")).unwrap();
            prop_assert!(once.chars().all(|c| c.is_ascii_digit()) && once.len() <= 15);
            prop_assert_eq!(normalize_phone(&format!("+{once}"), None).unwrap(), once);
        }

        #[test]
        fn validity_agrees_with_the_library(code in 1u32..1000, national in "[0-9]{4,13}") {
            let raw = format!("+{code}{national}");
            let ours = parse_phone(&raw, None).map(|(_, c)| c.map(str::to_owned));
            prop_assert_eq!(ours.ok(), library_reading(&raw), "{}", raw);
        }

        #[test]
        fn normalization_never_panics(raw in ".{0,30}") {
            let _ = normalize_phone(&raw, Some("US"));
        }
    }
}
