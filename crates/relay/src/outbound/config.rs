//! The `[outbound]` and `[[outbound.policy]]` sections. (`[resolver]` lives in `postern-dns`;
//! the re-exports below keep old paths working until the lead removes them, #10.)

use std::collections::HashMap;
use std::path::PathBuf;

use postern_config::{Duration, KeyPath, Problems};
use postern_smtp::address::parse_domain;
use postern_tls::{CertificateConfig, Profile};
use serde::{Deserialize, Serialize};

/// TLS policy levels, in Postfix's names, ordered by what they guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsLevel {
    /// Never use TLS.
    None,
    /// TLS when offered, any certificate; plaintext if TLS is not offered or fails.
    May,
    /// TLS required; the certificate is not checked.
    Encrypt,
    /// TLS required; the certificate or its public key must match a pinned SHA-256.
    Fingerprint,
    /// Opportunistic DANE (RFC 7672): authenticate by DNSSEC-secure usable TLSA records
    /// where the MX host has them; `encrypt` where its secure TLSA records are all
    /// unusable; `may` where it has none or its DNS is not secure. See
    /// [`super::engine`].
    Dane,
    /// As `dane`, but a host without DNSSEC-secure usable TLSA records is not used (`4.7.5`).
    DaneOnly,
    /// TLS required; chain to a trust anchor and name = the MX host name.
    Verify,
    /// TLS required; chain to a trust anchor and name = the next-hop domain.
    Secure,
}

impl TlsLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsLevel::None => "none",
            TlsLevel::May => "may",
            TlsLevel::Encrypt => "encrypt",
            TlsLevel::Fingerprint => "fingerprint",
            TlsLevel::Dane => "dane",
            TlsLevel::DaneOnly => "dane-only",
            TlsLevel::Verify => "verify",
            TlsLevel::Secure => "secure",
        }
    }
    /// Whether a delivery must fail rather than go without TLS, whatever DNS says.
    /// `dane` is not: without secure TLSA records it is `may` ([`super::engine::decide`]
    /// makes a host with usable TLSA records mandatory).
    pub fn mandatory(self) -> bool {
        !matches!(self, TlsLevel::None | TlsLevel::May | TlsLevel::Dane)
    }

    /// `dane` or `dane-only`.
    pub fn is_dane(self) -> bool {
        matches!(self, TlsLevel::Dane | TlsLevel::DaneOnly)
    }
}

