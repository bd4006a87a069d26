//! End-to-end: the real server on 127.0.0.1:0, real sockets, real TLS handshakes.

#![allow(clippy::unwrap_used)]

mod common;

use common::{SmtpClient, TestServer, strip_trace, tls};
use rustls::SignatureScheme;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

const MSG: &[u8] = b"From: Alice <alice@sender.test>\r\nTo: bob@local.test\r\nSubject: test\r\n\r\nHello.\r\n..A line that starts with a dot.\r\n\r\nBye.\r\n";
/// What MSG becomes after dot-unstuffing.
const MSG_UNSTUFFED: &[u8] = b"From: Alice <alice@sender.test>\r\nTo: bob@local.test\r\nSubject: test\r\n\r\nHello.\r\n.A line that starts with a dot.\r\n\r\nBye.\r\n";

#[tokio::test]
async fn plaintext_session_delivers_byte_for_byte() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    let r = c
        .send_mail("alice@sender.test", &["bob@local.test"], MSG)
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert!(r.last().starts_with("250 2.0.0 Ok: queued as "), "{r:?}");
    assert_eq!(c.cmd("QUIT").await.last(), "221 2.0.0 Bye");
    let got = s.wait_delivered("bob", 1).await;
    let (trace, body) = strip_trace(&got[0]);
    assert_eq!(
        body, MSG_UNSTUFFED,
        "content must arrive exactly as sent, unstuffed"
    );
    assert!(trace.starts_with("Return-Path: <alice@sender.test>\r\nDelivered-To: bob@local.test\r\nReceived: from client.test (unknown [127.0.0.1])\r\n\tby mx.postern.test (Postern session "), "{trace}");
    assert!(trace.contains(") with ESMTP id "), "{trace}");
    assert!(trace.contains("\tfor <bob@local.test>;\r\n"), "{trace}");
    assert!(!trace.contains("using TLS"), "{trace}");
    // The queue is empty once delivered.
    assert_eq!(s.wait_queued(0).await, 0);
}

#[tokio::test]
async fn ehlo_advertises_extensions_and_starttls_only_before_tls() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    let r = c.cmd("EHLO client.test").await;
    for ext in [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(r.has_line(ext), "{ext} missing from {r:?}");
    }
    let (cfg, _) = tls::client_config(None);
    c.starttls(cfg).await;
    let r = c.cmd("EHLO client.test").await;
    assert!(!r.has_line("STARTTLS"), "{r:?}");
    assert!(r.has_line("PIPELINING"));
    assert_eq!(c.cmd("STARTTLS").await.code, 503);
}

#[tokio::test]
async fn starttls_session_records_tls_in_received() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    let (cfg, _) = tls::client_config(None);
    c.starttls(cfg).await;
    // RFC 3207 §4.2: state is reset, EHLO is needed again.
    assert_eq!(
        c.cmd("MAIL FROM:<alice@sender.test>").await.last(),
        "503 5.5.1 Send HELO/EHLO first"
    );
    c.cmd("EHLO client.test").await;
    let r = c
        .send_mail("alice@sender.test", &["bob@local.test"], MSG)
        .await;
    assert_eq!(r.code, 250);
    let (version, cipher) = c.tls_info().unwrap();
    assert_eq!(version, "TLSv1_3");
    let got = s.wait_delivered("bob", 1).await;
    let (trace, body) = strip_trace(&got[0]);
    assert_eq!(body, MSG_UNSTUFFED);
    assert!(trace.contains("with ESMTPS id"), "{trace}");
    assert!(
        trace.contains(&format!("(using TLSv1.3 with cipher {cipher})")),
        "{trace}"
    );
}

