//! Client-side TLS for outbound SMTP: one verifier that implements every certificate
//! policy level, and records what it found so that the log can say precisely why.
//!
//! Handshake signatures are always verified (a peer must prove it holds the key of the
//! certificate it shows); what differs per level is whether the certificate itself must
//! chain to a trust anchor, and which names or fingerprints it must carry.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

use crate::{CertRejected, LoadedCert, TlsError};

/// What a certificate must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Accept any certificate (levels `may`, `encrypt`); the trust found is still recorded.
    Anything,
    /// The certificate's or its public key's SHA-256 must be one of these (`fingerprint`).
    Fingerprints(Vec<String>),
    /// Chain to a trust anchor, and carry one of these names (`verify`, `secure`). A name
    /// starting with `.` matches any subdomain of what follows.
    Names(Vec<String>),
    /// DANE (`dane`, `dane-only` with secure usable TLSA records): match one of the
    /// records ([`crate::dane::verify`]); no trust store is involved.
    Dane(crate::dane::DaneExpect),
}

/// What the handshake established about the peer's certificate, in Postfix's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerTrust {
    /// Chain and name (or fingerprint) verified.
    Verified,
    /// Chain verified, name not matched (only under `may`/`encrypt`).
    Trusted,
    /// Neither.
    Untrusted,
}

impl PeerTrust {
    pub fn word(&self) -> &'static str {
        match self {
            PeerTrust::Verified => "Verified",
            PeerTrust::Trusted => "Trusted",
            PeerTrust::Untrusted => "Untrusted",
        }
    }
}

/// The verifier for one connection.
#[derive(Debug)]
pub struct PeerVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    expect: Expect,
    /// The host name we connected to (for `Trusted` vs `Verified` under `may`).
    host: String,
    outcome: Mutex<Option<Result<PeerTrust, CertRejected>>>,
    /// Under [`Expect::Dane`]: the record that matched.
    dane: Mutex<Option<crate::dane::DaneMatch>>,
}

impl PeerVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        expect: Expect,
        host: &str,
    ) -> PeerVerifier {
        let webpki = if roots.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .ok()
        };
        PeerVerifier {
            webpki,
            provider,
            expect,
            host: host.to_ascii_lowercase(),
            outcome: Mutex::new(None),
            dane: Mutex::new(None),
        }
    }

    /// The verdict once the handshake ran: trust level, or the precise reason for refusal.
    pub fn outcome(&self) -> Option<Result<PeerTrust, CertRejected>> {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Under [`Expect::Dane`], once the handshake verified: which TLSA record matched.
    pub fn dane_match(&self) -> Option<crate::dane::DaneMatch> {
        self.dane.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, r: Result<PeerTrust, CertRejected>) -> Result<ServerCertVerified, Error> {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
        match r {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(why) => Err(Error::General(why.0)),
        }
    }

    /// Chain check only: the name is taken from the certificate itself so that webpki
    /// judges the chain, and names are matched here, with precise messages.
    fn chain(
        &self,
        ee: &CertificateDer<'_>,
        inter: &[CertificateDer<'_>],
        now: UnixTime,
        names: &[String],
    ) -> Result<(), CertRejected> {
        let Some(webpki) = &self.webpki else {
            return Err("untrusted issuer (no trust anchors configured)".into());
        };
        let first = names
            .first()
            .cloned()
            .unwrap_or_else(|| "invalid.invalid".into());
        let probe = first.trim_start_matches("*.").to_string();
        let probe = if first.starts_with("*.") {
            format!("x.{probe}")
        } else {
            probe
        };
        let name = ServerName::try_from(probe)
            .map_err(|_| CertRejected::from("certificate carries no usable DNS name"))?;
        match webpki.verify_server_cert(ee, inter, &name, &[], now) {
            Ok(_) => Ok(()),
            Err(Error::InvalidCertificate(e)) => Err(describe(&e).into()),
            Err(e) => Err(format!("certificate rejected: {e}").into()),
        }
    }
}

fn describe(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => "untrusted issuer".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not yet valid".into()
        }
        CertificateError::Revoked => "certificate revoked".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "certificate carries no usable DNS name".into()
        }
        other => format!("certificate rejected: {other:?}"),
    }
}