/// `[outbound]`: how Postern delivers to other SMTP servers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// `false`: no SMTP delivery at all. Mail goes only where a `maildir:` route sends
    /// it; other domains have no route (refused at RCPT, reports wait and expire). The
    /// built-in trial configuration uses this, so nothing leaves the machine.
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Default TLS level for destinations without a policy entry.
    #[serde(default = "d_tls")]
    pub tls: TlsLevel,
    /// Port for hosts found by MX lookup. Keep 25 on the internet; other values are for
    /// tests and special networks.
    #[serde(default = "d_port")]
    pub port: u16,
    /// Name in our EHLO. Default: `server.hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helo_name: Option<String>,
    /// Our client certificate, presented where a policy asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<CertificateConfig>,
    /// Trust anchors (PEM) for `verify`/`secure`. Default: the system store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout: Duration,
    /// Wait for the 220 greeting (RFC 5321 §4.5.3.2.1: 5 minutes).
    #[serde(default = "d_five_min")]
    pub greeting_timeout: Duration,
    /// Wait for replies to EHLO, STARTTLS, MAIL, RCPT, DATA (RFC 5321: 5 minutes).
    #[serde(default = "d_five_min")]
    pub command_timeout: Duration,
    /// Wait for the reply after the message content (RFC 5321 §4.5.3.2.6: 10 minutes).
    #[serde(default = "d_data_timeout")]
    pub data_timeout: Duration,
    /// Connections at once to one destination.
    #[serde(default = "d_per_destination")]
    pub max_connections_per_destination: usize,
    /// How long an idle connection is kept for the next message to the same destination.
    #[serde(default = "d_idle")]
    pub connection_reuse_time: Duration,
    /// Deadline for resolving a destination: the MX look-up and the addresses of all its
    /// hosts together.
    #[serde(default = "d_resolve_timeout")]
    pub resolve_timeout: Duration,
    /// Deadline for one whole delivery attempt: resolution, every connection tried and
    /// the transaction.
    #[serde(default = "d_attempt_timeout")]
    pub attempt_timeout: Duration,
    /// MX host names used per attempt, the most preferred first (Postfix's
    /// `smtp_mx_address_limit` is the model).
    #[serde(default = "d_max_mx_hosts")]
    pub max_mx_hosts: usize,
    /// RFC 8689 §5: honour a message's `TLS-Required: No` header field, so that DANE and
    /// MTA-STS failures fall back to opportunistic TLS for that message (local
    /// `[[outbound.policy]]` entries always hold). `false`: ignore the field.
    #[serde(default = "d_true")]
    pub honour_tls_required_no: bool,
    /// MTA-STS (RFC 8461): look up recipient domains' policies (`_mta-sts` TXT, then
    /// HTTPS), cache them under `state_dir/mta-sts`, and apply them below DANE and any
    /// `[[outbound.policy]]` entry (docs/mta-sts.md).
    #[serde(default = "d_true")]
    pub mta_sts: bool,
    /// Port of the MTA-STS policy fetch. For tests; leave at 443.
    #[serde(default = "d_mta_sts_port")]
    pub mta_sts_port: u16,
    /// Per-destination TLS policies.
    #[serde(default)]
    pub policy: Vec<PolicyConfig>,
}

fn d_true() -> bool {
    true
}
fn d_mta_sts_port() -> u16 {
    443
}
fn d_tls() -> TlsLevel {
    TlsLevel::May
}
fn d_port() -> u16 {
    25
}
fn d_connect_timeout() -> Duration {
    Duration::secs(30)
}
fn d_five_min() -> Duration {
    Duration::secs(300)
}
fn d_data_timeout() -> Duration {
    Duration::secs(600)
}
fn d_per_destination() -> usize {
    20
}
fn d_idle() -> Duration {
    Duration::secs(10)
}
fn d_resolve_timeout() -> Duration {
    Duration::secs(30)
}
fn d_attempt_timeout() -> Duration {
    Duration::secs(20 * 60)
}
fn d_max_mx_hosts() -> usize {
    5
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            enabled: true,
            tls: d_tls(),
            port: d_port(),
            helo_name: None,
            client_certificate: None,
            ca: None,
            connect_timeout: d_connect_timeout(),
            greeting_timeout: d_five_min(),
            command_timeout: d_five_min(),
            data_timeout: d_data_timeout(),
            max_connections_per_destination: d_per_destination(),
            connection_reuse_time: d_idle(),
            resolve_timeout: d_resolve_timeout(),
            attempt_timeout: d_attempt_timeout(),
            max_mx_hosts: d_max_mx_hosts(),
            honour_tls_required_no: true,
            mta_sts: true,
            mta_sts_port: d_mta_sts_port(),
            policy: Vec::new(),
        }
    }
}

/// Which client certificate a policy presents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ClientCertChoice {
    /// `true`: the `[outbound] client_certificate`; `false`: none.
    Default(bool),
    /// A certificate for this policy only.
    Own(CertificateConfig),
}

/// One `[[outbound.policy]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `example.org` (that domain) or `.example.org` (its subdomains).
    pub domain: String,
    pub tls: TlsLevel,
    /// Names the certificate must carry: `nexthop`, `dot-nexthop`, `hostname` (verify
    /// only), or literal names (`.domain` for any subdomain).
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_names: Vec<String>,
    /// Trust anchors for this destination (a partner's CA), instead of `[outbound] ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// `sha256:HEX` of the certificate or of its public key (level `fingerprint`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// Warnings (not errors) about DANE levels that cannot work as configured: with
