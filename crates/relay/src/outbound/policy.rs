//! The TLS policy table: which level applies to a destination, and what it checks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use postern_config::{KeyPath, Problems};
use postern_tls::client::Expect;
use postern_tls::{LoadedCert, Profile};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;

use super::config::{ClientCertChoice, OutboundConfig, PolicyConfig, TlsLevel};

/// A policy with its files loaded.
#[derive(Debug)]
pub struct Policy {
    /// Where it came from, for `policy explain` and logs.
    pub source: String,
    /// From an `[[outbound.policy]]` entry (`false`: the `[outbound] tls` default).
    pub explicit: bool,
    pub level: TlsLevel,
    pub match_names: Vec<String>,
    pub roots: Arc<RootCertStore>,
    pub roots_source: String,
    pub fingerprints: Vec<String>,
    pub client_cert: Option<LoadedCert>,
    pub client_cert_source: Option<String>,
    pub profile: Profile,
}

impl Policy {
    /// What the certificate must satisfy when connecting to `mx_host` for `nexthop`.
    /// Under `dane`/`dane-only` the requirement depends on DNS and is decided per host by
    /// [`super::engine::decide`]; this is only the no-TLSA starting point (anything).
    pub fn expect(&self, nexthop: &str, mx_host: &str) -> Expect {
        match self.level {
            TlsLevel::None
            | TlsLevel::May
            | TlsLevel::Encrypt
            | TlsLevel::Dane
            | TlsLevel::DaneOnly => Expect::Anything,
            TlsLevel::Fingerprint => Expect::Fingerprints(self.fingerprints.clone()),
            TlsLevel::Verify | TlsLevel::Secure => {
                let defaults: &[&str] = if self.level == TlsLevel::Verify {
                    &["hostname"]
                } else {
                    &["nexthop", "dot-nexthop"]
                };
                let rules: Vec<String> = if self.match_names.is_empty() {
                    defaults.iter().map(|s| s.to_string()).collect()
                } else {
                    self.match_names.clone()
                };
                Expect::Names(
                    rules
                        .iter()
                        .map(|r| match r.as_str() {
                            "nexthop" => nexthop.to_ascii_lowercase(),
                            "dot-nexthop" => format!(".{}", nexthop.to_ascii_lowercase()),
                            "hostname" => mx_host.to_ascii_lowercase(),
                            name => name.to_ascii_lowercase(),
                        })
                        .collect(),
                )
            }
        }
    }

    /// A description of what this policy checks, for operators.
    pub fn describe(&self, nexthop: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "policy:     {}", self.source);
        let _ = writeln!(s, "tls level:  {}", self.level.as_str());
        let what = match self.level {
            TlsLevel::None => "no TLS: mail is sent in plaintext".to_string(),
            TlsLevel::May => "TLS if the server offers STARTTLS, any certificate accepted; plaintext if TLS is not offered or the handshake fails".into(),
            TlsLevel::Encrypt => "TLS required (never plaintext); the certificate is not checked, handshake signatures are".into(),
            TlsLevel::Fingerprint => format!("TLS required; certificate or public key SHA-256 must be one of: {}", self.fingerprints.join(", ")),
            TlsLevel::Dane => "DANE per MX host: DNSSEC-secure usable TLSA records -> the certificate must match one (never plaintext); secure but none usable -> encrypt; no secure TLSA -> may; TLSA lookup failed or bogus -> host skipped (4.7.5)".into(),
            TlsLevel::DaneOnly => "DANE required per MX host: DNSSEC-secure usable TLSA records -> the certificate must match one; otherwise the host is skipped (4.7.5), never plaintext".into(),
            _ => {
                let names = match self.expect(nexthop, "<MX host name>") {
                    Expect::Names(n) => n.join(", "),
                    _ => String::new(),
                };
                format!("TLS required; certificate must chain to {} and carry one of these names: {names}", self.roots_source)
            }
        };
        let _ = writeln!(s, "checks:     {what}");
        let _ = writeln!(
            s,
            "client certificate: {}",
            self.client_cert_source
                .as_deref()
                .unwrap_or("none presented")
        );
        let _ = writeln!(
            s,
            "profile:    {}",
            format!("{:?}", self.profile).to_lowercase()
        );
        s
    }
}

/// All policies: exact domains, `.parent` entries, and the default.
#[derive(Debug)]
pub struct Policies {
    exact: HashMap<String, Arc<Policy>>,
    parents: HashMap<String, Arc<Policy>>,
    default: Arc<Policy>,
}

