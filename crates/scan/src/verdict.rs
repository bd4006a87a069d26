//! The verdict: each requirement of the chosen profile, pass or fail, with the reason.
//!
//! | requirement            | default                         | ncsc-suite-b                          | ncsc-foundation                                   |
//! |------------------------|---------------------------------|---------------------------------------|---------------------------------------------------|
//! | STARTTLS offered       | yes                             | yes                                   | yes                                               |
//! | old protocols          | no SSLv3, TLS 1.0, TLS 1.1      | same                                  | same                                              |
//! | TLS 1.2                | 1.2 or 1.3 accepted             | 1.2 accepted                          | 1.2 accepted                                      |
//! | TLS 1.2 suites         | AEAD with forward secrecy only  | ECDHE-ECDSA-AES128-GCM-SHA256 only    | (EC)DHE-RSA with AES-128 and SHA-256 only         |
//! | TLS 1.3 suites         | any                             | TLS_AES_128_GCM_SHA256 only           | TLS_AES_128_GCM_SHA256 only                        |
//! | groups                 | any                             | secp256r1 only                        | x25519/secp256r1/secp384r1, DH >= 2048 bits        |
//! | certificates           | RSA >= 2048 / EC, no SHA-1/MD5  | ECDSA P-256 with ecdsa-with-SHA256    | RSA >= 2048 with sha256WithRSAEncryption           |
//! | profile client         | —                               | a Suite B-only client connects        | a Foundation-only client connects                 |
//! | validity, trust, name  | not expired; chains to the system store or --ca; --name matches (when given) |                     |                                                   |

use postern_tls::Profile;
use postern_tls::x509::KeyKind;

use crate::{Options, Report, Requirement};

fn req(r: &mut Vec<Requirement>, what: &str, pass: bool, reason: String) {
    r.push(Requirement {
        requirement: what.into(),
        pass,
        reason,
    });
}

fn accepted(r: &Report, v: &str) -> bool {
    r.versions.iter().any(|x| x.version == v && x.accepted)
}

pub(crate) fn judge(report: &mut Report, opts: &Options) {
    let p = opts.profile;
    let mut out = Vec::new();
    if let Some(st) = report.starttls_offered {
        req(
            &mut out,
            "STARTTLS offered",
            st,
            if st {
                "the EHLO reply lists STARTTLS".into()
            } else {
                "the EHLO reply does not list STARTTLS: mail to this server travels in clear".into()
            },
        );
        if !st {
            finish(report, out);
            return;
        }
    }
    let old: Vec<&str> = ["SSLv3", "TLSv1.0", "TLSv1.1"]
        .into_iter()
        .filter(|v| accepted(report, v))
        .collect();
    req(
        &mut out,
        "no protocol below TLS 1.2",
        old.is_empty(),
        if old.is_empty() {
            "SSLv3, TLS 1.0 and TLS 1.1 are refused".into()
        } else {
            format!("the server accepts {}", old.join(", "))
        },
    );
    let t12 = accepted(report, "TLSv1.2");
    let t13 = accepted(report, "TLSv1.3");
    let version_ok = if p == Profile::Default {
        t12 || t13
    } else {
        t12
    };
    req(
        &mut out,
        "TLS 1.2 accepted",
        version_ok,
        format!(
            "TLS 1.2 {}, TLS 1.3 {}",
            if t12 { "accepted" } else { "refused" },
            if t13 { "accepted" } else { "refused" }
        ),
    );
    suites_req(report, p, &mut out);
    groups_req(report, p, &mut out);
    certs_req(report, p, &mut out);
    for h in report.handshakes.iter().skip(1) {
        req(
            &mut out,
            &format!("a {}-only client connects", p),
            h.ok,
            if h.ok {
                format!("{} {}", h.version, h.suite)
            } else {
                h.detail.clone()
            },
        );
    }
    if let Some(h) = &report.client_certificate {
        req(
            &mut out,
            "client certificate accepted",
            h.ok,
            if h.ok {
                format!("mutual TLS session established ({} {})", h.version, h.suite)
            } else {
                h.detail.clone()
            },
        );
    }
    finish(report, out);
}

fn finish(report: &mut Report, out: Vec<Requirement>) {
    report.pass = !out.is_empty() && out.iter().all(|r| r.pass);
    report.requirements = out;
}

fn suites_req(report: &Report, p: Profile, out: &mut Vec<Requirement>) {
    for list in &report.suites {
        let tls13 = list.version == "TLSv1.3";
        let bad: Vec<String> = list
            .suites
            .iter()
            .filter(|s| {
                let ok = match (p, tls13) {
                    (Profile::Default, true) => true,
                    (Profile::Default, false) => s.weaknesses.is_empty() && s.aead,
                    (_, true) => s.id == 0x1301,
                    (Profile::NcscSuiteB, false) => s.id == 0xC02B,
                    (Profile::NcscFoundation, false) => {
                        matches!(s.id, 0xC02F | 0xC027 | 0x009E | 0x0067)
                    }
                };
                !ok
            })
            .map(|s| {
                if s.weaknesses.is_empty() {
                    s.name.clone()
                } else {
                    format!("{} ({})", s.name, s.weaknesses.join(", "))
                }
            })
            .collect();
        let allowed = match (p, tls13) {
            (Profile::Default, true) => "TLS 1.3 suites (all are AEAD with forward secrecy)",
            (Profile::Default, false) => "AEAD suites with forward secrecy",
            (_, true) => "TLS_AES_128_GCM_SHA256",
            (Profile::NcscSuiteB, false) => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            (Profile::NcscFoundation, false) => "(EC)DHE-RSA with AES-128 and SHA-256",
        };
        req(
            out,
            &format!("{} cipher suites", list.version),
            bad.is_empty(),
            if bad.is_empty() {
                format!("only {allowed}")
            } else {
                format!("outside the profile ({allowed} only): {}", bad.join("; "))
            },
        );
    }
}

