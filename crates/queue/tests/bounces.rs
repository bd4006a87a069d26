//! Delivery reports end to end through the queue: which attempts produce a bounce, a
//! delay warning or a delivery report, and what becomes of the original.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_queue::{
    DeliveryAgent, DeliveryOutcome, Envelope, Outcome, Queue, QueueConfig, QueueId, QueuedMessage,
    Recipient, Spool, unix_now,
};
use postern_smtp::address::{ReversePath, parse_mailbox};
use postern_smtp::command::{BodyType, Notify, Orcpt, Ret, Xtext, XtextField};

const REFUSED: &str = "host mx.remote.test[192.0.2.25] said: 550 5.1.1 <bad@remote.test>: no such user (in reply to RCPT TO)";

/// A typed reply from the test's remote server, as the SMTP agent records one.
fn remote(code: u16, status: &str, text: &str, stage: &str) -> postern_queue::Detail {
    let reply = postern_smtp::client::Reply {
        code,
        enhanced: postern_smtp::enhanced::EnhancedCode::parse(status),
        lines: vec![format!("{status} {text}")],
    };
    postern_queue::Detail::remote(
        "mx.remote.test",
        [192, 0, 2, 25].into(),
        25,
        &reply,
        Some(stage),
    )
}
const NO_REQUIRETLS: &str =
    "5.7.30 REQUIRETLS: next hop mx.remote.test[192.0.2.25] did not offer REQUIRETLS";

/// What the agent was handed to deliver: (sender, recipient, content).
type Delivery = (String, String, Vec<u8>);

/// `bad*` fails permanently, `slow*` temporarily, `relayed*` is handed to a next hop,
/// anything else is delivered and kept.
#[derive(Default)]
struct Agent {
    delivered: Mutex<Vec<Delivery>>,
    /// Recipients of the deliveries whose envelope carried REQUIRETLS.
    requiretls: Mutex<Vec<String>>,
}

