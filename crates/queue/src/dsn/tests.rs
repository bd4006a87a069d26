//! The report's structure, checked by taking it apart again.

use postern_smtp::address::{ReversePath, parse_mailbox};
use postern_smtp::command::{BodyType, Notify, Orcpt, Ret, Xtext, XtextField};

use super::*;
use crate::{RcptStatus, Recipient};

const ORIGINAL: &[u8] = b"Received: from client.test\r\n\tby mx.test; Sat, 28 Nov 2026 21:29:02 +0000\r\nFrom: alice@example.org\r\nSubject: Quarterly\r\n figures\r\n\r\nBody line.\r\n--=_postern_report_0063F1A2B3C4D00001_0\r\n";

fn envelope() -> Envelope {
    let mut bob = Recipient::new(parse_mailbox("bob@example.net").unwrap());
    bob.orcpt = Some(Orcpt::parse("rfc822;Bob+2Bx@example.net").unwrap());
    bob.notify = Some(Notify::parse("FAILURE").unwrap());
    Envelope {
        id: QueueId::parse("0063F1A2B3C4D00000").unwrap(),
        arrived: 1_795_901_342,
        client_ip: Some("192.0.2.1".parse().unwrap()),
        helo: "client.test".into(),
        sender: ReversePath::Address(parse_mailbox("alice@example.org").unwrap()),
        recipients: vec![
            bob,
            Recipient::new(parse_mailbox("carol@example.net").unwrap()),
        ],
        body: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: Some(Xtext::parse("QQ+2B314", XtextField::Envid).unwrap()),
        sender_tls: Default::default(),
    }
}

fn state(status: RcptStatus, reason: &str) -> RcptState {
    RcptState {
        status,
        attempts: 3,
        last_attempt: Some(1_795_905_000),
        next_attempt: None,
        // The reasons are written as format 1 had them, and read as it is loaded.
        detail: crate::Detail::from_legacy(reason),
        notified: false,
    }
}

fn report<'a>(
    e: &'a Envelope,
    states: &'a [RcptState],
    action: Action,
    returned: Returned<'a>,
) -> Vec<u8> {
    build(&Report {
        action,
        hostname: "mx.postern.test",
        id: QueueId::parse("0063F1A2B3C4D00001").unwrap(),
        now: 1_795_906_000,
        original: e,
        recipients: e
            .recipients
            .iter()
            .zip(states)
            .map(|(recipient, state)| RcptReport { recipient, state })
            .collect(),
        returned,
        retry_until: Some(1_796_333_342),
    })
}

/// A MIME part: its header fields (name lower-cased) and its body.
#[derive(Debug)]
struct Part {
    headers: Vec<(String, String)>,
    body: String,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Split a header section and body, unfolding continuation lines.
fn part(text: &str) -> Part {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("continuation after a field");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (n, v) = line.split_once(':').expect("a header field");
            headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Part {
        headers,
        body: body.to_string(),
    }
}

/// Check line endings and lengths, and take the report apart: (top, parts).
fn parse(bytes: &[u8]) -> (Part, Vec<Part>) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for (i, line) in text.split("\r\n").enumerate() {
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "bare CR/LF in line {i}"
        );
        assert!(line.len() <= 998, "line {i} is {} octets", line.len());
    }
    assert!(text.ends_with("\r\n"));
    let top = part(&text);
    let ctype = top.header("content-type").unwrap();
    assert!(
        ctype.starts_with("multipart/report; report-type=delivery-status;"),
        "{ctype}"
    );
    let boundary = ctype
        .split("boundary=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
        .unwrap();
    assert!(boundary.len() <= 70);
    let delimiter = format!("\r\n--{boundary}");
    let mut pieces: Vec<&str> = top.body.split(&delimiter).collect();
    let last = pieces.pop().unwrap();
    assert_eq!(last, "--\r\n", "close delimiter at the end");
    let parts = pieces[1..]
        .iter()
        .map(|p| part(p.strip_prefix("\r\n").expect("CRLF after the delimiter")))
        .collect();
    (top, parts)
}

/// The delivery-status part as blocks of (field, value).
fn blocks(p: &Part) -> Vec<Vec<(String, String)>> {
    p.body
        .trim_end()
        .split("\r\n\r\n")
        .map(|b| part(b).headers)
        .collect()
}

