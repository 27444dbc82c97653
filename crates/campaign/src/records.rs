//! The CSV tokenizer: RFC 4180 records, each with the physical line it starts on.
//!
//! Linear by construction, whatever the input: every byte is looked at exactly once, by one state machine, and a
//! record keeps at most `max_record_bytes` of its text. Where a record ends depends only on the quotes seen so far
//! (a line break ends it when the number of `"` in it is even), so a record that cannot be read (a stray quote, too
//! long, too many fields, not UTF-8) is still skipped to its end in the same single pass, and the next one is read.
//! A quote that is never closed runs to the end of the file and is reported with the line it opened on.

use std::fmt;
use std::io::{self, BufRead, BufReader, Cursor, Read};

use crate::limits::ContactLimits;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A record's first line and its fields, or why it cannot be read.
pub(crate) type RawRecord = (u64, Result<Vec<String>, RecordError>);

/// Why one record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// A quoted field runs to the end of the file.
    Unclosed {
        /// The line its opening quote is on.
        quote_line: u64,
    },
    /// Longer than `max_record_bytes`.
    TooLong { limit: usize },
    /// More than `max_fields` fields.
    TooManyFields { limit: usize },
    /// A `"` inside a field that does not start with one.
    QuoteInUnquoted,
    /// Something other than a comma or spaces after a closing quote.
    TextAfterQuote,
    /// Not UTF-8.
    NotUtf8,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Unclosed { quote_line } => write!(
                f,
                "the quoted field opened on line {quote_line} is never closed, so it runs to the end of the file; \
                 close it with `\"` (a quote inside a quoted field is written `\"\"`)"
            ),
            RecordError::TooLong { limit } => write!(
                f,
                "the record is longer than {limit} bytes (the limit `[contacts] max_record_bytes`); shorten it, or look for a \
                 quote that is closed too late"
            ),
            RecordError::TooManyFields { limit } => write!(
                f,
                "the record has more than {limit} fields (the limit `[contacts] max_fields`); remove the extra commas, or quote \
                 the fields that contain commas"
            ),
            RecordError::QuoteInUnquoted => {
                f.write_str("a quote inside an unquoted field; quote the whole field")
            }
            RecordError::TextAfterQuote => {
                f.write_str("text after a closing quote; quote the whole field")
            }
            RecordError::NotUtf8 => f.write_str("not UTF-8; save the CSV as UTF-8"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field; only spaces seen.
    Start,
    /// Inside a field that does not start with a quote.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a `"` inside a quoted field: the closing quote, or the first half of `""`.
    QuoteInQuoted,
    /// After a closing quote and spaces.
    AfterQuoted,
}

/// The state of the record being read. Everything here is per record except `line`.
#[derive(Debug)]
struct Tokenizer {
    limits: ContactLimits,
    /// Whether fields are kept (false for a pass that only checks where records end).
    keep: bool,
    /// Physical lines ended so far (line breaks seen).
    line: u64,
    state: State,
    /// Whether the record has seen an odd number of quotes (then a line break belongs to a field).
    odd: bool,
    /// The line the latest opening quote is on.
    quote_line: u64,
    /// Bytes of the record so far, the line break that ends it not included.
    bytes: usize,
    /// Whether the record so far is only ASCII white space.
    blank: bool,
    error: Option<RecordError>,
    field: Vec<u8>,
    fields: Vec<String>,
}

impl Tokenizer {
    fn reset(&mut self) {
        self.state = State::Start;
        self.odd = false;
        self.bytes = 0;
        self.blank = true;
        self.error = None;
        self.field.clear();
        self.fields.clear();
    }

    fn fail(&mut self, e: RecordError) {
        if self.error.is_none() {
            self.error = Some(e);
            self.field = Vec::new();
            self.fields = Vec::new();
        }
    }

