//! Inbound checks: SPF at MAIL FROM, DKIM and DMARC at the end of the message, and the
//! policy decision that follows from them.

use std::net::IpAddr;
use std::time::Duration;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, DmarcResult,
    MessageAuthenticator, ReceivedSpf, SpfOutput, SpfResult,
};
use postern_smtp::Reply;

use crate::config::{AuthConfig, DkimMode, DmarcPolicy, SpfPolicy};
use crate::dns::{Caches, VoidCounter};
use crate::headers::forged_results;

/// Longest a single check may take before it counts as a temporary error.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 7208 §4.6.4: more void look-ups than this is a `permerror`.
const MAX_VOID_LOOKUPS: usize = 2;

/// The SPF results of one transaction.
#[derive(Debug, Clone)]
pub struct SpfCheck {
    ip: IpAddr,
    helo: String,
    /// Empty for the null reverse path.
    mail_from: String,
    helo_out: SpfOutput,
    from_out: SpfOutput,
}

impl SpfCheck {
    /// The result that counts: the HELO identity's when it failed or when the reverse path
    /// is null (RFC 7208 §2.3, §2.4), otherwise the MAIL FROM identity's.
    pub fn result(&self) -> SpfResult {
        self.decisive().result()
    }

    fn decisive(&self) -> &SpfOutput {
        if self.mail_from.is_empty() || self.helo_out.result() == SpfResult::Fail {
            &self.helo_out
        } else {
            &self.from_out
        }
    }

    /// The domain whose record decided.
    pub fn domain(&self) -> &str {
        self.decisive().domain()
    }
}

/// SPF outcome at MAIL FROM.
#[derive(Debug, Clone)]
pub struct SpfDecision {
    pub check: SpfCheck,
    /// Set when the policy refuses the sender.
    pub refuse: Option<Reply>,
}

/// What the end-of-message checks decided.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Header fields to put at the very top of the stored message, CRLF-terminated.
    pub prepend: String,
    /// Byte ranges of the message (as given to [`Verifier::message`]) to remove: incoming
    /// Authentication-Results fields that claim our authserv-id (RFC 8601 §5).
    pub strip: Vec<std::ops::Range<usize>>,
    /// Set when the policy refuses the message (550, or 451 when a DNS error stood in
    /// the way of a rejection).
    pub refuse: Option<Reply>,
    /// DMARC `p=quarantine` was enforced: the quarantine header is in `prepend`.
    pub quarantined: bool,
    /// `spf=pass dkim=pass dmarc=pass`, for the log line.
    pub summary: String,
    /// The DMARC evaluation, when the From domain has a record (for aggregate reports).
    pub dmarc: Option<crate::facts::DmarcFacts>,
}

/// The checks, with their DNS caches.
pub struct Verifier {
    auth: MessageAuthenticator,
    caches: Caches,
    spf: SpfPolicy,
    dkim: DkimMode,
    dmarc: DmarcPolicy,
    authserv_id: String,
    hostname: String,
    quarantine_header: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("authserv_id", &self.authserv_id)
            .field("caches", &self.caches)
            .finish_non_exhaustive()
    }
}

/// The message as the end-of-data check sees it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// The reverse path without brackets; empty for `<>`.
    pub mail_from: &'a str,
    /// The message as the client sent it (header section, empty line, body).
    pub message: &'a [u8],
    /// `false` when `message` is only the beginning of a message too large to verify:
    /// DKIM is then not evaluated (and DMARC can only pass through SPF).
    pub complete: bool,
}

