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
//! ret: HDRS                        <- RFC 3461 RET, only when the client gave it
//! envid: QQ314159                  <- RFC 3461 ENVID (as xtext), only when given
//! requiretls: yes                  <- RFC 8689: MAIL FROM had REQUIRETLS, or
//! tls-required: no                 <- RFC 8689 §5: the message has `TLS-Required: No`
//! rcpt: <bob@example.net>
//! rcpt-dsn: 0 NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@example.net
//!                                  <- empty line: the message follows
//! Received: ...
//! ...message, CRLF line endings...
//! POSTERN-END 1234                 <- message length; a file without it is incomplete
//! ```
//!
//! `rcpt-dsn: INDEX PARAMS` carries the RFC 3461 parameters of recipient `INDEX` (0 is the
//! first `rcpt:` line) in their SMTP form, and is written only for recipients that have
//! any. `ret:`, `envid:` and `rcpt-dsn:` are optional: files written before DSN support
//! load unchanged (no RET, no ENVID, no NOTIFY: failures are reported, as RFC 3461 §4.1
//! leaves to the MTA). Versions before them ignore unknown keys, so they read the new
//! files too, without the DSN parameters.
//!
//! `requiretls: yes` and `tls-required: no` ([`SenderTls`]) are written only when they
//! apply, and never both (REQUIRETLS wins, RFC 8689 §4.1); files without them load as
//! [`SenderTls::Default`]. A version before them would ignore the key and deliver a
//! REQUIRETLS message without its demand: do not downgrade with such messages queued.
//!
//! The per-recipient state lives in `ID.state` (first line `POSTERN-STATE 2`), one line
//! per recipient: `INDEX STATUS ATTEMPTS LAST-ATTEMPT NEXT-ATTEMPT DETAIL` (times in Unix
//! seconds, `-` for none), where `DETAIL` is the typed outcome of the last attempt
//! ([`crate::Detail`]) as one line of JSON, e.g.
//! `{"code":550,"status":"5.1.1","host":"mx.example.net","addr":"192.0.2.25","port":25,"reply":"5.1.1 no such user","stage":"RCPT TO"}`
//! or `{"status":"4.4.1","text":"connect to ... failed"}`; an empty detail is left out.
//! Format 1 (`POSTERN-STATE 1`, before typed outcomes) had the reason as text there;
//! such files still load, their reason read once by [`crate::Detail::from_legacy`].
//! Then come optional message-level lines `KEY: VALUE`:
//!
//! - `notified: 0 2`: the recipients whose final status has been dealt with as far as
//!   the sender is concerned: a report was queued, none was wanted (NOTIFY), or the next
//!   MTA took the message and the reporting over ([`crate::Outcome::Relayed`]). A failed
//!   recipient missing from it when the message is done keeps the message in `failed/`.
//! - `delay-warned: 1764370000`: when the one delay warning was queued.
//!
//! State files without these lines (older versions) load with nothing notified, so
//! failures recorded before bounces existed are reported at the next attempt.
//!
//! # Security
//! Everything read back is re-checked (addresses, xtext), and text written into the
//! header has its control characters replaced, so a value can never add a line.
//!
//! # Standards
//! RFC 3461 §4 (the DSN parameters stored per message and per recipient), RFC 8689 §4.1
//! and §5 (REQUIRETLS and `TLS-Required: No`, stored with the message).

use std::fmt::Write as _;
use std::net::IpAddr;

use postern_smtp::address::{Address, ReversePath, parse_mailbox};
use postern_smtp::command::{BodyType, Notify, Orcpt, Ret, Xtext, XtextField};

use crate::error::FormatError;
use crate::{QueueId, Recipient};

pub(crate) const MAGIC: &str = "POSTERN-QUEUE 1";
pub(crate) const STATE_MAGIC: &str = "POSTERN-STATE 2";
/// State files written before typed outcomes.
pub(crate) const STATE_MAGIC_1: &str = "POSTERN-STATE 1";
pub(crate) const END: &str = "POSTERN-END ";