fn get<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_bounce_has_three_parts_with_the_fields_rfc_3464_asks_for() {
    let e = envelope();
    let states = [
        state(
            RcptStatus::Failed,
            "host mx.example.net[192.0.2.25] said: 550 5.1.1 <bob@example.net>: Recipient address rejected (in reply to RCPT TO)",
        ),
        state(
            RcptStatus::Failed,
            "message expired after 5d in the queue; last error: 451 4.3.0 try again later",
        ),
    ];
    let bytes = report(&e, &states, Action::Failed, Returned::Full(ORIGINAL));
    let (top, parts) = parse(&bytes);
    assert_eq!(
        top.header("from"),
        Some("Mail Delivery System <MAILER-DAEMON@mx.postern.test>")
    );
    assert_eq!(top.header("to"), Some("<alice@example.org>"));
    assert_eq!(
        top.header("subject"),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(top.header("auto-submitted"), Some("auto-replied"));
    assert_eq!(top.header("mime-version"), Some("1.0"));
    assert_eq!(top.header("date"), Some("Sat, 28 Nov 2026 22:46:40 +0000"));
    assert_eq!(
        top.header("message-id"),
        Some("<0063F1A2B3C4D00001.report@mx.postern.test>")
    );
    assert_eq!(parts.len(), 3);

    assert_eq!(
        parts[0].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let human = parts[0]
        .body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for want in [
        "could not be delivered",
        "<bob@example.net>",
        "The recipient's mail server (mx.example.net) answered: 550 5.1.1 <bob@example.net>: Recipient address rejected",
        "<carol@example.net>",
        "The last problem was: 451 4.3.0 try again later",
        "with the subject \"Quarterly figures\"",
        "check each address above for typing mistakes",
        "Your message is attached below.",
    ] {
        assert!(human.contains(want), "missing {want:?} in {human}");
    }

    assert_eq!(
        parts[1].header("content-type"),
        Some("message/delivery-status")
    );
    let b = blocks(&parts[1]);
    assert_eq!(b.len(), 3, "{b:?}");
    assert_eq!(get(&b[0], "original-envelope-id"), Some("QQ+314"));
    assert_eq!(get(&b[0], "reporting-mta"), Some("dns; mx.postern.test"));
    assert_eq!(
        get(&b[0], "arrival-date"),
        Some("Sat, 28 Nov 2026 21:29:02 +0000")
    );
    assert_eq!(
        get(&b[1], "original-recipient"),
        Some("rfc822;Bob+x@example.net")
    );
    assert_eq!(
        get(&b[1], "final-recipient"),
        Some("rfc822; bob@example.net")
    );
    assert_eq!(get(&b[1], "action"), Some("failed"));
    assert_eq!(get(&b[1], "status"), Some("5.1.1"));
    assert_eq!(get(&b[1], "remote-mta"), Some("dns; mx.example.net"));
    assert_eq!(
        get(&b[1], "diagnostic-code"),
        Some("smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected (in reply to RCPT TO)")
    );
    assert!(get(&b[1], "last-attempt-date").is_some());
    assert_eq!(get(&b[2], "original-recipient"), None);
    assert_eq!(get(&b[2], "status"), Some("4.4.7"), "expiry");
    assert_eq!(get(&b[2], "remote-mta"), None);
    assert_eq!(
        get(&b[2], "diagnostic-code"),
        Some("smtp; 451 4.3.0 try again later")
    );
    assert_eq!(get(&b[2], "will-retry-until"), None, "only for delays");

    assert_eq!(parts[2].header("content-type"), Some("message/rfc822"));
    // The whole original, byte for byte, although it contains a line that looks like
    // the first boundary Postern would have chosen.
    let whole = String::from_utf8_lossy(&bytes);
    assert!(whole.contains(std::str::from_utf8(ORIGINAL).unwrap()));
    assert!(!top.header("content-type").unwrap().contains("D00001_0\""));
}

#[test]
fn a_requiretls_message_is_never_returned_whole() {
    let mut e = envelope();
    assert_eq!(Returned::choose_for(Action::Failed, &e, 10, 100), None);
    e.sender_tls = crate::SenderTls::RequireTls;
    for ret in [None, Some(Ret::Full), Some(Ret::Hdrs)] {
        e.ret = ret;
        assert_eq!(
            Returned::choose_for(Action::Failed, &e, 10, 100),
            Some(HeadersOnly::RequireTls)
        );
        assert_eq!(
            Returned::choose_for(Action::Failed, &e, 1000, 100),
            Some(HeadersOnly::RequireTls)
        );
    }
    assert_eq!(
        Returned::choose_for(Action::Delayed, &e, 10, 100),
        Some(HeadersOnly::NotAFailure)
    );
    // TLS-Required: No changes nothing here.
    e.sender_tls = crate::SenderTls::TlsOptional;
    e.ret = None;
    assert_eq!(Returned::choose_for(Action::Failed, &e, 10, 100), None);
}

#[test]
fn ret_hdrs_and_large_messages_return_headers_only() {
    let e = envelope();
    let states = [
        state(RcptStatus::Failed, "550 5.1.1 no such user"),
        state(RcptStatus::Failed, ""),
    ];
    assert_eq!(
        Returned::choose(Action::Failed, Some(Ret::Hdrs), 10, 100),
        Some(HeadersOnly::Asked)
    );
    assert_eq!(
        Returned::choose(Action::Failed, Some(Ret::Full), 101, 100),
        Some(HeadersOnly::TooLarge(100))
    );
    assert_eq!(Returned::choose(Action::Failed, None, 100, 100), None);
    assert_eq!(
        Returned::choose(Action::Delivered, Some(Ret::Full), 1, 100),
        Some(HeadersOnly::NotAFailure)
    );
    let head = header_section(ORIGINAL);
    assert!(head.ends_with(b"figures\r\n"));
    for (why, says) in [
        (HeadersOnly::Asked, "as you asked"),
        (HeadersOnly::TooLarge(1 << 20), "larger than 1MiB"),
    ] {
        let bytes = report(&e, &states, Action::Failed, Returned::Headers(head, why));
        let (_, parts) = parse(&bytes);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].header("content-type"), Some("text/rfc822-headers"));
        assert!(parts[2].body.starts_with("Received: from client.test"));
        assert!(!String::from_utf8_lossy(&bytes).contains("Body line."));
        let human = parts[0]
            .body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(human.contains(says), "{human}");
        // A reason without an SMTP reply gets a private diagnostic type; none at all, none.
        let b = blocks(&parts[1]);
        assert_eq!(
            get(&b[1], "diagnostic-code"),
            Some("smtp; 550 5.1.1 no such user")
        );
        assert_eq!(get(&b[1], "remote-mta"), None);
        assert_eq!(get(&b[2], "diagnostic-code"), None);
        assert_eq!(get(&b[2], "status"), Some("5.0.0"));
    }
}

