//! One SMTP session. The loop reads a command, the command's own file handles it, and the
//! handler returns a [`Flow`] saying whether to go on, close, or start TLS.

mod auth;
mod bdat;
mod data;
mod hello;
mod mail;
mod misc;
mod pipelining;
mod rcpt;
mod starttls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postern_queue::{Envelope, Incoming, QueueId, Recipient, SenderTls, unix_now};
use postern_smtp::address::ReversePath;
use postern_smtp::command::{self, Command, MailParams};
use postern_smtp::{BdatReader, HeaderLimits, HeaderScan, Reply};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::conn::{Conn, Line, ReadError, Stream};
use crate::received::{Trace, received};
use crate::{ListenerConfig, Mode, ServerContext};

/// Longest command line accepted (RFC 5321 allows 512; extensions make them longer).
const MAX_COMMAND_LINE: usize = 2048;

/// What the session does after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
    StartTls,
}

/// A mail transaction: from MAIL to the end of DATA / BDAT LAST.
pub(crate) struct Transaction {
    pub from: ReversePath,
    pub params: MailParams,
    /// Accepted recipients, with their DSN parameters (RFC 3461).
    pub rcpts: Vec<Recipient>,
    /// Set once the first BDAT chunk arrived.
    pub bdat: Option<BdatState>,
    /// SPF results from MAIL FROM, for DMARC and the headers at the end of the message.
    pub spf: Option<postern_auth::SpfCheck>,
    /// Length of our Received field at the top of the spooled content.
    pub trace_len: usize,
    /// The client's header section has an `Authentication-Results:` field (which may
    /// claim to be ours and must then be removed).
    pub saw_auth_results: bool,
    /// The header section has `TLS-Required: No` (RFC 8689 §5).
    pub tls_required_no: bool,
}

pub(crate) struct BdatState {
    /// `None` when the spool could not be opened: chunks are read and dropped.
    pub incoming: Option<Incoming>,
    pub reader: BdatReader,
    pub scan: HeaderScan,
    /// The whole-message deadline (`message_timeout` from the first chunk).
    pub deadline: Instant,
}

pub(crate) struct Session<S> {
    conn: Conn<S>,
    peer: SocketAddr,
    /// Our own address on this connection.
    local: Option<SocketAddr>,
    /// `max_session_time` after the connection was accepted.
    ends_at: Instant,
    id: String,
    cfg: Arc<ListenerConfig>,
    ctx: Arc<ServerContext>,
    helo: Option<String>,
    esmtp: bool,
    tls: Option<postern_tls::TlsSummary>,
    /// The client certificate presented in the TLS handshake, with its verdict.
    client_cert: Option<postern_tls::PresentedCert>,
    tx: Option<Transaction>,
    errors: u32,
    /// Turns true when the daemon stops: the session ends at its next command, with 421.
    shutdown: watch::Receiver<bool>,
    /// A local submission: the client's uid, from the kernel (`SO_PEERCRED`).
    uid: Option<u32>,
    /// The DMARC evaluation of the message being committed, for the observer.
    dmarc: Option<postern_auth::DmarcFacts>,
}

