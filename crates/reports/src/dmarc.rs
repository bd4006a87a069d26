//! DMARC aggregate reports (RFC 7489 §7.2, the XML of its Appendix C): the daily report
//! per policy domain (the domain whose DMARC record applied, [`policy_domain`]) whose
//! record asked for one (`rua=mailto:`), from the store's
//! DMARC evaluations, to destinations that pass external-destination verification
//! (RFC 7489 §7.1: `<domain>._report._dmarc.<destination domain>` TXT `v=DMARC1`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::event::{Dmarc, Event};
use crate::tlsrpt::Submitter;

/// One policy domain's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub domain: String,
    pub report_id: String,
    pub begin: u64,
    pub end: u64,
    pub xml: String,
    /// The `rua=` URIs of the most recent evaluation.
    pub rua: Vec<String>,
    pub messages: u64,
}

/// XML text escaping.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn word<'a>(w: &'a str, allowed: &[&'a str], default: &'a str) -> &'a str {
    if allowed.contains(&w) { w } else { default }
}

const DKIM_RESULTS: [&str; 7] = [
    "none",
    "pass",
    "fail",
    "policy",
    "neutral",
    "temperror",
    "permerror",
];
const SPF_RESULTS: [&str; 7] = [
    "none",
    "neutral",
    "pass",
    "fail",
    "softfail",
    "temperror",
    "permerror",
];
const DISPOSITIONS: [&str; 3] = ["none", "quarantine", "reject"];

/// The reports for `[begin, end)`, one per From domain with evaluations (each From
/// domain taken as its own policy domain; [`build_by_policy_domain`] groups them).
pub fn build(events: &[Event], begin: u64, end: u64, who: &Submitter) -> Vec<Report> {
    build_by_policy_domain(events, begin, end, who, &PolicyDomains::default())
}

/// Where each From domain's evaluations are reported: under its policy domain
/// ([`policy_domain`]), or not yet when DNS could not tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyDomains {
    /// From domain → policy domain, where they differ (a From domain not here and not
    /// in `unknown` is its own policy domain).
    pub of: BTreeMap<String, String>,
    /// From domains whose lookup failed, with why. Left out of the reports rather than
    /// guessed: a guess could put the same mail into two reports, under two names, in
    /// two runs.
    pub unknown: BTreeMap<String, String>,
}

/// [`policy_domain`] of every From domain evaluated in `[begin, end)`: the daily run
/// and `reports show --dmarc` both ask this.
pub async fn policy_domains(
    dns: &postern_dns::Resolver,
    events: &[Event],
    begin: u64,
    end: u64,
) -> PolicyDomains {
    let mut pd = PolicyDomains::default();
    for from in from_domains(events, begin, end) {
        match policy_domain(dns, &from).await {
            Ok(Some(p)) if p != from => {
                pd.of.insert(from, p);
            }
            Ok(_) => {}
            Err(e) => {
                pd.unknown.insert(from, e);
            }
        }
    }
    pd
}

