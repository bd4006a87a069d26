//! Helpers shared by the command-line tools.

/// A reader that stops early (`postern check-config | head -1`) closes our standard
/// output; the next `print!` then fails with EPIPE, which the standard library turns into a
/// panic ("failed printing to stdout: Broken pipe", exit 101). Rust ignores SIGPIPE, so
/// this is where it surfaces: treat it as the normal end it is for a command-line tool
/// (exit 0, nothing on stderr). Every other panic keeps the default report.
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
