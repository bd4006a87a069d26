//! A small HTTPS server for tests (MTA-STS policy fetches): tokio-rustls on
//! 127.0.0.1:0 with a test CA's certificate, one canned HTTP/1.1 answer the test can
//! change at any time ([`HttpsServer::set`]), and a count of the requests served.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The answer to every request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Extra header lines (`Content-Length` and `Connection: close` are added).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// `200` with `Content-Type: text/plain` and `body`.
    pub fn text(body: &str) -> Reply {
        Reply::with(200, Some("text/plain"), body.as_bytes())
    }

    /// Any status, an optional `Content-Type`, and `body`.
    pub fn with(status: u16, content_type: Option<&str>, body: &[u8]) -> Reply {
        Reply {
            status,
            headers: content_type
                .map(|c| vec![("Content-Type".to_string(), c.to_string())])
                .unwrap_or_default(),
            body: body.to_vec(),
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct HttpsServer {
    addr: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<AtomicUsize>,
    last_request: Arc<Mutex<String>>,
    last_body: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsServer {
    /// Serve `reply` on 127.0.0.1:0 with certificate `chain` and `key` (TLS 1.2/1.3).
    pub async fn start(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        reply: Reply,
    ) -> HttpsServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), chain, key, reply).await
    }

    /// [`HttpsServer::start`] on a given address (a restarted server keeps its port).
    pub async fn start_on(
        addr: SocketAddr,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        reply: Reply,
    ) -> HttpsServer {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(AtomicUsize::new(0));
        let last_request = Arc::new(Mutex::new(String::new()));
        let last_body = Arc::new(Mutex::new(Vec::new()));
        let (r, n, last) = (reply.clone(), requests.clone(), last_request.clone());
        let body_slot = last_body.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, r, n, last) = (acceptor.clone(), r.clone(), n.clone(), last.clone());
                let body_slot = body_slot.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => head.extend_from_slice(&buf[..k]),
                        }
                    }
                    // A body (a POST): as long as Content-Length says, at most 1 MiB.
                    let end = head
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(head.len(), |p| p + 4);
                    let mut body = head.split_off(end);
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let want = text
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim()
                                .eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0)
                        .min(1 << 20);
                    while body.len() < want {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => body.extend_from_slice(&buf[..k]),
                        }
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                    *last.lock().unwrap() = text;
                    *body_slot.lock().unwrap() = body;
                    let reply = r.lock().unwrap().clone();
                    let mut out = format!("HTTP/1.1 {} Test\r\n", reply.status);
                    for (k, v) in &reply.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str(&format!(
                        "Content-Length: {}\r\nConnection: close\r\n\r\n",
                        reply.body.len()
                    ));
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&reply.body);
                    let _ = tls.write_all(&bytes).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        HttpsServer {
            addr,
            reply,
            requests,
            last_request,
            last_body,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer `reply` from now on.
    pub fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The head of the last request (request line and header fields).
    pub fn last_request(&self) -> String {
        self.last_request.lock().unwrap().clone()
    }

    /// The body of the last request (empty for a GET).
    pub fn last_body(&self) -> Vec<u8> {
        self.last_body.lock().unwrap().clone()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
