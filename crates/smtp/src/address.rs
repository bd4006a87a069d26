//! Mail paths and mailboxes, RFC 5321 §4.1.2 (with RFC 6531 UTF-8 extensions).
//!
//! # Security
//! Source routes (`<@a,@b:user@c>`) are parsed and discarded, as RFC 5321 §4.1.1.3 and
//! Appendix C require. `%` and `!` are ordinary local-part characters here; nothing in
//! Postern interprets them as routing, so they can never cause relaying. Domains are
//! lower-cased so that relay decisions compare like with like.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3.
pub const MAX_PATH: usize = 256;

/// The domain part of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A host name, lower-cased (U-labels kept as UTF-8).
    Name(String),
    /// An address literal, `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    Literal(IpAddr),
}

impl Domain {
    pub fn is_ascii(&self) -> bool {
        match self {
            Domain::Name(n) => n.is_ascii(),
            Domain::Literal(_) => true,
        }
    }
    /// The name, for a host-name domain.
    pub fn name(&self) -> Option<&str> {
        match self {
            Domain::Name(n) => Some(n),
            Domain::Literal(_) => None,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(n) => f.write_str(n),
            Domain::Literal(IpAddr::V4(a)) => write!(f, "[{a}]"),
            Domain::Literal(IpAddr::V6(a)) => write!(f, "[IPv6:{a}]"),
        }
    }
}

/// A mailbox `local@domain`. `local` holds the local part's value (quotes and escapes
/// removed); [`fmt::Display`] quotes it again when needed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub local: String,
    pub domain: Domain,
}

impl Address {
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

/// MAIL FROM's path: an address or the null sender `<>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Address(Address),
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Address(a) => write!(f, "<{a}>"),
        }
    }
}

/// RCPT TO's path: an address or the special `<Postmaster>` (RFC 5321 §4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    Postmaster,
    Address(Address),
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<postmaster>"),
            ForwardPath::Address(a) => write!(f, "<{a}>"),
        }
    }
}

/// What is wrong with a path, for the reply text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// No `<`, or no `>`.
    NotAngleBracketed,
    Syntax(&'static str),
    TooLong(&'static str),
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::NotAngleBracketed => {
                f.write_str("address must be in angle brackets <...>")
            }
            AddressError::Syntax(s) => write!(f, "address syntax error: {s}"),
            AddressError::TooLong(s) => write!(f, "{s} too long"),
        }
    }
}

/// Parse a reverse-path at the start of `s` (after `MAIL FROM:`); returns the path and the
/// rest of the line (the ESMTP parameters).
pub fn parse_reverse_path(s: &str) -> Result<(ReversePath, &str), AddressError> {
    let s = s.trim_start_matches(' ');
    if let Some(rest) = s.strip_prefix("<>") {
        return Ok((ReversePath::Null, rest));
    }
    let (a, rest) = parse_path(s)?;
    Ok((ReversePath::Address(a), rest))
}

/// Parse a forward-path at the start of `s` (after `RCPT TO:`).
pub fn parse_forward_path(s: &str) -> Result<(ForwardPath, &str), AddressError> {
    let s = s.trim_start_matches(' ');
    if let Some(head) = s.get(..12)
        && head.eq_ignore_ascii_case("<postmaster>")
    {
        return Ok((ForwardPath::Postmaster, &s[12..]));
    }
    let (a, rest) = parse_path(s)?;
    Ok((ForwardPath::Address(a), rest))
}

/// Parse a whole mailbox `local@domain` (no brackets), as used in configuration.
pub fn parse_mailbox(s: &str) -> Result<Address, AddressError> {
    let mut c = Cursor { s, i: 0 };
    let a = c.mailbox()?;
    if c.i != s.len() {
        return Err(AddressError::Syntax(
            "unexpected characters after the address",
        ));
    }
    Ok(a)
}

/// Parse a domain name (no literal) as used in configuration; lower-cased.
pub fn parse_domain(s: &str) -> Result<String, AddressError> {
    let mut c = Cursor { s, i: 0 };
    let d = c.domain_name()?;
    if c.i != s.len() {
        return Err(AddressError::Syntax("unexpected characters in domain"));
    }
    Ok(d)
}

