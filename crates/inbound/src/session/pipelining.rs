//! Clients that talk out of turn: before the greeting, or pipelining where RFC 2920 does
//! not allow it. Such clients are refused with `554 5.5.0` and disconnected, as Postfix
//! does with `smtpd_forbid_unauth_pipelining` (listener key `forbid_improper_pipelining`).
//!
//! # Security
//! A real MTA waits for the greeting, and waits for the reply to EHLO before it sends
//! more (it cannot know that PIPELINING is offered until then); after HELO it waits for
//! every reply. Spam bots and request-smuggling probes do not: they send the whole
//! transaction at once. Refusing them costs legitimate mail nothing. Bytes after
//! STARTTLS are handled in `starttls.rs` (discarded, CVE-2011-0411), BDAT chunk data
//! is not a command, and bytes after QUIT do not matter.
//!
//! # Standards
//! RFC 5321 §4.3.1 (the client waits for the greeting), RFC 2920 §3.1 (EHLO must be the
//! last command in a group; without PIPELINING every command waits for its reply).

use postern_smtp::{Command, Reply};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Flow, Session};
use crate::conn::ReadError;

/// How much of the early bytes goes into the log line.
const SHOWN: usize = 60;

/// The reply Postfix gives in the same case.
fn synchronization_error() -> Reply {
    Reply::new(554, "5.5.0", "Error: SMTP protocol synchronization")
}

/// The first bytes of `b`, printable, for a log line.
fn excerpt(b: &[u8]) -> String {
    let mut s: String = b
        .iter()
        .take(SHOWN)
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if b.len() > SHOWN {
        s.push_str("...");
    }
    s
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    /// Before the greeting: wait `greet_pause` (or just look, when it is 0) for bytes
    /// from the client. Returns false when the session must end (the client talked first
    /// and was refused, or went away).
    pub(crate) async fn pregreet_check(&mut self) -> bool {
        if !self.cfg.forbid_improper_pipelining {
            return true;
        }
        let until = Instant::now() + self.cfg.greet_pause.get();
        match self.conn.fill_until(until).await {
            Err(ReadError::Timeout) => true,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => {
                info!("lost connection before the greeting from {}", self.client());
                false
            }
            Ok(_) => {
                let early = excerpt(self.conn.buffered());
                warn!(
                    "improper command pipelining after CONNECT from {}: {early}",
                    self.client()
                );
                self.refuse("CONNECT");
                false
            }
        }
    }

    /// After a command line: is more input already waiting where the client should have
    /// waited for our reply? `Some(Close)` when the client is refused.
    pub(crate) fn improper_pipelining(&mut self, cmd: &Command) -> Option<Flow> {
        if !self.cfg.forbid_improper_pipelining || self.conn.buffered().is_empty() {
            return None;
        }
        let must_wait = match cmd {
            Command::Quit | Command::StartTls | Command::Bdat { .. } => false,
            Command::Ehlo(_) | Command::Helo(_) => true,
            // Without EHLO (none yet, or HELO) PIPELINING was never offered.
            _ => !self.esmtp,
        };
        if !must_wait {
            return None;
        }
        warn!(
            "improper command pipelining after {} from {}: {}",
            cmd.verb(),
            self.client(),
            excerpt(self.conn.buffered())
        );
        self.refuse(cmd.verb());
        Some(Flow::Close)
    }

    fn refuse(&mut self, stage: &str) {
        let r = synchronization_error();
        self.log_reject(stage, &r, None);
        self.conn.discard_buffered();
        self.conn.send(&r);
    }
}
