//! The `[mta_sts]` policy listener, end to end: the real daemon (in-process, as the other
//! end-to-end tests), real TLS on 127.0.0.1 with certificates from a test CA, raw HTTP/1.1
//! requests. HSTS on every HTTPS answer, the policy at the well-known path, 404/405, SNI,
//! the limits, the redirector, and the DNS record carrying the id of the text served.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use postern_test_support::ca::{IssueOpts, TestCa};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const WELL_KNOWN: &str = "/.well-known/mta-sts.txt";
const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.postern.test\r\nmx: *.backup.example.org\r\nmax_age: 86400\r\n";

struct Fixture {
    server: TestServer,
    ca: TestCa,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let ca = TestCa::new("MTA-STS Test CA");
        // The MX certificate first: without SNI (or for an unknown name) it is served;
        // SNI mta-sts.example.org picks the second.
        let (mx_chain, mx_key) = ca
            .issue_server(&["mx.postern.test"], IssueOpts::default())
            .write(dir.path(), "mx");
        let (sts_chain, sts_key) = ca
            .issue_server(&["mta-sts.example.org"], IssueOpts::default())
            .write(dir.path(), "sts");
        let rest = format!(
            r#"
[tls]
profile = "ncsc-suite-b"

[[tls.certificate]]
chain = "{}"
key = "{}"

[[tls.certificate]]
chain = "{}"
key = "{}"

[mta_sts]
listen = ["127.0.0.1:0"]
http_listen = ["127.0.0.1:0"]

[[mta_sts.policy]]
domain = "example.org"
mode = "enforce"
mx = ["MX.postern.test", "*.backup.example.org"]
max_age = 86400
"#,
            mx_chain.display(),
            mx_key.display(),
            sts_chain.display(),
            sts_key.display()
        );
        let text = common::config_text(&state, "", "", &rest);
        let server = TestServer::start_with(dir, &text).await;
        Fixture { server, ca }
    }

    fn https(&self) -> SocketAddr {
        self.server.running.as_ref().unwrap().mta_sts.https[0]
    }

    fn http(&self) -> SocketAddr {
        self.server.running.as_ref().unwrap().mta_sts.http[0]
    }

    /// A TLS connection verified against the test CA for `sni`, offering ALPN http/1.1.
    async fn tls(&self, sni: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(self.ca.root_store())
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(self.https()).await.unwrap();
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let s = TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS to the policy listener as {sni}: {e}"));
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        s
    }

    /// One request over a new verified connection (SNI mta-sts.example.org).
    async fn ask(&self, method: &str, host: &str, path: &str) -> Answer {
        let mut s = self.tls("mta-sts.example.org").await;
        exchange(&mut s, method, host, path, "").await
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send one request with `Connection: close` and read the whole answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    method: &str,
    host: &str,
    path: &str,
    extra: &str,
) -> Answer {
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("answer within 10s")
        .ok();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Answer {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn the_policy_is_served_with_hsts_and_everything_else_is_404_or_405() {
    let f = Fixture::start().await;
    let a = f.ask("GET", "mta-sts.example.org", WELL_KNOWN).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("text/plain"));
    assert_eq!(
        a.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(String::from_utf8_lossy(&a.body), POLICY);

    let a = f.ask("HEAD", "MTA-STS.Example.org:443", WELL_KNOWN).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("text/plain"));
    assert_eq!(
        a.header("content-length"),
        Some(POLICY.len().to_string().as_str())
    );
    assert_eq!(
        a.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert!(a.body.is_empty(), "HEAD has no body: {a:?}");

    for (method, host, path, status) in [
        ("GET", "mta-sts.other.test", WELL_KNOWN, 404),
        ("GET", "mta-sts.example.org", "/", 404),
        (
            "GET",
            "mta-sts.example.org",
            "/.well-known/mta-sts.txt.bak",
            404,
        ),
        ("POST", "mta-sts.example.org", WELL_KNOWN, 405),
        ("DELETE", "mta-sts.example.org", "/", 405),
    ] {
        let a = f.ask(method, host, path).await;
        assert_eq!(a.status, status, "{method} {host} {path}: {a:?}");
        assert_eq!(
            a.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{a:?}"
        );
        if status == 405 {
            assert_eq!(a.header("allow"), Some("GET, HEAD"), "{a:?}");
        }
    }
    f.server.stop().await;
}

#[tokio::test]
async fn sni_chooses_the_certificate_naming_the_policy_host() {
    let f = Fixture::start().await;
    // Verified against the test CA for each name: the right certificate was served.
    let s = f.tls("mta-sts.example.org").await;
    let leaf = s.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert!(postern_tls::client::cert_names(&leaf).contains(&"mta-sts.example.org".to_string()));
    drop(s);
    let s = f.tls("mx.postern.test").await;
    let leaf = s.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(
        postern_tls::client::cert_names(&leaf),
        vec!["mx.postern.test"]
    );
    drop(s);
    // An unknown name gets the first certificate (the MX one), whose name does not match.
    let (cfg, seen) = postern_test_support::tls::client_config(None);
    let tcp = TcpStream::connect(f.https()).await.unwrap();
    let name = ServerName::try_from("mta-sts.unknown.test").unwrap();
    TlsConnector::from(cfg).connect(name, tcp).await.unwrap();
    let leaf = seen.seen.lock().unwrap().clone().unwrap();
    assert_eq!(
        postern_tls::client::cert_names(&leaf),
        vec!["mx.postern.test"]
    );
    f.server.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let f = Fixture::start().await;
    let mut s = f.tls("mta-sts.example.org").await;
    let big = format!("X-Filler: {}\r\n", "a".repeat(20_000));
    s.write_all(format!("GET {WELL_KNOWN} HTTP/1.1\r\nHost: mta-sts.example.org\r\n").as_bytes())
        .await
        .unwrap();
    // The server may answer 431 and close before reading all of it.
    let _ = s.write_all(big.as_bytes()).await;
    let _ = s.write_all(b"\r\n").await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 431"), "got {text:?}");
    assert!(!text.contains("STSv1"), "{text:?}");
    // Too many header fields, each small.
    let mut s = f.tls("mta-sts.example.org").await;
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let a = exchange(&mut s, "GET", "mta-sts.example.org", WELL_KNOWN, &many).await;
    assert_eq!(a.status, 431, "{a:?}");
    f.server.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let f = Fixture::start().await;
    let start = Instant::now();
    // One that completes the handshake and sends nothing; one that never starts TLS.
    let tls_idle = async {
        let mut s = f.tls("mta-sts.example.org").await;
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await;
        assert!(
            r.is_ok(),
            "the idle TLS connection was not closed within 20s"
        );
    };
    let tcp_idle = async {
        let mut s = TcpStream::connect(f.https()).await.unwrap();
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "the connection without a handshake was not closed within 20s: {r:?}"
        );
    };
    tokio::join!(tls_idle, tcp_idle);
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(9), "closed too early: {took:?}");
    // The listener still serves.
    let a = f.ask("GET", "mta-sts.example.org", WELL_KNOWN).await;
    assert_eq!(a.status, 200);
    f.server.stop().await;
}

