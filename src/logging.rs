//! Log output: human-readable text or JSON on stderr, filtered like `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The default filter. rustls warns about every ClientHello whose SNI holds an IP address
/// (which RFC 6066 §3 forbids, and some clients send anyway) or is malformed: the
/// handshake goes on without SNI, so that is client noise, not an operator's problem.
/// Those lines appear only when asked for (`RUST_LOG=info,rustls=debug`).
const DEFAULT_FILTER: &str = "info,rustls::msgs::handshake=error";

/// Install the global subscriber. `RUST_LOG` overrides the default filter (`info`).
/// Under systemd (`JOURNAL_STREAM` set) timestamps are left to the journal.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match (format, journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    // A second init (tests) is harmless.
    let _ = result;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_filter_parses() {
        assert!(tracing_subscriber::EnvFilter::try_new(super::DEFAULT_FILTER).is_ok());
    }
}
