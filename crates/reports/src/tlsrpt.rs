//! TLS-RPT (RFC 8460): the daily report per policy domain, from the store's outbound
//! records; the `_smtp._tls` record that asks for it.
//!
//! Counted: every outbound session recorded for the day, except those carrying our own
//! report mail ([`crate::event::Outbound::own_report`]) and plaintext sessions that no
//! policy asked to protect and that did not fail (configured `none`, or `may` falling
//! back): a success is a TLS session, a failure one with an RFC 8460 result type.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use crate::event::{Event, Outbound};

/// One policy domain's report, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub policy_domain: String,
    pub report_id: String,
    pub begin: u64,
    pub end: u64,
    pub json: Value,
    pub successes: u64,
    pub failures: u64,
}

/// Who we are in reports.
#[derive(Debug, Clone)]
pub struct Submitter {
    pub organization: String,
    /// The From address of report mail (DMARC's `<email>`).
    pub from: String,
    /// `contact-info` (TLS-RPT) and, when it differs from `from`, DMARC's
    /// `<extra_contact_info>`.
    pub contact: String,
    /// The submitter domain (the From address's domain).
    pub domain: String,
}

/// RFC 3339 UTC of Unix time `t`.
pub fn rfc3339(t: u64) -> String {
    let Some(d) = i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
    else {
        return "9999-12-31T23:59:59Z".into();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// Whether a session belongs in a TLS-RPT report: not our own report mail, and TLS was
/// used or a failure recorded (a plaintext session with no policy is not a TLS session).
pub(crate) fn counted(o: &Outbound) -> bool {
    !o.own_report && (o.result.is_some() || o.tls_version.is_some())
}

/// The reports for `[begin, end)`, one per policy domain with at least one counted
/// session, in domain order.
pub fn build(events: &[Event], begin: u64, end: u64, who: &Submitter) -> Vec<Report> {
    let mut by_domain: BTreeMap<&str, Vec<&Outbound>> = BTreeMap::new();
    for e in events {
        if let Event::Outbound(o) = e
            && o.t >= begin
            && o.t < end
            && counted(o)
        {
            by_domain.entry(&o.policy_domain).or_default().push(o);
        }
    }
    by_domain
        .into_iter()
        .map(|(domain, sessions)| one(domain, &sessions, begin, end, who))
        .collect()
}

type PolicyKey<'a> = (&'a str, &'a [String], &'a [String]);
type FailureKey<'a> = (&'a str, &'a str, String, Option<IpAddr>, Option<&'a str>);

fn one(domain: &str, sessions: &[&Outbound], begin: u64, end: u64, who: &Submitter) -> Report {
    let mut policies: BTreeMap<PolicyKey<'_>, Vec<&Outbound>> = BTreeMap::new();
    for s in sessions {
        policies
            .entry((&s.policy_type, &s.policy_strings, &s.mx_patterns))
            .or_default()
            .push(s);
    }
    let (mut ok_total, mut fail_total) = (0u64, 0u64);
    let mut list = Vec::new();
    for ((ptype, strings, mx), ss) in policies {
        let mut failures: BTreeMap<FailureKey<'_>, u64> = BTreeMap::new();
        let mut ok = 0u64;
        for s in &ss {
            match &s.result {
                None => ok += 1,
                Some(r) => {
                    *failures
                        .entry((
                            r,
                            &s.mx_host,
                            s.ip.to_string(),
                            s.sending_ip,
                            s.detail.as_deref(),
                        ))
                        .or_default() += 1
                }
            }
        }
        let failed: u64 = failures.values().sum();
        ok_total += ok;
        fail_total += failed;
        let mut policy = serde_json::Map::new();
        policy.insert("policy-type".into(), json!(ptype));
        if !strings.is_empty() {
            policy.insert("policy-string".into(), json!(strings));
        }
        policy.insert("policy-domain".into(), json!(domain));
        if !mx.is_empty() {
            policy.insert("mx-host".into(), json!(mx));
        }
        let mut entry = serde_json::Map::new();
        entry.insert("policy".into(), Value::Object(policy));
        entry.insert(
            "summary".into(),
            json!({
                "total-successful-session-count": ok,
                "total-failure-session-count": failed,
            }),
        );
        if !failures.is_empty() {
            let details: Vec<Value> = failures
                .into_iter()
                .map(|((result, mx, ip, sending, detail), n)| {
                    let mut d = serde_json::Map::new();
                    d.insert("result-type".into(), json!(result));
                    if let Some(sending) = sending {
                        d.insert("sending-mta-ip".into(), json!(sending.to_string()));
                    }
                    d.insert("receiving-mx-hostname".into(), json!(mx));
                    d.insert("receiving-ip".into(), json!(ip));
                    d.insert("failed-session-count".into(), json!(n));
                    if let Some(why) = detail {
                        // A short code, not the whole log line.
                        let code: String = why.chars().take(200).collect();
                        d.insert("failure-reason-code".into(), json!(code));
                    }
                    Value::Object(d)
                })
                .collect();
            entry.insert("failure-details".into(), Value::Array(details));
        }
        list.push(Value::Object(entry));
    }
    let report_id = format!("{begin}-{end}.{domain}@{}", who.domain);
    let json = json!({
        "organization-name": who.organization,
        "date-range": {
            "start-datetime": rfc3339(begin),
            "end-datetime": rfc3339(end.saturating_sub(1)),
        },
        "contact-info": who.contact,
        "report-id": report_id,
        "policies": list,
    });
    Report {
        policy_domain: domain.to_string(),
        report_id,
        begin,
        end,
        json,
        successes: ok_total,
        failures: fail_total,
    }
}

