//! Reading a server's replies: a bounded, incremental parser.
//!
//! The parser is fed whatever bytes arrived and says how many it used, so a caller keeps
//! the rest (the start of the next reply, or bytes that must not be there, such as data
//! pipelined after the `220` to STARTTLS: that check belongs to the caller, who knows
//! what comes next).
//!
//! What is accepted:
//! - lines end in CRLF; a bare LF is tolerated as a line end (some servers send it, and
//!   a reply is only ever read, never relayed). A CR anywhere else is an error.
//! - every line starts with a three-digit code whose first digit is 2 to 5, followed by
//!   `-` (more lines follow), a space, or the end of the line (the last line only needs the
//!   code, RFC 5321 §4.2). All lines of one reply carry the same code.
//! - text is decoded as UTF-8 with invalid sequences replaced, and control characters
//!   other than TAB are replaced by U+FFFD, so reply text is safe to log and to quote in a
//!   bounce.
//!
//! # Security
//! Everything here comes from a server that may be hostile. No input panics; memory is
//! bounded by [`Limits`]: a line is at most 2,048 octets with its line end (RFC 5321
//! §4.5.3.1.5 allows servers 512; real ones exceed that in long rejection texts, so four
//! times as much is accepted), a reply at most 100 lines and 32 KiB. Exceeding a limit,
//! a NUL octet, a bare CR, a missing code, a bad separator or a change of code between
//! lines is a [`ReplyError`]; the connection is then out of step and must be closed.
//!
//! # Standards
//! RFC 5321 §4.2 (reply syntax), §4.2.1 (multi-line replies), §4.5.3.1.5 (reply line
//! length); RFC 2034 and RFC 3463 (enhanced status codes at the start of the text).

use std::fmt;

use crate::enhanced::EnhancedCode;

/// Longest reply line accepted, in octets including the line end.
pub const MAX_REPLY_LINE: usize = 2048;
/// Most lines in one reply.
pub const MAX_REPLY_LINES: usize = 100;
/// Longest reply accepted, in octets including line ends.
pub const MAX_REPLY_BYTES: usize = 32 * 1024;

/// How much one reply may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Octets per line, line end included.
    pub line: usize,
    /// Lines per reply.
    pub lines: usize,
    /// Octets per reply, line ends included.
    pub bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            line: MAX_REPLY_LINE,
            lines: MAX_REPLY_LINES,
            bytes: MAX_REPLY_BYTES,
        }
    }
}

/// One complete reply as a server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code, 200 to 599.
    pub code: u16,
    /// The enhanced status code at the start of the first line, when its class matches
    /// the reply code's first digit (RFC 3463 §2).
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line after the code and separator, enhanced code included,
    /// sanitised (see the module documentation).
    pub lines: Vec<String>,
}

impl Reply {
    /// 2 for `2yz`, and so on.
    pub fn class(&self) -> u16 {
        self.code / 100
    }
    /// `2yz`.
    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }
    /// `3yz`: the server waits for more (354 to DATA, 334 to AUTH).
    pub fn is_intermediate(&self) -> bool {
        self.class() == 3
    }
    /// `4yz`.
    pub fn is_transient(&self) -> bool {
        self.class() == 4
    }
    /// `5yz`.
    pub fn is_permanent(&self) -> bool {
        self.class() == 5
    }

    /// The text of the first line, without the enhanced code if there is one.
    pub fn message(&self) -> &str {
        let first = self.lines.first().map(String::as_str).unwrap_or("");
        match self.enhanced {
            Some(_) => EnhancedCode::parse_prefix(first).map_or(first, |(_, rest)| rest),
            None => first,
        }
    }
}

/// `250 first line second line`: the code, then the lines joined by spaces (the form
/// used in logs and in bounces).
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" "))
    }
}

/// Why a reply could not be read. The lines quoted are sanitised and cut at 80
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {limit} octets")]
    LineTooLong { limit: usize },
    #[error("reply longer than {limit} lines")]
    TooManyLines { limit: usize },
    #[error("reply longer than {limit} octets")]
    TooLong { limit: usize },
    #[error("line does not start with a reply code: {line:?}")]
    BadCode { line: String },
    #[error("no space or '-' after the reply code: {line:?}")]
    BadSeparator { line: String },
    #[error("multi-line reply changes its code from {first} to {then}")]
    MixedCodes { first: u16, then: u16 },
    #[error("NUL octet in a reply line")]
    Nul,
    #[error("CR not followed by LF in a reply line")]
    BareCr,
}

/// What one [`ReplyParser::feed`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// Octets of the input used. With a reply, the rest of the input is not part of it;
    /// without one, all input was used and the parser waits for more.
    pub consumed: usize,
    /// The reply, once its last line is complete.
    pub reply: Option<Reply>,
}

