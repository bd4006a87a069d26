//! Reasons written as text by versions before typed outcomes (state file format 1),
//! read once into a [`Detail`] when such a file is loaded. Nothing else reads text.
//!
//! Format 1 wrote `host mx.example.net[192.0.2.1] said: 550 5.1.1 ... (in reply to RCPT
//! TO command)` for remote answers, `4.4.1 connect to ... failed` for local ones, with
//! `message expired after 5d in the queue; last error: ` or `relayed to a mail server
//! that does not offer delivery reports (DSN): ` in front where they applied.

use postern_smtp::enhanced::EnhancedCode;

use super::Detail;

const EXPIRED: &str = "message expired after ";
const EXPIRED_REST: &str = " in the queue; last error: ";
const RELAYED_NO_DSN: &str =
    "relayed to a mail server that does not offer delivery reports (DSN): ";

pub(super) fn parse(reason: &str) -> Detail {
    if let Some(rest) = reason.strip_prefix(EXPIRED)
        && let Some((age, last)) = rest.split_once(EXPIRED_REST)
    {
        let mut d = parse(last);
        d.expired_after = Some(age.to_string());
        return d;
    }
    if let Some(rest) = reason.strip_prefix(RELAYED_NO_DSN) {
        let mut d = parse(rest);
        d.relayed_without_dsn = true;
        return d;
    }
    if let Some(reply) = smtp_reply(reason) {
        let (code, text) = reply.split_at(3);
        let text = text.trim_start_matches([' ', '-']);
        let (host, addr, port) = match remote_mta(reason) {
            Some((h, a, p)) => (Some(h.to_string()), a.map(str::to_string), p),
            None => (None, None, None),
        };
        return Detail {
            code: code.parse().ok(),
            status: enhanced_status(text).and_then(EnhancedCode::parse),
            host,
            addr,
            port,
            reply: Some(text.to_string()),
            ..Detail::default()
        };
    }
    match enhanced_status(reason).filter(|s| reason.starts_with(s)) {
        Some(s) => Detail::local(s, reason[s.len()..].trim_start()),
        None => Detail {
            status: enhanced_status(reason).and_then(EnhancedCode::parse),
            text: reason.to_string(),
            ..Detail::default()
        },
    }
}

/// The first enhanced status code (RFC 3463 `class.subject.detail`) in `text`, when it
/// stands alone (not inside a version number or an address).
pub(super) fn enhanced_status(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    'start: for start in 0..b.len() {
        if !matches!(b[start], b'2' | b'4' | b'5')
            || (start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'.'))
        {
            continue;
        }
        let mut i = start + 1;
        for _ in 0..2 {
            if b.get(i) != Some(&b'.') {
                continue 'start;
            }
            i += 1;
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if !(1..=3).contains(&digits) {
                continue 'start;
            }
            i += digits;
        }
        match b.get(i) {
            Some(c) if c.is_ascii_alphanumeric() => continue,
            Some(b'.') if b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => continue,
            _ => return Some(&text[start..i]),
        }
    }
    None
}

/// The SMTP reply inside a reason (`... said: 550 5.1.1 ...`): from the reply code to
/// the end. A three-digit number counts as a reply code at the start of the reason,
/// after `said: `, or when an enhanced status code follows it.
pub(super) fn smtp_reply(reason: &str) -> Option<&str> {
    let b = reason.as_bytes();
    for p in 0..b.len() {
        if (p > 0 && b[p - 1] != b' ')
            || !matches!(b[p], b'2' | b'4' | b'5')
            || !b.get(p + 1).is_some_and(u8::is_ascii_digit)
            || !b.get(p + 2).is_some_and(u8::is_ascii_digit)
            || !matches!(b.get(p + 3), None | Some(b' ') | Some(b'-'))
        {
            continue;
        }
        let tail = reason[p + 3..].trim_start_matches([' ', '-']);
        let status_follows = enhanced_status(tail).is_some_and(|s| tail.starts_with(s));
        if p == 0 || reason[..p].ends_with("said: ") || status_follows {
            return Some(&reason[p..]);
        }
    }
    None
}

