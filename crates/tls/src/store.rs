//! The live TLS state of a running server: the served certificates, each listener's
//! client-certificate verifier, and anything else that re-reads files on reload (partner CAs).
//!
//! [`TlsStore::reload`] re-reads every file; each part is replaced only if its new files
//! load completely, so a broken new file keeps the old one serving (and the report says
//! why). Sessions that already finished their handshake are untouched: rustls configs are
//! shared by `Arc`, and only the resolver's and verifiers' contents change.
//!
//! # Security
//! Keys are never logged; reload reports name files and reasons only.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use tracing::{info, warn};

use crate::clientauth::ClientCertPolicy;
use crate::profiles::{provider, usable_certs, versions};
use crate::x509::CertInfo;
use crate::{CertResolver, CertificateConfig, LoadedCert, Profile, TlsError};

/// Certificates expiring within this many days are warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 21;

/// Something else that re-reads its files on reload.
pub trait Reload: Send + Sync + fmt::Debug {
    /// What it is, for the report (`partner "gov" ca /etc/...`).
    fn what(&self) -> String;
    /// Re-read; on error keep the old state and say why.
    fn reload(&self) -> Result<(), TlsError>;
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub reloaded: Vec<String>,
    /// `what: why` for each part that kept its old files.
    pub failed: Vec<String>,
}

impl ReloadReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// The server side's TLS state.
#[derive(Debug)]
pub struct TlsStore {
    profile: Profile,
    certs: Vec<CertificateConfig>,
    resolver: Arc<CertResolver>,
    clients: Mutex<Vec<Arc<ClientCertPolicy>>>,
    others: Mutex<Vec<Arc<dyn Reload>>>,
    served: Mutex<Vec<(String, CertInfo)>>,
    extra: Mutex<Vec<(String, CertInfo)>>,
}