/// What the sender asked of the TLS on the way (RFC 8689). One value, because the two
/// demands exclude each other: with REQUIRETLS the `TLS-Required` field is ignored
/// (RFC 8689 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SenderTls {
    /// Neither: local and recipient-side policies decide.
    #[default]
    Default,
    /// `MAIL FROM:<...> REQUIRETLS`: relay only over TLS with an authenticated next hop
    /// that offers REQUIRETLS itself, or fail with `5.7.30`; reports return headers only.
    RequireTls,
    /// `TLS-Required: No` in the header section: DANE and MTA-STS failures do not stop
    /// delivery of this message (local `[[outbound.policy]]` entries still do).
    TlsOptional,
}

impl SenderTls {
    /// How `queue show` and log lines name it; `None` for [`SenderTls::Default`].
    pub fn label(self) -> Option<&'static str> {
        match self {
            SenderTls::Default => None,
            SenderTls::RequireTls => Some("REQUIRETLS"),
            SenderTls::TlsOptional => Some("TLS-Required: No"),
        }
    }
}

/// Who sent the message and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: QueueId,
    /// Unix seconds.
    pub arrived: u64,
    pub client_ip: Option<IpAddr>,
    pub helo: String,
    pub sender: ReversePath,
    pub recipients: Vec<Recipient>,
    pub body: BodyType,
    pub smtputf8: bool,
    /// RFC 3461 RET, when the client gave it.
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID, when the client gave it (encoded, as received).
    pub envid: Option<Xtext>,
    /// RFC 8689: REQUIRETLS, `TLS-Required: No`, or neither.
    pub sender_tls: SenderTls,
}

impl Envelope {
    /// The message was received with REQUIRETLS (RFC 8689).
    pub fn requiretls(&self) -> bool {
        self.sender_tls == SenderTls::RequireTls
    }

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
        if let Some(ret) = self.ret {
            let _ = writeln!(h, "ret: {}", ret.as_str());
        }
        if let Some(envid) = &self.envid {
            let _ = writeln!(h, "envid: {}", sanitize(envid.as_str()));
        }
        match self.sender_tls {
            SenderTls::Default => {}
            SenderTls::RequireTls => h.push_str("requiretls: yes\n"),
            SenderTls::TlsOptional => h.push_str("tls-required: no\n"),
        }
        for (i, r) in self.recipients.iter().enumerate() {
            let _ = writeln!(h, "rcpt: <{}>", r.address);
            if let Some(params) = r.dsn_params() {
                let _ = writeln!(h, "rcpt-dsn: {i} {}", sanitize(&params));
            }
        }
        h.push('\n');
        h
    }

    /// Parse a header (everything before the empty line).
    pub(crate) fn parse_header(text: &str) -> Result<Envelope, FormatError> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err("not a Postern queue file (bad first line)".into());
        }
        let (mut id, mut arrived, mut client_ip, mut helo, mut sender) =
            (None, None, None, String::new(), None);
        let (mut body, mut smtputf8, mut recipients) = (BodyType::SevenBit, false, Vec::new());
        let (mut ret, mut envid, mut dsn) = (None, None, Vec::new());
        let (mut requiretls, mut tls_optional) = (false, false);
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
                        _ => return Err(format!("bad body type {v:?}").into()),
                    }
                }
                "smtputf8" => smtputf8 = v == "yes",
                "rcpt" => recipients.push(Recipient::new(parse_bracketed(v)?)),
                "ret" => ret = Some(Ret::parse(v).ok_or_else(|| format!("bad RET {v:?}"))?),
                "envid" => {
                    envid = Some(
                        Xtext::parse(v, XtextField::Envid)
                            .map_err(|e| format!("bad ENVID {v:?}: {e}"))?,
                    )
                }
                "rcpt-dsn" => dsn.push(parse_rcpt_dsn(v)?),
                "requiretls" => requiretls = yes_no(k, v)?,
                "tls-required" => tls_optional = !yes_no(k, v)?,
                // Keys from newer versions are kept by ignoring them, not by failing.
                _ => {}
            }
        }
        if recipients.is_empty() {
            return Err("no recipients".into());
        }
        for (i, notify, orcpt) in dsn {
            let r = recipients
                .get_mut(i)
                .ok_or("rcpt-dsn: recipient index out of range")?;
            r.notify = notify.or(r.notify);
            r.orcpt = orcpt.or(r.orcpt.take());
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
            ret,
            envid,
            sender_tls: match (requiretls, tls_optional) {
                (true, _) => SenderTls::RequireTls,
                (false, true) => SenderTls::TlsOptional,
                (false, false) => SenderTls::Default,
            },
        })
    }
}

