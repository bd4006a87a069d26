//! The `[auth]` section and its `[[auth.dkim_sign]]` entries.

use std::path::PathBuf;

use postern_config::{KeyPath, Problems, Size};
use serde::{Deserialize, Serialize};

/// What to do with the SPF result (RFC 7208) of the MAIL FROM and HELO identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpfPolicy {
    /// No SPF check (the default: checks query the senders' DNS, so they are opted into).
    #[default]
    Off,
    /// Check and record the result in the headers; never refuse.
    Tag,
    /// Refuse `fail` at MAIL FROM with `550 5.7.23`; a DNS temporary error gets
    /// `451 4.7.24` (the check could not decide a rejection).
    RejectFail,
}

/// What to do with the DMARC result (RFC 7489).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DmarcPolicy {
    /// No DMARC evaluation (the default).
    #[default]
    Off,
    /// Evaluate and record; never refuse.
    Tag,
    /// Apply the domain's policy: `p=reject` is refused with `550 5.7.1`, `p=quarantine`
    /// is accepted with the quarantine header added.
    Enforce,
}

/// Whether DKIM signatures (RFC 6376) of received mail are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DkimMode {
    /// No DKIM verification (the default).
    #[default]
    Off,
    Verify,
}

/// A DKIM signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256; the key must have at least 2048 bits.
    #[default]
    RsaSha256,
    /// Ed25519 (RFC 8463).
    Ed25519Sha256,
}

impl SignAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SignAlgorithm::RsaSha256 => "rsa-sha256",
            SignAlgorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

/// `[[auth.dkim_sign]]`: one signing key for one domain. Two entries for the same domain
/// (one RSA, one Ed25519) sign every message twice (RFC 8463 §4 recommends dual signing
/// while verifiers learn Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSignConfig {
    /// The signing domain (`d=`). Mail whose From domain is this domain or one of its
    /// subdomains is signed.
    pub domain: String,
    /// The selector (`s=`): the key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// PEM private key file (PKCS#8, or PKCS#1 for RSA), as `postern dkim keygen` writes.
    pub key: PathBuf,
    #[serde(default)]
    pub algorithm: SignAlgorithm,
    /// Header fields to sign. Default: [`default_signed_headers`] (From twice, so that no
    /// second From can be added without breaking the signature).
    #[serde(default = "default_signed_headers")]
    pub headers: Vec<String>,
    /// Whose mail this key signs: `"trusted_networks"`, `"local"` (loopback clients:
    /// local programs and `postern sendmail`), `"relay_certificates"` (partners with
    /// `may_relay`, trusted client certificates), or networks (`"192.0.2.0/24"`).
    /// Empty (the default): only Postern's own reports are signed, never a client's
    /// mail. See `crate::sources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// From (oversigned), To, Cc, Subject, Date, Message-ID, Reply-To, In-Reply-To,
/// References, MIME-Version, Content-Type, Content-Transfer-Encoding.
pub fn default_signed_headers() -> Vec<String> {
    [
        "From",
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "Reply-To",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub spf: SpfPolicy,
    #[serde(default)]
    pub dkim: DkimMode,
    #[serde(default)]
    pub dmarc: DmarcPolicy,
    /// The `authserv-id` of our Authentication-Results headers. Default: the server host
    /// name. Incoming Authentication-Results headers with this id are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authserv_id: Option<String>,
    /// Clients in `relay.trusted_networks` are not checked (their mail is ours to sign).
    #[serde(default = "yes")]
    pub exempt_trusted_networks: bool,
    /// Header added to mail that DMARC enforcement quarantines (`p=quarantine`).
    #[serde(default = "default_quarantine_header")]
    pub quarantine_header: String,
    /// What else happens to quarantined mail: `"tag"` (only the header; delivered as usual)
    /// or `"hold"` (also put on hold in the queue until an operator releases or deletes it
    /// with `postern queue release|delete`).
    #[serde(default)]
    pub quarantine_action: QuarantineAction,
    /// Largest message whose DKIM signatures are verified (or that is signed): the check
    /// holds the whole message in memory. Larger messages are recorded as
    /// `dkim=policy` and not signed.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: Size,
    /// Memory that messages held for checks and signing may use together, across all
    /// sessions. A message that does not fit waits briefly, then gets `451 4.3.1`.
    #[serde(default = "default_memory_budget")]
    pub memory_budget: Size,
    /// Signing keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dkim_sign: Vec<DkimSignConfig>,
}

fn yes() -> bool {
    true
}
/// `quarantine_action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuarantineAction {
    /// Add the quarantine header and deliver.
    #[default]
    Tag,
    /// Add the header and put the message on hold.
    Hold,
}

