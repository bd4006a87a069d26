//! `postern tls-check`: the automated TLS scan the NCSC guidance asks operators to run
//! regularly, for SMTP servers (STARTTLS) and implicit-TLS ports.
//!
//! It reports whether STARTTLS is offered; which of SSLv3, TLS 1.0, 1.1, 1.2, 1.3 the server
//! accepts; the cipher suites it accepts per version (CBC, RC4, 3DES and static-RSA ones
//! too) and whether it imposes its own order; the key-exchange groups; each certificate
//! chain it serves (key, signature, names, expiry, trust, name match); whether a given
//! client certificate is accepted; and a verdict against a profile (`default`,
//! `ncsc-suite-b`, `ncsc-foundation`), each requirement pass/fail with the reason.
//!
//! Versions and suites rustls cannot speak are probed with hand-built ClientHellos
//! (`hello.rs`, I/O-free); the certificate chain of TLS 1.3-only servers, the "a client of
//! this profile can connect" check and the client-certificate test use real rustls
//! handshakes.
//!
//! # Security
//! The scanner talks to the host it is given only; server bytes are parsed defensively;
//! the probes never complete a handshake, so nothing is sent after the ClientHello.
//!
//! # Standards
//! RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 5246, RFC 8446, RFC 9325.

pub mod cli;
pub mod hello;
pub mod probe;
mod report;
mod setup;
pub mod suites;
pub use setup::SetupError;
mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;

use postern_tls::Profile;
use serde::Serialize;

pub use report::render_text;

use hello::{Flight, HelloSpec, KeyExchange, SSL3, TLS10, TLS11, TLS12, TLS13};

/// What to scan.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// TLS from the first byte (port 465 style) instead of STARTTLS.
    pub implicit: bool,
    /// The name to send as SNI and to match (`--name`), if any.
    pub name: Option<String>,
}

impl Target {
    /// `HOST`, `HOST:PORT`, `[IPv6]:PORT`. Default port 25 (465 with `implicit`).
    pub fn parse(s: &str, implicit: bool, name: Option<String>) -> Result<Target, TargetError> {
        let default = if implicit { 465 } else { 25 };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| TargetError::NoBracket(s.to_string()))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| TargetError::BadPort(s.to_string()))?,
                None if after.is_empty() => default,
                None => return Err(TargetError::NoPort(s.to_string())),
            };
            (h.to_string(), port)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (
                    h.to_string(),
                    p.parse().map_err(|_| TargetError::BadPort(s.to_string()))?,
                ),
                _ => (s.to_string(), default),
            }
        };
        if host.is_empty() {
            return Err(TargetError::EmptyHost);
        }
        Ok(Target {
            host,
            port,
            implicit,
            name,
        })
    }

    /// The name for SNI and rustls: `--name`, else the host.
    pub fn sni(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.host.clone())
    }
}

/// How to judge.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub profile: Profile,
    /// Trust anchors (PEM); the system store when `None`.
    pub ca: Option<PathBuf>,
    pub client_cert: Option<postern_tls::LoadedCert>,
}

/// Why `HOST[:PORT]` is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?}: missing ] after the IPv6 address")]
    NoBracket(String),
    #[error("{0:?}: bad port")]
    BadPort(String),
    #[error("{0:?}: expected :PORT after ]")]
    NoPort(String),
    #[error("empty host name")]
    EmptyHost,
}

