//! End-to-end MTA-STS when sending (RFC 8461): Postern A sends to Postern B over real
//! sockets. The DNS is the loopback test server (`_mta-sts` TXT, `mta-sts.<domain>` and
//! MX host addresses), the policy is served by a test HTTPS server with a test CA's
//! certificate (`postern_test_support::https`), and that CA is A's `[outbound] ca`.
//! The DANE case uses the signed tree (knot + unbound) and skips loudly without it.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_test_support::ca::{IssueOpts, TestCa, sha256_fingerprint, spki_der};
use postern_test_support::dns::TestDns;
use postern_test_support::https::{HttpsServer, Reply};
use postern_test_support::signed_dns::{SignedDnsTree, Zone};

const D: &str = "d.test";

fn policy(mode: &str, mx: &[&str]) -> String {
    let mut p = format!("version: STSv1\nmode: {mode}\n");
    for m in mx {
        p.push_str(&format!("mx: {m}\n"));
    }
    p.push_str("max_age: 86400\n");
    p
}

/// Receiver B for `D` with a certificate for `cert_name` issued by `ca`.
async fn receiver(ca: &TestCa, cert_name: &str) -> (TestServer, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let issued = ca.issue_server(&[cert_name], IssueOpts::default());
    let (chain, key) = issued.write(dir.path(), "b");
    let text = format!(
        "[server]\nhostname = \"mx.{D}\"\nstate_dir = \"{state}\"\n\
         [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [relay]\nlocal_domains = [\"{D}\"]\n\
         [[route]]\ndomain = \"{D}\"\nnext_hop = \"maildir:mail\"\n",
        state = dir.path().join("state").display(),
        chain = chain.display(),
        key = key.display(),
    );
    (TestServer::start_with(dir, &text).await, issued.der)
}