fn default_quarantine_header() -> String {
    "X-Postern-Quarantine".into()
}
fn default_max_message_size() -> Size {
    Size::mib(25)
}
fn default_memory_budget() -> Size {
    Size::mib(256)
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            spf: SpfPolicy::default(),
            dkim: DkimMode::default(),
            dmarc: DmarcPolicy::default(),
            authserv_id: None,
            exempt_trusted_networks: true,
            quarantine_header: default_quarantine_header(),
            quarantine_action: QuarantineAction::Tag,
            max_message_size: default_max_message_size(),
            memory_budget: default_memory_budget(),
            dkim_sign: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Whether any inbound check is on.
    pub fn verifies(&self) -> bool {
        self.spf != SpfPolicy::Off || self.dkim != DkimMode::Off || self.dmarc != DmarcPolicy::Off
    }

    /// Check the section, including that every signing key loads.
    pub fn validate(&self, at: &KeyPath, p: &mut Problems) {
        if let Some(id) = &self.authserv_id
            && !valid_token(id)
        {
            p.push(
                at.key("authserv_id"),
                format!(
                    "{id:?} must be a host name or similar token (letters, digits, '.', '-', '_')"
                ),
            );
        }
        if !valid_header_name(&self.quarantine_header) {
            p.push(
                at.key("quarantine_header"),
                format!(
                    "{:?} is not a header field name (printable ASCII without ':' or spaces)",
                    self.quarantine_header
                ),
            );
        }
        if self.memory_budget.bytes() < self.max_message_size.bytes().saturating_mul(2) {
            p.push(
                at.key("memory_budget"),
                format!(
                    "must be at least twice auth.max_message_size ({}): a message being checked is held twice",
                    self.max_message_size
                ),
            );
        }
        if self.max_message_size.bytes() == 0 {
            p.push(at.key("max_message_size"), "must be larger than zero");
        }
        if self.dmarc != DmarcPolicy::Off
            && self.spf == SpfPolicy::Off
            && self.dkim == DkimMode::Off
        {
            p.push(
                at.key("dmarc"),
                "DMARC needs SPF or DKIM results: set spf = \"tag\" or dkim = \"verify\" too",
            );
        }
        let mut seen = Vec::new();
        for (i, s) in self.dkim_sign.iter().enumerate() {
            let at = at.key("dkim_sign").index(i);
            if !valid_domain(&s.domain) {
                p.push(
                    at.key("domain"),
                    format!("{:?} is not a domain name", s.domain),
                );
            }
            if !valid_token(&s.selector) {
                p.push(
                    at.key("selector"),
                    format!(
                        "{:?} is not a DKIM selector (letters, digits, '.', '-', '_')",
                        s.selector
                    ),
                );
            }
            for (k, src) in s.sources.iter().enumerate() {
                if let Err(e) = src.parse::<crate::sources::SignSourceRule>() {
                    p.push(at.key("sources").index(k), e.to_string());
                }
            }
            if !s.headers.iter().any(|h| h.eq_ignore_ascii_case("from")) {
                p.push(
                    at.key("headers"),
                    "must include From (RFC 6376 §5.4: the From field must be signed)",
                );
            }
            if let Some(h) = s.headers.iter().find(|h| !valid_header_name(h)) {
                p.push(
                    at.key("headers"),
                    format!("{h:?} is not a header field name"),
                );
            }
            let id = (
                s.domain.to_ascii_lowercase(),
                s.selector.to_ascii_lowercase(),
            );
            if seen.contains(&id) {
                p.push(
                    at.key("selector"),
                    format!(
                        "selector {:?} of {:?} is configured twice; a second key for the domain needs its own selector",
                        s.selector, s.domain
                    ),
                );
            }
            seen.push(id);
            if let Err(e) = crate::sign::SigningKey::load(s) {
                p.push(at.key("key"), e.to_string());
            }
        }
    }
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

fn valid_domain(s: &str) -> bool {
    valid_token(s) && s.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

fn valid_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_kebab_case() {
        let c: AuthConfig = toml::from_str("").unwrap();
        assert_eq!(c, AuthConfig::default());
        let c: AuthConfig =
            toml::from_str("spf = \"reject-fail\"\ndmarc = \"enforce\"\ndkim = \"off\"").unwrap();
        assert_eq!(c.spf, SpfPolicy::RejectFail);
        assert_eq!(c.dmarc, DmarcPolicy::Enforce);
        assert_eq!(c.dkim, DkimMode::Off);
        assert!(toml::from_str::<AuthConfig>("spf = \"reject\"").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let c: AuthConfig = toml::from_str(
            "authserv_id = \"a b\"\nquarantine_header = \"X Bad:\"\n[[dkim_sign]]\ndomain = \"example.org\"\nselector = \"s 1\"\nkey = \"/nonexistent/key.pem\"\nheaders = [\"Subject\"]\n",
        )
        .unwrap();
        let mut p = Problems::new();
        c.validate(&KeyPath::of("auth"), &mut p);
        let text = format!("{p:?}");
        for k in [
            "authserv_id",
            "quarantine_header",
            "selector",
            "headers",
            "key",
        ] {
            assert!(text.contains(k), "{k} missing from {text}");
        }
    }
}
