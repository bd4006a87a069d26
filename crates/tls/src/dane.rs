//! DANE certificate matching for SMTP: does the certificate chain a server presented
//! match one of its TLSA records?
//!
//! The caller (the outbound policy engine) has already established that the TLSA
//! records came from a DNSSEC-secure answer, for a host whose MX and address records
//! were secure too; this module only decides which records are usable and whether the
//! presented chain matches one of them.
//!
//! - [`usability`]: DANE-TA(2) and DANE-EE(3) are usable; PKIX-TA(0) and PKIX-EE(1) are
//!   not, for SMTP (RFC 7672 §3.1.3: no trusted CA list is shared between MTAs); unknown
//!   selectors and matching types are not either, nor a digest of the wrong length.
//! - [`verify`]: DANE-EE(3) records are compared with the end-entity certificate (or its
//!   key) only: no name, no dates, no chain (RFC 7672 §3.1.1). DANE-TA(2) records are
//!   compared with every certificate the server sent; the end-entity certificate must
//!   chain to the matched one (signatures and validity dates checked by webpki, with the
//!   matched certificate as the only trust anchor) and carry one of the reference
//!   identifiers (RFC 7672 §3.2.2, §3.2.3).
//!
//! # Security
//! Nothing here trusts a certificate store: a DANE-TA anchor is exactly the certificate
//! the secure TLSA record names. Digests are compared on the full DER of what the selector
//! picks. Every input is attacker-supplied (certificates from the peer, records from DNS);
//! malformed input is a mismatch, never a panic.
//!
//! # Standards
//! RFC 6698 §2.1 (TLSA fields), RFC 7671 §5 (usages), RFC 7672 §3 (DANE for SMTP).

use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};

use crate::CertRejected;
use crate::client::{cert_names, name_matches};

/// One TLSA record as published (RFC 6698 §2.1): usage, selector, matching type, data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsaRecord {
    /// 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// 0 the full certificate, 1 its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 the data itself, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

impl std::fmt::Display for TlsaRecord {
    /// The presentation format: `3 1 1 ABCD...` (hex in lower case).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.usage,
            self.selector,
            self.matching,
            hex(&self.data)
        )
    }
}

impl TlsaRecord {
    /// `DANE-EE`, `DANE-TA`, `PKIX-TA`, `PKIX-EE`, or `usage N`.
    pub fn usage_name(&self) -> String {
        match self.usage {
            0 => "PKIX-TA".into(),
            1 => "PKIX-EE".into(),
            2 => "DANE-TA".into(),
            3 => "DANE-EE".into(),
            n => format!("usage {n}"),
        }
    }
}

/// Why a TLSA record cannot be used for SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("usage {0} (PKIX-TA/PKIX-EE) is not usable for SMTP (RFC 7672 §3.1.3)")]
    PkixUsage(u8),
    #[error("unknown certificate usage {0}")]
    UnknownUsage(u8),
    #[error("unknown selector {0}")]
    UnknownSelector(u8),
    #[error("unknown matching type {0}")]
    UnknownMatching(u8),
    #[error("the data is {got} bytes long, matching type {matching} needs {want}")]
    BadLength {
        matching: u8,
        got: usize,
        want: usize,
    },
    #[error("empty certificate association data")]
    Empty,
}

/// Whether `r` may be used to authenticate an SMTP server.
pub fn usability(r: &TlsaRecord) -> Result<(), Unusable> {
    match r.usage {
        2 | 3 => {}
        0 | 1 => return Err(Unusable::PkixUsage(r.usage)),
        n => return Err(Unusable::UnknownUsage(n)),
    }
    if r.selector > 1 {
        return Err(Unusable::UnknownSelector(r.selector));
    }
    let want = match r.matching {
        0 => None,
        1 => Some(32),
        2 => Some(64),
        n => return Err(Unusable::UnknownMatching(n)),
    };
    if r.data.is_empty() {
        return Err(Unusable::Empty);
    }
    if let Some(want) = want
        && r.data.len() != want
    {
        return Err(Unusable::BadLength {
            matching: r.matching,
            got: r.data.len(),
            want,
        });
    }
    Ok(())
}

/// What a DANE-authenticated connection must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneExpect {
    /// The usable records (others are dropped by [`DaneExpect::new`]).
    pub records: Vec<TlsaRecord>,
    /// Reference identifiers for DANE-TA: the next-hop domain and the MX host name, and
    /// their CNAME-expanded forms, lower case, without trailing dot.
    pub names: Vec<String>,
}

