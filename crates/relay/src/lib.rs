//! Where queued mail goes: the `[[route]]` table and the delivery agents behind it.
//!
//! # Security
//! The Maildir agent derives a directory name from the recipient's local part; the name is
//! reduced to a safe alphabet (no `/`, no leading `.`), so no address can write outside
//! the configured Maildir root.
//!
//! # Standards
//! RFC 5321 §4.4 (Return-Path at final delivery); the Maildir format as documented by its
//! author (tmp → new, unique names).

mod detail;
pub mod explain;
pub mod loops;
mod maildir;
pub mod outbound;
mod route;

pub use maildir::MaildirAgent;
pub use outbound::config::{OutboundConfig, PolicyConfig, TlsLevel};
pub use route::{
    Decision, NextHop, RouteConfig, RouteSource, Router, summary as route_summary,
    validate as validate_routes,
};
