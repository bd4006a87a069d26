//! The time the queue schedules by. The daemon uses the system clock; tests use a
//! [`FakeClock`] and move it forward, so that retry, expiry and delay-warning schedules
//! are checked without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Wall-clock time for the queue, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;

    /// Seconds since the Unix epoch.
    fn now(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct FakeClock {
    ms: AtomicU64,
}

impl FakeClock {
    /// A fake clock showing `unix` seconds.
    pub fn at(unix: u64) -> Arc<FakeClock> {
        Arc::new(FakeClock {
            ms: AtomicU64::new(unix * 1000),
        })
    }

    /// Move the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// The clock the daemon runs on.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
