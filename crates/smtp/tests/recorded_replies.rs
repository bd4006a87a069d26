//! The client-side parser against what real servers send (testdata/replies/*.txt: the
//! replies of one session, byte for byte, written after the formats of Postfix, Exim,
//! OpenSMTPD, Microsoft Exchange / 365 and Gmail) and against hostile servers.

use postern_smtp::client::{Capabilities, EnhancedCode, Reply, ReplyError, ReplyParser};

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/replies/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every reply in the file, fed in pieces of `step` octets; the error ends the list.
fn replies_in_steps(input: &[u8], step: usize) -> (Vec<Reply>, Option<ReplyError>) {
    let mut p = ReplyParser::new();
    let mut out = Vec::new();
    for chunk in input.chunks(step) {
        let mut pos = 0;
        while pos < chunk.len() {
            match p.feed(&chunk[pos..]) {
                Ok(f) => {
                    pos += f.consumed;
                    out.extend(f.reply);
                }
                Err(e) => return (out, Some(e)),
            }
        }
    }
    assert!(!p.in_reply(), "input ends inside a reply");
    (out, None)
}

/// The replies in a file, checked to be the same whatever the read sizes.
fn replies(name: &str) -> (Vec<Reply>, Option<ReplyError>) {
    let input = load(name);
    let whole = replies_in_steps(&input, input.len().max(1));
    for step in [1, 2, 7, 64] {
        assert_eq!(replies_in_steps(&input, step), whole, "{name}: step {step}");
    }
    whole
}

fn ok(name: &str) -> Vec<Reply> {
    let (r, e) = replies(name);
    assert_eq!(e, None, "{name}");
    r
}

fn err(name: &str) -> ReplyError {
    replies(name)
        .1
        .unwrap_or_else(|| panic!("{name}: no error"))
}

fn codes(r: &[Reply]) -> Vec<u16> {
    r.iter().map(|r| r.code).collect()
}

#[test]
fn postfix() {
    let r = ok("postfix.txt");
    assert_eq!(codes(&r), [220, 250, 220, 250, 550, 250, 221]);
    let c = Capabilities::from_reply(&r[1]);
    assert_eq!(c.domain, "mail.example.net");
    assert_eq!(c.size_limit(), Some(10_240_000));
    assert!(c.pipelining && c.starttls && c.enhanced_status_codes && c.eight_bit_mime);
    assert!(c.dsn && c.smtputf8 && c.chunking && !c.binarymime && c.auth.is_empty());
    let kw: Vec<&str> = c.other.iter().map(|e| e.keyword.as_str()).collect();
    assert_eq!(kw, ["VRFY", "ETRN"]);
    assert_eq!(r[4].enhanced, EnhancedCode::new(5, 1, 1));
    assert!(
        r[4].message()
            .starts_with("<nobody@example.net>: Recipient address rejected")
    );
    assert_eq!(r[2].enhanced, EnhancedCode::new(2, 0, 0));
}

#[test]
fn exim() {
    let r = ok("exim.txt");
    assert_eq!(codes(&r), [220, 250, 550, 250, 221]);
    let c = Capabilities::from_reply(&r[1]);
    assert_eq!(c.domain, "mx.example.org");
    assert_eq!(c.auth, ["PLAIN", "LOGIN"]);
    assert!(c.offers("PIPECONNECT") && c.offers("prdr") && c.chunking && c.starttls);
    assert!(!c.enhanced_status_codes && !c.dsn);
    assert_eq!(r[2].lines.len(), 3);
    assert_eq!(r[2].enhanced, None);
    assert_eq!(
        r[2].to_string(),
        "550 Verification failed for <someone@example.com> Unrouteable address Sender verify failed"
    );
}

#[test]
fn opensmtpd() {
    let r = ok("opensmtpd.txt");
    assert_eq!(codes(&r), [220, 250, 250, 354, 250, 221]);
    let c = Capabilities::from_reply(&r[1]);
    assert_eq!(c.size_limit(), Some(36_700_160));
    assert!(c.dsn && c.starttls && c.enhanced_status_codes && !c.pipelining);
    assert!(r[3].is_intermediate());
}

