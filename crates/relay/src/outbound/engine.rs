//! The outbound TLS policy engine: the one place where the TLS requirement for one MX
//! host of one destination is decided. Delivery ([`super::agent`]) and
//! `postern policy explain` ([`crate::explain`]) both call [`decide`], so the explanation
//! is what delivery does.
//!
//! # Precedence (highest first)
//! 1. An explicit `[[outbound.policy]]` entry for the domain. If its level is `dane` or
//!    `dane-only`, DANE is applied under that entry's level; any other level is used as
//!    written and neither DANE nor MTA-STS is consulted.
//! 2. DANE, when the level in force is `dane` or `dane-only` (from the entry, or from
//!    `[outbound] tls`): secure usable TLSA records authenticate the host by TLSA.
//! 3. MTA-STS (RFC 8461; policies from `postern_sts` through [`StsLookup`]): only
//!    without an explicit entry and without a DANE decision. `enforce`: only MX hosts
//!    matching an `mx` pattern are tried (others are skipped, `4.7.5`), the certificate
//!    must chain to the `verify` trust anchors and carry the MX host name, never
//!    plaintext. `testing`: the level below applies; what enforce would have refused is
//!    logged and counted ([`StsCheck`]).
//! 4. `[outbound] tls`.
//!
//! # The DANE levels (Postfix semantics, RFC 7672)
//! - `dane`: secure usable TLSA → authenticate by TLSA, never plaintext; secure TLSA all
//!   unusable → `encrypt`; no TLSA, or an insecure MX or host → `may`; TLSA lookup bogus or
//!   failed, or a bogus MX or host → this host is skipped (`4.7.5` if none is left), never
//!   a downgrade.
//! - `dane-only`: as `dane`, but without secure usable TLSA the host is skipped (`4.7.5`).
//!
//! # Security
//! A TLSA lookup is made only for a host whose MX answer and address answer were both
//! DNSSEC-secure (RFC 7672 §2.2): otherwise an attacker could name a host of their own,
//! with TLSA records of their own. A TLSA mismatch defers that host; nothing ever falls
//! back from DANE to another mechanism or to plaintext. SNI is the TLSA base name.
//!
//! # Standards
//! RFC 7672 §2.2 (TLSA lookup conditions), §2.2.1 (usable records), §3 (authentication);
//! RFC 7671 §5 (usages); RFC 6698.

use std::fmt::Write as _;
use std::sync::Arc;

use postern_dns::{LookupError, Resolver, Security, Tlsa};
use postern_tls::client::Expect;
use postern_tls::dane::{DaneExpect, TlsaRecord, Unusable, usability};

use super::config::TlsLevel;
use super::policy::Policy;

/// Where the effective requirement for a host came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An `[[outbound.policy]]` entry at a level other than `dane`/`dane-only`.
    Explicit,
    /// DANE (usable TLSA records, or their absence under a DANE level).
    Dane,
    /// An MTA-STS policy in `enforce` mode.
    MtaSts,
    /// `[outbound] tls`.
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Explicit => "[[outbound.policy]]",
            Source::Dane => "DANE",
            Source::MtaSts => "MTA-STS",
            Source::Default => "[outbound] tls",
        }
    }
}

/// An MTA-STS policy (RFC 8461) for a recipient domain, as [`StsLookup`] supplies it
/// (`postern_sts` through [`super::mta_sts`]). The engine consults it below DANE and
/// above `[outbound] tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: StsMode,
    /// The `mx:` patterns (`mx.example.org`, `*.example.org`).
    pub mx: Vec<String>,
    /// `max_age:` in seconds (for the TLS-RPT `policy-string`).
    pub max_age: u64,
    /// For operators: where the policy came from and its age, e.g. `fetched from
    /// https://mta-sts.example.org/.well-known/mta-sts.txt (id 2024a), 3m ago, expires
    /// in 6d 23h`; `cached ...; HTTPS fetch failed: ...`.
    pub about: String,
}

impl StsPolicy {
    /// Whether MX host `host` matches one of the `mx` patterns (RFC 8461 §4.1).
    pub fn allows(&self, host: &str) -> bool {
        self.mx
            .iter()
            .any(|p| postern_sts::policy::mx_matches(p, host))
    }

