//! DSN parameters (RFC 3461 §4): RET, ENVID, NOTIFY, ORCPT and the xtext encoding.
//!
//! # Security
//! DSN parameter values come back to the sender in bounces and go onward to the next
//! hop, so they are checked here once: xtext must be well formed; ENVID must decode to
//! printable US-ASCII and ORCPT to printable UTF-8 (no CR, LF, NUL or other control
//! character can reach a header), ENVID is at most 100 characters and ORCPT at most
//! 500, the limits RFC 3461 §5.4 asks servers to accept.
//!
//! # Standards
//! RFC 3461 §4 (parameters, xtext). RFC 6533 §3 (internationalised ORCPT): the
//! `utf-8` address type in all three forms (utf-8-addr-xtext with `\x{HEX}` escapes,
//! utf-8-addr-unitext, plain UTF-8 mailbox) is accepted, and so is the `rfc822` type
//! whose xtext decodes to UTF-8 (what Postfix sends). Onward, [`Orcpt::relay_value`]
//! writes unitext when the transaction carries `SMTPUTF8` and downgrades to
//! utf-8-addr-xtext otherwise.

use std::fmt;

use crate::command::CommandError;

/// RFC 3461 §4.3 RET: return the full message, or only its headers, in a failure report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }

    /// `FULL` or `HDRS`, in any letter case.
    pub fn parse(s: &str) -> Option<Ret> {
        if s.eq_ignore_ascii_case("FULL") {
            Some(Ret::Full)
        } else if s.eq_ignore_ascii_case("HDRS") {
            Some(Ret::Hdrs)
        } else {
            None
        }
    }
}

/// RFC 3461 §4.1 NOTIFY: the events the sender wants a report for. No event at all is
/// `NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    pub fn is_never(self) -> bool {
        self == Notify::NEVER
    }

    /// `NEVER`, or a comma-separated list of `SUCCESS`, `FAILURE` and `DELAY`, in any
    /// letter case. The error is the text for the client.
    pub fn parse(s: &str) -> Result<Notify, &'static str> {
        const USAGE: &str =
            "NOTIFY must be NEVER or a comma-separated list of SUCCESS, FAILURE and DELAY";
        if s.eq_ignore_ascii_case("NEVER") {
            return Ok(Notify::NEVER);
        }
        let mut n = Notify::NEVER;
        for word in s.split(',') {
            let flag = if word.eq_ignore_ascii_case("SUCCESS") {
                &mut n.success
            } else if word.eq_ignore_ascii_case("FAILURE") {
                &mut n.failure
            } else if word.eq_ignore_ascii_case("DELAY") {
                &mut n.delay
            } else if word.eq_ignore_ascii_case("NEVER") {
                return Err("NOTIFY=NEVER cannot be combined with other values");
            } else {
                return Err(USAGE);
            };
            if *flag {
                return Err("NOTIFY names the same event twice");
            }
            *flag = true;
        }
        Ok(n)
    }
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            return f.write_str("NEVER");
        }
        let words = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        let on: Vec<&str> = words.iter().filter(|(b, _)| *b).map(|(_, w)| *w).collect();
        f.write_str(&on.join(","))
    }
}

/// Which parameter an xtext belongs to, so that errors can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XtextField {
    Envid,
    Orcpt,
}

/// RFC 3461 §4 xtext, checked: printable ASCII other than `+` and `=`, and `+XX` (two
/// upper-case hex digits) for any other octet. An ENVID must decode to printable
/// US-ASCII (graphic characters and space); an ORCPT address may also decode to UTF-8
/// (RFC 6533 §3), but never to a control character. The encoded form is kept, so that
/// it can be relayed exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xtext(String);

