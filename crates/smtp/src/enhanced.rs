//! Enhanced mail system status codes (RFC 3463): `class.subject.detail`, e.g. `5.1.1`.
//!
//! # Standards
//! RFC 3463 §2: `class = "2" / "4" / "5"`, `subject = 1*3digit`, `detail = 1*3digit`.
//! RFC 2034 §4 carries them at the start of reply text; RFC 5248 is the registry.

use std::fmt;

/// One enhanced status code. Leading zeros are not kept (`5.01.1` reads as `5.1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    /// A code, if `class` is 2, 4 or 5 and `subject` and `detail` have at most 3 digits.
    pub fn new(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
        let ok = matches!(class, 2 | 4 | 5) && subject <= 999 && detail <= 999;
        ok.then_some(EnhancedCode {
            class,
            subject,
            detail,
        })
    }

    /// Exactly one code and nothing else: `"5.7.1"`.
    pub fn parse(s: &str) -> Option<EnhancedCode> {
        let mut parts = s.split('.');
        let class = match parts.next()? {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        let subject = number(parts.next()?)?;
        let detail = number(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        EnhancedCode::new(class, subject, detail)
    }

    /// A code at the start of reply text, followed by a space or the end of the text.
    /// Returns the code and the text after it (without the separating space).
    pub fn parse_prefix(text: &str) -> Option<(EnhancedCode, &str)> {
        let (word, rest) = match text.split_once(' ') {
            Some((w, r)) => (w, r),
            None => (text, ""),
        };
        Some((EnhancedCode::parse(word)?, rest))
    }

    pub fn is_success(self) -> bool {
        self.class == 2
    }
    pub fn is_transient(self) -> bool {
        self.class == 4
    }
    pub fn is_permanent(self) -> bool {
        self.class == 5
    }
}

/// 1 to 3 ASCII digits.
fn number(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3463_codes() {
        assert_eq!(EnhancedCode::parse("5.1.1"), EnhancedCode::new(5, 1, 1));
        assert_eq!(EnhancedCode::parse("4.7.999"), EnhancedCode::new(4, 7, 999));
        assert_eq!(
            EnhancedCode::parse("2.0.0").map(|c| c.to_string()),
            Some("2.0.0".into())
        );
        for bad in [
            "", "5", "5.1", "3.1.1", "5.1.1.1", "5..1", "5.1000.1", "5.1.x", "+5.1.1", "5.1.-1",
        ] {
            assert_eq!(EnhancedCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefix_needs_a_space_or_the_end() {
        let (c, rest) = EnhancedCode::parse_prefix("5.7.1 Relaying denied").expect("code");
        assert_eq!((c.to_string().as_str(), rest), ("5.7.1", "Relaying denied"));
        assert!(EnhancedCode::parse_prefix("5.7.1").is_some());
        assert!(EnhancedCode::parse_prefix("5.7.1: no").is_none());
        assert!(EnhancedCode::parse_prefix("mx.example.org").is_none());
    }
}
