//! Hand-built ClientHello messages and a parser for the server's first flight, without I/O.
//!
//! rustls speaks only TLS 1.2 and 1.3 with AEAD suites; to learn whether a server still
//! accepts SSLv3, TLS 1.0/1.1, CBC, RC4, 3DES or static-RSA suites, the scanner sends its
//! own ClientHello and reads the ServerHello (or the alert). The handshake is never
//! finished: the answer is in the server's first flight, which is in clear up to TLS 1.2
//! (ServerHello, Certificate, ServerKeyExchange, ServerHelloDone) and up to the ServerHello
//! in TLS 1.3.
//!
//! # Security
//! The server's bytes are untrusted: every length is checked, the flight is bounded
//! ([`MAX_FLIGHT`]), and parsing never panics.
//!
//! # Standards
//! RFC 6101 (SSLv3), RFC 2246, RFC 4346, RFC 5246 §7.4 (handshake), RFC 8446 §4.1
//! (ClientHello, ServerHello, HelloRetryRequest), RFC 6066 §3 (server_name), RFC 8422 §5
//! (supported groups, ServerKeyExchange), RFC 7919 (ffdhe), RFC 5746 (renegotiation SCSV).

/// The most bytes of a server's first flight we read.
pub const MAX_FLIGHT: usize = 256 * 1024;

/// SSL 3.0 .. TLS 1.3 wire versions.
pub const SSL3: u16 = 0x0300;
pub const TLS10: u16 = 0x0301;
pub const TLS11: u16 = 0x0302;
pub const TLS12: u16 = 0x0303;
pub const TLS13: u16 = 0x0304;

/// The HelloRetryRequest "random" (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Signature schemes offered (everything, so that the server's choice is not limited).
const SIG_SCHEMES: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080A, 0x080B, 0x0401,
    0x0501, 0x0601, 0x0303, 0x0203, 0x0201, 0x0402, 0x0202,
];

/// What to put in a ClientHello.
#[derive(Debug, Clone)]
pub struct HelloSpec {
    /// The version offered: SSLv3..TLS 1.2 as `client_version`; TLS 1.3 through
    /// `supported_versions` (with `client_version` 1.2).
    pub version: u16,
    pub suites: Vec<u16>,
    pub groups: Vec<u16>,
    /// server_name, when it is a host name.
    pub sni: Option<String>,
    /// TLS 1.3: offer an X25519 key share (otherwise none, which makes the server answer
    /// with a HelloRetryRequest naming the group it wants).
    pub x25519_share: bool,
    pub random: [u8; 32],
}

fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn with_len16(out: &mut Vec<u8>, body: &[u8]) {
    u16be(out, body.len() as u16);
    out.extend_from_slice(body);
}

fn ext(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    u16be(out, kind);
    with_len16(out, body);
}

