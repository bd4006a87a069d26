//! The `[queue]` section.

use postern_config::{Duration, KeyPath, Problems, Size};
use serde::{Deserialize, Serialize};

/// `[queue]`: retry behaviour and delivery reports.
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
    /// Of those, at most this many for null-sender reports (bounces, delay warnings,
    /// delivery reports), so that reports to stalling destinations cannot hold every
    /// slot. Default: a quarter of `delivery_concurrency`, at least 1, and always one
    /// less than `delivery_concurrency` when that is 2 or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_concurrency: Option<usize>,
    /// Tell the sender once, with a delay warning, when a message has waited this long
    /// and recipients are still being retried. Absent: no delay warnings (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_warning: Option<Duration>,
    /// A bounce returns the whole original message only up to this size; a larger one
    /// gets its headers only.
    #[serde(default = "default_bounce_return_limit")]
    pub bounce_return_limit: Size,
    /// Messages the scheduler holds in memory at most (waiting for a due attempt or
    /// being delivered); the rest wait on disk in the schedule. Default: one per MiB of
    /// the machine's memory, between 1,000 and 10,000 (see [`QueueConfig::active_limit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_limit: Option<usize>,
    /// New mail is refused (`452 4.3.1`) while the queue's file system has less than
    /// this free, so that the mail already queued can still be worked on.
    #[serde(default = "default_min_free_space")]
    pub min_free_space: Size,
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
fn default_bounce_return_limit() -> Size {
    Size::mib(1)
}
fn default_min_free_space() -> Size {
    Size::mib(100)
}

/// The default `active_limit`: one message per MiB of memory, 1,000 to 10,000.
fn machine_active_limit() -> usize {
    let mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0);
    (mib as usize).clamp(1_000, 10_000)
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            retry: default_retry(),
            max_age: default_max_age(),
            delivery_concurrency: default_concurrency(),
            report_concurrency: None,
            delay_warning: None,
            bounce_return_limit: default_bounce_return_limit(),
            active_limit: None,
            min_free_space: default_min_free_space(),
        }
    }
}

impl QueueConfig {
    /// Messages held in memory at most: `active_limit`, or the machine's default.
    pub fn active_limit(&self) -> usize {
        self.active_limit
            .unwrap_or_else(machine_active_limit)
            .max(self.delivery_concurrency.max(1))
    }

    /// How many deliveries of null-sender reports may run at once.
    pub fn report_slots(&self) -> usize {
        let all = self.delivery_concurrency.max(1);
        match self.report_concurrency {
            Some(n) => n.clamp(1, all),
            None => (all / 4).max(1).min(all.saturating_sub(1).max(1)),
        }
    }

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
        if let Some(n) = self.active_limit
            && n < self.delivery_concurrency.max(1)
        {
            p.push(
                at.key("active_limit"),
                format!(
                    "is less than delivery_concurrency ({}): delivery slots would stay idle; make it larger (or leave it out for the machine's default)",
                    self.delivery_concurrency
                ),
            );
        }
        if self.delivery_concurrency == 0 {
            p.push(at.key("delivery_concurrency"), "must be at least 1");
        }
        match self.report_concurrency {
            Some(0) => p.push(
                at.key("report_concurrency"),
                "must be at least 1: with 0, no bounce or delivery report would ever be sent",
            ),
            Some(n) if n > self.delivery_concurrency => p.push(
                at.key("report_concurrency"),
                format!(
                    "is more than delivery_concurrency ({}): reports could then hold every delivery slot; make it smaller",
                    self.delivery_concurrency
                ),
            ),
            _ => {}
        }
        match self.delay_warning {
            Some(d) if d.get().is_zero() => p.push(
                at.key("delay_warning"),
                "must be longer than zero; leave it out to send no delay warnings",
            ),
            Some(d) if d >= self.max_age => p.push(
                at.key("delay_warning"),
                format!(
                    "is not shorter than max_age ({}): messages would fail before any warning; shorten it or leave it out",
                    self.max_age
                ),
            ),
            _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(c: &QueueConfig) -> Vec<String> {
        let mut p = Problems::new();
        c.validate(&KeyPath::of("queue"), &mut p);
        p.locate_in("t.toml", "")
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn delay_warning_must_come_before_max_age() {
        let mut c = QueueConfig::default();
        assert!(problems(&c).is_empty());
        c.delay_warning = Some("4h".parse().unwrap());
        assert!(problems(&c).is_empty());
        c.delay_warning = Some("5d".parse().unwrap());
        let p = problems(&c);
        assert!(
            p.iter().any(|e| e.contains("not shorter than max_age")),
            "{p:?}"
        );
        c.delay_warning = Some("0s".parse().unwrap());
        let p = problems(&c);
        assert!(p.iter().any(|e| e.contains("leave it out")), "{p:?}");
    }
}
