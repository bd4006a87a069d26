//! RSET, QUIT, HELP.

use postern_smtp::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(crate) fn rset(&mut self) -> Flow {
        self.tx = None;
        self.reply(Reply::new(250, "2.0.0", "Ok"))
    }

    pub(crate) fn quit(&mut self) -> Flow {
        self.conn.send(&Reply::new(221, "2.0.0", "Bye"));
        Flow::Close
    }

    pub(crate) fn help(&mut self) -> Flow {
        self.reply(Reply::new(
            214,
            "2.0.0",
            "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS (see RFC 5321)",
        ))
    }
}
