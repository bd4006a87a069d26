//! Loading certificates and choosing one per handshake.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::SignatureAlgorithm;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;
use crate::x509::CertInfo;

/// A certificate chain with its key, ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// `ECDSA`, `RSA`, `ED25519` ... for logs.
    pub algorithm: SignatureAlgorithm,
    /// What the leaf certificate says (`None` if it could not be parsed for the report).
    pub info: Option<CertInfo>,
}

impl LoadedCert {
    /// Load a PEM chain (leaf first) and PEM private key, checking that they belong together.
    pub fn load(
        chain: &Path,
        key: &Path,
        provider: &CryptoProvider,
    ) -> Result<LoadedCert, TlsError> {
        let certs = read_chain(chain)?;
        let key_pem = read(key)?;
        let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            TlsError::Invalid(format!("{}: no usable PEM private key: {e}", key.display()))
        })?;
        let signing = provider.key_provider.load_private_key(der).map_err(|e| {
            TlsError::Invalid(format!("{}: unsupported private key: {e}", key.display()))
        })?;
        let algorithm = signing.algorithm();
        let info = CertInfo::parse(&certs[0]).ok();
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
            info,
        })
    }

    /// Every certificate of the chain, parsed (leaf first; unparseable ones left out).
    pub fn chain_info(&self) -> Vec<CertInfo> {
        self.key
            .cert
            .iter()
            .filter_map(|c| CertInfo::parse(c).ok())
            .collect()
    }
}

fn read(p: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(p).map_err(|source| TlsError::Read {
        path: p.display().to_string(),
        source,
    })
}

/// A PEM certificate chain (at least one certificate).
pub fn read_chain(chain: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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
    Ok(certs)
}

/// Picks the certificate for each handshake: the first (ECDSA before RSA) whose key can
/// sign with one of the schemes the client offered. The set can be replaced while the
/// server runs (certificate reload); handshakes in progress keep the key they chose.
#[derive(Debug)]
pub struct CertResolver {
    certs: RwLock<Arc<Vec<LoadedCert>>>,
}

impl CertResolver {
    pub fn new(certs: Vec<LoadedCert>) -> CertResolver {
        CertResolver {
            certs: RwLock::new(Arc::new(sorted(certs))),
        }
    }

    /// The certificates served now.
    pub fn certs(&self) -> Arc<Vec<LoadedCert>> {
        self.certs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serve these from the next handshake on.
    pub fn replace(&self, certs: Vec<LoadedCert>) {
        *self.certs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(sorted(certs));
    }
}

fn sorted(mut certs: Vec<LoadedCert>) -> Vec<LoadedCert> {
    // ECDSA first: smaller, faster, and what Suite B wants; RSA for older clients.
    certs.sort_by_key(|c| match c.algorithm {
        SignatureAlgorithm::ECDSA => 0,
        SignatureAlgorithm::ED25519 => 1,
        _ => 2,
    });
    certs
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offered = hello.signature_schemes();
        self.certs()
            .iter()
            .find(|c| c.key.key.choose_scheme(offered).is_some())
            .map(|c| c.key.clone())
    }
}
