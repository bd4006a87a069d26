//! `postern sendmail`, and the binary invoked as `sendmail` (`/usr/sbin/sendmail`, a link the
//! Debian package creates): the command-line mail interface that cron, mailutils and scripts
//! expect of a `mail-transport-agent`.
//!
//! The message is read from standard input, completed (`Date:`, `Message-ID:` and `From:`
//! added when missing, `Bcc:` always removed) and submitted over SMTP to the local daemon:
//! the first `[[listener]]` of the configuration (`0.0.0.0` is reached as `127.0.0.1`, `::`
//! as `::1`). This command keeps no queue of its own: it exits 0 only after the daemon
//! answered 250 to the end of DATA, i.e. after the message is on disk in the daemon's queue.
//! Every other outcome leaves nothing accepted, prints the reason (the server's reply, when
//! there is one) on stderr, and exits with a sysexits.h status:
//!
//! | status | when |
//! |---|---|
//! | 0 | the daemon accepted the message (250 after DATA) |
//! | 64 `EX_USAGE` | bad command line: unknown option, `-bd`/`-bs`/`-bp`/..., no recipients, an unreadable address |
//! | 65 `EX_DATAERR` | a 5xx reply to MAIL FROM or to the message itself (after DATA) |
//! | 69 `EX_UNAVAILABLE` | any other 5xx reply (greeting, EHLO, STARTTLS, a recipient, DATA) |
//! | 74 `EX_IOERR` | standard input could not be read |
//! | 75 `EX_TEMPFAIL` | no connection, TLS or protocol failure, timeout, or any 4xx reply: try later |
//! | 78 `EX_CONFIG` | the configuration cannot be loaded, or has no `[[listener]]` |
//!
//! All or nothing: if the daemon refuses one recipient, the transaction is abandoned and no
//! one gets the message (the caller sees the refusal; nothing is half-sent).
//!
//! # Security
//! - Runs with the invoking user's privileges and only speaks SMTP to the daemon, which
//!   applies its relay policy as for any client (the packaged configuration trusts
//!   loopback, so local users may send to any domain; without that, only local domains).
//! - STARTTLS is used when offered, without verifying the certificate: the peer is this
//!   host's own daemon at the configured address, and an unprivileged user cannot read the
//!   daemon's certificate files to pin them. The handshake signature is still checked.
//! - Every address (arguments, `-f`, headers with `-t`) must parse as a mailbox before
//!   anything is sent, so no CR/LF or `>` can smuggle an SMTP command; `-F` names with
//!   control characters are refused (no header injection). The content goes through
//!   [`DataEncoder`], so a stray `.` line or bare CR/LF cannot end DATA early.
//! - `From:` and the envelope sender are not authenticated (as with every sendmail): `-f`
//!   sets them freely, the default is the user name of the real UID at the host name.
//!
//! # Standards
//! RFC 5321 (client side, dot-stuffing §4.5.2), RFC 3207 (STARTTLS), RFC 6152 (8BITMIME),
//! RFC 5322 §3.6 (`Date`, `Message-ID`, `From`, `Bcc`, address lists), the traditional
//! sendmail(8) command line (`-t -i -oi -f -r -F -bm`, other `-o` options ignored).

use std::io::{self, BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_inbound::Mode;
use postern_smtp::DataEncoder;

/// sysexits.h statuses used here.
pub mod status {
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const UNAVAILABLE: u8 = 69;
    pub const IOERR: u8 = 74;
    pub const TEMPFAIL: u8 = 75;
    pub const CONFIG: u8 = 78;
}

/// The configuration used when neither `--config` nor `POSTERN_CONFIG` names one.
const SYSTEM_CONFIG: &str = "/etc/postern/postern.toml";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per reply; the end-of-data reply waits for the daemon's fsync.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
const MAX_REPLY: usize = 64 * 1024;

/// `postern sendmail`: send one message (read from standard input) through the local daemon.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_help = "\
Exit status: 0 accepted by the daemon; 64 usage; 65 sender or message refused (5xx);
69 other 5xx (e.g. a recipient refused); 74 stdin unreadable; 75 try again later
(no connection, 4xx); 78 configuration problem. Invoked as `sendmail` (the Debian
package links /usr/sbin/sendmail to postern), the classic options are accepted as well.")]
pub struct SendmailArgs {
    /// Also take recipients from the To:, Cc: and Bcc: headers (Bcc: is always removed).
    #[arg(short = 't')]
    pub from_headers: bool,
    /// A line with only "." does not end the message (without -i it does).
    #[arg(short = 'i')]
    pub ignore_dots: bool,
    /// Classic sendmail option: -oi is -i; every other -oX is accepted and ignored.
    #[arg(short = 'o', value_name = "OPTION")]
    pub options: Vec<String>,
    /// Envelope sender and From: address (default: USER@hostname; "<>" for none).
    #[arg(short = 'f', short_alias = 'r', value_name = "SENDER")]
    pub sender: Option<String>,
    /// Full name for a From: header this command adds.
    #[arg(short = 'F', value_name = "NAME")]
    pub full_name: Option<String>,
    /// Mode: only -bm (deliver mail, the default) is supported.
    #[arg(short = 'b', value_name = "MODE")]
    pub mode: Option<String>,
    /// Recipient addresses (unqualified names get @hostname).
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
}

/// True when the program was started under the name `sendmail`.
pub fn invoked_as_sendmail() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n == "sendmail"))
        .unwrap_or(false)
}