impl Xtext {
    /// Check `s` as the xtext value of `field`. The error is the text for the client.
    pub fn parse(s: &str, field: XtextField) -> Result<Xtext, &'static str> {
        let b = s.as_bytes();
        let mut i = 0;
        let mut non_ascii = false;
        while i < b.len() {
            match b[i] {
                b'+' => {
                    let v = hex_pair(b, i + 1).ok_or(xtext_error(field, 0))?;
                    let utf8_ok = field == XtextField::Orcpt && v >= 0x80;
                    if !(0x20..=0x7e).contains(&v) && !utf8_ok {
                        return Err(xtext_error(field, 2));
                    }
                    non_ascii |= v >= 0x80;
                    i += 3;
                }
                b'!'..=b'~' if b[i] != b'=' => i += 1,
                _ => return Err(xtext_error(field, 1)),
            }
        }
        let x = Xtext(s.to_string());
        if non_ascii && !is_printable_utf8(&x.decoded_bytes()) {
            return Err(xtext_error(field, 2));
        }
        Ok(x)
    }

    /// Encode printable text as xtext. Other characters become `+XX` per UTF-8 octet.
    pub fn encode(s: &str) -> Xtext {
        let mut out = String::with_capacity(s.len());
        for &c in s.as_bytes() {
            if (b'!'..=b'~').contains(&c) && c != b'+' && c != b'=' {
                out.push(c as char);
            } else {
                out.push_str(&format!("+{c:02X}"));
            }
        }
        Xtext(out)
    }

    /// The encoded form, as on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The decoded text (printable US-ASCII, or for ORCPT printable UTF-8: checked by
    /// [`Xtext::parse`]).
    pub fn decoded(&self) -> String {
        String::from_utf8_lossy(&self.decoded_bytes()).into_owned()
    }

    fn decoded_bytes(&self) -> Vec<u8> {
        let b = self.0.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = if b[i] == b'+' {
                hex_pair(b, i + 1)
            } else {
                None
            };
            match hex {
                Some(v) => {
                    out.push(v);
                    i += 3;
                }
                None => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        }
        out
    }
}

impl fmt::Display for Xtext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The octet written as two upper-case hex digits at `b[i..i + 2]`.
fn hex_pair(b: &[u8], i: usize) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    Some(digit(*b.get(i)?)? << 4 | digit(*b.get(i + 1)?)?)
}

fn xtext_error(field: XtextField, kind: u8) -> &'static str {
    match (field, kind) {
        (XtextField::Envid, 0) => "ENVID: '+' must be followed by two upper-case hex digits",
        (XtextField::Envid, 1) => {
            "ENVID: only printable ASCII other than '+' and '=' may appear unencoded"
        }
        (XtextField::Envid, _) => "ENVID must decode to printable US-ASCII",
        (XtextField::Orcpt, 0) => "ORCPT: '+' must be followed by two upper-case hex digits",
        (XtextField::Orcpt, 1) => {
            "ORCPT: only printable ASCII other than '+' and '=' may appear unencoded"
        }
        (XtextField::Orcpt, _) => "ORCPT must decode to printable US-ASCII or UTF-8",
    }
}

/// RFC 3461 §4.2 ORCPT: `addr-type;address`, e.g. `rfc822;bob@example.org` or (RFC 6533
/// §3) `utf-8;jürgen@example.org`. The address is not required to follow the syntax of
/// its type (the sender may have been given it in another mail system); it is only
/// carried back and forth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orcpt {
    /// The address type as received (compare it case-insensitively).
    pub addr_type: String,
    pub address: OrcptAddress,
}

/// The address part of an ORCPT, as received (xtext, or for the `utf-8` type one of the
/// RFC 6533 forms) and decoded to Unicode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrcptAddress {
    raw: String,
    decoded: String,
}

impl OrcptAddress {
    /// The encoded form, as received.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The decoded address: printable US-ASCII or UTF-8, never a control character.
    pub fn decoded(&self) -> String {
        self.decoded.clone()
    }
}

impl fmt::Display for OrcptAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Orcpt {
    /// Longest ORCPT value accepted (RFC 3461 §5.4).
    pub const MAX_LEN: usize = 500;

