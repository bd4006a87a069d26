//! SMTP submission to the local daemon: one blocking session, all or nothing.
//!
//! # Security
//! STARTTLS is used when offered, without verifying the certificate: the peer is this
//! host's own daemon at the configured address, and an unprivileged user cannot read the
//! daemon's certificate files to pin them. The handshake signature is still checked.
//! Replies are bounded ([`MAX_REPLY`]); the content goes through [`DataEncoder`], so a
//! stray `.` line or bare CR/LF cannot end DATA early.
//!
//! # Standards
//! RFC 5321 (client side, dot-stuffing §4.5.2), RFC 3207 (STARTTLS), RFC 8314 (implicit
//! TLS), RFC 6152 (8BITMIME).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use postern_smtp::DataEncoder;

use crate::error::status;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per reply; the end-of-data reply waits for the daemon's fsync.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest reply (all lines) read from the daemon.
pub const MAX_REPLY: usize = 64 * 1024;

/// Where to submit: what `sendmail` needs from the configuration, and nothing more
/// (no certificate or key is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The first listener's address, as configured (see [`submit_address`]).
    pub listen: SocketAddr,
    /// The listener speaks TLS from the first byte (`mode = "implicit-tls"`).
    pub implicit_tls: bool,
    /// Our host name: EHLO, unqualified addresses, `Message-ID:`.
    pub hostname: String,
}

/// Where to reach a listener from this host (`0.0.0.0` as `127.0.0.1`, `::` as `::1`).
pub fn submit_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())
        }
        _ => listen,
    }
}

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No connection.
    #[error("cannot submit to the local mail daemon: {target}: {source}")]
    Connect {
        target: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed, or the daemon closed the connection.
    #[error("cannot submit to the local mail daemon: {0}")]
    Io(#[source] io::Error),
    /// The TLS handshake (or setting it up) failed.
    #[error("cannot submit to the local mail daemon: TLS: {0}")]
    Tls(String),
    /// The daemon's answer is not SMTP.
    #[error("cannot submit to the local mail daemon: {0}")]
    Protocol(String),
    /// An unexpected reply at some step.
    #[error("the local mail daemon refused {step} (nothing was sent):\n{}", reply.text)]
    Reply { step: String, reply: Reply },
}

impl Failure {
    /// The sysexits status (see the crate documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Reply { step, reply } => match reply.code / 100 {
                5 if step == "MAIL FROM" || step == "end of data" => status::DATAERR,
                5 => status::UNAVAILABLE,
                _ => status::TEMPFAIL,
            },
            _ => status::TEMPFAIL,
        }
    }
}

/// A server reply: its code and every line as received.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

struct Client {
    stream: Option<Stream>,
    buf: Vec<u8>,
}

fn protocol(e: impl std::fmt::Display) -> Failure {
    Failure::Protocol(e.to_string())
}

impl Client {
    fn stream(&mut self) -> Result<&mut Stream, Failure> {
        self.stream
            .as_mut()
            .ok_or_else(|| protocol("connection lost"))
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let s = self.stream()?;
        s.write_all(bytes)
            .and_then(|_| s.flush())
            .map_err(Failure::Io)
    }

