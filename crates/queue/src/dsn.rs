//! Delivery status notifications as messages: bounces, delay warnings and delivery
//! reports. [`build`] is a pure function from what happened to the bytes of the report;
//! deciding when to send one and queueing it is `notice.rs`'s job.
//!
//! A report is a `multipart/report` with three parts:
//!
//! 1. `text/plain`: what happened, for the person who sent the message;
//! 2. `message/delivery-status`: the same for programs, one block per recipient;
//! 3. the original: `message/rfc822` (the whole message, failures only, unless the
//!    client asked `RET=HDRS`, it is over `[queue] bounce_return_limit`, or it came with
//!    REQUIRETLS), otherwise `text/rfc822-headers` (its header section only).
//!
//! Lines end in CRLF and are at most 998 octets: long field values are folded at
//! spaces, and a single word too long to fold is cut short.
//!
//! # Security
//! Everything that comes from outside (addresses, the remote server's answer, ENVID,
//! ORCPT, the original's Subject) is reduced to printable characters before it is
//! written, so none of it can add a header line or a MIME boundary. The boundary is
//! checked against the returned content and changed until the content does not contain
//! it. The original is returned inside its own part and never parsed beyond its header
//! section (mail-parser reads the Subject there, encoded words decoded).
//!
//! # Standards
//! RFC 3464 (message/delivery-status), RFC 6522 (multipart/report, formerly RFC 3462),
//! RFC 3461 §6 (what a DSN contains; ENVID and ORCPT echoed decoded), RFC 3463
//! (enhanced status codes; `4.4.7` for expiry), RFC 3834 (`Auto-Submitted:
//! auto-replied`), RFC 5322 (header syntax), RFC 2047 (encoded words, decoded in part 1),
//! RFC 2045 §6.7 (quoted-printable, for non-ASCII text in a 7-bit report), RFC 6533 §3 (`utf-8` address type for
//! non-ASCII recipients in the ASCII report), RFC 8689 §5 (a report on a REQUIRETLS
//! message returns its header section only, and is itself sent with REQUIRETLS).

use std::fmt::Write as _;

use postern_smtp::address::ReversePath;
use postern_smtp::command::Ret;

use crate::date::rfc5322_date;
use crate::{Envelope, QueueId, RcptState, Recipient};

mod explain;
mod lines;

use explain::explanation;
use lines::{ascii, field, header, quoted_printable, text};

/// What happened to the recipients a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Failed permanently (or expired): a bounce.
    Failed,
    /// Still being retried: a delay warning.
    Delayed,
    /// Delivered into the recipient's mailbox: a delivery report (NOTIFY=SUCCESS).
    Delivered,
    /// Passed to a next hop that does not offer DSN, which will not report (RFC 3461
    /// §5.2.2): a "relayed" report (NOTIFY=SUCCESS).
    Relayed,
}

impl Action {
    /// The RFC 3464 §2.3.3 action value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }

    /// The Subject of a report of this kind.
    pub fn subject(self) -> &'static str {
        match self {
            Action::Failed => "Undelivered Mail Returned to Sender",
            Action::Delayed => "Delayed Mail (still being retried)",
            Action::Delivered => "Delivery Report: Your Message Was Delivered",
            Action::Relayed => "Delivery Report: Your Message Was Relayed",
        }
    }

    pub(crate) fn class(self) -> u8 {
        match self {
            Action::Failed => b'5',
            Action::Delayed => b'4',
            Action::Delivered | Action::Relayed => b'2',
        }
    }
}

/// One recipient in a report, with its state after the last attempt.
#[derive(Debug, Clone, Copy)]
pub struct RcptReport<'a> {
    pub recipient: &'a Recipient,
    pub state: &'a RcptState,
}

/// Why only the header section of the original is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersOnly {
    /// The client asked for it (`RET=HDRS`).
    Asked,
    /// The original is larger than this many bytes (`bounce_return_limit`).
    TooLarge(u64),
    /// Only bounces return whole messages.
    NotAFailure,
    /// The message came with REQUIRETLS: its content must not travel on a path the
    /// sender did not accept (RFC 8689 §5).
    RequireTls,
}

