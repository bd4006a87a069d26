//! Reports received: TLS-RPT (RFC 8460) and DMARC aggregate (RFC 7489 §7) report mail,
//! parsed with mail-auth's parsers. Bad input is an error value, never a panic.

pub use mail_auth::report::Report as DmarcReport;
pub use mail_auth::report::tlsrpt::TlsReport;

/// Largest report (uncompressed) parsed.
pub const MAX_REPORT_SIZE: usize = 25 << 20;

/// A TLS-RPT report from a report message (gzip, zip or plain JSON attachment).
pub fn tls_report_mail(message: &[u8]) -> Result<TlsReport, String> {
    TlsReport::parse_rfc5322(message, MAX_REPORT_SIZE).map_err(|e| format!("{e:?}"))
}

/// A TLS-RPT report from its JSON.
pub fn tls_report_json(json: &[u8]) -> Result<TlsReport, String> {
    TlsReport::parse_json(json).map_err(|e| format!("{e:?}"))
}

/// A DMARC aggregate report from a report message.
pub fn dmarc_report_mail(message: &[u8]) -> Result<DmarcReport, String> {
    DmarcReport::parse_rfc5322(message, MAX_REPORT_SIZE).map_err(|e| format!("{e:?}"))
}

/// A DMARC aggregate report from its XML.
pub fn dmarc_report_xml(xml: &[u8]) -> Result<DmarcReport, String> {
    DmarcReport::parse_xml(xml).map_err(|e| format!("{e:?}"))
}
