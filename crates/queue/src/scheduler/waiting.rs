//! The messages in memory waiting for their next attempt (the bounded active window),
//! in three lines: newly accepted mail, retries, and null-sender reports (bounces,
//! delay warnings, delivery reports).
//!
//! New mail is picked before any retry that is due: a backlog of deferred mail never
//! delays fresh mail for more than the time a delivery slot takes to free up.
//!
//! # Security
//! Anyone can make us send reports (a forged sender, `NOTIFY=SUCCESS`) to destinations
//! of their choosing, including ones that stall every attempt. Reports therefore get at
//! most their own share of the delivery slots (`[queue] report_concurrency`): however
//! many of them stall, the other slots stay free for ordinary mail, which is picked from
//! its own lines in due order.

use std::collections::{BTreeMap, HashMap};

use postern_smtp::address::ReversePath;

use crate::{QueueId, QueuedMessage};

type Line = BTreeMap<(u64, QueueId), Box<QueuedMessage>>;

/// Whether a message is a report (null sender, RFC 5321 §4.5.5).
pub(super) fn is_report(msg: &QueuedMessage) -> bool {
    msg.envelope.sender == ReversePath::Null
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Fresh,
    Retry,
    Report,
}

#[derive(Default)]
pub(super) struct Waiting {
    fresh: Line,
    retry: Line,
    reports: Line,
    /// Where each message waits, and its due time.
    at: HashMap<QueueId, (Which, u64)>,
}

impl Waiting {
    fn line(&mut self, w: Which) -> &mut Line {
        match w {
            Which::Fresh => &mut self.fresh,
            Which::Retry => &mut self.retry,
            Which::Report => &mut self.reports,
        }
    }

    /// Add a message due at `due` (ms); `fresh` for mail never tried yet.
    pub(super) fn insert(&mut self, due: u64, msg: Box<QueuedMessage>, fresh: bool) {
        let id = msg.envelope.id;
        if let Some(old) = self.take(id) {
            drop(old);
        }
        let w = if is_report(&msg) {
            Which::Report
        } else if fresh {
            Which::Fresh
        } else {
            Which::Retry
        };
        self.line(w).insert((due, id), msg);
        self.at.insert(id, (w, due));
    }

    pub(super) fn len(&self) -> usize {
        self.at.len()
    }

    pub(super) fn contains(&self, id: QueueId) -> bool {
        self.at.contains_key(&id)
    }

    /// Take one message out, wherever it waits.
    pub(super) fn take(&mut self, id: QueueId) -> Option<Box<QueuedMessage>> {
        let (w, due) = self.at.remove(&id)?;
        self.line(w).remove(&(due, id))
    }

    /// The retry due last, to make room for new mail; with its due time (ms).
    pub(super) fn evict_retry(&mut self) -> Option<(u64, Box<QueuedMessage>)> {
        let ((due, id), m) = self.retry.pop_last()?;
        self.at.remove(&id);
        Some((due, m))
    }

    /// Everything with its due time (ms), emptying every line.
    pub(super) fn drain(&mut self) -> Vec<(u64, Box<QueuedMessage>)> {
        self.at.clear();
        let mut out = Vec::new();
        for line in [&mut self.fresh, &mut self.retry, &mut self.reports] {
            out.extend(std::mem::take(line).into_iter().map(|((d, _), m)| (d, m)));
        }
        out
    }

    /// When the next message that may start is due; reports only if `reports_may`.
    pub(super) fn next_due(&self, reports_may: bool) -> Option<u64> {
        let first = |l: &Line| l.keys().next().map(|k| k.0);
        let report = if reports_may {
            first(&self.reports)
        } else {
            None
        };
        [first(&self.fresh), first(&self.retry), report]
            .into_iter()
            .flatten()
            .min()
    }

    /// The message to start now: new mail first, then the earliest due retry or report
    /// (reports only if `reports_may`).
    pub(super) fn pop_due(&mut self, now: u64, reports_may: bool) -> Option<Box<QueuedMessage>> {
        let first = |l: &Line| l.keys().next().map(|k| k.0).filter(|&d| d <= now);
        let which = if first(&self.fresh).is_some() {
            Which::Fresh
        } else {
            let retry = first(&self.retry);
            let report = if reports_may {
                first(&self.reports)
            } else {
                None
            };
            match (retry, report) {
                (Some(m), Some(r)) if r < m => Which::Report,
                (Some(_), _) => Which::Retry,
                (None, Some(_)) => Which::Report,
                (None, None) => return None,
            }
        };
        let ((_, id), m) = self.line(which).pop_first()?;
        self.at.remove(&id);
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, RcptState};
    use postern_smtp::address::parse_mailbox;

    fn msg(sender: &str) -> Box<QueuedMessage> {
        let sender = if sender.is_empty() {
            ReversePath::Null
        } else {
            ReversePath::Address(parse_mailbox(sender).unwrap())
        };
        Box::new(QueuedMessage {
            envelope: Envelope {
                id: QueueId::generate(),
                arrived: 0,
                client_ip: None,
                helo: String::new(),
                sender,
                recipients: vec![parse_mailbox("b@x.test").unwrap().into()],
                body: postern_smtp::command::BodyType::SevenBit,
                smtputf8: false,
                ret: None,
                envid: None,
                sender_tls: crate::SenderTls::Default,
            },
            path: "x".into(),
            body_offset: 0,
            body_len: 0,
            state: vec![RcptState::new()],
            delay_warned: None,
        })
    }

    #[test]
    fn new_mail_goes_before_older_due_retries() {
        let mut w = Waiting::default();
        let old = msg("a@x.test");
        let new = msg("a@x.test");
        let (old_id, new_id) = (old.envelope.id, new.envelope.id);
        w.insert(10, old, false);
        w.insert(500, new, true);
        assert_eq!(w.pop_due(1_000, true).unwrap().envelope.id, new_id);
        assert_eq!(w.pop_due(1_000, true).unwrap().envelope.id, old_id);
        assert!(w.pop_due(1_000, true).is_none());
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn reports_wait_when_they_may_not_start_and_eviction_takes_the_last_retry() {
        let mut w = Waiting::default();
        let r = msg("");
        let (a, b) = (msg("a@x.test"), msg("a@x.test"));
        let b_id = b.envelope.id;
        w.insert(1, r, false);
        w.insert(5, a, false);
        w.insert(9, b, false);
        assert_eq!(w.next_due(false), Some(5));
        assert_eq!(w.next_due(true), Some(1));
        let (due, m) = w.evict_retry().unwrap();
        assert_eq!((due, m.envelope.id), (9, b_id));
        assert!(!w.contains(b_id));
        assert_eq!(w.len(), 2);
        assert!(w.pop_due(100, false).is_some());
        assert!(w.pop_due(100, false).is_none(), "the report may not start");
        assert!(w.pop_due(100, true).is_some());
    }
}