    /// Takes one byte. Returns true when it is the line break that ends the record.
    #[inline]
    fn step(&mut self, b: u8) -> bool {
        if b == b'\n' {
            self.line += 1;
            if !self.odd {
                return true;
            }
        } else if b == b'"' {
            self.odd = !self.odd;
            if self.odd {
                self.quote_line = self.line + 1;
            }
        }
        self.bytes += 1;
        self.blank &= b.is_ascii_whitespace();
        if self.error.is_some() {
            return false;
        }
        if self.bytes > self.limits.max_record_bytes {
            self.fail(RecordError::TooLong {
                limit: self.limits.max_record_bytes,
            });
            return false;
        }
        if !self.keep {
            return false;
        }
        match (self.state, b) {
            (State::Start, b'"') => self.state = State::Quoted,
            (State::Start, b',') => self.finish_field(false),
            (State::Start, b) if b.is_ascii_whitespace() => {}
            (State::Start, b) => {
                self.field.push(b);
                self.state = State::Unquoted;
            }
            (State::Unquoted, b',') => self.finish_field(false),
            (State::Unquoted, b'"') => self.fail(RecordError::QuoteInUnquoted),
            (State::Unquoted, b) => self.field.push(b),
            (State::Quoted, b'"') => self.state = State::QuoteInQuoted,
            (State::Quoted, b) => self.field.push(b),
            (State::QuoteInQuoted, b'"') => {
                self.field.push(b'"');
                self.state = State::Quoted;
            }
            (State::QuoteInQuoted | State::AfterQuoted, b',') => self.finish_field(true),
            (State::QuoteInQuoted | State::AfterQuoted, b) if b.is_ascii_whitespace() => {
                self.state = State::AfterQuoted;
            }
            (State::QuoteInQuoted | State::AfterQuoted, _) => {
                self.fail(RecordError::TextAfterQuote);
            }
        }
        false
    }

    /// Ends the current field: unquoted fields are trimmed, quoted ones kept as written.
    fn finish_field(&mut self, quoted: bool) {
        if self.fields.len() >= self.limits.max_fields {
            self.fail(RecordError::TooManyFields {
                limit: self.limits.max_fields,
            });
            return;
        }
        self.state = State::Start;
        match String::from_utf8(std::mem::take(&mut self.field)) {
            Ok(s) if quoted => self.fields.push(s),
            Ok(s) => {
                let trimmed = s.trim();
                self.fields.push(if trimmed.len() == s.len() {
                    s
                } else {
                    trimmed.to_owned()
                });
            }
            Err(_) => self.fail(RecordError::NotUtf8),
        }
    }

    /// Ends the record (at its line break, or at the end of the file).
    fn finish_record(&mut self) -> Result<Vec<String>, RecordError> {
        if self.odd {
            return Err(RecordError::Unclosed {
                quote_line: self.quote_line,
            });
        }
        if self.error.is_none() && self.keep {
            let quoted = matches!(self.state, State::QuoteInQuoted | State::AfterQuoted);
            self.finish_field(quoted);
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut self.fields)),
        }
    }
}

/// Reads CSV records one at a time, knowing the physical line each starts on (quoted fields may span lines; blank
/// lines are skipped). RFC 4180: fields separated by commas, optionally quoted, `""` is a quote inside quotes. A UTF-8
/// byte order mark at the start of the file is skipped.
pub(crate) struct RecordReader {
    inner: BufReader<Box<dyn Read + Send>>,
    tok: Tokenizer,
    /// Bytes looked at so far (a skipped byte order mark included).
    consumed: u64,
    /// The most bytes of one record held at once (for the tests that prove the bound).
    peak_held: usize,
    eof: bool,
}

impl fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordReader")
            .field("line", &self.tok.line)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

impl RecordReader {
    /// A reader over `source`, bounded by `limits`.
    pub(crate) fn new(mut source: Box<dyn Read + Send>, limits: ContactLimits) -> io::Result<Self> {
        let mut head = [0u8; 3];
        let mut n = 0;
        while n < head.len() {
            match source.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let (prefix, consumed) = if head[..n] == BOM {
            (Vec::new(), 3)
        } else {
            (head[..n].to_vec(), 0)
        };
        let chained: Box<dyn Read + Send> = Box::new(Cursor::new(prefix).chain(source));
        Ok(Self {
            inner: BufReader::with_capacity(64 * 1024, chained),
            tok: Tokenizer {
                limits,
                keep: true,
                line: 0,
                state: State::Start,
                odd: false,
                quote_line: 0,
                bytes: 0,
                blank: true,
                error: None,
                field: Vec::new(),
                fields: Vec::new(),
            },
            consumed,
            peak_held: 0,
            eof: false,
        })
    }

    /// Physical lines read so far.
    pub(crate) fn line(&self) -> u64 {
        self.tok.line
    }

    /// Bytes looked at so far.
    #[cfg(test)]
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The most bytes of one record held at once so far.
    #[cfg(test)]
    pub(crate) fn peak_held(&self) -> usize {
        self.peak_held
    }

    /// From now on, only find where records end and whether a quote is never closed; keep no fields.
    pub(crate) fn skip_fields(&mut self) {
        self.tok.keep = false;
    }

    /// The next non-blank record: its first line and its fields (or why it cannot be read). `None` at the end.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<RawRecord>> {
        loop {
            if self.eof {
                return Ok(None);
            }
            self.tok.reset();
            let start = self.tok.line + 1;
            loop {
                let buf = match self.inner.fill_buf() {
                    Ok(b) => b,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if buf.is_empty() {
                    self.eof = true;
                    break;
                }
                let mut used = 0;
                let mut ended = false;
                for &b in buf {
                    used += 1;
                    if self.tok.step(b) {
                        ended = true;
                        break;
                    }
                }
                self.inner.consume(used);
                self.consumed += used as u64;
                let held =
                    self.tok.field.len() + self.tok.fields.iter().map(String::len).sum::<usize>();
                self.peak_held = self.peak_held.max(held);
                let limit = self.tok.limits.max_file_bytes;
                if self.consumed > limit {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the file is larger than {limit} bytes (the limit `[contacts] max_file_bytes`); split the \
                             contacts across campaigns, or raise the limit in the daemon's configuration"
                        ),
                    ));
                }
                if ended {
                    break;
                }
            }
            if self.tok.blank {
                continue;
            }
            return Ok(Some((start, self.tok.finish_record())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reader(bytes: &[u8], limits: ContactLimits) -> RecordReader {
        RecordReader::new(Box::new(Cursor::new(bytes.to_vec())), limits).unwrap()
    }

    fn all(bytes: &[u8]) -> Vec<RawRecord> {
        let mut r = reader(bytes, ContactLimits::default());
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec);
        }
        out
    }

