//! Shared harness for the end-to-end tests: a real Postern started in-process on
//! 127.0.0.1:0 with a temporary state directory.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[allow(unused_imports)]
pub use postern_test_support::{SmtpClient, dialog, tls};

/// A running test server.
pub struct TestServer {
    pub addrs: Vec<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub running: Option<postern::Running>,
}

/// The configuration the end-to-end tests share: host name mx.postern.test, `state` as
/// the state directory, one listener on 127.0.0.1:0 (plus `listener_extra` lines), local
/// domain local.test delivered to Maildirs in `state/mail`, `relay_extra` lines in
/// `[relay]`, and `rest` appended.
pub fn config_text(state: &Path, listener_extra: &str, relay_extra: &str, rest: &str) -> String {
    format!(
        r#"
[server]
hostname = "mx.postern.test"
state_dir = "{state}"

[[listener]]
address = "127.0.0.1:0"
{listener_extra}

[relay]
local_domains = ["local.test"]
{relay_extra}

[[route]]
domain = "local.test"
next_hop = "maildir:mail"

{rest}
"#,
        state = state.display()
    )
}

impl TestServer {
    /// Start with one starttls listener (plus `listener_extra` TOML lines in it) and
    /// `rest` appended to the config. Local domain: local.test, delivered to Maildirs in
    /// `state/mail`; 10.0.0.0/8 trusted (so loopback is NOT trusted by default).
    pub async fn start(listener_extra: &str, rest: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let relay = r#"trusted_networks = ["10.0.0.0/8"]"#;
        let text = config_text(&state, listener_extra, relay, rest);
        Self::start_with(dir, &text).await
    }

    pub async fn start_with(dir: tempfile::TempDir, text: &str) -> TestServer {
        if std::env::var_os("POSTERN_TEST_LOG").is_some() {
            postern::logging::init(postern::logging::LogFormat::Text);
        }
        std::fs::write(dir.path().join("config.toml"), text).unwrap();
        let loaded = postern::config::load_str("test.toml", text).unwrap_or_else(|e| {
            panic!(
                "test config invalid: {}",
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let running = postern::start(&loaded.config).await.expect("server starts");
        TestServer {
            addrs: running.addrs.clone(),
            dir,
            running: Some(running),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn maildir_new(&self, user: &str) -> PathBuf {
        self.state().join("mail").join(user).join("new")
    }

    /// Files delivered to `user`, waiting up to 5 s for at least `n`.
    pub async fn wait_delivered(&self, user: &str, n: usize) -> Vec<Vec<u8>> {
        for _ in 0..200 {
            let got = self.delivered(user);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{n} message(s) for {user} not delivered within 5s; have {}",
            self.delivered(user).len()
        );
    }

    /// Files delivered to `user` now, oldest first.
    pub fn delivered(&self, user: &str) -> Vec<Vec<u8>> {
        read_dir_sorted(&self.maildir_new(user))
    }

    /// Every file delivered to anyone.
    pub fn all_delivered(&self) -> Vec<Vec<u8>> {
        let root = self.state().join("mail");
        let Ok(rd) = std::fs::read_dir(&root) else {
            return vec![];
        };
        rd.flatten()
            .flat_map(|e| read_dir_sorted(&e.path().join("new")))
            .collect()
    }

    /// Messages in the queue (active/*.msg).
    pub fn queued(&self) -> usize {
        std::fs::read_dir(self.state().join("queue/active"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "msg"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Wait up to 10 s until the queue holds exactly `n` messages; the count then.
    /// Delivery writes the Maildir copy (and fsyncs it) before it removes the queue
    /// entry, so "delivered" does not yet mean "gone from the queue".
    pub async fn wait_queued(&self, n: usize) -> usize {
        for _ in 0..400 {
            if self.queued() == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.queued()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

fn read_dir_sorted(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Split a delivered message into (headers Postern added, the rest as received).
pub fn strip_trace(msg: &[u8]) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(msg);
    let mut pos = 0;
    for prefix in ["Return-Path: ", "Delivered-To: "] {
        assert!(
            text[pos..].starts_with(prefix),
            "missing {prefix} in {text}"
        );
        pos += text[pos..].find("\r\n").unwrap() + 2;
    }
    assert!(
        text[pos..].starts_with("Received: "),
        "missing Received in {text}"
    );
    pos += text[pos..].find("\r\n").unwrap() + 2;
    while text.as_bytes()[pos] == b'\t' {
        pos += text[pos..].find("\r\n").unwrap() + 2;
    }
    (text[..pos].to_string(), msg[pos..].to_vec())
}

/// Everything logged in this test binary since [`capture_logs`], as the daemon would
/// print it (text format, no colours).
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Send the log of every server in this test binary to memory (once; the subscriber is
/// global), for tests that check the lines an operator reads. Lines name their queue id
/// and host, so tests running side by side can tell theirs apart.
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_target(false)
            .try_init()
            .expect(
                "a log subscriber is already installed (POSTERN_TEST_LOG?): \
                 this test reads the log and needs its own",
            );
    });
}

/// The lines captured so far that contain `needle`.
pub fn log_lines(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner()))
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}
