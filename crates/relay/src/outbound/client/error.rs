//! Why an outbound SMTP connection failed. The texts go into logs and, through the
//! delivery outcome, into bounces and `postern queue show`: they name the host and say
//! what happened, starting with the enhanced status code where the error decides the
//! outcome on its own.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use postern_smtp::client::{Reply, ReplyError};

use super::Peer;

/// A failure of the connection or of the server's protocol, before any recipient had a
/// final answer. The delivery agent treats every one as temporary and may try another
/// host.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("4.4.1 connect to {peer} failed: {source}")]
    Connect { peer: Peer, source: io::Error },
    #[error("4.4.1 connect to {peer} timed out after {after:?}")]
    ConnectTimeout { peer: Peer, after: Duration },
    #[error("4.4.2 {source} while waiting for the greeting")]
    Greeting { source: Box<ClientError> },
    #[error("4.4.2 host {peer} refused to talk to me: {reply}")]
    GreetingRefused { peer: Peer, reply: Reply },
    #[error("4.4.2 host {peer} refused EHLO and HELO: {reply}")]
    HelloRefused { peer: Peer, reply: Reply },
    #[error("lost connection with {peer}")]
    Closed { peer: Peer },
    /// A 421 at any point: the server closes the channel (RFC 5321 §3.8).
    #[error("4.4.2 host {peer} ended the session: {reply}")]
    ServiceClosing { peer: Peer, reply: Reply },
    #[error("lost connection with {peer}: {source}")]
    Io { peer: Peer, source: io::Error },
    #[error("timeout sending to {peer}")]
    SendTimeout { peer: Peer },
    #[error("timeout waiting for a reply from {peer}")]
    ReplyTimeout { peer: Peer },
    #[error("{}", bad_reply(.peer, .source))]
    BadReply { peer: Peer, source: ReplyError },
    #[error("STARTTLS refused: {0}")]
    StartTlsRefused(Reply),
    #[error(
        "host {peer} sent {bytes} bytes after its 220 reply to STARTTLS, before the TLS handshake (pipelined or injected, RFC 3207 4.2); not starting TLS on this connection"
    )]
    StartTlsInjected { peer: Peer, bytes: usize },
    #[error("TLS is already active")]
    TlsActive,
    #[error("bad server name: {0}")]
    ServerName(rustls::pki_types::InvalidDnsNameError),
    #[error("{0}")]
    Handshake(io::Error),
    #[error("handshake timed out")]
    HandshakeTimeout,
    #[error("4.3.0 cannot read queue file {}: {source}", .path.display())]
    QueueOpen { path: PathBuf, source: io::Error },
    #[error("4.3.0 cannot read queue file: {0}")]
    QueueRead(io::Error),
}

/// The wording used before the reply parser was shared, kept for operators' greps.
fn bad_reply(peer: &Peer, e: &ReplyError) -> String {
    match e {
        ReplyError::LineTooLong { .. } => format!("reply line too long from {peer}"),
        ReplyError::BadCode { line } => format!("malformed reply from {peer}: {line:?}"),
        e => format!("malformed reply from {peer}: {e}"),
    }
}
