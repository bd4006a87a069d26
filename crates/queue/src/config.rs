//! The `[queue]` section.

use postern_config::{Duration, KeyPath, Problems};
use serde::{Deserialize, Serialize};

/// `[queue]`: retry behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Delay before each retry of a temporarily failed recipient; the last value repeats.
    /// Each delay gets ±10% jitter so that a backlog does not retry in lock-step.
    #[serde(default = "default_retry")]
    pub retry: Vec<Duration>,
    /// A recipient still undeliverable this long after arrival fails permanently.
    #[serde(default = "default_max_age")]
    pub max_age: Duration,
    /// Deliveries in progress at once, over all destinations.
    #[serde(default = "default_concurrency")]
    pub delivery_concurrency: usize,
}

fn default_retry() -> Vec<Duration> {
    ["5m", "10m", "20m", "40m", "1h"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}
fn default_max_age() -> Duration {
    Duration::secs(5 * 86_400)
}
fn default_concurrency() -> usize {
    20
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            retry: default_retry(),
            max_age: default_max_age(),
            delivery_concurrency: default_concurrency(),
        }
    }
}

impl QueueConfig {
    pub fn validate(&self, at: &KeyPath, p: &mut Problems) {
        if self.retry.is_empty() {
            p.push(
                at.key("retry"),
                "needs at least one delay, e.g. [\"5m\", \"1h\"]",
            );
        }
        for (i, d) in self.retry.iter().enumerate() {
            if d.get().is_zero() {
                p.push(
                    at.key("retry").index(i),
                    "a retry delay of zero would retry in a busy loop",
                );
            }
        }
        if self.max_age.get().is_zero() {
            p.push(at.key("max_age"), "must be longer than zero");
        }
        if self.delivery_concurrency == 0 {
            p.push(at.key("delivery_concurrency"), "must be at least 1");
        }
    }

    /// Delay before the retry that follows attempt number `attempts` (1-based).
    pub fn delay_after(&self, attempts: u32) -> std::time::Duration {
        let i = (attempts.max(1) as usize - 1).min(self.retry.len().saturating_sub(1));
        self.retry
            .get(i)
            .map(|d| d.get())
            .unwrap_or(std::time::Duration::from_secs(300))
    }
}
