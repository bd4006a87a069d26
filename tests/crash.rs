//! Crash safety of the real binary: `kill -9` while many clients send, restart, drain.
//! Every message that got a 250 must be delivered; nothing incomplete may be delivered.
//! The second test does it with a 50,000-message backlog on disk (deferred mail for an
//! unreachable destination, written with `postern_queue::synthetic`): after each kill
//! the schedule is rebuilt from the spool, fresh mail still gets through, and not one
//! backlog message is lost or damaged.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_test_support::SmtpClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Start the daemon; its address, and whether it rebuilt the queue schedule.
async fn spawn(config: &Path) -> (Child, SocketAddr, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut rebuilt = false;
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            rebuilt |= line.contains("queue schedule rebuilt from the spool");
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
            }
        }
        panic!("postern exited before listening");
    })
    .await
    .expect("postern did not start listening");
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr, rebuilt)
}

/// One client: sends numbered messages until the server goes away.
async fn client(addr: SocketAddr, next: Arc<Mutex<u32>>, acked: Arc<Mutex<BTreeSet<u32>>>) {
    let mut c = SmtpClient::connect(addr).await;
    c.timeout = Duration::from_secs(5);
    if c.try_reply().await.is_err() {
        return;
    }
    c.send(b"EHLO crash.test\r\n").await;
    if c.try_reply().await.is_err() {
        return;
    }
    loop {
        let n = {
            let mut g = next.lock().unwrap();
            *g += 1;
            *g
        };
        let body = format!(
            "Subject: msg-{n}\r\n\r\n{}\r\nEND-OF-MESSAGE {n}\r\n",
            "payload line\r\n".repeat(50)
        );
        let send = async {
            for cmd in [
                "MAIL FROM:<load@crash.test>".to_string(),
                "RCPT TO:<sink@local.test>".into(),
                "DATA".into(),
            ] {
                c.send(format!("{cmd}\r\n").as_bytes()).await;
                c.try_reply().await.ok()?;
            }
            c.send(body.as_bytes()).await;
            c.send(b".\r\n").await;
            c.try_reply().await.ok()
        };
        match send.await {
            Some(r) if r.code == 250 => {
                acked.lock().unwrap().insert(n);
            }
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_message() {
    crash_rounds(4, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_50000_message_backlog_loses_nothing() {
    crash_rounds(20, 50_000).await;
}

/// `rounds` kills under load, with `backlog` deferred messages queued beforehand.
async fn crash_rounds(rounds: u64, backlog: usize) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.crash.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
             [relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n\
             [[route]]\ndomain = \"unreachable.test\"\nnext_hop = \"smtp:[127.0.0.1]:9\"\n[resolver]\nnameservers = [\"127.0.0.1:1\"]\n",
            state.display()
        ),
    )
    .unwrap();
    let mut backlog_ids = Vec::new();
    if backlog > 0 {
        let t = std::time::Instant::now();
        let spool = postern_queue::Spool::open(&state.join("queue")).unwrap();
        backlog_ids = postern_queue::synthetic::fill(
            &spool,
            &postern_queue::synthetic::Backlog {
                count: backlog,
                sender: postern_smtp::address::ReversePath::Address(
                    postern_smtp::address::parse_mailbox("old@crash.test").unwrap(),
                ),
                recipient: postern_smtp::address::parse_mailbox("far@unreachable.test").unwrap(),
                size: 2048,
                deferred_until: Some(postern_queue::unix_now() + 3600),
            },
        )
        .unwrap();
        println!("backlog of {backlog} written in {:.1?}", t.elapsed());
    }
    let next = Arc::new(Mutex::new(0u32));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut rebuilds = 0;
    for round in 0..rounds {
        let (mut child, addr, rebuilt) = spawn(&config).await;
        rebuilds += usize::from(rebuilt);
        let clients: Vec<_> = (0..8)
            .map(|_| tokio::spawn(client(addr, next.clone(), acked.clone())))
            .collect();
        // Kill at a different moment each round, mid-traffic.
        tokio::time::sleep(Duration::from_millis(150 + (round % 5) * 170)).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        for c in clients {
            let _ = c.await;
        }
    }
    if backlog > 0 {
        assert_eq!(
            rebuilds, rounds as usize,
            "every start after a kill (or after the backlog was written) rebuilds the schedule"
        );
    }
    // Restart and let the queue drain (all but the backlog, which waits an hour).
    let (_child, _addr, rebuilt) = spawn(&config).await;
    assert!(rebuilt, "the start after a kill must rebuild the schedule");
    let active = state.join("queue/active");
    let msgs = || {
        std::fs::read_dir(&active)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".msg"))
            .count()
    };
    for _ in 0..1200 {
        if msgs() == backlog {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(msgs(), backlog, "queue did not drain down to the backlog");
    for id in &backlog_ids {
        assert!(
            active.join(format!("{id}.msg")).exists(),
            "backlog message {id} lost"
        );
    }
    let mut delivered: HashMap<u32, usize> = HashMap::new();
    for f in std::fs::read_dir(state.join("mail/sink/new"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(f.path()).unwrap();
        let n: u32 = text
            .split("Subject: msg-")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            text.ends_with(&format!("END-OF-MESSAGE {n}\r\n")),
            "message {n} delivered incomplete"
        );
        *delivered.entry(n).or_default() += 1;
    }
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<_> = acked
        .iter()
        .filter(|n| !delivered.contains_key(n))
        .collect();
    let duplicated = delivered.values().filter(|&&c| c > 1).count();
    let unacked_delivered = delivered.keys().filter(|n| !acked.contains(n)).count();
    println!(
        "crash test: acknowledged={}, delivered={}, duplicated={duplicated}, delivered-without-ack={unacked_delivered} (killed between fsync and the 250 reaching the client), lost={}",
        acked.len(),
        delivered.len(),
        lost.len()
    );
    assert!(
        acked.len() > 20,
        "too little traffic to mean anything: {}",
        acked.len()
    );
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert_eq!(
        std::fs::read_dir(state.join("queue/corrupt"))
            .unwrap()
            .count(),
        0
    );
}