impl TlsStore {
    /// Load the certificates to serve under `profile`.
    pub fn load(profile: Profile, certs: Vec<CertificateConfig>) -> Result<TlsStore, TlsError> {
        let (usable, served) = load_usable(profile, &certs)?;
        Ok(TlsStore {
            profile,
            certs,
            resolver: Arc::new(CertResolver::new(usable)),
            clients: Mutex::new(Vec::new()),
            others: Mutex::new(Vec::new()),
            served: Mutex::new(served),
            extra: Mutex::new(Vec::new()),
        })
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// A rustls server configuration serving this store's certificates, asking for client
    /// certificates through `client` when given (which is then reloaded with the store).
    pub fn server_config(
        &self,
        client: Option<Arc<ClientCertPolicy>>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let b = ServerConfig::builder_with_provider(Arc::new(provider(self.profile)))
            .with_protocol_versions(versions(self.profile))
            .map_err(|e| TlsError::Invalid(format!("TLS profile cannot be built: {e}")))?;
        let b = match client {
            None => b.with_no_client_auth(),
            Some(c) => {
                lock(&self.clients).push(c.clone());
                b.with_client_cert_verifier(c)
            }
        };
        let mut cfg = b.with_cert_resolver(self.resolver.clone());
        // Our order (strongest first), not the client's: the guidance asks servers to
        // prefer the more secure options.
        cfg.ignore_client_order = true;
        Ok(Arc::new(cfg))
    }

    /// Reload `r` together with the certificates.
    pub fn add_reloadable(&self, r: Arc<dyn Reload>) {
        lock(&self.others).push(r);
    }

    /// Watch another certificate's expiry (e.g. an outbound client certificate).
    pub fn watch_expiry(&self, label: String, info: CertInfo) {
        lock(&self.extra).push((label, info));
    }

    /// Re-read every certificate, key, CA and CRL file.
    pub fn reload(&self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let what = self
            .certs
            .iter()
            .map(|c| c.chain.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match load_usable(self.profile, &self.certs) {
            Ok((usable, served)) => {
                self.resolver.replace(usable);
                *lock(&self.served) = served;
                report.reloaded.push(format!("certificates {what}"));
            }
            Err(e) => report.failed.push(format!(
                "certificates {what}: {e} (the previous certificates stay in use)"
            )),
        }
        for c in lock(&self.clients).iter() {
            match c.reload() {
                Ok(()) => report.reloaded.push(c.describe()),
                Err(e) => report.failed.push(format!(
                    "{}: {e} (the previous CAs and CRLs stay in use)",
                    c.describe()
                )),
            }
        }
        for r in lock(&self.others).iter() {
            match r.reload() {
                Ok(()) => report.reloaded.push(r.what()),
                Err(e) => report.failed.push(format!(
                    "{}: {e} (the previous files stay in use)",
                    r.what()
                )),
            }
        }
        for r in &report.reloaded {
            info!("TLS reload: {r}");
        }
        for f in &report.failed {
            warn!("TLS reload failed: {f}");
        }
        self.warn_expiring(unix_now());
        report
    }

    /// Days until each watched certificate expires (served ones first), for metrics.
    pub fn days_to_expiry(&self) -> Vec<(String, i64)> {
        let now = unix_now();
        lock(&self.served)
            .iter()
            .chain(lock(&self.extra).iter())
            .map(|(l, i)| (l.clone(), i.days_to_expiry(now)))
            .collect()
    }

    /// Log a warning for each watched certificate that expires within
    /// [`EXPIRY_WARNING_DAYS`]; returns the warnings.
    pub fn warn_expiring(&self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        for (label, info) in lock(&self.served).iter().chain(lock(&self.extra).iter()) {
            let days = info.days_to_expiry(now);
            if days < EXPIRY_WARNING_DAYS {
                let msg = if days < 0 {
                    format!(
                        "certificate {label} ({}) EXPIRED on {}: peers that verify will refuse it; replace it and send SIGHUP",
                        info.subject,
                        crate::x509::format_time(info.not_after)
                    )
                } else {
                    format!(
                        "certificate {label} ({}) expires in {days} day(s), on {}: renew it and send SIGHUP",
                        info.subject,
                        crate::x509::format_time(info.not_after)
                    )
                };
                warn!("{msg}");
                out.push(msg);
            }
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

type Usable = (Vec<LoadedCert>, Vec<(String, CertInfo)>);

fn load_usable(profile: Profile, certs: &[CertificateConfig]) -> Result<Usable, TlsError> {
    let key_provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut loaded = Vec::new();
    for c in certs {
        loaded.push(LoadedCert::load(&c.chain, &c.key, &key_provider)?);
    }
    let (usable, skipped) = usable_certs(profile, &loaded);
    for s in &skipped {
        info!("not served under TLS profile {profile}: {s}");
    }
    if usable.is_empty() {
        return Err(TlsError::Invalid(format!(
            "none of the certificates can be served under TLS profile {profile} ({})",
            skipped.join("; ")
        )));
    }
    let served = certs
        .iter()
        .zip(&loaded)
        .filter_map(|(c, l)| l.info.clone().map(|i| (c.chain.display().to_string(), i)))
        .collect();
    Ok((usable, served))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_cert(dir: &std::path::Path, days: i64) -> CertificateConfig {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["mx.test".to_string()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "mx.test");
        let now = std::time::SystemTime::now();
        p.not_before = (now - std::time::Duration::from_secs(86_400)).into();
        p.not_after = (now + std::time::Duration::from_secs((days * 86_400 + 3600) as u64)).into();
        let cert = p.self_signed(&key).unwrap();
        let (chain, keyf) = (
            dir.join(format!("{days}.crt")),
            dir.join(format!("{days}.key")),
        );
        std::fs::write(&chain, cert.pem()).unwrap();
        std::fs::write(&keyf, key.serialize_pem()).unwrap();
        CertificateConfig { chain, key: keyf }
    }

    #[test]
    fn expiry_within_21_days_is_warned_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let soon = write_cert(d.path(), 10);
        let later = write_cert(d.path(), 60);
        let store = TlsStore::load(Profile::Default, vec![soon, later]).unwrap();
        let days: Vec<i64> = store.days_to_expiry().iter().map(|(_, d)| *d).collect();
        assert_eq!(days, vec![10, 60]);
        let w = store.warn_expiring(unix_now());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("expires in 10 day(s)"), "{w:?}");
    }

    #[test]
    fn suite_b_without_an_ecdsa_certificate_does_not_load() {
        let d = tempfile::tempdir().unwrap();
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let cert = rcgen::CertificateParams::new(vec!["r.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (chain, keyf) = (d.path().join("r.crt"), d.path().join("r.key"));
        std::fs::write(&chain, cert.pem()).unwrap();
        std::fs::write(&keyf, key.serialize_pem()).unwrap();
        let e = TlsStore::load(
            Profile::NcscSuiteB,
            vec![CertificateConfig { chain, key: keyf }],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("none of the certificates can be served under TLS profile ncsc-suite-b"),
            "{e}"
        );
    }
}