impl DaneExpect {
    /// Keep the usable records of `records`; `None` when none is usable.
    pub fn new(records: &[TlsaRecord], names: &[String]) -> Option<DaneExpect> {
        let records: Vec<TlsaRecord> = records
            .iter()
            .filter(|r| usability(r).is_ok())
            .cloned()
            .collect();
        if records.is_empty() {
            return None;
        }
        let mut names: Vec<String> = names
            .iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        names.dedup();
        Some(DaneExpect { records, names })
    }
}

/// The record that authenticated the server, and where in the chain it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneMatch {
    pub record: TlsaRecord,
    /// 0: the end-entity certificate; 1 and up: the certificates after it.
    pub depth: usize,
}

impl std::fmt::Display for DaneMatch {
    /// `TLSA 3 1 1 ab.. (DANE-EE) matched the end-entity public key (depth 0)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.record.selector == 1 {
            "public key"
        } else {
            "certificate"
        };
        let which = if self.depth == 0 {
            "end-entity"
        } else {
            "trust-anchor"
        };
        write!(
            f,
            "TLSA {} ({}) matched the {which} {what} (depth {})",
            self.record,
            self.record.usage_name(),
            self.depth
        )
    }
}

/// Does `cert` match `r` (selector and matching type only; usage is the caller's)?
pub fn matches(r: &TlsaRecord, cert: &CertificateDer<'_>) -> bool {
    let selected: Vec<u8> = match r.selector {
        0 => cert.as_ref().to_vec(),
        1 => match webpki::EndEntityCert::try_from(cert) {
            Ok(c) => c.subject_public_key_info().as_ref().to_vec(),
            Err(_) => return false,
        },
        _ => return false,
    };
    match r.matching {
        0 => selected == r.data,
        1 => digest(&aws_lc_rs::digest::SHA256, &selected) == r.data,
        2 => digest(&aws_lc_rs::digest::SHA512, &selected) == r.data,
        _ => false,
    }
}

fn digest(alg: &'static aws_lc_rs::digest::Algorithm, data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
}