impl Verifier {
    pub fn new(cfg: &AuthConfig, auth: MessageAuthenticator, hostname: &str) -> Verifier {
        Verifier {
            auth,
            caches: Caches::default(),
            spf: cfg.spf,
            dkim: cfg.dkim,
            dmarc: cfg.dmarc,
            authserv_id: cfg
                .authserv_id
                .clone()
                .unwrap_or_else(|| hostname.to_string()),
            hostname: hostname.to_string(),
            quarantine_header: cfg.quarantine_header.clone(),
        }
    }

    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// The DNS caches (for tests and statistics).
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// SPF for the HELO and MAIL FROM identities; `None` when SPF is off.
    pub async fn spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> Option<SpfDecision> {
        if self.spf == SpfPolicy::Off {
            return None;
        }
        let helo_out = self
            .check_host(SpfParameters::verify_ehlo(ip, helo, &self.hostname), helo)
            .await;
        let from_out = if mail_from.is_empty() {
            helo_out.clone()
        } else {
            let domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
            self.check_host(
                SpfParameters::verify_mail_from(ip, helo, &self.hostname, mail_from),
                domain,
            )
            .await
        };
        let check = SpfCheck {
            ip,
            helo: helo.to_string(),
            mail_from: mail_from.to_string(),
            helo_out,
            from_out,
        };
        let refuse = match (self.spf, check.result()) {
            (SpfPolicy::RejectFail, SpfResult::Fail) => Some(Reply::new(
                550,
                "5.7.23",
                format!(
                    "SPF check failed: {} does not designate {ip} as a permitted sender",
                    check.domain()
                ),
            )),
            (SpfPolicy::RejectFail, SpfResult::TempError) => Some(Reply::new(
                451,
                "4.7.24",
                format!(
                    "Temporary DNS error checking the SPF record of {}; try again later",
                    check.domain()
                ),
            )),
            _ => None,
        };
        Some(SpfDecision { check, refuse })
    }

