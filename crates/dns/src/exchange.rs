//! `dnssec = "trust-ad"`: one question, one answer, with the header bits hickory's
//! high-level resolver does not show us.
//!
//! Every query sets RD, AD (RFC 6840 §5.7: "tell me if you validated") and the EDNS DO bit
//! (RFC 4035 §3.2.1), goes to the configured nameservers in order over UDP, and again over
//! TCP when the answer is truncated. The whole answer is what the caller sees, with the AD
//! bit and, on SERVFAIL, the Extended DNS Error (RFC 8914) that says whether DNSSEC
//! validation failed.
//!
//! # Security
//! The AD bit is only as good as the path to the resolver that set it: this module is only
//! used when every nameserver is on loopback (enforced by `check-config` for explicit
//! nameservers, at start-up for /etc/resolv.conf). Answers must come from the address asked,
//! carry the query's id and echo its question, or they are ignored (RFC 5452 §9.1).
//! Sizes are bounded by the DNS message format (64 KiB).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// EDNS payload we advertise: large enough for signed answers, small enough not to fragment.
const PAYLOAD: u16 = 1232;

/// Why an exchange gave no answer at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("no answer from {servers} within {timeout:?} × {attempts} attempts")]
    Timeout {
        servers: String,
        timeout: Duration,
        attempts: usize,
    },
    #[error("cannot ask {server}: {reason}")]
    Io { server: SocketAddr, reason: String },
    #[error("cannot build the query for {name}: {reason}")]
    Query { name: String, reason: String },
}

/// Ask `name`/`rtype` of `servers` in order, each attempt with `timeout`.
pub async fn exchange(
    servers: &[SocketAddr],
    name: &Name,
    rtype: RecordType,
    timeout: Duration,
    attempts: usize,
) -> Result<Message, ExchangeError> {
    let mut last_io = None;
    // The whole question is bounded by timeout × attempts, however many servers there are.
    let total = timeout.saturating_mul(u32::try_from(attempts.max(1)).unwrap_or(u32::MAX));
    let deadline = tokio::time::Instant::now() + total;
    'tries: for _ in 0..attempts.max(1) {
        for &server in servers {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break 'tries;
            }
            match ask(server, name, rtype, timeout.min(left)).await {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e @ ExchangeError::Query { .. }) => return Err(e),
                Err(e) => last_io = Some(e),
            }
        }
    }
    Err(last_io.unwrap_or_else(|| ExchangeError::Timeout {
        servers: servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        timeout,
        attempts,
    }))
}

fn query(name: &Name, rtype: RecordType) -> Message {
    let mut q = Message::query();
    q.add_query(Query::query(name.clone(), rtype));
    q.metadata.recursion_desired = true;
    q.metadata.authentic_data = true;
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(PAYLOAD);
    q.set_edns(edns);
    q
}

/// One try against one server: `Ok(None)` on timeout or on an answer we must ignore.
async fn ask(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Option<Message>, ExchangeError> {
    let q = query(name, rtype);
    let wire = q.to_vec().map_err(|e| ExchangeError::Query {
        name: name.to_ascii(),
        reason: e.to_string(),
    })?;
    let io = |e: std::io::Error| ExchangeError::Io {
        server,
        reason: e.to_string(),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let bind: SocketAddr = if server.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    sock.send(&wire).await.map_err(io)?;
    let mut buf = vec![0u8; 65535];
    let answer = loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) => return Err(io(e)),
            Ok(Ok(n)) => n,
        };
        let Some(bytes) = buf.get(..n) else { continue };
        match Message::from_vec(bytes) {
            Ok(m) if matches_query(&q, &m) => break m,
            // Not ours (wrong id or question), or not DNS: keep waiting until the deadline.
            _ => continue,
        }
    };
    if !answer.metadata.truncation {
        return Ok(Some(answer));
    }
    // Truncated: the same question over TCP (RFC 7766), within what is left of the timeout.
    let tcp = async {
        let mut s = TcpStream::connect(server).await?;
        let len = u16::try_from(wire.len()).map_err(std::io::Error::other)?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        s.write_all(&framed).await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    match tokio::time::timeout_at(deadline, tcp).await {
        Err(_) => Ok(None),
        Ok(Err(e)) => Err(io(e)),
        Ok(Ok(body)) => Ok(Message::from_vec(&body)
            .ok()
            .filter(|m| matches_query(&q, m))),
    }
}

fn matches_query(q: &Message, a: &Message) -> bool {
    a.metadata.id == q.metadata.id
        && a.queries.len() == 1
        && q.queries.first().is_some_and(|qq| {
            a.queries.first().is_some_and(|aq| {
                aq.query_type() == qq.query_type()
                    && aq.name().to_lowercase() == qq.name().to_lowercase()
            })
        })
}

/// The Extended DNS Error of an answer (RFC 8914): info-code and text, if any.
pub fn extended_error(m: &Message) -> Option<(u16, String)> {
    let edns = m.edns.as_ref()?;
    match edns.option(EdnsCode::Unknown(15)) {
        Some(EdnsOption::Unknown(15, data)) => match data.as_slice() {
            [hi, lo, text @ ..] => Some((
                u16::from_be_bytes([*hi, *lo]),
                String::from_utf8_lossy(text).into_owned(),
            )),
            _ => None,
        },
        _ => None,
    }
}

/// RFC 8914 §4: info-codes 1 to 12 are DNSSEC failures (unsupported algorithm or digest,
/// stale answer excepted: 1, 2 and 3 are "cannot validate", 6 to 12 "validation failed").
pub fn is_dnssec_failure(code: u16) -> bool {
    matches!(code, 1 | 2 | 6..=12)
}

pub fn is_servfail(m: &Message) -> bool {
    m.metadata.response_code == ResponseCode::ServFail
}
