//! The `[resolver]` section: where DNS questions go, and how far their answers are trusted.

use std::net::SocketAddr;
use std::path::PathBuf;

use postern_config::{Duration, KeyPath, Problems};
use serde::{Deserialize, Serialize};

use crate::probe::ProbeQuery;

/// `[resolver]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    /// `IP:PORT` of recursive resolvers. Empty: the system's /etc/resolv.conf.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout.
    #[serde(default = "d_timeout")]
    pub timeout: Duration,
    /// How often one question is asked before it counts as failed.
    #[serde(default = "d_attempts")]
    pub attempts: usize,
    /// Where the DNSSEC status of answers comes from.
    #[serde(default)]
    pub dnssec: DnssecMode,
    /// `validate` only: a file of DNSKEY records for `.` (zone-file syntax) that replaces
    /// the built-in root keys. Unset: the IANA root KSKs built into hickory.
    #[serde(default)]
    pub trust_anchor: Option<PathBuf>,
    /// The question that must validate for DNSSEC to count as working: `TYPE:NAME`, as
    /// Postfix's `dnssec_probe` (`ns:.`). Asked at start-up and by `check-config`; an
    /// empty string disables the probe.
    #[serde(default = "d_probe")]
    pub dnssec_probe: String,
}

/// `[resolver] dnssec`: where the DNSSEC status of an answer comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnssecMode {
    /// Never secure: every answer is [`crate::Security::Insecure`].
    Off,
    /// Ask with the DO and AD bits and believe the AD bit of the answer: the nameservers
    /// must be validating resolvers on loopback (Postfix's model).
    #[default]
    TrustAd,
    /// hickory validates every answer itself, from the root keys (or `trust_anchor`).
    Validate,
}

impl DnssecMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DnssecMode::Off => "off",
            DnssecMode::TrustAd => "trust-ad",
            DnssecMode::Validate => "validate",
        }
    }
}

fn d_timeout() -> Duration {
    Duration::secs(5)
}
fn d_attempts() -> usize {
    2
}
fn d_probe() -> String {
    "ns:.".to_string()
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameservers: Vec::new(),
            timeout: d_timeout(),
            attempts: d_attempts(),
            dnssec: DnssecMode::default(),
            trust_anchor: None,
            dnssec_probe: d_probe(),
        }
    }
}

/// The most attempts per question: more only lengthens the wait for a dead resolver.
pub const MAX_ATTEMPTS: usize = 5;

/// Check `[resolver]`.
pub fn validate(r: &ResolverConfig, p: &mut Problems) {
    let at = KeyPath::of("resolver");
    if r.timeout.get() < std::time::Duration::from_millis(100) {
        p.push(at.key("timeout"), "must be at least 100ms");
    }
    if !(1..=MAX_ATTEMPTS).contains(&r.attempts) {
        p.push(
            at.key("attempts"),
            format!("must be 1 to {MAX_ATTEMPTS} (each question is asked this often)"),
        );
    }
    if r.dnssec == DnssecMode::TrustAd {
        for (i, ns) in r.nameservers.iter().enumerate() {
            if !ns.ip().is_loopback() {
                p.push(
                    at.key("nameservers").index(i),
                    format!(
                        "{ns} is not on loopback: with dnssec = \"trust-ad\" the AD bit is only \
                         trusted from a validating resolver on this host (127.0.0.0/8 or ::1), \
                         because nothing protects it on the network; run unbound locally and \
                         list it here, or set [resolver] dnssec = \"validate\" (or \"off\")"
                    ),
                );
            }
        }
    }
    if let Some(path) = &r.trust_anchor {
        if r.dnssec != DnssecMode::Validate {
            p.push(
                at.key("trust_anchor"),
                "is only used with dnssec = \"validate\" (with \"trust-ad\" the local \
                 resolver has its own trust anchor): remove it or set dnssec = \"validate\"",
            );
        } else if let Err(e) = crate::resolver::load_trust_anchor(path) {
            p.push(at.key("trust_anchor"), e.to_string());
        }
    }
    if let Err(e) = ProbeQuery::parse(&r.dnssec_probe) {
        p.push(at.key("dnssec_probe"), e.to_string());
    }
}
