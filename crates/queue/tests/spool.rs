//! The spool's durability contract, checked against real files.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postern_queue::{
    DeliveryAgent, DeliveryOutcome, Envelope, Outcome, Queue, QueueConfig, QueueId, QueuedMessage,
    RcptStatus, Spool,
};
use postern_smtp::address::{ReversePath, parse_mailbox};
use postern_smtp::command::BodyType;

fn envelope(rcpts: &[&str]) -> Envelope {
    Envelope {
        id: QueueId::generate(),
        arrived: postern_queue::unix_now(),
        client_ip: Some("127.0.0.1".parse().unwrap()),
        helo: "client.test".into(),
        sender: ReversePath::Address(parse_mailbox("alice@sender.test").unwrap()),
        recipients: rcpts
            .iter()
            .map(|r| parse_mailbox(r).unwrap().into())
            .collect(),
        body: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        sender_tls: Default::default(),
    }
}

#[tokio::test]
async fn commit_makes_a_complete_readable_record() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let mut inc = spool
        .begin(envelope(&["bob@local.test", "carol@local.test"]))
        .await
        .unwrap();
    inc.write(b"Subject: hi\r\n\r\n").await.unwrap();
    let big = vec![b'x'; 300_000];
    inc.write(&big).await.unwrap();
    inc.write(b"\r\n").await.unwrap();
    let m = inc.commit().await.unwrap();
    assert!(
        fs::read_dir(spool.active_dir().parent().unwrap().join("incoming"))
            .unwrap()
            .next()
            .is_none()
    );
    let back = spool.load(&m.path).unwrap();
    assert_eq!(back.envelope.recipients, m.envelope.recipients);
    let body = back.read_body().unwrap();
    assert!(body.starts_with(b"Subject: hi\r\n\r\nxxx"));
    assert_eq!(body.len(), 15 + 300_000 + 2);
    let text = fs::read_to_string(&m.path).unwrap_or_default();
    assert!(text.starts_with("POSTERN-QUEUE 1\n"));
    assert!(text.ends_with(&format!("\r\nPOSTERN-END {}\n", body.len())));
}

#[tokio::test]
async fn an_uncommitted_message_never_becomes_queued() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let mut inc = spool.begin(envelope(&["bob@local.test"])).await.unwrap();
    inc.write(b"Subject: partial\r\n").await.unwrap();
    // More than the write buffer, so part of it is on disk when the "crash" comes.
    inc.write(&vec![b'x'; 200 << 10]).await.unwrap();
    // Simulate a crash mid-DATA: the file stays in incoming/ (forget skips Drop).
    std::mem::forget(inc);
    assert_eq!(
        fs::read_dir(dir.path().join("incoming")).unwrap().count(),
        1
    );
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(
        fs::read_dir(dir.path().join("incoming")).unwrap().count(),
        0
    );
    assert!(spool.load_all().unwrap().is_empty());
    // A dropped (aborted) one is removed at once.
    let spool = Arc::new(spool);
    let inc = spool.begin(envelope(&["bob@local.test"])).await.unwrap();
    drop(inc);
    assert_eq!(
        fs::read_dir(dir.path().join("incoming")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn truncated_and_garbage_files_are_quarantined_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let mut inc = spool.begin(envelope(&["bob@local.test"])).await.unwrap();
    inc.write(b"Subject: a\r\n\r\nbody\r\n").await.unwrap();
    let good = inc.commit().await.unwrap();
    let bytes = fs::read(&good.path).unwrap();
    // Every truncation of a good file is detected.
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        let p = spool
            .active_dir()
            .join(format!("{}.msg", QueueId::generate()));
        fs::write(&p, &bytes[..cut]).unwrap();
        assert!(spool.load(&p).is_err(), "cut at {cut} accepted");
        fs::remove_file(&p).unwrap();
    }
    let bad = spool
        .active_dir()
        .join(format!("{}.msg", QueueId::generate()));
    fs::write(&bad, b"\x00\xffgarbage").unwrap();
    fs::write(
        spool.active_dir().join("0000000000000000AA.state"),
        b"orphan",
    )
    .unwrap();
    let loaded = spool.load_all().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].envelope.id, good.envelope.id);
    assert!(spool.corrupt_dir().join(bad.file_name().unwrap()).exists());
    assert!(!spool.active_dir().join("0000000000000000AA.state").exists());
}

/// Fails every recipient temporarily `fail_times` times, then delivers; permanent for
/// addresses starting with "bad".
struct FlakyAgent {
    calls: AtomicUsize,
    fail_times: usize,
    delivered: std::sync::Mutex<Vec<String>>,
}

impl DeliveryAgent for FlakyAgent {
    fn deliver<'a>(
        &'a self,
        msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> postern_queue::agent_future::BoxFuture<'a, Vec<DeliveryOutcome>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            rcpts
                .iter()
                .map(|&i| {
                    let a = msg.envelope.recipients[i].to_string();
                    let outcome = if a.starts_with("bad") {
                        Outcome::Permanent(postern_queue::Detail::local("5.1.1", "no such user"))
                    } else if n < self.fail_times {
                        Outcome::Temporary(postern_queue::Detail::local("4.3.0", "try later"))
                    } else {
                        self.delivered.lock().unwrap().push(a);
                        Outcome::Delivered("250 ok".into())
                    };
                    DeliveryOutcome {
                        relay: "test".into(),
                        outcome,
                    }
                })
                .collect()
        })
    }
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in 5s");
}

