//! SMTP submission to the local daemon: one blocking session, all or nothing.
//!
//! # Security
//! STARTTLS is used when offered, without verifying the certificate: the peer is this
//! host's own daemon at the configured address, and an unprivileged user cannot read the
//! daemon's certificate files to pin them. The handshake signature is still checked.
//! Replies are read by the shared, bounded client-side parser of the SMTP codec
//! ([`ReplyParser`]: line, line count and size limits, sanitised text), and EHLO by its
//! [`Capabilities`]; the content goes through [`DataEncoder`], so a stray `.` line or
//! bare CR/LF cannot end DATA early.
//!
//! # Standards
//! RFC 5321 (client side, dot-stuffing §4.5.2), RFC 3207 (STARTTLS), RFC 8314 (implicit
//! TLS), RFC 6152 (8BITMIME).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postern_smtp::DataEncoder;
use postern_smtp::client::{Capabilities, Reply, ReplyError, ReplyParser};

use crate::error::status;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per reply; the end-of-data reply waits for the daemon's fsync.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

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
    /// The daemon's local submission socket (`[server] submit_socket`), tried first: over
    /// it the daemon learns our uid from the kernel. `None`, missing or not connectable:
    /// the listener is used.
    pub socket: Option<PathBuf>,
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
    /// The session went wrong (connection lost, data before the TLS handshake).
    #[error("cannot submit to the local mail daemon: {0}")]
    Protocol(String),
    /// The daemon's answer is not an SMTP reply.
    #[error("cannot submit to the local mail daemon: malformed reply: {0}")]
    Malformed(#[from] ReplyError),
    /// An unexpected reply at some step.
    #[error(
        "the local mail daemon refused {step} (nothing was sent):\n{}",
        lines(reply)
    )]
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

/// A reply as the daemon sent it: `CODE text`, one line each.
fn lines(reply: &Reply) -> String {
    reply
        .lines
        .iter()
        .map(|l| format!("{} {l}", reply.code))
        .collect::<Vec<_>>()
        .join("\n")
}

enum Stream {
    Local(UnixStream),
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Local(s) => s.read(buf),
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Local(s) => s.write(buf),
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Local(s) => s.flush(),
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

struct Client {
    stream: Option<Stream>,
    /// Received and not yet given to the parser.
    buf: Vec<u8>,
    parser: ReplyParser,
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

