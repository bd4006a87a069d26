//! DNS for delivery: MX lists (RFC 5321 §5.1, RFC 7505 null MX) and host addresses.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig as HConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rand::seq::SliceRandom;

use super::config::ResolverConfig;

/// What an MX lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// Exchanges in the order to try them: by preference, random among equals.
    Hosts(Vec<(u16, String)>),
    /// `MX 0 .`: the domain accepts no mail (RFC 7505).
    NullMx,
    /// The domain exists but has no MX: use its own address (implicit MX).
    NoMx,
}

/// Why a lookup gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsFailure {
    /// The name does not exist (NXDOMAIN): permanent.
    NotFound,
    /// The name exists but has no records of the type asked for.
    NoRecords,
    /// Timeout, SERVFAIL, network error: try again later.
    Temporary(String),
}

/// The resolver used for delivery.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

impl Dns {
    /// Explicit nameservers from `[resolver]`, or the system configuration.
    pub fn new(cfg: &ResolverConfig) -> Result<Dns, String> {
        let mut builder = if cfg.nameservers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?
        } else {
            let servers = cfg
                .nameservers
                .iter()
                .map(|sa| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = sa.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = sa.port();
                    NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                HConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.timeout = cfg.timeout.get();
        opts.attempts = 2;
        // Names in mail are absolute: never append search domains.
        opts.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|e| format!("cannot build the DNS resolver: {e}"))?;
        Ok(Dns { resolver })
    }

    fn absolute(name: &str) -> String {
        if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        }
    }

    /// The MX list for `domain`.
    pub async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsFailure> {
        match self.resolver.mx_lookup(Self::absolute(domain)).await {
            Ok(lookup) => {
                let mut hosts: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange
                                .to_ascii()
                                .trim_end_matches('.')
                                .to_ascii_lowercase(),
                        )),
                        _ => None,
                    })
                    .collect();
                if hosts.is_empty() {
                    return Ok(MxAnswer::NoMx);
                }
                if hosts.len() == 1 && hosts[0].1.is_empty() {
                    return Ok(MxAnswer::NullMx);
                }
                // A "." exchange among others is meaningless (RFC 7505 §3): ignore it.
                hosts.retain(|(_, h)| !h.is_empty());
                hosts.shuffle(&mut rand::rng());
                hosts.sort_by_key(|(pref, _)| *pref);
                Ok(MxAnswer::Hosts(hosts))
            }
            Err(e) if e.is_nx_domain() => Err(DnsFailure::NotFound),
            Err(e) if e.is_no_records_found() => Ok(MxAnswer::NoMx),
            Err(e) => Err(DnsFailure::Temporary(e.to_string())),
        }
    }

    /// IPv4 and IPv6 addresses of a host (IPv6 first when both exist, as RFC 6724 prefers).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        match self.resolver.lookup_ip(Self::absolute(host)).await {
            Ok(l) => {
                let mut v: Vec<IpAddr> = l.iter().collect();
                v.sort_by_key(|ip| !ip.is_ipv6());
                if v.is_empty() {
                    Err(DnsFailure::NoRecords)
                } else {
                    Ok(v)
                }
            }
            Err(e) if e.is_nx_domain() => Err(DnsFailure::NotFound),
            Err(e) if e.is_no_records_found() => Err(DnsFailure::NoRecords),
            Err(e) => Err(DnsFailure::Temporary(e.to_string())),
        }
    }
}
