//! `postern queue ...` end to end: the real CLI binary against a running daemon (through
//! its control socket) and against a stopped one (on the files, under the spool lock),
//! with assertions on the spool directories and on what is delivered.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_test_support::fake_smtp::{FakeOpts, FakeSmtp};

/// A port on 127.0.0.1 where nothing listens (for now).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Postern relaying for loopback: remote.test to 127.0.0.1:`remote`, dead.test to
/// 127.0.0.1:`dead`, local.test into Maildirs. Retries are an hour apart, so only a
/// flush makes a second attempt happen within the test.
async fn server(remote: u16, dead: u16) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let rest = format!(
        r#"[[route]]
domain = "remote.test"
next_hop = "smtp:[127.0.0.1]:{remote}"

[[route]]
domain = "dead.test"
next_hop = "smtp:[127.0.0.1]:{dead}"

[resolver]
nameservers = ["127.0.0.1:1"]

[queue]
retry = ["1h"]

[outbound]
connect_timeout = "2s"
"#
    );
    let text = common::config_text(
        &dir.path().join("state"),
        r#"mode = "plain""#,
        r#"trusted_networks = ["127.0.0.0/8"]"#,
        &rest,
    );
    TestServer::start_with(dir, &text).await
}

/// Send one message; its queue ID.
async fn send(s: &TestServer, from: &str, to: &str, subject: &str) -> String {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    let msg = format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n");
    let r = c.send_mail(from, &[to], msg.as_bytes()).await;
    assert_eq!(r.code, 250, "{r:?}");
    let text = r.last();
    text.rsplit(' ').next().unwrap().to_string()
}

