//! The observers the producing crates call, writing to the store.

use std::sync::Arc;

use postern_inbound::observe::{InboundMessage, InboundObserver};
use postern_relay::outbound::observe::{TlsObserver, TlsSession};

use crate::event::{Dmarc, Event, Inbound, Outbound};
use crate::store::Store;

/// Records outbound TLS sessions and inbound messages in the store.
#[derive(Debug, Clone)]
pub struct Recorder {
    store: Arc<Store>,
    /// `[reports] inbound_addresses`, lower case.
    inbound: Arc<Vec<String>>,
    /// Where received reports are kept.
    received: std::path::PathBuf,
}

impl Recorder {
    pub fn new(store: Arc<Store>) -> Recorder {
        Recorder {
            store,
            inbound: Arc::new(Vec::new()),
            received: std::path::PathBuf::new(),
        }
    }

    /// Also take mail to `addresses` as incoming reports, kept in `dir`.
    pub fn receiving(mut self, addresses: &[String], dir: std::path::PathBuf) -> Recorder {
        self.inbound = Arc::new(addresses.iter().map(|a| a.to_ascii_lowercase()).collect());
        self.received = dir;
        self
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl TlsObserver for Recorder {
    fn tls_session(&self, s: TlsSession) {
        self.store.record(Event::Outbound(Outbound {
            t: postern_queue::unix_now(),
            policy_type: s.policy_type.as_str().to_string(),
            policy_domain: s.policy_domain.to_ascii_lowercase(),
            recipient_domain: s.recipient_domain.to_ascii_lowercase(),
            policy_strings: s.policy_strings,
            mx_patterns: s.mx_patterns,
            mx_host: s.mx_host.to_ascii_lowercase(),
            ip: s.receiving_ip,
            sending_ip: s.sending_ip,
            result: s.result.map(str::to_string),
            detail: s.detail,
            tls_version: s.tls_version,
            cipher: s.cipher,
            verified: s.verified,
            own_report: s.own_report,
        }));
    }
}

impl InboundObserver for Recorder {
    fn wants_content(&self, recipients: &[String]) -> bool {
        recipients
            .iter()
            .any(|r| self.inbound.contains(&r.to_ascii_lowercase()))
    }

    fn accepted(&self, mut m: InboundMessage) {
        if let Some(content) = m.content.take() {
            // Parsing is CPU work on outside input: off the async workers when possible.
            let dir = self.received.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn_blocking(move || crate::receive::keep(&dir, &content));
                }
                Err(_) => {
                    crate::receive::keep(&dir, &content);
                }
            }
        }
        let t = postern_queue::unix_now();
        self.store.record(Event::Inbound(Inbound {
            t,
            ip: m.client_ip,
            helo: m.helo,
            sender_domain: m.sender_domain.map(|d| d.to_ascii_lowercase()),
            tls_version: m.tls.as_ref().map(|s| s.version.clone()),
            cipher: m.tls.map(|s| s.cipher),
            verified: m.client_cert_verified,
        }));
        if let Some(d) = m.dmarc {
            self.store.record(Event::Dmarc(Dmarc {
                t,
                ip: m.client_ip,
                header_from: d.header_from,
                policy: d.policy,
                p: d.p,
                sp: d.sp,
                adkim: d.adkim,
                aspf: d.aspf,
                testing: d.testing,
                rua: d.rua,
                disposition: d.disposition,
                result: d.result,
                dkim_aligned: d.dkim_aligned,
                spf_aligned: d.spf_aligned,
                spf_domain: d.spf_domain,
                spf_result: d.spf_result,
                dkim: d.dkim,
            }));
        }
    }
}