/// Why a scan could not run at all.
#[derive(Debug, Clone)]
pub enum ScanError {
    Connect(String),
    Smtp(String),
    NoStartTls,
    Protocol(String),
    Handshake(String),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Connect(e) => write!(f, "cannot connect: {e}"),
            ScanError::Smtp(e) => write!(f, "SMTP: {e}"),
            ScanError::NoStartTls => f.write_str("the server does not offer STARTTLS"),
            ScanError::Protocol(e) => write!(f, "the server's answer is not TLS: {e}"),
            ScanError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// One protocol version's result.
#[derive(Debug, Clone, Serialize)]
pub struct VersionResult {
    pub version: String,
    pub accepted: bool,
    /// The alert, the version the server answered with, or the error.
    pub detail: String,
}

/// The suites one version accepts.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteList {
    pub version: String,
    /// `Some(true)`: the server imposes its order (the list is in it); `Some(false)`: it
    /// follows the client's; `None`: fewer than two suites.
    pub server_order: Option<bool>,
    pub suites: Vec<suites::Suite>,
}

/// Key-exchange groups accepted per version.
#[derive(Debug, Clone, Serialize)]
pub struct GroupList {
    pub version: String,
    pub groups: Vec<String>,
    /// Finite-field DHE prime sizes seen (TLS <= 1.2 DHE suites).
    pub dh_bits: Vec<usize>,
}

/// One certificate of a chain.
#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    pub subject: String,
    pub issuer: String,
    pub names: Vec<String>,
    pub key: String,
    pub signature: String,
    pub not_after: String,
    pub days_left: i64,
    pub fingerprint: String,
    pub weaknesses: Vec<String>,
}

/// A chain the server served.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// Which handshake(s) it came with (suite names).
    pub seen_with: Vec<String>,
    pub certificates: Vec<CertReport>,
    pub trusted: bool,
    pub trust_detail: String,
    /// Against `--name`; `None` without it.
    pub name_match: Option<bool>,
    #[serde(skip)]
    pub(crate) key: Option<postern_tls::x509::KeyKind>,
}

/// A rustls handshake's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeReport {
    pub client: String,
    pub ok: bool,
    pub version: String,
    pub suite: String,
    pub group: Option<String>,
    pub detail: String,
}

/// A requirement of the profile.
#[derive(Debug, Clone, Serialize)]
pub struct Requirement {
    pub requirement: String,
    pub pass: bool,
    pub reason: String,
}

/// Everything the scan found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub mode: String,
    pub profile: String,
    pub starttls_offered: Option<bool>,
    pub versions: Vec<VersionResult>,
    pub suites: Vec<SuiteList>,
    pub groups: Vec<GroupList>,
    pub certificates: Vec<ChainReport>,
    pub handshakes: Vec<HandshakeReport>,
    /// With `--client-cert`: accepted, and why not.
    pub client_certificate: Option<HandshakeReport>,
    pub requirements: Vec<Requirement>,
    pub pass: bool,
}

fn random() -> [u8; 32] {
    rand::random()
}

fn all_groups() -> Vec<u16> {
    suites::GROUPS.iter().map(|(g, _)| *g).collect()
}

fn spec(version: u16, suites: Vec<u16>, groups: Vec<u16>) -> HelloSpec {
    HelloSpec {
        version,
        suites,
        groups,
        sni: None,
        x25519_share: true,
        random: random(),
    }
}

/// Chains seen, keyed by leaf, with the suites they came with.
type Chains = BTreeMap<Vec<u8>, (Vec<Vec<u8>>, Vec<String>)>;

fn note_chain(chains: &mut Chains, certs: &[Vec<u8>], with: String) {
    if let Some(leaf) = certs.first() {
        let e = chains
            .entry(leaf.clone())
            .or_insert_with(|| (certs.to_vec(), Vec::new()));
        if !e.1.contains(&with) {
            e.1.push(with);
        }
    }
}

