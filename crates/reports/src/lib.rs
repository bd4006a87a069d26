//! Reports: one durable store of TLS session outcomes and DMARC evaluations, the daily
//! TLS-RPT (RFC 8460) and DMARC aggregate reports built from it, inbound reports turned
//! into metrics, and `postern tls-report`.
//!
//! The producing crates define the observer traits
//! ([`postern_relay::outbound::observe::TlsObserver`],
//! [`postern_inbound::observe::InboundObserver`]); [`hooks::Recorder`] implements them
//! and writes [`event::Event`]s to the [`store::Store`] under `STATE_DIR/reports/`.

pub mod cli;
pub mod config;
pub mod dmarc;
pub mod event;
pub mod hooks;
pub mod mail;
pub mod peers;
pub mod receive;
pub mod send;
pub mod store;
pub mod tlsrpt;

use std::io;
use std::path::Path;
use std::sync::Arc;

pub use config::ReportsConfig;

/// The running report machinery of the daemon.
#[derive(Debug, Clone)]
pub struct Reports {
    recorder: hooks::Recorder,
    cfg: ReportsConfig,
    state_dir: std::path::PathBuf,
}

impl Reports {
    /// Open the store under `state_dir`; the error names the directory.
    pub fn start(cfg: &ReportsConfig, state_dir: &Path) -> io::Result<Reports> {
        let dir = store::events_dir(state_dir);
        let store = store::Store::open(&dir, cfg.max_store_bytes()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open the report store in {}: {e}", dir.display()),
            )
        })?;
        Ok(Reports {
            recorder: hooks::Recorder::new(store).receiving(
                &cfg.inbound_addresses,
                state_dir.join("reports").join("received"),
            ),
            cfg: cfg.clone(),
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// The observer delivery calls for each outbound TLS session.
    pub fn tls_observer(&self) -> Arc<dyn postern_relay::outbound::observe::TlsObserver> {
        Arc::new(self.recorder.clone())
    }

    /// The observer the listeners call for each accepted message.
    pub fn inbound_observer(&self) -> Arc<dyn postern_inbound::observe::InboundObserver> {
        Arc::new(self.recorder.clone())
    }

    /// Start the daily sending (and `send-now`) task; it ends when `shutdown` turns true.
    pub fn spawn_sender(
        &self,
        hostname: &str,
        queue: postern_queue::Queue,
        dns: postern_dns::Resolver,
        sign: send::Sign,
        poster: Option<send::Poster>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let s = send::Sender {
            cfg: self.cfg.clone(),
            state_dir: self.state_dir.clone(),
            hostname: hostname.to_string(),
            queue,
            dns,
            sign,
            poster,
        };
        tokio::spawn(s.run(shutdown))
    }

    /// Write and fsync everything recorded so far (at shutdown).
    pub fn flush(&self) {
        self.recorder.store().flush();
    }
}
