//! Configuration checks and the `check-config` report for the certificates Postern
//! serves: weak keys and signatures against the NCSC guidance, whether the profile can be
//! served at all, whether each chain and key load; and a description of any certificate
//! file (subject, names, key, signature, issuer, expiry).
//!
//! # Standards
//! The NCSC guidance on TLS for mail servers asks for RSA-2048 or ECDSA P-256 keys with
//! SHA-256 signatures; [`crate::x509::CertInfo::weaknesses`] names what falls short.

use std::fmt::Write as _;
use std::path::Path;

use postern_config::{KeyPath, Problems};
use rustls::crypto::CryptoProvider;

use crate::x509::CertInfo;
use crate::{LoadedCert, TlsConfig, read_chain};

/// Leaf and intermediates of a chain file (a self-signed last certificate, the root, is
/// not judged: its own signature is never checked by anyone).
fn judged(chain: &Path) -> Vec<CertInfo> {
    let Ok(certs) = read_chain(chain) else {
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

/// `[[tls.certificate]]` against the NCSC guidance, and `[tls] profile` against the
/// certificates that can serve it.
pub fn validate_certificates(tls: &TlsConfig, p: &mut Problems) {
    let mut leaves = Vec::new();
    for (i, cert) in tls.certificate.iter().enumerate() {
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
    let profile = tls.profile;
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
}

/// Each `[[tls.certificate]]` chain and key loads (the problem is put on the file at
/// fault).
pub fn load_certificates(tls: &TlsConfig, provider: &CryptoProvider, p: &mut Problems) {
    for (i, cert) in tls.certificate.iter().enumerate() {
        if let Err(e) = LoadedCert::load(&cert.chain, &cert.key, provider) {
            let at = KeyPath::of("tls").key("certificate").index(i);
            let key = if e.to_string().contains(&cert.key.display().to_string())
                && !e.to_string().contains(&cert.chain.display().to_string())
            {
                "key"
            } else {
                "chain"
            };
            p.push(at.key(key), e.to_string());
        }
    }
}

/// The `check-config` description of one certificate file: every certificate in it
/// (only the first unless `all`), with its weaknesses.
pub fn chain_report(title: &str, path: &Path, all: bool, now: i64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "  {title}: {}", path.display());
    let certs = match read_chain(path) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(s, "    {e}");
            return s;
        }
    };
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
    s
}
