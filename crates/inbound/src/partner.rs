//! Partner rules (`[[inbound.partner]]`): mail whose envelope sender belongs to a partner
//! organisation is accepted only over TLS, from a client whose certificate satisfies that
//! partner's entry; and relay permission by client certificate (`[relay]
//! trusted_client_certificates`, partners with `may_relay = true`).
//!
//! What an entry demands of the client certificate, all of it together:
//! - `ca`: the chain verifies against the partner's own CA file (and the listener's CRLs);
//! - `fingerprints`: the certificate's or its public key's SHA-256 is one of these. Without
//!   `ca`, a matching fingerprint is enough (the pin is the trust);
//! - `names`: a DNS name of the certificate's subjectAltName matches one (`.example.org` =
//!   any subdomain). The subject common name never counts: it is not covered by a CA's
//!   name constraints. With neither `ca` nor `fingerprints`, the chain must have verified
//!   against the listener's `client_ca`, which every partner shares; so such an entry is
//!   refused when any other entry asks for a certificate (one partner's CA could name
//!   another partner's host).
//!
//! Domains and names, configured and received, are compared as lower-case A-labels
//! (UTS #46, [`postern_config::domain`]): `bücher.example`, `BÜCHER.example` and
//! `xn--bcher-kva.example` are one partner domain.
//!
//! The client is told little (`530 5.7.0` when TLS or a certificate is missing, `550 5.7.1`
//! when the certificate does not satisfy the entry); the log says precisely why.
//!
//! # Security
//! The MAIL FROM domain is not authenticated: these rules restrict what a partner domain
//! may send through, they do not prove who sent it. Relay permission never depends on the
//! sender address, only on the certificate.
//!
//! # Standards
//! RFC 3207 §4.1 (530 for a required STARTTLS), RFC 3463 (X.7.0, X.7.1).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use postern_config::{KeyPath, Problems, normalize_pattern, normalize_received};
use postern_smtp::Reply;
use postern_smtp::address::{Domain, ReversePath, parse_domain};
use postern_tls::client::name_matches;
use postern_tls::store::Reload;
use postern_tls::{CertRejected, ClientCertPolicy, PresentedCert, TlsError};
use serde::{Deserialize, Serialize};
use tokio_rustls::rustls::RootCertStore;

use crate::ServerContext;

/// `[inbound]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partner: Vec<PartnerConfig>,
}

/// One `[[inbound.partner]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// Sender domains of the partner; `.example.org` also covers every subdomain.
    pub domains: Vec<String>,
    /// Only over TLS (default true).
    #[serde(default = "yes")]
    pub require_tls: bool,
    /// PEM file of the partner's CA: the client certificate must chain to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// `sha256:HEX` of the client certificate or of its public key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    /// Acceptable certificate names (DNS subjectAltName only, never the subject CN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// A client whose certificate satisfies this entry may relay to any domain.
    #[serde(default)]
    pub may_relay: bool,
}

fn yes() -> bool {
    true
}

/// A configured domain or name as lower-case A-labels (validation refuses the ones that
/// cannot be; those are kept lower-cased so that loading never fails on them).
fn normalized(pattern: &str) -> String {
    normalize_pattern(pattern).unwrap_or_else(|_| pattern.to_lowercase())
}

impl PartnerConfig {
    /// Does this entry ask for a client certificate at all?
    pub fn wants_certificate(&self) -> bool {
        self.ca.is_some() || !self.fingerprints.is_empty() || !self.names.is_empty()
    }
}

/// Is `f` a `sha256:` fingerprint of 64 hex digits?
pub fn is_fingerprint(f: &str) -> bool {
    f.len() == 71
        && f.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("sha256:"))
        && f.bytes().skip(7).all(|b| b.is_ascii_hexdigit())
}