#[test]
fn delay_warnings_and_delivery_reports() {
    let e = envelope();
    let states = [
        state(
            RcptStatus::Deferred,
            "cannot write to maildir /var/mail/bob: Permission denied (os error 13)",
        ),
        state(
            RcptStatus::Deferred,
            "host mx.example.net[192.0.2.25] said: 421 4.7.0 come back later",
        ),
    ];
    let head = header_section(ORIGINAL);
    let bytes = report(
        &e,
        &states,
        Action::Delayed,
        Returned::Headers(head, HeadersOnly::NotAFailure),
    );
    let (top, parts) = parse(&bytes);
    assert_eq!(
        top.header("subject"),
        Some("Delayed Mail (still being retried)")
    );
    let b = blocks(&parts[1]);
    assert_eq!(get(&b[1], "action"), Some("delayed"));
    assert_eq!(get(&b[1], "status"), Some("4.0.0"));
    assert_eq!(
        get(&b[1], "diagnostic-code"),
        Some("X-Postern; cannot write to maildir /var/mail/bob: Permission denied (os error 13)")
    );
    assert_eq!(get(&b[2], "status"), Some("4.7.0"));
    assert_eq!(
        get(&b[2], "will-retry-until"),
        Some("Thu, 3 Dec 2026 21:29:02 +0000")
    );
    let human = parts[0]
        .body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        human.contains("You do not need to send it again."),
        "{human}"
    );
    assert!(
        human.contains("until Thu, 3 Dec 2026 21:29:02 +0000"),
        "{human}"
    );

    let states = [
        state(RcptStatus::Delivered, "delivered to /var/mail/bob/new/1.M2"),
        state(RcptStatus::Delivered, "delivered"),
    ];
    let bytes = report(
        &e,
        &states,
        Action::Delivered,
        Returned::Headers(head, HeadersOnly::NotAFailure),
    );
    let (top, parts) = parse(&bytes);
    assert!(top.header("subject").unwrap().contains("Delivered"));
    let b = blocks(&parts[1]);
    assert_eq!(get(&b[1], "action"), Some("delivered"));
    assert_eq!(get(&b[1], "status"), Some("2.0.0"));
    assert_eq!(get(&b[1], "diagnostic-code"), None);
}

