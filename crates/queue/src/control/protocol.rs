//! The control socket's protocol: one request line per connection.
//!
//! ```text
//! LIST                        -> OK, then one line of JSON: [MessageSummary, ...]
//! SHOW ID                     -> OK, then one line of JSON: MessageDetail
//! FLUSH ID | FLUSH ALL        -> OK text | ERR text
//! HOLD ID | RELEASE ID | DELETE ID | BOUNCE ID
//! ```
//!
//! # Security
//! The request line is at most [`MAX_REQUEST`] bytes and must arrive within
//! [`REQUEST_TIMEOUT`]; IDs are parsed as queue IDs before any file is named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{AdminOp, QueueId};

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

/// Why a request line was refused (sent back as `ERR text`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("too many words")]
    TooManyWords,
    #[error("{0} needs a queue ID")]
    MissingId(String),
    #[error("{0:?} is not a queue ID (18 hex digits)")]
    BadId(String),
    #[error("unknown request {0:?}")]
    Unknown(String),
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, RequestError> {
        let mut w = line.split_ascii_whitespace();
        let verb = w.next().unwrap_or("").to_ascii_uppercase();
        let arg = w.next();
        if w.next().is_some() {
            return Err(RequestError::TooManyWords);
        }
        let id = || {
            let a = arg.ok_or_else(|| RequestError::MissingId(verb.clone()))?;
            QueueId::parse(a).ok_or_else(|| RequestError::BadId(a.to_string()))
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
            _ => return Err(RequestError::Unknown(line.to_string())),
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