static SESSIONS: AtomicU64 = AtomicU64::new(0);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(crate) fn new(
        stream: Stream<S>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        cfg: Arc<ListenerConfig>,
        ctx: Arc<ServerContext>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:X}{:04X}", unix_now() & 0xFF_FFFF, n & 0xFFFF);
        Session {
            conn: Conn::new(stream),
            peer,
            local,
            ends_at: Instant::now() + cfg.max_session_time.get(),
            id,
            cfg,
            ctx,
            helo: None,
            esmtp: false,
            tls: None,
            client_cert: None,
            tx: None,
            errors: 0,
            shutdown,
            uid: None,
            dmarc: None,
        }
    }

    /// Mark the session as a local submission by `uid` (the kernel's word, not the
    /// client's): it is logged and written into the `Received:` field. Rights are those
    /// of the loopback address the session was created with, nothing more.
    pub(crate) fn with_uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn command_timeout(&self) -> Duration {
        self.cfg.command_timeout.get()
    }

    /// When the next read of message data gives up: `data_timeout` from now, or the
    /// message deadline, or the end of the session's lifetime, whichever comes first.
    fn data_deadline(&self, message_deadline: Instant) -> Instant {
        (Instant::now() + self.cfg.data_timeout.get())
            .min(message_deadline)
            .min(self.ends_at)
    }

    /// The deadline for a whole message starting now.
    fn message_deadline(&self) -> Instant {
        Instant::now() + self.cfg.message_timeout.get()
    }

    /// The header-section limits of this listener.
    fn header_scan(&self) -> HeaderScan {
        HeaderScan::new(HeaderLimits {
            max_hops: self.cfg.max_hop_count,
            max_fields: self.cfg.max_header_fields,
            max_size: self.cfg.max_header_size.bytes(),
        })
    }

    /// May this client relay (trusted network, or a partner certificate that may relay)?
    pub(crate) fn may_relay(&self) -> bool {
        self.ctx.relay.is_trusted(self.peer.ip())
            || crate::partner::may_relay(&self.ctx, self.client_cert.as_ref()).is_some()
    }

    /// `unknown[192.0.2.1]`, as Postfix writes a client without reverse DNS.
    /// A local submission is `localhost[uid=1000]`.
    fn client(&self) -> String {
        if let Some(uid) = self.uid {
            return format!("localhost[uid={uid}]");
        }
        format!("unknown[{}]", self.peer.ip())
    }

    pub(crate) async fn run(mut self) {
        if self.cfg.mode == Mode::ImplicitTls && !self.upgrade().await {
            return;
        }
        let mut commands = 0u32;
        if !self.pregreet_check().await {
            self.conn.shutdown().await;
            info!("disconnect from {} commands={commands}", self.client());
            crate::metrics::session_ended(&self.cfg, self.tls.as_ref());
            return;
        }
        let greeting = Reply::bare(
            220,
            vec![format!("{} ESMTP Postern", self.ctx.hostname).into()],
        );
        self.conn.send(&greeting);
        loop {
            let flow = match self.next_line().await {
                None => {
                    // Between commands, never inside DATA/BDAT: a message being received
                    // is finished (and acknowledged) first.
                    info!(
                        "closing the session with {}: Postern is shutting down",
                        self.client()
                    );
                    self.conn
                        .send(&postern_smtp::reply::std_replies::shutting_down());
                    Flow::Close
                }
                Some(Ok(Line::Ok(line))) => {
                    commands += 1;
                    self.handle_line(&line).await
                }
                Some(Ok(Line::TooLong)) => self.reply(command::CommandError::LineTooLong.reply()),
                Some(Err(e)) => self.read_failed(e, "command"),
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => break,
                Flow::StartTls => {
                    if !self.upgrade().await {
                        break;
                    }
                }
            }
        }
        self.conn.shutdown().await;
        info!("disconnect from {} commands={commands}", self.client());
        crate::metrics::session_ended(&self.cfg, self.tls.as_ref());
    }

    /// The next command line, or `None` when the daemon is stopping. Replies already
    /// queued (a 250 for a message) are sent before the stop is looked at.
    async fn next_line(&mut self) -> Option<Result<Line, ReadError>> {
        if let Err(e) = self.conn.flush().await {
            return Some(Err(ReadError::Io(e)));
        }
        let left = self.ends_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Some(Err(ReadError::Timeout));
        }
        let timeout = self.command_timeout().min(left);
        let stopping = async {
            // A dropped sender (the daemon's handle gone) is not a stop request.
            if self.shutdown.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            _ = stopping => None,
            r = self.conn.read_line(MAX_COMMAND_LINE, timeout) => Some(r),
        }
    }

    /// A read failed: say why on the wire if the peer can still hear it, and close.
    fn read_failed(&mut self, e: ReadError, during: &str) -> Flow {
        match e {
            ReadError::Timeout if Instant::now() >= self.ends_at => {
                warn!(
                    "session with {} reached max_session_time ({}) during {during}; closing",
                    self.client(),
                    self.cfg.max_session_time
                );
                self.conn.send(&postern_smtp::reply::std_replies::timeout());
            }
            ReadError::Timeout => {
                warn!("timeout after {during} from {}", self.client());
                self.conn.send(&postern_smtp::reply::std_replies::timeout());
            }
            ReadError::Closed => info!("lost connection after {during} from {}", self.client()),
            ReadError::Io(err) => info!("read error after {during} from {}: {err}", self.client()),
        }
        Flow::Close
    }

    async fn handle_line(&mut self, line: &[u8]) -> Flow {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(e) => return self.reply(e.reply()),
        };
        if let Some(flow) = self.improper_pipelining(&cmd) {
            return flow;
        }
        if self.cfg.require_tls
            && self.tls.is_none()
            && !matches!(
                cmd,
                Command::Ehlo(_)
                    | Command::Helo(_)
                    | Command::StartTls
                    | Command::Noop
                    | Command::Rset
                    | Command::Quit
                    | Command::Help
            )
        {
            let reply = postern_smtp::reply::std_replies::must_starttls();
            let (from, to) = match &cmd {
                Command::Mail { from, .. } => (Some(from.to_string()), None),
                Command::Rcpt { to, .. } => (
                    None,
                    Some(match to {
                        postern_smtp::ForwardPath::Address(a) => a.to_string(),
                        postern_smtp::ForwardPath::Postmaster => "postmaster".into(),
                    }),
                ),
                _ => (None, None),
            };
            self.log_reject_from(cmd.verb(), &reply, from.as_deref(), to.as_deref());
            if let Command::Bdat { size, .. } = cmd {
                return self.skip_chunk_then(size, reply).await;
            }
            return self.reply(reply);
        }
        match cmd {
            Command::Ehlo(name) => self.hello(name, true),
            Command::Helo(name) => self.hello(name, false),
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            Command::Rset => self.rset(),
            Command::Noop => self.reply(Reply::new(250, "2.0.0", "Ok")),
            Command::Quit => self.quit(),
            Command::Vrfy => self.reply(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn => self.reply(Reply::new(502, "5.5.1", "EXPN not available")),
            Command::Help => self.help(),
            Command::StartTls => self.starttls(),
            Command::NotImplemented(v) => {
                self.reply(Reply::new(502, "5.5.1", format!("{v} not implemented")))
            }
        }
    }

    /// Queue a reply, keeping count of consecutive errors; too many closes the session.
    pub(crate) fn reply(&mut self, r: Reply) -> Flow {
        self.conn.send(&r);
        if r.code >= 500 {
            self.errors += 1;
            if self.errors >= self.cfg.max_errors {
                warn!(
                    "too many errors from {}: closing after {} bad commands in a row",
                    self.client(),
                    self.errors
                );
                self.conn
                    .send(&postern_smtp::reply::std_replies::too_many_errors());
                return Flow::Close;
            }
        } else if r.code < 400 {
            self.errors = 0;
        }
        Flow::Continue
    }

    /// Postfix-style rejection log line, for the operator's grep: one per refusal, with
    /// the client, the sender, the recipient(s) and the reply (which says why).
    pub(crate) fn log_reject(&self, stage: &str, reply: &Reply, to: Option<&str>) {
        self.log_reject_from(stage, reply, None, to);
    }

    /// [`Session::log_reject`] with the sender given (a refused MAIL has no transaction).
    pub(crate) fn log_reject_from(
        &self,
        stage: &str,
        reply: &Reply,
        from: Option<&str>,
        to: Option<&str>,
    ) {
        crate::metrics::rejected(&self.cfg, stage, reply);
        let tx = self.tx.as_ref();
        let from = from
            .map(str::to_string)
            .or_else(|| tx.map(|t| t.from.to_string()))
            .unwrap_or_default();
        let to = match (to, tx) {
            (Some(t), _) => format!(" to=<{t}>"),
            (None, Some(t)) if !t.rcpts.is_empty() => {
                let more = t.rcpts.len() - 1;
                format!(
                    " to=<{}>{}",
                    t.rcpts[0].address,
                    if more > 0 {
                        format!(" nrcpt={}", t.rcpts.len())
                    } else {
                        String::new()
                    }
                )
            }
            _ => String::new(),
        };
        warn!(
            "NOQUEUE: reject: {stage} from {}: {reply}; from={from}{to} proto={} helo=<{}>",
            self.client(),
            self.protocol(),
            self.helo.as_deref().unwrap_or("")
        );
    }

    /// The `with` word of the Received header (RFC 3848).
    pub(crate) fn protocol(&self) -> &'static str {
        match (self.esmtp, self.tls.is_some()) {
            (true, true) => "ESMTPS",
            (true, false) => "ESMTP",
            (false, _) => "SMTP",
        }
    }

    /// Start a queue file for the current transaction, Received header first.
    pub(crate) async fn begin_message(&mut self) -> Result<Incoming, std::io::Error> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no transaction"))?;
        let envelope = Envelope {
            id: QueueId::generate(),
            arrived: unix_now(),
            client_ip: Some(self.peer.ip()),
            helo: self.helo.clone().unwrap_or_default(),
            sender: tx.from.clone(),
            recipients: tx.rcpts.clone(),
            body: tx.params.body.unwrap_or_default(),
            smtputf8: tx.params.smtputf8,
            ret: tx.params.ret,
            envid: tx.params.envid.clone(),
            // `TLS-Required: No` is known only at the end of the header section; it is
            // added at commit (`commit_message`).
            sender_tls: if tx.params.requiretls {
                SenderTls::RequireTls
            } else {
                SenderTls::Default
            },
        };
        let id = envelope.id.to_string();
        let for_rcpt = (tx.rcpts.len() == 1).then(|| tx.rcpts[0].to_string());
        let header = received(&Trace {
            helo: self.helo.as_deref().unwrap_or(""),
            ip: self.peer.ip(),
            hostname: &self.ctx.hostname,
            session: &self.id,
            protocol: self.protocol(),
            queue_id: &id,
            tls: self.tls.as_ref(),
            client_cert: self
                .client_cert
                .as_ref()
                .filter(|c| c.verified())
                .map(|c| c.subject()),
            for_rcpt,
            now: envelope.arrived,
            uid: self.uid,
        });
        let mut incoming = self.ctx.queue.begin(envelope).await?;
        incoming.write(header.as_bytes()).await?;
        if let Some(tx) = self.tx.as_mut() {
            tx.trace_len = header.len();
        }
        Ok(incoming)
    }

    /// Make the message durable and answer 250, or answer why not.
    pub(crate) async fn commit_message(&mut self, mut incoming: Incoming) -> Flow {
        if let Err(r) = self.auth_message(&mut incoming).await {
            self.log_reject("END-OF-MESSAGE", &r, None);
            self.tx = None;
            return self.reply(r);
        }
        let id = incoming.id();
        let size = incoming.len();
        let tx = self.tx.take();
        let sender_tls = tx.as_ref().map(sender_tls).unwrap_or_default();
        incoming.set_sender_tls(sender_tls);
        match incoming.commit().await {
            Ok(stored) => {
                let (from, n) = tx
                    .as_ref()
                    .map(|t| (t.from.to_string(), t.rcpts.len()))
                    .unwrap_or_default();
                if tx
                    .as_ref()
                    .is_some_and(|t| t.params.requiretls && t.tls_required_no)
                {
                    info!(
                        queue_id = %id,
                        "{id}: the message has TLS-Required: No and came with REQUIRETLS: the header field is ignored, REQUIRETLS applies (RFC 8689 §4.1)"
                    );
                }
                info!(
                    queue_id = %id,
                    "{id}: accepted from={from}, size={size}, nrcpt={n}, client={}, proto={}{}{}",
                    self.client(),
                    self.protocol(),
                    self.tls.as_ref().map(|t| format!(", tls={t}")).unwrap_or_default(),
                    match sender_tls {
                        SenderTls::Default => "",
                        SenderTls::RequireTls => ", requiretls=yes",
                        SenderTls::TlsOptional => ", tls-required=no",
                    }
                );
                crate::metrics::accepted(&self.cfg, self.tls.as_ref());
                self.observe(tx.as_ref(), &stored);
                self.reply(Reply::new(250, "2.0.0", format!("Ok: queued as {id}")))
            }
            Err(e) => self.storage_failed(e),
        }
    }

    /// Tell the observer (if any) about a message just accepted from a peer.
    fn observe(&mut self, tx: Option<&Transaction>, stored: &postern_queue::QueuedMessage) {
        let dmarc = self.dmarc.take();
        let (Some(obs), Some(tx), None) = (self.ctx.observer.as_ref(), tx, self.uid) else {
            return;
        };
        let recipients: Vec<String> = tx.rcpts.iter().map(|r| r.address.to_string()).collect();
        // Only small messages to the report addresses are read back (a report is small).
        let content = obs
            .wants_content(&recipients)
            .then(|| stored.read_body().ok())
            .flatten();
        obs.accepted(crate::observe::InboundMessage {
            client_ip: self.peer.ip(),
            helo: self.helo.clone().unwrap_or_default(),
            sender_domain: match &tx.from {
                ReversePath::Null => None,
                ReversePath::Address(a) => Some(a.domain.to_string()),
            },
            recipients,
            tls: self.tls.clone(),
            client_cert_verified: self.client_cert.as_ref().is_some_and(|c| c.verified()),
            dmarc,
            content,
        });
    }

    pub(crate) fn storage_failed(&mut self, e: std::io::Error) -> Flow {
        tracing::error!(
            "cannot write the queue, message from {} refused with 452 (nothing was acknowledged): {e}",
            self.client()
        );
        self.tx = None;
        self.reply(postern_smtp::reply::std_replies::storage_unavailable())
    }

    /// Read and drop a BDAT chunk's bytes, then send `reply` (RFC 3030 §3: the chunk must
    /// be consumed even when refused, or its bytes would be read as commands).
    pub(crate) async fn skip_chunk_then(&mut self, size: u64, reply: Reply) -> Flow {
        if size > data::discard_cap(self.cfg.max_message_size.bytes()) {
            warn!(
                "BDAT chunk of {size} octets from {} is far over max_message_size; closing",
                self.client()
            );
            self.conn.send(&reply);
            return Flow::Close;
        }
        let mut remaining = size;
        let deadline = self.message_deadline();
        while remaining > 0 {
            if self.conn.buffered().is_empty()
                && let Err(e) = self.conn.fill_until(self.data_deadline(deadline)).await
            {
                self.message_timed_out(&e, deadline, "BDAT");
                return self.read_failed(e, "BDAT");
            }
            let n = (self.conn.buffered().len() as u64).min(remaining);
            self.conn.consume(n as usize);
            remaining -= n;
        }
        self.reply(reply)
    }
}

/// What the sender asked of TLS on the way (RFC 8689): REQUIRETLS wins over a
/// `TLS-Required: No` field, which is then ignored (§4.1).
fn sender_tls(tx: &Transaction) -> SenderTls {
    match (tx.params.requiretls, tx.tls_required_no) {
        (true, _) => SenderTls::RequireTls,
        (false, true) => SenderTls::TlsOptional,
        (false, false) => SenderTls::Default,
    }
}
