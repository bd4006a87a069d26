//! The SMTP delivery agent: from a next hop to a delivered (or failed) recipient list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_queue::{DeliveryOutcome, Outcome, QueuedMessage};
use rustls::crypto::CryptoProvider;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::client::{Client, ClientError, Peer, Timeouts};
use super::config::{OutboundConfig, TlsLevel};
use super::engine::{self, DaneStatus, HostDecision, HostTls, Source, StsLookup};
use super::policy::{Policies, Policy};
use super::requiretls::VerifiedBy;
use super::resolve::{Limits, Target};
use postern_dns::Resolver;
use postern_tls::client::{Expect, PeerTrust, PeerVerifier, client_config};

/// Where an SMTP delivery goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpHop {
    /// Domain (MX lookup) or host.
    pub host: String,
    pub port: Option<u16>,
    /// `true`: look up MX records for `host`; `false`: connect to `host` itself.
    pub mx: bool,
}

impl SmtpHop {
    /// The next-hop name certificates are checked against (`nexthop`, `dot-nexthop`).
    pub fn tls_name(&self) -> String {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }
}

/// Idle connections are kept per next hop and recipient domain (the policy key).
type PoolKey = (SmtpHop, String);
type Pool = Arc<Mutex<HashMap<PoolKey, Vec<(Instant, Client)>>>>;

/// Most idle connections kept per pool key (docs/routing.md); more are closed with QUIT.
const MAX_IDLE_PER_KEY: usize = 4;

/// Delivers over SMTP with per-destination TLS policy, connection reuse and limits.
pub struct SmtpAgent {
    cfg: OutboundConfig,
    helo: String,
    dns: Resolver,
    /// Replaced whole on SIGHUP ([`SmtpAgent::replace_policies`]); deliveries in progress
    /// keep the policy they started with.
    policies: std::sync::RwLock<Arc<Policies>>,
    provider: Arc<CryptoProvider>,
    /// Idle connections; each is closed with QUIT once `connection_reuse_time` passes.
    pool: Pool,
    limits: Mutex<HashMap<SmtpHop, Arc<Semaphore>>>,
    /// Our listeners: a delivery there would be a loop (`crate::loops`).
    own: crate::loops::OwnAddresses,
    /// Where MTA-STS policies come from ([`super::mta_sts::install`]).
    sts: std::sync::RwLock<Option<Arc<dyn StsLookup>>>,
    /// The MTA-STS cache behind `sts`, whose refresher the daemon runs.
    mta_sts: std::sync::RwLock<Option<Arc<postern_sts::lookup::Sts>>>,
    /// Who hears each session's TLS outcome (the report store; [`super::observe`]).
    observer: super::observe::Slot,
}

impl std::fmt::Debug for SmtpAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpAgent")
            .field("helo", &self.helo)
            .finish_non_exhaustive()
    }
}

impl SmtpAgent {
    pub fn new(cfg: OutboundConfig, helo: String, dns: Resolver, policies: Policies) -> SmtpAgent {
        SmtpAgent {
            cfg,
            helo,
            dns,
            policies: std::sync::RwLock::new(Arc::new(policies)),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            pool: Arc::new(Mutex::new(HashMap::new())),
            limits: Mutex::new(HashMap::new()),
            own: crate::loops::OwnAddresses::default(),
            sts: std::sync::RwLock::new(None),
            mta_sts: std::sync::RwLock::new(None),
            observer: std::sync::RwLock::new(None),
        }
    }

    /// Plug in the observer of TLS session outcomes ([`super::observe::TlsObserver`]).
    pub fn set_observer(&self, o: Option<Arc<dyn super::observe::TlsObserver>>) {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = o;
    }

    /// Whether DNSSEC answers can be secure (`[resolver] dnssec` is not `off`): without
    /// it DANE cannot apply.
    pub fn dnssec(&self) -> bool {
        self.dns.mode() != postern_dns::DnssecMode::Off
    }

