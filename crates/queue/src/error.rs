//! The queue's error types. Their texts reach the log, `postern queue` and the control
//! socket's `ERR` lines, so each names the message and what to do.

use std::io;
use std::path::PathBuf;

use crate::QueueId;
use crate::admin::Place;

/// Why a queue or state file does not parse: the line or field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(String);

impl From<&str> for FormatError {
    fn from(s: &str) -> Self {
        FormatError(s.to_string())
    }
}

impl From<String> for FormatError {
    fn from(s: String) -> Self {
        FormatError(s)
    }
}

/// Why a `.msg` file could not be read back as a message.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `what` is the step: "cannot open", "read error", ...
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl From<&str> for LoadError {
    fn from(s: &str) -> Self {
        LoadError::Format(s.into())
    }
}

/// The `map_err` of an I/O step while loading.
pub(crate) fn io_step(what: &'static str) -> impl FnOnce(io::Error) -> LoadError {
    move |source| LoadError::Io { what, source }
}

/// Why an operator command (`postern queue ...`) was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}: no such message in the queue")]
    NoSuchMessage(QueueId),
    #[error("{0} is on hold: release it first")]
    OnHold(QueueId),
    #[error("{0} is in failed/: it has permanently failed and is not delivered again")]
    InFailed(QueueId),
    #[error("{0} is in corrupt/: it cannot be read")]
    InCorrupt(QueueId),
    #[error(
        "{id}: the file is in corrupt/ and cannot be read as a message; inspect {} by hand", .path.display()
    )]
    Unreadable { id: QueueId, path: PathBuf },
    #[error("{0} is in active/ but the scheduler has not picked it up yet; try again in a moment")]
    NotPickedUp(QueueId),
    #[error("{0} is not on hold (it is in {1}/)")]
    NotOnHold(QueueId, Place),
    #[error("{0} is in {1}/: only active or held messages can be bounced")]
    NotBounceable(QueueId, Place),
    #[error(
        "{0}: the delivery attempt that was in progress finished the message; it is no longer queued"
    )]
    FinishedMeanwhile(QueueId),
    /// `what`: "could not be deleted", "cannot read", ...
    #[error("{id}: {what}: {source}")]
    Io {
        id: QueueId,
        what: &'static str,
        source: io::Error,
    },
    #[error("{0} is in {1}/, not in {2}/")]
    NotIn(QueueId, Place, Place),
    #[error("{id}: could not be moved to {to}/: {source}")]
    Move {
        id: QueueId,
        to: Place,
        source: io::Error,
    },
    /// Listing the queue's directories failed.
    #[error("{0}")]
    List(io::Error),
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("the queue is shutting down")]
    ShuttingDown,
    #[error("the queue stopped before answering")]
    NoAnswer,
}

impl OpError {
    /// The `map_err` of an I/O step of a command on message `id`.
    pub(crate) fn io(id: QueueId, what: &'static str) -> impl FnOnce(io::Error) -> OpError {
        move |source| OpError::Io { id, what, source }
    }
}
