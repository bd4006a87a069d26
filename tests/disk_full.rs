//! Disk full while a backlog waits: on a real, small file system (a tmpfs mounted for the
//! test), new mail is refused with a 4xx (at MAIL once the free space is below `[queue]
//! min_free_space`, at the end of DATA when a write fails), nothing queued is damaged,
//! and mail is accepted and delivered again once space returns.
//!
//! Mounting needs root; without it the test says so loudly and passes (CI runs as root).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TestServer;
use postern_test_support::SmtpClient;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(o) => {
                assert!(
                    std::env::var_os("POSTERN_REQUIRE_ALL_TESTS").is_none_or(|v| v != "1"),
                    "a tmpfs mount is needed (POSTERN_REQUIRE_ALL_TESTS=1): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                eprintln!(
                    "SKIPPED disk_full: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                assert!(
                    std::env::var_os("POSTERN_REQUIRE_ALL_TESTS").is_none_or(|v| v != "1"),
                    "mount is needed (POSTERN_REQUIRE_ALL_TESTS=1): {e}"
                );
                eprintln!("SKIPPED disk_full: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(p: &Path) -> u64 {
    let st = rustix::fs::statvfs(p).unwrap();
    st.f_bavail * st.f_frsize
}

/// Fill the file system of `dir` with `filler` until at most `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let chunk = vec![b'f'; 4096];
    while free_bytes(dir) > leave {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

async fn send(s: &TestServer, to: &str, body_size: usize) -> (u16, String) {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    let body = format!(
        "From: a@client.test\r\nTo: {to}\r\nSubject: disk\r\n\r\n{}\r\n",
        format!("{}\r\n", "y".repeat(76)).repeat(body_size / 78)
    );
    let r = c.send_mail("a@client.test", &[to], body.as_bytes()).await;
    (r.code, r.last())
}

/// Every `.msg` in `dir` ends with its end marker (none was cut short).
fn all_complete(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "msg") {
            let bytes = match std::fs::read(&p) {
                Ok(b) => b,
                // Delivered and removed between the listing and the read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", p.display()),
            };
            let tail =
                String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(40)..]).to_string();
            assert!(
                tail.contains("POSTERN-END "),
                "{} is incomplete",
                p.display()
            );
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_refuses_new_mail_damages_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // The state directory (queue, Maildirs) is the small file system.
    let state = dir.path().join("state");
    let Some(fs) = Tmpfs::mount(&state, "24m") else {
        return;
    };
    // A backlog of deferred mail for an unreachable destination, written beforehand.
    const BACKLOG: usize = 2_000;
    {
        let spool = postern_queue::Spool::open(&state.join("queue")).unwrap();
        postern_queue::synthetic::fill(
            &spool,
            &postern_queue::synthetic::Backlog {
                count: BACKLOG,
                sender: postern_smtp::address::ReversePath::Address(
                    postern_smtp::address::parse_mailbox("old@client.test").unwrap(),
                ),
                recipient: postern_smtp::address::parse_mailbox("far@unreachable.test").unwrap(),
                size: 2048,
                deferred_until: Some(postern_queue::unix_now() + 3600),
            },
        )
        .unwrap();
    }
    let rest = r#"
[[route]]
domain = "unreachable.test"
next_hop = "smtp:[127.0.0.1]:9"

[resolver]
nameservers = ["127.0.0.1:1"]

[queue]
retry = ["1h"]
min_free_space = "2MiB"
"#;
    let text = common::config_text(&state, r#"mode = "plain""#, "", rest);
    let s = TestServer::start_with(dir, &text).await;
    let active = state.join("queue/active");

    // Space: accepted and delivered.
    assert_eq!(send(&s, "bob@local.test", 1024).await.0, 250);
    s.wait_delivered("bob", 1).await;

    // A little more than min_free_space left: MAIL is accepted, but a message larger
    // than what is left fails to be written, and is refused with a 4xx, not a 250.
    let filler = fill(&fs.0, 3 << 20);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, line) = send(&s, "bob@local.test", 4 << 20).await;
    assert!(
        (400..500).contains(&code),
        "a message that does not fit: {line}"
    );
    assert_eq!(
        std::fs::read_dir(state.join("queue/incoming"))
            .unwrap()
            .count(),
        0,
        "nothing half-written is left behind"
    );

    // Below min_free_space: refused at MAIL with 452 4.3.1.
    fill(&fs.0, 1 << 20);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, line) = send(&s, "bob@local.test", 1024).await;
    assert_eq!(code, 452, "{line}");
    assert!(line.starts_with("452 4.3.1 "), "{line}");

    // Completely full: still a 4xx, and the queue is intact.
    fill(&fs.0, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(send(&s, "bob@local.test", 1024).await.0, 452);
    assert_eq!(all_complete(&active), BACKLOG);
    assert_eq!(
        std::fs::read_dir(state.join("queue/corrupt"))
            .unwrap()
            .count(),
        0
    );

    // Space returns: accepted and delivered again.
    std::fs::remove_file(&filler).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, line) = send(&s, "bob@local.test", 1024).await;
    assert_eq!(code, 250, "{line}");
    s.wait_delivered("bob", 2).await;
    // The Maildir copy lands before the queue entry is removed: wait for that removal
    // rather than racing it.
    let mut left = all_complete(&active);
    for _ in 0..100 {
        if left == BACKLOG {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = all_complete(&active);
    }
    assert_eq!(left, BACKLOG);
    let TestServer { dir, running, .. } = s;
    running.unwrap().stop().await;
    drop(fs);
    drop(dir);
}
