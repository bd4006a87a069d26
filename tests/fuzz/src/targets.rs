//! The targets. Each asserts invariants beyond "does not panic" where there are any.

use std::time::Duration;

use postern_smtp::{BdatReader, DataEncoder, DataReader, HeaderLimits, HeaderScan};

/// The command parser: never panics; every error maps to a 5xx reply.
pub fn command(data: &[u8]) {
    if let Err(e) = postern_smtp::command::parse(data) {
        let r = e.reply();
        assert!(r.code >= 500 && r.code < 600, "{r:?}");
        let wire = r.to_bytes();
        assert!(
            wire.ends_with(b"\r\n") && !wire[..wire.len() - 2].contains(&b'\n'),
            "reply text split the line"
        );
    }
}

/// The DATA reader: fed whole or in pieces it reaches the same verdict, never ends except
/// at CRLF.CRLF, and never emits a bare LF or CR.
pub fn data(input: &[u8]) {
    let whole = feed_data(input, input.len().max(1));
    for step in [1, 3, 7] {
        assert_eq!(feed_data(input, step), whole, "chunking changed the result");
    }
    if let (Some(end), Ok(out)) = (&whole.0, &whole.1) {
        assert!(
            input[..*end].ends_with(b"\r\n.\r\n") || input[..*end] == *b".\r\n",
            "ended without CRLF.CRLF"
        );
        assert!(!out.contains(&0), "NUL accepted in DATA content");
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && out[i - 1] == b'\r', "bare LF emitted");
            }
            if b == b'\r' {
                assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR emitted");
            }
        }
    }
}

type DataResult = (Option<usize>, Result<Vec<u8>, postern_smtp::ContentError>);

fn feed_data(input: &[u8], step: usize) -> DataResult {
    let mut r = DataReader::new(1 << 20);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let end = (pos + step).min(input.len());
        let f = r.feed(&input[pos..end], &mut out);
        assert!(f.consumed <= end - pos);
        pos += f.consumed;
        if f.done {
            return (Some(pos), r.result().map(|_| out));
        }
    }
    (None, Ok(Vec::new()))
}

/// The BDAT checker: split anywhere, same verdict; accepted content has only CRLF endings.
pub fn bdat(input: &[u8]) {
    let split = input
        .first()
        .map(|&b| b as usize % (input.len() + 1))
        .unwrap_or(0);
    let run = |parts: &[&[u8]]| {
        let mut r = BdatReader::new(1 << 20);
        let mut out = Vec::new();
        for p in parts {
            r.feed(p, &mut out);
        }
        r.finish(&mut out).map(|_| out)
    };
    let a = run(&[input]);
    let b = run(&[&input[..split], &input[split..]]);
    assert_eq!(a, b);
    if let Ok(out) = a {
        assert!(!out.contains(&0), "NUL accepted in BDAT content");
        assert!(out.is_empty() || out.ends_with(b"\r\n"));
        for (i, &c) in out.iter().enumerate() {
            if c == b'\n' {
                assert!(i > 0 && out[i - 1] == b'\r');
            }
        }
    }
}

/// What Postern sends onward (DataEncoder) is always read back by a strict DATA reader as
/// exactly one message ending exactly at the end: nothing can be smuggled through us.
pub fn roundtrip(input: &[u8]) {
    let mut enc = DataEncoder::new();
    let mut wire = Vec::new();
    let split = input.len() / 2;
    enc.encode(&input[..split], &mut wire);
    enc.encode(&input[split..], &mut wire);
    enc.finish(&mut wire);
    let mut r = DataReader::new(u64::MAX);
    let mut out = Vec::new();
    let f = r.feed(&wire, &mut out);
    assert!(f.done, "encoded message did not end");
    assert_eq!(
        f.consumed,
        wire.len(),
        "encoded message ended early: smuggling"
    );
    if r.result().is_ok() {
        let normalized: Vec<u8> = {
            let mut v = Vec::new();
            let mut e = DataEncoder::for_bdat();
            e.encode(input, &mut v);
            e.finish(&mut v);
            v
        };
        assert_eq!(out, normalized);
    }
}

/// Address parsers: never panic; what they accept prints and re-parses to the same value.
pub fn address(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((postern_smtp::ForwardPath::Address(a), _)) =
        postern_smtp::address::parse_forward_path(s)
    {
        let printed = format!("<{a}>");
        let (again, rest) =
            postern_smtp::address::parse_forward_path(&printed).expect("printed address re-parses");
        assert_eq!(again, postern_smtp::ForwardPath::Address(a));
        assert!(rest.is_empty());
    }
    let _ = postern_smtp::address::parse_reverse_path(s);
    let _ = postern_smtp::address::parse_mailbox(s);
    let _ = postern_smtp::address::parse_domain(s);
}

/// The configuration loader: never panics; every error is located.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(errs) = postern::config::load_str("fuzz.toml", &text) {
        for e in errs {
            assert!(e.line >= 1 && e.col >= 1 && !e.key.is_empty(), "{e}");
        }
    }
}

/// The queue record reader: a damaged file is an error, never a panic, and never a message
/// whose content runs outside the file.
pub fn queue_record(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let spool = postern_queue::Spool::open(dir.path()).unwrap();
    let path = spool.active_dir().join("0000000000000000AA.msg");
    std::fs::write(&path, data).unwrap();
    if let Ok(m) = spool.load(&path) {
        assert!(m.body_offset + m.body_len <= data.len() as u64);
        let _ = m.read_body();
    }
}

/// The certificate reader behind check-config reports and the scanner: never panics.
pub fn x509(data: &[u8]) {
    if let Ok(info) = postern_tls::x509::CertInfo::parse(data) {
        let _ = info.weaknesses();
        let _ = info.report("  ", 1_800_000_000);
        let _ = info.days_to_expiry(1_800_000_000);
    }
}