/// The ClientHello as one TLS record.
pub fn client_hello(spec: &HelloSpec) -> Vec<u8> {
    let tls13 = spec.version == TLS13;
    let mut body = Vec::new();
    u16be(&mut body, if tls13 { TLS12 } else { spec.version });
    body.extend_from_slice(&spec.random);
    if tls13 {
        // A legacy session id: middlebox compatibility mode (RFC 8446 §D.4).
        body.push(32);
        body.extend_from_slice(&spec.random);
    } else {
        body.push(0);
    }
    let mut suites = Vec::new();
    for s in &spec.suites {
        u16be(&mut suites, *s);
    }
    if !tls13 {
        u16be(&mut suites, 0x00FF); // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    }
    with_len16(&mut body, &suites);
    body.extend_from_slice(&[1, 0]); // compression: null only
    let mut exts = Vec::new();
    if let Some(name) = spec
        .sni
        .as_deref()
        .filter(|n| n.parse::<std::net::IpAddr>().is_err())
    {
        let mut list = vec![0u8];
        with_len16(&mut list, name.as_bytes());
        let mut sni = Vec::new();
        with_len16(&mut sni, &list);
        ext(&mut exts, 0x0000, &sni);
    }
    if spec.version >= TLS10 {
        let mut groups = Vec::new();
        for g in &spec.groups {
            u16be(&mut groups, *g);
        }
        let mut e = Vec::new();
        with_len16(&mut e, &groups);
        ext(&mut exts, 0x000A, &e);
        ext(&mut exts, 0x000B, &[1, 0]); // ec_point_formats: uncompressed
        let mut sigs = Vec::new();
        for s in SIG_SCHEMES {
            u16be(&mut sigs, *s);
        }
        let mut e = Vec::new();
        with_len16(&mut e, &sigs);
        ext(&mut exts, 0x000D, &e);
        ext(&mut exts, 0x0017, &[]); // extended_master_secret
    }
    if tls13 {
        ext(&mut exts, 0x002B, &[2, 0x03, 0x04]); // supported_versions: TLS 1.3
        let mut shares = Vec::new();
        if spec.x25519_share && spec.groups.contains(&0x001D) {
            u16be(&mut shares, 0x001D);
            // Any 32 bytes are an X25519 public key; the handshake is never finished.
            with_len16(&mut shares, &spec.random);
        }
        let mut e = Vec::new();
        with_len16(&mut e, &shares);
        ext(&mut exts, 0x0033, &e);
        ext(&mut exts, 0x002D, &[1, 1]); // psk_key_exchange_modes: psk_dhe_ke
    }
    if !exts.is_empty() {
        with_len16(&mut body, &exts);
    }
    let mut hs = vec![1u8];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22u8];
    u16be(&mut rec, if spec.version == SSL3 { SSL3 } else { TLS10 });
    with_len16(&mut rec, &hs);
    rec
}

/// The server's ServerHello (or HelloRetryRequest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// The negotiated version (from supported_versions when present).
    pub version: u16,
    pub suite: u16,
    /// TLS 1.3: the key share group (or the group an HRR asks for).
    pub group: Option<u16>,
    pub retry: bool,
}

/// What the server's ServerKeyExchange says about the key exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyExchange {
    /// ECDHE on a named group.
    Group(u16),
    /// Finite-field DHE with a prime of this many bits.
    Dh(usize),
}

/// The server's first flight, as far as it was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flight {
    pub hello: Option<ServerHello>,
    /// Certificate chain (TLS <= 1.2 only; encrypted in 1.3).
    pub certificates: Vec<Vec<u8>>,
    pub key_exchange: Option<KeyExchange>,
    /// The server asked for a client certificate.
    pub certificate_request: bool,
    /// (level, description) of an alert, when the server sent one instead.
    pub alert: Option<(u8, u8)>,
    /// Nothing more to wait for (ServerHelloDone, a TLS 1.3 ServerHello/HRR, or an alert).
    pub complete: bool,
}

/// Why the bytes are not a TLS server flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotTls(pub String);

/// Parse what the server sent so far. `complete` tells whether to stop reading.
pub fn parse_flight(data: &[u8]) -> Result<Flight, NotTls> {
    let mut f = Flight::default();
    let mut hs = Vec::new();
    let mut rest = data;
    while rest.len() >= 5 {
        let (kind, len) = (rest[0], u16::from_be_bytes([rest[3], rest[4]]) as usize);
        if rest[1] != 3 || len > 18_432 {
            return Err(NotTls(format!(
                "not a TLS record (starts {:02x} {:02x} {:02x})",
                rest[0], rest[1], rest[2]
            )));
        }
        if rest.len() < 5 + len {
            break;
        }
        let payload = &rest[5..5 + len];
        rest = &rest[5 + len..];
        match kind {
            21 if payload.len() >= 2 => {
                f.alert = Some((payload[0], payload[1]));
                f.complete = true;
                return Ok(f);
            }
            22 => hs.extend_from_slice(payload),
            // ChangeCipherSpec or encrypted data: the clear part of the flight is over.
            20 | 23 => {
                f.complete = true;
                break;
            }
            _ => return Err(NotTls(format!("unexpected TLS record type {kind}"))),
        }
    }
    let mut msgs = hs.as_slice();
    while msgs.len() >= 4 {
        let len = u32::from_be_bytes([0, msgs[1], msgs[2], msgs[3]]) as usize;
        if msgs.len() < 4 + len {
            break;
        }
        let (kind, body) = (msgs[0], &msgs[4..4 + len]);
        msgs = &msgs[4 + len..];
        match kind {
            2 => {
                let h = server_hello(body)?;
                let done = h.retry || h.version == TLS13;
                f.hello = Some(h);
                if done {
                    f.complete = true;
                    return Ok(f);
                }
            }
            11 => f.certificates = certificate_list(body)?,
            12 => f.key_exchange = key_exchange(body, f.hello.as_ref()),
            13 => f.certificate_request = true,
            14 => {
                f.complete = true;
                return Ok(f);
            }
            _ => {}
        }
    }
    Ok(f)
}

