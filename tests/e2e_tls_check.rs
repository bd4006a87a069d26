//! TLS profiles, certificate lifecycle and the scanner (issue #5): profile negotiation with
//! a dual certificate set, reload under a live session, check-config certificate reports
//! and refusals, and `tls-check` against Postern under each profile and against an
//! `openssl s_server` that accepts TLS 1.0 with a CBC suite.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_test_support::ca::{IssueOpts, TestCa};
use postern_test_support::tls::client_config_with;
use postern_tls::Profile;
use postern_tls::x509::{CertInfo, KeyKind};

/// A server with an ECDSA P-256 and an RSA-2048 certificate from `ca`, under `profile`.
async fn dual_server(ca: &TestCa, dir: &Path, profile: &str, listener_extra: &str) -> TestServer {
    let (ec_chain, ec_key) = ca
        .issue_server(&["mx.postern.test"], IssueOpts::default())
        .write(dir, "ec");
    let (rsa_chain, rsa_key) = ca
        .issue_server(&["mx.postern.test"], IssueOpts::rsa())
        .write(dir, "rsa");
    TestServer::start(
        listener_extra,
        &format!(
            "[tls]\nprofile = \"{profile}\"\n[[tls.certificate]]\nchain = \"{}\"\nkey = \"{}\"\n[[tls.certificate]]\nchain = \"{}\"\nkey = \"{}\"\n",
            ec_chain.display(),
            ec_key.display(),
            rsa_chain.display(),
            rsa_key.display()
        ),
    )
    .await
}

async fn handshake(
    s: &TestServer,
    provider: rustls::crypto::CryptoProvider,
    schemes: Option<Vec<rustls::SignatureScheme>>,
) -> Result<(String, CertInfo), String> {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("STARTTLS").await.code, 220);
    let (cfg, seen) = client_config_with(provider, schemes, None);
    c.tls(cfg).await?;
    let r = c.cmd("EHLO client.test").await;
    assert_eq!(r.code, 250);
    let (_, suite) = c.tls_info().unwrap();
    let der = seen.seen.lock().unwrap().clone().unwrap();
    Ok((suite, CertInfo::parse(&der).unwrap()))
}

#[tokio::test]
async fn suite_b_client_gets_ecdsa_p256_and_aes_128_gcm() {
    let ca = TestCa::new("Test CA");
    let dir = tempfile::tempdir().unwrap();
    let s = dual_server(&ca, dir.path(), "ncsc-suite-b", "").await;
    let (suite, cert) = handshake(&s, postern_tls::provider(Profile::NcscSuiteB), None)
        .await
        .unwrap();
    assert_eq!(suite, "TLS13_AES_128_GCM_SHA256");
    assert_eq!(
        cert.key,
        KeyKind::Ec {
            curve: "P-256".into()
        }
    );
    // A client that can only verify RSA gets nothing under Suite B.
    let rsa_only = vec![
        rustls::SignatureScheme::RSA_PSS_SHA256,
        rustls::SignatureScheme::RSA_PKCS1_SHA256,
    ];
    assert!(
        handshake(&s, postern_tls::provider(Profile::Default), Some(rsa_only))
            .await
            .is_err()
    );
    s.stop().await;
}

#[tokio::test]
async fn rsa_only_client_gets_the_rsa_certificate_of_the_dual_set() {
    let ca = TestCa::new("Test CA");
    let dir = tempfile::tempdir().unwrap();
    let s = dual_server(&ca, dir.path(), "default", "").await;
    let (_, cert) = handshake(&s, postern_tls::provider(Profile::Default), None)
        .await
        .unwrap();
    assert!(
        matches!(cert.key, KeyKind::Ec { .. }),
        "ECDSA first: {cert:?}"
    );
    let rsa_only = vec![
        rustls::SignatureScheme::RSA_PSS_SHA256,
        rustls::SignatureScheme::RSA_PKCS1_SHA256,
    ];
    let (_, cert) = handshake(&s, postern_tls::provider(Profile::Default), Some(rsa_only))
        .await
        .unwrap();
    assert_eq!(cert.key, KeyKind::Rsa { bits: 2048 });
    s.stop().await;
}

