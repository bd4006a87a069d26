//! The daemon's day-two parts: the spool lock, the control socket (`postern queue`),
//! the metrics endpoint and gauges. `server.rs` starts them with the rest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use postern_metrics::Collector;
use postern_queue::{Queue, SpoolLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Config, StartError};

/// How long a stopping daemon waits for delivery attempts in progress to end.
pub const QUEUE_STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What [`start`] set up; dropping it releases the spool lock and the gauges.
#[derive(Debug)]
pub struct Operations {
    /// The metrics endpoint's bound address, when `[metrics] listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// The control socket's path.
    pub control_socket: PathBuf,
    _collectors: Vec<Collector>,
    _lock: SpoolLock,
}

/// Start the control socket and, if configured, the metrics endpoint; their tasks stop
/// when `shutdown` turns true.
pub async fn start(
    config: &Config,
    queue: &Queue,
    lock: SpoolLock,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Operations, StartError> {
    let (control_socket, task) = postern_queue::control::server::start(
        &config.server.state_dir,
        queue.clone(),
        shutdown.clone(),
    )
    .map_err(StartError::Listen)?;
    tasks.push(task);
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics.listen {
        let (bound, task) = postern_metrics::listen(addr, shutdown.clone())
            .await
            .map_err(StartError::Listen)?;
        metrics_addr = Some(bound);
        tasks.push(task);
    }
    Ok(Operations {
        metrics_addr,
        control_socket,
        _collectors: crate::metrics::register(&config.queue_dir()),
        _lock: lock,
    })
}

/// `postern queue ...` against the queue `config` describes (`postern_queue::control::cli`).
pub fn queue_admin(
    config: &crate::Config,
    cmd: postern_queue::control::cli::QueueCommand,
) -> std::process::ExitCode {
    type SignResult = Result<Option<postern_queue::Sign>, Box<dyn std::error::Error + Send + Sync>>;
    let sign = || -> SignResult {
        Ok(postern_auth::Signer::load(&config.auth.dkim_sign)?.into_report_hook())
    };
    let (queue_dir, hostname) = (config.queue_dir(), config.hostname());
    let target = postern_queue::control::cli::Target {
        queue_dir: &queue_dir,
        state_dir: &config.server.state_dir,
        offline: postern_queue::control::command::Offline {
            config: &config.queue,
            hostname: &hostname,
            sign: &sign,
        },
    };
    postern_queue::control::cli::run(&target, cmd)
}
