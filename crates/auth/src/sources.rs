//! Who may have mail DKIM-signed with our keys: `[[auth.dkim_sign]] sources`.
//!
//! # Security
//! Signing is a stronger statement than relaying: a signature says "this domain sent
//! it". Permission to relay (`[relay] trusted_networks`, a partner's `may_relay`) is
//! therefore not permission to sign. Each key lists the clients whose mail it may sign;
//! with no list it signs only Postern's own reports (bounces, delivery reports), never a
//! client's mail (like OpenDKIM's `InternalHosts` with a `SigningTable`: both must allow).

use std::net::IpAddr;

use postern_config::Cidr;

/// One entry of `sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignSourceRule {
    /// `"trusted_networks"`: a client in `[relay] trusted_networks`.
    TrustedNetworks,
    /// `"local"`: a client on this machine's loopback (local programs, `postern sendmail`).
    Local,
    /// `"relay_certificates"`: a client whose certificate lets it relay (a partner with
    /// `may_relay`, or `[relay] trusted_client_certificates`).
    RelayCertificates,
    /// `"192.0.2.0/24"`, `"2001:db8::/32"`, `"192.0.2.7"`: clients in that network.
    Network(Cidr),
}

impl std::str::FromStr for SignSourceRule {
    type Err = postern_config::InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "trusted_networks" => Ok(SignSourceRule::TrustedNetworks),
            "local" => Ok(SignSourceRule::Local),
            "relay_certificates" => Ok(SignSourceRule::RelayCertificates),
            other => {
                let cidr = if other.contains('/') {
                    other.parse::<Cidr>().ok()
                } else {
                    other.parse::<IpAddr>().ok().and_then(|ip| {
                        let bits = if ip.is_ipv4() { 32 } else { 128 };
                        format!("{ip}/{bits}").parse::<Cidr>().ok()
                    })
                };
                cidr.map(SignSourceRule::Network).ok_or_else(|| {
                    format!(
                        "{other:?} is not a source: write \"trusted_networks\", \"local\", \"relay_certificates\" or a network such as \"192.0.2.0/24\""
                    )
                    .into()
                })
            }
        }
    }
}

/// The client a message came from, as far as signing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignSource {
    pub ip: IpAddr,
    /// In `[relay] trusted_networks`.
    pub trusted_network: bool,
    /// Presented a certificate that lets it relay.
    pub relay_certificate: bool,
}

impl SignSourceRule {
    pub fn allows(&self, s: &SignSource) -> bool {
        match self {
            SignSourceRule::TrustedNetworks => s.trusted_network,
            SignSourceRule::Local => s.ip.to_canonical().is_loopback(),
            SignSourceRule::RelayCertificates => s.relay_certificate,
            SignSourceRule::Network(c) => c.contains(s.ip.to_canonical()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rules() {
        let src = |ip: &str, t: bool, c: bool| SignSource {
            ip: ip.parse().unwrap(),
            trusted_network: t,
            relay_certificate: c,
        };
        let r = |s: &str| s.parse::<SignSourceRule>().unwrap();
        assert!(r("local").allows(&src("127.0.0.1", false, false)));
        assert!(!r("local").allows(&src("192.0.2.1", true, true)));
        assert!(r("trusted_networks").allows(&src("10.0.0.1", true, false)));
        assert!(!r("trusted_networks").allows(&src("10.0.0.1", false, true)));
        assert!(r("relay_certificates").allows(&src("192.0.2.1", false, true)));
        assert!(r("192.0.2.0/24").allows(&src("192.0.2.9", false, false)));
        assert!(r("192.0.2.7").allows(&src("192.0.2.7", false, false)));
        assert!(!r("192.0.2.7").allows(&src("192.0.2.8", false, false)));
        assert!("everyone".parse::<SignSourceRule>().is_err());
    }
}
