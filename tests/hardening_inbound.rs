//! Issue #11, inbound half: regression tests against the real server for mail loops (hop
//! count, address literals), header and memory bounds, whole-message and session deadlines,
//! NUL in content, forged Authentication-Results, out-of-turn clients, and one log line
//! per refusal (issue #16 defect 4).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{SmtpClient, TestServer, strip_trace};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn ehlo(s: &TestServer) -> SmtpClient {
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    c
}

fn message_with(received: usize, other: usize) -> Vec<u8> {
    let mut m = Vec::new();
    for i in 0..received {
        m.extend_from_slice(format!("Received: from hop{i}.test by hop{i}.test\r\n").as_bytes());
    }
    for i in 0..other {
        m.extend_from_slice(format!("X-F{i}: x\r\n").as_bytes());
    }
    m.extend_from_slice(b"Subject: loop\r\n\r\nbody\r\n");
    m
}

#[tokio::test]
async fn a_message_over_the_hop_limit_is_refused_as_a_loop() {
    let s = TestServer::start("", "").await;
    let mut c = ehlo(&s).await;
    let r = c
        .send_mail("a@sender.test", &["bob@local.test"], &message_with(51, 0))
        .await;
    assert_eq!(
        (r.code, r.last()[4..].starts_with("5.4.6")),
        (554, true),
        "{r:?}"
    );
    // 50 (the default limit) is still fine.
    let r = c
        .send_mail("a@sender.test", &["bob@local.test"], &message_with(50, 0))
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    s.wait_delivered("bob", 1).await;
    assert_eq!(s.delivered("bob").len(), 1);
}

#[tokio::test]
async fn hop_limit_also_for_bdat() {
    let s = TestServer::start("max_hop_count = 3", "").await;
    let mut c = ehlo(&s).await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    let m = message_with(4, 0);
    c.send(format!("BDAT {} LAST\r\n", m.len()).as_bytes())
        .await;
    c.send(&m).await;
    let r = c.reply().await;
    assert_eq!(r.code, 554, "{r:?}");
    assert_eq!(s.queued(), 0);
}

#[tokio::test]
async fn header_field_count_and_size_are_capped() {
    let s = TestServer::start("max_header_size = \"64KiB\"", "").await;
    let mut c = ehlo(&s).await;
    // 1001 fields (default cap 1000), each tiny: refused by counting alone.
    let r = c
        .send_mail("a@sender.test", &["bob@local.test"], &message_with(0, 1000))
        .await;
    assert_eq!(
        r.last(),
        "552 5.3.4 Message header section has too many fields"
    );
    // A header section over max_header_size.
    let mut big = Vec::new();
    for _ in 0..150 {
        big.extend_from_slice(format!("X-Big: {}\r\n", "y".repeat(500)).as_bytes());
    }
    big.extend_from_slice(b"\r\nbody\r\n");
    let r = c
        .send_mail("a@sender.test", &["bob@local.test"], &big)
        .await;
    assert_eq!(r.last(), "552 5.3.4 Message header section is too large");
    // The same bytes in the body are fine.
    let mut body = b"Subject: ok\r\n\r\n".to_vec();
    body.extend_from_slice(&message_with(60, 1100));
    let r = c
        .send_mail("a@sender.test", &["bob@local.test"], &body)
        .await;
    assert_eq!(r.code, 250, "{r:?}");
}

