//! The policy listeners: HTTPS (TLS under the `[tls]` profile, certificates from the
//! shared [`TlsStore`], so SNI and SIGHUP reloads work as for SMTP) and the optional
//! plain-HTTP redirector. They face the internet, so everything is bounded: connections
//! (one semaphore for all listeners), the TLS handshake, reading the request head, the
//! head's size, requests per connection and the connection's whole life.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use postern_tls::TlsStore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::http::{Asked, answer_http, answer_https};
use super::policy::Policies;
use crate::config::MtaStsConfig;

/// The listeners' limits. The defaults are what the daemon uses.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once, over all policy listeners; more are closed at once.
    pub max_connections: usize,
    /// The TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Each request head must arrive within this (also bounds an idle connection).
    pub header_timeout: Duration,
    /// No connection lives longer than this.
    pub connection_timeout: Duration,
    /// The request line and headers, in bytes; larger heads get `431`.
    pub max_header_size: usize,
    /// Header fields per request.
    pub max_headers: usize,
    /// Requests per connection; the last answer says `Connection: close`.
    pub max_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
            max_header_size: 8192,
            max_headers: 32,
            max_requests: 20,
        }
    }
}

/// The bound addresses of the policy listeners (useful with port 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bound {
    pub https: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Https,
    Http,
}

#[derive(Debug)]
struct Shared {
    policies: Policies,
    limits: Limits,
    slots: Arc<Semaphore>,
    http: http1::Builder,
}

/// Start the `[mta_sts]` listeners (none when `listen` is empty), adding their tasks to
/// `tasks`; they end when `shutdown` turns true, closing the connections they hold.
pub async fn start(
    c: &MtaStsConfig,
    tls: &TlsStore,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> io::Result<Bound> {
    let (bound, t) = start_with(c, tls, shutdown, Limits::default()).await?;
    tasks.extend(t);
    Ok(bound)
}

/// [`start`] with chosen limits.
pub async fn start_with(
    c: &MtaStsConfig,
    tls: &TlsStore,
    shutdown: &watch::Receiver<bool>,
    limits: Limits,
) -> io::Result<(Bound, Vec<JoinHandle<()>>)> {
    let mut bound = Bound::default();
    let mut tasks = Vec::new();
    if !c.enabled() {
        return Ok((bound, tasks));
    }
    // The SMTP listeners' configuration (profile, versions, the store's resolver: SNI and
    // reloads included), speaking HTTP/1.1 only.
    let mut config = (*tls
        .server_config(None)
        .map_err(|e| io::Error::other(format!("mta_sts: {e}")))?)
    .clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_size)
        .max_buf_size(limits.max_header_size.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let shared = Arc::new(Shared {
        policies: Policies::new(c),
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        limits,
        http,
    });
    for (addrs, kind) in [(&c.listen, Kind::Https), (&c.http_listen, Kind::Http)] {
        for a in addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("mta_sts listener on {a}: {e}")))?;
            let addr = l.local_addr()?;
            let acceptor = (kind == Kind::Https).then(|| acceptor.clone());
            match kind {
                Kind::Https => bound.https.push(addr),
                Kind::Http => bound.http.push(addr),
            }
            info!(
                "MTA-STS policy listener on {addr} ({}, {} polic{})",
                match kind {
                    Kind::Https => "https",
                    Kind::Http => "http, redirects to https",
                },
                shared.policies.len(),
                if shared.policies.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            );
            tasks.push(tokio::spawn(accept_loop(
                l,
                acceptor,
                shared.clone(),
                shutdown.clone(),
            )));
        }
    }
    Ok((bound, tasks))
}

async fn accept_loop(
    l: TcpListener,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (stream, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not spin.
                    warn!("MTA-STS listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(slot) = shared.slots.clone().try_acquire_owned() else {
            debug!("MTA-STS: {peer}: too many connections, closed");
            drop(stream);
            continue;
        };
        let (acceptor, shared, mut shutdown) = (acceptor.clone(), shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let limit = shared.limits.connection_timeout;
            let conn = connection(stream, peer, acceptor, shared);
            tokio::select! {
                r = tokio::time::timeout(limit, conn) => if r.is_err() {
                    debug!("MTA-STS: {peer}: connection closed after {}s", limit.as_secs());
                },
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    match acceptor {
        None => serve(stream, peer, Kind::Http, shared).await,
        Some(acceptor) => {
            match tokio::time::timeout(shared.limits.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => serve(tls, peer, Kind::Https, shared).await,
                Ok(Err(e)) => debug!("MTA-STS: {peer}: TLS handshake failed: {e}"),
                Err(_) => debug!("MTA-STS: {peer}: TLS handshake timed out"),
            }
        }
    }
}

async fn serve<S>(io: S, peer: SocketAddr, kind: Kind, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let count = Arc::new(AtomicUsize::new(0));
    let s = shared.clone();
    let service = service_fn(move |req| {
        let n = count.fetch_add(1, Ordering::Relaxed) + 1;
        let asked = Asked::of(&req);
        let mut r = match kind {
            Kind::Https => answer_https(&s.policies, &asked),
            Kind::Http => answer_http(&s.policies, &asked),
        };
        if n >= s.limits.max_requests {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        info!(
            "MTA-STS {}: {peer}: {} -> {}",
            match kind {
                Kind::Https => "https",
                Kind::Http => "http",
            },
            asked.describe(),
            r.status().as_u16()
        );
        async move { Ok::<_, Infallible>(r) }
    });
    if let Err(e) = shared
        .http
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        debug!("MTA-STS: {peer}: {e}");
    }
}
