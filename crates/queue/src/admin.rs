//! Queue administration: what `postern queue` lists and shows, and the file moves behind
//! `hold`, `release`, `delete` and `bounce`.
//!
//! A message lives in exactly one of four places, the directories of the spool:
//!
//! | place     | directory  | delivered? |
//! |-----------|------------|------------|
//! | `active`  | `active/`  | yes: queued and deferred recipients are tried on schedule |
//! | `hold`    | `hold/`    | no, until `postern queue release` |
//! | `failed`  | `failed/`  | no: permanent failures that could not be reported to the sender |
//! | `corrupt` | `corrupt/` | no: files that could not be read back |
//!
//! These functions change files. While the daemon runs they are called only by the
//! scheduler (through [`crate::Queue::admin`], reached from the control socket), which
//! knows which messages are being delivered at that moment; while it is stopped the CLI
//! calls them under the spool lock ([`crate::SpoolLock`]). So nothing here races a
//! delivery.
//!
//! Moving a message writes its state file into the new place first (fsynced), then
//! renames the `.msg` file (the commit point), then removes the old state file: a crash
//! at any point leaves the message in one place, with its recipient state, so it is
//! neither lost nor delivered twice to a recipient already done.
//!
//! # Security
//! Queue IDs from the command line are parsed as [`QueueId`] (18 hex digits) before they
//! become file names, so no path can be smuggled in. Listings show envelope addresses and
//! the last error; message content is shown only by `show` (its header section).

use std::fs;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{LoadError, OpError};
use crate::record::RcptStatus;

mod digest;
use crate::spool::sync_dir;
use crate::{QueueId, QueuedMessage, Spool, unix_now};
pub use digest::HeaderDigest;

/// Longest header section `show` returns.
const MAX_SHOWN_HEADERS: u64 = 64 << 10;

/// The reason recorded for recipients returned by `postern queue bounce` (with status
/// `5.0.0`).
pub const BOUNCED_BY_OPERATOR: &str =
    "returned to the sender by the mail system administrator (postern queue bounce)";

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    Active,
    Hold,
    Failed,
    Corrupt,
}

impl Place {
    pub const ALL: [Place; 4] = [Place::Active, Place::Hold, Place::Failed, Place::Corrupt];

    pub fn as_str(self) -> &'static str {
        match self {
            Place::Active => "active",
            Place::Hold => "hold",
            Place::Failed => "failed",
            Place::Corrupt => "corrupt",
        }
    }

    pub fn parse(s: &str) -> Option<Place> {
        Place::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recipient in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcptSummary {
    pub address: String,
    /// `queued`, `deferred`, `delivered`, `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_attempt: Option<u64>,
    pub next_attempt: Option<u64>,
    /// The last result (the remote server's reply, or why it could not be reached), as
    /// a line of text.
    pub reason: String,
    /// The same, as data: reply code, enhanced status code, remote host, ...
    #[serde(default)]
    pub outcome: crate::Detail,
}

/// One message in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub id: String,
    pub place: Place,
    /// Unix seconds; from the queue ID when the file cannot be read.
    pub arrived: u64,
    /// Bytes of message content (the whole file for a corrupt one).
    pub size: u64,
    pub sender: String,
    pub recipients: Vec<RcptSummary>,
    /// The earliest next attempt of a deferred recipient.
    pub next_attempt: Option<u64>,
    /// The most recent non-empty reason of a recipient not delivered.
    pub last_error: Option<String>,
    /// Why the file could not be read (corrupt messages).
    pub problem: Option<String>,
}

/// `postern queue show`: the summary, the rest of the envelope, and the headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDetail {
    pub summary: MessageSummary,
    pub client: String,
    pub body: String,
    pub smtputf8: bool,
    /// RFC 8689: the message came with `MAIL FROM ... REQUIRETLS`.
    #[serde(default)]
    pub requiretls: bool,
    /// RFC 8689 §5: the message has `TLS-Required: No` (and no REQUIRETLS).
    #[serde(default)]
    pub tls_required_no: bool,
    pub delay_warned: Option<u64>,
    /// Per recipient, whether the sender has been told (or asked not to be).
    pub notified: Vec<bool>,
    pub dsn: Vec<Option<String>>,
    /// The header section of the message as it will be delivered (Received first).
    pub headers: String,
    /// From, To, Subject ... decoded for a person (mail-parser).
    #[serde(default)]
    pub digest: HeaderDigest,
    pub path: PathBuf,
}

