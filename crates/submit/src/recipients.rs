//! Reading addresses: recipient arguments, the `To:`, `Cc:` and `Bcc:` fields of `-t`,
//! and the checks every address passes before anything is sent.
//!
//! Address lists are read by mail-parser (RFC 5322 §3.4 with its obsolete forms): display
//! names with quoted commas, comments, groups (`Team: a@x, b@y;`), encoded words
//! (RFC 2047) and folded fields. Only the addresses are kept; names are never used.
//!
//! # Security
//! Whatever an address list yields is checked as an SMTP mailbox ([`check_address`])
//! before it reaches an SMTP command, so no CR/LF or `>` can smuggle a command.

use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};

use crate::error::UsageError;

/// The addresses of an RFC 5322 address list (`"A, B" <a@x>, b@y (c), G: c@z;`), as a
/// field value (folded or not) or a command-line argument (which may hold several,
/// comma-separated). Empty groups (`undisclosed-recipients:;`) yield nothing.
pub fn address_list(value: &[u8]) -> Vec<String> {
    // The parser reads up to the end of the field: a line end not followed by a space.
    let mut field = value.to_vec();
    if !field.ends_with(b"\n") {
        field.extend_from_slice(b"\r\n");
    }
    addresses_of(&MessageStream::new(&field).parse_address())
}

/// The addresses in a parsed address field.
pub(crate) fn addresses_of(value: &HeaderValue<'_>) -> Vec<String> {
    let HeaderValue::Address(list) = value else {
        return Vec::new();
    };
    let addrs: Vec<&mail_parser::Addr<'_>> = match list {
        Address::List(l) => l.iter().collect(),
        Address::Group(groups) => groups.iter().flat_map(|g| g.addresses.iter()).collect(),
    };
    addrs
        .into_iter()
        // A bare word (`root`) is read as a name without an address; as sendmail does,
        // take it as an unqualified address. Anything else there (`Joe Smith`) then fails
        // the mailbox check loudly instead of being dropped.
        .filter_map(|a| a.address.as_deref().or(a.name.as_deref()))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// `a` as is when it has a domain, else `a@hostname`.
pub fn qualify(a: &str, hostname: &str) -> String {
    if a.contains('@') {
        a.to_string()
    } else {
        format!("{a}@{hostname}")
    }
}

/// `a` must be a usable SMTP mailbox (the empty sender `""` is allowed).
pub fn check_address(a: &str, what: &'static str) -> Result<(), UsageError> {
    if a.is_empty() && what == "sender" {
        return Ok(());
    }
    postern_smtp::address::parse_mailbox(a)
        .map(|_| ())
        .map_err(|e| UsageError::BadAddress {
            what,
            address: a.to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            address_list(br#""Smith, J" <j@x.test>, b@y.test (Bee), G: c@z.test, d@z.test;"#),
            s(&["j@x.test", "b@y.test", "c@z.test", "d@z.test"])
        );
        assert_eq!(address_list(b"a@x, b@y"), s(&["a@x", "b@y"]));
        assert_eq!(address_list(b"root"), s(&["root"]));
        assert!(address_list(b"undisclosed-recipients:;").is_empty());
        assert!(address_list(b"").is_empty());
        assert_eq!(address_list(b"root, \"admin\""), s(&["root", "admin"]));
        assert_eq!(address_list(b"Joe Smith"), s(&["Joe Smith"]));
    }

    #[test]
    fn nasty_address_lists() {
        // Quoted commas and escaped quotes in display names, comments with commas.
        assert_eq!(
            address_list(br#""Doe, \"JD\" John" <jd@x.test>, (a, comment) e@x.test"#),
            s(&["jd@x.test", "e@x.test"])
        );
        // Encoded words with an encoded comma in the name.
        assert_eq!(
            address_list(b"=?utf-8?q?Smith=2C_J=C3=BCrgen?= <js@x.test>, f@x.test"),
            s(&["js@x.test", "f@x.test"])
        );
        // Folded over several lines, with tabs.
        assert_eq!(
            address_list(b"a@x.test,\r\n\tb@x.test,\r\n  \"C, c\"\r\n <c@x.test>\r\n"),
            s(&["a@x.test", "b@x.test", "c@x.test"])
        );
        // 8-bit (raw UTF-8) display names.
        assert_eq!(
            address_list("Jürgen Groß <jg@x.test>, Zoë <z@x.test>".as_bytes()),
            s(&["jg@x.test", "z@x.test"])
        );
        // Two groups, one empty, then a plain address.
        assert_eq!(
            address_list(b"A: a@x.test, b@x.test;, Nobody:;, c@x.test"),
            s(&["a@x.test", "b@x.test", "c@x.test"])
        );
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("a@x.test", "recipient").is_ok());
        assert!(check_address("", "sender").is_ok());
        assert!(check_address("", "recipient").is_err());
        assert!(check_address("a@x>\r\nRCPT TO:<b@y", "recipient").is_err());
        assert_eq!(qualify("root", "h.test"), "root@h.test");
        assert_eq!(qualify("a@b", "h.test"), "a@b");
    }
}