/// One `rua` destination of a `_smtp._tls` record (RFC 8460 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rua {
    /// `mailto:` (percent-decoded): the report goes by mail.
    Mailto(String),
    /// `https:`: the report is POSTed there (RFC 8460 §5.4).
    Https(String),
}

impl Rua {
    /// What the ledger and the answers call it: the address, or the URL.
    pub fn as_str(&self) -> &str {
        match self {
            Rua::Mailto(a) | Rua::Https(a) => a,
        }
    }
}

/// The destinations of a `_smtp._tls` TXT record (RFC 8460 §3), in record order, or
/// `None` when it is not a TLSRPTv1 record. Other schemes and malformed entries are
/// left out.
pub fn rua(record: &str) -> Option<Vec<Rua>> {
    let mut parts = record.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("v=TLSRPTv1") {
        return None;
    }
    let mut out = Vec::new();
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("rua") {
            continue;
        }
        for uri in v.split(',').map(str::trim) {
            if let Some(addr) = uri
                .get(..7)
                .filter(|s| s.eq_ignore_ascii_case("mailto:"))
                .map(|_| &uri[7..])
            {
                let addr = percent_decode(addr);
                if addr.contains('@') && !addr.contains(['<', '>', ' ', '\r', '\n', ',']) {
                    out.push(Rua::Mailto(addr));
                }
            } else if postern_sts::fetch::HttpsUrl::parse(uri).is_some() {
                out.push(Rua::Https(uri.to_string()));
            }
        }
    }
    Some(out)
}

/// The `mailto:` addresses of a `_smtp._tls` TXT record only (see [`rua`]).
pub fn rua_mailto(record: &str) -> Option<Vec<String>> {
    Some(
        rua(record)?
            .into_iter()
            .filter_map(|r| match r {
                Rua::Mailto(a) => Some(a),
                Rua::Https(_) => None,
            })
            .collect(),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn out(domain: &str, result: Option<&str>, own: bool) -> Event {
        Event::Outbound(Outbound {
            t: 1_767_225_600 + 10,
            policy_type: "no-policy-found".into(),
            policy_domain: domain.into(),
            recipient_domain: domain.into(),
            policy_strings: vec![],
            mx_patterns: vec![],
            mx_host: format!("mx.{domain}"),
            ip: "192.0.2.1".parse().unwrap(),
            sending_ip: None,
            result: result.map(str::to_string),
            detail: result.map(|_| "STARTTLS not offered".to_string()),
            tls_version: result.is_none().then(|| "TLSv1.3".to_string()),
            cipher: None,
            verified: false,
            own_report: own,
        })
    }

    fn who() -> Submitter {
        Submitter {
            organization: "Example Org".into(),
            from: "reports@example.org".into(),
            contact: "postmaster@example.org".into(),
            domain: "example.org".into(),
        }
    }

    #[test]
    fn counts_per_policy_domain_without_own_reports() {
        let ev = vec![
            out("a.test", None, false),
            out("a.test", None, false),
            out("a.test", Some("starttls-not-supported"), false),
            out("a.test", None, true),
            out("quiet.test", None, true),
        ];
        let t0 = 1_767_225_600;
        let r = build(&ev, t0, t0 + 86_400, &who());
        assert_eq!(
            r.len(),
            1,
            "no report for a domain with only our own reports"
        );
        assert_eq!((r[0].successes, r[0].failures), (2, 1));
        let j = &r[0].json;
        assert_eq!(j["date-range"]["start-datetime"], "2026-01-01T00:00:00Z");
        assert_eq!(j["date-range"]["end-datetime"], "2026-01-01T23:59:59Z");
        let p = &j["policies"][0];
        assert_eq!(p["summary"]["total-successful-session-count"], 2);
        assert_eq!(
            p["failure-details"][0]["result-type"],
            "starttls-not-supported"
        );
        assert!(!j.to_string().contains("null"));
    }

    #[test]
    fn rua_records() {
        assert_eq!(
            rua_mailto(
                "v=TLSRPTv1; rua=mailto:tls@a.test,https://r.a.test/x, mailto:tls%2Brpt@b.test"
            ),
            Some(vec!["tls@a.test".to_string(), "tls+rpt@b.test".to_string()])
        );
        assert_eq!(
            rua(
                "v=TLSRPTv1; rua=mailto:tls@a.test,https://r.a.test/x,ftp://x.test/,https://bad host/"
            ),
            Some(vec![
                Rua::Mailto("tls@a.test".into()),
                Rua::Https("https://r.a.test/x".into())
            ])
        );
        assert_eq!(rua_mailto("v=spf1 -all"), None);
        assert_eq!(rua_mailto("v=TLSRPTv1;"), Some(vec![]));
    }
}
