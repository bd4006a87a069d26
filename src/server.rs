//! Starting and stopping the daemon's parts.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use postern_inbound::{Listener, RelayPolicy, ServerContext};
use postern_queue::{Queue, Spool};
use postern_tls::LoadedCert;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Config;

/// Why the daemon could not start (the configuration was valid, the machine said no).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] postern_tls::TlsError),
    #[error("cannot open the queue in {path}: {source}")]
    Queue {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Listen(std::io::Error),
    #[error("outbound: {0}")]
    Outbound(String),
}

/// A started daemon.
#[derive(Debug)]
pub struct Running {
    /// Bound addresses, in `[[listener]]` order (useful with port 0).
    pub addrs: Vec<SocketAddr>,
    pub queue: Queue,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop accepting connections and wait for the listeners to stop.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Start everything a validated configuration describes.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let hostname = config.hostname();
    let state = &config.server.state_dir;
    std::fs::create_dir_all(state).map_err(|source| StartError::StateDir {
        path: state.display().to_string(),
        source,
    })?;

    let loaded_certs = load_certs(config, &hostname, state)?;
    let tls = Some(postern_tls::server_config(
        config.tls.profile,
        loaded_certs.clone(),
    )?);

    let queue_dir = state.join("queue");
    let spool = Spool::open(&queue_dir).map_err(|source| StartError::Queue {
        path: queue_dir.display().to_string(),
        source,
    })?;
    let provider = postern_tls_provider();
    let mut problems = postern_config::Problems::new();
    let policies =
        postern_relay::outbound::policy::Policies::load(&config.outbound, &provider, &mut problems);
    if !problems.is_empty() {
        return Err(StartError::Outbound(
            "the outbound TLS policies could not be loaded (run check-config)".into(),
        ));
    }
    let dns =
        postern_relay::outbound::dns::Dns::new(&config.resolver).map_err(StartError::Outbound)?;
    let helo = config
        .outbound
        .helo_name
        .clone()
        .unwrap_or_else(|| hostname.clone());
    let smtp = Arc::new(postern_relay::outbound::agent::SmtpAgent::new(
        config.outbound.clone(),
        helo,
        dns,
        policies,
    ));
    let router = Arc::new(postern_relay::Router::new(
        &config.route,
        state,
        &hostname,
        Some(smtp),
    ));
    let queue = Queue::start_with(
        Arc::new(spool),
        config.queue.clone(),
        router.clone(),
        &hostname,
    )
    .map_err(|source| StartError::Queue {
        path: queue_dir.display().to_string(),
        source,
    })?;

    let make_ctx = |tls: Option<Arc<rustls::ServerConfig>>| {
        let router = router.clone();
        Arc::new(ServerContext {
            hostname: hostname.clone(),
            relay: RelayPolicy::new(&config.relay),
            routes: Box::new(move |d| router.routes(d)),
            queue: queue.clone(),
            tls,
        })
    };
    let ctx = make_ctx(tls);
    let (shutdown, rx) = watch::channel(false);
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for l in &config.listener {
        let mode = l.mode;
        // A listener that asks for client certificates gets its own TLS configuration.
        let lctx = match (&l.client_certificates, &l.client_ca) {
            (postern_inbound::ClientCertificates::Off, _) | (_, None) => ctx.clone(),
            (mode, Some(ca)) => {
                let roots = Arc::new(postern_tls::client::load_roots(Some(ca))?);
                let auth = match mode {
                    postern_inbound::ClientCertificates::Require => {
                        postern_tls::ClientAuth::Require(roots)
                    }
                    _ => postern_tls::ClientAuth::Request(roots),
                };
                make_ctx(Some(postern_tls::server_config_with(
                    config.tls.profile,
                    loaded_certs.clone(),
                    auth,
                )?))
            }
        };
        let listener = Listener::bind(l.clone(), lctx)
            .await
            .map_err(StartError::Listen)?;
        let addr = listener.local_addr().map_err(StartError::Listen)?;
        info!(
            "listening on {addr} ({mode}{})",
            if l.require_tls { ", TLS required" } else { "" }
        );
        addrs.push(addr);
        tasks.push(tokio::spawn(listener.run(rx.clone())));
    }
    info!(
        "postern {} started: hostname={hostname}, state_dir={}",
        env!("CARGO_PKG_VERSION"),
        state.display()
    );
    Ok(Running {
        addrs,
        queue,
        shutdown,
        tasks,
    })
}

fn load_certs(
    config: &Config,
    hostname: &str,
    state: &Path,
) -> Result<Vec<LoadedCert>, StartError> {
    let mut certs = config.tls.certificate.clone();
    if certs.is_empty() {
        let dir = state.join("tls");
        let (generated, fresh) = postern_tls::selfsigned::ensure(&dir, hostname)?;
        warn!(
            "no [[tls.certificate]] configured: STARTTLS uses SELF-SIGNED certificates for {hostname} ({} in {}). \
             Peers that verify certificates will refuse them. For real use, add [[tls.certificate]] \
             entries with chain = \"/path/fullchain.pem\" and key = \"/path/privkey.pem\" (RSA-2048 and ECDSA P-256 recommended).",
            if fresh { "generated now" } else { "reused" },
            dir.display()
        );
        certs = generated;
    }
    let provider = postern_tls_provider();
    let mut loaded = Vec::new();
    for c in &certs {
        let l = LoadedCert::load(&c.chain, &c.key, &provider)?;
        info!(
            "serving {:?} certificate from {}",
            l.algorithm,
            c.chain.display()
        );
        loaded.push(l);
    }
    Ok(loaded)
}

fn postern_tls_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}
