//! The outcome of every outbound TLS session, for whoever wants it (the report store of
//! `postern-reports`: TLS-RPT, RFC 8460, and `postern tls-report`). The agent calls
//! [`TlsObserver::tls_session`] once per new SMTP session, where the outcome is known; a
//! pooled connection used again is the same session and is not reported again.

use std::net::IpAddr;
use std::sync::Arc;

use super::agent::SessionError;
use super::client::{Client, Peer};
use super::engine::{DaneStatus, Source, StsPolicy};

/// The HELO recorded in the queue envelope of mail Postern generates as a report
/// (TLS-RPT, DMARC aggregate): the queue's flag for "our own report mail". Sessions that
/// carry it are reported with [`TlsSession::own_report`] set, so report deliveries are
/// never counted in the next report.
pub const REPORT_MAIL_HELO: &str = "postern-report.invalid";

/// Whether `envelope` is our own report mail: the [`REPORT_MAIL_HELO`] flag on mail that
/// no client sent. A client that says `EHLO postern-report.invalid` gets its HELO
/// recorded too, but never makes its own deliveries uncounted.
pub fn is_own_report(envelope: &postern_queue::Envelope) -> bool {
    envelope.helo == REPORT_MAIL_HELO && envelope.client_ip.is_none()
}

/// RFC 8460 §4.3 policy types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    Sts,
    Tlsa,
    NoPolicyFound,
}

impl PolicyType {
    /// The RFC 8460 name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::Sts => "sts",
            PolicyType::Tlsa => "tlsa",
            PolicyType::NoPolicyFound => "no-policy-found",
        }
    }
}

/// One outbound session's TLS outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    pub policy_type: PolicyType,
    /// RFC 8460 policy domain: the MX host for DANE, the recipient domain otherwise.
    pub policy_domain: String,
    /// The recipient domain the mail was for.
    pub recipient_domain: String,
    /// RFC 8460 `policy-string`: the TLSA records, or the MTA-STS policy lines.
    pub policy_strings: Vec<String>,
    /// RFC 8460 `mx-host` patterns of an MTA-STS policy.
    pub mx_patterns: Vec<String>,
    pub mx_host: String,
    pub receiving_ip: IpAddr,
    /// Our address on the connection (RFC 8460 `sending-mta-ip`); `None` when no
    /// connection was made (a host skipped by the policy).
    pub sending_ip: Option<IpAddr>,
    /// `None`: the session succeeded; else the RFC 8460 §4.3 result type
    /// (`starttls-not-supported`, `certificate-host-mismatch`, `validation-failure`, ...).
    pub result: Option<&'static str>,
    /// Free text for `failure-reason-code`.
    pub detail: Option<String>,
    /// `TLSv1.3`; `None` for a plaintext session.
    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    /// The peer's certificate was authenticated (PKIX chain or DANE).
    pub verified: bool,
    /// The message was our own report mail ([`REPORT_MAIL_HELO`]).
    pub own_report: bool,
}

/// Receives [`TlsSession`]s. Must not block: called on the delivery path.
pub trait TlsObserver: Send + Sync + std::fmt::Debug {
    fn tls_session(&self, session: TlsSession);
}

/// The observer slot of the agent.
pub(crate) type Slot = std::sync::RwLock<Option<Arc<dyn TlsObserver>>>;

/// What one new session came to, as [`super::agent::SmtpAgent::session`] returned it.
pub(crate) struct Attempt<'a> {
    pub domain: &'a str,
    pub peer: &'a Peer,
    pub dane: &'a DaneStatus,
    pub sts: Option<&'a StsPolicy>,
    pub own_report: bool,
}

/// Report the outcome of a session to `slot`'s observer, if any. Connection failures
/// before any TLS was tried are not TLS sessions and are not reported.
/// `testing`: the recipient domain's MTA-STS policy in testing mode, whose would-be
/// failures (MX not listed, certificate not verified for the MX host) are reported as
/// failures although the mail went (RFC 8460 §4.3, RFC 8461 §5).
pub(crate) fn session(
    slot: &Slot,
    a: &Attempt<'_>,
    source: Source,
    testing: Option<&super::engine::StsCheck>,
    result: &Result<Client, SessionError>,
) {
    let Some(obs) = slot.read().unwrap_or_else(|p| p.into_inner()).clone() else {
        return;
    };
    let sending_ip = match result {
        Ok(c) => c.local_ip,
        Err(SessionError::NoStartTls { local, .. } | SessionError::TlsFailed { local, .. }) => {
            *local
        }
        Err(_) => None,
    };
    let (result, detail, tls, verified) = match result {
        Ok(c) => match &c.tls {
            Some((trust, summary)) => {
                let (result, detail) = match testing {
                    Some(t) if !t.mx_matches => (
                        Some("validation-failure"),
                        Some(format!(
                            "MTA-STS testing: MX host {} matches none of {}",
                            a.peer.host,
                            t.patterns.join(", ")
                        )),
                    ),
                    Some(_) if trust != "Verified" => (
                        Some(if trust == "Trusted" {
                            "certificate-host-mismatch"
                        } else {
                            "certificate-not-trusted"
                        }),
                        Some(format!(
                            "MTA-STS testing: certificate not verified for {} ({trust})",
                            a.peer.host
                        )),
                    ),
                    _ => (None, None),
                };
                (result, detail, Some(summary.clone()), trust != "Untrusted")
            }
            None if !c.caps.starttls => (
                Some("starttls-not-supported"),
                Some("STARTTLS not offered".to_string()),
                None,
                false,
            ),
            None => (None, None, None, false),
        },
        Err(SessionError::NoStartTls { .. }) => (
            Some("starttls-not-supported"),
            Some("STARTTLS not offered".into()),
            None,
            false,
        ),
        Err(SessionError::TlsFailed { why, .. }) => {
            (Some(classify(why, source)), Some(why.clone()), None, false)
        }
        Err(_) => return,
    };
    let (tls_version, cipher) = match tls.as_deref().and_then(|s| s.split_once(" with cipher ")) {
        Some((v, c)) => (Some(v.to_string()), Some(c.to_string())),
        None => (None, None),
    };
    obs.tls_session(TlsSession {
        sending_ip,
        tls_version,
        cipher,
        verified,
        result,
        detail,
        ..describe(a, source)
    });
}

