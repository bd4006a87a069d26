//! `loadgen`: the load generator used by tests/bench/run.sh, the same for Postern and Postfix.
//!
//! - `loadgen smtp ADDR CONCURRENCY MESSAGES SIZE [tls]`: CONCURRENCY sessions send MESSAGES
//!   messages of SIZE bytes in total (one message per transaction, sessions kept open), with
//!   STARTTLS when `tls` is given. Prints one JSON line: messages, seconds, rate, and the
//!   latency from the end of DATA to the 250 (p50, p99, in ms).
//! - `loadgen idle ADDR CONNECTIONS SECONDS`: opens CONNECTIONS sessions (greeting read, EHLO
//!   sent) and holds them for SECONDS; prints how many were established.
//! - `loadgen data ADDR CONNECTIONS SECONDS`: the same, but each session is inside DATA
//!   with 1 KiB of content sent and the rest outstanding.
//! - `loadgen fsync DIR COUNT`: writes COUNT 4 KiB files with fsync each (plus a directory
//!   fsync), and prints the fsync rate: the physical limit for one-fsync-per-message servers.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postern_test_support::SmtpClient;

fn usage() -> ! {
    eprintln!(
        "usage: loadgen smtp ADDR CONCURRENCY MESSAGES SIZE [tls] | idle ADDR CONNECTIONS SECONDS | data ADDR CONNECTIONS SECONDS | fsync DIR COUNT"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("smtp") if args.len() >= 5 => {
            let addr: SocketAddr = args[1].parse().unwrap_or_else(|_| usage());
            let conc: usize = args[2].parse().unwrap_or_else(|_| usage());
            let n: usize = args[3].parse().unwrap_or_else(|_| usage());
            let size: usize = args[4].parse().unwrap_or_else(|_| usage());
            let tls = args.get(5).is_some_and(|a| a == "tls");
            rt.block_on(smtp(addr, conc, n, size, tls));
        }
        Some("idle") if args.len() == 4 => {
            let addr: SocketAddr = args[1].parse().unwrap_or_else(|_| usage());
            let n: usize = args[2].parse().unwrap_or_else(|_| usage());
            let secs: u64 = args[3].parse().unwrap_or_else(|_| usage());
            rt.block_on(idle(addr, n, secs));
        }
        Some("data") if args.len() == 4 => {
            let addr: SocketAddr = args[1].parse().unwrap_or_else(|_| usage());
            let n: usize = args[2].parse().unwrap_or_else(|_| usage());
            let secs: u64 = args[3].parse().unwrap_or_else(|_| usage());
            rt.block_on(in_data(addr, n, secs));
        }
        Some("fsync") if args.len() == 3 => {
            fsync(&args[1], args[2].parse().unwrap_or_else(|_| usage()))
        }
        _ => usage(),
    }
}

fn message(size: usize, n: usize) -> Vec<u8> {
    let mut m =
        format!("From: load@bench.test\r\nTo: sink@bench.test\r\nSubject: load {n}\r\n\r\n")
            .into_bytes();
    let line =
        b"The quick brown fox jumps over the lazy dog, again and again, for the benchmark.\r\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line);
    }
    m
}

async fn smtp(addr: SocketAddr, conc: usize, n: usize, size: usize, tls: bool) {
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (next, failures) = (next.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut c = SmtpClient::connect_greeted(addr).await;
            c.timeout = Duration::from_secs(60);
            c.cmd("EHLO loadgen.bench.test").await;
            if tls {
                let (cfg, _) = postern_test_support::tls::client_config(None);
                c.starttls(cfg).await;
                c.cmd("EHLO loadgen.bench.test").await;
            }
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                let body = message(size, i);
                if c.cmd("MAIL FROM:<load@bench.test>").await.code != 250
                    || c.cmd("RCPT TO:<sink@bench.test>").await.code != 250
                {
                    failures.fetch_add(1, Ordering::Relaxed);
                    c.cmd("RSET").await;
                    continue;
                }
                if c.cmd("DATA").await.code != 354 {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                c.send(&body).await;
                let t = Instant::now();
                c.send(b".\r\n").await;
                let r = c.reply().await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if r.code != 250 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = c.cmd("QUIT").await;
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{{\"messages\":{n},\"failures\":{},\"seconds\":{secs:.3},\"rate\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        failures.load(Ordering::Relaxed),
        n as f64 / secs,
        pct(0.5),
        pct(0.99)
    );
}

async fn idle(addr: SocketAddr, n: usize, secs: u64) {
    let mut conns = Vec::new();
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(10), async {
            let mut c = SmtpClient::connect(addr).await;
            c.timeout = Duration::from_secs(10);
            c.try_reply().await.ok()?;
            c.send(b"EHLO idle.bench.test\r\n").await;
            c.try_reply().await.ok()?;
            Some(c)
        })
        .await
        {
            Ok(Some(c)) => conns.push(c),
            _ => break,
        }
    }
    println!("{{\"established\":{}}}", conns.len());
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Sessions that are in the middle of DATA: 1 KiB of content sent, the rest never comes.
async fn in_data(addr: SocketAddr, n: usize, secs: u64) {
    let mut conns = Vec::new();
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(10), async {
            let mut c = SmtpClient::connect(addr).await;
            c.timeout = Duration::from_secs(10);
            c.try_reply().await.ok()?;
            // EHLO is the last command of its group (RFC 2920 §3.1); the rest is pipelined.
            c.send(b"EHLO data.bench.test\r\n").await;
            c.try_reply().await.ok()?;
            c.send(b"MAIL FROM:<load@bench.test>\r\nRCPT TO:<sink@bench.test>\r\nDATA\r\n")
                .await;
            for _ in 0..3 {
                c.try_reply().await.ok()?;
            }
            c.send(&message(1024, 0)).await;
            Some(c)
        })
        .await
        {
            Ok(Some(c)) => conns.push(c),
            _ => break,
        }
    }
    println!("{{\"established\":{}}}", conns.len());
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

fn fsync(dir: &str, count: usize) {
    use std::io::Write;
    let d = std::path::Path::new(dir);
    std::fs::create_dir_all(d).unwrap();
    let data = vec![b'x'; 4096];
    let start = Instant::now();
    for i in 0..count {
        let p = d.join(format!("fsync-{i}"));
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    for i in 0..count {
        let _ = std::fs::remove_file(d.join(format!("fsync-{i}")));
    }
    println!(
        "{{\"fsyncs\":{count},\"seconds\":{secs:.3},\"rate\":{:.1}}}",
        count as f64 / secs
    );
}
