//! The Prometheus endpoint, scraped over HTTP after a few real sessions, and parsed as
//! the text exposition format (every line a comment or a well-formed sample).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::{SmtpClient, TestServer, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MSG: &[u8] = b"From: a@sender.test\r\nTo: bob@local.test\r\nSubject: m\r\n\r\nHi.\r\n";

/// One sample: metric name and labels (sorted), value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

async fn scrape(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// Parse the text format strictly enough to catch any malformed line.
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    let mut typed = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "bad line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), vec![]),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                (name.to_string(), parse_labels(body, line))
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(typed.contains_key(&name), "sample before its TYPE: {line}");
        if typed[&name] == "counter" {
            assert!(name.ends_with("_total") && value >= 0.0, "{line}");
        }
        let mut labels = labels;
        labels.sort();
        assert!(
            out.insert((name, labels), value).is_none(),
            "duplicate {line}"
        );
    }
    out
}

fn parse_labels(body: &str, line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => v.push('\n'),
                    Some((_, c)) => v.push(c),
                    None => panic!("{line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => v.push(c),
                None => panic!("unterminated label in {line}"),
            }
        };
        out.push((k.to_string(), v));
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    out
}

fn get(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.iter()
        .find(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_after_a_few_sessions() {
    let s = TestServer::start("", "[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let addr = s.running.as_ref().unwrap().ops.metrics_addr.unwrap();
    // Listeners are labelled as configured (what the operator wrote).
    let listener = "127.0.0.1:0".to_string();

    // A plaintext message, a TLS message, and a relay attempt that is refused.
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.send_mail("a@sender.test", &["bob@local.test"], MSG)
            .await
            .code,
        250
    );
    assert_eq!(c.cmd("RCPT TO:<x@elsewhere.test>").await.code, 503);
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(c.cmd("RCPT TO:<x@elsewhere.test>").await.code, 554);
    c.cmd("QUIT").await;
    let mut c = SmtpClient::connect_greeted(s.addr()).await;
    c.cmd("EHLO client.test").await;
    c.starttls(tls::client_config(None).0).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.send_mail("a@sender.test", &["bob@local.test"], MSG)
            .await
            .code,
        250
    );
    c.cmd("QUIT").await;
    s.wait_delivered("bob", 2).await;
    let l = listener.as_str();
    // Sessions are counted when they end, attempts after the Maildir write, and the
    // queue gauge drops when the queue entry is removed: all a little after delivery.
    let settled = |m: &Samples| {
        get(m, "postern_queue_messages", &[("state", "active")]) == Some(0.0)
            && get(
                m,
                "postern_delivery_attempts_total",
                &[("outcome", "delivered")],
            ) >= Some(2.0)
            && get(
                m,
                "postern_smtp_connections_total",
                &[("listener", l), ("tls", "yes"), ("version", "TLSv1.3")],
            ) >= Some(1.0)
    };
    let mut m = parse(&scrape(addr).await);
    for _ in 0..100 {
        if settled(&m) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        m = parse(&scrape(addr).await);
    }
    assert!(
        get(
            &m,
            "postern_smtp_messages_accepted_total",
            &[("listener", l), ("tls", "no")]
        ) >= Some(1.0)
    );
    assert!(
        get(
            &m,
            "postern_smtp_messages_accepted_total",
            &[("listener", l), ("tls", "yes")]
        ) >= Some(1.0)
    );
    assert!(
        get(
            &m,
            "postern_smtp_connections_total",
            &[("listener", l), ("tls", "yes"), ("version", "TLSv1.3")]
        ) >= Some(1.0),
        "{m:?}"
    );
    assert!(
        get(
            &m,
            "postern_smtp_connections_total",
            &[("listener", l), ("tls", "no"), ("cipher", "")]
        ) >= Some(1.0)
    );
    assert!(
        get(
            &m,
            "postern_smtp_rejections_total",
            &[
                ("listener", l),
                ("stage", "RCPT"),
                ("code", "554"),
                ("status", "5.7.1")
            ]
        ) >= Some(1.0)
    );
    assert!(
        get(
            &m,
            "postern_delivery_attempts_total",
            &[("outcome", "delivered")]
        ) >= Some(2.0)
    );
    assert_eq!(
        get(&m, "postern_queue_messages", &[("state", "active")]),
        Some(0.0)
    );
    assert_eq!(
        get(&m, "postern_queue_messages", &[("state", "hold")]),
        Some(0.0)
    );
    assert_eq!(
        get(
            &m,
            "postern_queue_oldest_message_age_seconds",
            &[("state", "active")]
        ),
        Some(0.0)
    );
    // The self-signed certificates are valid for a long time.
    let days = get(
        &m,
        "postern_tls_certificate_days_to_expiry",
        &[("algorithm", "ECDSA")],
    )
    .unwrap();
    assert!(days > 30.0, "{days}");
    assert_eq!(
        get(
            &m,
            "postern_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    s.stop().await;
}
