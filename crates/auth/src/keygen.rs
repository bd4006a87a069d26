//! `postern dkim keygen`: a new signing key (PKCS#8 PEM, mode 0600) and its DNS record.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::b64;
use crate::config::SignAlgorithm;
use crate::sign::txt_record;

/// Why `dkim keygen` made no key.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// The crypto library failed: `what` says at which step.
    #[error("{what}: {detail}")]
    Crypto { what: &'static str, detail: String },
    #[error(
        "{} already exists; not overwriting a key (remove it, or choose another selector)", .0.display()
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

/// The `map_err` of a crypto step.
fn crypto<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> KeygenError {
    move |e| KeygenError::Crypto {
        what,
        detail: e.to_string(),
    }
}

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

/// Whether `domain` and `selector` can name a key record: DNS labels of letters, digits,
/// `-`, `_` and `.`, and not empty (they become a file name and a DNS name).
pub fn valid_names(domain: &str, selector: &str) -> bool {
    !domain.is_empty()
        && !selector.is_empty()
        && domain
            .bytes()
            .chain(selector.bytes())
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

impl Generated {
    /// What `dkim keygen` prints: where the key is, the configuration entry to add (as
    /// comments), and the record to publish, in zone-file syntax.
    pub fn instructions(&self, domain: &str, selector: &str, kind: KeyKind) -> String {
        let key = self.path.display();
        format!(
            "; private key written to {key} (mode 0600)\n\
             ; publish this record, then add to the configuration:\n\
             ;   [[auth.dkim_sign]]\n\
             ;   domain = \"{domain}\"\n\
             ;   selector = \"{selector}\"\n\
             ;   key = \"{key}\"\n\
             ;   algorithm = \"{}\"\n\
             {}. IN TXT {}\n",
            kind.algorithm().as_str(),
            self.record_name,
            zone_strings(&self.record)
        )
    }
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

/// A new key: (PKCS#8 DER private key, public key as DKIM publishes it).
pub fn generate(kind: KeyKind) -> Result<(Vec<u8>, Vec<u8>), KeygenError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    match kind {
        KeyKind::Rsa2048 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(crypto("RSA key generation failed"))?;
            let private = pair
                .as_der()
                .map_err(crypto("cannot encode the RSA key"))?
                .as_ref()
                .to_vec();
            let public = pair
                .public_key()
                .as_der()
                .map_err(crypto("cannot encode the RSA public key"))?
                .as_ref()
                .to_vec();
            Ok((private, public))
        }
        KeyKind::Ed25519 => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(crypto("Ed25519 key generation failed"))?;
            let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map_err(crypto("Ed25519 key generation failed"))?;
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
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeygenError::Exists(path.to_path_buf())
        } else {
            KeygenError::Create {
                path: path.to_path_buf(),
                source: e,
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

    #[test]
    fn long_txt_values_are_split() {
        let v = "a".repeat(300);
        assert_eq!(
            zone_strings(&v),
            format!("\"{}\" \"{}\"", "a".repeat(255), "a".repeat(45))
        );
    }
}
