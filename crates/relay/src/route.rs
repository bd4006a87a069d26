//! The `[[route]]` table: domain → next hop, and the router that applies it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postern_config::{InvalidValue, KeyPath, Problems};
use postern_queue::agent_future::BoxFuture;
use postern_queue::{DeliveryAgent, DeliveryOutcome, Outcome, QueuedMessage};
use postern_smtp::address::{Address, Domain, parse_domain};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::MaildirAgent;
use crate::outbound::agent::{SmtpAgent, SmtpHop};

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `example.org` (that domain), `.example.org` (its subdomains) or `*` (everything
    /// without a more specific route).
    pub domain: String,
    /// Where the mail goes: `maildir:PATH` (relative paths are under `server.state_dir`).
    pub next_hop: NextHop,
    /// The mailboxes this route delivers to, by local part (`"alice"`, any letter case).
    /// When given, RCPT for any other local part is refused with `550 5.1.1` (no
    /// bounce later, so no backscatter); `postmaster` is always accepted. Absent: every
    /// local part is accepted (a Maildir route creates a Maildir for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
}

/// A next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Deliver into Maildirs under this directory, one per recipient local part.
    Maildir(PathBuf),
    /// Deliver over SMTP: `smtp:HOST[:PORT]` (MX lookup on HOST) or `smtp:[HOST][:PORT]`
    /// (connect to HOST itself, Postfix bracket semantics).
    Smtp(SmtpHop),
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Maildir(p) => write!(f, "maildir:{}", p.display()),
            NextHop::Smtp(h) => {
                if h.mx {
                    write!(f, "smtp:{}", h.host)?;
                } else {
                    write!(f, "smtp:[{}]", h.host)?;
                }
                if let Some(p) = h.port {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::str::FromStr for NextHop {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let hint = "write \"smtp:mx.example.org\" (MX lookup), \"smtp:[relay.example.org]:25\" (that host, no MX lookup) or \"maildir:PATH\"";
        match s.split_once(':') {
            Some(("maildir", path)) if !path.is_empty() => {
                Ok(NextHop::Maildir(PathBuf::from(path)))
            }
            Some(("maildir", _)) => {
                Err("maildir: needs a directory, e.g. \"maildir:/var/mail/postern\"".into())
            }
            Some(("smtp", rest)) => parse_smtp(rest)
                .map(NextHop::Smtp)
                .map_err(|e| format!("{s:?}: {e}; {hint}").into()),
            _ => Err(format!("unknown next hop {s:?}: {hint}").into()),
        }
    }
}

fn parse_smtp(rest: &str) -> Result<SmtpHop, InvalidValue> {
    let (host, mx, tail): (String, bool, &str) = if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']').ok_or("missing ']'")?;
        (
            r[..end].trim_start_matches("IPv6:").to_string(),
            false,
            &r[end + 1..],
        )
    } else {
        match rest.rfind(':') {
            Some(i) => (rest[..i].to_string(), true, &rest[i..]),
            None => (rest.to_string(), true, ""),
        }
    };
    let port = match tail {
        "" => None,
        t => Some(
            t.strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|&p| p > 0)
                .ok_or_else(|| InvalidValue(format!("bad port {t:?}")))?,
        ),
    };
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    if host.is_empty() || (!is_ip && parse_domain(&host).is_err()) {
        return Err(format!("{host:?} is not a host name or IP address").into());
    }
    if is_ip && mx {
        return Err(format!("an IP address needs brackets: smtp:[{host}]").into());
    }
    Ok(SmtpHop {
        host: host.to_ascii_lowercase(),
        port,
        mx,
    })
}

