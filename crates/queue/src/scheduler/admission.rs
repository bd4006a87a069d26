//! Back-pressure: whether the queue can take a new message now. The inbound session
//! asks at MAIL ([`crate::Queue::admission`]) and answers `452 4.3.1` when the answer
//! is no, `421 4.3.2` when the queue is stopping, so that a client retries later rather
//! than the daemon's memory or disk growing without bound.
//!
//! The queue refuses new mail when
//! - the file system of the queue has less than `[queue] min_free_space` free (or
//!   fewer than [`MIN_FREE_INODES`] free inodes): a message accepted then could not
//!   be written, nor the state of those already queued;
//! - more accepted messages wait in the schedule's `new` lane (they did not fit in the
//!   scheduler's memory or its command channel) than `[queue] active_limit`: the
//!   scheduler is not keeping up with what arrives.
//!
//! The free-space check runs at most once a second (one `statvfs`).
//!
//! # Standards
//! RFC 5321 §4.2.5 (452 for insufficient storage, 421 service not available), RFC 3463
//! (`4.3.1` mail system full, `4.3.2` system not accepting network messages).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::warn;

use super::lock;
use crate::index::Index;

/// Free inodes below which the queue's file system counts as full.
pub const MIN_FREE_INODES: u64 = 64;

/// What the queue answers to "may I accept a message?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Accept,
    /// The queue's file system is (nearly) full; the text says how full.
    NoSpace(String),
    /// The scheduler has more new mail waiting than it can hold.
    Busy(String),
    /// The queue is stopping (the daemon is shutting down).
    Stopping,
}

impl Admission {
    /// The SMTP reply for a refusal: code, enhanced status code and text.
    pub fn reply(&self) -> Option<(u16, &'static str, &'static str)> {
        match self {
            Admission::Accept => None,
            Admission::NoSpace(_) => Some((
                452,
                "4.3.1",
                "Insufficient system storage, please try again later",
            )),
            Admission::Busy(_) => {
                Some((452, "4.3.1", "Mail queue is full, please try again later"))
            }
            Admission::Stopping => Some((
                421,
                "4.3.2",
                "System not accepting network messages, please try again later",
            )),
        }
    }

    /// Why, for the log line of a refusal.
    pub fn why(&self) -> &str {
        match self {
            Admission::Accept => "",
            Admission::NoSpace(w) | Admission::Busy(w) => w,
            Admission::Stopping => "the queue is stopping",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Gate {
    dir: PathBuf,
    min_free: u64,
    limit: usize,
    index: Arc<Mutex<Index>>,
    /// When free space was last looked at (Unix ms), and whether it was short.
    checked_ms: AtomicU64,
    short: AtomicBool,
    short_why: Mutex<String>,
}

impl Gate {
    pub(crate) fn new(
        dir: &std::path::Path,
        min_free: u64,
        limit: usize,
        index: Arc<Mutex<Index>>,
    ) -> Gate {
        Gate {
            dir: dir.to_path_buf(),
            min_free,
            limit,
            index,
            checked_ms: AtomicU64::new(0),
            short: AtomicBool::new(false),
            short_why: Mutex::new(String::new()),
        }
    }

    pub(crate) fn check(&self) -> Admission {
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let last = self.checked_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .checked_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.look_at_disk();
        }
        if self.short.load(Ordering::Relaxed) {
            let why = self.short_why.lock().map(|w| w.clone()).unwrap_or_default();
            return Admission::NoSpace(why);
        }
        let filed = lock(&self.index).fresh_filed();
        if filed > self.limit {
            return Admission::Busy(format!(
                "{filed} accepted messages wait for the scheduler, more than [queue] active_limit ({})",
                self.limit
            ));
        }
        Admission::Accept
    }

    fn look_at_disk(&self) {
        let Ok(st) = rustix::fs::statvfs(&self.dir) else {
            return;
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        // File systems without inode limits report 0 of 0.
        let inodes_short = st.f_files > 0 && st.f_favail < MIN_FREE_INODES;
        let short = free < self.min_free || inodes_short;
        let was = self.short.swap(short, Ordering::Relaxed);
        if short {
            let why = if inodes_short {
                format!(
                    "the queue's file system ({}) has only {} free inodes",
                    self.dir.display(),
                    st.f_favail
                )
            } else {
                format!(
                    "the queue's file system ({}) has {} KiB free, less than [queue] min_free_space ({} KiB)",
                    self.dir.display(),
                    free / 1024,
                    self.min_free / 1024
                )
            };
            if !was {
                warn!(
                    "new mail is refused with 452 4.3.1 until space is freed: {why}; queued mail is still delivered"
                );
            }
            if let Ok(mut w) = self.short_why.lock() {
                *w = why;
            }
        } else if was {
            warn!(
                "the queue's file system ({}) has space again: new mail is accepted",
                self.dir.display()
            );
        }
    }
}
