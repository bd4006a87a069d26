//! Hostile input: slow clients, stalled handshakes, huge transactions, configuration garbage.
//! Each case is answered or cut off within its limit, and nothing unexpected is queued.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{SmtpClient, TestServer};

#[tokio::test]
async fn slowloris_command_line_is_cut_off_at_command_timeout() {
    let s = TestServer::start("command_timeout = \"1s\"", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    let start = Instant::now();
    // One byte every 300 ms never completes a line; per-read timeouts would never fire.
    let mut closed = false;
    for b in b"EHLO slowly.example.test".iter().cycle().take(40) {
        if c.send_raw(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let r = c.try_reply().await;
    assert!(closed || matches!(&r, Ok(r) if r.code == 421), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn stalled_tls_handshake_is_cut_off() {
    let s = TestServer::start("command_timeout = \"1s\"", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("STARTTLS").await.code, 220);
    // Say nothing: the server must give up on the handshake.
    let start = Instant::now();
    c.timeout = Duration::from_secs(5);
    assert!(c.is_closed().await);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn ten_thousand_recipients_are_capped() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<spammer@evil.test>").await;
    let mut batch = String::new();
    for i in 0..10_000 {
        batch.push_str(&format!("RCPT TO:<user{i}@local.test>\r\n"));
    }
    c.send(batch.as_bytes()).await;
    let (mut ok, mut capped) = (0, 0);
    for _ in 0..10_000 {
        match c.reply().await.code {
            250 => ok += 1,
            452 => capped += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1000, "max_recipients default");
    assert_eq!(capped, 9000);
    assert_eq!(c.cmd("RSET").await.code, 250);
    assert_eq!(s.queued(), 0);
}

#[tokio::test]
async fn null_sender_with_many_recipients_does_not_relay() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("MAIL FROM:<>").await.code, 250);
    for i in 0..9 {
        assert_eq!(
            c.cmd(&format!("RCPT TO:<victim{i}@remote.test>"))
                .await
                .code,
            554
        );
    }
    // The tenth refusal in a row also ends the session (max_errors).
    assert_eq!(c.cmd("RCPT TO:<victim9@remote.test>").await.code, 554);
    assert_eq!(
        c.reply().await.last(),
        "421 4.7.0 Too many errors, closing connection"
    );
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn a_client_that_starts_tls_twice_is_refused() {
    let s = TestServer::start("", "").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    let (cfg, _) = common::tls::client_config(None);
    c.starttls(cfg).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.cmd("STARTTLS").await.last(),
        "503 5.5.1 TLS is already active"
    );
    assert_eq!(c.cmd("NOOP").await.code, 250);
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn config_garbage_never_panics_check_config() {
    let reference =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/postern.toml"))
            .unwrap();
    let bytes = reference.as_bytes();
    let mut rng = Lcg(0x5eed);
    // Every truncation point, then random mutations.
    for cut in (0..bytes.len()).step_by(7) {
        let text = String::from_utf8_lossy(&bytes[..cut]);
        let _ = postern::config::load_str("fuzz.toml", &text);
    }
    let alphabet = b"[]{}=\"'.,#\n\\ -_0123456789abcxyzKMGiBsmhd:/*@<>";
    for _ in 0..1500 {
        let mut v = bytes.to_vec();
        for _ in 0..(1 + rng.next() % 8) {
            let pos = (rng.next() as usize) % v.len();
            match rng.next() % 3 {
                0 => v[pos] = alphabet[(rng.next() as usize) % alphabet.len()],
                1 => {
                    v.remove(pos);
                }
                _ => v.insert(pos, alphabet[(rng.next() as usize) % alphabet.len()]),
            }
        }
        let text = String::from_utf8_lossy(&v);
        if let Err(errs) = postern::config::load_str("fuzz.toml", &text) {
            for e in errs {
                assert!(e.line >= 1 && e.col >= 1, "{e}");
                assert!(!e.key.is_empty(), "{e}");
            }
        }
    }
}
