//! Client certificates on inbound connections: the verifier a listener hands to rustls,
//! reloadable (CAs and CRLs can change under a running server), and the verdict on what a
//! client presented.
//!
//! With `request`, a presented certificate that does not verify still lets the handshake
//! finish (as Postfix does): the session is then `Untrusted`, and neither partner rules nor
//! relay permission will accept it except by an explicit fingerprint. The client must still
//! prove it holds the certificate's key (the handshake signature is always checked). With
//! `require`, such a certificate ends the handshake.
//!
//! # Security
//! Revocation: the CRL files are consulted for the end-entity certificate; a certificate
//! whose issuer publishes no CRL here is not considered revoked (partner CAs differ, and
//! one partner's CRL says nothing about another's certificates).
//!
//! # Standards
//! RFC 5280 §6 (path validation), §5 (CRLs); RFC 8446 §4.3.2 (CertificateRequest
//! certificate_authorities), RFC 5246 §7.4.4.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use crate::client::{cert_names, fingerprints};
use crate::x509::CertInfo;
use crate::{Profile, TlsError};

/// What a client presented, and what we made of it.
#[derive(Debug, Clone)]
pub struct PresentedCert {
    pub chain: Vec<CertificateDer<'static>>,
    /// `Ok`: chains to the listener's `client_ca` and is not revoked. `Err`: why not.
    pub trust: Result<(), String>,
    /// `sha256:` of the certificate and of its public key.
    pub fingerprint: String,
    pub spki_fingerprint: Option<String>,
    pub info: Option<CertInfo>,
    /// DNS names of the subjectAltName, lower-cased (never the subject common name).
    pub names: Vec<String>,
}

impl PresentedCert {
    pub fn verified(&self) -> bool {
        self.trust.is_ok()
    }

    /// `Verified` or `Untrusted`, the log line's first word.
    pub fn word(&self) -> &'static str {
        if self.verified() {
            "Verified"
        } else {
            "Untrusted"
        }
    }

    /// The subject distinguished name, or the fingerprint when it cannot be read.
    pub fn subject(&self) -> String {
        self.info
            .as_ref()
            .map(|i| i.subject.clone())
            .unwrap_or_else(|| self.fingerprint.clone())
    }

    /// Does either fingerprint appear in `pins` (lower-case `sha256:HEX`)?
    pub fn matches_fingerprint(&self, pins: &[String]) -> bool {
        pins.iter().any(|p| {
            p.eq_ignore_ascii_case(&self.fingerprint)
                || self
                    .spki_fingerprint
                    .as_ref()
                    .is_some_and(|s| p.eq_ignore_ascii_case(s))
        })
    }

    fn new(chain: &[CertificateDer<'_>], trust: Result<(), String>) -> PresentedCert {
        let chain: Vec<CertificateDer<'static>> =
            chain.iter().map(|c| c.clone().into_owned()).collect();
        // Names come from the subjectAltName only: a CA's name constraints apply to those,
        // not to the subject common name, so a CN is never taken as a name.
        let (fingerprint, spki_fingerprint, info, names) = match chain.first() {
            Some(ee) => {
                let (f, s) = fingerprints(ee);
                (f, s, CertInfo::parse(ee).ok(), cert_names(ee))
            }
            None => (String::new(), None, None, Vec::new()),
        };
        PresentedCert {
            chain,
            trust,
            fingerprint,
            spki_fingerprint,
            info,
            names,
        }
    }
}

struct Loaded {
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    verifier: Arc<dyn ClientCertVerifier>,
}

/// The client-certificate verifier of one listener: `client_ca` + `crl` files.
pub struct ClientCertPolicy {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
    ca: PathBuf,
    crl_files: Vec<PathBuf>,
    state: RwLock<Arc<Loaded>>,
    /// The CA names sent in the CertificateRequest. `root_hint_subjects` must return a
    /// borrowed slice, so each reload leaks one small list (a few hundred bytes per SIGHUP).
    hints: RwLock<&'static [DistinguishedName]>,
}

impl std::fmt::Debug for ClientCertPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertPolicy")
            .field("mandatory", &self.mandatory)
            .field("ca", &self.ca)
            .field("crl", &self.crl_files)
            .finish_non_exhaustive()
    }
}