/// A tiny bounds-checked reader.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], NotTls> {
        if self.0.len() < n {
            return Err(NotTls("truncated handshake message".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, NotTls> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, NotTls> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Result<usize, NotTls> {
        let b = self.take(3)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    }
}

fn server_hello(body: &[u8]) -> Result<ServerHello, NotTls> {
    let mut r = Rd(body);
    let legacy = r.u16()?;
    let random = r.take(32)?;
    let sid = r.u8()? as usize;
    r.take(sid)?;
    let suite = r.u16()?;
    let _compression = r.u8()?;
    let mut h = ServerHello {
        version: legacy,
        suite,
        group: None,
        retry: random == HRR_RANDOM,
    };
    if r.0.len() >= 2 {
        let len = r.u16()? as usize;
        let mut e = Rd(r.take(len)?);
        while e.0.len() >= 4 {
            let kind = e.u16()?;
            let len = e.u16()? as usize;
            let mut v = Rd(e.take(len)?);
            match kind {
                0x002B => h.version = v.u16()?,
                0x0033 => h.group = Some(v.u16()?),
                _ => {}
            }
        }
    }
    Ok(h)
}

fn certificate_list(body: &[u8]) -> Result<Vec<Vec<u8>>, NotTls> {
    let mut r = Rd(body);
    let total = r.u24()?;
    let mut list = Rd(r.take(total)?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        let n = list.u24()?;
        out.push(list.take(n)?.to_vec());
    }
    Ok(out)
}

fn key_exchange(body: &[u8], hello: Option<&ServerHello>) -> Option<KeyExchange> {
    let suite = crate::suites::describe(hello?.suite);
    let mut r = Rd(body);
    if suite.kx.starts_with("ECDH") {
        (r.u8().ok()? == 3).then_some(())?;
        return Some(KeyExchange::Group(r.u16().ok()?));
    }
    if suite.kx.starts_with("DH") {
        let len = r.u16().ok()? as usize;
        let p = r.take(len).ok()?;
        let p = &p[p.iter().position(|&b| b != 0).unwrap_or(p.len())..];
        let bits = p
            .first()
            .map(|b| (p.len() - 1) * 8 + (8 - b.leading_zeros() as usize))
            .unwrap_or(0);
        return Some(KeyExchange::Dh(bits));
    }
    None
}

/// A version's name.
pub fn version_name(v: u16) -> &'static str {
    match v {
        SSL3 => "SSLv3",
        TLS10 => "TLSv1.0",
        TLS11 => "TLSv1.1",
        TLS12 => "TLSv1.2",
        TLS13 => "TLSv1.3",
        _ => "unknown",
    }
}

/// An alert description's name (RFC 8446 §6).
pub fn alert_name(d: u8) -> String {
    match d {
        0 => "close_notify".into(),
        10 => "unexpected_message".into(),
        20 => "bad_record_mac".into(),
        40 => "handshake_failure".into(),
        42 => "bad_certificate".into(),
        47 => "illegal_parameter".into(),
        50 => "decode_error".into(),
        70 => "protocol_version".into(),
        71 => "insufficient_security".into(),
        80 => "internal_error".into(),
        86 => "inappropriate_fallback".into(),
        109 => "missing_extension".into(),
        112 => "unrecognized_name".into(),
        116 => "certificate_required".into(),
        120 => "no_application_protocol".into(),
        other => format!("alert {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(version: u16) -> HelloSpec {
        HelloSpec {
            version,
            suites: vec![0xC02B, 0x002F],
            groups: vec![0x001D, 0x0017],
            sni: Some("mx.example.org".into()),
            x25519_share: true,
            random: [7; 32],
        }
    }

    #[test]
    fn hello_shape() {
        let r = client_hello(&spec(TLS10));
        assert_eq!(&r[..3], &[22, 3, 1]);
        assert_eq!(u16::from_be_bytes([r[3], r[4]]) as usize, r.len() - 5);
        assert_eq!(r[5], 1);
        assert_eq!(&r[9..11], &[3, 1]);
        // Suites: 2 offered + the renegotiation SCSV.
        let sid = r[11 + 32] as usize;
        let at = 11 + 32 + 1 + sid;
        assert_eq!(u16::from_be_bytes([r[at], r[at + 1]]), 6);
        let r3 = client_hello(&spec(SSL3));
        assert_eq!(&r3[1..3], &[3, 0]);
        let r13 = client_hello(&spec(TLS13));
        assert_eq!(&r13[9..11], &[3, 3]);
        assert!(r13.windows(5).any(|w| w == [0x00, 0x2B, 0x00, 0x03, 0x02]));
    }

    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        r.extend_from_slice(payload);
        r
    }

    fn hs(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn tls12_flight() {
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&[1; 32]);
        sh.extend_from_slice(&[0, 0xC0, 0x2F, 0]);
        let mut cert = vec![0, 0, 7, 0, 0, 4, 0x30, 2, 5, 0];
        cert.truncate(10);
        let ske = [3, 0x00, 0x17, 65];
        let mut flight = hs(2, &sh);
        flight.extend(hs(11, &cert));
        flight.extend(hs(12, &ske));
        // Split over two records, the second part not yet complete.
        let (a, b) = flight.split_at(20);
        let mut bytes = record(22, a);
        let partial = parse_flight(&bytes).unwrap();
        assert!(!partial.complete);
        bytes.extend(record(22, b));
        bytes.extend(record(22, &hs(14, &[])));
        let f = parse_flight(&bytes).unwrap();
        assert!(f.complete);
        assert_eq!(f.hello.as_ref().unwrap().suite, 0xC02F);
        assert_eq!(f.hello.as_ref().unwrap().version, TLS12);
        assert_eq!(f.certificates, vec![vec![0x30, 2, 5, 0]]);
        assert_eq!(f.key_exchange, Some(KeyExchange::Group(0x0017)));
    }

    #[test]
    fn tls13_retry_and_alerts() {
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&HRR_RANDOM);
        sh.extend_from_slice(&[0, 0x13, 0x01, 0]);
        sh.extend_from_slice(&[0, 12, 0x00, 0x2B, 0, 2, 3, 4, 0x00, 0x33, 0, 2, 0x00, 0x17]);
        let f = parse_flight(&record(22, &hs(2, &sh))).unwrap();
        let h = f.hello.unwrap();
        assert!(h.retry && f.complete);
        assert_eq!((h.version, h.group), (TLS13, Some(0x0017)));
        let f = parse_flight(&record(21, &[2, 70])).unwrap();
        assert_eq!(f.alert, Some((2, 70)));
        assert!(parse_flight(b"220 mx ESMTP\r\n").is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 12345u32;
        for _ in 0..2000 {
            let mut d = vec![22, 3, 3, 0, 40];
            for _ in 0..40 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                d.push((seed >> 16) as u8);
            }
            d[5] = 2;
            let _ = parse_flight(&d);
        }
    }
}
