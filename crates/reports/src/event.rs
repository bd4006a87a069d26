//! The records of the report store: one per outbound TLS session, per accepted inbound
//! message (its TLS facts), and per inbound DMARC evaluation.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One record; `t` is Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// An outbound TLS session's outcome.
    Outbound(Outbound),
    /// An accepted inbound message: its client and TLS facts.
    Inbound(Inbound),
    /// An inbound DMARC evaluation.
    Dmarc(Dmarc),
}

impl Event {
    pub fn time(&self) -> u64 {
        match self {
            Event::Outbound(o) => o.t,
            Event::Inbound(i) => i.t,
            Event::Dmarc(d) => d.t,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    pub t: u64,
    /// `sts`, `tlsa`, `no-policy-found`.
    pub policy_type: String,
    pub policy_domain: String,
    pub recipient_domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_strings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx_patterns: Vec<String>,
    pub mx_host: String,
    pub ip: IpAddr,
    /// Our address on the connection (RFC 8460 `sending-mta-ip`); absent when none was
    /// made, and in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_ip: Option<IpAddr>,
    /// RFC 8460 result type of a failure; absent for a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub verified: bool,
    /// The session carried our own report mail: never counted in reports.
    #[serde(default, skip_serializing_if = "is_false")]
    pub own_report: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    pub t: u64,
    pub ip: IpAddr,
    pub helo: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dmarc {
    pub t: u64,
    pub ip: IpAddr,
    pub header_from: String,
    pub policy: String,
    pub p: String,
    pub sp: String,
    pub adkim: String,
    pub aspf: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub testing: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rua: Vec<String>,
    pub disposition: String,
    pub result: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dkim_aligned: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub spf_aligned: bool,
    pub spf_domain: String,
    pub spf_result: String,
    /// (domain, selector, result)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dkim: Vec<(String, String, String)>,
}