/// The scanner's ServerHello/alert parser (answers from arbitrary servers), and the
/// certificate reader on every certificate it returns, as the scanner's report does:
/// never panics.
pub fn server_hello(data: &[u8]) {
    if let Ok(flight) = postern_scan::hello::parse_flight(data) {
        for der in &flight.certificates {
            x509(der);
        }
    }
}

/// The header-section counter: never panics, and any split of the input gives the same
/// counts and verdict as feeding it whole.
pub fn header_scan(input: &[u8]) {
    let limits = HeaderLimits {
        max_hops: 3,
        max_fields: 20,
        max_size: 512,
    };
    let run = |parts: &[&[u8]]| {
        let mut s = HeaderScan::new(limits);
        for p in parts {
            s.feed(p);
        }
        (
            s.error(),
            s.hops(),
            s.fields(),
            s.size(),
            s.saw_authentication_results(),
        )
    };
    let whole = run(&[input]);
    for step in [1, 2, 5] {
        let parts: Vec<&[u8]> = input.chunks(step).collect();
        assert_eq!(run(&parts), whole, "chunking changed the result");
    }
    assert!(whole.3 <= limits.max_size + 1);
}

/// Every reply the client-side parser returns, from one feed or another.
type Replies = (
    Vec<(postern_smtp::client::Reply, usize)>,
    Option<postern_smtp::client::ReplyError>,
);

/// Read every reply in `input`, fed `step` octets at a time. Each reply comes with the
/// offset in `input` just after it.
fn feed_replies(input: &[u8], step: usize) -> Replies {
    let mut p = postern_smtp::client::ReplyParser::new();
    let mut out = Vec::new();
    let mut offset = 0;
    for chunk in input.chunks(step.max(1)) {
        let mut pos = 0;
        while pos < chunk.len() {
            match p.feed(&chunk[pos..]) {
                Ok(f) => {
                    assert!(f.consumed <= chunk.len() - pos, "consumed more than given");
                    assert!(f.consumed > 0 || f.reply.is_some(), "no progress");
                    pos += f.consumed;
                    if let Some(r) = f.reply {
                        out.push((r, offset + pos));
                    }
                }
                Err(e) => return (out, Some(e)),
            }
        }
        offset += chunk.len();
    }
    (out, None)
}

/// The client-side reply parser (what hostile servers send): never panics; fed whole or in
/// pieces it finds the same replies and the same error; every reply ends at a line end,
/// has a 2xx-5xx code, at most 100 lines, and text without CR, LF or NUL.
pub fn reply(input: &[u8]) {
    let whole = feed_replies(input, input.len());
    let split = input.first().map(|&b| usize::from(b) % 17 + 1).unwrap_or(1);
    for step in [1, 3, split] {
        assert_eq!(
            feed_replies(input, step),
            whole,
            "chunking changed the result"
        );
    }
    for (r, end) in &whole.0 {
        assert!((200..600).contains(&r.code), "{r:?}");
        assert!(!r.lines.is_empty() && r.lines.len() <= 100, "{r:?}");
        assert_eq!(input.get(end - 1), Some(&b'\n'), "reply not ended by LF");
        let shown = r.to_string();
        assert!(
            !shown.contains(['\r', '\n', '\0']),
            "control character in {shown:?}"
        );
        if let Some(e) = r.enhanced {
            assert_eq!(u16::from(e.class), r.code / 100);
        }
    }
}

/// EHLO capabilities: never panic; what is kept is bounded and well formed.
pub fn ehlo(input: &[u8]) {
    let from_text: Vec<String> = String::from_utf8_lossy(input)
        .split('\n')
        .map(str::to_string)
        .collect();
    let mut all = vec![postern_smtp::client::Capabilities::from_lines(&from_text)];
    if let Ok(Some((r, _))) = postern_smtp::client::ReplyParser::parse_one(input) {
        all.push(postern_smtp::client::Capabilities::from_reply(&r));
    }
    for c in all {
        assert!(c.auth.len() <= postern_smtp::client::ehlo::MAX_AUTH_MECHANISMS);
        for m in &c.auth {
            assert!(!m.is_empty() && m.len() <= 20 && *m == m.to_ascii_uppercase());
        }
        for e in &c.other {
            assert!(!e.keyword.is_empty() && e.keyword == e.keyword.to_ascii_uppercase());
            assert!(c.offers(&e.keyword));
        }
        assert!(c.size_limit().is_none_or(|n| n > 0));
    }
}

/// Header sections read with mail-parser: `sendmail`'s completion and `-t` recipients,
/// the address-list reader, and `queue show`'s decoded digest. Never panic; the message
/// keeps its end; decoded values carry no control characters.
pub fn headers(input: &[u8]) {
    let cx = postern_submit::message::Context {
        hostname: "h.test",
        sender: "u@h.test",
        full_name: Some("Fuzz"),
        now: Duration::from_secs(1),
    };
    let p = postern_submit::message::prepare(input, &cx);
    if input.ends_with(b"\n") {
        assert!(p.message.ends_with(b"\n"), "the end of the message changed");
    }
    for a in &p.header_recipients {
        assert!(!a.trim().is_empty(), "empty recipient");
    }
    let _ = postern_submit::recipients::address_list(input);
    let d = postern_queue::admin::HeaderDigest::read(input);
    for v in [&d.from, &d.to, &d.cc, &d.subject, &d.date, &d.message_id]
        .into_iter()
        .flatten()
    {
        assert!(
            !v.chars().any(char::is_control),
            "control character in {v:?}"
        );
    }
}
