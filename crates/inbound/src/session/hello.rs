//! EHLO and HELO (RFC 5321 §4.1.1.1). The EHLO reply lists the extensions; `DSN` is
//! RFC 3461 (NOTIFY, ORCPT, RET, ENVID). `REQUIRETLS` (RFC 8689) is offered only inside
//! TLS: a client that saw it in plaintext could be talking to an attacker who added it.

use postern_smtp::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(crate) fn hello(&mut self, name: String, esmtp: bool) -> Flow {
        // EHLO/HELO also reset any transaction (RFC 5321 §4.1.4).
        self.tx = None;
        self.helo = Some(name);
        self.esmtp = esmtp;
        if !esmtp {
            return self.reply(Reply::bare(250, vec![self.ctx.hostname.clone().into()]));
        }
        let mut lines: Vec<std::borrow::Cow<'static, str>> = vec![
            self.ctx.hostname.clone().into(),
            "PIPELINING".into(),
            format!("SIZE {}", self.cfg.max_message_size.bytes()).into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "DSN".into(),
            "CHUNKING".into(),
        ];
        if self.tls.is_none() && self.starttls_available() {
            lines.push("STARTTLS".into());
        }
        if self.tls.is_some() {
            lines.push("REQUIRETLS".into());
        }
        self.reply(Reply::bare(250, lines))
    }
}
