//! The on-disk record: a readable envelope header, the message, and an end marker.
//!
//! ```text
//! POSTERN-QUEUE 1
//! id: 0063F1A2B3C4D00001
//! arrived: 1764360000
//! client: [192.0.2.1] mail.example.org
//! from: <alice@example.org>
//! body: 8BITMIME
//! smtputf8: no
//! rcpt: <bob@example.net>
//!                                  <- empty line: the message follows
//! Received: ...
//! ...message, CRLF line endings...
//! POSTERN-END 1234                 <- message length; a file without it is incomplete
//! ```
//!
//! The per-recipient state lives in `ID.state`, one line per recipient:
//! `INDEX STATUS ATTEMPTS LAST-ATTEMPT NEXT-ATTEMPT REASON...` (times in Unix seconds, `-`
//! for none).

use std::fmt::Write as _;
use std::net::IpAddr;

use postern_smtp::address::{Address, ReversePath, parse_mailbox};
use postern_smtp::command::BodyType;

use crate::QueueId;

pub(crate) const MAGIC: &str = "POSTERN-QUEUE 1";
pub(crate) const STATE_MAGIC: &str = "POSTERN-STATE 1";
pub(crate) const END: &str = "POSTERN-END ";

/// Who sent the message and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: QueueId,
    /// Unix seconds.
    pub arrived: u64,
    pub client_ip: Option<IpAddr>,
    pub helo: String,
    pub sender: ReversePath,
    pub recipients: Vec<Address>,
    pub body: BodyType,
    pub smtputf8: bool,
}

impl Envelope {
    pub(crate) fn header(&self) -> String {
        let mut h = String::new();
        let _ = writeln!(h, "{MAGIC}");
        let _ = writeln!(h, "id: {}", self.id);
        let _ = writeln!(h, "arrived: {}", self.arrived);
        let ip = self
            .client_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(h, "client: [{ip}] {}", sanitize(&self.helo));
        let _ = writeln!(h, "from: {}", self.sender);
        let _ = writeln!(h, "body: {}", self.body.as_str());
        let _ = writeln!(h, "smtputf8: {}", if self.smtputf8 { "yes" } else { "no" });
        for r in &self.recipients {
            let _ = writeln!(h, "rcpt: <{r}>");
        }
        h.push('\n');
        h
    }

    /// Parse a header (everything before the empty line).
    pub(crate) fn parse_header(text: &str) -> Result<Envelope, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err("not a Postern queue file (bad first line)".into());
        }
        let (mut id, mut arrived, mut client_ip, mut helo, mut sender) =
            (None, None, None, String::new(), None);
        let (mut body, mut smtputf8, mut recipients) = (BodyType::SevenBit, false, Vec::new());
        for line in lines {
            let (k, v) = line
                .split_once(": ")
                .ok_or_else(|| format!("bad header line {line:?}"))?;
            match k {
                "id" => id = Some(QueueId::parse(v).ok_or("bad id")?),
                "arrived" => arrived = Some(v.parse::<u64>().map_err(|_| "bad arrival time")?),
                "client" => {
                    let (ip, name) = v.split_once(' ').unwrap_or((v, ""));
                    let ip = ip.trim_start_matches('[').trim_end_matches(']');
                    client_ip = ip.parse().ok();
                    helo = name.to_string();
                }
                "from" => {
                    sender = Some(if v == "<>" {
                        ReversePath::Null
                    } else {
                        ReversePath::Address(parse_bracketed(v)?)
                    })
                }
                "body" => {
                    body = match v {
                        "8BITMIME" => BodyType::EightBitMime,
                        "7BIT" => BodyType::SevenBit,
                        _ => return Err(format!("bad body type {v:?}")),
                    }
                }
                "smtputf8" => smtputf8 = v == "yes",
                "rcpt" => recipients.push(parse_bracketed(v)?),
                // Keys from newer versions are kept by ignoring them, not by failing.
                _ => {}
            }
        }
        if recipients.is_empty() {
            return Err("no recipients".into());
        }
        Ok(Envelope {
            id: id.ok_or("missing id")?,
            arrived: arrived.ok_or("missing arrival time")?,
            client_ip,
            helo,
            sender: sender.ok_or("missing sender")?,
            recipients,
            body,
            smtputf8,
        })
    }
}

fn parse_bracketed(v: &str) -> Result<Address, String> {
    let inner = v
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .ok_or_else(|| format!("bad address {v:?}"))?;
    parse_mailbox(inner).map_err(|e| format!("bad address {v:?}: {e}"))
}

/// Keep header values on one line of printable characters.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptStatus {
    /// Not tried yet.
    Queued,
    /// Tried, failed temporarily; will be retried.
    Deferred,
    Delivered,
    /// Failed permanently.
    Failed,
}

