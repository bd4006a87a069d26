//! The TLS profiles: what each one allows, as rustls crypto providers, protocol versions,
//! and a filter on the certificates and signature schemes a server may use.
//!
//! | profile           | versions      | suites                                                | groups                  | certificates / signatures |
//! |-------------------|---------------|-------------------------------------------------------|-------------------------|---------------------------|
//! | `default`         | 1.3, 1.2      | rustls' defaults (AES-GCM, ChaCha20-Poly1305; ECDHE)  | X25519MLKEM768, X25519, P-256, P-384 | any the key supports |
//! | `ncsc-suite-b`    | 1.2 (+1.3)    | ECDHE-ECDSA-AES128-GCM-SHA256 / TLS_AES_128_GCM_SHA256 | P-256                   | ECDSA P-256 + SHA-256 only |
//! | `ncsc-foundation` | 1.2 (+1.3)    | ECDHE-RSA-AES128-GCM-SHA256 / TLS_AES_128_GCM_SHA256   | P-256, X25519           | RSA ≥ 2048 + SHA-256 only  |
//!
//! `ncsc-foundation` uses the two deviations the NCSC guidance explicitly allows: AES-GCM
//! instead of AES-CBC, and ECDHE (forward secrecy) instead of DH group 14 — rustls has
//! neither CBC suites nor finite-field Diffie-Hellman.
//!
//! # Security
//! A profile only ever removes algorithms from the provider's defaults; nothing weaker than
//! rustls' own safe set can be enabled.
//!
//! # Standards
//! RFC 6460 (Suite B profile for TLS), RFC 5246, RFC 8446, RFC 8422 (ECC suites).

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::crypto::aws_lc_rs::{cipher_suite as cs, default_provider, kx_group};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use webpki::aws_lc_rs as alg;

use crate::x509::{CertInfo, KeyKind};
use crate::{LoadedCert, Profile};

impl Profile {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::NcscSuiteB => "ncsc-suite-b",
            Profile::NcscFoundation => "ncsc-foundation",
        }
    }

    /// Every profile, for `--help` texts and tests.
    pub const ALL: [Profile; 3] = [
        Profile::Default,
        Profile::NcscSuiteB,
        Profile::NcscFoundation,
    ];

    /// The handshake signature schemes the profile allows (`None`: whatever the key can do).
    pub fn signature_schemes(self) -> Option<&'static [SignatureScheme]> {
        match self {
            Profile::Default => None,
            Profile::NcscSuiteB => Some(&[SignatureScheme::ECDSA_NISTP256_SHA256]),
            Profile::NcscFoundation => Some(&[
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PKCS1_SHA256,
            ]),
        }
    }

    /// Can a certificate with this key be served under the profile? `Err` says why not.
    pub fn accepts_key(self, key: &KeyKind) -> Result<(), crate::CertRejected> {
        match (self, key) {
            (Profile::Default, _) => Ok(()),
            (Profile::NcscSuiteB, KeyKind::Ec { curve }) if curve == "P-256" => Ok(()),
            (Profile::NcscSuiteB, k) => Err(format!(
                "ncsc-suite-b needs an ECDSA P-256 certificate, this one has {k}"
            )
            .into()),
            (Profile::NcscFoundation, KeyKind::Rsa { bits }) if *bits >= 2048 => Ok(()),
            (Profile::NcscFoundation, k) => Err(format!(
                "ncsc-foundation needs an RSA certificate of at least 2048 bits, this one has {k}"
            )
            .into()),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The crypto provider for a profile (client and server side alike).
pub fn provider(profile: Profile) -> CryptoProvider {
    let base = default_provider();
    match profile {
        Profile::Default => base,
        Profile::NcscSuiteB => CryptoProvider {
            cipher_suites: vec![
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ],
            kx_groups: vec![kx_group::SECP256R1],
            signature_verification_algorithms: SUITE_B_SIGS,
            ..base
        },
        Profile::NcscFoundation => CryptoProvider {
            cipher_suites: vec![
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ],
            kx_groups: vec![kx_group::SECP256R1, kx_group::X25519],
            signature_verification_algorithms: FOUNDATION_SIGS,
            ..base
        },
    }
}

/// Protocol versions of a profile, best first.
pub fn versions(_profile: Profile) -> &'static [&'static rustls::SupportedProtocolVersion] {
    // Every profile: TLS 1.3 and 1.2. Under the NCSC profiles TLS 1.3 is limited to the
    // equivalent algorithms by the provider (AES-128-GCM-SHA256, the profile's groups and
    // signature schemes).
    VERSIONS
}

static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Suite B: handshake signatures ECDSA P-256 with SHA-256 only. Chains may also be signed
/// by P-384 CAs (public ECDSA hierarchies sign with P-384), never by RSA.
static SUITE_B_SIGS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
    ],
    mapping: &[(
        SignatureScheme::ECDSA_NISTP256_SHA256,
        &[alg::ECDSA_P256_SHA256],
    )],
};

