//! EHLO capabilities: what a server's `250` reply to EHLO offers.
//!
//! The first line is the server's domain and a greeting; every other line is an
//! extension keyword and its parameters (RFC 5321 §4.1.1.1). Keywords are compared
//! without regard to letter case. Lines that do not start with a valid keyword are
//! ignored. The old form `AUTH=LOGIN PLAIN` (sent by some servers for pre-RFC 2554
//! clients) counts as `AUTH LOGIN PLAIN`.
//!
//! # Security
//! The reply has already been bounded by the [reply parser](super::reply); here a SIZE
//! that is not a number, or that overflows, counts as "no fixed limit" (as `SIZE 0` does),
//! SASL mechanism names that are not RFC 4422 names are dropped, and at most
//! [`MAX_AUTH_MECHANISMS`] are kept.
//!
//! # Standards
//! RFC 5321 §4.1.1.1 (EHLO), RFC 1870 (SIZE), RFC 4954 (AUTH), RFC 4422 §3.1 (mechanism
//! names), RFC 8689 (REQUIRETLS), RFC 3030 (CHUNKING, BINARYMIME), RFC 2920 (PIPELINING),
//! RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3207 (STARTTLS), RFC 3461 (DSN),
//! RFC 2034 (ENHANCEDSTATUSCODES).

use super::reply::Reply;

/// Most SASL mechanisms kept from an AUTH line.
pub const MAX_AUTH_MECHANISMS: usize = 32;

/// An extension this crate has no field for, kept by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The keyword in upper case.
    pub keyword: String,
    /// The parameters as sent, split at spaces.
    pub params: Vec<String>,
}

/// The extensions a server offered in its EHLO reply. `Default` is what a server that
/// only answered HELO offers: nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The domain (or address literal) the server named on the first line.
    pub domain: String,
    /// SIZE offered, with its limit in octets; 0 means no fixed limit (also when the
    /// number is missing or unreadable).
    pub size: Option<u64>,
    /// SASL mechanisms offered with AUTH, in upper case, without duplicates.
    pub auth: Vec<String>,
    pub pipelining: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    pub binarymime: bool,
    pub starttls: bool,
    pub dsn: bool,
    pub enhanced_status_codes: bool,
    pub requiretls: bool,
    /// Every other keyword, in the order offered.
    pub other: Vec<Extension>,
}

impl Capabilities {
    /// The capabilities in a reply to EHLO (whatever its code; the caller checks that it
    /// was 250).
    pub fn from_reply(reply: &Reply) -> Capabilities {
        Capabilities::from_lines(&reply.lines)
    }

    /// The capabilities in the text of the lines of an EHLO reply (code and separator
    /// removed, as in [`Reply::lines`]).
    pub fn from_lines<S: AsRef<str>>(lines: &[S]) -> Capabilities {
        let mut c = Capabilities::default();
        let mut it = lines.iter().map(AsRef::as_ref);
        c.domain = it
            .next()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("")
            .to_string();
        for line in it {
            c.add_line(line);
        }
        c
    }

