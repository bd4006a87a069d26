//! Outbound SMTP: configuration, DNS, TLS policy, the client and the delivery agent.
//!
//! # Security
//! A mandatory TLS level (`encrypt` and above) never falls back to plaintext: a missing
//! STARTTLS or a failed handshake defers the mail (`4.7.x`) and the next MX is tried under
//! the same policy. Under `secure` the certificate must carry the next-hop domain (or the
//! operator's explicit names), never a name taken from the MX records, which DNS spoofing
//! could supply. Handshake signatures are verified at every level.
//!
//! # Standards
//! RFC 5321 (§5 MX, §4.5.3.2 timeouts, §4.5.2 dot-stuffing), RFC 7505 (null MX),
//! RFC 3207 (STARTTLS), RFC 2920 (PIPELINING), RFC 3030 (CHUNKING), RFC 1870 (SIZE),
//! RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 8689 (REQUIRETLS, see [`requiretls`]).

pub mod agent;
pub mod build;
pub mod client;
pub mod config;
pub mod engine;
mod metrics;
pub mod mta_sts;
pub mod observe;
pub mod policy;
pub mod requiretls;
pub mod resolve;