    fn fields(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_quotes_escaped_quotes_quoted_line_breaks_and_crlf() {
        let recs = all(b"\xEF\xBB\xBF\"phone\", name \r\n\r\n1,\"a,\"\"b\"\"\r\nc\" \r\n  \n2,\n");
        assert_eq!(recs.len(), 3, "{recs:?}");
        assert_eq!(recs[0], (1, Ok(fields(&["phone", "name"]))));
        assert_eq!(recs[1], (3, Ok(fields(&["1", "a,\"b\"\r\nc"]))));
        assert_eq!(recs[2], (6, Ok(fields(&["2", ""]))));
    }

    #[test]
    fn a_bad_record_is_skipped_to_its_end_and_the_next_one_is_read() {
        let recs = all(b"a\"b\"\n\"x\"y\n\"p\"q,\"r\ns\"\nok\n");
        assert_eq!(recs.len(), 4, "{recs:?}");
        assert_eq!(recs[0], (1, Err(RecordError::QuoteInUnquoted)));
        assert_eq!(recs[1], (2, Err(RecordError::TextAfterQuote)));
        // The bad record spans two lines: its quoted line break is still inside it.
        assert_eq!(recs[2], (3, Err(RecordError::TextAfterQuote)));
        assert_eq!(recs[3], (5, Ok(fields(&["ok"]))));
        assert_eq!(all(b"\xFF,1\n2\n")[0], (1, Err(RecordError::NotUtf8)));
    }

    #[test]
    fn an_unclosed_quote_is_an_error_naming_the_line_it_opened_on() {
        let recs = all(b"phone\n1\n2,\"open\n3\n4\n");
        assert_eq!(recs.len(), 3, "{recs:?}");
        assert_eq!(recs[2], (3, Err(RecordError::Unclosed { quote_line: 3 })));
        assert!(
            recs[2]
                .1
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("opened on line 3 is never closed")
        );
    }

    #[test]
    fn records_and_fields_are_capped_with_the_limit_named() {
        let limits = ContactLimits {
            max_record_bytes: 10,
            max_fields: 3,
            ..ContactLimits::default()
        };
        let mut r = reader(b"a,b,c\na,b,c,d\n0123456789X\nok\n", limits);
        assert_eq!(r.next_record().unwrap().unwrap().1.unwrap().len(), 3);
        let (line, e) = r.next_record().unwrap().unwrap();
        assert_eq!((line, e), (2, Err(RecordError::TooManyFields { limit: 3 })));
        let (line, e) = r.next_record().unwrap().unwrap();
        assert_eq!(
            (line, e.clone()),
            (3, Err(RecordError::TooLong { limit: 10 }))
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("`[contacts] max_record_bytes`")
        );
        assert_eq!(r.next_record().unwrap().unwrap(), (4, Ok(fields(&["ok"]))));
        assert_eq!(
            RecordError::TooManyFields { limit: 3 }.to_string(),
            "the record has more than 3 fields (the limit `[contacts] max_fields`); remove the extra commas, or quote the \
             fields that contain commas"
        );
    }

    #[test]
    fn the_file_size_is_capped_while_reading() {
        let limits = ContactLimits {
            max_file_bytes: 8,
            ..ContactLimits::default()
        };
        let mut r = reader(b"phone\n1234567\n", limits);
        let e = loop {
            match r.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("read past the limit"),
                Err(e) => break e,
            }
        };
        assert!(e.to_string().contains("`[contacts] max_file_bytes`"), "{e}");
    }