    /// Plug in the MTA-STS policy source ([`engine::decide`] consults it below DANE).
    pub fn set_sts(&self, sts: Option<Arc<dyn StsLookup>>) {
        *self.sts.write().unwrap_or_else(|p| p.into_inner()) = sts;
    }

    /// The MTA-STS lookup and cache installed by [`super::mta_sts::install`] (the daemon
    /// runs its refresher).
    pub fn mta_sts(&self) -> Option<Arc<postern_sts::lookup::Sts>> {
        self.mta_sts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_mta_sts(&self, sts: Option<Arc<postern_sts::lookup::Sts>>) {
        *self.mta_sts.write().unwrap_or_else(|p| p.into_inner()) = sts;
    }

    /// The MTA-STS policy for `domain`, when a source is plugged in and no explicit
    /// `[[outbound.policy]]` entry makes it irrelevant.
    pub async fn sts_policy(&self, domain: &str, policy: &Policy) -> Option<engine::StsPolicy> {
        if policy.explicit || domain.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        let sts = self.sts.read().unwrap_or_else(|p| p.into_inner()).clone()?;
        sts.policy(domain).await
    }

    /// [`SmtpAgent::sts_policy`] from the cache only (no DNS, no HTTPS).
    pub fn sts_cached(&self, domain: &str, policy: &Policy) -> Option<engine::StsPolicy> {
        if policy.explicit || domain.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        let sts = self.sts.read().unwrap_or_else(|p| p.into_inner()).clone()?;
        sts.cached(domain)
    }

    /// The TLS requirement for one host of `hop`: what DANE finds for it, then
    /// [`engine::decide`]. `policy explain` calls this same function.
    pub async fn host_tls(
        &self,
        policy: &Arc<Policy>,
        sts: Option<&engine::StsPolicy>,
        hop: &SmtpHop,
        target: &Target,
    ) -> (DaneStatus, HostDecision) {
        let dane = engine::dane_status(
            &self.dns,
            policy.level,
            self.dnssec(),
            target.security,
            &target.peer.host,
            target.peer.port,
            target.domain_alias.as_deref(),
        )
        .await;
        let decision = engine::decide(
            policy,
            &dane,
            sts,
            &hop.tls_name(),
            &target.peer.host,
            target.peer.port,
        );
        // A host without DANE because its records are not DNSSEC-secure: if the
        // start-up probe found validation not working, that is the likely cause: say so.
        let decision = match decision {
            HostDecision::Skip {
                reason,
                metric,
                source: Source::Dane,
            } if matches!(dane, DaneStatus::InsecureHost) => {
                let reason = match self.dns.validation_unavailable() {
                    Some(why) => format!(
                        "{reason}; DNSSEC validation unavailable at start-up (the probe: {why})"
                    ),
                    None => reason,
                };
                HostDecision::Skip {
                    reason,
                    metric,
                    source: Source::Dane,
                }
            }
            d => d,
        };
        (dane, decision)
    }

    pub fn policies(&self) -> Arc<Policies> {
        self.policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Use newly loaded policies (CAs, client certificates, pins) from now on.
    pub fn replace_policies(&self, policies: Policies) {
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policies);
    }

    /// Re-read the policies' CA files and client certificates (SIGHUP). If any fails to
    /// load, the old policies stay in use and the log says why; `false` then.
    pub fn reload_policies(&self, outbound: &OutboundConfig) -> bool {
        let mut problems = postern_config::Problems::new();
        let policies = Policies::load(outbound, &self.provider, &mut problems);
        if problems.is_empty() {
            self.replace_policies(policies);
            info!("outbound TLS policies reloaded (CA files, client certificates)");
            return true;
        }
        let errs: Vec<String> = problems
            .locate_in("(reload)", "")
            .iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect();
        warn!(
            "outbound TLS policies NOT reloaded, the previous ones stay in use: {}",
            errs.join("; ")
        );
        false
    }

    /// Our listening addresses; deliveries to them are refused as loops.
    pub fn own_addresses(&self) -> &crate::loops::OwnAddresses {
        &self.own
    }

    pub fn dns(&self) -> &Resolver {
        &self.dns
    }

    /// The TLS policy delivery applies to mail for `domain` (the policy key of
    /// [`crate::route::Decision`]).
    pub fn policy_for(&self, domain: &str) -> Arc<Policy> {
        self.policies().lookup(domain).clone()
    }

    /// The port delivery connects to for `hop`.
    pub fn port(&self, hop: &SmtpHop) -> u16 {
        hop.port.unwrap_or(self.cfg.port)
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.cfg.connect_timeout.get(),
            greeting: self.cfg.greeting_timeout.get(),
            command: self.cfg.command_timeout.get(),
            data_end: self.cfg.data_timeout.get(),
        }
    }

