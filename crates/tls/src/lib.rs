//! TLS for Postern: profiles, the certificate store (with reload and expiry warnings),
//! client-certificate verification with CRLs, and the server-side configuration.
//!
//! A server may hold several certificates at once (typically RSA-2048 and ECDSA P-256, as
//! the NCSC guidance recommends); [`CertResolver`] picks, per handshake, the first one the
//! client can verify, from the signature schemes in its ClientHello. With no certificate
//! configured, [`selfsigned::ensure`] creates a self-signed pair so that STARTTLS works from
//! the first start — loudly logged, since peers that verify will refuse it.
//!
//! # Security
//! Private keys are read from files the operator names and never logged; generated keys are
//! written with mode 0600. Only the aws-lc-rs provider is used.
//!
//! # Standards
//! RFC 8446 (TLS 1.3), RFC 5246 (TLS 1.2), RFC 3207 (STARTTLS).

pub mod check;
pub mod client;
pub mod clientauth;
mod config;
pub mod dane;
mod expiry;
pub mod keyfile;
pub mod profiles;
mod resolver;
pub mod selfsigned;
mod server;
pub mod store;
pub mod stream;
pub mod x509;

pub use clientauth::{ClientCertPolicy, PresentedCert};
pub use config::{CertificateConfig, Profile, TlsConfig};
pub use profiles::provider;
pub use resolver::{CertResolver, LoadedCert, read_chain};
pub use server::{ClientAuth, TlsSummary, server_config, server_config_with, summarize};
pub use store::{ReloadReport, TlsStore};
pub use stream::MaybeTls;
pub use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::server::TlsStream;

/// Why a certificate is not trusted or not usable: the precise reason, as the log line,
/// the bounce or the report gives it ("certificate expired", "untrusted issuer", ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertRejected(pub String);

impl From<String> for CertRejected {
    fn from(s: String) -> Self {
        CertRejected(s)
    }
}

impl From<&str> for CertRejected {
    fn from(s: &str) -> Self {
        CertRejected(s.to_string())
    }
}

/// Why a certificate or key could not be loaded; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}
