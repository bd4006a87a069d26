//! One envelope recipient: the address, and what its sender asked to be told about it.
//!
//! # Standards
//! RFC 3461 §4.1 (NOTIFY: without it, the MTA decides; Postern then reports failures
//! only) and §4.2 (ORCPT, carried unchanged).

use std::fmt;
use std::ops::Deref;

use postern_smtp::address::Address;
use postern_smtp::command::{Notify, Orcpt};

/// A recipient of a queued message.
///
/// It dereferences to its [`Address`] and displays as it, so code that only cares about
/// where the mail goes can keep writing `rcpt.domain` and `format!("{rcpt}")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: Address,
    /// RCPT `NOTIFY=`, when the client gave it.
    pub notify: Option<Notify>,
    /// RCPT `ORCPT=`, when the client gave it (kept as received, to relay it).
    pub orcpt: Option<Orcpt>,
}

impl Recipient {
    /// A recipient without DSN parameters.
    pub fn new(address: Address) -> Recipient {
        Recipient {
            address,
            notify: None,
            orcpt: None,
        }
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Whether a permanent failure is reported to the sender: unless NOTIFY leaves
    /// FAILURE out (NEVER, or SUCCESS/DELAY alone).
    pub fn wants_failure_report(&self) -> bool {
        self.notify.is_none_or(|n| n.failure)
    }

    /// Whether a delay warning is sent when `[queue] delay_warning` is on: when NOTIFY
    /// asks for DELAY, or leaves the choice to the MTA (no NOTIFY).
    pub fn wants_delay_report(&self) -> bool {
        self.notify.is_none_or(|n| n.delay)
    }

    /// Whether a successful delivery is reported: only when NOTIFY asks for SUCCESS.
    pub fn wants_success_report(&self) -> bool {
        self.notify.is_some_and(|n| n.success)
    }

    /// The DSN parameters in their SMTP form (`NOTIFY=... ORCPT=...`), if any.
    pub fn dsn_params(&self) -> Option<String> {
        let mut p = Vec::new();
        if let Some(n) = self.notify {
            p.push(format!("NOTIFY={n}"));
        }
        if let Some(o) = &self.orcpt {
            p.push(format!("ORCPT={o}"));
        }
        (!p.is_empty()).then(|| p.join(" "))
    }

    /// The DSN parameters to pass on to the next hop: like [`Recipient::dsn_params`],
    /// but an internationalised ORCPT is written for the transaction (RFC 6533 §3):
    /// UTF-8 when it carries `SMTPUTF8`, downgraded to utf-8-addr-xtext when not.
    pub fn relay_dsn_params(&self, smtputf8: bool) -> Option<String> {
        let mut p = Vec::new();
        if let Some(n) = self.notify {
            p.push(format!("NOTIFY={n}"));
        }
        if let Some(o) = &self.orcpt {
            p.push(format!("ORCPT={}", o.relay_value(smtputf8)));
        }
        (!p.is_empty()).then(|| p.join(" "))
    }
}

impl From<Address> for Recipient {
    fn from(address: Address) -> Recipient {
        Recipient::new(address)
    }
}

impl Deref for Recipient {
    type Target = Address;
    fn deref(&self) -> &Address {
        &self.address
    }
}

/// The address, as `local@domain` (no angle brackets), like [`Address`].
impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.address.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_smtp::address::parse_mailbox;

    #[test]
    fn an_internationalised_orcpt_is_relayed_per_smtputf8() {
        let mut r = Recipient::new(parse_mailbox("bob@example.org").unwrap());
        r.orcpt = Some(Orcpt::parse("rfc822;j+C3+BCrgen@example.de").unwrap());
        // Kept as received for the queue file ...
        assert_eq!(
            r.dsn_params().as_deref(),
            Some("ORCPT=rfc822;j+C3+BCrgen@example.de")
        );
        // ... written per RFC 6533 for the next hop.
        assert_eq!(
            r.relay_dsn_params(true).as_deref(),
            Some("ORCPT=utf-8;j\u{fc}rgen@example.de")
        );
        assert_eq!(
            r.relay_dsn_params(false).as_deref(),
            Some("ORCPT=utf-8;j\\x{FC}rgen@example.de")
        );
    }

    #[test]
    fn what_each_notify_asks_for() {
        let mut r = Recipient::new(parse_mailbox("bob@example.org").unwrap());
        assert_eq!(r.to_string(), "bob@example.org");
        assert_eq!(r.domain.to_string(), "example.org");
        assert!(r.wants_failure_report() && r.wants_delay_report());
        assert!(!r.wants_success_report());
        assert_eq!(r.dsn_params(), None);
        r.notify = Some(Notify::NEVER);
        assert!(!r.wants_failure_report() && !r.wants_delay_report());
        r.notify = Some(Notify::parse("SUCCESS").unwrap());
        assert!(r.wants_success_report() && !r.wants_failure_report());
        r.orcpt = Some(Orcpt::parse("rfc822;b+2Bo@x").unwrap());
        assert_eq!(
            r.dsn_params().as_deref(),
            Some("NOTIFY=SUCCESS ORCPT=rfc822;b+2Bo@x")
        );
    }
}
