//! The `[[route]]` table: domain → next hop, and the router that applies it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postern_config::{KeyPath, Problems};
use postern_queue::agent_future::BoxFuture;
use postern_queue::{DeliveryAgent, DeliveryOutcome, Outcome, QueuedMessage};
use postern_smtp::address::{Domain, parse_domain};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::MaildirAgent;

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `example.org` (that domain), `.example.org` (its subdomains) or `*` (everything
    /// without a more specific route).
    pub domain: String,
    /// Where the mail goes: `maildir:PATH` (relative paths are under `server.state_dir`).
    pub next_hop: NextHop,
}

/// A next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Deliver into Maildirs under this directory, one per recipient local part.
    Maildir(PathBuf),
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Maildir(p) => write!(f, "maildir:{}", p.display()),
        }
    }
}

impl std::str::FromStr for NextHop {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("maildir", path)) if !path.is_empty() => {
                Ok(NextHop::Maildir(PathBuf::from(path)))
            }
            Some(("maildir", _)) => {
                Err("maildir: needs a directory, e.g. \"maildir:/var/mail/postern\"".into())
            }
            Some(("smtp" | "lmtp", _)) => Err(format!(
                "{s:?}: SMTP next hops are not available in this version of Postern; only maildir:PATH is"
            )),
            _ => Err(format!(
                "unknown next hop {s:?}: write it as \"maildir:PATH\""
            )),
        }
    }
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

/// Applies the route table: groups recipients by next hop and hands them to its agent.
#[derive(Debug)]
pub struct Router {
    exact: HashMap<String, NextHop>,
    /// `.example.org` entries, keyed without the dot.
    parents: HashMap<String, NextHop>,
    default: Option<NextHop>,
    agents: HashMap<NextHop, Arc<dyn DeliveryAgent>>,
}

impl Router {
    /// Build from a validated table. `base` resolves relative Maildir paths.
    pub fn new(routes: &[RouteConfig], base: &Path, hostname: &str) -> Router {
        let mut r = Router {
            exact: HashMap::new(),
            parents: HashMap::new(),
            default: None,
            agents: HashMap::new(),
        };
        for route in routes {
            let hop = match &route.next_hop {
                NextHop::Maildir(p) => NextHop::Maildir(base.join(p)),
            };
            let agent: Arc<dyn DeliveryAgent> = match &hop {
                NextHop::Maildir(p) => Arc::new(MaildirAgent::new(p.clone(), hostname)),
            };
            r.agents.entry(hop.clone()).or_insert(agent);
            let d = route.domain.to_ascii_lowercase();
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

    /// The next hop for a domain: exact entry, then `.parent` entries from the nearest
    /// parent outwards, then `*` (Postfix transport-map order).
    pub fn next_hop(&self, domain: &Domain) -> Option<&NextHop> {
        let Domain::Name(name) = domain else {
            return self.default.as_ref();
        };
        if let Some(h) = self.exact.get(name) {
            return Some(h);
        }
        let mut rest = name.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(h) = self.parents.get(parent) {
                return Some(h);
            }
            rest = parent;
        }
        self.default.as_ref()
    }

    /// Whether mail for `domain` has somewhere to go.
    pub fn routes(&self, domain: &Domain) -> bool {
        self.next_hop(domain).is_some()
    }
}

impl DeliveryAgent for Router {
    fn deliver<'a>(
        &'a self,
        msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> BoxFuture<'a, Vec<DeliveryOutcome>> {
        Box::pin(async move {
            let mut results: Vec<Option<DeliveryOutcome>> = vec![None; rcpts.len()];
            let mut groups: HashMap<&NextHop, Vec<usize>> = HashMap::new();
            for (n, &i) in rcpts.iter().enumerate() {
                let domain = &msg.envelope.recipients[i].domain;
                match self.next_hop(domain) {
                    Some(h) => groups.entry(h).or_default().push(n),
                    None => {
                        results[n] = Some(DeliveryOutcome {
                            relay: "none".into(),
                            outcome: Outcome::Temporary(format!(
                                "no route for domain {domain}: add a [[route]] for it (the message waits in the queue)"
                            )),
                        })
                    }
                }
            }
            for (hop, positions) in groups {
                let Some(agent) = self.agents.get(hop) else {
                    continue;
                };
                let idx: Vec<usize> = positions.iter().map(|&n| rcpts[n]).collect();
                let outcomes = agent.deliver(msg, &idx).await;
                for (k, &n) in positions.iter().enumerate() {
                    results[n] = outcomes.get(k).cloned();
                }
            }
            results
                .into_iter()
                .map(|o| {
                    o.unwrap_or(DeliveryOutcome {
                        relay: "none".into(),
                        outcome: Outcome::Temporary(
                            "internal error: no outcome from the agent".into(),
                        ),
                    })
                })
                .collect()
        })
    }
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
        );
        let hop = |d: &str| r.next_hop(&Domain::Name(d.into())).map(|h| h.to_string());
        assert_eq!(hop("example.org").as_deref(), Some("maildir:/base/a"));
        assert_eq!(hop("mx.example.org").as_deref(), Some("maildir:/base/b"));
        assert_eq!(hop("a.b.example.org").as_deref(), Some("maildir:/base/b"));
        assert_eq!(hop("other.test").as_deref(), Some("maildir:/base/c"));
        let r = Router::new(
            &routes(&[("example.org", "maildir:/abs")]),
            Path::new("/base"),
            "h",
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
        assert!(
            "smtp:[mx.test]:25"
                .parse::<NextHop>()
                .unwrap_err()
                .contains("not available")
        );
        assert!("maildir:".parse::<NextHop>().is_err());
        assert!("pigeon:x".parse::<NextHop>().is_err());
    }
}