/// A host skipped by the policy (DANE: bogus DNSSEC, unusable TLSA under `dane-only`;
/// MTA-STS `enforce`: an MX host that matches no `mx` pattern).
pub(crate) fn skipped(slot: &Slot, a: &Attempt<'_>, source: Source, metric: &str, reason: &str) {
    let Some(obs) = slot.read().unwrap_or_else(|p| p.into_inner()).clone() else {
        return;
    };
    if source == Source::MtaSts {
        let mut s = describe(a, Source::MtaSts);
        s.result = Some("validation-failure");
        s.detail = Some(reason.to_string());
        obs.tls_session(s);
        return;
    }
    let result = match metric {
        "bogus" => "dnssec-invalid",
        "unusable" => "tlsa-invalid",
        _ => "dane-required",
    };
    let mut s = describe(a, Source::Dane);
    s.policy_type = PolicyType::Tlsa;
    s.policy_domain = a.peer.host.clone();
    s.result = Some(result);
    s.detail = Some(reason.to_string());
    obs.tls_session(s);
}

/// The policy part of a record (result fields empty: a success in plaintext).
fn describe(a: &Attempt<'_>, source: Source) -> TlsSession {
    let (policy_type, policy_domain, policy_strings, mx_patterns) = match (source, a.dane) {
        (Source::Dane, DaneStatus::Records { records, .. }) => (
            PolicyType::Tlsa,
            a.peer.host.clone(),
            records.iter().map(|(r, _)| r.to_string()).collect(),
            Vec::new(),
        ),
        // An MTA-STS policy (enforce, or testing: reported all the same, RFC 8460 §4.4).
        (_, _) if source == Source::MtaSts || a.sts.is_some() => {
            let sts = a.sts.cloned().unwrap_or(StsPolicy {
                mode: super::engine::StsMode::Enforce,
                mx: Vec::new(),
                max_age: 0,
                about: String::new(),
            });
            let mode = match sts.mode {
                super::engine::StsMode::Enforce => "enforce",
                super::engine::StsMode::Testing => "testing",
            };
            let mut lines = vec!["version: STSv1".to_string(), format!("mode: {mode}")];
            lines.extend(sts.mx.iter().map(|m| format!("mx: {m}")));
            if sts.max_age > 0 {
                lines.push(format!("max_age: {}", sts.max_age));
            }
            (PolicyType::Sts, a.domain.to_string(), lines, sts.mx)
        }
        _ => (
            PolicyType::NoPolicyFound,
            a.domain.to_string(),
            Vec::new(),
            Vec::new(),
        ),
    };
    TlsSession {
        policy_type,
        policy_domain,
        recipient_domain: a.domain.to_string(),
        policy_strings,
        mx_patterns,
        mx_host: a.peer.host.clone(),
        receiving_ip: a.peer.ip,
        sending_ip: None,
        result: None,
        detail: None,
        tls_version: None,
        cipher: None,
        verified: false,
        own_report: a.own_report,
    }
}

/// The RFC 8460 §4.3 result type for a failed handshake, from the verifier's reason.
pub fn classify(why: &str, source: Source) -> &'static str {
    let w = why.to_ascii_lowercase();
    if source == Source::Dane {
        "validation-failure"
    } else if w.contains("expired") || w.contains("notvalidyet") || w.contains("not valid yet") {
        "certificate-expired"
    } else if w.contains("name") || w.contains("host") {
        "certificate-host-mismatch"
    } else if w.contains("issuer") || w.contains("trust") || w.contains("self-signed") {
        "certificate-not-trusted"
    } else {
        "validation-failure"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_smtp::address::{ReversePath, parse_mailbox};

    #[test]
    fn only_mail_no_client_sent_is_our_own_report() {
        let mut e = postern_queue::Envelope {
            id: postern_queue::QueueId::generate(),
            arrived: 0,
            client_ip: None,
            helo: REPORT_MAIL_HELO.into(),
            sender: ReversePath::Address(parse_mailbox("rpt@example.org").unwrap()),
            recipients: vec![parse_mailbox("tlsrpt@example.net").unwrap().into()],
            body: Default::default(),
            smtputf8: false,
            ret: None,
            envid: None,
            sender_tls: Default::default(),
        };
        assert!(is_own_report(&e));
        // A client that says EHLO postern-report.invalid.
        e.client_ip = Some("192.0.2.1".parse().unwrap());
        assert!(!is_own_report(&e));
        e.client_ip = None;
        e.helo = "client.example.org".into();
        assert!(!is_own_report(&e));
    }
}