/// Reads one reply after another from bytes as they arrive.
#[derive(Debug, Clone, Default)]
pub struct ReplyParser {
    limits: Limits,
    /// The line being received, without its LF.
    partial: Vec<u8>,
    code: Option<u16>,
    lines: Vec<String>,
    /// Octets of the complete lines of the current reply.
    bytes: usize,
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    pub fn with_limits(limits: Limits) -> ReplyParser {
        ReplyParser {
            limits,
            ..ReplyParser::default()
        }
    }

    /// One reply from the start of `input`, and the octets it took: `Ok(None)` when the
    /// input ends before the reply does.
    pub fn parse_one(input: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        let f = ReplyParser::new().feed(input)?;
        Ok(f.reply.map(|r| (r, f.consumed)))
    }

    /// `true` while part of a reply has been received.
    pub fn in_reply(&self) -> bool {
        !self.partial.is_empty() || self.code.is_some()
    }

    /// Take in `input`, stopping right after the end of a reply. After an error the
    /// parser is reset; the connection it reads is out of step and should be closed.
    pub fn feed(&mut self, input: &[u8]) -> Result<Feed, ReplyError> {
        let r = self.feed_inner(input);
        if r.is_err() {
            *self = ReplyParser::with_limits(self.limits);
        }
        r
    }

    fn feed_inner(&mut self, input: &[u8]) -> Result<Feed, ReplyError> {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                // No line end yet: the line so far, plus at least its LF, must fit.
                self.check_size(self.partial.len() + rest.len() + 1)?;
                self.partial.extend_from_slice(rest);
                return Ok(Feed {
                    consumed: input.len(),
                    reply: None,
                });
            };
            self.check_size(self.partial.len() + i + 1)?;
            self.partial.extend_from_slice(&rest[..i]);
            self.bytes += self.partial.len() + 1;
            pos += i + 1;
            if let Some(reply) = self.end_line()? {
                return Ok(Feed {
                    consumed: pos,
                    reply: Some(reply),
                });
            }
        }
        Ok(Feed {
            consumed: pos,
            reply: None,
        })
    }

    /// A line of `len` octets (line end included) fits in the line and reply limits.
    fn check_size(&self, len: usize) -> Result<(), ReplyError> {
        if len > self.limits.line {
            return Err(ReplyError::LineTooLong {
                limit: self.limits.line,
            });
        }
        if self.bytes + len > self.limits.bytes {
            return Err(ReplyError::TooLong {
                limit: self.limits.bytes,
            });
        }
        Ok(())
    }

    /// The line in `partial` is complete: check it and add it to the reply.
    fn end_line(&mut self) -> Result<Option<Reply>, ReplyError> {
        let raw = std::mem::take(&mut self.partial);
        let line = raw.strip_suffix(b"\r").unwrap_or(&raw);
        if line.contains(&0) {
            return Err(ReplyError::Nul);
        }
        if line.contains(&b'\r') {
            return Err(ReplyError::BareCr);
        }
        let code = reply_code(line).ok_or_else(|| ReplyError::BadCode {
            line: snippet(line),
        })?;
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => {
                return Err(ReplyError::BadSeparator {
                    line: snippet(line),
                });
            }
        };
        match self.code {
            Some(first) if first != code => {
                return Err(ReplyError::MixedCodes { first, then: code });
            }
            _ => self.code = Some(code),
        }
        if self.lines.len() >= self.limits.lines {
            return Err(ReplyError::TooManyLines {
                limit: self.limits.lines,
            });
        }
        self.lines.push(sanitize(line.get(4..).unwrap_or(&[])));
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        self.bytes = 0;
        let enhanced = lines
            .first()
            .and_then(|l| EnhancedCode::parse_prefix(l))
            .map(|(e, _)| e)
            .filter(|e| u16::from(e.class) == code / 100);
        Ok(Some(Reply {
            code,
            enhanced,
            lines,
        }))
    }
}

/// Three ASCII digits, the first 2 to 5.
fn reply_code(line: &[u8]) -> Option<u16> {
    let d = line.get(..3)?;
    if !(b'2'..=b'5').contains(&d[0]) || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0u16, |n, &b| n * 10 + u16::from(b - b'0')))
}

