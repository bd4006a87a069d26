//! The process-wide registry: counters, gauges, scrape-time collectors, rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use crate::METRICS;

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A metric's declaration.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

type Key = (&'static str, Vec<(&'static str, String)>);
type CollectFn = dyn Fn(&mut Sink) + Send + Sync;

#[derive(Default)]
struct Registry {
    counters: Mutex<BTreeMap<Key, u64>>,
    gauges: Mutex<BTreeMap<Key, f64>>,
    collectors: Mutex<Vec<(u64, Arc<CollectFn>)>>,
    next_id: Mutex<u64>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
    )
}

/// Add one to a counter.
pub fn inc(name: &'static str, labels: &[(&'static str, &str)]) {
    add(name, labels, 1);
}

/// Add `n` to a counter.
pub fn add(name: &'static str, labels: &[(&'static str, &str)], n: u64) {
    *lock(&REGISTRY.counters)
        .entry(key(name, labels))
        .or_insert(0) += n;
}

/// Set a gauge that does not change between scrapes unless set again.
pub fn set(name: &'static str, labels: &[(&'static str, &str)], v: f64) {
    lock(&REGISTRY.gauges).insert(key(name, labels), v);
}

/// Where scrape-time collectors put their values.
#[derive(Debug, Default)]
pub struct Sink {
    values: BTreeMap<Key, f64>,
}

impl Sink {
    pub fn gauge(&mut self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        self.values.insert(key(name, labels), v);
    }
}

/// A registered collector; dropping it unregisters it (a stopped server's queue must
/// not be counted by the next one in the same process).
#[derive(Debug)]
pub struct Collector(u64);

impl Drop for Collector {
    fn drop(&mut self) {
        lock(&REGISTRY.collectors).retain(|(id, _)| *id != self.0);
    }
}

/// Run `f` at every scrape to compute gauges (queue sizes, certificate expiry).
pub fn on_scrape(f: impl Fn(&mut Sink) + Send + Sync + 'static) -> Collector {
    let id = {
        let mut n = lock(&REGISTRY.next_id);
        *n += 1;
        *n
    };
    lock(&REGISTRY.collectors).push((id, Arc::new(f)));
    Collector(id)
}

/// Everything, in the Prometheus text format.
pub fn render() -> String {
    let collectors: Vec<Arc<CollectFn>> = lock(&REGISTRY.collectors)
        .iter()
        .map(|(_, f)| f.clone())
        .collect();
    let mut sink = Sink::default();
    for f in collectors {
        f(&mut sink);
    }
    let counters = lock(&REGISTRY.counters).clone();
    let mut gauges = lock(&REGISTRY.gauges).clone();
    gauges.extend(sink.values);
    let mut out = String::new();
    for m in METRICS {
        let _ = writeln!(out, "# HELP {} {}", m.name, escape_help(m.help));
        let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind.as_str());
        for ((name, labels), v) in counters.range(range(m.name)) {
            sample(&mut out, name, labels, &v.to_string());
        }
        for ((name, labels), v) in gauges.range(range(m.name)) {
            sample(&mut out, name, labels, &float(*v));
        }
    }
    out
}

fn range(name: &'static str) -> std::ops::RangeInclusive<Key> {
    (name, Vec::new())..=(name, vec![("\u{10FFFF}", String::new())])
}

fn sample(out: &mut String, name: &str, labels: &[(&'static str, String)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_collectors() {
        inc(
            "postern_smtp_rejections_total",
            &[("stage", "RCPT"), ("status", "5.7.1")],
        );
        inc(
            "postern_smtp_rejections_total",
            &[("stage", "RCPT"), ("status", "5.7.1")],
        );
        set("postern_build_info", &[("version", "x\"y\\z\n")], 1.0);
        let c = on_scrape(|s| s.gauge("postern_queue_messages", &[("state", "hold")], 3.0));
        let text = render();
        assert!(
            text.contains("postern_smtp_rejections_total{stage=\"RCPT\",status=\"5.7.1\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("postern_build_info{version=\"x\\\"y\\\\z\\n\"} 1\n"));
        assert!(text.contains("postern_queue_messages{state=\"hold\"} 3\n"));
        assert!(text.contains("# TYPE postern_queue_messages gauge\n"));
        drop(c);
        assert!(!render().contains("postern_queue_messages{state=\"hold\"}"));
        // Every line is a comment or `name{labels} value`.
        for line in render().lines() {
            assert!(
                line.starts_with("# ") || line.starts_with("postern_"),
                "{line}"
            );
        }
    }
}