/// What the third part carries.
#[derive(Debug, Clone, Copy)]
pub enum Returned<'a> {
    /// The whole original (`message/rfc822`).
    Full(&'a [u8]),
    /// Its header section (`text/rfc822-headers`).
    Headers(&'a [u8], HeadersOnly),
}

impl Returned<'_> {
    /// What a report of `action` about a message sent with `ret` and `len` bytes long
    /// returns, given the size limit for whole messages. `None`: the whole message.
    /// A REQUIRETLS message is never returned whole ([`Returned::choose_for`]).
    pub fn choose(action: Action, ret: Option<Ret>, len: u64, limit: u64) -> Option<HeadersOnly> {
        match (action, ret) {
            (Action::Failed, Some(Ret::Hdrs)) => Some(HeadersOnly::Asked),
            (Action::Failed, _) if len > limit => Some(HeadersOnly::TooLarge(limit)),
            (Action::Failed, _) => None,
            _ => Some(HeadersOnly::NotAFailure),
        }
    }

    /// [`Returned::choose`] for a queued message: headers only for a failure report on
    /// a REQUIRETLS message, whatever its RET and size.
    pub fn choose_for(
        action: Action,
        envelope: &Envelope,
        len: u64,
        limit: u64,
    ) -> Option<HeadersOnly> {
        match Returned::choose(action, envelope.ret, len, limit) {
            None if envelope.requiretls() => Some(HeadersOnly::RequireTls),
            Some(HeadersOnly::Asked | HeadersOnly::TooLarge(_)) if envelope.requiretls() => {
                Some(HeadersOnly::RequireTls)
            }
            other => other,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Returned::Full(b) | Returned::Headers(b, _) => b,
        }
    }
}

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub action: Action,
    /// Postern's host name: `Reporting-MTA`, the `From:` address, the Message-ID.
    pub hostname: &'a str,
    /// The report's own queue ID.
    pub id: QueueId,
    /// Unix seconds.
    pub now: u64,
    /// The message reported on.
    pub original: &'a Envelope,
    pub recipients: Vec<RcptReport<'a>>,
    pub returned: Returned<'a>,
    /// For delay warnings: when Postern gives up (arrival plus `max_age`).
    pub retry_until: Option<u64>,
}

/// The report as a message: header section and MIME body, CRLF line endings.
pub fn build(r: &Report<'_>) -> Vec<u8> {
    let boundary = boundary_for(r.id, r.returned.bytes());
    let utf8 = r.original.smtputf8;
    let mut out = String::new();
    header(
        &mut out,
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{}>", r.hostname),
    );
    let to = match &r.original.sender {
        ReversePath::Address(a) => format!("<{a}>"),
        ReversePath::Null => "<>".into(),
    };
    header(&mut out, "To", &text(&to, utf8));
    header(&mut out, "Subject", r.action.subject());
    header(&mut out, "Date", &rfc5322_date(r.now));
    header(
        &mut out,
        "Message-ID",
        &format!("<{}.report@{}>", r.id, r.hostname),
    );
    header(&mut out, "Auto-Submitted", "auto-replied");
    header(&mut out, "MIME-Version", "1.0");
    header(
        &mut out,
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\""),
    );
    out.push_str("\r\nThis is a delivery status report in MIME format (RFC 3464).\r\n");

    let human = explanation(r);
    // A report about a 7-bit message stays 7-bit (it may have to travel to a server
    // without 8BITMIME): non-ASCII text there (a decoded Subject) is quoted-printable.
    let eight_bit_ok = utf8 || !r.returned.bytes().is_ascii();
    let (cte, human) = match (human.is_ascii(), eight_bit_ok) {
        (true, _) => ("7bit", human),
        (false, true) => ("8bit", human),
        (false, false) => ("quoted-printable", quoted_printable(&human)),
    };
    let _ = write!(out, "\r\n--{boundary}\r\n");
    header(&mut out, "Content-Type", "text/plain; charset=utf-8");
    header(&mut out, "Content-Transfer-Encoding", cte);
    header(&mut out, "Content-Description", "Notification");
    out.push_str("\r\n");
    out.push_str(&human);

    let _ = write!(out, "\r\n--{boundary}\r\n");
    header(&mut out, "Content-Type", "message/delivery-status");
    header(&mut out, "Content-Description", "Delivery report");
    out.push_str("\r\n");
    delivery_status(&mut out, r);

    let _ = write!(out, "\r\n--{boundary}\r\n");
    let (ctype, description) = match r.returned {
        Returned::Full(_) => ("message/rfc822", "Your message"),
        Returned::Headers(..) => ("text/rfc822-headers", "The headers of your message"),
    };
    header(&mut out, "Content-Type", ctype);
    header(&mut out, "Content-Description", description);
    let original = r.returned.bytes();
    if !original.is_ascii() {
        header(&mut out, "Content-Transfer-Encoding", "8bit");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(original);
    if !original.is_empty() && !original.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The header section of a message (up to, not including, the empty line).
pub fn header_section(message: &[u8]) -> &[u8] {
    if message.starts_with(b"\r\n") {
        return &[];
    }
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &message[..i + 2],
        None => message,
    }
}