/// Run the whole scan.
pub async fn scan(t: &Target, opts: &Options) -> Result<Report, ScanError> {
    let mut report = Report {
        target: format!("{}:{}", t.host, t.port),
        mode: if t.implicit {
            "implicit TLS"
        } else {
            "STARTTLS"
        }
        .into(),
        profile: opts.profile.to_string(),
        starttls_offered: None,
        versions: Vec::new(),
        suites: Vec::new(),
        groups: Vec::new(),
        certificates: Vec::new(),
        handshakes: Vec::new(),
        client_certificate: None,
        requirements: Vec::new(),
        pass: false,
    };
    match probe::open(t).await {
        Ok(_) => {
            if !t.implicit {
                report.starttls_offered = Some(true);
            }
        }
        Err(ScanError::NoStartTls) => {
            report.starttls_offered = Some(false);
            verdict::judge(&mut report, opts);
            return Ok(report);
        }
        Err(e) => return Err(e),
    }
    let mut chains = Chains::new();
    let legacy: Vec<u16> = suites::LEGACY.iter().map(|(s, _)| *s).collect();
    let tls13: Vec<u16> = suites::TLS13.iter().map(|(s, _)| *s).collect();
    for v in [SSL3, TLS10, TLS11, TLS12, TLS13] {
        let offered = if v == TLS13 {
            tls13.clone()
        } else {
            legacy.clone()
        };
        let mut s = spec(v, offered, all_groups());
        s.sni = t.name.clone();
        let r = probe::hello(t, &s).await;
        report.versions.push(version_result(v, &r));
    }
    for v in [SSL3, TLS10, TLS11, TLS12, TLS13] {
        if !accepted(&report, v) {
            continue;
        }
        let offered = if v == TLS13 { &tls13 } else { &legacy };
        let (list, dh) = enumerate(t, v, offered, &mut chains).await;
        report.suites.push(list);
        let groups = groups(t, v, &legacy, &tls13).await;
        report.groups.push(GroupList {
            version: hello::version_name(v).into(),
            groups,
            dh_bits: dh,
        });
    }
    let default = handshake_report(
        t,
        "default client",
        postern_tls::provider(Profile::Default),
        None,
        &mut chains,
    )
    .await;
    report.handshakes.push(default);
    if opts.profile != Profile::Default {
        let h = handshake_report(
            t,
            &format!("{} client", opts.profile),
            postern_tls::provider(opts.profile),
            None,
            &mut chains,
        )
        .await;
        report.handshakes.push(h);
    }
    if let Some(cc) = &opts.client_cert {
        let h = handshake_report(
            t,
            "with the client certificate",
            postern_tls::provider(Profile::Default),
            Some(cc),
            &mut chains,
        )
        .await;
        report.client_certificate = Some(h);
    }
    report.certificates = report::chains(chains, opts, t);
    verdict::judge(&mut report, opts);
    Ok(report)
}

fn accepted(r: &Report, v: u16) -> bool {
    r.versions
        .iter()
        .any(|x| x.version == hello::version_name(v) && x.accepted)
}

fn version_result(v: u16, r: &Result<Flight, ScanError>) -> VersionResult {
    let name = hello::version_name(v).to_string();
    match r {
        Ok(f) => match (&f.hello, f.alert) {
            (Some(h), _) if h.version == v => VersionResult {
                version: name,
                accepted: true,
                detail: format!("server chose {}", suites::describe(h.suite).name),
            },
            (Some(h), _) => VersionResult {
                version: name,
                accepted: false,
                detail: format!("server answered with {}", hello::version_name(h.version)),
            },
            (None, Some((_, d))) => VersionResult {
                version: name,
                accepted: false,
                detail: format!("refused ({})", hello::alert_name(d)),
            },
            (None, None) => VersionResult {
                version: name,
                accepted: false,
                detail: "no ServerHello".into(),
            },
        },
        Err(e) => VersionResult {
            version: name,
            accepted: false,
            detail: format!("refused ({e})"),
        },
    }
}

