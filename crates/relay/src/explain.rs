//! `postern policy explain DOMAIN [--resolve]`: what happens to mail for a domain, before
//! it matters.
//!
//! The explanation is built from the decisions delivery itself acts on, never from a copy
//! of them: the next hop from [`Router::decide`] (the function the router's delivery
//! groups recipients by), the TLS policy from [`SmtpAgent::policy_for`] and the port from
//! [`SmtpAgent::port`] (the functions an SMTP delivery starts with), and the host list
//! from the agent's own resolver ([`SmtpAgent::dns`]).

use std::fmt::Write as _;
use std::sync::Arc;

use postern_smtp::address::{AddressError, Domain, parse_domain};

use crate::outbound::agent::SmtpAgent;
use crate::outbound::client::Peer;
use crate::outbound::engine::{HostDecision, describe_dane};
use crate::outbound::policy::Policy;
use crate::outbound::resolve::Target;
use crate::route::{Decision, NextHop, RouteSource, Router};
use postern_dns::{LookupError as DnsFailure, MxAnswer, Security};

/// Why there is no explanation.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{input:?} is not a domain name: {problem}")]
    NotADomain {
        input: String,
        problem: AddressError,
    },
    #[error("no route for {0}, and this router does not deliver over SMTP")]
    NoRoute(String),
    #[error("this router does not deliver over SMTP, so no TLS policy applies")]
    NoSmtp,
}

/// What delivery would do with mail for one domain (the resolve step aside).
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The domain, as parsed (lower case).
    pub domain: String,
    /// Whether it is one of `[relay] local_domains`.
    pub local: bool,
    /// The router's decision for it.
    pub decision: Decision,
    /// For an SMTP hop: the TLS policy and the port delivery uses.
    pub smtp: Option<(Arc<Policy>, u16)>,
}

/// The decision for `domain`, from the router (and its SMTP agent) delivery uses.
pub fn decide(
    router: &Router,
    local_domains: &[String],
    domain: &str,
) -> Result<Explanation, ExplainError> {
    let name =
        parse_domain(domain.trim_end_matches('.')).map_err(|problem| ExplainError::NotADomain {
            input: domain.to_string(),
            problem,
        })?;
    let decision = router
        .decide(&Domain::Name(name.clone()))
        .ok_or_else(|| ExplainError::NoRoute(name.clone()))?;
    let smtp = match &decision.hop {
        NextHop::Smtp(hop) => {
            let agent = router.smtp().ok_or(ExplainError::NoSmtp)?;
            Some((agent.policy_for(&decision.policy_domain), agent.port(hop)))
        }
        NextHop::Maildir(_) => None,
    };
    Ok(Explanation {
        local: local_domains.iter().any(|d| d.eq_ignore_ascii_case(&name)),
        domain: name,
        decision,
        smtp,
    })
}

/// The explanation, as printed. With `resolve`, DNS is asked for the hosts it would try.
pub async fn explain(
    router: &Router,
    local_domains: &[String],
    domain: &str,
    resolve: bool,
) -> Result<String, ExplainError> {
    let e = decide(router, local_domains, domain)?;
    let mut out = String::new();
    let _ = writeln!(out, "destination: {}", e.domain);
    let _ = writeln!(
        out,
        "accepted from: {}",
        if e.local {
            "anyone (a local domain)"
        } else {
            "trusted networks only (relay)"
        }
    );
    let how = match e.decision.source {
        RouteSource::Route => "from [[route]]",
        RouteSource::Default => "no [[route]] matches: MX lookup",
    };
    let _ = writeln!(out, "next hop:   {} ({how})", e.decision.hop);
    let (NextHop::Smtp(hop), Some((policy, port))) = (&e.decision.hop, &e.smtp) else {
        let _ = writeln!(out, "delivery:   local Maildir; no TLS policy applies");
        return Ok(out);
    };
    out.push_str(&policy.describe(&hop.tls_name()));
    let _ = writeln!(out, "port:       {port}");
    if resolve && let Some(agent) = router.smtp() {
        hosts(
            agent,
            policy,
            &e.decision.policy_domain,
            hop,
            *port,
            &mut out,
        )
        .await;
    }
    Ok(out)
}

