//! The command line's side of the control socket: one request, one answer.

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use super::protocol::{ANSWER_TIMEOUT, Request};

/// Why the CLI could not use the socket.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens there.
    #[error("the daemon is not listening on its control socket")]
    NotRunning,
    /// The socket exists but this user may not use it.
    #[error("{0}: run this as root or as a member of the postern group")]
    Denied(io::Error),
    #[error("control socket: {0}")]
    Io(io::Error),
    /// The daemon said no.
    #[error("{0}")]
    Refused(String),
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