/// The remote server named in a reason (`host mx.example.net[192.0.2.1] said: ...`
/// gives `mx.example.net` and `192.0.2.1`; `[192.0.2.1]:25` gives the port too).
pub(super) fn remote_mta(reason: &str) -> Option<(&str, Option<&str>, Option<u16>)> {
    let (before, _) = reason.split_once(" said: ")?;
    let word = before.rsplit(' ').next()?;
    let (host, addr, port) = match word.split_once('[') {
        Some((h, a)) => match a.split_once(']') {
            Some((ip, "")) => (h, Some(ip), None),
            Some((ip, p)) => (
                h,
                Some(ip),
                p.strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (h, None, None),
        },
        None => (word, None, None),
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    ok.then_some((host, addr, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_1_reasons_read_back_into_the_same_text() {
        for r in [
            "host mx.example.net[192.0.2.25] said: 550 5.1.1 <bob@example.net>: Recipient address rejected (in reply to RCPT TO command)",
            "4.4.1 connect to 127.0.0.1[127.0.0.1]:46429 failed: Connection refused (os error 111)",
            "message expired after 5d in the queue; last error: host mx.test[192.0.2.1] said: 421 4.7.0 later",
            "relayed to a mail server that does not offer delivery reports (DSN): host mx.test[192.0.2.1]:25 said: 250 2.0.0 ok",
            "cannot write to maildir /x: Not a directory (os error 20)",
            "",
        ] {
            assert_eq!(parse(r).to_string(), r);
        }
        let d = parse(
            "host mx.test[192.0.2.1] said: 554 5.7.1 go away (in reply to end of DATA command)",
        );
        assert_eq!(
            (d.code, d.host.as_deref(), d.addr.as_deref()),
            (Some(554), Some("mx.test"), Some("192.0.2.1"))
        );
        assert_eq!(d.status_for(b'5'), "5.7.1");
        let e = parse("message expired after 5d in the queue; last error: 4.4.1 connect failed");
        assert_eq!(e.status_for(b'5'), "4.4.7");
        assert!(
            parse("relayed to a mail server that does not offer delivery reports (DSN): 250 ok")
                .relayed_without_dsn
        );
    }

    #[test]
    fn status_codes_are_found_only_where_they_stand_alone() {
        assert_eq!(enhanced_status("said: 550 5.1.1 no"), Some("5.1.1"));
        assert_eq!(enhanced_status("5.7.26 unauthenticated"), Some("5.7.26"));
        assert_eq!(enhanced_status("ends with 4.4.1."), Some("4.4.1"));
        assert_eq!(enhanced_status("version 2.0.0.1 only"), None);
        assert_eq!(enhanced_status("v5.1.1 x"), None);
        assert_eq!(enhanced_status("5.1234.1 x"), None);
        assert_eq!(enhanced_status("host 192.0.2.1 and 5.1.1"), Some("5.1.1"));
        assert_eq!(enhanced_status("3.1.1 x"), None);
        assert_eq!(enhanced_status("5.1.1a"), None);
        assert_eq!(smtp_reply("550 5.1.1 no"), Some("550 5.1.1 no"));
        assert_eq!(
            smtp_reply("host mx.test[192.0.2.1] said: 554 go away (in reply to end of DATA)"),
            Some("554 go away (in reply to end of DATA)")
        );
        assert_eq!(
            smtp_reply("expired; last error: 421 4.7.0 later"),
            Some("421 4.7.0 later")
        );
        assert_eq!(
            smtp_reply("cannot write: Not a directory (os error 20)"),
            None
        );
        assert_eq!(smtp_reply("waited 250 seconds"), None);
        assert_eq!(
            remote_mta("mx.test said: 554 x"),
            Some(("mx.test", None, None))
        );
        assert_eq!(remote_mta("554 x"), None);
        assert_eq!(parse("451 4.3.0 later").status_for(b'5'), "5.0.0");
        assert_eq!(parse("451 4.3.0 later").status_for(b'4'), "4.3.0");
        assert_eq!(remote_mta("a;b said: 554 x"), None);
    }
}
