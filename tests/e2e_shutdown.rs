//! Graceful stop: idle sessions are told 421 4.3.2, a message being received is finished
//! and acknowledged first, and nothing acknowledged is lost.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{SmtpClient, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn stop_finishes_data_and_says_421_to_idle_sessions() {
    let mut s = TestServer::start("", "").await;
    let mut idle = SmtpClient::connect_greeted(s.addr()).await;
    idle.cmd("EHLO idle.test").await;
    let mut busy = SmtpClient::connect_greeted(s.addr()).await;
    busy.cmd("EHLO busy.test").await;
    assert_eq!(busy.cmd("MAIL FROM:<a@sender.test>").await.code, 250);
    assert_eq!(busy.cmd("RCPT TO:<bob@local.test>").await.code, 250);
    assert_eq!(busy.cmd("DATA").await.code, 354);
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let running = s.running.take().unwrap();
    let stop = tokio::spawn(running.stop());
    let r = idle.reply().await;
    assert_eq!(r.last(), "421 4.3.2 Service shutting down, try again later");
    assert!(idle.is_closed().await);
    // New connections are no longer accepted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(s.addr()).await.is_err());

    busy.send(b"second half\r\n.\r\n").await;
    let r = busy.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(busy.reply().await.code, 421);
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("stop is bounded")
        .unwrap();
    // Acknowledged: delivered, or still queued on disk.
    let delivered = s.delivered("bob").len();
    assert_eq!(delivered + s.queued(), 1);
}