/// DNS names in a certificate, lower-cased.
pub fn cert_names(der: &CertificateDer<'_>) -> Vec<String> {
    webpki::EndEntityCert::try_from(der)
        .map(|c| {
            c.valid_dns_names()
                .map(|n| n.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// `sha256:HEX` of the certificate, and of its SubjectPublicKeyInfo.
pub fn fingerprints(der: &CertificateDer<'_>) -> (String, Option<String>) {
    let cert = format!(
        "sha256:{}",
        hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
    );
    let spki = webpki::EndEntityCert::try_from(der).ok().map(|c| {
        format!(
            "sha256:{}",
            hex(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                c.subject_public_key_info().as_ref()
            )
            .as_ref())
        )
    });
    (cert, spki)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Does certificate name `have` (maybe `*.x`) satisfy `want` (maybe `.x` = any subdomain)?
pub fn name_matches(have: &str, want: &str) -> bool {
    let (have, want) = (have.trim_end_matches('.'), want.trim_end_matches('.'));
    if let Some(suffix) = want.strip_prefix('.') {
        // Any subdomain of suffix: a concrete name below it, or a wildcard one level below.
        let h = have.strip_prefix("*.").unwrap_or(have);
        return (h.len() > suffix.len()
            && h.ends_with(suffix)
            && h.as_bytes()[h.len() - suffix.len() - 1] == b'.')
            || (have.starts_with("*.") && h == suffix);
    }
    if let Some(base) = have.strip_prefix("*.") {
        // A wildcard covers exactly one label.
        return want
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == base);
    }
    have == want
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        ee: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let names = cert_names(ee);
        match &self.expect {
            Expect::Anything => {
                let trust = match self.chain(ee, intermediates, now, &names) {
                    Ok(()) if names.iter().any(|n| name_matches(n, &self.host)) => {
                        PeerTrust::Verified
                    }
                    Ok(()) => PeerTrust::Trusted,
                    Err(_) => PeerTrust::Untrusted,
                };
                self.record(Ok(trust))
            }
            Expect::Fingerprints(pins) => {
                let (cert, spki) = fingerprints(ee);
                let pins: Vec<String> = pins.iter().map(|p| p.to_ascii_lowercase()).collect();
                if pins.contains(&cert) || spki.as_ref().is_some_and(|s| pins.contains(s)) {
                    self.record(Ok(PeerTrust::Verified))
                } else {
                    self.record(Err(format!(
                        "fingerprint mismatch: certificate is {cert}, public key is {}",
                        spki.unwrap_or_default()
                    )
                    .into()))
                }
            }
            Expect::Dane(expect) => {
                let algs = self.provider.signature_verification_algorithms.all;
                match crate::dane::verify(expect, ee, intermediates, now, algs) {
                    Ok(m) => {
                        *self.dane.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                        self.record(Ok(PeerTrust::Verified))
                    }
                    Err(why) => self.record(Err(why)),
                }
            }
            Expect::Names(wanted) => {
                if let Err(why) = self.chain(ee, intermediates, now, &names) {
                    return self.record(Err(why));
                }
                if names
                    .iter()
                    .any(|h| wanted.iter().any(|w| name_matches(h, w)))
                {
                    self.record(Ok(PeerTrust::Verified))
                } else {
                    self.record(Err(format!(
                        "certificate name mismatch: got {}, wanted {}",
                        if names.is_empty() {
                            "no DNS names".to_string()
                        } else {
                            names.join(", ")
                        },
                        wanted.join(" or ")
                    )
                    .into()))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for one outbound connection.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    verifier: Arc<PeerVerifier>,
    client_cert: Option<&LoadedCert>,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with(provider, verifier, client_cert)
}

/// A client configuration with any server-certificate verifier (the scanner records).
pub fn client_config_with(
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
    client_cert: Option<&LoadedCert>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(format!("TLS client profile cannot be built: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let cfg = match client_cert {
        Some(c) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(c.key.clone()))),
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct FixedClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        schemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// Trust anchors: a PEM bundle, or the system store when `path` is `None`.
pub fn load_roots(path: Option<&std::path::Path>) -> Result<RootCertStore, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    match path {
        Some(p) => {
            let pem = std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.display().to_string(),
                source,
            })?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    TlsError::Invalid(format!(
                        "{}: not a PEM certificate bundle: {e}",
                        p.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(TlsError::Invalid(format!(
                    "{}: no CERTIFICATE blocks found",
                    p.display()
                )));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    TlsError::Invalid(format!("{}: unusable CA certificate: {e}", p.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_matching() {
        assert!(name_matches("mx.example.org", "mx.example.org"));
        assert!(!name_matches("mx.example.org", "example.org"));
        assert!(name_matches("*.example.org", "mx.example.org"));
        assert!(!name_matches("*.example.org", "a.mx.example.org"));
        assert!(!name_matches("*.example.org", "example.org"));
        assert!(name_matches("mx.example.org", ".example.org"));
        assert!(name_matches("a.b.example.org", ".example.org"));
        assert!(!name_matches("example.org", ".example.org"));
        assert!(!name_matches("badexample.org", ".example.org"));
        assert!(name_matches("*.example.org", ".example.org"));
    }
}
