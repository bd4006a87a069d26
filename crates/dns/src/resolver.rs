//! The resolver: hickory, configured from `[resolver]`, with typed, cached look-ups that
//! carry their DNSSEC status.
//!
//! Where the status comes from depends on `[resolver] dnssec`:
//! - `off`: hickory's resolver as configured; every answer is insecure.
//! - `trust-ad`: our own exchange ([`crate::exchange`]) asks with DO and AD and believes
//!   the AD bit, only from loopback nameservers; answers are cached here, negative ones
//!   too (RFC 2308: the SOA's TTL and minimum, at most [`MAX_TTL`]).
//! - `validate`: a second hickory resolver with its DNSSEC validator (`dnssec-aws-lc-rs`),
//!   from the built-in root keys or `trust_anchor`; every record carries hickory's proof.
//!
//! The plain hickory resolver ([`Resolver::hickory`]) is what mail-auth uses in every
//! mode: SPF, DKIM and DMARC do not depend on DNSSEC.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig as HConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;

use crate::answer::{Answer, MxAnswer, Security, Tlsa};
use crate::cache::{MAX_ENTRIES, MAX_TTL, TtlCache};
use crate::config::{DnssecMode, ResolverConfig};
use crate::error::{BuildError, LookupError};
use crate::exchange;
use crate::probe::{ProbeQuery, ProbeResult};

/// How long a negative answer without an SOA is remembered (`trust-ad` mode).
const NEGATIVE_DEFAULT: Duration = Duration::from_secs(60);
/// The longest CNAME chain followed in an answer.
const MAX_CNAMES: usize = 16;

/// Positive answers, kept with their status. Negative answers are cached by hickory
/// (RFC 2308), bounded by the same [`MAX_TTL`], and in `trust-ad` mode by `negative`.
#[derive(Debug, Default)]
struct Caches {
    /// Sorted by preference, not yet shuffled: equals are shuffled on every use.
    mx: TtlCache<Box<str>, Answer<MxAnswer>>,
    addresses: TtlCache<Box<str>, Answer<Vec<IpAddr>>>,
    txt: TtlCache<Box<str>, Answer<Vec<Vec<u8>>>>,
    tlsa: TtlCache<Box<str>, Answer<Vec<Tlsa>>>,
    /// `trust-ad` mode: NXDOMAIN / NODATA by `TYPE/name`.
    negative: TtlCache<Box<str>, Negative>,
    /// Why the start-up DNSSEC probe found validation not working, if it did and no
    /// secure answer has come since; `probe_failed` says whether it is set.
    unvalidated: std::sync::Mutex<Option<String>>,
    probe_failed: std::sync::atomic::AtomicBool,
}

/// Where statuses come from.
#[derive(Debug, Clone)]
enum Backend {
    Off,
    TrustAd {
        servers: Vec<SocketAddr>,
        /// Why the AD bit is not believed (a system nameserver off loopback), if so.
        untrusted: Option<String>,
    },
    Validate(Box<TokioResolver>),
}

#[derive(Debug)]
struct Settings {
    backend: Backend,
    timeout: Duration,
    attempts: usize,
    probe: Option<ProbeQuery>,
    nameservers: String,
}

/// The resolver every part of Postern uses. Clones share connections and caches.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    settings: Arc<Settings>,
    caches: Arc<Caches>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("dnssec", &self.mode().as_str())
            .field("mx_cached", &self.caches.mx.len())
            .field("addresses_cached", &self.caches.addresses.len())
            .finish_non_exhaustive()
    }
}

