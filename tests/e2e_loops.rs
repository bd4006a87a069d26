//! Regression tests for issue #11, item 1 (outbound half): mail loops. A delivery report
//! whose sender points back at us (an address literal, or a domain whose MX is our own
//! address) must fail with 5.4.6 instead of relaying itself to us again and again; a
//! message that has travelled too many hops is bounced.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_test_support::dns::TestDns;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Postern as the review ran it: a trusted loopback listener, and MX hosts reached on
/// the port it listens on itself (port 25 on both sides, in production).
async fn looping_server(dns: &TestDns, routes: &str) -> TestServer {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"mx.postern.test\"\nstate_dir = \"{state}\"\n\
         [[listener]]\naddress = \"127.0.0.1:{port}\"\nmode = \"plain\"\n\
         [relay]\nlocal_domains = [\"local.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
         [[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n{routes}\n\
         [resolver]\nnameservers = [\"{dns}\"]\ntimeout = \"1s\"\n\
         [queue]\nretry = [\"1s\"]\n\
         [outbound]\nport = {port}\nconnect_timeout = \"2s\"\n",
        state = dir.path().join("state").display(),
        dns = dns.addr(),
    );
    TestServer::start_with(dir, &text).await
}

/// Texts of every file (message and state) under the queue directory.
fn queue_files(state: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["active", "failed", "hold", "corrupt"] {
        for e in std::fs::read_dir(state.join("queue").join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into());
        }
    }
    out
}

async fn send_with_notify_success(s: &TestServer, from: &str) {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO attacker.test").await;
    assert_eq!(c.cmd(&format!("MAIL FROM:<{from}>")).await.code, 250);
    assert_eq!(
        c.cmd("RCPT TO:<bob@local.test> NOTIFY=SUCCESS").await.code,
        250
    );
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: loop\r\n\r\nhello\r\n.\r\n").await;
    assert_eq!(c.reply().await.code, 250);
}

/// Wait until a queued file says the report loops; then check that nothing more arrives.
async fn assert_report_refused_as_loop(s: &TestServer) {
    let mut found = false;
    for _ in 0..200 {
        if queue_files(&s.state())
            .iter()
            .any(|t| t.contains("loops back to myself"))
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Give a loop time to show itself (each hop takes milliseconds on loopback).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let files = queue_files(&s.state());
    assert!(
        found,
        "the delivery report was not refused as a loop; queue: {files:#?}"
    );
    assert_eq!(s.all_delivered().len(), 1, "only bob's copy is delivered");
    let received = files
        .iter()
        .filter(|t| t.contains("Received:"))
        .map(|t| t.matches("Received:").count())
        .max()
        .unwrap_or(0);
    assert!(
        files.len() <= 4 && received <= 3,
        "the report travelled: {} queue files, up to {received} Received: fields",
        files.len()
    );
}

#[tokio::test]
async fn report_to_an_address_literal_of_ours_does_not_loop() {
    let dns = TestDns::start().await;
    let s = looping_server(&dns, "").await;
    send_with_notify_success(&s, "x@[127.0.0.1]").await;
    s.wait_delivered("bob", 1).await;
    assert_report_refused_as_loop(&s).await;
}

#[tokio::test]
async fn report_to_a_domain_whose_mx_is_us_does_not_loop() {
    let dns = TestDns::start().await;
    dns.add_mx("loop.test", 10, "mx.loop.test");
    dns.add_a("mx.loop.test", "127.0.0.1".parse().unwrap());
    let s = looping_server(&dns, "").await;
    send_with_notify_success(&s, "x@loop.test").await;
    s.wait_delivered("bob", 1).await;
    assert_report_refused_as_loop(&s).await;
}

#[tokio::test]
async fn a_route_naming_our_own_address_is_obeyed() {
    // The operator's explicit next hop wins: here it is our own listener, for a domain
    // we also deliver locally through it (a content-filter style set-up in miniature).
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"mx.postern.test\"\nstate_dir = \"{state}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
         [relay]\nlocal_domains = [\"local.test\", \"other.test\"]\n\
         [[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n\
         [[route]]\ndomain = \"other.test\"\nnext_hop = \"smtp:[127.0.0.1]:{port}\"\n\
         [queue]\nretry = [\"1s\"]\n",
        state = dir.path().join("state").display(),
    );
    // A fake next hop on the port the route names, on loopback.
    let fake = postern_test_support::fake_smtp::FakeSmtp::start(
        postern_test_support::fake_smtp::FakeOpts {
            bind: Some(std::net::SocketAddr::new(
                "127.0.0.1".parse().unwrap(),
                port,
            )),
            ..Default::default()
        },
    )
    .await;
    let a = TestServer::start_with(dir, &text).await;
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    let r = c
        .send_mail(
            "alice@local.test",
            &["carol@other.test"],
            b"Subject: x\r\n\r\nx\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    for _ in 0..200 {
        if !fake.messages().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the explicitly routed message was not delivered");
}

#[tokio::test]
async fn too_many_received_fields_are_refused_not_bounced() {
    let dns = TestDns::start().await;
    let s = looping_server(&dns, "").await;
    let msg = |hops: usize| {
        let mut m = String::new();
        for i in 0..hops {
            m.push_str(&format!(
                "Received: from hop{i}.test by hop{}.test; Wed, 2 Dec 2026 10:00:00 +0000\r\n",
                i + 1
            ));
        }
        m.push_str("Subject: looping\r\n\r\nround and round\r\n");
        m
    };
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    // 51 on arrival: over the limit (Postfix's hopcount_limit, 50): refused at the end of
    // DATA, so no bounce goes anywhere (a loop must not make more mail).
    let r = c
        .send_mail("alice@local.test", &["bob@local.test"], msg(51).as_bytes())
        .await;
    assert_eq!(r.code, 554, "{r:?}");
    assert!(r.last().contains("5.4.6"), "{r:?}");
    // 50 on arrival, 51 with ours: the queue agrees with the listener and delivers it.
    let r = c
        .send_mail("alice@local.test", &["bob@local.test"], msg(50).as_bytes())
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    s.wait_delivered("bob", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.delivered("alice").is_empty(),
        "no bounce for a refused loop"
    );
}
