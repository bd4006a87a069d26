//! The whole configuration file: each section is owned by the crate that uses it; this
//! module only composes them, validates across sections, and locates every problem.

use std::path::{Path, PathBuf};

pub use postern_config::server::{ServerConfig, system_hostname};
use postern_config::{ConfigError, KeyPath, Problems, parse_toml};
use postern_dns::ResolverConfig;
use postern_inbound::{InboundConfig, ListenerConfig, RelayConfig};
use postern_queue::QueueConfig;
use postern_relay::{OutboundConfig, RouteConfig, Router};
use postern_smtp::address::parse_domain;
use postern_tls::TlsConfig;
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
    #[serde(default)]
    pub mta_sts: postern_sts::MtaStsConfig,
    #[serde(default)]
    pub reports: postern_reports::ReportsConfig,
}

impl Config {
    /// The host name to use: configured, or the system's.
    pub fn hostname(&self) -> String {
        self.server.hostname()
    }

    /// The queue directory: `[server] queue_dir`, or `STATE_DIR/queue`.
    pub fn queue_dir(&self) -> PathBuf {
        self.server.queue_dir()
    }

    /// The route table alone (no SMTP delivery), with relative Maildir paths under the
    /// state directory: enough to check where configured routes point.
    pub fn static_router(&self) -> Router {
        Router::new(&self.route, &self.server.state_dir, &self.hostname(), None)
    }
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
    let (name, source) = read(path)?;
    load_str(&name, &source)
}

/// Parse only: the syntax and the types of every value are checked, but no file the
/// configuration names (certificates, private keys, DKIM keys, CAs) is opened and nothing
/// across sections is validated. For commands run by ordinary users that need only a
/// value or two (`postern sendmail`: the first listener), where the daemon's private key
/// files are, rightly, unreadable. Never start the daemon from this.
pub fn parse_only(path: Option<&Path>) -> Result<Loaded, Vec<ConfigError>> {
    let (name, source) = read(path)?;
    let config: Config = parse_toml(&name, &source).map_err(|e| vec![e])?;
    Ok(Loaded {
        config,
        name,
        source,
    })
}

/// The configuration text and its name for errors: `path`, or the built-in default.
fn read(path: Option<&Path>) -> Result<(String, String), Vec<ConfigError>> {
    Ok(match path {
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
    })
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
    c.server.validate(p);
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    postern_tls::check::validate_certificates(&c.tls, p);
    postern_inbound::tls_checks::validate(&c.listener, &c.inbound, &c.relay, p);
    postern_tls::check::load_certificates(&c.tls, &provider, p);
    postern_inbound::validate_config(&c.listener, &c.relay, p);
    postern_inbound::tls_checks::validate_client_cas(&c.listener, p);
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
    postern_dns::validate(&c.resolver, p);
    c.auth.validate(&KeyPath::of("auth"), p);
    postern_sts::config::validate(&c.mta_sts, &c.server, &c.relay.local_domains, p);
    c.reports.validate(&KeyPath::of("reports"), p);
    // Loading the policies checks their CA, certificate and key files.
    let _ = postern_relay::outbound::policy::Policies::load(&c.outbound, &provider, p);
    c.static_router()
        .validate_local_domains(&c.relay.local_domains, &KeyPath::of("relay"), p);
}
