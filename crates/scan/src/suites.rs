//! The cipher suites the scanner knows: IANA code points and names, and what each one is
//! made of (derived from the name).
//!
//! # Standards
//! IANA "TLS Cipher Suites" registry; RFC 5246 appendix A.5, RFC 8446 §B.4, RFC 7905,
//! RFC 8422, RFC 7465 (RC4 prohibited), RFC 9325 (recommendations).

use serde::Serialize;

/// TLS 1.3 suites.
pub const TLS13: &[(u16, &str)] = &[
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1302, "TLS_AES_256_GCM_SHA384"),
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    (0x1304, "TLS_AES_128_CCM_SHA256"),
    (0x1305, "TLS_AES_128_CCM_8_SHA256"),
];

/// SSLv3 .. TLS 1.2 suites, strongest first (the order probes offer them in).
pub const LEGACY: &[(u16, &str)] = &[
    (0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    (0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    (0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"),
    (0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"),
    (0xC09E, "TLS_DHE_RSA_WITH_AES_128_CCM"),
    (0xC09F, "TLS_DHE_RSA_WITH_AES_256_CCM"),
    (0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    (0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    (0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    (0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"),
    (0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    (0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    (0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    (0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    (0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    (0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    (0x00A2, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"),
    (0x0040, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256"),
    (0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"),
    (0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"),
    (0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    (0xC09C, "TLS_RSA_WITH_AES_128_CCM"),
    (0xC09D, "TLS_RSA_WITH_AES_256_CCM"),
    (0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    (0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    (0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    (0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    (0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    (0x0096, "TLS_RSA_WITH_SEED_CBC_SHA"),
    (0x009A, "TLS_DHE_RSA_WITH_SEED_CBC_SHA"),
    (0xC004, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xC005, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xC00E, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA"),
    (0xC00F, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA"),
    (0xC008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"),
    (0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA"),
    (0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"),
    (0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"),
    (0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
    (0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
    (0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA"),
    (0x0009, "TLS_RSA_WITH_DES_CBC_SHA"),
    (0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"),
    (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
    (0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"),
    (0x003A, "TLS_DH_anon_WITH_AES_256_CBC_SHA"),
    (0x00A6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"),
    (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"),
    (0x001B, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA"),
    (0xC018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"),
    (0xC019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA"),
    (0xC010, "TLS_ECDHE_RSA_WITH_NULL_SHA"),
    (0xC006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"),
    (0x003B, "TLS_RSA_WITH_NULL_SHA256"),
    (0x0002, "TLS_RSA_WITH_NULL_SHA"),
    (0x0001, "TLS_RSA_WITH_NULL_MD5"),
];

/// What a suite is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suite {
    pub id: u16,
    pub name: String,
    /// `ECDHE`, `DHE`, `RSA`, `ECDH`, `DH_anon`, `ECDH_anon`, `RSA_EXPORT`, ... or `TLS13`.
    pub kx: String,
    /// `ECDSA`, `RSA`, `DSS`, `anon`, or `any` (TLS 1.3).
    pub auth: String,
    /// `AES_128_GCM`, `AES_128_CBC`, `RC4_128`, `3DES_EDE_CBC`, `NULL`, ...
    pub cipher: String,
    /// `SHA256`, `SHA`, `MD5`, ... (the MAC or the PRF hash for AEAD suites).
    pub hash: String,
    pub aead: bool,
    pub forward_secrecy: bool,
    /// Problems: CBC, RC4, 3DES, DES, NULL, EXPORT, anonymous, no forward secrecy, SHA-1/MD5 MAC.
    pub weaknesses: Vec<String>,
}

/// Describe a suite by code point (unknown ones are named by number).
pub fn describe(id: u16) -> Suite {
    let name = TLS13
        .iter()
        .chain(LEGACY)
        .find(|(i, _)| *i == id)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("0x{id:04X}"));
    if let Some(rest) = name
        .strip_prefix("TLS_")
        .filter(|_| (0x1301..=0x1305).contains(&id))
    {
        let (cipher, hash) = rest.rsplit_once('_').unwrap_or((rest, ""));
        return Suite {
            id,
            kx: "TLS13".into(),
            auth: "any".into(),
            cipher: cipher.into(),
            hash: hash.into(),
            aead: true,
            forward_secrecy: true,
            weaknesses: Vec::new(),
            name,
        };
    }
    let body = name.strip_prefix("TLS_").unwrap_or(&name);
    let (kxauth, rest) = body.split_once("_WITH_").unwrap_or((body, ""));
    let (kx, auth) = match kxauth {
        "RSA" => ("RSA", "RSA"),
        k if k.starts_with("RSA_EXPORT") => ("RSA_EXPORT", "RSA"),
        k if k.ends_with("_anon") => (k, "anon"),
        k => match k.split_once('_') {
            Some((kx, auth)) => (kx, auth.trim_end_matches("_EXPORT")),
            None => (k, k),
        },
    };
    let aead = rest.contains("GCM") || rest.contains("CCM") || rest.contains("CHACHA20");
    let (cipher, hash) = if rest.ends_with("_CCM") || rest.ends_with("_CCM_8") {
        (rest.to_string(), "SHA256".to_string())
    } else {
        let (c, h) = rest.rsplit_once('_').unwrap_or((rest, ""));
        (c.to_string(), h.to_string())
    };
    let forward_secrecy = matches!(kx, "ECDHE" | "DHE");
    let mut weaknesses = Vec::new();
    let mut weak = |w: &str| weaknesses.push(w.to_string());
    if cipher.contains("CBC") {
        weak("CBC mode");
    }
    if cipher.contains("RC4") {
        weak("RC4 (prohibited, RFC 7465)");
    }
    if cipher.contains("3DES") {
        weak("3DES (64-bit blocks)");
    }
    if cipher.starts_with("DES") || cipher.contains("DES40") || cipher.contains("RC2") {
        weak("DES/RC2 (broken)");
    }
    if cipher == "NULL" {
        weak("no encryption (NULL)");
    }
    if name.contains("EXPORT") {
        weak("EXPORT grade");
    }
    if auth == "anon" {
        weak("anonymous (no server authentication)");
    }
    if !forward_secrecy && auth != "anon" {
        weak("no forward secrecy (static key exchange)");
    }
    if !aead && (hash == "SHA" || hash == "MD5") {
        weak("SHA-1/MD5 MAC");
    }
    Suite {
        id,
        kx: kx.to_string(),
        auth: auth.to_string(),
        cipher,
        hash,
        aead,
        forward_secrecy,
        weaknesses,
        name,
    }
}

/// Named groups the scanner probes, with their names.
pub const GROUPS: &[(u16, &str)] = &[
    (0x001D, "x25519"),
    (0x0017, "secp256r1"),
    (0x0018, "secp384r1"),
    (0x0019, "secp521r1"),
    (0x001E, "x448"),
    (0x11EC, "X25519MLKEM768"),
    (0x11EB, "SecP256r1MLKEM768"),
    (0x0100, "ffdhe2048"),
    (0x0101, "ffdhe3072"),
    (0x0102, "ffdhe4096"),
];

/// A group's name, or its number.
pub fn group_name(id: u16) -> String {
    GROUPS
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("0x{id:04X}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decompose() {
        let s = describe(0xC02B);
        assert_eq!((s.kx.as_str(), s.auth.as_str()), ("ECDHE", "ECDSA"));
        assert_eq!(
            (s.cipher.as_str(), s.hash.as_str()),
            ("AES_128_GCM", "SHA256")
        );
        assert!(s.aead && s.forward_secrecy && s.weaknesses.is_empty());
        let s = describe(0x002F);
        assert_eq!((s.kx.as_str(), s.auth.as_str()), ("RSA", "RSA"));
        assert!(s.weaknesses.iter().any(|w| w == "CBC mode"));
        assert!(s.weaknesses.iter().any(|w| w.contains("forward secrecy")));
        let s = describe(0x0005);
        assert!(s.weaknesses.iter().any(|w| w.contains("RC4")));
        let s = describe(0x1301);
        assert_eq!(
            (s.cipher.as_str(), s.hash.as_str()),
            ("AES_128_GCM", "SHA256")
        );
        let s = describe(0x0034);
        assert_eq!(s.auth, "anon");
        let s = describe(0xC0AC);
        assert!(s.aead && s.cipher == "AES_128_CCM");
        assert_eq!(describe(0xFFFF).name, "0xFFFF");
        let s = describe(0x0067);
        assert_eq!(
            (s.kx.as_str(), s.auth.as_str(), s.hash.as_str()),
            ("DHE", "RSA", "SHA256")
        );
    }
}