    /// Whether the policy is in `enforce` mode (REQUIRETLS asks this, RFC 8689 §4.1).
    pub fn enforced(&self) -> bool {
        self.mode == StsMode::Enforce
    }
}

/// What an MTA-STS policy in `testing` mode would have said about a host; the agent logs
/// and counts the would-be failure after the session (RFC 8461 §5: report only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsCheck {
    /// The recipient domain whose policy this is.
    pub domain: String,
    /// Whether the MX host matches an `mx` pattern.
    pub mx_matches: bool,
    pub patterns: Vec<String>,
}

/// MTA-STS modes that matter for delivery (`none` is no policy at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsMode {
    /// Authenticate (chain + an `mx:` name) or defer.
    Enforce,
    /// Report only: delivery continues under the level below.
    Testing,
}

/// Where MTA-STS policies come from (`postern_sts`, plugged in by [`super::mta_sts`]).
pub trait StsLookup: Send + Sync + std::fmt::Debug {
    /// The policy for `domain`, if it has a usable one.
    fn policy<'a>(
        &'a self,
        domain: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<StsPolicy>> + Send + 'a>>;

    /// The cached, unexpired policy for `domain`, without asking DNS or HTTPS (for a
    /// message whose `TLS-Required: No` waives the policy anyway: the log names it).
    fn cached(&self, _domain: &str) -> Option<StsPolicy> {
        None
    }
}

/// What DANE found for one host (RFC 7672 §2.2), before the levels are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneStatus {
    /// The level in force is not `dane`/`dane-only`: nothing was looked up.
    NotWanted,
    /// `[resolver] dnssec = "off"`: no answer can be secure.
    ValidationOff,
    /// The MX or the address answer was insecure: no TLSA lookup (RFC 7672 §2.2).
    InsecureHost,
    /// The MX or the address answer was bogus.
    BogusHost,
    /// No TLSA records (or an insecure TLSA answer).
    NoTlsa,
    /// The TLSA answer failed DNSSEC validation.
    BogusTlsa,
    /// The TLSA lookup failed (SERVFAIL, timeout): the status cannot be known.
    LookupFailed(String),
    /// Secure TLSA records found at `_PORT._tcp.BASE`; each with why it is unusable, if
    /// it is. `base` is the TLSA base name: the CNAME-expanded MX host name when the
    /// expansion is secure and has records, else the MX host name (RFC 7672 §2.2.2).
    Records {
        base: String,
        records: Vec<(TlsaRecord, Option<Unusable>)>,
        /// The next-hop domain's secure CNAME expansion, if any: a further DANE-TA
        /// reference identifier (RFC 7672 §3.2.2).
        domain_alias: Option<String>,
    },
}

/// The requirement for one host, when it may be tried.
#[derive(Debug, Clone)]
pub struct HostTls {
    /// The effective level: `may`, `encrypt`, `dane` (authenticated by TLSA), or the
    /// explicit or default level as configured.
    pub level: TlsLevel,
    /// Never plaintext: a missing STARTTLS or a failed handshake defers the host.
    pub mandatory: bool,
    pub source: Source,
    pub expect: Expect,
    /// The name sent as SNI (for DANE: the TLSA base name).
    pub sni: String,
    /// The configured policy (trust anchors, client certificate, profile).
    pub policy: Arc<Policy>,
    /// For `policy explain` and the log: why this requirement.
    pub why: String,
    /// Under an MTA-STS policy in `testing` mode: what to check and report.
    pub sts_testing: Option<StsCheck>,
}

/// What to do with one host.
#[derive(Debug, Clone)]
pub enum HostDecision {
    Connect(HostTls),
    /// Skip this host; `reason` is the `4.7.5` deferral text, `metric` the outcome for
    /// the DANE or MTA-STS counter (`source` says which).
    Skip {
        reason: String,
        metric: &'static str,
        source: Source,
    },
}