impl DeliveryAgent for Agent {
    fn deliver<'a>(
        &'a self,
        msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> postern_queue::agent_future::BoxFuture<'a, Vec<DeliveryOutcome>> {
        Box::pin(async move {
            rcpts
                .iter()
                .map(|&i| {
                    let to = msg.envelope.recipients[i].to_string();
                    let outcome = if to.starts_with("bad") {
                        Outcome::Permanent(remote(
                            550,
                            "5.1.1",
                            "<bad@remote.test>: no such user",
                            "RCPT TO",
                        ))
                    } else if to.starts_with("slow") {
                        Outcome::Temporary(remote(451, "4.3.0", "try again later", "end of DATA"))
                    } else if to.starts_with("secret") {
                        Outcome::Permanent(postern_queue::Detail::local(
                            "5.7.30",
                            NO_REQUIRETLS.trim_start_matches("5.7.30 "),
                        ))
                    } else if to.starts_with("relayed") {
                        Outcome::Relayed(remote(250, "2.0.0", "queued", "end of DATA"))
                    } else {
                        let from = msg.envelope.sender.to_string();
                        let body = msg.read_body().unwrap();
                        if msg.envelope.requiretls() {
                            self.requiretls.lock().unwrap().push(to.clone());
                        }
                        self.delivered.lock().unwrap().push((from, to, body));
                        Outcome::Delivered("delivered to test".into())
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

impl Agent {
    fn to(&self, rcpt: &str) -> Vec<(String, String)> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, to, _)| to == rcpt)
            .map(|(from, _, body)| (from.clone(), String::from_utf8_lossy(body).into_owned()))
            .collect()
    }
}

const ORIGINAL: &[u8] = b"From: Alice <alice@sender.test>\r\nTo: bad@remote.test\r\nSubject: lunch on Friday\r\n\r\nShall we?\r\n";

fn envelope(sender: &str, rcpts: &[Recipient]) -> Envelope {
    Envelope {
        id: QueueId::generate(),
        arrived: unix_now(),
        client_ip: Some("127.0.0.1".parse().unwrap()),
        helo: "client.test".into(),
        sender: if sender.is_empty() {
            ReversePath::Null
        } else {
            ReversePath::Address(parse_mailbox(sender).unwrap())
        },
        recipients: rcpts.to_vec(),
        body: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        sender_tls: Default::default(),
    }
}

fn rcpt(addr: &str, notify: Option<&str>) -> Recipient {
    let mut r = Recipient::new(parse_mailbox(addr).unwrap());
    r.notify = notify.map(|n| Notify::parse(n).unwrap());
    r
}

struct Setup {
    _dir: tempfile::TempDir,
    spool: Arc<Spool>,
    agent: Arc<Agent>,
    queue: Queue,
}

fn start(config: QueueConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let agent = Arc::new(Agent::default());
    let queue = Queue::start_with(spool.clone(), config, agent.clone(), "mx.test").unwrap();
    Setup {
        _dir: dir,
        spool,
        agent,
        queue,
    }
}

async fn send(s: &Setup, env: Envelope) -> QueuedMessage {
    let mut inc = s.queue.begin(env).await.unwrap();
    inc.write(ORIGINAL).await.unwrap();
    inc.commit().await.unwrap()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not reached within 5s: {what}");
}

/// `want` is in `text`, as is or with line breaks and indentation read as one space
/// (the explanation is wrapped).
fn has(text: &str, want: &str) -> bool {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.contains(want) || flat.contains(want)
}

fn count(dir: &std::path::Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[tokio::test]
async fn a_permanent_failure_bounces_to_the_sender_with_a_null_sender() {
    let s = start(QueueConfig::default());
    let mut env = envelope(
        "alice@sender.test",
        &[rcpt("bad@remote.test", None), rcpt("ok@local.test", None)],
    );
    env.envid = Some(Xtext::parse("QQ+2B42", XtextField::Envid).unwrap());
    env.recipients[0].orcpt = Some(Orcpt::parse("rfc822;Bad+2Btag@remote.test").unwrap());
    let m = send(&s, env).await;
    wait_for("the bounce is delivered", || {
        !s.agent.to("alice@sender.test").is_empty()
    })
    .await;
    let bounces = s.agent.to("alice@sender.test");
    assert_eq!(bounces.len(), 1, "one bounce per attempt");
    let (from, text) = &bounces[0];
    assert_eq!(from, "<>", "bounces have the null sender");
    for want in [
        "From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\n",
        "To: <alice@sender.test>\r\n",
        "Subject: Undelivered Mail Returned to Sender\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Reporting-MTA: dns; mx.test\r\n",
        "Original-Envelope-Id: QQ+42\r\n",
        &format!("X-Postern-Queue-ID: {}\r\n", m.envelope.id),
        "Original-Recipient: rfc822;Bad+tag@remote.test\r\n",
        "Final-Recipient: rfc822; bad@remote.test\r\n",
        "Action: failed\r\n",
        "Status: 5.1.1\r\n",
        "Remote-MTA: dns; mx.remote.test\r\n",
        "Diagnostic-Code: smtp; 550 5.1.1 <bad@remote.test>: no such user",
        "Content-Type: message/rfc822\r\n",
        "Subject: lunch on Friday\r\n\r\nShall we?\r\n",
        "with the subject \"lunch on Friday\"",
    ] {
        assert!(has(text, want), "missing {want:?} in\n{text}");
    }
    // The delivered recipient is not in the bounce.
    assert!(!text.contains("ok@local.test"), "{text}");
    // The original is gone: the sender has been told, nothing is kept.
    wait_for("the original leaves the queue", || !m.path.exists()).await;
    assert_eq!(count(s.spool.failed_dir()), 0);
    wait_for("the bounce leaves the queue", || {
        count(s.spool.active_dir()) == 0
    })
    .await;
}

/// RFC 8689 §5: the bounce of a REQUIRETLS message returns its headers only (RET=FULL
/// or not), says why, and is itself queued with REQUIRETLS.
#[tokio::test]
async fn a_requiretls_bounce_carries_headers_only_and_requiretls() {
    let s = start(QueueConfig::default());
    let mut env = envelope("alice@sender.test", &[rcpt("secret@remote.test", None)]);
    env.sender_tls = postern_queue::SenderTls::RequireTls;
    env.ret = Some(Ret::Full);
    let m = send(&s, env).await;
    wait_for("the bounce is delivered", || {
        !s.agent.to("alice@sender.test").is_empty()
    })
    .await;
    let (from, text) = &s.agent.to("alice@sender.test")[0];
    assert_eq!(from, "<>");
    for want in [
        "Status: 5.7.30\r\n",
        "Diagnostic-Code: X-Postern; 5.7.30 REQUIRETLS: next hop mx.remote.test[192.0.2.25] did not offer REQUIRETLS",
        "Content-Type: text/rfc822-headers\r\n",
        "Subject: lunch on Friday\r\n",
        "The problem: 5.7.30 REQUIRETLS: next hop mx.remote.test[192.0.2.25] did not offer REQUIRETLS",
        "Your message was sent with REQUIRETLS (RFC 8689)",
        "it was sent with REQUIRETLS, so its content is not sent back",
    ] {
        assert!(has(text, want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("Shall we?"), "the body came back:\n{text}");
    assert!(!text.contains("message/rfc822"), "{text}");
    assert_eq!(
        *s.agent.requiretls.lock().unwrap(),
        vec!["alice@sender.test".to_string()],
        "the bounce itself travels with REQUIRETLS"
    );
    wait_for("the original leaves the queue", || !m.path.exists()).await;
}

/// The same failure without REQUIRETLS: the whole message comes back, no REQUIRETLS.
#[tokio::test]
async fn a_bounce_of_an_ordinary_message_is_not_requiretls() {
    let s = start(QueueConfig::default());
    let env = envelope("alice@sender.test", &[rcpt("secret@remote.test", None)]);
    send(&s, env).await;
    wait_for("the bounce is delivered", || {
        !s.agent.to("alice@sender.test").is_empty()
    })
    .await;
    let (_, text) = &s.agent.to("alice@sender.test")[0];
    assert!(has(text, "Shall we?"), "{text}");
    assert!(!has(text, "REQUIRETLS (RFC 8689)"), "{text}");
    assert!(s.agent.requiretls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_null_sender_message_is_never_bounced_but_kept_in_failed() {
    let s = start(QueueConfig::default());
    let m = send(&s, envelope("", &[rcpt("bad@remote.test", None)])).await;
    let failed = s.spool.failed_dir().join(m.path.file_name().unwrap());
    wait_for("the message moves to failed/", || failed.exists()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        s.agent.delivered.lock().unwrap().is_empty(),
        "no report for <>"
    );
    assert_eq!(count(s.spool.active_dir()), 0);
    let state = fs::read_to_string(failed.with_extension("state")).unwrap();
    assert!(state.contains("0 failed 1 "), "{state}");
    assert!(!state.contains("notified:"), "{state}");
}

#[tokio::test]
async fn notify_never_sends_no_bounce_and_keeps_nothing() {
    let s = start(QueueConfig::default());
    let m = send(
        &s,
        envelope(
            "alice@sender.test",
            &[rcpt("bad@remote.test", Some("NEVER"))],
        ),
    )
    .await;
    wait_for("the original leaves the queue", || !m.path.exists()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(s.agent.delivered.lock().unwrap().is_empty());
    assert_eq!(count(s.spool.failed_dir()), 0);
    assert_eq!(count(s.spool.active_dir()), 0);
}

#[tokio::test]
async fn an_expired_message_bounces_with_expired_and_4_4_7() {
    let config = QueueConfig {
        max_age: "1m".parse().unwrap(),
        ..QueueConfig::default()
    };
    let s = start(config);
    let mut env = envelope("alice@sender.test", &[rcpt("slow@remote.test", None)]);
    env.arrived -= 120;
    env.ret = Some(Ret::Hdrs);
    let m = send(&s, env).await;
    wait_for("the bounce is delivered", || {
        !s.agent.to("alice@sender.test").is_empty()
    })
    .await;
    let (_, text) = &s.agent.to("alice@sender.test")[0];
    for want in [
        "Action: failed\r\n",
        "Status: 4.4.7\r\n",
        "Diagnostic-Code: smtp; 451 4.3.0 try again later (in reply to end of DATA",
        "as long as the mail system keeps messages",
        "Content-Type: text/rfc822-headers\r\n",
        "Only the headers of your message are attached, as you asked.",
    ] {
        assert!(has(text, want), "missing {want:?} in\n{text}");
    }
    assert!(
        !text.contains("Shall we?"),
        "RET=HDRS returns no body: {text}"
    );
    wait_for("the original leaves the queue", || !m.path.exists()).await;
    assert_eq!(count(s.spool.failed_dir()), 0);
}

#[tokio::test]
async fn one_delay_warning_per_message_for_those_who_want_it() {
    let config = QueueConfig {
        retry: vec!["1s".parse().unwrap()],
        delay_warning: Some("5s".parse().unwrap()),
        ..QueueConfig::default()
    };
    let s = start(config);
    let mut env = envelope(
        "alice@sender.test",
        &[
            rcpt("slow@remote.test", None),
            rcpt("slow2@remote.test", Some("FAILURE")),
            rcpt("slow3@remote.test", Some("DELAY")),
        ],
    );
    env.arrived -= 10;
    let m = send(&s, env).await;
    // Three attempts, a second apart.
    wait_for("three attempts", || {
        s.spool
            .load(&m.path)
            .is_ok_and(|m| m.state[0].attempts >= 3)
    })
    .await;
    let warnings = s.agent.to("alice@sender.test");
    assert_eq!(warnings.len(), 1, "exactly one delay warning");
    let (from, text) = &warnings[0];
    assert_eq!(from, "<>");
    for want in [
        "Subject: Delayed Mail (still being retried)\r\n",
        "Final-Recipient: rfc822; slow@remote.test\r\n",
        "Final-Recipient: rfc822; slow3@remote.test\r\n",
        "Action: delayed\r\n",
        "Status: 4.3.0\r\n",
        "Will-Retry-Until: ",
        "You do not need to send it again.",
        "Content-Type: text/rfc822-headers\r\n",
    ] {
        assert!(has(text, want), "missing {want:?} in\n{text}");
    }
    assert!(
        !text.contains("slow2@"),
        "NOTIFY=FAILURE wants no warning: {text}"
    );
    let state = fs::read_to_string(m.path.with_extension("state")).unwrap();
    assert!(state.contains("delay-warned: "), "{state}");
}

#[tokio::test]
async fn notify_success_gets_a_delivery_report_for_final_delivery_only() {
    let s = start(QueueConfig::default());
    let m = send(
        &s,
        envelope(
            "alice@sender.test",
            &[
                rcpt("ok@local.test", Some("SUCCESS,FAILURE")),
                rcpt("ok2@local.test", None),
                rcpt("relayed@remote.test", Some("SUCCESS")),
            ],
        ),
    )
    .await;
    wait_for("the report is delivered", || {
        !s.agent.to("alice@sender.test").is_empty()
    })
    .await;
    let (from, text) = &s.agent.to("alice@sender.test")[0];
    assert_eq!(from, "<>");
    for want in [
        "Final-Recipient: rfc822; ok@local.test\r\n",
        "Action: delivered\r\n",
        "Status: 2.0.0\r\n",
        "Content-Type: text/rfc822-headers\r\n",
    ] {
        assert!(has(text, want), "missing {want:?} in\n{text}");
    }
    assert!(
        !text.contains("ok2@"),
        "no NOTIFY: no delivery report: {text}"
    );
    assert!(!text.contains("relayed@"), "the next hop reports: {text}");
    assert!(!text.contains("Diagnostic-Code"), "{text}");
    wait_for("the original leaves the queue", || !m.path.exists()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.agent.to("alice@sender.test").len(), 1);
}

#[tokio::test]
async fn a_failure_recorded_before_bounces_existed_is_bounced_at_the_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let path;
    {
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let env = envelope(
            "alice@sender.test",
            &[rcpt("bad@remote.test", None), rcpt("ok@local.test", None)],
        );
        let mut inc = spool.begin(env).await.unwrap();
        inc.write(ORIGINAL).await.unwrap();
        path = inc.commit().await.unwrap().path;
        // A state file as older versions wrote it: a failure, nothing about reports.
        fs::write(
            path.with_extension("state"),
            format!("POSTERN-STATE 1\n0 failed 1 10 - {REFUSED}\n1 queued 0 - - \n"),
        )
        .unwrap();
    }
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let agent = Arc::new(Agent::default());
    let _q = Queue::start_with(
        spool.clone(),
        QueueConfig::default(),
        agent.clone(),
        "mx.test",
    )
    .unwrap();
    wait_for("the owed bounce is delivered", || {
        !agent.to("alice@sender.test").is_empty()
    })
    .await;
    let (_, text) = &agent.to("alice@sender.test")[0];
    assert!(
        text.contains("Final-Recipient: rfc822; bad@remote.test\r\n"),
        "{text}"
    );
    wait_for("the original leaves the queue", || !path.exists()).await;
    assert_eq!(count(spool.failed_dir()), 0);
}

#[tokio::test]
async fn a_finished_message_that_still_owes_a_bounce_sends_it_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path;
    {
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let env = envelope("alice@sender.test", &[rcpt("bad@remote.test", None)]);
        let mut inc = spool.begin(env).await.unwrap();
        inc.write(ORIGINAL).await.unwrap();
        path = inc.commit().await.unwrap().path;
        // Every recipient final, the bounce never queued (a crash, or a full disk).
        fs::write(
            path.with_extension("state"),
            format!("POSTERN-STATE 1\n0 failed 1 10 - {REFUSED}\n"),
        )
        .unwrap();
    }
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let agent = Arc::new(Agent::default());
    let _q = Queue::start_with(
        spool.clone(),
        QueueConfig::default(),
        agent.clone(),
        "mx.test",
    )
    .unwrap();
    wait_for("the owed bounce is delivered", || {
        !agent.to("alice@sender.test").is_empty()
    })
    .await;
    wait_for("the original leaves the queue", || !path.exists()).await;
    assert_eq!(count(spool.failed_dir()), 0);
}