impl ClientCertPolicy {
    /// Load `ca` (PEM bundle) and the CRL files (PEM or DER).
    pub fn new(
        profile: Profile,
        ca: &Path,
        crls: &[PathBuf],
        mandatory: bool,
    ) -> Result<ClientCertPolicy, TlsError> {
        let provider = Arc::new(crate::provider(profile));
        let loaded = load(&provider, ca, crls)?;
        let hints: &'static [DistinguishedName] = Box::leak(
            loaded
                .verifier
                .root_hint_subjects()
                .to_vec()
                .into_boxed_slice(),
        );
        Ok(ClientCertPolicy {
            mandatory,
            provider,
            ca: ca.to_path_buf(),
            crl_files: crls.to_vec(),
            state: RwLock::new(Arc::new(loaded)),
            hints: RwLock::new(hints),
        })
    }

    /// Re-read the CA and CRL files. On error the old ones stay in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = load(&self.provider, &self.ca, &self.crl_files)?;
        let hints: &'static [DistinguishedName] = Box::leak(
            loaded
                .verifier
                .root_hint_subjects()
                .to_vec()
                .into_boxed_slice(),
        );
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        *self.hints.write().unwrap_or_else(|p| p.into_inner()) = hints;
        Ok(())
    }

    /// A description for logs: `client_ca FILE (+ N CRL files)`.
    pub fn describe(&self) -> String {
        format!(
            "client_ca {}{}",
            self.ca.display(),
            if self.crl_files.is_empty() {
                String::new()
            } else {
                format!(" + {} CRL file(s)", self.crl_files.len())
            }
        )
    }

    fn current(&self) -> Arc<Loaded> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The verdict on a presented chain (leaf first), at the current time.
    pub fn classify(&self, chain: &[CertificateDer<'_>]) -> PresentedCert {
        let trust = match chain.split_first() {
            Some((ee, rest)) => self
                .current()
                .verifier
                .verify_client_cert(ee, rest, UnixTime::now())
                .map(|_| ())
                .map_err(|e| describe(&e)),
            None => Err("no certificate".into()),
        };
        PresentedCert::new(chain, trust)
    }

    /// Does `chain` verify against `roots` (a partner's own CA), with this listener's CRLs?
    pub fn verify_against(
        &self,
        roots: Arc<RootCertStore>,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), String> {
        let Some((ee, rest)) = chain.split_first() else {
            return Err("no certificate".into());
        };
        let v =
            build(&self.provider, roots, self.current().crls.clone()).map_err(|e| e.to_string())?;
        v.verify_client_cert(ee, rest, UnixTime::now())
            .map(|_| ())
            .map_err(|e| describe(&e))
    }

    /// The trust anchors in force (for reports).
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.current().roots.clone()
    }
}

/// A precise, operator-readable reason for a refused client certificate.
fn describe(e: &Error) -> String {
    use rustls::CertificateError as C;
    match e {
        Error::InvalidCertificate(C::UnknownIssuer) => {
            "certificate does not chain to a trusted CA".into()
        }
        Error::InvalidCertificate(C::Revoked) => "certificate revoked (listed in a CRL)".into(),
        Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "certificate expired".into()
        }
        Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "certificate not yet valid".into()
        }
        Error::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => {
            "certificate is not for client authentication (extended key usage)".into()
        }
        Error::InvalidCertificate(other) => format!("certificate rejected: {other:?}"),
        other => format!("certificate rejected: {other}"),
    }
}

fn load(provider: &Arc<CryptoProvider>, ca: &Path, crls: &[PathBuf]) -> Result<Loaded, TlsError> {
    let roots = Arc::new(crate::client::load_roots(Some(ca))?);
    let mut all = Vec::new();
    for f in crls {
        all.extend(read_crls(f)?);
    }
    let verifier = build(provider, roots.clone(), all.clone()).map_err(|e| {
        TlsError::Invalid(format!(
            "client certificate verifier ({} and CRLs): {e}",
            ca.display()
        ))
    })?;
    Ok(Loaded {
        roots,
        crls: all,
        verifier,
    })
}

fn build(
    provider: &Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>, rustls::server::VerifierBuilderError> {
    WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .allow_unknown_revocation_status()
        .build()
}

/// The CRLs in a file: PEM (`-----BEGIN X509 CRL-----`) or one DER CRL.
pub fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: not a PEM CRL file: {e}", path.display())))?;
    let crls = if pem.is_empty() && data.first() == Some(&0x30) {
        vec![CertificateRevocationListDer::from(data)]
    } else {
        pem
    };
    if crls.is_empty() {
        return Err(TlsError::Invalid(format!(
            "{}: no X509 CRL found (expected PEM or DER)",
            path.display()
        )));
    }
    for c in &crls {
        webpki::OwnedCertRevocationList::from_der(c.as_ref())
            .map_err(|e| TlsError::Invalid(format!("{}: unusable CRL: {e:?}", path.display())))?;
    }
    Ok(crls)
}

impl ClientCertVerifier for ClientCertPolicy {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        *self.hints.read().unwrap_or_else(|p| p.into_inner())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self
            .current()
            .verifier
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(v) => Ok(v),
            // `request`: finish the handshake; the session records it as Untrusted.
            Err(_) if !self.mandatory => Ok(ClientCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