    /// The quadratic case of the old reader: a quote opened near the top and never closed, so that every later line
    /// joins one record. The work is proved linear by counting it: every byte is looked at exactly once (`consumed`
    /// equals the size), and no more than `max_record_bytes` is ever held, whatever the size of the file.
    #[test]
    fn reading_an_unclosed_quote_is_linear_and_bounded() {
        let limits = ContactLimits {
            max_record_bytes: 4096,
            ..ContactLimits::default()
        };
        for rows in [10_000usize, 20_000, 40_000] {
            let mut csv = String::from("phone,name\n+442079460001,\"Ann\n");
            for i in 0..rows {
                csv.push_str(&format!("+4420794{i:05},Name {i}\n"));
            }
            let mut r = reader(csv.as_bytes(), limits);
            let mut records = Vec::new();
            while let Some(rec) = r.next_record().unwrap() {
                records.push(rec);
            }
            assert_eq!(r.consumed(), csv.len() as u64, "{rows} rows");
            assert!(r.peak_held() <= 4096, "held {} bytes", r.peak_held());
            assert_eq!(records.len(), 2);
            assert_eq!(
                records[1],
                (2, Err(RecordError::Unclosed { quote_line: 2 }))
            );
            assert_eq!(r.line(), rows as u64 + 2);
        }
    }

    /// Well-formed input is bounded too: a file of many ordinary records holds one record at a time.
    #[test]
    fn only_one_record_is_held_at_a_time() {
        let mut csv = String::new();
        for i in 0..50_000 {
            csv.push_str(&format!("{i},\"x{i}\"\n"));
        }
        let mut r = reader(csv.as_bytes(), ContactLimits::default());
        let mut n = 0;
        while r.next_record().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 50_000);
        assert_eq!(r.consumed(), csv.len() as u64);
        assert!(r.peak_held() < 32, "held {} bytes", r.peak_held());
    }

    #[test]
    fn the_check_pass_finds_an_unclosed_quote_without_keeping_fields() {
        let mut r = reader(b"phone\n1\n\"2\n3\n", ContactLimits::default());
        r.next_record().unwrap();
        r.skip_fields();
        assert_eq!(r.next_record().unwrap().unwrap(), (2, Ok(Vec::new())));
        assert_eq!(
            r.next_record().unwrap().unwrap(),
            (3, Err(RecordError::Unclosed { quote_line: 3 }))
        );
        assert!(r.next_record().unwrap().is_none());
    }

    /// How a spreadsheet writes a field: quoted when it needs to be, with `""` for a quote.
    fn write_field(f: &str) -> String {
        let plain = !f.is_empty() && !f.contains(['"', ',', '\n', '\r']) && f.trim() == f;
        if plain {
            f.to_owned()
        } else {
            format!("\"{}\"", f.replace('"', "\"\""))
        }
    }

    proptest! {
        #[test]
        fn written_records_read_back_with_their_lines(
            rows in prop::collection::vec(prop::collection::vec("[a-z ,\"\r\n\u{e9}]{0,6}", 1..5), 1..20),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut csv = String::new();
            let mut expected = Vec::new();
            let mut line = 1u64;
            for row in &rows {
                let text = row.iter().map(|f| write_field(f)).collect::<Vec<_>>().join(",");
                // A row whose only field is blank is a blank line, which is skipped.
                let blank = row.len() == 1 && write_field(&row[0]).trim().is_empty();
                if !blank {
                    expected.push((line, Ok(row.clone())));
                }
                line += 1 + text.matches('\n').count() as u64;
                csv.push_str(&text);
                csv.push_str(eol);
            }
            prop_assert_eq!(all(csv.as_bytes()), expected);
        }

        #[test]
        fn arbitrary_bytes_are_read_in_one_pass_within_the_bounds(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let limits = ContactLimits { max_record_bytes: 64, max_fields: 4, ..ContactLimits::default() };
            let mut r = reader(&bytes, limits);
            let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            let mut last = 0;
            while let Some((line, rec)) = r.next_record().unwrap() {
                prop_assert!(line > last && line <= lines);
                last = line;
                if let Ok(f) = rec {
                    prop_assert!(f.len() <= 4);
                }
            }
            prop_assert_eq!(r.consumed(), bytes.len() as u64);
            prop_assert!(r.peak_held() <= 64);
        }
    }
}
