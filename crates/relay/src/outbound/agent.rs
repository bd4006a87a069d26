//! The SMTP delivery agent: from a next hop to a delivered (or failed) recipient list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postern_queue::{DeliveryOutcome, Outcome, QueuedMessage};
use rustls::crypto::CryptoProvider;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::client::{Client, Peer, Timeouts};
use super::config::{OutboundConfig, TlsLevel};
use super::dns::{Dns, DnsFailure, MxAnswer};
use super::policy::{Policies, Policy};
use postern_tls::client::{PeerVerifier, client_config};

/// Where an SMTP delivery goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpHop {
    /// Domain (MX lookup) or host.
    pub host: String,
    pub port: Option<u16>,
    /// `true`: look up MX records for `host`; `false`: connect to `host` itself.
    pub mx: bool,
}

/// Idle connections are kept per next hop and recipient domain (the policy key).
type PoolKey = (SmtpHop, String);

/// Most addresses tried per delivery attempt.
const MAX_ADDRESSES: usize = 10;

/// Delivers over SMTP with per-destination TLS policy, connection reuse and limits.
pub struct SmtpAgent {
    cfg: OutboundConfig,
    helo: String,
    dns: Dns,
    /// Replaced whole on SIGHUP ([`SmtpAgent::replace_policies`]); deliveries in progress
    /// keep the policy they started with.
    policies: std::sync::RwLock<Arc<Policies>>,
    provider: Arc<CryptoProvider>,
    pool: Mutex<HashMap<PoolKey, Vec<(Instant, Client)>>>,
    limits: Mutex<HashMap<SmtpHop, Arc<Semaphore>>>,
    /// Our listeners: a delivery there would be a loop (`crate::loops`).
    own: crate::loops::OwnAddresses,
}

impl std::fmt::Debug for SmtpAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpAgent")
            .field("helo", &self.helo)
            .finish_non_exhaustive()
    }
}

