//! Outbound delivery as the daemon runs it: the SMTP agent (TLS policies, resolver) and
//! the router over it, built from the configuration. `postern policy explain` builds the
//! same objects, so its answer is what delivery would do.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use postern_dns::Resolver;

use super::agent::SmtpAgent;
use super::config::OutboundConfig;
use super::policy::Policies;
use crate::{RouteConfig, Router};

/// What outbound delivery needs from the other sections of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub outbound: &'a OutboundConfig,
    pub routes: &'a [RouteConfig],
    /// Relative Maildir paths are under it.
    pub state_dir: &'a Path,
    pub hostname: &'a str,
    /// The configured listener addresses (the loop guard's own addresses until the bound
    /// ports replace them at start).
    pub listeners: &'a [SocketAddr],
    /// The listeners' largest `max_hop_count`, counted the same way on the queue side.
    pub max_hop_count: Option<usize>,
}

/// Why outbound delivery could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the outbound TLS policies could not be loaded (run check-config)")]
    Policies,
}

/// The SMTP agent and the router over it (`[outbound] enabled = false`: the router
/// delivers nothing over SMTP).
pub fn build(s: Setup<'_>, dns: Resolver) -> Result<(Arc<SmtpAgent>, Arc<Router>), BuildError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut problems = postern_config::Problems::new();
    let policies = Policies::load(s.outbound, &provider, &mut problems);
    if !problems.is_empty() {
        return Err(BuildError::Policies);
    }
    let helo = s
        .outbound
        .helo_name
        .clone()
        .unwrap_or_else(|| s.hostname.to_string());
    let dnssec_off = dns.mode() == postern_dns::DnssecMode::Off;
    if s.outbound.enabled {
        for w in super::config::dane_warnings(s.outbound, dnssec_off) {
            tracing::warn!("{w}");
        }
    }
    let smtp = Arc::new(SmtpAgent::new(s.outbound.clone(), helo, dns, policies));
    smtp.own_addresses().set(s.listeners.to_vec());
    super::mta_sts::install(&smtp, s.outbound, s.state_dir);
    let mut router = Router::new(
        s.routes,
        s.state_dir,
        s.hostname,
        s.outbound.enabled.then(|| smtp.clone()),
    );
    if let Some(max) = s.max_hop_count {
        router.set_max_hop_count(max);
    }
    Ok((smtp, Arc::new(router)))
}
