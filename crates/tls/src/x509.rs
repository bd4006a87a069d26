//! Just enough X.509 to describe a certificate to an operator: subject, issuer, names, key
//! type and size, signature algorithm, validity. A small DER reader, without I/O.
//!
//! This is for reports and policy checks (key size, SHA-1), never for trust decisions:
//! chains are verified by webpki.
//!
//! # Security
//! Input is untrusted (certificates sent by peers, read by the scanner). Every length is
//! checked against the bytes present; nesting is bounded by the fixed shape of a
//! certificate; nothing allocates more than the input's size.
//!
//! # Standards
//! RFC 5280 §4.1 (certificate fields), §4.2.1.6 (subjectAltName); X.690 DER.

use std::fmt;

/// Why bytes are not a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an X.509 certificate: {0}")]
pub struct ParseError(&'static str);

/// The public key of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Rsa {
        bits: usize,
    },
    /// Named curve: `P-256`, `P-384`, `P-521`, or the dotted OID.
    Ec {
        curve: String,
    },
    Ed25519,
    Other(String),
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits} bits"),
            KeyKind::Ec { curve } => write!(f, "ECDSA {curve}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
            KeyKind::Other(o) => write!(f, "unknown key type {o}"),
        }
    }
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// DNS names from subjectAltName (and IP addresses as text).
    pub sans: Vec<String>,
    /// The subject's common name, when there is one.
    pub common_name: Option<String>,
    pub key: KeyKind,
    /// `sha256WithRSAEncryption`, `ecdsa-with-SHA256`, ... or the dotted OID.
    pub signature: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Serial number, hex.
    pub serial: String,
}

impl CertInfo {
    /// Parse a DER certificate.
    pub fn parse(der: &[u8]) -> Result<CertInfo, ParseError> {
        let (cert, _) = expect(der, SEQ, "certificate")?;
        let (tbs, rest) = expect(cert, SEQ, "tbsCertificate")?;
        let (sig_alg, _) = expect(rest, SEQ, "signatureAlgorithm")?;
        let mut t = tbs;
        if t.first() == Some(&0xA0) {
            t = tlv(t)?.2;
        }
        let (serial, t) = expect(t, 0x02, "serialNumber")?;
        let (_, t) = expect(t, SEQ, "signature")?;
        let (issuer, t) = expect(t, SEQ, "issuer")?;
        let (validity, t) = expect(t, SEQ, "validity")?;
        let (subject, t) = expect(t, SEQ, "subject")?;
        let (spki, mut t) = expect(t, SEQ, "subjectPublicKeyInfo")?;
        let (not_before, v) = time(validity)?;
        let (not_after, _) = time(v)?;
        let mut sans = Vec::new();
        while !t.is_empty() {
            let (tag, content, rest) = tlv(t)?;
            if tag == 0xA3 {
                sans = subject_alt_names(content)?;
            }
            t = rest;
        }
        let (cn, subject_text) = name(subject)?;
        Ok(CertInfo {
            subject: subject_text,
            issuer: name(issuer)?.1,
            sans,
            common_name: cn,
            key: key_kind(spki)?,
            signature: signature_name(expect(sig_alg, 0x06, "algorithm")?.0),
            not_before,
            not_after,
            serial: hex(serial),
        })
    }

    /// The `nextUpdate` of a DER CRL (RFC 5280 §5.1.2.5), Unix seconds; `None` when the
    /// CRL has none (then it never goes stale by itself).
    pub fn crl_next_update(der: &[u8]) -> Result<Option<i64>, ParseError> {
        let (crl, _) = expect(der, SEQ, "certificateList")?;
        let (tbs, _) = expect(crl, SEQ, "tbsCertList")?;
        let mut t = tbs;
        if t.first() == Some(&0x02) {
            t = tlv(t)?.2;
        }
        let (_, t) = expect(t, SEQ, "signature")?;
        let (_, t) = expect(t, SEQ, "issuer")?;
        let (_, t) = time(t)?;
        match t.first() {
            Some(0x17 | 0x18) => Ok(Some(time(t)?.0)),
            _ => Ok(None),
        }
    }

