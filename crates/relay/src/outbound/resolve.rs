//! From a next hop to the addresses to try: the MX look-up, then the addresses of the MX
//! hosts, all under one deadline.
//!
//! # Security
//! A destination's DNS is controlled by whoever owns the recipient domain, and a hostile
//! or broken one must not hold a delivery slot: at most `[outbound] max_mx_hosts` names
//! are used, their addresses are looked up concurrently, and the whole resolution ends at
//! `[outbound] resolve_timeout`. What was found by then is used; if nothing was, the mail
//! is deferred (`4.4.3`; `4.7.5` when the MX or address answer failed DNSSEC
//! validation, which is never treated as "no record"). At most [`MAX_ADDRESSES`] addresses are tried per attempt.
//!
//! # Standards
//! RFC 5321 §5.1 (MX order, implicit MX), RFC 7505 (null MX).

use std::time::Duration;

use std::net::IpAddr;

use postern_dns::{Answer, LookupError, MxAnswer, Resolver, Security};
use postern_queue::Outcome;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::agent::SmtpHop;
use super::client::Peer;

/// Most addresses tried per delivery attempt.
pub const MAX_ADDRESSES: usize = 10;

/// One address to try, with the DNSSEC status of the chain that named it (the weaker of
/// the MX answer and the address answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub peer: Peer,
    pub security: Security,
    /// The next-hop domain's CNAME-expanded name, when its MX answer came through a
    /// DNSSEC-secure alias: one more DANE-TA reference identifier (RFC 7672 §3.2.2).
    pub domain_alias: Option<String>,
}

/// A host name and its address answer; `None`: no answer by the deadline.
type Found = (String, Option<Result<Answer<Vec<IpAddr>>, LookupError>>);

/// The bounds of one resolution.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Port for the hosts found.
    pub port: u16,
    /// MX host names used, most preferred first.
    pub max_mx_hosts: usize,
    /// Deadline for everything.
    pub timeout: Duration,
}

/// The hosts to try for a hop, in order. `Err` is the outcome for every recipient.
/// `domain` is the recipient domain: when the hop is that domain's own MX lookup, DNS
/// saying "no such domain" is final; for a host named in a `[[route]]` it is a
/// configuration problem, so the mail waits instead of bouncing.
pub async fn targets(
    dns: &Resolver,
    hop: &SmtpHop,
    domain: &str,
    limits: Limits,
) -> Result<Vec<Target>, Outcome> {
    let deadline = Instant::now() + limits.timeout;
    let own_mx = hop.mx && hop.host.eq_ignore_ascii_case(domain);
    let (names, implicit, mx_security, alias) = if hop.mx {
        let mx = tokio::time::timeout_at(deadline, dns.mx(&hop.host))
            .await
            .map_err(|_| {
                Outcome::Temporary(crate::detail::local(format!(
                    "4.4.3 DNS lookup of the MX for {} did not finish within [outbound] resolve_timeout ({})",
                    hop.host,
                    secs(limits.timeout)
                )))
            })?;
        mx_names(mx, hop, own_mx, domain)?
    } else {
        // A host named in the configuration ([[route]]) did not come from DNS: as secure
        // as its address answer (RFC 7672 §2.2.1: the name is not attacker-supplied).
        (vec![hop.host.clone()], false, Security::Secure, None)
    };
    let names: Vec<String> = names.into_iter().take(limits.max_mx_hosts.max(1)).collect();
    let found = addresses(dns, &names, deadline).await;
    let mut peers = collect(found, hop, domain, own_mx, implicit, mx_security, limits)?;
    for t in &mut peers {
        t.domain_alias.clone_from(&alias);
    }
    Ok(peers)
}

/// The secure CNAME expansion of `queried`, if the answer came through one.
pub fn secure_alias(queried: &str, security: Security, canonical: Option<&str>) -> Option<String> {
    let c = canonical?.trim_end_matches('.').to_ascii_lowercase();
    (security == Security::Secure && !c.eq_ignore_ascii_case(queried.trim_end_matches('.')))
        .then_some(c)
}