fn delivery_status(out: &mut String, r: &Report<'_>) {
    let e = r.original;
    if let Some(envid) = &e.envid {
        field(out, "Original-Envelope-Id", &envid.decoded());
    }
    field(out, "Reporting-MTA", &format!("dns; {}", r.hostname));
    field(out, "Arrival-Date", &rfc5322_date(e.arrived));
    field(out, "X-Postern-Queue-ID", &e.id.to_string());
    for rr in &r.recipients {
        out.push_str("\r\n");
        let (rcpt, st) = (rr.recipient, rr.state);
        if let Some(o) = &rcpt.orcpt {
            field(out, "Original-Recipient", &o.report_value());
        }
        field(out, "Final-Recipient", &final_recipient(rcpt));
        field(out, "Action", r.action.as_str());
        let d = &st.detail;
        field(out, "Status", &d.status_for(r.action.class()));
        if let Some(mta) = &d.host {
            field(out, "Remote-MTA", &format!("dns; {}", ascii(mta)));
        }
        if r.action != Action::Delivered
            && let Some(reply) = d.diagnostic()
        {
            field(out, "Diagnostic-Code", &format!("smtp; {}", ascii(&reply)));
        } else if r.action != Action::Delivered && !d.is_empty() {
            // Not an SMTP answer (a local error, say): a private diagnostic type.
            field(
                out,
                "Diagnostic-Code",
                &format!("X-Postern; {}", ascii(&d.to_string())),
            );
        }
        if let Some(t) = st.last_attempt {
            field(out, "Last-Attempt-Date", &rfc5322_date(t));
        }
        if let (Action::Delayed, Some(t)) = (r.action, r.retry_until) {
            field(out, "Will-Retry-Until", &rfc5322_date(t));
        }
    }
}

/// `rfc822; bob@example.org`, or for a non-ASCII address the RFC 6533 `utf-8` type
/// with `\x{HEX}` for each non-ASCII character, so the field stays ASCII.
fn final_recipient(r: &Recipient) -> String {
    let a = r.address.to_string();
    if a.is_ascii() {
        return format!("rfc822; {}", ascii(&a));
    }
    let mut s = String::from("utf-8; ");
    for c in a.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            s.push(c);
        } else {
            let _ = write!(s, "\\x{{{:X}}}", c as u32);
        }
    }
    s
}

/// A boundary that does not occur in `content`.
fn boundary_for(id: QueueId, content: &[u8]) -> String {
    let mut n = 0u32;
    loop {
        let b = format!("=_postern_report_{id}_{n}");
        let needle = format!("--{b}");
        if !content
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            return b;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests;