impl Spool {
    /// The directory of `place`.
    pub fn dir_of(&self, place: Place) -> &Path {
        match place {
            Place::Active => self.active_dir(),
            Place::Hold => self.hold_dir(),
            Place::Failed => self.failed_dir(),
            Place::Corrupt => self.corrupt_dir(),
        }
    }

    /// Where the message `id` is, if anywhere.
    pub fn locate(&self, id: QueueId) -> Option<Place> {
        Place::ALL
            .into_iter()
            .find(|&p| self.dir_of(p).join(format!("{id}.msg")).exists())
    }

    /// Read the message `id` from `place` (never quarantines: this is for looking).
    pub fn read_at(&self, id: QueueId, place: Place) -> Result<QueuedMessage, LoadError> {
        self.load(&self.dir_of(place).join(format!("{id}.msg")))
    }

    /// Every message, in all places, oldest first.
    pub fn summaries(&self) -> io::Result<Vec<MessageSummary>> {
        let mut out = Vec::new();
        for place in Place::ALL {
            for (id, path) in msg_files(self.dir_of(place))? {
                let summary = match place {
                    Place::Corrupt => corrupt_summary(id, &path),
                    _ => match self.load(&path) {
                        Ok(m) => summarize(&m, place),
                        // Finished (delivered, moved) since the directory was read.
                        Err(_) if !path.exists() => continue,
                        Err(why) => MessageSummary {
                            problem: Some(why.to_string()),
                            ..corrupt_summary(id, &path)
                        },
                    },
                };
                out.push(summary);
            }
        }
        out.sort_by(|a, b| (a.arrived, &a.id).cmp(&(b.arrived, &b.id)));
        Ok(out)
    }

    /// The details of message `id`.
    pub fn detail(&self, id: QueueId) -> Result<MessageDetail, OpError> {
        let place = self.locate(id).ok_or(OpError::NoSuchMessage(id))?;
        if place == Place::Corrupt {
            let path = self.corrupt_dir().join(format!("{id}.msg"));
            return Err(OpError::Unreadable { id, path });
        }
        let m = self.read_at(id, place)?;
        let head = read_header_section(&m).map_err(OpError::io(id, "cannot read"))?;
        let digest = HeaderDigest::read(&head);
        let headers = printable(&head);
        let e = &m.envelope;
        Ok(MessageDetail {
            summary: summarize(&m, place),
            client: format!(
                "[{}] {}",
                e.client_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                e.helo
            ),
            body: e.body.as_str().to_string(),
            smtputf8: e.smtputf8,
            requiretls: e.sender_tls == crate::SenderTls::RequireTls,
            tls_required_no: e.sender_tls == crate::SenderTls::TlsOptional,
            delay_warned: m.delay_warned,
            notified: m.state.iter().map(|s| s.notified).collect(),
            dsn: e.recipients.iter().map(|r| r.dsn_params()).collect(),
            headers,
            digest,
            path: m.path.clone(),
        })
    }

