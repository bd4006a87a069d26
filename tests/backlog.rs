//! A large queue for an unreachable destination (issue #15): the daemon (the real
//! binary) starts delivering at once, fresh mail is delivered within seconds while the
//! backlog is retried, and resident memory stays within a bound over a daemon with an
//! empty queue, whatever the queue size. The backlog is written straight into the spool
//! with `postern_queue::synthetic` (the same as `cargo run -p postern-queue --example
//! backlog`).
//!
//! The normal run uses 30,000 messages; `cargo test --test backlog -- --ignored` runs
//! the 200,000-message variant.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use postern_test_support::{SmtpClient, rss_kib};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

async fn spawn(config: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["serve", "--config"])
        .arg(config)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("postern exited");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
            }
        }
    })
    .await
    .expect("postern did not start listening");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.backlog.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
             [relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n\
             [[route]]\ndomain = \"unreachable.test\"\nnext_hop = \"smtp:[127.0.0.1]:9\"\n[resolver]\nnameservers = [\"127.0.0.1:1\"]\n\
             [queue]\nactive_limit = 2000\nmin_free_space = \"1MiB\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    config
}

/// Peak RSS (KiB) of a daemon over `for`, sampled every 100 ms.
async fn peak_rss(pid: u32, during: Duration) -> u64 {
    let end = Instant::now() + during;
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

async fn run(count: usize, bound_mib: u64) {
    // The same daemon on an empty queue: the baseline.
    let empty = tempfile::tempdir().unwrap();
    let (base_child, base_addr) = spawn(&config(empty.path())).await;
    let mut c = SmtpClient::connect_greeted(base_addr).await;
    c.cmd("EHLO client.test").await;
    let baseline = peak_rss(base_child.id().unwrap(), Duration::from_secs(2)).await;
    drop(c);
    drop(base_child);

    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let state = dir.path().join("state");
    let t = Instant::now();
    let spool = postern_queue::Spool::open(&state.join("queue")).unwrap();
    postern_queue::synthetic::fill(
        &spool,
        &postern_queue::synthetic::Backlog {
            count,
            sender: postern_smtp::address::ReversePath::Address(
                postern_smtp::address::parse_mailbox("old@client.test").unwrap(),
            ),
            recipient: postern_smtp::address::parse_mailbox("far@unreachable.test").unwrap(),
            size: 5 * 1024,
            // Due at once: the daemon retries the whole backlog while the test runs.
            deferred_until: None,
        },
    )
    .unwrap();
    drop(spool);
    let written = t.elapsed();

    let started = Instant::now();
    let (child, addr) = spawn(&config).await;
    let pid = child.id().unwrap();
    let listening = started.elapsed();
    // Fresh mail while the backlog is being retried: delivered within 5 s.
    let sent = Instant::now();
    let mut c = SmtpClient::connect_greeted(addr).await;
    c.cmd("EHLO client.test").await;
    let r = c
        .send_mail(
            "a@client.test",
            &["bob@local.test"],
            b"Subject: fresh\r\n\r\nfresh mail\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.last());
    let maildir = state.join("mail/bob/new");
    let mut delivered = None;
    while sent.elapsed() < Duration::from_secs(10) {
        if std::fs::read_dir(&maildir).is_ok_and(|mut d| d.next().is_some()) {
            delivered = Some(sent.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let peak = peak_rss(pid, Duration::from_secs(6)).await;
    let deferred = std::fs::read_dir(state.join("queue/active"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".state"))
        .count();
    println!(
        "backlog {count}: written in {written:.1?}; listening after {listening:.1?}; fresh mail delivered after {delivered:?}; \
         {deferred} backlog messages tried so far; RSS baseline {} MiB, peak {} MiB",
        baseline / 1024,
        peak / 1024
    );
    let delivered = delivered.expect("fresh mail not delivered within 10 s");
    assert!(
        delivered < Duration::from_secs(5),
        "fresh mail took {delivered:?}"
    );
    assert!(deferred > 0, "the backlog is being worked on");
    assert!(
        peak < baseline + bound_mib * 1024,
        "RSS {} MiB is more than {bound_mib} MiB over the empty-queue baseline ({} MiB)",
        peak / 1024,
        baseline / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30000_message_backlog_keeps_memory_bounded_and_fresh_mail_flowing() {
    run(30_000, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: 200,000 messages (about 1 GB on disk); run with --ignored"]
async fn a_200000_message_backlog_keeps_memory_bounded() {
    run(200_000, 40).await;
}
