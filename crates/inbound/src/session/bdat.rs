//! BDAT (RFC 3030 CHUNKING): exactly `size` octets follow the command.
//!
//! # Security
//! The whole transaction, first chunk to LAST, must finish within `message_timeout`,
//! whatever the pace of chunks and commands; the header section is counted as in DATA.

use postern_smtp::reply::std_replies;
use postern_smtp::{BdatReader, Reply};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

use super::{BdatState, Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(crate) async fn bdat(&mut self, size: u64, last: bool) -> Flow {
        let refusal = match &self.tx {
            _ if !self.esmtp => Some(std_replies::bad_sequence("Send EHLO first")),
            None => Some(std_replies::bad_sequence("Need MAIL command")),
            Some(tx) if tx.rcpts.is_empty() => {
                Some(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => None,
        };
        if size > super::data::discard_cap(self.cfg.max_message_size.bytes()) {
            // The chunk cannot be read and thrown away in reasonable time, and without
            // reading it the session cannot find the next command: answer and hang up.
            warn!(
                "BDAT chunk of {size} octets from {} is far over max_message_size; closing",
                self.client()
            );
            self.tx = None;
            self.conn.send(&std_replies::message_too_big());
            return Flow::Close;
        }
        if let Some(r) = refusal {
            return self.skip_chunk_then(size, r).await;
        }
        let mut state = match self.tx.as_mut().and_then(|t| t.bdat.take()) {
            Some(s) => s,
            None => {
                let incoming = match self.begin_message().await {
                    Ok(i) => Some(i),
                    Err(e) => {
                        tracing::error!("cannot write the queue: {e}");
                        None
                    }
                };
                BdatState {
                    incoming,
                    reader: BdatReader::new(self.cfg.max_message_size.bytes()),
                    scan: self.header_scan(),
                    deadline: self.message_deadline(),
                }
            }
        };
        if tokio::time::Instant::now() >= state.deadline {
            let e = crate::conn::ReadError::Timeout;
            self.message_timed_out(&e, state.deadline, "BDAT");
            self.tx = None;
            return self.read_failed(e, "BDAT");
        }
        let mut remaining = size;
        let mut out = Vec::with_capacity(64 << 10);
        let mut write_error = None;
        while remaining > 0 {
            if self.conn.buffered().is_empty()
                && let Err(e) = self
                    .conn
                    .fill_until(self.data_deadline(state.deadline))
                    .await
            {
                self.message_timed_out(&e, state.deadline, "BDAT");
                self.tx = None;
                return self.read_failed(e, "BDAT");
            }
            let n = (self.conn.buffered().len() as u64).min(remaining) as usize;
            state.reader.feed(&self.conn.buffered()[..n], &mut out);
            self.conn.consume(n);
            remaining -= n as u64;
            if !out.is_empty() {
                state.scan.feed(&out);
                if let Some(inc) = state.incoming.as_mut()
                    && write_error.is_none()
                    && state.scan.error().is_none()
                    && let Err(e) = inc.write(&out).await
                {
                    write_error = Some(e);
                }
                out.clear();
            }
        }
        let Some(mut incoming) = state.incoming.take() else {
            return self
                .storage_failed(std::io::Error::other("the queue file could not be created"));
        };
        if let Some(e) = write_error {
            return self.storage_failed(e);
        }
        if let Some(flow) = self.refuse_content("BDAT", state.reader.error(), state.scan.error()) {
            return flow;
        }
        if !last {
            state.incoming = Some(incoming);
            if let Some(tx) = self.tx.as_mut() {
                tx.bdat = Some(state);
            }
            return self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
        }
        let result = state.reader.finish(&mut out);
        if let Some(flow) = self.refuse_content("BDAT", result.err(), None) {
            return flow;
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.saw_auth_results = state.scan.saw_authentication_results();
            tx.tls_required_no = state.scan.tls_required_no();
        }
        if let Err(e) = incoming.write(&out).await {
            return self.storage_failed(e);
        }
        self.commit_message(incoming).await
    }
}
