//! The messages waiting for their next attempt, in two lines: ordinary mail, and
//! null-sender reports (bounces, delay warnings, delivery reports).
//!
//! # Security
//! Anyone can make us send reports (a forged sender, `NOTIFY=SUCCESS`) to destinations
//! of their choosing, including ones that stall every attempt. Reports therefore get at
//! most their own share of the delivery slots (`[queue] report_concurrency`): however
//! many of them stall, the other slots stay free for ordinary mail, which is picked from
//! its own line in due order.

use std::collections::BTreeMap;

use postern_smtp::address::ReversePath;

use crate::{QueueId, QueuedMessage};

type Line = BTreeMap<(u64, QueueId), Box<QueuedMessage>>;

/// Whether a message is a report (null sender, RFC 5321 §4.5.5).
pub(super) fn is_report(msg: &QueuedMessage) -> bool {
    msg.envelope.sender == ReversePath::Null
}

#[derive(Default)]
pub(super) struct Waiting {
    mail: Line,
    reports: Line,
}

impl Waiting {
    pub(super) fn insert(&mut self, due: u64, msg: Box<QueuedMessage>) {
        let line = if is_report(&msg) {
            &mut self.reports
        } else {
            &mut self.mail
        };
        line.insert((due, msg.envelope.id), msg);
    }

    /// Take one message out, wherever it waits.
    pub(super) fn take(&mut self, id: QueueId) -> Option<Box<QueuedMessage>> {
        for line in [&mut self.mail, &mut self.reports] {
            if let Some(key) = line.keys().find(|(_, i)| *i == id).copied() {
                return line.remove(&key);
            }
        }
        None
    }

    /// Everything, emptying both lines.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Box<QueuedMessage>> + use<> {
        let mail = std::mem::take(&mut self.mail);
        let reports = std::mem::take(&mut self.reports);
        mail.into_values().chain(reports.into_values())
    }

    /// When the next message that may start is due; reports only if `reports_may`.
    pub(super) fn next_due(&self, reports_may: bool) -> Option<u64> {
        let mail = self.mail.keys().next().map(|k| k.0);
        let report = reports_may
            .then(|| self.reports.keys().next().map(|k| k.0))
            .flatten();
        match (mail, report) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest message due by `now` that may start (reports only if `reports_may`).
    pub(super) fn pop_due(&mut self, now: u64, reports_may: bool) -> Option<Box<QueuedMessage>> {
        let mail = self.mail.keys().next().map(|k| k.0).filter(|&d| d <= now);
        let report = reports_may
            .then(|| self.reports.keys().next().map(|k| k.0))
            .flatten()
            .filter(|&d| d <= now);
        match (mail, report) {
            (Some(m), Some(r)) if r < m => self.reports.pop_first().map(|(_, v)| v),
            (Some(_), _) => self.mail.pop_first().map(|(_, v)| v),
            (None, Some(_)) => self.reports.pop_first().map(|(_, v)| v),
            (None, None) => None,
        }
    }
}