/// Entry point for the binary invoked as `sendmail`: classic, lenient parsing;
/// the configuration from `POSTERN_CONFIG` or the system default.
pub fn main_classic() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_classic(&args) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    let config = std::env::var_os("POSTERN_CONFIG").map(PathBuf::from);
    send(config, opts)
}

/// Entry point for `postern sendmail`.
pub fn run(config: Option<PathBuf>, args: SendmailArgs) -> ExitCode {
    let mut o = Options {
        from_headers: args.from_headers,
        ignore_dots: args.ignore_dots,
        sender: args.sender,
        full_name: args.full_name,
        recipients: args.recipients,
    };
    for v in &args.options {
        apply_value(&mut o, 'o', v).ok();
    }
    if let Some(m) = &args.mode
        && let Err(e) = apply_value(&mut o, 'b', m)
    {
        return usage(&e);
    }
    send(config, o)
}

fn usage(e: &str) -> ExitCode {
    eprintln!("sendmail: {e}");
    ExitCode::from(status::USAGE)
}

/// What the command line asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub from_headers: bool,
    pub ignore_dots: bool,
    pub sender: Option<String>,
    pub full_name: Option<String>,
    pub recipients: Vec<String>,
}

/// Parse a classic sendmail command line (getopt style: `-ti`, `-fSENDER` or `-f SENDER`).
pub fn parse_classic(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            o.recipients.extend(args[i..].iter().cloned());
            break;
        }
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.recipients.push(a.clone());
            continue;
        };
        for (pos, c) in flags.char_indices() {
            match c {
                't' => o.from_headers = true,
                'i' => o.ignore_dots = true,
                // verbose, initial submission, "me too", no aliasing: nothing to change here
                'v' | 'U' | 'm' | 'n' => {}
                'f' | 'r' | 'F' | 'o' | 'b' | 'B' | 'C' | 'e' | 'h' | 'L' | 'N' | 'O' | 'R'
                | 'V' | 'X' => {
                    let rest = &flags[pos + c.len_utf8()..];
                    let value = if !rest.is_empty() {
                        rest.to_string()
                    } else if let Some(next) = args.get(i) {
                        i += 1;
                        next.clone()
                    } else {
                        return Err(format!("option -{c} needs a value"));
                    };
                    apply_value(&mut o, c, &value)?;
                    break;
                }
                'q' => {
                    return Err("-q (run the queue) is not supported here: use \
                                `postern queue flush --all`"
                        .into());
                }
                other => return Err(format!("unknown option -{other}")),
            }
        }
    }
    Ok(o)
}

/// An option with a value. `-B`, `-C`, `-e`, `-h`, `-L`, `-N`, `-O`, `-R`, `-V`, `-X` and
/// every `-o` but `-oi` are accepted and have no effect (the daemon decides those things).
fn apply_value(o: &mut Options, c: char, v: &str) -> Result<(), String> {
    match c {
        'f' | 'r' => o.sender = Some(v.to_string()),
        'F' => o.full_name = Some(v.to_string()),
        'o' if v == "i" => o.ignore_dots = true,
        'b' => match v {
            "m" => {}
            "d" | "D" => {
                return Err("-bd (run as a daemon) is not supported: the daemon is \
                            `postern serve` (systemctl start postern)"
                    .into());
            }
            "s" => {
                return Err("-bs (SMTP on standard input) is not supported: connect to \
                            the daemon's SMTP listener instead"
                    .into());
            }
            "p" => return Err("-bp is not supported: use `postern queue list`".into()),
            "i" => return Err("-bi (newaliases) is not supported: Postern has no aliases".into()),
            other => {
                return Err(format!(
                    "-b{other} is not supported; only -bm (send a message, the default) is"
                ));
            }
        },
        _ => {}
    }
    Ok(())
}