#[tokio::test]
async fn certificate_is_chosen_per_handshake() {
    let s = TestServer::start("", "").await;
    let pem = |name: &str| CertificateDer::from_pem_file(s.state().join("tls").join(name)).unwrap();
    for (schemes, expect) in [
        (None, "selfsigned-ecdsa-p256.crt"),
        (
            Some(vec![
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PKCS1_SHA256,
            ]),
            "selfsigned-rsa2048.crt",
        ),
        (
            Some(vec![SignatureScheme::ECDSA_NISTP256_SHA256]),
            "selfsigned-ecdsa-p256.crt",
        ),
    ] {
        let mut c = SmtpClient::connect_greeted(s.addr()).await;
        c.cmd("EHLO client.test").await;
        let (cfg, seen) = tls::client_config(schemes.clone());
        c.starttls(cfg).await;
        assert_eq!(c.cmd("NOOP").await.code, 250);
        assert_eq!(
            seen.seen.lock().unwrap().clone().unwrap(),
            pem(expect),
            "schemes {schemes:?}"
        );
    }
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    // EHLO must end its group (RFC 2920 §3.1): a client pipelining past it is refused
    // (`forbid_improper_pipelining`, issue #11); everything after its reply may be.
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    c.send(b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@local.test>\r\nRCPT TO:<nobody@remote.test>\r\nRCPT TO:<carol@local.test>\r\nDATA\r\n").await;
    assert_eq!(c.reply().await.last(), "250 2.1.0 Sender ok");
    assert_eq!(c.reply().await.last(), "250 2.1.5 Recipient ok");
    assert_eq!(c.reply().await.last(), "554 5.7.1 Relay access denied");
    assert_eq!(c.reply().await.last(), "250 2.1.5 Recipient ok");
    assert_eq!(c.reply().await.code, 354);
    c.send(b"Subject: pipelined\r\n\r\nx\r\n.\r\nQUIT\r\n")
        .await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 221);
    s.wait_delivered("bob", 1).await;
    s.wait_delivered("carol", 1).await;
}

#[tokio::test]
async fn starttls_injection_is_discarded() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    // CVE-2011-0411: commands pipelined after STARTTLS in clear must not run after TLS.
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        .await;
    assert_eq!(c.reply().await.last(), "220 2.0.0 Ready to start TLS");
    let (cfg, _) = tls::client_config(None);
    c.tls(cfg).await.unwrap();
    c.cmd("EHLO client.test").await;
    // Had the injected MAIL run, this would be "503 Nested MAIL command".
    assert_eq!(
        c.cmd("MAIL FROM:<alice@sender.test>").await.last(),
        "250 2.1.0 Sender ok"
    );
}

