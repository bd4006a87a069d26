//! RFC 8689 REQUIRETLS when relaying: may a message that came with REQUIRETLS go to this
//! next hop?
//!
//! A REQUIRETLS message goes only to a next hop that meets all of these, or its
//! recipients fail with `5.7.30` (and the bounce, headers only, says which):
//!
//! 1. a host found by MX lookup was named by a DNSSEC-secure MX answer, or the recipient
//!    domain has an MTA-STS policy in `enforce` mode (which lists its MX names);
//! 2. its certificate was authenticated: DANE, MTA-STS `enforce`, or a local
//!    `fingerprint`, `verify`, `secure` or `dane` policy ([`VerifiedBy`]);
//! 3. the session is TLS, and the server offered REQUIRETLS in its EHLO reply after
//!    STARTTLS; the message is then passed on with `MAIL FROM:<...> REQUIRETLS`.
//!
//! 1 and 2 are [`requiretls_allows`], which the TLS policy engine calls once the handshake
//! is done (it knows the DNSSEC status, the MTA-STS mode and how the certificate was
//! checked); 3 is [`next_hop_ready`], which the SMTP client checks before MAIL FROM
//! (`client/transaction.rs`).
//!
//! # Security
//! Each function is pure and fails closed: anything short of the conditions is a
//! failure. A `5.7.30` is permanent (RFC 8689 §5): trying later cannot make a server
//! offer what it does not, and the sender asked for the message not to go otherwise.
//!
//! # Standards
//! RFC 8689 §4.2.1 (the conditions), §5 (non-delivery), §7 (`5.7.30 REQUIRETLS support
//! required`).

use std::net::IpAddr;

use super::config::TlsLevel;

/// How the next hop's certificate was authenticated, when it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedBy {
    /// DANE TLSA records (RFC 7672): from DNS, or a local `dane`/`dane-only` policy.
    Dane,
    /// The recipient domain's MTA-STS policy in `enforce` mode (RFC 8461 §4.2: a chain to a
    /// trust anchor and an MX name the policy lists).
    MtaSts,
    /// A local `[[outbound.policy]]` with `tls = "fingerprint"`: a pinned certificate or
    /// public key matched.
    Fingerprint,
    /// Level `verify`: a chain to a trust anchor and the MX host name.
    Verify,
    /// Level `secure`: a chain to a trust anchor and the next-hop domain.
    Secure,
}

impl VerifiedBy {
    /// What a local TLS level gives when its check passed (`cert_verified`: the
    /// verifier's outcome was `Verified`). `None` for the levels that do not
    /// authenticate the server (`none`, `may`, `encrypt`), whatever the certificate.
    pub fn from_level(level: TlsLevel, cert_verified: bool) -> Option<VerifiedBy> {
        if !cert_verified {
            return None;
        }
        match level {
            TlsLevel::Fingerprint => Some(VerifiedBy::Fingerprint),
            TlsLevel::Dane | TlsLevel::DaneOnly => Some(VerifiedBy::Dane),
            TlsLevel::Verify => Some(VerifiedBy::Verify),
            TlsLevel::Secure => Some(VerifiedBy::Secure),
            TlsLevel::None | TlsLevel::May | TlsLevel::Encrypt => None,
        }
    }
}

/// Why a REQUIRETLS message may not go to a next hop. Every one is a permanent
/// `5.7.30` failure of the recipients; [`RequireTlsFailure::reason`] is the text the
/// queue records and the bounce shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequireTlsFailure {
    /// The MX answer was not DNSSEC-secure and no MTA-STS policy in `enforce` mode
    /// vouches for the MX names: the host may not be the recipient domain's.
    #[error("the MX records are not DNSSEC-signed and there is no MTA-STS policy in enforce mode")]
    MxNotAuthenticated,
    /// The certificate was not authenticated by DANE, MTA-STS or a local policy.
    #[error("the certificate of the next hop was not authenticated")]
    CertificateNotVerified,
    /// The session is not TLS (STARTTLS not offered, or a plaintext fallback).
    #[error("no TLS session with the next hop")]
    NoTls,
    /// The server did not offer REQUIRETLS in its EHLO reply after STARTTLS.
    #[error("the next hop did not offer REQUIRETLS")]
    NotOffered,
}

impl RequireTlsFailure {
    /// The recipient's failure reason: `5.7.30 REQUIRETLS: ...`, naming the next hop
    /// (`host[ip]`) and, where it matters, the recipient domain, with what would fix it.
    pub fn reason(&self, domain: &str, host: &str, ip: IpAddr) -> String {
        let hop = format!("{host}[{ip}]");
        let why = match self {
            RequireTlsFailure::MxNotAuthenticated => format!(
                "the MX records of {domain} are not DNSSEC-signed and {domain} has no MTA-STS policy in enforce mode, so next hop {hop} is not proven to be {domain}'s mail server"
            ),
            RequireTlsFailure::CertificateNotVerified => format!(
                "the certificate of next hop {hop} was not authenticated (that needs DANE, an MTA-STS policy in enforce mode, or a local fingerprint, verify, secure or dane policy for {domain})"
            ),
            RequireTlsFailure::NoTls => {
                format!("no TLS session with next hop {hop} (STARTTLS not offered or failed)")
            }
            RequireTlsFailure::NotOffered => {
                format!("next hop {hop} did not offer REQUIRETLS")
            }
        };
        format!("5.7.30 REQUIRETLS: {why}")
    }
}

