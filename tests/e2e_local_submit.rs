//! Local submission over the daemon's Unix-domain socket (issue #11 item 4): `postern
//! sendmail` run as an ordinary user is recorded with its uid in the `Received:` field
//! (as Postfix does), gets no more rights than a loopback TCP client, and falls back to
//! the TCP listener when the socket is not there.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{TestServer, config_text};
use tokio::io::AsyncWriteExt;

/// The daemon with its submission socket at `DIR/public/submit.sock` (the test's temporary
/// directory made 0755, so another uid can reach it), and a world-readable configuration
/// for the CLI naming the daemon's real TCP address.
async fn server(relay: &str) -> (TestServer, PathBuf) {
    server_with(relay, false).await
}

/// [`server`]; `plant`: a regular file already sits where the socket goes.
async fn server_with(relay: &str, plant: bool) -> (TestServer, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("public").join("submit.sock");
    if plant {
        std::fs::create_dir(socket.parent().unwrap()).unwrap();
        std::fs::write(&socket, "not a socket").unwrap();
    }
    let text = config_text(&state, "", relay, "").replacen(
        "[server]\n",
        &format!("[server]\nsubmit_socket_path = \"{}\"\n", socket.display()),
        1,
    );
    let s = TestServer::start_with(dir, &text).await;
    let needle = r#"address = "127.0.0.1:0""#;
    let cli = text.replace(needle, &format!("address = \"{}\"", s.addr()));
    let path = s.dir.path().join("sendmail.toml");
    std::fs::write(&path, cli).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (s, path)
}

/// `postern sendmail -c CONFIG ARGS...`, through `wrapper` (e.g. setpriv) when given.
async fn sendmail(wrapper: &[&str], config: &Path, args: &[&str], input: &str) -> Output {
    let bin = env!("CARGO_BIN_EXE_postern");
    let mut all: Vec<&str> = wrapper.to_vec();
    all.extend([bin, "sendmail", "-c", config.to_str().unwrap()]);
    all.extend_from_slice(args);
    let mut cmd = tokio::process::Command::new(all[0]);
    cmd.args(&all[1..])
        .env_remove("POSTERN_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("sendmail finishes within 30 s")
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        text(&out.stderr)
    );
}

/// The `Received:` field Postern added (the first one).
fn received(msg: &str) -> &str {
    let start = msg.find("Received: ").unwrap();
    let end = msg[start..].find(";").unwrap();
    &msg[start..start + end]
}

/// Run as uid/gid 65534 (nobody) with `setpriv`, when this test runs as root and
/// `setpriv` exists; otherwise as ourselves.
fn as_nobody() -> Option<[&'static str; 4]> {
    // /proc/self belongs to the process's effective uid.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let setpriv = Path::new("/usr/bin/setpriv").exists();
    if !root || !setpriv {
        assert!(
            std::env::var_os("POSTERN_REQUIRE_ALL_TESTS").is_none_or(|v| v != "1"),
            "root and /usr/bin/setpriv are needed (POSTERN_REQUIRE_ALL_TESTS=1): root={root}, setpriv={setpriv}"
        );
        eprintln!(
            "SKIPPED part: submitting as uid 65534 needs root and /usr/bin/setpriv (root={root}, setpriv={setpriv})"
        );
        return None;
    }
    Some([
        "/usr/bin/setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_names_the_submitting_uid() {
    let (s, cfg) = server(r#"trusted_networks = ["10.0.0.0/8"]"#).await;
    let sock = s.dir.path().join("public").join("submit.sock");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o666, "every local user may submit");
    assert_eq!(mode(sock.parent().unwrap()), 0o755);

    // As root: uid 0.
    let out = sendmail(&[], &cfg, &["-i", "user@local.test"], "Subject: a\n\nx\n").await;
    ok(&out);
    let m = text(&s.wait_delivered("user", 1).await[0]);
    let r = received(&m);
    assert!(
        r.starts_with("Received: by mx.postern.test (Postern session "),
        "{r}"
    );
    assert!(r.contains(", from userid 0)\r\n\tid "), "{r}");
    assert!(!r.contains("from unknown"), "{r}");

    // As an ordinary user: the kernel's uid, not anything the client says.
    let Some(nobody) = as_nobody() else { return };
    let out = sendmail(
        &nobody,
        &cfg,
        &["-i", "user@local.test"],
        "Subject: b\n\ny\n",
    )
    .await;
    ok(&out);
    let all = s.wait_delivered("user", 2).await;
    let m = all
        .iter()
        .map(|m| text(m))
        .find(|m| m.contains("Subject: b"))
        .unwrap();
    let r = received(&m);
    assert!(r.contains(", from userid 65534)"), "{r}");
    assert!(m.contains("Return-Path: <nobody@mx.postern.test>"), "{m}");
}

/// A socket client is a loopback client: where loopback may not relay, neither may it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_gets_no_more_rights_than_loopback() {
    let (s, cfg) = server(r#"trusted_networks = ["10.0.0.0/8"]"#).await;
    let wrapper = as_nobody();
    let wrapper: &[&str] = wrapper.as_ref().map(|w| &w[..]).unwrap_or(&[]);
    let out = sendmail(
        wrapper,
        &cfg,
        &["-i", "someone@elsewhere.test"],
        "Subject: r\n\nz\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("554 5.7.1"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(s.queued(), 0);
    // The same over TCP from 127.0.0.1.
    let mut c = common::SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO c.test").await.code, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@local.test>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<someone@elsewhere.test>").await.code, 554);
}

/// No socket (or one nobody answers): the first listener over TCP, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_tcp_without_the_socket() {
    let (s, cfg) = server(r#"trusted_networks = ["10.0.0.0/8"]"#).await;
    std::fs::remove_file(s.dir.path().join("public").join("submit.sock")).unwrap();
    let out = sendmail(&[], &cfg, &["-i", "user@local.test"], "Subject: t\n\nx\n").await;
    ok(&out);
    let m = text(&s.wait_delivered("user", 1).await[0]);
    let r = received(&m);
    assert!(r.contains("(unknown [127.0.0.1])"), "{r}");
    assert!(!r.contains("userid"), "{r}");
}

/// Something else at the socket's path: left alone, the daemon starts without the socket
/// (a warning in the log), and sendmail uses TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_at_the_socket_path_is_left_alone() {
    let (s, cfg) = server_with(r#"trusted_networks = ["10.0.0.0/8"]"#, true).await;
    let planted = s.dir.path().join("public").join("submit.sock");
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "not a socket");
    let out = sendmail(&[], &cfg, &["-i", "user@local.test"], "Subject: f\n\nx\n").await;
    ok(&out);
    let m = text(&s.wait_delivered("user", 1).await[0]);
    assert!(received(&m).contains("(unknown [127.0.0.1])"), "{m}");
}
