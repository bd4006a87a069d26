//! Metrics the daemon computes at scrape time: queue sizes and ages, certificate expiry,
//! build information. Counters live where things happen (inbound, queue, relay); the
//! names and help texts are in `postern-metrics`.

use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use postern_metrics::{Collector, Sink};
use postern_queue::QueueId;
use postern_queue::admin::Place;

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

/// Register the scrape-time gauges for the queue in `queue_dir`; they stop being
/// reported when the returned handles are dropped.
pub fn register(queue_dir: &Path) -> Vec<Collector> {
    postern_metrics::set(
        "postern_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    let dir = queue_dir.to_path_buf();
    vec![
        postern_metrics::on_scrape(move |s| queue_gauges(&dir, s)),
        postern_metrics::on_scrape(cert_gauges),
    ]
}

fn queue_gauges(dir: &Path, s: &mut Sink) {
    let now = postern_queue::unix_now();
    for place in Place::ALL {
        let (count, oldest) = scan(&dir.join(place.as_str()));
        s.gauge(
            "postern_queue_messages",
            &[("state", place.as_str())],
            count as f64,
        );
        let age = oldest.map(|t| now.saturating_sub(t)).unwrap_or(0);
        s.gauge(
            "postern_queue_oldest_message_age_seconds",
            &[("state", place.as_str())],
            age as f64,
        );
    }
}

/// Messages in a spool directory and the arrival of the oldest, from the IDs alone
/// (no file is opened: a scrape stays cheap with a large queue).
fn scan(dir: &PathBuf) -> (usize, Option<u64>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, None);
    };
    let mut count = 0;
    let mut oldest: Option<u64> = None;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".msg"))
            .and_then(QueueId::parse)
        else {
            continue;
        };
        count += 1;
        let t = id.unix_time();
        oldest = Some(oldest.map_or(t, |o| o.min(t)));
    }
    (count, oldest)
}

fn cert_gauges(s: &mut Sink) {
    let now = postern_queue::unix_now() as i64;
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

/// Report the certificates `store` serves now (at start and after each reload).
pub fn record_certificates(store: &postern_tls::TlsStore) {
    let certs = store
        .resolver()
        .certs()
        .iter()
        .filter_map(|c| {
            let info = c.info.as_ref()?;
            Some(CertExpiry {
                file: info
                    .common_name
                    .clone()
                    .or_else(|| info.sans.first().cloned())
                    .unwrap_or_else(|| info.subject.clone()),
                algorithm: format!("{:?}", c.algorithm),
                not_after: info.not_after,
            })
        })
        .collect();
    set_certificates(certs);
}