/// Check `[[inbound.partner]]` entries (files are checked when loading).
pub fn validate(c: &InboundConfig, p: &mut Problems) {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, e) in c.partner.iter().enumerate() {
        let at = KeyPath::of("inbound").key("partner").index(i);
        if e.domains.is_empty() {
            p.push(at.key("domains"), "needs at least one sender domain");
        }
        for (j, d) in e.domains.iter().enumerate() {
            let key = match normalize_pattern(d) {
                Ok(k) => k,
                Err(err) => {
                    p.push(
                        at.key("domains").index(j),
                        format!("{d:?} is not a domain name: {err}"),
                    );
                    continue;
                }
            };
            if let Err(err) = parse_domain(key.strip_prefix('.').unwrap_or(&key)) {
                p.push(
                    at.key("domains").index(j),
                    format!("{d:?} is not a domain name: {err}"),
                );
            }
            if let Some((_, other)) = seen.iter().find(|(s, _)| *s == key) {
                p.push(
                    at.key("domains").index(j),
                    format!("{d:?} is already listed by [[inbound.partner]] #{other}: a sender domain belongs to one partner"),
                );
            }
            seen.push((key, i));
        }
        for (j, n) in e.names.iter().enumerate() {
            if let Err(err) = normalize_pattern(n) {
                p.push(
                    at.key("names").index(j),
                    format!("{n:?} is not a certificate DNS name: {err}"),
                );
            }
        }
        let others_want_certs = c
            .partner
            .iter()
            .enumerate()
            .any(|(k, o)| k != i && o.wants_certificate());
        if e.ca.is_none() && e.fingerprints.is_empty() && !e.names.is_empty() && others_want_certs {
            p.push(
                at.key("names"),
                "names alone trust every CA in the listener's client_ca, which the other partner entries share: one partner's CA could issue a certificate with this partner's names. Set ca (this partner's CA only) or fingerprints for this entry",
            );
        }
        for (j, f) in e.fingerprints.iter().enumerate() {
            if !is_fingerprint(f) {
                p.push(
                    at.key("fingerprints").index(j),
                    format!("{f:?} is not a fingerprint: expected sha256: followed by 64 hex digits (postern tls-check shows them)"),
                );
            }
        }
        if e.may_relay && e.ca.is_none() && e.fingerprints.is_empty() {
            p.push(
                at.key("may_relay"),
                "relay permission needs a certificate check: set ca or fingerprints (names alone do not identify a client)",
            );
        }
        if !e.require_tls && e.wants_certificate() {
            p.push(
                at.key("require_tls"),
                "a client certificate can only be checked over TLS: remove require_tls = false",
            );
        }
    }
}

/// A partner entry, with its CA loaded.
#[derive(Debug)]
pub struct Partner {
    label: String,
    domains: Vec<String>,
    require_tls: bool,
    ca_path: Option<PathBuf>,
    ca: RwLock<Option<Arc<RootCertStore>>>,
    fingerprints: Vec<String>,
    names: Vec<String>,
    may_relay: bool,
}

/// All partner entries.
#[derive(Debug, Default)]
pub struct Partners {
    entries: Vec<Arc<Partner>>,
}

impl Partners {
    /// Load every partner's CA file.
    pub fn load(c: &InboundConfig) -> Result<Partners, TlsError> {
        let mut entries = Vec::new();
        for (i, e) in c.partner.iter().enumerate() {
            let ca = match &e.ca {
                Some(p) => Some(Arc::new(postern_tls::client::load_roots(Some(p))?)),
                None => None,
            };
            entries.push(Arc::new(Partner {
                label: format!(
                    "[[inbound.partner]] #{i} ({})",
                    e.domains.first().cloned().unwrap_or_default()
                ),
                domains: e.domains.iter().map(|d| normalized(d)).collect(),
                require_tls: e.require_tls,
                ca_path: e.ca.clone(),
                ca: RwLock::new(ca),
                fingerprints: e
                    .fingerprints
                    .iter()
                    .map(|f| f.to_ascii_lowercase())
                    .collect(),
                names: e.names.iter().map(|n| normalized(n)).collect(),
                may_relay: e.may_relay,
            }));
        }
        Ok(Partners { entries })
    }

    /// The entries whose CA files should be re-read on reload.
    pub fn reloadables(&self) -> Vec<Arc<dyn Reload>> {
        self.entries
            .iter()
            .filter(|e| e.ca_path.is_some())
            .map(|e| e.clone() as Arc<dyn Reload>)
            .collect()
    }