    /// Parse an ORCPT value. The error is the text for the client.
    pub fn parse(s: &str) -> Result<Orcpt, &'static str> {
        if s.len() > Orcpt::MAX_LEN {
            return Err("ORCPT is longer than 500 characters");
        }
        let usage = "ORCPT must be addr-type;address, e.g. ORCPT=rfc822;bob@example.org";
        let (t, a) = s.split_once(';').ok_or(usage)?;
        if t.is_empty() || !t.bytes().all(is_atext) {
            return Err(usage);
        }
        if a.is_empty() {
            return Err("ORCPT has no address after the ';'");
        }
        let decoded = if t.eq_ignore_ascii_case("utf-8") {
            decode_utf8_addr(a)?
        } else {
            Xtext::parse(a, XtextField::Orcpt)?.decoded()
        };
        Ok(Orcpt {
            addr_type: t.to_string(),
            address: OrcptAddress {
                raw: a.to_string(),
                decoded,
            },
        })
    }

    /// The value to pass on in `RCPT ... ORCPT=` (RFC 6533 §3). An ASCII address of any
    /// type goes on as received. An internationalised `rfc822` or `utf-8` address goes
    /// as `utf-8;` utf-8-addr-unitext when the transaction carries `SMTPUTF8`
    /// (`smtputf8`), and downgraded to utf-8-addr-xtext (pure ASCII) when it does not.
    pub fn relay_value(&self, smtputf8: bool) -> String {
        let d = &self.address.decoded;
        let utf8 = self.addr_type.eq_ignore_ascii_case("utf-8");
        let rfc822 = self.addr_type.eq_ignore_ascii_case("rfc822");
        let international = utf8 || (rfc822 && !d.is_ascii());
        if !international {
            return self.to_string();
        }
        format!("utf-8;{}", utf8_addr_encode(d, smtputf8))
    }

    /// The value for a report's `Original-Recipient` field (RFC 3464 §2.3.1, RFC 6533
    /// §3), always ASCII: `type;address` for an ASCII address, `utf-8;` with
    /// utf-8-addr-xtext otherwise.
    pub fn report_value(&self) -> String {
        let d = &self.address.decoded;
        if d.is_ascii() && self.addr_type.is_ascii() {
            format!("{};{}", self.addr_type, d)
        } else {
            format!("utf-8;{}", utf8_addr_encode(d, false))
        }
    }
}

/// The parameter value as received: `addr-type;address`.
impl fmt::Display for Orcpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};{}", self.addr_type, self.address)
    }
}

/// Bytes that are valid UTF-8 without control characters.
fn is_printable_utf8(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(|s| !s.chars().any(char::is_control))
}

/// RFC 6533 §3 utf-8-enc-addr: any of utf-8-addr-xtext, utf-8-addr-unitext or a UTF-8
/// mailbox. `\x{HEX}` (EmbeddedUnicodeChar) is decoded; a backslash not starting one
/// is taken literally (a mailbox may quote with it). Control characters and spaces are
/// refused, encoded or not.
fn decode_utf8_addr(a: &str) -> Result<String, &'static str> {
    const BAD: &str = "ORCPT must decode to printable US-ASCII or UTF-8";
    let mut out = String::with_capacity(a.len());
    let mut rest = a;
    loop {
        let mut chars = rest.chars();
        let Some(c) = chars.next() else { break };
        if let Some((ch, after)) = embedded_char(rest) {
            if ch.is_control() || ch == ' ' {
                return Err(BAD);
            }
            out.push(ch);
            rest = after;
            continue;
        }
        if c.is_control() || c == ' ' {
            return Err(BAD);
        }
        out.push(c);
        rest = chars.as_str();
    }
    Ok(out)
}

/// `\x{HEXPOINT}` at the start of `s`: the character and what follows it.
fn embedded_char(s: &str) -> Option<(char, &str)> {
    let body = s.strip_prefix("\\x{")?;
    let (hex, after) = body.split_once('}')?;
    if hex.len() < 2 || hex.len() > 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
    Some((ch, after))
}

/// RFC 6533 §3: utf-8-addr-unitext (`unitext`: non-ASCII kept as UTF-8) or
/// utf-8-addr-xtext (ASCII only). Either way `+`, `=`, `\`, space and controls become
/// `\x{HEX}`.
fn utf8_addr_encode(d: &str, unitext: bool) -> String {
    let mut out = String::with_capacity(d.len());
    for c in d.chars() {
        let plain = matches!(c, '!'..='~') && !matches!(c, '+' | '=' | '\\');
        if plain || (unitext && !c.is_ascii() && !c.is_control()) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", c as u32));
        }
    }
    out
}

