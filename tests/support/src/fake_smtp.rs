//! A scriptable fake SMTP server for outbound tests: it records every command it receives,
//! so a test can prove what a client did *not* send (no MAIL in clear under a mandatory
//! TLS policy).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the fake server behaves.
#[derive(Debug, Clone, Default)]
pub struct FakeOpts {
    /// Advertise STARTTLS in the EHLO reply.
    pub starttls: bool,
    /// Answer STARTTLS with 220, then send garbage instead of a TLS handshake.
    pub break_tls: bool,
    /// Reply to every RCPT with this instead of 250 (e.g. "550 5.1.1 no such user").
    pub rcpt_reply: Option<String>,
    /// Advertise DSN (RFC 3461).
    pub dsn: bool,
    /// Advertise SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// Address to bind (default 127.0.0.1:0).
    pub bind: Option<SocketAddr>,
    /// Reply to EHLO with this line instead of the capability list (e.g. "421 4.3.2
    /// shutting down"); the connection stays open, so what the client does next shows.
    pub ehlo_reply: Option<String>,
    /// Accept STARTTLS with a real handshake under this configuration (with `starttls`,
    /// to advertise it); the dialog goes on inside TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Advertise REQUIRETLS (RFC 8689) in every EHLO reply, in plaintext too, as a
    /// broken or hostile server might.
    pub requiretls: bool,
}

/// A running fake server; stops when dropped.
#[derive(Debug)]
pub struct FakeSmtp {
    pub addr: SocketAddr,
    commands: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSmtp {
    pub async fn start(opts: FakeOpts) -> FakeSmtp {
        let listener =
            TcpListener::bind(opts.bind.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
                .await
                .unwrap();
        let addr = listener.local_addr().unwrap();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (c, m) = (commands.clone(), messages.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (c, m, o) = (c.clone(), m.clone(), opts.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, o, c, m).await;
                });
            }
        });
        FakeSmtp {
            addr,
            commands,
            messages,
            task,
        }
    }

    /// Every command line received, in order, over all connections.
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }

    /// Message contents received (unstuffed, without the final dot line).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.messages.lock().unwrap().clone()
    }
}

/// How a dialog ended: closed, or STARTTLS accepted (the stream is handed back for the
/// handshake).
enum End<S> {
    Done,
    StartTls(S),
}

async fn serve(
    sock: tokio::net::TcpStream,
    opts: FakeOpts,
    commands: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
) -> std::io::Result<()> {
    let mut sock = sock;
    sock.write_all(b"220 fake.test ESMTP fake\r\n").await?;
    match dialog(sock, &opts, false, &commands, &messages).await? {
        End::Done => Ok(()),
        End::StartTls(tcp) => {
            let Some(cfg) = opts.tls.clone() else {
                return Ok(());
            };
            let tls = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await?;
            dialog(tls, &opts, true, &commands, &messages).await?;
            Ok(())
        }
    }
}

async fn say<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}

async fn dialog<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    opts: &FakeOpts,
    in_tls: bool,
    commands: &Mutex<Vec<String>>,
    messages: &Mutex<Vec<Vec<u8>>>,
) -> std::io::Result<End<S>> {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(End::Done);
        }
        let line = line.trim_end().to_string();
        commands.lock().unwrap().push(line.clone());
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" if opts.ehlo_reply.is_some() => {
                let reply = opts.ehlo_reply.clone().unwrap_or_default();
                say(&mut r, format!("{reply}\r\n").as_bytes()).await?;
            }
            "EHLO" => {
                let mut reply = String::from("250-fake.test\r\n250-PIPELINING\r\n");
                if opts.starttls && !in_tls {
                    reply.push_str("250-STARTTLS\r\n");
                }
                if opts.dsn {
                    reply.push_str("250-DSN\r\n");
                }
                if opts.smtputf8 {
                    reply.push_str("250-SMTPUTF8\r\n");
                }
                if opts.requiretls {
                    reply.push_str("250-REQUIRETLS\r\n");
                }
                reply.push_str("250 8BITMIME\r\n");
                say(&mut r, reply.as_bytes()).await?;
            }
            "STARTTLS" if opts.break_tls => {
                say(&mut r, b"220 2.0.0 go ahead\r\n").await?;
                // Wait for the ClientHello, then answer nonsense.
                let mut buf = [0u8; 512];
                let _ = r.read(&mut buf).await;
                say(&mut r, b"this is not TLS\r\n").await?;
                return Ok(End::Done);
            }
            "STARTTLS" if opts.tls.is_some() && !in_tls => {
                say(&mut r, b"220 2.0.0 go ahead\r\n").await?;
                return Ok(End::StartTls(r.into_inner()));
            }
            "STARTTLS" => say(&mut r, b"454 4.7.0 TLS not available\r\n").await?,
            "RCPT" => {
                let reply = opts
                    .rcpt_reply
                    .clone()
                    .unwrap_or_else(|| "250 2.1.5 ok".into());
                say(&mut r, format!("{reply}\r\n").as_bytes()).await?;
            }
            "DATA" => {
                say(&mut r, b"354 go ahead\r\n").await?;
                let mut msg = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(End::Done);
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b"..") {
                        l.remove(0);
                    }
                    msg.extend_from_slice(&l);
                }
                messages.lock().unwrap().push(msg);
                say(&mut r, b"250 2.0.0 queued by fake\r\n").await?;
            }
            "QUIT" => {
                say(&mut r, b"221 2.0.0 bye\r\n").await?;
                return Ok(End::Done);
            }
            _ => say(&mut r, b"250 2.0.0 ok\r\n").await?,
        }
    }
}