/// `yes` or `no`; anything else is damage (a security demand is never guessed).
fn yes_no(key: &str, v: &str) -> Result<bool, FormatError> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("bad {key} value {v:?} (yes or no)").into()),
    }
}

/// `INDEX NOTIFY=... ORCPT=...` from an `rcpt-dsn:` line.
fn parse_rcpt_dsn(v: &str) -> Result<(usize, Option<Notify>, Option<Orcpt>), FormatError> {
    let mut words = v.split(' ');
    let i = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("bad rcpt-dsn line {v:?}"))?;
    let (mut notify, mut orcpt) = (None, None);
    for w in words.filter(|w| !w.is_empty()) {
        match w.split_once('=') {
            Some(("NOTIFY", n)) => {
                notify = Some(Notify::parse(n).map_err(|e| format!("rcpt-dsn: {e}"))?)
            }
            Some(("ORCPT", o)) => {
                orcpt = Some(Orcpt::parse(o).map_err(|e| format!("rcpt-dsn: {e}"))?)
            }
            // Parameters from newer versions are ignored, as unknown keys are.
            _ => {}
        }
    }
    Ok((i, notify, orcpt))
}

fn parse_bracketed(v: &str) -> Result<Address, FormatError> {
    let inner = v
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .ok_or_else(|| format!("bad address {v:?}"))?;
    parse_mailbox(inner).map_err(|e| format!("bad address {v:?}: {e}").into())
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
    /// What the last attempt learnt (empty before the first).
    pub detail: crate::Detail,
    /// The sender has been told about this recipient's final status, or asked not to be
    /// (NOTIFY). A failed recipient without it is a bounce still owed.
    pub notified: bool,
}

impl RcptState {
    pub fn new() -> RcptState {
        RcptState {
            status: RcptStatus::Queued,
            attempts: 0,
            last_attempt: None,
            next_attempt: None,
            detail: crate::Detail::default(),
            notified: false,
        }
    }
}

impl Default for RcptState {
    fn default() -> Self {
        RcptState::new()
    }
}

/// Everything in an `ID.state` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StateFile {
    pub rcpts: Vec<RcptState>,
    /// When the delay warning was queued (at most one per message).
    pub delay_warned: Option<u64>,
}

pub(crate) fn format_state(states: &[RcptState], delay_warned: Option<u64>) -> String {
    let t = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let mut s = format!("{STATE_MAGIC}\n");
    for (i, r) in states.iter().enumerate() {
        let _ = write!(
            s,
            "{i} {} {} {} {}",
            r.status.as_str(),
            r.attempts,
            t(r.last_attempt),
            t(r.next_attempt),
        );
        if !r.detail.is_empty() {
            // JSON escapes every control character: the detail stays on its line.
            let json = serde_json::to_string(&r.detail).unwrap_or_default();
            let _ = write!(s, " {json}");
        }
        s.push('\n');
    }
    let notified: Vec<String> = states
        .iter()
        .enumerate()
        .filter(|(_, r)| r.notified)
        .map(|(i, _)| i.to_string())
        .collect();
    if !notified.is_empty() {
        let _ = writeln!(s, "notified: {}", notified.join(" "));
    }
    if let Some(w) = delay_warned {
        let _ = writeln!(s, "delay-warned: {w}");
    }
    s
}