    /// Why this certificate is weaker than the NCSC guidance allows (RSA below 2048 bits,
    /// SHA-1 or MD5 signatures); empty when it is not.
    pub fn weaknesses(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let KeyKind::Rsa { bits } = self.key
            && bits < 2048
        {
            out.push(format!(
                "RSA key of {bits} bits is below the 2048 bits the guidance asks for"
            ));
        }
        let s = self.signature.to_ascii_lowercase();
        if s.contains("sha1") || s.contains("md5") || s.contains("md2") {
            out.push(format!(
                "signed with {}, a broken hash (SHA-256 is the minimum)",
                self.signature
            ));
        }
        out
    }

    /// Whole days until `not_after` (negative once expired).
    pub fn days_to_expiry(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// `subject, names, key, signature, issuer, expiry` lines, each indented by `indent`.
    pub fn report(&self, indent: &str, now: i64) -> String {
        let days = self.days_to_expiry(now);
        let when = if days < 0 {
            format!("EXPIRED {} day(s) ago", -days)
        } else {
            format!("in {days} day(s)")
        };
        format!(
            "{indent}subject:   {}\n{indent}names:     {}\n{indent}key:       {}\n{indent}signature: {}\n{indent}issuer:    {}\n{indent}expires:   {} ({when})\n",
            self.subject,
            if self.sans.is_empty() {
                "(no subjectAltName)".to_string()
            } else {
                self.sans.join(", ")
            },
            self.key,
            self.signature,
            self.issuer,
            format_time(self.not_after),
        )
    }
}

const SEQ: u8 = 0x30;

/// One TLV: (tag, content, rest).
fn tlv(d: &[u8]) -> Result<(u8, &[u8], &[u8]), ParseError> {
    let err = ParseError("truncated DER");
    let (&tag, d) = d.split_first().ok_or(err.clone())?;
    let (&first, d) = d.split_first().ok_or(err.clone())?;
    let (len, d) = if first < 0x80 {
        (first as usize, d)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 || d.len() < n {
            return Err(ParseError("bad DER length"));
        }
        let len = d[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &d[n..])
    };
    if d.len() < len {
        return Err(err);
    }
    Ok((tag, &d[..len], &d[len..]))
}

fn expect<'a>(
    d: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    let (t, c, rest) = tlv(d)?;
    if t != tag {
        return Err(ParseError(what));
    }
    Ok((c, rest))
}

/// UTCTime (`YYMMDDHHMM[SS]…`) or GeneralizedTime (`YYYYMMDDHHMM[SS]…`): the leading
/// digits only, read as bytes. The content is untrusted: it may hold anything, multi-byte
/// characters included, so nothing here slices text at byte offsets.
fn time(d: &[u8]) -> Result<(i64, &[u8]), ParseError> {
    let (tag, c, rest) = tlv(d)?;
    let bad = ParseError("bad time");
    let num = |a: usize, b: usize| -> Option<i64> {
        let digits = c.get(a..b)?;
        digits.iter().try_fold(0i64, |n, &ch| {
            ch.is_ascii_digit().then(|| n * 10 + i64::from(ch - b'0'))
        })
    };
    let (y, at) = match tag {
        0x17 => {
            let yy = num(0, 2).ok_or(bad.clone())?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        0x18 => (num(0, 4).ok_or(bad.clone())?, 4),
        _ => return Err(bad),
    };
    let field = |i: usize| num(at + 2 * i, at + 2 * i + 2).ok_or(bad.clone());
    let (mo, dd, h, mi) = (field(0)?, field(1)?, field(2)?, field(3)?);
    let se = field(4).unwrap_or(0);
    Ok((
        days_from_civil(y, mo, dd) * 86_400 + h * 3600 + mi * 60 + se,
        rest,
    ))
}

/// Howard Hinnant's days-from-civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-03-01 12:00:00 UTC`.
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// A Name as `CN=a, O=b` (in certificate order), and its first common name.
fn name(mut d: &[u8]) -> Result<(Option<String>, String), ParseError> {
    let mut parts = Vec::new();
    let mut cn = None;
    while !d.is_empty() {
        let (set, rest) = expect(d, 0x31, "RDN")?;
        d = rest;
        let mut s = set;
        while !s.is_empty() {
            let (atv, r) = expect(s, SEQ, "attribute")?;
            s = r;
            let (oid, v) = expect(atv, 0x06, "attribute type")?;
            let (_, value, _) = tlv(v)?;
            let value = String::from_utf8_lossy(value).into_owned();
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x0A] => "O",
                [0x55, 0x04, 0x0B] => "OU",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x05] => "serialNumber",
                [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01] => "emailAddress",
                _ => "",
            };
            if label == "CN" && cn.is_none() {
                cn = Some(value.clone());
            }
            if label.is_empty() {
                parts.push(format!("{}={value}", dotted(oid)));
            } else {
                parts.push(format!("{label}={value}"));
            }
        }
    }
    Ok((cn, parts.join(", ")))
}

