//! The `[resolver]` section: where DNS questions go.

use std::net::SocketAddr;

use postern_config::{Duration, KeyPath, Problems};
use serde::{Deserialize, Serialize};

/// `[resolver]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    /// `IP:PORT` of recursive resolvers. Empty: the system's /etc/resolv.conf.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout.
    #[serde(default = "d_timeout")]
    pub timeout: Duration,
    /// How often one question is asked before it counts as failed.
    #[serde(default = "d_attempts")]
    pub attempts: usize,
}

fn d_timeout() -> Duration {
    Duration::secs(5)
}
fn d_attempts() -> usize {
    2
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameservers: Vec::new(),
            timeout: d_timeout(),
            attempts: d_attempts(),
        }
    }
}

/// The most attempts per question: more only lengthens the wait for a dead resolver.
pub const MAX_ATTEMPTS: usize = 5;

/// Check `[resolver]`.
pub fn validate(r: &ResolverConfig, p: &mut Problems) {
    let at = KeyPath::of("resolver");
    if r.timeout.get() < std::time::Duration::from_millis(100) {
        p.push(at.key("timeout"), "must be at least 100ms");
    }
    if !(1..=MAX_ATTEMPTS).contains(&r.attempts) {
        p.push(
            at.key("attempts"),
            format!("must be 1 to {MAX_ATTEMPTS} (each question is asked this often)"),
        );
    }
}
