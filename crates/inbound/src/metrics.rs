//! What the inbound side counts (see `postern-metrics` for the names and help texts).

use postern_smtp::Reply;
use postern_tls::TlsSummary;

use crate::ListenerConfig;

fn tls_labels(tls: Option<&TlsSummary>) -> (&'static str, &str, &str) {
    match tls {
        Some(t) => ("yes", t.version.as_str(), t.cipher.as_str()),
        None => ("no", "", ""),
    }
}

/// A session ended.
pub(crate) fn session_ended(cfg: &ListenerConfig, tls: Option<&TlsSummary>) {
    let listener = cfg.address.to_string();
    let (tls, version, cipher) = tls_labels(tls);
    postern_metrics::inc(
        "postern_smtp_connections_total",
        &[
            ("listener", &listener),
            ("tls", tls),
            ("version", version),
            ("cipher", cipher),
        ],
    );
}

/// A connection was refused before the greeting.
pub(crate) fn refused(cfg: &ListenerConfig, reason: &str) {
    let listener = cfg.address.to_string();
    postern_metrics::inc(
        "postern_smtp_connections_refused_total",
        &[("listener", &listener), ("reason", reason)],
    );
}

/// A message was queued and acknowledged.
pub(crate) fn accepted(cfg: &ListenerConfig, tls: Option<&TlsSummary>) {
    let listener = cfg.address.to_string();
    postern_metrics::inc(
        "postern_smtp_messages_accepted_total",
        &[("listener", &listener), ("tls", tls_labels(tls).0)],
    );
}

/// A command was refused (a NOQUEUE reject).
pub(crate) fn rejected(cfg: &ListenerConfig, stage: &str, reply: &Reply) {
    let listener = cfg.address.to_string();
    let code = reply.code.to_string();
    postern_metrics::inc(
        "postern_smtp_rejections_total",
        &[
            ("listener", &listener),
            ("stage", stage),
            ("code", &code),
            ("status", reply.status.unwrap_or("")),
        ],
    );
}