pub(crate) fn parse_state(text: &str, n: usize) -> Result<StateFile, FormatError> {
    let mut lines = text.lines();
    let typed = match lines.next() {
        Some(STATE_MAGIC) => true,
        Some(STATE_MAGIC_1) => false,
        _ => return Err("bad state file header".into()),
    };
    let mut out = StateFile {
        rcpts: vec![RcptState::new(); n],
        delay_warned: None,
    };
    let mut notified = Vec::new();
    for line in lines {
        if !line.starts_with(|c: char| c.is_ascii_digit()) {
            let (k, v) = line
                .split_once(": ")
                .ok_or_else(|| format!("bad state line {line:?}"))?;
            match k {
                "notified" => {
                    for w in v.split(' ').filter(|w| !w.is_empty()) {
                        notified.push(w.parse::<usize>().map_err(|_| "bad notified index")?);
                    }
                }
                "delay-warned" => {
                    out.delay_warned = Some(v.parse().map_err(|_| "bad delay-warned time")?)
                }
                // Keys from newer versions are ignored, not fatal.
                _ => {}
            }
            continue;
        }
        let mut f = line.splitn(6, ' ');
        let mut next = || f.next().ok_or_else(|| format!("short state line {line:?}"));
        let i: usize = next()?.parse().map_err(|_| "bad recipient index")?;
        let status = RcptStatus::parse(next()?).ok_or("bad status")?;
        let attempts = next()?.parse().map_err(|_| "bad attempts")?;
        let time = |s: &str| -> Result<Option<u64>, FormatError> {
            if s == "-" {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| FormatError::from("bad time"))
            }
        };
        let last_attempt = time(next()?)?;
        let next_attempt = time(next()?)?;
        let rest = f.next().unwrap_or("");
        let detail = if !typed {
            crate::Detail::from_legacy(rest)
        } else if rest.is_empty() {
            crate::Detail::default()
        } else {
            serde_json::from_str(rest).map_err(|e| format!("bad outcome detail: {e}"))?
        };
        let slot = out.rcpts.get_mut(i).ok_or("recipient index out of range")?;
        *slot = RcptState {
            status,
            attempts,
            last_attempt,
            next_attempt,
            detail,
            notified: false,
        };
    }
    for i in notified {
        out.rcpts
            .get_mut(i)
            .ok_or("notified index out of range")?
            .notified = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_smtp::address::Domain;

    fn env() -> Envelope {
        let mut carol = Recipient::new(parse_mailbox("c@[192.0.2.9]").unwrap());
        carol.notify = Some(Notify {
            success: true,
            failure: true,
            delay: false,
        });
        carol.orcpt = Some(Orcpt::parse("rfc822;C+2Bx@example.org").unwrap());
        Envelope {
            id: QueueId::generate(),
            arrived: 1_764_360_000,
            client_ip: Some("192.0.2.1".parse().unwrap()),
            helo: "client\r\nx".into(),
            sender: ReversePath::Address(Address {
                local: "a b".into(),
                domain: Domain::Name("x.org".into()),
            }),
            recipients: vec![parse_mailbox("bob@example.net").unwrap().into(), carol],
            body: BodyType::EightBitMime,
            smtputf8: true,
            ret: Some(Ret::Hdrs),
            envid: Some(Xtext::parse("QQ+2B1", XtextField::Envid).unwrap()),
            sender_tls: SenderTls::RequireTls,
        }
    }

    #[test]
    fn sender_tls_round_trip() {
        for (tls, line) in [
            (SenderTls::RequireTls, Some("requiretls: yes\n")),
            (SenderTls::TlsOptional, Some("tls-required: no\n")),
            (SenderTls::Default, None),
        ] {
            let e = Envelope {
                sender_tls: tls,
                ..env()
            };
            let h = e.header();
            match line {
                Some(l) => assert!(h.contains(l), "{h}"),
                None => assert!(
                    !h.contains("requiretls") && !h.contains("tls-required"),
                    "{h}"
                ),
            }
            let back = Envelope::parse_header(h.trim_end_matches('\n')).unwrap();
            assert_eq!(back.sender_tls, tls);
        }
        let old = "POSTERN-QUEUE 1\nid: 0063F1A2B3C4D00001\narrived: 1764360000\nclient: [-] x\nfrom: <a@b.example>\nbody: 7BIT\nsmtputf8: no\nrcpt: <c@d.example>";
        assert_eq!(
            Envelope::parse_header(old).unwrap().sender_tls,
            SenderTls::Default
        );
        // Both lines (an edited file): REQUIRETLS wins, as RFC 8689 §4.1 says.
        let both = format!("{old}\ntls-required: no\nrequiretls: yes");
        assert_eq!(
            Envelope::parse_header(&both).unwrap().sender_tls,
            SenderTls::RequireTls
        );
        assert!(Envelope::parse_header(&format!("{old}\nrequiretls: maybe")).is_err());
    }

    #[test]
    fn a_utf8_orcpt_survives_the_queue_file() {
        let mut e = env();
        e.recipients[0].orcpt = Some(Orcpt::parse("utf-8;j\u{fc}rgen@example.de").unwrap());
        let h = e.header();
        assert!(
            h.contains("rcpt-dsn: 0 ORCPT=utf-8;j\u{fc}rgen@example.de\n"),
            "{h}"
        );
        let back = Envelope::parse_header(h.trim_end_matches('\n')).unwrap();
        assert_eq!(back.recipients[0].orcpt, e.recipients[0].orcpt);
    }

    #[test]
    fn header_round_trip() {
        let e = env();
        let h = e.header();
        assert!(h.contains("from: <\"a b\"@x.org>\n"), "{h}");
        assert!(h.contains("client: [192.0.2.1] client??x\n"), "{h}");
        assert!(h.contains("ret: HDRS\nenvid: QQ+2B1\n"), "{h}");
        assert!(
            h.contains("rcpt: <c@[192.0.2.9]>\nrcpt-dsn: 1 NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;C+2Bx@example.org\n"),
            "{h}"
        );
        assert!(!h.contains("rcpt-dsn: 0"), "{h}");
        let back = Envelope::parse_header(h.trim_end_matches('\n')).unwrap();
        assert_eq!(back.helo, "client??x");
        assert_eq!(
            back,
            Envelope {
                helo: back.helo.clone(),
                ..e
            }
        );
    }

    #[test]
    fn headers_from_before_dsn_support_still_load() {
        let old = "POSTERN-QUEUE 1\nid: 0063F1A2B3C4D00001\narrived: 1764360000\nclient: [-] x\nfrom: <a@b.example>\nbody: 7BIT\nsmtputf8: no\nrcpt: <c@d.example>";
        let e = Envelope::parse_header(old).unwrap();
        assert_eq!(e.ret, None);
        assert_eq!(e.envid, None);
        assert_eq!(e.recipients[0].notify, None);
        assert_eq!(e.recipients[0].orcpt, None);
        assert_eq!(e.recipients[0].to_string(), "c@d.example");
        // Unknown keys and unknown rcpt-dsn parameters (a newer version) are ignored.
        let newer = format!("{old}\nrcpt-dsn: 0 NOTIFY=NEVER FUTURE=1\nfuture: x");
        let e = Envelope::parse_header(&newer).unwrap();
        assert!(e.recipients[0].notify.unwrap().is_never());
        // Damaged DSN lines are errors (the file is quarantined), never ignored silently.
        for bad in [
            "rcpt-dsn: 1 NOTIFY=NEVER",
            "rcpt-dsn: x NOTIFY=NEVER",
            "rcpt-dsn: 0 NOTIFY=SOMETIMES",
            "rcpt-dsn: 0 ORCPT=nosemicolon",
            "ret: ALL",
            "envid: a=b",
        ] {
            assert!(
                Envelope::parse_header(&format!("{old}\n{bad}")).is_err(),
                "{bad}"
            );
        }
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
        let mut s = vec![RcptState::new(), RcptState::new(), RcptState::new()];
        s[1] = RcptState {
            status: RcptStatus::Deferred,
            attempts: 2,
            last_attempt: Some(10),
            next_attempt: Some(20),
            detail: crate::Detail::local("4.3.0", "try later\nsecond line"),
            notified: false,
        };
        s[2].status = RcptStatus::Failed;
        s[2].notified = true;
        let text = format_state(&s, Some(15));
        assert!(
            text.ends_with("\nnotified: 2\ndelay-warned: 15\n"),
            "{text}"
        );
        let back = parse_state(&text, 3).unwrap();
        assert_eq!(back.rcpts[0], s[0]);
        assert_eq!(back.rcpts[1], s[1], "{text}");
        assert!(text.contains(r#" {"status":"4.3.0","text":"try later\nsecond line"}"#));
        assert_eq!(back.rcpts[2], s[2]);
        assert_eq!(back.delay_warned, Some(15));
        assert!(parse_state(&text, 1).is_err());
        for cut in 0..text.len() {
            let _ = parse_state(&text[..cut], 3);
        }
    }

    /// A state file as version 0.1 wrote it (format 1, reasons as text), checked in
    /// as `tests/fixtures/state-format-1.state`.
    #[test]
    fn a_format_1_state_file_loads_into_typed_outcomes() {
        let old = include_str!("../tests/fixtures/state-format-1.state");
        let back = parse_state(old, 4).unwrap();
        let r = &back.rcpts;
        assert_eq!(r[0].status, RcptStatus::Failed);
        assert_eq!(r[0].detail.code, Some(550));
        assert_eq!(r[0].detail.host.as_deref(), Some("mx.example.net"));
        assert_eq!(r[0].detail.status_for(b'5'), "5.1.1");
        assert_eq!(r[1].status, RcptStatus::Deferred);
        assert_eq!(r[1].detail.status_for(b'4'), "4.4.1");
        assert_eq!(r[1].detail.code, None);
        assert_eq!(r[1].next_attempt, Some(1764360600));
        assert!(r[2].detail.relayed_without_dsn);
        assert_eq!(r[3].detail.expired_after.as_deref(), Some("5d"));
        assert_eq!(r[3].detail.status_for(b'5'), "4.4.7");
        assert!(r[0].notified && !r[3].notified);
        assert_eq!(back.delay_warned, Some(1764370000));
        // Written back, it is format 2 and reads the same.
        let again = format_state(&back.rcpts, back.delay_warned);
        assert!(again.starts_with("POSTERN-STATE 2\n"));
        assert_eq!(parse_state(&again, 4).unwrap(), back);
    }

    #[test]
    fn state_files_from_before_dsn_support_still_load() {
        let old =
            "POSTERN-STATE 1\n0 failed 1 10 - 550 5.1.1 no such user\n1 delivered 1 10 - ok\n";
        let back = parse_state(old, 2).unwrap();
        assert_eq!(back.rcpts[0].status, RcptStatus::Failed);
        assert!(
            !back.rcpts[0].notified,
            "an old failure is a bounce still owed"
        );
        assert_eq!(back.delay_warned, None);
        let newer = format!("{old}some-future-key: 1\n");
        assert!(parse_state(&newer, 2).is_ok());
        assert!(parse_state(&format!("{old}notified: 7\n"), 2).is_err());
    }
}