    /// The partner a sender domain belongs to: an exact entry, else the nearest `.parent`.
    /// The domain is compared as A-labels, whatever form the client used.
    pub fn for_domain(&self, domain: &str) -> Option<&Partner> {
        let d = normalize_received(domain);
        if let Some(p) = self.entries.iter().find(|e| e.domains.contains(&d)) {
            return Some(p);
        }
        let mut rest = d.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            let dotted = format!(".{parent}");
            if let Some(p) = self.entries.iter().find(|e| e.domains.contains(&dotted)) {
                return Some(p);
            }
            rest = parent;
        }
        // `.example.org` also covers example.org itself.
        let dotted = format!(".{d}");
        self.entries
            .iter()
            .find(|e| e.domains.contains(&dotted))
            .map(|e| e.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Reload for Partner {
    fn what(&self) -> String {
        format!(
            "{} ca {}",
            self.label,
            self.ca_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    }

    fn reload(&self) -> Result<(), TlsError> {
        let Some(p) = &self.ca_path else {
            return Ok(());
        };
        let roots = postern_tls::client::load_roots(Some(p))?;
        *self.ca.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(roots));
        Ok(())
    }
}

impl Partner {
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Does `cert` satisfy this entry's certificate demands? `Err`: precisely why not.
    pub fn satisfied_by(
        &self,
        cert: Option<&PresentedCert>,
        policy: Option<&ClientCertPolicy>,
    ) -> Result<(), CertRejected> {
        let ca = self.ca.read().unwrap_or_else(|e| e.into_inner()).clone();
        if ca.is_none() && self.fingerprints.is_empty() && self.names.is_empty() {
            return Ok(());
        }
        let Some(cert) = cert else {
            return Err("no client certificate was presented".into());
        };
        if let Some(roots) = ca {
            let Some(policy) = policy else {
                return Err("this listener does not ask for client certificates".into());
            };
            policy.verify_against(roots, &cert.chain).map_err(|why| {
                format!(
                    "{why} (checked against the partner CA {})",
                    self.ca_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )
            })?;
        } else if self.fingerprints.is_empty()
            && let Err(why) = &cert.trust
        {
            return Err(format!("certificate not verified: {why}").into());
        }
        if !self.fingerprints.is_empty() && !cert.matches_fingerprint(&self.fingerprints) {
            return Err(format!(
                "certificate {} (public key {}) is not one of the partner's fingerprints",
                cert.fingerprint,
                cert.spki_fingerprint.as_deref().unwrap_or("unknown")
            )
            .into());
        }
        if !self.names.is_empty()
            && !cert
                .names
                .iter()
                .any(|h| self.names.iter().any(|w| name_matches(h, w)))
        {
            return Err(format!(
                "certificate names ({}) match none of the partner's names ({})",
                if cert.names.is_empty() {
                    "none".to_string()
                } else {
                    cert.names.join(", ")
                },
                self.names.join(", ")
            )
            .into());
        }
        Ok(())
    }
}

/// `, client certificate CN=..., sha256:...` (+ why it is untrusted, or a near expiry),
/// for the TLS log line.
pub(crate) fn describe_cert(c: &PresentedCert) -> String {
    let mut s = format!(", client certificate \"{}\" {}", c.subject(), c.fingerprint);
    if let Err(why) = &c.trust {
        s.push_str(&format!(" ({why})"));
    }
    if let Some(info) = &c.info {
        let days = info.days_to_expiry(postern_tls::store::unix_now());
        if (0..postern_tls::store::EXPIRY_WARNING_DAYS).contains(&days) {
            s.push_str(&format!(" (expires in {days} day(s))"));
            tracing::warn!(
                "client certificate \"{}\" {} expires in {days} day(s), on {}: the partner should renew it",
                c.subject(),
                c.fingerprint,
                postern_tls::x509::format_time(info.not_after)
            );
        }
    }
    s
}

/// The partner check at MAIL FROM. `Err((reply, reason))`: refuse with `reply` (generic)
/// and log `reason` (precise).
pub(crate) fn check_mail(
    ctx: &ServerContext,
    from: &ReversePath,
    tls: bool,
    cert: Option<&PresentedCert>,
) -> Result<(), (Reply, String)> {
    let ReversePath::Address(a) = from else {
        return Ok(());
    };
    let Domain::Name(domain) = &a.domain else {
        return Ok(());
    };
    let Some(partner) = ctx.partners.for_domain(domain) else {
        return Ok(());
    };
    let needs_cert = || {
        Reply::new(
            530,
            "5.7.0",
            "TLS with a client certificate is required for this sender",
        )
    };
    if partner.require_tls && !tls {
        return Err((
            needs_cert(),
            format!(
                "sender domain {domain} belongs to {}, which requires TLS; this session is not encrypted",
                partner.label
            ),
        ));
    }
    match partner.satisfied_by(cert, ctx.client_certs.as_deref()) {
        Ok(()) => Ok(()),
        Err(why) if cert.is_none() => Err((
            needs_cert(),
            format!("sender domain {domain} belongs to {}: {why}", partner.label),
        )),
        Err(why) => Err((
            Reply::new(
                550,
                "5.7.1",
                "Client certificate not authorized for this sender",
            ),
            format!("sender domain {domain} belongs to {}: {why}", partner.label),
        )),
    }
}

/// Relay permission by client certificate: why it is granted, or `None`.
pub(crate) fn may_relay(ctx: &ServerContext, cert: Option<&PresentedCert>) -> Option<String> {
    let cert = cert?;
    if ctx.relay.trusts_certificate(cert) {
        return Some(format!(
            "client certificate {} is in [relay] trusted_client_certificates",
            cert.fingerprint
        ));
    }
    ctx.partners
        .entries
        .iter()
        .filter(|p| p.may_relay)
        .find(|p| {
            p.satisfied_by(Some(cert), ctx.client_certs.as_deref())
                .is_ok()
        })
        .map(|p| {
            format!(
                "client certificate {} satisfies {} (may_relay)",
                cert.subject(),
                p.label
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partners(domains: &[&str]) -> Partners {
        Partners::load(&InboundConfig {
            partner: vec![PartnerConfig {
                domains: domains.iter().map(|s| s.to_string()).collect(),
                require_tls: true,
                ca: None,
                fingerprints: vec![],
                names: vec!["mx.partner.test".into()],
                may_relay: false,
            }],
        })
        .unwrap()
    }

    #[test]
    fn domain_lookup() {
        let p = partners(&["partner.test", ".sub.test"]);
        assert!(p.for_domain("PARTNER.test").is_some());
        assert!(p.for_domain("x.partner.test").is_none());
        assert!(p.for_domain("a.b.sub.test").is_some());
        assert!(p.for_domain("sub.test").is_some());
        assert!(p.for_domain("other.test").is_none());
    }

    /// Regression (#11, item 6): an IDN partner domain was bypassed with its `xn--` form,
    /// and an upper-case non-ASCII spelling never matched.
    #[test]
    fn domains_match_in_every_spelling() {
        let p = partners(&["bücher.test", ".Straße.test"]);
        for d in [
            "bücher.test",
            "BÜCHER.test",
            "xn--bcher-kva.test",
            "XN--BCHER-KVA.TEST.",
        ] {
            assert!(p.for_domain(d).is_some(), "{d}");
        }
        // UTS #46 nontransitional: ß stays ß (xn--strae-oqa), it is not mapped to "ss".
        for d in ["a.straße.test", "A.STRAẞE.test", "x.xn--strae-oqa.test"] {
            assert!(p.for_domain(d).is_some(), "{d}");
        }
        assert!(p.for_domain("bucher.test").is_none());
    }

    /// Regression (#11, item 6): names alone trust the listener's whole client_ca, so they
    /// are refused next to other entries that ask for certificates.
    #[test]
    fn names_alone_are_refused_next_to_other_certificate_partners() {
        let entry = |d: &str, fp: bool| PartnerConfig {
            domains: vec![d.into()],
            require_tls: true,
            ca: None,
            fingerprints: if fp {
                vec![format!("sha256:{}", "a".repeat(64))]
            } else {
                vec![]
            },
            names: vec![format!("mx.{d}")],
            may_relay: false,
        };
        let check = |entries: Vec<PartnerConfig>| {
            let mut probs = Problems::new();
            validate(&InboundConfig { partner: entries }, &mut probs);
            format!("{probs:?}")
        };
        assert!(!check(vec![entry("a.test", false)]).contains("names alone"));
        assert!(check(vec![entry("a.test", false), entry("b.test", true)]).contains("names alone"));
        assert!(!check(vec![entry("a.test", true), entry("b.test", true)]).contains("names alone"));
        let bad = check(vec![PartnerConfig {
            names: vec!["a_b.test".into()],
            ..entry("bü_cher.test", true)
        }]);
        assert!(bad.contains("not a domain name"), "{bad}");
        assert!(bad.contains("not a certificate DNS name"), "{bad}");
    }

    #[test]
    fn no_certificate_is_refused_with_reason() {
        let p = partners(&["partner.test"]);
        let e = p.for_domain("partner.test").unwrap();
        assert_eq!(
            e.satisfied_by(None, None).unwrap_err().to_string(),
            "no client certificate was presented"
        );
    }

    #[test]
    fn validation() {
        let mut probs = Problems::new();
        let c = InboundConfig {
            partner: vec![
                PartnerConfig {
                    domains: vec!["a.test".into()],
                    require_tls: false,
                    ca: None,
                    fingerprints: vec!["sha256:zz".into()],
                    names: vec![],
                    may_relay: false,
                },
                PartnerConfig {
                    domains: vec!["A.test".into()],
                    require_tls: true,
                    ca: None,
                    fingerprints: vec![],
                    names: vec!["x".into()],
                    may_relay: true,
                },
            ],
        };
        validate(&c, &mut probs);
        let text = format!("{probs:?}");
        assert!(text.contains("not a fingerprint"), "{text}");
        assert!(text.contains("already listed"), "{text}");
        assert!(text.contains("relay permission needs"), "{text}");
        assert!(text.contains("require_tls = false"), "{text}");
        assert!(is_fingerprint(&format!("sha256:{}", "a".repeat(64))));
    }
}
