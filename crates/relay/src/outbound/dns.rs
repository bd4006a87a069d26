//! Compatibility shim (#10): DNS for delivery lives in `postern-dns`. These names keep the
//! old paths (`postern_relay::outbound::dns::{Dns, DnsFailure, MxAnswer}`) working for code
//! not yet moved to [`postern_dns::Resolver`]; the lead removes them. New code uses
//! `postern_dns` directly, where every answer carries its DNSSEC status.

use std::net::IpAddr;

use postern_dns::{BuildError, Resolver, ResolverConfig};
pub use postern_dns::{LookupError as DnsFailure, MxAnswer};

/// The shared resolver with the old answer shapes (records without their status).
#[derive(Debug, Clone)]
pub struct Dns(Resolver);

impl Dns {
    /// Explicit nameservers from `[resolver]`, or the system configuration.
    pub fn new(cfg: &ResolverConfig) -> Result<Dns, BuildError> {
        Resolver::new(cfg).map(Dns)
    }

    /// The resolver underneath.
    pub fn resolver(&self) -> &Resolver {
        &self.0
    }

    /// The MX list for `domain`.
    pub async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsFailure> {
        self.0.mx(domain).await.map(|a| a.records)
    }

    /// IPv4 and IPv6 addresses of a host (IPv6 first).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        self.0.addresses(host).await.map(|a| a.records)
    }
}

impl From<Resolver> for Dns {
    fn from(r: Resolver) -> Dns {
        Dns(r)
    }
}
