//! The `[[listener]]` and `[relay]` sections.

use std::collections::HashSet;
use std::net::SocketAddr;

use postern_config::{Cidr, Duration, KeyPath, Problems, Size};
use postern_smtp::address::parse_domain;
use serde::{Deserialize, Serialize};

/// How a listener starts TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Plain SMTP that offers STARTTLS (port 25 / 587 style).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 style, RFC 8314).
    ImplicitTls,
    /// No TLS at all. Only for loopback or tests.
    Plain,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Starttls => "starttls",
            Mode::ImplicitTls => "implicit-tls",
            Mode::Plain => "plain",
        })
    }
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `IP:PORT` to listen on.
    pub address: SocketAddr,
    #[serde(default)]
    pub mode: Mode,
    /// Refuse mail transactions until the client has done STARTTLS.
    #[serde(default)]
    pub require_tls: bool,
    #[serde(default = "d_max_message_size")]
    pub max_message_size: Size,
    #[serde(default = "d_max_recipients")]
    pub max_recipients: usize,
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    #[serde(default = "d_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Consecutive bad commands before the session is closed.
    #[serde(default = "d_max_errors")]
    pub max_errors: u32,
    /// Longest wait for a command line (and for a TLS handshake).
    #[serde(default = "d_command_timeout")]
    pub command_timeout: Duration,
    /// Longest wait for more message data during DATA/BDAT.
    #[serde(default = "d_data_timeout")]
    pub data_timeout: Duration,
    /// Longest time for one whole message (DATA to the final dot, first BDAT to LAST).
    #[serde(default = "d_message_timeout")]
    pub message_timeout: Duration,
    /// Longest life of one connection, whatever it does.
    #[serde(default = "d_max_session_time")]
    pub max_session_time: Duration,
    /// Most `Received:` header fields in a message (Postfix `hopcount_limit`); more is
    /// refused with `554 5.4.6` as a mail loop.
    #[serde(default = "d_max_hop_count")]
    pub max_hop_count: usize,
    /// Most header fields in a message (`552 5.3.4` beyond).
    #[serde(default = "d_max_header_fields")]
    pub max_header_fields: usize,
    /// Largest header section of a message (`552 5.3.4` beyond).
    #[serde(default = "d_max_header_size")]
    pub max_header_size: Size,
    /// How long to wait before the greeting, watching for clients that talk first.
    #[serde(default = "d_greet_pause")]
    pub greet_pause: Duration,
    /// Refuse clients that send before the greeting or pipeline commands where RFC 2920
    /// does not allow it (`554 5.5.0`, like Postfix `smtpd_forbid_unauth_pipelining`).
    #[serde(default = "d_true")]
    pub forbid_improper_pipelining: bool,
    /// Ask TLS clients for a certificate: `off`, `request` (verified when presented),
    /// `require` (no certificate, no TLS session).
    #[serde(default)]
    pub client_certificates: ClientCertificates,
    /// PEM bundle of the CAs that client certificates must chain to (partner CAs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<std::path::PathBuf>,
    /// Certificate revocation lists (PEM or DER files) checked for client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crl: Vec<std::path::PathBuf>,
}

/// `client_certificates` on a listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientCertificates {
    #[default]
    Off,
    Request,
    Require,
}

fn d_max_message_size() -> Size {
    Size::mib(50)
}
fn d_max_recipients() -> usize {
    1000
}
fn d_max_connections() -> usize {
    1000
}
fn d_max_connections_per_ip() -> usize {
    50
}
fn d_max_errors() -> u32 {
    10
}
fn d_command_timeout() -> Duration {
    Duration::secs(300)
}
fn d_data_timeout() -> Duration {
    Duration::secs(600)
}
fn d_message_timeout() -> Duration {
    Duration::secs(30 * 60)
}
fn d_max_session_time() -> Duration {
    Duration::secs(60 * 60)
}
fn d_max_hop_count() -> usize {
    50
}
fn d_max_header_fields() -> usize {
    1000
}
fn d_max_header_size() -> Size {
    Size::mib(1)
}
fn d_greet_pause() -> Duration {
    Duration::secs(0)
}
fn d_true() -> bool {
    true
}