/// What is known about a connection's next hop for conditions 1 and 2, recorded when the
/// session is set up ([`super::agent`]) and checked before `MAIL FROM` of a REQUIRETLS
/// message. The default knows nothing, and so fails closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HopAuth {
    /// The MX answer (and address answer) that named this host was DNSSEC-secure, or the
    /// host came from the configuration rather than from DNS.
    pub mx_secure: bool,
    /// The recipient domain's MTA-STS policy in `enforce` mode decided this host.
    pub sts_enforced: bool,
    /// How the certificate was authenticated, if it was.
    pub verified_by: Option<VerifiedBy>,
}

impl HopAuth {
    /// [`requiretls_allows`] for this hop.
    pub fn check(&self) -> Result<(), RequireTlsFailure> {
        requiretls_allows(self.mx_secure, self.sts_enforced, self.verified_by)
    }
}

/// Conditions 1 and 2 (see the module docs) for a REQUIRETLS message, once the TLS
/// handshake with the next hop is done.
///
/// - `mx_dnssec_secure`: the MX answer that named this host was DNSSEC-secure (the
///   weaker of the MX and address answers, as `resolve::Target::security` has it). For
///   a host that was not found by MX lookup (a `[[route]]` naming the host, whose name
///   comes from the configuration, not from DNS) pass `true`: RFC 8689 §4.2.1 asks this
///   only of MX-derived names, and the certificate check still applies.
/// - `sts_enforced`: the recipient domain has an MTA-STS policy in `enforce` mode and
///   this host matched its `mx` patterns.
/// - `cert_verified_by`: how the certificate was authenticated, `None` if it was not.
pub fn requiretls_allows(
    mx_dnssec_secure: bool,
    sts_enforced: bool,
    cert_verified_by: Option<VerifiedBy>,
) -> Result<(), RequireTlsFailure> {
    if !mx_dnssec_secure && !sts_enforced {
        return Err(RequireTlsFailure::MxNotAuthenticated);
    }
    if cert_verified_by.is_none() {
        return Err(RequireTlsFailure::CertificateNotVerified);
    }
    Ok(())
}

/// Condition 3: the session is TLS and the server offered REQUIRETLS in its EHLO reply
/// (the one after STARTTLS: the client replaces its capabilities at each EHLO).
pub fn next_hop_ready(tls_active: bool, offers_requiretls: bool) -> Result<(), RequireTlsFailure> {
    if !tls_active {
        return Err(RequireTlsFailure::NoTls);
    }
    if !offers_requiretls {
        return Err(RequireTlsFailure::NotOffered);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Option<VerifiedBy>; 6] = [
        None,
        Some(VerifiedBy::Dane),
        Some(VerifiedBy::MtaSts),
        Some(VerifiedBy::Fingerprint),
        Some(VerifiedBy::Verify),
        Some(VerifiedBy::Secure),
    ];

    #[test]
    fn every_combination() {
        for dnssec in [false, true] {
            for sts in [false, true] {
                for by in ALL {
                    let got = requiretls_allows(dnssec, sts, by);
                    let want = if !dnssec && !sts {
                        Err(RequireTlsFailure::MxNotAuthenticated)
                    } else if by.is_none() {
                        Err(RequireTlsFailure::CertificateNotVerified)
                    } else {
                        Ok(())
                    };
                    assert_eq!(got, want, "dnssec={dnssec} sts={sts} by={by:?}");
                }
            }
        }
    }

    #[test]
    fn levels_that_authenticate() {
        use TlsLevel::*;
        for level in [None, May, Encrypt] {
            assert_eq!(
                VerifiedBy::from_level(level, true),
                Option::None,
                "{level:?}"
            );
        }
        assert_eq!(
            VerifiedBy::from_level(Fingerprint, true),
            Some(VerifiedBy::Fingerprint)
        );
        assert_eq!(VerifiedBy::from_level(Dane, true), Some(VerifiedBy::Dane));
        assert_eq!(
            VerifiedBy::from_level(DaneOnly, true),
            Some(VerifiedBy::Dane)
        );
        assert_eq!(
            VerifiedBy::from_level(Verify, true),
            Some(VerifiedBy::Verify)
        );
        assert_eq!(
            VerifiedBy::from_level(Secure, true),
            Some(VerifiedBy::Secure)
        );
        for level in [Fingerprint, Dane, DaneOnly, Verify, Secure] {
            assert_eq!(VerifiedBy::from_level(level, false), Option::None);
        }
    }

    #[test]
    fn next_hop() {
        assert_eq!(next_hop_ready(true, true), Ok(()));
        assert_eq!(
            next_hop_ready(true, false),
            Err(RequireTlsFailure::NotOffered)
        );
        // A server that lists REQUIRETLS in plaintext is not believed.
        assert_eq!(next_hop_ready(false, true), Err(RequireTlsFailure::NoTls));
        assert_eq!(next_hop_ready(false, false), Err(RequireTlsFailure::NoTls));
    }

    #[test]
    fn reasons_are_5_7_30_and_name_the_hop() {
        let ip: IpAddr = "192.0.2.25".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(
            RequireTlsFailure::NotOffered.reason("example.org", "mx.example.org", ip),
            "5.7.30 REQUIRETLS: next hop mx.example.org[192.0.2.25] did not offer REQUIRETLS"
        );
        for f in [
            RequireTlsFailure::MxNotAuthenticated,
            RequireTlsFailure::CertificateNotVerified,
            RequireTlsFailure::NoTls,
            RequireTlsFailure::NotOffered,
        ] {
            let r = f.reason("example.org", "mx.example.org", ip);
            assert!(r.starts_with("5.7.30 REQUIRETLS: "), "{r}");
            assert!(r.contains("mx.example.org[192.0.2.25]"), "{r}");
            assert!(!f.to_string().is_empty());
        }
        let r = RequireTlsFailure::MxNotAuthenticated.reason("example.org", "mx", ip);
        assert!(
            r.contains("MX records of example.org are not DNSSEC-signed"),
            "{r}"
        );
    }
}
