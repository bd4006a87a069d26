//! Retry, delay-warning and expiry schedules, on a fake clock: no test sleeps.

use std::sync::Arc;
use std::time::Duration;

use postern_smtp::address::{ReversePath, parse_mailbox};

use super::attempt;
use crate::agent::BoxFuture;
use crate::clock::{Clock, FakeClock};
use crate::notice::Notifier;
use crate::{
    DeliveryAgent, DeliveryOutcome, Detail, Envelope, Outcome, QueueConfig, QueuedMessage,
    RcptStatus, Spool,
};

/// Answers every recipient with the same outcome.
struct Always(Outcome);

impl DeliveryAgent for Always {
    fn deliver<'a>(
        &'a self,
        _msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> BoxFuture<'a, Vec<DeliveryOutcome>> {
        let o = self.0.clone();
        Box::pin(async move {
            rcpts
                .iter()
                .map(|_| DeliveryOutcome {
                    relay: "mx.test".into(),
                    outcome: o.clone(),
                })
                .collect()
        })
    }
}

fn config() -> QueueConfig {
    QueueConfig {
        retry: ["5m", "10m", "1h"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect(),
        max_age: "1d".parse().unwrap(),
        delay_warning: Some("4h".parse().unwrap()),
        ..QueueConfig::default()
    }
}

async fn queued(spool: &Arc<Spool>, arrived: u64) -> QueuedMessage {
    let env = Envelope {
        id: crate::QueueId::generate(),
        arrived,
        client_ip: None,
        helo: "client.test".into(),
        sender: ReversePath::Address(parse_mailbox("alice@sender.test").unwrap()),
        recipients: vec![parse_mailbox("bob@far.test").unwrap().into()],
        body: postern_smtp::command::BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        sender_tls: crate::SenderTls::Default,
    };
    let mut inc = spool.begin(env).await.unwrap();
    inc.write(b"Subject: hi\r\n\r\nhello\r\n").await.unwrap();
    inc.commit().await.unwrap()
}

#[tokio::test]
async fn retries_delay_warning_and_expiry_follow_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let t0 = 1_800_000_000;
    let clock = FakeClock::at(t0);
    let config = Arc::new(config());
    let notifier = Notifier {
        hostname: "mx.test".into(),
        spool: spool.clone(),
        config: config.clone(),
        notify: None,
        sign: None,
        clock: clock.clone(),
    };
    let agent = Always(Outcome::Temporary(Detail::local(
        "4.4.1",
        "connect refused",
    )));
    let mut msg = queued(&spool, t0).await;

    // First attempt: deferred for the first retry delay, give or take the 10% jitter.
    msg = attempt(msg, &agent, &spool, &config, &notifier, &*clock)
        .await
        .expect("still pending");
    let st = &msg.state[0];
    assert_eq!((st.status, st.attempts), (RcptStatus::Deferred, 1));
    let wait = st.next_attempt.unwrap() - t0;
    assert!((270..=330).contains(&wait), "first retry after {wait}s");
    assert_eq!(super::due_unix(&msg), st.next_attempt.unwrap());

    // Second: the second delay; then the last one repeats.
    clock.advance(Duration::from_secs(wait));
    msg = attempt(msg, &agent, &spool, &config, &notifier, &*clock)
        .await
        .unwrap();
    let wait = msg.state[0].next_attempt.unwrap() - clock.now();
    assert!((540..=660).contains(&wait), "second retry after {wait}s");
    for _ in 0..2 {
        clock.advance(Duration::from_secs(wait));
        msg = attempt(msg, &agent, &spool, &config, &notifier, &*clock)
            .await
            .unwrap();
    }
    let wait = msg.state[0].next_attempt.unwrap() - clock.now();
    assert!((3240..=3960).contains(&wait), "later retries after {wait}s");
    assert_eq!(msg.delay_warned, None, "no warning before 4h");

    // After 4 hours: one delay warning is queued (a second message in active/).
    clock.advance(Duration::from_secs(4 * 3600));
    msg = attempt(msg, &agent, &spool, &config, &notifier, &*clock)
        .await
        .unwrap();
    assert_eq!(msg.delay_warned, Some(clock.now()));
    assert_eq!(spool.count_active().unwrap(), 2);
    clock.advance(Duration::from_secs(3600));
    msg = attempt(msg, &agent, &spool, &config, &notifier, &*clock)
        .await
        .unwrap();
    assert_eq!(spool.count_active().unwrap(), 2, "one warning per message");

    // After max_age: failed as expired (4.4.7), a bounce queued, the message done.
    clock.advance(Duration::from_secs(86_400));
    let id = msg.envelope.id;
    let left = attempt(msg, &agent, &spool, &config, &notifier, &*clock).await;
    assert!(left.is_none(), "an expired message is finished");
    assert!(!spool.active_dir().join(format!("{id}.msg")).exists());
    assert_eq!(spool.count_active().unwrap(), 2, "warning + bounce");
}

#[tokio::test]
async fn an_expired_recipient_keeps_its_last_error_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let t0 = 1_800_000_000;
    let clock = FakeClock::at(t0 + 2 * 86_400);
    let mut config = config();
    config.delay_warning = None;
    let config = Arc::new(config);
    let notifier = Notifier {
        hostname: "mx.test".into(),
        spool: spool.clone(),
        config: config.clone(),
        notify: None,
        sign: None,
        clock: clock.clone(),
    };
    // A null sender: nothing to bounce to, so the message is kept in failed/ to look at.
    let mut msg = queued(&spool, t0).await;
    msg.envelope.sender = ReversePath::Null;
    let agent = Always(Outcome::Temporary(Detail::local(
        "4.4.1",
        "connect refused",
    )));
    assert!(
        attempt(msg.clone(), &agent, &spool, &config, &notifier, &*clock)
            .await
            .is_none()
    );
    let kept = spool
        .load(&spool.failed_dir().join(format!("{}.msg", msg.envelope.id)))
        .unwrap();
    let d = &kept.state[0].detail;
    assert_eq!(kept.state[0].status, RcptStatus::Failed);
    assert_eq!(d.expired_after.as_deref(), Some("1d"));
    assert_eq!(d.status_for(b'5'), "4.4.7");
    assert_eq!(d.cause(), "4.4.1 connect refused");
}
