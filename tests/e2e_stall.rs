//! Delivery stalls (#11 item 2): a destination whose MX hosts never resolve must not hold a
//! delivery slot. The real binary, one delivery slot, a loopback DNS server whose answers
//! for 20 MX host names never come, and a fake next hop for the domains that work.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_test_support::SmtpClient;
use postern_test_support::dns::TestDns;
use postern_test_support::fake_smtp::{FakeOpts, FakeSmtp};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `postern serve`; its log lines are collected in the returned list.
async fn spawn(config: &Path) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        panic!("postern exited before listening");
    })
    .await
    .expect("postern did not start listening");
    let keep = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            keep.lock().unwrap().push(line);
        }
    });
    (child, addr, log)
}

async fn send(addr: SocketAddr, to: &str, subject: &str) {
    let mut c = SmtpClient::connect_greeted(addr).await;
    c.cmd("EHLO client.test").await;
    let msg =
        format!("From: alice@sender.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n");
    let r = c
        .send_mail("alice@sender.test", &[to], msg.as_bytes())
        .await;
    assert_eq!(r.code, 250, "{r:?}");
}

/// The first log line containing every one of `needles`, waiting up to `within`.
async fn log_line(log: &Mutex<Vec<String>>, needles: &[&str], within: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(l) = log
            .lock()
            .unwrap()
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return Some(l.clone());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

async fn delivered(next: &FakeSmtp, subject: &str, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        let needle = format!("Subject: {subject}");
        if next
            .messages()
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains(&needle))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_mx_hosts_do_not_hold_the_delivery_slot() {
    let dns = TestDns::start().await;
    // stall.test: 20 MX hosts whose address queries are never answered.
    for i in 0..20 {
        let host = format!("mx{i:02}.stall.test");
        dns.add_mx("stall.test", 10, &host);
        dns.unresponsive(&host);
    }
    // mixed.test: four silent hosts before one that works (needs concurrent look-ups:
    // one after the other they would take 4 x 2 s, past the 3 s deadline).
    for i in 0..4 {
        let host = format!("mx{i}.mixed.test");
        dns.add_mx("mixed.test", 10, &host);
        dns.unresponsive(&host);
    }
    dns.add_mx("mixed.test", 20, "mx.good.test");
    dns.add_mx("good.test", 10, "mx.good.test");
    dns.add_a("mx.good.test", "127.0.0.1".parse().unwrap());
    let next = FakeSmtp::start(FakeOpts::default()).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    // dnssec = "off": hickory's resolver, whose per-question retries outlast
    // resolve_timeout here (with "trust-ad" each question ends after timeout × attempts,
    // 2 s, and the deferral names the DNS failure instead of resolve_timeout).
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
             [relay]\nlocal_domains = [\"sender.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
             [[route]]\ndomain = \"sender.test\"\nnext_hop = \"maildir:mail\"\n\
             [resolver]\nnameservers = [\"{dns}\"]\ntimeout = \"1s\"\ndnssec = \"off\"\n\
             [queue]\nretry = [\"1h\"]\ndelivery_concurrency = 1\n\
             [outbound]\nport = {port}\nconnect_timeout = \"2s\"\nresolve_timeout = \"3s\"\n",
            state = dir.path().join("state").display(),
            dns = dns.addr(),
            port = next.addr.port(),
        ),
    )
    .unwrap();
    let (_child, addr, log) = spawn(&config).await;

    let start = Instant::now();
    send(addr, "bob@stall.test", "stalled").await;
    send(addr, "carol@good.test", "good").await;
    send(addr, "dave@mixed.test", "mixed").await;

    let deferred = log_line(
        &log,
        &["to=<bob@stall.test>", "status=deferred", "resolve_timeout"],
        Duration::from_secs(15),
    )
    .await;
    let took = start.elapsed();
    let deferred = deferred.unwrap_or_else(|| {
        panic!(
            "no deferral for stall.test within 15s; log:\n{}",
            log.lock().unwrap().join("\n")
        )
    });
    assert!(deferred.contains("4.4.3"), "{deferred}");
    // resolve_timeout is 3 s; allow for a slow test machine, far below the ~40 s of
    // looking the hosts up one after the other.
    assert!(
        took < Duration::from_secs(10),
        "the stalled attempt took {took:?}"
    );

    assert!(
        delivered(&next, "good", Duration::from_secs(10)).await,
        "the message to good.test was not delivered promptly behind the stalled one; log:\n{}",
        log.lock().unwrap().join("\n")
    );
    assert!(
        delivered(&next, "mixed", Duration::from_secs(10)).await,
        "mixed.test was not delivered through its one resolvable MX host; log:\n{}",
        log.lock().unwrap().join("\n")
    );
    // At most max_mx_hosts (default 5) of the 20 names were looked up.
    let asked = (0..20)
        .filter(|i| dns.query_count(&format!("mx{i:02}.stall.test")) > 0)
        .count();
    assert!(
        (1..=5).contains(&asked),
        "{asked} MX host names were looked up"
    );
}

/// A server that accepts connections and never says a word (a tarpit).
async fn tarpit() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tarpit_is_cut_off_at_attempt_timeout() {
    let dns = TestDns::start().await;
    dns.add_mx("tarpit.test", 10, "mx.tarpit.test");
    dns.add_a("mx.tarpit.test", "127.0.0.1".parse().unwrap());
    let (pit, _task) = tarpit().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    // greeting_timeout alone would hold the slot for 5 minutes.
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.sender.test\"\nstate_dir = \"{state}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
             [relay]\nlocal_domains = [\"sender.test\"]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
             [[route]]\ndomain = \"sender.test\"\nnext_hop = \"maildir:mail\"\n\
             [resolver]\nnameservers = [\"{dns}\"]\ntimeout = \"1s\"\n\
             [queue]\nretry = [\"1h\"]\n\
             [outbound]\nport = {port}\ngreeting_timeout = \"5m\"\n\
             resolve_timeout = \"1s\"\nattempt_timeout = \"2s\"\n",
            state = dir.path().join("state").display(),
            dns = dns.addr(),
            port = pit.port(),
        ),
    )
    .unwrap();
    let (_child, addr, log) = spawn(&config).await;
    let start = Instant::now();
    send(addr, "erin@tarpit.test", "tarpit").await;
    let line = log_line(
        &log,
        &[
            "to=<erin@tarpit.test>",
            "status=deferred",
            "attempt_timeout (2s)",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        line.as_deref().is_some_and(|l| l.contains("4.4.2")),
        "no 4.4.2 deferral at attempt_timeout; log:\n{}",
        log.lock().unwrap().join("\n")
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}
