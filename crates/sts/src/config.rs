//! `[mta_sts]`: serving our own domains' MTA-STS policies (RFC 8461 §3.2-3.3) over HTTPS.
//!
//! ```toml
//! [mta_sts]
//! listen = ["0.0.0.0:443", "[::]:443"]   # empty (the default): no policy listener
//! http_listen = ["0.0.0.0:80"]           # optional: plain HTTP that only redirects
//!
//! [[mta_sts.policy]]
//! domain = "example.org"
//! mode = "enforce"                       # enforce | testing | none
//! mx = ["mx.example.org", "*.mx.example.org"]
//! max_age = 604800                       # seconds, at most 31557600
//! ```

use std::net::SocketAddr;

use postern_config::server::ServerConfig;
use postern_config::{KeyPath, Problems, normalize_domain};
use serde::{Deserialize, Serialize};

/// The largest `max_age` RFC 8461 §3.2 allows (about one year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// `max_age` when the configuration gives none: one week.
pub const DEFAULT_MAX_AGE: u64 = 604_800;

/// `[mta_sts]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MtaStsConfig {
    /// HTTPS listener addresses; empty: the policy listener is off.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Plain HTTP listener addresses that answer only `301` to the `https://` URL.
    #[serde(default)]
    pub http_listen: Vec<SocketAddr>,
    /// One `[[mta_sts.policy]]` per domain.
    #[serde(default)]
    pub policy: Vec<PolicyConfig>,
}

/// One `[[mta_sts.policy]]`: the policy served at
/// `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The mail domain (`example.org`); the policy host is `mta-sts.example.org`.
    pub domain: String,
    pub mode: Mode,
    /// MX host names or `*.` patterns (one leftmost label) senders may deliver to.
    #[serde(default)]
    pub mx: Vec<String>,
    /// How long senders may cache the policy, in seconds (≤ 31557600).
    #[serde(default = "default_max_age")]
    pub max_age: u64,
}

fn default_max_age() -> u64 {
    DEFAULT_MAX_AGE
}

/// A served policy's mode (RFC 8461 §5): the same type senders parse.
pub use crate::policy::Mode;

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MtaStsConfig {
    /// Whether the policy listener runs.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }
}

impl PolicyConfig {
    /// The domain as lower-case A-labels (falls back to lower case when invalid; the
    /// configuration check refuses those).
    pub fn normalized_domain(&self) -> String {
        normalize_domain(&self.domain).unwrap_or_else(|_| self.domain.to_ascii_lowercase())
    }

    /// The `mx` patterns as lower-case A-labels, `*.` kept.
    pub fn normalized_mx(&self) -> Vec<String> {
        self.mx
            .iter()
            .map(|m| normalize_mx(m).unwrap_or_else(|_| m.to_ascii_lowercase()))
            .collect()
    }
}

fn normalize_mx(m: &str) -> Result<String, String> {
    let (prefix, rest) = match m.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", m),
    };
    if rest.contains('*') {
        return Err(format!(
            "{m:?}: a wildcard is allowed only as the whole leftmost label (\"*.example.org\")"
        ));
    }
    let name = normalize_domain(rest).map_err(|e| format!("{m:?}: {e}"))?;
    if !name.contains('.') {
        return Err(format!(
            "{m:?}: an MX pattern needs at least two labels (a host name, not a top-level domain)"
        ));
    }
    Ok(format!("{prefix}{name}"))
}

/// Does MX pattern `pattern` (`mx.example.org` or `*.example.org`: one leftmost label,
/// RFC 8461 §4.1) cover host `host`? Both in normalised form.
pub fn mx_covers(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(base) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == base),
        None => pattern == host,
    }
}

