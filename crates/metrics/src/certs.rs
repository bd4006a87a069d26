//! Certificate expiry gauges: the daemon reports the certificates it serves (at start
//! and after each reload); a scrape turns them into
//! `postern_tls_certificate_expiry_timestamp_seconds` and
//! `postern_tls_certificate_days_to_expiry`.

use std::sync::{LazyLock, Mutex};

use crate::{Collector, Sink};

/// A served certificate, for the expiry gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertExpiry {
    /// Which certificate: its common name (or first DNS name, or subject).
    pub file: String,
    /// `ECDSA`, `RSA`, ...
    pub algorithm: String,
    /// Unix seconds.
    pub not_after: i64,
}

static CERTS: LazyLock<Mutex<Vec<CertExpiry>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// Replace the set of served certificates the expiry gauges report. Call it whenever
/// the server's certificates are (re)loaded.
pub fn set_certificates(certs: Vec<CertExpiry>) {
    *CERTS.lock().unwrap_or_else(|p| p.into_inner()) = certs;
}

/// Report the expiry gauges until the returned handle is dropped.
pub fn register() -> Collector {
    crate::on_scrape(cert_gauges)
}

fn cert_gauges(s: &mut Sink) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for c in CERTS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let labels = [
            ("certificate", c.file.as_str()),
            ("algorithm", c.algorithm.as_str()),
        ];
        s.gauge(
            "postern_tls_certificate_expiry_timestamp_seconds",
            &labels,
            c.not_after as f64,
        );
        s.gauge(
            "postern_tls_certificate_days_to_expiry",
            &labels,
            ((c.not_after - now) as f64 / 86_400.0).floor(),
        );
    }
}