#[tokio::test]
async fn many_tiny_header_fields_are_refused_before_the_checks_parse_them() {
    // Checks on: without the cap, every one of these fields would be parsed in memory.
    let s = TestServer::start("", "[auth]\ndkim = \"verify\"\n").await;
    let mut c = ehlo(&s).await;
    let mut m = b"a:\r\n".repeat(400_000);
    m.extend_from_slice(b"\r\nbody\r\n");
    let start = Instant::now();
    let r = c.send_mail("a@sender.test", &["bob@local.test"], &m).await;
    assert_eq!(r.code, 552, "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(s.queued(), 0);
}

#[tokio::test]
async fn nul_in_data_is_refused_before_and_after_the_dot() {
    let s = TestServer::start("", "").await;
    let mut c = ehlo(&s).await;
    for evil in [
        &b"Subject: a\r\n\r\nx\r\n\0.\r\nMAIL FROM:<x@evil.test>\r\n"[..],
        b"Subject: b\r\n\r\nx\r\n.\0\r\nMAIL FROM:<x@evil.test>\r\n",
        b"Subject: c\r\n\r\nx\0y\r\n",
    ] {
        c.cmd("MAIL FROM:<a@sender.test>").await;
        c.cmd("RCPT TO:<bob@local.test>").await;
        assert_eq!(c.cmd("DATA").await.code, 354);
        c.send(evil).await;
        c.send(b".\r\n").await;
        let r = c.reply().await;
        assert_eq!(
            (r.code, r.last()[4..].starts_with("5.6.0")),
            (550, true),
            "{r:?}"
        );
    }
    // BDAT without BINARYMIME likewise.
    c.cmd("MAIL FROM:<a@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    c.send(b"BDAT 9 LAST\r\nS: x\r\n\0\r\n").await;
    let r = c.reply().await;
    assert_eq!(r.code, 550, "{r:?}");
    assert_eq!(c.cmd("NOOP").await.code, 250);
    assert_eq!(s.queued(), 0);
    assert!(s.all_delivered().is_empty());
}

#[tokio::test]
async fn trickling_data_is_cut_off_at_the_message_deadline() {
    let s = TestServer::start("data_timeout = \"2s\"\nmessage_timeout = \"3s\"", "").await;
    let mut c = ehlo(&s).await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    assert_eq!(c.cmd("DATA").await.code, 354);
    let start = Instant::now();
    // One byte every 500 ms: every read is well within data_timeout.
    let mut closed = false;
    for b in b"Subject: slow\r\n\r\n".iter().cycle().take(40) {
        if c.send_raw(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if start.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let r = c.try_reply().await;
    assert!(closed || matches!(&r, Ok(r) if r.code == 421), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(s.queued(), 0);
}

#[tokio::test]
async fn trickling_bdat_chunks_are_cut_off_at_the_message_deadline() {
    let s = TestServer::start("message_timeout = \"2s\"", "").await;
    let mut c = ehlo(&s).await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    let start = Instant::now();
    let mut last = None;
    for _ in 0..20 {
        c.send(b"BDAT 1\r\nx").await;
        let r = c.try_reply().await;
        if !matches!(&r, Ok(r) if r.code == 250) {
            last = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        matches!(&last, Some(Ok(r)) if r.code == 421) || matches!(&last, Some(Err(_))),
        "{last:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_session_ends_at_max_session_time() {
    let s = TestServer::start("max_session_time = \"2s\"", "").await;
    let mut c = ehlo(&s).await;
    let start = Instant::now();
    let mut code = 250;
    while code == 250 && start.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        code = match c.try_reply_to("NOOP").await {
            Ok(r) => r.code,
            Err(_) => 0,
        };
    }
    assert!(code == 421 || code == 0, "{code}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_client_talking_before_the_greeting_is_refused() {
    let s = TestServer::start("greet_pause = \"1s\"", "").await;
    let mut c = SmtpClient::connect(s.addr()).await;
    c.send(b"EHLO eager.test\r\n").await;
    let r = c.reply().await;
    assert_eq!(r.code, 554, "{r:?}");
    assert!(r.last()[4..].starts_with("5.5.0"), "{r:?}");
    assert!(c.is_closed().await);
    // A client that waits is greeted after the pause.
    let mut ok = SmtpClient::connect(s.addr()).await;
    assert_eq!(ok.reply().await.code, 220);
}

#[tokio::test]
async fn pipelining_before_the_ehlo_reply_or_after_helo_is_refused() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.send(b"EHLO bot.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<bob@local.test>\r\n")
        .await;
    let r = c.reply().await;
    assert_eq!(
        (r.code, r.last().as_str()),
        (554, "554 5.5.0 Error: SMTP protocol synchronization")
    );
    assert!(c.is_closed().await);

    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("HELO old.test").await.code, 250);
    c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<bob@local.test>\r\n")
        .await;
    assert_eq!(c.reply().await.code, 554);
    assert!(c.is_closed().await);

    // Pipelining after the EHLO reply is what PIPELINING offers: fine.
    let mut c = ehlo(&s).await;
    c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n")
        .await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 354);
    c.send(b"Subject: fine\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.code, 250);

    // The check can be turned off.
    let s = TestServer::start("forbid_improper_pipelining = false", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.send(b"EHLO bot.test\r\nMAIL FROM:<a@sender.test>\r\n")
        .await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 250);
}

#[tokio::test]
async fn address_literals_from_untrusted_clients() {
    let s = TestServer::start("", "").await;
    let mut c = ehlo(&s).await;
    for from in [
        "x@[127.0.0.1]",
        "x@[IPv6:::1]",
        "x@[10.1.2.3]",
        "x@[0.0.0.0]",
    ] {
        let r = c.cmd(&format!("MAIL FROM:<{from}> RET=FULL")).await;
        assert_eq!(
            (r.code, r.last()[4..].starts_with("5.7.1")),
            (553, true),
            "{from}: {r:?}"
        );
    }
    // A literal of a public address is an ordinary (if unusual) sender.
    assert_eq!(c.cmd("MAIL FROM:<x@[192.0.2.9]>").await.code, 250);
    // Recipient literals are never local: no relay, also for our own address.
    let r = c.cmd("RCPT TO:<u@[192.0.2.9]>").await;
    assert_eq!(r.code, 554, "{r:?}");
    let r = c.cmd("RCPT TO:<u@[127.0.0.1]>").await;
    assert_eq!(r.code, 554, "{r:?}");
}

#[tokio::test]
async fn loopback_literal_recipients_are_refused_for_trusted_clients_too() {
    let dir = tempfile::tempdir().unwrap();
    let text = trusted_config(&dir, "");
    let s = TestServer::start_with(dir, &text).await;
    let mut c = ehlo(&s).await;
    // Trusted clients may use internal sender literals (their own hosts).
    assert_eq!(c.cmd("MAIL FROM:<x@[127.0.0.1]>").await.code, 250);
    let r = c.cmd("RCPT TO:<u@[127.0.0.1]>").await;
    assert_eq!(
        (r.code, r.last()[4..].starts_with("5.4.6")),
        (550, true),
        "{r:?}"
    );
}

fn trusted_config(dir: &tempfile::TempDir, auth: &str) -> String {
    format!(
        r#"
[server]
hostname = "mx.postern.test"
state_dir = "{}"

[[listener]]
address = "127.0.0.1:0"

[relay]
local_domains = ["local.test"]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "local.test"
next_hop = "maildir:mail"
{auth}
"#,
        dir.path().join("state").display()
    )
}

const FORGED: &[u8] = b"Authentication-Results: mx.postern.test; dkim=pass; spf=pass\r\n\
Authentication-Results: MX.POSTERN.TEST (forged);\r\n\tdmarc=pass\r\n\
Authentication-Results: other.example; spf=pass\r\n\
Subject: forged\r\n\r\nbody\r\n";

fn assert_stripped(msg: &[u8]) {
    let (_, rest) = strip_trace(msg);
    let text = String::from_utf8_lossy(&rest).to_ascii_lowercase();
    assert!(
        !text.contains("authentication-results: mx.postern.test; dkim=pass"),
        "{text}"
    );
    assert!(!text.contains("(forged)"), "{text}");
    assert!(
        text.contains("authentication-results: other.example; spf=pass"),
        "{text}"
    );
    assert!(text.contains("subject: forged"), "{text}");
}

#[tokio::test]
async fn forged_authentication_results_are_removed_with_checks_off() {
    let s = TestServer::start("", "").await;
    let mut c = ehlo(&s).await;
    let r = c
        .send_mail("a@sender.test", &["bob@local.test"], FORGED)
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert_stripped(&s.wait_delivered("bob", 1).await[0]);
}

#[tokio::test]
async fn forged_authentication_results_are_removed_for_exempt_trusted_clients() {
    let dir = tempfile::tempdir().unwrap();
    // Checks on, but loopback is trusted and exempt (the default).
    let text = trusted_config(&dir, "[auth]\nspf = \"off\"\ndkim = \"verify\"\n");
    let s = TestServer::start_with(dir, &text).await;
    let mut c = ehlo(&s).await;
    let r = c
        .send_mail("a@sender.test", &["bob@local.test"], FORGED)
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert_stripped(&s.wait_delivered("bob", 1).await[0]);
}

/// The real binary's log, for the refusal lines.
struct Daemon {
    _child: tokio::process::Child,
    addr: SocketAddr,
    log: tokio::sync::mpsc::UnboundedReceiver<String>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start(listener: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("postern.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhostname = \"mx.log.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n{listener}\n\
                 [relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_postern"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr: SocketAddr = loop {
            let line = lines.next_line().await.unwrap().expect("postern exited");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        let (tx, log) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
        Daemon {
            _child: child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// Wait up to 5 s for a log line containing every one of `parts`.
    async fn expect_line(&mut self, parts: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.log.recv()).await {
                Ok(Some(l)) if parts.iter().all(|p| l.contains(p)) => return l,
                Ok(Some(_)) => {}
                _ => panic!("no log line with {parts:?}"),
            }
        }
    }
}

#[tokio::test]
async fn every_refusal_is_logged_with_client_sender_recipient_and_reason() {
    let mut d = Daemon::start("require_tls = true").await;
    let mut c = SmtpClient::connect_greeted(d.addr).await;
    c.cmd("EHLO client.test").await;
    let r = c.cmd("MAIL FROM:<alice@sender.test>").await;
    assert_eq!(r.code, 530);
    d.expect_line(&[
        "NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 530 5.7.0",
        "from=<alice@sender.test>",
        "proto=ESMTP helo=<client.test>",
    ])
    .await;
    let r = c.cmd("RCPT TO:<bob@local.test>").await;
    assert_eq!(r.code, 530);
    d.expect_line(&[
        "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 530 5.7.0",
        "to=<bob@local.test>",
    ])
    .await;

    let mut d = Daemon::start("mode = \"plain\"").await;
    let mut c = SmtpClient::connect_greeted(d.addr).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("MAIL FROM:<x@[127.0.0.1]>").await.code, 553);
    d.expect_line(&[
        "NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 553 5.7.1",
        "from=<x@[127.0.0.1]>",
    ])
    .await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(c.cmd("RCPT TO:<x@elsewhere.test>").await.code, 554);
    d.expect_line(&[
        "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 Relay access denied",
        "from=<a@sender.test> to=<x@elsewhere.test>",
    ])
    .await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    let r = c.send_mail_data(b"Subject: x\r\n\r\nnul\0\r\n").await;
    assert_eq!(r.code, 550);
    d.expect_line(&[
        "NOQUEUE: reject: DATA from unknown[127.0.0.1]: 550 5.6.0",
        "from=<a@sender.test> to=<bob@local.test>",
    ])
    .await;
    let mut c = SmtpClient::connect_greeted(d.addr).await;
    c.send(b"EHLO bot.test\r\nMAIL FROM:<a@sender.test>\r\n")
        .await;
    assert_eq!(c.reply().await.code, 554);
    d.expect_line(&[
        "improper command pipelining after EHLO from unknown[127.0.0.1]: MAIL FROM:<a@sender.test>",
    ])
    .await;
    d.expect_line(&["NOQUEUE: reject: EHLO from unknown[127.0.0.1]: 554 5.5.0"])
        .await;
}

/// Extension helpers for this file.
trait ClientExt {
    async fn try_reply_to(
        &mut self,
        line: &str,
    ) -> Result<postern_test_support::ClientReply, String>;
    async fn send_mail_data(&mut self, content: &[u8]) -> postern_test_support::ClientReply;
}

impl ClientExt for SmtpClient {
    async fn try_reply_to(
        &mut self,
        line: &str,
    ) -> Result<postern_test_support::ClientReply, String> {
        self.send_raw(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        self.try_reply().await
    }

    async fn send_mail_data(&mut self, content: &[u8]) -> postern_test_support::ClientReply {
        let r = self.cmd("DATA").await;
        if r.code != 354 {
            return r;
        }
        self.send(content).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}