impl<'de> Deserialize<'de> for NextHop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for NextHop {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Validate the `[[route]]` table: domain syntax and no domain routed twice.
pub fn validate(routes: &[RouteConfig], p: &mut Problems) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        let at = KeyPath::of("route").index(i);
        let d = r.domain.to_ascii_lowercase();
        let check = if d == "*" {
            Ok(String::new())
        } else {
            parse_domain(d.strip_prefix('.').unwrap_or(&d)).map_err(|e| e.to_string())
        };
        if let Err(e) = check {
            p.push(
                at.key("domain"),
                format!("{:?} is not a domain, \".domain\" or \"*\": {e}", r.domain),
            );
        }
        if let Some(first) = seen.insert(d.clone(), i) {
            p.push(
                at.key("domain"),
                format!(
                    "{:?} is already routed by route[{first}]: each domain may have one route",
                    r.domain
                ),
            );
        }
    }
}

/// Where a next hop came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSource {
    /// A `[[route]]` entry (exact, `.parent` or `*`).
    Route,
    /// No route matched: the domain's MX hosts (or an address literal itself).
    Default,
}

/// The routing decision for one recipient domain ([`Router::decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub hop: NextHop,
    pub source: RouteSource,
    /// The domain whose TLS policy applies (`[[outbound.policy]]` key) for an SMTP hop:
    /// the recipient domain, address literals without brackets; empty for Maildir.
    pub policy_domain: String,
}

/// Applies the route table: groups recipients by next hop and hands them to its agent.
#[derive(Debug)]
pub struct Router {
    exact: HashMap<String, NextHop>,
    /// `.example.org` entries, keyed without the dot.
    parents: HashMap<String, NextHop>,
    default: Option<NextHop>,
    maildirs: HashMap<PathBuf, Arc<MaildirAgent>>,
    /// SMTP delivery; also the default for domains without a route.
    smtp: Option<Arc<SmtpAgent>>,
    /// Per route (by its lower-case `domain` key): the local parts it accepts (lower
    /// case), where the route lists them.
    recipients: HashMap<String, HashSet<String>>,
    /// This many `Received:` fields or more: bounced as a mail loop (5.4.6).
    max_hop_count: usize,
}

impl Router {
    /// Build from a validated table. `base` resolves relative Maildir paths. Without an
    /// SMTP agent, domains without a route have nowhere to go.
    pub fn new(
        routes: &[RouteConfig],
        base: &Path,
        hostname: &str,
        smtp: Option<Arc<SmtpAgent>>,
    ) -> Router {
        let mut r = Router {
            exact: HashMap::new(),
            parents: HashMap::new(),
            default: None,
            maildirs: HashMap::new(),
            smtp,
            recipients: HashMap::new(),
            max_hop_count: crate::loops::DEFAULT_MAX_HOP_COUNT,
        };
        for route in routes {
            let hop = match &route.next_hop {
                NextHop::Maildir(p) => {
                    let p = base.join(p);
                    r.maildirs
                        .entry(p.clone())
                        .or_insert_with(|| Arc::new(MaildirAgent::new(p.clone(), hostname)));
                    NextHop::Maildir(p)
                }
                other => other.clone(),
            };
            let d = postern_config::comparable(&route.domain);
            if let Some(list) = &route.recipients {
                r.recipients
                    .insert(d.clone(), list.iter().map(|l| l.to_lowercase()).collect());
            }
            if d == "*" {
                r.default = Some(hop);
            } else if let Some(parent) = d.strip_prefix('.') {
                r.parents.insert(parent.to_string(), hop);
            } else {
                r.exact.insert(d, hop);
            }
        }
        r
    }

    /// Bounce messages with `n` or more `Received:` fields (default
    /// [`crate::loops::DEFAULT_MAX_HOP_COUNT`]).
    pub fn set_max_hop_count(&mut self, n: usize) {
        self.max_hop_count = n;
    }

    /// The configured route for a domain: exact entry, then `.parent` entries from the
    /// nearest parent outwards, then `*` (Postfix transport-map order).
    pub fn explicit(&self, domain: &Domain) -> Option<&NextHop> {
        self.lookup(domain).map(|(_, h)| h)
    }