#[tokio::test]
async fn keep_alive_is_bounded() {
    let f = Fixture::start().await;
    let mut s = f.tls("mta-sts.example.org").await;
    let req = format!("GET {WELL_KNOWN} HTTP/1.1\r\nHost: mta-sts.example.org\r\n\r\n");
    for _ in 0..25 {
        if s.write_all(req.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection after its last request")
        .ok();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 20, "{text}");
    assert!(text.contains("connection: close"), "{text}");
    f.server.stop().await;
}

#[tokio::test]
async fn plain_http_only_redirects() {
    let f = Fixture::start().await;
    let mut s = TcpStream::connect(f.http()).await.unwrap();
    let a = exchange(&mut s, "GET", "mta-sts.example.org", WELL_KNOWN, "").await;
    assert_eq!(a.status, 301, "{a:?}");
    assert_eq!(
        a.header("location"),
        Some("https://mta-sts.example.org/.well-known/mta-sts.txt")
    );
    assert!(a.header("strict-transport-security").is_none());
    assert!(!String::from_utf8_lossy(&a.body).contains("STSv1"));
    let mut s = TcpStream::connect(f.http()).await.unwrap();
    let a = exchange(&mut s, "GET", "evil.test", WELL_KNOWN, "").await;
    assert_eq!(a.status, 404, "{a:?}");
    f.server.stop().await;
}

#[tokio::test]
async fn dns_records_carry_the_id_of_the_text_served() {
    let f = Fixture::start().await;
    let a = f.ask("GET", "mta-sts.example.org", WELL_KNOWN).await;
    let id = postern_sts::serve::policy::policy_id(&String::from_utf8_lossy(&a.body));
    let text = std::fs::read_to_string(f.server.dir.path().join("config.toml")).unwrap();
    let loaded = postern::config::load_str("t.toml", &text).unwrap();
    let records = postern::auth_cli::dns_records_for(&loaded.config);
    assert!(
        records.contains(&format!(
            "_mta-sts.example.org. IN TXT \"v=STSv1; id={id}\""
        )),
        "{records}"
    );
    assert!(
        records.contains("mta-sts.example.org. IN CNAME mx.postern.test."),
        "{records}"
    );
    // example.org is not a local domain of this configuration: its policy only.
    assert!(
        records.contains("; ===== example.org (MTA-STS policy only) ====="),
        "{records}"
    );
    f.server.stop().await;
}

#[test]
fn check_config_refuses_a_policy_that_leaves_out_our_host_name() {
    let text = r#"
[server]
hostname = "mx.postern.test"

[relay]
local_domains = ["example.org"]

[mta_sts]
listen = ["127.0.0.1:0"]

[[mta_sts.policy]]
domain = "example.org"
mode = "testing"
mx = ["mx.elsewhere.test"]
"#;
    let e = postern::config::load_str("t.toml", text).unwrap_err();
    let e: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert!(
        e.iter()
            .any(|e| e.starts_with("t.toml:14:1: mta_sts.policy[0].mx: ")
                && e.contains("mx.postern.test")),
        "{e:?}"
    );
}

#[tokio::test]
async fn reloaded_certificates_are_served() {
    let f = Fixture::start().await;
    let leaf = |s: &tokio_rustls::client::TlsStream<TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    let before = leaf(&f.tls("mta-sts.example.org").await);
    // A renewed certificate (new key) at the same paths, then SIGHUP's reload.
    f.ca.issue_server(&["mta-sts.example.org"], IssueOpts::default())
        .write(f.server.dir.path(), "sts");
    let report = f.server.running.as_ref().unwrap().reload_tls();
    assert!(report.ok(), "{report:?}");
    let after = leaf(&f.tls("mta-sts.example.org").await);
    assert_ne!(
        before, after,
        "the policy listener still serves the old certificate"
    );
    f.server.stop().await;
}
