//! Partner mutual TLS inbound (issue #5): `[[inbound.partner]]` rules at MAIL FROM for each
//! way a client certificate can fail (none, wrong CA, revoked by CRL, wrong fingerprint,
//! wrong name) and the right one; relay permission by certificate; the Received header;
//! `require` refusing a revoked certificate in the handshake.

#![allow(clippy::unwrap_used)]

mod common;

use common::{SmtpClient, TestServer};
use postern_test_support::ca::{IssueOpts, Issued, TestCa, sha256_fingerprint};
use postern_test_support::tls::client_config_with;

struct World {
    dir: tempfile::TempDir,
    partner_ca: TestCa,
    other_ca: TestCa,
    good: Issued,
    wrong_name: Issued,
    revoked: Issued,
    foreign: Issued,
    pinned: Issued,
    relay: Issued,
}

impl World {
    fn new() -> World {
        let partner_ca = TestCa::new("Partner CA");
        let other_ca = TestCa::new("Other CA");
        World {
            dir: tempfile::tempdir().unwrap(),
            good: partner_ca.issue_client("mx.partner.test", IssueOpts::default()),
            wrong_name: partner_ca.issue_client("mx.elsewhere.test", IssueOpts::default()),
            revoked: partner_ca.issue_client("mx.partner.test", IssueOpts::default()),
            foreign: other_ca.issue_client("mx.partner.test", IssueOpts::default()),
            pinned: other_ca.issue_client("pinned.test", IssueOpts::rsa()),
            relay: partner_ca.issue_client("relay.partner.test", IssueOpts::default()),
            partner_ca,
            other_ca,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A server with a `client_certificates = mode` listener: client_ca holds both CAs
    /// (so that the partner's own `ca` decides), the CRL revokes `revoked`.
    async fn server(&self, mode: &str, trusted: &[String]) -> TestServer {
        let d = self.dir.path();
        std::fs::write(
            d.join("client-cas.pem"),
            format!("{}{}", self.partner_ca.cert_pem(), self.other_ca.cert_pem()),
        )
        .unwrap();
        self.partner_ca.write_ca(d, "partner-ca");
        std::fs::write(
            d.join("partner.crl"),
            self.partner_ca.crl_pem(&[&self.revoked]),
        )
        .unwrap();
        let sdir = tempfile::tempdir().unwrap();
        let state = sdir.path().join("state");
        let text = format!(
            r#"
[server]
hostname = "mx.postern.test"
state_dir = "{state}"

[[listener]]
address = "127.0.0.1:0"
client_certificates = "{mode}"
client_ca = "{cas}"
crl = ["{crl}"]

[relay]
local_domains = ["local.test"]
trusted_client_certificates = [{trusted}]

[[route]]
domain = "local.test"
next_hop = "maildir:mail"

[[route]]
domain = "remote.test"
next_hop = "maildir:remote"

[[inbound.partner]]
domains = ["partner.test"]
ca = "{pca}"
names = ["mx.partner.test"]

[[inbound.partner]]
domains = [".pinned.test"]
fingerprints = ["{pin}"]

[[inbound.partner]]
domains = ["relaying.test"]
ca = "{pca}"
names = ["relay.partner.test"]
may_relay = true
"#,
            state = state.display(),
            cas = self.path("client-cas.pem"),
            crl = self.path("partner.crl"),
            pca = self.path("partner-ca.pem"),
            pin = sha256_fingerprint(&self.pinned.der),
            trusted = trusted
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", "),
        );
        TestServer::start_with(sdir, &text).await
    }
}

/// EHLO, STARTTLS presenting `cert` (or none), EHLO again.
async fn tls_session(s: &TestServer, cert: Option<&Issued>) -> SmtpClient {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    let (cfg, _) = client_config_with(
        rustls::crypto::aws_lc_rs::default_provider(),
        None,
        cert.map(|i| (i.chain_der(), i.key_der())),
    );
    c.starttls(cfg).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    c
}

async fn mail_from(s: &TestServer, cert: Option<&Issued>, from: &str) -> String {
    let mut c = tls_session(s, cert).await;
    c.cmd(&format!("MAIL FROM:<{from}>")).await.last()
}

#[tokio::test]
async fn partner_mail_needs_tls_and_the_right_certificate() {
    let w = World::new();
    let s = w.server("request", &[]).await;

    // Plaintext: 530, for partner senders only.
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    let r = c.cmd("MAIL FROM:<alice@partner.test>").await;
    assert_eq!(r.code, 530, "{r:?}");
    assert!(r.last().starts_with("530 5.7.0 "), "{r:?}");
    assert_eq!(c.cmd("MAIL FROM:<alice@stranger.test>").await.code, 250);

    // TLS without a certificate.
    let r = mail_from(&s, None, "alice@partner.test").await;
    assert_eq!(
        r,
        "530 5.7.0 TLS with a client certificate is required for this sender"
    );

    // Each wrong certificate: the same generic 550 (the log has the precise reason).
    let refused = "550 5.7.1 Client certificate not authorized for this sender";
    for (what, cert) in [
        ("wrong CA", &w.foreign),
        ("revoked", &w.revoked),
        ("wrong name", &w.wrong_name),
    ] {
        assert_eq!(
            mail_from(&s, Some(cert), "alice@partner.test").await,
            refused,
            "{what}"
        );
    }
    // Fingerprint partner: the pinned certificate passes, another one does not.
    assert_eq!(
        mail_from(&s, Some(&w.good), "bob@a.pinned.test").await,
        refused
    );
    assert!(
        mail_from(&s, Some(&w.pinned), "bob@a.pinned.test")
            .await
            .starts_with("250")
    );

    // The right certificate: accepted and delivered, Received names its subject.
    let mut c = tls_session(&s, Some(&w.good)).await;
    let r = c
        .send_mail(
            "alice@partner.test",
            &["bob@local.test"],
            b"Subject: partner\r\n\r\nhello\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let got = s.wait_delivered("bob", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(
        text.contains("(verified client certificate \"CN=mx.partner.test\")"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn relay_permission_by_client_certificate() {
    let w = World::new();
    let trusted = sha256_fingerprint(&w.pinned.der);
    let s = w.server("request", &[trusted]).await;
    for (what, cert, code) in [
        ("no certificate", None, 554),
        ("certificate of no relay partner", Some(&w.good), 554),
        (
            "fingerprint in trusted_client_certificates",
            Some(&w.pinned),
            250,
        ),
        ("partner with may_relay", Some(&w.relay), 250),
    ] {
        let mut c = tls_session(&s, cert).await;
        assert_eq!(c.cmd("MAIL FROM:<x@stranger.test>").await.code, 250);
        let r = c.cmd("RCPT TO:<carol@remote.test>").await;
        assert_eq!(r.code, code, "{what}: {r:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn require_refuses_a_revoked_certificate_in_the_handshake() {
    let w = World::new();
    let s = w.server("require", &[]).await;
    let try_tls = |cert: Option<&Issued>| {
        let (cfg, _) = client_config_with(
            rustls::crypto::aws_lc_rs::default_provider(),
            None,
            cert.map(|i| (i.chain_der(), i.key_der())),
        );
        cfg
    };
    for (what, cert) in [("revoked", Some(&w.revoked)), ("none", None)] {
        let mut c = SmtpClient::connect_greeted(s.addr()).await;
        c.cmd("EHLO client.test").await;
        assert_eq!(c.cmd("STARTTLS").await.code, 220);
        // TLS 1.3: the refusal arrives after the client's handshake completes.
        let ok = c.tls(try_tls(cert)).await.is_ok()
            && c.send_raw(b"EHLO client.test\r\n").await.is_ok()
            && c.try_reply().await.is_ok_and(|r| r.code == 250);
        assert!(!ok, "{what} certificate must be refused");
    }
    assert!(
        mail_from(&s, Some(&w.good), "alice@partner.test")
            .await
            .starts_with("250")
    );
    s.stop().await;
}