/// Read a trust anchor file: DNSKEY records in zone-file syntax (`. 3600 IN DNSKEY 257 3
/// 13 base64...`), at least one of them for the root.
pub fn load_trust_anchor(path: &Path) -> Result<TrustAnchors, BuildError> {
    let bad = |reason: String| BuildError::TrustAnchor {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let anchors: TrustAnchors = text.parse().map_err(|e| {
        bad(format!(
            "not DNSKEY records in zone-file syntax ({e}); expected lines such as \
             \". 3600 IN DNSKEY 257 3 8 AwEAA...\""
        ))
    })?;
    if anchors.is_empty() {
        return Err(bad("holds no DNSKEY record for the root \".\"".into()));
    }
    Ok(anchors)
}

fn hickory_builder(
    cfg: &ResolverConfig,
) -> Result<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>, BuildError> {
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
    Ok(builder)
}

/// The nameservers of /etc/resolv.conf (for `trust-ad` without explicit nameservers).
fn system_nameservers() -> Result<Vec<SocketAddr>, BuildError> {
    let (conf, _) = hickory_resolver::system_conf::read_system_conf()
        .map_err(|e| BuildError::SystemConfig(e.to_string()))?;
    let mut v: Vec<SocketAddr> = conf
        .name_servers()
        .iter()
        .map(|ns| {
            let port = ns.connections.first().map_or(53, |c| c.port);
            SocketAddr::new(ns.ip, port)
        })
        .collect();
    v.dedup();
    Ok(v)
}

impl Resolver {
    /// Explicit nameservers from `[resolver]` (UDP with TCP fallback, on their port), or
    /// the system configuration when the list is empty.
    pub fn new(cfg: &ResolverConfig) -> Result<Resolver, BuildError> {
        let inner = hickory_builder(cfg)?
            .build()
            .map_err(|e| BuildError::Build(e.to_string()))?;
        let backend = match cfg.dnssec {
            DnssecMode::Off => Backend::Off,
            DnssecMode::TrustAd => {
                let servers = if cfg.nameservers.is_empty() {
                    system_nameservers()?
                } else {
                    cfg.nameservers.clone()
                };
                let off_loopback: Vec<String> = servers
                    .iter()
                    .filter(|s| !s.ip().is_loopback())
                    .map(ToString::to_string)
                    .collect();
                let untrusted = if servers.is_empty() {
                    Some("no nameserver in /etc/resolv.conf".to_string())
                } else if off_loopback.is_empty() {
                    None
                } else {
                    Some(format!(
                        "nameserver {} (from /etc/resolv.conf) is not on loopback, so its AD \
                         bit is not trusted",
                        off_loopback.join(", ")
                    ))
                };
                Backend::TrustAd { servers, untrusted }
            }
            DnssecMode::Validate => {
                let mut b = hickory_builder(cfg)?;
                b.options_mut().validate = true;
                if let Some(path) = &cfg.trust_anchor {
                    b = b.with_trust_anchor(Arc::new(load_trust_anchor(path)?));
                }
                Backend::Validate(Box::new(
                    b.build().map_err(|e| BuildError::Build(e.to_string()))?,
                ))
            }
        };
        let nameservers = match &backend {
            Backend::TrustAd { servers, .. } => join(servers),
            _ if cfg.nameservers.is_empty() => "the nameservers of /etc/resolv.conf".into(),
            _ => join(&cfg.nameservers),
        };
        let probe = ProbeQuery::parse(&cfg.dnssec_probe)
            .map_err(|e| BuildError::Build(format!("[resolver] dnssec_probe: {e}")))?;
        Ok(Resolver {
            inner,
            settings: Arc::new(Settings {
                backend,
                timeout: cfg.timeout.get(),
                attempts: cfg.attempts.max(1),
                probe,
                nameservers,
            }),
            caches: Arc::new(Caches::default()),
        })
    }

    /// [`Resolver::new`], then the DNSSEC probe in the background (inside a Tokio runtime):
    /// its result is logged, as a warning when validation does not work. For the daemon.
    pub fn started(cfg: &ResolverConfig) -> Result<Resolver, BuildError> {
        let r = Resolver::new(cfg)?;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let probe = r.clone();
            handle.spawn(async move {
                let result = probe.probe_dnssec().await;
                probe.record_probe(&result);
                result.log();
            });
        }
        Ok(r)
    }

    /// The underlying hickory resolver, for libraries that take one (mail-auth's
    /// `MessageAuthenticator`). It shares connections and hickory's cache with `self`, and
    /// never validates DNSSEC (in any mode).
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// Remember what the probe found, for [`Resolver::validation_unavailable`].
    pub fn record_probe(&self, result: &ProbeResult) {
        let why = match result {
            ProbeResult::Insecure { reason, .. } | ProbeResult::Failed { reason, .. } => {
                Some(reason.clone())
            }
            _ => None,
        };
        self.caches
            .probe_failed
            .store(why.is_some(), std::sync::atomic::Ordering::Relaxed);
        *self
            .caches
            .unvalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// Why DNSSEC validation does not work, when the start-up probe
    /// ([`Resolver::started`]) found so and no answer has been secure since: delivery
    /// says it when DANE cannot apply.
    pub fn validation_unavailable(&self) -> Option<String> {
        self.caches
            .unvalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The configured `[resolver] dnssec` mode.
    pub fn mode(&self) -> DnssecMode {
        match self.settings.backend {
            Backend::Off => DnssecMode::Off,
            Backend::TrustAd { .. } => DnssecMode::TrustAd,
            Backend::Validate(_) => DnssecMode::Validate,
        }
    }

    /// Ask the probe question (`[resolver] dnssec_probe`) and say whether its answer is
    /// secure: whether DNSSEC validation works at all with this configuration.
    pub async fn probe_dnssec(&self) -> ProbeResult {
        let s = &self.settings;
        let mode = self.mode();
        let Some(q) = &s.probe else {
            return ProbeResult::NotConfigured { mode };
        };
        if let Backend::Off = s.backend {
            return ProbeResult::Off;
        }
        let question = q.to_string();
        let via = s.nameservers.clone();
        if let Backend::TrustAd {
            untrusted: Some(why),
            ..
        } = &s.backend
        {
            return ProbeResult::Insecure {
                mode,
                question,
                via,
                reason: why.clone(),
            };
        }
        match self.query(&q.name, q.rtype).await {
            Ok(raw) if raw.security == Security::Secure => ProbeResult::Secure {
                mode,
                question,
                via,
            },
            Ok(_) => ProbeResult::Insecure {
                mode,
                question,
                via,
                reason: match mode {
                    DnssecMode::Validate => {
                        "the answer does not validate as secure from the trust anchor".into()
                    }
                    _ => "the answer does not carry the AD bit: the resolver does not validate"
                        .into(),
                },
            },
            Err(Failure::Negative(n)) => ProbeResult::Insecure {
                mode,
                question,
                via,
                reason: format!("the probe name has no such records ({})", n.error),
            },
            Err(Failure::Error(e)) => ProbeResult::Failed {
                mode,
                question,
                via,
                reason: e.to_string(),
            },
        }
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
        let raw = match self.query(domain, RecordType::MX).await {
            Ok(raw) => raw,
            Err(Failure::Negative(n)) if n.error == LookupError::NoRecords => {
                // The domain exists without MX: the status of that denial is the status
                // of the implicit MX (RFC 7672 §2.2.1).
                return Ok(answer(MxAnswer::NoMx, n.security, None, None));
            }
            Err(f) => return Err(f.into()),
        };
        let mut hosts: Vec<(u16, String)> = raw
            .records
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, plain_name(&mx.exchange))),
                _ => None,
            })
            .collect();
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
        Ok(answer(
            records,
            raw.security,
            Some(raw.valid_until),
            raw.canonical,
        ))
    }

    /// IPv4 and IPv6 addresses of a host, IPv6 first (as RFC 6724 prefers). An address
    /// literal (`192.0.2.1`, `[2001:db8::1]`) is its own answer (insecure: nothing vouches
    /// for it). With DNSSEC on, the status is the weaker of the A and AAAA answers.
    pub async fn addresses(&self, host: &str) -> Result<Answer<Vec<IpAddr>>, LookupError> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(answer(vec![ip], Security::Insecure, None, None));
        }
        let key = cache_key(host);
        if let Some(a) = self.caches.addresses.get(&*key) {
            return Ok(a);
        }
        let a = match self.settings.backend {
            Backend::Off => self.addresses_plain(host).await?,
            _ => self.addresses_dnssec(host).await?,
        };
        self.caches.addresses.insert(key, a.clone(), a.valid_until);
        Ok(a)
    }

    async fn addresses_plain(&self, host: &str) -> Result<Answer<Vec<IpAddr>>, LookupError> {
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
        let canonical = Name::from_ascii(absolute(host)).ok().and_then(|q| {
            let (last, _) = follow(&q, RecordType::A, lookup.as_lookup().answers());
            canonical_of(&q, &last)
        });
        Ok(answer(
            v,
            Security::Insecure,
            Some(lookup.valid_until()),
            canonical,
        ))
    }

    async fn addresses_dnssec(&self, host: &str) -> Result<Answer<Vec<IpAddr>>, LookupError> {
        let (v6, v4) = tokio::join!(
            self.query(host, RecordType::AAAA),
            self.query(host, RecordType::A)
        );
        let mut ips = Vec::new();
        let mut security = Security::Secure;
        let mut until: Option<Instant> = None;
        let mut canonical = None;
        let mut worst: Option<LookupError> = None;
        for r in [v6, v4] {
            match r {
                Ok(raw) => {
                    ips.extend(raw.records.iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    }));
                    security = security.min(raw.security);
                    until = Some(until.map_or(raw.valid_until, |u| u.min(raw.valid_until)));
                    canonical = canonical.or(raw.canonical);
                }
                // A bogus half makes the whole host bogus (RFC 7672 §2.2.2).
                Err(Failure::Error(e @ LookupError::Bogus(_))) => return Err(e),
                Err(f) => {
                    let e: LookupError = f.into();
                    worst = Some(match worst {
                        Some(w) if severity(&w) >= severity(&e) => w,
                        _ => e,
                    });
                }
            }
        }
        if ips.is_empty() {
            return Err(worst.unwrap_or(LookupError::NoRecords));
        }
        ips.dedup();
        Ok(answer(ips, security, until, canonical))
    }

    /// The TXT records of `name`, each record's character-strings joined.
    pub async fn txt(&self, name: &str) -> Result<Answer<Vec<Vec<u8>>>, LookupError> {
        let key = cache_key(name);
        if let Some(a) = self.caches.txt.get(&*key) {
            return Ok(a);
        }
        let raw = self.query(name, RecordType::TXT).await?;
        let records: Vec<Vec<u8>> = raw
            .records
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.iter().flat_map(|s| s.iter().copied()).collect()),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return Err(LookupError::NoRecords);
        }
        let a = answer(records, raw.security, Some(raw.valid_until), raw.canonical);
        self.caches.txt.insert(key, a.clone(), a.valid_until);
        Ok(a)
    }

    /// The TLSA records for a TCP service on `host`: `_PORT._tcp.HOST` (RFC 6698 §3).
    /// [`Answer::canonical`] is the owner the records were found at when the TLSA name
    /// is a CNAME.
    pub async fn tlsa(&self, port: u16, host: &str) -> Result<Answer<Vec<Tlsa>>, LookupError> {
        let name = format!("_{port}._tcp.{}", host.trim_end_matches('.'));
        let key = cache_key(&name);
        if let Some(a) = self.caches.tlsa.get(&*key) {
            return Ok(a);
        }
        let raw = self.query(&name, RecordType::TLSA).await?;
        let records: Vec<Tlsa> = raw
            .records
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
        let a = answer(records, raw.security, Some(raw.valid_until), raw.canonical);
        self.caches.tlsa.insert(key, a.clone(), a.valid_until);
        Ok(a)
    }

    /// One question through the configured backend: the records of `rtype` at the end of
    /// any CNAME chain, the status of the whole chain, and the chain's final name.
    async fn query(&self, name: &str, rtype: RecordType) -> Result<Raw, Failure> {
        let r = self.query_once(name, rtype).await;
        // A secure answer shows validation works, whatever the start-up probe found.
        if let Ok(raw) = &r
            && raw.security == Security::Secure
            // A load first: no write to the shared flag on every secure answer.
            && self
                .caches
                .probe_failed
                .load(std::sync::atomic::Ordering::Relaxed)
            && self
                .caches
                .probe_failed
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            *self
                .caches
                .unvalidated
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
        }
        r
    }

    async fn query_once(&self, name: &str, rtype: RecordType) -> Result<Raw, Failure> {
        let qname = Name::from_ascii(absolute(name))
            .map_err(|e| Failure::Error(LookupError::Temporary(format!("bad name {name}: {e}"))))?;
        match &self.settings.backend {
            Backend::Off => {
                let lookup = self.inner.lookup(qname.clone(), rtype).await;
                let lookup = lookup.map_err(|e| Failure::from_net(e, Security::Insecure))?;
                raw_from(
                    &qname,
                    rtype,
                    lookup.answers(),
                    lookup.valid_until(),
                    |_| Security::Insecure,
                )
            }
            Backend::Validate(v) => {
                let lookup = v.lookup(qname.clone(), rtype).await;
                let lookup = lookup.map_err(Failure::from_validating)?;
                let raw = raw_from(&qname, rtype, lookup.answers(), lookup.valid_until(), |r| {
                    proof_status(r.proof)
                })?;
                if raw.security == Security::Bogus {
                    return Err(Failure::Error(LookupError::Bogus(format!(
                        "DNSSEC validation of {} {rtype} failed (bogus or indeterminate)",
                        qname.to_ascii()
                    ))));
                }
                Ok(raw)
            }
            Backend::TrustAd { servers, untrusted } => {
                self.query_trust_ad(&qname, rtype, servers, untrusted.is_none())
                    .await
            }
        }
    }

    async fn query_trust_ad(
        &self,
        qname: &Name,
        rtype: RecordType,
        servers: &[SocketAddr],
        trusted: bool,
    ) -> Result<Raw, Failure> {
        let neg_key: Box<str> = format!("{rtype}/{}", cache_key(&qname.to_ascii())).into();
        if let Some(n) = self.caches.negative.get(&*neg_key) {
            return Err(Failure::Negative(n));
        }
        let s = &self.settings;
        let m = exchange::exchange(servers, qname, rtype, s.timeout, s.attempts)
            .await
            .map_err(|e| Failure::Error(LookupError::Temporary(e.to_string())))?;
        let security = if trusted && m.metadata.authentic_data {
            Security::Secure
        } else {
            Security::Insecure
        };
        let negative = |error: LookupError| {
            let ttl = m
                .authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                    _ => None,
                })
                .map_or(NEGATIVE_DEFAULT, |t| Duration::from_secs(u64::from(t)));
            let n = Negative { error, security };
            self.caches
                .negative
                .insert(neg_key.clone(), n.clone(), Instant::now() + ttl);
            Failure::Negative(n)
        };
        match m.metadata.response_code {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => return Err(negative(LookupError::NotFound)),
            ResponseCode::ServFail => {
                return Err(Failure::Error(match exchange::extended_error(&m) {
                    Some((code, text)) if exchange::is_dnssec_failure(code) => {
                        LookupError::Bogus(format!(
                            "the validating resolver refused {} {rtype}: DNSSEC validation \
                             failed (extended error {code}: {text})",
                            qname.to_ascii()
                        ))
                    }
                    _ => LookupError::Temporary(format!(
                        "SERVFAIL from the resolver for {} {rtype} (the zone's servers failed, \
                         or DNSSEC validation failed: the resolver did not say which)",
                        qname.to_ascii()
                    )),
                }));
            }
            other => {
                return Err(Failure::Error(LookupError::Temporary(format!(
                    "the resolver answered {other} for {} {rtype}",
                    qname.to_ascii()
                ))));
            }
        }
        let until = Instant::now() + MAX_TTL;
        match raw_from(qname, rtype, &m.answers, until, |_| security) {
            Err(Failure::Negative(_)) => Err(negative(LookupError::NoRecords)),
            other => other,
        }
    }
}

