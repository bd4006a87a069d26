//! `postern sendmail` and the binary invoked as `sendmail`: wiring only. The command line,
//! the message and the SMTP submission are `postern_submit`'s; this module finds the
//! configuration and reads from it the one thing submission needs, the first listener,
//! without opening any certificate or key file (an ordinary user cannot read them).

use std::path::PathBuf;
use std::process::ExitCode;

pub use postern_submit::SendmailArgs;
use postern_submit::{ConfigProblem, Target};

/// The configuration used when neither `--config` nor `POSTERN_CONFIG` names one.
const SYSTEM_CONFIG: &str = "/etc/postern/postern.toml";

pub use postern_submit::invoked_as_sendmail;

/// Entry point for the binary invoked as `sendmail`: the configuration from
/// `POSTERN_CONFIG` or the system default.
pub fn main_classic() -> ExitCode {
    postern_submit::main_classic(|| target(std::env::var_os("POSTERN_CONFIG").map(PathBuf::from)))
}

/// Entry point for `postern sendmail`.
pub fn run(config: Option<PathBuf>, args: SendmailArgs) -> ExitCode {
    postern_submit::run(args, || target(config))
}

/// The first listener and the host name, from the configuration parsed but not loaded:
/// no file it names is opened.
fn target(config: Option<PathBuf>) -> Result<Target, ConfigProblem> {
    let path = config.or_else(|| {
        let p = PathBuf::from(SYSTEM_CONFIG);
        p.exists().then_some(p)
    });
    let loaded = crate::config::parse_only(path.as_deref()).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        ConfigProblem(lines.join("\n"))
    })?;
    let c = &loaded.config;
    let Some(listener) = c.listener.first() else {
        return Err(ConfigProblem(format!(
            "{}: no [[listener]] to submit to",
            loaded.name
        )));
    };
    Ok(Target {
        listen: listener.address,
        implicit_tls: listener.mode == postern_inbound::Mode::ImplicitTls,
        hostname: c.hostname(),
        socket: c.server.submit_socket(),
    })
}
