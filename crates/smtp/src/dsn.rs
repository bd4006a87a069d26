//! DSN parameters (RFC 3461 §4): RET, ENVID, NOTIFY, ORCPT and the xtext encoding.
//!
//! # Security
//! DSN parameter values come back to the sender in bounces and go onward to the next
//! hop, so they are checked here once: xtext must be well formed and must decode to
//! printable US-ASCII (no CR, LF or NUL can reach a header), ENVID is at most 100
//! characters and ORCPT at most 500, the limits RFC 3461 §5.4 asks servers to accept.

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
/// upper-case hex digits) for any other octet. It must decode to printable US-ASCII
/// (graphic characters and space), which is all a report can carry. The encoded form
/// is kept, so that it can be relayed exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xtext(String);

impl Xtext {
    /// Check `s` as the xtext value of `field`. The error is the text for the client.
    pub fn parse(s: &str, field: XtextField) -> Result<Xtext, &'static str> {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => {
                    let v = hex_pair(b, i + 1).ok_or(xtext_error(field, 0))?;
                    if !(0x20..=0x7e).contains(&v) {
                        return Err(xtext_error(field, 2));
                    }
                    i += 3;
                }
                b'!'..=b'~' if b[i] != b'=' => i += 1,
                _ => return Err(xtext_error(field, 1)),
            }
        }
        Ok(Xtext(s.to_string()))
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

    /// The decoded text (printable US-ASCII: checked by [`Xtext::parse`]).
    pub fn decoded(&self) -> String {
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
        String::from_utf8_lossy(&out).into_owned()
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
        (XtextField::Orcpt, _) => "ORCPT must decode to printable US-ASCII",
    }
}

/// RFC 3461 §4.2 ORCPT: `addr-type;xtext`, e.g. `rfc822;bob@example.org`. The address
/// is not required to follow the syntax of its type (the sender may have been given
/// it in another mail system); it is only carried back and forth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orcpt {
    /// The address type as received (compare it case-insensitively).
    pub addr_type: String,
    pub address: Xtext,
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
        Ok(Orcpt {
            addr_type: t.to_string(),
            address: Xtext::parse(a, XtextField::Orcpt)?,
        })
    }
}

/// The parameter value as received: `addr-type;xtext`.
impl fmt::Display for Orcpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};{}", self.addr_type, self.address)
    }
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