/// The MX host names in order, whether they are the implicit MX, and the MX status.
// The error is an outcome for the queue (with its typed detail): a cold path.
#[allow(clippy::result_large_err)]
fn mx_names(
    mx: Result<Answer<MxAnswer>, LookupError>,
    hop: &SmtpHop,
    own_mx: bool,
    domain: &str,
) -> Result<(Vec<String>, bool, Security, Option<String>), Outcome> {
    match mx {
        Ok(a) => {
            let alias = secure_alias(&hop.host, a.security, a.canonical.as_deref());
            match a.records {
                MxAnswer::Hosts(h) => Ok((
                    h.into_iter().map(|(_, n)| n).collect(),
                    false,
                    a.security,
                    alias,
                )),
                MxAnswer::NoMx => Ok((vec![hop.host.clone()], true, a.security, alias)),
                MxAnswer::NullMx => Err(Outcome::Permanent(crate::detail::local(format!(
                    "5.1.10 domain {} does not accept mail (null MX, RFC 7505)",
                    hop.host
                )))),
            }
        }
        Err(LookupError::NoRecords) => Ok((vec![hop.host.clone()], true, Security::Insecure, None)),
        Err(LookupError::NotFound) if own_mx => Err(Outcome::Permanent(crate::detail::local(
            format!("5.1.2 domain {} does not exist (DNS: NXDOMAIN)", hop.host),
        ))),
        Err(LookupError::NotFound) => Err(route_problem(
            domain,
            &format!("host {} does not exist in DNS", hop.host),
        )),
        Err(LookupError::Temporary(e)) => Err(Outcome::Temporary(crate::detail::local(format!(
            "4.4.3 DNS lookup of the MX for {} failed: {e}",
            hop.host
        )))),
        // RFC 7672 §2.1: a bogus answer is never used, and never treated as "no MX".
        Err(LookupError::Bogus(e)) => Err(Outcome::Temporary(crate::detail::local(format!(
            "4.7.5 DNSSEC validation of the MX records of {} failed (bogus): {e}; the mail waits in the queue",
            hop.host
        )))),
    }
}

/// The address answer of each name, in the order of `names`; `None`: no answer by the
/// deadline. The look-ups run concurrently; those unfinished at the deadline are dropped.
async fn addresses(dns: &Resolver, names: &[String], deadline: Instant) -> Vec<Found> {
    let mut set = JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let (dns, name) = (dns.clone(), name.clone());
        set.spawn(async move { (i, dns.addresses(&name).await) });
    }
    let mut results: Vec<Found> = names.iter().map(|n| (n.clone(), None)).collect();
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, set.join_next()).await {
        if let Ok((i, r)) = joined
            && let Some(slot) = results.get_mut(i)
        {
            slot.1 = Some(r);
        }
    }
    // Dropping the set aborts the look-ups still running.
    results
}

/// Peers in MX order from the address answers, or the outcome when there are none.
// The error is an outcome for the queue (with its typed detail): a cold path.
#[allow(clippy::result_large_err)]
fn collect(
    found: Vec<Found>,
    hop: &SmtpHop,
    domain: &str,
    own_mx: bool,
    implicit: bool,
    mx_security: Security,
    limits: Limits,
) -> Result<Vec<Target>, Outcome> {
    let mut peers = Vec::new();
    let mut last = String::new();
    let mut all_missing = true;
    let mut unanswered = 0usize;
    let total = found.len();
    for (name, r) in found {
        match r {
            Some(Ok(a)) => peers.extend(a.records.into_iter().map(|ip| Target {
                peer: Peer {
                    host: name.clone(),
                    ip,
                    port: limits.port,
                },
                security: mx_security.min(a.security),
                domain_alias: None,
            })),
            Some(Err(LookupError::Temporary(e))) => {
                all_missing = false;
                last = format!("4.4.3 DNS lookup of {name} failed: {e}");
            }
            Some(Err(LookupError::Bogus(e))) => {
                all_missing = false;
                last = format!(
                    "4.7.5 DNSSEC validation of the address records of {name} failed (bogus): {e}"
                );
            }
            Some(Err(_)) => last = format!("4.4.3 host {name} has no address in DNS"),
            None => {
                all_missing = false;
                unanswered += 1;
            }
        }
    }
    peers.truncate(MAX_ADDRESSES);
    if !peers.is_empty() {
        return Ok(peers);
    }
    if unanswered > 0 {
        return Err(Outcome::Temporary(crate::detail::local(format!(
            "4.4.3 no address found for the mail exchangers of {}: {unanswered} of {total} host look-ups did not finish within [outbound] resolve_timeout ({}){}",
            hop.host,
            secs(limits.timeout),
            if last.is_empty() {
                String::new()
            } else {
                format!("; also: {last}")
            }
        ))));
    }
    if own_mx && implicit && all_missing {
        return Err(Outcome::Permanent(crate::detail::local(format!(
            "5.1.2 domain {domain} has no MX and no address in DNS"
        ))));
    }
    if !hop.mx && all_missing {
        return Err(route_problem(
            domain,
            &format!("host {} has no address in DNS", hop.host),
        ));
    }
    Err(Outcome::Temporary(crate::detail::local(
        if last.is_empty() {
            "4.4.3 no address found".to_string()
        } else {
            last
        },
    )))
}

