//! Compiler-style diagnostics: every problem names its file, line and column, and says how to fix it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How bad a diagnostic is. Errors stop a campaign file from being used; warnings don't.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is rejected.
    Error,
    /// The file is used, but something deserves a look.
    Warning,
}

/// One problem found in a campaign file (or its CSV), at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: usize,
    /// 1-based column (in characters); 0 when the problem is about the file as a whole.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// One line saying what to do about it.
    pub help: String,
    /// A stable code for the kind of problem, e.g. `unknown-key`.
    pub code: std::borrow::Cow<'static, str>,
}

impl Diagnostic {
    /// An error at a byte offset of `text`.
    pub(crate) fn error_at(
        code: &'static str,
        file: &Path,
        text: &str,
        offset: usize,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        let (line, column) = line_col(text, offset);
        Self {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            help: help.into(),
            code: code.into(),
        }
    }

    /// The same diagnostic as a warning.
    pub(crate) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The most characters of one piece of input that a message quotes; longer input is cut and ends in `…`.
pub const MAX_QUOTED_CHARS: usize = 80;

/// A piece of input (a field, a key, a value, a path) as every message quotes it: control characters and the
/// bidirectional-text controls are escaped (`\n`, `\t`, `\0`, `\u{1b}`), and it is cut after [`MAX_QUOTED_CHARS`]
/// characters. Messages quote at most the offending piece this way, never a whole line of a file, so that a hostile
/// file can neither leak its neighbours' text nor drive the terminal.
pub fn escape_input(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(4 * MAX_QUOTED_CHARS));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_QUOTED_CHARS {
            out.push('…');
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// Pushes `c`, escaped if it is a control character or a bidirectional-text control.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Control characters (C0, DEL, C1) and the invisible controls that reorder text on a terminal.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A source line for the rustc-style quote: escaped like [`escape_input`] but not cut by that limit (a window of at
/// most [`MAX_SOURCE_LINE_CHARS`] characters around `column` instead), with the caret column moved to match.
fn quote_source_line(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let col = column.saturating_sub(1).min(chars.len());
    let (from, to) = if chars.len() <= MAX_SOURCE_LINE_CHARS {
        (0, chars.len())
    } else {
        let from = col.saturating_sub(MAX_SOURCE_LINE_CHARS / 2);
        (from, (from + MAX_SOURCE_LINE_CHARS).min(chars.len()))
    };
    let mut out = String::new();
    let mut caret = 0;
    if from > 0 {
        out.push('…');
        caret += 1;
    }
    for (i, c) in chars[from..to].iter().enumerate() {
        if from + i == col {
            caret = out.chars().count();
        }
        // A tab is harmless; it is widened (as rustc does) so that the caret lines up.
        if *c == '\t' {
            out.push_str("    ");
        } else {
            push_escaped(&mut out, *c);
        }
    }
    if col >= to {
        caret = out.chars().count();
    }
    if to < chars.len() {
        out.push('…');
    }
    (out, caret)
}

/// The most characters of a source line that a rustc-style quote shows.
const MAX_SOURCE_LINE_CHARS: usize = 160;

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A list of diagnostics, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.0.len() - self.error_count()
    }

    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(other);
    }

    /// Renders like rustc: `error[code]: message`, ` --> file:line:col`, the source line with a caret, `= help: …`.
    /// `sources` maps a file to its text, for quoting the line; files not in it are rendered without the quote.
    pub fn render_human(&self, sources: &BTreeMap<PathBuf, String>) -> String {
        let mut out = String::new();
        for d in &self.0 {
            let kind = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(out, "{kind}[{}]: {}", d.code, d.message);
            if d.line == 0 {
                let _ = writeln!(out, "  --> {}", d.file.display());
            } else {
                let _ = writeln!(out, "  --> {}:{}:{}", d.file.display(), d.line, d.column);
            }
            let quoted = sources
                .get(&d.file)
                .and_then(|text| text.lines().nth(d.line.wrapping_sub(1)));
            if let (Some(src), true) = (quoted, d.line > 0) {
                let (src, caret) = quote_source_line(src, d.column);
                let gutter = d.line.to_string();
                let pad = " ".repeat(gutter.len());
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{gutter} | {src}");
                let caret_pad = " ".repeat(caret);
                let _ = writeln!(out, "{pad} | {caret_pad}^");
                let _ = writeln!(out, "{pad} = help: {}", d.help);
            } else {
                let _ = writeln!(out, "   = help: {}", d.help);
            }
            out.push('\n');
        }
        out
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render_human(&BTreeMap::new()))
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Words longer than this (in characters) get no "did you mean" suggestion, and candidates longer than this are not
/// suggested: edit distance costs the product of the lengths, and no key, zone, day or column name is this long.
const MAX_SUGGEST_CHARS: usize = 64;

