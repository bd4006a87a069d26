//! Accepting connections, with per-listener and per-client limits.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use postern_queue::Queue;
use postern_smtp::address::Domain;
use postern_smtp::reply::std_replies;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{Instrument, error, info, info_span, warn};

use crate::conn::Stream;
use crate::session::Session;
use crate::{ListenerConfig, RelayPolicy};

/// How long a stopping listener waits for its sessions (a message in DATA is finished).
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What every session of every listener shares.
pub struct ServerContext {
    /// Our name, in the greeting, EHLO reply and Received header.
    pub hostname: String,
    pub relay: RelayPolicy,
    /// Whether mail for a domain has somewhere to go (the route table).
    pub routes: Box<dyn Fn(&Domain) -> bool + Send + Sync>,
    /// Whether the route for an address accepts its mailbox (`[[route]] recipients`):
    /// `false` is refused at RCPT with `550 5.1.1`, so no bounce is ever sent for it.
    pub recipients: Box<dyn Fn(&postern_smtp::address::Address) -> bool + Send + Sync>,
    pub queue: Queue,
    /// Server TLS configuration; `None` disables STARTTLS and implicit TLS.
    pub tls: Option<Arc<rustls_server::ServerConfig>>,
    /// The listener's client-certificate verifier (when it asks for certificates).
    pub client_certs: Option<Arc<postern_tls::ClientCertPolicy>>,
    /// `[[inbound.partner]]` rules.
    pub partners: Arc<crate::Partners>,
    /// SPF / DKIM / DMARC checks and DKIM signing (`[auth]`); `None`: all off.
    pub auth: Option<Arc<postern_auth::Auth>>,
    /// Hears every accepted message (the report store; [`crate::observe`]).
    pub observer: Option<Arc<dyn crate::observe::InboundObserver>>,
}

mod rustls_server {
    pub use tokio_rustls::rustls::ServerConfig;
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// Connection counts for one listener.
#[derive(Debug)]
pub(crate) struct Limits {
    total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
}

/// The key the per-client limit counts by: the IPv4 address (also when it reaches an
/// IPv6 socket as `::ffff:a.b.c.d`), or the IPv6 /64 network. One IPv6 host usually
/// holds a whole /64, so counting single IPv6 addresses would let it open
/// `max_connections_per_ip` connections from each of 2^64 addresses.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Held for the life of a connection; gives its slots back on drop.
pub(crate) struct Slot {
    limits: Arc<Limits>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.limits.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    pub(crate) fn new(config: &ListenerConfig) -> Arc<Limits> {
        Arc::new(Limits {
            total: Arc::new(Semaphore::new(config.max_connections)),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: config.max_connections_per_ip,
        })
    }

    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let ip = client_key(ip);
        let permit = self.total.clone().try_acquire_owned().ok()?;
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(Slot {
            limits: self.clone(),
            ip,
            _permit: permit,
        })
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub struct Listener {
    config: Arc<ListenerConfig>,
    socket: TcpListener,
    ctx: Arc<ServerContext>,
    limits: Arc<Limits>,
}

impl Listener {
    /// Bind the listener's address (port 0 picks a free port; see [`Listener::local_addr`]).
    pub async fn bind(config: ListenerConfig, ctx: Arc<ServerContext>) -> io::Result<Listener> {
        let socket = TcpListener::bind(config.address).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", config.address),
            )
        })?;
        let limits = Limits::new(&config);
        Ok(Listener {
            config: Arc::new(config),
            socket,
            ctx,
            limits,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accept connections until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                a = self.socket.accept() => a,
                _ = shutdown.changed() => break,
            };
            let (mut tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    error!("accept failed on {}: {e}", self.config.address);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(slot) = self.limits.acquire(peer.ip()) else {
                warn!(client = %peer.ip(), "connection refused from unknown[{}]: too many connections", peer.ip());
                crate::metrics::refused(&self.config, "too_many_connections");
                // On an implicit-TLS port a plaintext reply would only look like a broken
                // handshake to the client: just close there.
                let plaintext = self.config.mode != crate::Mode::ImplicitTls;
                tokio::spawn(async move {
                    if plaintext {
                        let reply = std_replies::too_many_connections().to_bytes();
                        let _ = tcp.write_all(&reply).await;
                    }
                    let _ = tcp.shutdown().await;
                });
                continue;
            };
            let local = tcp.local_addr().ok();
            let session = Session::new(
                Stream::Plain(tcp),
                peer,
                local,
                self.config.clone(),
                self.ctx.clone(),
                shutdown.clone(),
            );
            let span = info_span!("smtp", session = %session.id(), client = %peer.ip());
            tokio::spawn(
                async move {
                    info!("connect from unknown[{}]", peer.ip());
                    session.run().await;
                    drop(slot);
                }
                .instrument(span),
            );
        }
        info!("listener {} stopped", self.config.address);
        // Close the socket first: new connections are refused while sessions drain.
        let Listener {
            config,
            socket,
            limits,
            ..
        } = self;
        drop(socket);
        drain(&config, &limits).await;
    }
}

/// Wait for the sessions of this listener to end: idle ones end at once with 421
/// (4.3.2); one receiving a message finishes it first. After [`DRAIN_TIMEOUT`] the
/// rest are left to be cut off when the process exits — nothing they were sending
/// has been acknowledged, so the client keeps responsibility for it.
pub(crate) async fn drain(config: &ListenerConfig, limits: &Limits) {
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    let open = all as usize - limits.total.available_permits();
    if open == 0 {
        return;
    }
    info!(
        "listener {}: waiting up to {}s for {open} session(s) to finish",
        config.address,
        DRAIN_TIMEOUT.as_secs()
    );
    match tokio::time::timeout(DRAIN_TIMEOUT, limits.total.acquire_many(all)).await {
        Ok(_) => info!("listener {}: all sessions ended", config.address),
        Err(_) => warn!(
            "listener {}: {} session(s) still open after {}s are cut off; nothing they were sending was acknowledged",
            config.address,
            all as usize - limits.total.available_permits(),
            DRAIN_TIMEOUT.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_per_ip: usize) -> Arc<Limits> {
        Arc::new(Limits {
            total: Arc::new(Semaphore::new(100)),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let l = limits(2);
        let a = l.acquire(ip("2001:db8:1:2::1"));
        let b = l.acquire(ip("2001:db8:1:2:ffff::9"));
        assert!(a.is_some() && b.is_some());
        // A third address of the same /64 is over the limit; another /64 is not.
        assert!(l.acquire(ip("2001:db8:1:2:1:2:3:4")).is_none());
        assert!(l.acquire(ip("2001:db8:1:3::1")).is_some());
        drop(a);
        assert!(l.acquire(ip("2001:db8:1:2::77")).is_some());
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
    }
}