impl RcptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RcptStatus::Queued => "queued",
            RcptStatus::Deferred => "deferred",
            RcptStatus::Delivered => "delivered",
            RcptStatus::Failed => "failed",
        }
    }
    pub fn is_final(self) -> bool {
        matches!(self, RcptStatus::Delivered | RcptStatus::Failed)
    }
    fn parse(s: &str) -> Option<RcptStatus> {
        Some(match s {
            "queued" => RcptStatus::Queued,
            "deferred" => RcptStatus::Deferred,
            "delivered" => RcptStatus::Delivered,
            "failed" => RcptStatus::Failed,
            _ => return None,
        })
    }
}

/// The delivery state of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptState {
    pub status: RcptStatus,
    pub attempts: u32,
    pub last_attempt: Option<u64>,
    pub next_attempt: Option<u64>,
    pub reason: String,
}

impl RcptState {
    pub fn new() -> RcptState {
        RcptState {
            status: RcptStatus::Queued,
            attempts: 0,
            last_attempt: None,
            next_attempt: None,
            reason: String::new(),
        }
    }
}

impl Default for RcptState {
    fn default() -> Self {
        RcptState::new()
    }
}

pub(crate) fn format_state(states: &[RcptState]) -> String {
    let t = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let mut s = format!("{STATE_MAGIC}\n");
    for (i, r) in states.iter().enumerate() {
        let _ = writeln!(
            s,
            "{i} {} {} {} {} {}",
            r.status.as_str(),
            r.attempts,
            t(r.last_attempt),
            t(r.next_attempt),
            sanitize(&r.reason)
        );
    }
    s
}

pub(crate) fn parse_state(text: &str, n: usize) -> Result<Vec<RcptState>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(STATE_MAGIC) {
        return Err("bad state file header".into());
    }
    let mut out = vec![RcptState::new(); n];
    for line in lines {
        let mut f = line.splitn(6, ' ');
        let mut next = || f.next().ok_or_else(|| format!("short state line {line:?}"));
        let i: usize = next()?.parse().map_err(|_| "bad recipient index")?;
        let status = RcptStatus::parse(next()?).ok_or("bad status")?;
        let attempts = next()?.parse().map_err(|_| "bad attempts")?;
        let time = |s: &str| -> Result<Option<u64>, String> {
            if s == "-" {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| "bad time".to_string())
            }
        };
        let last_attempt = time(next()?)?;
        let next_attempt = time(next()?)?;
        let reason = f.next().unwrap_or("").to_string();
        let slot = out.get_mut(i).ok_or("recipient index out of range")?;
        *slot = RcptState {
            status,
            attempts,
            last_attempt,
            next_attempt,
            reason,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_smtp::address::Domain;

    fn env() -> Envelope {
        Envelope {
            id: QueueId::generate(),
            arrived: 1_764_360_000,
            client_ip: Some("192.0.2.1".parse().unwrap()),
            helo: "client\r\nx".into(),
            sender: ReversePath::Address(Address {
                local: "a b".into(),
                domain: Domain::Name("x.org".into()),
            }),
            recipients: vec![
                parse_mailbox("bob@example.net").unwrap(),
                parse_mailbox("c@[192.0.2.9]").unwrap(),
            ],
            body: BodyType::EightBitMime,
            smtputf8: true,
        }
    }

    #[test]
    fn header_round_trip() {
        let e = env();
        let h = e.header();
        assert!(h.contains("from: <\"a b\"@x.org>\n"), "{h}");
        assert!(h.contains("client: [192.0.2.1] client??x\n"), "{h}");
        let back = Envelope::parse_header(h.trim_end_matches('\n')).unwrap();
        assert_eq!(back.recipients, e.recipients);
        assert_eq!(back.sender, e.sender);
        assert_eq!(back.body, BodyType::EightBitMime);
        assert!(back.smtputf8);
        assert_eq!(back.arrived, e.arrived);
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        let h = env().header();
        for cut in 0..h.len() {
            let _ = Envelope::parse_header(&h[..cut]);
        }
        assert!(Envelope::parse_header("POSTERN-QUEUE 1\nid: zz").is_err());
        assert!(Envelope::parse_header("hello").is_err());
    }

    #[test]
    fn state_round_trip() {
        let mut s = vec![RcptState::new(), RcptState::new()];
        s[1] = RcptState {
            status: RcptStatus::Deferred,
            attempts: 2,
            last_attempt: Some(10),
            next_attempt: Some(20),
            reason: "451 4.3.0 try later\nsecond line".into(),
        };
        let text = format_state(&s);
        let back = parse_state(&text, 2).unwrap();
        assert_eq!(back[0], s[0]);
        assert_eq!(back[1].reason, "451 4.3.0 try later?second line");
        assert!(parse_state(&text, 1).is_err());
        for cut in 0..text.len() {
            let _ = parse_state(&text[..cut], 2);
        }
    }
}
