//! Building the rustls server configuration and describing negotiated sessions.

use std::sync::Arc;

use rustls::server::ServerConnection;
use rustls::{ProtocolVersion, ServerConfig};

use crate::profiles::{provider, usable_certs, versions};
use crate::{CertResolver, LoadedCert, Profile, TlsError};

/// A server configuration serving `certs` under `profile`.
pub fn server_config(
    profile: Profile,
    certs: Vec<LoadedCert>,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(profile, certs, ClientAuth::Off)
}

/// Whether clients are asked for a certificate.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    Off,
    /// Ask; a presented certificate must verify against these roots, none is fine too.
    Request(Arc<rustls::RootCertStore>),
    /// Ask, and refuse the handshake without a certificate that verifies.
    Require(Arc<rustls::RootCertStore>),
}

/// A server configuration with client-certificate verification.
pub fn server_config_with(
    profile: Profile,
    certs: Vec<LoadedCert>,
    client: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, skipped) = usable_certs(profile, &certs);
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "no certificate to serve under TLS profile {profile}{}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", skipped.join("; "))
            }
        )));
    }
    let provider = Arc::new(provider(profile));
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(profile))
        .map_err(|e| TlsError::Invalid(format!("TLS profile cannot be built: {e}")))?;
    let optional = matches!(client, ClientAuth::Request(_));
    let builder = match client {
        ClientAuth::Off => builder.with_no_client_auth(),
        ClientAuth::Request(roots) | ClientAuth::Require(roots) => {
            let mut v =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            if optional {
                v = v.allow_unauthenticated();
            }
            let v = v
                .build()
                .map_err(|e| TlsError::Invalid(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(CertResolver::new(certs)));
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

/// What was negotiated, for the Received header and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSummary {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// rustls' name of the suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

impl std::fmt::Display for TlsSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} with cipher {}", self.version, self.cipher)
    }
}

pub fn summarize(conn: &ServerConnection) -> TlsSummary {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let s = s.suite();
            s.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{s:?}"))
        })
        .unwrap_or_else(|| "unknown".to_string());
    TlsSummary { version, cipher }
}
