//! Part 1 of a report: the explanation for the person who sent the message, in plain
//! words: what happened, to which addresses, what the receiving server said, what to
//! do.

use super::lines::{para, text};
use super::{Action, HeadersOnly, Report, Returned, header_section};
use crate::Detail;
use crate::date::rfc5322_date;

/// Part 1: the explanation for a person.
pub(super) fn explanation(r: &Report<'_>) -> String {
    let utf8 = r.original.smtputf8;
    let mut t = String::new();
    para(
        &mut t,
        &format!("This is the mail system at {}.", r.hostname),
        "",
    );
    let sent = format!(
        "Your message{} was received on {} (queue ID {}).",
        subject_of(r.returned.bytes())
            // Part 1 is text/plain; charset=utf-8, written 7-bit safe by `build`.
            .map(|s| format!(" with the subject \"{}\"", text(&s, true)))
            .unwrap_or_default(),
        rfc5322_date(r.original.arrived),
        r.original.id
    );
    let lead = match r.action {
        Action::Failed => {
            "I'm sorry: your message could not be delivered to the recipient(s) listed below. The mail system has given up."
        }
        Action::Delayed => {
            "This is a warning only: your message has not been delivered yet to the recipient(s) listed below, and the mail system is still trying. You do not need to send it again."
        }
        Action::Delivered => {
            "Your message was delivered to the mailbox of the recipient(s) listed below, as you asked."
        }
        Action::Relayed => {
            "Your message was passed on to the next mail server for the recipient(s) listed below. You asked to be told of its delivery, but that server does not send delivery reports, so this is the last report you will get about them."
        }
    };
    para(&mut t, lead, "");
    para(&mut t, &sent, "");
    if let (Action::Delayed, Some(until)) = (r.action, r.retry_until) {
        para(
            &mut t,
            &format!("It will keep trying until {}.", rfc5322_date(until)),
            "",
        );
    }
    for rr in &r.recipients {
        t.push_str(&text(&format!("<{}>", rr.recipient.address), utf8));
        t.push_str("\r\n");
        why(&mut t, r.action, &rr.state.detail, utf8);
    }
    let advice = match r.action {
        Action::Failed => Some(
            "What you can do: check each address above for typing mistakes and send the message again. If an address is right, the problem is on the recipient's side: reach them another way, or ask their mail administrator. If you need help, forward this whole notice to your own mail administrator; the technical details that follow are for them.",
        ),
        Action::Delayed => Some(
            "Delays like this usually come from a problem on the recipient's side that is fixed in time. If the message is urgent, reach the recipient another way.",
        ),
        Action::Delivered | Action::Relayed => None,
    };
    if let Some(a) = advice {
        para(&mut t, a, "");
    }
    if r.original.requiretls() {
        let text = if r.action == Action::Failed {
            "Your message was sent with REQUIRETLS (RFC 8689): it may only travel over encrypted connections to authenticated mail servers that promise to do the same. A status of 5.7.30 above means that the next server could not meet that demand, so the message was not sent to it. This report is itself sent with REQUIRETLS, and carries only the headers of your message."
        } else {
            "Your message was sent with REQUIRETLS (RFC 8689); this report is itself sent with REQUIRETLS."
        };
        para(&mut t, text, "");
    }
    let returned = match r.returned {
        Returned::Full(_) => "Your message is attached below.".to_string(),
        Returned::Headers(_, HeadersOnly::Asked) => {
            "Only the headers of your message are attached, as you asked.".to_string()
        }
        Returned::Headers(_, HeadersOnly::TooLarge(limit)) => format!(
            "Only the headers of your message are attached: the whole message is larger than {} and is not sent back.",
            postern_config::Size(limit)
        ),
        Returned::Headers(_, HeadersOnly::NotAFailure) => {
            "The headers of your message are attached.".to_string()
        }
        Returned::Headers(_, HeadersOnly::RequireTls) => {
            "Only the headers of your message are attached: it was sent with REQUIRETLS, so its content is not sent back.".to_string()
        }
    };
    para(&mut t, &returned, "");
    t
}

/// Why one recipient is in the report, indented under its address.
fn why(t: &mut String, action: Action, detail: &Detail, utf8: bool) {
    match action {
        Action::Delivered => {}
        Action::Failed if detail.expired_after.is_some() => {
            let last = text(&detail.cause(), utf8);
            para(
                t,
                "It could not be delivered for as long as the mail system keeps messages, so it was given up.",
                "    ",
            );
            if !last.is_empty() {
                para(t, &format!("The last problem was: {last}"), "    ");
            }
        }
        _ => match detail.diagnostic() {
            Some(reply) => {
                let who = match &detail.host {
                    Some(h) => format!("The recipient's mail server ({}) answered:", text(h, utf8)),
                    None => "The receiving mail server answered:".to_string(),
                };
                para(t, &who, "    ");
                para(t, &text(&reply, utf8), "        ");
            }
            None if detail.is_empty() => t.push_str("\r\n"),
            None => para(
                t,
                &format!("The problem: {}", text(&detail.to_string(), utf8)),
                "    ",
            ),
        },
    }
    if action == Action::Delivered {
        t.push_str("\r\n");
    }
}

/// The original's Subject as its author wrote it: unfolded, and MIME encoded words
/// (RFC 2047, `=?utf-8?q?...?=`) decoded, read by mail-parser. At most 200 characters;
/// control characters (which a decoded word may hold) become spaces.
fn subject_of(message: &[u8]) -> Option<String> {
    let head = header_section(message);
    if head.is_empty() {
        return None;
    }
    // The empty line tells the parser where the header section ends.
    let mut section = head.to_vec();
    section.extend_from_slice(b"\r\n");
    let parsed = mail_parser::MessageParser::new().parse_headers(&section)?;
    let v: String = parsed
        .subject()?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}
