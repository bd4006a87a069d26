//! The control socket: how `postern queue ...` reaches a running daemon.
//!
//! A Unix stream socket, `STATE_DIR/control.sock`, mode 0660: the `postern` user and
//! the members of its group (and root) may use it; file permissions are the access
//! control, as the state directory itself is 0750. One request line per connection:
//!
//! ```text
//! LIST                        -> OK, then one line of JSON: [MessageSummary, ...]
//! SHOW ID                     -> OK, then one line of JSON: MessageDetail
//! FLUSH ID | FLUSH ALL        -> OK text | ERR text
//! HOLD ID | RELEASE ID | DELETE ID | BOUNCE ID
//! ```
//!
//! Changes go to the scheduler ([`postern_queue::Queue::admin`]), which owns the spool
//! while the daemon runs; listings read the files.
//!
//! # Security
//! The request line is at most [`MAX_REQUEST`] bytes and must arrive within
//! [`REQUEST_TIMEOUT`]; IDs are parsed as queue IDs before any file is named. Anyone who
//! can connect can delete mail: keep the group `postern` for mail administrators.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postern_queue::{AdminOp, Queue, QueueId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{info, warn};

/// Longest request line.
pub const MAX_REQUEST: u64 = 256;
/// Time a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the CLI waits for an answer (a command on a message being delivered waits
/// for that attempt to end).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// The socket's path for a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// A parsed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    List,
    Show(QueueId),
    Op(AdminOp),
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut w = line.split_ascii_whitespace();
        let verb = w.next().unwrap_or("").to_ascii_uppercase();
        let arg = w.next();
        if w.next().is_some() {
            return Err("too many words".into());
        }
        let id = || {
            let a = arg.ok_or_else(|| format!("{verb} needs a queue ID"))?;
            QueueId::parse(a).ok_or_else(|| format!("{a:?} is not a queue ID (18 hex digits)"))
        };
        Ok(match verb.as_str() {
            "LIST" if arg.is_none() => Request::List,
            "SHOW" => Request::Show(id()?),
            "FLUSH" if arg.is_some_and(|a| a.eq_ignore_ascii_case("ALL")) => {
                Request::Op(AdminOp::Flush(None))
            }
            "FLUSH" => Request::Op(AdminOp::Flush(Some(id()?))),
            "HOLD" => Request::Op(AdminOp::Hold(id()?)),
            "RELEASE" => Request::Op(AdminOp::Release(id()?)),
            "DELETE" => Request::Op(AdminOp::Delete(id()?)),
            "BOUNCE" => Request::Op(AdminOp::Bounce(id()?)),
            _ => return Err(format!("unknown request {line:?}")),
        })
    }

    /// The request line for this request.
    pub fn line(&self) -> String {
        match self {
            Request::List => "LIST".into(),
            Request::Show(id) => format!("SHOW {id}"),
            Request::Op(AdminOp::Flush(None)) => "FLUSH ALL".into(),
            Request::Op(AdminOp::Flush(Some(id))) => format!("FLUSH {id}"),
            Request::Op(AdminOp::Hold(id)) => format!("HOLD {id}"),
            Request::Op(AdminOp::Release(id)) => format!("RELEASE {id}"),
            Request::Op(AdminOp::Delete(id)) => format!("DELETE {id}"),
            Request::Op(AdminOp::Bounce(id)) => format!("BOUNCE {id}"),
        }
    }
}

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
                Err(e) => format!("ERR {}\n", one_line(&e)),
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

/// Why the CLI could not use the socket.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon listens there.
    NotRunning,
    /// The socket exists but this user may not use it.
    Denied(io::Error),
    Io(io::Error),
    /// The daemon said no.
    Refused(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning => {
                f.write_str("the daemon is not listening on its control socket")
            }
            ClientError::Denied(e) => write!(
                f,
                "{e}: run this as root or as a member of the postern group"
            ),
            ClientError::Io(e) => write!(f, "control socket: {e}"),
            ClientError::Refused(t) => f.write_str(t),
        }
    }
}

/// Send one request to the daemon; the text after `OK` and the JSON line, if any.
pub fn request(path: &Path, req: Request) -> Result<(String, Option<String>), ClientError> {
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning,
        io::ErrorKind::PermissionDenied => ClientError::Denied(io::Error::new(
            e.kind(),
            format!("cannot connect to {}: {e}", path.display()),
        )),
        _ => ClientError::Io(e),
    })?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(ClientError::Io)?;
    s.write_all(format!("{}\n", req.line()).as_bytes())
        .map_err(ClientError::Io)?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).map_err(ClientError::Io)?;
    let status = status.trim_end();
    if let Some(e) = status.strip_prefix("ERR ") {
        return Err(ClientError::Refused(e.to_string()));
    }
    let Some(text) = status.strip_prefix("OK") else {
        return Err(ClientError::Io(io::Error::other(format!(
            "unexpected answer from the daemon: {status:?}"
        ))));
    };
    let mut json = String::new();
    r.read_line(&mut json).map_err(ClientError::Io)?;
    let json = json.trim_end();
    Ok((
        text.trim_start().to_string(),
        (!json.is_empty()).then(|| json.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_round_trip() {
        let id = QueueId::generate();
        for r in [
            Request::List,
            Request::Show(id),
            Request::Op(AdminOp::Flush(None)),
            Request::Op(AdminOp::Flush(Some(id))),
            Request::Op(AdminOp::Hold(id)),
            Request::Op(AdminOp::Release(id)),
            Request::Op(AdminOp::Delete(id)),
            Request::Op(AdminOp::Bounce(id)),
        ] {
            assert_eq!(Request::parse(&r.line()), Ok(r));
        }
        for bad in [
            "",
            "HOLD",
            "HOLD ../../etc",
            "LIST x",
            "HOLD 1 2",
            "EXPLODE",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad}");
        }
    }
}
