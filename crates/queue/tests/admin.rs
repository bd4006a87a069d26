//! Operator commands in the scheduler: a command for a message being delivered waits
//! for that attempt, then applies; held messages are never delivered; stop waits for
//! attempts in progress.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postern_queue::admin::Place;
use postern_queue::agent_future::BoxFuture;
use postern_queue::{
    AdminOp, DeliveryAgent, DeliveryOutcome, Envelope, Outcome, Queue, QueueConfig, QueueId,
    QueuedMessage, Spool,
};
use postern_smtp::address::{ReversePath, parse_mailbox};
use postern_smtp::command::BodyType;
use tokio::sync::Semaphore;

/// Defers every recipient, but only once a permit is available: the test decides when
/// an attempt ends.
struct Gate {
    permits: Arc<Semaphore>,
    attempts: AtomicUsize,
}

impl DeliveryAgent for Gate {
    fn deliver<'a>(
        &'a self,
        _msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> BoxFuture<'a, Vec<DeliveryOutcome>> {
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            self.permits.acquire().await.unwrap().forget();
            rcpts
                .iter()
                .map(|_| DeliveryOutcome {
                    relay: "gate".into(),
                    outcome: Outcome::Temporary(postern_queue::Detail::local("4.3.0", "not now")),
                })
                .collect()
        })
    }
}

fn envelope() -> Envelope {
    Envelope {
        id: QueueId::generate(),
        arrived: postern_queue::unix_now(),
        client_ip: None,
        helo: "client.test".into(),
        sender: ReversePath::Address(parse_mailbox("alice@sender.test").unwrap()),
        recipients: vec![parse_mailbox("bob@remote.test").unwrap().into()],
        body: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        sender_tls: Default::default(),
    }
}

async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out");
}

#[tokio::test]
async fn hold_during_an_attempt_applies_when_it_ends_and_nothing_more_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let gate = Arc::new(Gate {
        permits: Arc::new(Semaphore::new(0)),
        attempts: AtomicUsize::new(0),
    });
    let config = QueueConfig {
        retry: vec!["1s".parse().unwrap()],
        ..QueueConfig::default()
    };
    let q = Queue::start_with(spool.clone(), config, gate.clone(), "mx.test").unwrap();
    let mut inc = q.begin(envelope()).await.unwrap();
    inc.write(b"Subject: x\r\n\r\nx\r\n").await.unwrap();
    let id = inc.commit().await.unwrap().envelope.id;
    until(|| gate.attempts.load(Ordering::SeqCst) == 1).await;

    // The attempt is in progress: HOLD waits for it.
    let q2 = q.clone();
    let hold =
        tokio::spawn(async move { q2.admin(AdminOp::Hold(id)).await.map_err(|e| e.to_string()) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!hold.is_finished(), "HOLD answered while the attempt ran");
    assert_eq!(spool.locate(id), Some(Place::Active));
    gate.permits.add_permits(1);
    let r = hold.await.unwrap();
    assert_eq!(r, Ok(format!("{id}: on hold")));
    assert_eq!(spool.locate(id), Some(Place::Hold));
    let state = std::fs::read_to_string(spool.hold_dir().join(format!("{id}.state"))).unwrap();
    assert!(state.contains(" deferred 1 "), "{state}");

    // Retries are 1 s apart, a flush asks for one now: a held message gets neither.
    gate.permits.add_permits(10);
    q.flush();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gate.attempts.load(Ordering::SeqCst), 1);

    // Released, it is tried at once; the scheduler's answer to an unknown ID is an error.
    assert!(q.admin(AdminOp::Release(id)).await.is_ok());
    until(|| gate.attempts.load(Ordering::SeqCst) == 2).await;
    let unknown = QueueId::generate();
    assert!(
        q.admin(AdminOp::Hold(unknown))
            .await
            .unwrap_err()
            .to_string()
            .contains("no such message")
    );

    // Stop waits for the attempt in progress (none now) and returns.
    assert!(q.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn stop_waits_for_the_attempt_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let gate = Arc::new(Gate {
        permits: Arc::new(Semaphore::new(0)),
        attempts: AtomicUsize::new(0),
    });
    let q = Queue::start_with(
        spool.clone(),
        QueueConfig::default(),
        gate.clone(),
        "mx.test",
    )
    .unwrap();
    let mut inc = q.begin(envelope()).await.unwrap();
    inc.write(b"Subject: x\r\n\r\nx\r\n").await.unwrap();
    let id = inc.commit().await.unwrap().envelope.id;
    until(|| gate.attempts.load(Ordering::SeqCst) == 1).await;
    assert!(
        !q.shutdown(Duration::from_millis(200)).await,
        "stop did not wait"
    );
    let q2 = q.clone();
    let stop = tokio::spawn(async move { q2.shutdown(Duration::from_secs(5)).await });
    gate.permits.add_permits(1);
    assert!(stop.await.unwrap());
    // The outcome was recorded before the stop completed.
    let state = std::fs::read_to_string(spool.active_dir().join(format!("{id}.state"))).unwrap();
    assert!(state.contains(" deferred 1 "), "{state}");
}
