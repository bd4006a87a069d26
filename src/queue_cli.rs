//! `postern queue ...`: look at and act on the queue, whether the daemon runs or not.
//!
//! If the spool lock ([`postern_queue::SpoolLock`]) is free, no daemon runs and the
//! command works on the files itself, holding the lock so that a daemon started
//! meanwhile waits for nothing and finds a consistent spool (it refuses to start while
//! the lock is held). If the lock is taken, the command goes through the daemon's
//! control socket (see [`crate::control`]) and the daemon makes the change.
//!
//! # Security
//! Access control is the file system's: the spool and the control socket belong to
//! the `postern` user and group. Message headers shown by `show` have their control
//! characters replaced, so a hostile message cannot drive the operator's terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use postern_queue::admin::{MessageDetail, MessageSummary, Place};
use postern_queue::{AdminOp, QueueId, Spool, SpoolLock};

use crate::Config;
use crate::control::{self, ClientError, Request};

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

/// Run a queue command against the queue `config` describes.
pub fn run(config: &Config, cmd: QueueCommand) -> ExitCode {
    match execute(config, cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postern queue: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_id(s: &str) -> Result<QueueId, String> {
    QueueId::parse(&s.to_ascii_uppercase())
        .ok_or_else(|| format!("{s:?} is not a queue ID (18 hexadecimal digits, as in the logs)"))
}

/// Where the command is carried out.
enum Target {
    Daemon(std::path::PathBuf),
    /// No daemon: the files, under the lock (held until the command is done).
    Files {
        spool: Arc<Spool>,
        _lock: SpoolLock,
    },
}

fn target(config: &Config) -> Result<Target, String> {
    let qdir = config.queue_dir();
    if !qdir.is_dir() {
        return Err(format!(
            "there is no queue at {} (has postern run with this configuration? see --config)",
            qdir.display()
        ));
    }
    let lock = SpoolLock::try_acquire(&qdir).map_err(|e| {
        format!("{e} (run this as root, as the postern user, or as a member of its group)")
    })?;
    match lock {
        None => Ok(Target::Daemon(control::socket_path(
            &config.server.state_dir,
        ))),
        Some(lock) => {
            let spool = Spool::open(&qdir).map_err(|e| format!("cannot open the queue: {e}"))?;
            Ok(Target::Files {
                spool: Arc::new(spool),
                _lock: lock,
            })
        }
    }
}

fn execute(config: &Config, cmd: QueueCommand) -> Result<(), String> {
    let target = target(config)?;
    let result = match (&target, cmd) {
        (_, QueueCommand::List(args)) => {
            let all = match &target {
                Target::Daemon(sock) => from_daemon::<Vec<MessageSummary>>(sock, Request::List)?,
                Target::Files { spool, .. } => spool
                    .summaries()
                    .map_err(|e| format!("cannot read the queue: {e}"))?,
            };
            list(all, &args)
        }
        (_, QueueCommand::Show { id, json }) => {
            let id = parse_id(&id)?;
            let d = match &target {
                Target::Daemon(sock) => from_daemon::<MessageDetail>(sock, Request::Show(id))?,
                Target::Files { spool, .. } => spool.detail(id)?,
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&d).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", show_text(&d));
            }
            Ok(())
        }
        (_, QueueCommand::Flush { id, .. }) => {
            let id = id.as_deref().map(parse_id).transpose()?;
            op(config, &target, AdminOp::Flush(id))
        }
        (_, QueueCommand::Hold { id }) => op(config, &target, AdminOp::Hold(parse_id(&id)?)),
        (_, QueueCommand::Release { id }) => op(config, &target, AdminOp::Release(parse_id(&id)?)),
        (_, QueueCommand::Bounce { id }) => op(config, &target, AdminOp::Bounce(parse_id(&id)?)),
        (_, QueueCommand::Delete { id, yes }) => {
            let id = parse_id(&id)?;
            if !yes
                && !confirm(&format!(
                    "Delete {id} without delivering it or telling anyone?"
                ))?
            {
                return Err("not deleted".into());
            }
            op(config, &target, AdminOp::Delete(id))
        }
    };
    if let Target::Files { spool, .. } = &target {
        fix_ownership(spool);
    }
    result
}

fn from_daemon<T: serde::de::DeserializeOwned>(sock: &Path, req: Request) -> Result<T, String> {
    let (_, json) = control::request(sock, req).map_err(|e| daemon_error(&e))?;
    let json = json.ok_or("the daemon sent no data")?;
    serde_json::from_str(&json).map_err(|e| format!("cannot read the daemon's answer: {e}"))
}

fn daemon_error(e: &ClientError) -> String {
    match e {
        ClientError::NotRunning => format!(
            "the queue is locked by a running postern, but it does not answer on its control socket ({e}); it may be starting or stopping: try again"
        ),
        _ => e.to_string(),
    }
}

/// Carry out a change, through the daemon or on the files.
fn op(config: &Config, target: &Target, op: AdminOp) -> Result<(), String> {
    let text = match target {
        Target::Daemon(sock) => {
            control::request(sock, Request::Op(op))
                .map_err(|e| daemon_error(&e))?
                .0
        }
        Target::Files { spool, .. } => offline(config, spool, op)?,
    };
    println!("{text}");
    Ok(())
}

/// A change made with no daemon running.
fn offline(config: &Config, spool: &Arc<Spool>, op: AdminOp) -> Result<String, String> {
    let not_running = "(postern is not running: it acts on this when it starts)";
    match op {
        AdminOp::Flush(Some(id)) => {
            spool.clear_retry_times(id)?;
            Ok(format!("{id}: due now {not_running}"))
        }
        AdminOp::Flush(None) => {
            let mut n = 0;
            for m in spool.summaries().map_err(|e| e.to_string())? {
                if m.place == Place::Active
                    && let Some(id) = QueueId::parse(&m.id)
                {
                    spool.clear_retry_times(id)?;
                    n += 1;
                }
            }
            Ok(format!("{n} message(s) due now {not_running}"))
        }
        AdminOp::Hold(id) => {
            move_checked(spool, id, Place::Active, Place::Hold).map(|()| format!("{id}: on hold"))
        }
        AdminOp::Release(id) => move_checked(spool, id, Place::Hold, Place::Active)
            .map(|()| format!("{id}: released {not_running}")),
        AdminOp::Delete(id) => {
            let place = spool
                .locate(id)
                .ok_or_else(|| format!("{id}: no such message in the queue"))?;
            spool
                .delete_message(id, place)
                .map_err(|e| format!("{id}: could not be deleted: {e}"))?;
            Ok(format!("{id}: deleted"))
        }
        AdminOp::Bounce(id) => {
            let signer = postern_auth::Signer::load(&config.auth.dkim_sign)
                .map_err(|e| format!("cannot load the DKIM signing keys: {e}"))?;
            let sign: Option<postern_queue::Sign> = (!signer.is_empty()).then(|| {
                Arc::new(move |report: &[u8]| crate::server::sign_report(&signer, report))
                    as postern_queue::Sign
            });
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the async runtime: {e}"))?;
            rt.block_on(postern_queue::bounce_offline(
                spool.clone(),
                config.queue.clone(),
                &config.hostname(),
                id,
                sign,
            ))
            .map(|t| format!("{t} {not_running}"))
        }
    }
}

fn move_checked(spool: &Spool, id: QueueId, from: Place, to: Place) -> Result<(), String> {
    match spool.locate(id) {
        Some(p) if p == from => spool
            .move_message(id, from, to)
            .map_err(|e| format!("{id}: could not be moved to {to}/: {e}")),
        Some(p) => Err(format!("{id} is in {p}/, not in {from}/")),
        None => Err(format!("{id}: no such message in the queue")),
    }
}

/// Files written by root (an operator with sudo) go to the spool's owner, so that the
/// daemon, running as that user, can rewrite them later.
fn fix_ownership(spool: &Spool) {
    use std::os::unix::fs::MetadataExt;
    let Some(root) = spool.active_dir().parent() else {
        return;
    };
    let Ok(owner) = std::fs::metadata(root) else {
        return;
    };
    let (uid, gid) = (owner.uid(), owner.gid());
    let mut paths = vec![root.join("lock")];
    for place in Place::ALL {
        let dir = spool.dir_of(place).to_path_buf();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            paths.extend(rd.flatten().map(|e| e.path()));
        }
        paths.push(dir);
    }
    for p in paths {
        if let Ok(m) = std::fs::symlink_metadata(&p)
            && (m.uid() != uid || m.gid() != gid)
        {
            let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(gid));
        }
    }
}

