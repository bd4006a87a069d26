//! Configuration checks and the `check-config` report for inbound TLS files: listener
//! client CAs and CRLs, partner rules and their CAs, and whether any listener asks for
//! the client certificates that partner rules and trusted fingerprints need.

use std::path::Path;

use postern_config::{KeyPath, Problems};
use postern_tls::check::chain_report;

use crate::{ClientCertificates, InboundConfig, ListenerConfig, RelayConfig};

/// Listener CRLs, partner rules and CAs, and the client-certificate prerequisites.
pub fn validate(
    listeners: &[ListenerConfig],
    inbound: &InboundConfig,
    relay: &RelayConfig,
    p: &mut Problems,
) {
    for (i, l) in listeners.iter().enumerate() {
        for (j, f) in l.crl.iter().enumerate() {
            if let Err(e) = postern_tls::clientauth::read_crls(f) {
                p.push(
                    KeyPath::of("listener").index(i).key("crl").index(j),
                    e.to_string(),
                );
            }
        }
    }
    crate::partner::validate(inbound, p);
    for (i, e) in inbound.partner.iter().enumerate() {
        if let Some(ca) = &e.ca
            && let Err(err) = postern_tls::client::load_roots(Some(ca))
        {
            p.push(
                KeyPath::of("inbound").key("partner").index(i).key("ca"),
                err.to_string(),
            );
        }
    }
    let asks = listeners
        .iter()
        .any(|l| l.client_certificates != ClientCertificates::Off);
    if !asks && let Some(i) = inbound.partner.iter().position(|e| e.wants_certificate()) {
        p.push(
            KeyPath::of("inbound").key("partner").index(i),
            "this partner needs a client certificate, but no [[listener]] asks for one: set client_certificates = \"request\" (or \"require\") and client_ca on the listener partners connect to",
        );
    }
    if !asks && !relay.trusted_client_certificates.is_empty() {
        p.push(
            KeyPath::of("relay").key("trusted_client_certificates"),
            "no [[listener]] asks for client certificates, so none can match: set client_certificates = \"request\" and client_ca on a listener",
        );
    }
}

/// Each listener's `client_ca` loads.
pub fn validate_client_cas(listeners: &[ListenerConfig], p: &mut Problems) {
    for (i, l) in listeners.iter().enumerate() {
        if let Some(ca) = &l.client_ca
            && let Err(e) = postern_tls::client::load_roots(Some(ca))
        {
            p.push(
                KeyPath::of("listener").index(i).key("client_ca"),
                e.to_string(),
            );
        }
    }
}

/// The certificate report printed by `check-config`: served certificates, listener client
/// CAs, partner CAs, and the outbound client certificate (`outbound_client`, first
/// certificate only).
pub fn report(
    tls: &postern_tls::TlsConfig,
    listeners: &[ListenerConfig],
    inbound: &InboundConfig,
    outbound_client: Option<&Path>,
) -> String {
    let now = postern_tls::store::unix_now();
    let mut s = format!("  TLS profile: {}\n", tls.profile);
    for (i, cert) in tls.certificate.iter().enumerate() {
        s += &chain_report(&format!("served certificate #{i}"), &cert.chain, true, now);
    }
    for (i, l) in listeners.iter().enumerate() {
        if let Some(ca) = &l.client_ca {
            s += &chain_report(&format!("listener #{i} client_ca"), ca, true, now);
        }
    }
    for (i, e) in inbound.partner.iter().enumerate() {
        if let Some(ca) = &e.ca {
            s += &chain_report(&format!("partner #{i} ca"), ca, true, now);
        }
    }
    if let Some(chain) = outbound_client {
        s += &chain_report("outbound client certificate", chain, false, now);
    }
    s
}

/// `check-config` warnings about files (#11): private keys (`keys`) readable by others,
/// listener CRLs stale or going stale.
pub fn file_warnings<'a>(
    keys: impl IntoIterator<Item = &'a Path>,
    listeners: &[ListenerConfig],
) -> String {
    let now = postern_tls::store::unix_now();
    let mut warnings: Vec<String> = keys
        .into_iter()
        .filter_map(postern_tls::keyfile::exposure)
        .collect();
    for f in listeners.iter().flat_map(|l| l.crl.iter()) {
        if let Ok(crls) = postern_tls::clientauth::read_crls(f) {
            warnings.extend(postern_tls::clientauth::crl_warnings(f, &crls, now));
        }
    }
    warnings
        .iter()
        .map(|w| format!("  warning: {w}\n"))
        .collect()
}

/// The listener, domain and network lines of `postern check-config`.
pub fn summary(listeners: &[ListenerConfig], relay: &RelayConfig) -> String {
    let mut s = String::new();
    for l in listeners {
        s += &format!(
            "  listener:  {} mode={} require_tls={} max_message_size={}\n",
            l.address, l.mode, l.require_tls, l.max_message_size
        );
    }
    let domains = if relay.local_domains.is_empty() {
        "none (no mail is accepted for delivery here)".to_string()
    } else {
        relay.local_domains.join(", ")
    };
    s += &format!("  local domains: {domains}\n");
    let nets: Vec<String> = relay
        .trusted_networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    let nets = if nets.is_empty() {
        "none".to_string()
    } else {
        nets.join(", ")
    };
    s += &format!("  trusted networks (may relay): {nets}\n");
    s
}

/// The TLS part of `postern check-config`: the self-signed warning when no certificate
/// is configured, then [`report`] and [`file_warnings`].
pub fn tls_summary<'a>(
    tls: &postern_tls::TlsConfig,
    listeners: &[ListenerConfig],
    inbound: &InboundConfig,
    outbound_client: Option<&Path>,
    keys: impl IntoIterator<Item = &'a Path>,
    state_dir: &Path,
) -> String {
    let mut s = String::new();
    if tls.certificate.is_empty() {
        s += &format!(
            "  warning: no [[tls.certificate]]: self-signed certificates will be generated in {}/tls\n",
            state_dir.display()
        );
    }
    s += &report(tls, listeners, inbound, outbound_client);
    s += &file_warnings(keys, listeners);
    s
}
