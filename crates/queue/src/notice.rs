//! Which delivery reports an attempt calls for, and queueing them as new messages.
//!
//! After each attempt the scheduler hands the message here, its recipient state
//! already updated. A message owes its sender:
//!
//! - one **bounce** for the failed recipients not yet reported, unless NOTIFY leaves
//!   FAILURE out (no NOTIFY: failures are reported);
//! - one **delivery report** for delivered recipients whose NOTIFY has SUCCESS;
//! - at most one **delay warning** per message, when `[queue] delay_warning` is set and
//!   has passed, for deferred recipients whose NOTIFY has DELAY or who gave no NOTIFY.
//!
//! A report is queued like any message, through [`Spool::begin`] and
//! [`crate::Incoming::commit`] (written, fsynced, renamed into `active/`), with the null
//! sender `<>`, before the original's state is written. A crash in between can repeat a
//! report but never lose one. A report that cannot be queued is tried again at the
//! next attempt; a failed recipient still unreported when the message is done keeps
//! the message in `failed/`.
//!
//! Reports on a message received with REQUIRETLS return its header section only and
//! are queued with REQUIRETLS themselves (RFC 8689 §5), so the report, which names the
//! message, travels under the demand its sender made.
//!
//! When the queue was given a [`Sign`] hook (the daemon builds one from
//! `[[auth.dkim_sign]]`), each report is DKIM-signed before it is written: the
//! `DKIM-Signature` fields the hook returns are prepended to the built report, and the
//! stored bytes are never changed afterwards. The hook decides by the report's From
//! domain (`MAILER-DAEMON@hostname`) and returns `None` when no key applies.
//!
//! # Security
//! No report is ever sent about a message with a null sender (reports themselves have
//! one), so reports cannot loop: that case is logged and the message kept in
//! `failed/`. Reports only ever go to the envelope sender, never to addresses from the
//! message content.
//!
//! # Standards
//! RFC 3461 §5.2 and §6.1 (when DSNs are issued, null reverse-path), RFC 5321 §4.5.5
//! (no notification for a null reverse-path), RFC 3464 (content, see `dsn.rs`).

use std::io::{self, BufRead, Read};
use std::sync::Arc;

use postern_smtp::address::ReversePath;
use postern_smtp::command::BodyType;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::dsn::{self, Action, RcptReport, Report, Returned};
use crate::record::RcptStatus;
use crate::scheduler::Notify;
use crate::spool::blocking;
use crate::{Envelope, QueueConfig, QueueId, QueuedMessage, Recipient, SenderTls, Spool};

/// Longest header section returned in a report; longer ones are cut at a line end.
const MAX_RETURNED_HEADERS: u64 = 1 << 20;

/// A signing hook for the reports the queue builds: given the whole report (header
/// section and body, CRLF), the `DKIM-Signature` field(s) to prepend (each ending in
/// CRLF), or `None` to queue it unsigned. It must return `None` for a From domain it
/// holds no key for.
pub type Sign = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// What the scheduler's tasks need to queue reports.
pub(crate) struct Notifier {
    pub hostname: String,
    pub spool: Arc<Spool>,
    pub config: Arc<QueueConfig>,
    /// How queued reports reach the scheduler; `None` when it is not running.
    pub notify: Option<Notify>,
    pub sign: Option<Sign>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("hostname", &self.hostname)
            .field("signs", &self.sign.is_some())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Queue the reports `msg` owes its sender after an attempt that made the recipients
    /// in `newly_failed` fail, and mark what was reported in its state.
    pub(crate) async fn after_attempt(
        &self,
        msg: &mut QueuedMessage,
        newly_failed: &[usize],
        now: u64,
    ) {
        let id = msg.envelope.id;
        if msg.envelope.sender == ReversePath::Null {
            for &i in newly_failed {
                warn!(
                    queue_id = %id,
                    "{id}: to=<{}>: no bounce is sent: the message has a null sender (it is itself a delivery report); it will be kept in failed/",
                    msg.envelope.recipients[i]
                );
            }
            return;
        }
        for (i, st) in msg.state.iter_mut().enumerate() {
            let Some(r) = msg.envelope.recipients.get(i) else {
                continue;
            };
            let unwanted = match st.status {
                RcptStatus::Failed => !r.wants_failure_report(),
                RcptStatus::Delivered => !r.wants_success_report(),
                _ => false,
            };
            if unwanted && !st.notified {
                st.notified = true;
                if st.status == RcptStatus::Failed {
                    info!(
                        queue_id = %id,
                        "{id}: to=<{r}>: no bounce is sent: the sender asked for NOTIFY={}",
                        r.notify.unwrap_or_default()
                    );
                }
            }
        }
        self.report(msg, Action::Failed, now).await;
        self.report(msg, Action::Delivered, now).await;
        self.report(msg, Action::Relayed, now).await;
        let waited = now.saturating_sub(msg.envelope.arrived);
        let delay_due = self
            .config
            .delay_warning
            .is_some_and(|d| waited >= d.get().as_secs());
        if delay_due && msg.delay_warned.is_none() {
            self.report(msg, Action::Delayed, now).await;
        }
    }