fn confirm(question: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "{question} Refusing without a terminal to ask on: add -y to confirm"
        ));
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn list(all: Vec<MessageSummary>, args: &ListArgs) -> Result<(), String> {
    let domain = args.domain.as_deref().map(|d| d.to_ascii_lowercase());
    let selected: Vec<MessageSummary> = all
        .into_iter()
        .filter(|m| args.state.as_deref().is_none_or(|s| m.place.as_str() == s))
        .filter(|m| {
            domain.as_deref().is_none_or(|d| {
                m.recipients.iter().any(|r| {
                    r.address
                        .rsplit_once('@')
                        .is_some_and(|(_, rd)| rd.eq_ignore_ascii_case(d))
                })
            })
        })
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&selected).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    print!("{}", list_text(&selected, postern_queue::unix_now()));
    Ok(())
}

/// The text listing: one line per message, one indented line per recipient.
pub fn list_text(msgs: &[MessageSummary], now: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if msgs.is_empty() {
        out.push_str("The queue is empty.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<18}  {:<7}  {:>6}  {:>9}  SENDER",
        "QUEUE ID", "STATE", "AGE", "SIZE"
    );
    for m in msgs {
        let sender = if m.sender.is_empty() {
            "-".to_string()
        } else {
            m.sender.clone()
        };
        let _ = writeln!(
            out,
            "{:<18}  {:<7}  {:>6}  {:>9}  {sender}",
            m.id,
            m.place.as_str(),
            age(now.saturating_sub(m.arrived)),
            size(m.size)
        );
        if let Some(p) = &m.problem {
            let _ = writeln!(out, "    ({p})");
        }
        for r in &m.recipients {
            let mut line = format!("    {}  {}", r.address, r.status);
            if r.attempts > 0 {
                let _ = write!(line, ", {} attempt(s)", r.attempts);
            }
            if let Some(n) = r.next_attempt.filter(|_| r.status == "deferred") {
                let _ = write!(
                    line,
                    ", next {}",
                    if n <= now {
                        "now".to_string()
                    } else {
                        format!("in {}", age(n - now))
                    }
                );
            }
            if !r.reason.is_empty() && r.status != "delivered" {
                let _ = write!(line, ": {}", r.reason);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let count = |p: Place| msgs.iter().filter(|m| m.place == p).count();
    let _ = writeln!(
        out,
        "-- {} message(s): {} active, {} hold, {} failed, {} corrupt",
        msgs.len(),
        count(Place::Active),
        count(Place::Hold),
        count(Place::Failed),
        count(Place::Corrupt)
    );
    out
}

fn show_text(d: &MessageDetail) -> String {
    use std::fmt::Write as _;
    let s = &d.summary;
    let now = postern_queue::unix_now();
    let when = |t: u64| {
        format!(
            "{} ({} ago)",
            postern_queue::rfc5322_date(t),
            age(now.saturating_sub(t))
        )
    };
    let mut out = String::new();
    let _ = writeln!(out, "Queue ID:   {}", s.id);
    let _ = writeln!(out, "State:      {}", s.place);
    let _ = writeln!(out, "File:       {}", d.path.display());
    let _ = writeln!(out, "Arrived:    {}", when(s.arrived));
    let _ = writeln!(out, "Size:       {} bytes", s.size);
    let _ = writeln!(out, "Client:     {}", d.client);
    let _ = writeln!(out, "Sender:     {}", s.sender);
    let _ = writeln!(
        out,
        "Body:       {}{}",
        d.body,
        if d.smtputf8 { ", SMTPUTF8" } else { "" }
    );
    if let Some(t) = d.delay_warned {
        let _ = writeln!(out, "Delay warning sent: {}", when(t));
    }
    let _ = writeln!(out, "Recipients:");
    for (i, r) in s.recipients.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}  {}, {} attempt(s){}{}",
            r.address,
            r.status,
            r.attempts,
            if d.notified.get(i).copied().unwrap_or(false) {
                ", sender notified"
            } else {
                ""
            },
            d.dsn
                .get(i)
                .and_then(|p| p.as_ref())
                .map(|p| format!(", {p}"))
                .unwrap_or_default()
        );
        if let Some(t) = r.last_attempt {
            let _ = writeln!(out, "      last attempt: {}", when(t));
        }
        if let Some(t) = r.next_attempt.filter(|_| r.status == "deferred") {
            let _ = writeln!(
                out,
                "      next attempt: {}",
                postern_queue::rfc5322_date(t)
            );
        }
        if !r.reason.is_empty() {
            let _ = writeln!(out, "      result: {}", r.reason);
        }
    }
    out.push_str(&d.digest.text());
    let _ = writeln!(out, "Headers:");
    for line in d.headers.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn size(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_well() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(3 * 3600 + 7 * 60), "3h07m");
        assert_eq!(age(2 * 86_400 + 3600), "2d01h");
        assert_eq!(size(10), "10 B");
        assert_eq!(size(2048), "2.0 KiB");
    }

    #[test]
    fn empty_listing_says_so() {
        assert_eq!(list_text(&[], 0), "The queue is empty.\n");
    }
}