#[tokio::test]
async fn require_tls_refuses_mail_before_starttls() {
    let s = TestServer::start("require_tls = true", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    assert_eq!(c.cmd("NOOP").await.code, 250);
    assert_eq!(
        c.cmd("MAIL FROM:<alice@sender.test>").await.last(),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    assert_eq!(c.cmd("RCPT TO:<bob@local.test>").await.code, 530);
    assert_eq!(c.cmd("DATA").await.code, 530);
    // A refused BDAT chunk is still consumed, never read as commands.
    c.send(b"BDAT 12 LAST\r\nQUIT\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await.code, 530);
    assert_eq!(c.cmd("NOOP").await.code, 250);
    let (cfg, _) = tls::client_config(None);
    c.starttls(cfg).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.send_mail("alice@sender.test", &["bob@local.test"], MSG)
            .await
            .code,
        250
    );
    s.wait_delivered("bob", 1).await;
}

#[tokio::test]
async fn relay_is_denied_for_untrusted_clients() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    for rcpt in [
        "<victim@remote.test>",
        "<@local.test:victim@remote.test>",
        "<victim@[127.0.0.1]>",
        "<victim@local.test.remote.test>",
        "<\"victim@remote.test\"@remote.test>",
        "<victim@sub.local.test>",
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert_eq!(r.last(), "554 5.7.1 Relay access denied", "{rcpt}");
    }
    // These look like relaying but are for our domain: delivered locally, never onward.
    for rcpt in [
        "<victim%remote.test@local.test>",
        "<remote.test!victim@local.test>",
        "<Bob@LOCAL.TEST>",
    ] {
        assert_eq!(c.cmd(&format!("RCPT TO:{rcpt}")).await.code, 250, "{rcpt}");
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: x\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    s.wait_delivered("victim%25remote.test", 1).await;
    s.wait_delivered("remote.test%21victim", 1).await;
    s.wait_delivered("bob", 1).await;
}

#[tokio::test]
async fn size_limits() {
    let s = TestServer::start("max_message_size = \"2KiB\"", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    let r = c.cmd("EHLO client.test").await;
    assert!(r.has_line("SIZE 2048"));
    assert_eq!(
        c.cmd("MAIL FROM:<alice@sender.test> SIZE=5000")
            .await
            .last(),
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789012345678901234567890123456789\r\n".repeat(100)
    );
    let r = c
        .send_mail("alice@sender.test", &["bob@local.test"], big.as_bytes())
        .await;
    assert_eq!(
        r.last(),
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    // The session goes on, nothing was queued, a small message still works.
    let r = c
        .send_mail(
            "alice@sender.test",
            &["bob@local.test"],
            b"Subject: small\r\n\r\nok\r\n",
        )
        .await;
    assert_eq!(r.code, 250);
    let got = s.wait_delivered("bob", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(s.delivered("bob").len(), 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Subject: small"));
}

#[tokio::test]
async fn recipient_limit() {
    let s = TestServer::start("max_recipients = 2", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    assert_eq!(c.cmd("RCPT TO:<a@local.test>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<b@local.test>").await.code, 250);
    assert_eq!(
        c.cmd("RCPT TO:<c@local.test>").await.last(),
        "452 4.5.3 Too many recipients"
    );
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: x\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    s.wait_delivered("a", 1).await;
    s.wait_delivered("b", 1).await;
    assert!(s.delivered("c").is_empty());
}

#[tokio::test]
async fn bdat_chunks_arrive_byte_for_byte() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<alice@sender.test> BODY=8BITMIME").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    let part1 = b"Subject: chunks\r\n\r\n.no unstuffing in BDAT\r\n";
    let part2 = "caf\u{e9}\r\n.\r\nend\r\n".as_bytes();
    c.send(format!("BDAT {}\r\n", part1.len()).as_bytes()).await;
    c.send(part1).await;
    assert_eq!(
        c.reply().await.last(),
        format!("250 2.0.0 {} octets received", part1.len())
    );
    c.send(format!("BDAT {} LAST\r\n", part2.len()).as_bytes())
        .await;
    c.send(part2).await;
    let r = c.reply().await;
    assert!(r.last().starts_with("250 2.0.0 Ok: queued as"), "{r:?}");
    let got = s.wait_delivered("bob", 1).await;
    let (_, body) = strip_trace(&got[0]);
    assert_eq!(body, [&part1[..], part2].concat());
    // BDAT 0 LAST on an empty transaction is a sequence error, and its (empty) chunk is consumed.
    assert_eq!(c.cmd("BDAT 0 LAST").await.code, 503);
}

#[tokio::test]
async fn bdat_refuses_bare_line_feeds() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    let evil = b"Subject: x\r\n\r\nx\n.\nMAIL FROM:<x@y>\r\n";
    c.send(format!("BDAT {} LAST\r\n", evil.len()).as_bytes())
        .await;
    c.send(evil).await;
    assert!(
        c.reply()
            .await
            .last()
            .starts_with("550 5.6.0 Message contains bare <LF>")
    );
    assert_eq!(c.cmd("NOOP").await.code, 250);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(s.all_delivered().is_empty());
}

#[tokio::test]
async fn smuggled_data_is_refused_and_nothing_is_queued() {
    let s = TestServer::start("", "").await;
    for evil in [
        &b"a\n.\n"[..],
        b"a\r.\r",
        b"a\r\n.\n",
        b"a\n.\r\n",
        b"a\r.\r\n",
    ] {
        let mut c = SmtpClient::connect_greeted(s.addr()).await;
        c.cmd("EHLO client.test").await;
        c.cmd("MAIL FROM:<alice@sender.test>").await;
        c.cmd("RCPT TO:<bob@local.test>").await;
        assert_eq!(c.cmd("DATA").await.code, 354);
        let mut data = b"Subject: first\r\n\r\n".to_vec();
        data.extend_from_slice(evil);
        data.extend_from_slice(b"MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n");
        c.send(&data).await;
        let r = c.reply().await;
        assert_eq!(r.code, 550, "{evil:?}: {r:?}");
        assert!(
            r.last().starts_with("550 5.6.0 Message contains bare"),
            "{r:?}"
        );
        // Nothing after the real end was taken as commands: the session is in a clean state.
        assert_eq!(c.cmd("RSET").await.code, 250);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(s.all_delivered().is_empty());
    assert_eq!(s.queued(), 0);
}

#[tokio::test]
async fn connection_limit_per_ip() {
    let s = TestServer::start("max_connections_per_ip = 2", "").await;
    let _a = SmtpClient::connect_greeted(s.addr()).await;
    let _b = SmtpClient::connect_greeted(s.addr()).await;
    let mut c = SmtpClient::connect(s.addr()).await;
    assert_eq!(
        c.reply().await.last(),
        "421 4.7.0 Too many connections, try again later"
    );
    assert!(c.is_closed().await);
    drop(_a);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut d = SmtpClient::connect(s.addr()).await;
    assert_eq!(d.reply().await.code, 220);
}

#[tokio::test]
async fn idle_clients_are_timed_out() {
    let s = TestServer::start("command_timeout = \"1s\"", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    let r = c.reply().await;
    assert_eq!(r.last(), "421 4.4.2 Timeout exceeded, closing connection");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn data_timeout_drops_the_partial_message() {
    let s = TestServer::start("data_timeout = \"1s\"", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    c.cmd("DATA").await;
    c.send(b"Subject: never finished\r\n").await;
    assert_eq!(c.reply().await.code, 421);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(s.all_delivered().is_empty());
    assert_eq!(
        std::fs::read_dir(s.state().join("queue/incoming"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn overlong_command_line_is_refused_and_session_continues() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    let long = format!("NOOP {}\r\n", "x".repeat(100_000));
    c.send(long.as_bytes()).await;
    assert_eq!(c.reply().await.last(), "500 5.5.2 Line too long");
    assert_eq!(c.cmd("NOOP").await.code, 250);
}

#[tokio::test]
async fn implicit_tls_listener() {
    let s = TestServer::start("mode = \"implicit-tls\"", "").await;
    let (cfg, _) = tls::client_config(None);
    let mut c = SmtpClient::connect_tls(s.addr(), cfg).await;
    assert_eq!(c.reply().await.last(), "220 mx.postern.test ESMTP Postern");
    let r = c.cmd("EHLO client.test").await;
    assert!(!r.has_line("STARTTLS"));
    assert_eq!(
        c.send_mail("alice@sender.test", &["bob@local.test"], MSG)
            .await
            .code,
        250
    );
    let got = s.wait_delivered("bob", 1).await;
    assert!(String::from_utf8_lossy(&got[0]).contains("(using TLSv1.3 with cipher"));
}

#[tokio::test]
async fn failed_tls_handshake_closes_only_that_connection() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("STARTTLS").await.code, 220);
    c.send(b"this is not a TLS ClientHello\r\n").await;
    assert!(c.is_closed().await);
    let mut d = SmtpClient::connect_greeted(s.addr()).await;
    assert_eq!(d.cmd("NOOP").await.code, 250);
}

#[tokio::test]
async fn mail_waits_in_the_queue_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // The Maildir root is a plain file: delivery fails temporarily and the message waits.
    std::fs::write(state.join("blocked"), b"not a directory").unwrap();
    let config = |hop: &str| {
        format!(
            "[server]\nhostname = \"mx.postern.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n[relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:{hop}\"\n[queue]\nretry = [\"2s\"]\n",
            state.display()
        )
    };
    let s = TestServer::start_with(dir, &config("blocked")).await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.send_mail("alice@sender.test", &["bob@local.test"], MSG)
            .await
            .code,
        250
    );
    let active = state.join("queue/active");
    for _ in 0..100 {
        if std::fs::read_dir(&active)
            .unwrap()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "state"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let state_file = std::fs::read_dir(&active)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "state"))
        .expect("state written after the failed attempt");
    let text = std::fs::read_to_string(&state_file).unwrap();
    assert!(text.contains("0 deferred 1 "), "{text}");
    let TestServer { dir, running, .. } = s;
    if let Some(r) = running {
        r.stop().await;
    }
    // Restart with a working route: the queued message is picked up and delivered at its
    // retry time (2 s after the failed attempt).
    let s = TestServer::start_with(dir, &config("mail")).await;
    let got = s.wait_delivered("bob", 1).await;
    assert_eq!(strip_trace(&got[0]).1, MSG_UNSTUFFED);
    assert_eq!(s.wait_queued(0).await, 0);
}

#[tokio::test]
async fn unwritable_spool_gets_452_and_the_server_keeps_running() {
    let s = TestServer::start("", "").await;
    let incoming = s.state().join("queue/incoming");
    // Make the spool unwritable (as root, permissions would not stop us: use a file).
    std::fs::remove_dir(&incoming).unwrap();
    std::fs::write(&incoming, b"blocked").unwrap();
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    let r = c
        .send_mail("alice@sender.test", &["bob@local.test"], MSG)
        .await;
    assert_eq!(
        r.last(),
        "452 4.3.1 Insufficient system storage, try again later"
    );
    // BDAT gets the same answer, after its chunk has been read.
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    c.send(b"BDAT 5 LAST\r\nhello").await;
    assert_eq!(c.reply().await.code, 452);
    assert_eq!(c.cmd("NOOP").await.code, 250);
    // Space comes back: mail flows again without a restart.
    std::fs::remove_file(&incoming).unwrap();
    std::fs::create_dir(&incoming).unwrap();
    assert_eq!(
        c.send_mail("alice@sender.test", &["bob@local.test"], MSG)
            .await
            .code,
        250
    );
    s.wait_delivered("bob", 1).await;
}

#[tokio::test]
async fn endless_data_past_the_size_limit_is_cut_off() {
    let s = TestServer::start("max_message_size = \"2KiB\"", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    assert_eq!(c.cmd("DATA").await.code, 354);
    let line = vec![b'x'; 998]
        .into_iter()
        .chain(*b"\r\n")
        .collect::<Vec<u8>>();
    let mut closed = false;
    // 2 MiB without an end: the server must answer and hang up long before that.
    for _ in 0..2048 {
        if tokio::time::timeout(std::time::Duration::from_secs(5), c.send_raw(&line))
            .await
            .map(|r| r.is_err())
            .unwrap_or(true)
        {
            closed = true;
            break;
        }
    }
    let r = c.try_reply().await;
    assert!(closed || r.is_ok(), "server kept reading");
    if let Ok(r) = r {
        assert_eq!(
            r.last(),
            "552 5.3.4 Message size exceeds fixed maximum message size"
        );
    }
    // A BDAT chunk far over the limit is refused at once and the session closed.
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<bob@local.test>").await;
    assert_eq!(c.cmd("BDAT 999999999999 LAST").await.code, 552);
    assert!(c.is_closed().await);
    assert!(s.all_delivered().is_empty());
}

/// Take a delivered report apart: (top-level header section, its parts), checking CRLF
/// line ends, line lengths and the multipart/report structure on the way.
fn report_parts(delivered: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8(delivered.to_vec()).unwrap();
    for line in text.split("\r\n") {
        assert!(!line.contains('\n') && !line.contains('\r'), "bare CR/LF");
        assert!(line.len() <= 998, "line of {} octets", line.len());
    }
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let unfolded = head.replace("\r\n ", " ");
    assert!(
        unfolded
            .contains("Content-Type: multipart/report; report-type=delivery-status; boundary=\""),
        "{head}"
    );
    let boundary = unfolded
        .split("boundary=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
        .unwrap();
    let mut parts: Vec<String> = body
        .split(&format!("\r\n--{boundary}"))
        .map(|p| p.trim_start_matches("\r\n").to_string())
        .collect();
    assert_eq!(parts.pop().as_deref(), Some("--\r\n"), "close delimiter");
    parts.remove(0); // the preamble
    (head.to_string(), parts)
}

#[tokio::test]
async fn an_expired_message_bounces_into_the_senders_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // blocked.test delivers into a Maildir root that is a plain file: every attempt fails
    // temporarily until max_age. The sender, alice@local.test, has a working route.
    std::fs::write(state.join("blocked"), b"not a directory").unwrap();
    let config = format!(
        "[server]\nhostname = \"mx.postern.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n[relay]\nlocal_domains = [\"local.test\", \"blocked.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n[[route]]\ndomain = \"blocked.test\"\nnext_hop = \"maildir:blocked\"\n[queue]\nretry = [\"1s\"]\nmax_age = \"2s\"\n",
        state.display()
    );
    let s = TestServer::start_with(dir, &config).await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    assert!(c.cmd("EHLO client.test").await.has_line("DSN"));
    // One message without DSN parameters (the whole message comes back), one with.
    assert_eq!(
        c.send_mail("alice@local.test", &["bob@blocked.test"], MSG)
            .await
            .code,
        250
    );
    assert_eq!(
        c.cmd("MAIL FROM:<alice@local.test> RET=HDRS ENVID=e2e+2B1")
            .await
            .code,
        250
    );
    assert_eq!(
        c.cmd(
            "RCPT TO:<bob@blocked.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Bob+2Btag@blocked.test"
        )
        .await
        .code,
        250
    );
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: with DSN parameters\r\n\r\nbody\r\n.\r\n")
        .await;
    assert_eq!(c.reply().await.code, 250);
    // The parameters are in the queue file while the message waits.
    let active = state.join("queue/active");
    let header = std::fs::read_dir(&active)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .find(|t| t.contains("ret: HDRS"))
        .expect("queue file with RET");
    assert!(header.contains("\nenvid: e2e+2B1\n"), "{header}");
    assert!(
        header.contains("\nrcpt-dsn: 0 NOTIFY=FAILURE,DELAY ORCPT=rfc822;Bob+2Btag@blocked.test\n"),
        "{header}"
    );

    let mut got = Vec::new();
    for _ in 0..400 {
        got = s.delivered("alice");
        if got.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), 2, "two bounces in alice's Maildir");
    let mut full_seen = false;
    for bounce in &got {
        let text = String::from_utf8_lossy(bounce);
        assert!(
            text.starts_with("Return-Path: <>\r\nDelivered-To: alice@local.test\r\n"),
            "{text}"
        );
        let (head, parts) = report_parts(&bounce[text.find("From: ").unwrap()..]);
        assert!(
            head.contains("From: Mail Delivery System <MAILER-DAEMON@"),
            "{head}"
        );
        assert!(head.contains("To: <alice@local.test>\r\n"), "{head}");
        assert!(
            head.contains("Subject: Undelivered Mail Returned to Sender\r\n"),
            "{head}"
        );
        assert!(head.contains("Auto-Submitted: auto-replied\r\n"), "{head}");
        assert_eq!(parts.len(), 3, "{text}");
        assert!(
            parts[0].starts_with("Content-Type: text/plain"),
            "{}",
            parts[0]
        );
        let human = parts[0].split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(human.contains("<bob@blocked.test>"), "{human}");
        assert!(
            human.contains("as long as the mail system keeps messages"),
            "{human}"
        );
        assert!(parts[1].starts_with("Content-Type: message/delivery-status\r\n"));
        for want in [
            "Final-Recipient: rfc822; bob@blocked.test\r\n",
            "Action: failed\r\n",
            "Status: 4.4.7\r\n",
            "Diagnostic-Code: X-Postern; message expired after 2s in the queue; last",
        ] {
            assert!(parts[1].contains(want), "missing {want:?} in {}", parts[1]);
        }
        if parts[1].contains("Original-Envelope-Id: e2e+1\r\n") {
            assert!(parts[1].contains("Original-Recipient: rfc822;Bob+tag@blocked.test\r\n"));
            assert!(parts[2].starts_with("Content-Type: text/rfc822-headers\r\n"));
            assert!(parts[2].contains("Subject: with DSN parameters\r\n"));
            assert!(!parts[2].contains("body"));
        } else {
            assert!(parts[2].starts_with("Content-Type: message/rfc822\r\n"));
            let returned = parts[2].split_once("\r\n\r\n").unwrap().1;
            assert!(returned.ends_with(std::str::from_utf8(MSG_UNSTUFFED).unwrap()));
            full_seen = true;
        }
    }
    assert!(full_seen, "one bounce returns the whole message");
    // Everything was reported: nothing is left in the queue or kept in failed/.
    assert_eq!(s.wait_queued(0).await, 0);
    assert_eq!(
        std::fs::read_dir(state.join("queue/failed"))
            .unwrap()
            .count(),
        0
    );
}