/// The candidate closest to `word`, if it is a plausible typo (distance at most a third of the length, at least 1;
/// case-insensitive equality always counts).
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    if len > MAX_SUGGEST_CHARS {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| c.len() <= 4 * MAX_SUGGEST_CHARS && c.chars().count() <= MAX_SUGGEST_CHARS)
        .map(|c| {
            let d = if c.to_ascii_lowercase() == lower {
                0
            } else {
                edit_distance(&lower, &c.to_ascii_lowercase())
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_in_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(text, text.rfind('=').unwrap()), (2, 4));
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("robots", "robots"), 0);
        assert_eq!(edit_distance("robot", "robots"), 1);
        assert_eq!(edit_distance("rbots", "robots"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_suggests_near_misses_only() {
        let keys = ["robots", "route_id", "scene_id"];
        assert_eq!(closest("robot", keys), Some("robots"));
        assert_eq!(closest("sceneid", keys), Some("scene_id"));
        assert_eq!(closest("colour", keys), None);
    }

    #[test]
    fn closest_does_no_work_on_overlong_words() {
        // A megabyte against every zone name would be ~10^10 steps of edit distance; it is refused at once.
        let long = "x".repeat(1 << 20);
        assert_eq!(closest(&long, ["robots"]), None);
        assert_eq!(closest("robots", [long.as_str(), "robot"]), Some("robot"));
    }

    #[test]
    fn escape_input_escapes_controls_and_cuts_long_input() {
        assert_eq!(escape_input("plain é"), "plain é");
        assert_eq!(
            escape_input("a\0b\nc\td\u{1b}[2J\u{7f}\u{85}\u{202e}"),
            "a\\0b\\nc\\td\\u{1b}[2J\\u{7f}\\u{85}\\u{202e}"
        );
        let long = "x".repeat(MAX_QUOTED_CHARS + 5);
        assert_eq!(
            escape_input(&long),
            format!("{}…", "x".repeat(MAX_QUOTED_CHARS))
        );
    }

    #[test]
    fn quoted_source_lines_are_escaped_and_windowed_with_the_caret_kept_in_place() {
        let file = PathBuf::from("c.toml");
        let text = "k = \"\u{1b}[31m\" x\n";
        let d = Diagnostic::error_at("c", &file, text, text.find('x').unwrap(), "m", "h");
        let mut sources = BTreeMap::new();
        sources.insert(file.clone(), text.to_string());
        let out = Diagnostics(vec![d]).render_human(&sources);
        let quoted = "k = \"\\u{1b}[31m\" x";
        let caret = format!("  | {}^\n", " ".repeat(quoted.find('x').unwrap()));
        assert!(out.contains(&format!("1 | {quoted}\n{caret}")), "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");

        let long = format!("k = \"{}\" # {}\n", "a".repeat(500), "b".repeat(500));
        let d = Diagnostic::error_at("c", &file, &long, long.find('#').unwrap(), "m", "h");
        sources.insert(file, long.clone());
        let out = Diagnostics(vec![d]).render_human(&sources);
        let quoted = out.lines().find(|l| l.starts_with("1 | ")).unwrap();
        assert!(
            quoted.chars().count() < MAX_SOURCE_LINE_CHARS + 10,
            "{quoted}"
        );
        let caret = out
            .lines()
            .find(|l| l.trim_start().starts_with("| ") && l.ends_with('^'))
            .unwrap();
        let at = caret.chars().count() - 1;
        assert_eq!(quoted.chars().nth(at), Some('#'), "{quoted}\n{caret}");
    }

    #[test]
    fn renders_like_a_compiler() {
        let file = PathBuf::from("c.toml");
        let text = "robots = 0\n";
        let d = Diagnostic::error_at(
            "robots",
            &file,
            text,
            9,
            "robots must be at least 1",
            "set `robots = 1` or more",
        );
        let mut sources = BTreeMap::new();
        sources.insert(file, text.to_string());
        let out = Diagnostics(vec![d]).render_human(&sources);
        assert!(
            out.starts_with("error[robots]: robots must be at least 1\n  --> c.toml:1:10\n"),
            "{out}"
        );
        assert!(out.contains("1 | robots = 0\n  |          ^\n"), "{out}");
        assert!(out.contains("= help: set `robots = 1` or more"), "{out}");
    }
}