/// Run `postern queue ARGS` with the server's configuration.
async fn cli(s: &TestServer, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("--config")
        .arg(s.dir.path().join("config.toml"))
        .arg("queue")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

async fn ok(s: &TestServer, args: &[&str]) -> String {
    let o = cli(s, args).await;
    assert!(
        o.status.success(),
        "postern queue {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

async fn fails(s: &TestServer, args: &[&str]) -> String {
    let o = cli(s, args).await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "postern queue {args:?} should fail"
    );
    String::from_utf8(o.stderr).unwrap()
}

fn queue(s: &TestServer, place: &str, id: &str, ext: &str) -> PathBuf {
    s.state()
        .join("queue")
        .join(place)
        .join(format!("{id}.{ext}"))
}

/// Wait until `cond` holds (5 s at most).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn deferred(s: &TestServer, id: &str) {
    let state = queue(s, "active", id, "state");
    until(&format!("{id} is deferred"), || {
        std::fs::read_to_string(&state).is_ok_and(|t| t.contains(" deferred "))
    })
    .await;
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn exists(p: &Path) -> bool {
    p.exists()
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_release_flush_delete_bounce_against_a_running_daemon() {
    let remote = closed_port();
    let s = server(remote, closed_port()).await;
    let a = send(&s, "alice@local.test", "bob@remote.test", "message A").await;
    let b = send(&s, "alice@local.test", "carol@remote.test", "message B").await;
    deferred(&s, &a).await;
    deferred(&s, &b).await;

    // list: both, active, deferred, with the connection error.
    let list = json(&ok(&s, &["list", "--json"]).await);
    assert_eq!(ids(&list), vec![a.clone(), b.clone()]);
    let first = &list[0];
    assert_eq!(first["place"], "active");
    assert_eq!(first["sender"], "<alice@local.test>");
    assert_eq!(first["recipients"][0]["address"], "bob@remote.test");
    assert_eq!(first["recipients"][0]["status"], "deferred");
    assert_eq!(first["recipients"][0]["attempts"], 1);
    assert!(first["next_attempt"].as_u64().unwrap() > postern_queue::unix_now() + 3000);
    assert!(!first["last_error"].as_str().unwrap().is_empty());
    let text = ok(&s, &["list"]).await;
    assert!(
        text.contains(&a) && text.contains("bob@remote.test  deferred, 1 attempt(s), next in"),
        "{text}"
    );
    assert!(text.contains("2 message(s): 2 active, 0 hold"), "{text}");
    assert_eq!(
        ids(&json(
            &ok(&s, &["list", "--json", "--domain", "REMOTE.test"]).await
        ))
        .len(),
        2
    );
    assert!(
        ids(&json(
            &ok(&s, &["list", "--json", "--domain", "other.test"]).await
        ))
        .is_empty()
    );

    // show: envelope and headers.
    let show = ok(&s, &["show", &a]).await;
    assert!(show.contains("State:      active"), "{show}");
    assert!(show.contains("Subject: message A"), "{show}");
    assert!(show.contains("Received: from client.test"), "{show}");
    assert!(
        fails(&s, &["show", "00000000000000000A"])
            .await
            .contains("no such message")
    );
    assert!(
        fails(&s, &["show", "../../etc/passwd"])
            .await
            .contains("not a queue ID")
    );

    // hold A: its files move to hold/, state included.
    assert!(ok(&s, &["hold", &a]).await.contains("on hold"));
    assert!(!exists(&queue(&s, "active", &a, "msg")));
    assert!(exists(&queue(&s, "hold", &a, "msg")));
    assert!(
        std::fs::read_to_string(queue(&s, "hold", &a, "state"))
            .unwrap()
            .contains(" deferred ")
    );
    assert!(fails(&s, &["hold", &a]).await.contains("on hold"));
    assert!(fails(&s, &["flush", &a]).await.contains("release it first"));
    let held = json(&ok(&s, &["list", "--json", "--state", "hold"]).await);
    assert_eq!(ids(&held), vec![a.clone()]);

    // The next hop comes up; flush --all delivers B but not the held A.
    let fake = FakeSmtp::start(FakeOpts {
        bind: Some(format!("127.0.0.1:{remote}").parse().unwrap()),
        ..FakeOpts::default()
    })
    .await;
    assert!(
        ok(&s, &["flush", "--all"])
            .await
            .contains("will be tried now")
    );
    until("B is delivered", || fake.messages().len() == 1).await;
    until("B leaves the queue", || {
        !exists(&queue(&s, "active", &b, "msg"))
    })
    .await;
    assert!(String::from_utf8_lossy(&fake.messages()[0]).contains("Subject: message B"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.messages().len(), 1, "a held message was delivered");
    assert!(exists(&queue(&s, "hold", &a, "msg")));

    // release A: back to active/, tried at once, delivered, gone.
    assert!(ok(&s, &["release", &a]).await.contains("released"));
    until("A is delivered", || fake.messages().len() == 2).await;
    assert!(String::from_utf8_lossy(&fake.messages()[1]).contains("Subject: message A"));
    until("A leaves the queue", || {
        !exists(&queue(&s, "active", &a, "msg")) && !exists(&queue(&s, "hold", &a, "msg"))
    })
    .await;
    assert!(
        fails(&s, &["release", &a])
            .await
            .contains("no such message")
    );

    // delete C (to the dead host): asks first; with -y the files are gone.
    let c = send(&s, "alice@local.test", "dan@dead.test", "message C").await;
    deferred(&s, &c).await;
    assert!(fails(&s, &["delete", &c]).await.contains("add -y"));
    assert!(exists(&queue(&s, "active", &c, "msg")));
    assert!(ok(&s, &["delete", "-y", &c]).await.contains("deleted"));
    assert!(!exists(&queue(&s, "active", &c, "msg")));
    assert!(!exists(&queue(&s, "active", &c, "state")));

    // bounce D: the sender (a local mailbox here) gets the bounce, D is gone.
    let d = send(&s, "alice@local.test", "erin@dead.test", "message D").await;
    deferred(&s, &d).await;
    assert!(
        ok(&s, &["bounce", &d])
            .await
            .contains("sender <alice@local.test> is sent a bounce")
    );
    let got = s.wait_delivered("alice", 1).await;
    let bounce = String::from_utf8_lossy(&got[0]);
    assert!(bounce.contains("erin@dead.test"), "{bounce}");
    assert!(
        bounce.contains("returned to the sender by the mail system"),
        "{bounce}"
    );
    assert!(bounce.contains("Status: 5.0.0"), "{bounce}");
    assert!(!exists(&queue(&s, "active", &d, "msg")));
    assert_eq!(fake.messages().len(), 2);

    // The bounce leaves the queue just after its Maildir copy lands.
    assert_eq!(s.wait_queued(0).await, 0);
    let text = ok(&s, &["list"]).await;
    assert_eq!(text, "The queue is empty.\n");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn works_on_the_files_when_the_daemon_is_stopped() {
    let s = server(closed_port(), closed_port()).await;
    let e = send(&s, "alice@local.test", "frank@dead.test", "message E").await;
    deferred(&s, &e).await;
    let TestServer { dir, running, .. } = s;
    running.unwrap().stop().await;
    // A stopped daemon: the CLI takes the spool lock and moves the files itself.
    let s = TestServer {
        addrs: vec![],
        dir,
        running: None,
    };
    assert!(
        !exists(&s.state().join("control.sock")),
        "socket left behind"
    );
    let list = json(&ok(&s, &["list", "--json"]).await);
    assert_eq!(ids(&list), vec![e.clone()]);
    assert!(ok(&s, &["hold", &e]).await.contains("on hold"));
    assert!(exists(&queue(&s, "hold", &e, "msg")));
    assert!(ok(&s, &["release", &e]).await.contains("released"));
    assert!(exists(&queue(&s, "active", &e, "msg")));
    let out = ok(&s, &["flush", &e]).await;
    assert!(out.contains("not running"), "{out}");
    let state = std::fs::read_to_string(queue(&s, "active", &e, "state")).unwrap();
    assert!(
        state.contains(" deferred 1 ") && state.contains(" - "),
        "{state}"
    );

    // Restarted, the daemon finds the message due and tries it at once.
    let cfg = std::fs::read_to_string(s.dir.path().join("config.toml")).unwrap();
    let s = TestServer::start_with(s.dir, &cfg).await;
    let state = queue(&s, "active", &e, "state");
    until("E is tried again", || {
        std::fs::read_to_string(&state).is_ok_and(|t| t.contains(" deferred 2 "))
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_daemon_on_the_same_queue_is_refused() {
    let s = server(closed_port(), closed_port()).await;
    let cfg = std::fs::read_to_string(s.dir.path().join("config.toml")).unwrap();
    let loaded = postern::config::load_str("again.toml", &cfg).unwrap();
    let err = postern::start(&loaded.config)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("another postern process"), "{err}");
    s.stop().await;
}

/// `queue show` reads the headers with mail-parser: the Subject and From as a person
/// reads them (encoded words decoded), a terminal escape hidden in an encoded word made
/// harmless; the raw header section is still shown below.
#[tokio::test(flavor = "multi_thread")]
async fn show_decodes_subject_and_from() {
    let s = server(closed_port(), closed_port()).await;
    let id = send(
        &s,
        "alice@local.test",
        "bob@remote.test",
        "=?utf-8?q?Caf=C3=A9_=1B=5B2J_menu?=",
    )
    .await;
    deferred(&s, &id).await;
    let show = ok(&s, &["show", &id]).await;
    assert!(show.contains("\nSubject:    Café ?[2J menu\n"), "{show}");
    assert!(show.contains("\nFrom:       alice@local.test\n"), "{show}");
    assert!(!show.contains('\x1b'), "{show}");
    assert!(
        show.contains("  Subject: =?utf-8?q?Caf=C3=A9_=1B=5B2J_menu?="),
        "{show}"
    );
    let j = json(&ok(&s, &["show", "--json", &id]).await);
    assert_eq!(j["digest"]["subject"], "Café ?[2J menu");
}
