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
    let control_socket = postern_queue::control::socket_path(&config.server.state_dir);
    let listener =
        postern_queue::control::server::bind(&control_socket).map_err(StartError::Listen)?;
    tasks.push(tokio::spawn(postern_queue::control::server::serve(
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
