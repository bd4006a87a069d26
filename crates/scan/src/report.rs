//! Turning what the probes saw into the report: certificate chains (with trust and name
//! checks) and the text rendering.

use std::fmt::Write as _;
use std::sync::Arc;

use postern_tls::client::{cert_names, fingerprints, name_matches};
use postern_tls::x509::{CertInfo, format_time};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{CertReport, ChainReport, Chains, Options, Report, Target};

pub(crate) fn chains(chains: Chains, opts: &Options, t: &Target) -> Vec<ChainReport> {
    let now = postern_tls::store::unix_now();
    let roots = postern_tls::client::load_roots(opts.ca.as_deref());
    let trust_source = match &opts.ca {
        Some(p) => format!("the CA file {}", p.display()),
        None => "the system trust store".into(),
    };
    let mut out = Vec::new();
    for (_, (certs, seen_with)) in chains {
        let ders: Vec<CertificateDer<'static>> = certs
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let mut reports = Vec::new();
        let mut key = None;
        for (i, d) in ders.iter().enumerate() {
            let info = CertInfo::parse(d).ok();
            if i == 0 {
                key = info.as_ref().map(|x| x.key.clone());
            }
            reports.push(match info {
                Some(info) => CertReport {
                    names: info.sans.clone(),
                    key: info.key.to_string(),
                    signature: info.signature.clone(),
                    not_after: format_time(info.not_after),
                    days_left: info.days_to_expiry(now),
                    fingerprint: fingerprints(d).0,
                    weaknesses: info.weaknesses(),
                    subject: info.subject,
                    issuer: info.issuer,
                },
                None => CertReport {
                    subject: "(unparseable certificate)".into(),
                    issuer: String::new(),
                    names: vec![],
                    key: String::new(),
                    signature: String::new(),
                    not_after: String::new(),
                    days_left: 0,
                    fingerprint: fingerprints(d).0,
                    weaknesses: vec!["cannot be parsed".into()],
                },
            });
        }
        let (trusted, trust_detail) = match &roots {
            Ok(r) if !r.is_empty() => trust(Arc::new(r.clone()), &ders, &trust_source),
            Ok(_) => (false, format!("{trust_source} holds no certificates")),
            Err(e) => (false, e.to_string()),
        };
        let name_match = t.name.as_ref().map(|n| {
            let names = ders.first().map(cert_names).unwrap_or_default();
            names
                .iter()
                .any(|h| name_matches(h, &n.to_ascii_lowercase()))
        });
        out.push(ChainReport {
            seen_with,
            certificates: reports,
            trusted,
            trust_detail,
            name_match,
            key,
        });
    }
    out
}

