//! One outbound SMTP connection: greeting, EHLO, STARTTLS, and mail transactions.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use postern_queue::{Outcome, QueuedMessage};
use postern_smtp::DataEncoder;
use postern_smtp::command::BodyType;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

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

/// A reply as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" "))
    }
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    pub esmtp: bool,
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    pub starttls: bool,
    pub dsn: bool,
}

impl Caps {
    fn parse(lines: &[String]) -> Caps {
        let mut c = Caps {
            esmtp: true,
            ..Caps::default()
        };
        for l in lines.iter().skip(1) {
            let mut words = l.split_whitespace();
            let kw = words.next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => c.pipelining = true,
                "SIZE" => c.size = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0),
                "8BITMIME" => c.eight_bit = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "CHUNKING" => c.chunking = true,
                "STARTTLS" => c.starttls = true,
                "DSN" => c.dsn = true,
                _ => {}
            }
        }
        c
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
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, b),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
            Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
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

/// Longest reply accepted from a server, in lines and bytes.
const MAX_REPLY_LINES: usize = 100;
const MAX_LINE: usize = 4096;

/// A connection to one SMTP server.
pub struct Client {
    stream: Stream,
    buf: Vec<u8>,
    pub peer: Peer,
    pub caps: Caps,
    /// `Verified`/`Trusted`/`Untrusted` and `TLSv1.3 with cipher ...` once TLS is up.
    pub tls: Option<(String, String)>,
    t: Timeouts,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Client({})", self.peer)
    }
}

/// Recipients' fates after one transaction, in the order given.
pub type TxResult = Vec<Outcome>;

