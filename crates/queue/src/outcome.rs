//! What a delivery attempt learnt about one recipient, as data: the remote server's
//! reply (code, enhanced status code, text, the command it answered, the host), or the
//! local reason (with an enhanced status code when the agent knows one), and whether
//! the recipient failed by expiry or was relayed to a server without DSN.
//!
//! The state file stores it field by field (see `record.rs`); bounces, `postern queue
//! show`, log lines and metrics read the fields. The one place text is still read is
//! [`Detail::from_legacy`], for state files written before this type existed.
//!
//! # Standards
//! RFC 3463 (enhanced status codes; `4.4.7` delivery time expired), RFC 3464 §2.3.4
//! (Status), §2.3.5 (Remote-MTA) and §2.3.6 (Diagnostic-Code).

use std::fmt;

use postern_smtp::client::Reply;
use postern_smtp::enhanced::EnhancedCode;
use serde::{Deserialize, Serialize};

mod legacy;

/// The result of the last attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Detail {
    /// The remote server's reply code (`550`), when a server answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The enhanced status code (RFC 3463): from the remote reply, or the agent's own.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "status_text",
        rename = "status"
    )]
    pub status: Option<EnhancedCode>,
    /// The remote server that answered: its name (`mx.example.net`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its IP address as connected to (`192.0.2.1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The port connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The reply's text after the code, lines joined by spaces (enhanced code included,
    /// as the server sent it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The command the reply answered (`RCPT TO`, `end of DATA`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// A local explanation (no server answered, or what was done with the answer).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Failed because the message stayed in the queue this long (`[queue] max_age`,
    /// as configured, e.g. `5d`); the other fields are the last temporary error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_after: Option<String>,
    /// Accepted by a next hop that does not offer DSN (RFC 3461 §5.2.2): a recipient
    /// with `NOTIFY=SUCCESS` is owed a "relayed" report by us.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub relayed_without_dsn: bool,
}

impl Detail {
    /// A local reason with the enhanced status code that fits it (`4.4.1`, `5.1.2`).
    pub fn local(status: &str, text: impl Into<String>) -> Detail {
        Detail {
            status: EnhancedCode::parse(status),
            text: text.into(),
            ..Detail::default()
        }
    }

    /// A local note without a status code (`delivered to /var/mail/...`).
    pub fn note(text: impl Into<String>) -> Detail {
        Detail {
            text: text.into(),
            ..Detail::default()
        }
    }

    /// A remote server's `reply` to `stage` (`RCPT TO`, `end of DATA`).
    pub fn remote(
        host: &str,
        addr: std::net::IpAddr,
        port: u16,
        reply: &Reply,
        stage: Option<&str>,
    ) -> Detail {
        Detail {
            code: Some(reply.code),
            status: reply.enhanced,
            host: Some(host.to_string()),
            addr: Some(addr.to_string()),
            port: Some(port),
            reply: Some(reply.lines.join(" ")),
            stage: stage.map(str::to_string),
            ..Detail::default()
        }
    }

    /// The remote reply as one line (`550 5.1.1 no such user`), when there was one.
    pub fn smtp_reply(&self) -> Option<String> {
        let code = self.code?;
        Some(match &self.reply {
            Some(r) if !r.is_empty() => format!("{code} {r}"),
            _ => code.to_string(),
        })
    }

    /// The remote reply with the command it answered (`550 5.1.1 no such user (in reply
    /// to RCPT TO command)`): the Diagnostic-Code of a report.
    pub fn diagnostic(&self) -> Option<String> {
        let mut r = self.smtp_reply()?;
        if let Some(st) = &self.stage {
            r.push_str(&format!(" (in reply to {st} command)"));
        }
        Some(r)
    }

    /// The RFC 3464 Status for a report of `class` (b'2', b'4', b'5'): `4.4.7` for
    /// expiry, the enhanced code when its class fits, else `class.0.0`.
    pub fn status_for(&self, class: u8) -> String {
        if class == b'5' && self.expired_after.is_some() {
            return "4.4.7".into();
        }
        match self.status {
            Some(s) if s.class + b'0' == class => s.to_string(),
            _ => format!("{}.0.0", class as char),
        }
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self == &Detail::default()
    }

