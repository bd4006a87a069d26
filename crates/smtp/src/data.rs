//! The DATA reader: RFC 5321 §4.1.1.4 and §4.5.2, strict about line endings.
//!
//! Input is the raw byte stream after the `354` reply; output is the message content,
//! dot-unstuffed, with CRLF line endings. The reader is a state machine fed with whatever
//! bytes arrived, so the session can stream to disk without ever holding the message.
//!
//! # Security
//! End of data is `CRLF "." CRLF` and nothing else. A bare LF or a bare CR anywhere marks
//! the message as bad (it will be refused with `550 5.6.0` once the real end arrives) and
//! is *not* treated as a line break, so `\n.\n`, `\r.\r`, `\r\n.\n`, `\n.\r\n` and
//! `\r.\r\n` cannot end the message early and smuggle a second one through a later hop.
//! After any error nothing more is emitted; the reader only looks for the end.
//!
//! A NUL octet anywhere (also right before or after the final dot, `\r\n\0.\r\n`) marks
//! the message as bad too (`550 5.6.0`): a next hop that silently drops NUL would see an
//! end-of-data line where we saw content, the same smuggling path as a bare LF.

use crate::MAX_TEXT_LINE;
use crate::reply::Reply;

/// What is wrong with message content. The first problem found is the one reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentError {
    BareLf,
    BareCr,
    /// A NUL octet (RFC 5321 §4.5.2 and RFC 5322 §2.1 allow none in text).
    Nul,
    LineTooLong,
    TooLarge,
}

impl ContentError {
    pub fn reply(self) -> Reply {
        match self {
            ContentError::BareLf => Reply::new(
                550,
                "5.6.0",
                "Message contains bare <LF>: every line must end with <CR><LF> (RFC 5321 2.3.8)",
            ),
            ContentError::BareCr => Reply::new(
                550,
                "5.6.0",
                "Message contains bare <CR>: every line must end with <CR><LF> (RFC 5321 2.3.8)",
            ),
            ContentError::Nul => Reply::new(
                550,
                "5.6.0",
                "Message contains a NUL character, which SMTP text may not carry (RFC 5322 2.1)",
            ),
            ContentError::LineTooLong => Reply::new(
                550,
                "5.6.0",
                "Message contains a line longer than 998 characters (RFC 5322 2.1.1)",
            ),
            ContentError::TooLarge => crate::reply::std_replies::message_too_big(),
        }
    }

    /// Short form for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentError::BareLf => "bare LF in message content",
            ContentError::BareCr => "bare CR in message content",
            ContentError::Nul => "NUL character in message content",
            ContentError::LineTooLong => "line longer than 998 characters",
            ContentError::TooLarge => "message larger than max_message_size",
        }
    }
}

/// How much of the input one [`DataReader::feed`] call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    /// Bytes of input consumed. When `done`, the rest of the input is the next command.
    pub consumed: usize,
    /// The end-of-data line has been seen.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Mid,
    Cr,
    Dot,
    DotCr,
    Done,
}

/// Streaming DATA reader. See the module docs.
#[derive(Debug)]
pub struct DataReader {
    state: State,
    max_size: u64,
    size: u64,
    line: usize,
    eight_bit: bool,
    error: Option<ContentError>,
}

impl DataReader {
    /// `max_size`: largest message (after unstuffing) accepted, in octets.
    pub fn new(max_size: u64) -> DataReader {
        DataReader {
            state: State::LineStart,
            max_size,
            size: 0,
            line: 0,
            eight_bit: false,
            error: None,
        }
    }