fn subject_alt_names(exts: &[u8]) -> Result<Vec<String>, ParseError> {
    let (mut list, _) = expect(exts, SEQ, "extensions")?;
    while !list.is_empty() {
        let (ext, rest) = expect(list, SEQ, "extension")?;
        list = rest;
        let (oid, mut e) = expect(ext, 0x06, "extension id")?;
        if oid != [0x55, 0x1D, 0x11] {
            continue;
        }
        if e.first() == Some(&0x01) {
            e = tlv(e)?.2;
        }
        let (octets, _) = expect(e, 0x04, "extension value")?;
        let (mut names, _) = expect(octets, SEQ, "subjectAltName")?;
        let mut out = Vec::new();
        while !names.is_empty() {
            let (tag, c, rest) = tlv(names)?;
            names = rest;
            match tag {
                0x82 => out.push(String::from_utf8_lossy(c).to_ascii_lowercase()),
                0x87 if c.len() == 4 => {
                    out.push(std::net::Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string())
                }
                0x87 if c.len() == 16 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(c);
                    out.push(std::net::Ipv6Addr::from(a).to_string())
                }
                0x81 => out.push(format!("email:{}", String::from_utf8_lossy(c))),
                _ => {}
            }
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

fn key_kind(spki: &[u8]) -> Result<KeyKind, ParseError> {
    let (alg, rest) = expect(spki, SEQ, "key algorithm")?;
    let (oid, params) = expect(alg, 0x06, "key algorithm id")?;
    Ok(match oid {
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01] => {
            let (bits, _) = expect(rest, 0x03, "public key")?;
            let key = bits.get(1..).ok_or(ParseError("empty RSA key"))?;
            let (rsa, _) = expect(key, SEQ, "RSA key")?;
            let (n, _) = expect(rsa, 0x02, "RSA modulus")?;
            let n: &[u8] = {
                let mut n = n;
                while n.first() == Some(&0) {
                    n = &n[1..];
                }
                n
            };
            let bits = n
                .first()
                .map(|b| (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize))
                .unwrap_or(0);
            KeyKind::Rsa { bits }
        }
        [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01] => {
            let curve = match expect(params, 0x06, "curve") {
                Ok(([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07], _)) => "P-256".to_string(),
                Ok(([0x2B, 0x81, 0x04, 0x00, 0x22], _)) => "P-384".to_string(),
                Ok(([0x2B, 0x81, 0x04, 0x00, 0x23], _)) => "P-521".to_string(),
                Ok((other, _)) => dotted(other),
                Err(_) => "explicit parameters".to_string(),
            };
            KeyKind::Ec { curve }
        }
        [0x2B, 0x65, 0x70] => KeyKind::Ed25519,
        other => KeyKind::Other(dotted(other)),
    })
}

fn signature_name(oid: &[u8]) -> String {
    const RSA: [u8; 8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01];
    const ECDSA: [u8; 6] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04];
    if oid.len() == 9 && oid[..8] == RSA {
        let n = match oid[8] {
            0x02 => "md2WithRSAEncryption",
            0x04 => "md5WithRSAEncryption",
            0x05 => "sha1WithRSAEncryption",
            0x0A => "rsassaPss",
            0x0B => "sha256WithRSAEncryption",
            0x0C => "sha384WithRSAEncryption",
            0x0D => "sha512WithRSAEncryption",
            _ => "",
        };
        if !n.is_empty() {
            return n.into();
        }
    }
    if oid.starts_with(&ECDSA) {
        match &oid[6..] {
            [0x01] => return "ecdsa-with-SHA1".into(),
            [0x03, 0x02] => return "ecdsa-with-SHA256".into(),
            [0x03, 0x03] => return "ecdsa-with-SHA384".into(),
            [0x03, 0x04] => return "ecdsa-with-SHA512".into(),
            _ => {}
        }
    }
    if oid == [0x2B, 0x65, 0x70] {
        return "Ed25519".into();
    }
    dotted(oid)
}

