//! Operator commands, carried out by the scheduler itself so that they never race a
//! delivery: a command for a message being delivered right now waits until that
//! attempt ends, then applies to the message as the attempt left it.
//!
//! # Security
//! Commands arrive from the control socket, which only the `postern` user and group
//! can reach (see the binary's `control` module); IDs are already parsed.

use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Scheduler, lock, log_finished};
use crate::admin::{self, Place};
use crate::error::OpError;
use crate::spool::blocking;
use crate::{QueueId, QueuedMessage, Spool};

/// Where the answer to an operator command goes: a line for the operator, or why not.
pub(crate) type Responder = oneshot::Sender<Result<String, OpError>>;

/// What the operator asks of the running queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOp {
    /// Try now, ignoring retry times: one message, or (None) every message in `active/`.
    Flush(Option<QueueId>),
    /// Move to `hold/`: not delivered until released.
    Hold(QueueId),
    /// Move from `hold/` back to `active/`, due now.
    Release(QueueId),
    /// Remove without telling anyone.
    Delete(QueueId),
    /// Fail every pending recipient and send the sender a bounce.
    Bounce(QueueId),
}

impl AdminOp {
    fn id(self) -> Option<QueueId> {
        match self {
            AdminOp::Flush(id) => id,
            AdminOp::Hold(id)
            | AdminOp::Release(id)
            | AdminOp::Delete(id)
            | AdminOp::Bounce(id) => Some(id),
        }
    }
}

impl Scheduler {
    /// The message, from memory or (when it is only filed in the schedule) from
    /// `active/`.
    async fn take_waiting(&mut self, id: QueueId) -> Option<Box<QueuedMessage>> {
        if let Some(m) = self.waiting.take(id) {
            return Some(m);
        }
        if self.in_flight.contains(&id) {
            return None;
        }
        let spool = self.spool.clone();
        blocking(move || spool.load_active(id))
            .await
            .ok()
            .flatten()
            .map(Box::new)
    }

    /// Carry out `op` now, or after the attempt in progress for its message.
    pub(super) async fn admin(&mut self, op: AdminOp, reply: Responder) {
        if let Some(id) = op.id()
            && self.in_flight.contains(&id)
        {
            info!(queue_id = %id, "{id}: being delivered right now; {op:?} applies when this attempt ends");
            self.deferred.entry(id).or_default().push((op, reply));
            return;
        }
        let r = self.apply(op).await;
        let _ = reply.send(r);
    }

    /// An attempt ended: put the message back (if recipients remain), then carry out the
    /// commands that waited for it.
    /// Every waiting message due now, and those in flight again as soon as their attempt
    /// ends. Returns how many were waiting.
    /// Messages filed on disk are read back as the window has room, and those not
    /// tried since the flush are due at once.
    pub(super) fn flush_all(&mut self) {
        let now = self.now_ms();
        for (_, m) in self.waiting.drain() {
            self.insert(m, now);
        }
        self.flushed_in_flight
            .extend(self.in_flight.iter().copied());
        if let Err(e) = lock(&self.notify.index).flush_all() {
            warn!(
                "the queue flush could not reach every message waiting on disk ({e}); they are tried at their own times"
            );
        }
        self.flushed_at = Some(self.clock.now());
    }

    pub(super) async fn attempt_ended(&mut self, id: QueueId, back: Option<Box<QueuedMessage>>) {
        self.in_flight.remove(&id);
        let flushed = self.flushed_in_flight.remove(&id);
        let ops = self.deferred.remove(&id).unwrap_or_default();
        match back {
            Some(m) => {
                let due = if flushed { self.now_ms() } else { self.due(&m) };
                self.place(m, due);
                for (op, reply) in ops {
                    let r = self.apply(op).await;
                    let _ = reply.send(r);
                }
            }
            None => {
                for (_, reply) in ops {
                    let _ = reply.send(Err(OpError::FinishedMeanwhile(id)));
                }
            }
        }
    }

    async fn apply(&mut self, op: AdminOp) -> Result<String, OpError> {
        match op {
            AdminOp::Flush(None) => {
                self.flush_all();
                let spool = self.spool.clone();
                let n = blocking(move || spool.count_active()).await.unwrap_or(0);
                info!("queue flush by the operator: {n} message(s) due now");
                Ok(format!("{n} message(s) will be tried now"))
            }
            AdminOp::Flush(Some(id)) => match self.take_waiting(id).await {
                Some(m) => {
                    let now = self.now_ms();
                    self.insert(m, now);
                    info!(queue_id = %id, "{id}: flushed by the operator: trying now");
                    Ok(format!("{id}: will be tried now"))
                }
                None => Err(self.not_active(id)),
            },
            AdminOp::Hold(id) => {
                let Some(m) = self.take_waiting(id).await else {
                    return Err(self.not_active(id));
                };
                let spool = self.spool.clone();
                match blocking(move || spool.move_message(id, Place::Active, Place::Hold)).await {
                    Ok(()) => {
                        info!(queue_id = %id, "{id}: put on hold by the operator; it is not delivered until released");
                        Ok(format!("{id}: on hold"))
                    }
                    Err(e) => {
                        let due = self.due(&m);
                        self.place(m, due);
                        Err(OpError::io(id, "could not be put on hold")(e))
                    }
                }
            }
            AdminOp::Release(id) => self.release(id).await,
            AdminOp::Delete(id) => self.delete(id).await,
            AdminOp::Bounce(id) => {
                let m = match self.take_waiting(id).await {
                    Some(m) => *m,
                    None if self.spool.locate(id) == Some(Place::Hold) => {
                        self.spool.read_at(id, Place::Hold)?
                    }
                    None => return Err(self.not_active(id)),
                };
                bounce(m, &self.spool, &self.notifier).await
            }
        }
    }

