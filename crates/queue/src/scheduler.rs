//! The delivery scheduler: one task that knows when each message is due, and a bounded
//! number of delivery tasks. After each attempt, `notice.rs` queues the reports the
//! sender is owed (bounces, delay warnings, delivery reports) before the new state is
//! written.

mod ops;
mod waiting;

pub use ops::{AdminOp, bounce_offline};

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_smtp::address::ReversePath;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{error, info, warn};

use crate::notice::Notifier;
use crate::record::{EXPIRED, RELAYED_NO_DSN, RcptStatus};
use crate::spool::{Finished, blocking};
use crate::{
    DeliveryAgent, Envelope, Incoming, Outcome, QueueConfig, QueueId, QueuedMessage, Spool,
    unix_now,
};

pub(crate) enum Cmd {
    Add(Box<QueuedMessage>),
    /// A delivery attempt ended; the message comes back if recipients remain.
    Done(QueueId, Option<Box<QueuedMessage>>),
    FlushAll,
    /// An operator command (`postern queue ...`).
    Admin(AdminOp, ops::Responder),
    /// Start no more attempts; answer once those in progress have ended.
    Stop(oneshot::Sender<()>),
}

/// Handle to the running queue: receives new messages and schedules deliveries.
#[derive(Debug, Clone)]
pub struct Queue {
    spool: Arc<Spool>,
    tx: mpsc::UnboundedSender<Cmd>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

impl Queue {
    /// [`Queue::start_with`] without a host name: reports would come from
    /// `MAILER-DAEMON@localhost`, so this logs a warning. Kept for callers not yet
    /// updated.
    pub fn start(
        spool: Arc<Spool>,
        config: QueueConfig,
        agent: Arc<dyn DeliveryAgent>,
    ) -> io::Result<Queue> {
        warn!(
            "the queue was started without a host name: bounces will come from MAILER-DAEMON@localhost (the daemon should call Queue::start_with)"
        );
        Queue::start_with(spool, config, agent, "localhost")
    }

    /// Load what is already queued and start delivering. `hostname` is Postern's own
    /// name, used in the delivery reports the queue sends (`Reporting-MTA`, `From:
    /// MAILER-DAEMON@hostname`). Must run inside a tokio runtime.
    pub fn start_with(
        spool: Arc<Spool>,
        config: QueueConfig,
        agent: Arc<dyn DeliveryAgent>,
        hostname: &str,
    ) -> io::Result<Queue> {
        Queue::start_signed(spool, config, agent, hostname, None)
    }

    /// [`Queue::start_with`], and the reports the queue builds are passed to `sign`
    /// (when given) before they are written: see [`crate::Sign`].
    pub fn start_signed(
        spool: Arc<Spool>,
        config: QueueConfig,
        agent: Arc<dyn DeliveryAgent>,
        hostname: &str,
        sign: Option<crate::Sign>,
    ) -> io::Result<Queue> {
        let existing = spool.load_all()?;
        if !existing.is_empty() {
            info!(
                messages = existing.len(),
                "queue loaded: {} message(s) waiting for delivery",
                existing.len()
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let config = Arc::new(config);
        let sched = Scheduler {
            spool: spool.clone(),
            config: config.clone(),
            agent,
            notifier: Arc::new(Notifier {
                hostname: hostname.to_string(),
                spool: spool.clone(),
                config,
                tx: tx.clone(),
                sign,
            }),
            tx: tx.clone(),
            waiting: waiting::Waiting::default(),
            epoch: Instant::now(),
            in_flight: HashSet::new(),
            flushed_in_flight: HashSet::new(),
            deferred: HashMap::new(),
            stopping: None,
        };
        tokio::spawn(sched.run(rx, existing));
        Ok(Queue { spool, tx })
    }

    /// Begin receiving a message; commit it to queue it for delivery.
    pub async fn begin(&self, envelope: Envelope) -> io::Result<Incoming> {
        let mut inc = self.spool.begin(envelope).await?;
        inc.notify = Some(self.tx.clone());
        Ok(inc)
    }

    /// Try every queued message now, ignoring retry times.
    pub fn flush(&self) {
        let _ = self.tx.send(Cmd::FlushAll);
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Carry out an operator command; the answer is a line for the operator. A command
    /// for a message being delivered right now is answered when that attempt ends.
    pub async fn admin(&self, op: AdminOp) -> Result<String, crate::OpError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Admin(op, tx))
            .map_err(|_| crate::OpError::ShuttingDown)?;
        rx.await.map_err(|_| crate::OpError::NoAnswer)?
    }

    /// Stop starting delivery attempts and wait (at most `limit`) for those in progress
    /// to end and record their outcome. Returns whether they all ended in time; any
    /// still running are retried after the next start (a recipient may then get a
    /// message twice, never none).
    pub async fn shutdown(&self, limit: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Stop(tx)).is_err() {
            return true;
        }
        tokio::time::timeout(limit, rx).await.is_ok()
    }
}

struct Scheduler {
    spool: Arc<Spool>,
    config: Arc<QueueConfig>,
    agent: Arc<dyn DeliveryAgent>,
    notifier: Arc<Notifier>,
    tx: mpsc::UnboundedSender<Cmd>,
    /// Messages due at a time in ms since `epoch`, in two lines (mail, reports).
    waiting: waiting::Waiting,
    epoch: Instant,
    /// Messages being delivered right now (not in `waiting`).
    in_flight: HashSet<QueueId>,
    /// Messages in flight when a flush came: tried again at once if their attempt leaves
    /// recipients pending, so a flush never misses a message that was busy (an operator
    /// flushing right after a deferral was logged).
    flushed_in_flight: HashSet<QueueId>,
    /// Operator commands waiting for the attempt in progress on their message.
    deferred: HashMap<QueueId, Vec<(AdminOp, ops::Responder)>>,
    /// Set by [`Cmd::Stop`]: who waits for the attempts in progress to end.
    stopping: Option<Vec<oneshot::Sender<()>>>,
}

impl Scheduler {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// When a message is due, on the scheduler's clock.
    fn due(&self, msg: &QueuedMessage) -> u64 {
        let now_unix = unix_now();
        let next = msg
            .state
            .iter()
            .filter(|s| !s.status.is_final())
            .map(|s| s.next_attempt.unwrap_or(0))
            .min()
            .unwrap_or(0);
        self.now_ms() + next.saturating_sub(now_unix) * 1000
    }

