//! Log output: text for a terminal (colour only when stderr is one), JSON for a service. Text lines escape every
//! control character a logged value may carry (a URL-encoded newline in a request path, a NUL in a file), so one
//! event is always one line and nobody can forge a log line through input.

use std::io::{IsTerminal as _, Write};

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stderr. `CAMPAIGND_LOG` overrides `default_filter`.
pub fn init(json: bool, default_filter: &str) {
    let filter =
        EnvFilter::try_from_env("CAMPAIGND_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = !json && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(move || EscapingWriter {
            inner: std::io::stderr(),
            keep_colour: ansi,
        });
    if json {
        // JSON strings escape control characters themselves.
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Escapes control characters in each formatted event before it reaches `inner`.
struct EscapingWriter<W> {
    inner: W,
    /// Let colour sequences (ESC `[` … `m`) through: the formatter's own, when writing to a terminal.
    keep_colour: bool,
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write_all(&escape_line(buf, self.keep_colour))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One formatted event with every control character but a final newline and tab written as `\xNN` (and colour
/// sequences kept when `keep_colour`).
pub fn escape_line(buf: &[u8], keep_colour: bool) -> Vec<u8> {
    let (body, end) = match buf.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (buf, &b""[..]),
    };
    let mut out = Vec::with_capacity(buf.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if keep_colour && b == 0x1b && body.get(i + 1) == Some(&b'[') {
            let len = body[i + 2..]
                .iter()
                .position(|c| !(c.is_ascii_digit() || *c == b';'))
                .filter(|&n| body.get(i + 2 + n) == Some(&b'm'));
            if let Some(n) = len {
                out.extend_from_slice(&body[i..i + 3 + n]);
                i += 3 + n;
                continue;
            }
        }
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            let _ = write!(out, "\\x{b:02x}");
        } else {
            out.push(b);
        }
        i += 1;
    }
    out.extend_from_slice(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_inside_an_event_cannot_start_a_fake_line() {
        let line = b"WARN refused callback.path=x\nINFO forged admin login\n";
        let out = escape_line(line, false);
        assert_eq!(
            out,
            b"WARN refused callback.path=x\\x0aINFO forged admin login\n".to_vec()
        );
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
    }

    #[test]
    fn control_characters_are_escaped_and_colour_is_kept_only_when_asked() {
        let line = b"\x1b[32mINFO\x1b[0m a\x00b\rc\x1b]0;title\x07\td\n";
        assert_eq!(
            escape_line(line, true),
            b"\x1b[32mINFO\x1b[0m a\\x00b\\x0dc\\x1b]0;title\\x07\td\n".to_vec()
        );
        assert_eq!(escape_line(b"\x1b[32mx\n", false), b"\\x1b[32mx\n".to_vec());
    }
}
