//! Serving our own domains' MTA-STS policies (RFC 8461 §3): the `[mta_sts]` listeners,
//! the policy text and its id, and what `check-config` and `dns-records` say about them.
//! See docs/mta-sts-serving.md.
//!
//! # Security
//! The listeners face the internet: HTTPS only under the `[tls]` profile (the plain HTTP
//! listener only redirects), every limit of [`listener::Limits`], GET and HEAD only, and
//! request details in the log quoted and cut short.
//!
//! # Standards
//! RFC 8461 (MTA-STS), RFC 6797 (HSTS), RFC 9112 (HTTP/1.1), RFC 7301 (ALPN).

pub mod check;
pub mod http;
pub mod listener;
pub mod policy;

pub use check::{dns_records, summary};
pub use listener::{Bound, Limits, start};
pub use policy::{Policies, ServedPolicy};