    /// The hosts to try for a hop, in order, under `[outbound] resolve_timeout` and
    /// `max_mx_hosts` (see [`super::resolve`]). `Err` is the outcome for every recipient.
    pub async fn targets(&self, hop: &SmtpHop, domain: &str) -> Result<Vec<Target>, Outcome> {
        let limits = Limits {
            port: hop.port.unwrap_or(self.cfg.port),
            max_mx_hosts: self.cfg.max_mx_hosts,
            timeout: self.cfg.resolve_timeout.get(),
        };
        super::resolve::targets(&self.dns, hop, domain, limits).await
    }

    /// Deliver `rcpts` of `msg` (all in `domain`) through `hop`. `named`: a `[[route]]`
    /// names this hop, so its addresses are used even when they are our own.
    pub async fn deliver(
        &self,
        hop: &SmtpHop,
        domain: &str,
        msg: &QueuedMessage,
        rcpts: &[usize],
        named: bool,
    ) -> Vec<DeliveryOutcome> {
        let limit = {
            let mut l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
            l.entry(hop.clone())
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(self.cfg.max_connections_per_destination))
                })
                .clone()
        };
        let _permit = limit.acquire_owned().await.ok();
        // The clock starts once this attempt may connect: waiting for a connection slot
        // to the destination is not the destination's fault.
        let limit = self.cfg.attempt_timeout.get();
        match tokio::time::timeout(limit, self.attempt(hop, domain, msg, rcpts, named)).await {
            Ok(outcomes) => outcomes,
            Err(_) => {
                let id = msg.envelope.id;
                let why = format!(
                    "4.4.2 delivery attempt via {} for {domain} did not finish within [outbound] attempt_timeout ({})",
                    hop.host, self.cfg.attempt_timeout
                );
                warn!(queue_id = %id, "{id}: {why}; the mail waits in the queue");
                wrap(
                    "none",
                    vec![Outcome::Temporary(crate::detail::local(why)); rcpts.len()],
                )
            }
        }
    }

    /// One attempt: a pooled connection, or resolution and the hosts in order.
    async fn attempt(
        &self,
        hop: &SmtpHop,
        domain: &str,
        msg: &QueuedMessage,
        rcpts: &[usize],
        named: bool,
    ) -> Vec<DeliveryOutcome> {
        let policy = self.policy_for(domain);
        let nexthop = hop.tls_name();
        let id = msg.envelope.id;
        let key = (hop.clone(), domain.to_string());

        // A connection kept from the previous message to this destination?
        if let Some(mut c) = self.take_pooled(&key) {
            if c.reset().await {
                if let Ok(outcomes) = c.transaction(msg, rcpts).await {
                    super::metrics::delivered(&c, &outcomes);
                    let relay = c.peer.to_string();
                    self.put_pooled(key, c);
                    return wrap(&relay, outcomes);
                }
            } else {
                c.quit().await;
            }
        }

        let peers = match self.targets(hop, domain).await {
            Ok(p) => p,
            Err(o) => return wrap("none", vec![o; rcpts.len()]),
        };
        let peers = match self.without_self(peers, domain, named, &id.to_string()) {
            Ok(p) => p,
            Err(o) => return wrap("none", vec![o; rcpts.len()]),
        };
        let mut last = String::from("4.4.1 no host could be reached");
        // RFC 8689 §5: `TLS-Required: No` waives the recipient domain's DANE and MTA-STS
        // policies for this message, never a local `[[outbound.policy]]` entry.
        let relaxed = msg.envelope.sender_tls == postern_queue::SenderTls::TlsOptional
            && self.cfg.honour_tls_required_no
            && !policy.explicit;
        // MTA-STS is about the MX hosts of the recipient domain: not for a route to a
        // configured host. Under `TLS-Required: No` only a cached policy is used, so
        // that the log says what the header waived (`tls_required_no`) without waiting
        // on DNS or HTTPS for a policy that does not apply.
        let sts = if !(hop.mx && hop.host.eq_ignore_ascii_case(domain)) {
            None
        } else if relaxed {
            self.sts_cached(domain, &policy)
        } else {
            self.sts_policy(domain, &policy).await
        };
        let mut decided: HashMap<String, (DaneStatus, HostDecision)> = HashMap::new();
        for target in peers {
            let peer = target.peer.clone();
            let (dane, decision) = match decided.get(&peer.host) {
                Some(d) => d.clone(),
                None => {
                    let d = self.host_tls(&policy, sts.as_ref(), hop, &target).await;
                    decided.insert(peer.host.clone(), d.clone());
                    d
                }
            };
            let decision = if relaxed {
                tls_required_no(decision, &policy, &peer, &id.to_string())
            } else {
                decision
            };
            let seen = super::observe::Attempt {
                domain,
                peer: &target.peer,
                dane: &dane,
                // A waived policy was not in force: the session is not reported
                // against it (TLS-RPT).
                sts: if relaxed { None } else { sts.as_ref() },
                own_report: super::observe::is_own_report(&msg.envelope),
            };
            let host = match decision {
                HostDecision::Connect(h) => h,
                HostDecision::Skip {
                    reason,
                    metric,
                    source,
                } => {
                    super::observe::skipped(&self.observer, &seen, source, metric, &reason);
                    match source {
                        Source::MtaSts => super::metrics::mta_sts(&format!("enforce-{metric}")),
                        _ => super::metrics::dane(metric),
                    }
                    warn!(queue_id = %id, "{id}: not connecting to {peer}: {reason}; trying the next host if any");
                    last = reason;
                    continue;
                }
            };
            // RFC 8689 §4.2.1 condition 1: a DNSSEC-secure MX answer named this host (a
            // host named in the configuration did not come from DNS at all).
            let mx_secure = !hop.mx || target.security == postern_dns::Security::Secure;
            let session = self
                .session(&peer, &nexthop, &host, &dane, mx_secure, &id.to_string())
                .await;
            let testing = host.sts_testing.as_ref();
            super::observe::session(&self.observer, &seen, host.source, testing, &session);
            match session {
                Ok(mut c) => match c.transaction(msg, rcpts).await {
                    Ok(outcomes) => {
                        super::metrics::delivered(&c, &outcomes);
                        let relay = c.peer.to_string();
                        if relaxed {
                            // Set up without the domain's DANE/MTA-STS requirements: never
                            // reused for other mail.
                            c.quit().await;
                        } else {
                            self.put_pooled(key, c);
                        }
                        return wrap(&relay, outcomes);
                    }
                    Err(e) => {
                        warn!(queue_id = %id, "{id}: delivery via {peer} failed: {e}; trying the next host if any");
                        last = format!("4.4.2 {e}");
                    }
                },
                Err(e) => {
                    warn!(queue_id = %id, "{id}: {e}; trying the next host if any");
                    last = e.to_string();
                }
            }
        }
        wrap(
            "none",
            vec![Outcome::Temporary(crate::detail::local(last)); rcpts.len()],
        )
    }

    /// Drop the addresses that are our own listeners (unless a route names the hop);
    /// nothing left means a mail loop: bounced with 5.4.6, as Postfix does.
    // The error is an outcome for the queue (with its typed detail): a cold path.
    #[allow(clippy::result_large_err)]
    fn without_self(
        &self,
        peers: Vec<Target>,
        domain: &str,
        named: bool,
        id: &str,
    ) -> Result<Vec<Target>, Outcome> {
        if named {
            return Ok(peers);
        }
        let (own, others): (Vec<Target>, Vec<Target>) = peers
            .into_iter()
            .partition(|t| self.own.is_self(t.peer.ip, t.peer.port));
        if own.is_empty() {
            return Ok(others);
        }
        let list: Vec<String> = own.iter().map(|t| t.peer.to_string()).collect();
        warn!(queue_id = %id, "{id}: mail for {domain} resolves to our own listener ({}): not connecting there", list.join(", "));
        if others.is_empty() {
            return Err(Outcome::Permanent(crate::detail::local(format!(
                "5.4.6 mail for {domain} loops back to myself (it resolves to {}; add a [[route]] if this host must really receive it)",
                list.join(", ")
            ))));
        }
        Ok(others)
    }

    /// Connect, EHLO, and apply the host's TLS requirement (from [`engine::decide`]).
    async fn session(
        &self,
        peer: &Peer,
        nexthop: &str,
        host: &HostTls,
        dane: &DaneStatus,
        mx_secure: bool,
        id: &str,
    ) -> Result<Client, SessionError> {
        let mut c = Client::connect(peer.clone(), self.timeouts()).await?;
        let local = c.local_ip;
        c.hop_auth.mx_secure = mx_secure;
        c.hop_auth.sts_enforced = host.source == Source::MtaSts;
        c.hello(&self.helo).await?;
        let dane_auth = matches!(host.expect, Expect::Dane(_));
        if !dane_auth && host.policy.level.is_dane() {
            // DANE was wanted but gave no usable TLSA records: count why.
            super::metrics::dane(match dane {
                DaneStatus::Records { .. } => "unusable",
                _ => "no-tlsa",
            });
        }
        if host.level == TlsLevel::None {
            sts_testing(host, peer, id, Some("TLS is not used (level none)"));
            return Ok(c);
        }
        if !c.caps.starttls {
            if host.mandatory {
                c.quit().await;
                super::metrics::policy_failure(nexthop, host.level.as_str());
                return Err(SessionError::NoStartTls {
                    nexthop: nexthop.to_string(),
                    level: match host.source {
                        Source::MtaSts => "MTA-STS enforce",
                        _ => host.level.as_str(),
                    },
                    peer: peer.clone(),
                    local,
                });
            }
            info!(queue_id = %id, "no TLS to {peer}: STARTTLS not offered (policy may: continuing in plaintext)");
            sts_testing(host, peer, id, Some("STARTTLS not offered"));
            return Ok(c);
        }
        // The policy's TLS profile decides suites, groups and signature schemes.
        let provider = match host.policy.profile {
            postern_tls::Profile::Default => self.provider.clone(),
            p => Arc::new(postern_tls::provider(p)),
        };
        let verifier = Arc::new(PeerVerifier::new(
            host.policy.roots.clone(),
            provider.clone(),
            host.expect.clone(),
            &peer.host,
        ));
        let config = client_config(provider, verifier.clone(), host.policy.client_cert.as_ref())
            .map_err(SessionError::TlsConfig)?;
        // A server may refuse us only after the handshake (TLS 1.3 client certificates):
        // count a failure of the EHLO that follows as a TLS failure too.
        let result = match c.starttls_sni(config, &host.sni).await {
            Err(e) => Err(e.to_string()),
            Ok(()) => c
                .hello(&self.helo)
                .await
                .map_err(|e| format!("the TLS session failed after the handshake: {e}")),
        };
        match result {
            Ok(()) => {
                let trust = match verifier.outcome() {
                    Some(Ok(t)) => t.word(),
                    _ => "Untrusted",
                };
                let summary = c.tls_summary().unwrap_or_default();
                info!(queue_id = %id, "{trust} TLS connection established to {peer}: {summary}");
                let verified = matches!(verifier.outcome(), Some(Ok(PeerTrust::Verified)));
                c.hop_auth.verified_by = match host.source {
                    Source::MtaSts if verified => Some(VerifiedBy::MtaSts),
                    _ => VerifiedBy::from_level(host.level, verified),
                };
                if let Some(m) = verifier.dane_match() {
                    super::metrics::dane("verified");
                    info!(queue_id = %id, "{peer}: DANE: {m}");
                }
                if host.source == Source::MtaSts {
                    super::metrics::mta_sts("enforce-verified");
                }
                let unverified = format!("certificate not verified for {} ({trust})", peer.host);
                sts_testing(
                    host,
                    peer,
                    id,
                    (trust != "Verified").then_some(unverified.as_str()),
                );
                c.tls = Some((trust.to_string(), summary));
                Ok(c)
            }
            Err(e) => {
                let why = match verifier.outcome() {
                    Some(Err(reason)) => reason.to_string(),
                    _ => format!("handshake failed: {e}"),
                };
                if dane_auth {
                    super::metrics::dane("mismatch");
                }
                if host.source == Source::MtaSts {
                    super::metrics::mta_sts("enforce-tls-failed");
                }
                if host.mandatory {
                    super::metrics::policy_failure(nexthop, host.level.as_str());
                    let level = match host.source {
                        Source::Dane => host.level.as_str(),
                        Source::MtaSts => "MTA-STS enforce",
                        _ => host.policy.level.as_str(),
                    };
                    return Err(SessionError::TlsFailed {
                        peer: peer.clone(),
                        nexthop: nexthop.to_string(),
                        level,
                        why,
                        local,
                    });
                }
                warn!(queue_id = %id, "TLS with {peer} failed ({why}); policy may: retrying in plaintext");
                sts_testing(host, peer, id, Some(&format!("TLS failed: {why}")));
                let mut c = Client::connect(peer.clone(), self.timeouts()).await?;
                c.hop_auth.mx_secure = mx_secure;
                c.hello(&self.helo).await?;
                Ok(c)
            }
        }
    }

    fn take_pooled(&self, key: &PoolKey) -> Option<Client> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let list = pool.get_mut(key)?;
        let max_idle = self.cfg.connection_reuse_time.get();
        while let Some((since, c)) = list.pop() {
            if since.elapsed() < max_idle {
                return Some(c);
            }
            // Too old to trust: say goodbye properly.
            tokio::spawn(c.quit());
        }
        None
    }

    fn put_pooled(&self, key: PoolKey, c: Client) {
        if self.cfg.connection_reuse_time.get().is_zero() {
            tokio::spawn(c.quit());
            return;
        }
        let reuse = self.cfg.connection_reuse_time.get();
        {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let list = pool.entry(key.clone()).or_default();
            let keep = MAX_IDLE_PER_KEY.min(self.cfg.max_connections_per_destination);
            if list.len() >= keep {
                drop(pool);
                tokio::spawn(c.quit());
                return;
            }
            list.push((Instant::now(), c));
        }
        // Close it (and any other expired one for this key) when the reuse time is up,
        // instead of leaving it to the peer's idle timeout.
        let pool = self.pool.clone();
        tokio::spawn(async move {
            tokio::time::sleep(reuse + Duration::from_millis(50)).await;
            for c in expired(&pool, &key, reuse) {
                c.quit().await;
            }
        });
    }
}

