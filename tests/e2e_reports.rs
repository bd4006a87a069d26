//! Reports (#14) end to end: deliveries between two Posterns on loopback land in the
//! report stores of both (the sender's outbound TLS session, the receiver's inbound
//! message), and survive a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{SmtpClient, TestServer};
use postern_reports::event::Event;
use postern_reports::store::{events_dir, read};
use postern_test_support::ca::{IssueOpts, TestCa};
use postern_test_support::dns::TestDns;

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
        dns.add_txt(
            "_smtp._tls.partner.test",
            "v=TLSRPTv1; rua=mailto:tlsrpt@partner.test",
        );
        // A domain that asks for reports but gets no mail from us: no report.
        dns.add_txt(
            "_smtp._tls.quiet.test",
            "v=TLSRPTv1; rua=mailto:tlsrpt@partner.test",
        );
        World {
            dns,
            ca: TestCa::new("Postern Test CA"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn receiver(&self) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = self
            .ca
            .issue_server(&["mx.partner.test"], IssueOpts::default())
            .write(self.dir.path(), "b");
        let text = format!(
            "[server]\nhostname = \"mx.partner.test\"\nstate_dir = \"{state}\"\n\
             [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\n\
             [relay]\nlocal_domains = [\"partner.test\"]\n\
             [[route]]\ndomain = \"partner.test\"\nnext_hop = \"maildir:mail\"\n\
             [reports]\ninbound_addresses = [\"tlsrpt@partner.test\"]\n",
            state = dir.path().join("state").display(),
            chain = chain.display(),
            key = key.display(),
        );
        TestServer::start_with(dir, &text).await
    }

    fn sender_text(&self, state: &std::path::Path, port: u16) -> String {
        format!(
            "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
             [relay]\nlocal_domains = [\"sender.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
             [[route]]\ndomain = \"sender.test\"\nnext_hop = \"maildir:mail\"\n\
             [resolver]\nnameservers = [\"{dns}\"]\n\
             [queue]\nretry = [\"1h\"]\n\
             [outbound]\nport = {port}\nconnect_timeout = \"2s\"\n\
             [reports]\ntls_rpt = true\norganization = \"Sender Org\"\nfrom = \"tlsrpt@sender.test\"\n",
            state = state.display(),
            dns = self.dns.addr(),
        )
    }
}

async fn send(a: &TestServer, to: &str, subject: &str) {
    let mut c = SmtpClient::connect_greeted(a.addr()).await;
    c.cmd("EHLO client.test").await;
    let msg =
        format!("From: alice@sender.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n");
    let r = c
        .send_mail("alice@sender.test", &[to], msg.as_bytes())
        .await;
    assert_eq!(r.code, 250, "{r:?}");
}

fn events(state: &std::path::Path) -> Vec<Event> {
    read(&events_dir(state), 0, u64::MAX).unwrap().events
}

async fn wait_events(state: &std::path::Path, n: usize, f: impl Fn(&Event) -> bool) -> Vec<Event> {
    for _ in 0..100 {
        let e: Vec<Event> = events(state).into_iter().filter(|e| f(e)).collect();
        if e.len() >= n {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} matching records in {}", state.display());
}

#[tokio::test]
async fn sessions_are_recorded_on_both_sides_and_survive_a_restart() {
    let w = World::new().await;
    let b = w.receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = w.sender_text(&state, b.addr().port());
    let mut a = TestServer::start_with(dir, &text).await;
    send(&a, "bob@partner.test", "one").await;
    b.wait_delivered("bob", 1).await;

    // Sender: one outbound session, no policy, TLS 1.3 (the certificate is not checked
    // under `may`), recorded within the store's fsync interval.
    let out = wait_events(&state, 1, |e| matches!(e, Event::Outbound(_))).await;
    let Event::Outbound(o) = &out[0] else {
        unreachable!()
    };
    assert_eq!(o.policy_type, "no-policy-found");
    assert_eq!(o.policy_domain, "partner.test");
    assert_eq!(o.mx_host, "mx.partner.test");
    assert_eq!(o.ip.to_string(), "127.0.0.1");
    assert_eq!(o.result, None);
    assert_eq!(o.tls_version.as_deref(), Some("TLSv1.3"));
    assert!(!o.own_report);

    // Receiver: one inbound message over TLS from the sender.
    let inb = wait_events(&b.state(), 1, |e| matches!(e, Event::Inbound(_))).await;
    let Event::Inbound(i) = &inb[0] else {
        unreachable!()
    };
    assert_eq!(i.helo, "mx.sender.test");
    assert_eq!(i.sender_domain.as_deref(), Some("sender.test"));
    assert_eq!(i.tls_version.as_deref(), Some("TLSv1.3"));

    // Restart the sender: the record is still there, and new ones add to it.
    a.running.take().unwrap().stop().await;
    let mut a = TestServer::start_with(a.dir, &text).await;
    assert_eq!(
        events(&state)
            .iter()
            .filter(|e| matches!(e, Event::Outbound(_)))
            .count(),
        1
    );
    send(&a, "carol@partner.test", "two").await;
    b.wait_delivered("carol", 1).await;
    // Stopping flushes the store (the TempDir stays with `a`).
    a.running.take().unwrap().stop().await;
    let n = events(&state)
        .iter()
        .filter(|e| matches!(e, Event::Outbound(_)))
        .count();
    assert_eq!(n, 2);

    // `postern reports send-now`: one report, for partner.test, with both sessions.
    let mut a = TestServer::start_with(a.dir, &text).await;
    let st = state.clone();
    let answer = tokio::task::spawn_blocking(move || {
        postern_reports::cli::send_now(&st, "today", Duration::from_secs(20))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        answer.contains("partner.test: queued to tlsrpt@partner.test")
            && answer.contains("(2 successful, 0 failed sessions)"),
        "{answer}"
    );
    assert!(!answer.contains("quiet.test"), "{answer}");
    let metrics = postern_metrics::render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("postern_reports_sent_total{") && l.contains("tlsrpt")),
        "{metrics}"
    );
    let got = b.wait_delivered("tlsrpt", 1).await;
    let mail = String::from_utf8_lossy(&got[0]).to_string();
    for h in [
        "TLS-Report-Domain: partner.test\r\n",
        "TLS-Report-Submitter: sender.test\r\n",
        "TLS-Required: No\r\n",
        "Subject: Report Domain: partner.test Submitter: sender.test Report-ID: <",
        "report-type=\"tlsrpt\"",
        "application/tlsrpt+gzip",
        "filename=\"sender.test!partner.test!",
    ] {
        assert!(mail.contains(h), "{h} missing in {mail}");
    }
    // B takes it as an incoming report: counted and kept; a bad one is kept too.
    let received = b.state().join("reports/received");
    let kept = |suffix: &str| {
        std::fs::read_dir(&received)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                    .count()
            })
            .unwrap_or(0)
    };
    for _ in 0..100 {
        if kept(".tlsrpt.eml") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept(".tlsrpt.eml"), 1);
    let metrics = postern_metrics::render();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("postern_reports_received_tls_sessions_total{")
                && l.contains("Sender Org")
                && l.contains("success")
                && l.ends_with(" 2")
        ),
        "{metrics}"
    );
    let mut c = SmtpClient::connect_greeted(b.addr()).await;
    c.cmd("EHLO junk.test").await;
    let r = c
        .send_mail(
            "x@junk.test",
            &["tlsrpt@partner.test"],
            b"Subject: not a report\r\n\r\nhello\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    for _ in 0..100 {
        if kept(".bad.eml") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept(".bad.eml"), 1);

    // Read back by mail-auth's parser.
    let r = postern_reports::receive::tls_report_mail(&got[0]).unwrap();
    assert_eq!(r.organization_name.as_deref(), Some("Sender Org"));
    assert_eq!(r.policies.len(), 1);
    assert_eq!(r.policies[0].policy.policy_domain, "partner.test");
    assert_eq!(r.policies[0].summary.total_success, 2);
    assert_eq!(r.policies[0].summary.total_failure, 0);

    // The report's own delivery was recorded as such, and is not counted: sending
    // again finds the same two sessions (the report id differs: the day goes on).
    let own = wait_events(
        &state,
        1,
        |e| matches!(e, Event::Outbound(o) if o.own_report),
    )
    .await;
    assert_eq!(own.len(), 1);
    let st = state.clone();
    let again = tokio::task::spawn_blocking(move || {
        postern_reports::cli::send_now(&st, "today", Duration::from_secs(20))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        again.contains("(2 successful, 0 failed sessions)"),
        "{again}"
    );
    a.running.take().unwrap().stop().await;

    // The commands, as the operator runs them.
    let cli = |dir: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
            .arg("-c")
            .arg(dir.join("config.toml"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let peers = cli(a.dir.path(), &["tls-report", "--since", "1d"]);
    assert!(
        peers.contains("partner.test (outbound): 2 session(s), 100% over TLS, 0 plaintext"),
        "{peers}"
    );
    let peers = cli(b.dir.path(), &["tls-report", "--json"]);
    assert!(peers.contains("\"direction\": \"inbound\""), "{peers}");
    assert!(peers.contains("\"domain\": \"sender.test\""), "{peers}");
    let list = cli(a.dir.path(), &["reports", "list"]);
    assert!(
        list.contains("partner.test: 2 successful, 0 failed"),
        "{list}"
    );
    let show = cli(a.dir.path(), &["reports", "show", "today"]);
    assert!(
        show.contains("\"policy-domain\": \"partner.test\""),
        "{show}"
    );
}

#[tokio::test]
async fn dmarc_evaluations_become_an_aggregate_report() {
    let w = World::new().await;
    w.dns.add_txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=none; rua=mailto:dmarc@sender.test",
    );
    w.dns.add_mx("sender.test", 10, "mx.sender.test");
    w.dns.add_a("mx.sender.test", "127.0.0.1".parse().unwrap());
    // The report sink: B's only outbound destination.
    let sink = postern_test_support::fake_smtp::FakeSmtp::start(
        postern_test_support::fake_smtp::FakeOpts::default(),
    )
    .await;
    let bdir = tempfile::tempdir().unwrap();
    let (chain, key) =
        w.ca.issue_server(&["mx.partner.test"], IssueOpts::default())
            .write(w.dir.path(), "b2");
    let btext = format!(
        "[server]\nhostname = \"mx.partner.test\"\nstate_dir = \"{state}\"\n\
         [[tls.certificate]]\nchain = \"{chain}\"\nkey = \"{key}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [relay]\nlocal_domains = [\"partner.test\"]\n\
         [[route]]\ndomain = \"partner.test\"\nnext_hop = \"maildir:mail\"\n\
         [resolver]\nnameservers = [\"{dns}\"]\n\
         [outbound]\nport = {port}\nconnect_timeout = \"2s\"\n\
         [auth]\nspf = \"tag\"\ndkim = \"verify\"\ndmarc = \"tag\"\n\
         [reports]\ndmarc = true\nfrom = \"dmarc-reports@partner.test\"\n",
        state = bdir.path().join("state").display(),
        chain = chain.display(),
        key = key.display(),
        dns = w.dns.addr(),
        port = sink.addr.port(),
    );
    let mut b = TestServer::start_with(bdir, &btext).await;
    let adir = tempfile::tempdir().unwrap();
    let atext = w.sender_text(&adir.path().join("state"), b.addr().port());
    let a = TestServer::start_with(adir, &atext).await;
    send(&a, "bob@partner.test", "dmarc").await;
    b.wait_delivered("bob", 1).await;
    let ev = wait_events(&b.state(), 1, |e| matches!(e, Event::Dmarc(_))).await;
    let Event::Dmarc(d) = &ev[0] else {
        unreachable!()
    };
    assert_eq!(d.header_from, "sender.test");
    assert_eq!(d.p, "none");
    assert_eq!(d.disposition, "none");
    assert_eq!(d.rua, vec!["dmarc@sender.test".to_string()]);

    let st = b.state();
    let answer = tokio::task::spawn_blocking(move || {
        postern_reports::cli::send_now(&st, "today", Duration::from_secs(20))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        answer.contains("sender.test: DMARC report queued to dmarc@sender.test"),
        "{answer}"
    );
    let mut got = Vec::new();
    for _ in 0..200 {
        got = sink.messages();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(got.len(), 1, "the report reaches the sink");
    let mail = String::from_utf8_lossy(&got[0]).to_string();
    assert!(
        mail.contains("Subject: Report Domain: sender.test Submitter: partner.test Report-ID: <"),
        "{mail}"
    );
    assert!(
        mail.contains("filename=\"partner.test!sender.test!"),
        "{mail}"
    );
    let r = postern_reports::receive::dmarc_report_mail(&got[0]).unwrap();
    assert_eq!(r.domain(), "sender.test");
    assert_eq!(r.records().iter().map(|r| r.count()).sum::<u32>(), 1);
    // The operator can look at it first: `reports show --dmarc` prints the same XML.
    // Off the test's runtime thread: the test DNS server it asks runs on that thread.
    let config = b.dir.path().join("config.toml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
            .arg("-c")
            .arg(config)
            .args(["reports", "show", "today", "--dmarc"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let xml = String::from_utf8_lossy(&out.stdout);
    let shown = postern_reports::receive::dmarc_report_xml(xml.as_bytes()).unwrap();
    assert_eq!(shown.domain(), "sender.test");
    assert!(
        xml.contains("<header_from>sender.test</header_from>"),
        "{xml}"
    );
    b.running.take().unwrap().stop().await;
}

/// RFC 8460 §5.4: a `rua=https:` destination gets the gzipped JSON by POST, with the
/// certificate verified against `[outbound] ca`; a destination the deny list names is
/// not posted to; a refusal (non-2xx) is reported, not recorded as sent.
#[tokio::test]
async fn tls_reports_are_posted_to_https_destinations() {
    use postern_test_support::https::{HttpsServer, Reply};
    use std::io::Read;
    let w = World::new().await;
    let b = w.receiver().await;
    let issued =
        w.ca.issue_server(&["rpt.partner.test"], IssueOpts::default());
    let rpt = HttpsServer::start(
        issued.chain_der(),
        issued.key_der(),
        Reply::with(201, Some("text/plain"), b"thanks"),
    )
    .await;
    w.dns
        .add_a("rpt.partner.test", "127.0.0.1".parse().unwrap());
    w.dns.remove("_smtp._tls.partner.test");
    let url = format!("https://rpt.partner.test:{}/v1/tlsrpt", rpt.addr().port());
    w.dns.add_txt(
        "_smtp._tls.partner.test",
        &format!("v=TLSRPTv1; rua={url},https://denied.test/x"),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ca = w.ca.write_ca(w.dir.path(), "ca");
    let text = w.sender_text(&state, b.addr().port()).replace(
        "[outbound]\n",
        &format!("[outbound]\nca = \"{}\"\n", ca.display()),
    ) + "deny = [\"denied.test\"]\n";
    let a = TestServer::start_with(dir, &text).await;
    send(&a, "bob@partner.test", "one").await;
    b.wait_delivered("bob", 1).await;
    wait_events(&state, 1, |e| matches!(e, Event::Outbound(_))).await;

    let st = state.clone();
    let send_now = move || {
        let st = st.clone();
        tokio::task::spawn_blocking(move || {
            postern_reports::cli::send_now(&st, "today", Duration::from_secs(20))
        })
    };
    let answer = send_now().await.unwrap().unwrap();
    assert!(
        answer.contains(&format!(
            "partner.test: posted to {url} (HTTP 201) (1 successful, 0 failed sessions)"
        )),
        "{answer}"
    );
    assert!(
        answer.contains("not sent to https://denied.test/x: destination not allowed"),
        "{answer}"
    );
    let head = rpt.last_request();
    assert!(head.starts_with("POST /v1/tlsrpt HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/tlsrpt+gzip\r\n"),
        "{head}"
    );
    let mut json = String::new();
    flate2::read::GzDecoder::new(&rpt.last_body()[..])
        .read_to_string(&mut json)
        .unwrap();
    assert!(
        json.contains("\"policy-domain\":\"partner.test\""),
        "{json}"
    );
    assert!(
        json.contains("\"organization-name\":\"Sender Org\""),
        "{json}"
    );
    // A refusal is reported as such (and the report is not in the ledger as sent).
    rpt.set(Reply::with(503, Some("text/plain"), b"busy"));
    let again = send_now().await.unwrap().unwrap();
    assert_eq!(rpt.requests(), 2, "{again}");
    assert!(
        again.contains(&format!(
            "partner.test: not sent to {url}: {url}: HTTP status 503, not 2xx"
        )),
        "{again}"
    );
    let ledger = std::fs::read_to_string(state.join("reports/sent.log")).unwrap();
    assert_eq!(
        ledger.lines().filter(|l| l.ends_with(&url)).count(),
        1,
        "{ledger}"
    );
    drop(a);
}