impl SmtpAgent {
    pub fn new(cfg: OutboundConfig, helo: String, dns: Dns, policies: Policies) -> SmtpAgent {
        SmtpAgent {
            cfg,
            helo,
            dns,
            policies: std::sync::RwLock::new(Arc::new(policies)),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            pool: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            own: crate::loops::OwnAddresses::default(),
        }
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

    /// Our listening addresses; deliveries to them are refused as loops.
    pub fn own_addresses(&self) -> &crate::loops::OwnAddresses {
        &self.own
    }

    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.cfg.connect_timeout.get(),
            greeting: self.cfg.greeting_timeout.get(),
            command: self.cfg.command_timeout.get(),
            data_end: self.cfg.data_timeout.get(),
        }
    }

    /// The hosts to try for a hop, in order. `Err` is the outcome for every recipient.
    /// `domain` is the recipient domain: when the hop is that domain's own MX lookup, DNS
    /// saying "no such domain" is final; for a host named in a `[[route]]` it is a
    /// configuration problem, so the mail waits instead of bouncing.
    pub async fn targets(&self, hop: &SmtpHop, domain: &str) -> Result<Vec<Peer>, Outcome> {
        let port = hop.port.unwrap_or(self.cfg.port);
        let own_mx = hop.mx && hop.host.eq_ignore_ascii_case(domain);
        let route_problem = |what: String| {
            Outcome::Temporary(format!(
                "4.4.3 {what}; check the [[route]] for {domain} (the mail waits in the queue)"
            ))
        };
        let mut implicit = false;
        let names: Vec<String> = if hop.mx {
            match self.dns.mx(&hop.host).await {
                Ok(MxAnswer::Hosts(h)) => h.into_iter().map(|(_, n)| n).collect(),
                Ok(MxAnswer::NoMx) | Err(DnsFailure::NoRecords) => {
                    implicit = true;
                    vec![hop.host.clone()]
                }
                Ok(MxAnswer::NullMx) => {
                    return Err(Outcome::Permanent(format!(
                        "556 5.1.10 domain {} does not accept mail (null MX, RFC 7505)",
                        hop.host
                    )));
                }
                Err(DnsFailure::NotFound) if own_mx => {
                    return Err(Outcome::Permanent(format!(
                        "5.1.2 domain {} does not exist (DNS: NXDOMAIN)",
                        hop.host
                    )));
                }
                Err(DnsFailure::NotFound) => {
                    return Err(route_problem(format!(
                        "host {} does not exist in DNS",
                        hop.host
                    )));
                }
                Err(DnsFailure::Temporary(e)) => {
                    return Err(Outcome::Temporary(format!(
                        "4.4.3 DNS lookup of the MX for {} failed: {e}",
                        hop.host
                    )));
                }
            }
        } else {
            vec![hop.host.clone()]
        };
        let mut peers = Vec::new();
        let mut last = String::new();
        let mut all_missing = true;
        for name in names {
            match self.dns.addresses(&name).await {
                Ok(ips) => peers.extend(ips.into_iter().map(|ip| Peer {
                    host: name.clone(),
                    ip,
                    port,
                })),
                Err(DnsFailure::Temporary(e)) => {
                    all_missing = false;
                    last = format!("4.4.3 DNS lookup of {name} failed: {e}");
                }
                Err(_) => last = format!("4.4.3 host {name} has no address in DNS"),
            }
            if peers.len() >= MAX_ADDRESSES {
                break;
            }
        }
        peers.truncate(MAX_ADDRESSES);
        if peers.is_empty() {
            if own_mx && implicit && all_missing {
                return Err(Outcome::Permanent(format!(
                    "5.1.2 domain {domain} has no MX and no address in DNS"
                )));
            }
            if !hop.mx && all_missing {
                return Err(route_problem(format!(
                    "host {} has no address in DNS",
                    hop.host
                )));
            }
            return Err(Outcome::Temporary(if last.is_empty() {
                "4.4.3 no address found".into()
            } else {
                last
            }));
        }
        Ok(peers)
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
        let policy = self.policies().lookup(domain).clone();
        let nexthop = hop
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
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
        for peer in peers {
            match self
                .session(&peer, &nexthop, &policy, &id.to_string())
                .await
            {
                Ok(mut c) => match c.transaction(msg, rcpts).await {
                    Ok(outcomes) => {
                        super::metrics::delivered(&c, &outcomes);
                        let relay = c.peer.to_string();
                        self.put_pooled(key, c);
                        return wrap(&relay, outcomes);
                    }
                    Err(e) => {
                        warn!(queue_id = %id, "{id}: delivery via {peer} failed: {e}; trying the next host if any");
                        last = format!("4.4.2 {e}");
                    }
                },
                Err(e) => {
                    warn!(queue_id = %id, "{id}: {e}; trying the next host if any");
                    last = e;
                }
            }
        }
        wrap("none", vec![Outcome::Temporary(last); rcpts.len()])
    }

    /// Drop the addresses that are our own listeners (unless a route names the hop);
    /// nothing left means a mail loop: bounced with 5.4.6, as Postfix does.
    fn without_self(
        &self,
        peers: Vec<Peer>,
        domain: &str,
        named: bool,
        id: &str,
    ) -> Result<Vec<Peer>, Outcome> {
        if named {
            return Ok(peers);
        }
        let (own, others): (Vec<Peer>, Vec<Peer>) = peers
            .into_iter()
            .partition(|p| self.own.is_self(p.ip, p.port));
        if own.is_empty() {
            return Ok(others);
        }
        let list: Vec<String> = own.iter().map(|p| p.to_string()).collect();
        warn!(queue_id = %id, "{id}: mail for {domain} resolves to our own listener ({}): not connecting there", list.join(", "));
        if others.is_empty() {
            return Err(Outcome::Permanent(format!(
                "5.4.6 mail for {domain} loops back to myself (it resolves to {}; add a [[route]] if this host must really receive it)",
                list.join(", ")
            )));
        }
        Ok(others)
    }

    /// Connect, EHLO, and apply the TLS policy.
    async fn session(
        &self,
        peer: &Peer,
        nexthop: &str,
        policy: &Policy,
        id: &str,
    ) -> Result<Client, String> {
        let mut c = Client::connect(peer.clone(), self.timeouts()).await?;
        c.hello(&self.helo).await?;
        if policy.level == TlsLevel::None {
            return Ok(c);
        }
        if !c.caps.starttls {
            if policy.level.mandatory() {
                c.quit().await;
                super::metrics::policy_failure(nexthop, policy.level.as_str());
                return Err(format!(
                    "4.7.4 TLS is required for {nexthop} (policy {}), but host {peer} did not offer STARTTLS",
                    policy.level.as_str()
                ));
            }
            info!(queue_id = %id, "no TLS to {peer}: STARTTLS not offered (policy may: continuing in plaintext)");
            return Ok(c);
        }
        // The policy's TLS profile decides suites, groups and signature schemes.
        let provider = match policy.profile {
            postern_tls::Profile::Default => self.provider.clone(),
            p => Arc::new(postern_tls::provider(p)),
        };
        let verifier = Arc::new(PeerVerifier::new(
            policy.roots.clone(),
            provider.clone(),
            policy.expect(nexthop, &peer.host),
            &peer.host,
        ));
        let config = client_config(provider, verifier.clone(), policy.client_cert.as_ref())
            .map_err(|e| format!("4.7.5 TLS client configuration: {e}"))?;
        // A server may refuse us only after the handshake (TLS 1.3 client certificates):
        // count a failure of the EHLO that follows as a TLS failure too.
        let mut result = c.starttls(config).await;
        if result.is_ok()
            && let Err(e) = c.hello(&self.helo).await
        {
            result = Err(format!("the TLS session failed after the handshake: {e}"));
        }
        match result {
            Ok(()) => {
                let trust = match verifier.outcome() {
                    Some(Ok(t)) => t.word(),
                    _ => "Untrusted",
                };
                let summary = c.tls_summary().unwrap_or_default();
                info!(queue_id = %id, "{trust} TLS connection established to {peer}: {summary}");
                c.tls = Some((trust.to_string(), summary));
                Ok(c)
            }
            Err(e) => {
                let why = match verifier.outcome() {
                    Some(Err(reason)) => reason,
                    _ => format!("handshake failed: {e}"),
                };
                if policy.level.mandatory() {
                    super::metrics::policy_failure(nexthop, policy.level.as_str());
                    return Err(format!(
                        "4.7.5 TLS with {peer} failed for {nexthop} (policy {}): {why}",
                        policy.level.as_str()
                    ));
                }
                warn!(queue_id = %id, "TLS with {peer} failed ({why}); policy may: retrying in plaintext");
                let mut c = Client::connect(peer.clone(), self.timeouts()).await?;
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
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let list = pool.entry(key).or_default();
        // Keep as many idle connections as may be open to this destination at once.
        if list.len() < self.cfg.max_connections_per_destination {
            list.push((Instant::now(), c));
        }
    }
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