fn send(config: Option<PathBuf>, opts: Options) -> ExitCode {
    match send_inner(config, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("sendmail: {msg}");
            ExitCode::from(code)
        }
    }
}

fn send_inner(config: Option<PathBuf>, opts: Options) -> Result<(), (u8, String)> {
    let path = config.or_else(|| {
        let p = PathBuf::from(SYSTEM_CONFIG);
        p.exists().then_some(p)
    });
    let loaded = crate::config::load(path.as_deref()).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        (status::CONFIG, lines.join("\n"))
    })?;
    let c = &loaded.config;
    let Some(listener) = c.listener.first() else {
        return Err((
            status::CONFIG,
            format!("{}: no [[listener]] to submit to", loaded.name),
        ));
    };
    let hostname = c.hostname();
    if let Some(n) = &opts.full_name
        && n.chars().any(char::is_control)
    {
        return Err((status::USAGE, "-F: the name has control characters".into()));
    }
    let sender = match opts.sender.as_deref() {
        Some("<>" | "") => String::new(),
        Some(s) => qualify(s, &hostname),
        None => format!("{}@{hostname}", user_name()),
    };
    check_address(&sender, "sender").map_err(|e| (status::USAGE, e))?;
    let mut recipients = Vec::new();
    for a in &opts.recipients {
        recipients.extend(address_list(a).into_iter().map(|r| qualify(&r, &hostname)));
    }
    if recipients.is_empty() && !opts.from_headers {
        return Err((status::USAGE, "no recipients given (and no -t)".into()));
    }

    let stdin = io::stdin();
    let raw = read_message(stdin.lock(), opts.ignore_dots)
        .map_err(|e| (status::IOERR, format!("cannot read the message: {e}")))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let p = prepare(
        &raw,
        &Context {
            hostname: &hostname,
            sender: &sender,
            full_name: opts.full_name.as_deref(),
            now,
        },
    );
    if opts.from_headers {
        recipients.extend(p.header_recipients.iter().map(|r| qualify(r, &hostname)));
    }
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| seen.insert(r.to_ascii_lowercase()));
    if recipients.is_empty() {
        return Err((status::USAGE, "no recipients in To:, Cc: or Bcc:".into()));
    }
    for r in &recipients {
        check_address(r, "recipient").map_err(|e| (status::USAGE, e))?;
    }

    let target = submit_address(listener.address);
    submit(
        target,
        listener.mode,
        &hostname,
        &sender,
        &recipients,
        &p.message,
    )
    .map(|_| ())
    .map_err(|f| (f.exit_code(), f.to_string()))
}

/// Where to reach a listener from this host.
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

fn qualify(a: &str, hostname: &str) -> String {
    if a.contains('@') {
        a.to_string()
    } else {
        format!("{a}@{hostname}")
    }
}

fn check_address(a: &str, what: &str) -> Result<(), String> {
    if a.is_empty() && what == "sender" {
        return Ok(());
    }
    postern_smtp::address::parse_mailbox(a)
        .map(|_| ())
        .map_err(|e| format!("{what} {a:?} is not a usable address: {e}"))
}

/// The user name of the real UID (from /etc/passwd), else `$LOGNAME`/`$USER`.
fn user_name() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
        });
    let ok = |n: &str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if let (Some(uid), Ok(passwd)) = (&uid, std::fs::read_to_string("/etc/passwd")) {
        for line in passwd.lines() {
            let mut f = line.split(':');
            if let (Some(name), _, Some(u)) = (f.next(), f.next(), f.next())
                && u == uid
                && ok(name)
            {
                return name.to_string();
            }
        }
    }
    for var in ["LOGNAME", "USER"] {
        if let Ok(v) = std::env::var(var)
            && ok(&v)
        {
            return v;
        }
    }
    uid.map(|u| format!("uid{u}"))
        .unwrap_or_else(|| "nobody".into())
}

