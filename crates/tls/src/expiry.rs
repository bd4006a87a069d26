//! Watching the served certificates' expiry: a warning twice a day for those that expire
//! within 21 days, and the expiry gauges (`postern_metrics::certs`).

use std::sync::Arc;

use postern_metrics::certs::CertExpiry;
use tokio::sync::watch;

use crate::TlsStore;
use crate::store::unix_now;

impl TlsStore {
    /// Twice a day, warn about certificates that expire within 21 days, until `stop`
    /// turns true.
    pub async fn expiry_watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let period = std::time::Duration::from_secs(12 * 3600);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {
                    self.warn_expiring(unix_now());
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Report the certificates served now to the expiry gauges (at start and after each
    /// reload), each named by its common name, first DNS name or subject.
    pub fn record_expiry_gauges(&self) {
        let certs = self.resolver().certs();
        let expiries = certs
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
        postern_metrics::certs::set_certificates(expiries);
    }
}
