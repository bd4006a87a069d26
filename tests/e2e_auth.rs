//! SPF, DKIM and DMARC in the real server: refusals at the SMTP level, the headers on
//! stored mail, forged Authentication-Results removed, and DKIM signing of relayed mail
//! checked by verifying what the next hop received. DNS is a loopback TestDns.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_auth::config::{AuthConfig, DkimMode, DmarcPolicy, SpfPolicy};
use postern_auth::keygen::{KeyKind, keygen};
use postern_auth::{Received, Verifier};
use postern_test_support::dns::TestDns;
use postern_test_support::fake_smtp::{FakeOpts, FakeSmtp};

fn message(from: &str, extra: &str) -> Vec<u8> {
    format!(
        "{extra}From: <{from}>\r\nTo: <bob@local.test>\r\nSubject: auth test\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\nMessage-ID: <e2e@postern.test>\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

/// A `postern_dns` resolver asking the loopback server, as a receiving server would.
fn resolver(dns: &TestDns) -> postern_dns::Resolver {
    let cfg = postern_dns::ResolverConfig {
        nameservers: vec![dns.addr()],
        timeout: postern_config::Duration(Duration::from_secs(2)),
        ..postern_dns::ResolverConfig::default()
    };
    postern_dns::Resolver::new(&cfg).unwrap()
}

async fn verifying_server(dns: &TestDns, spf: &str) -> TestServer {
    TestServer::start(
        "",
        &format!(
            "[resolver]\nnameservers = [\"{}\"]\ntimeout = \"2s\"\n\n[auth]\nspf = \"{spf}\"\ndkim = \"verify\"\ndmarc = \"enforce\"\n",
            dns.addr()
        ),
    )
    .await
}

async fn client(s: &TestServer) -> SmtpClient {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO client.example.org").await.code, 250);
    c
}

#[tokio::test]
async fn dmarc_reject_is_refused_after_data_and_nothing_is_queued() {
    let dns = TestDns::start().await;
    dns.add_txt("example.org", "v=spf1 ip4:192.0.2.1 -all");
    dns.add_txt("_dmarc.example.org", "v=DMARC1; p=reject");
    let s = verifying_server(&dns, "tag").await;
    let mut c = client(&s).await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["bob@local.test"],
            &message("alice@example.org", ""),
        )
        .await;
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text().contains("5.7.1"), "{r:?}");
    assert!(r.text().contains("DMARC policy for example.org"), "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.queued(), 0);
    assert!(s.all_delivered().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn spf_fail_is_refused_at_mail_from_under_reject_fail() {
    let dns = TestDns::start().await;
    dns.add_txt("example.org", "v=spf1 ip4:192.0.2.1 -all");
    let s = verifying_server(&dns, "reject-fail").await;
    let mut c = client(&s).await;
    let r = c.cmd("MAIL FROM:<alice@example.org>").await;
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text().contains("5.7.23"), "{r:?}");
    // A sender whose domain has no SPF record is fine.
    let r = c.cmd("MAIL FROM:<carol@nospf.example>").await;
    assert_eq!(r.code, 250, "{r:?}");
    s.stop().await;
}

#[tokio::test]
async fn stored_mail_carries_our_results_first_and_no_forged_ones() {
    let dns = TestDns::start().await;
    dns.add_txt("example.org", "v=spf1 ip4:127.0.0.0/8 -all");
    dns.add_txt("_dmarc.example.org", "v=DMARC1; p=reject");
    let s = verifying_server(&dns, "tag").await;
    let mut c = client(&s).await;
    let forged = "Authentication-Results: mx.postern.test; dkim=pass header.d=bank.example\r\n\
                  Authentication-Results: other.example; spf=pass\r\n";
    let r = c
        .send_mail(
            "alice@example.org",
            &["bob@local.test"],
            &message("alice@example.org", forged),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let got = s.wait_delivered("bob", 1).await;
    let text = String::from_utf8(got[0].clone()).unwrap();
    let ar = text
        .find("Authentication-Results: mx.postern.test;")
        .unwrap();
    let spf = text.find("Received-SPF: pass").unwrap();
    let received = text.find("Received: from client.example.org").unwrap();
    assert!(ar < spf && spf < received, "{text}");
    assert!(text.contains("spf=pass"), "{text}");
    assert!(
        text.contains("dmarc=pass header.from=example.org"),
        "{text}"
    );
    assert!(!text.contains("bank.example"), "forged field kept: {text}");
    assert!(
        text.contains("Authentication-Results: other.example; spf=pass"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn relayed_mail_is_signed_rsa_and_ed25519_and_verifies_at_the_next_hop() {
    let dns = TestDns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let rsa = keygen("example.org", "r1", KeyKind::Rsa2048, &keys).unwrap();
    let ed = keygen("example.org", "e1", KeyKind::Ed25519, &keys).unwrap();
    dns.add_txt(&rsa.record_name, &rsa.record);
    dns.add_txt(&ed.record_name, &ed.record);
    dns.add_txt("_dmarc.example.org", "v=DMARC1; p=reject");
    let next = FakeSmtp::start(FakeOpts::default()).await;
    let state = dir.path().join("state");
    let auth = format!(
        r#"spf = "tag"
dkim = "verify"

[[auth.dkim_sign]]
domain = "example.org"
selector = "r1"
key = "{rsa}"
sources = ["trusted_networks"]

[[auth.dkim_sign]]
domain = "example.org"
selector = "e1"
key = "{ed}"
algorithm = "ed25519-sha256"
sources = ["trusted_networks"]
"#,
        rsa = rsa.path.display(),
        ed = ed.path.display(),
    );
    let text = relaying_config(&state, &next, &dns, &auth);
    let s = TestServer::start_with(dir, &text).await;
    let mut c = client(&s).await;
    // From a subdomain: signed with the parent's keys. Another domain: never signed.
    for (from, to) in [
        ("news@news.example.org", "carol@remote.test"),
        ("x@unsigned.example", "dave@remote.test"),
    ] {
        let r = c.send_mail(from, &[to], &message(from, "")).await;
        assert_eq!(r.code, 250, "{r:?}");
    }
    let mut received = Vec::new();
    for _ in 0..200 {
        received = next.messages();
        if received.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        received.len(),
        2,
        "the next hop got {} messages",
        received.len()
    );
    let signed = received
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("news@news.example.org"))
        .unwrap();
    let unsigned = received
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("x@unsigned.example"))
        .unwrap();
    assert!(!String::from_utf8_lossy(unsigned).contains("DKIM-Signature"));
    let text = String::from_utf8_lossy(signed);
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(
        text.contains("a=rsa-sha256") && text.contains("a=ed25519-sha256"),
        "{text}"
    );
    assert!(text.contains("From:From"), "From is oversigned: {text}");
    // Verify as a receiving server would.
    let cfg = AuthConfig {
        spf: SpfPolicy::Off,
        dkim: DkimMode::Verify,
        dmarc: DmarcPolicy::Tag,
        ..AuthConfig::default()
    };
    let v = Verifier::new(
        &cfg,
        postern_auth::dns::for_resolver(&resolver(&dns)),
        "mx.remote.test",
    );
    let verdict = v
        .message(
            Received {
                ip: "127.0.0.1".parse().unwrap(),
                helo: "mx.postern.test",
                mail_from: "news@news.example.org",
                message: signed,
                complete: true,
            },
            None,
        )
        .await;
    assert_eq!(
        verdict.summary, "dkim=pass,pass dmarc=pass",
        "{}",
        verdict.prepend
    );
    s.stop().await;
}

async fn quarantine_case(action: &str) -> TestServer {
    let dns = TestDns::start().await;
    // SPF fails for 127.0.0.1 and there is no signature: DMARC fails, p=quarantine.
    dns.add_txt("example.org", "v=spf1 ip4:192.0.2.1 -all");
    dns.add_txt("_dmarc.example.org", "v=DMARC1; p=quarantine");
    let s = TestServer::start(
        "",
        &format!(
            "[resolver]\nnameservers = [\"{}\"]\ntimeout = \"2s\"\n\n[auth]\nspf = \"tag\"\ndkim = \"verify\"\ndmarc = \"enforce\"\nquarantine_action = \"{action}\"\n",
            dns.addr()
        ),
    )
    .await;
    let mut c = client(&s).await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["bob@local.test"],
            &message("alice@example.org", ""),
        )
        .await;
    assert_eq!(r.code, 250, "quarantined mail is accepted: {r:?}");
    std::mem::forget(dns);
    s
}

#[tokio::test]
async fn quarantine_tag_delivers_with_the_header() {
    let s = quarantine_case("tag").await;
    let got = s.wait_delivered("bob", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("X-Postern-Quarantine:"), "{text}");
}

#[tokio::test]
async fn quarantine_hold_keeps_the_message_for_the_operator() {
    let s = quarantine_case("hold").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.all_delivered().is_empty(),
        "held mail must not be delivered"
    );
    let held: Vec<_> = std::fs::read_dir(s.state().join("queue/hold"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(held.len(), 1, "one message on hold");
    let text = std::fs::read_to_string(held[0].path()).unwrap();
    assert!(text.contains("X-Postern-Quarantine:"), "{text}");
    assert_eq!(s.queued(), 0);
}

/// Loopback trusted, remote.test relayed to `next` without TLS, DNS from `dns`, and
/// `auth` as the body of `[auth]`.
fn relaying_config(state: &Path, next: &FakeSmtp, dns: &TestDns, auth: &str) -> String {
    let rest = format!(
        "[[route]]\ndomain = \"remote.test\"\nnext_hop = \"smtp:[127.0.0.1]:{}\"\n\n\
         [outbound]\ntls = \"none\"\n\n[resolver]\nnameservers = [\"{}\"]\n\n[auth]\n{auth}",
        next.addr.port(),
        dns.addr()
    );
    common::config_text(state, "", r#"trusted_networks = ["127.0.0.0/8"]"#, &rest)
}

/// A server that signs for `sign_domain` (when given) and relays remote.test to a next hop
/// that refuses every recipient, so mail from alice@local.test bounces to her Maildir.
async fn bouncing_server(dns: &TestDns, next: &FakeSmtp, sign_domain: Option<&str>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut sign = String::new();
    if let Some(domain) = sign_domain {
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let rsa = keygen(domain, "b1", KeyKind::Rsa2048, &keys).unwrap();
        dns.add_txt(&rsa.record_name, &rsa.record);
        sign = format!(
            "\n[[auth.dkim_sign]]\ndomain = \"{domain}\"\nselector = \"b1\"\nkey = \"{}\"\n",
            rsa.path.display()
        );
    }
    let auth = format!(
        r#"spf = "off"
dkim = "off"
{sign}"#,
    );
    let text = relaying_config(&state, next, dns, &auth);
    let s = TestServer::start_with(dir, &text).await;
    let mut c = client(&s).await;
    let from = "alice@local.test";
    let r = c
        .send_mail(from, &["carol@remote.test"], &message(from, ""))
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    s
}

fn refusing_next_hop() -> FakeOpts {
    FakeOpts {
        rcpt_reply: Some("550 5.1.1 <carol@remote.test>: no such user".into()),
        ..FakeOpts::default()
    }
}

#[tokio::test]
async fn bounces_are_signed_for_the_hostnames_domain_and_verify() {
    let dns = TestDns::start().await;
    let next = FakeSmtp::start(refusing_next_hop()).await;
    let s = bouncing_server(&dns, &next, Some("postern.test")).await;
    let got = s.wait_delivered("alice", 1).await;
    let bounce = &got[0];
    let text = String::from_utf8_lossy(bounce);
    assert!(text.contains("From: "), "{text}");
    assert!(text.contains("MAILER-DAEMON@mx.postern.test"), "{text}");
    assert!(text.contains("Action: failed"), "{text}");
    assert_eq!(text.matches("DKIM-Signature:").count(), 1, "{text}");
    assert!(text.contains("d=postern.test;"), "{text}");
    let cfg = AuthConfig {
        spf: SpfPolicy::Off,
        dkim: DkimMode::Verify,
        dmarc: DmarcPolicy::Tag,
        ..AuthConfig::default()
    };
    let v = Verifier::new(
        &cfg,
        postern_auth::dns::for_resolver(&resolver(&dns)),
        "mx.example.net",
    );
    let verdict = v
        .message(
            Received {
                ip: "127.0.0.1".parse().unwrap(),
                helo: "mx.postern.test",
                mail_from: "",
                message: bounce,
                complete: true,
            },
            None,
        )
        .await;
    assert!(
        verdict.summary.starts_with("dkim=pass "),
        "{}: {}",
        verdict.summary,
        verdict.prepend
    );
    assert!(
        verdict.prepend.contains("header.d=postern.test"),
        "{}",
        verdict.prepend
    );
    s.stop().await;
}

#[tokio::test]
async fn bounces_are_not_signed_without_a_key_for_the_hostnames_domain() {
    let dns = TestDns::start().await;
    let next = FakeSmtp::start(refusing_next_hop()).await;
    // A key for another domain does not sign reports from MAILER-DAEMON@mx.postern.test.
    let s = bouncing_server(&dns, &next, Some("example.org")).await;
    let got = s.wait_delivered("alice", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Action: failed"), "{text}");
    assert!(!text.contains("DKIM-Signature"), "{text}");
    s.stop().await;
}

/// Issue #11, item 4: a client allowed to relay (here: loopback in trusted_networks) is
/// not thereby allowed to have mail signed with our keys; only a key's `sources` are.
#[tokio::test]
async fn relaying_is_not_signing_without_sources() {
    let dns = TestDns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let rsa = keygen("example.org", "r1", KeyKind::Rsa2048, &keys).unwrap();
    let other = keygen("example.net", "r1", KeyKind::Rsa2048, &keys).unwrap();
    let next = FakeSmtp::start(FakeOpts::default()).await;
    let text = format!(
        r#"
[server]
hostname = "mx.postern.test"
state_dir = "{state}"

[[listener]]
address = "127.0.0.1:0"

[relay]
local_domains = ["local.test"]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "local.test"
next_hop = "maildir:mail"

[[route]]
domain = "remote.test"
next_hop = "smtp:[127.0.0.1]:{port}"

[outbound]
tls = "none"

[resolver]
nameservers = ["{dns}"]

# Signs only for an office network: not for this loopback client.
[[auth.dkim_sign]]
domain = "example.org"
selector = "r1"
key = "{rsa}"
sources = ["192.0.2.0/24"]

# No sources: our own reports only.
[[auth.dkim_sign]]
domain = "example.net"
selector = "r1"
key = "{other}"
"#,
        state = dir.path().join("state").display(),
        port = next.addr.port(),
        dns = dns.addr(),
        rsa = rsa.path.display(),
        other = other.path.display(),
    );
    let s = TestServer::start_with(dir, &text).await;
    let mut c = client(&s).await;
    for (from, to) in [
        ("ceo@example.org", "carol@remote.test"),
        ("ceo@example.net", "dave@remote.test"),
    ] {
        let r = c.send_mail(from, &[to], &message(from, "")).await;
        assert_eq!(r.code, 250, "{r:?}");
    }
    let mut received = Vec::new();
    for _ in 0..200 {
        received = next.messages();
        if received.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(received.len(), 2, "relayed: {}", received.len());
    for m in &received {
        let text = String::from_utf8_lossy(m);
        assert!(
            !text.contains("DKIM-Signature"),
            "signed for a client the key does not allow: {text}"
        );
    }
    s.stop().await;
}
