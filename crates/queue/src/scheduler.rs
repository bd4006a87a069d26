//! The delivery scheduler: one task that knows when each message is due, and a bounded
//! number of delivery tasks. After each attempt, `notice.rs` queues the reports the
//! sender is owed (bounces, delay warnings, delivery reports) before the new state is
//! written.

pub(crate) mod admission;
mod ops;
#[cfg(test)]
mod tests;
mod waiting;

pub use admission::Admission;

pub use ops::{AdminOp, bounce_offline};

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_smtp::address::ReversePath;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::index::{FLUSH, Index, WIDTH};
use crate::notice::Notifier;
use crate::record::RcptStatus;
use crate::spool::{Finished, blocking};
use crate::{
    DeliveryAgent, Detail, Envelope, Incoming, Outcome, QueueConfig, QueueId, QueuedMessage, Spool,
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

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// Commands waiting for the scheduler, at most. A new message that finds the channel
/// full is filed in the on-disk schedule instead (see [`Notify::queued`]).
const CMD_CAPACITY: usize = 1024;
/// Messages loaded from disk per trip to the blocking pool.
const LOAD_BATCH: usize = 256;
/// A message due later than this (seconds) is filed on disk, not kept in memory.
const HORIZON: u64 = 2 * WIDTH;

/// How committed messages reach the scheduler: over its bounded channel, or, when that
/// is full or closed, through the on-disk schedule (the `new` lane, read first).
#[derive(Debug, Clone)]
pub(crate) struct Notify {
    pub(crate) tx: mpsc::Sender<Cmd>,
    pub(crate) index: Arc<Mutex<Index>>,
}

impl Notify {
    /// A message was committed to `active/`: have it scheduled. Never waits.
    pub(crate) fn queued(&self, msg: QueuedMessage) {
        let id = msg.envelope.id;
        if let Err(e) = self.tx.try_send(Cmd::Add(Box::new(msg))) {
            if matches!(e, mpsc::error::TrySendError::Closed(_)) {
                info!(queue_id = %id, "{id}: queued while the scheduler is stopping; it is delivered after the next start");
            }
            if let Err(e) = lock(&self.index).add(id, None) {
                error!(queue_id = %id, "{id}: cannot file the message in the queue schedule ({e}); it is safe in active/ and found when the schedule is rebuilt at the next start");
            }
        }
    }
}

pub(crate) fn lock(ix: &Mutex<Index>) -> std::sync::MutexGuard<'_, Index> {
    ix.lock().unwrap_or_else(|p| p.into_inner())
}

/// Handle to the running queue: receives new messages and schedules deliveries.
#[derive(Debug, Clone)]
pub struct Queue {
    spool: Arc<Spool>,
    notify: Notify,
    admission: Arc<admission::Gate>,
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

