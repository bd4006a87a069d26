//! End-to-end DANE (#12): Postern A sends with `dane` / `dane-only` to Postern B over real
//! sockets; the DNS is a signed tree on loopback (knot signs, unbound validates:
//! `postern_test_support::signed_dns`). Each case ends with the mail delivered (over TLS
//! where TLSA says so) or deferred with the precise reason, and never sent in plaintext
//! when TLSA records say otherwise. Both DNSSEC modes: `trust-ad` (unbound validates and
//! sets AD) and `validate` (hickory validates from the fake root's key).
//!
//! When knot/unbound cannot be installed, each test prints a loud SKIPPED message and
//! returns (`POSTERN_REQUIRE_DNSSEC_TREE=1` turns that into a failure).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_test_support::ca::{IssueOpts, TestCa, sha256_fingerprint, spki_der};
use postern_test_support::signed_dns::{SignedDnsTree, Zone};

#[derive(Clone, Copy, Debug)]
enum Mode {
    TrustAd,
    Validate,
    Off,
}

/// B's port (in TLSA owner names) and TLSA records in presentation format: `ee` pins B's
/// key (3 1 1), `ta` its CA's key (2 1 1), `other` a key B does not have.
struct Tlsa {
    port: u16,
    ee: String,
    ta: String,
    other: String,
}

/// A receiver B for `domain` (certificate for `mx.DOMAIN`, issued by `ca`), the signed
/// tree built by `zones` (given B's port, which TLSA owner names contain), and sender A at
/// `level` in DNSSEC `mode`. `None`: the tree is unavailable (skipped loudly).
struct Case {
    a: TestServer,
    b: TestServer,
    _tree: SignedDnsTree,
    _dir: tempfile::TempDir,
}

async fn case(
    domain: &str,
    ca: &TestCa,
    level: &str,
    mode: Mode,
    zones: impl FnOnce(&Tlsa) -> Vec<Zone>,
) -> Option<Case> {
    common::capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let mx = format!("mx.{domain}");
    let issued = ca.issue_server(&[mx.as_str()], IssueOpts::default());
    let (chain, key) = issued.write(dir.path(), "b");
    let bdir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"{mx}\"\nstate_dir = \"{state}\"\n\
             [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\n\
             [relay]\nlocal_domains = [\"{domain}\"]\n\
             [[route]]\ndomain = \"{domain}\"\nnext_hop = \"maildir:mail\"\n",
        state = bdir.path().join("state").display(),
        chain = chain.display(),
        key = key.display(),
    );
    let b = TestServer::start_with(bdir, &text).await;
    let port = b.addr().port();
    let tlsa = Tlsa {
        port,
        ee: format!("3 1 1 {}", sha256(&spki_der(&issued.der))),
        ta: format!("2 1 1 {}", sha256(&spki_der(ca.cert_der().as_ref()))),
        other: format!("3 1 1 {}", sha256(b"not the key of any certificate")),
    };
    let tree = SignedDnsTree::start(&zones(&tlsa))?;
    let resolver = match mode {
        Mode::TrustAd => format!(
            "nameservers = [\"{}\"]\ndnssec = \"trust-ad\"\n",
            tree.unbound_addr
        ),
        Mode::Off => format!(
            "nameservers = [\"{}\"]\ndnssec = \"off\"\n",
            tree.unbound_addr
        ),
        Mode::Validate => format!(
            "nameservers = [\"{}\"]\ndnssec = \"validate\"\ntrust_anchor = \"{}\"\n",
            tree.plain_addr,
            tree.root_dnskey.display()
        ),
    };
    let adir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
         [relay]\nlocal_domains = [\"sender.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
         [[route]]\ndomain = \"sender.test\"\nnext_hop = \"maildir:mail\"\n\
         [resolver]\n{resolver}\
         [queue]\nretry = [\"1h\"]\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\
         [outbound]\nport = {port}\nconnect_timeout = \"2s\"\ntls = \"{level}\"\n",
        state = adir.path().join("state").display(),
    );
    let a = TestServer::start_with(adir, &text).await;
    Some(Case {
        a,
        b,
        _tree: tree,
        _dir: dir,
    })
}

