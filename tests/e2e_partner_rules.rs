//! Partner-rule bypasses from the #11 security review, against the real server: IDN
//! sender domains in another spelling, a subject CN standing in for a name, and several
//! partners sharing the listener's CA pool.

#![allow(clippy::unwrap_used)]

mod common;

use common::{SmtpClient, TestServer};
use postern_test_support::ca::{IssueOpts, Issued, TestCa};
use postern_test_support::tls::client_config_with;

/// Regression (#11, item 6): the partner domain is configured in Unicode; its `xn--`
/// form and an upper-case non-ASCII spelling were accepted in plaintext.
#[tokio::test]
async fn idn_partner_domains_are_matched_in_every_spelling() {
    let s = TestServer::start(
        "",
        "[[inbound.partner]]\ndomains = [\"bücher.test\", \".Straße.test\"]\nrequire_tls = true\n",
    )
    .await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    for from in [
        "MAIL FROM:<a@bücher.test> SMTPUTF8",
        "MAIL FROM:<a@BÜCHER.TEST> SMTPUTF8",
        "MAIL FROM:<a@xn--bcher-kva.test>",
        "MAIL FROM:<a@XN--BCHER-KVA.test>",
        "MAIL FROM:<a@mx.xn--strae-oqa.test>",
        "MAIL FROM:<a@MX.STRAßE.test> SMTPUTF8",
    ] {
        let r = c.cmd(from).await;
        assert_eq!(r.code, 530, "{from}: {r:?}");
    }
    assert_eq!(c.cmd("MAIL FROM:<a@bucher.test>").await.code, 250);
}

struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Partner CA");
        ca.write_ca(dir.path(), "partner-ca");
        Pki { dir, ca }
    }

    fn ca_path(&self) -> String {
        self.dir.path().join("partner-ca.pem").display().to_string()
    }

    async fn server(&self) -> TestServer {
        let listener = format!(
            "client_certificates = \"request\"\nclient_ca = \"{}\"",
            self.ca_path()
        );
        let rest = format!(
            "[[inbound.partner]]\ndomains = [\"partner.test\"]\nca = \"{}\"\nnames = [\"mx.partner.test\"]\n",
            self.ca_path()
        );
        TestServer::start(&listener, &rest).await
    }
}

async fn mail_from_with(s: &TestServer, cert: &Issued, from: &str) -> String {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    let (cfg, _) = client_config_with(
        rustls::crypto::aws_lc_rs::default_provider(),
        None,
        Some((cert.chain_der(), cert.key_der())),
    );
    c.starttls(cfg).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    c.cmd(&format!("MAIL FROM:<{from}>")).await.last()
}

/// Regression (#11, item 6): the subject CN counted as a certificate name, bypassing
/// the CA's name constraints. Only subjectAltName dNSNames count.
#[tokio::test]
async fn a_subject_cn_is_not_a_certificate_name() {
    let pki = Pki::new();
    let s = pki.server().await;
    let cn_only = pki.ca.issue_client_named(
        "mx.partner.test",
        &["other.elsewhere.test"],
        IssueOpts::default(),
    );
    assert_eq!(
        mail_from_with(&s, &cn_only, "a@partner.test").await,
        "550 5.7.1 Client certificate not authorized for this sender"
    );
    let san = pki.ca.issue_client("mx.partner.test", IssueOpts::default());
    assert!(
        mail_from_with(&s, &san, "a@partner.test")
            .await
            .starts_with("250"),
    );
}

/// Regression (#11, item 6): an entry with names but neither ca nor fingerprints trusts
/// every CA in the listener's client_ca; next to other partners, check-config refuses it.
#[test]
fn check_config_refuses_names_alone_next_to_other_partners() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        format!(
            r#"[server]
state_dir = "{}"
[[listener]]
address = "127.0.0.1:2525"
[[inbound.partner]]
domains = ["a.test"]
names = ["mx.a.test"]
[[inbound.partner]]
domains = ["b.test"]
fingerprints = ["sha256:{}"]
"#,
            dir.path().join("state").display(),
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("inbound.partner[0].names") && stderr.contains("names alone"),
        "{stderr}"
    );
}