#[tokio::test]
async fn reload_under_a_live_session() {
    let ca = TestCa::new("Test CA");
    let dir = tempfile::tempdir().unwrap();
    let (chain, key) = ca
        .issue_server(&["old.postern.test"], IssueOpts::default())
        .write(dir.path(), "srv");
    let s = TestServer::start(
        "",
        &format!(
            "[[tls.certificate]]\nchain = \"{}\"\nkey = \"{}\"\n",
            chain.display(),
            key.display()
        ),
    )
    .await;
    // A session in TLS with the old certificate, mid-transaction.
    let mut live = SmtpClient::connect_greeted(s.addr()).await;
    live.cmd("EHLO client.test").await;
    let (cfg, seen) = client_config_with(postern_tls::provider(Profile::Default), None, None);
    live.starttls(cfg).await;
    live.cmd("EHLO client.test").await;
    assert_eq!(live.cmd("MAIL FROM:<a@stranger.test>").await.code, 250);
    let old = CertInfo::parse(seen.seen.lock().unwrap().as_ref().unwrap()).unwrap();
    assert_eq!(old.sans, vec!["old.postern.test"]);

    // New files, reload: the live session goes on, new sessions get the new certificate.
    ca.issue_server(&["new.postern.test"], IssueOpts::rsa())
        .write(dir.path(), "srv");
    let report = s.running.as_ref().unwrap().reload_tls();
    assert!(report.ok(), "{report:?}");
    assert_eq!(live.cmd("RCPT TO:<bob@local.test>").await.code, 250);
    assert_eq!(live.cmd("DATA").await.code, 354);
    live.send(b"Subject: across a reload\r\n\r\nstill here\r\n.\r\n")
        .await;
    assert_eq!(live.reply().await.code, 250);
    s.wait_delivered("bob", 1).await;
    let (_, cert) = handshake(&s, postern_tls::provider(Profile::Default), None)
        .await
        .unwrap();
    assert_eq!(cert.sans, vec!["new.postern.test"]);

    // A broken file: the reload says why, and the previous certificate keeps serving.
    std::fs::write(&key, "not a key").unwrap();
    let report = s.running.as_ref().unwrap().reload_tls();
    assert!(!report.ok());
    assert!(
        report.failed[0].contains("previous certificates stay in use"),
        "{report:?}"
    );
    let (_, cert) = handshake(&s, postern_tls::provider(Profile::Default), None)
        .await
        .unwrap();
    assert_eq!(cert.sans, vec!["new.postern.test"]);
    s.stop().await;
}