    /// Feed bytes; content is appended to `out` (nothing is appended once an error was
    /// found).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                break;
            }
            let b = input[i];
            match self.state {
                State::LineStart => {
                    self.line = 0;
                    match b {
                        b'.' => {
                            self.count_line(1);
                            self.state = State::Dot;
                        }
                        b'\r' => {
                            self.count_line(1);
                            self.state = State::Cr;
                        }
                        _ => {
                            self.state = State::Mid;
                            continue;
                        }
                    }
                }
                State::Mid => {
                    continue_mid(self, input, &mut i, out);
                    continue;
                }
                State::Cr => {
                    if b == b'\n' {
                        self.count_line(1);
                        self.emit(b"\r\n", out);
                        self.state = State::LineStart;
                    } else {
                        self.fail(ContentError::BareCr);
                        self.state = State::Mid;
                        continue;
                    }
                }
                State::Dot => {
                    if b == b'\r' {
                        self.count_line(1);
                        self.state = State::DotCr;
                    } else {
                        // A leading dot followed by more text is a stuffed dot: drop it.
                        self.state = State::Mid;
                        continue;
                    }
                }
                State::DotCr => {
                    if b == b'\n' {
                        self.state = State::Done;
                    } else {
                        // ".<CR>x": the dot was stuffing; the CR is bare.
                        self.fail(ContentError::BareCr);
                        self.state = State::Mid;
                        continue;
                    }
                }
                State::Done => break,
            }
            i += 1;
        }
        Feed {
            consumed: i,
            done: self.state == State::Done,
        }
    }

    /// After `done`: the message size, or what was wrong with it.
    pub fn result(&self) -> Result<u64, ContentError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.size),
        }
    }

    /// Whether any octet above 127 was seen (for BODY=7BIT checks).
    pub fn saw_eight_bit(&self) -> bool {
        self.eight_bit
    }

    fn count_line(&mut self, n: usize) {
        self.line += n;
        if self.line > MAX_TEXT_LINE {
            self.fail(ContentError::LineTooLong);
        }
    }

    fn fail(&mut self, e: ContentError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.error.is_some() {
            return;
        }
        self.size += bytes.len() as u64;
        if self.size > self.max_size {
            self.fail(ContentError::TooLarge);
            return;
        }
        out.extend_from_slice(bytes);
    }
}