/// Read the message. Without `ignore_dots`, a line with only `.` ends it (and is not part
/// of it), as sendmail does.
pub fn read_message<R: BufRead>(mut input: R, ignore_dots: bool) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(out);
        }
        if !ignore_dots && matches!(&line[..], b"." | b".\n" | b".\r\n") {
            return Ok(out);
        }
        out.extend_from_slice(&line);
    }
}

/// What [`prepare`] needs to complete a message.
#[derive(Debug)]
pub struct Context<'a> {
    pub hostname: &'a str,
    /// The envelope sender ("" for none).
    pub sender: &'a str,
    pub full_name: Option<&'a str>,
    /// Since the Unix epoch.
    pub now: Duration,
}

/// A message ready to submit.
#[derive(Debug)]
pub struct Prepared {
    pub message: Vec<u8>,
    /// Addresses of the To:, Cc: and Bcc: headers, in order.
    pub header_recipients: Vec<String>,
}

/// Add `Date:`, `Message-ID:` and `From:` when missing, remove `Bcc:`, collect the header
/// recipients. A leading mbox `From ` line is dropped; input that does not start with
/// header fields is taken as a body.
pub fn prepare(raw: &[u8], cx: &Context<'_>) -> Prepared {
    let mut rest = raw;
    if rest.starts_with(b"From ") {
        rest = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[][..], |n| &rest[n + 1..]);
    }
    // Header fields as (lower-case name, raw bytes with continuation lines).
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    let body: &[u8] = loop {
        if rest.is_empty() {
            break rest;
        }
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |n| n + 1);
        let line = &rest[..end];
        if line == b"\n" || line == b"\r\n" {
            break &rest[end..];
        }
        if matches!(line[0], b' ' | b'\t') && !fields.is_empty() {
            if let Some(f) = fields.last_mut() {
                f.1.extend_from_slice(line);
            }
        } else if let Some(name) = field_name(line) {
            fields.push((name, line.to_vec()));
        } else {
            // Not a header line: the body starts here (a blank line is put before it).
            break rest;
        }
        rest = &rest[end..];
    };
    let mut header_recipients = Vec::new();
    for (name, raw) in &fields {
        if matches!(name.as_str(), "to" | "cc" | "bcc") {
            let text = String::from_utf8_lossy(raw);
            let value = text.split_once(':').map_or("", |(_, v)| v);
            let unfolded = value.replace(['\r', '\n'], "");
            header_recipients.extend(address_list(&unfolded));
        }
    }
    let has = |n: &str| fields.iter().any(|(f, _)| f == n);
    let mut added = Vec::new();
    if !has("from") {
        let addr = if cx.sender.is_empty() {
            format!("MAILER-DAEMON@{}", cx.hostname)
        } else {
            cx.sender.to_string()
        };
        let v = match cx.full_name {
            Some(n) if !n.is_empty() => {
                let q = n.replace('\\', "\\\\").replace('"', "\\\"");
                format!("From: \"{q}\" <{addr}>\r\n")
            }
            _ => format!("From: {addr}\r\n"),
        };
        added.push(v);
    }
    if !has("date") {
        added.push(format!(
            "Date: {}\r\n",
            postern_queue::rfc5322_date(cx.now.as_secs())
        ));
    }
    if !has("message-id") {
        added.push(format!(
            "Message-ID: <{}.{:x}.{}@{}>\r\n",
            cx.now.as_secs(),
            cx.now.subsec_nanos(),
            std::process::id(),
            cx.hostname
        ));
    }
    let mut message = Vec::with_capacity(raw.len() + 256);
    for (name, raw) in &fields {
        if name != "bcc" {
            message.extend_from_slice(raw);
            if !raw.ends_with(b"\n") {
                message.extend_from_slice(b"\r\n");
            }
        }
    }
    for a in &added {
        message.extend_from_slice(a.as_bytes());
    }
    message.extend_from_slice(b"\r\n");
    message.extend_from_slice(body);
    Prepared {
        message,
        header_recipients,
    }
}

/// `Name:` at the start of a header line (RFC 5322 §2.2: printable ASCII but `:`),
/// lower-cased.
fn field_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b)))
        .then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// The addresses of an RFC 5322 address list (`"A" <a@x>, b@y (c), Group: c@z;`), or of a
