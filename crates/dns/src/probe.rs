//! The DNSSEC probe: one question whose answer must validate, asked at start-up and by
//! `check-config`, so that an operator learns at once when DANE cannot work (Postfix's
//! `dnssec_probe`). The root's NS set (`ns:.`) is signed wherever DNSSEC works at all.

use std::fmt;

use hickory_resolver::proto::rr::RecordType;

use crate::config::{DnssecMode, ResolverConfig};

/// `[resolver] dnssec_probe`: `TYPE:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeQuery {
    pub rtype: RecordType,
    /// Absolute, with the trailing dot.
    pub name: String,
}

/// A `dnssec_probe` value that cannot be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?}: {reason} (expected TYPE:NAME such as \"ns:.\" or \"soa:example.org\", or \"\" for no probe)"
)]
pub struct ProbeQueryError {
    pub value: String,
    pub reason: &'static str,
}

impl ProbeQuery {
    /// `None` for the empty string (no probe).
    pub fn parse(s: &str) -> Result<Option<ProbeQuery>, ProbeQueryError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let err = |reason| ProbeQueryError {
            value: s.to_string(),
            reason,
        };
        let (t, name) = s.split_once(':').ok_or_else(|| err("no ':'"))?;
        let rtype = match t.to_ascii_lowercase().as_str() {
            "ns" => RecordType::NS,
            "soa" => RecordType::SOA,
            "a" => RecordType::A,
            "aaaa" => RecordType::AAAA,
            "mx" => RecordType::MX,
            "txt" => RecordType::TXT,
            "dnskey" => RecordType::DNSKEY,
            "tlsa" => RecordType::TLSA,
            _ => {
                return Err(err(
                    "unknown type (ns, soa, a, aaaa, mx, txt, dnskey, tlsa)",
                ));
            }
        };
        let name = name.trim();
        if name.is_empty()
            || name.len() > 253
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(err("not a domain name"));
        }
        let name = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        Ok(Some(ProbeQuery { rtype, name }))
    }
}

impl fmt::Display for ProbeQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.rtype)
    }
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// `dnssec = "off"`: nothing to probe; every answer is insecure.
    Off,
    /// `dnssec_probe = ""`: the operator chose not to probe.
    NotConfigured { mode: DnssecMode },
    /// The probe answer is secure: validation works.
    Secure {
        mode: DnssecMode,
        question: String,
        via: String,
    },
    /// An answer came, but not a secure one (or the AD bit is not trusted).
    Insecure {
        mode: DnssecMode,
        question: String,
        via: String,
        reason: String,
    },
    /// No usable answer: bogus, timeout, SERVFAIL.
    Failed {
        mode: DnssecMode,
        question: String,
        via: String,
        reason: String,
    },
}

impl ProbeResult {
    /// True when answers can be secure (the probe validated, or was not asked for).
    pub fn is_working(&self) -> bool {
        matches!(
            self,
            ProbeResult::Secure { .. } | ProbeResult::NotConfigured { .. }
        )
    }

    /// The loud message for the operator when DNSSEC does not work; `None` when it does
    /// (or is off by choice).
    pub fn warning(&self) -> Option<String> {
        let (mode, question, via, reason) = match self {
            ProbeResult::Insecure {
                mode,
                question,
                via,
                reason,
            }
            | ProbeResult::Failed {
                mode,
                question,
                via,
                reason,
            } => (mode, question, via, reason),
            _ => return None,
        };
        let fix = match mode {
            DnssecMode::Validate => {
                "make sure the nameservers pass DNSSEC records through (DO bit, RRSIG, DNSKEY, DS) \
                 and that [resolver] trust_anchor (if set) holds the right root key, or run a \
                 validating resolver (unbound) on loopback and set [resolver] dnssec = \"trust-ad\""
            }
            _ => {
                "run a validating resolver (unbound) on loopback and list it in [resolver] \
                 nameservers, or set [resolver] dnssec = \"validate\" so that Postern validates \
                 itself"
            }
        };
        Some(format!(
            "DNSSEC validation unavailable: probe {question} via {via} (dnssec = \"{}\"): \
             {reason}; DANE will treat every domain as insecure; fix: {fix}",
            mode.as_str()
        ))
    }

    /// Logs the result: a warning when DNSSEC does not work, one info line otherwise.
    pub fn log(&self) {
        match self.warning() {
            Some(w) => tracing::warn!("{w}"),
            None => tracing::info!("{}", self.summary_line()),
        }
    }

    /// One line for `check-config` and the start-up log.
    pub fn summary_line(&self) -> String {
        match self {
            ProbeResult::Off => "dnssec: off (every DNS answer counts as insecure: DANE is \
                                 inactive)"
                .to_string(),
            ProbeResult::NotConfigured { mode } => format!(
                "dnssec: {} (not probed: [resolver] dnssec_probe is empty)",
                mode.as_str()
            ),
            ProbeResult::Secure {
                mode,
                question,
                via,
            } => format!(
                "dnssec: {} via {via}: working (probe {question} is secure)",
                mode.as_str()
            ),
            other => format!("warning: {}", other.warning().unwrap_or_default()),
        }
    }
}

/// The DNSSEC part of `check-config`: build the resolver, ask the probe (bounded by the
/// configured timeout and attempts), and describe the result in one line (with a trailing
/// newline). Runs its own small Tokio runtime: call it from synchronous code only.
pub fn dnssec_summary(cfg: &ResolverConfig) -> String {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return format!("warning: cannot probe DNSSEC: {e}\n"),
    };
    let line = rt.block_on(async {
        match crate::Resolver::new(cfg) {
            Ok(r) => r.probe_dnssec().await.summary_line(),
            Err(e) => format!("warning: cannot probe DNSSEC: {e}"),
        }
    });
    format!("{line}\n")
}
