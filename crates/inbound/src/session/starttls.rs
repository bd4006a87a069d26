//! STARTTLS (RFC 3207) and implicit TLS.

use postern_smtp::Reply;
use postern_smtp::reply::std_replies;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::{Flow, Session};
use crate::Mode;
use crate::conn::Stream;

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(crate) fn starttls_available(&self) -> bool {
        self.cfg.mode == Mode::Starttls && self.ctx.tls.is_some()
    }

    pub(crate) fn starttls(&mut self) -> Flow {
        if self.tls.is_some() {
            return self.reply(std_replies::bad_sequence("TLS is already active"));
        }
        if !self.starttls_available() {
            return self.reply(Reply::new(
                502,
                "5.5.1",
                "STARTTLS not available on this port",
            ));
        }
        if self.tx.is_some() {
            return self.reply(std_replies::bad_sequence(
                "MAIL transaction in progress, send RSET first",
            ));
        }
        self.conn
            .send(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        Flow::StartTls
    }

    /// Run the TLS handshake on the current stream. Anything the client pipelined after
    /// STARTTLS is thrown away first: it was sent in clear and must never be executed.
    /// Returns false when the session must end.
    pub(crate) async fn upgrade(&mut self) -> bool {
        if self.conn.flush().await.is_err() {
            return false;
        }
        let injected = self.conn.discard_buffered();
        if injected > 0 {
            warn!(
                "discarded {injected} bytes sent by {} after STARTTLS before the TLS handshake (possible command injection, CVE-2011-0411)",
                self.client()
            );
        }
        let Some(config) = self.ctx.tls.clone() else {
            return false;
        };
        let Some(plain) = self.conn.stream.take_plain() else {
            return false;
        };
        let accept = TlsAcceptor::from(config).accept(plain);
        match tokio::time::timeout(self.command_timeout(), accept).await {
            Ok(Ok(tls)) => {
                let conn = tls.get_ref().1;
                let summary = postern_tls::summarize(conn);
                // Say what the client proved: Verified / Untrusted certificate, or none.
                let presented = match (conn.peer_certificates(), &self.ctx.client_certs) {
                    (Some(chain), Some(policy)) => Some(policy.classify(chain)),
                    _ => None,
                };
                info!(
                    "{} TLS connection established from {}: {summary}{}",
                    presented.as_ref().map(|c| c.word()).unwrap_or("Anonymous"),
                    self.client(),
                    presented
                        .as_ref()
                        .map(crate::partner::describe_cert)
                        .unwrap_or_default()
                );
                self.client_cert = presented;
                self.conn.stream = Stream::tls(tls);
                self.tls = Some(summary);
                // RFC 3207 §4.2: forget everything learnt before TLS.
                self.helo = None;
                self.esmtp = false;
                self.tx = None;
                true
            }
            Ok(Err(e)) => {
                warn!("TLS handshake failed from {}: {e}", self.client());
                false
            }
            Err(_) => {
                warn!("TLS handshake timed out from {}", self.client());
                false
            }
        }
    }
}
