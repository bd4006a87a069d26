//! The durable spool and its delivery scheduler.
//!
//! On disk, under `state_dir/queue/`:
//!
//! | directory   | holds |
//! |-------------|-------|
//! | `incoming/` | messages being received; never delivered; emptied at start-up |
//! | `active/`   | `ID.msg` (envelope + message, written once) and `ID.state` (per-recipient status, rewritten atomically) |
//! | `hold/`     | messages the operator put on hold (`postern queue hold`); never delivered until released |
//! | `failed/`   | messages with permanently failed recipients, kept for the operator (bounces arrive with the outbound relay) |
//! | `corrupt/`  | files that could not be read back, moved aside with a log line |
//! | `spare/`    | emptied files of delivered messages, reused for the next ones (`spare.rs`); emptied at start-up |
//!
//! A message is acknowledged only after [`Incoming::commit`]: the file is written to
//! `incoming/`, fsynced, renamed into `active/`, and `active/` itself is fsynced. A crash
//! before that leaves at most a file in `incoming/`, which the next start deletes; a crash
//! after it leaves a complete `.msg` whose trailer proves it complete.
//!
//! After each delivery attempt the queue sends the sender the delivery status
//! notifications (DSNs) it is owed, as new queued messages with the null sender:
//! bounces for failed recipients, optional delay warnings, and delivery reports for
//! `NOTIFY=SUCCESS` (see `notice.rs` and `dsn.rs`).
//!
//! # Security
//! Queue files are written by the daemon only; on read-back they are still treated as
//! untrusted (a damaged disk, an operator's editor): every parse error quarantines the
//! file instead of crashing. Reports are never sent about a message with a null
//! sender, so they cannot loop.
//!
//! # Standards
//! RFC 5321 §6.1 (responsibility once accepted), RFC 3461 (DSN parameters and when
//! reports are sent), RFC 3464 and RFC 6522 (report format).

pub mod admin;
mod agent;
pub mod clock;
mod config;
pub mod control;
mod date;
pub mod dsn;
mod error;
pub mod gauges;
mod id;
mod index;
mod lock;
mod notice;
mod outcome;
mod recipient;
mod record;
pub mod safefs;
mod scheduler;
mod spare;
mod splice;
mod spool;
pub mod synthetic;

pub use agent::{DeliveryAgent, DeliveryOutcome, Outcome};
/// The future type agents return.
pub mod agent_future {
    pub use crate::agent::BoxFuture;
}
pub use clock::{Clock, FakeClock, SystemClock};
pub use config::QueueConfig;
pub use date::rfc5322_date;
pub use error::{FormatError, LoadError, OpError};
pub use id::QueueId;
pub use lock::SpoolLock;
pub use notice::Sign;
pub use outcome::Detail;
pub use recipient::Recipient;
pub use record::{Envelope, RcptState, RcptStatus, SenderTls};
pub use scheduler::{AdminOp, Admission, Queue, bounce_offline};
pub use spool::{Finished, Incoming, QueuedMessage, Spool};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
