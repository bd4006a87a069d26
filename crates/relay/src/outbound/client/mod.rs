//! One outbound SMTP connection: greeting, EHLO, STARTTLS, and mail transactions.
//!
//! Replies are read with the shared, bounded parser of `postern_smtp::client`; the bytes
//! after a reply stay in this connection's buffer (the next pipelined reply).
//!
//! # Security
//! Servers may be hostile: a reply that breaks the parser's limits or syntax ends the
//! connection ([`ClientError::BadReply`]). Bytes that arrive after the `220` reply to
//! STARTTLS and before the handshake were pipelined or injected by someone on the path;
//! they are never read as a reply inside TLS, and TLS is not started on that connection
//! ([`ClientError::StartTlsInjected`]).
//!
//! # Standards
//! RFC 5321 (§4.2 replies, §4.5.3.2 timeouts), RFC 3207 (STARTTLS), RFC 2920 (PIPELINING).

mod error;
mod transaction;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use postern_smtp::client::{Capabilities, Reply, ReplyParser};
use postern_tls::MaybeTls;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use error::ClientError;
pub use transaction::TxResult;

/// The server we talk to: `mx.example.org[192.0.2.1]:25`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub host: String,
    pub ip: IpAddr,
    pub port: u16,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]:{}", self.host, self.ip, self.port)
    }
}

/// Step timeouts (RFC 5321 §4.5.3.2 by default).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub greeting: Duration,
    pub command: Duration,
    pub data_end: Duration,
}

/// A connection to one SMTP server.
pub struct Client {
    stream: MaybeTls<TcpStream>,
    /// Received, not yet part of a reply.
    buf: Vec<u8>,
    pub peer: Peer,
    /// What the server offered in its last EHLO reply (nothing after HELO).
    pub caps: Capabilities,
    /// `Verified`/`Trusted`/`Untrusted` and `TLSv1.3 with cipher ...` once TLS is up.
    pub tls: Option<(String, String)>,
    /// How the next hop was authenticated, for REQUIRETLS (RFC 8689 §4.2.1): set by the
    /// agent when it sets the session up; the default fails closed.
    pub hop_auth: crate::outbound::requiretls::HopAuth,
    /// Our end of the connection (TLS-RPT `sending-mta-ip`).
    pub local_ip: Option<std::net::IpAddr>,
    t: Timeouts,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Client({})", self.peer)
    }
}

impl Client {
    /// Connect and read the greeting.
    pub async fn connect(peer: Peer, t: Timeouts) -> Result<Client, ClientError> {
        let addr = SocketAddr::new(peer.ip, peer.port);
        let tcp = match tokio::time::timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(ClientError::Connect { peer, source }),
            Err(_) => {
                return Err(ClientError::ConnectTimeout {
                    peer,
                    after: t.connect,
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let local_ip = tcp.local_addr().ok().map(|a| a.ip());
        let mut c = Client {
            local_ip,
            stream: MaybeTls::Plain(tcp),
            buf: Vec::new(),
            peer,
            caps: Capabilities::default(),
            tls: None,
            hop_auth: Default::default(),
            t,
        };
        let greeting = c
            .reply(t.greeting)
            .await
            .map_err(|e| ClientError::Greeting {
                source: Box::new(e),
            })?;
        if greeting.code != 220 {
            return Err(ClientError::GreetingRefused {
                peer: c.peer.clone(),
                reply: greeting,
            });
        }
        Ok(c)
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let t = self.t.command;
        let w = async {
            self.stream.write_all(data).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(t, w).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ClientError::Io {
                peer: self.peer.clone(),
                source,
            }),
            Err(_) => Err(ClientError::SendTimeout {
                peer: self.peer.clone(),
            }),
        }
    }

    /// Read one reply (all its lines), waiting at most `timeout` for all of it.
    pub async fn reply(&mut self, timeout: Duration) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut parser = ReplyParser::new();
        loop {
            if !self.buf.is_empty() {
                let f = parser
                    .feed(&self.buf)
                    .map_err(|source| ClientError::BadReply {
                        peer: self.peer.clone(),
                        source,
                    })?;
                self.buf.drain(..f.consumed);
                if let Some(r) = f.reply {
                    // RFC 5321 §3.8: 421 means the server is closing the channel, at any
                    // point of the dialog: no further command (no HELO after EHLO).
                    if r.code == 421 {
                        self.buf.clear();
                        self.stream = MaybeTls::Upgrading;
                        return Err(ClientError::ServiceClosing {
                            peer: self.peer.clone(),
                            reply: r,
                        });
                    }
                    return Ok(r);
                }
            }
            let mut tmp = [0u8; 4096];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut tmp)).await {
                Ok(Ok(0)) => {
                    return Err(ClientError::Closed {
                        peer: self.peer.clone(),
                    });
                }
                Ok(Ok(n)) => n,
                Ok(Err(source)) => {
                    return Err(ClientError::Io {
                        peer: self.peer.clone(),
                        source,
                    });
                }
                Err(_) => {
                    return Err(ClientError::ReplyTimeout {
                        peer: self.peer.clone(),
                    });
                }
            };
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        let t = self.t.command;
        self.reply(t).await
    }