fn check_config(text: &str, dir: &Path) -> (i32, String) {
    let f = dir.join("check.toml");
    std::fs::write(&f, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["check-config", "-c"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn config_with(dir: &Path, profile: &str, certs: &[(PathBuf, PathBuf)]) -> String {
    let mut t = format!(
        "[server]\nhostname = \"mx.postern.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n[relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n[tls]\nprofile = \"{profile}\"\n",
        dir.join("state").display()
    );
    for (c, k) in certs {
        t.push_str(&format!(
            "[[tls.certificate]]\nchain = \"{}\"\nkey = \"{}\"\n",
            c.display(),
            k.display()
        ));
    }
    t
}

#[test]
fn check_config_reports_certificates_and_refuses_what_cannot_serve() {
    let ca = TestCa::new("Report CA");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = ca
        .issue_server(&["mx.postern.test", "postern.test"], IssueOpts::default())
        .write(d, "ec");
    let rsa = ca
        .issue_server(&["mx.postern.test"], IssueOpts::rsa())
        .write(d, "rsa");
    let (code, out) = check_config(
        &config_with(d, "ncsc-suite-b", &[ec.clone(), rsa.clone()]),
        d,
    );
    assert_eq!(code, 0, "{out}");
    for want in [
        "TLS profile: ncsc-suite-b",
        "subject:   CN=mx.postern.test",
        "names:     mx.postern.test, postern.test",
        "key:       ECDSA P-256",
        "key:       RSA 2048 bits",
        "signature: ecdsa-with-SHA256",
        "issuer:    CN=Report CA, O=Postern tests",
        "expires:   ",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // Suite B with only an RSA certificate, Foundation with only ECDSA: refused.
    let (code, out) = check_config(
        &config_with(d, "ncsc-suite-b", std::slice::from_ref(&rsa)),
        d,
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("tls.profile: profile \"ncsc-suite-b\" cannot be served"),
        "{out}"
    );
    assert!(out.contains("needs an ECDSA P-256 certificate"), "{out}");
    let (code, out) = check_config(&config_with(d, "ncsc-foundation", &[ec]), d);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("needs an RSA certificate of at least 2048 bits"),
        "{out}"
    );
    // RSA-1024 signed with SHA-1 (made by openssl, when present).
    if let Some(weak) = openssl_weak_cert(d) {
        let (code, out) = check_config(&config_with(d, "default", &[weak]), d);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains("RSA key of 1024 bits is below the 2048 bits"),
            "{out}"
        );
        assert!(
            out.contains("signed with sha1WithRSAEncryption, a broken hash"),
            "{out}"
        );
    } else {
        eprintln!("skipped the RSA-1024/SHA-1 case: openssl not found");
    }
}

fn openssl_weak_cert(d: &Path) -> Option<(PathBuf, PathBuf)> {
    let (c, k) = (d.join("weak.crt"), d.join("weak.key"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:1024", "-sha1", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=weak.postern.test", "-keyout"])
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .output()
        .ok()?
        .status
        .success();
    ok.then_some((c, k))
}

async fn scan(
    addr: std::net::SocketAddr,
    implicit: bool,
    profile: Profile,
    ca: Option<PathBuf>,
) -> postern_scan::Report {
    let t =
        postern_scan::Target::parse(&addr.to_string(), implicit, Some("mx.postern.test".into()))
            .unwrap();
    postern_scan::scan(
        &t,
        &postern_scan::Options {
            profile,
            ca,
            client_cert: None,
        },
    )
    .await
    .unwrap()
}

fn failed(r: &postern_scan::Report) -> Vec<String> {
    r.requirements
        .iter()
        .filter(|q| !q.pass)
        .map(|q| format!("{}: {}", q.requirement, q.reason))
        .collect()
}

#[tokio::test]
async fn scanner_passes_postern_under_each_profile() {
    let dir = tempfile::tempdir().unwrap();
    for profile in Profile::ALL {
        // Foundation wants RSA signatures on the certificate too: an RSA CA.
        let ca = match profile {
            Profile::NcscFoundation => TestCa::new_rsa("Scan RSA CA"),
            _ => TestCa::new("Scan CA"),
        };
        let ca_file = ca.write_ca(dir.path(), profile.as_str());
        let s = dual_server(&ca, dir.path(), profile.as_str(), "").await;
        let r = scan(s.addr(), false, profile, Some(ca_file.clone())).await;
        assert!(
            r.pass,
            "{profile}: {:?}\n{}",
            failed(&r),
            postern_scan::render_text(&r)
        );
        let v: Vec<_> = r
            .versions
            .iter()
            .filter(|v| v.accepted)
            .map(|v| v.version.as_str())
            .collect();
        assert_eq!(v, ["TLSv1.2", "TLSv1.3"], "{profile}");
        if profile == Profile::NcscSuiteB {
            let tls12: Vec<_> = r.suites[0].suites.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(tls12, ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]);
            assert!(
                r.groups.iter().all(|g| g.groups == ["secp256r1"]),
                "{:?}",
                r.groups
            );
        }
        if profile == Profile::Default {
            // The default profile offers more than Suite B allows: the scan says so.
            let strict = scan(s.addr(), false, Profile::NcscSuiteB, Some(ca_file.clone())).await;
            assert!(!strict.pass);
            let f = failed(&strict).join("\n");
            assert!(
                f.contains("TLSv1.2 cipher suites: outside the profile"),
                "{f}"
            );
            assert!(
                f.contains("key exchange groups: outside the profile"),
                "{f}"
            );
            // Without --ca the test CA is not trusted.
            let untrusted = scan(s.addr(), false, Profile::Default, None).await;
            assert!(
                failed(&untrusted)
                    .join("\n")
                    .contains("certificate trusted")
            );
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn scanner_tests_a_partners_mutual_tls() {
    let ca = TestCa::new("mTLS CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_ca(dir.path(), "ca");
    let s = dual_server(
        &ca,
        dir.path(),
        "default",
        &format!(
            "client_certificates = \"require\"\nclient_ca = \"{}\"",
            ca_file.display()
        ),
    )
    .await;
    let (chain, key) = ca
        .issue_client("mx.partner.test", IssueOpts::default())
        .write(dir.path(), "client");
    let cert =
        postern_tls::LoadedCert::load(&chain, &key, &postern_tls::provider(Profile::Default))
            .unwrap();
    let t = postern_scan::Target::parse(&s.addr().to_string(), false, None).unwrap();
    let mut opts = postern_scan::Options {
        profile: Profile::Default,
        ca: Some(ca_file.clone()),
        client_cert: Some(cert),
    };
    let r = postern_scan::scan(&t, &opts).await.unwrap();
    assert!(
        r.client_certificate.as_ref().unwrap().ok,
        "{}",
        postern_scan::render_text(&r)
    );
    // Probes still see the versions and suites without a certificate.
    assert!(
        r.versions
            .iter()
            .any(|v| v.version == "TLSv1.2" && v.accepted)
    );
    let other = TestCa::new("Other CA");
    let (chain, key) = other
        .issue_client("mx.partner.test", IssueOpts::default())
        .write(dir.path(), "other");
    opts.client_cert = Some(
        postern_tls::LoadedCert::load(&chain, &key, &postern_tls::provider(Profile::Default))
            .unwrap(),
    );
    let r = postern_scan::scan(&t, &opts).await.unwrap();
    assert!(!r.client_certificate.as_ref().unwrap().ok);
    assert!(
        failed(&r)
            .join("\n")
            .contains("client certificate accepted")
    );
    s.stop().await;
}

/// `openssl s_server` accepting only TLS 1.0 with AES128-SHA (CBC, static RSA): the
/// scanner must flag the protocol and the suite.
#[tokio::test]
async fn scanner_flags_tls10_and_cbc_on_openssl_s_server() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: openssl not found");
        return;
    }
    let ca = TestCa::new("Legacy CA");
    let dir = tempfile::tempdir().unwrap();
    let (chain, key) = ca
        .issue_server(&["legacy.postern.test"], IssueOpts::rsa())
        .write(dir.path(), "legacy");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // SECLEVEL=0: OpenSSL 3 refuses TLS 1.0 (SHA-1 signatures) at its default level 1+.
    let mut server = tokio::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-no_dhe",
            "-tls1",
            "-cipher",
            "AES128-SHA@SECLEVEL=0",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}"), "-cert"])
        .arg(&chain)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = scan(
        addr,
        true,
        Profile::Default,
        Some(ca.write_ca(dir.path(), "ca")),
    )
    .await;
    let _ = server.kill().await;
    let text = postern_scan::render_text(&r);
    assert!(!r.pass, "{text}");
    assert!(
        r.versions
            .iter()
            .any(|v| v.version == "TLSv1.0" && v.accepted),
        "{text}"
    );
    assert!(
        !r.versions
            .iter()
            .any(|v| v.version == "TLSv1.2" && v.accepted),
        "{text}"
    );
    let suites: Vec<_> = r.suites.iter().flat_map(|l| l.suites.iter()).collect();
    assert!(
        suites
            .iter()
            .any(|s| s.name == "TLS_RSA_WITH_AES_128_CBC_SHA"
                && s.weaknesses.iter().any(|w| w == "CBC mode")),
        "{text}"
    );
    let f = failed(&r).join("\n");
    assert!(
        f.contains("no protocol below TLS 1.2: the server accepts TLSv1.0"),
        "{f}"
    );
    assert!(
        f.contains("TLSv1.0 cipher suites: outside the profile"),
        "{f}"
    );
    // The chain was read from the TLS 1.0 handshake (rustls cannot speak it).
    assert_eq!(
        r.certificates[0].certificates[0].subject,
        "CN=legacy.postern.test"
    );
}
