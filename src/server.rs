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

    let tls = Some(tls_config(config, &hostname, state)?);

    let queue_dir = state.join("queue");
    let spool = Spool::open(&queue_dir).map_err(|source| StartError::Queue {
        path: queue_dir.display().to_string(),
        source,
    })?;
    let router = Arc::new(config.router());
    let queue =
        Queue::start(Arc::new(spool), config.queue.clone(), router.clone()).map_err(|source| {
            StartError::Queue {
                path: queue_dir.display().to_string(),
                source,
            }
        })?;

    let ctx = Arc::new(ServerContext {
        hostname: hostname.clone(),
        relay: RelayPolicy::new(&config.relay),
        routes: Box::new(move |d| router.routes(d)),
        queue: queue.clone(),
        tls,
    });
    let (shutdown, rx) = watch::channel(false);
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for l in &config.listener {
        let mode = l.mode;
        let listener = Listener::bind(l.clone(), ctx.clone())
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

fn tls_config(
    config: &Config,
    hostname: &str,
    state: &Path,
) -> Result<Arc<rustls::ServerConfig>, StartError> {
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
    Ok(postern_tls::server_config(config.tls.profile, loaded)?)
}

fn postern_tls_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}
