//! The MTA-STS policy file (RFC 8461 §3.2) and MX pattern matching (§4.1).
//!
//! ```text
//! version: STSv1
//! mode: enforce
//! mx: mail.example.com
//! mx: *.example.net
//! max_age: 604800
//! ```
//!
//! Lines end in LF or CRLF; `key: value` with optional white space after the colon;
//! unknown keys are ignored (§3.2); a repeated key other than `mx` keeps its first value.

use serde::{Deserialize, Serialize};

/// The largest `max_age` RFC 8461 §3.2 allows: one year (31557600 seconds).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// A policy's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only matching MX hosts, with verified certificates; failures defer.
    Enforce,
    /// Deliver as without a policy, but report what would have failed.
    Testing,
    /// The domain withdraws its policy: treated as no policy.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed, valid policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    /// The `mx` patterns as published, lower case, without a trailing dot.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached (≤ [`MAX_AGE_LIMIT`]).
    pub max_age: u64,
}

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("line {0}: not a \"key: value\" line")]
    NotKeyValue(usize),
    #[error("no version field (expected \"version: STSv1\")")]
    NoVersion,
    #[error("version is {0:?}, not \"STSv1\"")]
    BadVersion(String),
    #[error("no mode field")]
    NoMode,
    #[error("mode is {0:?}, not enforce, testing or none")]
    BadMode(String),
    #[error("no max_age field")]
    NoMaxAge,
    #[error("max_age {0:?} is not a number of seconds (at most 10 digits)")]
    BadMaxAge(String),
    #[error("max_age {0} is above the RFC 8461 limit of {MAX_AGE_LIMIT} seconds")]
    MaxAgeTooLarge(u64),
    #[error("no mx field (mode {0} needs at least one)")]
    NoMx(&'static str),
    #[error("mx {0:?} is not a host name or a *. pattern")]
    BadMx(String),
    #[error("the policy is not UTF-8 text")]
    NotText,
}

impl Policy {
    /// Parse a policy file body.
    pub fn parse(body: &[u8]) -> Result<Policy, PolicyError> {
        let text = std::str::from_utf8(body).map_err(|_| PolicyError::NotText)?;
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(':')
                .ok_or(PolicyError::NotKeyValue(i + 1))?;
            let key = key.trim();
            let value = value.trim_matches([' ', '\t']);
            if key.is_empty() {
                return Err(PolicyError::NotKeyValue(i + 1));
            }
            match key {
                "version" => {
                    version.get_or_insert(value);
                }
                "mode" => {
                    mode.get_or_insert(value);
                }
                "max_age" => {
                    max_age.get_or_insert(value);
                }
                "mx" => mx.push(value),
                _ => {} // unknown keys are ignored (§3.2)
            }
        }
        match version {
            None => return Err(PolicyError::NoVersion),
            Some("STSv1") => {}
            Some(v) => return Err(PolicyError::BadVersion(v.to_string())),
        }
        let mode = match mode {
            None => return Err(PolicyError::NoMode),
            Some("enforce") => Mode::Enforce,
            Some("testing") => Mode::Testing,
            Some("none") => Mode::None,
            Some(m) => return Err(PolicyError::BadMode(m.to_string())),
        };
        let max_age = max_age.ok_or(PolicyError::NoMaxAge)?;
        if max_age.is_empty() || max_age.len() > 10 || !max_age.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PolicyError::BadMaxAge(max_age.to_string()));
        }
        let max_age: u64 = max_age
            .parse()
            .map_err(|_| PolicyError::BadMaxAge(max_age.to_string()))?;
        if max_age > MAX_AGE_LIMIT {
            return Err(PolicyError::MaxAgeTooLarge(max_age));
        }
        let mut patterns = Vec::new();
        for m in mx {
            let p = m.trim_end_matches('.').to_ascii_lowercase();
            if !valid_pattern(&p) {
                return Err(PolicyError::BadMx(m.to_string()));
            }
            if !patterns.contains(&p) {
                patterns.push(p);
            }
        }
        if patterns.is_empty() && mode != Mode::None {
            return Err(PolicyError::NoMx(mode.as_str()));
        }
        Ok(Policy {
            mode,
            mx: patterns,
            max_age,
        })
    }

    /// Whether MX host `host` matches one of the policy's patterns.
    pub fn allows(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mx_matches(p, host))
    }
}

/// RFC 8461 §4.1: `pattern` matches `host` when equal (case-insensitive, a trailing dot
/// ignored), or when it is `*.REST` and `host` is exactly one label followed by `.REST`.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(rest) => match host.split_once('.') {
            Some((label, host_rest)) => !label.is_empty() && host_rest.eq_ignore_ascii_case(rest),
            None => false,
        },
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// A host name (LDH labels, or U-labels left to the publisher) with an optional leading
/// `*.` label; at least two labels after the wildcard.
fn valid_pattern(p: &str) -> bool {
    let rest = p.strip_prefix("*.").unwrap_or(p);
    !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_example_lf_and_crlf() {
        let text = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n";
        let p = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(
            p.mx,
            ["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
        assert_eq!(p.max_age, 604800);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(Policy::parse(crlf.as_bytes()).unwrap(), p);
        // No final newline, extra white space, unknown keys.
        let loose = "version:STSv1\r\nmode:   testing\r\nfuture: x\r\nmx: MX.Example.COM.\r\nmax_age: 86400";
        let p = Policy::parse(loose.as_bytes()).unwrap();
        assert_eq!(p.mode, Mode::Testing);
        assert_eq!(p.mx, ["mx.example.com"]);
    }

    #[test]
    fn precise_errors() {
        let e = |t: &str| Policy::parse(t.as_bytes()).unwrap_err();
        assert_eq!(
            e("mode: enforce\nmx: a.b\nmax_age: 1\n"),
            PolicyError::NoVersion
        );
        assert_eq!(
            e("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n"),
            PolicyError::BadVersion("STSv2".into())
        );
        assert_eq!(
            e("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n"),
            PolicyError::BadMode("strict".into())
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmax_age: 1\n"),
            PolicyError::NoMx("enforce")
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: a.b\n"),
            PolicyError::NoMaxAge
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -5\n"),
            PolicyError::BadMaxAge("-5".into())
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n"),
            PolicyError::MaxAgeTooLarge(31557601)
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n"),
            PolicyError::BadMx("a b".into())
        );
        assert_eq!(e("<html>\nversion: STSv1\n"), PolicyError::NotKeyValue(1));
        assert_eq!(Policy::parse(b"\xff\xfe"), Err(PolicyError::NotText));
        // mode none needs no mx.
        let p = Policy::parse(b"version: STSv1\nmode: none\nmax_age: 31557600\n").unwrap();
        assert_eq!(p.mode, Mode::None);
    }

    #[test]
    fn mx_patterns() {
        assert!(mx_matches("mail.example.com", "MAIL.example.com."));
        assert!(mx_matches("*.example.net", "mx1.example.net"));
        assert!(mx_matches("*.example.net.", "MX1.EXAMPLE.NET"));
        assert!(
            !mx_matches("*.example.net", "a.b.example.net"),
            "one label only"
        );
        assert!(!mx_matches("*.example.net", "example.net"));
        assert!(!mx_matches("*.example.net", ".example.net"));
        assert!(!mx_matches("mail.example.com", "mail.example.com.evil"));
        assert!(!mx_matches("mail.example.com", "x.mail.example.com"));
        let p = Policy::parse(b"version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 1\n")
            .unwrap();
        assert!(p.allows("mx.example.net"));
        assert!(!p.allows("mx.example.org"));
    }
}