/// RFC 5322 §3.2.3 atext.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// Longest ENVID value accepted (RFC 3461 §5.4).
pub const MAX_ENVID: usize = 100;

pub(crate) fn envid(v: &str) -> Result<Xtext, CommandError> {
    if v.is_empty() {
        return Err(CommandError::BadParameter("ENVID must not be empty"));
    }
    if v.len() > MAX_ENVID {
        return Err(CommandError::BadParameter(
            "ENVID is longer than 100 characters",
        ));
    }
    Xtext::parse(v, XtextField::Envid).map_err(CommandError::BadParameter)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const JUERGEN: &str = "j\u{fc}rgen@example.de";

    #[test]
    fn rfc822_xtext_of_utf8_is_accepted_as_postfix_sends_it() {
        let o = Orcpt::parse("rfc822;j+C3+BCrgen@example.de").unwrap();
        assert_eq!(o.address.decoded(), JUERGEN);
        assert_eq!(o.to_string(), "rfc822;j+C3+BCrgen@example.de");
    }

    #[test]
    fn rfc6533_forms_are_accepted() {
        for v in [
            "utf-8;j\u{fc}rgen@example.de",
            "UTF-8;j\\x{FC}rgen@example.de",
            "utf-8;j\\x{fc}rgen@example.de",
        ] {
            let o = Orcpt::parse(v).unwrap();
            assert_eq!(o.address.decoded(), JUERGEN, "{v}");
            assert_eq!(o.to_string(), v, "kept as received");
        }
        let o = Orcpt::parse("utf-8;a\\x{2B}b\\x{3D}c@x").unwrap();
        assert_eq!(o.address.decoded(), "a+b=c@x");
    }

    #[test]
    fn controls_are_refused_in_every_form() {
        for v in [
            "rfc822;a+0Ab@x",
            "rfc822;a+C2+85b@x", // U+0085 NEL, a C1 control
            "rfc822;a+C3b@x",    // not UTF-8
            "utf-8;a\\x{0A}b@x",
            "utf-8;a\\x{85}b@x",
            "utf-8;a\u{85}b@x",
        ] {
            assert!(Orcpt::parse(v).is_err(), "{v}");
        }
        // ENVID stays US-ASCII.
        assert!(Xtext::parse("a+C3+BC", XtextField::Envid).is_err());
    }

    #[test]
    fn relayed_as_unitext_with_smtputf8_and_as_xtext_without() {
        for v in [
            "rfc822;j+C3+BCrgen@example.de",
            "utf-8;j\u{fc}rgen@example.de",
        ] {
            let o = Orcpt::parse(v).unwrap();
            assert_eq!(o.relay_value(true), "utf-8;j\u{fc}rgen@example.de");
            assert_eq!(o.relay_value(false), "utf-8;j\\x{FC}rgen@example.de");
            assert_eq!(o.report_value(), "utf-8;j\\x{FC}rgen@example.de");
            // What we send, the next hop (us included) parses back to the same address.
            for sent in [o.relay_value(true), o.relay_value(false)] {
                assert_eq!(Orcpt::parse(&sent).unwrap().address.decoded(), JUERGEN);
            }
        }
        let plus = Orcpt::parse("utf-8;j\u{fc}+tag=1@x").unwrap();
        assert_eq!(
            plus.relay_value(false),
            "utf-8;j\\x{FC}\\x{2B}tag\\x{3D}1@x"
        );
    }

    #[test]
    fn ascii_orcpt_is_relayed_as_received() {
        let o = Orcpt::parse("rfc822;bob+2Btag@example.org").unwrap();
        assert_eq!(o.relay_value(true), "rfc822;bob+2Btag@example.org");
        assert_eq!(o.relay_value(false), "rfc822;bob+2Btag@example.org");
        assert_eq!(o.report_value(), "rfc822;bob+tag@example.org");
    }
}