/// Why no usable session with a host came about. The texts become the recipients'
/// temporary outcome when no other host does better.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "4.7.4 TLS is required for {nexthop} (policy {level}), but host {peer} did not offer STARTTLS"
    )]
    NoStartTls {
        nexthop: String,
        level: &'static str,
        peer: Peer,
        /// Our address on that connection (TLS-RPT `sending-mta-ip`).
        local: Option<std::net::IpAddr>,
    },
    #[error("4.7.5 TLS client configuration: {0}")]
    TlsConfig(postern_tls::TlsError),
    #[error("4.7.5 TLS with {peer} failed for {nexthop} (policy {level}): {why}")]
    TlsFailed {
        peer: Peer,
        nexthop: String,
        level: &'static str,
        why: String,
        local: Option<std::net::IpAddr>,
    },
}

/// Under an MTA-STS policy in `testing` mode: log and count what `enforce` would have
/// refused (`failure`: the TLS problem, if any), and deliver anyway (RFC 8461 §5).
fn sts_testing(host: &HostTls, peer: &Peer, id: &str, failure: Option<&str>) {
    let Some(t) = &host.sts_testing else {
        return;
    };
    let (result, why) = match (t.mx_matches, failure) {
        (false, _) => (
            "testing-mx-mismatch",
            format!(
                "MX host {} matches none of {}",
                peer.host,
                t.patterns.join(", ")
            ),
        ),
        (true, Some(f)) => ("testing-tls-failed", f.to_string()),
        (true, None) => {
            super::metrics::mta_sts("testing-ok");
            return;
        }
    };
    super::metrics::mta_sts(result);
    warn!(queue_id = %id, "{id}: MTA-STS policy (testing) for {} would have refused {peer}: {why}; delivering anyway (testing mode)", t.domain);
}