/// An OID in dotted form.
fn dotted(oid: &[u8]) -> String {
    let mut out = Vec::new();
    let mut v: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        v = (v << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            if out.is_empty() {
                let first = (v / 40).min(2);
                out.push(first.to_string());
                out.push((v - first * 40).to_string());
            } else {
                out.push(v.to_string());
            }
            v = 0;
        }
        if i > 64 {
            break;
        }
    }
    out.join(".")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(alg: &'static rcgen::SignatureAlgorithm, names: &[&str]) -> Vec<u8> {
        let key = match alg {
            a if *a == rcgen::PKCS_RSA_SHA256 => {
                rcgen::KeyPair::generate_rsa_for(a, rcgen::RsaKeySize::_2048).unwrap()
            }
            a => rcgen::KeyPair::generate_for(a).unwrap(),
        };
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Org");
        p.not_before = rcgen::date_time_ymd(2024, 1, 2);
        p.not_after = rcgen::date_time_ymd(2049, 12, 31);
        p.self_signed(&key).unwrap().der().to_vec()
    }

    /// Regression (#11, item 9): a UTCTime holding a multi-byte character panicked
    /// (`s[..2]` inside a character). It is an error now, never a panic.
    #[test]
    fn non_ascii_times_are_errors_not_panics() {
        let der = make(&rcgen::PKCS_ECDSA_P256_SHA256, &["mx.example.org"]);
        let at = der
            .windows(13)
            .position(|w| w == b"240102000000Z")
            .expect("notBefore as UTCTime");
        for ch in ["é", "€", "😀"] {
            for off in 0..3 {
                let mut bad = der.clone();
                bad[at + off..at + off + ch.len()].copy_from_slice(ch.as_bytes());
                assert!(CertInfo::parse(&bad).is_err(), "{ch} at {off}");
            }
        }
        for content in ["2\u{e9}0102000000Z", "20240102000000Z\u{20ac}", "\u{20ac}"] {
            for tag in [0x17u8, 0x18] {
                let mut tlv = vec![tag, content.len() as u8];
                tlv.extend_from_slice(content.as_bytes());
                let _ = time(&tlv);
            }
        }
        assert!(
            time(b"\x17\x0d+40102000000Z").is_err(),
            "signs are not digits"
        );
        assert_eq!(time(b"\x17\x0d700101000000Z").unwrap().0, 0);
        assert_eq!(time(b"\x18\x0f19700101000001Z").unwrap().0, 1);
    }

    #[test]
    fn ecdsa_certificate() {
        let der = make(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &["mx.example.org", "example.org"],
        );
        let c = CertInfo::parse(&der).unwrap();
        assert_eq!(c.subject, "CN=mx.example.org, O=Example Org");
        assert_eq!(c.issuer, c.subject);
        assert_eq!(c.sans, vec!["mx.example.org", "example.org"]);
        assert_eq!(c.common_name.as_deref(), Some("mx.example.org"));
        assert_eq!(c.key.to_string(), "ECDSA P-256");
        assert_eq!(c.signature, "ecdsa-with-SHA256");
        assert_eq!(format_time(c.not_before), "2024-01-02 00:00:00 UTC");
        assert_eq!(format_time(c.not_after), "2049-12-31 00:00:00 UTC");
        assert!(c.weaknesses().is_empty());
        let p384 = CertInfo::parse(&make(&rcgen::PKCS_ECDSA_P384_SHA384, &["a.test"])).unwrap();
        assert_eq!(p384.key.to_string(), "ECDSA P-384");
        assert_eq!(p384.signature, "ecdsa-with-SHA384");
    }

    #[test]
    fn rsa_certificate_size() {
        let c = CertInfo::parse(&make(&rcgen::PKCS_RSA_SHA256, &["r.test"])).unwrap();
        assert_eq!(c.key, KeyKind::Rsa { bits: 2048 });
        assert_eq!(c.signature, "sha256WithRSAEncryption");
        let weak = CertInfo {
            key: KeyKind::Rsa { bits: 1024 },
            signature: "sha1WithRSAEncryption".into(),
            ..c
        };
        assert_eq!(weak.weaknesses().len(), 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for n in 0..200 {
            let mut der = make(&rcgen::PKCS_ECDSA_P256_SHA256, &["x.test"]);
            der.truncate(n * 3 % der.len());
            let _ = CertInfo::parse(&der);
        }
        assert!(CertInfo::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(
            dotted(&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]),
            "1.2.840.10045.2.1"
        );
    }
}
