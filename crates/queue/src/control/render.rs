//! The text `postern queue list` and `postern queue show` print.
//!
//! # Security
//! Message headers come from senders. `show` prints the header section as the spool
//! returns it ([`crate::admin::MessageDetail::headers`], control characters replaced), so
//! a hostile message cannot drive the operator's terminal.

use std::fmt::Write as _;

use crate::admin::{MessageDetail, MessageSummary, Place};

/// `postern queue list`: JSON (an array, pretty-printed, with a final newline) or text.
pub fn list(msgs: &[MessageSummary], json: bool, now: u64) -> Result<String, serde_json::Error> {
    if json {
        Ok(serde_json::to_string_pretty(msgs)? + "\n")
    } else {
        Ok(list_text(msgs, now))
    }
}

/// `postern queue show`: JSON (pretty-printed, with a final newline) or text.
pub fn show(d: &MessageDetail, json: bool) -> Result<String, serde_json::Error> {
    if json {
        Ok(serde_json::to_string_pretty(d)? + "\n")
    } else {
        Ok(show_text(d))
    }
}

/// The text listing: one line per message, one indented line per recipient.
pub fn list_text(msgs: &[MessageSummary], now: u64) -> String {
    let mut out = String::new();
    if msgs.is_empty() {
        out.push_str("The queue is empty.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<18}  {:<7}  {:>6}  {:>9}  SENDER",
        "QUEUE ID", "STATE", "AGE", "SIZE"
    );
    for m in msgs {
        let sender = if m.sender.is_empty() {
            "-".to_string()
        } else {
            m.sender.clone()
        };
        let _ = writeln!(
            out,
            "{:<18}  {:<7}  {:>6}  {:>9}  {sender}",
            m.id,
            m.place.as_str(),
            age(now.saturating_sub(m.arrived)),
            size(m.size)
        );
        if let Some(p) = &m.problem {
            let _ = writeln!(out, "    ({p})");
        }
        for r in &m.recipients {
            let mut line = format!("    {}  {}", r.address, r.status);
            if r.attempts > 0 {
                let _ = write!(line, ", {} attempt(s)", r.attempts);
            }
            if let Some(n) = r.next_attempt.filter(|_| r.status == "deferred") {
                let _ = write!(
                    line,
                    ", next {}",
                    if n <= now {
                        "now".to_string()
                    } else {
                        format!("in {}", age(n - now))
                    }
                );
            }
            if !r.reason.is_empty() && r.status != "delivered" {
                let _ = write!(line, ": {}", r.reason);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let count = |p: Place| msgs.iter().filter(|m| m.place == p).count();
    let _ = writeln!(
        out,
        "-- {} message(s): {} active, {} hold, {} failed, {} corrupt",
        msgs.len(),
        count(Place::Active),
        count(Place::Hold),
        count(Place::Failed),
        count(Place::Corrupt)
    );
    out
}

/// The text for one message: envelope, per-recipient history, headers.
pub fn show_text(d: &MessageDetail) -> String {
    let s = &d.summary;
    let now = crate::unix_now();
    let when = |t: u64| {
        format!(
            "{} ({} ago)",
            crate::rfc5322_date(t),
            age(now.saturating_sub(t))
        )
    };
    let mut out = String::new();
    let _ = writeln!(out, "Queue ID:   {}", s.id);
    let _ = writeln!(out, "State:      {}", s.place);
    let _ = writeln!(out, "File:       {}", d.path.display());
    let _ = writeln!(out, "Arrived:    {}", when(s.arrived));
    let _ = writeln!(out, "Size:       {} bytes", s.size);
    let _ = writeln!(out, "Client:     {}", d.client);
    let _ = writeln!(out, "Sender:     {}", s.sender);
    let _ = writeln!(
        out,
        "Body:       {}{}",
        d.body,
        if d.smtputf8 { ", SMTPUTF8" } else { "" }
    );
    if d.requiretls {
        let _ = writeln!(
            out,
            "REQUIRETLS: yes (RFC 8689: relayed only over authenticated TLS to a server offering REQUIRETLS, or returned with 5.7.30)"
        );
    }
    if d.tls_required_no {
        let _ = writeln!(
            out,
            "TLS-Required: No (RFC 8689 §5: DANE and MTA-STS failures do not stop this message unless [outbound] honour_tls_required_no = false; local [[outbound.policy]] entries still hold)"
        );
    }
    if let Some(t) = d.delay_warned {
        let _ = writeln!(out, "Delay warning sent: {}", when(t));
    }
    let _ = writeln!(out, "Recipients:");
    for (i, r) in s.recipients.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}  {}, {} attempt(s){}{}",
            r.address,
            r.status,
            r.attempts,
            if d.notified.get(i).copied().unwrap_or(false) {
                ", sender notified"
            } else {
                ""
            },
            d.dsn
                .get(i)
                .and_then(|p| p.as_ref())
                .map(|p| format!(", {p}"))
                .unwrap_or_default()
        );
        if let Some(t) = r.last_attempt {
            let _ = writeln!(out, "      last attempt: {}", when(t));
        }
        if let Some(t) = r.next_attempt.filter(|_| r.status == "deferred") {
            let _ = writeln!(out, "      next attempt: {}", crate::rfc5322_date(t));
        }
        if !r.reason.is_empty() {
            let _ = writeln!(out, "      result: {}", r.reason);
        }
        let o = &r.outcome;
        if let Some(code) = o.code {
            let _ = writeln!(
                out,
                "      remote reply: {code}{} from {}{}",
                o.status.map(|s| format!(" ({s})")).unwrap_or_default(),
                o.host.as_deref().unwrap_or("the next hop"),
                o.stage
                    .as_deref()
                    .map(|s| format!(", to {s}"))
                    .unwrap_or_default()
            );
        } else if let Some(s) = o.status {
            let _ = writeln!(out, "      status: {s}");
        }
    }
    out.push_str(&d.digest.text());
    let _ = writeln!(out, "Headers:");
    for line in d.headers.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn size(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_well() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(3 * 3600 + 7 * 60), "3h07m");
        assert_eq!(age(2 * 86_400 + 3600), "2d01h");
        assert_eq!(size(10), "10 B");
        assert_eq!(size(2048), "2.0 KiB");
    }

    #[test]
    fn empty_listing_says_so() {
        assert_eq!(list_text(&[], 0), "The queue is empty.\n");
    }
}