/// Take the idle connections of `key` older than `reuse` out of the pool.
fn expired(pool: &Pool, key: &PoolKey, reuse: Duration) -> Vec<Client> {
    let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    let Some(list) = pool.get_mut(key) else {
        return Vec::new();
    };
    let (old, fresh): (Vec<_>, Vec<_>) = list.drain(..).partition(|(t, _)| t.elapsed() >= reuse);
    *list = fresh;
    if list.is_empty() {
        pool.remove(key);
    }
    old.into_iter().map(|(_, c)| c).collect()
}

/// A message with `TLS-Required: No` (RFC 8689 §5, `[outbound] honour_tls_required_no`)
/// and no `[[outbound.policy]]` entry for its domain: a DANE or MTA-STS requirement, or a
/// host skipped for DANE's sake, becomes opportunistic TLS (`may`) for this message.
fn tls_required_no(
    decision: HostDecision,
    policy: &Arc<Policy>,
    peer: &Peer,
    id: &str,
) -> HostDecision {
    let waived = match &decision {
        HostDecision::Skip { reason, .. } => reason.clone(),
        HostDecision::Connect(h) if matches!(h.source, Source::Dane | Source::MtaSts) => {
            h.why.clone()
        }
        HostDecision::Connect(_) => return decision,
    };
    info!(queue_id = %id, "{id}: TLS-Required: No applied for {peer}: the recipient domain's requirement is waived for this message ({waived}); opportunistic TLS");
    HostDecision::Connect(HostTls {
        level: TlsLevel::May,
        mandatory: false,
        source: Source::Default,
        expect: Expect::Anything,
        sni: peer.host.clone(),
        policy: policy.clone(),
        why: format!("TLS-Required: No (RFC 8689 §5) waived: {waived}"),
        sts_testing: None,
    })
}

fn wrap(relay: &str, outcomes: Vec<Outcome>) -> Vec<DeliveryOutcome> {
    outcomes
        .into_iter()
        .map(|outcome| DeliveryOutcome {
            relay: relay.to_string(),
            outcome,
        })
        .collect()
}