/// Offer `offered`, remove what the server picks, repeat: the accepted suites in the order
/// the server chose them; then offer them reversed to see whose order counts.
async fn enumerate(
    t: &Target,
    v: u16,
    offered: &[u16],
    chains: &mut Chains,
) -> (SuiteList, Vec<usize>) {
    let mut left: Vec<u16> = offered.to_vec();
    let mut got = Vec::new();
    let mut dh = Vec::new();
    while !left.is_empty() && got.len() < offered.len() {
        let mut s = spec(v, left.clone(), all_groups());
        s.sni = t.name.clone();
        let Ok(f) = probe::hello(t, &s).await else {
            break;
        };
        let Some(h) = f.hello.as_ref().filter(|h| h.version == v) else {
            break;
        };
        if !left.contains(&h.suite) {
            break;
        }
        note_chain(chains, &f.certificates, suites::describe(h.suite).name);
        if let Some(KeyExchange::Dh(bits)) = f.key_exchange
            && !dh.contains(&bits)
        {
            dh.push(bits);
        }
        left.retain(|x| *x != h.suite);
        got.push(h.suite);
    }
    let mut server_order = None;
    if got.len() >= 2 {
        let reversed: Vec<u16> = got.iter().rev().copied().collect();
        let mut s = spec(v, reversed, all_groups());
        s.sni = t.name.clone();
        if let Ok(f) = probe::hello(t, &s).await
            && let Some(h) = f.hello
        {
            server_order = Some(h.suite == got[0]);
        }
    }
    (
        SuiteList {
            version: hello::version_name(v).into(),
            server_order,
            suites: got.into_iter().map(suites::describe).collect(),
        },
        dh,
    )
}

/// The groups a version accepts, one probe per group.
async fn groups(t: &Target, v: u16, legacy: &[u16], tls13: &[u16]) -> Vec<String> {
    let ecdhe: Vec<u16> = legacy
        .iter()
        .copied()
        .filter(|s| suites::describe(*s).kx == "ECDHE")
        .collect();
    let mut out = Vec::new();
    for (g, name) in suites::GROUPS {
        let is_ff = (0x0100..0x0200).contains(g);
        let is_pq = *g >= 0x0200;
        if v != TLS13 && (is_ff || is_pq) {
            continue;
        }
        let mut s = if v == TLS13 {
            spec(v, tls13.to_vec(), vec![*g])
        } else {
            spec(v, ecdhe.clone(), vec![*g])
        };
        s.sni = t.name.clone();
        let Ok(f) = probe::hello(t, &s).await else {
            continue;
        };
        let ok = match (&f.hello, &f.key_exchange) {
            (Some(h), _) if v == TLS13 => h.version == TLS13 && h.group == Some(*g),
            (Some(h), Some(KeyExchange::Group(x))) => h.version == v && x == g,
            _ => false,
        };
        if ok {
            out.push(name.to_string());
        }
    }
    out
}

async fn handshake_report(
    t: &Target,
    client: &str,
    provider: rustls::crypto::CryptoProvider,
    cert: Option<&postern_tls::LoadedCert>,
    chains: &mut Chains,
) -> HandshakeReport {
    match probe::handshake(t, provider, cert).await {
        Ok(h) => {
            let der: Vec<Vec<u8>> = h.chain.iter().map(|c| c.to_vec()).collect();
            note_chain(chains, &der, format!("{} ({})", h.suite, h.version));
            HandshakeReport {
                client: client.into(),
                ok: h.after.is_ok(),
                detail: match &h.after {
                    Ok(()) => "session established".into(),
                    Err(e) => format!("the server ended the session after the handshake: {e}"),
                },
                version: h.version,
                suite: h.suite,
                group: h.group,
            }
        }
        Err(e) => HandshakeReport {
            client: client.into(),
            ok: false,
            version: String::new(),
            suite: String::new(),
            group: None,
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("mx.example.org", false, None).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("mx.example.org", 25));
        let t = Target::parse("127.0.0.1:2525", true, None).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 2525));
        assert_eq!(Target::parse("[::1]:26", false, None).unwrap().host, "::1");
        assert_eq!(Target::parse("mx", true, None).unwrap().port, 465);
        assert!(Target::parse("mx:x", false, None).is_err());
    }
}
