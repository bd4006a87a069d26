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
//! Revocation: the CRL files are consulted for every certificate of the chain below the
//! trust anchor (the client certificate and its intermediates); a certificate whose issuer
//! publishes no CRL here is not considered revoked (partner CAs differ, and one partner's
//! CRL says nothing about another's certificates).
//!
//! A CRL past its `nextUpdate` is stale: it cannot say whether a certificate was revoked
//! since. Certificates its issuer signed are then refused (fail closed), with a log line
//! naming the stale CRL; loading, reloading and `check-config` warn about it, and a day
//! before it goes stale too. Refresh CRL files before their `nextUpdate` (cron + SIGHUP).
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
use crate::{CertRejected, Profile, TlsError};

/// What a client presented, and what we made of it.
#[derive(Debug, Clone)]
pub struct PresentedCert {
    pub chain: Vec<CertificateDer<'static>>,
    /// `Ok`: chains to the listener's `client_ca` and is not revoked. `Err`: why not.
    pub trust: Result<(), CertRejected>,
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

    fn new(chain: &[CertificateDer<'_>], trust: Result<(), CertRejected>) -> PresentedCert {
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
                .map_err(|e| describe(&e).into()),
            None => Err("no certificate".into()),
        };
        PresentedCert::new(chain, trust)
    }

    /// Does `chain` verify against `roots` (a partner's own CA), with this listener's CRLs?
    pub fn verify_against(
        &self,
        roots: Arc<RootCertStore>,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), CertRejected> {
        let Some((ee, rest)) = chain.split_first() else {
            return Err("no certificate".into());
        };
        let v =
            build(&self.provider, roots, self.current().crls.clone()).map_err(|e| e.to_string())?;
        v.verify_client_cert(ee, rest, UnixTime::now())
            .map(|_| ())
            .map_err(|e| describe(&e).into())
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
        Error::InvalidCertificate(C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. }) => {
            "the CRL of this certificate's issuer is past its nextUpdate (stale): refresh the CRL file and reload (SIGHUP); until then the issuer's certificates are refused".into()
        }
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
        let read = read_crls(f)?;
        for w in crl_warnings(f, &read, crate::store::unix_now()) {
            tracing::warn!("{w}");
        }
        all.extend(read);
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
        .allow_unknown_revocation_status()
        .enforce_revocation_expiration()
        .build()
}

/// A CRL counts as nearly stale this long before its `nextUpdate`.
pub const CRL_STALE_WARNING_SECS: i64 = 86_400;

/// Warnings for the CRLs read from `path`: stale (past `nextUpdate`: its issuer's
/// certificates are refused) or going stale within a day.
pub fn crl_warnings(
    path: &Path,
    crls: &[CertificateRevocationListDer<'_>],
    now: i64,
) -> Vec<String> {
    crls.iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let next = CertInfo::crl_next_update(c.as_ref()).ok()??;
            let when = crate::x509::format_time(next);
            let which = format!("{} (CRL #{i})", path.display());
            if next <= now {
                Some(format!(
                    "{which} is stale: its nextUpdate {when} has passed; certificates from its issuer are refused until a fresh CRL is installed and Postern reloaded (SIGHUP)"
                ))
            } else if next - now < CRL_STALE_WARNING_SECS {
                Some(format!(
                    "{which} goes stale at {when} (nextUpdate); refresh it before then, or certificates from its issuer will be refused"
                ))
            } else {
                None
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use postern_test_support::ca::{IssueOpts, Issued, TestCa};

    fn policy(dir: &Path, ca: &TestCa, crls: &[String]) -> ClientCertPolicy {
        let ca_path = ca.write_ca(dir, "ca");
        let files: Vec<PathBuf> = crls
            .iter()
            .enumerate()
            .map(|(i, pem)| {
                let p = dir.join(format!("{i}.crl"));
                std::fs::write(&p, pem).unwrap();
                p
            })
            .collect();
        ClientCertPolicy::new(Profile::default(), &ca_path, &files, false).unwrap()
    }

    fn trust(p: &ClientCertPolicy, cert: &Issued) -> Result<(), CertRejected> {
        p.classify(&cert.chain_der()).trust
    }

    /// Regression (#11, item 12): a CRL past its nextUpdate was trusted forever. It now
    /// refuses the certificates of its issuer, saying why; a fresh one does not.
    #[test]
    fn a_stale_crl_refuses_its_issuers_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Partner CA");
        let cert = ca.issue_client("mx.partner.test", IssueOpts::default());
        let fresh = policy(dir.path(), &ca, &[ca.crl_pem_serials(&[], 24 * 7)]);
        assert_eq!(trust(&fresh, &cert), Ok(()));
        let stale = policy(dir.path(), &ca, &[ca.crl_pem_serials(&[], -1)]);
        let why = trust(&stale, &cert).unwrap_err();
        assert!(why.0.contains("nextUpdate"), "{why}");
        let pem = ca.crl_pem_serials(&[], -1);
        let crls = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let w = crl_warnings(Path::new("x.crl"), &crls, crate::store::unix_now());
        assert!(w.len() == 1 && w[0].contains("is stale"), "{w:?}");
        let pem = ca.crl_pem_serials(&[], 2);
        let crls = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let w = crl_warnings(Path::new("x.crl"), &crls, crate::store::unix_now());
        assert!(w.len() == 1 && w[0].contains("goes stale"), "{w:?}");
    }

    /// Regression (#11, item 12): only the end-entity certificate was checked against the
    /// CRLs; a revoked intermediate let its certificates through.
    #[test]
    fn a_revoked_intermediate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = TestCa::new("Partner Root");
        let sub = root.intermediate("Partner Issuing CA");
        let cert = sub.issue_client("mx.partner.test", IssueOpts::default());
        let sub_crl = sub.crl_pem_serials(&[], 24);
        let ok = policy(
            dir.path(),
            &root,
            &[root.crl_pem_serials(&[], 24), sub_crl.clone()],
        );
        assert_eq!(trust(&ok, &cert), Ok(()));
        let revoked = policy(
            dir.path(),
            &root,
            &[root.crl_pem_serials(&[sub.serial()], 24), sub_crl],
        );
        let why = trust(&revoked, &cert).unwrap_err();
        assert!(why.0.contains("revoked"), "{why}");
    }
}
