//! Queue gauges computed at scrape time: messages per state and the age of the oldest,
//! from the file names alone (no file is opened: a scrape stays cheap with a large queue).

use std::path::Path;

use postern_metrics::{Collector, Sink};

use crate::QueueId;
use crate::admin::Place;

/// Report `postern_queue_messages` and `postern_queue_oldest_message_age_seconds` for the
/// queue in `queue_dir` until the returned handle is dropped.
pub fn register(queue_dir: &Path) -> Collector {
    let dir = queue_dir.to_path_buf();
    postern_metrics::on_scrape(move |s| queue_gauges(&dir, s))
}

fn queue_gauges(dir: &Path, s: &mut Sink) {
    let now = crate::unix_now();
    for place in Place::ALL {
        let (count, oldest) = scan(&dir.join(place.as_str()));
        s.gauge(
            "postern_queue_messages",
            &[("state", place.as_str())],
            count as f64,
        );
        let age = oldest.map(|t| now.saturating_sub(t)).unwrap_or(0);
        s.gauge(
            "postern_queue_oldest_message_age_seconds",
            &[("state", place.as_str())],
            age as f64,
        );
    }
}

/// Messages in a spool directory and the arrival of the oldest, from the IDs alone.
fn scan(dir: &Path) -> (usize, Option<u64>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, None);
    };
    let mut count = 0;
    let mut oldest: Option<u64> = None;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".msg"))
            .and_then(QueueId::parse)
        else {
            continue;
        };
        count += 1;
        let t = id.unix_time();
        oldest = Some(oldest.map_or(t, |o| o.min(t)));
    }
    (count, oldest)
}
