//! Regression test for issue #11, item 2 (scheduler half): null-sender reports to
//! destinations that stall every attempt must not hold every delivery slot.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_queue::{
    DeliveryAgent, DeliveryOutcome, Envelope, Outcome, Queue, QueueConfig, QueueId, QueuedMessage,
    Recipient, Spool, unix_now,
};
use postern_smtp::address::{ReversePath, parse_mailbox};
use postern_smtp::command::BodyType;

/// Mail to `stall*` hangs (a destination whose MX names never resolve); the rest is
/// delivered at once.
#[derive(Default)]
struct Agent {
    delivered: Mutex<Vec<String>>,
}

impl DeliveryAgent for Agent {
    fn deliver<'a>(
        &'a self,
        msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> postern_queue::agent_future::BoxFuture<'a, Vec<DeliveryOutcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for &i in rcpts {
                let to = msg.envelope.recipients[i].to_string();
                if to.starts_with("stall") {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                self.delivered.lock().unwrap().push(to);
                out.push(DeliveryOutcome {
                    relay: "test".into(),
                    outcome: Outcome::Delivered("delivered to test".into()),
                });
            }
            out
        })
    }
}

fn envelope(sender: &str, to: &str) -> Envelope {
    Envelope {
        id: QueueId::generate(),
        arrived: unix_now(),
        client_ip: None,
        helo: "client.test".into(),
        sender: if sender.is_empty() {
            ReversePath::Null
        } else {
            ReversePath::Address(parse_mailbox(sender).unwrap())
        },
        recipients: vec![Recipient::new(parse_mailbox(to).unwrap())],
        body: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        sender_tls: Default::default(),
    }
}

async fn send(queue: &Queue, env: Envelope) {
    let mut inc = queue.begin(env).await.unwrap();
    inc.write(b"Subject: x\r\n\r\nx\r\n").await.unwrap();
    inc.commit().await.unwrap();
}

#[tokio::test]
async fn stalled_reports_do_not_starve_ordinary_mail() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let agent = Arc::new(Agent::default());
    let config = QueueConfig {
        delivery_concurrency: 4,
        ..QueueConfig::default()
    };
    let queue = Queue::start_with(spool, config, agent.clone(), "mx.test").unwrap();
    // Twenty reports to stalling destinations, queued first.
    for i in 0..20 {
        send(&queue, envelope("", &format!("stall{i}@never.test"))).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&queue, envelope("alice@sender.test", "bob@remote.test")).await;
    for _ in 0..200 {
        if agent
            .delivered
            .lock()
            .unwrap()
            .iter()
            .any(|t| t == "bob@remote.test")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the ordinary message waited behind stalled reports");
}

#[test]
fn report_share_defaults() {
    let c = |all: usize, set: Option<usize>| {
        QueueConfig {
            delivery_concurrency: all,
            report_concurrency: set,
            ..QueueConfig::default()
        }
        .report_slots()
    };
    assert_eq!(c(20, None), 5);
    assert_eq!(c(4, None), 1);
    assert_eq!(c(2, None), 1);
    assert_eq!(c(1, None), 1);
    assert_eq!(c(20, Some(19)), 19);
    assert_eq!(c(20, Some(50)), 20);
}
