//! SMTP replies: a code, an enhanced status code (RFC 3463) and text.

use std::borrow::Cow;
use std::fmt;

/// One SMTP reply. Every reply Postern sends carries an enhanced status code, except the
/// greeting (220) and the EHLO/HELO replies, where RFC 2034 does not use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<&'static str>,
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (greeting, EHLO).
    pub fn bare(code: u16, lines: Vec<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status: None,
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The reply in wire form: `250-first\r\n250 last\r\n`. Text is sanitised so that a
    /// CR or LF smuggled into reply text (from an address, say) cannot split the reply.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map(|c| c.as_ref()).unwrap_or("");
            let sep = if i + 1 == n { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}", self.code, sep).as_bytes());
            if let Some(st) = self.status {
                out.extend_from_slice(st.as_bytes());
                out.push(b' ');
            }
            for &b in text.as_bytes() {
                out.push(if b == b'\r' || b == b'\n' || b == 0 {
                    b' '
                } else {
                    b
                });
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(s) = self.status {
            write!(f, " {s}")?;
        }
        let text: Vec<&str> = self.lines.iter().map(|l| l.as_ref()).collect();
        write!(f, " {}", text.join(" / "))
    }
}

/// Replies that are the same everywhere, so that their wording is defined once.
pub mod std_replies {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "Ok")
    }
    pub fn sender_ok() -> Reply {
        Reply::new(250, "2.1.0", "Sender ok")
    }
    pub fn recipient_ok() -> Reply {
        Reply::new(250, "2.1.5", "Recipient ok")
    }
    pub fn start_data() -> Reply {
        Reply::bare(354, vec!["End data with <CR><LF>.<CR><LF>".into()])
    }
    pub fn bad_sequence(text: &'static str) -> Reply {
        Reply::new(503, "5.5.1", text)
    }
    pub fn must_starttls() -> Reply {
        Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
    }
    pub fn relay_denied() -> Reply {
        Reply::new(554, "5.7.1", "Relay access denied")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "Too many recipients")
    }
    pub fn message_too_big() -> Reply {
        Reply::new(
            552,
            "5.3.4",
            "Message size exceeds fixed maximum message size",
        )
    }
    pub fn storage_unavailable() -> Reply {
        Reply::new(452, "4.3.1", "Insufficient system storage, try again later")
    }
    pub fn local_error() -> Reply {
        Reply::new(451, "4.3.0", "Local error in processing, try again later")
    }
    pub fn timeout() -> Reply {
        Reply::new(421, "4.4.2", "Timeout exceeded, closing connection")
    }
    pub fn too_many_connections() -> Reply {
        Reply::new(421, "4.7.0", "Too many connections, try again later")
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "Too many errors, closing connection")
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "Service shutting down, try again later")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        let r = Reply::new(250, "2.0.0", "Ok");
        assert_eq!(r.to_bytes(), b"250 2.0.0 Ok\r\n");
        let r = Reply::bare(250, vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(r.to_bytes(), b"250-a\r\n250-b\r\n250 c\r\n");
    }

    #[test]
    fn reply_text_cannot_inject_lines() {
        let r = Reply::new(550, "5.1.1", "bad <x\r\n250 ok>");
        assert_eq!(r.to_bytes(), b"550 5.1.1 bad <x  250 ok>\r\n");
    }
}