    fn insert(&mut self, msg: Box<QueuedMessage>, due: u64) {
        self.waiting.insert(due, msg);
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>, existing: Vec<QueuedMessage>) {
        for m in existing {
            if m.pending().is_empty() && !owes_bounce(&m) {
                // All final but not yet cleaned up when the daemon stopped.
                match self.spool.finish(&m) {
                    Ok(how) => log_finished(&m, how, &self.spool),
                    Err(e) => error!(queue_id = %m.envelope.id, "cannot finish message: {e}"),
                }
                continue;
            }
            let due = self.due(&m);
            self.insert(Box::new(m), due);
        }
        let slots = Arc::new(Semaphore::new(self.config.delivery_concurrency.max(1)));
        // Reports (null sender) may use only their share of the slots: see `waiting.rs`.
        let report_slots = Arc::new(Semaphore::new(self.config.report_slots()));
        loop {
            while self.stopping.is_none() {
                let reports_may = report_slots.available_permits() > 0;
                let now = self.now_ms();
                if self
                    .waiting
                    .next_due(reports_may)
                    .is_none_or(|due| due > now)
                {
                    break;
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let Some(msg) = self.waiting.pop_due(now, reports_may) else {
                    break;
                };
                let report_permit = if waiting::is_report(&msg) {
                    report_slots.clone().try_acquire_owned().ok()
                } else {
                    None
                };
                let id = msg.envelope.id;
                self.in_flight.insert(id);
                let (agent, spool, config, notifier, tx) = (
                    self.agent.clone(),
                    self.spool.clone(),
                    self.config.clone(),
                    self.notifier.clone(),
                    self.tx.clone(),
                );
                tokio::spawn(async move {
                    let back = attempt(*msg, agent.as_ref(), &spool, &config, &notifier)
                        .await
                        .map(Box::new);
                    drop(permit);
                    drop(report_permit);
                    let _ = tx.send(Cmd::Done(id, back));
                });
            }
            let sleep = match self.waiting.next_due(report_slots.available_permits() > 0) {
                Some(due) if slots.available_permits() > 0 => {
                    Duration::from_millis(due.saturating_sub(self.now_ms()))
                }
                // Nothing due, or no free slot: wait for a command (a finished delivery
                // frees a slot and sends Done).
                _ => Duration::from_secs(3600),
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Add(m)) => {
                        let now = self.now_ms();
                        self.insert(m, now);
                    }
                    Some(Cmd::Done(id, back)) => self.attempt_ended(id, back).await,
                    Some(Cmd::Admin(op, reply)) => self.admin(op, reply).await,
                    Some(Cmd::Stop(reply)) => self.stopping.get_or_insert_default().push(reply),
                    Some(Cmd::FlushAll) => {
                        self.flush_all();
                    }
                },
                _ = tokio::time::sleep(sleep) => {}
            }
            if self.in_flight.is_empty()
                && let Some(waiters) = self.stopping.take()
            {
                info!("queue stopped: no delivery attempt in progress");
                for w in waiters {
                    let _ = w.send(());
                }
                break;
            }
        }
    }
}