    /// [`Router::explicit`], with the `domain` key of the route that matched.
    fn lookup(&self, domain: &Domain) -> Option<(String, &NextHop)> {
        let Domain::Name(name) = domain else {
            return self.default.as_ref().map(|h| ("*".to_string(), h));
        };
        // UTS #46: every spelling of a domain finds its route (#11).
        let name = &postern_config::comparable(name);
        if let Some(h) = self.exact.get(name) {
            return Some((name.clone(), h));
        }
        let mut rest = name.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(h) = self.parents.get(parent) {
                return Some((format!(".{parent}"), h));
            }
            rest = parent;
        }
        self.default.as_ref().map(|h| ("*".to_string(), h))
    }

    /// Where mail for `domain` goes: its route, else (with SMTP delivery) the domain's MX
    /// hosts, or for an address literal that address itself.
    pub fn next_hop(&self, domain: &Domain) -> Option<NextHop> {
        self.decide(domain).map(|d| d.hop)
    }

    /// The routing decision delivery acts on for recipients in `domain`: the next hop,
    /// where it came from, and the key of the TLS policy for SMTP hops. `policy explain`
    /// shows this same decision.
    pub fn decide(&self, domain: &Domain) -> Option<Decision> {
        let (hop, source) = match self.explicit(domain) {
            Some(h) => (h.clone(), RouteSource::Route),
            None => (self.default_hop(domain)?, RouteSource::Default),
        };
        let policy_domain = match &hop {
            NextHop::Smtp(_) => domain
                .to_string()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            NextHop::Maildir(_) => String::new(),
        };
        Some(Decision {
            hop,
            source,
            policy_domain,
        })
    }

    /// Without a route: SMTP to the domain's MX hosts (or an address literal itself),
    /// when this router delivers over SMTP at all.
    fn default_hop(&self, domain: &Domain) -> Option<NextHop> {
        self.smtp.as_ref()?;
        Some(NextHop::Smtp(match domain {
            Domain::Name(n) => SmtpHop {
                host: n.clone(),
                port: None,
                mx: true,
            },
            Domain::Literal(ip) => SmtpHop {
                host: ip.to_string(),
                port: None,
                mx: false,
            },
        }))
    }

    /// Every `[relay] local_domains` entry (under `at`) has an explicit route: mail
    /// accepted for a local domain must never fall through to MX delivery.
    pub fn validate_local_domains(&self, local_domains: &[String], at: &KeyPath, p: &mut Problems) {
        for (i, d) in local_domains.iter().enumerate() {
            if self
                .explicit(&Domain::Name(d.to_ascii_lowercase()))
                .is_none()
            {
                p.push(
                    at.key("local_domains").index(i),
                    format!(
                        "local domain {d:?} has no route: add [[route]] domain = {d:?} next_hop = \"maildir:mail\" (or another next hop)"
                    ),
                );
            }
        }
    }

    /// Whether the route for `address` accepts its local part: always, unless the route
    /// lists its `recipients` (then the list, and `postmaster`).
    pub fn accepts(&self, address: &Address) -> bool {
        let Some((key, _)) = self.lookup(&address.domain) else {
            return true;
        };
        let Some(list) = self.recipients.get(&key) else {
            return true;
        };
        let local = address.local.to_lowercase();
        local == "postmaster" || list.contains(&local)
    }

    /// Whether mail for `domain` has somewhere to go.
    pub fn routes(&self, domain: &Domain) -> bool {
        self.next_hop(domain).is_some()
    }

    pub fn smtp(&self) -> Option<&Arc<SmtpAgent>> {
        self.smtp.as_ref()
    }
}

