//! REQUIRETLS (RFC 8689) end to end: offered only inside TLS, refused over plaintext,
//! stored with the message (`postern queue show`), passed on to a next hop that offers
//! it, and a `5.7.30` headers-only bounce when the next hop does not. Real sockets, real
//! TLS, a loopback DNS server and a test CA.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SmtpClient, TestServer, tls};
use postern_test_support::ca::{IssueOpts, TestCa};
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

    /// Postern A: STARTTLS listener, relays for loopback clients; MX hosts are reached
    /// on `port`; `outbound` lines are added to `[outbound]`.
    async fn sender(&self, port: u16, outbound: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = self
            .ca
            .issue_server(&["mx.sender.test"], IssueOpts::default())
            .write(self.dir.path(), "a-server");
        let text = format!(
            "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
             [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\n\
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

    /// Postern B, the next hop for partner.test (certificate for mx.partner.test from the
    /// test CA). It relays partner.test for loopback clients on to `onward`, where nothing
    /// listens: what it accepted stays in its queue, for `queue show`.
    async fn next_hop(&self, onward: u16) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = self
            .ca
            .issue_server(&["mx.partner.test"], IssueOpts::default())
            .write(self.dir.path(), "b-server");
        let text = format!(
            "[server]\nhostname = \"mx.partner.test\"\nstate_dir = \"{state}\"\n\
             [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\n\
             [relay]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
             [[route]]\ndomain = \"partner.test\"\nnext_hop = \"smtp:[127.0.0.1]:{onward}\"\n\
             [resolver]\nnameservers = [\"127.0.0.1:1\"]\n\
             [queue]\nretry = [\"1h\"]\n\
             [outbound]\nconnect_timeout = \"2s\"\n",
            state = dir.path().join("state").display(),
            chain = chain.display(),
            key = key.display(),
        );
        TestServer::start_with(dir, &text).await
    }

    fn ca_file(&self) -> String {
        self.ca
            .write_ca(self.dir.path(), "ca")
            .display()
            .to_string()
    }

    /// A TLS server configuration with a test-CA certificate for mx.partner.test.
    fn server_tls(&self) -> Arc<rustls::ServerConfig> {
        let issued = self
            .ca
            .issue_server(&["mx.partner.test"], IssueOpts::default());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(issued.chain_der(), issued.key_der())
            .unwrap();
        Arc::new(cfg)
    }
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

const VERIFY: &str =
    "[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"verify\"\nca = \"CA_FILE\"\n";

/// A `[[route]]` naming partner.test's host (no MX lookup).
const ROUTE_TO_MX_HOST: &str =
    "[[route]]\ndomain = \"partner.test\"\nnext_hop = \"smtp:[mx.partner.test]\"\n";

/// Connect, EHLO, STARTTLS, EHLO again: the client inside TLS.
async fn tls_client(s: &TestServer) -> SmtpClient {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    let (cfg, _) = tls::client_config(None);
    c.starttls(cfg).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    c
}

/// Send one message with `MAIL FROM:<alice@sender.test> PARAMS` inside TLS; the queue ID.
async fn send_tls(s: &TestServer, to: &str, params: &str, extra_header: &str) -> String {
    let mut c = tls_client(s).await;
    let r = c
        .cmd(&format!("MAIL FROM:<alice@sender.test>{params}"))
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    let msg = format!(
        "From: alice@sender.test\r\nTo: {to}\r\nSubject: secret plans\r\n{extra_header}\r\nThe secret body.\r\n.\r\n"
    );
    c.send(msg.as_bytes()).await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    r.last().rsplit(' ').next().unwrap().to_string()
}

/// `postern queue ARGS` with the server's configuration; its standard output.
async fn queue_cli(s: &TestServer, args: &[&str]) -> String {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("--config")
        .arg(s.dir.path().join("config.toml"))
        .arg("queue")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        o.status.success(),
        "queue {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Wait until a `.state` file in the queue contains `needle`; its text.
async fn state_with(s: &TestServer, needle: &str) -> String {
    let mut seen = String::new();
    for _ in 0..200 {
        for dir in ["queue/active", "queue/failed"] {
            for e in std::fs::read_dir(s.state().join(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.path().extension().is_some_and(|x| x == "state") {
                    seen = std::fs::read_to_string(e.path()).unwrap_or_default();
                    if seen.contains(needle) {
                        return seen;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no state containing {needle:?}; last seen: {seen}");
}

#[tokio::test]
async fn ehlo_offers_requiretls_only_inside_tls_and_never_after_helo() {
    let w = World::new().await;
    let a = w.sender(closed_port(), "").await;
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    let r = c.cmd("EHLO client.test").await;
    assert!(r.has_line("STARTTLS"), "{r:?}");
    assert!(!r.has_line("REQUIRETLS"), "offered in plaintext: {r:?}");
    let (cfg, _) = tls::client_config(None);
    c.starttls(cfg).await;
    let r = c.cmd("EHLO client.test").await;
    assert!(r.has_line("REQUIRETLS"), "{r:?}");
    assert!(!r.has_line("STARTTLS"), "{r:?}");
    // HELO has no extensions, and MAIL parameters need EHLO.
    let r = c.cmd("HELO client.test").await;
    assert!(!r.text().contains("REQUIRETLS"), "{r:?}");
    let r = c.cmd("MAIL FROM:<alice@sender.test> REQUIRETLS").await;
    assert_eq!(r.code, 555, "{r:?}");
}

#[tokio::test]
async fn mail_from_requiretls_over_plaintext_is_refused() {
    let w = World::new().await;
    let a = w.sender(closed_port(), "").await;
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    let r = c.cmd("MAIL FROM:<alice@sender.test> REQUIRETLS").await;
    assert_eq!(
        r.last(),
        "530 5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first (RFC 8689)"
    );
    // The session goes on: the same sender without the demand is fine.
    let r = c.cmd("MAIL FROM:<alice@sender.test>").await;
    assert_eq!(r.code, 250, "{r:?}");
    c.cmd("RSET").await;
    // Syntax: no value, no duplicates (the parser's 501s).
    let r = c.cmd("MAIL FROM:<alice@sender.test> REQUIRETLS=YES").await;
    assert_eq!(
        r.last(),
        "501 5.5.4 Invalid parameter: REQUIRETLS takes no value"
    );
    let mut c = tls_client(&a).await;
    let r = c
        .cmd("MAIL FROM:<alice@sender.test> REQUIRETLS requiretls")
        .await;
    assert_eq!(
        r.last(),
        "501 5.5.4 Invalid parameter: parameter given twice"
    );
    let r = c.cmd("MAIL FROM:<alice@sender.test> REQUIRETLS").await;
    assert_eq!(r.code, 250, "{r:?}");
}

#[tokio::test]
async fn the_flags_are_stored_and_shown_by_queue_show() {
    let w = World::new().await;
    // partner.test's MX is on a closed port: the messages wait in the queue.
    let a = w.sender(closed_port(), "").await;
    let required = send_tls(&a, "bob@partner.test", " REQUIRETLS", "").await;
    let optional = send_tls(&a, "bob@partner.test", "", "TLS-Required: No\r\n").await;
    let both = send_tls(
        &a,
        "bob@partner.test",
        " REQUIRETLS",
        "TLS-Required: No\r\n",
    )
    .await;
    let neither = send_tls(&a, "bob@partner.test", "", "").await;
    // BDAT scans the header section too.
    let mut c = tls_client(&a).await;
    assert_eq!(c.cmd("MAIL FROM:<alice@sender.test>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<bob@partner.test>").await.code, 250);
    let body = "Subject: chunked\r\ntls-required:  no\r\n\r\nHello.\r\n";
    c.send(format!("BDAT {} LAST\r\n{body}", body.len()).as_bytes())
        .await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    let chunked = r.last().rsplit(' ').next().unwrap().to_string();
    let show = queue_cli(&a, &["show", &chunked]).await;
    assert!(show.contains("\nTLS-Required: No (RFC 8689"), "{show}");

    let show = queue_cli(&a, &["show", &required]).await;
    assert!(show.contains("\nREQUIRETLS: yes"), "{show}");
    assert!(!show.contains("TLS-Required: No ("), "{show}");

    let show = queue_cli(&a, &["show", &optional]).await;
    assert!(show.contains("\nTLS-Required: No (RFC 8689"), "{show}");
    assert!(!show.contains("REQUIRETLS: yes"), "{show}");

    // RFC 8689 §4.1: with REQUIRETLS the header field is ignored.
    let show = queue_cli(&a, &["show", &both]).await;
    assert!(show.contains("\nREQUIRETLS: yes"), "{show}");
    assert!(!show.contains("TLS-Required: No ("), "{show}");

    let show = queue_cli(&a, &["show", &neither]).await;
    assert!(!show.contains("REQUIRETLS: yes"), "{show}");
    assert!(!show.contains("TLS-Required: No ("), "{show}");

    let json = queue_cli(&a, &["show", "--json", &required]).await;
    assert!(json.contains("\"requiretls\": true"), "{json}");
    // The record on disk says it plainly.
    let record =
        std::fs::read_to_string(a.state().join(format!("queue/active/{required}.msg"))).unwrap();
    assert!(record.contains("\nrequiretls: yes\n"), "{record}");
    let record =
        std::fs::read_to_string(a.state().join(format!("queue/active/{optional}.msg"))).unwrap();
    assert!(record.contains("\ntls-required: no\n"), "{record}");
}

/// Bounce text for alice (A's local user), waiting for it.
async fn bounce_for_alice(a: &TestServer) -> String {
    let got = a.wait_delivered("alice", 1).await;
    String::from_utf8_lossy(&got[0]).into_owned()
}

fn assert_headers_only_5_7_30(bounce: &str, why: &str) {
    let flat = bounce.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "Subject: Undelivered Mail Returned to Sender",
        "Status: 5.7.30",
        why,
        "Content-Type: text/rfc822-headers",
        "Subject: secret plans",
        "Your message was sent with REQUIRETLS (RFC 8689)",
    ] {
        assert!(flat.contains(want), "missing {want:?} in\n{bounce}");
    }
    assert!(
        !bounce.contains("The secret body."),
        "the body came back:\n{bounce}"
    );
}

#[tokio::test]
async fn a_next_hop_without_requiretls_gets_nothing_and_the_sender_a_5_7_30_bounce() {
    let w = World::new().await;
    // TLS with a certificate A verifies, but no REQUIRETLS after STARTTLS.
    let fake = FakeSmtp::start(FakeOpts {
        starttls: true,
        tls: Some(w.server_tls()),
        ..FakeOpts::default()
    })
    .await;
    let a = w
        .sender(fake.addr.port(), &VERIFY.replace("CA_FILE", &w.ca_file()))
        .await;
    send_tls(&a, "bob@partner.test", " REQUIRETLS", "").await;
    let bounce = bounce_for_alice(&a).await;
    assert_headers_only_5_7_30(
        &bounce,
        "5.7.30 REQUIRETLS: next hop mx.partner.test[127.0.0.1] did not offer REQUIRETLS",
    );
    let cmds = fake.commands();
    assert!(
        cmds.iter().filter(|c| c.starts_with("EHLO")).count() == 2,
        "STARTTLS and a second EHLO came first: {cmds:?}"
    );
    assert!(
        !cmds.iter().any(|c| c.starts_with("MAIL")),
        "MAIL was sent: {cmds:?}"
    );
    assert!(fake.messages().is_empty());
    // An ordinary message goes to the same server.
    send_tls(&a, "carol@partner.test", "", "").await;
    for _ in 0..200 {
        if !fake.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(fake.messages().len(), 1, "{:?}", fake.commands());
    assert!(
        fake.commands()
            .iter()
            .any(|c| c == "MAIL FROM:<alice@sender.test>"),
        "{:?}",
        fake.commands()
    );
}

#[tokio::test]
async fn requiretls_offered_in_plaintext_is_not_believed() {
    let w = World::new().await;
    // No STARTTLS, but REQUIRETLS in the (plaintext) EHLO reply.
    let fake = FakeSmtp::start(FakeOpts {
        requiretls: true,
        ..FakeOpts::default()
    })
    .await;
    let a = w.sender(fake.addr.port(), "").await;
    send_tls(&a, "bob@partner.test", " REQUIRETLS", "").await;
    let bounce = bounce_for_alice(&a).await;
    assert_headers_only_5_7_30(
        &bounce,
        "5.7.30 REQUIRETLS: no TLS session with next hop mx.partner.test[127.0.0.1]",
    );
    assert!(
        !fake.commands().iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        fake.commands()
    );
}

#[tokio::test]
async fn a_second_postern_offers_requiretls_and_gets_it_passed_on() {
    let w = World::new().await;
    let b = w.next_hop(closed_port()).await;
    // The host is named by a [[route]], not found in (unsigned) DNS: condition 1 holds;
    // the verify policy authenticates its certificate: condition 2.
    let a = w
        .sender(
            b.addr().port(),
            &(VERIFY.replace("CA_FILE", &w.ca_file()) + ROUTE_TO_MX_HOST),
        )
        .await;
    let id = send_tls(&a, "bob@partner.test", " REQUIRETLS", "").await;
    // A hands it over (its queue empties) and B holds it with the flag.
    state_with(&b, "deferred").await;
    for _ in 0..200 {
        if a.queued() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(a.queued(), 0, "A still holds {id}");
    assert!(a.delivered("alice").is_empty(), "A bounced it");
    let list = queue_cli(&b, &["list", "--json"]).await;
    let b_id = list
        .split("\"id\": \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no message in B's queue: {list}"))
        .to_string();
    let show = queue_cli(&b, &["show", &b_id]).await;
    assert!(show.contains("\nREQUIRETLS: yes"), "{show}");
    assert!(show.contains("with ESMTPS"), "{show}");
}

#[tokio::test]
async fn an_mx_from_unsigned_dns_is_not_enough_for_requiretls() {
    let w = World::new().await;
    // B offers REQUIRETLS and A verifies its certificate, but the MX record that named
    // it is not DNSSEC-signed and partner.test has no MTA-STS policy.
    let b = w.next_hop(closed_port()).await;
    let a = w
        .sender(b.addr().port(), &VERIFY.replace("CA_FILE", &w.ca_file()))
        .await;
    send_tls(&a, "bob@partner.test", " REQUIRETLS", "").await;
    let bounce = bounce_for_alice(&a).await;
    assert_headers_only_5_7_30(
        &bounce,
        "5.7.30 REQUIRETLS: the MX records of partner.test are not DNSSEC-signed and partner.test has no MTA-STS policy in enforce mode",
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.queued(), 0, "B received it");
}

#[tokio::test]
async fn an_unauthenticated_certificate_is_not_enough_for_requiretls() {
    let w = World::new().await;
    // The host comes from a [[route]], B offers REQUIRETLS, but A's level is the default
    // `may`: TLS, certificate not checked.
    let b = w.next_hop(closed_port()).await;
    let a = w.sender(b.addr().port(), ROUTE_TO_MX_HOST).await;
    send_tls(&a, "bob@partner.test", " REQUIRETLS", "").await;
    let bounce = bounce_for_alice(&a).await;
    assert_headers_only_5_7_30(
        &bounce,
        "5.7.30 REQUIRETLS: the certificate of next hop mx.partner.test[127.0.0.1] was not authenticated",
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.queued(), 0, "B received it");
}

/// Wait until B holds `n` messages.
async fn b_holds(b: &TestServer, n: usize) {
    for _ in 0..200 {
        if b.queued() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("B holds {} messages, not {n}", b.queued());
}

#[tokio::test]
async fn tls_required_no_waives_dane_for_that_message_only() {
    let w = World::new().await;
    let b = w.next_hop(closed_port()).await;
    // dane-only as the default level, and partner.test's DNS is not signed: every
    // message defers with 4.7.5, except one that says TLS-Required: No.
    let a = w.sender(b.addr().port(), "tls = \"dane-only\"\n").await;
    send_tls(&a, "bob@partner.test", "", "").await;
    state_with(&a, "policy dane-only requires DANE").await;
    send_tls(&a, "carol@partner.test", "", "TLS-Required: No\r\n").await;
    b_holds(&b, 1).await;
    let list = queue_cli(&b, &["list", "--json"]).await;
    assert!(list.contains("carol@partner.test"), "{list}");
    assert!(!list.contains("bob@partner.test"), "{list}");
}

/// The resolver here does not validate (the test DNS server sets no AD bit): the
/// start-up probe says so, and a dane-only deferral names that as the reason.
#[tokio::test]
async fn dane_only_names_the_failed_dnssec_probe() {
    common::capture_logs();
    let w = World::new().await;
    let b = w.next_hop(closed_port()).await;
    let a = w.sender(b.addr().port(), "tls = \"dane-only\"\n").await;
    // The probe runs in the background at start: wait for its warning (this test's
    // DNS server's address tells it from the other tests').
    let via = w.dns.addr().to_string();
    let probed = || {
        common::log_lines("DNSSEC validation unavailable: probe")
            .iter()
            .any(|l| l.contains(&via))
    };
    for _ in 0..200 {
        if probed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(probed(), "no probe warning for {via}");
    send_tls(&a, "bob@partner.test", "", "").await;
    let state = state_with(&a, "policy dane-only requires DANE").await;
    assert!(
        state.contains("DNSSEC validation unavailable at start-up (the probe: "),
        "{state}"
    );
    assert_eq!(b.queued(), 0);
}

#[tokio::test]
async fn tls_required_no_is_ignored_when_configured_so() {
    let w = World::new().await;
    let b = w.next_hop(closed_port()).await;
    let a = w
        .sender(
            b.addr().port(),
            "tls = \"dane-only\"\nhonour_tls_required_no = false\n",
        )
        .await;
    send_tls(&a, "carol@partner.test", "", "TLS-Required: No\r\n").await;
    state_with(&a, "policy dane-only requires DANE").await;
    assert_eq!(b.queued(), 0);
}

#[tokio::test]
async fn tls_required_no_never_waives_a_local_policy_entry() {
    let w = World::new().await;
    let b = w.next_hop(closed_port()).await;
    let a = w
        .sender(
            b.addr().port(),
            "[[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"dane-only\"\n",
        )
        .await;
    send_tls(&a, "carol@partner.test", "", "TLS-Required: No\r\n").await;
    state_with(&a, "policy dane-only requires DANE").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.queued(), 0);
}
