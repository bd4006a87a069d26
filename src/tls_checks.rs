//! Configuration checks and the `check-config` report for TLS: certificates against the
//! profile and the NCSC guidance, listener CRLs, partner rules; and a description of every
//! configured certificate (subject, names, key, signature, issuer, expiry).

use std::fmt::Write as _;
use std::path::Path;

use postern_config::{KeyPath, Problems};
use postern_inbound::ClientCertificates;
use postern_tls::x509::CertInfo;

use crate::Config;

/// Leaf and intermediates of a chain file (a self-signed last certificate, the root, is
/// not judged: its own signature is never checked by anyone).
fn judged(chain: &Path) -> Vec<CertInfo> {
    let Ok(certs) = postern_tls::read_chain(chain) else {
        return Vec::new();
    };
    let mut infos: Vec<CertInfo> = certs
        .iter()
        .filter_map(|c| CertInfo::parse(c).ok())
        .collect();
    if infos.len() > 1 && infos.last().is_some_and(|r| r.subject == r.issuer) {
        infos.pop();
    }
    infos
}

/// TLS checks that need files: run from `config::validate`.
pub(crate) fn validate(c: &Config, p: &mut Problems) {
    let mut leaves = Vec::new();
    for (i, cert) in c.tls.certificate.iter().enumerate() {
        let at = KeyPath::of("tls").key("certificate").index(i).key("chain");
        for (n, info) in judged(&cert.chain).iter().enumerate() {
            for w in info.weaknesses() {
                let which = if n == 0 {
                    "certificate".to_string()
                } else {
                    format!("intermediate #{n} ({})", info.subject)
                };
                p.push(
                    at.clone(),
                    format!(
                        "{which}: {w}; the NCSC guidance asks for RSA-2048 or ECDSA P-256 with SHA-256"
                    ),
                );
            }
            if n == 0 {
                leaves.push((cert.chain.display().to_string(), info.clone()));
            }
        }
    }
    let profile = c.tls.profile;
    if !leaves.is_empty()
        && !leaves
            .iter()
            .any(|(_, i)| profile.accepts_key(&i.key).is_ok())
    {
        let why: Vec<String> = leaves
            .iter()
            .filter_map(|(f, i)| {
                profile
                    .accepts_key(&i.key)
                    .err()
                    .map(|e| format!("{f}: {e}"))
            })
            .collect();
        p.push(
            KeyPath::of("tls").key("profile"),
            format!(
                "profile \"{profile}\" cannot be served with the configured certificates ({}); add a [[tls.certificate]] that fits it or choose another profile",
                why.join("; ")
            ),
        );
    }
    for (i, l) in c.listener.iter().enumerate() {
        for (j, f) in l.crl.iter().enumerate() {
            if let Err(e) = postern_tls::clientauth::read_crls(f) {
                p.push(
                    KeyPath::of("listener").index(i).key("crl").index(j),
                    e.to_string(),
                );
            }
        }
    }
    postern_inbound::partner::validate(&c.inbound, p);
    for (i, e) in c.inbound.partner.iter().enumerate() {
        if let Some(ca) = &e.ca
            && let Err(err) = postern_tls::client::load_roots(Some(ca))
        {
            p.push(
                KeyPath::of("inbound").key("partner").index(i).key("ca"),
                err.to_string(),
            );
        }
    }
    let asks = c
        .listener
        .iter()
        .any(|l| l.client_certificates != ClientCertificates::Off);
    if !asks && let Some(i) = c.inbound.partner.iter().position(|e| e.wants_certificate()) {
        p.push(
            KeyPath::of("inbound").key("partner").index(i),
            "this partner needs a client certificate, but no [[listener]] asks for one: set client_certificates = \"request\" (or \"require\") and client_ca on the listener partners connect to",
        );
    }
    if !asks && !c.relay.trusted_client_certificates.is_empty() {
        p.push(
            KeyPath::of("relay").key("trusted_client_certificates"),
            "no [[listener]] asks for client certificates, so none can match: set client_certificates = \"request\" and client_ca on a listener",
        );
    }
}

/// The certificate report printed by `check-config`.
pub fn report(c: &Config) -> String {
    let now = postern_tls::store::unix_now();
    let mut s = String::new();
    let _ = writeln!(s, "  TLS profile: {}", c.tls.profile);
    let mut one = |title: String, path: &Path, all: bool| {
        let _ = writeln!(s, "  {title}: {}", path.display());
        match postern_tls::read_chain(path) {
            Ok(certs) => {
                for (n, der) in certs.iter().enumerate() {
                    if n > 0 && !all {
                        let _ = writeln!(s, "    (+ {} more in the chain)", certs.len() - 1);
                        break;
                    }
                    match CertInfo::parse(der) {
                        Ok(info) => {
                            if certs.len() > 1 {
                                let _ = writeln!(s, "    #{n}:");
                            }
                            s.push_str(&info.report("      ", now));
                            for w in info.weaknesses() {
                                let _ = writeln!(s, "      WEAK: {w}");
                            }
                        }
                        Err(e) => {
                            let _ = writeln!(s, "    #{n}: {e}");
                        }
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(s, "    {e}");
            }
        }
    };
    for (i, cert) in c.tls.certificate.iter().enumerate() {
        one(format!("served certificate #{i}"), &cert.chain, true);
    }
    for (i, l) in c.listener.iter().enumerate() {
        if let Some(ca) = &l.client_ca {
            one(format!("listener #{i} client_ca"), ca, true);
        }
    }
    for (i, e) in c.inbound.partner.iter().enumerate() {
        if let Some(ca) = &e.ca {
            one(format!("partner #{i} ca"), ca, true);
        }
    }
    if let Some(cc) = &c.outbound.client_certificate {
        one("outbound client certificate".into(), &cc.chain, false);
    }
    s.push_str(&file_warnings(c, now));
    s
}

/// `check-config` warnings about files (#11): private keys readable by others, CRLs
/// stale or going stale.
fn file_warnings(c: &Config, now: i64) -> String {
    let keys = c
        .tls
        .certificate
        .iter()
        .map(|k| k.key.as_path())
        .chain(
            c.outbound
                .client_certificate
                .iter()
                .map(|k| k.key.as_path()),
        )
        .chain(c.auth.dkim_sign.iter().map(|d| d.key.as_path()));
    let mut warnings: Vec<String> = keys.filter_map(postern_tls::keyfile::exposure).collect();
    for f in c.listener.iter().flat_map(|l| l.crl.iter()) {
        if let Ok(crls) = postern_tls::clientauth::read_crls(f) {
            warnings.extend(postern_tls::clientauth::crl_warnings(f, &crls, now));
        }
    }
    warnings
        .iter()
        .map(|w| format!("  warning: {w}\n"))
        .collect()
}
