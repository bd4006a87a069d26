//! A TLS client configuration for tests: accepts any server certificate (the test servers
//! use self-signed ones) but records what it was shown.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, SignatureScheme};

/// Accepts every certificate; keeps the last leaf seen.
#[derive(Debug)]
pub struct AcceptAny {
    provider: Arc<CryptoProvider>,
    pub seen: Mutex<Option<CertificateDer<'static>>>,
    /// Restrict the schemes we claim to support (to steer the server's certificate choice).
    schemes: Option<Vec<SignatureScheme>>,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
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
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone().unwrap_or_else(|| {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        })
    }
}

/// A client config that accepts any certificate. `schemes` limits the signature schemes
/// offered (e.g. only RSA ones, to make the server pick its RSA certificate).
pub fn client_config(schemes: Option<Vec<SignatureScheme>>) -> (Arc<ClientConfig>, Arc<AcceptAny>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AcceptAny {
        provider: provider.clone(),
        seen: Mutex::new(None),
        schemes,
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    (Arc::new(cfg), verifier)
}

/// A client config that accepts any server certificate, with a chosen provider (e.g. a TLS
/// profile's, to act as a Suite B-only client), signature schemes, and client certificate.
pub fn client_config_with(
    provider: CryptoProvider,
    schemes: Option<Vec<SignatureScheme>>,
    client: Option<(
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> (Arc<ClientConfig>, Arc<AcceptAny>) {
    let provider = Arc::new(provider);
    let verifier = Arc::new(AcceptAny {
        provider: provider.clone(),
        seen: Mutex::new(None),
        schemes,
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone());
    let cfg = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    (Arc::new(cfg), verifier)
}
