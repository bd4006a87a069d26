//! Local hardening of the files Postern writes, end to end with the real binary (#11):
//! no link under the state directory is followed, modes never come from the umask, and a
//! closed standard output is a normal end.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_postern"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, port: u16) -> PathBuf {
    let text = format!(
        r#"
[server]
hostname = "mx.postern.test"
state_dir = "{}"

[[listener]]
address = "127.0.0.1:{port}"

[relay]
local_domains = ["local.test"]

[[route]]
domain = "local.test"
next_hop = "maildir:mail"
"#,
        dir.join("state").display()
    );
    let path = dir.join("postern.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Regression (#11, item 3): `QUEUE/lock` planted as a link to a file elsewhere: `postern
/// queue` refuses, saying why, and the target keeps its content.
#[test]
fn queue_command_never_writes_through_a_linked_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525);
    let queue = dir.path().join("state/queue");
    std::fs::create_dir_all(&queue).unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, "root:secret\n").unwrap();
    std::os::unix::fs::symlink(&target, queue.join("lock")).unwrap();
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["queue", "list"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must refuse: {stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "root:secret\n");
    // The spool directories were not made through anything either.
    assert!(!queue.join("active").exists());
}

/// Regression (#11, item 3): a spool directory replaced by a link is refused too.
#[test]
fn queue_command_refuses_a_linked_spool_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525);
    let queue = dir.path().join("state/queue");
    std::fs::create_dir_all(&queue).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, queue.join("active")).unwrap();
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["queue", "list"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must refuse: {stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
}

struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn reply(r: &mut BufReader<TcpStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

fn send_one(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("the daemon never listened: {e}"),
        }
    };
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    assert!(reply(&mut r).starts_with("220"));
    for (cmd, want) in [
        ("EHLO client.test\r\n", "250"),
        ("MAIL FROM:<a@sender.test>\r\n", "250"),
        ("RCPT TO:<bob@local.test>\r\n", "250"),
        ("DATA\r\n", "354"),
        ("Subject: modes\r\n\r\nhello\r\n.\r\n", "250"),
        ("QUIT\r\n", "221"),
    ] {
        w.write_all(cmd.as_bytes()).unwrap();
        let got = reply(&mut r);
        assert!(got.starts_with(want), "{cmd:?}: {got}");
    }
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    if std::fs::symlink_metadata(p).unwrap().is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            walk(&e.unwrap().path(), out);
        }
    }
}

/// Regression (#11, item 11): under umask 000 the state directory, the queue, the lock and
/// the Maildir get 0750 directories and files without any world bits.
#[test]
fn modes_are_explicit_even_with_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port);
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_postern"))
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = Daemon(child);
    send_one(port);
    let new = dir.path().join("state/mail/bob/new");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&new).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the message was never delivered");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Delivery removes the queue entry just after the Maildir copy lands: let the tree
    // settle before walking it.
    let active = dir.path().join("state/queue/active");
    while std::fs::read_dir(&active).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "the queue never emptied");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut all = Vec::new();
    walk(&dir.path().join("state"), &mut all);
    for p in &all {
        let m = std::fs::symlink_metadata(p).unwrap();
        if m.file_type().is_socket() {
            continue;
        }
        let mode = mode(p);
        if m.is_dir() {
            // `public/` holds the local submission socket (#11 item 4): every local user
            // must reach it. It holds nothing else.
            let want = if p.ends_with("state/public") {
                0o755
            } else {
                0o750
            };
            assert_eq!(mode, want, "{}", p.display());
        } else {
            assert_eq!(mode & 0o007, 0, "{} is {mode:o}", p.display());
        }
    }
    assert_eq!(mode(&dir.path().join("state/queue/lock")), 0o640);
}

/// Regression (#11, item 12): `postern check-config | head -1` ended in a panic ("Broken
/// pipe", exit 101). A closed standard output is a normal end.
#[test]
fn check_config_with_a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .arg("check-config")
        .current_dir(dir.path())
        .env_remove("POSTERN_CONFIG")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(matches!(out.status.code(), Some(0 | 2)), "{:?}", out.status);
}

/// Regression (#11, item 12): check-config said nothing about a private key anyone can
/// read, nor about a CRL past its nextUpdate.
#[test]
fn check_config_warns_about_readable_keys_and_stale_crls() {
    use postern_test_support::ca::{IssueOpts, TestCa};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("Partner CA");
    let (chain, key) = ca
        .issue_server(&["mx.postern.test"], IssueOpts::default())
        .write(d, "server");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ca_path = ca.write_ca(d, "ca");
    std::fs::write(d.join("stale.crl"), ca.crl_pem_serials(&[], -2)).unwrap();
    let cfg = d.join("postern.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
state_dir = "{state}"
[[listener]]
address = "127.0.0.1:2525"
client_certificates = "request"
client_ca = "{ca}"
crl = ["{crl}"]
[[tls.certificate]]
chain = "{chain}"
key = "{key}"
"#,
            state = d.join("state").display(),
            ca = ca_path.display(),
            crl = d.join("stale.crl").display(),
            chain = chain.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("is readable by everyone"), "{stdout}");
    assert!(stdout.contains("stale.crl (CRL #0) is stale"), "{stdout}");
}

/// Regression (#11, item 12): `postrm purge` deleted all of /var/lib/postern, Maildirs
/// with users' mail included, without a word. It deletes Postern's own files and keeps
/// the mail, saying so. (Run with DPKG_ROOT, as dpkg does for --root installs.)
#[test]
fn postrm_purge_keeps_maildirs_and_says_so() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let lib = r.join("var/lib/postern");
    for d in [
        "queue/active",
        "tls",
        "mail/bob/new",
        "mail/bob/cur",
        "empty",
    ] {
        std::fs::create_dir_all(lib.join(d)).unwrap();
    }
    std::fs::write(lib.join("queue/active/1.msg"), "x").unwrap();
    std::fs::write(lib.join("tls/selfsigned.key"), "k").unwrap();
    std::fs::write(lib.join("lock"), "1").unwrap();
    std::fs::write(lib.join("mail/bob/new/1.M1.host"), "mail").unwrap();
    std::fs::create_dir_all(r.join("var/spool/postern/active")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/debian/postrm");
    let out = Command::new("sh")
        .arg(&script)
        .arg("purge")
        .env("DPKG_ROOT", r)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(lib.join("mail/bob/new/1.M1.host")).unwrap(),
        "mail"
    );
    for gone in ["queue", "tls", "lock", "empty"] {
        assert!(!lib.join(gone).exists(), "{gone} should be gone");
    }
    assert!(!r.join("var/spool/postern").exists());
    assert!(
        stderr.contains("purge kept") && stderr.contains("mail"),
        "{stderr}"
    );

    // Nothing but Postern's own files: all of it goes, silently.
    std::fs::remove_dir_all(lib.join("mail")).unwrap();
    std::fs::create_dir_all(lib.join("queue/active")).unwrap();
    let out = Command::new("sh")
        .arg(&script)
        .arg("purge")
        .env("DPKG_ROOT", r)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lib.exists());
}
