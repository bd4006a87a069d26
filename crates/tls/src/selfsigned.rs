//! Self-signed certificates for a first start without configured certificates.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{CertificateConfig, TlsError};

/// Ensure `dir` holds a self-signed ECDSA P-256 and RSA-2048 certificate for `hostname`,
/// generating them on first use and reusing them afterwards. Returns their paths and
/// whether they were generated now.
pub fn ensure(dir: &Path, hostname: &str) -> Result<(Vec<CertificateConfig>, bool), TlsError> {
    let io = |path: &Path, source| TlsError::Read {
        path: path.display().to_string(),
        source,
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| io(dir, e))?;
    }
    let mut out = Vec::new();
    let mut generated = false;
    for (name, alg) in [
        ("selfsigned-ecdsa-p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("selfsigned-rsa2048", &rcgen::PKCS_RSA_SHA256),
    ] {
        let chain = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        if !(chain.exists() && key.exists()) {
            let (cert_pem, key_pem) = generate(hostname, alg)?;
            write_file(&key, key_pem.as_bytes(), 0o600).map_err(|e| io(&key, e))?;
            write_file(&chain, cert_pem.as_bytes(), 0o640).map_err(|e| io(&chain, e))?;
            generated = true;
        }
        out.push(CertificateConfig { chain, key });
    }
    Ok((out, generated))
}

fn generate(
    hostname: &str,
    alg: &'static rcgen::SignatureAlgorithm,
) -> Result<(String, String), TlsError> {
    let err = |e: rcgen::Error| {
        TlsError::Invalid(format!("generating a self-signed certificate failed: {e}"))
    };
    let key = rcgen::KeyPair::generate_for(alg).map_err(err)?;
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_string()]).map_err(err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname.to_string());
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "Postern self-signed (replace me)",
    );
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_file(path: &PathBuf, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    // A leftover (or a planted link) is unlinked, never followed or truncated.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// The certificates to serve: `configured`, or self-signed ones for `hostname` generated
/// in `dir` on first start (and reused after), with a warning that says what to do.
pub fn or_generated(
    configured: &[CertificateConfig],
    dir: &Path,
    hostname: &str,
) -> Result<Vec<CertificateConfig>, TlsError> {
    if !configured.is_empty() {
        return Ok(configured.to_vec());
    }
    let (generated, fresh) = ensure(dir, hostname)?;
    tracing::warn!(
        "no [[tls.certificate]] configured: STARTTLS uses SELF-SIGNED certificates for {hostname} ({} in {}). \
         Peers that verify certificates will refuse them. For real use, add [[tls.certificate]] \
         entries with chain = \"/path/fullchain.pem\" and key = \"/path/privkey.pem\" (RSA-2048 and ECDSA P-256 recommended).",
        if fresh { "generated now" } else { "reused" },
        dir.display()
    );
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LoadedCert;

    #[test]
    fn generates_once_and_loads() {
        let d = tempfile::tempdir().unwrap();
        let (certs, generated) = ensure(d.path(), "mx.test").unwrap();
        assert!(generated);
        assert_eq!(certs.len(), 2);
        let before = fs::read(&certs[0].chain).unwrap();
        let (again, generated) = ensure(d.path(), "mx.test").unwrap();
        assert!(!generated);
        assert_eq!(fs::read(&again[0].chain).unwrap(), before);
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let algs: Vec<_> = certs
            .iter()
            .map(|c| {
                LoadedCert::load(&c.chain, &c.key, &provider)
                    .unwrap()
                    .algorithm
            })
            .collect();
        assert_eq!(
            algs,
            vec![
                rustls::SignatureAlgorithm::ECDSA,
                rustls::SignatureAlgorithm::RSA
            ]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&certs[1].key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn mismatched_key_is_refused_with_both_file_names() {
        let d = tempfile::tempdir().unwrap();
        let (certs, _) = ensure(d.path(), "mx.test").unwrap();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let e = LoadedCert::load(&certs[0].chain, &certs[1].key, &provider).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("does not belong"), "{msg}");
        let e = LoadedCert::load(Path::new("/nonexistent/x.crt"), &certs[1].key, &provider)
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.crt"));
    }
}