fn parse_path(s: &str) -> Result<(Address, &str), AddressError> {
    if !s.starts_with('<') {
        return Err(AddressError::NotAngleBracketed);
    }
    let mut c = Cursor { s, i: 1 };
    if c.peek() == Some('@') {
        c.source_route()?;
    }
    let a = c.mailbox()?;
    if c.peek() != Some('>') {
        return Err(AddressError::NotAngleBracketed);
    }
    if c.i - 1 > MAX_PATH {
        return Err(AddressError::TooLong("path"));
    }
    Ok((a, &s[c.i + 1..]))
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }

    /// `@a,@b:` — parsed for syntax and discarded (RFC 5321 §4.1.1.3).
    fn source_route(&mut self) -> Result<(), AddressError> {
        loop {
            if self.bump() != Some('@') {
                return Err(AddressError::Syntax("bad source route"));
            }
            self.domain_name()?;
            match self.bump() {
                Some(',') => continue,
                Some(':') => return Ok(()),
                _ => return Err(AddressError::Syntax("bad source route")),
            }
        }
    }

    fn mailbox(&mut self) -> Result<Address, AddressError> {
        let local = if self.peek() == Some('"') {
            self.quoted_string()?
        } else {
            self.dot_string()?
        };
        if local.len() > MAX_LOCAL_PART {
            return Err(AddressError::TooLong("local part"));
        }
        if self.bump() != Some('@') {
            return Err(AddressError::Syntax("missing @domain"));
        }
        let domain = if self.peek() == Some('[') {
            self.address_literal()?
        } else {
            Domain::Name(self.domain_name()?)
        };
        Ok(Address { local, domain })
    }

    fn dot_string(&mut self) -> Result<String, AddressError> {
        let start = self.i;
        let mut prev_dot = true;
        while let Some(c) = self.peek() {
            if c == '.' {
                if prev_dot {
                    return Err(AddressError::Syntax("empty atom in local part"));
                }
                prev_dot = true;
            } else if is_atext(c) {
                prev_dot = false;
            } else {
                break;
            }
            self.bump();
        }
        if self.i == start {
            return Err(AddressError::Syntax("empty local part"));
        }
        if prev_dot {
            return Err(AddressError::Syntax("local part ends with a dot"));
        }
        Ok(self.s[start..self.i].to_string())
    }

    fn quoted_string(&mut self) -> Result<String, AddressError> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(AddressError::Syntax("unterminated quoted string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c) if (' '..='~').contains(&c) => out.push(c),
                    _ => return Err(AddressError::Syntax("bad quoted pair")),
                },
                Some(c)
                    if c == ' '
                        || c == '!'
                        || ('#'..='[').contains(&c)
                        || (']'..='~').contains(&c)
                        || !c.is_ascii() =>
                {
                    out.push(c)
                }
                Some(_) => return Err(AddressError::Syntax("bad character in quoted string")),
            }
        }
    }

    fn domain_name(&mut self) -> Result<String, AddressError> {
        let start = self.i;
        loop {
            let label_start = self.i;
            while let Some(c) = self.peek() {
                if c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii() {
                    self.bump();
                } else {
                    break;
                }
            }
            let label = &self.s[label_start..self.i];
            if label.is_empty() {
                return Err(AddressError::Syntax("empty label in domain"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(AddressError::Syntax(
                    "domain label starts or ends with a hyphen",
                ));
            }
            if label.len() > 63 {
                return Err(AddressError::TooLong("domain label"));
            }
            if self.peek() == Some('.') {
                self.bump();
                continue;
            }
            break;
        }
        let d = &self.s[start..self.i];
        if d.len() > MAX_DOMAIN {
            return Err(AddressError::TooLong("domain"));
        }
        Ok(d.to_lowercase())
    }

    fn address_literal(&mut self) -> Result<Domain, AddressError> {
        self.bump();
        let start = self.i;
        let end = self.s[start..]
            .find(']')
            .ok_or(AddressError::Syntax("unterminated address literal"))?;
        let lit = &self.s[start..start + end];
        self.i = start + end + 1;
        let v6 = lit.get(..5).filter(|p| p.eq_ignore_ascii_case("IPv6:"));
        let ip = if v6.is_some() {
            lit[5..].parse::<Ipv6Addr>().map(IpAddr::V6).ok()
        } else {
            lit.parse::<Ipv4Addr>().map(IpAddr::V4).ok()
        };
        ip.map(Domain::Literal)
            .ok_or(AddressError::Syntax("bad address literal"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(s: &str) -> Result<(ForwardPath, &str), AddressError> {
        parse_forward_path(s)
    }
    fn addr(s: &str) -> Address {
        match fwd(s).unwrap().0 {
            ForwardPath::Address(a) => a,
            ForwardPath::Postmaster => panic!("postmaster"),
        }
    }

    #[test]
    fn plain_addresses() {
        let a = addr("<User.Name+tag@Example.COM>");
        assert_eq!(a.local, "User.Name+tag");
        assert_eq!(a.domain, Domain::Name("example.com".into()));
        assert_eq!(a.to_string(), "User.Name+tag@example.com");
        let (p, rest) = fwd("<a@b> NOTIFY=NEVER").unwrap();
        assert!(matches!(p, ForwardPath::Address(_)));
        assert_eq!(rest, " NOTIFY=NEVER");
    }

    #[test]
    fn null_sender_and_postmaster() {
        assert_eq!(parse_reverse_path("<>").unwrap().0, ReversePath::Null);
        assert_eq!(parse_reverse_path(" <> SIZE=10").unwrap().1, " SIZE=10");
        assert_eq!(fwd("<PostMaster>").unwrap().0, ForwardPath::Postmaster);
        assert!(fwd("<>").is_err());
    }

    #[test]
    fn quoted_local_parts() {
        let a = addr("<\"john smith\"@example.org>");
        assert_eq!(a.local, "john smith");
        assert_eq!(a.to_string(), "\"john smith\"@example.org");
        let a = addr("<\"a>b@c\"@example.org>");
        assert_eq!(a.local, "a>b@c");
        assert_eq!(a.domain.name(), Some("example.org"));
        let a = addr("<\"a\\\"b\"@x.org>");
        assert_eq!(a.local, "a\"b");
        assert_eq!(a.to_string(), "\"a\\\"b\"@x.org");
        // A quoted local part that needs no quotes is written plainly.
        assert_eq!(addr("<\"abc\"@x.org>").to_string(), "abc@x.org");
    }

    #[test]
    fn source_routes_are_ignored() {
        let a = addr("<@relay.example,@other.example:user@final.example>");
        assert_eq!(a.to_string(), "user@final.example");
        assert!(fwd("<@relay.example user@final.example>").is_err());
    }

    #[test]
    fn percent_and_bang_are_plain_characters() {
        let a = addr("<victim%elsewhere.example@local.example>");
        assert_eq!(a.local, "victim%elsewhere.example");
        assert_eq!(a.domain.name(), Some("local.example"));
        let a = addr("<elsewhere.example!victim@local.example>");
        assert_eq!(a.domain.name(), Some("local.example"));
    }

    #[test]
    fn literals() {
        assert_eq!(
            addr("<a@[192.0.2.1]>").domain,
            Domain::Literal("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            addr("<a@[IPv6:2001:db8::1]>").to_string(),
            "a@[IPv6:2001:db8::1]"
        );
        assert!(fwd("<a@[300.1.1.1]>").is_err());
        assert!(fwd("<a@[tag:stuff]>").is_err());
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "a@b",
            "<a@b",
            "<a.@b>",
            "<.a@b>",
            "<a..b@c>",
            "<a@>",
            "<a@b.>",
            "<a@-b.c>",
            "<a@b..c>",
            "<@b>",
            "<a b@c>",
            "<\"unterminated@c>",
            "<a@b_c>",
            "<a\u{1}@b>",
        ] {
            assert!(fwd(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn limits() {
        let long_local = format!("<{}@x.org>", "a".repeat(65));
        assert_eq!(
            fwd(&long_local).unwrap_err(),
            AddressError::TooLong("local part")
        );
        let long_label = format!("<a@{}.org>", "b".repeat(64));
        assert!(fwd(&long_label).is_err());
        let long_path = format!("<a@{}x.org>", "b.".repeat(130));
        assert!(fwd(&long_path).is_err());
    }

    #[test]
    fn utf8_addresses_parse_and_report_non_ascii() {
        let a = addr("<用户@例子.广告>");
        assert!(!a.is_ascii());
        assert!(addr("<a@b.c>").is_ascii());
    }

    #[test]
    fn config_helpers() {
        assert_eq!(parse_domain("Example.ORG").unwrap(), "example.org");
        assert!(parse_domain("example.org.").is_err());
        assert!(parse_domain("*.example.org").is_err());
        assert_eq!(parse_mailbox("a@b.c").unwrap().to_string(), "a@b.c");
    }
}
