//! `[server]`: the host name and where state lives. Every other section belongs to the
//! crate that uses it; this one is the daemon's own.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{KeyPath, Problems};

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Our host name (greeting, EHLO, Received). Default: the system host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Where the queue, generated certificates and local Maildirs live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Where the queue lives. Default: `STATE_DIR/queue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_dir: Option<PathBuf>,
    /// Accept local submissions (`postern sendmail`) on a Unix-domain socket, which tells
    /// the daemon the submitting uid.
    #[serde(default = "default_true")]
    pub submit_socket: bool,
    /// Where that socket is. Default: `STATE_DIR/public/submit.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_socket_path: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/postern")
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: None,
            state_dir: default_state_dir(),
            queue_dir: None,
            submit_socket: true,
            submit_socket_path: None,
        }
    }
}

impl ServerConfig {
    /// The `hostname:` and `state_dir:` lines of `postern check-config`.
    pub fn summary(&self) -> String {
        format!(
            "  hostname:  {}\n  state_dir: {}\n",
            self.hostname(),
            self.state_dir.display()
        )
    }

    /// The host name to use: configured, or the system's.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(system_hostname)
    }

    /// The queue directory: `queue_dir`, or `STATE_DIR/queue`.
    pub fn queue_dir(&self) -> PathBuf {
        self.queue_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("queue"))
    }

    /// The local submission socket: `None` when `submit_socket = false`.
    pub fn submit_socket(&self) -> Option<PathBuf> {
        self.submit_socket.then(|| {
            self.submit_socket_path
                .clone()
                .unwrap_or_else(|| self.state_dir.join("public").join("submit.sock"))
        })
    }

    /// The directories exist as directories, or not at all (they are created at start).
    /// The host name's syntax is checked by the binary, with the SMTP address parser.
    pub fn validate(&self, p: &mut Problems) {
        if self.state_dir.exists() && !self.state_dir.is_dir() {
            p.push(
                KeyPath::of("server").key("state_dir"),
                format!("{} exists but is not a directory", self.state_dir.display()),
            );
        }
        if let Some(q) = &self.queue_dir
            && q.exists()
            && !q.is_dir()
        {
            p.push(
                KeyPath::of("server").key("queue_dir"),
                format!("{} exists but is not a directory", q.display()),
            );
        }
    }
}

/// The system host name, or `localhost` when it cannot be read.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
