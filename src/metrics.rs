//! Wiring the scrape-time gauges: queue sizes and ages (`postern_queue::gauges`),
//! certificate expiry (`postern_metrics::certs`), build information. Counters live where
//! things happen (inbound, queue, relay).

use std::path::Path;

use postern_metrics::Collector;
use postern_metrics::certs::CertExpiry;

/// Register the scrape-time gauges for the queue in `queue_dir`; they stop being
/// reported when the returned handles are dropped.
pub fn register(queue_dir: &Path) -> Vec<Collector> {
    postern_metrics::set(
        "postern_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    vec![
        postern_queue::gauges::register(queue_dir),
        postern_metrics::certs::register(),
    ]
}

/// Report the certificates `store` serves now (at start and after each reload).
pub fn record_certificates(store: &postern_tls::TlsStore) {
    let certs = store.resolver().certs();
    postern_metrics::certs::set_certificates(
        certs
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
            .collect(),
    );
}
