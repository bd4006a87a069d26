//! `postern tls-report`: per peer domain and direction, from the report store, how much
//! of the mail used TLS, with which versions and suites, whether certificates were
//! verified, and a verdict in plain words against the configured `[tls] profile`.
//!
//! Inbound, a peer is the MAIL FROM domain (the EHLO name for the null sender) and a
//! message counts once; outbound, a peer is the recipient domain and each new SMTP
//! session counts once (a reused connection is the same session). Our own report mail
//! is left out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::Event;

/// One peer in one direction.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Peer {
    pub domain: String,
    /// `inbound` (it sent to us) or `outbound` (we sent to it).
    pub direction: &'static str,
    /// Messages (inbound) or sessions (outbound).
    pub messages: u64,
    pub tls: u64,
    pub plaintext: u64,
    /// Outbound sessions whose TLS failed (RFC 8460 result types).
    pub failed: u64,
    /// Certificate verified: the server's (outbound), the client's (inbound).
    pub verified: u64,
    pub versions: BTreeMap<String, u64>,
    pub ciphers: BTreeMap<String, u64>,
    pub failures: BTreeMap<String, u64>,
    pub verdict: String,
}

/// The peers seen in `events`, most messages first.
pub fn peers(events: &[Event], profile: postern_tls::Profile) -> Vec<Peer> {
    let mut map: BTreeMap<(String, &'static str), Peer> = BTreeMap::new();
    for e in events {
        let (domain, direction, version, cipher, verified, result) = match e {
            Event::Inbound(i) => (
                i.sender_domain
                    .clone()
                    .unwrap_or_else(|| i.helo.to_ascii_lowercase()),
                "inbound",
                i.tls_version.as_deref(),
                i.cipher.as_deref(),
                i.verified,
                None,
            ),
            Event::Outbound(o) if !o.own_report => (
                o.recipient_domain.clone(),
                "outbound",
                o.tls_version.as_deref(),
                o.cipher.as_deref(),
                o.verified,
                o.result.as_deref(),
            ),
            _ => continue,
        };
        let p = map
            .entry((domain.clone(), direction))
            .or_insert_with(|| Peer {
                domain,
                direction,
                ..Peer::default()
            });
        p.messages += 1;
        p.verified += u64::from(verified);
        match (version, result) {
            (Some(v), _) => {
                p.tls += 1;
                *p.versions.entry(v.to_string()).or_default() += 1;
                if let Some(c) = cipher {
                    *p.ciphers.entry(c.to_string()).or_default() += 1;
                }
            }
            (None, Some(r)) => {
                p.failed += 1;
                *p.failures.entry(r.to_string()).or_default() += 1;
            }
            (None, None) => p.plaintext += 1,
        }
    }
    let allowed: Vec<String> = postern_tls::provider(profile)
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str().map(str::to_string))
        .collect();
    let mut out: Vec<Peer> = map.into_values().collect();
    for p in &mut out {
        p.verdict = verdict(p, profile, &allowed);
    }
    out.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.domain.cmp(&b.domain)));
    out
}

fn pct(n: u64, of: u64) -> u64 {
    (n * 100).checked_div(of).unwrap_or(0)
}

/// The verdict in plain words.
fn verdict(p: &Peer, profile: postern_tls::Profile, allowed: &[String]) -> String {
    let (verb, what) = match p.direction {
        "inbound" => ("sent", "its mail"),
        _ => ("received", "our mail"),
    };
    let mut issues = Vec::new();
    if p.plaintext > 0 {
        issues.push(format!(
            "{} {verb} {}% of {what} in plaintext ({} of {})",
            p.domain,
            pct(p.plaintext, p.messages),
            p.plaintext,
            p.messages
        ));
    }
    for (c, n) in &p.ciphers {
        if c.contains("CBC") || !allowed.iter().any(|a| a == c) {
            let cbc = if c.contains("CBC") {
                " (a CBC suite)"
            } else {
                ""
            };
            issues.push(format!(
                "{n} session(s) used {c}{cbc}, outside the {} profile",
                profile.as_str()
            ));
        }
    }
    for (v, n) in &p.versions {
        if v != "TLSv1.3" && v != "TLSv1.2" {
            issues.push(format!("{n} session(s) used {v}"));
        }
    }
    if p.failed > 0 {
        let kinds: Vec<String> = p
            .failures
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        issues.push(format!("{} TLS failure(s): {}", p.failed, kinds.join(", ")));
    }
    if p.direction == "outbound" && p.tls > p.verified {
        issues.push(format!(
            "its certificate was not verified in {} of {} TLS session(s)",
            p.tls - p.verified,
            p.tls
        ));
    }
    if issues.is_empty() {
        format!(
            "OK: all {} {} over TLS within the {} profile",
            p.messages,
            if p.direction == "inbound" {
                "message(s)"
            } else {
                "session(s)"
            },
            profile.as_str()
        )
    } else {
        format!("ADVISE: {}", issues.join("; "))
    }
}