    fn reply(&mut self) -> Result<Reply, Failure> {
        loop {
            if !self.buf.is_empty() {
                let fed = self.parser.feed(&self.buf)?;
                self.buf.drain(..fed.consumed);
                if let Some(reply) = fed.reply {
                    return Ok(reply);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream()?.read(&mut chunk).map_err(Failure::Io)?;
            if n == 0 {
                return Err(protocol("the daemon closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Send a command (unless empty) and expect a reply of class `want`xx.
    fn command(&mut self, cmd: &str, step: &str, want: u16) -> Result<Reply, Failure> {
        if !cmd.is_empty() {
            self.send(format!("{cmd}\r\n").as_bytes())?;
        }
        let reply = self.reply()?;
        if reply.class() == want {
            Ok(reply)
        } else {
            Err(Failure::Reply {
                step: step.to_string(),
                reply,
            })
        }
    }

    fn start_tls(&mut self, hostname: &str, ip: IpAddr) -> Result<(), Failure> {
        if !self.buf.is_empty() || self.parser.in_reply() {
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

/// The local submission socket, if it is there and answers.
fn connect_local(target: &Target) -> Option<Stream> {
    let unix = UnixStream::connect(target.socket.as_ref()?).ok()?;
    unix.set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|_| unix.set_write_timeout(Some(REPLY_TIMEOUT)))
        .ok()?;
    Some(Stream::Local(unix))
}

/// The first listener over TCP.
fn connect_tcp(addr: SocketAddr) -> Result<Stream, Failure> {
    let tcp =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|source| Failure::Connect {
            target: addr,
            source,
        })?;
    tcp.set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|_| tcp.set_write_timeout(Some(REPLY_TIMEOUT)))
        .map_err(Failure::Io)?;
    Ok(Stream::Plain(tcp))
}

/// Submit one message over SMTP; `Ok` only on a 2xx reply to the end of data. The local
/// submission socket is used when it answers, else the first listener.
pub fn submit(
    target: &Target,
    sender: &str,
    recipients: &[String],
    message: &[u8],
) -> Result<Reply, Failure> {
    let addr = submit_address(target.listen);
    let hostname = target.hostname.as_str();
    let (stream, network) = match connect_local(target) {
        Some(s) => (s, false),
        None => (connect_tcp(addr)?, true),
    };
    let mut c = Client {
        stream: Some(stream),
        buf: Vec::new(),
        parser: ReplyParser::new(),
    };
    // TLS only over the network: the socket never leaves the kernel.
    let implicit_tls = network && target.implicit_tls;
    if implicit_tls {
        c.start_tls(hostname, addr.ip())?;
    }
    c.command("", "the connection (greeting)", 2)?;
    let ehlo = format!("EHLO {hostname}");
    let mut caps = Capabilities::from_reply(&c.command(&ehlo, "EHLO", 2)?);
    if network && !implicit_tls && caps.starttls {
        c.command("STARTTLS", "STARTTLS", 2)?;
        c.start_tls(hostname, addr.ip())?;
        caps = Capabilities::from_reply(&c.command(&ehlo, "EHLO", 2)?);
    }
    let body8 = if message.iter().any(|&b| b >= 0x80) && caps.eight_bit_mime {
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

    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    /// A scripted server on 127.0.0.1: for each (expected command prefix, reply), read a
    /// line that starts with the prefix (none for the greeting) and send the reply bytes.
    fn scripted(script: Vec<(&'static str, &'static [u8])>) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            for (expect, reply) in script {
                if !expect.is_empty() {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    assert!(line.starts_with(expect), "{line:?}, wanted {expect}");
                }
                w.write_all(reply).unwrap();
            }
        });
        Target {
            listen,
            implicit_tls: false,
            hostname: "h.test".into(),
            socket: None,
        }
    }

    #[test]
    fn multi_line_refusal_is_quoted_whole_and_mapped_to_its_status() {
        let t = scripted(vec![
            ("", b"220-mx.test ESMTP\r\n220 welcome\r\n"),
            (
                "EHLO h.test",
                b"250-mx.test\r\n250-8BITMIME\r\n250 SIZE 1000\r\n",
            ),
            ("MAIL FROM:<a@h.test> BODY=8BITMIME", b"250 ok\r\n"),
            (
                "RCPT TO:<b@x.test>",
                b"550-5.7.1 relaying denied\r\n550 5.7.1 see the docs\r\n",
            ),
        ]);
        let e = submit(&t, "a@h.test", &["b@x.test".into()], "\u{e9}".as_bytes()).unwrap_err();
        assert_eq!(e.exit_code(), status::UNAVAILABLE);
        let text = e.to_string();
        assert!(
            text.ends_with("recipient <b@x.test> (nothing was sent):\n550 5.7.1 relaying denied\n550 5.7.1 see the docs"),
            "{text}"
        );
    }

    #[test]
    fn malformed_replies_are_a_temporary_failure() {
        for bad in [
            &b"220-ok\r\n250 changed code\r\n"[..],
            b"22 short\r\n",
            b"220 a\0b\r\n",
        ] {
            let t = scripted(vec![("", bad)]);
            let e = submit(&t, "a@h.test", &["b@x.test".into()], b"x").unwrap_err();
            assert!(matches!(e, Failure::Malformed(_)), "{e:?}");
            assert_eq!(e.exit_code(), status::TEMPFAIL);
        }
        let t = scripted(vec![("", &[b'2'; 8192][..])]);
        let e = submit(&t, "a@h.test", &["b@x.test".into()], b"x").unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }

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
