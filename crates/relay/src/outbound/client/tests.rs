//! The client against scripted servers on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::{Client, ClientError, Peer, Timeouts};

const T: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    greeting: Duration::from_secs(5),
    command: Duration::from_secs(5),
    data_end: Duration::from_secs(5),
};

/// A server that sends `greeting`, then answers each command line with the next of
/// `answers` (each written in one piece).
async fn server(greeting: &'static [u8], answers: Vec<&'static [u8]>) -> Peer {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        w.write_all(greeting).await.unwrap();
        for a in answers {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            w.write_all(a).await.unwrap();
        }
        // Hold the connection until the client goes.
        let mut rest = String::new();
        let _ = r.read_line(&mut rest).await;
    });
    Peer {
        host: "mx.example.test".into(),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn multi_line_greeting_and_ehlo_capabilities() {
    let peer = server(
        b"220-mx.example.test ESMTP\r\n220-no UCE\r\n220 ready\r\n",
        vec![b"250-mx.example.test\r\n250-SIZE 1000\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"],
    )
    .await;
    let mut c = Client::connect(peer, T).await.unwrap();
    c.hello("client.example.test").await.unwrap();
    assert_eq!(c.caps.size_limit(), Some(1000));
    assert!(c.caps.pipelining && c.caps.starttls && !c.caps.chunking);
    assert_eq!(c.caps.auth, vec!["PLAIN"]);
}

#[tokio::test]
async fn bytes_after_the_220_to_starttls_stop_tls() {
    let peer = server(
        b"220 mx.example.test ESMTP\r\n",
        vec![
            b"250-mx.example.test\r\n250 STARTTLS\r\n",
            b"220 2.0.0 go ahead\r\n250 injected\r\n",
        ],
    )
    .await;
    let mut c = Client::connect(peer, T).await.unwrap();
    c.hello("client.example.test").await.unwrap();
    let e = c.starttls(tls_config()).await.unwrap_err();
    assert!(
        matches!(e, ClientError::StartTlsInjected { bytes: 14, .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("after its 220 reply to STARTTLS"),
        "{e}"
    );
}

#[tokio::test]
async fn hostile_replies_keep_the_old_wording() {
    let peer = server(b"220 ok\r\n", vec![b"250-a\r\n550 b\r\n"]).await;
    let mut c = Client::connect(peer, T).await.unwrap();
    let e = c
        .hello("client.example.test")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("malformed reply from mx.example.test[127.0.0.1]:"),
        "{e}"
    );
    let peer = server(b"hello there\r\n", vec![]).await;
    let e = Client::connect(peer, T).await.unwrap_err().to_string();
    assert!(
        e.starts_with("4.4.2 malformed reply from mx.example.test[127.0.0.1]:")
            && e.ends_with(": \"hello there\" while waiting for the greeting"),
        "{e}"
    );
    let long: &'static [u8] = Box::leak(
        [b"220 ".as_slice(), &[b'x'; 5000], b"\r\n"]
            .concat()
            .into_boxed_slice(),
    );
    let peer = server(long, vec![]).await;
    let e = Client::connect(peer, T).await.unwrap_err().to_string();
    assert!(
        e.contains("reply line too long from mx.example.test"),
        "{e}"
    );
}

#[tokio::test]
async fn refused_greeting_names_the_reply() {
    let peer = server(b"554-mx.example.test\r\n554 5.7.1 go away\r\n", vec![]).await;
    let e = Client::connect(peer, T).await.unwrap_err().to_string();
    assert!(
        e.starts_with("4.4.2 host mx.example.test[127.0.0.1]:")
            && e.ends_with(" refused to talk to me: 554 mx.example.test 5.7.1 go away"),
        "{e}"
    );
}