/// The report as text, one block per peer.
pub fn text(peers: &[Peer], since: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if peers.is_empty() {
        let _ = writeln!(s, "no mail recorded in the last {since}");
    }
    for p in peers {
        let _ = writeln!(
            s,
            "{} ({}): {} {}, {}% over TLS, {} plaintext, {} certificate(s) verified",
            p.domain,
            p.direction,
            p.messages,
            if p.direction == "inbound" {
                "message(s)"
            } else {
                "session(s)"
            },
            pct(p.tls, p.messages),
            p.plaintext,
            p.verified
        );
        let join = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, n)| format!("{k} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !p.versions.is_empty() {
            let _ = writeln!(s, "    versions: {}", join(&p.versions));
            let _ = writeln!(s, "    suites:   {}", join(&p.ciphers));
        }
        let _ = writeln!(s, "    {}", p.verdict);
    }
    s
}

/// `7d`, `24h`, `30m`, `90s` (or a plain number of seconds) in seconds.
pub fn parse_since(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 7d, 24h, 30m"))?;
    let mul = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h, d or w")),
    };
    Ok(n.saturating_mul(mul))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::event::{Inbound, Outbound};

    fn inbound(domain: &str, tls: Option<(&str, &str)>) -> Event {
        Event::Inbound(Inbound {
            t: 1,
            ip: "192.0.2.1".parse().unwrap(),
            helo: "mx.partner.example".into(),
            sender_domain: Some(domain.into()),
            tls_version: tls.map(|t| t.0.to_string()),
            cipher: tls.map(|t| t.1.to_string()),
            verified: false,
        })
    }

    #[test]
    fn plaintext_partners_are_named_in_plain_words() {
        let mut ev = vec![inbound("partner.example", None)];
        for _ in 0..7 {
            ev.push(inbound(
                "partner.example",
                Some(("TLSv1.3", "TLS13_AES_256_GCM_SHA384")),
            ));
        }
        ev.push(inbound(
            "good.example",
            Some(("TLSv1.3", "TLS13_AES_128_GCM_SHA256")),
        ));
        ev.push(Event::Outbound(Outbound {
            t: 1,
            policy_type: "no-policy-found".into(),
            policy_domain: "good.example".into(),
            recipient_domain: "good.example".into(),
            policy_strings: vec![],
            mx_patterns: vec![],
            mx_host: "mx.good.example".into(),
            ip: "192.0.2.2".parse().unwrap(),
            sending_ip: None,
            result: None,
            detail: None,
            tls_version: Some("TLSv1.3".into()),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            verified: true,
            own_report: false,
        }));
        let p = peers(&ev, postern_tls::Profile::NcscSuiteB);
        assert_eq!(p[0].domain, "partner.example");
        assert_eq!((p[0].messages, p[0].plaintext, p[0].tls), (8, 1, 7));
        assert!(
            p[0].verdict
                .contains("partner.example sent 12% of its mail in plaintext (1 of 8)"),
            "{}",
            p[0].verdict
        );
        // AES-256 is outside Suite B (AES-128-GCM only).
        assert!(
            p[0].verdict.contains("TLS13_AES_256_GCM_SHA384"),
            "{}",
            p[0].verdict
        );
        let good: Vec<&Peer> = p.iter().filter(|p| p.domain == "good.example").collect();
        assert_eq!(good.len(), 2);
        assert!(good.iter().all(|g| g.verdict.starts_with("OK")), "{good:?}");
        assert_eq!(parse_since("7d").unwrap(), 604_800);
        assert!(parse_since("7y").is_err());
    }
}