/// Authenticate the chain `ee` + `rest` (as the server sent it) by `expect`.
pub fn verify(
    expect: &DaneExpect,
    ee: &CertificateDer<'_>,
    rest: &[CertificateDer<'_>],
    now: UnixTime,
    algs: &[&dyn SignatureVerificationAlgorithm],
) -> Result<DaneMatch, CertRejected> {
    let usable: Vec<&TlsaRecord> = expect
        .records
        .iter()
        .filter(|r| usability(r).is_ok())
        .collect();
    // DANE-EE first: the cheapest, and the most common (RFC 7672 §3.1.1).
    if let Some(r) = usable.iter().find(|r| r.usage == 3 && matches(r, ee)) {
        return Ok(DaneMatch {
            record: (*r).clone(),
            depth: 0,
        });
    }
    // DANE-TA: any certificate of the chain, the end entity included.
    let mut ta_problem: Option<String> = None;
    let chain = std::iter::once(ee).chain(rest.iter());
    for (depth, cert) in chain.enumerate() {
        for r in usable.iter().filter(|r| r.usage == 2) {
            if !matches(r, cert) {
                continue;
            }
            match ta_verify(expect, ee, rest, depth, now, algs) {
                Ok(()) => {
                    return Ok(DaneMatch {
                        record: (*r).clone(),
                        depth,
                    });
                }
                Err(why) => {
                    ta_problem.get_or_insert(format!(
                        "TLSA {} (DANE-TA) matched the certificate at depth {depth}, but {why}",
                        r
                    ));
                }
            }
        }
    }
    if let Some(p) = ta_problem {
        return Err(p.into());
    }
    let (cert_fp, key_fp) = crate::client::fingerprints(ee);
    Err(format!(
        "no TLSA record matched: certificate SHA-256 {} / key SHA-256 {} (records: {})",
        cert_fp.trim_start_matches("sha256:"),
        key_fp
            .as_deref()
            .map(|k| k.trim_start_matches("sha256:"))
            .unwrap_or("unreadable"),
        usable
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
    .into())
}

/// DANE-TA: the end entity chains to the certificate at `depth` and carries a name.
fn ta_verify(
    expect: &DaneExpect,
    ee: &CertificateDer<'_>,
    rest: &[CertificateDer<'_>],
    depth: usize,
    now: UnixTime,
    algs: &[&dyn SignatureVerificationAlgorithm],
) -> Result<(), String> {
    if depth > 0 {
        let Some(anchor_der) = rest.get(depth - 1) else {
            return Err("the chain ended early".into());
        };
        let anchor = webpki::anchor_from_trusted_cert(anchor_der)
            .map_err(|e| format!("it is not a usable trust anchor ({e:?})"))?;
        let end = webpki::EndEntityCert::try_from(ee)
            .map_err(|e| format!("the server certificate is malformed ({e:?})"))?;
        // Only the certificates below the anchor can be intermediates.
        let below = rest.get(..depth - 1).unwrap_or(&[]);
        end.verify_for_usage(
            algs,
            &[anchor],
            below,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| {
            format!(
                "the server certificate does not chain to it: {}",
                chain_error(&e)
            )
        })?;
    }
    let names = cert_names(ee);
    if names
        .iter()
        .any(|have| expect.names.iter().any(|want| name_matches(have, want)))
    {
        return Ok(());
    }
    Err(format!(
        "certificate name mismatch: got {}, wanted {}",
        if names.is_empty() {
            "no DNS names".to_string()
        } else {
            names.join(", ")
        },
        expect.names.join(" or ")
    ))
}

fn chain_error(e: &webpki::Error) -> String {
    match e {
        webpki::Error::CertExpired { .. } => "certificate expired".into(),
        webpki::Error::CertNotValidYet { .. } => "certificate not yet valid".into(),
        webpki::Error::UnknownIssuer => "untrusted issuer".into(),
        other => format!("{other:?}"),
    }
}

/// The `3 1 1` record (DANE-EE, SubjectPublicKeyInfo, SHA-256) of a certificate: the
/// record receiving servers should publish (RFC 7671 §5.1): it survives a renewal that
/// keeps the key.
pub fn ee_spki_sha256(cert: &CertificateDer<'_>) -> Option<TlsaRecord> {
    let c = webpki::EndEntityCert::try_from(cert).ok()?;
    Some(TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: digest(
            &aws_lc_rs::digest::SHA256,
            c.subject_public_key_info().as_ref(),
        ),
    })
}

/// For `postern dns-records`: the TLSA records of every served certificate (`certs`, or
/// the self-signed pair in `selfsigned_dir` when none is configured and it exists), for
/// `_25._tcp.HOST`, with a short note on key rollover.
pub fn dns_records_text(
    hostname: &str,
    certs: &[crate::CertificateConfig],
    selfsigned_dir: &std::path::Path,
) -> String {
    use std::fmt::Write as _;
    let host = hostname.trim_end_matches('.');
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n; ===== DANE (RFC 7672): TLSA records for {host}, port 25 =====\n\
         ; Publish them in a DNSSEC-signed zone. One per served certificate: a sender may\n\
         ; negotiate either the RSA or the ECDSA one. \"3 1 1\" pins the key, so a renewal that\n\
         ; keeps the key needs no change. Before a new key is used, publish its record next to\n\
         ; the old one and wait at least twice the TTL; remove the old record after the switch.\n\
         ; With a CA that keeps its intermediate key, \"2 1 1\" of that intermediate is an\n\
         ; alternative; publish both \"3 1 1\" and \"2 1 1\" only if you watch both."
    );
    let mut files: Vec<std::path::PathBuf> = certs.iter().map(|c| c.chain.clone()).collect();
    if files.is_empty() {
        for name in ["selfsigned-ecdsa-p256", "selfsigned-rsa2048"] {
            let f = selfsigned_dir.join(format!("{name}.crt"));
            if f.exists() {
                files.push(f);
            }
        }
        if files.is_empty() {
            let _ = writeln!(
                out,
                "; No [[tls.certificate]] is configured and no self-signed certificate exists yet:\n\
                 ; start the server once (it generates them), or configure certificates, then rerun."
            );
            return out;
        }
    }
    for f in files {
        let leaf = crate::read_chain(&f)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                c.into_iter()
                    .next()
                    .ok_or_else(|| "empty chain".to_string())
            });
        let leaf = match leaf {
            Ok(l) => l,
            Err(e) => {
                let _ = writeln!(
                    out,
                    "; {}: cannot read the certificate, no record: {e}",
                    f.display()
                );
                continue;
            }
        };
        let kind = crate::x509::CertInfo::parse(leaf.as_ref())
            .map(|i| i.key.to_string())
            .unwrap_or_else(|_| "unknown key".into());
        match ee_spki_sha256(&leaf) {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "; {kind} certificate {}\n_25._tcp.{host}. IN TLSA {r}",
                    f.display()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "; {}: not a readable certificate, no record",
                    f.display()
                );
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests;
