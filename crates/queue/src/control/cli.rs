//! `postern queue ...`: the arguments, and printing what the control module returns. The
//! commands themselves (lock or control socket, the changes, the text of `list` and
//! `show`) are in [`super::command`] and [`super::render`]; the binary only passes in
//! where the queue is ([`Target`]).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::command::{AdminError, Offline, QueueAccess, parse_id, select};
use super::render;
use crate::AdminOp;

/// `postern queue` subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued messages: ID, state, age, size, sender, and each recipient with its
    /// state, next attempt and last error.
    List(ListArgs),
    /// Show one message: envelope, per-recipient history, and its headers.
    Show {
        /// Queue ID (18 hex digits, as in the logs and `queue list`).
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Try delivery now, ignoring retry times: one message, or all with --all.
    Flush {
        /// Queue ID; leave out with --all.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every message in the active queue.
        #[arg(long)]
        all: bool,
    },
    /// Put a message on hold: it stays queued but is not delivered until released.
    Hold { id: String },
    /// Release a held message: it is tried again at once.
    Release { id: String },
    /// Delete a message without delivering it or telling the sender.
    Delete {
        id: String,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
    /// Give up on a message: its pending recipients fail and the sender gets a bounce.
    Bounce { id: String },
}

/// `postern queue list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only messages in this state.
    #[arg(long, value_parser = ["active", "hold", "failed", "corrupt"])]
    pub state: Option<String>,
    /// Only messages with a recipient in this domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// Print JSON (an array of messages) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where the queue is, and what a command run while the daemon is stopped needs.
#[derive(Debug)]
pub struct Target<'a> {
    pub queue_dir: &'a std::path::Path,
    pub state_dir: &'a std::path::Path,
    /// `bounce` with the daemon stopped writes the bounce itself.
    pub offline: Offline<'a>,
}

/// Run a queue command against the queue `target` names.
pub fn run(target: &Target<'_>, cmd: QueueCommand) -> ExitCode {
    match execute(target, cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postern queue: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A failure to report after `postern queue: `.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Queue(#[from] AdminError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0} Refusing without a terminal to ask on: add -y to confirm")]
    NoTerminal(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not deleted")]
    NotDeleted,
}

fn execute(target: &Target<'_>, cmd: QueueCommand) -> Result<(), CliError> {
    let access = QueueAccess::open(target.queue_dir, target.state_dir)?;
    let op = match cmd {
        QueueCommand::List(args) => {
            let selected = select(
                access.list()?,
                args.state.as_deref(),
                args.domain.as_deref(),
            );
            print!("{}", render::list(&selected, args.json, crate::unix_now())?);
            return Ok(());
        }
        QueueCommand::Show { id, json } => {
            let d = access.show(parse_id(&id)?)?;
            print!("{}", render::show(&d, json)?);
            return Ok(());
        }
        QueueCommand::Flush { id, .. } => AdminOp::Flush(id.as_deref().map(parse_id).transpose()?),
        QueueCommand::Hold { id } => AdminOp::Hold(parse_id(&id)?),
        QueueCommand::Release { id } => AdminOp::Release(parse_id(&id)?),
        QueueCommand::Bounce { id } => AdminOp::Bounce(parse_id(&id)?),
        QueueCommand::Delete { id, yes } => {
            let id = parse_id(&id)?;
            if !yes
                && !confirm(&format!(
                    "Delete {id} without delivering it or telling anyone?"
                ))?
            {
                return Err(CliError::NotDeleted);
            }
            AdminOp::Delete(id)
        }
    };
    println!("{}", access.change(op, &target.offline)?);
    Ok(())
}

fn confirm(question: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NoTerminal(question.to_string()));
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
