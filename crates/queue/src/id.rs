//! Queue IDs: 18 upper-case hex digits, microsecond time then a counter, so they sort by
//! arrival and never repeat within a process or across restarts.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(u128);

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl QueueId {
    pub fn generate() -> QueueId {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
            & 0xF_FFFF_FFFF_FFFF;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        QueueId((micros << 20) | u128::from(n & 0xF_FFFF))
    }

    /// When the ID was generated (Unix seconds): the message's arrival, even when its
    /// file cannot be read.
    pub fn unix_time(&self) -> u64 {
        ((self.0 >> 20) / 1_000_000) as u64
    }

    pub fn parse(s: &str) -> Option<QueueId> {
        if s.len() != 18
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(QueueId)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:018X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = QueueId::generate();
            assert!(seen.insert(id));
            assert_eq!(QueueId::parse(&id.to_string()), Some(id));
        }
        assert_eq!(QueueId::parse("../../etc/passwd"), None);
        assert_eq!(QueueId::parse("0123456789abcdef01"), None);
    }
}
