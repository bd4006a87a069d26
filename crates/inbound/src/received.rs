//! The `Received:` trace header (RFC 5321 §4.4, RFC 5322 §3.6.7).

use std::net::IpAddr;

/// What the trace header says about a session.
pub(crate) struct Trace<'a> {
    pub helo: &'a str,
    pub ip: IpAddr,
    pub hostname: &'a str,
    pub session: &'a str,
    pub protocol: &'a str,
    pub queue_id: &'a str,
    pub tls: Option<&'a postern_tls::TlsSummary>,
    /// The subject of the verified client certificate, if any.
    pub client_cert: Option<String>,
    /// Only when there is exactly one recipient (RFC 5321 §4.4 privacy advice).
    pub for_rcpt: Option<String>,
    pub now: u64,
    /// A local submission (`submit.sock`): the uid the kernel reported for the client.
    pub uid: Option<u32>,
}

pub(crate) fn received(t: &Trace<'_>) -> String {
    let mut h = match t.uid {
        // As Postfix writes mail from its local `sendmail`: no `from` clause (there is no
        // network client), the submitting uid in the `by` comment.
        Some(uid) => format!(
            "Received: by {} (Postern session {}, from userid {uid})\r\n\tid {}",
            t.hostname, t.session, t.queue_id
        ),
        None => format!(
            "Received: from {} (unknown [{}])\r\n\tby {} (Postern session {}) with {} id {}",
            clean(t.helo),
            t.ip,
            t.hostname,
            t.session,
            t.protocol,
            t.queue_id
        ),
    };
    if let Some(tls) = t.tls {
        h.push_str(&format!(
            "\r\n\t(using {} with cipher {})",
            tls.version, tls.cipher
        ));
        if let Some(subject) = &t.client_cert {
            h.push_str(&format!(
                "\r\n\t(verified client certificate \"{}\")",
                clean_subject(subject)
            ));
        }
    }
    if let Some(r) = &t.for_rcpt {
        h.push_str(&format!("\r\n\tfor <{}>", clean(r)));
    }
    h.push_str(&format!(
        ";\r\n\t{}\r\n",
        postern_queue::rfc5322_date(t.now)
    ));
    h
}

/// Keep a peer-supplied word from breaking the header's comment syntax.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"()\\;".contains(c) || !c.is_ascii() && !c.is_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A certificate subject inside a quoted comment: printable ASCII, no quote, backslash or
/// parentheses (which would end or nest the comment).
fn clean_subject(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            if (c == ' ' || c.is_ascii_graphic()) && !"()\\\"".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_subject() {
        let tls = postern_tls::TlsSummary {
            version: "TLSv1.2".into(),
            cipher: "X".into(),
        };
        let h = received(&Trace {
            helo: "c",
            ip: "192.0.2.1".parse().unwrap(),
            hostname: "mx.test",
            session: "S1",
            protocol: "ESMTPS",
            queue_id: "ABC",
            tls: Some(&tls),
            client_cert: Some("CN=mx.partner.test, O=\"Evil\" (Inc)\r\nX: y".into()),
            for_rcpt: None,
            now: 0,
            uid: None,
        });
        assert!(
            h.contains(
                "\r\n\t(verified client certificate \"CN=mx.partner.test, O=?Evil? ?Inc???X: y\");"
            ),
            "{h}"
        );
    }

    #[test]
    fn local_submission_names_the_uid() {
        let h = received(&Trace {
            helo: "h.test",
            ip: "127.0.0.1".parse().unwrap(),
            hostname: "mx.test",
            session: "S1",
            protocol: "ESMTP",
            queue_id: "ABC",
            tls: None,
            client_cert: None,
            for_rcpt: Some("bob@local.test".into()),
            now: 0,
            uid: Some(1000),
        });
        assert_eq!(
            h,
            "Received: by mx.test (Postern session S1, from userid 1000)\r\n\tid ABC\r\n\tfor <bob@local.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }

    #[test]
    fn header_shape() {
        let tls = postern_tls::TlsSummary {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
        };
        let h = received(&Trace {
            helo: "client(evil)",
            ip: "192.0.2.1".parse().unwrap(),
            hostname: "mx.test",
            session: "S1",
            protocol: "ESMTPS",
            queue_id: "ABC",
            tls: Some(&tls),
            client_cert: None,
            for_rcpt: Some("bob@local.test".into()),
            now: 0,
            uid: None,
        });
        assert_eq!(
            h,
            "Received: from client?evil? (unknown [192.0.2.1])\r\n\tby mx.test (Postern session S1) with ESMTPS id ABC\r\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\r\n\tfor <bob@local.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }
}