/// What one question gave: records of the type asked (after CNAMEs), status, lifetime.
#[derive(Debug)]
struct Raw {
    records: Vec<Record>,
    security: Security,
    valid_until: Instant,
    canonical: Option<String>,
}

/// A negative answer and the status of its denial.
#[derive(Debug, Clone)]
struct Negative {
    error: LookupError,
    security: Security,
}

#[derive(Debug)]
enum Failure {
    Negative(Negative),
    Error(LookupError),
}

impl From<Failure> for LookupError {
    fn from(f: Failure) -> LookupError {
        match f {
            Failure::Negative(n) => n.error,
            Failure::Error(e) => e,
        }
    }
}

impl Failure {
    fn from_net(e: NetError, security: Security) -> Failure {
        match classify(e) {
            e @ (LookupError::NotFound | LookupError::NoRecords) => {
                Failure::Negative(Negative { error: e, security })
            }
            e => Failure::Error(e),
        }
    }

    /// hickory's validator reports negative answers with the proof of their denial.
    fn from_validating(e: NetError) -> Failure {
        match &e {
            NetError::Dns(DnsError::Nsec {
                proof, response, ..
            }) => {
                let security = proof_status(*proof);
                if security == Security::Bogus {
                    return Failure::Error(LookupError::Bogus(format!(
                        "DNSSEC validation of a negative answer failed ({proof})"
                    )));
                }
                let error = if response.response_code == ResponseCode::NXDomain {
                    LookupError::NotFound
                } else {
                    LookupError::NoRecords
                };
                Failure::Negative(Negative { error, security })
            }
            NetError::Dns(DnsError::DnssecBogus) => {
                Failure::Error(LookupError::Bogus("DNSSEC validation failed".into()))
            }
            // A validated positive denial arrives as a plain "no records" (secure proof).
            _ if e.is_no_records_found() => Failure::from_net(e, Security::Secure),
            _ => Failure::from_net(e, Security::Insecure),
        }
    }
}

