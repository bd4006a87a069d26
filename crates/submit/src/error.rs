//! Why `sendmail` failed, each kind mapped to one sysexits.h status.

use std::io;

use crate::client::Failure;

/// sysexits.h statuses used here.
pub mod status {
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const UNAVAILABLE: u8 = 69;
    pub const IOERR: u8 = 74;
    pub const TEMPFAIL: u8 = 75;
    pub const CONFIG: u8 = 78;
}

/// A bad command line or an unusable address: nothing was sent (`EX_USAGE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("option -{0} needs a value")]
    MissingValue(char),
    #[error("unknown option -{0}")]
    UnknownOption(char),
    #[error("-q (run the queue) is not supported here: use `postern queue flush --all`")]
    QueueRun,
    #[error(
        "-bd (run as a daemon) is not supported: the daemon is `postern serve` (systemctl start postern)"
    )]
    Daemon,
    #[error(
        "-bs (SMTP on standard input) is not supported: connect to the daemon's SMTP listener instead"
    )]
    SmtpOnStdin,
    #[error("-bp is not supported: use `postern queue list`")]
    ListQueue,
    #[error("-bi (newaliases) is not supported: Postern has no aliases")]
    Newaliases,
    #[error("-b{0} is not supported; only -bm (send a message, the default) is")]
    Mode(String),
    #[error("-F: the name has control characters")]
    ControlInName,
    #[error("{what} {address:?} is not a usable address: {reason}")]
    BadAddress {
        what: &'static str,
        address: String,
        reason: String,
    },
    #[error("no recipients given (and no -t)")]
    NoRecipients,
    #[error("no recipients in To:, Cc: or Bcc:")]
    NoHeaderRecipients,
}

/// The configuration could not be read or names no listener (`EX_CONFIG`). The text is
/// the located problems (`FILE:LINE:COL: key: problem`), one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigProblem(pub String);

/// Everything that ends a `sendmail` run without the daemon accepting the message.
#[derive(Debug, thiserror::Error)]
pub enum SendmailError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Config(#[from] ConfigProblem),
    #[error("cannot read the message: {0}")]
    Input(#[source] io::Error),
    #[error(transparent)]
    Submit(#[from] Failure),
}

impl SendmailError {
    /// The sysexits status (see the crate documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            SendmailError::Usage(_) => status::USAGE,
            SendmailError::Config(_) => status::CONFIG,
            SendmailError::Input(_) => status::IOERR,
            SendmailError::Submit(f) => f.exit_code(),
        }
    }
}
