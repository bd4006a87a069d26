//! Wiring the scrape-time gauges: queue sizes and ages (`postern_queue::gauges`),
//! certificate expiry (`postern_metrics::certs`), build information. Counters live where
//! things happen (inbound, queue, relay).

use std::path::Path;

use postern_metrics::Collector;

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