/// In the middle of a line: copy everything up to the next CR, LF or NUL in one go.
fn continue_mid(r: &mut DataReader, input: &[u8], i: &mut usize, out: &mut Vec<u8>) {
    let rest = &input[*i..];
    let n = rest
        .iter()
        .position(|&b| b == b'\r' || b == b'\n' || b == 0)
        .unwrap_or(rest.len());
    if n > 0 {
        let chunk = &rest[..n];
        if !r.eight_bit && chunk.iter().any(|&b| b >= 0x80) {
            r.eight_bit = true;
        }

        r.count_line(n);
        r.emit(chunk, out);
        *i += n;
    }
    if let Some(&b) = input.get(*i) {
        if b == b'\r' {
            r.count_line(1);
            r.state = State::Cr;
        } else if b == 0 {
            r.count_line(1);
            r.fail(ContentError::Nul);
            r.state = State::Mid;
        } else {
            r.count_line(1);
            r.fail(ContentError::BareLf);
            r.state = State::Mid;
        }
        *i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` in pieces of `step` bytes; returns (content, result, rest-after-end).
    fn run(
        input: &[u8],
        step: usize,
        max: u64,
    ) -> (Vec<u8>, Option<Result<u64, ContentError>>, Vec<u8>) {
        let mut r = DataReader::new(max);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            let f = r.feed(&input[pos..end], &mut out);
            if f.done {
                pos += f.consumed;
                return (out, Some(r.result()), input[pos..].to_vec());
            }
            assert_eq!(f.consumed, end - pos, "consumes everything unless done");
            pos = end;
        }
        (out, None, Vec::new())
    }

    fn all_steps(input: &[u8], max: u64) -> (Vec<u8>, Option<Result<u64, ContentError>>, Vec<u8>) {
        let first = run(input, input.len().max(1), max);
        for step in 1..8 {
            assert_eq!(run(input, step, max), first, "step {step} differs");
        }
        first
    }

    #[test]
    fn simple_message() {
        let (out, res, rest) = all_steps(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", 1000);
        assert_eq!(out, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(res, Some(Ok(21)));
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn empty_message_right_after_354() {
        let (out, res, _) = all_steps(b".\r\n", 1000);
        assert_eq!(out, b"");
        assert_eq!(res, Some(Ok(0)));
    }

    #[test]
    fn dot_unstuffing() {
        let (out, res, _) = all_steps(b"..\r\n..x\r\n.y\r\na.b\r\n...\r\n.\r\n", 1000);
        assert_eq!(out, b".\r\n.x\r\ny\r\na.b\r\n..\r\n");
        assert!(matches!(res, Some(Ok(_))));
    }

    #[test]
    fn smuggling_variants_never_end_data() {
        for (name, evil, err) in [
            (
                "LF.LF",
                &b"a\n.\nMAIL FROM:<x@y>\r\n"[..],
                ContentError::BareLf,
            ),
            ("CR.CR", b"a\r.\rMAIL FROM:<x@y>\r\n", ContentError::BareCr),
            (
                "CRLF.LF",
                b"a\r\n.\nMAIL FROM:<x@y>\r\n",
                ContentError::BareLf,
            ),
            (
                "LF.CRLF",
                b"a\n.\r\nMAIL FROM:<x@y>\r\n",
                ContentError::BareLf,
            ),
            (
                "CR.CRLF",
                b"a\r.\r\nMAIL FROM:<x@y>\r\n",
                ContentError::BareCr,
            ),
            ("bare LF", b"a\nb\r\n", ContentError::BareLf),
            ("bare CR", b"a\rb\r\n", ContentError::BareCr),
            ("CR at line start", b"\rb\r\n", ContentError::BareCr),
            ("LF at line start", b"\nb\r\n", ContentError::BareLf),
        ] {
            let mut input = evil.to_vec();
            // Without a real end, the reader must still be waiting.
            let (_, res, _) = all_steps(&input, 1000);
            assert_eq!(res, None, "{name}: ended early");
            input.extend_from_slice(b".\r\nNEXT");
            let (_, res, rest) = all_steps(&input, 1000);
            assert_eq!(res, Some(Err(err)), "{name}");
            assert_eq!(rest, b"NEXT", "{name}");
        }
    }

    #[test]
    fn nul_is_refused_before_and_after_the_dot() {
        for (name, evil) in [
            ("NUL before dot", &b"a\r\n\0.\r\nMAIL FROM:<x@y>\r\n"[..]),
            ("NUL after dot", b"a\r\n.\0\r\nMAIL FROM:<x@y>\r\n"),
            ("NUL in a line", b"a\0b\r\n"),
            ("NUL alone", b"\0\r\n"),
        ] {
            let mut input = evil.to_vec();
            let (_, res, _) = all_steps(&input, 1000);
            assert_eq!(res, None, "{name}: ended early");
            input.extend_from_slice(b".\r\nNEXT");
            let (_, res, rest) = all_steps(&input, 1000);
            assert_eq!(res, Some(Err(ContentError::Nul)), "{name}");
            assert_eq!(rest, b"NEXT", "{name}");
        }
    }

    #[test]
    fn size_limit() {
        let msg = b"0123456789\r\n.\r\n";
        assert_eq!(all_steps(msg, 12).1, Some(Ok(12)));
        let (out, res, _) = all_steps(msg, 11);
        assert_eq!(res, Some(Err(ContentError::TooLarge)));
        assert!(out.len() <= 11);
    }

    #[test]
    fn line_length_limit() {
        let mut ok = vec![b'a'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(all_steps(&ok, 1 << 20).1, Some(Ok(1000)));
        let mut long = vec![b'a'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(
            all_steps(&long, 1 << 20).1,
            Some(Err(ContentError::LineTooLong))
        );
        // A stuffed dot counts on the wire.
        let mut stuffed = vec![b'.'];
        stuffed.extend_from_slice(&[b'a'; 998]);
        stuffed.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(
            all_steps(&stuffed, 1 << 20).1,
            Some(Err(ContentError::LineTooLong))
        );
    }

    #[test]
    fn eight_bit_is_noticed() {
        let mut r = DataReader::new(100);
        let mut out = Vec::new();
        r.feed("caf\u{e9}\r\n.\r\n".as_bytes(), &mut out);
        assert!(r.saw_eight_bit());
    }
}
