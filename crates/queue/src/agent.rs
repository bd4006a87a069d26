//! The boundary between the queue and whatever carries mail onward.

use std::future::Future;
use std::pin::Pin;

use crate::{Detail, QueuedMessage};

/// A boxed future, so that agents can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What became of one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered into the recipient's mailbox (final delivery, e.g. a local Maildir); the
    /// detail is the receiving side's answer (for the log). A recipient with
    /// `NOTIFY=SUCCESS` gets a delivery report.
    Delivered(Detail),
    /// Accepted by the next MTA, which is now responsible for the message and for any
    /// report about it (RFC 3461 §5.2.1); the detail is its answer. Counts as
    /// delivered, but the queue sends no delivery report.
    Relayed(Detail),
    /// Accepted by a next MTA that does not offer DSN (RFC 3461 §5.2.2): it was not
    /// given the NOTIFY requests and will send no report, so a recipient with
    /// `NOTIFY=SUCCESS` gets a "relayed" report from us. Counts as delivered.
    RelayedWithoutDsn(Detail),
    /// Try again later.
    Temporary(Detail),
    /// Will never succeed.
    Permanent(Detail),
}

impl Outcome {
    /// The detail, whatever the outcome.
    pub fn detail(&self) -> &Detail {
        match self {
            Outcome::Delivered(d)
            | Outcome::Relayed(d)
            | Outcome::RelayedWithoutDsn(d)
            | Outcome::Temporary(d)
            | Outcome::Permanent(d) => d,
        }
    }
}

/// An outcome with the name of the agent/next hop that produced it (`maildir`, `mx.example`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub relay: String,
    pub outcome: Outcome,
}

/// Delivers recipients of a queued message. The scheduler calls it with the indexes (into
/// `msg.envelope.recipients`) still pending and expects one outcome per index, in order.
/// Errors are temporary unless the agent is sure they are permanent.
pub trait DeliveryAgent: Send + Sync + 'static {
    fn deliver<'a>(
        &'a self,
        msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> BoxFuture<'a, Vec<DeliveryOutcome>>;
}

impl std::fmt::Debug for dyn DeliveryAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryAgent")
    }
}
