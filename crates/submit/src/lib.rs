//! `postern sendmail`, and the binary invoked as `sendmail` (`/usr/sbin/sendmail`, a link the
//! Debian package creates): the command-line mail interface that cron, mailutils and scripts
//! expect of a `mail-transport-agent`.
//!
//! The message is read from standard input, completed (`Date:`, `Message-ID:` and `From:`
//! added when missing, `Bcc:` always removed) and submitted over SMTP to the local daemon:
//! over its local submission socket (`[server] submit_socket_path`), where the daemon
//! reads our uid from the kernel and records it in the `Received:` field; or, when that
//! socket is off, missing or does not answer, the first `[[listener]]` of the
//! configuration (`0.0.0.0` is reached as `127.0.0.1`, `::` as `::1`). This command keeps no queue of its own: it exits 0 only after the daemon
//! answered 250 to the end of DATA, i.e. after the message is on disk in the daemon's queue.
//! Every other outcome leaves nothing accepted, prints the reason (the server's reply, when
//! there is one) on stderr, and exits with a sysexits.h status:
//!
//! | status | when |
//! |---|---|
//! | 0 | the daemon accepted the message (250 after DATA) |
//! | 64 `EX_USAGE` | bad command line: unknown option, `-bd`/`-bs`/`-bp`/..., no recipients, an unreadable address |
//! | 65 `EX_DATAERR` | a 5xx reply to MAIL FROM or to the message itself (after DATA) |
//! | 69 `EX_UNAVAILABLE` | any other 5xx reply (greeting, EHLO, STARTTLS, a recipient, DATA) |
//! | 74 `EX_IOERR` | standard input could not be read |
//! | 75 `EX_TEMPFAIL` | no connection, TLS or protocol failure, timeout, or any 4xx reply: try later |
//! | 78 `EX_CONFIG` | the configuration cannot be read, or has no `[[listener]]` |
//!
//! All or nothing: if the daemon refuses one recipient, the transaction is abandoned and no
//! one gets the message (the caller sees the refusal; nothing is half-sent).
//!
//! The pieces: [`args`] (the command line), [`message`] (reading and completing the
//! message), [`recipients`] (address lists and checks), [`client`] (the SMTP session).
//! The binary composes the configuration and hands over only a [`Target`].
//!
//! # Security
//! - Runs with the invoking user's privileges and only speaks SMTP to the daemon, which
//!   applies its relay policy as for a client at `127.0.0.1` (the packaged configuration trusts
//!   loopback, so local users may send to any domain; without that, only local domains).
//! - Needs nothing from the configuration but the first listener and the host name
//!   ([`Target`]): no certificate, private key or DKIM key is opened, so it works for users
//!   who cannot read them (as they must not).
//! - Every address (arguments, `-f`, headers with `-t`) must parse as a mailbox before
//!   anything is sent, so no CR/LF or `>` can smuggle an SMTP command; `-F` names with
//!   control characters are refused (no header injection). See [`client`] for TLS and
//!   dot-stuffing.
//! - `From:` and the envelope sender are not authenticated (as with every sendmail): `-f`
//!   sets them freely, the default is the user name of the real UID at the host name. The
//!   uid the daemon records is the kernel's (socket credentials), not this default.
//!
//! # Standards
//! RFC 5321 (client side), RFC 3207 (STARTTLS), RFC 6152 (8BITMIME), RFC 5322 §3.6
//! (`Date`, `Message-ID`, `From`, `Bcc`, address lists), RFC 2047, the traditional
//! sendmail(8) command line (`-t -i -oi -f -r -F -bm`, other `-o` options ignored).

#![forbid(unsafe_code)]

pub mod args;
pub mod client;
mod error;
pub mod message;
pub mod recipients;
mod user;

use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

pub use args::{Options, SendmailArgs, parse_classic};
pub use client::{Failure, Target, submit, submit_address};
pub use error::{ConfigProblem, SendmailError, UsageError, status};

use message::{Context, prepare, read_message};
use recipients::{address_list, check_address, qualify};

/// True when the program was started under the name `sendmail`.
pub fn invoked_as_sendmail() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n == "sendmail"))
        .unwrap_or(false)
}

/// The binary invoked as `sendmail`: classic, lenient parsing of the process arguments;
/// `target` reads the configuration (only after the command line was accepted).
pub fn main_classic(target: impl FnOnce() -> Result<Target, ConfigProblem>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    finish(
        parse_classic(&args)
            .map_err(SendmailError::from)
            .and_then(|o| send(target, o)),
    )
}

/// `postern sendmail ARGS`.
pub fn run(args: SendmailArgs, target: impl FnOnce() -> Result<Target, ConfigProblem>) -> ExitCode {
    finish(
        Options::from_args(args)
            .map_err(SendmailError::from)
            .and_then(|o| send(target, o)),
    )
}

/// Print the reason of a failure for the person or script that ran the command.
fn finish(r: Result<(), SendmailError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sendmail: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Read the message from standard input, complete it and submit it.
pub fn send(
    target: impl FnOnce() -> Result<Target, ConfigProblem>,
    opts: Options,
) -> Result<(), SendmailError> {
    let target = target()?;
    let hostname = target.hostname.as_str();
    if let Some(n) = &opts.full_name
        && n.chars().any(char::is_control)
    {
        return Err(UsageError::ControlInName.into());
    }
    let sender = match opts.sender.as_deref() {
        Some("<>" | "") => String::new(),
        Some(s) => qualify(s, hostname),
        None => format!("{}@{hostname}", user::user_name()),
    };
    check_address(&sender, "sender")?;
    let mut recipients: Vec<String> = Vec::new();
    for a in &opts.recipients {
        recipients.extend(
            address_list(a.as_bytes())
                .iter()
                .map(|r| qualify(r, hostname)),
        );
    }
    if recipients.is_empty() && !opts.from_headers {
        return Err(UsageError::NoRecipients.into());
    }

    let raw = read_message(io::stdin().lock(), opts.ignore_dots).map_err(SendmailError::Input)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let p = prepare(
        &raw,
        &Context {
            hostname,
            sender: &sender,
            full_name: opts.full_name.as_deref(),
            now,
        },
    );
    if opts.from_headers {
        recipients.extend(p.header_recipients.iter().map(|r| qualify(r, hostname)));
    }
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| seen.insert(r.to_ascii_lowercase()));
    if recipients.is_empty() {
        return Err(UsageError::NoHeaderRecipients.into());
    }
    for r in &recipients {
        check_address(r, "recipient")?;
    }
    submit(&target, &sender, &recipients, &p.message)?;
    Ok(())
}