/// `[resolver] dnssec = "off"` no answer is ever DNSSEC-secure, so `dane` is plain `may`
/// and `dane-only` defers every message with `4.7.5`. `check-config` prints these and the
/// daemon logs them at start.
pub fn dane_warnings(o: &OutboundConfig, dnssec_off: bool) -> Vec<String> {
    if !dnssec_off {
        return Vec::new();
    }
    let mut levels: Vec<(String, TlsLevel)> = vec![("[outbound] tls".to_string(), o.tls)];
    for (i, pol) in o.policy.iter().enumerate() {
        levels.push((format!("outbound.policy[{i}] ({})", pol.domain), pol.tls));
    }
    let mut out = Vec::new();
    for (where_, level) in levels {
        match level {
            TlsLevel::DaneOnly => out.push(format!(
                "{where_} is \"dane-only\" but [resolver] dnssec = \"off\": no DNS answer can be DNSSEC-secure, so every delivery under it defers with 4.7.5 (DNSSEC validation unavailable); set [resolver] dnssec = \"trust-ad\" (with a validating resolver on loopback) or \"validate\""
            )),
            TlsLevel::Dane => out.push(format!(
                "{where_} is \"dane\" but [resolver] dnssec = \"off\": DANE never applies, so it behaves as \"may\" (opportunistic TLS); set [resolver] dnssec = \"trust-ad\" or \"validate\""
            )),
            _ => {}
        }
    }
    out
}

/// Check `[outbound]` and its policies (files are checked when the policies are loaded).
pub fn validate(o: &OutboundConfig, p: &mut Problems) {
    let at = KeyPath::of("outbound");
    if o.tls == TlsLevel::Fingerprint {
        p.push(at.key("tls"), "\"fingerprint\" needs pins, which only [[outbound.policy]] entries have: it cannot be the default level");
    }
    if o.port == 0 {
        p.push(at.key("port"), "must be a TCP port (1-65535)");
    }
    if let Some(h) = &o.helo_name
        && parse_domain(h).is_err()
    {
        p.push(at.key("helo_name"), format!("{h:?} is not a host name"));
    }
    if o.max_connections_per_destination == 0 {
        p.push(
            at.key("max_connections_per_destination"),
            "must be at least 1",
        );
    }
    check_deadlines(o, &at, p);
    let mut seen = HashMap::new();
    for (i, pol) in o.policy.iter().enumerate() {
        let at = KeyPath::of("outbound").key("policy").index(i);
        let d = pol.domain.to_ascii_lowercase();
        if parse_domain(d.strip_prefix('.').unwrap_or(&d)).is_err() {
            p.push(
                at.key("domain"),
                format!("{:?} is not a domain or \".domain\"", pol.domain),
            );
        }
        if let Some(first) = seen.insert(d, i) {
            p.push(
                at.key("domain"),
                format!(
                    "{:?} already has a policy: outbound.policy[{first}]",
                    pol.domain
                ),
            );
        }
        if pol.tls == TlsLevel::Fingerprint && pol.fingerprints.is_empty() {
            p.push(
                at.key("fingerprints"),
                "tls = \"fingerprint\" needs at least one \"sha256:HEX\" fingerprint",
            );
        }
        if pol.tls != TlsLevel::Fingerprint && !pol.fingerprints.is_empty() {
            p.push(
                at.key("fingerprints"),
                format!(
                    "fingerprints are only used with tls = \"fingerprint\", not {:?}",
                    pol.tls.as_str()
                ),
            );
        }
        for (j, f) in pol.fingerprints.iter().enumerate() {
            let hex = f.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                p.push(
                    at.key("fingerprints").index(j),
                    format!("{f:?} is not \"sha256:\" followed by 64 hex digits"),
                );
            }
        }
        for (j, m) in pol.match_names.iter().enumerate() {
            let ok = match m.as_str() {
                "nexthop" | "dot-nexthop" => {
                    pol.tls == TlsLevel::Secure || pol.tls == TlsLevel::Verify
                }
                "hostname" => pol.tls == TlsLevel::Verify,
                name => parse_domain(name.strip_prefix('.').unwrap_or(name)).is_ok(),
            };
            if !ok {
                p.push(
                    at.key("match").index(j),
                    format!(
                        "{m:?} is not usable here: write \"nexthop\", \"dot-nexthop\", a host name or \".domain\" (\"hostname\" only with tls = \"verify\": under \"secure\" the MX name from DNS is not trusted)"
                    ),
                );
            }
        }
        if !pol.match_names.is_empty() && !matches!(pol.tls, TlsLevel::Verify | TlsLevel::Secure) {
            p.push(
                at.key("match"),
                "match names are only used with tls = \"verify\" or \"secure\"",
            );
        }
        if matches!(
            pol.client_certificate,
            Some(ClientCertChoice::Default(true))
        ) && o.client_certificate.is_none()
        {
            p.push(
                at.key("client_certificate"),
                "true means the [outbound] client_certificate, but none is configured",
            );
        }
    }
}