impl Router {
    /// The bounce for a message that has travelled too many hops (a mail loop), if it has.
    async fn hop_count_exceeded(&self, msg: &QueuedMessage) -> Option<DeliveryOutcome> {
        let m = msg.clone();
        let count = tokio::task::spawn_blocking(move || crate::loops::received_count(&m))
            .await
            .ok()?
            .ok()?;
        crate::loops::too_many_hops(count, self.max_hop_count).then(|| {
            tracing::warn!(queue_id = %msg.envelope.id, "{}: {count} Received: header fields (limit {}): a mail loop; bouncing", msg.envelope.id, self.max_hop_count);
            DeliveryOutcome {
                relay: "none".into(),
                outcome: Outcome::Permanent(crate::detail::local(format!(
                    "5.4.6 hop count exceeded - mail loop? ({count} Received: header fields, limit {})",
                    self.max_hop_count
                ))),
            }
        })
    }
}

impl DeliveryAgent for Router {
    fn deliver<'a>(
        &'a self,
        msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> BoxFuture<'a, Vec<DeliveryOutcome>> {
        Box::pin(async move {
            if let Some(o) = self.hop_count_exceeded(msg).await {
                return vec![o; rcpts.len()];
            }
            let mut results: Vec<Option<DeliveryOutcome>> = vec![None; rcpts.len()];
            // Group by next hop, and for SMTP also by recipient domain (the TLS policy key).
            let mut groups: HashMap<(NextHop, String), Vec<usize>> = HashMap::new();
            for (n, &i) in rcpts.iter().enumerate() {
                let domain = &msg.envelope.recipients[i].domain;
                match self.decide(domain) {
                    Some(d) => groups.entry((d.hop, d.policy_domain)).or_default().push(n),
                    None => {
                        results[n] = Some(DeliveryOutcome {
                            relay: "none".into(),
                            outcome: Outcome::Temporary(crate::detail::local(format!(
                                "4.3.5 no route for domain {domain}: add a [[route]] for it (the message waits in the queue)"
                            ))),
                        })
                    }
                }
            }
            for ((hop, domain), positions) in groups {
                let idx: Vec<usize> = positions.iter().map(|&n| rcpts[n]).collect();
                let outcomes = match &hop {
                    NextHop::Maildir(p) => match self.maildirs.get(p) {
                        Some(agent) => agent.deliver(msg, &idx).await,
                        None => Vec::new(),
                    },
                    NextHop::Smtp(h) => match &self.smtp {
                        Some(agent) => {
                            let named = idx.first().is_some_and(|&i| {
                                matches!(
                                    self.explicit(&msg.envelope.recipients[i].domain),
                                    Some(NextHop::Smtp(_))
                                )
                            });
                            agent.deliver(h, &domain, msg, &idx, named).await
                        }
                        None => Vec::new(),
                    },
                };
                for (k, &n) in positions.iter().enumerate() {
                    results[n] = outcomes.get(k).cloned();
                }
            }
            results
                .into_iter()
                .map(|o| {
                    o.unwrap_or(DeliveryOutcome {
                        relay: "none".into(),
                        outcome: Outcome::Temporary(crate::detail::local(
                            "4.3.0 internal error: no outcome from the delivery agent",
                        )),
                    })
                })
                .collect()
        })
    }
}

