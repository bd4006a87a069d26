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
//! read, DKIM is recorded as not verified, and the message is not signed. Every message
//! held in memory takes its share of `auth.memory_budget` first (shared by all sessions;
//! `451 4.3.1` when none is free within 10 s), and the CPU work runs on the blocking pool.
//! The header section was already counted and capped while it arrived (`HeaderScan`).
//!
//! Incoming Authentication-Results fields that carry our authserv-id are removed from
//! every message — from exempt and trusted clients too, and with every check off
//! (RFC 8601 §5): downstream filters must be able to trust them.

use std::net::IpAddr;
use std::sync::Arc;

use postern_auth::headers::{forged_results, new_head};
use postern_auth::{Auth, Received, SpfCheck};
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
        self.may_relay()
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

    /// End of message: verify and/or sign, remove forged Authentication-Results, and
    /// arrange the new top of the stored message. `Err` is the reply refusing the message.
    pub(crate) async fn auth_message(&mut self, incoming: &mut Incoming) -> Result<(), Reply> {
        self.dmarc = None;
        let Some(tx) = self.tx.as_ref() else {
            return Ok(());
        };
        let auth = self.ctx.auth.clone();
        let verify = auth.as_ref().is_some_and(|a| a.verifier().is_some()) && !self.auth_exempt();
        // Relaying is not signing: only the clients a key's `sources` name (#11).
        let source = self.sign_source();
        let sign = auth
            .as_ref()
            .is_some_and(|a| a.signer().may_sign_for(&source))
            && tx
                .rcpts
                .iter()
                .any(|r| !self.ctx.relay.is_local(&r.address.domain));
        if !verify && !sign && !tx.saw_auth_results {
            return Ok(());
        }
        let trace_len = tx.trace_len as u64;
        let limit = auth.as_ref().map_or(0, |a| a.max_message_size());
        let complete = (verify || sign) && incoming.len() <= trace_len + limit;
        let max = match (verify || sign, complete) {
            (_, true) => u64::MAX,
            (true, false) => trace_len + HEAD_ONLY,
            // Only forged fields to remove: the header section is enough.
            (false, _) => trace_len + self.cfg.max_header_size.bytes() + 2,
        };
        let held = incoming.len().min(max);
        // The content, and the new head and (for signing) a copy built from it.
        let _permit =
            match &auth {
                Some(a) => Some(a.reserve_memory(held.saturating_mul(2)).await.ok_or_else(
                    || {
                        warn!(
                            "{}: auth.memory_budget exhausted: message from {} deferred with 451",
                            incoming.id(),
                            self.client()
                        );
                        Reply::new(
                            451,
                            "4.3.1",
                            "Insufficient system resources, try again later",
                        )
                    },
                )?),
                None => None,
            };
        let content = incoming.read_content(max).await.map_err(|e| {
            tracing::error!(
                "{}: cannot read the message back for checks: {e}",
                incoming.id()
            );
            postern_smtp::reply::std_replies::local_error()
        })?;
        let job = Job {
            id: incoming.id().to_string(),
            authserv_id: auth.as_ref().map_or_else(
                || self.ctx.hostname.clone(),
                |a| a.authserv_id().to_string(),
            ),
            auth,
            content,
            trace_len: trace_len as usize,
            verify,
            sign,
            source,
            complete,
            ip: self.peer.ip(),
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: match &tx.from {
                ReversePath::Null => String::new(),
                ReversePath::Address(a) => a.to_string(),
            },
            spf: tx.spf.clone(),
        };
        // Parsing, DKIM hashing and signing are CPU work on attacker-sized input: they run
        // on the blocking pool, not on the async workers every session shares.
        let span = tracing::Span::current();
        let handle = tokio::runtime::Handle::current();
        let done = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            job.run(&handle)
        })
        .await
        .map_err(|e| {
            tracing::error!("{}: message checks failed: {e}", incoming.id());
            postern_smtp::reply::std_replies::local_error()
        })??;
        if done.hold {
            incoming.hold_on_commit();
        }
        self.dmarc = done.dmarc;
        if let Some((replaced, head)) = done.new_head {
            incoming.replace_head(trace_len + replaced as u64, head);
        }
        Ok(())
    }
}

