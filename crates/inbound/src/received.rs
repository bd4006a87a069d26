//! The `Received:` trace header (RFC 5321 §4.4, RFC 5322 §3.6.7) and RFC 5322 dates.

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
}

pub(crate) fn received(t: &Trace<'_>) -> String {
    let mut h = format!(
        "Received: from {} (unknown [{}])\r\n\tby {} (Postern session {}) with {} id {}",
        clean(t.helo),
        t.ip,
        t.hostname,
        t.session,
        t.protocol,
        t.queue_id
    );
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
    h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(t.now)));
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

/// `Sat, 28 Nov 2026 21:29:02 +0000`.
pub(crate) fn rfc5322_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        WD[(days.rem_euclid(7)) as usize],
        d,
        MO[(m - 1) as usize],
        y,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_901_342),
            "Sat, 28 Nov 2026 21:29:02 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

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
        });
        assert!(
            h.contains(
                "\r\n\t(verified client certificate \"CN=mx.partner.test, O=?Evil? ?Inc???X: y\");"
            ),
            "{h}"
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
        });
        assert_eq!(
            h,
            "Received: from client?evil? (unknown [192.0.2.1])\r\n\tby mx.test (Postern session S1) with ESMTPS id ABC\r\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\r\n\tfor <bob@local.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }
}
