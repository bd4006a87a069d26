//! Message authentication in the session (`postern-auth` does the work): SPF at MAIL
//! FROM; DKIM, DMARC, Authentication-Results and DKIM signing at the end of the message,
//! before the 250.
//!
//! Clients allowed to relay (trusted networks, partners with a relay-trusted client
//! certificate) are exempt from the checks when `auth.exempt_trusted_networks` is set.
//! Mail is DKIM-signed when its From domain has a key whose `sources` name this client
//! (relaying is not signing: `postern_auth::sources`) and a recipient is not local:
//! signing at acceptance means the stored message is final (never changed after signing,
//! whatever the retries) and the key is used once per message, not once per attempt.
//!
//! # Security
//! Verification needs the whole message in memory; up to `auth.max_message_size` it is
//! read back from the spool file, beyond that only its first 1 MiB (header section) is
//! read, DKIM is recorded as not verified, and the message is not signed.

use postern_auth::headers::new_head;
use postern_auth::{Received, SpfCheck};
use postern_queue::Incoming;
use postern_smtp::Reply;
use postern_smtp::address::ReversePath;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use super::Session;

/// How much of an over-size message is read for its header section.
const HEAD_ONLY: u64 = 1 << 20;

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    /// Is the client one whose mail we vouch for (may relay)?
    fn auth_trusted(&self) -> bool {
        self.ctx.relay.is_trusted(self.peer.ip())
            || crate::partner::may_relay(&self.ctx, self.client_cert.as_ref()).is_some()
    }

    /// This client, as `[[auth.dkim_sign]] sources` see it.
    fn sign_source(&self) -> postern_auth::SignSource {
        postern_auth::SignSource {
            ip: self.peer.ip(),
            trusted_network: self.ctx.relay.is_trusted(self.peer.ip()),
            relay_certificate: crate::partner::may_relay(&self.ctx, self.client_cert.as_ref())
                .is_some(),
        }
    }

    fn auth_exempt(&self) -> bool {
        self.ctx
            .auth
            .as_ref()
            .is_some_and(|a| a.exempt_trusted_networks())
            && self.auth_trusted()
    }

    /// SPF at MAIL FROM: the check to keep for the end of the message, or the refusal.
    pub(crate) async fn auth_spf(&self, from: &ReversePath) -> Result<Option<SpfCheck>, Reply> {
        let Some(v) = self.ctx.auth.as_ref().and_then(|a| a.verifier()) else {
            return Ok(None);
        };
        if self.auth_exempt() {
            return Ok(None);
        }
        let mail_from = match from {
            ReversePath::Null => String::new(),
            ReversePath::Address(a) => a.to_string(),
        };
        let helo = self.helo.as_deref().unwrap_or("");
        let Some(d) = v.spf(self.peer.ip(), helo, &mail_from).await else {
            return Ok(None);
        };
        match d.refuse {
            Some(r) => Err(r),
            None => Ok(Some(d.check)),
        }
    }

    /// End of message: verify and/or sign, and arrange the new top of the stored message.
    /// `Err` is the reply refusing the message.
    pub(crate) async fn auth_message(&mut self, incoming: &mut Incoming) -> Result<(), Reply> {
        let Some(auth) = self.ctx.auth.clone() else {
            return Ok(());
        };
        let Some(tx) = self.tx.as_ref() else {
            return Ok(());
        };
        let verifier = auth.verifier().filter(|_| !self.auth_exempt());
        // Relaying is not signing: only the clients a key's `sources` name (#11).
        let source = self.sign_source();
        let sign = auth.signer().may_sign_for(&source)
            && tx
                .rcpts
                .iter()
                .any(|r| !self.ctx.relay.is_local(&r.address.domain));
        if verifier.is_none() && !sign {
            return Ok(());
        }
        let trace_len = tx.trace_len as u64;
        let complete = incoming.len() <= trace_len + auth.max_message_size();
        let max = if complete {
            u64::MAX
        } else {
            trace_len + HEAD_ONLY
        };
        let content = incoming.read_content(max).await.map_err(|e| {
            tracing::error!(
                "{}: cannot read the message back for checks: {e}",
                incoming.id()
            );
            postern_smtp::reply::std_replies::local_error()
        })?;
        let (trace, message) = content.split_at((trace_len as usize).min(content.len()));
        let mail_from = match &tx.from {
            ReversePath::Null => String::new(),
            ReversePath::Address(a) => a.to_string(),
        };
        let mut prepend = String::new();
        let mut strip = Vec::new();
        if let Some(v) = verifier {
            let m = Received {
                ip: self.peer.ip(),
                helo: self.helo.as_deref().unwrap_or(""),
                mail_from: &mail_from,
                message,
                complete,
            };
            let verdict = v.message(m, tx.spf.as_ref()).await;
            info!("{}: authentication: {}", incoming.id(), verdict.summary);
            if let Some(r) = verdict.refuse {
                return Err(r);
            }
            if verdict.quarantined {
                let hold = auth.hold_quarantined();
                warn!(
                    "{}: quarantined by DMARC policy ({}){}",
                    incoming.id(),
                    verdict.summary,
                    if hold {
                        "; put on hold: release or delete it with postern queue"
                    } else {
                        ""
                    }
                );
                if hold {
                    incoming.hold_on_commit();
                }
            }
            prepend = verdict.prepend;
            strip = verdict.strip;
        }
        let (replaced, mut head) = new_head(prepend.as_bytes(), trace, message, &strip);
        if sign && complete {
            let mut whole = head.clone();
            whole.extend_from_slice(&message[replaced..]);
            match auth.signer().sign_for(&whole, &source) {
                Ok(Some(s)) => {
                    info!(
                        "{}: DKIM-signed for {} ({})",
                        incoming.id(),
                        s.domain,
                        s.selectors.join(", ")
                    );
                    head.splice(0..0, s.headers.into_bytes());
                }
                Ok(None) => {}
                Err(e) => warn!("{}: DKIM signing failed, sent unsigned: {e}", incoming.id()),
            }
        } else if sign {
            warn!(
                "{}: not DKIM-signed: larger than auth.max_message_size",
                incoming.id()
            );
        }
        if replaced > 0 || head.len() > trace.len() {
            incoming.replace_head(trace_len + replaced as u64, head);
        }
        Ok(())
    }
}