/// Check `[mta_sts]`. `server`: its configured `hostname` is the MX name we answer as
/// (when not configured, whether the MX lists cover us cannot be told); `local_domains`:
/// `relay.local_domains`, the domains whose mail comes to this server.
pub fn validate(
    c: &MtaStsConfig,
    server: &ServerConfig,
    local_domains: &[String],
    p: &mut Problems,
) {
    let hostname = server.hostname.as_deref();
    let at = KeyPath::of("mta_sts");
    if !c.listen.is_empty() && c.policy.is_empty() {
        p.push(
            at.key("listen"),
            "the policy listener has no policy to serve: add [[mta_sts.policy]] entries or leave listen empty",
        );
    }
    if c.listen.is_empty() && !c.http_listen.is_empty() {
        p.push(
            at.key("http_listen"),
            "http_listen only redirects to the HTTPS policy listener, which is off (listen is empty)",
        );
    }
    for (i, a) in c.http_listen.iter().enumerate() {
        if a.port() != 0 && c.listen.contains(a) {
            p.push(
                at.key("http_listen").index(i),
                format!("{a} is also in mta_sts.listen: HTTP and HTTPS need different ports"),
            );
        }
    }
    let local: Vec<String> = local_domains
        .iter()
        .map(|d| normalize_domain(d).unwrap_or_else(|_| d.to_ascii_lowercase()))
        .collect();
    let host = hostname.and_then(|h| normalize_domain(h).ok());
    let mut seen: Vec<String> = Vec::new();
    for (i, pol) in c.policy.iter().enumerate() {
        let at = at.key("policy").index(i);
        let domain = match normalize_domain(&pol.domain) {
            Ok(d) if d.contains('.') => d,
            Ok(_) => {
                p.push(
                    at.key("domain"),
                    format!("{:?}: a mail domain needs at least two labels", pol.domain),
                );
                continue;
            }
            Err(e) => {
                p.push(at.key("domain"), e.to_string());
                continue;
            }
        };
        if seen.contains(&domain) {
            p.push(
                at.key("domain"),
                format!("{domain}: a second policy for the same domain (one [[mta_sts.policy]] per domain)"),
            );
        }
        seen.push(domain.clone());
        if pol.max_age > MAX_AGE_LIMIT {
            p.push(
                at.key("max_age"),
                format!(
                    "{} seconds is more than RFC 8461 allows ({MAX_AGE_LIMIT}, about a year)",
                    pol.max_age
                ),
            );
        }
        let mut patterns = Vec::new();
        for (j, m) in pol.mx.iter().enumerate() {
            match normalize_mx(m) {
                Ok(n) => patterns.push(n),
                Err(e) => p.push(at.key("mx").index(j), e),
            }
        }
        if pol.mx.is_empty() && pol.mode != Mode::None {
            // Located at `mode`: the missing key has no line of its own.
            p.push(
                at.key("mode"),
                format!(
                    "a policy in mode {} must list the MX hosts senders may deliver to (mx = [...])",
                    pol.mode
                ),
            );
            continue;
        }
        // Mail for our own local domains comes to us: a policy that does not list our
        // host name would make senders that enforce it refuse to deliver here.
        if pol.mode != Mode::None
            && local.contains(&domain)
            && let Some(host) = &host
            && patterns.len() == pol.mx.len()
            && !patterns.iter().any(|m| mx_covers(m, host))
        {
            p.push(
                at.key("mx"),
                format!(
                    "{domain} is one of relay.local_domains, so its mail comes to this server, but no mx pattern covers our host name {host} ([server] hostname): senders enforcing this policy would refuse to deliver here"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, hostname: Option<&str>, local: &[&str]) -> Vec<String> {
        #[derive(Deserialize)]
        struct Top {
            mta_sts: MtaStsConfig,
        }
        let top: Top = toml::from_str(text).expect("parses");
        let mut p = Problems::new();
        let local: Vec<String> = local.iter().map(|s| s.to_string()).collect();
        let server = ServerConfig {
            hostname: hostname.map(str::to_string),
            ..Default::default()
        };
        validate(&top.mta_sts, &server, &local, &mut p);
        p.locate_in("t.toml", text)
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    const GOOD: &str = r#"
[mta_sts]
listen = ["127.0.0.1:443"]
[[mta_sts.policy]]
domain = "Example.ORG"
mode = "enforce"
mx = ["mx.example.org", "*.backup.example.org"]
max_age = 86400
"#;

    #[test]
    fn a_good_policy_passes() {
        assert!(problems(GOOD, Some("mx.example.org"), &["example.org"]).is_empty());
        assert!(problems(GOOD, Some("a.backup.example.org"), &["example.org"]).is_empty());
        // Not one of our domains: we only host its policy.
        assert!(problems(GOOD, Some("other.test"), &[]).is_empty());
        // Host name not configured: cannot tell.
        assert!(problems(GOOD, None, &["example.org"]).is_empty());
    }

    #[test]
    fn our_host_name_must_be_covered() {
        let e = problems(GOOD, Some("mail.example.org"), &["example.org"]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:7:1: mta_sts.policy[0].mx: "),
            "{e:?}"
        );
        assert!(e[0].contains("mail.example.org"), "{e:?}");
        // Two labels under the wildcard are not covered.
        let e = problems(GOOD, Some("a.b.backup.example.org"), &["example.org"]);
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn bad_values_are_located() {
        let text = r#"
[mta_sts]
listen = ["127.0.0.1:443"]
http_listen = ["127.0.0.1:443"]
[[mta_sts.policy]]
domain = "example.org"
mode = "testing"
mx = ["mx.*.example.org", "org"]
max_age = 31557601
[[mta_sts.policy]]
domain = "EXAMPLE.org"
mode = "enforce"
"#;
        let e = problems(text, None, &[]).join("\n");
        for want in [
            "t.toml:4:16: mta_sts.http_listen[0]: 127.0.0.1:443 is also in mta_sts.listen",
            "t.toml:8:7: mta_sts.policy[0].mx[0]: \"mx.*.example.org\": a wildcard",
            "t.toml:8:27: mta_sts.policy[0].mx[1]: \"org\": an MX pattern needs at least two labels",
            "t.toml:9:1: mta_sts.policy[0].max_age: 31557601 seconds",
            "t.toml:11:1: mta_sts.policy[1].domain: example.org: a second policy",
            "t.toml:12:1: mta_sts.policy[1].mode: a policy in mode enforce must list",
        ] {
            assert!(e.contains(want), "{want:?} not in\n{e}");
        }
    }

    #[test]
    fn unknown_modes_and_keys_are_refused() {
        let e = postern_config::parse_toml::<MtaStsConfig>(
            "t.toml",
            "[[policy]]\ndomain = \"a.test\"\nmode = \"strict\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "policy[0].mode");
        assert!(e.message.contains("enforce"), "{e}");
        let e = postern_config::parse_toml::<MtaStsConfig>("t.toml", "lisen = []\n").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(mx_covers("*.example.org", "mx.example.org"));
        assert!(!mx_covers("*.example.org", "example.org"));
        assert!(!mx_covers("*.example.org", "a.mx.example.org"));
        assert!(mx_covers("mx.example.org", "mx.example.org."));
        assert!(!mx_covers("mx.example.org", "mx2.example.org"));
    }
}
