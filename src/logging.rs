//! Log output: human-readable text or JSON on stderr, filtered like `RUST_LOG`.
//!
//! Text logs are coloured only when stderr is a terminal and `NO_COLOR` is not set
//! (<https://no-color.org>): a log file, a pipe or the journal gets plain text that
//! `grep` and log shippers read as written.

use std::io::IsTerminal;

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

/// Whether text logs get ANSI colours: only on a terminal, and not when `NO_COLOR` is set
/// to a non-empty value.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Install the global subscriber. `RUST_LOG` overrides the default filter (`info`).
/// Under systemd (`JOURNAL_STREAM` set) timestamps are left to the journal.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour);
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
    use super::use_colour;
    use std::ffi::OsStr;

    #[test]
    fn the_default_filter_parses() {
        assert!(tracing_subscriber::EnvFilter::try_new(super::DEFAULT_FILTER).is_ok());
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}
