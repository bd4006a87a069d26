//! The whole configuration file: each section is owned by the crate that uses it; this
//! module only composes them, validates across sections, and locates every problem.

use std::path::{Path, PathBuf};

use postern_config::{ConfigError, KeyPath, Problems, parse_toml};
use postern_inbound::{InboundConfig, ListenerConfig, RelayConfig};
use postern_queue::QueueConfig;
use postern_relay::{OutboundConfig, ResolverConfig, RouteConfig, Router};
use postern_smtp::address::{Domain, parse_domain};
use postern_tls::{LoadedCert, TlsConfig};
use serde::{Deserialize, Serialize};

/// The built-in configuration used when no file is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/embedded-default.toml");
/// The name errors use for the built-in configuration.
pub const EMBEDDED_NAME: &str = "(built-in default configuration)";

/// `postern.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub listener: Vec<ListenerConfig>,
    #[serde(default)]
    pub relay: RelayConfig,
    /// `[[inbound.partner]]` rules (partner mutual TLS).
    #[serde(default)]
    pub inbound: InboundConfig,
    #[serde(default)]
    pub route: Vec<RouteConfig>,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    #[serde(default)]
    pub resolver: ResolverConfig,
    #[serde(default)]
    pub metrics: postern_metrics::MetricsConfig,
    #[serde(default)]
    pub auth: postern_auth::AuthConfig,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Our host name (greeting, EHLO, Received). Default: the system host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Where the queue, generated certificates and local Maildirs live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Where the queue lives. Default: `STATE_DIR/queue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_dir: Option<PathBuf>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/postern")
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: None,
            state_dir: default_state_dir(),
            queue_dir: None,
        }
    }
}

impl Config {
    /// The host name to use: configured, or the system's.
    pub fn hostname(&self) -> String {
        self.server.hostname.clone().unwrap_or_else(system_hostname)
    }

    /// The queue directory: `[server] queue_dir`, or `STATE_DIR/queue`.
    pub fn queue_dir(&self) -> PathBuf {
        self.server
            .queue_dir
            .clone()
            .unwrap_or_else(|| self.server.state_dir.join("queue"))
    }

    /// The route table alone (no SMTP delivery), with relative Maildir paths under the
    /// state directory: enough to check where configured routes point.
    pub fn static_router(&self) -> Router {
        Router::new(&self.route, &self.server.state_dir, &self.hostname(), None)
    }
}

/// The system host name, or `localhost` when it cannot be read.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A configuration with where it came from, for error messages.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file name, or [`EMBEDDED_NAME`].
    pub name: String,
    pub source: String,
}

/// Load and fully validate: from `path`, or the built-in default when `None`.
pub fn load(path: Option<&Path>) -> Result<Loaded, Vec<ConfigError>> {
    let (name, source) = match path {
        Some(p) => {
            let name = p.display().to_string();
            match std::fs::read_to_string(p) {
                Ok(s) => (name, s),
                Err(e) => {
                    return Err(vec![ConfigError {
                        file: name,
                        line: 1,
                        col: 1,
                        key: "(file)".into(),
                        message: format!("cannot read the configuration file: {e}"),
                    }]);
                }
            }
        }
        None => (EMBEDDED_NAME.to_string(), EMBEDDED_DEFAULT.to_string()),
    };
    load_str(&name, &source)
}

/// Load and validate configuration text.
pub fn load_str(name: &str, source: &str) -> Result<Loaded, Vec<ConfigError>> {
    let config: Config = parse_toml(name, source).map_err(|e| vec![e])?;
    let mut p = Problems::new();
    validate(&config, &mut p);
    if !p.is_empty() {
        return Err(p.locate_in(name, source));
    }
    Ok(Loaded {
        config,
        name: name.to_string(),
        source: source.to_string(),
    })
}

/// Every check that needs more than one section, or the file system.
fn validate(c: &Config, p: &mut Problems) {
    if let Some(h) = &c.server.hostname
        && let Err(e) = parse_domain(h)
    {
        p.push(
            KeyPath::of("server").key("hostname"),
            format!("{h:?} is not a host name: {e}"),
        );
    }
    if c.server.state_dir.exists() && !c.server.state_dir.is_dir() {
        p.push(
            KeyPath::of("server").key("state_dir"),
            format!(
                "{} exists but is not a directory",
                c.server.state_dir.display()
            ),
        );
    }
    if let Some(q) = &c.server.queue_dir
        && q.exists()
        && !q.is_dir()
    {
        p.push(
            KeyPath::of("server").key("queue_dir"),
            format!("{} exists but is not a directory", q.display()),
        );
    }
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    crate::tls_checks::validate(c, p);
    for (i, cert) in c.tls.certificate.iter().enumerate() {
        if let Err(e) = LoadedCert::load(&cert.chain, &cert.key, &provider) {
            let at = KeyPath::of("tls").key("certificate").index(i);
            let key = if e.to_string().contains(&cert.key.display().to_string())
                && !e.to_string().contains(&cert.chain.display().to_string())
            {
                "key"
            } else {
                "chain"
            };
            p.push(at.key(key), e.to_string());
        }
    }
    postern_inbound::validate_config(&c.listener, &c.relay, p);
    for (i, l) in c.listener.iter().enumerate() {
        if let Some(ca) = &l.client_ca
            && let Err(e) = postern_tls::client::load_roots(Some(ca))
        {
            p.push(
                KeyPath::of("listener").index(i).key("client_ca"),
                e.to_string(),
            );
        }
    }
    postern_relay::validate_routes(&c.route, p);
    if !c.outbound.enabled {
        for (i, r) in c.route.iter().enumerate() {
            if matches!(r.next_hop, postern_relay::NextHop::Smtp(_)) {
                p.push(
                    KeyPath::of("route").index(i).key("next_hop"),
                    format!("{}: SMTP delivery is switched off ([outbound] enabled = false); use a maildir: next hop or enable [outbound]", r.next_hop),
                );
            }
        }
    }
    c.queue.validate(&KeyPath::of("queue"), p);
    postern_relay::outbound::config::validate(&c.outbound, p);
    postern_relay::outbound::config::validate_resolver(&c.resolver, p);
    c.auth.validate(&KeyPath::of("auth"), p);
    // Loading the policies checks their CA, certificate and key files.
    let _ = postern_relay::outbound::policy::Policies::load(&c.outbound, &provider, p);
    let router = c.static_router();
    for (i, d) in c.relay.local_domains.iter().enumerate() {
        if router
            .explicit(&Domain::Name(d.to_ascii_lowercase()))
            .is_none()
        {
            p.push(
                KeyPath::of("relay").key("local_domains").index(i),
                format!(
                    "local domain {d:?} has no route: add [[route]] domain = {d:?} next_hop = \"maildir:mail\" (or another next hop)"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let l = load(None).unwrap();
        assert_eq!(l.config.listener.len(), 1);
        assert_eq!(l.config.listener[0].address.to_string(), "127.0.0.1:2525");
        assert_eq!(l.config.relay.local_domains, vec!["localhost"]);
    }
}
