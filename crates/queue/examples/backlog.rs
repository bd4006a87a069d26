//! Write a synthetic backlog into a queue directory whose daemon is stopped:
//!
//! ```text
//! cargo run --release -p postern-queue --example backlog -- QUEUE_DIR COUNT RECIPIENT [SIZE] [--deferred SECONDS]
//! ```
//!
//! `QUEUE_DIR` is `[server] queue_dir` (default `state_dir/queue`); `RECIPIENT` should
//! route to an unreachable destination. With `--deferred S` the messages count as tried
//! once and are due again in S seconds; without it they are due at once.

use std::process::ExitCode;

use postern_queue::synthetic::{Backlog, fill};
use postern_queue::{Spool, SpoolLock};
use postern_smtp::address::{ReversePath, parse_mailbox};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: backlog QUEUE_DIR COUNT RECIPIENT [SIZE] [--deferred SECONDS]";
    let (Some(dir), Some(count), Some(rcpt)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let deferred = args
        .iter()
        .position(|a| a == "--deferred")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<u64>().ok());
    let size = args
        .get(3)
        .filter(|a| !a.starts_with("--"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5 * 1024);
    let (Ok(count), Ok(recipient)) = (count.parse::<usize>(), parse_mailbox(rcpt)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let dir = std::path::Path::new(dir);
    let _lock = match SpoolLock::acquire_for_daemon(dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("backlog: {e}");
            return ExitCode::FAILURE;
        }
    };
    let spool = match Spool::open(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backlog: cannot open the queue {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let b = Backlog {
        count,
        sender: ReversePath::Address(
            parse_mailbox("backlog@backlog.invalid").unwrap_or_else(|_| recipient.clone()),
        ),
        recipient,
        size,
        deferred_until: deferred.map(|s| postern_queue::unix_now() + s),
    };
    let t = std::time::Instant::now();
    match fill(&spool, &b) {
        Ok(ids) => {
            println!(
                "{} messages written to {} in {:.1?}",
                ids.len(),
                spool.active_dir().display(),
                t.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("backlog: {e}");
            ExitCode::FAILURE
        }
    }
}