/// The hosts delivery would try, in order, from the agent's resolver, each with the DNSSEC
/// status of its MX and address records, its TLSA records and the TLS requirement the
/// policy engine decides for it ([`SmtpAgent::host_tls`], the function delivery calls).
async fn hosts(
    agent: &SmtpAgent,
    policy: &Arc<Policy>,
    domain: &str,
    hop: &crate::outbound::agent::SmtpHop,
    port: u16,
    out: &mut String,
) {
    let dns = agent.dns();
    let mut alias = None;
    let (names, mx_security): (Vec<(u16, String)>, Security) = if hop.mx {
        let mx = dns.mx(&hop.host).await;
        if let Ok(a) = &mx {
            alias = crate::outbound::resolve::secure_alias(
                &hop.host,
                a.security,
                a.canonical.as_deref(),
            );
        }
        match mx {
            Ok(a) => match a.records {
                MxAnswer::Hosts(h) => {
                    let _ = writeln!(
                        out,
                        "MX:         {} records, DNSSEC {}",
                        h.len(),
                        a.security
                    );
                    (h, a.security)
                }
                MxAnswer::NoMx => {
                    let _ = writeln!(
                        out,
                        "MX:         none (DNSSEC {}); the domain's own address is used (implicit MX)",
                        a.security
                    );
                    (vec![(0, hop.host.clone())], a.security)
                }
                MxAnswer::NullMx => {
                    let _ = writeln!(
                        out,
                        "MX:         null MX (RFC 7505): mail would bounce with 556 5.1.10"
                    );
                    return;
                }
            },
            Err(DnsFailure::NotFound) => {
                let _ = writeln!(
                    out,
                    "MX:         the domain does not exist (NXDOMAIN): mail would bounce"
                );
                return;
            }
            Err(DnsFailure::NoRecords) => (vec![(0, hop.host.clone())], Security::Insecure),
            Err(DnsFailure::Temporary(e) | DnsFailure::Bogus(e)) => {
                let _ = writeln!(
                    out,
                    "MX:         lookup failed ({e}): mail would wait and be retried"
                );
                return;
            }
        }
    } else {
        // A configured host is not attacker-supplied (as in delivery, `resolve`).
        (vec![(0, hop.host.clone())], Security::Secure)
    };
    if policy.level.is_dane() && !agent.dnssec() {
        let _ = writeln!(
            out,
            "DNSSEC:     validation unavailable ([resolver] dnssec = \"off\"): DANE cannot apply"
        );
    }
    let sts = match hop.mx && hop.host.eq_ignore_ascii_case(domain) {
        true => agent.sts_policy(domain, policy).await,
        false => None,
    };
    match &sts {
        Some(s) => {
            let _ = writeln!(
                out,
                "MTA-STS:    mode {}, mx {}; {}",
                if s.enforced() { "enforce" } else { "testing" },
                s.mx.join(", "),
                s.about
            );
        }
        None if policy.explicit => {
            let _ = writeln!(out, "MTA-STS:    not consulted ([[outbound.policy]] entry)");
        }
        None => {
            let _ = writeln!(
                out,
                "MTA-STS:    no policy applies (none published, mode none, not enabled, or not an MX delivery)"
            );
        }
    }
    let _ = writeln!(out, "hosts, in the order they would be tried:");
    for (pref, name) in names {
        let (addrs, security, first) = match dns.addresses(&name).await {
            Ok(a) => (
                a.records
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                a.security,
                a.records.first().copied(),
            ),
            Err(e) => (format!("no address ({e:?})"), Security::Insecure, None),
        };
        let _ = writeln!(
            out,
            "  {pref:>5} {name} -> {addrs} (MX {mx_security}, addresses {security})"
        );
        let Some(ip) = first else { continue };
        let target = Target {
            peer: Peer {
                host: name.clone(),
                ip,
                port,
            },
            security: mx_security.min(security),
            domain_alias: alias.clone(),
        };
        let (dane, decision) = agent.host_tls(policy, sts.as_ref(), hop, &target).await;
        describe_dane(&dane, out);
        let _ = match decision {
            HostDecision::Connect(h) => writeln!(
                out,
                "        effective: {} ({}{}): {}",
                h.level.as_str(),
                h.source.as_str(),
                if h.mandatory { ", never plaintext" } else { "" },
                h.why
            ),
            HostDecision::Skip { reason, .. } => {
                writeln!(out, "        effective: host skipped: {reason}")
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::config::{OutboundConfig, TlsLevel};
    use crate::outbound::policy::Policies;
    use crate::route::RouteConfig;
    use postern_dns::ResolverConfig;

    #[derive(serde::Deserialize)]
    struct Conf {
        route: Vec<RouteConfig>,
        outbound: OutboundConfig,
        resolver: ResolverConfig,
    }

    const CONF: &str = r#"
[[route]]
domain = "local.test"
next_hop = "maildir:mail"
[[route]]
domain = "partner.test"
next_hop = "smtp:[192.0.2.25]:2525"
[[route]]
domain = ".hub.test"
next_hop = "smtp:relay.hub.test"
[outbound]
tls = "may"
port = 2526
[[outbound.policy]]
domain = ".gov.test"
tls = "encrypt"
[[outbound.policy]]
domain = "partner.test"
tls = "none"
[resolver]
nameservers = ["127.0.0.1:9"]
"#;

    /// The router and agent the daemon would build from `CONF` (no DNS is asked).
    fn router() -> Router {
        let c: Conf = postern_config::parse_toml("t.toml", CONF).unwrap();
        let mut p = postern_config::Problems::new();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let policies = Policies::load(&c.outbound, &provider, &mut p);
        assert!(p.is_empty());
        let dns = postern_dns::Resolver::new(&c.resolver).unwrap();
        let agent = SmtpAgent::new(c.outbound, "h.test".into(), dns, policies);
        Router::new(
            &c.route,
            std::path::Path::new("/state"),
            "h.test",
            Some(Arc::new(agent)),
        )
    }

    /// The explanation shows exactly what delivery decides: the router's next hop and
    /// the agent's policy and port, for routed, parent-routed, MX-routed and local
    /// domains; and the expected values, so a change to either side is noticed.
    #[tokio::test]
    async fn explanation_is_the_delivery_decision() {
        let r = router();
        let agent = r.smtp().unwrap().clone();
        let cases = [
            ("local.test", "maildir:/state/mail", None),
            (
                "partner.test",
                "smtp:[192.0.2.25]:2525",
                Some((TlsLevel::None, 2525)),
            ),
            (
                "mx.a.hub.test",
                "smtp:relay.hub.test",
                Some((TlsLevel::May, 2526)),
            ),
            (
                "mail.dept.gov.test",
                "smtp:mail.dept.gov.test",
                Some((TlsLevel::Encrypt, 2526)),
            ),
            (
                "Other.Test.",
                "smtp:other.test",
                Some((TlsLevel::May, 2526)),
            ),
        ];
        for (domain, hop, smtp) in cases {
            let e = decide(&r, &["local.test".into()], domain).unwrap();
            let name = domain.trim_end_matches('.').to_ascii_lowercase();
            let delivery = r.decide(&Domain::Name(name.clone())).unwrap();
            assert_eq!(e.decision, delivery, "{domain}");
            assert_eq!(e.decision.hop.to_string(), hop, "{domain}");
            match (&e.decision.hop, &e.smtp, smtp) {
                (NextHop::Smtp(h), Some((policy, port)), Some((level, want_port))) => {
                    let used = agent.policy_for(&delivery.policy_domain);
                    assert!(Arc::ptr_eq(policy, &used), "{domain}");
                    assert_eq!(*port, agent.port(h), "{domain}");
                    assert_eq!((policy.level, *port), (level, want_port), "{domain}");
                }
                (NextHop::Maildir(_), None, None) => {}
                other => panic!("{domain}: {other:?}"),
            }
            let text = explain(&r, &["local.test".into()], domain, false)
                .await
                .unwrap();
            assert!(text.contains(&format!("next hop:   {hop} (")), "{text}");
            if let Some((level, port)) = smtp {
                assert!(
                    text.contains(&format!("tls level:  {}", level.as_str())),
                    "{text}"
                );
                assert!(text.contains(&format!("port:       {port}")), "{text}");
            }
        }
        assert!(matches!(
            decide(&r, &[], "not a domain"),
            Err(ExplainError::NotADomain { .. })
        ));
    }
}