/// The end-of-message work, owned, for the blocking pool.
struct Job {
    id: String,
    auth: Option<Arc<Auth>>,
    authserv_id: String,
    /// Our Received field, then the message (or its beginning).
    content: Vec<u8>,
    trace_len: usize,
    verify: bool,
    sign: bool,
    /// The client, as `[[auth.dkim_sign]] sources` see it.
    source: postern_auth::SignSource,
    /// `content` holds the whole message.
    complete: bool,
    ip: IpAddr,
    helo: String,
    mail_from: String,
    spf: Option<SpfCheck>,
}

/// What the job decided.
struct Done {
    /// Put the message on hold (DMARC quarantine with `quarantine_action = "hold"`).
    hold: bool,
    /// Replace this many bytes of the message (after our Received field) with this head.
    new_head: Option<(usize, Vec<u8>)>,
    /// The DMARC evaluation, for the observer.
    dmarc: Option<postern_auth::DmarcFacts>,
}

impl Job {
    fn run(self, handle: &tokio::runtime::Handle) -> Result<Done, Reply> {
        let (trace, message) = self
            .content
            .split_at(self.trace_len.min(self.content.len()));
        let mut prepend = String::new();
        let mut hold = false;
        let mut dmarc = None;
        // Forged fields go whatever else happens (RFC 8601 §5): also for exempt clients
        // and with every check off.
        let mut strip = forged_results(message, &self.authserv_id);
        if let Some(v) = self
            .auth
            .as_ref()
            .and_then(|a| a.verifier())
            .filter(|_| self.verify)
        {
            let m = Received {
                ip: self.ip,
                helo: &self.helo,
                mail_from: &self.mail_from,
                message,
                complete: self.complete,
            };
            let verdict = handle.block_on(v.message(m, self.spf.as_ref()));
            info!("{}: authentication: {}", self.id, verdict.summary);
            if let Some(r) = verdict.refuse {
                return Err(r);
            }
            if verdict.quarantined {
                hold = self.auth.as_ref().is_some_and(|a| a.hold_quarantined());
                warn!(
                    "{}: quarantined by DMARC policy ({}){}",
                    self.id,
                    verdict.summary,
                    if hold {
                        "; put on hold: release or delete it with postern queue"
                    } else {
                        ""
                    }
                );
            }
            dmarc = verdict.dmarc;
            prepend = verdict.prepend;
            strip = verdict.strip;
        }
        if !strip.is_empty() {
            info!(
                "{}: removed {} Authentication-Results field(s) claiming our authserv-id {}",
                self.id,
                strip.len(),
                self.authserv_id
            );
        }
        let (replaced, mut head) = new_head(prepend.as_bytes(), trace, message, &strip);
        if let Some(auth) = self.auth.as_ref().filter(|_| self.sign) {
            if self.complete {
                let mut whole = head.clone();
                whole.extend_from_slice(&message[replaced..]);
                match auth.signer().sign_for(&whole, &self.source) {
                    Ok(Some(s)) => {
                        info!(
                            "{}: DKIM-signed for {} ({})",
                            self.id,
                            s.domain,
                            s.selectors.join(", ")
                        );
                        head.splice(0..0, s.headers.into_bytes());
                    }
                    Ok(None) => {}
                    Err(e) => warn!("{}: DKIM signing failed, sent unsigned: {e}", self.id),
                }
            } else {
                warn!(
                    "{}: not DKIM-signed: larger than auth.max_message_size",
                    self.id
                );
            }
        }
        let new_head = (replaced > 0 || head.len() > trace.len()).then_some((replaced, head));
        Ok(Done {
            hold,
            new_head,
            dmarc,
        })
    }
}