fn route_problem(domain: &str, what: &str) -> Outcome {
    Outcome::Temporary(crate::detail::local(format!(
        "4.4.3 {what}; check the [[route]] for {domain} (the mail waits in the queue)"
    )))
}

/// `3s`, `1m30s`: a duration as the configuration writes it.
fn secs(d: Duration) -> postern_config::Duration {
    postern_config::Duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop() -> SmtpHop {
        SmtpHop {
            host: "example.test".into(),
            port: None,
            mx: true,
        }
    }

    fn limits() -> Limits {
        Limits {
            port: 25,
            max_mx_hosts: 5,
            timeout: Duration::from_secs(3),
        }
    }

    fn found(name: &str, ip: Option<&str>) -> Found {
        let answer = ip.map(|ip| {
            Ok(Answer {
                records: vec![ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))],
                security: Security::Insecure,
                valid_until: std::time::Instant::now(),
                canonical: None,
            })
        });
        (name.to_string(), answer)
    }

    #[test]
    fn answered_hosts_are_used_in_mx_order_when_others_time_out() {
        let got = collect(
            vec![
                found("mx1.example.test", None),
                found("mx2.example.test", Some("192.0.2.2")),
                found("mx3.example.test", Some("192.0.2.3")),
            ],
            &hop(),
            "example.test",
            true,
            false,
            Security::Insecure,
            limits(),
        );
        let hosts: Vec<String> = got
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.peer.host)
            .collect();
        assert_eq!(hosts, ["mx2.example.test", "mx3.example.test"]);
    }

    #[test]
    fn nothing_answered_by_the_deadline_is_a_deferral_naming_the_deadline() {
        let got = collect(
            vec![
                found("mx1.example.test", None),
                found("mx2.example.test", None),
            ],
            &hop(),
            "example.test",
            true,
            false,
            Security::Insecure,
            limits(),
        );
        match got {
            Err(Outcome::Temporary(why)) => {
                assert_eq!(why.status_for(b'4'), "4.4.3", "{why}");
                assert!(why.text.contains("2 of 2"), "{why}");
                assert!(why.text.contains("resolve_timeout (3s)"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bogus_mx_or_address_answer_defers_with_4_7_5_never_as_no_record() {
        let got = mx_names(
            Err(LookupError::Bogus("RRSIG does not verify".into())),
            &hop(),
            true,
            "example.test",
        );
        match got {
            Err(Outcome::Temporary(why)) => {
                assert_eq!(why.status_for(b'4'), "4.7.5", "{why}");
                assert!(why.text.contains("bogus"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let got = collect(
            vec![(
                "mx1.example.test".to_string(),
                Some(Err(LookupError::Bogus("expired signature".into()))),
            )],
            &hop(),
            "example.test",
            true,
            false,
            Security::Secure,
            limits(),
        );
        match got {
            Err(Outcome::Temporary(why)) => {
                assert_eq!(why.status_for(b'4'), "4.7.5", "{why}");
                assert!(why.text.contains("mx1.example.test"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
}