    /// Start delivering what is queued. `hostname` is Postern's own name, used in the
    /// delivery reports the queue sends (`Reporting-MTA`, `From: MAILER-DAEMON@hostname`).
    /// Must run inside a tokio runtime.
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
        Queue::start_clocked(spool, config, agent, hostname, sign, crate::clock::system())
    }

    /// [`Queue::start_signed`] on the given clock (tests use a [`crate::FakeClock`]).
    ///
    /// Nothing is read from the spool here: the on-disk schedule is opened (or rebuilt
    /// from the file names in `active/` after a crash) and messages are loaded as the
    /// in-memory window (`[queue] active_limit`) has room, so that a start with a large
    /// queue delivers within moments.
    pub fn start_clocked(
        spool: Arc<Spool>,
        config: QueueConfig,
        agent: Arc<dyn DeliveryAgent>,
        hostname: &str,
        sign: Option<crate::Sign>,
        clock: Arc<dyn Clock>,
    ) -> io::Result<Queue> {
        let (index, _rebuilt) = Index::open(spool.active_dir())?;
        let index = Arc::new(Mutex::new(index));
        let (tx, rx) = mpsc::channel(CMD_CAPACITY);
        let config = Arc::new(config);
        let admission = Arc::new(admission::Gate::new(
            spool.active_dir(),
            config.min_free_space.bytes(),
            config.active_limit(),
            index.clone(),
        ));
        let notify = Notify { tx, index };
        let sched = Scheduler {
            spool: spool.clone(),
            config: config.clone(),
            agent,
            notifier: Arc::new(Notifier {
                hostname: hostname.to_string(),
                spool: spool.clone(),
                config: config.clone(),
                notify: Some(notify.clone()),
                sign,
                clock: clock.clone(),
            }),
            notify: notify.clone(),
            limit: config.active_limit(),
            clock,
            waiting: waiting::Waiting::default(),
            in_flight: HashSet::new(),
            flushed_in_flight: HashSet::new(),
            flushed_at: None,
            deferred: HashMap::new(),
            stopping: None,
        };
        tokio::spawn(sched.run(rx));
        Ok(Queue {
            spool,
            notify,
            admission,
        })
    }

    /// Begin receiving a message; commit it to queue it for delivery.
    pub async fn begin(&self, envelope: Envelope) -> io::Result<Incoming> {
        let mut inc = self.spool.begin(envelope).await?;
        inc.notify = Some(self.notify.clone());
        Ok(inc)
    }

    /// Whether the queue can take a new message now (the inbound side asks at MAIL):
    /// see [`Admission`].
    pub fn admission(&self) -> Admission {
        if self.notify.tx.is_closed() {
            return Admission::Stopping;
        }
        self.admission.check()
    }

    /// Try every queued message now, ignoring retry times.
    pub fn flush(&self) {
        let _ = self.notify.tx.try_send(Cmd::FlushAll);
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Carry out an operator command; the answer is a line for the operator. A command
    /// for a message being delivered right now is answered when that attempt ends.
    pub async fn admin(&self, op: AdminOp) -> Result<String, crate::OpError> {
        let (tx, rx) = oneshot::channel();
        self.notify
            .tx
            .send(Cmd::Admin(op, tx))
            .await
            .map_err(|_| crate::OpError::ShuttingDown)?;
        rx.await.map_err(|_| crate::OpError::NoAnswer)?
    }

    /// Stop starting delivery attempts and wait (at most `limit`) for those in progress
    /// to end and record their outcome. Returns whether they all ended in time; any
    /// still running are retried after the next start (a recipient may then get a
    /// message twice, never none).
    pub async fn shutdown(&self, limit: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let sent = tokio::time::timeout(limit, self.notify.tx.send(Cmd::Stop(tx))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return sent.is_ok();
        }
        tokio::time::timeout(limit, rx).await.is_ok()
    }
}

struct Scheduler {
    spool: Arc<Spool>,
    config: Arc<QueueConfig>,
    agent: Arc<dyn DeliveryAgent>,
    notifier: Arc<Notifier>,
    notify: Notify,
    /// Messages held in memory at most (waiting and in flight).
    limit: usize,
    clock: Arc<dyn Clock>,
    /// Messages loaded and due soon, by due time in Unix ms (the active window).
    waiting: waiting::Waiting,
    /// Messages being delivered right now (not in `waiting`).
    in_flight: HashSet<QueueId>,
    /// Messages in flight when a flush came: tried again at once if their attempt leaves
    /// recipients pending, so a flush never misses a message that was busy (an operator
    /// flushing right after a deferral was logged).
    flushed_in_flight: HashSet<QueueId>,
    /// When the operator last flushed the whole queue (Unix seconds): messages read from
    /// the schedule's `flush` lane and not tried since are due at once.
    flushed_at: Option<u64>,
    /// Operator commands waiting for the attempt in progress on their message.
    deferred: HashMap<QueueId, Vec<(AdminOp, ops::Responder)>>,
    /// Set by [`Cmd::Stop`]: who waits for the attempts in progress to end.
    stopping: Option<Vec<oneshot::Sender<()>>>,
}

/// When a message is next due (Unix seconds): its earliest pending recipient's next
/// attempt; at once for a recipient never tried.
pub(crate) fn due_unix(msg: &QueuedMessage) -> u64 {
    msg.state
        .iter()
        .filter(|s| !s.status.is_final())
        .map(|s| s.next_attempt.unwrap_or(0))
        .min()
        .unwrap_or(0)
}

/// Whether no recipient of `msg` has been tried yet.
fn never_tried(msg: &QueuedMessage) -> bool {
    msg.state.iter().all(|s| s.attempts == 0)
}

impl Scheduler {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Messages held in memory.
    fn loaded(&self) -> usize {
        self.waiting.len() + self.in_flight.len()
    }

    /// When a message is due, in Unix ms (never before now).
    fn due(&self, msg: &QueuedMessage) -> u64 {
        (due_unix(msg) * 1000).max(self.now_ms())
    }

    /// Keep `msg` in memory, due at `due` (ms).
    fn insert(&mut self, msg: Box<QueuedMessage>, due: u64) {
        let fresh = never_tried(&msg);
        self.waiting.insert(due, msg, fresh);
    }