    /// Move message `id` from one place to another (see the module docs for the order).
    pub fn move_message(&self, id: QueueId, from: Place, to: Place) -> io::Result<()> {
        if to == Place::Active {
            // Done by an operator command while the daemon is stopped: the next start
            // must rebuild the schedule to see the message (harmless when running).
            crate::index::invalidate(self.active_dir());
        }
        let (src, dst) = (self.dir_of(from), self.dir_of(to));
        let (src_msg, dst_msg) = (src.join(format!("{id}.msg")), dst.join(format!("{id}.msg")));
        let (src_state, dst_state) = (
            src.join(format!("{id}.state")),
            dst.join(format!("{id}.state")),
        );
        if !src_msg.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{id} is not in {from}/"),
            ));
        }
        match fs::read(&src_state) {
            Ok(state) => {
                let tmp = dst.join(format!("{id}.state.tmp"));
                crate::safefs::replace_file(&tmp, &dst_state, &state)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // No attempt yet; a stale state file from an interrupted move must not
                // be picked up with this message.
                let _ = fs::remove_file(&dst_state);
            }
            Err(e) => return Err(e),
        }
        fs::rename(&src_msg, &dst_msg)?;
        sync_dir(dst)?;
        match fs::remove_file(&src_state) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        sync_dir(src)
    }

    /// Delete message `id` from `place`, without telling anyone.
    pub fn delete_message(&self, id: QueueId, place: Place) -> io::Result<()> {
        let dir = self.dir_of(place);
        fs::remove_file(dir.join(format!("{id}.msg")))?;
        match fs::remove_file(dir.join(format!("{id}.state"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        sync_dir(dir)
    }

    /// Make the deferred recipients of `id` (in `active/`) due now, for a daemon that is
    /// not running: it tries them as soon as it starts.
    pub fn clear_retry_times(&self, id: QueueId) -> Result<usize, OpError> {
        let mut m = self.read_at(id, Place::Active)?;
        crate::index::invalidate(self.active_dir());
        let mut n = 0;
        for s in m.state.iter_mut().filter(|s| !s.status.is_final()) {
            if s.next_attempt.take().is_some() {
                n += 1;
            }
        }
        self.write_state(&m)
            .map_err(OpError::io(id, "cannot write its state"))?;
        Ok(n)
    }
}

/// Mark every pending recipient of `msg` failed by the operator; returns their indexes.
pub(crate) fn fail_pending(msg: &mut QueuedMessage) -> Vec<usize> {
    let pending = msg.pending();
    let now = unix_now();
    for &i in &pending {
        let st = &mut msg.state[i];
        st.status = RcptStatus::Failed;
        st.detail = crate::Detail::local("5.0.0", BOUNCED_BY_OPERATOR);
        st.last_attempt = Some(now);
        st.next_attempt = None;
    }
    pending
}

fn summarize(m: &QueuedMessage, place: Place) -> MessageSummary {
    let e = &m.envelope;
    let recipients: Vec<RcptSummary> = e
        .recipients
        .iter()
        .zip(&m.state)
        .map(|(r, s)| RcptSummary {
            address: r.to_string(),
            status: s.status.as_str().to_string(),
            attempts: s.attempts,
            last_attempt: s.last_attempt,
            next_attempt: s.next_attempt,
            reason: s.detail.to_string(),
            outcome: s.detail.clone(),
        })
        .collect();
    let next_attempt = m
        .state
        .iter()
        .filter(|s| !s.status.is_final())
        .filter_map(|s| s.next_attempt)
        .min();
    let last_error = m
        .state
        .iter()
        .filter(|s| s.status != RcptStatus::Delivered && !s.detail.is_empty())
        .max_by_key(|s| s.last_attempt)
        .map(|s| s.detail.to_string());
    MessageSummary {
        id: e.id.to_string(),
        place,
        arrived: e.arrived,
        size: m.body_len,
        sender: e.sender.to_string(),
        recipients,
        next_attempt,
        last_error,
        problem: None,
    }
}

fn corrupt_summary(id: QueueId, path: &Path) -> MessageSummary {
    MessageSummary {
        id: id.to_string(),
        place: Place::Corrupt,
        arrived: id.unix_time(),
        size: fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        sender: String::new(),
        recipients: Vec::new(),
        next_attempt: None,
        last_error: None,
        problem: Some("could not be read back as a queue file".into()),
    }
}

/// `ID.msg` files in `dir`, with their IDs. Other names are skipped.
fn msg_files(dir: &Path) -> io::Result<Vec<(QueueId, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let path = entry?.path();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".msg"))
            .and_then(QueueId::parse);
        if let Some(id) = id {
            out.push((id, path));
        }
    }
    Ok(out)
}

/// The raw header section, up to [`MAX_SHOWN_HEADERS`].
fn read_header_section(m: &QueuedMessage) -> io::Result<Vec<u8>> {
    let mut r = m.open_body()?.take(MAX_SHOWN_HEADERS);
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 || line == b"\r\n" || line == b"\n" {
            break;
        }
        out.extend_from_slice(&line);
    }
    Ok(out)
}

/// The header section as text for a terminal.
fn printable(head: &[u8]) -> String {
    // Control characters could drive the operator's terminal: only line ends and tabs stay.
    String::from_utf8_lossy(head)
        .replace("\r\n", "\n")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}
