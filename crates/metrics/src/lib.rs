//! Metrics: counters the other crates bump as things happen, gauges computed when
//! Prometheus scrapes, and the small HTTP endpoint that serves them in the Prometheus
//! text exposition format (`[metrics] listen = "127.0.0.1:9325"`, path `/metrics`).
//!
//! Every metric is declared once, with its help text, in [`METRICS`]; `docs/operations.md`
//! lists the same names with the alerts worth setting on them. Counting is cheap (a
//! mutex-protected map, touched once per session, message or delivery), and happens
//! whether or not the endpoint is enabled.
//!
//! # Security
//! The endpoint is read-only and serves nothing but the rendered text; it reads at most
//! one request head of 8 KiB per connection, with a timeout, and serves at most a few
//! connections at once. Labels carry listener addresses, TLS parameters, reply codes and
//! (for TLS policy failures) recipient domains — never addresses or message content —
//! but it is still best bound to loopback or a management network.
//!
//! # Standards
//! Prometheus text exposition format 0.0.4.

pub mod certs;
mod config;
mod http;
mod registry;
pub mod systemd;

pub use config::MetricsConfig;
pub use http::{listen, serve};
pub use registry::{Collector, Kind, Metric, Sink, add, inc, on_scrape, render, set};

/// Every metric Postern exports.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "postern_build_info",
        kind: Kind::Gauge,
        help: "Always 1; the version label says which Postern is running.",
    },
    Metric {
        name: "postern_smtp_connections_total",
        kind: Kind::Counter,
        help: "Inbound SMTP sessions that ended, by listener and by the TLS they used (tls=\"no\": plaintext throughout).",
    },
    Metric {
        name: "postern_smtp_connections_refused_total",
        kind: Kind::Counter,
        help: "Inbound connections refused before the greeting, by listener and reason.",
    },
    Metric {
        name: "postern_smtp_messages_accepted_total",
        kind: Kind::Counter,
        help: "Messages accepted (queued durably, 250 sent), by listener and whether the session used TLS.",
    },
    Metric {
        name: "postern_smtp_rejections_total",
        kind: Kind::Counter,
        help: "Commands refused with a NOQUEUE reject, by listener, SMTP stage, reply code and enhanced status.",
    },
    Metric {
        name: "postern_delivery_attempts_total",
        kind: Kind::Counter,
        help: "Recipient delivery attempts, by outcome (delivered, deferred, failed).",
    },
    Metric {
        name: "postern_outbound_deliveries_total",
        kind: Kind::Counter,
        help: "Recipients handed to a remote SMTP server, by outcome and the TLS level achieved (Verified, Trusted, Untrusted, plaintext).",
    },
    Metric {
        name: "postern_outbound_dane_total",
        kind: Kind::Counter,
        help: "DANE outcomes per MX host under the dane/dane-only levels: verified, mismatch, no-tlsa (fell back to may, or skipped under dane-only), unusable (secure TLSA, none usable), bogus (bogus or failed DNSSEC lookup: host skipped).",
    },
    Metric {
        name: "postern_outbound_mta_sts_total",
        kind: Kind::Counter,
        help: "MTA-STS outcomes per MX host: enforce-verified, enforce-mx-mismatch (host skipped), enforce-tls-failed (host deferred), testing-ok, testing-mx-mismatch and testing-tls-failed (testing mode: delivered anyway, logged).",
    },
    Metric {
        name: "postern_outbound_tls_policy_failures_total",
        kind: Kind::Counter,
        help: "Outbound connections abandoned because the TLS policy could not be met, by recipient domain and policy level.",
    },
    Metric {
        name: "postern_reports_sent_total",
        kind: Kind::Counter,
        help: "Reports queued by Postern, by kind (tlsrpt: RFC 8460 TLS-RPT; dmarc: DMARC aggregate).",
    },
    Metric {
        name: "postern_reports_received_total",
        kind: Kind::Counter,
        help: "Messages to [reports] inbound_addresses, by kind (tlsrpt, dmarc, unknown) and status (ok, bad: kept but not readable).",
    },
    Metric {
        name: "postern_reports_received_tls_sessions_total",
        kind: Kind::Counter,
        help: "Sessions counted in TLS-RPT reports received, by reporting organisation and result (success, or the RFC 8460 result type).",
    },
    Metric {
        name: "postern_reports_received_dmarc_messages_total",
        kind: Kind::Counter,
        help: "Messages counted in DMARC aggregate reports received, by reporting organisation and DMARC result (pass, fail).",
    },
    Metric {
        name: "postern_reports_store_dropped_total",
        kind: Kind::Counter,
        help: "Records the report store could not keep, by reason (backlog: the writer was behind; full: today alone reached [reports] max_store_mb; io: a disk error; closed: after shutdown).",
    },
    Metric {
        name: "postern_queue_messages",
        kind: Kind::Gauge,
        help: "Messages in the queue, by state (active, hold, failed, corrupt).",
    },
    Metric {
        name: "postern_queue_oldest_message_age_seconds",
        kind: Kind::Gauge,
        help: "Age of the oldest message in each queue state (0 when the state is empty).",
    },
    Metric {
        name: "postern_tls_certificate_expiry_timestamp_seconds",
        kind: Kind::Gauge,
        help: "When each served certificate expires (Unix time), by certificate file and key algorithm.",
    },
    Metric {
        name: "postern_tls_certificate_days_to_expiry",
        kind: Kind::Gauge,
        help: "Days until each served certificate expires (negative: expired).",
    },
];