/// One delivery attempt for the pending recipients of `msg`. Returns the message if
/// recipients remain to be tried later.
async fn attempt(
    mut msg: QueuedMessage,
    agent: &dyn DeliveryAgent,
    spool: &Arc<Spool>,
    config: &QueueConfig,
    notifier: &Notifier,
) -> Option<QueuedMessage> {
    let pending = msg.pending();
    // No pending recipient: the message is only here for a bounce it still owes.
    let outcomes = if pending.is_empty() {
        Vec::new()
    } else {
        agent.deliver(&msg, &pending).await
    };
    let now = unix_now();
    let id = msg.envelope.id;
    let expired = now.saturating_sub(msg.envelope.arrived) >= config.max_age.get().as_secs();
    let delay = now.saturating_sub(msg.envelope.arrived);
    let mut newly_failed = Vec::new();
    for (n, &i) in pending.iter().enumerate() {
        let (relay, outcome) = match outcomes.get(n) {
            Some(o) => (o.relay.as_str(), o.outcome.clone()),
            None => (
                "none",
                Outcome::Temporary("internal error: the delivery agent gave no result".into()),
            ),
        };
        let Some(st) = msg.state.get_mut(i) else {
            continue;
        };
        let rcpt = &msg.envelope.recipients[i];
        st.attempts += 1;
        st.last_attempt = Some(now);
        let (status, reason) = match outcome {
            Outcome::Delivered(r) => (RcptStatus::Delivered, r),
            Outcome::Relayed(r) => {
                // The next hop reports from now on.
                st.notified = true;
                (RcptStatus::Delivered, r)
            }
            // Still ours to report on: the notifier sends a "relayed" report if wanted.
            Outcome::RelayedWithoutDsn(r) => {
                (RcptStatus::Delivered, format!("{RELAYED_NO_DSN}{r}"))
            }
            Outcome::Permanent(r) => (RcptStatus::Failed, r),
            Outcome::Temporary(r) if expired => (
                RcptStatus::Failed,
                format!("{EXPIRED}{} in the queue; last error: {r}", config.max_age),
            ),
            Outcome::Temporary(r) => (RcptStatus::Deferred, r),
        };
        st.status = status;
        st.reason = reason;
        if status == RcptStatus::Failed {
            newly_failed.push(i);
        }
        st.next_attempt = (status == RcptStatus::Deferred).then(|| {
            let base = config.delay_after(st.attempts).as_secs_f64();
            let jitter = 1.0 + (rand::random::<f64>() - 0.5) * 0.2;
            now + (base * jitter).round().max(1.0) as u64
        });
        let word = match status {
            RcptStatus::Delivered => "sent",
            RcptStatus::Deferred => "deferred",
            _ => "failed",
        };
        postern_metrics::inc(
            "postern_delivery_attempts_total",
            &[("outcome", if word == "sent" { "delivered" } else { word })],
        );
        let line = format!(
            "{id}: to=<{rcpt}>, relay={relay}, delay={delay}, attempts={}, status={word} ({})",
            st.attempts, st.reason
        );
        match status {
            RcptStatus::Delivered => info!(queue_id = %id, "{line}"),
            _ => warn!(queue_id = %id, "{line}"),
        }
    }
    // Reports are queued (durably) before the state that says they were.
    notifier.after_attempt(&mut msg, &newly_failed, now).await;
    let done = msg.pending().is_empty();
    let spool2 = spool.clone();
    let m2 = msg.clone();
    let res = blocking(move || {
        if done {
            spool2.finish(&m2).map(Some)
        } else {
            spool2.write_state(&m2).map(|_| None)
        }
    })
    .await;
    match res {
        Ok(Some(how)) => log_finished(&msg, how, spool),
        Ok(None) => {}
        // The message stays in active/ with its old state: recipients are retried,
        // which may duplicate but never loses mail.
        Err(e) => error!(queue_id = %id, "cannot record delivery state: {e}"),
    }
    if done { None } else { Some(msg) }
}

/// Whether a failed recipient has not been reported to a sender who can be told.
fn owes_bounce(msg: &QueuedMessage) -> bool {
    msg.envelope.sender != ReversePath::Null
        && msg
            .state
            .iter()
            .any(|s| s.status == RcptStatus::Failed && !s.notified)
}

/// The log line for a message that left `active/`.
fn log_finished(msg: &QueuedMessage, how: Finished, spool: &Spool) {
    let id = msg.envelope.id;
    let count = |s: RcptStatus| msg.state.iter().filter(|r| r.status == s).count();
    let (delivered, failed) = (count(RcptStatus::Delivered), count(RcptStatus::Failed));
    match how {
        Finished::Removed if failed == 0 => {
            info!(queue_id = %id, "{id}: removed (all recipients delivered)")
        }
        Finished::Removed => info!(
            queue_id = %id,
            "{id}: removed ({delivered} delivered, {failed} failed and reported to the sender or not wanted by NOTIFY)"
        ),
        Finished::KeptInFailed => {
            let why = if msg.envelope.sender == ReversePath::Null {
                "it has a null sender, so no bounce can be sent"
            } else {
                "the bounce for them could not be queued"
            };
            warn!(
                queue_id = %id,
                "{id}: has permanently failed recipients and {why}; kept in {} for the operator",
                spool.failed_dir().display()
            )
        }
    }
}