    /// Keep `msg` in memory if it is due soon and there is room, else file it on disk.
    fn place(&mut self, msg: Box<QueuedMessage>, due: u64) {
        let soon = due <= self.now_ms() + HORIZON * 1000;
        if soon && self.loaded() < self.limit {
            return self.insert(msg, due);
        }
        let id = msg.envelope.id;
        let filed = lock(&self.notify.index).add(id, Some(due / 1000));
        if let Err(e) = filed {
            error!(queue_id = %id, "{id}: cannot file the message in the queue schedule ({e}); kept in memory");
            self.insert(msg, due);
        }
    }

    /// A new message: in memory, making room by filing away the retry due last if
    /// needed; on disk in the `new` lane when the window holds only new mail.
    fn add_new(&mut self, msg: Box<QueuedMessage>) {
        let now = self.now_ms();
        if self.loaded() >= self.limit
            && let Some((due, old)) = self.waiting.evict_retry()
        {
            let id = old.envelope.id;
            let filed = lock(&self.notify.index).add(id, Some(due / 1000));
            if let Err(e) = filed {
                error!(queue_id = %id, "{id}: cannot file the message in the queue schedule ({e}); kept in memory");
                self.insert(old, due);
            }
        }
        if self.loaded() < self.limit {
            return self.insert(msg, now);
        }
        let id = msg.envelope.id;
        let filed = lock(&self.notify.index).add(id, None);
        if let Err(e) = filed {
            error!(queue_id = %id, "{id}: cannot file the message in the queue schedule ({e}); kept in memory");
            self.insert(msg, now);
        }
    }

    /// Load filed messages that are due, while the window has room. Returns whether
    /// more may be waiting (call again soon).
    async fn refill(&mut self) -> bool {
        let now = self.clock.now();
        let upto = now;
        let room = self.limit.saturating_sub(self.loaded()).min(LOAD_BATCH);
        if room == 0 {
            return false;
        }
        let batch = match lock(&self.notify.index).take(upto, room) {
            Ok(b) => b,
            Err(e) => {
                error!(
                    "cannot read the queue schedule: {e}; new messages are still delivered, and the schedule is rebuilt at the next start"
                );
                return false;
            }
        };
        if batch.is_empty() {
            return false;
        }
        let full = batch.len() == room;
        let wanted: Vec<(QueueId, u64)> = batch
            .into_iter()
            .filter(|(id, _)| !self.waiting.contains(*id) && !self.in_flight.contains(id))
            .collect();
        let spool = self.spool.clone();
        let loaded = blocking(move || {
            Ok(wanted
                .into_iter()
                .map(|(id, key)| (id, key, spool.load_active(id)))
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
        for (id, key, m) in loaded {
            match m {
                Ok(Some(m)) => self.place_loaded(Box::new(m), key).await,
                Ok(None) => {}
                Err(e) => {
                    error!(queue_id = %id, "{id}: cannot read the message from the queue ({e}); trying again in a minute");
                    let _ = lock(&self.notify.index).add(id, Some(now + 60));
                }
            }
        }
        full
    }

    /// A message read back from `active/`.
    async fn place_loaded(&mut self, m: Box<QueuedMessage>, key: u64) {
        if self.waiting.contains(m.envelope.id) || self.in_flight.contains(&m.envelope.id) {
            return;
        }
        if m.pending().is_empty() && !owes_bounce(&m) {
            // All final but not yet cleaned up when the daemon stopped.
            let spool = self.spool.clone();
            let m2 = m.clone();
            match blocking(move || spool.finish(&m2)).await {
                Ok(how) => log_finished(&m, how, &self.spool),
                Err(e) => error!(queue_id = %m.envelope.id, "cannot finish message: {e}"),
            }
            return;
        }
        let flushed = key == FLUSH
            && self.flushed_at.is_some_and(|at| {
                m.state
                    .iter()
                    .filter_map(|s| s.last_attempt)
                    .max()
                    .is_none_or(|last| last <= at)
            });
        let due = if flushed { self.now_ms() } else { self.due(&m) };
        self.place(m, due);
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let slots = Arc::new(Semaphore::new(self.config.delivery_concurrency.max(1)));
        // Reports (null sender) may use only their share of the slots: see `waiting.rs`.
        let report_slots = Arc::new(Semaphore::new(self.config.report_slots()));
        loop {
            let mut more = false;
            if self.stopping.is_none() {
                more = self.refill().await;
            }
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
                let (agent, spool, config, notifier, tx, clock) = (
                    self.agent.clone(),
                    self.spool.clone(),
                    self.config.clone(),
                    self.notifier.clone(),
                    self.notify.tx.clone(),
                    self.clock.clone(),
                );
                tokio::spawn(async move {
                    let back = attempt(*msg, agent.as_ref(), &spool, &config, &notifier, &*clock)
                        .await
                        .map(Box::new);
                    drop(permit);
                    drop(report_permit);
                    let _ = tx.send(Cmd::Done(id, back)).await;
                });
            }
            let now = self.now_ms();
            let mut wake = match self.waiting.next_due(report_slots.available_permits() > 0) {
                Some(due) if slots.available_permits() > 0 => due.saturating_sub(now),
                // Nothing due, or no free slot: wait for a command (a finished delivery
                // frees a slot and sends Done).
                _ => 3_600_000,
            };
            if self.loaded() < self.limit
                && let Some(next) = lock(&self.notify.index).next_due()
            {
                wake = wake.min((next * 1000).saturating_sub(now));
            }
            if more {
                wake = 0;
            }
            let sleep = Duration::from_millis(wake);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Add(m)) => self.add_new(m),
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
                self.file_everything(&mut rx);
                info!("queue stopped: no delivery attempt in progress");
                for w in waiters {
                    let _ = w.send(());
                }
                return;
            }
        }
        self.file_everything(&mut rx);
    }