/// The From domains evaluated in `[begin, end)`, lower case, sorted.
pub fn from_domains(events: &[Event], begin: u64, end: u64) -> Vec<String> {
    let mut v: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Dmarc(d) if d.t >= begin && d.t < end => {
                Some(d.header_from.to_ascii_lowercase())
            }
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The reports for `[begin, end)`, one per policy domain: the domain whose `_dmarc`
/// record applied (RFC 7489 §7.2: `policy_published`), from `policy_domains`; From
/// domains it does not know are left out. Each record keeps its `header_from`, so a
/// report about `example.org` can list mail from `news.example.org`.
pub fn build_by_policy_domain(
    events: &[Event],
    begin: u64,
    end: u64,
    who: &Submitter,
    policy_domains: &PolicyDomains,
) -> Vec<Report> {
    let mut by_domain: BTreeMap<String, Vec<&Dmarc>> = BTreeMap::new();
    for e in events {
        if let Event::Dmarc(d) = e
            && d.t >= begin
            && d.t < end
        {
            let from = d.header_from.to_ascii_lowercase();
            if policy_domains.unknown.contains_key(&from) {
                continue;
            }
            let domain = policy_domains.of.get(&from).cloned().unwrap_or(from);
            by_domain.entry(domain).or_default().push(d);
        }
    }
    by_domain
        .into_iter()
        .map(|(domain, evs)| one(&domain, &evs, begin, end, who))
        .collect()
}

/// Whether a TXT record is a DMARC record (`v=DMARC1`, any case).
pub fn is_dmarc1(r: &[u8]) -> bool {
    String::from_utf8_lossy(r)
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("v=dmarc1")
}

/// The domain whose `_dmarc` record applied to mail from `from`, chosen as the DMARC
/// evaluation (mail-auth, RFC 9989 §4.10) chooses it: `from`'s own record; otherwise
/// the record of the Organizational Domain (the name with `psd=n`, the name one label
/// below a `psd=y` record, or else the shortest name with a record); otherwise the
/// shortest name with a record. `Ok(None)`: no record anywhere. `Err`: a lookup failed,
/// so the answer is unknown (the caller leaves that domain for a later run rather than
/// guess, which could report the same mail twice under two names).
pub async fn policy_domain(
    dns: &postern_dns::Resolver,
    from: &str,
) -> Result<Option<String>, String> {
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::dmarc::Psd;
    let from = from.trim_end_matches('.').to_ascii_lowercase();
    let mut found: Vec<(String, Psd)> = Vec::new();
    for name in tree_walk(&from) {
        let records = match dns.txt(&format!("_dmarc.{name}")).await {
            Ok(a) => a.records,
            Err(postern_dns::LookupError::NotFound | postern_dns::LookupError::NoRecords) => {
                continue;
            }
            Err(e) => return Err(format!("_dmarc.{name}: {e}")),
        };
        // One valid DMARC record (several, or none, count as none: RFC 9989 §4.10).
        let parsed: Vec<_> = records
            .iter()
            .filter(|r| is_dmarc1(r))
            .filter_map(|r| mail_auth::dmarc::Dmarc::parse(r).ok())
            .collect();
        let [record] = parsed.as_slice() else {
            continue;
        };
        let stop = matches!(record.psd, Psd::Yes | Psd::No);
        found.push((name, record.psd.clone()));
        if stop {
            break;
        }
    }
    if found.iter().any(|(n, _)| *n == from) {
        return Ok(Some(from));
    }
    let org = found
        .iter()
        .find_map(|(name, psd)| match psd {
            Psd::No => Some(name.clone()),
            Psd::Yes if *name != from => Some(one_label_below(name, &from)),
            _ => None,
        })
        .or_else(|| found.last().map(|(n, _)| n.clone()));
    Ok(org
        .filter(|o| found.iter().any(|(n, _)| n == o))
        .or_else(|| found.last().map(|(n, _)| n.clone())))
}

/// The name one label below `psd_name` on the way to `start` (`gov.uk`, `a.b.gov.uk`:
/// `b.gov.uk`).
fn one_label_below(psd_name: &str, start: &str) -> String {
    let depth = psd_name.split('.').filter(|l| !l.is_empty()).count() + 1;
    let labels: Vec<&str> = start.split('.').filter(|l| !l.is_empty()).collect();
    labels[labels.len().saturating_sub(depth)..].join(".")
}

/// The names a DMARC policy record for `from` is looked for at, longest first (the
/// tree walk of RFC 9989 §4.10, as mail-auth does it): `from`, then (from a name of
/// more than 8 labels) its last 7 labels, then one label fewer at a time down to the
/// top-level domain. Empty for a single-label name.
pub fn tree_walk(from: &str) -> Vec<String> {
    let from = from.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = from.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 {
        return Vec::new();
    }
    let mut names = vec![labels.join(".")];
    let mut count = labels.len();
    while count > 1 {
        count = if count >= 8 { 7 } else { count - 1 };
        names.push(labels[labels.len() - count..].join("."));
    }
    names.dedup();
    names
}

fn one(domain: &str, evs: &[&Dmarc], begin: u64, end: u64, who: &Submitter) -> Report {
    // Rows: identical evaluations from one source address, counted.
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    for d in evs {
        *rows.entry(record(d)).or_default() += 1;
    }
    let latest = evs.iter().max_by_key(|d| d.t).copied();
    let report_id = format!("{begin}-{end}.{domain}@{}", who.domain);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n");
    x.push_str("  <version>1.0</version>\n  <report_metadata>\n");
    let _ = writeln!(x, "    <org_name>{}</org_name>", esc(&who.organization));
    let _ = writeln!(x, "    <email>{}</email>", esc(&who.from));
    if who.contact != who.from {
        let _ = writeln!(
            x,
            "    <extra_contact_info>{}</extra_contact_info>",
            esc(&who.contact)
        );
    }
    let _ = writeln!(x, "    <report_id>{}</report_id>", esc(&report_id));
    let _ = writeln!(
        x,
        "    <date_range>\n      <begin>{begin}</begin>\n      <end>{}</end>\n    </date_range>",
        end.saturating_sub(1)
    );
    x.push_str("  </report_metadata>\n  <policy_published>\n");
    if let Some(l) = latest {
        let _ = writeln!(x, "    <domain>{}</domain>", esc(domain));
        let _ = writeln!(x, "    <adkim>{}</adkim>", word(&l.adkim, &["r", "s"], "r"));
        let _ = writeln!(x, "    <aspf>{}</aspf>", word(&l.aspf, &["r", "s"], "r"));
        let _ = writeln!(x, "    <p>{}</p>", word(&l.p, &DISPOSITIONS, "none"));
        let _ = writeln!(x, "    <sp>{}</sp>", word(&l.sp, &DISPOSITIONS, "none"));
        x.push_str("    <pct>100</pct>\n");
    }
    x.push_str("  </policy_published>\n");
    for (rec, count) in &rows {
        x.push_str(&rec.replace("{COUNT}", &count.to_string()));
    }
    x.push_str("</feedback>\n");
    Report {
        domain: domain.to_string(),
        report_id,
        begin,
        end,
        xml: x,
        rua: latest.map(|l| l.rua.clone()).unwrap_or_default(),
        messages: evs.len() as u64,
    }
}

/// One `<record>`, with `{COUNT}` for the count.
fn record(d: &Dmarc) -> String {
    let pf = |b: bool| if b { "pass" } else { "fail" };
    let mut x = String::from("  <record>\n    <row>\n");
    let _ = writeln!(x, "      <source_ip>{}</source_ip>", d.ip);
    x.push_str("      <count>{COUNT}</count>\n      <policy_evaluated>\n");
    let _ = writeln!(
        x,
        "        <disposition>{}</disposition>",
        word(&d.disposition, &DISPOSITIONS, "none")
    );
    let _ = writeln!(x, "        <dkim>{}</dkim>", pf(d.dkim_aligned));
    let _ = writeln!(x, "        <spf>{}</spf>", pf(d.spf_aligned));
    x.push_str("      </policy_evaluated>\n    </row>\n    <identifiers>\n");
    // The domain SPF checked: the RFC5321.MailFrom domain (the HELO name for a null
    // sender). Required by RFC 7489 Appendix C's schema.
    let _ = writeln!(
        x,
        "      <envelope_from>{}</envelope_from>",
        esc(&d.spf_domain)
    );
    let _ = writeln!(
        x,
        "      <header_from>{}</header_from>",
        esc(&d.header_from)
    );
    x.push_str("    </identifiers>\n    <auth_results>\n");
    for (dom, sel, res) in &d.dkim {
        let _ = writeln!(
            x,
            "      <dkim>\n        <domain>{}</domain>\n        <selector>{}</selector>\n        <result>{}</result>\n      </dkim>",
            esc(dom),
            esc(sel),
            word(res, &DKIM_RESULTS, "permerror")
        );
    }
    let spf_domain = if d.spf_domain.is_empty() {
        &d.header_from
    } else {
        &d.spf_domain
    };
    let _ = writeln!(
        x,
        "      <spf>\n        <domain>{}</domain>\n        <scope>mfrom</scope>\n        <result>{}</result>\n      </spf>",
        esc(spf_domain),
        word(&d.spf_result, &SPF_RESULTS, "none")
    );
    x.push_str("    </auth_results>\n  </record>\n");
    x
}

/// The mail addresses of `rua=` URIs (a `!size` limit removed). mail-auth keeps a
/// `mailto:` URI as the bare address; other schemes are left out.
pub fn mailto(rua: &[String]) -> Vec<String> {
    rua.iter()
        .filter_map(|u| {
            let u = u.trim();
            let addr = match u.get(..7) {
                Some(p) if p.eq_ignore_ascii_case("mailto:") => &u[7..],
                _ if u.contains("://") || u.starts_with("https:") => return None,
                _ => u,
            };
            let addr = addr.split('!').next()?.trim().to_string();
            (addr.contains('@') && !addr.contains(['<', '>', ' ', ','])).then_some(addr)
        })
        .collect()
}

/// Whether a report about `domain` may go to `dest` without asking `dest` (RFC 7489
/// §7.1: the same organisation, approximated as one being the other or a subdomain of
/// it); otherwise the TXT record `domain._report._dmarc.DEST-DOMAIN` must say so.
pub fn needs_verification(domain: &str, dest: &str) -> Option<String> {
    let d = dest
        .rsplit_once('@')
        .map_or(dest, |(_, d)| d)
        .to_ascii_lowercase();
    let h = domain.to_ascii_lowercase();
    let same = d == h || d.ends_with(&format!(".{h}")) || h.ends_with(&format!(".{d}"));
    (!same).then(|| format!("{h}._report._dmarc.{d}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn destinations_and_verification_names() {
        assert_eq!(
            mailto(&[
                "mailto:d@rua.example!10m".into(),
                "https://x".into(),
                "e@rua.example".into()
            ]),
            vec!["d@rua.example".to_string(), "e@rua.example".to_string()]
        );
        assert_eq!(needs_verification("a.example", "r@a.example"), None);
        assert_eq!(needs_verification("a.example", "r@mail.a.example"), None);
        assert_eq!(
            needs_verification("a.example", "r@rua.example"),
            Some("a.example._report._dmarc.rua.example".into())
        );
        assert_eq!(esc("a<&>\"'"), "a&lt;&amp;&gt;&quot;&apos;");
    }

    #[test]
    fn the_tree_walk_goes_up_to_the_top_level_domain() {
        assert_eq!(
            tree_walk("News.Mail.Example.ORG."),
            vec![
                "news.mail.example.org",
                "mail.example.org",
                "example.org",
                "org"
            ]
        );
        assert_eq!(tree_walk("example.org"), vec!["example.org", "org"]);
        assert!(tree_walk("localhost").is_empty());
        // 8 labels or more: the name itself, then from 7 labels down.
        let long = tree_walk("a.b.c.d.e.f.g.h.i.example");
        assert_eq!(long[0], "a.b.c.d.e.f.g.h.i.example");
        assert_eq!(long[1], "d.e.f.g.h.i.example");
        assert_eq!(long.last().unwrap(), "example");
        assert_eq!(long.len(), 8);
        assert_eq!(one_label_below("gov.uk", "a.b.gov.uk"), "b.gov.uk");
    }

    fn ev(from: &str) -> Event {
        Event::Dmarc(Dmarc {
            t: 100,
            ip: "192.0.2.1".parse().unwrap(),
            header_from: from.into(),
            policy: "none".into(),
            p: "none".into(),
            sp: "none".into(),
            adkim: "r".into(),
            aspf: "r".into(),
            testing: false,
            rua: vec!["mailto:d@example.org".into()],
            disposition: "none".into(),
            result: "pass".into(),
            dkim_aligned: true,
            spf_aligned: true,
            spf_domain: from.into(),
            spf_result: "pass".into(),
            dkim: vec![],
        })
    }

    #[test]
    fn reports_are_per_policy_domain_and_records_keep_their_from_domain() {
        let who = Submitter {
            organization: "Us".into(),
            from: "r@us.example".into(),
            contact: "r@us.example".into(),
            domain: "us.example".into(),
        };
        let events = vec![
            ev("example.org"),
            ev("News.Example.org"),
            ev("other.example"),
        ];
        assert_eq!(
            from_domains(&events, 0, 200),
            vec!["example.org", "news.example.org", "other.example"]
        );
        let map = PolicyDomains {
            of: BTreeMap::from([("news.example.org".to_string(), "example.org".to_string())]),
            ..PolicyDomains::default()
        };
        let reports = build_by_policy_domain(&events, 0, 200, &who, &map);
        assert_eq!(reports.len(), 2);
        let r = &reports[0];
        assert_eq!(r.domain, "example.org");
        assert_eq!(r.messages, 2);
        assert!(r.xml.contains("<domain>example.org</domain>"), "{}", r.xml);
        assert!(
            r.xml
                .contains("<header_from>News.Example.org</header_from>"),
            "{}",
            r.xml
        );
        assert!(r.xml.contains("<header_from>example.org</header_from>"));
        assert!(!r.xml.contains("<extra_contact_info>"), "contact = from");
        assert_eq!(reports[1].domain, "other.example");
        // Without the map, each From domain reports for itself.
        assert_eq!(build(&events, 0, 200, &who).len(), 3);
    }
}
