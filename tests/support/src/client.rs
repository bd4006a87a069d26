//! A test SMTP client with full control over the bytes on the wire.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// One reply as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientReply {
    pub code: u16,
    /// Text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl ClientReply {
    /// The last line as sent: `250 2.0.0 Ok`.
    pub fn last(&self) -> String {
        format!(
            "{} {}",
            self.code,
            self.lines.last().cloned().unwrap_or_default()
        )
    }
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
    pub fn has_line(&self, s: &str) -> bool {
        self.lines.iter().any(|l| l == s)
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}
impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, b),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
            Stream::Gone => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl std::fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpClient")
    }
}

/// A test client. Every wait is bounded (10 s by default) so a hung server fails the test
/// instead of hanging it.
pub struct SmtpClient {
    stream: Stream,
    buf: Vec<u8>,
    pub timeout: Duration,
}

impl SmtpClient {
    pub async fn connect(addr: SocketAddr) -> SmtpClient {
        let s = TcpStream::connect(addr).await.expect("connect");
        // Small writes (".\r\n" after the body) must not wait for Nagle + delayed ACK.
        let _ = s.set_nodelay(true);
        SmtpClient {
            stream: Stream::Plain(s),
            buf: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Connect and do TLS at once (implicit TLS).
    pub async fn connect_tls(addr: SocketAddr, cfg: Arc<ClientConfig>) -> SmtpClient {
        let mut c = SmtpClient::connect(addr).await;
        c.tls(cfg).await.expect("TLS handshake");
        c
    }

    /// Connect and read the greeting.
    pub async fn connect_greeted(addr: SocketAddr) -> SmtpClient {
        let mut c = SmtpClient::connect(addr).await;
        let g = c.reply().await;
        assert_eq!(g.code, 220, "greeting: {g:?}");
        c
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
        self.stream.flush().await.expect("flush");
    }

    /// Send bytes, reporting (instead of panicking on) a connection the server closed.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Send a command line (CRLF added) and read its reply.
    pub async fn cmd(&mut self, line: &str) -> ClientReply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Read one (possibly multi-line) reply; panics on timeout or EOF.
    pub async fn reply(&mut self) -> ClientReply {
        self.try_reply()
            .await
            .unwrap_or_else(|e| panic!("no reply: {e}"))
    }

    /// Read one reply; `Err("closed")` when the server closed the connection.
    pub async fn try_reply(&mut self) -> Result<ClientReply, String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            if line.len() < 4 {
                return Err(format!("short reply line {line:?}"));
            }
            let code: u16 = line[..3]
                .parse()
                .map_err(|_| format!("bad reply line {line:?}"))?;
            lines.push(line[4..].to_string());
            if line.as_bytes()[3] == b' ' {
                return Ok(ClientReply { code, lines });
            }
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            let mut tmp = [0u8; 4096];
            let n = tokio::time::timeout(self.timeout, self.stream.read(&mut tmp))
                .await
                .map_err(|_| "timeout waiting for the server".to_string())?
                .map_err(|e| format!("read error: {e}"))?;
            if n == 0 {
                return Err("closed".into());
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Whether the server has closed the connection (reads EOF within the timeout).
    pub async fn is_closed(&mut self) -> bool {
        let mut tmp = [0u8; 256];
        loop {
            match tokio::time::timeout(self.timeout, self.stream.read(&mut tmp)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// TLS handshake on the current connection (after a 220 to STARTTLS).
    pub async fn tls(&mut self, cfg: Arc<ClientConfig>) -> Result<(), String> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err("not a plain stream".into());
        };
        let name = ServerName::try_from("postern.test").unwrap();
        let tls = TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        self.stream = Stream::Tls(Box::new(tls));
        self.buf.clear();
        Ok(())
    }

    /// STARTTLS then handshake.
    pub async fn starttls(&mut self, cfg: Arc<ClientConfig>) {
        let r = self.cmd("STARTTLS").await;
        assert_eq!(r.last(), "220 2.0.0 Ready to start TLS");
        self.tls(cfg).await.expect("TLS handshake after STARTTLS");
    }

    /// Negotiated protocol version and cipher suite, when TLS is up.
    pub fn tls_info(&self) -> Option<(String, String)> {
        match &self.stream {
            Stream::Tls(s) => {
                let c = s.get_ref().1;
                Some((
                    format!("{:?}", c.protocol_version()?),
                    format!("{:?}", c.negotiated_cipher_suite()?.suite()),
                ))
            }
            _ => None,
        }
    }

    /// Send a whole transaction with DATA; returns the final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], message: &[u8]) -> ClientReply {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if r.code != 250 {
            return r;
        }
        for t in to {
            let r = self.cmd(&format!("RCPT TO:<{t}>")).await;
            if r.code != 250 {
                return r;
            }
        }
        let r = self.cmd("DATA").await;
        if r.code != 354 {
            return r;
        }
        self.send(message).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}