    /// The cause alone, without the expiry or relayed wrapping.
    pub fn cause(&self) -> String {
        let mut s = String::new();
        self.write_cause(&mut s);
        s
    }

    fn write_cause(&self, s: &mut String) {
        use std::fmt::Write as _;
        if let Some(reply) = self.smtp_reply() {
            if let Some(h) = &self.host {
                let _ = write!(s, "host {h}");
                if let Some(a) = &self.addr {
                    let _ = write!(s, "[{a}]");
                }
                if let Some(p) = self.port {
                    let _ = write!(s, ":{p}");
                }
                s.push_str(" said: ");
            }
            s.push_str(&reply);
            if let Some(st) = &self.stage {
                let _ = write!(s, " (in reply to {st} command)");
            }
            if !self.text.is_empty() {
                let _ = write!(s, "; {}", self.text);
            }
            return;
        }
        if let Some(st) = self.status {
            let _ = write!(s, "{st}");
            if !self.text.is_empty() {
                s.push(' ');
            }
        }
        s.push_str(&self.text);
    }

    /// Read a reason written by a version before typed outcomes (state file format 1).
    pub fn from_legacy(reason: &str) -> Detail {
        legacy::parse(reason)
    }
}

/// The reason as one line, for logs and `postern queue`, Postfix style.
impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(age) = &self.expired_after {
            write!(f, "message expired after {age} in the queue; last error: ")?;
        }
        if self.relayed_without_dsn {
            f.write_str("relayed to a mail server that does not offer delivery reports (DSN): ")?;
        }
        f.write_str(&self.cause())
    }
}

impl From<String> for Detail {
    fn from(text: String) -> Detail {
        Detail::note(text)
    }
}

impl From<&str> for Detail {
    fn from(text: &str) -> Detail {
        Detail::note(text)
    }
}

mod status_text {
    use postern_smtp::enhanced::EnhancedCode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<EnhancedCode>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(c) => s.serialize_str(&c.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EnhancedCode>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        Ok(s.as_deref().and_then(EnhancedCode::parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_reply_reads_like_postfix_and_round_trips_as_json() {
        let reply = Reply {
            code: 550,
            enhanced: EnhancedCode::parse("5.1.1"),
            lines: vec!["5.1.1 <bob@example.net>: no such user".into()],
        };
        let ip = "192.0.2.25".parse().unwrap();
        let d = Detail::remote("mx.example.net", ip, 25, &reply, Some("RCPT TO"));
        assert_eq!(
            d.to_string(),
            "host mx.example.net[192.0.2.25]:25 said: 550 5.1.1 <bob@example.net>: no such user (in reply to RCPT TO command)"
        );
        assert_eq!(d.status_for(b'5'), "5.1.1");
        assert_eq!(d.status_for(b'4'), "4.0.0");
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"status\":\"5.1.1\""), "{json}");
        assert_eq!(serde_json::from_str::<Detail>(&json).unwrap(), d);
        let mut e = d.clone();
        e.expired_after = Some("5d".into());
        assert_eq!(e.status_for(b'5'), "4.4.7");
        assert!(
            e.to_string().starts_with(
                "message expired after 5d in the queue; last error: host mx.example.net"
            )
        );
    }

    #[test]
    fn a_local_reason_keeps_its_status() {
        let d = Detail::local("4.4.1", "connect to mx.test[192.0.2.1]:25 failed");
        assert_eq!(
            d.to_string(),
            "4.4.1 connect to mx.test[192.0.2.1]:25 failed"
        );
        assert_eq!(d.status_for(b'4'), "4.4.1");
        assert_eq!(d.smtp_reply(), None);
        assert_eq!(Detail::note("delivered to x").to_string(), "delivered to x");
    }
}
