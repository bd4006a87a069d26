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

/// What [`keep`] found in one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    TlsRpt,
    Dmarc,
    Bad(String),
}

/// A label value from report text: bounded and plain.
fn label(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

/// At most this many distinct `organization` label values; reports from further
/// organisations are counted under `other`. The name comes from whoever mails our public
/// `rua` addresses: without a bound, each new name would be a new time series.
pub const MAX_ORGANIZATIONS: usize = 200;

/// The `organization` label for `name`: [`label`], within [`MAX_ORGANIZATIONS`].
fn organization(name: &str) -> String {
    static SEEN: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
        std::sync::Mutex::new(None);
    let l = label(name);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let seen = seen.get_or_insert_with(Default::default);
    if seen.contains(&l) {
        return l;
    }
    if seen.len() >= MAX_ORGANIZATIONS {
        return "other".into();
    }
    seen.insert(l.clone());
    l
}

/// Parse one message sent to `[reports] inbound_addresses`, count it in the metrics, and
/// keep it under `dir` (`UNIX-N.tlsrpt.eml`, `.dmarc.eml`, or `.bad.eml`). Never fails:
/// a bad report is logged and kept.
pub fn keep(dir: &std::path::Path, message: &[u8]) -> Received {
    let what = if let Ok(r) = tls_report_mail(message) {
        let org = organization(r.organization_name.as_deref().unwrap_or("unknown"));
        for p in &r.policies {
            postern_metrics::add(
                "postern_reports_received_tls_sessions_total",
                &[("organization", &org), ("result", "success")],
                u64::from(p.summary.total_success),
            );
            for f in &p.failure_details {
                let kind = serde_json::to_value(f.result_type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "other".into());
                postern_metrics::add(
                    "postern_reports_received_tls_sessions_total",
                    &[("organization", &org), ("result", &label(&kind))],
                    u64::from(f.failed_session_count),
                );
            }
        }
        Received::TlsRpt
    } else {
        match dmarc_report_mail(message) {
            Ok(r) => {
                let org = organization(r.org_name());
                for rec in r.records() {
                    let pass =
                        matches!(
                            rec.dmarc_dkim_result(),
                            mail_auth::report::DmarcResult::Pass
                        ) || matches!(rec.dmarc_spf_result(), mail_auth::report::DmarcResult::Pass);
                    postern_metrics::add(
                        "postern_reports_received_dmarc_messages_total",
                        &[
                            ("organization", &org),
                            ("result", if pass { "pass" } else { "fail" }),
                        ],
                        u64::from(rec.count()),
                    );
                }
                Received::Dmarc
            }
            Err(e) => Received::Bad(e),
        }
    };
    let (kind, status) = match &what {
        Received::TlsRpt => ("tlsrpt", "ok"),
        Received::Dmarc => ("dmarc", "ok"),
        Received::Bad(e) => {
            tracing::warn!(
                "a message to [reports] inbound_addresses is not a report we can read ({e}); kept in {}",
                dir.display()
            );
            ("unknown", "bad")
        }
    };
    postern_metrics::inc(
        "postern_reports_received_total",
        &[("kind", kind), ("status", status)],
    );
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!(
        "{}-{n}-{}.{}.eml",
        postern_queue::unix_now(),
        std::process::id(),
        if status == "bad" { "bad" } else { kind }
    );
    let saved = postern_queue::safefs::create_dir(dir).and_then(|_| {
        use std::io::Write;
        let mut f = postern_queue::safefs::create_new(&dir.join(&name))?;
        f.write_all(message)?;
        f.sync_data()
    });
    if let Err(e) = saved {
        tracing::warn!("cannot keep a received report in {}: {e}", dir.display());
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_labels_are_bounded() {
        let mut own = Vec::new();
        for i in 0..MAX_ORGANIZATIONS + 10 {
            let name = format!("invented org {i}");
            let got = organization(&name);
            if got == name {
                own.push(name);
            } else {
                assert_eq!(got, "other");
            }
        }
        assert!(own.len() <= MAX_ORGANIZATIONS);
        assert_eq!(organization("yet another invented org"), "other");
        // A name already given a label keeps it.
        for name in own.iter().take(3) {
            assert_eq!(&organization(name), name);
        }
        assert_eq!(
            organization("bad\u{7}name\nwith controls"),
            "other",
            "the set is full"
        );
    }
}