/// Reply text made safe to log and quote: UTF-8 (invalid sequences replaced), no control
/// characters except TAB.
fn sanitize(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// The start of a bad line, for an error message.
fn snippet(line: &[u8]) -> String {
    sanitize(line).chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        ReplyParser::parse_one(input)
    }

    #[test]
    fn single_and_multi_line() {
        let (r, n) = one(b"220 mx.example.org ESMTP\r\nrest").unwrap().unwrap();
        assert_eq!((r.code, n), (220, 26));
        assert_eq!(r.lines, vec!["mx.example.org ESMTP"]);
        assert_eq!(r.to_string(), "220 mx.example.org ESMTP");
        let (r, n) = one(b"250-a\r\n250-b\r\n250 c\r\n").unwrap().unwrap();
        assert_eq!((r.code, n, r.lines.len()), (250, 21, 3));
        assert_eq!(r.to_string(), "250 a b c");
    }

    #[test]
    fn bare_code_and_empty_continuations() {
        let (r, _) = one(b"250-\r\n250\r\n").unwrap().unwrap();
        assert_eq!(r.lines, vec!["", ""]);
        assert_eq!(one(b"250-a\r\n").unwrap(), None);
    }

    #[test]
    fn bare_lf_is_a_line_end_bare_cr_is_not() {
        let (r, n) = one(b"250-a\n250 b\n").unwrap().unwrap();
        assert_eq!((r.lines.len(), n), (2, 12));
        assert_eq!(one(b"250 a\rb\r\n"), Err(ReplyError::BareCr));
        assert_eq!(one(b"250 a\r\r\n"), Err(ReplyError::BareCr));
    }

    #[test]
    fn enhanced_code_needs_matching_class() {
        let (r, _) = one(b"550 5.1.1 <bob@example.org>: unknown\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.enhanced, EnhancedCode::new(5, 1, 1));
        assert_eq!(r.message(), "<bob@example.org>: unknown");
        assert_eq!(r.to_string(), "550 5.1.1 <bob@example.org>: unknown");
        let (r, _) = one(b"550 2.0.0 odd\r\n").unwrap().unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.message(), "2.0.0 odd");
    }

    #[test]
    fn hostile_lines_are_errors() {
        assert!(matches!(one(b"ok\r\n"), Err(ReplyError::BadCode { .. })));
        assert!(matches!(
            one(b"150 no\r\n"),
            Err(ReplyError::BadCode { .. })
        ));
        assert!(matches!(
            one(b"+25 no\r\n"),
            Err(ReplyError::BadCode { .. })
        ));
        assert!(matches!(one(b"25\r\n"), Err(ReplyError::BadCode { .. })));
        assert!(matches!(
            one(b"250ok\r\n"),
            Err(ReplyError::BadSeparator { .. })
        ));
        assert_eq!(
            one(b"250-a\r\n550 b\r\n"),
            Err(ReplyError::MixedCodes {
                first: 250,
                then: 550
            })
        );
        assert_eq!(one(b"250 a\0b\r\n"), Err(ReplyError::Nul));
    }

    #[test]
    fn control_characters_are_replaced() {
        let (r, _) = one(b"250 a\x1b[31mred\tx\xff\r\n").unwrap().unwrap();
        assert_eq!(r.lines[0], "a\u{fffd}[31mred\tx\u{fffd}");
    }

    #[test]
    fn limits_hold_before_the_line_ends() {
        let mut p = ReplyParser::new();
        let long = vec![b'x'; MAX_REPLY_LINE];
        assert_eq!(p.feed(b"250 ").map(|f| f.consumed), Ok(4));
        assert_eq!(
            p.feed(&long),
            Err(ReplyError::LineTooLong {
                limit: MAX_REPLY_LINE
            })
        );
        // Exactly at the limit, CRLF included, is fine.
        let mut line = b"250 ".to_vec();
        line.resize(MAX_REPLY_LINE - 2, b'y');
        line.extend_from_slice(b"\r\n");
        assert!(one(&line).unwrap().is_some());
        line.insert(5, b'y');
        assert!(matches!(one(&line), Err(ReplyError::LineTooLong { .. })));
    }

    #[test]
    fn endless_continuation_stops() {
        let mut p = ReplyParser::new();
        let mut err = None;
        for _ in 0..1000 {
            if let Err(e) = p.feed(b"250-more\r\n") {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ReplyError::TooManyLines { limit: 100 }));
        let mut p = ReplyParser::with_limits(Limits {
            bytes: 100,
            ..Limits::default()
        });
        let line = [b"250-".as_slice(), &[b'z'; 40], b"\r\n"].concat();
        assert!(p.feed(&line).is_ok() && p.feed(&line).is_ok());
        assert_eq!(p.feed(&line), Err(ReplyError::TooLong { limit: 100 }));
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let input = b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n220 next";
        let mut p = ReplyParser::new();
        let mut got = None;
        for (i, b) in input.iter().enumerate() {
            let f = p.feed(std::slice::from_ref(b)).unwrap();
            assert_eq!(f.consumed, 1);
            if let Some(r) = f.reply {
                got = Some((r, i + 1));
                break;
            }
        }
        assert_eq!(got, one(input).unwrap());
        assert!(!p.in_reply());
    }
}
