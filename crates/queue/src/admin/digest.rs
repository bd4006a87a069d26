//! What a queued message's header section says, decoded for a person: the lines
//! `postern queue show` prints above the raw header section (which it shows as well).
//!
//! # Security
//! The header section comes from whoever sent the message. It is read by mail-parser
//! (RFC 5322 with its obsolete forms, RFC 2047 encoded words, RFC 6532 UTF-8), and every
//! decoded value has its control characters replaced: an encoded word can hide an
//! escape sequence for the operator's terminal as easily as a raw byte can.
//!
//! # Standards
//! RFC 5322 §3.4 (address lists, groups), §3.6; RFC 2047 (encoded words).

use mail_parser::{Addr, Address, HeaderName, HeaderValue, MessageParser};
use serde::{Deserialize, Serialize};

/// Longest value shown, in characters.
const MAX_VALUE: usize = 500;

/// The decoded From, To, Cc, Subject, Date and Message-ID of a message (the first of
/// each field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderDigest {
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub message_id: Option<String>,
}

impl HeaderDigest {
    /// Read a header section (with or without the empty line that ends it).
    pub fn read(head: &[u8]) -> HeaderDigest {
        let mut section = head.to_vec();
        section.extend_from_slice(b"\r\n\r\n");
        let Some(m) = MessageParser::new().parse_headers(&section) else {
            return HeaderDigest::default();
        };
        let first = |name: HeaderName<'static>| {
            m.headers()
                .iter()
                .find(|h| h.name == name)
                .and_then(|h| shown(&h.value, m.raw_message(), h))
        };
        HeaderDigest {
            from: first(HeaderName::From),
            to: first(HeaderName::To),
            cc: first(HeaderName::Cc),
            subject: first(HeaderName::Subject),
            date: first(HeaderName::Date),
            message_id: first(HeaderName::MessageId),
        }
    }

    /// `Label:     value` lines for the text of `queue show`, one per field present.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (label, value) in [
            ("From:", &self.from),
            ("To:", &self.to),
            ("Cc:", &self.cc),
            ("Subject:", &self.subject),
            ("Date:", &self.date),
            ("Message-ID:", &self.message_id),
        ] {
            if let Some(v) = value {
                out.push_str(&format!("{label:<12}{v}\n"));
            }
        }
        out
    }
}

/// A field's value for a person, or `None` when it says nothing.
fn shown(value: &HeaderValue<'_>, raw: &[u8], h: &mail_parser::Header<'_>) -> Option<String> {
    let text = match value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(", "),
        HeaderValue::Address(a) => addresses(a),
        HeaderValue::DateTime(d) => d.to_rfc822(),
        // Unparsable (a Date that is not a date, say): the raw value, unfolded.
        _ => String::from_utf8_lossy(
            raw.get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default(),
        )
        .into_owned(),
    };
    let clean: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_VALUE)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

fn addresses(a: &Address<'_>) -> String {
    match a {
        Address::List(l) => list(l),
        Address::Group(groups) => groups
            .iter()
            .map(|g| match &g.name {
                Some(n) => format!("{n}: {};", list(&g.addresses)),
                None => list(&g.addresses),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn list(l: &[Addr<'_>]) -> String {
    l.iter()
        .map(|a| match (&a.name, &a.address) {
            (Some(n), Some(addr)) => format!("{n} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decodes_what_a_person_reads() {
        let head = b"Received: from x\r\n\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
            From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.org>\r\n\
            To: Team: \"Doe, J\" <j@example.net>, k@example.net (Kay);\r\n\
            Subject: =?utf-8?b?w4ljaGFuZ2U=?= of\r\n notes \x1b[31m=?utf-8?q?=1B=5B2J?=\r\n\
            Date: not a date\r\n\
            Message-ID: <abc@example.org>\r\n";
        let d = HeaderDigest::read(head);
        assert_eq!(d.from.as_deref(), Some("Jürgen Müller <jm@example.org>"));
        assert_eq!(
            d.to.as_deref(),
            Some("Team: Doe, J <j@example.net>, Kay <k@example.net>;")
        );
        let subject = d.subject.clone().unwrap();
        assert!(subject.starts_with("Échange of notes ?[31m"), "{subject}");
        assert!(!subject.contains('\x1b'), "{subject}");
        assert_eq!(d.date.as_deref(), Some("not a date"));
        assert_eq!(d.message_id.as_deref(), Some("abc@example.org"));
        assert_eq!(d.cc, None);
        let t = d.text();
        assert!(t.contains("\nSubject:    Échange of notes"), "{t}");
        assert!(t.starts_with("From:       Jürgen"), "{t}");
    }

    #[test]
    fn empty_or_odd_sections_give_nothing() {
        assert_eq!(HeaderDigest::read(b""), HeaderDigest::default());
        assert_eq!(HeaderDigest::read(b"no colon here\r\n").subject, None);
    }
}