/// Sender A: resolver `resolver` (TOML lines), `[outbound] ca` = the test CA, B's port,
/// the policy server's port, default level `tls`. `before` runs on A's state directory
/// before A starts (to seed the cache).
async fn sender(
    ca: &TestCa,
    resolver: &str,
    b_port: u16,
    sts_port: u16,
    tls: &str,
    before: impl FnOnce(&std::path::Path),
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_ca(dir.path(), "ca");
    let state = dir.path().join("state");
    before(&state);
    let text = format!(
        "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
         [relay]\nlocal_domains = [\"sender.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
         [[route]]\ndomain = \"sender.test\"\nnext_hop = \"maildir:mail\"\n\
         [resolver]\n{resolver}\
         [queue]\nretry = [\"1h\"]\n\
         [outbound]\nport = {b_port}\nconnect_timeout = \"2s\"\ntls = \"{tls}\"\n\
         ca = \"{ca}\"\nmta_sts_port = {sts_port}\n",
        state = state.display(),
        ca = ca_file.display(),
    );
    TestServer::start_with(dir, &text).await
}

/// The usual world: DNS with MX `mx.D` (127.0.0.1), the TXT record `id`, the policy
/// host; a policy server answering `body`; B with a certificate for `cert_name`; A.
struct Case {
    a: TestServer,
    b: TestServer,
    dns: TestDns,
    https: Option<HttpsServer>,
}

async fn case(body: Option<&str>, cert_name: &str, seed: impl FnOnce(&std::path::Path)) -> Case {
    let ca = TestCa::new("MTA-STS e2e CA");
    let dns = TestDns::start().await;
    dns.add_mx(D, 10, &format!("mx.{D}"));
    dns.add_a(&format!("mx.{D}"), "127.0.0.1".parse().unwrap());
    dns.add_a(&format!("mta-sts.{D}"), "127.0.0.1".parse().unwrap());
    dns.add_txt(&format!("_mta-sts.{D}"), "v=STSv1; id=20260101;");
    let https = match body {
        Some(body) => {
            let issued = ca.issue_server(&[&format!("mta-sts.{D}")], IssueOpts::default());
            Some(HttpsServer::start(issued.chain_der(), issued.key_der(), Reply::text(body)).await)
        }
        None => None,
    };
    // Without a server, a port nobody listens on: the fetch fails.
    let sts_port = match &https {
        Some(h) => h.addr().port(),
        None => std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    };
    let (b, _) = receiver(&ca, cert_name).await;
    let resolver = format!("nameservers = [\"{}\"]\n", dns.addr());
    let a = sender(&ca, &resolver, b.addr().port(), sts_port, "may", seed).await;
    Case { a, b, dns, https }
}

async fn send(a: &TestServer, to: &str) {
    send_headers(a, to, "").await;
}

/// `send`, with `headers` (each ending in CRLF) added to the message's header.
async fn send_headers(a: &TestServer, to: &str, headers: &str) {
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    let msg =
        format!("From: alice@sender.test\r\nTo: {to}\r\n{headers}Subject: sts\r\n\r\nHello.\r\n");
    let r = c
        .send_mail("alice@sender.test", &[to], msg.as_bytes())
        .await;
    assert_eq!(r.code, 250, "{r:?}");
}

/// Wait until a `.state` file in A's queue contains `needle`; returns its text.
async fn deferred_with(a: &TestServer, needle: &str) -> String {
    let active = a.state().join("queue/active");
    let mut seen = String::new();
    for _ in 0..400 {
        for e in std::fs::read_dir(&active).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "state") {
                seen = std::fs::read_to_string(e.path()).unwrap_or_default();
                if seen.contains(needle) {
                    return seen;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no deferral containing {needle:?}; last state seen: {seen}");
}

/// Run the `postern` binary with A's configuration (without blocking the runtime the
/// test DNS server runs on).
async fn postern(a: &TestServer, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(args)
        .arg("-c")
        .arg(a.dir.path().join("config.toml"))
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Today's TLS-RPT report for `domain` as `postern reports show` prints it (the store
/// syncs about once a second: wait for `want`).
async fn tls_rpt(a: &TestServer, domain: &str, want: &str) -> String {
    let mut out = String::new();
    for _ in 0..40 {
        out = postern(a, &["reports", "show", "today", "--domain", domain])
            .await
            .1;
        if out.contains(want) {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {want:?} in the TLS-RPT report for {domain}:\n{out}");
}

fn metric(result: &str) -> bool {
    postern_metrics::render().lines().any(|l| {
        l.starts_with("postern_outbound_mta_sts_total")
            && l.contains(&format!("result=\"{result}\""))
            && !l.ends_with(" 0")
    })
}

#[tokio::test]
async fn enforce_with_a_matching_mx_delivers_verified_and_cli_shows_the_policy() {
    let c = case(
        Some(&policy("enforce", &[&format!("*.{D}")])),
        &format!("mx.{D}"),
        |_| {},
    )
    .await;
    send(&c.a, &format!("bob@{D}")).await;
    let got = c.b.wait_delivered("bob", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("(using TLSv1."), "{text}");
    assert!(metric("enforce-verified"));
    assert_eq!(c.https.as_ref().unwrap().requests(), 1);
    // The session is in the report store as an MTA-STS one, for the recipient domain.
    let report = tls_rpt(&c.a, D, "\"total-successful-session-count\": 1").await;
    for want in [
        "\"policy-type\": \"sts\"",
        "\"policy-domain\": \"d.test\"",
        "\"mode: enforce\"",
        "\"*.d.test\"",
        "\"total-failure-session-count\": 0",
    ] {
        assert!(report.contains(want), "{want:?} missing from:\n{report}");
    }
    // The cache, seen by the CLI.
    let (ok, out) = postern(&c.a, &["mta-sts", "show", D]).await;
    assert!(ok, "{out}");
    for want in ["mode:     enforce", "mx:       *.d.test", "id 20260101"] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let (ok, out) = postern(&c.a, &["mta-sts", "show", D, "--json"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("\"mode\": \"enforce\""), "{out}");
    assert!(out.contains("\"cached\": true"), "{out}");
    // explain shows the policy, its source and age, and what it requires.
    let (ok, out) = postern(&c.a, &["policy", "explain", D, "--resolve"]).await;
    assert!(ok, "{out}");
    for want in [
        "MTA-STS:    mode enforce, mx *.d.test; cached (id 20260101, fetched",
        "effective: verify (MTA-STS, never plaintext)",
        "carry mx.d.test",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    // refresh fetches again; forget removes it.
    let (ok, out) = postern(&c.a, &["mta-sts", "refresh", D]).await;
    assert!(ok, "{out}");
    assert_eq!(c.https.as_ref().unwrap().requests(), 2);
    let (ok, out) = postern(&c.a, &["mta-sts", "forget", D]).await;
    assert!(ok && out.contains("forgotten"), "{out}");
    assert!(!c.a.state().join("mta-sts/d.test.json").exists());
    let (ok, _) = postern(&c.a, &["mta-sts", "show", D]).await;
    assert!(!ok, "nothing cached any more");
    let (ok, out) = postern(&c.a, &["mta-sts", "show", D, "--json"]).await;
    assert!(!ok);
    assert!(
        out.contains("\"cached\":false") && out.contains("\"domain\":\"d.test\""),
        "{out}"
    );
}

#[tokio::test]
async fn enforce_skips_an_mx_host_outside_the_policy() {
    let c = case(
        Some(&policy("enforce", &["mail.elsewhere.test"])),
        &format!("mx.{D}"),
        |_| {},
    )
    .await;
    send(&c.a, &format!("bob@{D}")).await;
    let state = deferred_with(&c.a, "matches no mx pattern").await;
    assert!(state.contains("4.7.5"), "{state}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.b.all_delivered().is_empty(), "never sent");
    assert!(metric("enforce-mx-mismatch"));
    let report = tls_rpt(&c.a, D, "\"result-type\": \"validation-failure\"").await;
    assert!(report.contains("\"policy-type\": \"sts\""), "{report}");
    assert!(
        report.contains("\"receiving-mx-hostname\": \"mx.d.test\""),
        "{report}"
    );
    // The host was skipped, never connected to: no sending address to report.
    assert!(!report.contains("sending-mta-ip"), "{report}");
}

/// RFC 8689 §5: `TLS-Required: No` waives the recipient domain's MTA-STS policy for
/// that message only; the waived session is not reported against the policy.
#[tokio::test]
async fn tls_required_no_waives_an_enforced_policy_for_that_message_only() {
    common::capture_logs();
    let c = case(
        Some(&policy("enforce", &["mail.elsewhere.test"])),
        &format!("mx.{D}"),
        |_| {},
    )
    .await;
    send(&c.a, &format!("bob@{D}")).await;
    deferred_with(&c.a, "matches no mx pattern").await;
    send_headers(&c.a, &format!("carol@{D}"), "TLS-Required: No\r\n").await;
    let got = c.b.wait_delivered("carol", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("TLS-Required: No"), "{text}");
    // The log names what was waived: the (cached) policy's requirement for this host.
    let peer = format!(
        "TLS-Required: No applied for mx.{D}[127.0.0.1]:{}",
        c.b.addr().port()
    );
    let lines = common::log_lines(&peer);
    assert!(
        lines.iter().any(|l| l.contains("MTA-STS policy (enforce)")),
        "{lines:?}"
    );
    // bob's message still waits: the header waived the policy for carol's only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.b.delivered("bob").is_empty());
    let report = tls_rpt(&c.a, D, "\"total-failure-session-count\": 1").await;
    assert!(
        report.contains("\"total-successful-session-count\": 0"),
        "{report}"
    );
}

#[tokio::test]
async fn enforce_defers_a_certificate_without_the_mx_name() {
    let c = case(
        Some(&policy("enforce", &[&format!("mx.{D}")])),
        "wrong.d.test",
        |_| {},
    )
    .await;
    send(&c.a, &format!("bob@{D}")).await;
    let state = deferred_with(&c.a, "MTA-STS enforce").await;
    assert!(
        state.contains("\"4.7.5\",\"text\":\"TLS with mx.d.test"),
        "{state}"
    );
    assert!(
        state.contains("certificate name mismatch: got wrong.d.test, wanted mx.d.test"),
        "{state}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        c.b.all_delivered().is_empty(),
        "never sent, not even in plaintext"
    );
}

#[tokio::test]
async fn testing_mode_delivers_and_records_the_would_be_failure() {
    let c = case(
        Some(&policy("testing", &["mail.elsewhere.test"])),
        "wrong.d.test",
        |_| {},
    )
    .await;
    send(&c.a, &format!("bob@{D}")).await;
    c.b.wait_delivered("bob", 1).await;
    assert!(metric("testing-mx-mismatch"));
    // Delivered, but reported as a failure of the policy (RFC 8460 §4.3).
    let report = tls_rpt(&c.a, D, "\"total-failure-session-count\": 1").await;
    assert!(report.contains("\"mode: testing\""), "{report}");
    assert!(report.contains("\"max_age: 86400\""), "{report}");
    assert!(
        report.contains("\"result-type\": \"validation-failure\""),
        "{report}"
    );
    assert!(
        report.contains("\"total-successful-session-count\": 0"),
        "{report}"
    );
    let (ok, out) = postern(&c.a, &["policy", "explain", D, "--resolve"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "MTA-STS policy (testing) for d.test: mx.d.test matches none of mail.elsewhere.test"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn a_cached_policy_is_enforced_while_https_is_down_across_a_restart() {
    // A cache file from an earlier run (as the daemon writes it): enforce, an MX that is
    // not B's. The TXT id has changed since, and the policy server is down.
    let seed = |state: &std::path::Path| {
        let dir = state.join("mta-sts");
        std::fs::create_dir_all(&dir).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let entry = format!(
            r#"{{"domain":"{D}","id":"old","policy":{{"mode":"enforce","mx":["mail.elsewhere.test"],"max_age":86400}},"url":"https://mta-sts.{D}/.well-known/mta-sts.txt","fetched":{}}}"#,
            now - 60
        );
        std::fs::write(dir.join("d.test.json"), entry).unwrap();
    };
    let c = case(None, &format!("mx.{D}"), seed).await;
    send(&c.a, &format!("bob@{D}")).await;
    let state = deferred_with(&c.a, "matches no mx pattern").await;
    assert!(state.contains("mail.elsewhere.test"), "{state}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.b.all_delivered().is_empty());
    let (ok, out) = postern(&c.a, &["policy", "explain", D, "--resolve"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("cached (id old"), "{out}");
    assert!(out.contains("fetching TXT id 20260101 failed"), "{out}");
    let _ = &c.dns;
}

/// The cache the daemon itself wrote survives its restart: after a restart with the
/// policy server gone, new mail is still held to the policy.
#[tokio::test]
async fn a_policy_the_daemon_fetched_holds_after_its_restart() {
    let mut c = case(
        Some(&policy("enforce", &["mail.elsewhere.test"])),
        &format!("mx.{D}"),
        |_| {},
    )
    .await;
    send(&c.a, &format!("bob@{D}")).await;
    deferred_with(&c.a, "matches no mx pattern").await;
    assert_eq!(c.https.as_ref().unwrap().requests(), 1);
    drop(c.https.take());
    let TestServer { dir, running, .. } = c.a;
    running.unwrap().stop().await;
    let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    let a = TestServer::start_with(dir, &text).await;
    send(&a, &format!("carol@{D}")).await;
    // Both messages now wait with the policy's reason: bob's from before the restart,
    // carol's from after it.
    let active = a.state().join("queue/active");
    let held = || {
        std::fs::read_dir(&active)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
            .filter(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains("matches no mx pattern")
            })
            .count()
    };
    for _ in 0..200 {
        if held() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        held(),
        2,
        "carol's message was not held to the cached policy"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.b.all_delivered().is_empty(), "never sent");
    let (ok, out) = postern(&a, &["mta-sts", "show", D]).await;
    assert!(ok && out.contains("mode:     enforce"), "{out}");
    let _ = &c.dns;
}

#[tokio::test]
async fn an_id_change_refetches_the_policy() {
    let c = case(
        Some(&policy("enforce", &["mail.elsewhere.test"])),
        &format!("mx.{D}"),
        |_| {},
    )
    .await;
    send(&c.a, &format!("bob@{D}")).await;
    deferred_with(&c.a, "matches no mx pattern").await;
    let https = c.https.as_ref().unwrap();
    assert_eq!(https.requests(), 1);
    // The domain fixes its policy and publishes a new id; the CLI (a fresh resolver)
    // sees the new id and fetches.
    https.set(Reply::text(&policy("enforce", &[&format!("mx.{D}")])));
    c.dns.remove(&format!("_mta-sts.{D}"));
    c.dns
        .add_txt(&format!("_mta-sts.{D}"), "v=STSv1; id=20260102;");
    let (ok, out) = postern(&c.a, &["policy", "explain", D, "--resolve"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("fetched just now (id 20260102"), "{out}");
    assert_eq!(https.requests(), 2);
    // The daemon sees the refreshed file at once and delivers on the next attempt.
    let (ok, out) = postern(&c.a, &["queue", "flush", "--all"]).await;
    assert!(ok, "{out}");
    c.b.wait_delivered("bob", 1).await;
}

/// DANE wins over MTA-STS: B's TLSA record matches, the MTA-STS policy (enforce) lists
/// another MX. Under `tls = "dane"` the mail goes, authenticated by DANE.
#[tokio::test]
async fn a_dane_decision_wins_over_mta_sts() {
    let ca = TestCa::new("MTA-STS e2e CA");
    let (b, leaf) = receiver(&ca, &format!("mx.{D}")).await;
    let port = b.addr().port();
    let ee = sha256_fingerprint(&spki_der(&leaf))
        .trim_start_matches("sha256:")
        .to_string();
    let issued = ca.issue_server(&[&format!("mta-sts.{D}")], IssueOpts::default());
    let https = HttpsServer::start(
        issued.chain_der(),
        issued.key_der(),
        Reply::text(&policy("enforce", &["mail.elsewhere.test"])),
    )
    .await;
    let zone = Zone::secure(D)
        .record("@ MX 10 mx")
        .record("mx A 127.0.0.1")
        .record("mta-sts A 127.0.0.1")
        .record("_mta-sts TXT \"v=STSv1; id=1;\"")
        .record(&format!("_{port}._tcp.mx TLSA 3 1 1 {ee}"));
    let Some(tree) = SignedDnsTree::start(&[zone]) else {
        return; // skipped loudly by SignedDnsTree::start
    };
    let resolver = format!(
        "nameservers = [\"{}\"]\ndnssec = \"trust-ad\"\n",
        tree.unbound_addr
    );
    let a = sender(&ca, &resolver, port, https.addr().port(), "dane", |_| {}).await;
    send(&a, &format!("bob@{D}")).await;
    let got = b.wait_delivered("bob", 1).await;
    assert!(String::from_utf8_lossy(&got[0]).contains("(using TLSv1."));
    let (ok, out) = postern(&a, &["policy", "explain", D, "--resolve"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("MTA-STS:    mode enforce"), "{out}");
    assert!(
        out.contains("effective: dane (DANE, never plaintext)"),
        "{out}"
    );
}

/// Both halves of MTA-STS between two Postern instances: B publishes D's policy on its
/// `[mta_sts]` listener, A fetches it from there (its `[outbound] ca` trusts B's
/// certificate) and enforces it. D's MX records are not DNSSEC-signed, so a REQUIRETLS
/// message may go to B only because the MTA-STS policy in enforce mode names B's host
/// and B's certificate was verified for it (RFC 8689 §4.2.1).
#[tokio::test]
async fn a_policy_served_by_one_postern_is_enforced_by_another_and_carries_requiretls() {
    let ca = TestCa::new("MTA-STS pair CA");
    let dns = TestDns::start().await;
    dns.add_mx(D, 10, &format!("mx.{D}"));
    dns.add_a(&format!("mx.{D}"), "127.0.0.1".parse().unwrap());
    dns.add_a(&format!("mta-sts.{D}"), "127.0.0.1".parse().unwrap());
    dns.add_txt(&format!("_mta-sts.{D}"), "v=STSv1; id=pair1;");
    // B: receives D's mail and serves D's policy, one certificate for both names.
    let bdir = tempfile::tempdir().unwrap();
    let mx = format!("mx.{D}");
    let policy_host = format!("mta-sts.{D}");
    let issued = ca.issue_server(&[mx.as_str(), policy_host.as_str()], IssueOpts::default());
    let (chain, key) = issued.write(bdir.path(), "b");
    let text = format!(
        "[server]\nhostname = \"mx.{D}\"\nstate_dir = \"{state}\"\n\
         [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [relay]\nlocal_domains = [\"{D}\"]\n\
         [[route]]\ndomain = \"{D}\"\nnext_hop = \"maildir:mail\"\n\
         [mta_sts]\nlisten = [\"127.0.0.1:0\"]\n\
         [[mta_sts.policy]]\ndomain = \"{D}\"\nmode = \"enforce\"\nmx = [\"mx.{D}\"]\nmax_age = 86400\n",
        state = bdir.path().join("state").display(),
        chain = chain.display(),
        key = key.display(),
    );
    let b = TestServer::start_with(bdir, &text).await;
    let https = b.running.as_ref().unwrap().mta_sts.https[0];
    // A: a STARTTLS listener (REQUIRETLS needs TLS on the way in), D's MX on B's port.
    let adir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_ca(adir.path(), "ca");
    let (achain, akey) = ca
        .issue_server(&["mx.sender.test"], IssueOpts::default())
        .write(adir.path(), "a");
    let text = format!(
        "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
         [[tls.certificate]]\nchain = \"{achain}\"\nkey = \"{akey}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [relay]\nlocal_domains = [\"sender.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
         [[route]]\ndomain = \"sender.test\"\nnext_hop = \"maildir:mail\"\n\
         [resolver]\nnameservers = [\"{dns}\"]\n\
         [queue]\nretry = [\"1h\"]\n\
         [outbound]\nport = {port}\nconnect_timeout = \"2s\"\nca = \"{ca}\"\nmta_sts_port = {sts}\n",
        state = adir.path().join("state").display(),
        achain = achain.display(),
        akey = akey.display(),
        dns = dns.addr(),
        port = b.addr().port(),
        ca = ca_file.display(),
        sts = https.port(),
    );
    let a = TestServer::start_with(adir, &text).await;
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    let (cfg, _) = common::tls::client_config(None);
    c.starttls(cfg).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    let to = format!("bob@{D}");
    let r = c.cmd("MAIL FROM:<alice@sender.test> REQUIRETLS").await;
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(
        format!("From: alice@sender.test\r\nTo: {to}\r\nSubject: pair\r\n\r\nHello.\r\n.\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(c.reply().await.code, 250);
    let got = b.wait_delivered("bob", 1).await;
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("(using TLSv1."), "{text}");
    assert!(a.delivered("alice").is_empty(), "A bounced it");
    // A's cache holds the policy B serves, fetched from B's listener.
    let (ok, out) = postern(&a, &["mta-sts", "show", D]).await;
    assert!(ok, "{out}");
    assert!(out.contains("mode:     enforce"), "{out}");
    assert!(out.contains(&format!("mx:       mx.{D}")), "{out}");
}