    /// One `check_host()` (RFC 7208 §4) with the void look-up limit and a time limit.
    async fn check_host(&self, params: SpfParameters<'_>, domain: &str) -> SpfOutput {
        let counter = VoidCounter::default();
        let views = self.caches.counting(&counter);
        let run = self.auth.check_host(views.params(params));
        let out = match tokio::time::timeout(CHECK_TIMEOUT, run).await {
            Ok(out) => out,
            Err(_) => SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError),
        };
        if counter.void() > MAX_VOID_LOOKUPS
            && !matches!(out.result(), SpfResult::TempError | SpfResult::None)
        {
            return SpfOutput::new(out.domain().to_string()).with_result(SpfResult::PermError);
        }
        out
    }

    /// DKIM and DMARC, the Authentication-Results and Received-SPF fields, and the
    /// decision. `spf` is what [`Verifier::spf`] found at MAIL FROM.
    pub async fn message(&self, m: Received<'_>, spf: Option<&SpfCheck>) -> Verdict {
        let strip = forged_results(m.message, &self.authserv_id);
        let parsed = AuthenticatedMessage::parse(m.message);
        let dkim_on = self.dkim == DkimMode::Verify;
        let dkim: Vec<DkimOutput<'_>> = match &parsed {
            Some(p) if dkim_on && m.complete => {
                let run = self.auth.verify_dkim(self.caches.params(p));
                tokio::time::timeout(CHECK_TIMEOUT, run)
                    .await
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let none = SpfOutput::default();
        let spf_from = spf.map_or(&none, |s| &s.from_out);
        let mail_from_domain = match m.mail_from.rsplit_once('@') {
            Some((_, d)) => d,
            None => m.helo,
        };
        let dmarc = match &parsed {
            Some(p) if self.dmarc != DmarcPolicy::Off => {
                let params = DmarcParameters::new(p, &dkim, mail_from_domain, spf_from);
                let run = self.auth.verify_dmarc(self.caches.params(params));
                Some(
                    tokio::time::timeout(CHECK_TIMEOUT, run)
                        .await
                        .unwrap_or_else(|_| {
                            DmarcOutput::default().with_dkim_result(DmarcResult::TempError(
                                mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
                                    "timeout".into(),
                                )),
                            ))
                        }),
                )
            }
            _ => None,
        };
        let header_from = parsed
            .as_ref()
            .map(|p| p.from().to_string())
            .unwrap_or_default();

        let id = self.authserv_id.as_str();
        let mut results = String::new();
        let mut summary = Vec::new();
        if let Some(s) = spf {
            results.push_str(&tail(
                AuthenticationResults::new(id)
                    .with_spf_mailfrom_result(&s.from_out, s.ip, &s.mail_from, &s.helo)
                    .with_spf_ehlo_result(&s.helo_out, s.ip, &s.helo),
                id,
            ));
            summary.push(format!("spf={}", lower(s.result())));
        }
        if dkim_on {
            if !m.complete {
                results.push_str(
                    ";\r\n\tdkim=policy (message larger than auth.max_message_size: not verified)",
                );
                summary.push("dkim=policy".into());
            } else if dkim.is_empty() {
                results.push_str(";\r\n\tdkim=none (no signatures)");
                summary.push("dkim=none".into());
            } else {
                results.push_str(&tail(
                    AuthenticationResults::new(id).with_dkim_results(&dkim, &header_from),
                    id,
                ));
                let d: Vec<&str> = dkim.iter().map(|o| dkim_word(o.result())).collect();
                summary.push(format!("dkim={}", d.join(",")));
            }
        }
        if let Some(d) = &dmarc {
            results.push_str(&tail(
                AuthenticationResults::new(id).with_dmarc_result(d),
                id,
            ));
            summary.push(format!("dmarc={}", dmarc_word(&d.result())));
        }
        if results.is_empty() {
            results.push_str("; none");
        }
        let mut prepend = String::new();
        let (refuse, quarantined) = match &dmarc {
            Some(d) if self.dmarc == DmarcPolicy::Enforce => self.enforce(d, &dkim, spf),
            _ => (None, false),
        };
        if quarantined && let Some(d) = &dmarc {
            prepend.push_str(&format!(
                "{}: DMARC policy of {} is quarantine (dmarc=fail)\r\n",
                self.quarantine_header,
                d.domain()
            ));
        }
        prepend.push_str(&format!("Authentication-Results: {id}{results}\r\n"));
        if let Some(s) = spf {
            prepend.push_str(
                &ReceivedSpf::new(s.decisive(), s.ip, &s.helo, &s.mail_from, &self.hostname)
                    .to_header(),
            );
        }
        let disposition = match (&refuse, quarantined) {
            (Some(_), _) => "reject",
            (None, true) => "quarantine",
            _ => "none",
        };
        let facts = dmarc.as_ref().and_then(|d| {
            let s = spf.map(|s| (&s.from_out, lower(s.from_out.result())));
            crate::facts::dmarc(d, &dkim, s.map(|s| s.0), s.map(|s| s.1), disposition)
        });
        Verdict {
            prepend,
            strip,
            refuse,
            quarantined,
            summary: summary.join(" "),
            dmarc: facts,
        }
    }

    /// DMARC enforcement (RFC 7489 §6.6.4, §6.7): reject, quarantine, or defer when a
    /// temporary DNS error may be what made the message fail a `p=reject` policy.
    fn enforce(
        &self,
        d: &DmarcOutput,
        dkim: &[DkimOutput<'_>],
        spf: Option<&SpfCheck>,
    ) -> (Option<Reply>, bool) {
        match d.result() {
            DmarcResult::Fail(_) => {}
            DmarcResult::TempError(_) if d.policy() == Policy::Reject => {
                return (Some(dmarc_temp(d.domain())), false);
            }
            _ => return (None, false),
        }
        let temp = dkim
            .iter()
            .any(|o| matches!(o.result(), DkimResult::TempError(_)))
            || spf.is_some_and(|s| s.from_out.result() == SpfResult::TempError);
        match d.policy() {
            Policy::Reject if temp => (Some(dmarc_temp(d.domain())), false),
            Policy::Reject => (
                Some(Reply::new(
                    550,
                    "5.7.1",
                    format!(
                        "Message rejected: the DMARC policy for {} says to reject mail that fails authentication (no aligned SPF or DKIM pass)",
                        d.domain()
                    ),
                )),
                false,
            ),
            Policy::Quarantine => (None, true),
            _ => (None, false),
        }
    }
}

fn dmarc_temp(domain: &str) -> Reply {
    Reply::new(
        451,
        "4.7.1",
        format!("Temporary DNS error while checking the DMARC policy of {domain}; try again later"),
    )
}

/// The results mail-auth formatted (`;\r\n\tmethod=...`), without the field name, the
/// authserv-id and the final CRLF, so that they can be put in our order.
fn tail(ar: AuthenticationResults<'_>, id: &str) -> String {
    let h = ar.to_header();
    let h = h.strip_prefix("Authentication-Results: ").unwrap_or(&h);
    let h = h.strip_prefix(id).unwrap_or(h);
    h.strip_suffix("\r\n").unwrap_or(h).to_string()
}

fn lower(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

pub(crate) fn dkim_result_word(r: &DkimResult) -> &'static str {
    dkim_word(r)
}

fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}
