//! A test certificate authority: a self-signed ECDSA P-256 root that issues server and client
//! certificates (ECDSA P-256 or RSA 2048; valid, expired or not yet valid), plus the
//! fingerprints used in pinning and DANE (`sha256:` + hex of the certificate or of its
//! SubjectPublicKeyInfo).
//!
//! ```no_run
//! use postern_test_support::ca::{IssueOpts, TestCa};
//! # fn f(dir: &std::path::Path) {
//! let ca = TestCa::new("Postern Test CA");
//! let server = ca.issue_server(&["mx.example.test"], IssueOpts::default());
//! let (chain_path, key_path) = server.write(dir, "mx");
//! let ca_path = ca.write_ca(dir, "ca");
//! # }
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// The key algorithm of an issued certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256, signed with SHA-256.
    #[default]
    EcdsaP256,
    /// RSA, 2048-bit modulus.
    Rsa2048,
}

/// The validity period of an issued certificate, relative to now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Validity {
    /// From a day ago to 90 days from now.
    #[default]
    Valid,
    /// From 90 days ago to a day ago.
    Expired,
    /// From a day from now to 90 days from now.
    NotYetValid,
}

/// How to issue a certificate. `IssueOpts::default()` is an ECDSA P-256 key, valid now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IssueOpts {
    pub key_type: KeyType,
    pub validity: Validity,
}

impl IssueOpts {
    /// The same options with this key type.
    pub fn key_type(self, key_type: KeyType) -> Self {
        IssueOpts { key_type, ..self }
    }

    /// The same options with this validity.
    pub fn validity(self, validity: Validity) -> Self {
        IssueOpts { validity, ..self }
    }

    /// An RSA 2048 key, valid now.
    pub fn rsa() -> Self {
        IssueOpts::default().key_type(KeyType::Rsa2048)
    }

    /// An ECDSA P-256 key, expired.
    pub fn expired() -> Self {
        IssueOpts::default().validity(Validity::Expired)
    }

    /// An ECDSA P-256 key, not yet valid.
    pub fn not_yet_valid() -> Self {
        IssueOpts::default().validity(Validity::NotYetValid)
    }
}

/// A certificate issued by a [`TestCa`], with its private key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The leaf certificate alone, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
    /// The leaf certificate followed by the CA certificate, PEM.
    pub chain_pem: String,
    /// The leaf certificate, DER.
    pub der: Vec<u8>,
    /// The serial number (big-endian bytes), for revocation lists.
    pub serial: Vec<u8>,
}

impl Issued {
    /// Writes `dir/{stem}.chain.pem` (leaf + CA) and `dir/{stem}.key.pem` (mode 0600) and
    /// returns `(chain_path, key_path)`.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let chain_path = dir.join(format!("{stem}.chain.pem"));
        let key_path = dir.join(format!("{stem}.key.pem"));
        write_file(&chain_path, self.chain_pem.as_bytes(), 0o644);
        write_file(&key_path, self.key_pem.as_bytes(), 0o600);
        (chain_path, key_path)
    }

    /// The leaf certificate as a rustls type.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.der.clone())
    }

    /// The chain (leaf, then CA) as rustls types, e.g. for `with_single_cert`.
    pub fn chain_der(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the chain PEM we wrote parses")
    }

    /// The private key as a rustls type.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("the key PEM we wrote parses")
    }
}

/// A self-signed test certificate authority (ECDSA P-256), valid from a year ago for ten years.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
    /// The CA certificate's serial number (to revoke an intermediate).
    serial: Vec<u8>,
}

impl TestCa {
    /// Creates a CA whose subject common name is `name`.
    pub fn new(name: &str) -> TestCa {
        TestCa::with_key(name, KeyType::EcdsaP256)
    }

    /// Creates a CA with an RSA-2048 key (its certificates are signed sha256WithRSAEncryption).
    pub fn new_rsa(name: &str) -> TestCa {
        TestCa::with_key(name, KeyType::Rsa2048)
    }

