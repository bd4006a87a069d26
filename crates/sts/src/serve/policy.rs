//! The policy text (RFC 8461 §3.2) and its `id` (§3.1), derived from the text so that the
//! `_mta-sts` TXT record and the served file cannot drift apart.

use std::collections::HashMap;

use bytes::Bytes;

use crate::config::{MtaStsConfig, PolicyConfig};

/// A policy ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedPolicy {
    /// The mail domain, normalised.
    pub domain: String,
    /// `mta-sts.DOMAIN`: the host senders fetch the policy from.
    pub host: String,
    /// The file served at `/.well-known/mta-sts.txt`.
    pub text: Bytes,
    /// The `id=` of the `_mta-sts` TXT record.
    pub id: String,
}

impl ServedPolicy {
    pub fn new(c: &PolicyConfig) -> ServedPolicy {
        let domain = c.normalized_domain();
        let text = policy_text(c);
        ServedPolicy {
            host: format!("mta-sts.{domain}"),
            id: policy_id(&text),
            text: Bytes::from(text),
            domain,
        }
    }

    /// The `_mta-sts.DOMAIN. IN TXT` record, in zone-file syntax.
    pub fn txt_record(&self) -> String {
        format!(
            "_mta-sts.{}. IN TXT \"v=STSv1; id={}\"",
            self.domain, self.id
        )
    }
}

/// The policy file: `key: value` lines ending in CRLF, `version` first (RFC 8461 §3.2).
pub fn policy_text(c: &PolicyConfig) -> String {
    let mut s = format!("version: STSv1\r\nmode: {}\r\n", c.mode);
    for m in c.normalized_mx() {
        s.push_str("mx: ");
        s.push_str(&m);
        s.push_str("\r\n");
    }
    s.push_str(&format!("max_age: {}\r\n", c.max_age));
    s
}

/// The policy id: the first 16 bytes of the text's SHA-256, as 32 lower-case hex digits
/// (RFC 8461 §3.1: 1 to 32 letters and digits). Any change to the text changes it.
pub fn policy_id(text: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every configured policy by its host (`mta-sts.DOMAIN`).
#[derive(Debug, Clone, Default)]
pub struct Policies {
    by_host: HashMap<String, ServedPolicy>,
}

impl Policies {
    pub fn new(c: &MtaStsConfig) -> Policies {
        Policies {
            by_host: c
                .policy
                .iter()
                .map(ServedPolicy::new)
                .map(|p| (p.host.clone(), p))
                .collect(),
        }
    }

    /// The policy for an HTTP `Host` (any case, with or without `:port` and a final dot).
    pub fn for_host(&self, host: &str) -> Option<&ServedPolicy> {
        let name = match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        };
        let name = name.trim_end_matches('.');
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&name.to_ascii_lowercase())
        } else {
            self.by_host.get(name)
        }
    }

    pub fn len(&self) -> usize {
        self.by_host.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    fn pol(mode: Mode, mx: &[&str], max_age: u64) -> PolicyConfig {
        PolicyConfig {
            domain: "Example.ORG".into(),
            mode,
            mx: mx.iter().map(|s| s.to_string()).collect(),
            max_age,
        }
    }

    #[test]
    fn text_follows_rfc_8461() {
        let p = ServedPolicy::new(&pol(
            Mode::Enforce,
            &["MX.example.org", "*.backup.example.org"],
            604800,
        ));
        assert_eq!(
            &p.text[..],
            b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.org\r\nmx: *.backup.example.org\r\nmax_age: 604800\r\n"
        );
        assert_eq!(p.host, "mta-sts.example.org");
        assert_eq!(p.domain, "example.org");
        let none = policy_text(&pol(Mode::None, &[], 86400));
        assert_eq!(none, "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n");
    }

    #[test]
    fn the_id_follows_the_text() {
        let a = ServedPolicy::new(&pol(Mode::Testing, &["mx.example.org"], 86400));
        let b = ServedPolicy::new(&pol(Mode::Enforce, &["mx.example.org"], 86400));
        let c = ServedPolicy::new(&pol(Mode::Testing, &["mx.example.org"], 86401));
        assert_eq!(a.id.len(), 32);
        assert!(a.id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, c.id);
        // Stable: the same text always gives the same id.
        assert_eq!(
            a.id,
            ServedPolicy::new(&pol(Mode::Testing, &["mx.example.org"], 86400)).id
        );
        assert_eq!(
            a.txt_record(),
            format!("_mta-sts.example.org. IN TXT \"v=STSv1; id={}\"", a.id)
        );
    }

    #[test]
    fn hosts_are_found_in_any_spelling() {
        let c = MtaStsConfig {
            policy: vec![pol(Mode::Enforce, &["mx.example.org"], 1)],
            ..Default::default()
        };
        let p = Policies::new(&c);
        for h in [
            "mta-sts.example.org",
            "MTA-STS.Example.Org",
            "mta-sts.example.org:443",
            "mta-sts.example.org.",
        ] {
            assert!(p.for_host(h).is_some(), "{h}");
        }
        for h in [
            "example.org",
            "mta-sts.example.org:x",
            "www.example.org",
            "",
        ] {
            assert!(p.for_host(h).is_none(), "{h}");
        }
    }
}
