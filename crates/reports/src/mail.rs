//! Report mail: `multipart/report` (RFC 6522) with a gzip attachment, as RFC 8460 §5.3
//! (TLS-RPT) and RFC 7489 §7.2.1.1 describe it.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

/// What one report message carries.
#[derive(Debug, Clone)]
pub struct ReportMail<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: String,
    /// Extra header fields, each `Name: value` without CRLF.
    pub headers: Vec<String>,
    /// RFC 6522 report-type (`tlsrpt`): `multipart/report`; empty: `multipart/mixed`
    /// (DMARC aggregate reports, RFC 7489 §7.2.1.1).
    pub report_type: &'a str,
    /// The human-readable first part.
    pub text: String,
    /// Attachment content type, e.g. `application/tlsrpt+gzip`.
    pub content_type: &'a str,
    pub file_name: String,
    /// The report itself, uncompressed.
    pub report: &'a [u8],
    /// Unix time for `Date:`.
    pub now: u64,
    /// Left part of the Message-ID.
    pub message_id: String,
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data)?;
    e.finish()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 in lines of 76 characters, CRLF-terminated.
pub fn base64_lines(data: &[u8]) -> String {
    let mut out = String::new();
    let mut line = 0;
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        line += 4;
        if line >= 76 {
            out.push_str("\r\n");
            line = 0;
        }
    }
    if line > 0 {
        out.push_str("\r\n");
    }
    out
}

/// The whole message, CRLF line ends, 7-bit.
pub fn compose(m: &ReportMail<'_>) -> std::io::Result<Vec<u8>> {
    let gz = gzip(m.report)?;
    let boundary = format!("=_postern_report_{}", m.message_id.replace(['@', '.'], "_"));
    let domain = m.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let mut s = String::new();
    s.push_str(&format!("From: <{}>\r\n", m.from));
    s.push_str(&format!("To: <{}>\r\n", m.to));
    s.push_str(&format!("Subject: {}\r\n", m.subject));
    s.push_str(&format!("Date: {}\r\n", postern_queue::rfc5322_date(m.now)));
    s.push_str(&format!("Message-ID: <{}@{domain}>\r\n", m.message_id));
    for h in &m.headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("Auto-Submitted: auto-generated\r\n");
    s.push_str("MIME-Version: 1.0\r\n");
    let ctype = if m.report_type.is_empty() {
        "multipart/mixed".to_string()
    } else {
        format!("multipart/report; report-type=\"{}\"", m.report_type)
    };
    s.push_str(&format!(
        "Content-Type: {ctype};\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    s.push_str("This is a multi-part message in MIME format.\r\n\r\n");
    s.push_str(&format!("--{boundary}\r\n"));
    s.push_str(
        "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
    );
    for l in m.text.lines() {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str(&format!("\r\n--{boundary}\r\n"));
    s.push_str(&format!(
        "Content-Type: {}; name=\"{}\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{}\"\r\n\r\n",
        m.content_type, m.file_name, m.file_name
    ));
    s.push_str(&base64_lines(&gz));
    s.push_str(&format!("\r\n--{boundary}--\r\n"));
    Ok(s.into_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg==\r\n"),
            ("fo", "Zm8=\r\n"),
            ("foo", "Zm9v\r\n"),
            ("foob", "Zm9vYg==\r\n"),
            ("fooba", "Zm9vYmE=\r\n"),
            ("foobar", "Zm9vYmFy\r\n"),
        ] {
            assert_eq!(base64_lines(i.as_bytes()), o);
        }
        let long = base64_lines(&[0u8; 100]);
        assert!(long.lines().all(|l| l.len() <= 76));
    }
}