/// The one precedence function: the TLS requirement for MX host `mx_host` of `nexthop`,
/// from the configured `policy` (explicit entry or default), what DANE found, and the
/// MTA-STS policy. See the module documentation for the order.
pub fn decide(
    policy: &Arc<Policy>,
    dane: &DaneStatus,
    sts: Option<&StsPolicy>,
    nexthop: &str,
    mx_host: &str,
    port: u16,
) -> HostDecision {
    let dane_level = matches!(policy.level, TlsLevel::Dane | TlsLevel::DaneOnly);
    let configured = if policy.explicit {
        Source::Explicit
    } else {
        Source::Default
    };
    let connect = |level: TlsLevel, mandatory: bool, source: Source, expect, why: String| {
        HostDecision::Connect(HostTls {
            level,
            mandatory,
            source,
            expect,
            sni: mx_host.to_string(),
            policy: policy.clone(),
            why,
            sts_testing: None,
        })
    };
    // 1. An explicit entry at a non-DANE level wins outright.
    if policy.explicit && !dane_level {
        return connect(
            policy.level,
            policy.level.mandatory(),
            Source::Explicit,
            policy.expect(nexthop, mx_host),
            format!("{} says {}", policy.source, policy.level.as_str()),
        );
    }
    // 2. DANE.
    if dane_level {
        let skip = |reason: String, metric| HostDecision::Skip {
            reason,
            metric,
            source: Source::Dane,
        };
        let only = policy.level == TlsLevel::DaneOnly;
        match dane {
            DaneStatus::BogusHost => {
                return skip(
                    format!(
                        "4.7.5 DNSSEC validation of the MX or address records of {mx_host} failed (bogus): host skipped, as DANE requires (RFC 7672 §2.2)"
                    ),
                    "bogus",
                );
            }
            DaneStatus::BogusTlsa => {
                return skip(
                    format!(
                        "4.7.5 TLSA lookup error for {mx_host}:{port}: the answer failed DNSSEC validation (bogus)"
                    ),
                    "bogus",
                );
            }
            DaneStatus::LookupFailed(e) => {
                return skip(
                    format!("4.7.5 TLSA lookup error for {mx_host}:{port}: {e}"),
                    "bogus",
                );
            }
            DaneStatus::Records {
                base,
                records,
                domain_alias,
            } => {
                let usable: Vec<TlsaRecord> = records
                    .iter()
                    .filter(|(_, u)| u.is_none())
                    .map(|(r, _)| r.clone())
                    .collect();
                let names = reference_names(nexthop, domain_alias.as_deref(), mx_host, base);
                if let Some(expect) = DaneExpect::new(&usable, &names) {
                    return HostDecision::Connect(HostTls {
                        level: TlsLevel::Dane,
                        mandatory: true,
                        source: Source::Dane,
                        expect: Expect::Dane(expect),
                        sni: base.clone(),
                        policy: policy.clone(),
                        sts_testing: None,
                        why: format!(
                            "{} DNSSEC-secure usable TLSA record(s) at _{port}._tcp.{base}: the certificate must match one (DANE-EE: key or certificate; DANE-TA: chain to it and carry {}); SNI {base}",
                            usable.len(),
                            names.join(" or ")
                        ),
                    });
                }
                if !only {
                    return connect(
                        TlsLevel::Encrypt,
                        true,
                        Source::Dane,
                        Expect::Anything,
                        format!(
                            "DNSSEC-secure TLSA records at _{port}._tcp.{mx_host}, none usable: TLS required (encrypt), certificate not checked"
                        ),
                    );
                }
            }
            DaneStatus::NotWanted
            | DaneStatus::ValidationOff
            | DaneStatus::InsecureHost
            | DaneStatus::NoTlsa => {}
        }
        if only {
            let why = match dane {
                DaneStatus::ValidationOff => {
                    "DNSSEC validation unavailable ([resolver] dnssec = \"off\")".to_string()
                }
                DaneStatus::InsecureHost => {
                    format!("the MX or address records of {mx_host} are not DNSSEC-secure")
                }
                DaneStatus::Records { base, .. } => {
                    format!("no usable TLSA record at _{port}._tcp.{base}")
                }
                _ => format!("no DNSSEC-secure TLSA records at _{port}._tcp.{mx_host}"),
            };
            return skip(
                format!(
                    "4.7.5 {why}: policy dane-only requires DANE ({})",
                    policy.source
                ),
                if matches!(dane, DaneStatus::Records { .. }) {
                    "unusable"
                } else {
                    "no-tlsa"
                },
            );
        }
    }
    // 3. MTA-STS, below DANE and any explicit entry.
    if !policy.explicit
        && let Some(sts) = sts
        && sts.mode == StsMode::Enforce
    {
        if !sts.allows(mx_host) {
            return HostDecision::Skip {
                reason: format!(
                    "4.7.5 MX host {mx_host} matches no mx pattern of the MTA-STS policy (enforce) of {nexthop} ({}): host skipped (RFC 8461 §4.1)",
                    sts.mx.join(", ")
                ),
                metric: "mx-mismatch",
                source: Source::MtaSts,
            };
        }
        let name = mx_host.trim_end_matches('.').to_ascii_lowercase();
        return connect(
            TlsLevel::Verify,
            true,
            Source::MtaSts,
            Expect::Names(vec![name.clone()]),
            format!(
                "MTA-STS policy (enforce) for {nexthop}, {}: {mx_host} matches {}; certificate must chain to {} and carry {name}, never plaintext",
                sts.about,
                sts.mx.join(", "),
                policy.roots_source
            ),
        );
    }
    let testing = if !policy.explicit
        && let Some(sts) = sts
        && sts.mode == StsMode::Testing
    {
        Some(StsCheck {
            domain: nexthop.to_string(),
            mx_matches: sts.allows(mx_host),
            patterns: sts.mx.clone(),
        })
    } else {
        None
    };
    let decision = decide_default(policy, dane, nexthop, mx_host, port, dane_level, configured);
    match (decision, testing) {
        (HostDecision::Connect(mut h), Some(t)) => {
            let _ = write!(
                h.why,
                "; MTA-STS policy (testing) for {nexthop}: {}",
                if t.mx_matches {
                    format!(
                        "{mx_host} matches {}; a certificate not verified for it is logged, not refused",
                        t.patterns.join(", ")
                    )
                } else {
                    format!(
                        "{mx_host} matches none of {}: logged, not refused",
                        t.patterns.join(", ")
                    )
                }
            );
            h.sts_testing = Some(t);
            HostDecision::Connect(h)
        }
        (d, _) => d,
    }
}