#[test]
fn microsoft() {
    let r = ok("microsoft-365.txt");
    assert_eq!(codes(&r), [220, 250, 550]);
    let c = Capabilities::from_reply(&r[1]);
    assert!(c.binarymime && c.chunking && c.smtputf8 && c.dsn && c.starttls);
    assert_eq!(r[2].enhanced, EnhancedCode::new(5, 7, 606));

    let r = ok("exchange-onprem.txt");
    assert_eq!(codes(&r), [220, 250, 530]);
    let c = Capabilities::from_reply(&r[1]);
    assert_eq!(c.auth, ["NTLM", "LOGIN"]);
    assert_eq!(c.size_limit(), Some(37_748_736));
    let x = c
        .other
        .iter()
        .find(|e| e.keyword == "X-EXPS")
        .expect("X-EXPS");
    assert_eq!(x.params, ["GSSAPI", "NTLM"]);
    assert!(c.offers("x-anonymoustls") && c.offers("XRDST"));
}

#[test]
fn gmail_multi_line_rejections() {
    let r = ok("gmail.txt");
    assert_eq!(codes(&r), [220, 250, 550, 421]);
    let c = Capabilities::from_reply(&r[1]);
    assert_eq!(c.domain, "mx.google.example");
    assert!(c.smtputf8 && c.chunking && c.pipelining && c.eight_bit_mime);
    assert_eq!(r[2].lines.len(), 4);
    assert_eq!(r[2].enhanced, EnhancedCode::new(5, 7, 1));
    assert!(r[2].is_permanent() && r[3].is_transient());
    assert_eq!(r[3].enhanced, EnhancedCode::new(4, 7, 0));
}

#[test]
fn multi_line_banner() {
    let r = ok("multiline-banner.txt");
    assert_eq!(codes(&r), [220, 250]);
    assert_eq!(r[0].lines.len(), 4);
    assert_eq!(r[0].lines[3], "");
    let c = Capabilities::from_reply(&r[1]);
    assert!(c.requiretls && c.starttls);
    assert_eq!((c.size, c.size_limit()), (Some(0), None));
    assert_eq!(c.auth, ["PLAIN", "LOGIN"]);
}

#[test]
fn bare_lf_is_tolerated() {
    let r = ok("bare-lf.txt");
    assert_eq!(codes(&r), [220, 250, 250]);
    assert_eq!(
        Capabilities::from_reply(&r[1]).size_limit(),
        Some(1_000_000)
    );
    assert_eq!(r[0].lines[0], "legacy.example.org SMTP ready");
}

#[test]
fn hostile_servers() {
    assert_eq!(
        err("hostile-mixed-codes.txt"),
        ReplyError::MixedCodes {
            first: 250,
            then: 550
        }
    );
    assert_eq!(
        err("hostile-endless-continuation.txt"),
        ReplyError::TooManyLines { limit: 100 }
    );
    assert_eq!(
        err("hostile-long-line.txt"),
        ReplyError::LineTooLong { limit: 2048 }
    );
    assert_eq!(err("hostile-nul.txt"), ReplyError::Nul);
    assert!(matches!(
        err("hostile-missing-space.txt"),
        ReplyError::BadSeparator { line } if line == "250OK"
    ));
    assert!(matches!(
        err("hostile-no-code.txt"),
        ReplyError::BadCode { line } if line == "Welcome to my server"
    ));
    assert_eq!(err("hostile-bare-cr.txt"), ReplyError::BareCr);
    assert_eq!(
        err("hostile-huge-total.txt"),
        ReplyError::TooLong { limit: 32 * 1024 }
    );
}

/// The parser stops right after a reply, so the caller can see what follows the 220 to
/// STARTTLS (and refuse it: the relay client does).
#[test]
fn bytes_after_a_reply_are_left_to_the_caller() {
    let input = load("hostile-greeting-then-injection.txt");
    let (r, used) = ReplyParser::parse_one(&input).unwrap().unwrap();
    assert_eq!((r.code, used), (220, 30));
    assert_eq!(&input[used..], b"250-injected\r\n250 STARTTLS\r\n");
}
