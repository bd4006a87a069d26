//! MTA-STS (RFC 8461) for Postern.
//!
//! - Sending: find, fetch, validate and cache other domains' policies, and give the
//!   outbound policy engine ([`postern_relay`'s `engine::StsLookup`]) what applies.
//! - Serving: publish our own domains' policies on the `[mta_sts]` HTTPS listener.

pub mod cache;
pub mod cli;
pub mod config;
pub mod fetch;
pub mod lookup;
pub mod policy;
pub mod serve;
pub mod txt;

pub use config::MtaStsConfig;