impl Client {
    /// Connect and read the greeting.
    pub async fn connect(peer: Peer, t: Timeouts) -> Result<Client, String> {
        let addr = SocketAddr::new(peer.ip, peer.port);
        let tcp = match tokio::time::timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("4.4.1 connect to {peer} failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "4.4.1 connect to {peer} timed out after {:?}",
                    t.connect
                ));
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut c = Client {
            stream: Stream::Plain(tcp),
            buf: Vec::new(),
            peer,
            caps: Caps::default(),
            tls: None,
            t,
        };
        let greeting = c
            .reply(t.greeting)
            .await
            .map_err(|e| format!("4.4.2 {} while waiting for the greeting", e))?;
        if greeting.code != 220 {
            return Err(format!(
                "4.4.2 host {} refused to talk to me: {greeting}",
                c.peer
            ));
        }
        Ok(c)
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), String> {
        let t = self.t.command;
        let w = async {
            self.stream.write_all(data).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(t, w).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("lost connection with {}: {e}", self.peer)),
            Err(_) => Err(format!("timeout sending to {}", self.peer)),
        }
    }

    /// Read one reply (all its lines).
    pub async fn reply(&mut self, timeout: Duration) -> Result<ServerReply, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let line = loop {
                if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                    let mut l: Vec<u8> = self.buf.drain(..=i).collect();
                    l.pop();
                    if l.last() == Some(&b'\r') {
                        l.pop();
                    }
                    break String::from_utf8_lossy(&l).into_owned();
                }
                if self.buf.len() > MAX_LINE {
                    return Err(format!("reply line too long from {}", self.peer));
                }
                let mut tmp = [0u8; 4096];
                let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut tmp)).await {
                    Ok(Ok(0)) => return Err(format!("lost connection with {}", self.peer)),
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err(format!("lost connection with {}: {e}", self.peer)),
                    Err(_) => {
                        return Err(format!("timeout waiting for a reply from {}", self.peer));
                    }
                };
                self.buf.extend_from_slice(&tmp[..n]);
            };
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c));
            let Some(code) = code else {
                return Err(format!(
                    "malformed reply from {}: {:?}",
                    self.peer,
                    line.chars().take(80).collect::<String>()
                ));
            };
            let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if sep != b'-' || lines.len() >= MAX_REPLY_LINES {
                let r = ServerReply { code, lines };
                // RFC 5321 §3.8: 421 means the server is closing the channel, at any
                // point of the dialog: no further command (no HELO after EHLO).
                if code == 421 {
                    self.stream = Stream::Gone;
                    return Err(format!("host {} ended the session: {r}", self.peer));
                }
                return Ok(r);
            }
        }
    }

    async fn command(&mut self, line: &str) -> Result<ServerReply, String> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        let t = self.t.command;
        self.reply(t).await
    }

    /// EHLO, falling back to HELO when the server does not know EHLO.
    pub async fn hello(&mut self, name: &str) -> Result<(), String> {
        let r = self
            .command(&format!("EHLO {name}"))
            .await
            .map_err(|e| format!("4.4.2 {e}"))?;
        if r.code == 250 {
            self.caps = Caps::parse(&r.lines);
            return Ok(());
        }
        let r2 = self.command(&format!("HELO {name}")).await?;
        if r2.code == 250 {
            self.caps = Caps::default();
            return Ok(());
        }
        Err(format!(
            "4.4.2 host {} refused EHLO and HELO: {r}",
            self.peer
        ))
    }

    /// STARTTLS and the handshake. On failure the connection is unusable.
    pub async fn starttls(&mut self, config: Arc<ClientConfig>) -> Result<(), String> {
        let r = self.command("STARTTLS").await?;
        if r.code != 220 {
            return Err(format!("STARTTLS refused: {r}"));
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err("TLS is already active".into());
        };
        let name = ServerName::try_from(self.peer.host.clone())
            .or_else(|_| ServerName::try_from(self.peer.ip.to_string()))
            .map_err(|e| format!("bad server name: {e}"))?;
        let connect = TlsConnector::from(config).connect(name, tcp);
        match tokio::time::timeout(self.t.command, connect).await {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                self.buf.clear();
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("handshake timed out".into()),
        }
    }

    /// The negotiated protocol and cipher, once TLS is up.
    pub fn tls_summary(&self) -> Option<String> {
        let Stream::Tls(s) = &self.stream else {
            return None;
        };
        let c = s.get_ref().1;
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

    /// RSET before reusing the connection for another message.
    pub async fn reset(&mut self) -> bool {
        matches!(self.command("RSET").await, Ok(r) if r.code == 250)
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.command("QUIT")).await;
        let _ = self.stream.shutdown().await;
    }

    /// One mail transaction for `rcpts` (indexes into the envelope). `Err` means the
    /// connection failed before any recipient had a final answer; the caller may try
    /// another host.
    pub async fn transaction(
        &mut self,
        msg: &QueuedMessage,
        rcpts: &[usize],
    ) -> Result<TxResult, String> {
        let env = &msg.envelope;
        let needs_utf8 = !rcpts.iter().all(|&i| env.recipients[i].address.is_ascii())
            || matches!(&env.sender, postern_smtp::ReversePath::Address(a) if !a.is_ascii());
        if needs_utf8 && !self.caps.smtputf8 {
            let why = format!(
                "5.6.7 host {} does not support SMTPUTF8, which this message's non-ASCII addresses need",
                self.peer
            );
            return Ok(vec![Outcome::Permanent(why); rcpts.len()]);
        }
        if env.body == BodyType::EightBitMime && !self.caps.eight_bit {
            let why = format!(
                "5.6.3 host {} does not support 8BITMIME and the message is 8-bit; Postern does not convert it (RFC 6152)",
                self.peer
            );
            return Ok(vec![Outcome::Permanent(why); rcpts.len()]);
        }
        if let Some(limit) = self.caps.size
            && msg.body_len > limit
        {
            let why = format!(
                "5.3.4 message size {} exceeds the limit of {limit} octets at host {}",
                msg.body_len, self.peer
            );
            return Ok(vec![Outcome::Permanent(why); rcpts.len()]);
        }
        let mut mail = format!("MAIL FROM:{}", env.sender);
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", msg.body_len));
        }
        if env.body == BodyType::EightBitMime {
            mail.push_str(" BODY=8BITMIME");
        }
        // The client asked for SMTPUTF8 (UTF-8 headers, say): keep asking where offered.
        if needs_utf8 || (env.smtputf8 && self.caps.smtputf8) {
            mail.push_str(" SMTPUTF8");
        }
        // RFC 3461: pass the DSN requests on to a peer that takes them.
        if self.caps.dsn {
            if let Some(ret) = env.ret {
                mail.push_str(&format!(" RET={}", ret.as_str()));
            }
            if let Some(envid) = &env.envid {
                mail.push_str(&format!(" ENVID={}", envid.as_str()));
            }
        }
        let mut cmds = vec![mail];
        cmds.extend(rcpts.iter().map(|&i| {
            let r = &env.recipients[i];
            match r.dsn_params().filter(|_| self.caps.dsn) {
                Some(p) => format!("RCPT TO:<{}> {p}", r.address),
                None => format!("RCPT TO:<{}>", r.address),
            }
        }));
        let use_bdat = self.caps.chunking;
        if !use_bdat {
            cmds.push("DATA".into());
        }
        // Send (pipelined when offered) and collect the replies in order.
        let mut replies = Vec::with_capacity(cmds.len());
        if self.caps.pipelining {
            let batch: String = cmds.iter().map(|c| format!("{c}\r\n")).collect();
            self.send(batch.as_bytes()).await?;
            for _ in &cmds {
                let t = self.t.command;
                replies.push(self.reply(t).await?);
            }
        } else {
            for (k, c) in cmds.iter().enumerate() {
                let r = self.command(c).await?;
                let stop = r.code >= 400 && k == 0;
                replies.push(r);
                if stop {
                    break;
                }
            }
        }
        let said = |r: &ServerReply, cmd: &str, peer: &Peer| {
            format!("host {peer} said: {r} (in reply to {cmd} command)")
        };
        let mail_reply = &replies[0];
        if mail_reply.code >= 400 {
            let why = said(mail_reply, "MAIL FROM", &self.peer);
            let o = if mail_reply.code >= 500 {
                Outcome::Permanent(why)
            } else {
                Outcome::Temporary(why)
            };
            if !use_bdat && replies.get(rcpts.len() + 1).is_some_and(|r| r.code == 354) {
                self.send(b".\r\n").await?;
                let t = self.t.data_end;
                let _ = self.reply(t).await?;
            }
            return Ok(vec![o; rcpts.len()]);
        }
        let mut out: Vec<Option<Outcome>> = Vec::with_capacity(rcpts.len());
        for k in 0..rcpts.len() {
            let Some(r) = replies.get(k + 1) else {
                out.push(Some(Outcome::Temporary("4.4.2 no reply to RCPT TO".into())));
                continue;
            };
            out.push(match r.code {
                200..=299 => None,
                400..=499 => Some(Outcome::Temporary(said(r, "RCPT TO", &self.peer))),
                _ => Some(Outcome::Permanent(said(r, "RCPT TO", &self.peer))),
            });
        }
        let accepted = out.iter().filter(|o| o.is_none()).count();
        let final_reply = if accepted == 0 {
            // A server that answers 354 although it accepted no recipient gets an empty
            // message ended at once, so that the session stays in step.
            if !use_bdat && replies.get(rcpts.len() + 1).is_some_and(|r| r.code == 354) {
                self.send(b".\r\n").await?;
                let t = self.t.data_end;
                let _ = self.reply(t).await?;
            }
            None
        } else if use_bdat {
            Some(self.send_bdat(msg).await?)
        } else {
            let data_reply = replies.get(rcpts.len() + 1).cloned();
            match data_reply {
                Some(r) if r.code == 354 => Some(self.send_data(msg).await?),
                Some(r) => Some(ServerReply {
                    code: r.code,
                    lines: r.lines,
                }),
                None => {
                    let r = self.command("DATA").await?;
                    if r.code == 354 {
                        Some(self.send_data(msg).await?)
                    } else {
                        Some(r)
                    }
                }
            }
        };
        if let Some(r) = final_reply {
            let o = match r.code {
                200..=299 => Outcome::Relayed(format!("host {} said: {r}", self.peer)),
                400..=499 => Outcome::Temporary(said(&r, "end of DATA", &self.peer)),
                _ => Outcome::Permanent(said(&r, "end of DATA", &self.peer)),
            };
            for slot in out.iter_mut().filter(|o| o.is_none()) {
                *slot = Some(o.clone());
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Temporary("4.4.2 no final reply".into())))
            .collect())
    }

    async fn open_body(msg: &QueuedMessage) -> Result<tokio::io::Take<tokio::fs::File>, String> {
        let mut f = tokio::fs::File::open(&msg.path)
            .await
            .map_err(|e| format!("4.3.0 cannot read queue file {}: {e}", msg.path.display()))?;
        f.seek(std::io::SeekFrom::Start(msg.body_offset))
            .await
            .map_err(|e| format!("4.3.0 cannot read queue file: {e}"))?;
        Ok(f.take(msg.body_len))
    }

    async fn send_data(&mut self, msg: &QueuedMessage) -> Result<ServerReply, String> {
        let mut body = Self::open_body(msg).await?;
        let mut enc = DataEncoder::new();
        let mut chunk = vec![0u8; 64 << 10];
        let mut out = Vec::with_capacity(70 << 10);
        loop {
            let n = body
                .read(&mut chunk)
                .await
                .map_err(|e| format!("4.3.0 cannot read queue file: {e}"))?;
            if n == 0 {
                break;
            }
            enc.encode(&chunk[..n], &mut out);
            self.send(&out).await?;
            out.clear();
        }
        enc.finish(&mut out);
        self.send(&out).await?;
        let t = self.t.data_end;
        self.reply(t).await
    }

    async fn send_bdat(&mut self, msg: &QueuedMessage) -> Result<ServerReply, String> {
        let mut body = Self::open_body(msg).await?;
        let mut enc = DataEncoder::for_bdat();
        let mut chunk = vec![0u8; 1 << 20];
        let mut out = Vec::with_capacity((1 << 20) + 1024);
        loop {
            let n = body
                .read(&mut chunk)
                .await
                .map_err(|e| format!("4.3.0 cannot read queue file: {e}"))?;
            out.clear();
            let last = n == 0;
            if last {
                enc.finish(&mut out);
            } else {
                enc.encode(&chunk[..n], &mut out);
                if out.is_empty() {
                    continue;
                }
            }
            let head = if last {
                format!("BDAT {} LAST\r\n", out.len())
            } else {
                format!("BDAT {}\r\n", out.len())
            };
            self.send(head.as_bytes()).await?;
            self.send(&out).await?;
            let t = if last {
                self.t.data_end
            } else {
                self.t.command
            };
            let r = self.reply(t).await?;
            if last || r.code >= 400 {
                return Ok(r);
            }
        }
    }
}