    /// Queue one report of `action` for the recipients that call for it, if any.
    async fn report(&self, msg: &mut QueuedMessage, action: Action, now: u64) {
        let which: Vec<usize> = msg
            .state
            .iter()
            .enumerate()
            .filter(|(i, st)| {
                let Some(r) = msg.envelope.recipients.get(*i) else {
                    return false;
                };
                match action {
                    Action::Failed => st.status == RcptStatus::Failed && !st.notified,
                    Action::Delivered => {
                        st.status == RcptStatus::Delivered
                            && !st.notified
                            && !st.detail.relayed_without_dsn
                    }
                    Action::Relayed => {
                        st.status == RcptStatus::Delivered
                            && !st.notified
                            && st.detail.relayed_without_dsn
                    }
                    Action::Delayed => st.status == RcptStatus::Deferred && r.wants_delay_report(),
                }
            })
            .map(|(i, _)| i)
            .collect();
        if which.is_empty() {
            return;
        }
        let id = msg.envelope.id;
        let sender = msg.envelope.sender.clone();
        let what = match action {
            Action::Failed => "bounce",
            Action::Delayed => "delay warning",
            Action::Delivered => "delivery report",
            Action::Relayed => "relayed report",
        };
        match self.queue_report(msg, action, &which, now).await {
            Ok(report_id) => {
                match action {
                    Action::Delayed => msg.delay_warned = Some(now),
                    _ => which.iter().for_each(|&i| msg.state[i].notified = true),
                }
                info!(
                    queue_id = %id,
                    "{id}: {what} queued as {report_id} for {sender} ({} recipient(s))",
                    which.len()
                );
            }
            Err(e) => error!(
                queue_id = %id,
                "{id}: cannot queue the {what} for {sender}: {e}; it is tried again at the message's next attempt{}",
                if action == Action::Failed {
                    ", and the message is kept in failed/ if it never succeeds"
                } else {
                    ""
                }
            ),
        }
    }

    /// Build the report and queue it durably; its queue ID on success.
    async fn queue_report(
        &self,
        msg: &QueuedMessage,
        action: Action,
        which: &[usize],
        now: u64,
    ) -> io::Result<QueueId> {
        let ReversePath::Address(to) = &msg.envelope.sender else {
            return Err(io::Error::other("the message has a null sender"));
        };
        let limit = self.config.bounce_return_limit.bytes();
        let headers_only = Returned::choose_for(action, &msg.envelope, msg.body_len, limit);
        let copy = msg.clone();
        let original = blocking(move || read_original(&copy, headers_only.is_some())).await?;
        let returned = match headers_only {
            None => Returned::Full(&original),
            Some(why) => Returned::Headers(&original, why),
        };
        let id = QueueId::generate();
        let report = Report {
            action,
            hostname: &self.hostname,
            id,
            now,
            original: &msg.envelope,
            recipients: which
                .iter()
                .map(|&i| RcptReport {
                    recipient: &msg.envelope.recipients[i],
                    state: &msg.state[i],
                })
                .collect(),
            returned,
            retry_until: Some(msg.envelope.arrived + self.config.max_age.get().as_secs()),
        };
        let mut bytes = dsn::build(&report);
        if let Some(fields) = self.sign.as_ref().and_then(|sign| sign(&bytes)) {
            info!(queue_id = %msg.envelope.id, "{}: the report {id} is DKIM-signed (From: MAILER-DAEMON@{})", msg.envelope.id, self.hostname);
            let mut signed = fields;
            signed.extend_from_slice(&bytes);
            bytes = signed;
        }
        let envelope = Envelope {
            id,
            arrived: now,
            client_ip: None,
            helo: self.hostname.clone(),
            sender: ReversePath::Null,
            recipients: vec![Recipient::new(to.clone())],
            body: if bytes.is_ascii() {
                BodyType::SevenBit
            } else {
                BodyType::EightBitMime
            },
            smtputf8: msg.envelope.smtputf8,
            ret: None,
            envid: None,
            // RFC 8689 §5: a report on a REQUIRETLS message travels under the same demand.
            sender_tls: if msg.envelope.requiretls() {
                SenderTls::RequireTls
            } else {
                SenderTls::Default
            },
        };
        let mut incoming = self.spool.begin(envelope).await?;
        incoming.notify = self.notify.clone();
        incoming.write(&bytes).await?;
        incoming.commit().await?;
        Ok(id)
    }
}

/// The original message, or only its header section.
fn read_original(msg: &QueuedMessage, headers_only: bool) -> io::Result<Vec<u8>> {
    if !headers_only {
        return msg.read_body();
    }
    let mut r = msg.open_body()?.take(MAX_RETURNED_HEADERS);
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 || line == b"\r\n" {
            break;
        }
        if !line.ends_with(b"\n") {
            // Cut at the limit: keep whole lines only.
            break;
        }
        out.extend_from_slice(&line);
    }
    Ok(out)
}
