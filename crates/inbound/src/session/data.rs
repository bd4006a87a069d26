//! DATA (RFC 5321 §4.1.1.4): stream the message to the spool through the strict reader.

use postern_smtp::reply::std_replies;
use postern_smtp::{DataReader, Reply};
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
                if write_error.is_none()
                    && let Err(e) = incoming.write(&out).await
                {
                    write_error = Some(e);
                }
                out.clear();
            }
            if fed.done {
                break;
            }
            if let Err(e) = self.conn.fill(self.data_timeout()).await {
                // `incoming` is dropped here: the partial message is deleted, never queued.
                self.tx = None;
                return self.read_failed(e, "DATA");
            }
        }
        if let Err(problem) = reader.result() {
            let r = problem.reply();
            warn!(
                "{}: message from {} refused: {}",
                incoming.id(),
                self.client(),
                problem.as_str()
            );
            self.log_reject("DATA", &r, None);
            self.tx = None;
            return self.reply(r);
        }
        if let Some(e) = write_error {
            return self.storage_failed(e);
        }
        self.commit_message(incoming).await
    }
}

/// How much input a session reads (and throws away) after a message went over the size
/// limit before it gives up on the client: twice the limit plus 1 MiB.
pub(crate) fn discard_cap(max_message_size: u64) -> u64 {
    max_message_size.saturating_mul(2).saturating_add(1 << 20)
}
