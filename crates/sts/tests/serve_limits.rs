//! The policy listener's limits with small values (the daemon's are fixed and larger):
//! the connection count, the handshake and header timeouts, the whole-connection timeout.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use postern_sts::config::{Mode, MtaStsConfig, PolicyConfig};
use postern_sts::serve::{Limits, listener};
use postern_test_support::ca::{IssueOpts, TestCa};
use postern_tls::{CertificateConfig, Profile, TlsStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

async fn start(limits: Limits) -> (std::net::SocketAddr, watch::Sender<bool>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Limits CA");
    let (chain, key) = ca
        .issue_server(&["mta-sts.example.org"], IssueOpts::default())
        .write(dir.path(), "sts");
    let store = TlsStore::load(Profile::Default, vec![CertificateConfig { chain, key }]).unwrap();
    let c = MtaStsConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        http_listen: vec![],
        policy: vec![PolicyConfig {
            domain: "example.org".into(),
            mode: Mode::Testing,
            mx: vec!["mx.example.org".into()],
            max_age: 86400,
        }],
    };
    let (tx, rx) = watch::channel(false);
    let (bound, _tasks) = listener::start_with(&c, &store, &rx, limits).await.unwrap();
    (bound.https[0], tx, dir)
}

/// Whether the server closes `s` within `within` (EOF or reset).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (addr, _stop, _dir) = start(limits).await;
    let mut held = vec![
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(2)).await,
        "a third connection was kept although the limit is 2"
    );
    // A slot frees when a connection ends.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    assert!(
        !closed_within(&mut again, Duration::from_millis(500)).await,
        "a connection was refused although a slot was free"
    );
}

#[tokio::test]
async fn timeouts_close_slow_clients() {
    let limits = Limits {
        handshake_timeout: Duration::from_secs(1),
        connection_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let (addr, _stop, _dir) = start(limits).await;
    // No handshake at all.
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A client that sends a partial handshake byte by byte, slower than allowed.
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut closed = false;
    for _ in 0..40 {
        if s.write_all(&[0x16]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed || closed_within(&mut s, Duration::from_secs(1)).await);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let (addr, stop, _dir) = start(Limits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    stop.send(true).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(2)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