    fn line(&mut self) -> Result<String, Failure> {
        loop {
            if let Some(n) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=n).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            if self.buf.len() > MAX_REPLY {
                return Err(protocol("reply line too long"));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream()?.read(&mut chunk).map_err(Failure::Io)?;
            if n == 0 {
                return Err(protocol("the daemon closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn reply(&mut self) -> Result<Reply, Failure> {
        let mut text = String::new();
        loop {
            let line = self.line()?;
            if text.len() > MAX_REPLY {
                return Err(protocol("reply too long"));
            }
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code.filter(|c| (200..600).contains(c)) else {
                return Err(protocol(format!("malformed reply {line:?}")));
            };
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, text });
            }
        }
    }

    /// Send a command (unless empty) and expect a reply of class `want`xx.
    fn command(&mut self, cmd: &str, step: &str, want: u16) -> Result<Reply, Failure> {
        if !cmd.is_empty() {
            self.send(format!("{cmd}\r\n").as_bytes())?;
        }
        let reply = self.reply()?;
        if reply.code / 100 == want {
            Ok(reply)
        } else {
            Err(Failure::Reply {
                step: step.to_string(),
                reply,
            })
        }
    }

    fn start_tls(&mut self, hostname: &str, ip: IpAddr) -> Result<(), Failure> {
        if !self.buf.is_empty() {
            return Err(protocol("data received before the TLS handshake"));
        }
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(protocol("TLS already active"));
        };
        let tls_err = |e: &dyn std::fmt::Display| Failure::Tls(e.to_string());
        let provider = Arc::new(postern_tls::provider(postern_tls::Profile::Default));
        let verifier = Arc::new(postern_tls::client::PeerVerifier::new(
            Arc::new(rustls::RootCertStore::empty()),
            provider.clone(),
            postern_tls::client::Expect::Anything,
            hostname,
        ));
        let cfg = postern_tls::client::client_config(provider, verifier, None)
            .map_err(|e| tls_err(&e))?;
        let name = rustls::pki_types::ServerName::try_from(hostname.to_string())
            .unwrap_or(rustls::pki_types::ServerName::IpAddress(ip.into()));
        let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| tls_err(&e))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| Failure::Tls(format!("handshake: {e}")))?;
        }
        self.stream = Some(Stream::Tls(Box::new(tls)));
        Ok(())
    }
}

/// Whether an EHLO reply offers `ext`.
fn offers(r: &Reply, ext: &str) -> bool {
    r.text.lines().skip(1).any(|l| {
        l.get(4..)
            .and_then(|s| s.split_whitespace().next())
            .is_some_and(|w| w.eq_ignore_ascii_case(ext))
    })
}

/// Submit one message over SMTP; `Ok` only on a 2xx reply to the end of data.
pub fn submit(
    target: &Target,
    sender: &str,
    recipients: &[String],
    message: &[u8],
) -> Result<Reply, Failure> {
    let addr = submit_address(target.listen);
    let hostname = target.hostname.as_str();
    let tcp =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|source| Failure::Connect {
            target: addr,
            source,
        })?;
    tcp.set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|_| tcp.set_write_timeout(Some(REPLY_TIMEOUT)))
        .map_err(Failure::Io)?;
    let mut c = Client {
        stream: Some(Stream::Plain(tcp)),
        buf: Vec::new(),
    };
    if target.implicit_tls {
        c.start_tls(hostname, addr.ip())?;
    }
    c.command("", "the connection (greeting)", 2)?;
    let ehlo = format!("EHLO {hostname}");
    let mut caps = c.command(&ehlo, "EHLO", 2)?;
    if !target.implicit_tls && offers(&caps, "STARTTLS") {
        c.command("STARTTLS", "STARTTLS", 2)?;
        c.start_tls(hostname, addr.ip())?;
        caps = c.command(&ehlo, "EHLO", 2)?;
    }
    let body8 = if message.iter().any(|&b| b >= 0x80) && offers(&caps, "8BITMIME") {
        " BODY=8BITMIME"
    } else {
        ""
    };
    c.command(&format!("MAIL FROM:<{sender}>{body8}"), "MAIL FROM", 2)?;
    for r in recipients {
        if let Err(e) = c.command(&format!("RCPT TO:<{r}>"), &format!("recipient <{r}>"), 2) {
            let _ = c.send(b"QUIT\r\n");
            return Err(e);
        }
    }
    c.command("DATA", "DATA", 3)?;
    let mut enc = DataEncoder::new();
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    enc.encode(message, &mut out);
    enc.finish(&mut out);
    c.send(&out)?;
    let done = c.command("", "end of data", 2)?;
    let _ = c.send(b"QUIT\r\n");
    Ok(done)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unspecified_addresses_map_to_loopback() {
        assert_eq!(
            submit_address("0.0.0.0:25".parse().unwrap()),
            "127.0.0.1:25".parse().unwrap()
        );
        assert_eq!(
            submit_address("[::]:25".parse().unwrap()),
            "[::1]:25".parse().unwrap()
        );
    }
}
