//! DKIM signing (RFC 6376 §5, RFC 8463 for Ed25519): keys from `[[auth.dkim_sign]]`, the
//! choice of keys for a message, and the `DKIM-Signature` fields to prepend.

use std::path::Path;

use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::b64;
use crate::config::{DkimSignConfig, SignAlgorithm};
use crate::sources::{SignSource, SignSourceRule};

/// Smallest RSA key accepted for signing (RFC 8301 §3.2 requires 1024; 2048 is what
/// verifiers and the NCSC expect today).
pub const MIN_RSA_BITS: usize = 2048;

/// Why a signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the DKIM key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no PEM private key (expected \"-----BEGIN PRIVATE KEY-----\"; create one with `postern dkim keygen`)"
    )]
    NotPem { path: String },
    #[error("{path} is not a usable {algorithm} key: {why}")]
    Invalid {
        path: String,
        algorithm: &'static str,
        why: String,
    },
    #[error(
        "{path} is a {bits}-bit RSA key; DKIM signing keys must have at least {MIN_RSA_BITS} bits"
    )]
    TooShort { path: String, bits: usize },
}

/// A loaded private key with the public key to publish.
pub struct SigningKey {
    pub(crate) key: DkimKey,
    /// `p=` of the DNS record: SubjectPublicKeyInfo for RSA, the raw 32 bytes for Ed25519.
    pub public: Vec<u8>,
    pub algorithm: SignAlgorithm,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Load and check the key file of a `[[auth.dkim_sign]]` entry.
    pub fn load(cfg: &DkimSignConfig) -> Result<SigningKey, KeyError> {
        let bytes = std::fs::read(&cfg.key).map_err(|source| KeyError::Read {
            path: cfg.key.display().to_string(),
            source,
        })?;
        SigningKey::from_pem(&bytes, cfg.algorithm, &cfg.key)
    }

    pub fn from_pem(
        pem: &[u8],
        algorithm: SignAlgorithm,
        path: &Path,
    ) -> Result<SigningKey, KeyError> {
        let path = path.display().to_string();
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|_| KeyError::NotPem { path: path.clone() })?;
        let invalid = |why: String| KeyError::Invalid {
            path: path.clone(),
            algorithm: algorithm.as_str(),
            why,
        };
        match algorithm {
            SignAlgorithm::RsaSha256 => {
                let pair = match &der {
                    PrivateKeyDer::Pkcs8(k) => {
                        aws_lc_rs::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der())
                    }
                    PrivateKeyDer::Pkcs1(k) => {
                        aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der())
                    }
                    _ => return Err(invalid("not an RSA key (PKCS#8 or PKCS#1 expected)".into())),
                }
                .map_err(|e| invalid(e.to_string()))?;
                let bits = pair.public_modulus_len() * 8;
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::TooShort { path, bits });
                }
                use aws_lc_rs::encoding::AsDer;
                use aws_lc_rs::signature::KeyPair;
                let public = pair
                    .public_key()
                    .as_der()
                    .map_err(|e| invalid(e.to_string()))?
                    .as_ref()
                    .to_vec();
                let key = RsaKey::<Sha256>::from_key_der(der.clone_key())
                    .map_err(|e| invalid(e.to_string()))?;
                Ok(SigningKey {
                    key: DkimKey::Rsa(key),
                    public,
                    algorithm,
                })
            }
            SignAlgorithm::Ed25519Sha256 => {
                let PrivateKeyDer::Pkcs8(k) = &der else {
                    return Err(invalid("Ed25519 keys must be PKCS#8".into()));
                };
                let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(k.secret_pkcs8_der())
                    .map_err(|e| invalid(e.to_string()))?;
                let public = key.public_key();
                Ok(SigningKey {
                    key: DkimKey::Ed25519(key),
                    public,
                    algorithm,
                })
            }
        }
    }

    /// The TXT record value to publish at `SELECTOR._domainkey.DOMAIN`.
    pub fn txt_record(&self) -> String {
        txt_record(self.algorithm, &self.public)
    }
}

/// `v=DKIM1; k=rsa; p=...` (RFC 6376 §3.6.1, RFC 8463 §4.2 for `k=ed25519`).
pub fn txt_record(algorithm: SignAlgorithm, public: &[u8]) -> String {
    let k = match algorithm {
        SignAlgorithm::RsaSha256 => "rsa",
        SignAlgorithm::Ed25519Sha256 => "ed25519",
    };
    format!("v=DKIM1; k={k}; p={}", b64::encode(public))
}

/// One configured signer.
struct Entry {
    domain: String,
    signer: DkimSigner<DkimKey, Done>,
    /// Whose mail this key signs; empty: only our own reports.
    sources: Vec<SignSourceRule>,
}

impl Entry {
    /// `None`: one of Postern's own reports, which every key signs.
    fn allows(&self, source: Option<&SignSource>) -> bool {
        source.is_none_or(|s| self.sources.iter().any(|r| r.allows(s)))
    }
}