/// command-line argument (which may hold several, comma-separated).
pub fn address_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut angle: Option<String> = None;
    let (mut in_angle, mut quote, mut escape, mut depth) = (false, false, false, 0u32);
    let flush = |cur: &mut String, angle: &mut Option<String>, out: &mut Vec<String>| {
        let a = angle.take().unwrap_or_else(|| cur.clone());
        let a = a.trim();
        if !a.is_empty() {
            out.push(a.to_string());
        }
        cur.clear();
    };
    for ch in value.chars() {
        if escape {
            escape = false;
            if depth == 0 {
                match angle.as_mut() {
                    Some(a) if in_angle => a.push(ch),
                    _ => cur.push(ch),
                }
            }
            continue;
        }
        if depth > 0 {
            match ch {
                '\\' => escape = true,
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        if in_angle {
            match ch {
                '>' => in_angle = false,
                _ => {
                    if let Some(a) = angle.as_mut() {
                        a.push(ch);
                    }
                }
            }
            continue;
        }
        if quote {
            match ch {
                '\\' => escape = true,
                '"' => quote = false,
                _ => {}
            }
            cur.push(ch);
            continue;
        }
        match ch {
            '(' => depth = 1,
            '"' => {
                quote = true;
                cur.push(ch);
            }
            '<' => {
                in_angle = true;
                angle = Some(String::new());
            }
            ',' | ';' => flush(&mut cur, &mut angle, &mut out),
            // `Group:` — the display name of a group is not an address.
            ':' => cur.clear(),
            _ => cur.push(ch),
        }
    }
    flush(&mut cur, &mut angle, &mut out);
    out
}

/// Why a submission failed.
#[derive(Debug)]
pub enum Failure {
    /// No connection, TLS failure, timeout, malformed reply.
    Connection(String),
    /// An unexpected reply at some step.
    Reply { step: String, reply: Reply },
}

impl Failure {
    /// The sysexits status (see the module documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Connection(_) => status::TEMPFAIL,
            Failure::Reply { step, reply } => match reply.code / 100 {
                5 if step == "MAIL FROM" || step == "end of data" => status::DATAERR,
                5 => status::UNAVAILABLE,
                _ => status::TEMPFAIL,
            },
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connection(e) => write!(f, "cannot submit to the local mail daemon: {e}"),
            Failure::Reply { step, reply } => write!(
                f,
                "the local mail daemon refused {step} (nothing was sent):\n{}",
                reply.text
            ),
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

fn conn_err(e: impl std::fmt::Display) -> Failure {
    Failure::Connection(e.to_string())
}

impl Client {
    fn stream(&mut self) -> Result<&mut Stream, Failure> {
        self.stream
            .as_mut()
            .ok_or_else(|| conn_err("connection lost"))
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let s = self.stream()?;
        s.write_all(bytes).and_then(|_| s.flush()).map_err(conn_err)
    }

    fn line(&mut self) -> Result<String, Failure> {
        loop {
            if let Some(n) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=n).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            if self.buf.len() > MAX_REPLY {
                return Err(conn_err("reply line too long"));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream()?.read(&mut chunk).map_err(conn_err)?;
            if n == 0 {
                return Err(conn_err("the daemon closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn reply(&mut self) -> Result<Reply, Failure> {
        let mut text = String::new();
        loop {
            let line = self.line()?;
            if text.len() > MAX_REPLY {
                return Err(conn_err("reply too long"));
            }
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code.filter(|c| (200..600).contains(c)) else {
                return Err(conn_err(format!("malformed reply {line:?}")));
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
            return Err(conn_err("data received before the TLS handshake"));
        }
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(conn_err("TLS already active"));
        };
        let provider = Arc::new(postern_tls::provider(postern_tls::Profile::Default));
        let verifier = Arc::new(postern_tls::client::PeerVerifier::new(
            Arc::new(rustls::RootCertStore::empty()),
            provider.clone(),
            postern_tls::client::Expect::Anything,
            hostname,
        ));
        let cfg = postern_tls::client::client_config(provider, verifier, None).map_err(conn_err)?;
        let name = rustls::pki_types::ServerName::try_from(hostname.to_string())
            .unwrap_or(rustls::pki_types::ServerName::IpAddress(ip.into()));
        let conn = rustls::ClientConnection::new(cfg, name).map_err(conn_err)?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| conn_err(format!("TLS handshake: {e}")))?;
        }
        self.stream = Some(Stream::Tls(Box::new(tls)));
        Ok(())
    }
}

/// Submit one message over SMTP; `Ok` only on a 2xx reply to the end of data.
pub fn submit(
    target: SocketAddr,
    mode: Mode,
    hostname: &str,
    sender: &str,
    recipients: &[String],
    message: &[u8],
) -> Result<Reply, Failure> {
    let tcp = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
        .map_err(|e| conn_err(format!("{target}: {e}")))?;
    tcp.set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(conn_err)?;
    tcp.set_write_timeout(Some(REPLY_TIMEOUT))
        .map_err(conn_err)?;
    let mut c = Client {
        stream: Some(Stream::Plain(tcp)),
        buf: Vec::new(),
    };
    if mode == Mode::ImplicitTls {
        c.start_tls(hostname, target.ip())?;
    }
    c.command("", "the connection (greeting)", 2)?;
    let ehlo = format!("EHLO {hostname}");
    let mut caps = c.command(&ehlo, "EHLO", 2)?;
    let offers = |r: &Reply, ext: &str| {
        r.text.lines().skip(1).any(|l| {
            l.get(4..)
                .and_then(|s| s.split_whitespace().next())
                .is_some_and(|w| w.eq_ignore_ascii_case(ext))
        })
    };
    if mode != Mode::ImplicitTls && offers(&caps, "STARTTLS") {
        c.command("STARTTLS", "STARTTLS", 2)?;
        c.start_tls(hostname, target.ip())?;
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
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn classic_flags() {
        let o = parse_classic(&s(&[
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-oem",
            "-odi",
            "root",
        ]))
        .unwrap();
        assert_eq!(o.full_name.as_deref(), Some("CronDaemon"));
        assert!(o.ignore_dots && !o.from_headers);
        assert_eq!(o.recipients, s(&["root"]));
        let o = parse_classic(&s(&["-ti", "-f", "a@b", "-oi", "-bm", "--", "-x@y"])).unwrap();
        assert!(o.from_headers && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("a@b"));
        assert_eq!(o.recipients, s(&["-x@y"]));
        assert!(
            parse_classic(&s(&["-bd"]))
                .unwrap_err()
                .contains("postern serve")
        );
        assert!(parse_classic(&s(&["-bs"])).is_err());
        assert!(parse_classic(&s(&["-k"])).unwrap_err().contains("-k"));
        assert!(parse_classic(&s(&["-f"])).is_err());
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            address_list(r#""Smith, J" <j@x.test>, b@y.test (Bee), G: c@z.test, d@z.test;"#),
            s(&["j@x.test", "b@y.test", "c@z.test", "d@z.test"])
        );
        assert_eq!(address_list("a@x, b@y"), s(&["a@x", "b@y"]));
        assert!(address_list("undisclosed-recipients:;").is_empty());
    }

    #[test]
    fn dot_line_ends_input_without_i() {
        let input = b"a\n.\nb\n";
        assert_eq!(read_message(&input[..], false).unwrap(), b"a\n");
        assert_eq!(read_message(&input[..], true).unwrap(), input);
    }

    fn cx() -> Context<'static> {
        Context {
            hostname: "h.test",
            sender: "u@h.test",
            full_name: Some("A \"B\""),
            now: Duration::from_secs(0),
        }
    }

    #[test]
    fn headers_added_and_bcc_removed() {
        let p = prepare(b"To: a@x\nBcc: b@y,\n c@z\nSubject: s\n\nbody\n", &cx());
        let m = String::from_utf8(p.message).unwrap();
        assert!(!m.contains("Bcc") && !m.contains("b@y"), "{m}");
        assert!(m.contains("From: \"A \\\"B\\\"\" <u@h.test>\r\n"), "{m}");
        assert!(
            m.contains("Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"),
            "{m}"
        );
        assert!(m.contains("Message-ID: <0.0."), "{m}");
        assert!(m.ends_with("\r\nbody\n"), "{m}");
        assert_eq!(p.header_recipients, s(&["a@x", "b@y", "c@z"]));
    }

    #[test]
    fn body_only_input_gets_headers() {
        let p = prepare(b"hello world\n", &cx());
        let m = String::from_utf8(p.message).unwrap();
        assert!(m.starts_with("From: "), "{m}");
        assert!(m.ends_with("\r\n\r\nhello world\n"), "{m}");
        let p = prepare(b"From someone Mon Jan 1\nFrom: x@y\n\nb", &cx());
        let m = String::from_utf8(p.message).unwrap();
        assert!(m.starts_with("From: x@y\n"), "{m}");
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
