//! Who may send mail where.

use std::collections::HashSet;
use std::net::IpAddr;

use postern_config::Cidr;
use postern_smtp::address::Domain;

use crate::RelayConfig;

/// The relay decision, from `[relay]`.
#[derive(Debug, Clone)]
pub struct RelayPolicy {
    local_domains: HashSet<String>,
    first_local: Option<String>,
    trusted: Vec<Cidr>,
    trusted_certs: Vec<String>,
}

/// Why a recipient is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// For one of our domains.
    Local,
    /// The client is in a trusted network.
    TrustedClient,
}

impl RelayPolicy {
    pub fn new(cfg: &RelayConfig) -> RelayPolicy {
        let local: Vec<String> = cfg
            .local_domains
            .iter()
            .map(|d| postern_config::comparable(d))
            .collect();
        RelayPolicy {
            first_local: local.first().cloned(),
            local_domains: local.into_iter().collect(),
            trusted: cfg.trusted_networks.clone(),
            trusted_certs: cfg
                .trusted_client_certificates
                .iter()
                .map(|f| f.to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn is_local(&self, domain: &Domain) -> bool {
        match domain {
            // UTS #46: `bücher.example`, `BÜCHER.example` and its `xn--` form are one (#11).
            Domain::Name(n) => self.local_domains.contains(&postern_config::comparable(n)),
            Domain::Literal(_) => false,
        }
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// May `client` send mail to `domain`? `None`: relay access denied.
    pub fn check(&self, client: IpAddr, domain: &Domain) -> Option<Permit> {
        if self.is_local(domain) {
            Some(Permit::Local)
        } else if self.is_trusted(client) {
            Some(Permit::TrustedClient)
        } else {
            None
        }
    }

    /// Is this client certificate trusted for relaying (by fingerprint)?
    pub fn trusts_certificate(&self, cert: &postern_tls::PresentedCert) -> bool {
        cert.matches_fingerprint(&self.trusted_certs)
    }

    /// The domain `<postmaster>` is delivered to.
    pub fn postmaster_domain(&self) -> Option<&str> {
        self.first_local.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let p = RelayPolicy::new(&RelayConfig {
            local_domains: vec!["Local.Test".into()],
            trusted_networks: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        });
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let local = Domain::Name("local.test".into());
        let remote = Domain::Name("remote.test".into());
        assert_eq!(p.check(outside, &local), Some(Permit::Local));
        assert_eq!(p.check(outside, &remote), None);
        assert_eq!(p.check(inside, &remote), Some(Permit::TrustedClient));
        assert_eq!(
            p.check(outside, &Domain::Literal("192.0.2.9".parse().unwrap())),
            None
        );
        assert_eq!(
            p.check(outside, &Domain::Name("sub.local.test".into())),
            None
        );
        assert_eq!(p.postmaster_domain(), Some("local.test"));
    }

    #[test]
    fn idn_local_domains_match_in_every_spelling() {
        let p = RelayPolicy::new(&RelayConfig {
            local_domains: vec!["Bücher.Example".into()],
            ..Default::default()
        });
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        for d in ["bücher.example", "BÜCHER.EXAMPLE", "xn--bcher-kva.example"] {
            assert_eq!(
                p.check(outside, &Domain::Name(d.into())),
                Some(Permit::Local),
                "{d}"
            );
        }
    }
}