/// A signing hook for reports, as the queue takes it (`postern_queue::Sign`).
pub type ReportSign = std::sync::Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// Every signing key, ready to sign.
pub struct Signer {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d: Vec<&str> = self.entries.iter().map(|e| e.domain.as_str()).collect();
        f.debug_struct("Signer").field("domains", &d).finish()
    }
}

impl Signer {
    pub fn load(cfg: &[DkimSignConfig]) -> Result<Signer, KeyError> {
        let mut entries = Vec::new();
        for c in cfg {
            let key = SigningKey::load(c)?;
            let signer = DkimSigner::from_key(key.key)
                .domain(c.domain.to_ascii_lowercase())
                .selector(c.selector.clone())
                .headers(c.headers.clone())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed);
            entries.push(Entry {
                domain: c.domain.to_ascii_lowercase(),
                signer,
                // Validated by check-config; an unreadable rule allows nobody.
                sources: c.sources.iter().filter_map(|s| s.parse().ok()).collect(),
            });
        }
        Ok(Signer { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// This signer as a report signing hook ([`Signer::sign_report`]); `None` without keys.
    pub fn into_report_hook(self) -> Option<ReportSign> {
        (!self.is_empty())
            .then(|| std::sync::Arc::new(move |r: &[u8]| self.sign_report(r)) as ReportSign)
    }

    /// Whether any key may sign mail from this client (see [`crate::sources`]).
    pub fn may_sign_for(&self, source: &SignSource) -> bool {
        self.entries.iter().any(|e| e.allows(Some(source)))
    }

    /// The signing domain for mail from `from_domain`: the domain itself or its closest
    /// configured parent, among the keys `source` may use (`None`: our own report).
    fn domain_for(&self, from_domain: &str, source: Option<&SignSource>) -> Option<&str> {
        let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|e| e.allows(source))
            .map(|e| e.domain.as_str())
            .filter(|d| from == *d || from.ends_with(&format!(".{d}")))
            .max_by_key(|d| d.len())
    }

    /// Sign one of the queue's own reports (bounce, delay warning, delivery report): the
    /// `DKIM-Signature` fields to prepend, if a key applies. A signing failure is logged
    /// and the report goes out unsigned, as relayed mail does.
    pub fn sign_report(&self, report: &[u8]) -> Option<Vec<u8>> {
        match self.sign(report) {
            Ok(signed) => signed.map(|s| s.headers.into_bytes()),
            Err(e) => {
                tracing::warn!(
                    "DKIM signing of a delivery report failed, it is sent unsigned: {e}"
                );
                None
            }
        }
    }

    /// Sign `message` (header section and body, CRLF) when its From domain (all From
    /// addresses in one domain) has keys: the `DKIM-Signature` fields to prepend, one per
    /// key of that domain, or `None` when no key applies. Never signs for another domain.
    /// This is for Postern's own reports: every key may sign them.
    pub fn sign(&self, message: &[u8]) -> Result<Option<Signed>, mail_auth::Error> {
        self.sign_as(message, None)
    }

    /// [`Signer::sign`] for a client's message: only with the keys whose `sources`
    /// allow this client.
    pub fn sign_for(
        &self,
        message: &[u8],
        source: &SignSource,
    ) -> Result<Option<Signed>, mail_auth::Error> {
        self.sign_as(message, Some(source))
    }

    fn sign_as(
        &self,
        message: &[u8],
        source: Option<&SignSource>,
    ) -> Result<Option<Signed>, mail_auth::Error> {
        let Some(from) = from_domain(message) else {
            return Ok(None);
        };
        let Some(domain) = self.domain_for(&from, source) else {
            return Ok(None);
        };
        let mut headers = String::new();
        let mut selectors = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.domain == domain && e.allows(source))
        {
            let sig = e.signer.sign(message)?;
            headers.push_str(&sig.to_header());
            selectors.push(format!("{}/{}", e.signer.template.s, sig_alg(&e.signer)));
        }
        Ok(Some(Signed {
            domain: domain.to_string(),
            headers,
            selectors,
        }))
    }
}

fn sig_alg(s: &DkimSigner<DkimKey, Done>) -> &'static str {
    match s.key {
        DkimKey::Rsa(_) => "rsa-sha256",
        DkimKey::Ed25519(_) => "ed25519-sha256",
    }
}

/// What [`Signer::sign`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub domain: String,
    /// `DKIM-Signature: ...\r\n` fields, to prepend in this order.
    pub headers: String,
    /// `selector/algorithm` of each signature, for the log.
    pub selectors: Vec<String>,
}

/// The domain of the From addresses, when they all share one.
pub(crate) fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = AuthenticatedMessage::parse(message)?;
    let mut domain: Option<String> = None;
    for f in parsed.froms() {
        let d = f.rsplit_once('@')?.1.to_ascii_lowercase();
        match &domain {
            None => domain = Some(d),
            Some(x) if *x == d => {}
            Some(_) => return None,
        }
    }
    domain
}