/// Step 4 of [`decide`]: the configured level; under `dane` without usable TLSA: `may`.
fn decide_default(
    policy: &Arc<Policy>,
    dane: &DaneStatus,
    nexthop: &str,
    mx_host: &str,
    port: u16,
    dane_level: bool,
    configured: Source,
) -> HostDecision {
    let connect = |level: TlsLevel, mandatory: bool, source: Source, expect, why: String| {
        HostDecision::Connect(HostTls {
            level,
            mandatory,
            source,
            expect,
            sni: mx_host.to_string(),
            policy: policy.clone(),
            why,
            sts_testing: None,
        })
    };
    if dane_level {
        let why = match dane {
            DaneStatus::ValidationOff => {
                "DNSSEC validation unavailable ([resolver] dnssec = \"off\")".to_string()
            }
            DaneStatus::InsecureHost => {
                format!("the MX or address records of {mx_host} are not DNSSEC-secure")
            }
            _ => format!("no DNSSEC-secure TLSA records at _{port}._tcp.{mx_host}"),
        };
        return connect(
            TlsLevel::May,
            false,
            configured,
            Expect::Anything,
            format!("{why}: level dane falls back to may (TLS if offered)"),
        );
    }
    connect(
        policy.level,
        policy.level.mandatory(),
        configured,
        policy.expect(nexthop, mx_host),
        format!("{} says {}", policy.source, policy.level.as_str()),
    )
}

/// DANE-TA reference identifiers (RFC 7672 §3.2.2): the next-hop domain and its secure
/// CNAME expansion, the MX host name and the TLSA base name (its secure CNAME
/// expansion), without duplicates.
fn reference_names(
    nexthop: &str,
    domain_alias: Option<&str>,
    mx_host: &str,
    base: &str,
) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for n in [Some(nexthop), domain_alias, Some(mx_host), Some(base)]
        .into_iter()
        .flatten()
    {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if !v.contains(&n) {
            v.push(n);
        }
    }
    v
}