/// Foundation: handshake signatures RSA with SHA-256 only (PKCS#1 for TLS 1.2, PSS for 1.3).
/// Chains: RSA with SHA-256 or stronger, or ECDSA (a public RSA leaf may sit under an ECDSA
/// root).
static FOUNDATION_SIGS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P384_SHA384,
    ],
    mapping: &[
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[alg::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// The certificates a profile can serve, with their keys limited to the profile's signature
/// schemes. The second list says which certificates were left out and why.
pub fn usable_certs(profile: Profile, certs: &[LoadedCert]) -> (Vec<LoadedCert>, Vec<String>) {
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for c in certs {
        let verdict = match &c.info {
            Some(info) => profile.accepts_key(&info.key),
            None if profile == Profile::Default => Ok(()),
            None => Err("its key type could not be read".into()),
        };
        match verdict {
            Ok(()) => ok.push(restrict(profile, c)),
            Err(why) => skipped.push(format!(
                "{}: {why}",
                c.info
                    .as_ref()
                    .map(|i| i.subject.clone())
                    .unwrap_or_else(|| "certificate".into())
            )),
        }
    }
    (ok, skipped)
}

fn restrict(profile: Profile, c: &LoadedCert) -> LoadedCert {
    let Some(allowed) = profile.signature_schemes() else {
        return c.clone();
    };
    let key = CertifiedKey::new(
        c.key.cert.clone(),
        Arc::new(Restricted {
            inner: c.key.key.clone(),
            allowed,
        }),
    );
    LoadedCert {
        key: Arc::new(key),
        algorithm: c.algorithm,
        info: c.info.clone(),
    }
}

/// A signing key that only agrees to the profile's signature schemes.
#[derive(Debug)]
struct Restricted {
    inner: Arc<dyn SigningKey>,
    allowed: &'static [SignatureScheme],
}

impl SigningKey for Restricted {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let both: Vec<SignatureScheme> = offered
            .iter()
            .copied()
            .filter(|s| self.allowed.contains(s))
            .collect();
        self.inner.choose_scheme(&both)
    }
    fn public_key(&self) -> Option<rustls_pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }
    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.inner.algorithm()
    }
}

/// Check configured certificates against a profile, for `check-config`: problems that make
/// the profile unservable, and certificates weaker than the guidance.
pub fn check_certs(profile: Profile, certs: &[(String, CertInfo)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (what, info) in certs {
        for w in info.weaknesses() {
            problems.push(format!("{what}: {w}"));
        }
    }
    if !certs.is_empty()
        && !certs
            .iter()
            .any(|(_, i)| profile.accepts_key(&i.key).is_ok())
    {
        let need = match profile {
            Profile::NcscSuiteB => "an ECDSA P-256 certificate",
            Profile::NcscFoundation => "an RSA certificate of at least 2048 bits",
            Profile::Default => "a certificate",
        };
        problems.push(format!(
            "profile {profile} needs {need}, and none of the configured certificates is one ({})",
            certs
                .iter()
                .map(|(_, i)| i.key.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_consistent() {
        for p in Profile::ALL {
            let prov = provider(p);
            rustls::ServerConfig::builder_with_provider(Arc::new(prov))
                .with_protocol_versions(versions(p))
                .unwrap();
        }
        assert_eq!(provider(Profile::NcscSuiteB).kx_groups.len(), 1);
    }

    #[test]
    fn suite_b_needs_p256() {
        let ec = CertInfo {
            subject: "CN=a".into(),
            issuer: "CN=a".into(),
            sans: vec![],
            common_name: None,
            key: KeyKind::Ec {
                curve: "P-256".into(),
            },
            signature: "ecdsa-with-SHA256".into(),
            not_before: 0,
            not_after: 0,
            serial: String::new(),
        };
        let rsa = CertInfo {
            key: KeyKind::Rsa { bits: 2048 },
            signature: "sha256WithRSAEncryption".into(),
            ..ec.clone()
        };
        assert!(check_certs(Profile::NcscSuiteB, &[("a".into(), ec.clone())]).is_empty());
        let p = check_certs(Profile::NcscSuiteB, &[("a".into(), rsa.clone())]);
        assert!(p[0].contains("needs an ECDSA P-256"), "{p:?}");
        assert!(check_certs(Profile::NcscFoundation, &[("a".into(), rsa.clone())]).is_empty());
        assert!(!check_certs(Profile::NcscFoundation, &[("a".into(), ec)]).is_empty());
        let weak = CertInfo {
            key: KeyKind::Rsa { bits: 1024 },
            ..rsa
        };
        let p = check_certs(Profile::Default, &[("x".into(), weak)]);
        assert!(p[0].starts_with("x: RSA key of 1024 bits"), "{p:?}");
    }
}
