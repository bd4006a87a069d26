//! The `[reports]` section.

use postern_config::{Duration, KeyPath, Problems};
use serde::{Deserialize, Serialize};

/// `[reports]`: the report store, TLS-RPT and DMARC aggregate reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// Send daily TLS-RPT reports (RFC 8460) to domains that ask for them.
    #[serde(default)]
    pub tls_rpt: bool,
    /// Send daily DMARC aggregate reports to domains that ask for them.
    #[serde(default)]
    pub dmarc: bool,
    /// `organization-name` / `org_name` of the reports we send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// `contact-info` / `extra_contact_info`: an address or URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The From address of report mail; its domain is the submitter, and it is signed
    /// with the `[[auth.dkim_sign]]` key for that domain. Default `noreply-reports@HOSTNAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Hour of the UTC day (0-23) at which the previous day's reports go out.
    #[serde(default = "default_send_hour")]
    pub send_hour: u8,
    /// Up to this much random delay after `send_hour`.
    #[serde(default = "default_jitter")]
    pub jitter: Duration,
    /// Bound of the report store under `STATE_DIR/reports/`; the oldest days go first.
    #[serde(default = "default_max_store_mb")]
    pub max_store_mb: u64,
    /// Most reports sent per UTC day, all destinations together.
    #[serde(default = "default_max_per_day")]
    pub max_reports_per_day: u32,
    /// Most reports sent to one destination address per UTC day.
    #[serde(default = "default_max_per_destination")]
    pub max_reports_per_destination: u32,
    /// Report destinations (`rua` addresses or their domains) allowed; empty: all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Report destinations (addresses or domains) never sent to.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Local addresses whose mail is parsed as incoming reports (TLS-RPT, DMARC).
    #[serde(default)]
    pub inbound_addresses: Vec<String>,
}

fn default_send_hour() -> u8 {
    1
}
fn default_jitter() -> Duration {
    Duration::secs(1800)
}
fn default_max_store_mb() -> u64 {
    256
}
fn default_max_per_day() -> u32 {
    1000
}
fn default_max_per_destination() -> u32 {
    5
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            tls_rpt: false,
            dmarc: false,
            organization: None,
            contact: None,
            from: None,
            send_hour: default_send_hour(),
            jitter: default_jitter(),
            max_store_mb: default_max_store_mb(),
            max_reports_per_day: default_max_per_day(),
            max_reports_per_destination: default_max_per_destination(),
            allow: Vec::new(),
            deny: Vec::new(),
            inbound_addresses: Vec::new(),
        }
    }
}

impl ReportsConfig {
    /// Check the values; problems go to `p` under `at`.
    pub fn validate(&self, at: &KeyPath, p: &mut Problems) {
        if self.send_hour > 23 {
            p.push(
                at.key("send_hour"),
                format!("{} is not an hour of the day (0-23)", self.send_hour),
            );
        }
        if self.max_store_mb == 0 {
            p.push(at.key("max_store_mb"), "must be at least 1".to_string());
        }
        let addr = |k: &str, v: &str| {
            let ok = v
                .rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
            (!ok).then(|| (k.to_string(), format!("{v:?} is not a mail address")))
        };
        let mut bad: Vec<(String, String)> = Vec::new();
        if let Some(f) = &self.from {
            bad.extend(addr("from", f));
        }
        for a in &self.inbound_addresses {
            bad.extend(addr("inbound_addresses", a));
        }
        for (k, m) in bad {
            p.push(at.key(&k), m);
        }
    }

    /// The From address of report mail.
    pub fn from_address(&self, hostname: &str) -> String {
        self.from
            .clone()
            .unwrap_or_else(|| format!("noreply-reports@{hostname}"))
    }

    /// Who we are in reports: `organization` (else the host name), the From address,
    /// `contact` (else the From address) and the From address's domain.
    pub fn submitter(&self, hostname: &str) -> crate::tlsrpt::Submitter {
        let from = self.from_address(hostname);
        crate::tlsrpt::Submitter {
            organization: self
                .organization
                .clone()
                .unwrap_or_else(|| hostname.to_string()),
            contact: self.contact.clone().unwrap_or_else(|| from.clone()),
            domain: from
                .rsplit_once('@')
                .map_or(hostname.to_string(), |(_, d)| d.to_ascii_lowercase()),
            from,
        }
    }

    /// The store's bound in bytes.
    pub fn max_store_bytes(&self) -> u64 {
        self.max_store_mb.saturating_mul(1 << 20)
    }

    /// Whether reports may go to `address` (allow and deny lists, by address or domain).
    pub fn destination_allowed(&self, address: &str) -> bool {
        let a = address.to_ascii_lowercase();
        let domain = a.rsplit_once('@').map_or(a.as_str(), |(_, d)| d);
        let hit = |list: &[String]| {
            list.iter().any(|e| {
                let e = e.to_ascii_lowercase();
                e == a
                    || e == domain
                    || domain.ends_with(&format!(".{}", e.trim_start_matches('.')))
            })
        };
        !hit(&self.deny) && (self.allow.is_empty() || hit(&self.allow))
    }
}
