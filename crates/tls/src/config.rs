//! The `[tls]` section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[tls]`: server-side TLS for every listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Cipher-suite and protocol profile.
    #[serde(default)]
    pub profile: Profile,
    /// Certificates to serve. Empty: a self-signed pair is generated in the state
    /// directory (for trials only).
    #[serde(default)]
    pub certificate: Vec<CertificateConfig>,
}

/// One `[[tls.certificate]]`: a PEM chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub chain: PathBuf,
    pub key: PathBuf,
}

/// TLS profiles (see `profiles.rs` and docs/tls-profiles.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// TLS 1.2 and 1.3 with rustls' secure cipher suites and groups.
    #[default]
    Default,
    /// NCSC preferred profile: Suite B combination 1 (ECDSA P-256, AES-128-GCM, P-256).
    NcscSuiteB,
    /// NCSC Foundation profile: RSA-2048/SHA-256, AES-128 (GCM), ECDHE.
    NcscFoundation,
}
