//! MAIL FROM (RFC 5321 §4.1.1.2, RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8,
//! RFC 3461 §4.3 RET and §4.4 ENVID, RFC 8689 REQUIRETLS, which are stored in the
//! envelope).
//!
//! # Security
//! REQUIRETLS is accepted only inside TLS (it is offered only there): a demand for TLS
//! made over plaintext is refused with `530 5.7.10` rather than silently taken, since
//! whoever sees or alters the plaintext could have removed it just as well.

use postern_smtp::Reply;
use postern_smtp::address::ReversePath;
use postern_smtp::command::MailParams;
use postern_smtp::reply::std_replies;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, Transaction};

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(crate) async fn mail(&mut self, from: ReversePath, params: MailParams) -> Flow {
        if self.helo.is_none() {
            return self.reply(std_replies::bad_sequence("Send HELO/EHLO first"));
        }
        if self.tx.is_some() {
            return self.reply(std_replies::bad_sequence("Nested MAIL command"));
        }
        // Back-pressure (the queue's disk is full, or it cannot keep up): see
        // `postern_queue::Admission`.
        let admission = self.ctx.queue.admission();
        if let Some((code, status, text)) = admission.reply() {
            let r = Reply::new(code, status, text);
            tracing::warn!(
                "NOQUEUE: reject: MAIL from {}: {r}; reason: {}",
                self.client(),
                admission.why()
            );
            crate::metrics::rejected(&self.cfg, "MAIL", &r);
            if code == 421 {
                self.conn.send(&r);
                return Flow::Close;
            }
            return self.reply(r);
        }
        if !self.esmtp && params != MailParams::default() {
            return self.reply(Reply::new(
                555,
                "5.5.4",
                "MAIL parameters need EHLO, not HELO",
            ));
        }
        if params.requiretls && self.tls.is_none() {
            let r = Reply::new(
                530,
                "5.7.10",
                "REQUIRETLS needs a TLS session: issue STARTTLS first (RFC 8689)",
            );
            self.log_reject_from("MAIL", &r, Some(&from.to_string()), None);
            return self.reply(r);
        }
        if let ReversePath::Address(a) = &from
            && !a.is_ascii()
            && !params.smtputf8
        {
            let r = Reply::new(
                553,
                "5.6.7",
                "Non-ASCII sender address needs the SMTPUTF8 parameter",
            );
            self.log_reject_from("MAIL", &r, Some(&from.to_string()), None);
            return self.reply(r);
        }
        if let Some(size) = params.size
            && size > self.cfg.max_message_size.bytes()
        {
            let r = std_replies::message_too_big();
            self.log_reject("MAIL", &r, None);
            return self.reply(r);
        }
        if let Err((r, why)) = crate::partner::check_mail(
            &self.ctx,
            &from,
            self.tls.is_some(),
            self.client_cert.as_ref(),
        ) {
            tracing::warn!(
                "NOQUEUE: reject: MAIL from {}: {r}; from={from} proto={} helo=<{}> reason: {why}",
                self.client(),
                self.protocol(),
                self.helo.as_deref().unwrap_or("")
            );
            crate::metrics::rejected(&self.cfg, "MAIL", &r);
            return self.reply(r);
        }
        if let ReversePath::Address(a) = &from
            && let postern_smtp::Domain::Literal(ip) = a.domain
            && crate::literal::is_self_or_internal(ip, self.local.map(|l| l.ip()))
            && !self.may_relay()
        {
            let r = Reply::new(
                553,
                "5.7.1",
                format!(
                    "Sender address <{a}> is refused: its address literal names this host or an internal network"
                ),
            );
            self.log_reject_from("MAIL", &r, Some(&from.to_string()), None);
            return self.reply(r);
        }
        let spf = match self.auth_spf(&from).await {
            Ok(spf) => spf,
            Err(r) => {
                self.log_reject("MAIL", &r, None);
                return self.reply(r);
            }
        };
        self.tx = Some(Transaction {
            from,
            params,
            rcpts: Vec::new(),
            bdat: None,
            spf,
            trace_len: 0,
            saw_auth_results: false,
            tls_required_no: false,
        });
        self.reply(std_replies::sender_ok())
    }
}
