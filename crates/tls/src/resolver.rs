//! Loading certificates and choosing one per handshake.

use std::path::Path;
use std::sync::Arc;

use rustls::SignatureAlgorithm;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// A certificate chain with its key, ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// `ECDSA`, `RSA`, `ED25519` ... for logs.
    pub algorithm: SignatureAlgorithm,
}

impl LoadedCert {
    /// Load a PEM chain (leaf first) and PEM private key, checking that they belong together.
    pub fn load(
        chain: &Path,
        key: &Path,
        provider: &CryptoProvider,
    ) -> Result<LoadedCert, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let chain_pem = read(chain)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                TlsError::Invalid(format!(
                    "{}: not a PEM certificate chain: {e}",
                    chain.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(TlsError::Invalid(format!(
                "{}: no CERTIFICATE blocks found (expected PEM, leaf certificate first)",
                chain.display()
            )));
        }
        let key_pem = read(key)?;
        let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            TlsError::Invalid(format!("{}: no usable PEM private key: {e}", key.display()))
        })?;
        let signing = provider.key_provider.load_private_key(der).map_err(|e| {
            TlsError::Invalid(format!("{}: unsupported private key: {e}", key.display()))
        })?;
        let algorithm = signing.algorithm();
        let ck = CertifiedKey::new(certs, signing);
        ck.keys_match().map_err(|e| {
            TlsError::Invalid(format!(
                "{} and {}: the key does not belong to the first certificate of the chain ({e})",
                key.display(),
                chain.display()
            ))
        })?;
        Ok(LoadedCert {
            key: Arc::new(ck),
            algorithm,
        })
    }
}

/// Picks the certificate for each handshake: the first (ECDSA before RSA) whose key can
/// sign with one of the schemes the client offered.
#[derive(Debug)]
pub struct CertResolver {
    certs: Vec<LoadedCert>,
}

impl CertResolver {
    pub fn new(mut certs: Vec<LoadedCert>) -> CertResolver {
        // ECDSA first: smaller, faster, and what Suite B wants; RSA for older clients.
        certs.sort_by_key(|c| match c.algorithm {
            SignatureAlgorithm::ECDSA => 0,
            SignatureAlgorithm::ED25519 => 1,
            _ => 2,
        });
        CertResolver { certs }
    }

    pub fn certs(&self) -> &[LoadedCert] {
        &self.certs
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offered = hello.signature_schemes();
        self.certs
            .iter()
            .find(|c| c.key.key.choose_scheme(offered).is_some())
            .map(|c| c.key.clone())
    }
}