fn trust(
    roots: Arc<rustls::RootCertStore>,
    ders: &[CertificateDer<'static>],
    source: &str,
) -> (bool, String) {
    let Some((ee, rest)) = ders.split_first() else {
        return (false, "no certificate".into());
    };
    let provider = Arc::new(postern_tls::provider(postern_tls::Profile::Default));
    let v = match WebPkiServerVerifier::builder_with_provider(roots, provider).build() {
        Ok(v) => v,
        Err(e) => return (false, e.to_string()),
    };
    // The chain alone: webpki is given a name the certificate carries; names are matched
    // separately against --name.
    let names = cert_names(ee);
    let probe = names
        .first()
        .map(|n| n.replace("*.", "x."))
        .unwrap_or_else(|| "invalid.invalid".into());
    let Ok(name) = ServerName::try_from(probe) else {
        return (false, "the certificate carries no usable DNS name".into());
    };
    match v.verify_server_cert(ee, rest, &name, &[], UnixTime::now()) {
        Ok(_) => (true, format!("chains to {source}")),
        Err(rustls::Error::InvalidCertificate(e)) => {
            (false, format!("{e:?} (checked against {source})"))
        }
        Err(e) => (false, format!("{e} (checked against {source})")),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The report as text for a terminal.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "tls-check {} ({}), profile {}",
        r.target, r.mode, r.profile
    );
    if let Some(st) = r.starttls_offered {
        let _ = writeln!(s, "STARTTLS offered: {}", yes_no(st));
    }
    if !r.versions.is_empty() {
        let _ = writeln!(s, "\nProtocol versions:");
        for v in &r.versions {
            let _ = writeln!(
                s,
                "  {:<8} {:<13} {}",
                v.version,
                if v.accepted {
                    "ACCEPTED"
                } else {
                    "not accepted"
                },
                v.detail
            );
        }
    }
    for l in &r.suites {
        let order = match l.server_order {
            Some(true) => "server's order",
            Some(false) => "follows the client's order",
            None => "single suite",
        };
        let _ = writeln!(s, "\n{} cipher suites ({order}):", l.version);
        for x in &l.suites {
            let _ = writeln!(
                s,
                "  {:<46} {}",
                x.name,
                if x.weaknesses.is_empty() {
                    "ok".to_string()
                } else {
                    format!("WEAK: {}", x.weaknesses.join(", "))
                }
            );
        }
    }
    if !r.groups.is_empty() {
        let _ = writeln!(s, "\nKey exchange groups:");
        for g in &r.groups {
            let mut line = g.groups.join(", ");
            if !g.dh_bits.is_empty() {
                let bits: Vec<String> = g.dh_bits.iter().map(|b| format!("DH {b} bits")).collect();
                line = format!("{line} {}", bits.join(", "));
            }
            let _ = writeln!(
                s,
                "  {:<8} {}",
                g.version,
                if line.trim().is_empty() {
                    "(none found)"
                } else {
                    line.trim()
                }
            );
        }
    }
    for (i, c) in r.certificates.iter().enumerate() {
        let _ = writeln!(
            s,
            "\nCertificate chain #{i} (seen with {}):",
            c.seen_with.join(", ")
        );
        for (n, x) in c.certificates.iter().enumerate() {
            let _ = writeln!(s, "  #{n} subject:   {}", x.subject);
            let _ = writeln!(s, "     names:     {}", x.names.join(", "));
            let _ = writeln!(s, "     key:       {}", x.key);
            let _ = writeln!(s, "     signature: {}", x.signature);
            let _ = writeln!(s, "     issuer:    {}", x.issuer);
            let _ = writeln!(s, "     expires:   {} ({} days)", x.not_after, x.days_left);
            let _ = writeln!(s, "     sha256:    {}", x.fingerprint);
            for w in &x.weaknesses {
                let _ = writeln!(s, "     WEAK: {w}");
            }
        }
        let _ = writeln!(s, "  trusted: {} ({})", yes_no(c.trusted), c.trust_detail);
        if let Some(m) = c.name_match {
            let _ = writeln!(s, "  name matches --name: {}", yes_no(m));
        }
    }
    if !r.handshakes.is_empty() {
        let _ = writeln!(s, "\nHandshakes:");
        for h in r.handshakes.iter().chain(r.client_certificate.iter()) {
            if h.version.is_empty() {
                let _ = writeln!(s, "  {}: FAILED: {}", h.client, h.detail);
            } else {
                let _ = writeln!(
                    s,
                    "  {}: {} {} {} - {}",
                    h.client,
                    h.version,
                    h.suite,
                    h.group.as_deref().unwrap_or(""),
                    h.detail
                );
            }
        }
    }
    let _ = writeln!(s, "\nVerdict against profile {}:", r.profile);
    for q in &r.requirements {
        let _ = writeln!(
            s,
            "  {}  {}: {}",
            if q.pass { "PASS" } else { "FAIL" },
            q.requirement,
            q.reason
        );
    }
    let failed = r.requirements.iter().filter(|q| !q.pass).count();
    let _ = writeln!(
        s,
        "\nResult: {}",
        if r.pass {
            format!("PASS (all {} requirements met)", r.requirements.len())
        } else {
            format!(
                "FAIL ({failed} of {} requirements not met)",
                r.requirements.len()
            )
        }
    );
    s
}
