//! Regression tests for issue #11, item 12 (routing parts): the built-in trial
//! configuration has no route off the machine, and a route that lists its mailboxes
//! refuses the others at RCPT (no bounce later, so no backscatter).

#![allow(clippy::unwrap_used)]

mod common;

use common::{SmtpClient, TestServer};

#[tokio::test]
async fn embedded_default_relays_nothing_off_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let text = postern::config::EMBEDDED_DEFAULT
        .replace("127.0.0.1:2525", "127.0.0.1:0")
        .replace(
            "state_dir = \"postern-data\"",
            &format!("state_dir = \"{}\"", dir.path().join("state").display()),
        );
    assert!(text.contains("127.0.0.1:0") && !text.contains("postern-data\"\n"));
    let s = TestServer::start_with(dir, &text).await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("MAIL FROM:<alice@localhost>").await.code, 250);
    // A loopback client is in trusted_networks, but nothing may leave the machine.
    let r = c.cmd("RCPT TO:<someone@example.com>").await;
    assert_ne!(r.code, 250, "relayed off the machine: {r:?}");
    let r = c.cmd("RCPT TO:<someone@[192.0.2.1]>").await;
    assert_ne!(r.code, 250, "relayed to an address literal: {r:?}");
    // Local delivery still works.
    assert_eq!(c.cmd("RCPT TO:<bob@localhost>").await.code, 250);
}

#[tokio::test]
async fn a_route_with_a_recipient_list_refuses_unknown_users_at_rcpt() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"mx.postern.test\"\nstate_dir = \"{}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [relay]\nlocal_domains = [\"local.test\"]\n\
         [[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\nrecipients = [\"Alice\", \"bob\"]\n",
        dir.path().join("state").display()
    );
    let s = TestServer::start_with(dir, &text).await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("MAIL FROM:<x@sender.test>").await.code, 250);
    let r = c.cmd("RCPT TO:<mallory@local.test>").await;
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text().contains("5.1.1"), "{r:?}");
    assert_eq!(c.cmd("RCPT TO:<alice@local.test>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<postmaster@local.test>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: hi\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    s.wait_delivered("alice", 1).await;
    assert!(s.delivered("mallory").is_empty());
}

#[tokio::test]
async fn a_421_to_ehlo_ends_the_session_without_helo() {
    use postern_test_support::fake_smtp::{FakeOpts, FakeSmtp};
    let fake = FakeSmtp::start(FakeOpts {
        ehlo_reply: Some("421 4.3.2 fake.test shutting down".into()),
        ..FakeOpts::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"mx.postern.test\"\nstate_dir = \"{}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [relay]\nlocal_domains = [\"local.test\", \"other.test\"]\n\
         [[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n\
         [[route]]\ndomain = \"other.test\"\nnext_hop = \"smtp:[127.0.0.1]:{}\"\n\
         [queue]\nretry = [\"1h\"]\n",
        dir.path().join("state").display(),
        fake.addr.port()
    );
    let s = TestServer::start_with(dir, &text).await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    let r = c
        .send_mail(
            "alice@local.test",
            &["carol@other.test"],
            b"Subject: x\r\n\r\nx\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let mut state = String::new();
    for _ in 0..200 {
        state = std::fs::read_dir(s.state().join("queue/active"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        if state.contains("421") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(state.contains("421"), "no 421 deferral: {state}");
    let cmds = fake.commands();
    assert!(cmds.iter().any(|c| c.starts_with("EHLO")), "{cmds:?}");
    assert!(
        !cmds
            .iter()
            .any(|c| c.starts_with("HELO") || c.starts_with("MAIL")),
        "the client went on after 421: {cmds:?}"
    );
}
