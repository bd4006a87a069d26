//! Reading a recipient's last result: the enhanced status code, the SMTP reply and the
//! remote server it contains, and the RFC 3464 Status that follows from them.
//!
//! # Standards
//! RFC 3463 (enhanced status codes; `4.4.7`, delivery time expired), RFC 3464 §2.3.4
//! (Status) and §2.3.6 (Diagnostic-Code).

use super::Action;
use crate::record::EXPIRED;

/// The first enhanced status code (RFC 3463 `class.subject.detail`) in `text`, when it
/// stands alone (not inside a version number or an address).
pub fn enhanced_status(text: &str) -> Option<&str> {
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

/// The SMTP reply inside a failure reason (`... said: 550 5.1.1 ...`): from the reply
/// code to the end. A three-digit number counts as a reply code at the start of the
/// reason, after `said: `, or when an enhanced status code follows it.
pub fn smtp_reply(reason: &str) -> Option<&str> {
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

/// The remote server named in a failure reason (`host mx.example.net[192.0.2.1] said:
/// ...` gives `mx.example.net`).
pub fn remote_mta(reason: &str) -> Option<&str> {
    let (before, _) = reason.split_once(" said: ")?;
    let word = before.rsplit(' ').next()?;
    let host = word.split('[').next()?;
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    ok.then_some(host)
}

/// The RFC 3464 Status of a recipient: the enhanced code of its last answer when it
/// fits the action, `4.4.7` (delivery time expired) for expiry, else `x.0.0`.
pub fn status(action: Action, reason: &str) -> String {
    if action == Action::Failed && reason.starts_with(EXPIRED) {
        return "4.4.7".into();
    }
    match enhanced_status(reason) {
        Some(s) if s.as_bytes()[0] == action.class() => s.to_string(),
        _ => format!("{}.0.0", action.class() as char),
    }
}