/// `resolve_timeout`, `attempt_timeout` and `max_mx_hosts`.
fn check_deadlines(o: &OutboundConfig, at: &KeyPath, p: &mut Problems) {
    let second = std::time::Duration::from_secs(1);
    if o.resolve_timeout.get() < second {
        p.push(at.key("resolve_timeout"), "must be at least 1s");
    }
    if o.attempt_timeout.get() < o.resolve_timeout.get().max(second) {
        p.push(
            at.key("attempt_timeout"),
            format!(
                "must be at least 1s and at least resolve_timeout ({}): the attempt includes the resolution",
                o.resolve_timeout
            ),
        );
    }
    if o.mta_sts_port == 0 {
        p.push(
            at.key("mta_sts_port"),
            "must be a port number (1 to 65535); leave at 443",
        );
    }
    if !(1..=MAX_MX_HOSTS).contains(&o.max_mx_hosts) {
        p.push(
            at.key("max_mx_hosts"),
            format!("must be 1 to {MAX_MX_HOSTS}"),
        );
    }
}

/// Warn about outbound client certificates (`[outbound]` and per-policy) close to
/// expiry, as for served ones.
pub fn watch_client_certificates(o: &OutboundConfig, store: &postern_tls::TlsStore) {
    let mut files: Vec<&std::path::Path> = o
        .client_certificate
        .iter()
        .map(|c| c.chain.as_path())
        .collect();
    for p in &o.policy {
        if let Some(ClientCertChoice::Own(c)) = &p.client_certificate {
            files.push(&c.chain);
        }
    }
    for f in files {
        let info = postern_tls::read_chain(f).ok().and_then(|c| {
            c.first()
                .and_then(|c| postern_tls::x509::CertInfo::parse(c).ok())
        });
        if let Some(info) = info {
            store.watch_expiry(
                format!("{} (outbound client certificate)", f.display()),
                info,
            );
        }
    }
}

/// The largest `max_mx_hosts`: each host name costs DNS look-ups at every attempt.
pub const MAX_MX_HOSTS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_and_the_mx_cap_are_checked() {
        let mut o = OutboundConfig::default();
        let mut p = Problems::new();
        validate(&o, &mut p);
        assert!(p.is_empty(), "{p:?}");
        o.resolve_timeout = Duration::secs(60);
        o.attempt_timeout = Duration::secs(30);
        o.max_mx_hosts = 0;
        let mut p = Problems::new();
        validate(&o, &mut p);
        let text = format!("{p:?}");
        assert!(text.contains("attempt_timeout"), "{text}");
        assert!(text.contains("max_mx_hosts"), "{text}");
    }
}