    /// EHLO, falling back to HELO when the server does not know EHLO.
    pub async fn hello(&mut self, name: &str) -> Result<(), ClientError> {
        let r = self.command(&format!("EHLO {name}")).await?;
        if r.code == 250 {
            self.caps = Capabilities::from_reply(&r);
            return Ok(());
        }
        let r2 = self.command(&format!("HELO {name}")).await?;
        if r2.code == 250 {
            self.caps = Capabilities::default();
            return Ok(());
        }
        Err(ClientError::HelloRefused {
            peer: self.peer.clone(),
            reply: r,
        })
    }

    /// STARTTLS and the handshake, with the peer's host name as SNI. On failure the
    /// connection is unusable.
    pub async fn starttls(&mut self, config: Arc<ClientConfig>) -> Result<(), ClientError> {
        let sni = self.peer.host.clone();
        self.starttls_sni(config, &sni).await
    }

    /// STARTTLS and the handshake, sending `sni` (under DANE: the TLSA base name, RFC
    /// 7672 §8.1; an IP address literal sends none).
    pub async fn starttls_sni(
        &mut self,
        config: Arc<ClientConfig>,
        sni: &str,
    ) -> Result<(), ClientError> {
        let r = self.command("STARTTLS").await?;
        if r.code != 220 {
            return Err(ClientError::StartTlsRefused(r));
        }
        // Nothing may follow the 220 in clear: whatever did was pipelined by the server or
        // injected on the path, and must never be read as if it came inside TLS.
        if !self.buf.is_empty() {
            let bytes = self.buf.len();
            self.buf.clear();
            self.stream = MaybeTls::Upgrading;
            return Err(ClientError::StartTlsInjected {
                peer: self.peer.clone(),
                bytes,
            });
        }
        let Some(tcp) = self.stream.take_plain() else {
            return Err(ClientError::TlsActive);
        };
        let name = ServerName::try_from(sni.to_string())
            .or_else(|_| ServerName::try_from(self.peer.ip.to_string()))
            .map_err(ClientError::ServerName)?;
        let connect = TlsConnector::from(config).connect(name, tcp);
        match tokio::time::timeout(self.t.command, connect).await {
            Ok(Ok(tls)) => {
                self.stream = MaybeTls::tls(tls);
                Ok(())
            }
            Ok(Err(e)) => Err(ClientError::Handshake(e)),
            Err(_) => Err(ClientError::HandshakeTimeout),
        }
    }

    /// The negotiated protocol and cipher, once TLS is up.
    pub fn tls_summary(&self) -> Option<String> {
        let c = self.stream.tls_state()?;
        let v = match c.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        };
        let suite = c
            .negotiated_cipher_suite()
            .map(|s| {
                s.suite()
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{:?}", s.suite()))
            })
            .unwrap_or_default();
        Some(format!("{v} with cipher {suite}"))
    }

    /// Whether the session is inside TLS now.
    pub fn tls_active(&self) -> bool {
        self.stream.tls_state().is_some()
    }

    /// RSET before reusing the connection for another message.
    pub async fn reset(&mut self) -> bool {
        matches!(self.command("RSET").await, Ok(r) if r.code == 250)
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.command("QUIT")).await;
        let _ = self.stream.shutdown().await;
    }
}
