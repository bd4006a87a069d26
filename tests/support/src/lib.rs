//! Helpers for Postern's tests: a small SMTP client that speaks plain and TLS and keeps
//! raw control over the bytes it sends (for hostile-input tests), and a runner for
//! dialog scripts (`C:` lines sent, `S:` replies expected).

#![allow(clippy::unwrap_used)]

pub mod ca;
pub mod client;
pub mod dialog;
pub mod dns;
pub mod fake_smtp;
pub mod https;
pub mod signed_dns;
pub mod tls;

pub use client::{ClientReply, SmtpClient};

/// Resident memory of process `pid` in KiB (`VmRSS` in `/proc/PID/status`); 0 when it
/// cannot be read (the process has gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}