impl Policies {
    /// Load every policy's files. Problems are reported against the config keys.
    pub fn load(o: &OutboundConfig, provider: &CryptoProvider, p: &mut Problems) -> Policies {
        let at = KeyPath::of("outbound");
        // The system store is read only when some level needs it (verify/secure without
        // their own CA); it is large, and under may/encrypt an empty store just means
        // peers are logged as Untrusted, as Postfix does without a CAfile.
        let verifying = |l: TlsLevel| matches!(l, TlsLevel::Verify | TlsLevel::Secure);
        // MTA-STS (on by default) verifies policy hosts and, under `enforce`, MX hosts.
        let needs_default = o.ca.is_some()
            || (o.mta_sts && o.enabled)
            || verifying(o.tls)
            || o.policy
                .iter()
                .any(|pc| pc.ca.is_none() && verifying(pc.tls));
        let default_roots = if needs_default {
            load_roots(o.ca.as_deref(), &at.key("ca"), p)
        } else {
            Arc::new(RootCertStore::empty())
        };
        let default_client = o.client_certificate.as_ref().and_then(|c| {
            LoadedCert::load(&c.chain, &c.key, provider)
                .map_err(|e| p.push(at.key("client_certificate"), e.to_string()))
                .ok()
        });
        let roots_source = |ca: &Option<std::path::PathBuf>| match ca {
            Some(p) => format!("the CA certificates in {}", p.display()),
            None => "the system trust store".to_string(),
        };
        let default = Arc::new(Policy {
            source: format!(
                "[outbound] tls = \"{}\" (no [[outbound.policy]] entry matches)",
                o.tls.as_str()
            ),
            explicit: false,
            level: o.tls,
            match_names: Vec::new(),
            roots: default_roots.clone(),
            roots_source: roots_source(&o.ca),
            fingerprints: Vec::new(),
            client_cert: None,
            client_cert_source: None,
            profile: Profile::Default,
        });
        let mut out = Policies {
            exact: HashMap::new(),
            parents: HashMap::new(),
            default,
        };
        for (i, pc) in o.policy.iter().enumerate() {
            let at = at.key("policy").index(i);
            let policy = Arc::new(load_one(
                pc,
                o,
                &at,
                &default_roots,
                default_client.as_ref(),
                provider,
                p,
                roots_source(&pc.ca.clone().or(o.ca.clone())),
                i,
            ));
            let d = postern_config::comparable(&pc.domain);
            match d.strip_prefix('.') {
                Some(parent) => out.parents.insert(parent.to_string(), policy),
                None => out.exact.insert(d, policy),
            };
        }
        out
    }

    /// The `[outbound] tls` default: its trust anchors are `verify`'s (`[outbound] ca` or
    /// the system store), which MTA-STS uses too.
    pub fn default_policy(&self) -> &Arc<Policy> {
        &self.default
    }

    /// The policy for a recipient domain: exact entry, then `.parent` entries from the
    /// nearest parent outwards, then the default.
    pub fn lookup(&self, domain: &str) -> &Arc<Policy> {
        // UTS #46: every spelling of a domain finds its policy (#11).
        let domain = postern_config::comparable(domain);
        if let Some(p) = self.exact.get(&domain) {
            return p;
        }
        let mut rest = domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(p) = self.parents.get(parent) {
                return p;
            }
            rest = parent;
        }
        &self.default
    }
}

#[allow(clippy::too_many_arguments)]
fn load_one(
    pc: &PolicyConfig,
    o: &OutboundConfig,
    at: &KeyPath,
    default_roots: &Arc<RootCertStore>,
    default_client: Option<&LoadedCert>,
    provider: &CryptoProvider,
    p: &mut Problems,
    roots_source: String,
    index: usize,
) -> Policy {
    let roots = match &pc.ca {
        Some(_) => load_roots(pc.ca.as_deref(), &at.key("ca"), p),
        None => default_roots.clone(),
    };
    let (client_cert, client_cert_source) = match &pc.client_certificate {
        None | Some(ClientCertChoice::Default(false)) => (None, None),
        Some(ClientCertChoice::Default(true)) => (
            default_client.cloned(),
            o.client_certificate
                .as_ref()
                .map(|c| format!("{} ([outbound] client_certificate)", c.chain.display())),
        ),
        Some(ClientCertChoice::Own(c)) => match LoadedCert::load(&c.chain, &c.key, provider) {
            Ok(l) => (Some(l), Some(c.chain.display().to_string())),
            Err(e) => {
                p.push(at.key("client_certificate"), e.to_string());
                (None, None)
            }
        },
    };
    Policy {
        source: format!("[[outbound.policy]] #{index} domain = \"{}\"", pc.domain),
        explicit: true,
        level: pc.tls,
        match_names: pc.match_names.clone(),
        roots,
        roots_source,
        fingerprints: pc
            .fingerprints
            .iter()
            .map(|f| f.to_ascii_lowercase())
            .collect(),
        client_cert,
        client_cert_source,
        profile: pc.profile.unwrap_or_default(),
    }
}

fn load_roots(
    path: Option<&std::path::Path>,
    at: &KeyPath,
    p: &mut Problems,
) -> Arc<RootCertStore> {
    match postern_tls::client::load_roots(path) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            p.push(at.clone(), e.to_string());
            Arc::new(RootCertStore::empty())
        }
    }
}