/// The `route:` lines of `postern check-config`, in table order.
pub fn summary(routes: &[RouteConfig]) -> String {
    routes
        .iter()
        .map(|r| format!("  route:     {} -> {}\n", r.domain, r.next_hop))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(pairs: &[(&str, &str)]) -> Vec<RouteConfig> {
        pairs
            .iter()
            .map(|(d, h)| RouteConfig {
                domain: d.to_string(),
                next_hop: h.parse().unwrap(),
                recipients: None,
            })
            .collect()
    }

    #[test]
    fn lookup_order() {
        let r = Router::new(
            &routes(&[
                ("example.org", "maildir:a"),
                (".example.org", "maildir:b"),
                ("*", "maildir:c"),
            ]),
            Path::new("/base"),
            "h",
            None,
        );
        let hop = |d: &str| r.explicit(&Domain::Name(d.into())).map(|h| h.to_string());
        assert_eq!(hop("example.org").as_deref(), Some("maildir:/base/a"));
        assert_eq!(hop("mx.example.org").as_deref(), Some("maildir:/base/b"));
        assert_eq!(hop("a.b.example.org").as_deref(), Some("maildir:/base/b"));
        assert_eq!(hop("other.test").as_deref(), Some("maildir:/base/c"));
        let r = Router::new(
            &routes(&[("example.org", "maildir:/abs")]),
            Path::new("/base"),
            "h",
            None,
        );
        assert_eq!(r.next_hop(&Domain::Name("sub.example.org".into())), None);
        assert_eq!(
            r.next_hop(&Domain::Name("example.org".into()))
                .unwrap()
                .to_string(),
            "maildir:/abs"
        );
    }

    #[test]
    fn idn_routes_match_in_every_spelling() {
        let r = Router::new(
            &routes(&[
                ("Bücher.example", "maildir:a"),
                (".Grüße.example", "maildir:b"),
            ]),
            Path::new("/base"),
            "h",
            None,
        );
        let hop = |d: &str| r.explicit(&Domain::Name(d.into())).map(|h| h.to_string());
        for d in ["bücher.example", "BÜCHER.example", "xn--bcher-kva.example"] {
            assert_eq!(hop(d).as_deref(), Some("maildir:/base/a"), "{d}");
        }
        for d in ["mx.grüße.example", "MX.GRÜßE.EXAMPLE"] {
            assert_eq!(hop(d).as_deref(), Some("maildir:/base/b"), "{d}");
        }
    }

    #[test]
    fn listed_recipients_only() {
        let mut table = routes(&[("example.org", "maildir:a"), ("other.org", "maildir:a")]);
        table[0].recipients = Some(vec!["Alice".into()]);
        let r = Router::new(&table, Path::new("/base"), "h", None);
        let addr = |s: &str| {
            let (l, d) = s.split_once('@').unwrap();
            Address {
                local: l.into(),
                domain: Domain::Name(d.into()),
            }
        };
        assert!(r.accepts(&addr("alice@example.org")));
        assert!(r.accepts(&addr("ALICE@example.org")));
        assert!(r.accepts(&addr("postmaster@example.org")));
        assert!(!r.accepts(&addr("mallory@example.org")));
        // The list belongs to its route, not to the next hop both routes share.
        assert!(r.accepts(&addr("mallory@other.org")));
        assert!(r.accepts(&addr("anyone@unrouted.org")));
    }

    #[test]
    fn validation() {
        let mut p = Problems::new();
        validate(
            &routes(&[
                ("a.test", "maildir:x"),
                ("A.test", "maildir:y"),
                ("bad domain", "maildir:z"),
            ]),
            &mut p,
        );
        let errs = p.locate_in("f", "");
        assert_eq!(errs.len(), 2);
        assert!(
            errs.iter()
                .any(|e| e.message.contains("already routed by route[0]"))
        );
        let hop = |s: &str| s.parse::<NextHop>().map(|h| h.to_string());
        assert_eq!(hop("smtp:[mx.test]:2525").unwrap(), "smtp:[mx.test]:2525");
        assert_eq!(hop("smtp:example.org").unwrap(), "smtp:example.org");
        assert_eq!(hop("smtp:Example.org:587").unwrap(), "smtp:example.org:587");
        assert_eq!(hop("smtp:[192.0.2.1]").unwrap(), "smtp:[192.0.2.1]");
        assert_eq!(
            hop("smtp:[IPv6:2001:db8::1]:25").unwrap(),
            "smtp:[2001:db8::1]:25"
        );
        assert!(hop("smtp:192.0.2.1").is_err());
        assert!(hop("smtp:[mx.test]:0").is_err());
        assert!(hop("smtp:[mx.test]:x").is_err());
        assert!(hop("smtp:bad host").is_err());
        assert!(hop("smtp:[mx.test").is_err());
        assert!("maildir:".parse::<NextHop>().is_err());
        assert!("pigeon:x".parse::<NextHop>().is_err());
    }
}