fn proof_status(p: Proof) -> Security {
    match p {
        Proof::Secure => Security::Secure,
        Proof::Insecure => Security::Insecure,
        _ => Security::Bogus,
    }
}

/// Follow the CNAME chain from `qname` in `answers`: the last name, and the records that
/// make up the chain (CNAMEs and the final records of `rtype`).
fn follow<'a>(qname: &Name, rtype: RecordType, answers: &'a [Record]) -> (Name, Vec<&'a Record>) {
    let mut current = qname.to_lowercase();
    let mut used = Vec::new();
    for _ in 0..MAX_CNAMES {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if rtype != RecordType::CNAME && r.name.to_lowercase() == current => {
                Some((r, c.0.to_lowercase()))
            }
            _ => None,
        });
        match next {
            Some((r, target)) => {
                used.push(r);
                current = target;
            }
            None => break,
        }
    }
    used.extend(
        answers
            .iter()
            .filter(|r| r.record_type() == rtype && r.name.to_lowercase() == current),
    );
    (current, used)
}

fn canonical_of(qname: &Name, last: &Name) -> Option<String> {
    (qname.to_lowercase() != *last).then(|| plain_name(last))
}

/// Records of `rtype` after the chain; the status is the weakest of the chain.
fn raw_from(
    qname: &Name,
    rtype: RecordType,
    answers: &[Record],
    valid_until: Instant,
    status: impl Fn(&Record) -> Security,
) -> Result<Raw, Failure> {
    let (last, chain) = follow(qname, rtype, answers);
    let records: Vec<Record> = chain
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| (*r).clone())
        .collect();
    let security = chain
        .iter()
        .map(|r| status(r))
        .fold(Security::Secure, Security::min);
    if records.is_empty() {
        return Err(Failure::Negative(Negative {
            error: LookupError::NoRecords,
            security,
        }));
    }
    let min_ttl = chain.iter().map(|r| r.ttl).min().unwrap_or(0);
    let until = valid_until.min(Instant::now() + Duration::from_secs(u64::from(min_ttl)));
    Ok(Raw {
        records,
        security,
        valid_until: until,
        canonical: canonical_of(qname, &last),
    })
}

fn answer<T>(
    records: T,
    security: Security,
    until: Option<Instant>,
    canonical: Option<String>,
) -> Answer<T> {
    let now = Instant::now();
    Answer {
        records,
        security,
        valid_until: until.unwrap_or(now).min(now + MAX_TTL),
        canonical,
    }
}

/// How bad an error is, to report the worst of the A and AAAA look-ups.
fn severity(e: &LookupError) -> u8 {
    match e {
        LookupError::NotFound => 0,
        LookupError::NoRecords => 1,
        LookupError::Temporary(_) => 2,
        LookupError::Bogus(_) => 3,
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

/// Lower case, without the trailing dot ("" for the root).
fn plain_name(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

fn cache_key(name: &str) -> Box<str> {
    name.trim_end_matches('.').to_ascii_lowercase().into()
}

fn join(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
