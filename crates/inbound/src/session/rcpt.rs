//! RCPT TO (RFC 5321 §4.1.1.3), its DSN parameters (RFC 3461 §4.1 NOTIFY, §4.2 ORCPT,
//! checked by the parser and stored with the recipient), and relay control.

use postern_queue::Recipient;
use postern_smtp::Reply;
use postern_smtp::address::{Address, Domain, ForwardPath};
use postern_smtp::command::RcptParams;
use postern_smtp::reply::std_replies;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    /// Relay permission by client certificate (`partner.rs`); logged when granted.
    fn relay_by_certificate(&self, to: &Address) -> bool {
        match crate::partner::may_relay(&self.ctx, self.client_cert.as_ref()) {
            Some(why) => {
                tracing::info!("relay to <{to}> permitted for {}: {why}", self.client());
                true
            }
            None => false,
        }
    }

    pub(crate) fn rcpt(&mut self, to: ForwardPath, params: RcptParams) -> Flow {
        let Some(tx) = &self.tx else {
            return self.reply(std_replies::bad_sequence("Need MAIL command"));
        };
        if tx.bdat.is_some() {
            return self.reply(std_replies::bad_sequence("RCPT not allowed after BDAT"));
        }
        if !self.esmtp && params != RcptParams::default() {
            return self.reply(Reply::new(
                555,
                "5.5.4",
                "RCPT parameters need EHLO, not HELO",
            ));
        }
        let smtputf8 = tx.params.smtputf8;
        let count = tx.rcpts.len();
        let address = match to {
            ForwardPath::Address(a) => a,
            // RFC 5321 §4.5.1: <postmaster> must be accepted, for our own domain.
            ForwardPath::Postmaster => match self.ctx.relay.postmaster_domain() {
                Some(d) => Address {
                    local: "postmaster".into(),
                    domain: Domain::Name(d.to_string()),
                },
                None => {
                    let r = Reply::new(550, "5.1.1", "No local postmaster configured");
                    self.log_reject("RCPT", &r, Some("postmaster"));
                    return self.reply(r);
                }
            },
        };
        if !address.is_ascii() && !smtputf8 {
            let r = Reply::new(
                553,
                "5.6.7",
                "Non-ASCII recipient address needs SMTPUTF8 in MAIL FROM",
            );
            self.log_reject("RCPT", &r, Some(&address.to_string()));
            return self.reply(r);
        }
        // One copy per mailbox: a repeat (also in other letter case) was already accepted.
        let duplicate = self.tx.as_ref().is_some_and(|tx| {
            tx.rcpts.iter().any(|r| {
                r.address.domain == address.domain
                    && r.address.local.eq_ignore_ascii_case(&address.local)
            })
        });
        if duplicate {
            return self.reply(std_replies::recipient_ok());
        }
        if count >= self.cfg.max_recipients {
            let r = std_replies::too_many_recipients();
            self.log_reject("RCPT", &r, Some(&address.to_string()));
            return self.reply(r);
        }
        if self
            .ctx
            .relay
            .check(self.peer.ip(), &address.domain)
            .is_none()
            && !self.relay_by_certificate(&address)
        {
            let r = std_replies::relay_denied();
            self.log_reject("RCPT", &r, Some(&address.to_string()));
            return self.reply(r);
        }
        // Relaying clients only: for the others a literal is never local (relay denied).
        if let Domain::Literal(ip) = address.domain
            && crate::literal::is_self(ip, self.local.map(|l| l.ip()))
        {
            let r = Reply::new(
                550,
                "5.4.6",
                format!(
                    "<{address}>: mail for {} would loop back to myself",
                    address.domain
                ),
            );
            self.log_reject("RCPT", &r, Some(&address.to_string()));
            return self.reply(r);
        }
        if !(self.ctx.routes)(&address.domain) {
            let r = Reply::new(
                451,
                "4.3.5",
                format!("No route to {} is configured", address.domain),
            );
            self.log_reject("RCPT", &r, Some(&address.to_string()));
            return self.reply(r);
        }
        // A mailbox the route does not list: refused now, never bounced later.
        if !(self.ctx.recipients)(&address) {
            let r = Reply::new(
                550,
                "5.1.1",
                format!("<{address}>: Recipient address rejected: User unknown"),
            );
            self.log_reject("RCPT", &r, Some(&address.to_string()));
            return self.reply(r);
        }
        if let Some(tx) = &mut self.tx {
            tx.rcpts.push(Recipient {
                address,
                notify: params.notify,
                orcpt: params.orcpt,
            });
        }
        self.reply(std_replies::recipient_ok())
    }
}
