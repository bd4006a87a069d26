//! `postern dkim keygen`: a new signing key (PKCS#8 PEM, mode 0600) and its DNS record.
//!
//! # Standards
//! RFC 5208 / RFC 8410: Ed25519 keys are written as PKCS#8 v1 `PrivateKeyInfo` (the
//! private seed only), exactly as `openssl genpkey -algorithm ED25519` writes them, since
//! OpenSSL 3.0 (Debian 12) refuses the v2 `OneAsymmetricKey` form with the public key
//! attached. Loading ([`crate::sign::SigningKey::load`]) accepts v1 and v2. RSA keys are
//! PKCS#8 v1 as well.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::b64;
use crate::config::SignAlgorithm;
use crate::sign::txt_record;

/// Key types `keygen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    Ed25519,
}

impl KeyKind {
    pub fn algorithm(self) -> SignAlgorithm {
        match self {
            KeyKind::Rsa2048 => SignAlgorithm::RsaSha256,
            KeyKind::Ed25519 => SignAlgorithm::Ed25519Sha256,
        }
    }
}

/// Why no key was generated or written.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{kind} key generation failed: {detail}")]
    Generate { kind: &'static str, detail: String },
    #[error(
        "{} already exists; not overwriting a key (remove it, or choose another selector)",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("cannot create {}: {source}", .path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A generated key.
#[derive(Debug)]
pub struct Generated {
    /// Where the private key was written.
    pub path: PathBuf,
    /// `SELECTOR._domainkey.DOMAIN`.
    pub record_name: String,
    /// The TXT value to publish.
    pub record: String,
}

/// Generate a key for `domain`/`selector` into `dir` as `DOMAIN.SELECTOR.key` (created with
/// mode 0600; an existing file is never overwritten).
pub fn keygen(
    domain: &str,
    selector: &str,
    kind: KeyKind,
    dir: &Path,
) -> Result<Generated, KeygenError> {
    let (pkcs8, public) = generate(kind)?;
    let path = dir.join(format!("{domain}.{selector}.key"));
    write_private(&path, &b64::pem("PRIVATE KEY", &pkcs8))?;
    Ok(Generated {
        path,
        record_name: format!("{selector}._domainkey.{domain}"),
        record: txt_record(kind.algorithm(), &public),
    })
}

/// A new key: (PKCS#8 v1 DER private key, public key as DKIM publishes it).
pub fn generate(kind: KeyKind) -> Result<(Vec<u8>, Vec<u8>), KeygenError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let fail = |kind: &'static str| {
        move |e: &dyn std::fmt::Display| KeygenError::Generate {
            kind,
            detail: e.to_string(),
        }
    };
    match kind {
        KeyKind::Rsa2048 => {
            let fail = fail("RSA");
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|e| fail(&e))?;
            let private = pair.as_der().map_err(|e| fail(&e))?.as_ref().to_vec();
            let public = pair
                .public_key()
                .as_der()
                .map_err(|e| fail(&e))?
                .as_ref()
                .to_vec();
            Ok((private, public))
        }
        KeyKind::Ed25519 => {
            let fail = fail("Ed25519");
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&rng)
                .map_err(|e| fail(&e))?;
            let pair =
                aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc.as_ref())
                    .map_err(|e| fail(&e))?;
            Ok((doc.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
        }
    }
}

fn write_private(path: &Path, pem: &str) -> Result<(), KeygenError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeygenError::Exists(path.to_path_buf())
        } else {
            KeygenError::Create {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    f.write_all(pem.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|source| KeygenError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Split a TXT value into quoted strings of at most 255 octets (RFC 1035 §3.3.14), as a
/// zone file wants them.
pub fn zone_strings(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DkimSignConfig;
    use crate::sign::SigningKey;

    #[test]
    fn generated_keys_load_back_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, sel) in [(KeyKind::Ed25519, "e1"), (KeyKind::Rsa2048, "r1")] {
            let g = keygen("example.org", sel, kind, dir.path()).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&g.path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            let key = SigningKey::load(&DkimSignConfig {
                domain: "example.org".into(),
                selector: sel.into(),
                key: g.path.clone(),
                algorithm: kind.algorithm(),
                headers: crate::config::default_signed_headers(),
                sources: Vec::new(),
            })
            .unwrap();
            assert_eq!(key.txt_record(), g.record);
            assert!(keygen("example.org", sel, kind, dir.path()).is_err());
        }
    }

    fn load(path: &Path, kind: KeyKind) -> SigningKey {
        SigningKey::load(&DkimSignConfig {
            domain: "example.org".into(),
            selector: "s".into(),
            key: path.to_path_buf(),
            algorithm: kind.algorithm(),
            headers: crate::config::default_signed_headers(),
            sources: Vec::new(),
        })
        .unwrap()
    }

    /// Regression (#11, item 12): Ed25519 keys were PKCS#8 v2, which OpenSSL 3.0 cannot
    /// read. They are v1 now (version 0, no public key), as `openssl genpkey` writes them.
    #[test]
    fn ed25519_keys_are_pkcs8_v1_and_openssl_reads_them() {
        let (der, _) = generate(KeyKind::Ed25519).unwrap();
        assert_eq!(der.len(), 48, "RFC 8410 v1: 48 bytes");
        assert_eq!(&der[..7], &[0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05]);
        let dir = tempfile::tempdir().unwrap();
        let g = keygen("example.org", "e1", KeyKind::Ed25519, dir.path()).unwrap();
        if let Ok(out) = std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(&g.path)
            .output()
        {
            assert!(
                out.status.success(),
                "openssl pkey cannot read our key: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Both forms load: v1 (ours, openssl's) and v2 (older Postern keys).
    #[test]
    fn ed25519_pkcs8_v1_and_v2_both_load() {
        let dir = tempfile::tempdir().unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let v2 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let v2_path = dir.path().join("v2.key");
        std::fs::write(&v2_path, b64::pem("PRIVATE KEY", v2.as_ref())).unwrap();
        load(&v2_path, KeyKind::Ed25519);
        let g = keygen("example.org", "v1", KeyKind::Ed25519, dir.path()).unwrap();
        assert_eq!(load(&g.path, KeyKind::Ed25519).txt_record(), g.record);
        let ossl = dir.path().join("openssl.key");
        let made = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ED25519", "-out"])
            .arg(&ossl)
            .status()
            .is_ok_and(|s| s.success());
        if made {
            load(&ossl, KeyKind::Ed25519);
        }
    }

    #[test]
    fn long_txt_values_are_split() {
        let v = "a".repeat(300);
        assert_eq!(
            zone_strings(&v),
            format!("\"{}\" \"{}\"", "a".repeat(255), "a".repeat(45))
        );
    }
}
