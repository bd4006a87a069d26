//! Completion and `-t` recipients, with the nasty cases of real-world header sections.

#![allow(clippy::unwrap_used)]

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn cx() -> Context<'static> {
    Context {
        hostname: "h.test",
        sender: "u@h.test",
        full_name: Some("A \"B\""),
        now: Duration::from_secs(0),
    }
}

fn text(p: &Prepared) -> String {
    String::from_utf8(p.message.clone()).unwrap()
}

#[test]
fn dot_line_ends_input_without_i() {
    let input = b"a\n.\nb\n";
    assert_eq!(read_message(&input[..], false).unwrap(), b"a\n");
    assert_eq!(read_message(&input[..], true).unwrap(), input);
}

#[test]
fn headers_added_and_bcc_removed() {
    let p = prepare(b"To: a@x\nBcc: b@y,\n c@z\nSubject: s\n\nbody\n", &cx());
    let m = text(&p);
    assert!(!m.contains("Bcc") && !m.contains("b@y"), "{m}");
    assert!(m.contains("From: \"A \\\"B\\\"\" <u@h.test>\r\n"), "{m}");
    assert!(
        m.contains("Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"),
        "{m}"
    );
    assert!(m.contains("Message-ID: <0.0."), "{m}");
    assert!(m.ends_with("\r\nbody\n"), "{m}");
    assert_eq!(p.header_recipients, s(&["a@x", "b@y", "c@z"]));
}

#[test]
fn body_only_input_gets_headers() {
    let p = prepare(b"hello world\n", &cx());
    let m = text(&p);
    assert!(m.starts_with("From: "), "{m}");
    assert!(m.ends_with("\r\n\r\nhello world\n"), "{m}");
    let p = prepare(b"From someone Mon Jan 1\nFrom: x@y\n\nb", &cx());
    let m = text(&p);
    assert!(m.starts_with("From: x@y\n"), "{m}");
}

#[test]
fn bcc_removal_keeps_every_other_byte() {
    // Mixed line ends, a folded Bcc in the middle (with a tab and an encoded word), odd
    // spacing and 8-bit text: everything but the Bcc lines must come out unchanged.
    let before = "Subject:  =?utf-8?q?caf=C3=A9?=\r\n\tcontinued \r\nTo: a@x.test\n";
    let bcc = "BCC: \"Hidden, One\" <h1@x.test>,\r\n\t=?utf-8?b?SMOpbMOobmU=?= <h2@x.test>,\r\n (c) h3@x.test\r\n";
    let after = "X-Note: Grüße\r\nFrom: me@x.test\r\nDate: whatever\r\nMessage-Id: <1@x>\r\n";
    let body = "\r\nline 1\r\nBcc: not a header\r\n";
    let raw = format!("{before}{bcc}{after}{body}");
    let p = prepare(raw.as_bytes(), &cx());
    assert_eq!(text(&p), format!("{before}{after}{body}"));
    assert_eq!(
        p.header_recipients,
        s(&["a@x.test", "h1@x.test", "h2@x.test", "h3@x.test"])
    );
}

#[test]
fn recipients_from_groups_comments_and_encoded_names() {
    let raw = "To: Team: \"Doe, J\" <j@x.test>, k@x.test (Kay, the boss);,\r\n \
               undisclosed-recipients:;\r\n\
               Cc: =?iso-8859-1?q?M=FCller=2C_A?= <m@x.test>\r\n\
               Cc: (only a comment) n@x.test\r\n\
               To: Zoë Ünal <z@x.test>\r\n\
               Subject: x\r\n\r\nbody\r\n";
    let p = prepare(raw.as_bytes(), &cx());
    assert_eq!(
        p.header_recipients,
        s(&["j@x.test", "k@x.test", "m@x.test", "n@x.test", "z@x.test"])
    );
}

#[test]
fn present_fields_are_not_added_again_whatever_their_case_or_value() {
    let raw = b"fRoM: a@x.test\r\nDATE: not a date at all\r\nmessage-id: <x@y>\r\n\r\nb\r\n";
    let m = text(&prepare(raw, &cx()));
    assert_eq!(m, String::from_utf8_lossy(raw));
}

#[test]
fn body_without_header_section_or_final_newline() {
    let p = prepare(b"Subject: s", &cx());
    let m = text(&p);
    assert!(m.starts_with("Subject: s\r\nFrom: "), "{m}");
    assert!(m.ends_with("\r\n\r\n"), "{m}");
    assert!(p.header_recipients.is_empty());
    let p = prepare(b"", &cx());
    assert!(text(&p).starts_with("From: "));
}

#[test]
fn a_continuation_line_first_is_body() {
    let m = text(&prepare(b" indented: x\nTo: a@x\n", &cx()));
    assert!(m.ends_with("\r\n\r\n indented: x\nTo: a@x\n"), "{m}");
}
