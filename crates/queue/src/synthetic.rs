//! Synthetic queued messages, written straight into a stopped daemon's `active/`: for
//! tests and benchmarks of a large backlog (`cargo run --release -p postern-queue
//! --example backlog -- QUEUE_DIR COUNT RECIPIENT`). Nothing here is used by the daemon.
//!
//! The files are the queue's own format (envelope header, message, end marker),
//! written without an fsync each (one `syncfs`-like pass at the end is the caller's
//! business: a benchmark does not need them to survive a power cut). The schedule is
//! marked incomplete, so the daemon's next start files them (see `index.rs`).

use std::fs;
use std::io::{self, Write};

use postern_smtp::address::{Address, ReversePath};
use postern_smtp::command::BodyType;

use crate::record::{Envelope, RcptState, RcptStatus, format_state};
use crate::{QueueId, Recipient, Spool};

/// What to write.
#[derive(Debug, Clone)]
pub struct Backlog {
    pub count: usize,
    pub sender: ReversePath,
    pub recipient: Address,
    /// Bytes of message content (at least a few header fields).
    pub size: usize,
    /// `Some(t)`: already tried once and deferred until `t` (Unix seconds), as a real
    /// backlog is; `None`: never tried (due at once).
    pub deferred_until: Option<u64>,
}

/// Write `b.count` messages into `spool`'s `active/`; their IDs, oldest first. The
/// daemon must not be running on this spool (hold its lock, or start it afterwards).
pub fn fill(spool: &Spool, b: &Backlog) -> io::Result<Vec<QueueId>> {
    let now = crate::unix_now();
    let mut ids = Vec::with_capacity(b.count);
    let filler = "x".repeat(76);
    for n in 0..b.count {
        let id = QueueId::generate();
        let env = Envelope {
            id,
            arrived: now,
            client_ip: None,
            helo: "backlog.invalid".into(),
            sender: b.sender.clone(),
            recipients: vec![Recipient::new(b.recipient.clone())],
            body: BodyType::SevenBit,
            smtputf8: false,
            ret: None,
            envid: None,
            sender_tls: crate::SenderTls::Default,
        };
        let mut body = format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: synthetic backlog message {n}\r\nMessage-ID: <{id}@backlog.invalid>\r\n\r\n",
            b.sender, b.recipient
        );
        while body.len() + 78 <= b.size {
            body.push_str(&filler);
            body.push_str("\r\n");
        }
        let mut bytes = env.header().into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        bytes.extend_from_slice(format!("{}{}\n", crate::record::END, body.len()).as_bytes());
        let path = spool.active_dir().join(format!("{id}.msg"));
        fs::File::create_new(&path)?.write_all(&bytes)?;
        if let Some(t) = b.deferred_until {
            let st = RcptState {
                status: RcptStatus::Deferred,
                attempts: 1,
                last_attempt: Some(now),
                next_attempt: Some(t),
                detail: crate::Detail::local(
                    "4.4.1",
                    "synthetic backlog: the destination is unreachable",
                ),
                notified: false,
            };
            fs::write(path.with_extension("state"), format_state(&[st], None))?;
        }
        ids.push(id);
    }
    crate::spool::sync_dir(spool.active_dir())?;
    crate::index::invalidate(spool.active_dir());
    Ok(ids)
}