#[test]
fn hostile_and_oversized_text_stays_inside_its_lines() {
    let mut e = envelope();
    e.sender = ReversePath::Address(parse_mailbox("\"a\\\"b\"@example.org").unwrap());
    let long_word = "x".repeat(5000);
    let reason = format!(
        "host evil.test said: 550 5.7.1 bad\r\nInjected: yes\r\n\r\n--boundary {long_word} {}",
        "word ".repeat(400)
    );
    let states = [
        state(RcptStatus::Failed, &reason),
        state(RcptStatus::Failed, "\u{e9}t\u{e9}"),
    ];
    let bytes = report(&e, &states, Action::Failed, Returned::Full(ORIGINAL));
    let (top, parts) = parse(&bytes);
    assert_eq!(parts.len(), 3);
    assert!(top.header("to").unwrap().contains("example.org"));
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(!text.contains("\r\nInjected: yes"), "{text}");
    assert!(text.is_ascii(), "7-bit report for a 7-bit message");
    let b = blocks(&parts[1]);
    assert!(
        get(&b[1], "diagnostic-code")
            .unwrap()
            .starts_with("smtp; 550 5.7.1 bad Injected: yes")
    );
}

#[test]
fn non_ascii_recipients_use_the_utf8_address_type() {
    let mut e = envelope();
    e.smtputf8 = true;
    e.recipients[1] = Recipient::new(parse_mailbox("j\u{f6}rg@example.net").unwrap());
    let states = [state(RcptStatus::Failed, ""), state(RcptStatus::Failed, "")];
    let bytes = report(&e, &states, Action::Failed, Returned::Full(ORIGINAL));
    let (_, parts) = parse(&bytes);
    let b = blocks(&parts[1]);
    assert_eq!(
        get(&b[2], "final-recipient"),
        Some("utf-8; j\\x{F6}rg@example.net")
    );
    assert!(parts[0].body.contains("<j\u{f6}rg@example.net>"));
    assert_eq!(parts[0].header("content-transfer-encoding"), Some("8bit"));
}

/// Issue #16 defect 5: the bounce showed the Subject still MIME-encoded.
#[test]
fn encoded_subject_is_shown_decoded() {
    let original = b"From: alice@example.org\r\nSubject: =?utf-8?q?Caf=C3=A9_=E2=82=AC5?=\r\n =?ISO-8859-1?B?Z3L832Vu?= \x01bell\r\n\r\nBody\r\n";
    let e = envelope();
    let states = [state(RcptStatus::Failed, ""), state(RcptStatus::Failed, "")];
    // A 7-bit message: the report stays 7-bit, part 1 in quoted-printable.
    let bytes = report(&e, &states, Action::Failed, Returned::Full(original));
    assert!(bytes.is_ascii());
    let (_, parts) = parse(&bytes);
    assert_eq!(
        parts[0].header("content-transfer-encoding"),
        Some("quoted-printable")
    );
    let body = parts[0].body.replace("=\r\n", "");
    assert!(
        body.contains("with the subject \"Caf=C3=A9 =E2=82=AC5gr=C3=BC=C3=9Fen bell\""),
        "{body}"
    );
    assert!(!body.contains("=?utf-8?"), "{body}");
    // An SMTPUTF8 message: the report may be 8-bit, the Subject is shown as it reads.
    let mut e = envelope();
    e.smtputf8 = true;
    let bytes = report(&e, &states, Action::Failed, Returned::Full(original));
    let (_, parts) = parse(&bytes);
    assert_eq!(parts[0].header("content-transfer-encoding"), Some("8bit"));
    assert!(
        parts[0]
            .body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains("with the subject \"Café €5grüßen bell\""),
        "{}",
        parts[0].body
    );
}