/// SHA-256 in hex, from the test CA's fingerprint helper.
fn sha256(b: &[u8]) -> String {
    sha256_fingerprint(b)
        .trim_start_matches("sha256:")
        .to_string()
}

/// The zone of `domain` (`secure`/`insecure`), with MX `mx.DOMAIN` at 127.0.0.1 and the
/// given TLSA records (`3 1 1 HEX`, ...) at `_PORT._tcp.mx`.
fn zone(domain: &str, secure: bool, port: u16, tlsa: &[String]) -> Zone {
    let mut z = if secure {
        Zone::secure(domain)
    } else {
        Zone::insecure(domain)
    };
    z = z.record("@ MX 10 mx").record("mx A 127.0.0.1");
    for t in tlsa {
        z = z.record(&format!("_{port}._tcp.mx TLSA {t}"));
    }
    z
}

/// `postern policy explain DOMAIN --resolve` against A's configuration file.
fn explain(a: &TestServer, domain: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["policy", "explain", domain, "--resolve", "-c"])
        .arg(a.dir.path().join("config.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Today's TLS-RPT report for policy domain `domain` from A's report store, once it has
/// `want` (the store syncs about once a second).
async fn tls_rpt(a: &TestServer, domain: &str, want: &str) -> String {
    let mut out = String::new();
    for _ in 0..40 {
        let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_postern"))
            .args(["reports", "show", "today", "--domain", domain, "-c"])
            .arg(a.dir.path().join("config.toml"))
            .output()
            .await
            .unwrap();
        out = String::from_utf8_lossy(&o.stdout).to_string();
        if out.contains(want) {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {want:?} in the TLS-RPT report for {domain}:\n{out}");
}

async fn send(a: &TestServer, to: &str) {
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    let msg = format!("From: alice@sender.test\r\nTo: {to}\r\nSubject: dane\r\n\r\nHello.\r\n");
    let r = c
        .send_mail("alice@sender.test", &[to], msg.as_bytes())
        .await;
    assert_eq!(r.code, 250, "{r:?}");
}

/// A state file's typed details (`{"status":"4.7.5","text":"..."}`) as the one-line
/// reason operators read (`4.7.5 ...`), so the assertions below name what the log says.
fn as_reason(state: &str) -> String {
    let mut out = String::new();
    for part in state.split("{\"status\":\"") {
        if out.is_empty() && !state.starts_with("{\"status") {
            out.push_str(part);
            continue;
        }
        match part.split_once("\",\"text\":\"") {
            Some((status, rest)) => {
                out.push_str(status);
                out.push(' ');
                out.push_str(&rest.replace("\\\"", "\""));
            }
            None => out.push_str(part),
        }
    }
    out
}

/// Wait until a `.state` file in A's queue contains `needle`; returns its text.
async fn deferred_with(a: &TestServer, needle: &str) -> String {
    let active = a.state().join("queue/active");
    let mut seen = String::new();
    for _ in 0..400 {
        for e in std::fs::read_dir(&active).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "state") {
                seen = as_reason(&std::fs::read_to_string(e.path()).unwrap_or_default());
                if seen.contains(needle) {
                    return seen;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no deferral containing {needle:?}; last state seen: {seen}");
}

/// The `postern_outbound_dane_total` sample for `result` on A's metrics endpoint.
async fn dane_metric(a: &TestServer, result: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = a.running.as_ref().unwrap().ops.metrics_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let want = format!("postern_outbound_dane_total{{result=\"{result}\"}} ");
    out.lines()
        .find_map(|l| l.strip_prefix(want.as_str()))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// B got the message, over TLS.
async fn delivered_over_tls(c: &Case) {
    let got = c.b.wait_delivered("bob", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("(using TLSv1."), "{text}");
}

async fn secure_match(mode: Mode, ta: bool) {
    let ca = TestCa::new("DANE Test CA");
    let d = if ta { "ta.test" } else { "ee.test" };
    let Some(c) = case(d, &ca, "dane", mode, |t| {
        let rec = if ta { &t.ta } else { &t.ee };
        vec![zone(d, true, t.port, std::slice::from_ref(rec))]
    })
    .await
    else {
        return;
    };
    send(&c.a, &format!("bob@{d}")).await;
    delivered_over_tls(&c).await;
    // The log says so as Postfix does (the port tells this test's B from the others').
    let peer = format!("mx.{d}[127.0.0.1]:{}", c.b.addr().port());
    let lines = common::log_lines(&format!("Verified TLS connection established to {peer}: "));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let lines = common::log_lines(&format!("{peer}: DANE: "));
    assert_eq!(lines.len(), 1, "{lines:?}");
    // The registry is per process and these tests share one: at least this delivery.
    assert!(dane_metric(&c.a, "verified").await >= 1.0);
    // For DANE the TLS-RPT policy domain is the MX host (RFC 8460 §3).
    let mx = format!("mx.{d}");
    let report = tls_rpt(&c.a, &mx, "\"total-successful-session-count\": 1").await;
    assert!(report.contains("\"policy-type\": \"tlsa\""), "{report}");
}

#[tokio::test]
async fn secure_dane_ee_match_delivers_trust_ad() {
    secure_match(Mode::TrustAd, false).await;
}

#[tokio::test]
async fn secure_dane_ee_match_delivers_validate() {
    secure_match(Mode::Validate, false).await;
}

#[tokio::test]
async fn secure_dane_ta_match_delivers_trust_ad() {
    secure_match(Mode::TrustAd, true).await;
}

#[tokio::test]
async fn secure_dane_ta_match_delivers_validate() {
    secure_match(Mode::Validate, true).await;
}

async fn secure_mismatch(mode: Mode) {
    let ca = TestCa::new("DANE Test CA");
    let d = "mismatch.test";
    let Some(c) = case(d, &ca, "dane", mode, |t| {
        vec![zone(d, true, t.port, std::slice::from_ref(&t.other))]
    })
    .await
    else {
        return;
    };
    send(&c.a, &format!("bob@{d}")).await;
    let state = deferred_with(&c.a, "no TLSA record matched").await;
    let peer = format!("mx.{d}[127.0.0.1]:{}", c.b.addr().port());
    let lines = common::log_lines("no TLSA record matched");
    assert!(lines.iter().any(|l| l.contains(&peer)), "{lines:?}");
    assert!(
        state.contains("4.7.5 TLS with mx.mismatch.test["),
        "{state}"
    );
    assert!(state.contains("(policy dane)"), "{state}");
    assert!(state.contains("certificate SHA-256 "), "{state}");
    // Never sent, neither over TLS nor in plaintext after the failure.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.b.all_delivered().is_empty());
    assert_eq!(c.a.queued(), 1);
    assert!(dane_metric(&c.a, "mismatch").await >= 1.0);
    let report = tls_rpt(
        &c.a,
        "mx.mismatch.test",
        "\"result-type\": \"validation-failure\"",
    )
    .await;
    assert!(report.contains("\"policy-type\": \"tlsa\""), "{report}");
    // A connection was made: our end of it is reported (RFC 8460 sending-mta-ip).
    assert!(report.contains("\"sending-mta-ip\": \"127."), "{report}");
    // explain says what delivery did: a secure MX and host, the record, DANE required.
    let text = explain(&c.a, d);
    for want in [
        "MX:         1 records, DNSSEC secure",
        "(MX secure, addresses secure)",
        "usable (DANE-EE)",
        "effective: dane (DANE, never plaintext)",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

#[tokio::test]
async fn secure_mismatch_defers_and_never_sends_trust_ad() {
    secure_mismatch(Mode::TrustAd).await;
}

#[tokio::test]
async fn secure_mismatch_defers_and_never_sends_validate() {
    secure_mismatch(Mode::Validate).await;
}

#[tokio::test]
async fn secure_tlsa_all_unusable_is_encrypt() {
    let ca = TestCa::new("DANE Test CA");
    let d = "unusable.test";
    let Some(c) = case(d, &ca, "dane", Mode::TrustAd, |t| {
        // PKIX-EE would match B's key, but is unusable for SMTP.
        let pkix = t.ee.replacen("3 1 1", "1 1 1", 1);
        vec![zone(d, true, t.port, &[pkix])]
    })
    .await
    else {
        return;
    };
    send(&c.a, &format!("bob@{d}")).await;
    delivered_over_tls(&c).await;
    // Not may: TLS was required (delivery and explain use the same decision).
    let text = explain(&c.a, d);
    assert!(
        text.contains("unusable: usage 1 (PKIX-TA/PKIX-EE)"),
        "{text}"
    );
    assert!(
        text.contains("effective: encrypt (DANE, never plaintext)"),
        "{text}"
    );
}

#[tokio::test]
async fn insecure_delegation_is_may_and_its_tlsa_is_ignored() {
    let ca = TestCa::new("DANE Test CA");
    let d = "unsigned.test";
    let Some(c) = case(d, &ca, "dane", Mode::TrustAd, |t| {
        // A record that would not match: unsigned, so an attacker could have written it.
        vec![zone(d, false, t.port, std::slice::from_ref(&t.other))]
    })
    .await
    else {
        return;
    };
    send(&c.a, &format!("bob@{d}")).await;
    delivered_over_tls(&c).await;
    let text = explain(&c.a, d);
    assert!(text.contains("(MX insecure, addresses insecure)"), "{text}");
    assert!(text.contains("TLSA: not looked up"), "{text}");
    assert!(text.contains("effective: may ([outbound] tls)"), "{text}");
}

#[tokio::test]
async fn bogus_tlsa_skips_the_host_with_4_7_5() {
    let ca = TestCa::new("DANE Test CA");
    let d = "badsig.test";
    let Some(c) = case(d, &ca, "dane", Mode::TrustAd, |t| {
        vec![
            // The TLSA name is an alias into a zone whose signatures do not validate.
            zone(d, true, t.port, &[]).record(&format!(
                "_{}._tcp.mx CNAME _{}._tcp.mx.broken.test.",
                t.port, t.port
            )),
            Zone::bogus("broken.test").record(&format!(
                "_{}._tcp.mx TLSA {}",
                t.port,
                t.ee.clone()
            )),
        ]
    })
    .await
    else {
        return;
    };
    send(&c.a, &format!("bob@{d}")).await;
    let state = deferred_with(&c.a, "4.7.5 TLSA lookup error for mx.badsig.test:").await;
    assert!(!state.contains("4.4.1"), "{state}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.b.all_delivered().is_empty());
    let text = explain(&c.a, d);
    assert!(
        text.contains("effective: host skipped: 4.7.5 TLSA lookup error for mx.badsig.test:"),
        "{text}"
    );
}

#[tokio::test]
async fn dane_only_without_tlsa_defers_4_7_5() {
    let ca = TestCa::new("DANE Test CA");
    let d = "notlsa.test";
    let Some(c) = case(d, &ca, "dane-only", Mode::Validate, |t| {
        vec![zone(d, true, t.port, &[])]
    })
    .await
    else {
        return;
    };
    send(&c.a, &format!("bob@{d}")).await;
    let state = deferred_with(&c.a, "policy dane-only requires DANE").await;
    assert!(
        state.contains("4.7.5 no DNSSEC-secure TLSA records at _"),
        "{state}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.b.all_delivered().is_empty());
}

#[tokio::test]
async fn dane_only_with_a_secure_match_delivers() {
    let ca = TestCa::new("DANE Test CA");
    let d = "only.test";
    let Some(c) = case(d, &ca, "dane-only", Mode::TrustAd, |t| {
        vec![zone(d, true, t.port, &[t.ee.clone(), t.other.clone()])]
    })
    .await
    else {
        return;
    };
    send(&c.a, &format!("bob@{d}")).await;
    delivered_over_tls(&c).await;
}

#[tokio::test]
async fn dane_only_without_validation_says_so() {
    let ca = TestCa::new("DANE Test CA");
    let d = "novalidation.test";
    let Some(c) = case(d, &ca, "dane-only", Mode::Off, |t| {
        vec![zone(d, true, t.port, std::slice::from_ref(&t.ee))]
    })
    .await
    else {
        return;
    };
    send(&c.a, &format!("bob@{d}")).await;
    let state = deferred_with(&c.a, "DNSSEC validation unavailable").await;
    assert!(
        state.contains("4.7.5 DNSSEC validation unavailable ([resolver] dnssec = \"off\")"),
        "{state}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.b.all_delivered().is_empty());
    let text = explain(&c.a, d);
    assert!(
        text.contains("DNSSEC:     validation unavailable"),
        "{text}"
    );
}
