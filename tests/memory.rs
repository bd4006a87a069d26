//! The daemon's memory stays bounded under abusive clients (measured on the real binary).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use postern_test_support::{SmtpClient, rss_kib};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_clients_do_not_grow_memory_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.mem.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\nmax_message_size = \"1MiB\"\nmax_connections_per_ip = 1000\n\
             [relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next_line().await.unwrap().expect("postern exited");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let before = rss_kib(pid);
    // 100 clients at once, each: a 1 MB command line, then DATA far past the size limit.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        tasks.push(tokio::spawn(async move {
            let mut c = SmtpClient::connect_greeted(addr).await;
            let junk = vec![b'x'; 1 << 20];
            let _ = c.send_raw(&junk).await;
            let _ = c.send_raw(b"\r\n").await;
            let _ = c.try_reply().await;
            // EHLO is the last command of its group (RFC 2920 §3.1); the rest is pipelined.
            let _ = c.send_raw(b"EHLO mem.test\r\n").await;
            let _ = c.try_reply().await;
            let _ = c
                .send_raw(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<u@local.test>\r\nDATA\r\n")
                .await;
            for _ in 0..3 {
                let _ = c.try_reply().await;
            }
            let line = [vec![b'y'; 998], b"\r\n".to_vec()].concat();
            for _ in 0..3000 {
                if c.send_raw(&line).await.is_err() {
                    break;
                }
            }
        }));
    }
    let mut peak = 0;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        peak = peak.max(rss_kib(pid));
    }
    let after = rss_kib(pid);
    println!(
        "memory: before {before} KiB, peak {peak} KiB, after {after} KiB (100 abusive clients, 1 MB lines, 3 MB past a 1 MiB limit)"
    );
    // 100 MB would be 1 MB per client: buffers are bounded far below that.
    assert!(
        peak < before + 100 * 1024,
        "peak {peak} KiB from {before} KiB"
    );
    assert!(
        std::fs::read_dir(dir.path().join("state/queue/active"))
            .unwrap()
            .next()
            .is_none(),
        "nothing queued"
    );
    child.start_kill().unwrap();
}
