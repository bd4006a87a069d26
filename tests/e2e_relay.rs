//! End-to-end outbound relay: Postern A relays to Postern B (or a fake server) over real
//! sockets, with a real DNS server and a test CA on loopback.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_test_support::ca::{IssueOpts, TestCa, sha256_fingerprint, spki_sha256_fingerprint};
use postern_test_support::dns::TestDns;
use postern_test_support::fake_smtp::{FakeOpts, FakeSmtp};

struct World {
    dns: TestDns,
    ca: TestCa,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let dns = TestDns::start().await;
        dns.add_mx("partner.test", 10, "mx.partner.test");
        dns.add_a("mx.partner.test", "127.0.0.1".parse().unwrap());
        World {
            dns,
            ca: TestCa::new("Postern Test CA"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Postern B: receives mail for partner.test with a certificate for `names`.
    async fn receiver(
        &self,
        tag: &str,
        names: &[&str],
        opts: IssueOpts,
        ca: Option<&TestCa>,
        listener_extra: &str,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = ca
            .unwrap_or(&self.ca)
            .issue_server(names, opts)
            .write(self.dir.path(), &format!("b-{tag}"));
        let text = format!(
            "[server]\nhostname = \"mx.partner.test\"\nstate_dir = \"{state}\"\n\
             [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\n{listener_extra}\n\
             [relay]\nlocal_domains = [\"partner.test\"]\n\
             [[route]]\ndomain = \"partner.test\"\nnext_hop = \"maildir:mail\"\n",
            state = dir.path().join("state").display(),
            chain = chain.display(),
            key = key.display(),
        );
        TestServer::start_with(dir, &text).await
    }

    /// Postern A: relays for loopback clients; MX hosts are reached on `port`.
    async fn sender(&self, port: u16, outbound: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = self
            .ca
            .issue_server(&["mx.sender.test"], IssueOpts::default())
            .write(self.dir.path(), "a-server");
        let text = format!(
            "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
             [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
             [relay]\nlocal_domains = [\"sender.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
             [[route]]\ndomain = \"sender.test\"\nnext_hop = \"maildir:mail\"\n\
             [resolver]\nnameservers = [\"{dns}\"]\n\
             [queue]\nretry = [\"1h\"]\n\
             [outbound]\nport = {port}\nconnect_timeout = \"2s\"\n{outbound}\n",
            state = dir.path().join("state").display(),
            chain = chain.display(),
            key = key.display(),
            dns = self.dns.addr(),
        );
        TestServer::start_with(dir, &text).await
    }

    fn ca_file(&self) -> String {
        self.ca
            .write_ca(self.dir.path(), "ca")
            .display()
            .to_string()
    }
}

async fn send(a: &TestServer, to: &str, subject: &str) {
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    // The test client sends raw bytes: the leading dot is stuffed here, as on the wire.
    let msg = format!(
        "From: alice@sender.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n..starts with a dot\r\n"
    );
    let r = c
        .send_mail("alice@sender.test", &[to], msg.as_bytes())
        .await;
    assert_eq!(r.code, 250, "{r:?}");
}

/// A state file with each recipient's typed outcome written out as the log shows it.
fn readable_state(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once(" {") {
            Some((head, json)) => {
                let d: postern_queue::Detail =
                    serde_json::from_str(&format!("{{{json}")).unwrap_or_default();
                format!("{head} {d}\n")
            }
            None => format!("{l}\n"),
        })
        .collect()
}

/// Wait until a `.state` file in A's queue contains `needle` (in the outcome as the
/// log shows it); returns its text.
async fn deferred_with(a: &TestServer, needle: &str) -> String {
    let active = a.state().join("queue/active");
    let mut seen = String::new();
    for _ in 0..200 {
        for e in std::fs::read_dir(&active).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "state") {
                seen = readable_state(&std::fs::read_to_string(e.path()).unwrap_or_default());
                if seen.contains(needle) {
                    return seen;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no deferral containing {needle:?}; last state seen: {seen}");
}

fn port(s: &TestServer) -> u16 {
    s.addr().port()
}

#[tokio::test]
async fn may_delivers_in_plaintext_to_a_server_without_starttls() {
    let w = World::new().await;
    let b = w
        .receiver(
            "plain",
            &["mx.partner.test"],
            IssueOpts::default(),
            None,
            "mode = \"plain\"",
        )
        .await;
    let a = w.sender(port(&b), "").await;
    send(&a, "bob@partner.test", "plain").await;
    let got = b.wait_delivered("bob", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Subject: plain"), "{text}");
    assert!(
        text.contains("\r\n.starts with a dot\r\n"),
        "dot-stuffing round trip: {text}"
    );
    assert!(!text.contains("(using TLS"), "{text}");
    assert!(
        text.contains("from mx.sender.test (unknown [127.0.0.1])"),
        "{text}"
    );
}

#[tokio::test]
async fn may_uses_tls_when_offered() {
    let w = World::new().await;
    let b = w
        .receiver("tls", &["mx.partner.test"], IssueOpts::default(), None, "")
        .await;
    let a = w.sender(port(&b), "").await;
    send(&a, "bob@partner.test", "tls").await;
    let got = b.wait_delivered("bob", 1).await;
    assert!(String::from_utf8_lossy(&got[0]).contains("(using TLSv1.3 with cipher"));
}

#[tokio::test]
async fn may_retries_in_plaintext_after_a_failed_handshake() {
    let w = World::new().await;
    let fake = FakeSmtp::start(FakeOpts {
        starttls: true,
        break_tls: true,
        ..FakeOpts::default()
    })
    .await;
    let a = w.sender(fake.addr.port(), "").await;
    send(&a, "bob@partner.test", "fallback").await;
    for _ in 0..200 {
        if !fake.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(fake.messages().len(), 1, "commands: {:?}", fake.commands());
    let cmds = fake.commands();
    let tls_at = cmds
        .iter()
        .position(|c| c == "STARTTLS")
        .expect("TLS was tried first");
    let mail_at = cmds
        .iter()
        .position(|c| c.starts_with("MAIL FROM"))
        .unwrap();
    assert!(tls_at < mail_at);
}

#[tokio::test]
async fn encrypt_never_sends_in_clear() {
    let w = World::new().await;
    let fake = FakeSmtp::start(FakeOpts::default()).await;
    let a = w
        .sender(
            fake.addr.port(),
            "[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"encrypt\"\n",
        )
        .await;
    send(&a, "bob@partner.test", "must be encrypted").await;
    let state = deferred_with(&a, "did not offer STARTTLS").await;
    assert!(
        state.contains("4.7.4 TLS is required for partner.test (policy encrypt)"),
        "{state}"
    );
    let cmds = fake.commands();
    assert!(cmds.iter().any(|c| c.starts_with("EHLO")));
    assert!(
        !cmds.iter().any(|c| c.starts_with("MAIL")),
        "MAIL was sent in clear: {cmds:?}"
    );
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn encrypt_moves_on_to_the_next_mx_that_offers_tls() {
    let w = World::new().await;
    let b = w
        .receiver("mx2", &["mx2.partner.test"], IssueOpts::default(), None, "")
        .await;
    // mx1 (preferred) is a server without STARTTLS on 127.0.0.2, same port.
    let fake = FakeSmtp::start(FakeOpts {
        bind: Some(SocketAddr::new("127.0.0.2".parse().unwrap(), port(&b))),
        ..FakeOpts::default()
    })
    .await;
    w.dns
        .add_a("mx1.encrypted.test", "127.0.0.2".parse().unwrap());
    w.dns
        .add_a("mx2.encrypted.test", "127.0.0.1".parse().unwrap());
    let a = w
        .sender(
            port(&b),
            "[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"encrypt\"\n",
        )
        .await;
    w.dns.remove("partner.test");
    w.dns.add_mx("partner.test", 10, "mx1.encrypted.test");
    w.dns.add_mx("partner.test", 20, "mx2.encrypted.test");
    send(&a, "bob@partner.test", "next mx").await;
    b.wait_delivered("bob", 1).await;
    assert!(
        !fake.commands().iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        fake.commands()
    );
    assert!(
        fake.commands().iter().any(|c| c.starts_with("EHLO")),
        "mx1 was tried first"
    );
}

async fn secure_case(
    names: &[&str],
    opts: IssueOpts,
    other_ca: bool,
    policy: &str,
) -> (World, TestServer, TestServer) {
    let w = World::new().await;
    let foreign = TestCa::new("Some Other CA");
    let b = w
        .receiver(
            "sec",
            names,
            opts,
            if other_ca { Some(&foreign) } else { None },
            "",
        )
        .await;
    let policy = policy.replace("CA_FILE", &w.ca_file());
    let a = w.sender(port(&b), &policy).await;
    (w, b, a)
}

const SECURE: &str =
    "[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"secure\"\nca = \"CA_FILE\"\n";

#[tokio::test]
async fn secure_delivers_with_the_right_certificate() {
    let (_w, b, a) = secure_case(&["mx.partner.test"], IssueOpts::default(), false, SECURE).await;
    send(&a, "bob@partner.test", "secure").await;
    let got = b.wait_delivered("bob", 1).await;
    assert!(String::from_utf8_lossy(&got[0]).contains("(using TLSv1.3"));
}

#[tokio::test]
async fn secure_refuses_a_name_from_elsewhere() {
    let (_w, b, a) = secure_case(&["mx.evil.test"], IssueOpts::default(), false, SECURE).await;
    send(&a, "bob@partner.test", "wrong name").await;
    let state = deferred_with(&a, "certificate name mismatch").await;
    assert!(
        state.contains(
            "certificate name mismatch: got mx.evil.test, wanted partner.test or .partner.test"
        ),
        "{state}"
    );
    assert!(b.all_delivered().is_empty());
}

#[tokio::test]
async fn secure_does_not_trust_mx_names() {
    // The certificate matches the MX host name, but secure wants the next-hop domain.
    let w = World::new().await;
    w.dns.remove("partner.test");
    w.dns.add_mx("partner.test", 10, "mail.hoster.test");
    w.dns
        .add_a("mail.hoster.test", "127.0.0.1".parse().unwrap());
    let b = w
        .receiver(
            "mxname",
            &["mail.hoster.test"],
            IssueOpts::default(),
            None,
            "",
        )
        .await;
    let a = w
        .sender(port(&b), &SECURE.replace("CA_FILE", &w.ca_file()))
        .await;
    send(&a, "bob@partner.test", "mx name").await;
    deferred_with(&a, "certificate name mismatch: got mail.hoster.test").await;
}

#[tokio::test]
async fn secure_refuses_an_untrusted_issuer() {
    let (_w, _b, a) = secure_case(&["mx.partner.test"], IssueOpts::default(), true, SECURE).await;
    send(&a, "bob@partner.test", "untrusted").await;
    deferred_with(&a, "untrusted issuer").await;
}

#[tokio::test]
async fn secure_refuses_an_expired_certificate() {
    let (_w, _b, a) = secure_case(&["mx.partner.test"], IssueOpts::expired(), false, SECURE).await;
    send(&a, "bob@partner.test", "expired").await;
    deferred_with(&a, "certificate expired").await;
}

#[tokio::test]
async fn verify_matches_the_mx_host_name() {
    let policy =
        "[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"verify\"\nca = \"CA_FILE\"\n";
    let (_w, b, a) = secure_case(&["mx.partner.test"], IssueOpts::default(), false, policy).await;
    send(&a, "bob@partner.test", "verify").await;
    b.wait_delivered("bob", 1).await;
    let (_w, _b, a) = secure_case(&["other.test"], IssueOpts::default(), false, policy).await;
    send(&a, "bob@partner.test", "verify wrong").await;
    deferred_with(
        &a,
        "certificate name mismatch: got other.test, wanted mx.partner.test",
    )
    .await;
}

#[tokio::test]
async fn fingerprint_pins() {
    let w = World::new().await;
    let issued = w.ca.issue_server(&["anything.test"], IssueOpts::default());
    let (chain, key) = issued.write(w.dir.path(), "pinned");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let b = TestServer::start_with(
        dir,
        &format!(
            "[server]\nhostname = \"mx.partner.test\"\nstate_dir = \"STATE\"\n[[tls.certificate]]\nchain = \"{}\"\nkey = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n[relay]\nlocal_domains = [\"partner.test\"]\n[[route]]\ndomain = \"partner.test\"\nnext_hop = \"maildir:mail\"\n",
            chain.display(),
            key.display()
        )
        .replace("STATE", &state.display().to_string()),
    )
    .await;
    let pin = |fp: &str| {
        format!(
            "[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"fingerprint\"\nfingerprints = [\"{fp}\"]\n"
        )
    };
    // Certificate pin and public-key pin both work.
    for (n, fp) in [
        sha256_fingerprint(&issued.der),
        spki_sha256_fingerprint(&issued.der),
    ]
    .iter()
    .enumerate()
    {
        let a = w.sender(port(&b), &pin(fp)).await;
        send(&a, "bob@partner.test", "pinned").await;
        b.wait_delivered("bob", n + 1).await;
    }
    let a = w
        .sender(port(&b), &pin(&format!("sha256:{}", "0".repeat(64))))
        .await;
    send(&a, "bob@partner.test", "bad pin").await;
    deferred_with(&a, "fingerprint mismatch").await;
}

#[tokio::test]
async fn mutual_tls_presents_our_client_certificate() {
    let w = World::new().await;
    let ca_file = w.ca_file();
    let b = w
        .receiver(
            "mtls",
            &["mx.partner.test"],
            IssueOpts::default(),
            None,
            &format!("client_certificates = \"require\"\nclient_ca = \"{ca_file}\""),
        )
        .await;
    let (cchain, ckey) =
        w.ca.issue_client("mx.sender.test", IssueOpts::default())
            .write(w.dir.path(), "a-client");
    let outbound = format!(
        "client_certificate = {{ chain = \"{}\", key = \"{}\" }}\n[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"secure\"\nca = \"{ca_file}\"\nclient_certificate = true\n",
        cchain.display(),
        ckey.display()
    );
    let a = w.sender(port(&b), &outbound).await;
    send(&a, "bob@partner.test", "mutual").await;
    b.wait_delivered("bob", 1).await;
    // Without presenting it, B refuses the handshake and A defers (never plaintext).
    let outbound = outbound.replace("client_certificate = true", "client_certificate = false");
    let a = w.sender(port(&b), &outbound).await;
    send(&a, "carol@partner.test", "no client cert").await;
    let state = deferred_with(&a, "4.7.5 TLS with").await;
    assert!(state.contains("CertificateRequired"), "{state}");
    assert!(b.delivered("carol").is_empty());
}

#[tokio::test]
async fn falls_back_to_the_next_mx_when_the_first_is_down() {
    let w = World::new().await;
    let b = w
        .receiver(
            "fallback",
            &["mx.partner.test"],
            IssueOpts::default(),
            None,
            "",
        )
        .await;
    w.dns.remove("partner.test");
    w.dns.add_mx("partner.test", 5, "down.partner.test");
    w.dns.add_mx("partner.test", 10, "mx.partner.test");
    w.dns
        .add_a("down.partner.test", "127.0.0.3".parse().unwrap());
    let a = w.sender(port(&b), "").await;
    send(&a, "bob@partner.test", "fallback").await;
    b.wait_delivered("bob", 1).await;
}

#[tokio::test]
async fn implicit_mx_uses_the_domain_address() {
    let w = World::new().await;
    let b = w
        .receiver(
            "implicit",
            &["mx.partner.test"],
            IssueOpts::default(),
            None,
            "",
        )
        .await;
    w.dns.remove("partner.test");
    w.dns.add_a("partner.test", "127.0.0.1".parse().unwrap());
    let a = w.sender(port(&b), "").await;
    send(&a, "bob@partner.test", "implicit").await;
    b.wait_delivered("bob", 1).await;
}

#[tokio::test]
async fn static_route_with_brackets_skips_mx() {
    let w = World::new().await;
    let b = w
        .receiver(
            "static",
            &["mx.partner.test"],
            IssueOpts::default(),
            None,
            "",
        )
        .await;
    w.dns.remove("partner.test");
    let a = w
        .sender(
            1,
            &format!(
                "[[route]]\ndomain = \"partner.test\"\nnext_hop = \"smtp:[127.0.0.1]:{}\"\n",
                port(&b)
            ),
        )
        .await;
    send(&a, "bob@partner.test", "static").await;
    b.wait_delivered("bob", 1).await;
}

#[tokio::test]
async fn null_mx_fails_permanently() {
    let w = World::new().await;
    w.dns.null_mx("nomail.test");
    let a = w.sender(25, "").await;
    send(&a, "bob@nomail.test", "null mx").await;
    let dir = a.state().join("queue");
    for _ in 0..200 {
        let found = walk(&dir)
            .into_iter()
            .any(|p| std::fs::read_to_string(&p).is_ok_and(|t| t.contains("556 5.1.10")));
        if found || !a.all_delivered().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no permanent 556 5.1.10 failure recorded");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_5xx_from_the_next_hop_bounces_to_the_sender() {
    let w = World::new().await;
    let fake = FakeSmtp::start(FakeOpts {
        rcpt_reply: Some("550 5.1.1 <bob@partner.test>: no such user".into()),
        ..FakeOpts::default()
    })
    .await;
    let a = w.sender(fake.addr.port(), "").await;
    send(&a, "bob@partner.test", "will bounce").await;
    let got = a.wait_delivered("alice", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Return-Path: <>"), "{text}");
    assert!(
        text.contains("Content-Type: multipart/report; report-type=delivery-status"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; bob@partner.test"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        text.contains("550 5.1.1 <bob@partner.test>: no such user"),
        "{text}"
    );
    assert!(
        text.contains("Subject: will bounce"),
        "the original is attached: {text}"
    );
    // The original is gone from the queue once the bounce is queued and delivered.
    for _ in 0..100 {
        if a.queued() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(a.queued(), 0);
}

#[tokio::test]
async fn a_null_sender_message_is_never_bounced() {
    let w = World::new().await;
    let fake = FakeSmtp::start(FakeOpts {
        rcpt_reply: Some("550 5.1.1 no such user".into()),
        ..FakeOpts::default()
    })
    .await;
    let a = w.sender(fake.addr.port(), "").await;
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    let r = c
        .send_mail("", &["bob@partner.test"], b"Subject: a bounce\r\n\r\nx\r\n")
        .await;
    assert_eq!(r.code, 250);
    let failed = a.state().join("queue/failed");
    for _ in 0..200 {
        if std::fs::read_dir(&failed).map(|d| d.count()).unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        std::fs::read_dir(&failed).unwrap().count() > 0,
        "kept in failed/ for the operator"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.all_delivered().is_empty(), "no bounce for a bounce");
}

#[tokio::test]
async fn dsn_requests_are_passed_on_to_peers_that_take_them() {
    let w = World::new().await;
    let fake = FakeSmtp::start(FakeOpts {
        dsn: true,
        ..FakeOpts::default()
    })
    .await;
    let a = w.sender(fake.addr.port(), "").await;
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.cmd("MAIL FROM:<alice@sender.test> RET=HDRS ENVID=abc123")
            .await
            .code,
        250
    );
    assert_eq!(
        c.cmd("RCPT TO:<bob@partner.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@partner.test")
            .await
            .code,
        250
    );
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    for _ in 0..200 {
        if !fake.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let cmds = fake.commands();
    assert!(
        cmds.iter()
            .any(|c| c.starts_with("MAIL FROM:<alice@sender.test>")
                && c.contains("RET=HDRS")
                && c.contains("ENVID=abc123")),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|c| c.contains("NOTIFY=SUCCESS,FAILURE")
                && c.contains("ORCPT=rfc822;bob@partner.test")),
        "{cmds:?}"
    );
}

#[tokio::test]
async fn a_route_to_a_host_missing_from_dns_waits_instead_of_bouncing() {
    let w = World::new().await;
    let a = w
        .sender(
            25,
            "[[route]]\ndomain = \"partner.test\"\nnext_hop = \"smtp:[typo.partner.test]\"\n",
        )
        .await;
    send(&a, "bob@partner.test", "route typo").await;
    let state = deferred_with(&a, "check the [[route]] for partner.test").await;
    assert!(state.contains("deferred"), "{state}");
    assert!(
        a.all_delivered().is_empty(),
        "no bounce for a configuration mistake"
    );
}

#[tokio::test]
async fn a_domain_without_mx_or_address_bounces() {
    let w = World::new().await;
    w.dns.add_txt("noaddress.test", "v=spf1 -all");
    let a = w.sender(25, "").await;
    send(&a, "bob@noaddress.test", "no address").await;
    let got = a.wait_delivered("alice", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Status: 5.1.2"), "{text}");
    assert!(text.contains("has no MX and no address"), "{text}");
}

#[tokio::test]
async fn encrypt_defers_then_delivers_once_the_peer_offers_tls() {
    let w = World::new().await;
    // First a server without STARTTLS on 127.0.0.1:P ...
    let fake = FakeSmtp::start(FakeOpts::default()).await;
    let p = fake.addr.port();
    let a = w
        .sender(
            p,
            "[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"encrypt\"\n",
        )
        .await;
    send(&a, "bob@partner.test", "wait for tls").await;
    deferred_with(&a, "did not offer STARTTLS").await;
    assert!(!fake.commands().iter().any(|c| c.starts_with("MAIL")));
    drop(fake);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ... then the real B, with TLS, on the same address.
    let b = w
        .receiver(
            "later",
            &["mx.partner.test"],
            IssueOpts::default(),
            None,
            "",
        )
        .await
        .rebind(&format!("127.0.0.1:{p}"))
        .await;
    a.running.as_ref().unwrap().queue.flush();
    let got = b.wait_delivered("bob", 1).await;
    assert!(String::from_utf8_lossy(&got[0]).contains("(using TLSv1.3"));
}

trait Rebind {
    async fn rebind(self, addr: &str) -> TestServer;
}

impl Rebind for TestServer {
    /// Restart this server with its listener on `addr` (same state directory).
    async fn rebind(self, addr: &str) -> TestServer {
        let cfg = std::fs::read_to_string(self.dir.path().join("config.toml")).unwrap();
        let TestServer { dir, running, .. } = self;
        if let Some(r) = running {
            r.stop().await;
        }
        let cfg = cfg.replacen(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"{addr}\""),
            1,
        );
        TestServer::start_with(dir, &cfg).await
    }
}

#[tokio::test]
async fn no_smuggled_second_message_reaches_the_next_hop() {
    let w = World::new().await;
    let fake = FakeSmtp::start(FakeOpts::default()).await;
    let a = w.sender(fake.addr.port(), "").await;
    for (evil, bdat) in [
        (&b"x\n.\n"[..], false),
        (b"x\r.\r", false),
        (b"x\r\n.\n", false),
        (b"x\n.\r\n", false),
        (b"x\n.\n", true),
    ] {
        let mut c = SmtpClient::connect_greeted(a.addr()).await;
        c.cmd("EHLO client.test").await;
        c.cmd("MAIL FROM:<alice@sender.test>").await;
        c.cmd("RCPT TO:<bob@partner.test>").await;
        let mut body = b"Subject: first\r\n\r\n".to_vec();
        body.extend_from_slice(evil);
        body.extend_from_slice(b"MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<victim@partner.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n");
        let r = if bdat {
            c.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes())
                .await;
            c.send(&body).await;
            c.reply().await
        } else {
            assert_eq!(c.cmd("DATA").await.code, 354);
            c.send(&body).await;
            c.send(b".\r\n").await;
            c.reply().await
        };
        assert!(r.last().starts_with("550 5.6.0"), "{evil:?}: {r:?}");
    }
    // A clean message afterwards shows the path works, and is the only thing the next hop saw.
    send(&a, "bob@partner.test", "clean").await;
    for _ in 0..200 {
        if !fake.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let cmds = fake.commands();
    assert_eq!(fake.messages().len(), 1, "{cmds:?}");
    assert!(
        !cmds
            .iter()
            .any(|c| c.contains("smuggled") || c.contains("victim")),
        "{cmds:?}"
    );
    assert!(String::from_utf8_lossy(&fake.messages()[0]).contains("Subject: clean"));
}

#[tokio::test]
async fn reload_picks_up_a_renewed_client_certificate() {
    let w = World::new().await;
    let ca_file = w.ca_file();
    let b = w
        .receiver(
            "reload",
            &["mx.partner.test"],
            IssueOpts::default(),
            None,
            &format!("client_certificates = \"require\"\nclient_ca = \"{ca_file}\""),
        )
        .await;
    // Our client certificate is first from the wrong CA: B refuses it.
    let wrong = TestCa::new("Wrong CA");
    let (cchain, ckey) = wrong
        .issue_client("mx.sender.test", IssueOpts::default())
        .write(w.dir.path(), "a-renewed");
    let outbound = format!(
        "client_certificate = {{ chain = \"{}\", key = \"{}\" }}\n[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"secure\"\nca = \"{ca_file}\"\nclient_certificate = true\n",
        cchain.display(),
        ckey.display()
    );
    let a = w.sender(port(&b), &outbound).await;
    send(&a, "bob@partner.test", "renewed").await;
    deferred_with(&a, "4.7.5 TLS with").await;
    // The operator renews the certificate in place and sends SIGHUP.
    w.ca.issue_client("mx.sender.test", IssueOpts::default())
        .write(w.dir.path(), "a-renewed");
    let running = a.running.as_ref().unwrap();
    assert!(running.reload_outbound());
    running.queue.flush();
    b.wait_delivered("bob", 1).await;
}
