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

    /// Does the leaf certificate name `host` (subjectAltName DNS names, `*.` covering one
    /// label; the common name only when there are none)? `host` in lower case.
    pub fn names_host(&self, host: &str) -> bool {
        let Some(info) = &self.info else {
            return false;
        };
        let matches = |n: &String| crate::client::name_matches(&n.to_ascii_lowercase(), host);
        if info.sans.is_empty() {
            info.common_name.iter().any(matches)
        } else {
            info.sans.iter().any(matches)
        }
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
/// sign with one of the schemes the client offered, among those naming the SNI host name
/// when the client sent one and some certificate names it (e.g. `mta-sts.DOMAIN` on the
/// MTA-STS policy listener), else among all. The set can be replaced while the
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
        let certs = self.certs();
        let usable = |c: &&LoadedCert| c.key.key.choose_scheme(offered).is_some();
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        sni.and_then(|n| certs.iter().filter(|c| c.names_host(&n)).find(usable))
            .or_else(|| certs.iter().find(usable))
            .map(|c| c.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(names: &[&str]) -> LoadedCert {
        let d = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = p.self_signed(&key).unwrap();
        let (c, k) = (d.path().join("c.pem"), d.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        LoadedCert::load(&c, &k, &rustls::crypto::aws_lc_rs::default_provider()).unwrap()
    }

    #[test]
    fn names_for_sni() {
        let c = loaded(&["mx.example.org", "*.example.net"]);
        assert!(c.names_host("mx.example.org"));
        assert!(c.names_host("mta-sts.example.net"));
        assert!(!c.names_host("mta-sts.example.org"));
        assert!(!c.names_host("a.b.example.net"));
    }
}
