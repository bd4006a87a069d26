//! DATA (RFC 5321 §4.1.1.4): stream the message to the spool through the strict reader.
//!
//! # Security
//! Each read waits at most `data_timeout`, and the whole message must arrive within
//! `message_timeout` (and the session's `max_session_time`): a client trickling one byte
//! per second cannot hold a session in DATA for ever. The header section is counted as it
//! arrives (`HeaderScan`): too many fields, too large, or too many `Received:` fields
//! (a loop) and the rest of the message is read but no longer stored, then refused.

use postern_smtp::reply::std_replies;
use postern_smtp::{ContentError, DataReader, HeaderError, Reply};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

use super::{Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(crate) async fn data(&mut self) -> Flow {
        let Some(tx) = &self.tx else {
            return self.reply(std_replies::bad_sequence("Need MAIL command"));
        };
        if tx.bdat.is_some() {
            return self.reply(std_replies::bad_sequence("DATA not allowed after BDAT"));
        }
        if tx.rcpts.is_empty() {
            return self.reply(Reply::new(554, "5.5.1", "No valid recipients"));
        }
        let mut incoming = match self.begin_message().await {
            Ok(i) => i,
            Err(e) => return self.storage_failed(e),
        };
        self.conn.send(&std_replies::start_data());
        let mut reader = DataReader::new(self.cfg.max_message_size.bytes());
        let mut out = Vec::with_capacity(64 << 10);
        let mut write_error = None;
        let cap = discard_cap(self.cfg.max_message_size.bytes());
        let mut seen: u64 = 0;
        let mut scan = self.header_scan();
        let deadline = self.message_deadline();
        loop {
            let fed = reader.feed(self.conn.buffered(), &mut out);
            self.conn.consume(fed.consumed);
            seen += fed.consumed as u64;
            if seen > cap {
                // Far past the limit and still going: stop reading, answer, hang up.
                warn!(
                    "{}: message from {} exceeds max_message_size by far; closing",
                    incoming.id(),
                    self.client()
                );
                self.tx = None;
                self.conn.send(&std_replies::message_too_big());
                return Flow::Close;
            }
            if !out.is_empty() {
                scan.feed(&out);
                if write_error.is_none()
                    && scan.error().is_none()
                    && let Err(e) = incoming.write(&out).await
                {
                    write_error = Some(e);
                }
                out.clear();
            }
            if fed.done {
                break;
            }
            if let Err(e) = self.conn.fill_until(self.data_deadline(deadline)).await {
                // `incoming` is dropped here: the partial message is deleted, never queued.
                self.message_timed_out(&e, deadline, "DATA");
                self.tx = None;
                return self.read_failed(e, "DATA");
            }
        }
        if let Some(r) = self.refuse_content("DATA", reader.result().err(), scan.error()) {
            return r;
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.saw_auth_results = scan.saw_authentication_results();
            tx.tls_required_no = scan.tls_required_no();
        }
        if let Some(e) = write_error {
            return self.storage_failed(e);
        }
        self.commit_message(incoming).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    /// Log why a read during a message gave up, when it was the message deadline.
    pub(crate) fn message_timed_out(
        &self,
        e: &crate::conn::ReadError,
        deadline: tokio::time::Instant,
        during: &str,
    ) {
        if matches!(e, crate::conn::ReadError::Timeout) && tokio::time::Instant::now() >= deadline {
            warn!(
                "{during} from {} took longer than message_timeout ({}): message discarded",
                self.client(),
                self.cfg.message_timeout
            );
        }
    }

    /// The end of a message whose content or header section broke a rule: one log line,
    /// the transaction ends, the reply says why. `None` when the message is fine.
    pub(crate) fn refuse_content(
        &mut self,
        stage: &str,
        content: Option<ContentError>,
        header: Option<HeaderError>,
    ) -> Option<Flow> {
        let reply = match (content, header) {
            (Some(c), _) => c.reply(),
            (None, Some(h)) => h.reply(),
            (None, None) => return None,
        };
        self.log_reject(stage, &reply, None);
        self.tx = None;
        Some(self.reply(reply))
    }
}

/// How much input a session reads (and throws away) after a message went over the size
/// limit before it gives up on the client: twice the limit plus 1 MiB.
pub(crate) fn discard_cap(max_message_size: u64) -> u64 {
    max_message_size.saturating_mul(2).saturating_add(1 << 20)
}