#[tokio::test]
async fn retries_then_delivers_and_bounces_failures_to_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let agent = Arc::new(FlakyAgent {
        calls: AtomicUsize::new(0),
        fail_times: 1,
        delivered: Default::default(),
    });
    let config = QueueConfig {
        retry: vec!["1s".parse().unwrap()],
        ..QueueConfig::default()
    };
    let queue = Queue::start_with(spool.clone(), config, agent.clone(), "mx.test").unwrap();
    let mut inc = queue
        .begin(envelope(&["good@local.test", "bad@local.test"]))
        .await
        .unwrap();
    inc.write(b"Subject: a\r\n\r\nbody\r\n").await.unwrap();
    let m = inc.commit().await.unwrap();
    // First attempt: good deferred, bad failed; state persisted.
    wait_for(|| m.path.with_extension("state").exists()).await;
    let st = spool.load(&m.path).unwrap().state;
    assert_eq!(st[0].status, RcptStatus::Deferred);
    assert_eq!(st[1].status, RcptStatus::Failed);
    assert!(st[0].next_attempt.is_some());
    // The failure was reported at once: the state says so.
    let state = fs::read_to_string(m.path.with_extension("state")).unwrap();
    assert!(state.contains("1 failed 1 "), "{state}");
    assert!(state.contains("\nnotified: 1\n"), "{state}");
    // Second attempt (about a second later) delivers the good one only, once, and the
    // bounce (to alice@sender.test, whose address the agent delivers) goes out too.
    wait_for(|| !m.path.exists()).await;
    wait_for(|| agent.delivered.lock().unwrap().len() == 2).await;
    let mut delivered = agent.delivered.lock().unwrap().clone();
    delivered.sort();
    assert_eq!(delivered, ["alice@sender.test", "good@local.test"]);
    // Reported, so not kept: failed/ is for what the sender could not be told.
    assert!(fs::read_dir(spool.failed_dir()).unwrap().next().is_none());
}

#[tokio::test]
async fn a_restart_picks_up_queued_mail() {
    let dir = tempfile::tempdir().unwrap();
    let path;
    {
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let mut inc = spool.begin(envelope(&["x@local.test"])).await.unwrap();
        inc.write(b"Subject: a\r\n\r\nbody\r\n").await.unwrap();
        path = inc.commit().await.unwrap().path;
    }
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let agent = Arc::new(FlakyAgent {
        calls: AtomicUsize::new(0),
        fail_times: 0,
        delivered: Default::default(),
    });
    // The old entry point still works (host name "localhost").
    let _queue = Queue::start(spool, QueueConfig::default(), agent.clone()).unwrap();
    wait_for(|| !path.exists()).await;
    assert_eq!(agent.delivered.lock().unwrap().len(), 1);
}

/// #15: a delivered message's file is emptied into `spare/` and holds the next message;
/// the reused file reads back complete, with nothing of the message before it.
#[tokio::test]
async fn a_delivered_messages_file_is_reused_for_the_next_one() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let mut inc = spool.begin(envelope(&["bob@local.test"])).await.unwrap();
    inc.write(b"Subject: first\r\n\r\n").await.unwrap();
    inc.write(&vec![b'1'; 200_000]).await.unwrap();
    let mut first = inc.commit().await.unwrap();
    let ino = fs::metadata(&first.path).unwrap().ino();
    first.state[0].status = RcptStatus::Delivered;
    spool.finish(&first).unwrap();
    assert!(!first.path.exists());
    let spare = dir.path().join("spare");
    let kept: Vec<_> = fs::read_dir(&spare).unwrap().collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].as_ref().unwrap().metadata().unwrap().len(), 0);

    let mut inc = spool.begin(envelope(&["carol@local.test"])).await.unwrap();
    inc.write(b"Subject: second\r\n\r\nshort\r\n")
        .await
        .unwrap();
    let second = inc.commit().await.unwrap();
    assert_eq!(
        fs::metadata(&second.path).unwrap().ino(),
        ino,
        "the same file"
    );
    assert_eq!(fs::read_dir(&spare).unwrap().count(), 0);
    let back = spool.load(&second.path).unwrap();
    assert_eq!(
        back.read_body().unwrap(),
        b"Subject: second\r\n\r\nshort\r\n"
    );
    let raw = fs::read(&second.path).unwrap();
    assert!(
        !raw.windows(32).any(|w| w == [b'1'; 32]),
        "nothing of the first message is left in the file"
    );

    // A restart empties spare/ and still reads the queue.
    spool
        .finish(&{
            let mut m = back.clone();
            m.state[0].status = RcptStatus::Delivered;
            m
        })
        .unwrap();
    assert_eq!(fs::read_dir(&spare).unwrap().count(), 1);
    drop(spool);
    let again = Spool::open(dir.path()).unwrap();
    assert_eq!(fs::read_dir(&spare).unwrap().count(), 0);
    assert!(again.load_all().unwrap().is_empty());
}
