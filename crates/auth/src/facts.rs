//! What one DMARC evaluation found, as plain data for the report store (DMARC aggregate
//! reports, RFC 7489 §7 / RFC 9990): [`crate::Verdict::dmarc`].

use mail_auth::dmarc::{Alignment, Policy};
use mail_auth::{DkimOutput, DmarcOutput, DmarcResult, SpfOutput};

/// One DMARC evaluation of a received message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmarcFacts {
    /// The RFC5322.From domain.
    pub header_from: String,
    /// `none`, `quarantine`, `reject`: the policy that applied (`p=` or `sp=`).
    pub policy: String,
    /// The published record: `p=`, `sp=`, `adkim=`, `aspf=` (`r`/`s`), `t=`.
    pub p: String,
    pub sp: String,
    pub adkim: String,
    pub aspf: String,
    pub testing: bool,
    /// The record's `rua=` URIs.
    pub rua: Vec<String>,
    /// What we did: `none`, `quarantine`, `reject`.
    pub disposition: String,
    /// DMARC result: `pass`, `fail`, `temperror`, `permerror`, `none`.
    pub result: String,
    /// Aligned DKIM / SPF pass (RFC 7489 policy_evaluated).
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    /// SPF (MAIL FROM) result and domain.
    pub spf_domain: String,
    pub spf_result: String,
    /// DKIM signatures: (domain, selector, result).
    pub dkim: Vec<(String, String, String)>,
}

fn policy_word(p: Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        _ => "none",
    }
}

fn align(a: Alignment) -> &'static str {
    match a {
        Alignment::Strict => "s",
        Alignment::Relaxed => "r",
    }
}

pub(crate) fn word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

/// The facts of `d`; `None` without a DMARC record (nothing to report to anyone).
pub(crate) fn dmarc(
    d: &DmarcOutput,
    dkim: &[DkimOutput<'_>],
    spf: Option<&SpfOutput>,
    spf_word: Option<&str>,
    disposition: &str,
) -> Option<DmarcFacts> {
    let rec = d.dmarc_record()?;
    Some(DmarcFacts {
        header_from: d.domain().to_ascii_lowercase(),
        policy: policy_word(d.policy()).into(),
        p: policy_word(rec.p).into(),
        sp: policy_word(rec.sp).into(),
        adkim: align(rec.adkim).into(),
        aspf: align(rec.aspf).into(),
        testing: rec.t,
        rua: rec.rua().iter().map(|u| u.uri.clone()).collect(),
        disposition: disposition.into(),
        result: word(&d.result()).into(),
        dkim_aligned: *d.dkim_result() == DmarcResult::Pass,
        spf_aligned: *d.spf_result() == DmarcResult::Pass,
        spf_domain: spf.map(|s| s.domain().to_string()).unwrap_or_default(),
        spf_result: spf_word.unwrap_or("none").into(),
        dkim: dkim
            .iter()
            .filter_map(|o| {
                let s = o.signature()?;
                Some((
                    s.d.to_ascii_lowercase(),
                    s.s.clone(),
                    crate::verify::dkim_result_word(o.result()).into(),
                ))
            })
            .collect(),
    })
}
