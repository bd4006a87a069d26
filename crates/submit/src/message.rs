//! Reading the message from standard input and completing it: `Date:`, `Message-ID:`
//! and `From:` added when missing, `Bcc:` removed, the recipients of `-t` collected.
//!
//! The header section is split into fields by their line structure only (where each
//! field starts and ends), so the fields that stay are passed on byte for byte and a
//! removed `Bcc:` takes exactly its own lines with it. What the fields *say* (which ones
//! are present, the addresses in `To:`, `Cc:` and `Bcc:`) is read by mail-parser. The
//! fields added here are written by hand: we generate them.
//!
//! # Standards
//! RFC 5322 §2.2 (field syntax, folding), §3.6 (`Date`, `Message-ID`, `From`, `Bcc`,
//! address lists), RFC 2047 (encoded words in display names), RFC 6532 (UTF-8 in header
//! fields).

use std::io::{self, BufRead};
use std::time::Duration;

use mail_parser::{HeaderName, MessageParser};

use crate::recipients::addresses_of;

/// Read the message. Without `ignore_dots`, a line with only `.` ends it (and is not part
/// of it), as sendmail does.
pub fn read_message<R: BufRead>(mut input: R, ignore_dots: bool) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(out);
        }
        if !ignore_dots && matches!(&line[..], b"." | b".\n" | b".\r\n") {
            return Ok(out);
        }
        out.extend_from_slice(&line);
    }
}

/// What [`prepare`] needs to complete a message.
#[derive(Debug)]
pub struct Context<'a> {
    pub hostname: &'a str,
    /// The envelope sender ("" for none).
    pub sender: &'a str,
    pub full_name: Option<&'a str>,
    /// Since the Unix epoch.
    pub now: Duration,
}

/// A message ready to submit.
#[derive(Debug)]
pub struct Prepared {
    pub message: Vec<u8>,
    /// Addresses of the To:, Cc: and Bcc: fields, in order.
    pub header_recipients: Vec<String>,
}

/// One header field: its lower-case name and its bytes (continuation lines included).
struct Field<'a> {
    name: String,
    raw: &'a [u8],
}

/// Add `Date:`, `Message-ID:` and `From:` when missing, remove `Bcc:`, collect the header
/// recipients. A leading mbox `From ` line is dropped; input that does not start with
/// header fields is taken as a body.
pub fn prepare(raw: &[u8], cx: &Context<'_>) -> Prepared {
    let mut rest = raw;
    if rest.starts_with(b"From ") {
        rest = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[][..], |n| &rest[n + 1..]);
    }
    let (fields, head_len, body) = split_fields(rest);
    let seen = read_fields(&rest[..head_len]);
    let mut message = Vec::with_capacity(raw.len() + 256);
    for f in fields.iter().filter(|f| f.name != "bcc") {
        message.extend_from_slice(f.raw);
        if !f.raw.ends_with(b"\n") {
            message.extend_from_slice(b"\r\n");
        }
    }
    if !seen.from {
        message.extend_from_slice(from_field(cx).as_bytes());
    }
    if !seen.date {
        let date = postern_queue::rfc5322_date(cx.now.as_secs());
        message.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if !seen.message_id {
        message.extend_from_slice(message_id_field(cx).as_bytes());
    }
    message.extend_from_slice(b"\r\n");
    message.extend_from_slice(body);
    Prepared {
        message,
        header_recipients: seen.recipients,
    }
}

/// Split the header section into fields; also return its length in `input` and the body
/// (after the empty line, or where a line that is not a field starts).
fn split_fields(input: &[u8]) -> (Vec<Field<'_>>, usize, &[u8]) {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let rest = &input[pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |n| n + 1);
        let line = &rest[..end];
        if line == b"\n" || line == b"\r\n" {
            return (fields, pos, &input[pos + end..]);
        }
        let continues = matches!(line.first(), Some(b' ' | b'\t'));
        match fields.last_mut() {
            Some(f) if continues => f.raw = &input[pos - f.raw.len()..pos + end],
            _ => match field_name(line) {
                Some(name) => fields.push(Field { name, raw: line }),
                // Not a header line: the body starts here (a blank line is put before it).
                None => return (fields, pos, rest),
            },
        }
        pos += end;
    }
    (fields, pos, &[])
}

/// `Name:` at the start of a header line (RFC 5322 §2.2: printable ASCII but `:`),
/// lower-cased.
fn field_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b)))
        .then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// What the sender's header section already says.
#[derive(Debug, Default)]
struct Seen {
    from: bool,
    date: bool,
    message_id: bool,
    /// To:, Cc: and Bcc: addresses, in field order.
    recipients: Vec<String>,
}

/// Read the header section (every field, not only the last of each name) with mail-parser.
fn read_fields(head: &[u8]) -> Seen {
    let mut seen = Seen::default();
    if head.is_empty() {
        return seen;
    }
    // The empty line tells the parser where the header section ends.
    let mut section = head.to_vec();
    if !section.ends_with(b"\n") {
        section.extend_from_slice(b"\r\n");
    }
    section.extend_from_slice(b"\r\n");
    let Some(parsed) = MessageParser::new().parse_headers(&section) else {
        return seen;
    };
    for h in parsed.headers() {
        match h.name {
            HeaderName::From => seen.from = true,
            HeaderName::Date => seen.date = true,
            HeaderName::MessageId => seen.message_id = true,
            HeaderName::To | HeaderName::Cc | HeaderName::Bcc => {
                seen.recipients.extend(addresses_of(&h.value));
            }
            _ => {}
        }
    }
    seen
}

/// `From:` for a message that has none: the sender (or MAILER-DAEMON for `<>`), with
/// the `-F` name as a quoted string.
fn from_field(cx: &Context<'_>) -> String {
    let addr = if cx.sender.is_empty() {
        format!("MAILER-DAEMON@{}", cx.hostname)
    } else {
        cx.sender.to_string()
    };
    match cx.full_name {
        Some(n) if !n.is_empty() => {
            let q = n.replace('\\', "\\\\").replace('"', "\\\"");
            format!("From: \"{q}\" <{addr}>\r\n")
        }
        _ => format!("From: {addr}\r\n"),
    }
}

fn message_id_field(cx: &Context<'_>) -> String {
    format!(
        "Message-ID: <{}.{:x}.{}@{}>\r\n",
        cx.now.as_secs(),
        cx.now.subsec_nanos(),
        std::process::id(),
        cx.hostname
    )
}

#[cfg(test)]
mod tests;