/// What DANE finds for `mx_host` (port `port`), reached through answers whose weakest
/// DNSSEC status is `chain`. Only under a DANE level, and only for a secure chain, is
/// the TLSA record set looked up.
pub async fn dane_status(
    dns: &Resolver,
    level: TlsLevel,
    validating: bool,
    chain: Security,
    mx_host: &str,
    port: u16,
    domain_alias: Option<&str>,
) -> DaneStatus {
    if !matches!(level, TlsLevel::Dane | TlsLevel::DaneOnly) {
        return DaneStatus::NotWanted;
    }
    if !validating {
        return DaneStatus::ValidationOff;
    }
    // An address literal has no name to publish TLSA records under.
    if mx_host.parse::<std::net::IpAddr>().is_ok() {
        return DaneStatus::InsecureHost;
    }
    match chain {
        Security::Bogus => return DaneStatus::BogusHost,
        Security::Insecure => return DaneStatus::InsecureHost,
        Security::Secure => {}
    }
    // RFC 7672 §2.2.2: a secure CNAME expansion of the host is tried first as the TLSA
    // base name, then the name from the MX record.
    let mut bases = Vec::new();
    if let Ok(a) = dns.addresses(mx_host).await
        && a.security == Security::Secure
        && let Some(c) = a.canonical
        && !c.eq_ignore_ascii_case(mx_host)
    {
        bases.push(c);
    }
    bases.push(mx_host.trim_end_matches('.').to_ascii_lowercase());
    let mut status = DaneStatus::NoTlsa;
    for base in bases {
        status = match dns.tlsa(port, &base).await {
            Ok(a) => match a.security {
                Security::Secure => DaneStatus::Records {
                    base,
                    records: classify(&a.records),
                    domain_alias: domain_alias.map(str::to_string),
                },
                Security::Insecure => DaneStatus::NoTlsa,
                Security::Bogus => DaneStatus::BogusTlsa,
            },
            Err(LookupError::NoRecords | LookupError::NotFound) => DaneStatus::NoTlsa,
            Err(LookupError::Bogus(_)) => DaneStatus::BogusTlsa,
            Err(LookupError::Temporary(e)) => DaneStatus::LookupFailed(e),
        };
        if status != DaneStatus::NoTlsa {
            break;
        }
    }
    status
}

/// Each record with why it is unusable, if it is.
pub fn classify(records: &[Tlsa]) -> Vec<(TlsaRecord, Option<Unusable>)> {
    records
        .iter()
        .map(|t| {
            let r = TlsaRecord {
                usage: t.usage,
                selector: t.selector,
                matching: t.matching,
                data: t.data.clone(),
            };
            let u = usability(&r).err();
            (r, u)
        })
        .collect()
}

/// The DANE findings for `policy explain`: one line per record with its usability.
pub fn describe_dane(dane: &DaneStatus, out: &mut String) {
    let line = match dane {
        DaneStatus::NotWanted => return,
        DaneStatus::ValidationOff => {
            "TLSA: not looked up: DNSSEC validation unavailable ([resolver] dnssec = \"off\")"
                .to_string()
        }
        DaneStatus::InsecureHost => {
            "TLSA: not looked up: the MX or address records are not DNSSEC-secure (RFC 7672 §2.2)"
                .into()
        }
        DaneStatus::BogusHost => {
            "TLSA: not looked up: the MX or address records failed DNSSEC validation (bogus)".into()
        }
        DaneStatus::NoTlsa => "TLSA: none (or not DNSSEC-secure)".into(),
        DaneStatus::BogusTlsa => "TLSA: the answer failed DNSSEC validation (bogus)".into(),
        DaneStatus::LookupFailed(e) => format!("TLSA: lookup error: {e}"),
        DaneStatus::Records {
            base,
            records,
            domain_alias,
        } => {
            let _ = writeln!(out, "        TLSA (base name {base}, DNSSEC-secure):");
            if let Some(alias) = domain_alias {
                let _ = writeln!(
                    out,
                    "          (the destination is a secure alias of {alias}: DANE-TA accepts that name too)"
                );
            }
            for (r, u) in records {
                let _ = match u {
                    None => writeln!(out, "          {r}  usable ({})", r.usage_name()),
                    Some(why) => writeln!(out, "          {r}  unusable: {why}"),
                };
            }
            return;
        }
    };
    let _ = writeln!(out, "        {line}");
}

#[cfg(test)]
mod tests;
