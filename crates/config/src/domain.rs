//! Domain names in one comparable form: UTS #46 processing to A-labels, lower case, no
//! trailing dot. Every domain Postern compares (configured or received) should go
//! through [`normalize_domain`] first, so that `Bücher.example`, `bücher.example` and
//! `xn--bcher-kva.example` are one domain.
//!
//! # Security
//! Comparing domains in different forms is a bypass: a rule written for the Unicode form
//! does not see the `xn--` form, and ASCII-only case folding never matches an upper-case
//! non-ASCII letter. Configured domains are checked strictly ([`normalize_domain`]);
//! received ones are mapped leniently ([`normalize_received`]) because they must be
//! compared whatever they hold, and what cannot be mapped is kept (lower-cased) label by
//! label, so that a bad label on the left cannot hide the parent domain on the right.
//!
//! # Standards
//! UTS #46 (nontransitional processing, UseSTD3ASCIIRules for configured names,
//! VerifyDnsLength); RFC 5890/5891 (A-labels and U-labels); RFC 6531 (UTF-8 domains in
//! SMTP).

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Why a configured domain cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid domain name under UTS #46 (IDNA): {0:?}")]
pub struct DomainError(pub String);

/// `domain` as lower-case A-labels without a trailing dot, checked strictly (letters,
/// digits and hyphens; label and name lengths).
pub fn normalize_domain(domain: &str) -> Result<String, DomainError> {
    Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::VerifyAllowRootDot,
        )
        .map(|a| a.trim_end_matches('.').to_string())
        .map_err(|_| DomainError(domain.to_string()))
}

/// A domain received from a peer, in the form [`normalize_domain`] gives configured ones
/// whenever it can be mapped at all; never fails.
pub fn normalize_received(domain: &str) -> String {
    let lenient = |s: &str| {
        Uts46::new()
            .to_ascii(
                s.as_bytes(),
                AsciiDenyList::EMPTY,
                Hyphens::Allow,
                DnsLength::Ignore,
            )
            .ok()
            .map(|a| a.into_owned())
    };
    let whole = lenient(domain).unwrap_or_else(|| {
        // Label by label (UTS #46 also treats the ideographic and full-width full stops
        // as dots), keeping what cannot be mapped.
        domain
            .split(['.', '\u{3002}', '\u{ff0e}', '\u{ff61}'])
            .map(|label| lenient(label).unwrap_or_else(|| label.to_lowercase()))
            .collect::<Vec<_>>()
            .join(".")
    });
    whole.trim_end_matches('.').to_string()
}

/// A configured domain pattern: `example.org`, `.example.org` (any subdomain) or
/// `*.example.org`; the prefix is kept, the name normalised.
pub fn normalize_pattern(pattern: &str) -> Result<String, DomainError> {
    for prefix in ["*.", "."] {
        if let Some(rest) = pattern.strip_prefix(prefix) {
            return Ok(format!("{prefix}{}", normalize_domain(rest)?));
        }
    }
    normalize_domain(pattern)
}

/// The comparison key of a domain or a table key (`example.org`, `.example.org`, `*`):
/// what local domains, routes and TLS policies are stored and looked up under, for
/// configured and received names alike. Never fails ([`normalize_received`]); the
/// configuration's own checks refuse what is not a domain.
pub fn comparable(key: &str) -> String {
    if key == "*" {
        return key.to_string();
    }
    match key.strip_prefix('.') {
        Some(rest) => format!(".{}", normalize_received(rest)),
        None => normalize_received(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keys_compare_in_one_form() {
        assert_eq!(comparable("*"), "*");
        assert_eq!(comparable(".Bücher.example"), ".xn--bcher-kva.example");
        assert_eq!(
            comparable("XN--BCHER-KVA.example."),
            "xn--bcher-kva.example"
        );
        assert_eq!(comparable("Local.Test"), "local.test");
    }

    #[test]
    fn one_form_for_every_spelling() {
        let a = "xn--bcher-kva.example";
        assert_eq!(normalize_domain("bücher.example").unwrap(), a);
        assert_eq!(normalize_domain("BÜCHER.Example.").unwrap(), a);
        assert_eq!(normalize_domain("XN--BCHER-KVA.example").unwrap(), a);
        assert_eq!(normalize_received("BÜCHER.EXAMPLE"), a);
        assert_eq!(normalize_received("xn--bcher-kva.example."), a);
        assert_eq!(normalize_received("bücher\u{3002}example"), a);
        assert_eq!(
            normalize_pattern(".Bücher.example").unwrap(),
            format!(".{a}")
        );
        assert_eq!(
            normalize_domain("Mx.Example.ORG").unwrap(),
            "mx.example.org"
        );
    }

    #[test]
    fn bad_names_are_refused_in_config_and_kept_when_received() {
        assert!(normalize_domain("a_b.example").is_err());
        assert!(normalize_domain("xn--zz.example").is_err());
        assert!(normalize_domain("-a.example").is_err());
        assert!(normalize_domain("").is_err());
        // A label that cannot be mapped keeps its place: the parent stays visible.
        assert!(normalize_received("xn--zz.Bücher.example").ends_with(".xn--bcher-kva.example"));
    }
}
