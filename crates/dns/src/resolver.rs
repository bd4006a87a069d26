//! The resolver: hickory, configured from `[resolver]`, with typed, cached look-ups.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig as HConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rand::seq::SliceRandom;

use crate::answer::{Answer, MxAnswer, Security, Tlsa};
use crate::cache::{MAX_ENTRIES, MAX_TTL, TtlCache};
use crate::config::ResolverConfig;
use crate::error::{BuildError, LookupError};

/// Positive answers, kept with their status. Negative answers are cached by hickory
/// (RFC 2308), bounded by the same [`MAX_TTL`].
#[derive(Debug, Default)]
struct Caches {
    /// Sorted by preference, not yet shuffled: equals are shuffled on every use.
    mx: TtlCache<Box<str>, Answer<MxAnswer>>,
    addresses: TtlCache<Box<str>, Answer<Vec<IpAddr>>>,
    txt: TtlCache<Box<str>, Answer<Vec<Vec<u8>>>>,
    tlsa: TtlCache<Box<str>, Answer<Vec<Tlsa>>>,
}

/// The resolver every part of Postern uses. Clones share connections and caches.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    caches: Arc<Caches>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("mx_cached", &self.caches.mx.len())
            .field("addresses_cached", &self.caches.addresses.len())
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Explicit nameservers from `[resolver]` (UDP with TCP fallback, on their port), or
    /// the system configuration when the list is empty.
    pub fn new(cfg: &ResolverConfig) -> Result<Resolver, BuildError> {
        let mut builder = if cfg.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| BuildError::SystemConfig(e.to_string()))?
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
        opts.attempts = cfg.attempts.max(1);
        // Names in mail are absolute: never append search domains.
        opts.ndots = 0;
        // hickory's own cache obeys the same bounds as ours.
        opts.cache_size = MAX_ENTRIES as u64;
        opts.positive_max_ttl = Some(MAX_TTL);
        opts.negative_max_ttl = Some(MAX_TTL);
        let inner = builder
            .build()
            .map_err(|e| BuildError::Build(e.to_string()))?;
        Ok(Resolver {
            inner,
            caches: Arc::new(Caches::default()),
        })
    }

    /// The underlying hickory resolver, for libraries that take one (mail-auth's
    /// `MessageAuthenticator`). It shares connections and hickory's cache with `self`.
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The DNSSEC status of what hickory returned. The one place where validation (the
    /// AD bit of a trusted resolver, or hickory's own validator) will plug in: this
    /// release does not validate, so every answer is insecure.
    fn security(&self) -> Security {
        Security::Insecure
    }

    /// The MX list for `domain`: [`MxAnswer::Hosts`] by preference, random among equals.
    pub async fn mx(&self, domain: &str) -> Result<Answer<MxAnswer>, LookupError> {
        let key = cache_key(domain);
        let sorted = match self.caches.mx.get(&*key) {
            Some(a) => a,
            None => {
                let a = self.mx_uncached(domain).await?;
                self.caches.mx.insert(key, a.clone(), a.valid_until);
                a
            }
        };
        Ok(sorted.map(|m| match m {
            MxAnswer::Hosts(hosts) => MxAnswer::Hosts(shuffle_equals(hosts)),
            other => other,
        }))
    }

    async fn mx_uncached(&self, domain: &str) -> Result<Answer<MxAnswer>, LookupError> {
        let lookup = match self.inner.mx_lookup(absolute(domain)).await {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() && !e.is_nx_domain() => {
                return Ok(self.answer(MxAnswer::NoMx, None));
            }
            Err(e) => return Err(classify(e)),
        };
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
        let until = Some(lookup.valid_until());
        let records = match hosts.as_slice() {
            [] => MxAnswer::NoMx,
            [(_, h)] if h.is_empty() => MxAnswer::NullMx,
            _ => {
                // A "." exchange among others is meaningless (RFC 7505 §3): ignore it.
                hosts.retain(|(_, h)| !h.is_empty());
                hosts.sort();
                hosts.dedup();
                MxAnswer::Hosts(hosts)
            }
        };
        Ok(self.answer(records, until))
    }

    /// IPv4 and IPv6 addresses of a host, IPv6 first (as RFC 6724 prefers). An address
    /// literal (`192.0.2.1`, `[2001:db8::1]`) is its own answer.
    pub async fn addresses(&self, host: &str) -> Result<Answer<Vec<IpAddr>>, LookupError> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(self.answer(vec![ip], None));
        }
        let key = cache_key(host);
        if let Some(a) = self.caches.addresses.get(&*key) {
            return Ok(a);
        }
        let lookup = self
            .inner
            .lookup_ip(absolute(host))
            .await
            .map_err(classify)?;
        let mut v: Vec<IpAddr> = lookup.iter().collect();
        if v.is_empty() {
            return Err(LookupError::NoRecords);
        }
        v.sort_by_key(|ip| !ip.is_ipv6());
        v.dedup();
        let a = self.answer(v, Some(lookup.valid_until()));
        self.caches.addresses.insert(key, a.clone(), a.valid_until);
        Ok(a)
    }

    /// The TXT records of `name`, each record's character-strings joined.
    pub async fn txt(&self, name: &str) -> Result<Answer<Vec<Vec<u8>>>, LookupError> {
        let key = cache_key(name);
        if let Some(a) = self.caches.txt.get(&*key) {
            return Ok(a);
        }
        let lookup = self
            .inner
            .txt_lookup(absolute(name))
            .await
            .map_err(classify)?;
        let records: Vec<Vec<u8>> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.iter().flat_map(|s| s.iter().copied()).collect()),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return Err(LookupError::NoRecords);
        }
        let a = self.answer(records, Some(lookup.valid_until()));
        self.caches.txt.insert(key, a.clone(), a.valid_until);
        Ok(a)
    }

    /// The TLSA records for a TCP service on `host`: `_PORT._tcp.HOST` (RFC 6698 §3).
    pub async fn tlsa(&self, port: u16, host: &str) -> Result<Answer<Vec<Tlsa>>, LookupError> {
        let name = format!("_{port}._tcp.{}", host.trim_end_matches('.'));
        let key = cache_key(&name);
        if let Some(a) = self.caches.tlsa.get(&*key) {
            return Ok(a);
        }
        let lookup = self
            .inner
            .tlsa_lookup(absolute(&name))
            .await
            .map_err(classify)?;
        let records: Vec<Tlsa> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TLSA(t) => Some(Tlsa {
                    usage: t.cert_usage.into(),
                    selector: t.selector.into(),
                    matching: t.matching.into(),
                    data: t.cert_data.clone(),
                }),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return Err(LookupError::NoRecords);
        }
        let a = self.answer(records, Some(lookup.valid_until()));
        self.caches.tlsa.insert(key, a.clone(), a.valid_until);
        Ok(a)
    }

    fn answer<T>(&self, records: T, until: Option<std::time::Instant>) -> Answer<T> {
        let now = std::time::Instant::now();
        Answer {
            records,
            security: self.security(),
            valid_until: until.unwrap_or(now).min(now + MAX_TTL),
        }
    }
}

/// Hosts of equal preference in random order, each time (RFC 5321 §5.1).
fn shuffle_equals(mut hosts: Vec<(u16, String)>) -> Vec<(u16, String)> {
    hosts.shuffle(&mut rand::rng());
    hosts.sort_by_key(|(pref, _)| *pref);
    hosts
}

fn classify(e: NetError) -> LookupError {
    if e.is_nx_domain() {
        LookupError::NotFound
    } else if e.is_no_records_found() {
        LookupError::NoRecords
    } else {
        LookupError::Temporary(e.to_string())
    }
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn cache_key(name: &str) -> Box<str> {
    name.trim_end_matches('.').to_ascii_lowercase().into()
}