impl ListenerConfig {
    /// A listener on `address` with every limit at its default.
    pub fn new(address: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            address,
            mode: Mode::default(),
            require_tls: false,
            max_message_size: d_max_message_size(),
            max_recipients: d_max_recipients(),
            max_connections: d_max_connections(),
            max_connections_per_ip: d_max_connections_per_ip(),
            max_errors: d_max_errors(),
            command_timeout: d_command_timeout(),
            data_timeout: d_data_timeout(),
            message_timeout: d_message_timeout(),
            max_session_time: d_max_session_time(),
            max_hop_count: d_max_hop_count(),
            max_header_fields: d_max_header_fields(),
            max_header_size: d_max_header_size(),
            greet_pause: d_greet_pause(),
            forbid_improper_pipelining: true,
            client_certificates: ClientCertificates::Off,
            client_ca: None,
            crl: Vec::new(),
        }
    }

    /// The client-certificate policy of a listener that asks for certificates (with its
    /// CAs and CRLs loaded), or `None`: such a listener gets its own TLS configuration.
    pub fn client_cert_policy(
        &self,
        profile: postern_tls::Profile,
    ) -> Result<Option<std::sync::Arc<postern_tls::ClientCertPolicy>>, postern_tls::TlsError> {
        let (mode, Some(ca)) = (self.client_certificates, &self.client_ca) else {
            return Ok(None);
        };
        if mode == ClientCertificates::Off {
            return Ok(None);
        }
        let mandatory = mode == ClientCertificates::Require;
        postern_tls::ClientCertPolicy::new(profile, ca, &self.crl, mandatory)
            .map(|p| Some(std::sync::Arc::new(p)))
    }
}

/// `[relay]`: who may send mail where. With nothing configured, nothing is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Domains this server receives mail for, from anyone.
    #[serde(default)]
    pub local_domains: Vec<String>,
    /// Clients in these networks may send to any domain (relay).
    #[serde(default)]
    pub trusted_networks: Vec<Cidr>,
    /// Clients presenting a certificate with one of these `sha256:` fingerprints (of the
    /// certificate or its public key) may relay, like Postfix's `permit_tls_clientcerts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_client_certificates: Vec<String>,
}

/// Check `[[listener]]` entries and `[relay]`.
pub fn validate(listeners: &[ListenerConfig], relay: &RelayConfig, p: &mut Problems) {
    if listeners.is_empty() {
        p.push(
            KeyPath::of("listener"),
            "at least one [[listener]] is needed",
        );
    }
    let mut seen = HashSet::new();
    for (i, l) in listeners.iter().enumerate() {
        let at = KeyPath::of("listener").index(i);
        if !seen.insert(l.address) {
            p.push(
                at.key("address"),
                format!("{} is used by another listener", l.address),
            );
        }
        if l.require_tls && l.mode == Mode::Plain {
            p.push(
                at.key("require_tls"),
                "a plain listener cannot require TLS: set mode = \"starttls\"",
            );
        }
        for (key, v) in [
            ("max_recipients", l.max_recipients),
            ("max_connections", l.max_connections),
            ("max_connections_per_ip", l.max_connections_per_ip),
            ("max_errors", l.max_errors as usize),
            ("max_hop_count", l.max_hop_count),
            ("max_header_fields", l.max_header_fields),
        ] {
            if v == 0 {
                p.push(at.key(key), "must be at least 1");
            }
        }
        if l.client_certificates != ClientCertificates::Off && l.client_ca.is_none() {
            p.push(at.key("client_ca"), "client_certificates needs client_ca: the PEM file of the CAs client certificates must chain to");
        }
        if !l.crl.is_empty() && l.client_certificates == ClientCertificates::Off {
            p.push(
                at.key("crl"),
                "CRLs are only used for client certificates: set client_certificates = \"request\" or \"require\"",
            );
        }
        if l.client_certificates != ClientCertificates::Off && l.mode == Mode::Plain {
            p.push(
                at.key("client_certificates"),
                "a plain listener has no TLS, so it cannot ask for client certificates",
            );
        }
        if l.max_message_size.bytes() < 1024 {
            p.push(
                at.key("max_message_size"),
                "is too small to hold even a message header (at least 1KiB)",
            );
        }
        for (key, d) in [
            ("command_timeout", l.command_timeout),
            ("data_timeout", l.data_timeout),
            ("message_timeout", l.message_timeout),
            ("max_session_time", l.max_session_time),
        ] {
            if d.get() < std::time::Duration::from_secs(1) {
                p.push(at.key(key), "must be at least 1s");
            }
        }
        if l.max_header_size.bytes() < 1024 {
            p.push(at.key("max_header_size"), "must be at least 1KiB");
        }
        if l.greet_pause.get() > std::time::Duration::from_secs(30) {
            p.push(
                at.key("greet_pause"),
                "must be at most 30s: senders give up waiting for the greeting",
            );
        }
    }
    for (i, f) in relay.trusted_client_certificates.iter().enumerate() {
        if !crate::partner::is_fingerprint(f) {
            p.push(
                KeyPath::of("relay")
                    .key("trusted_client_certificates")
                    .index(i),
                format!("{f:?} is not a fingerprint: expected sha256: followed by 64 hex digits"),
            );
        }
    }
    for (i, d) in relay.local_domains.iter().enumerate() {
        if let Err(e) = parse_domain(d) {
            p.push(
                KeyPath::of("relay").key("local_domains").index(i),
                format!("{d:?} is not a domain name: {e}"),
            );
        }
    }
}