    fn with_key(name: &str, key_type: KeyType) -> TestCa {
        let key = match key_type {
            KeyType::EcdsaP256 => {
                KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate a P-256 key")
            }
            KeyType::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
                .expect("generate an RSA 2048 key"),
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Postern tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(365);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).expect("self-sign the test CA");
        TestCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            serial: serial_of(&params),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one. Certificates it issues carry it as their
    /// chain (`chain_pem` = leaf + intermediate).
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate a P-256 key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(30);
        params.not_after = now + Duration::days(365);
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the intermediate");
        TestCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            serial: serial_of(&params),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate's serial number.
    pub fn serial(&self) -> Vec<u8> {
        self.serial.clone()
    }

    /// A CRL from this CA revoking these serial numbers, PEM, whose nextUpdate is
    /// `next_update_hours` from now (negative: a stale CRL).
    pub fn crl_pem_serials(&self, serials: &[Vec<u8>], next_update_hours: i64) -> String {
        let now = OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now + Duration::hours(next_update_hours.min(0) - 24),
            next_update: now + Duration::hours(next_update_hours),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from(s.clone()),
                    revocation_time: now - Duration::hours(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("sign the CRL with the test CA")
            .pem()
            .expect("PEM-encode the CRL")
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.cert_der.clone())
    }

    /// A rustls root store holding only this CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der())
            .expect("the test CA is a valid trust anchor");
        roots
    }

    /// Writes the CA certificate to `dir/{stem}.pem` and returns that path.
    pub fn write_ca(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.pem"));
        write_file(&path, self.cert_pem.as_bytes(), 0o644);
        path
    }

    /// Issues a server certificate: subject CN the first name, SAN dNSNames `names`,
    /// extended key usage serverAuth.
    pub fn issue_server(&self, names: &[&str], opts: IssueOpts) -> Issued {
        assert!(!names.is_empty(), "a server certificate needs a name");
        let mut params = self.leaf_params(names[0], names, opts);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, opts)
    }

    /// Issues a client certificate: subject CN `name`, SAN dNSName `name`, extended key usage
    /// clientAuth.
    pub fn issue_client(&self, name: &str, opts: IssueOpts) -> Issued {
        let mut params = self.leaf_params(name, &[name], opts);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, opts)
    }

    /// Issues a client certificate whose subject CN and SAN dNSNames differ (for tests that
    /// a CN is never taken as a name).
    pub fn issue_client_named(&self, common_name: &str, sans: &[&str], opts: IssueOpts) -> Issued {
        let mut params = self.leaf_params(common_name, sans, opts);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, opts)
    }

    fn leaf_params(&self, common_name: &str, names: &[&str], opts: IssueOpts) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = names
            .iter()
            .map(|name| {
                SanType::DnsName(
                    (*name)
                        .try_into()
                        .unwrap_or_else(|e| panic!("{name:?} is not a DNS name: {e}")),
                )
            })
            .collect();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = match opts.key_type {
            KeyType::EcdsaP256 => vec![KeyUsagePurpose::DigitalSignature],
            KeyType::Rsa2048 => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = match opts.validity {
            Validity::Valid => (now - Duration::days(1), now + Duration::days(90)),
            Validity::Expired => (now - Duration::days(90), now - Duration::days(1)),
            Validity::NotYetValid => (now + Duration::days(1), now + Duration::days(90)),
        };
        params.not_before = not_before;
        params.not_after = not_after;
        params
    }

    /// A CRL from this CA revoking `revoked`, PEM (valid from an hour ago for a week).
    pub fn crl_pem(&self, revoked: &[&Issued]) -> String {
        let now = OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update: now + Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|i| rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from(i.serial.clone()),
                    revocation_time: now - Duration::hours(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("sign the CRL with the test CA")
            .pem()
            .expect("PEM-encode the CRL")
    }

    fn issue(&self, params: CertificateParams, opts: IssueOpts) -> Issued {
        let key = match opts.key_type {
            KeyType::EcdsaP256 => {
                KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate a P-256 key")
            }
            KeyType::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
                .expect("generate an RSA 2048 key"),
        };
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| s.to_bytes())
            .unwrap_or_default();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign with the test CA");
        let cert_pem = cert.pem();
        Issued {
            serial,
            chain_pem: format!("{cert_pem}{}", self.cert_pem),
            cert_pem,
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// `sha256:` followed by the lowercase hex SHA-256 of `der` (a whole DER certificate).
pub fn sha256_fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex(&sha256(der)))
}

