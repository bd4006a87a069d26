//! The daemon's day-two parts: the spool lock, the control socket (`postern queue`),
//! the metrics endpoint and gauges. `server.rs` starts them with the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// Create the queue directory and take its lock, before the spool is opened: a second
/// daemon on the same queue would deliver every message twice.
pub fn lock_queue(queue_dir: &Path) -> Result<SpoolLock, StartError> {
    let err = |source| StartError::Queue {
        path: queue_dir.display().to_string(),
        source,
    };
    postern_queue::safefs::create_dir(queue_dir).map_err(err)?;
    match SpoolLock::try_acquire(queue_dir).map_err(err)? {
        Some(lock) => Ok(lock),
        None => Err(err(std::io::Error::other(format!(
            "another postern process{} is using this queue (it holds {}); stop it first",
            SpoolLock::holder(queue_dir)
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default(),
            SpoolLock::path_in(queue_dir).display()
        )))),
    }
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
    let control_socket = crate::control::socket_path(&config.server.state_dir);
    let listener = crate::control::bind(&control_socket).map_err(StartError::Listen)?;
    tasks.push(tokio::spawn(crate::control::serve(
        listener,
        control_socket.clone(),
        queue.clone(),
        shutdown.clone(),
    )));
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics.listen {
        let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            StartError::Listen(std::io::Error::new(
                e.kind(),
                format!("metrics: cannot listen on {addr}: {e}"),
            ))
        })?;
        metrics_addr = Some(l.local_addr().map_err(StartError::Listen)?);
        tasks.push(tokio::spawn(postern_metrics::serve(l, shutdown.clone())));
    }
    Ok(Operations {
        metrics_addr,
        control_socket,
        _collectors: crate::metrics::register(&config.queue_dir()),
        _lock: lock,
    })
}