    /// At a stop: file every message still in memory or on its way, and mark the
    /// schedule complete. Messages committed after this go straight to the `new` lane.
    fn file_everything(&mut self, rx: &mut mpsc::Receiver<Cmd>) {
        rx.close();
        let mut ix = lock(&self.notify.index);
        let mut failed = false;
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Cmd::Add(m) => failed |= ix.add(m.envelope.id, None).is_err(),
                Cmd::Done(_, Some(m)) => {
                    failed |= ix.add(m.envelope.id, Some(due_unix(&m))).is_err()
                }
                Cmd::Admin(_, reply) => {
                    let _ = reply.send(Err(crate::OpError::ShuttingDown));
                }
                Cmd::Stop(reply) => {
                    let _ = reply.send(());
                }
                Cmd::Done(_, None) | Cmd::FlushAll => {}
            }
        }
        for (due, m) in self.waiting.drain() {
            let due = if never_tried(&m) {
                None
            } else {
                Some(due / 1000)
            };
            failed |= ix.add(m.envelope.id, due).is_err();
        }
        for &id in &self.in_flight {
            failed |= ix.add(id, None).is_err();
        }
        if failed {
            error!(
                "the queue schedule could not be written completely; it is rebuilt from the spool at the next start"
            );
            return;
        }
        if let Err(e) = ix.mark_clean() {
            warn!(
                "cannot mark the queue schedule complete ({e}); it is rebuilt from the spool at the next start"
            );
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
    clock: &dyn Clock,
) -> Option<QueuedMessage> {
    let pending = msg.pending();
    // No pending recipient: the message is only here for a bounce it still owes.
    let outcomes = if pending.is_empty() {
        Vec::new()
    } else {
        agent.deliver(&msg, &pending).await
    };
    let now = clock.now();
    let id = msg.envelope.id;
    let expired = now.saturating_sub(msg.envelope.arrived) >= config.max_age.get().as_secs();
    let delay = now.saturating_sub(msg.envelope.arrived);
    let mut newly_failed = Vec::new();
    for (n, &i) in pending.iter().enumerate() {
        let (relay, outcome) = match outcomes.get(n) {
            Some(o) => (o.relay.as_str(), o.outcome.clone()),
            None => (
                "none",
                Outcome::Temporary(Detail::local(
                    "4.3.0",
                    "internal error: the delivery agent gave no result",
                )),
            ),
        };
        let Some(st) = msg.state.get_mut(i) else {
            continue;
        };
        let rcpt = &msg.envelope.recipients[i];
        st.attempts += 1;
        st.last_attempt = Some(now);
        let (status, detail) = match outcome {
            Outcome::Delivered(d) => (RcptStatus::Delivered, d),
            Outcome::Relayed(d) => {
                // The next hop reports from now on.
                st.notified = true;
                (RcptStatus::Delivered, d)
            }
            // Still ours to report on: the notifier sends a "relayed" report if wanted.
            Outcome::RelayedWithoutDsn(mut d) => {
                d.relayed_without_dsn = true;
                (RcptStatus::Delivered, d)
            }
            Outcome::Permanent(d) => (RcptStatus::Failed, d),
            Outcome::Temporary(mut d) if expired => {
                d.expired_after = Some(config.max_age.to_string());
                (RcptStatus::Failed, d)
            }
            Outcome::Temporary(d) => (RcptStatus::Deferred, d),
        };
        st.status = status;
        st.detail = detail;
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
            st.attempts, st.detail
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