/// `sha256:` followed by the lowercase hex SHA-256 of the certificate's DER
/// SubjectPublicKeyInfo (the whole SEQUENCE, as in TLSA selector 1 and HPKP-style pins).
///
/// Panics if `cert_der` is not a certificate.
pub fn spki_sha256_fingerprint(cert_der: &[u8]) -> String {
    format!("sha256:{}", hex(&sha256(&spki_der(cert_der))))
}

/// The DER SubjectPublicKeyInfo (outer SEQUENCE included) of a DER certificate.
///
/// Panics if `cert_der` is not a certificate.
pub fn spki_der(cert_der: &[u8]) -> Vec<u8> {
    let cert = CertificateDer::from(cert_der);
    let parsed = webpki::EndEntityCert::try_from(&cert)
        .unwrap_or_else(|e| panic!("not a parseable certificate: {e:?}"));
    parsed.subject_public_key_info().as_ref().to_vec()
}

/// The raw SHA-256 digest of `data` (for TLSA matching type 1).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// The raw SHA-512 digest of `data` (for TLSA matching type 2).
pub fn sha512(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA512, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        write!(out, "{byte:02x}").expect("writing to a String cannot fail");
    }
    out
}

/// A random positive 16-byte serial number.
fn random_serial() -> SerialNumber {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness");
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        let mut file = options
            .open(path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        // The mode above applies only to a new file (and is masked by the umask).
        file.set_permissions(fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        file.write_all(contents)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut file = options
            .open(path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        file.write_all(contents)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

fn serial_of(params: &CertificateParams) -> Vec<u8> {
    params
        .serial_number
        .as_ref()
        .map(|s| s.to_bytes())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::process::{Command, Stdio};
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::server::WebPkiClientVerifier;
    use rustls::{
        CertificateError, ClientConfig, ClientConnection, ServerConfig, ServerConnection,
    };

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn server_config(issued: &Issued, client_ca: Option<&TestCa>) -> Arc<ServerConfig> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(ca.root_store()), provider())
                    .build()
                    .unwrap(),
            ),
            None => builder.with_no_client_auth(),
        };
        Arc::new(
            builder
                .with_single_cert(issued.chain_der(), issued.key_der())
                .unwrap(),
        )
    }

    fn client_config(ca: &TestCa, client_cert: Option<&Issued>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(ca.root_store());
        Arc::new(match client_cert {
            Some(issued) => builder
                .with_client_auth_cert(issued.chain_der(), issued.key_der())
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    #[derive(Debug)]
    enum Failure {
        Client(rustls::Error),
        Server(rustls::Error),
    }

    /// Runs a TLS handshake in memory, shuttling bytes between the two sides.
    fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        name: &str,
    ) -> Result<(), Failure> {
        let mut client =
            ClientConnection::new(client, ServerName::try_from(name.to_string()).unwrap()).unwrap();
        let mut server = ServerConnection::new(server).unwrap();
        for _ in 0..20 {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            let mut input = &to_server[..];
            while !input.is_empty() {
                server.read_tls(&mut input).unwrap();
                server.process_new_packets().map_err(Failure::Server)?;
            }
            let mut to_client = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut to_client).unwrap();
            }
            let mut input = &to_client[..];
            while !input.is_empty() {
                client.read_tls(&mut input).unwrap();
                client.process_new_packets().map_err(Failure::Client)?;
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    fn client_cert_error(result: Result<(), Failure>) -> CertificateError {
        match result {
            Err(Failure::Client(rustls::Error::InvalidCertificate(e))) => e,
            other => panic!("expected the client to reject the certificate, got {other:?}"),
        }
    }

    #[test]
    fn server_cert_verifies_for_its_names() {
        let ca = TestCa::new("Postern Test CA");
        let issued = ca.issue_server(
            &["mx.example.test", "mail.example.test"],
            IssueOpts::default(),
        );
        for name in ["mx.example.test", "mail.example.test"] {
            handshake(server_config(&issued, None), client_config(&ca, None), name).unwrap();
        }
    }

    #[test]
    fn rsa_server_cert_verifies() {
        let ca = TestCa::new("Postern Test CA");
        let issued = ca.issue_server(&["rsa.example.test"], IssueOpts::rsa());
        assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        handshake(
            server_config(&issued, None),
            client_config(&ca, None),
            "rsa.example.test",
        )
        .unwrap();
    }

    #[test]
    fn wrong_name_is_refused() {
        let ca = TestCa::new("Postern Test CA");
        let issued = ca.issue_server(&["mx.example.test"], IssueOpts::default());
        let err = client_cert_error(handshake(
            server_config(&issued, None),
            client_config(&ca, None),
            "other.example.test",
        ));
        assert!(
            matches!(
                err,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn expired_and_not_yet_valid_are_refused() {
        let ca = TestCa::new("Postern Test CA");
        let expired = ca.issue_server(&["mx.example.test"], IssueOpts::expired());
        let err = client_cert_error(handshake(
            server_config(&expired, None),
            client_config(&ca, None),
            "mx.example.test",
        ));
        assert!(
            matches!(
                err,
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ),
            "{err:?}"
        );

        let future = ca.issue_server(&["mx.example.test"], IssueOpts::not_yet_valid());
        let err = client_cert_error(handshake(
            server_config(&future, None),
            client_config(&ca, None),
            "mx.example.test",
        ));
        assert!(
            matches!(
                err,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn other_ca_is_refused() {
        let ca = TestCa::new("Postern Test CA");
        let other = TestCa::new("Some Other CA");
        let issued = other.issue_server(&["mx.example.test"], IssueOpts::default());
        let err = client_cert_error(handshake(
            server_config(&issued, None),
            client_config(&ca, None),
            "mx.example.test",
        ));
        assert!(matches!(err, CertificateError::UnknownIssuer), "{err:?}");
    }

    #[test]
    fn client_cert_is_accepted_by_a_verifying_server_and_server_cert_is_not() {
        let ca = TestCa::new("Postern Test CA");
        let server = ca.issue_server(&["mx.example.test"], IssueOpts::default());
        let client = ca.issue_client("relay.example.test", IssueOpts::default());
        handshake(
            server_config(&server, Some(&ca)),
            client_config(&ca, Some(&client)),
            "mx.example.test",
        )
        .unwrap();

        // A serverAuth-only certificate is not a client certificate.
        let not_client = ca.issue_server(&["relay.example.test"], IssueOpts::default());
        match handshake(
            server_config(&server, Some(&ca)),
            client_config(&ca, Some(&not_client)),
            "mx.example.test",
        ) {
            Err(Failure::Server(rustls::Error::InvalidCertificate(_))) => {}
            other => panic!("expected the server to reject the client certificate: {other:?}"),
        }
    }

    #[test]
    fn client_cert_has_cn_and_san() {
        let ca = TestCa::new("Postern Test CA");
        let client = ca.issue_client("relay.example.test", IssueOpts::rsa());
        let der = client.cert_der();
        let parsed = webpki::EndEntityCert::try_from(&der).unwrap();
        let names: Vec<String> = parsed.valid_dns_names().map(|n| n.to_string()).collect();
        assert_eq!(names, vec!["relay.example.test".to_string()]);
        // The CN is in the subject as a UTF8String/PrintableString: look for its bytes.
        let subject = parsed.subject();
        assert!(
            subject
                .windows(b"relay.example.test".len())
                .any(|w| w == b"relay.example.test")
        );
    }

    #[test]
    fn chain_is_leaf_then_ca() {
        let ca = TestCa::new("Postern Test CA");
        let issued = ca.issue_server(&["mx.example.test"], IssueOpts::default());
        let chain = issued.chain_der();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].as_ref(), issued.der.as_slice());
        assert_eq!(chain[1], ca.cert_der());
        assert!(issued.chain_pem.starts_with(&issued.cert_pem));
        assert!(issued.chain_pem.ends_with(&ca.cert_pem()));
    }

    #[test]
    fn write_sets_key_mode_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Postern Test CA");
        let issued = ca.issue_server(&["mx.example.test"], IssueOpts::default());
        let (chain_path, key_path) = issued.write(dir.path(), "mx");
        let ca_path = ca.write_ca(dir.path(), "ca");
        assert_eq!(fs::read_to_string(&chain_path).unwrap(), issued.chain_pem);
        assert_eq!(fs::read_to_string(&key_path).unwrap(), issued.key_pem);
        assert_eq!(fs::read_to_string(&ca_path).unwrap(), ca.cert_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Writing again over an existing file keeps it private.
        issued.write(dir.path(), "mx");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn fingerprint_formats() {
        // SHA-256 of the empty string, a known value.
        assert_eq!(
            sha256_fingerprint(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let ca = TestCa::new("Postern Test CA");
        let issued = ca.issue_server(&["mx.example.test"], IssueOpts::default());
        let fp = sha256_fingerprint(&issued.der);
        assert_eq!(fp.len(), "sha256:".len() + 64);
        assert!(
            fp[7..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(fp, spki_sha256_fingerprint(&issued.der));
        // The SPKI is a whole DER SEQUENCE.
        let spki = spki_der(&issued.der);
        assert_eq!(spki[0], 0x30);
    }

    /// The SPKI fingerprint matches what the rcgen key pair says its SubjectPublicKeyInfo is.
    #[test]
    fn spki_matches_key_pair_public_key_der() {
        use rcgen::PublicKeyData;
        let ca = TestCa::new("Postern Test CA");
        for opts in [IssueOpts::default(), IssueOpts::rsa()] {
            let issued = ca.issue_server(&["mx.example.test"], opts);
            let key = KeyPair::from_pem(&issued.key_pem).unwrap();
            assert_eq!(spki_der(&issued.der), key.subject_public_key_info());
        }
    }

    /// Compare with `openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256`.
    #[test]
    fn fingerprints_match_openssl() {
        if Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("openssl not found; skipping the comparison with it");
            return;
        }
        let ca = TestCa::new("Postern Test CA");
        for opts in [IssueOpts::default(), IssueOpts::rsa()] {
            let issued = ca.issue_server(&["mx.example.test"], opts);

            let pubkey_pem = openssl(&["x509", "-pubkey", "-noout"], issued.cert_pem.as_bytes());
            let spki = openssl(&["pkey", "-pubin", "-outform", "DER"], &pubkey_pem);
            assert_eq!(spki, spki_der(&issued.der));
            assert_eq!(
                spki_sha256_fingerprint(&issued.der),
                format!("sha256:{}", openssl_sha256_hex(&spki))
            );

            let cert_der = openssl(&["x509", "-outform", "DER"], issued.cert_pem.as_bytes());
            assert_eq!(cert_der, issued.der);
            assert_eq!(
                sha256_fingerprint(&issued.der),
                format!("sha256:{}", openssl_sha256_hex(&cert_der))
            );
        }
    }

    fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// `openssl dgst -sha256 -r` prints `<hex> *stdin`.
    fn openssl_sha256_hex(data: &[u8]) -> String {
        let out = openssl(&["dgst", "-sha256", "-r"], data);
        String::from_utf8(out)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_ascii_lowercase()
    }
}