fn groups_req(report: &Report, p: Profile, out: &mut Vec<Requirement>) {
    if p == Profile::Default {
        let small: Vec<String> = report
            .groups
            .iter()
            .flat_map(|g| g.dh_bits.iter())
            .filter(|b| **b < 2048)
            .map(|b| format!("DH {b} bits"))
            .collect();
        req(
            out,
            "key exchange",
            small.is_empty(),
            if small.is_empty() {
                "no finite-field group below 2048 bits".into()
            } else {
                small.join(", ")
            },
        );
        return;
    }
    let allowed: &[&str] = if p == Profile::NcscSuiteB {
        &["secp256r1"]
    } else {
        &["x25519", "secp256r1", "secp384r1"]
    };
    let mut bad = Vec::new();
    for g in &report.groups {
        for name in &g.groups {
            if !allowed.contains(&name.as_str()) {
                bad.push(format!("{name} ({})", g.version));
            }
        }
        for b in &g.dh_bits {
            if p == Profile::NcscSuiteB || *b < 2048 {
                bad.push(format!("DH {b} bits ({})", g.version));
            }
        }
    }
    req(
        out,
        "key exchange groups",
        bad.is_empty(),
        if bad.is_empty() {
            format!("only {}", allowed.join(", "))
        } else {
            format!(
                "outside the profile ({} only): {}",
                allowed.join(", "),
                bad.join(", ")
            )
        },
    );
}

fn certs_req(report: &Report, p: Profile, out: &mut Vec<Requirement>) {
    if report.certificates.is_empty() {
        req(out, "certificate", false, "no certificate was seen".into());
        return;
    }
    let mut bad = Vec::new();
    let mut weak = Vec::new();
    let mut expired = Vec::new();
    let mut untrusted = Vec::new();
    let mut names = Vec::new();
    for c in &report.certificates {
        let Some(leaf) = c.certificates.first() else {
            continue;
        };
        let key_ok = match (p, &c.key) {
            (Profile::Default, _) => true,
            (Profile::NcscSuiteB, Some(KeyKind::Ec { curve })) => {
                curve == "P-256" && leaf.signature == "ecdsa-with-SHA256"
            }
            (Profile::NcscFoundation, Some(KeyKind::Rsa { bits })) => {
                *bits >= 2048 && leaf.signature == "sha256WithRSAEncryption"
            }
            _ => false,
        };
        if !key_ok {
            bad.push(format!(
                "{} ({}, {})",
                leaf.subject, leaf.key, leaf.signature
            ));
        }
        let n = c.certificates.len();
        for (i, x) in c.certificates.iter().enumerate() {
            // A self-signed root's own signature is never checked: do not judge it.
            if i > 0 && i + 1 == n && x.subject == x.issuer {
                continue;
            }
            for w in &x.weaknesses {
                weak.push(format!("{}: {w}", x.subject));
            }
            if x.days_left < 0 {
                expired.push(format!("{} expired {}", x.subject, x.not_after));
            }
        }
        if !c.trusted {
            untrusted.push(format!("{}: {}", leaf.subject, c.trust_detail));
        }
        if c.name_match == Some(false) {
            names.push(format!("{} ({})", leaf.subject, leaf.names.join(", ")));
        }
    }
    if p != Profile::Default {
        let want = if p == Profile::NcscSuiteB {
            "ECDSA P-256 signed with ecdsa-with-SHA256"
        } else {
            "RSA >= 2048 bits signed with sha256WithRSAEncryption"
        };
        req(
            out,
            "certificate key and signature",
            bad.is_empty(),
            if bad.is_empty() {
                format!("every certificate served is {want}")
            } else {
                format!("not {want}: {}", bad.join("; "))
            },
        );
    }
    req(
        out,
        "certificate strength",
        weak.is_empty(),
        if weak.is_empty() {
            "no RSA key below 2048 bits, no SHA-1 or MD5 signature".into()
        } else {
            weak.join("; ")
        },
    );
    req(
        out,
        "certificate validity",
        expired.is_empty(),
        if expired.is_empty() {
            "no certificate has expired".into()
        } else {
            expired.join("; ")
        },
    );
    req(
        out,
        "certificate trusted",
        untrusted.is_empty(),
        if untrusted.is_empty() {
            report
                .certificates
                .first()
                .map(|c| c.trust_detail.clone())
                .unwrap_or_default()
        } else {
            untrusted.join("; ")
        },
    );
    if report.certificates.iter().any(|c| c.name_match.is_some()) {
        req(
            out,
            "certificate name",
            names.is_empty(),
            if names.is_empty() {
                "every certificate carries the --name".into()
            } else {
                format!("the --name is not in: {}", names.join("; "))
            },
        );
    }
}
