//! Helpers for Postern's tests: a small SMTP client that speaks plain and TLS and keeps
//! raw control over the bytes it sends (for hostile-input tests), and a runner for
//! dialog scripts (`C:` lines sent, `S:` replies expected).

#![allow(clippy::unwrap_used)]

pub mod ca;
pub mod client;
pub mod dialog;
pub mod dns;
pub mod fake_smtp;
pub mod signed_dns;
pub mod tls;

pub use client::{ClientReply, SmtpClient};
