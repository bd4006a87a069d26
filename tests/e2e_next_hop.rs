//! End-to-end behaviour towards fake next hops (issue #16): the "relayed" report for a
//! next hop without DSN (RFC 3461 §5.2.2), NOTIFY passed on to one with DSN, the
//! internationalised ORCPT passed on per RFC 6533 §3 (UTF-8 to a SMTPUTF8 peer,
//! downgraded to utf-8-addr-xtext otherwise), and idle connections closed with QUIT
//! once `connection_reuse_time` is up.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_test_support::dns::TestDns;
use postern_test_support::fake_smtp::{FakeOpts, FakeSmtp};

/// Postern relaying partner.test to a fake next hop on `port`, and its DNS server.
async fn sender(port: u16, outbound: &str) -> (TestServer, TestDns) {
    let dns = TestDns::start().await;
    dns.add_mx("partner.test", 10, "mx.partner.test");
    dns.add_a("mx.partner.test", "127.0.0.1".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
         [relay]\nlocal_domains = [\"sender.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
         [[route]]\ndomain = \"sender.test\"\nnext_hop = \"maildir:mail\"\n\
         [resolver]\nnameservers = [\"{dns}\"]\n\
         [queue]\nretry = [\"1h\"]\n\
         [outbound]\nport = {port}\nconnect_timeout = \"2s\"\n{outbound}\n",
        state = dir.path().join("state").display(),
        dns = dns.addr(),
    );
    (TestServer::start_with(dir, &text).await, dns)
}

/// Send one message from alice@sender.test with SMTPUTF8 and the given RCPT line.
async fn send(a: &TestServer, rcpt: &str) {
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    let r = c.cmd("MAIL FROM:<alice@sender.test> SMTPUTF8").await;
    assert_eq!(r.code, 250, "{r:?}");
    let r = c.cmd(rcpt).await;
    assert_eq!(r.code, 250, "{rcpt}: {r:?}");
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: dsn peers\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.code, 250);
}

async fn wait_for_message(fake: &FakeSmtp) {
    for _ in 0..200 {
        if !fake.messages().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing reached the fake next hop: {:?}", fake.commands());
}

fn rcpt_line(fake: &FakeSmtp) -> String {
    let cmds = fake.commands();
    cmds.iter()
        .find(|c| c.starts_with("RCPT TO:"))
        .cloned()
        .unwrap_or_else(|| panic!("no RCPT: {cmds:?}"))
}

#[tokio::test]
async fn notify_success_to_a_next_hop_without_dsn_gets_a_relayed_report() {
    let fake = FakeSmtp::start(FakeOpts::default()).await;
    let (a, _dns) = sender(fake.addr.port(), "").await;
    send(
        &a,
        "RCPT TO:<bob@partner.test> NOTIFY=SUCCESS ORCPT=rfc822;j+C3+BCrgen@partner.test",
    )
    .await;
    wait_for_message(&fake).await;
    assert_eq!(rcpt_line(&fake), "RCPT TO:<bob@partner.test>");
    let got = a.wait_delivered("alice", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    for want in [
        "Return-Path: <>",
        "report-type=delivery-status",
        "Action: relayed",
        "Status: 2.0.0",
        "Final-Recipient: rfc822; bob@partner.test",
        "Original-Recipient: utf-8;j\\x{FC}rgen@partner.test",
        "Remote-MTA: dns; mx.partner.test",
        "Subject: Delivery Report: Your Message Was Relayed",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

#[tokio::test]
async fn a_next_hop_with_dsn_gets_notify_and_no_relayed_report_is_sent() {
    let fake = FakeSmtp::start(FakeOpts {
        dsn: true,
        ..FakeOpts::default()
    })
    .await;
    let (a, _dns) = sender(fake.addr.port(), "").await;
    send(
        &a,
        "RCPT TO:<bob@partner.test> NOTIFY=SUCCESS ORCPT=rfc822;j+C3+BCrgen@partner.test",
    )
    .await;
    wait_for_message(&fake).await;
    // No SMTPUTF8 at this peer: the ORCPT is downgraded to utf-8-addr-xtext.
    assert_eq!(
        rcpt_line(&fake),
        "RCPT TO:<bob@partner.test> NOTIFY=SUCCESS ORCPT=utf-8;j\\x{FC}rgen@partner.test"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(a.all_delivered().is_empty(), "the next hop reports, not us");
    assert_eq!(a.wait_queued(0).await, 0);
}

#[tokio::test]
async fn an_internationalised_orcpt_goes_as_utf8_to_a_smtputf8_peer() {
    let fake = FakeSmtp::start(FakeOpts {
        dsn: true,
        smtputf8: true,
        ..FakeOpts::default()
    })
    .await;
    let (a, _dns) = sender(fake.addr.port(), "").await;
    send(
        &a,
        "RCPT TO:<bob@partner.test> NOTIFY=FAILURE ORCPT=utf-8;j\\x{FC}rgen@partner.test",
    )
    .await;
    wait_for_message(&fake).await;
    let cmds = fake.commands();
    assert!(
        cmds.iter()
            .any(|c| c.starts_with("MAIL FROM:<alice@sender.test>") && c.contains("SMTPUTF8")),
        "{cmds:?}"
    );
    assert_eq!(
        rcpt_line(&fake),
        "RCPT TO:<bob@partner.test> NOTIFY=FAILURE ORCPT=utf-8;j\u{fc}rgen@partner.test"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_quit_after_the_reuse_time() {
    let fake = FakeSmtp::start(FakeOpts::default()).await;
    // 2 s: long enough that a busy machine still sees the connection kept at first.
    let (a, _dns) = sender(fake.addr.port(), "connection_reuse_time = \"2s\"").await;
    send(&a, "RCPT TO:<bob@partner.test>").await;
    wait_for_message(&fake).await;
    let quit = || fake.commands().iter().any(|c| c == "QUIT");
    assert!(!quit(), "kept for reuse at first: {:?}", fake.commands());
    for _ in 0..200 {
        if quit() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "no QUIT within 5 s of a 2 s reuse time: {:?}",
        fake.commands()
    );
}