    fn add_line(&mut self, line: &str) {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { return };
        let (keyword, inline) = match first.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("AUTH") => (k, Some(v)),
            _ => (first, None),
        };
        if !is_keyword(keyword) {
            return;
        }
        let keyword = keyword.to_ascii_uppercase();
        let params: Vec<&str> = inline.into_iter().chain(words).collect();
        match keyword.as_str() {
            "SIZE" => {
                let limit = params.first().and_then(|n| n.parse::<u64>().ok());
                self.size = Some(limit.unwrap_or(0));
            }
            "AUTH" => self.add_mechanisms(&params),
            "PIPELINING" => self.pipelining = true,
            "8BITMIME" => self.eight_bit_mime = true,
            "SMTPUTF8" => self.smtputf8 = true,
            "CHUNKING" => self.chunking = true,
            "BINARYMIME" => self.binarymime = true,
            "STARTTLS" => self.starttls = true,
            "DSN" => self.dsn = true,
            "ENHANCEDSTATUSCODES" => self.enhanced_status_codes = true,
            "REQUIRETLS" => self.requiretls = true,
            _ => self.other.push(Extension {
                keyword,
                params: params.iter().map(|p| p.to_string()).collect(),
            }),
        }
    }

    fn add_mechanisms(&mut self, params: &[&str]) {
        for m in params.iter().filter(|m| is_mechanism(m)) {
            let m = m.to_ascii_uppercase();
            if self.auth.len() < MAX_AUTH_MECHANISMS && !self.auth.contains(&m) {
                self.auth.push(m);
            }
        }
    }

    /// The SIZE limit, when the server declared one (RFC 1870 §4: 0 is no limit).
    pub fn size_limit(&self) -> Option<u64> {
        self.size.filter(|&n| n > 0)
    }

    /// Whether AUTH offers `mechanism` (any letter case).
    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }

    /// Whether `keyword` was offered, known or not (any letter case).
    pub fn offers(&self, keyword: &str) -> bool {
        let known = match keyword.to_ascii_uppercase().as_str() {
            "SIZE" => self.size.is_some(),
            "AUTH" => !self.auth.is_empty(),
            "PIPELINING" => self.pipelining,
            "8BITMIME" => self.eight_bit_mime,
            "SMTPUTF8" => self.smtputf8,
            "CHUNKING" => self.chunking,
            "BINARYMIME" => self.binarymime,
            "STARTTLS" => self.starttls,
            "DSN" => self.dsn,
            "ENHANCEDSTATUSCODES" => self.enhanced_status_codes,
            "REQUIRETLS" => self.requiretls,
            _ => false,
        };
        known
            || self
                .other
                .iter()
                .any(|e| e.keyword.eq_ignore_ascii_case(keyword))
    }
}

/// RFC 5321 §4.1.1.1: `ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`.
fn is_keyword(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// RFC 4422 §3.1: 1 to 20 of upper-case letters, digits, `-` and `_` (any case accepted).
fn is_mechanism(s: &str) -> bool {
    (1..=20).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_keywords() {
        let c = Capabilities::from_lines(&[
            "mx.example.org Hello [192.0.2.1]",
            "PIPELINING",
            "size 10240000",
            "AUTH PLAIN LOGIN plain",
            "AUTH=CRAM-MD5",
            "8BITMIME",
            "XCLIENT NAME ADDR",
            "STARTTLS",
            "ENHANCEDSTATUSCODES",
            "-bad keyword",
            "",
        ]);
        assert_eq!(c.domain, "mx.example.org");
        assert_eq!(c.size_limit(), Some(10_240_000));
        assert_eq!(c.auth, vec!["PLAIN", "LOGIN", "CRAM-MD5"]);
        assert!(c.pipelining && c.eight_bit_mime && c.starttls && c.enhanced_status_codes);
        assert!(!c.chunking && !c.dsn && !c.smtputf8 && !c.requiretls && !c.binarymime);
        assert_eq!(
            c.other,
            vec![Extension {
                keyword: "XCLIENT".into(),
                params: vec!["NAME".into(), "ADDR".into()]
            }]
        );
        assert!(c.offers("xclient") && c.offers("auth") && !c.offers("DSN"));
        assert!(c.offers_auth("login"));
    }

    #[test]
    fn size_without_a_usable_number_is_no_limit() {
        for l in ["SIZE", "SIZE 0", "SIZE abc", "SIZE 99999999999999999999999"] {
            let c = Capabilities::from_lines(&["x", l]);
            assert_eq!((c.size, c.size_limit()), (Some(0), None), "{l}");
        }
        assert_eq!(Capabilities::from_lines(&["x"]).size, None);
    }

    #[test]
    fn mechanisms_are_bounded() {
        let many: String = (0..100).map(|i| format!(" M{i}")).collect();
        let c =
            Capabilities::from_lines(&["x".to_string(), format!("AUTH{many} {}", "A".repeat(21))]);
        assert_eq!(c.auth.len(), MAX_AUTH_MECHANISMS);
    }
}
