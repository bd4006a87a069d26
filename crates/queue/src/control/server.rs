//! The daemon's side of the control socket: changes go to the scheduler
//! ([`crate::Queue::admin`]), which owns the spool while the daemon runs; listings read
//! the files.
//!
//! # Security
//! The socket is made mode 0660 (the state directory itself is 0750). A request line is
//! bounded ([`MAX_REQUEST`]) and timed ([`REQUEST_TIMEOUT`]); answers are one line each,
//! with line breaks in error text replaced.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{info, warn};

use super::protocol::{MAX_REQUEST, REQUEST_TIMEOUT, Request};
use crate::Queue;

/// Bind the socket (replacing a stale one: the caller holds the spool lock, so no
/// other daemon uses it) and make it 0660.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot remove the old {}: {e}", path.display()),
            ));
        }
        _ => {}
    }
    let l = UnixListener::bind(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", path.display()),
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Bind the control socket of `state_dir` and answer on it until `shutdown` turns true:
/// the socket's path and the serving task.
pub fn start(
    state_dir: &Path,
    queue: Queue,
    shutdown: watch::Receiver<bool>,
) -> io::Result<(PathBuf, tokio::task::JoinHandle<()>)> {
    let path = super::protocol::socket_path(state_dir);
    let listener = bind(&path)?;
    let task = tokio::spawn(serve(listener, path.clone(), queue, shutdown));
    Ok((path, task))
}

/// Answer requests until `shutdown` turns true, then remove the socket.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    queue: Queue,
    mut shutdown: watch::Receiver<bool>,
) {
    info!(
        "control socket {} ready (postern queue ...)",
        path.display()
    );
    loop {
        let stream = tokio::select! {
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let q = queue.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, q).await {
                warn!("control socket: {e}");
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(stream: UnixStream, queue: Queue) -> io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut r = tokio::io::BufReader::new(r.take(MAX_REQUEST));
    match tokio::time::timeout(REQUEST_TIMEOUT, r.read_line(&mut line)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    }
    let reply = match Request::parse(line.trim_end()) {
        Err(e) => format!("ERR {e}\n"),
        Ok(req) => {
            info!("control socket: {}", req.line());
            respond(req, &queue).await
        }
    };
    w.write_all(reply.as_bytes()).await?;
    w.shutdown().await
}

async fn respond(req: Request, queue: &Queue) -> String {
    let spool = queue.spool().clone();
    let json = match req {
        Request::Op(op) => {
            return match queue.admin(op).await {
                Ok(t) => format!("OK {}\n", one_line(&t)),
                Err(e) => format!("ERR {}\n", one_line(&e.to_string())),
            };
        }
        Request::List => tokio::task::spawn_blocking(move || {
            spool
                .summaries()
                .map_err(|e| format!("cannot read the queue: {e}"))
                .and_then(|l| serde_json::to_string(&l).map_err(|e| e.to_string()))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string())),
        Request::Show(id) => tokio::task::spawn_blocking(move || {
            spool
                .detail(id)
                .map_err(|e| e.to_string())
                .and_then(|d| serde_json::to_string(&d).map_err(|e| e.to_string()))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string())),
    };
    match json {
        Ok(j) => format!("OK\n{j}\n"),
        Err(e) => format!("ERR {}\n", one_line(&e)),
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}