    async fn release(&mut self, id: QueueId) -> Result<String, OpError> {
        if self.spool.locate(id) != Some(Place::Hold) {
            return Err(match self.spool.locate(id) {
                Some(p) => OpError::NotOnHold(id, p),
                None => OpError::NoSuchMessage(id),
            });
        }
        let spool = self.spool.clone();
        let m = blocking(move || {
            spool.move_message(id, Place::Hold, Place::Active)?;
            spool
                .read_at(id, Place::Active)
                .map_err(std::io::Error::other)
        })
        .await
        .map_err(OpError::io(id, "could not be released"))?;
        let now = self.now_ms();
        self.insert(Box::new(m), now);
        info!(queue_id = %id, "{id}: released by the operator: trying now");
        Ok(format!("{id}: released, will be tried now"))
    }

    async fn delete(&mut self, id: QueueId) -> Result<String, OpError> {
        let place = if let Some(m) = self.take_waiting(id).await {
            drop(m);
            Place::Active
        } else {
            match self.spool.locate(id) {
                Some(Place::Active) => return Err(self.not_active(id)),
                Some(p) => p,
                None => return Err(OpError::NoSuchMessage(id)),
            }
        };
        let spool = self.spool.clone();
        blocking(move || spool.delete_message(id, place))
            .await
            .map_err(OpError::io(id, "could not be deleted"))?;
        warn!(queue_id = %id, "{id}: deleted from {place}/ by the operator; nobody was told");
        Ok(format!("{id}: deleted"))
    }

    /// Why a command that needs the message in the scheduler's hands cannot have it.
    fn not_active(&self, id: QueueId) -> OpError {
        match self.spool.locate(id) {
            Some(Place::Hold) => OpError::OnHold(id),
            Some(Place::Failed) => OpError::InFailed(id),
            Some(Place::Corrupt) => OpError::InCorrupt(id),
            Some(Place::Active) => OpError::NotPickedUp(id),
            None => OpError::NoSuchMessage(id),
        }
    }
}

/// Fail the pending recipients of `m`, queue the bounce it then owes, and finish it.
pub(crate) async fn bounce(
    mut m: QueuedMessage,
    spool: &Arc<Spool>,
    notifier: &crate::notice::Notifier,
) -> Result<String, OpError> {
    let id = m.envelope.id;
    let failed = admin::fail_pending(&mut m);
    notifier
        .after_attempt(&mut m, &failed, notifier.clock.now())
        .await;
    let (spool2, m2) = (spool.clone(), m.clone());
    match blocking(move || spool2.finish(&m2)).await {
        Ok(how) => {
            warn!(
                queue_id = %id,
                "{id}: {} recipient(s) returned to the sender {} by the operator",
                failed.len(),
                m.envelope.sender
            );
            log_finished(&m, how, spool);
            Ok(match how {
                crate::Finished::Removed => format!(
                    "{id}: {} recipient(s) failed; the sender {} is sent a bounce",
                    failed.len(),
                    m.envelope.sender
                ),
                crate::Finished::KeptInFailed => format!(
                    "{id}: {} recipient(s) failed; no bounce could be sent (null sender), kept in failed/",
                    failed.len()
                ),
            })
        }
        Err(e) => Err(OpError::io(
            id,
            "recipients marked failed, but the message could not be finished",
        )(e)),
    }
}

/// `postern queue bounce` while the daemon is stopped (the caller holds the spool lock):
/// the bounce is queued in `active/` and sent when the daemon starts. `sign` signs it as
/// the daemon would (see [`crate::Sign`]).
pub async fn bounce_offline(
    spool: Arc<Spool>,
    config: crate::QueueConfig,
    hostname: &str,
    id: QueueId,
    sign: Option<crate::Sign>,
) -> Result<String, OpError> {
    let m = match spool.locate(id) {
        Some(p @ (Place::Active | Place::Hold)) => spool.read_at(id, p)?,
        Some(p) => {
            return Err(OpError::NotBounceable(id, p));
        }
        None => return Err(OpError::NoSuchMessage(id)),
    };
    // Nobody listens: the bounce waits in active/ for the daemon's next start, which
    // rebuilds its schedule (the commit marks it incomplete).
    let notifier = crate::notice::Notifier {
        hostname: hostname.to_string(),
        spool: spool.clone(),
        config: Arc::new(config),
        notify: None,
        sign,
        clock: crate::clock::system(),
    };
    bounce(m, &spool, &notifier).await
}
