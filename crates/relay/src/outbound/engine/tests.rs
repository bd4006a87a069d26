//! The level transitions of `dane` and `dane-only`, and the precedence.

use super::*;
use rustls::RootCertStore;

fn policy(level: TlsLevel, explicit: bool) -> Arc<Policy> {
    Arc::new(Policy {
        source: if explicit {
            "[[outbound.policy]] #0 domain = \"example.test\"".into()
        } else {
            format!("[outbound] tls = \"{}\"", level.as_str())
        },
        explicit,
        level,
        match_names: Vec::new(),
        roots: Arc::new(RootCertStore::empty()),
        roots_source: "the system trust store".into(),
        fingerprints: Vec::new(),
        client_cert: None,
        client_cert_source: None,
        profile: postern_tls::Profile::Default,
    })
}

fn ee() -> TlsaRecord {
    TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![7; 32],
    }
}

fn pkix() -> TlsaRecord {
    TlsaRecord {
        usage: 1,
        selector: 1,
        matching: 1,
        data: vec![7; 32],
    }
}

fn records(rs: &[TlsaRecord]) -> DaneStatus {
    DaneStatus::Records {
        base: "mx.example.test".into(),
        records: rs.iter().map(|r| (r.clone(), usability(r).err())).collect(),
        domain_alias: None,
    }
}

fn run(level: TlsLevel, explicit: bool, dane: &DaneStatus) -> HostDecision {
    decide(
        &policy(level, explicit),
        dane,
        None,
        "example.test",
        "mx.example.test",
        25,
    )
}

/// (effective level, mandatory, source) or the skip reason.
fn summary(d: &HostDecision) -> Result<(TlsLevel, bool, Source), String> {
    match d {
        HostDecision::Connect(h) => Ok((h.level, h.mandatory, h.source)),
        HostDecision::Skip { reason, .. } => Err(reason.clone()),
    }
}

#[test]
fn dane_with_secure_usable_tlsa_authenticates_by_tlsa() {
    for level in [TlsLevel::Dane, TlsLevel::DaneOnly] {
        for explicit in [false, true] {
            let d = run(level, explicit, &records(&[ee(), pkix()]));
            assert_eq!(summary(&d), Ok((TlsLevel::Dane, true, Source::Dane)));
            let HostDecision::Connect(h) = d else {
                unreachable!()
            };
            match h.expect {
                Expect::Dane(e) => {
                    // Only the usable record is kept; the names are the next hop and MX.
                    assert_eq!(e.records, vec![ee()]);
                    assert_eq!(e.names, ["example.test", "mx.example.test"]);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(h.sni, "mx.example.test");
        }
    }
}

#[test]
fn dane_with_only_unusable_records_is_encrypt_and_dane_only_skips() {
    let d = run(TlsLevel::Dane, false, &records(&[pkix()]));
    assert_eq!(summary(&d), Ok((TlsLevel::Encrypt, true, Source::Dane)));
    let d = run(TlsLevel::DaneOnly, false, &records(&[pkix()]));
    let why = summary(&d).unwrap_err();
    assert!(
        why.starts_with("4.7.5 no usable TLSA record at _25._tcp.mx.example.test"),
        "{why}"
    );
}

#[test]
fn dane_without_secure_tlsa_is_may_and_dane_only_defers() {
    for dane in [
        DaneStatus::NoTlsa,
        DaneStatus::InsecureHost,
        DaneStatus::ValidationOff,
    ] {
        let d = run(TlsLevel::Dane, false, &dane);
        assert_eq!(
            summary(&d),
            Ok((TlsLevel::May, false, Source::Default)),
            "{dane:?}"
        );
        let d = run(TlsLevel::DaneOnly, true, &dane);
        let why = summary(&d).unwrap_err();
        assert!(why.starts_with("4.7.5 "), "{why}");
        assert!(why.contains("policy dane-only requires DANE"), "{why}");
    }
    let d = run(TlsLevel::DaneOnly, false, &DaneStatus::ValidationOff);
    assert!(
        summary(&d)
            .unwrap_err()
            .contains("DNSSEC validation unavailable")
    );
}

#[test]
fn bogus_or_failed_lookups_skip_the_host_under_both_levels() {
    for level in [TlsLevel::Dane, TlsLevel::DaneOnly] {
        for dane in [
            DaneStatus::BogusHost,
            DaneStatus::BogusTlsa,
            DaneStatus::LookupFailed("SERVFAIL".into()),
        ] {
            let d = run(level, false, &dane);
            let why = summary(&d).unwrap_err();
            assert!(why.starts_with("4.7.5 "), "{why}");
            if !matches!(dane, DaneStatus::BogusHost) {
                assert!(
                    why.contains("TLSA lookup error for mx.example.test:25"),
                    "{why}"
                );
            }
        }
    }
}

#[test]
fn an_explicit_non_dane_entry_wins_over_dane_and_sts() {
    let sts = StsPolicy {
        mode: StsMode::Enforce,
        mx: vec!["*.example.test".into()],
        max_age: 86_400,
        about: "test".into(),
    };
    let d = decide(
        &policy(TlsLevel::Encrypt, true),
        &records(&[ee()]),
        Some(&sts),
        "example.test",
        "mx.example.test",
        25,
    );
    assert_eq!(summary(&d), Ok((TlsLevel::Encrypt, true, Source::Explicit)));
    let d = run(TlsLevel::May, true, &DaneStatus::NotWanted);
    assert_eq!(summary(&d), Ok((TlsLevel::May, false, Source::Explicit)));
}

#[test]
fn sts_sits_between_dane_and_the_default() {
    let sts = StsPolicy {
        mode: StsMode::Enforce,
        mx: vec!["*.example.test".into()],
        max_age: 86_400,
        about: "test".into(),
    };
    let with = |level, dane: &DaneStatus, sts: Option<&StsPolicy>| {
        summary(&decide(
            &policy(level, false),
            dane,
            sts,
            "example.test",
            "mx.example.test",
            25,
        ))
    };
    // DANE wins over STS.
    assert_eq!(
        with(TlsLevel::Dane, &records(&[ee()]), Some(&sts)),
        Ok((TlsLevel::Dane, true, Source::Dane))
    );
    // No TLSA: STS enforce wins over the default.
    assert_eq!(
        with(TlsLevel::Dane, &DaneStatus::NoTlsa, Some(&sts)),
        Ok((TlsLevel::Verify, true, Source::MtaSts))
    );
    assert_eq!(
        with(TlsLevel::May, &DaneStatus::NotWanted, Some(&sts)),
        Ok((TlsLevel::Verify, true, Source::MtaSts))
    );
    // Testing mode changes nothing.
    let testing = StsPolicy {
        mode: StsMode::Testing,
        ..sts
    };
    assert_eq!(
        with(TlsLevel::May, &DaneStatus::NotWanted, Some(&testing)),
        Ok((TlsLevel::May, false, Source::Default))
    );
}

#[test]
fn the_default_level_applies_when_nothing_else_does() {
    for level in [
        TlsLevel::None,
        TlsLevel::May,
        TlsLevel::Encrypt,
        TlsLevel::Secure,
    ] {
        let d = run(level, false, &DaneStatus::NotWanted);
        assert_eq!(summary(&d), Ok((level, level.mandatory(), Source::Default)));
    }
}

#[test]
fn dane_is_not_mandatory_but_dane_only_is() {
    assert!(!TlsLevel::Dane.mandatory());
    assert!(TlsLevel::DaneOnly.mandatory());
    assert!(!TlsLevel::May.mandatory());
    assert!(TlsLevel::Encrypt.mandatory());
    assert!(TlsLevel::Secure.mandatory());
}

#[test]
fn explain_lists_each_record_with_its_usability() {
    let mut out = String::new();
    describe_dane(&records(&[ee(), pkix()]), &mut out);
    assert!(out.contains("3 1 1 0707"), "{out}");
    assert!(out.contains("usable (DANE-EE)"), "{out}");
    assert!(
        out.contains("unusable: usage 1 (PKIX-TA/PKIX-EE) is not usable for SMTP"),
        "{out}"
    );
}

fn sts(mode: StsMode, mx: &[&str]) -> StsPolicy {
    StsPolicy {
        mode,
        mx: mx.iter().map(|s| s.to_string()).collect(),
        max_age: 86_400,
        about: "fetched just now".into(),
    }
}

fn with_sts(level: TlsLevel, dane: &DaneStatus, sts: &StsPolicy, mx_host: &str) -> HostDecision {
    decide(
        &policy(level, false),
        dane,
        Some(sts),
        "example.test",
        mx_host,
        25,
    )
}

#[test]
fn sts_enforce_verifies_the_mx_name_and_skips_hosts_outside_the_policy() {
    let p = sts(StsMode::Enforce, &["*.example.test", "mail.other.test"]);
    let HostDecision::Connect(h) = with_sts(
        TlsLevel::May,
        &DaneStatus::NotWanted,
        &p,
        "MX1.example.test.",
    ) else {
        panic!("a matching host is tried");
    };
    assert_eq!(
        (h.level, h.mandatory, h.source),
        (TlsLevel::Verify, true, Source::MtaSts)
    );
    // The certificate must carry the MX host name itself, not any pattern.
    assert_eq!(h.expect, Expect::Names(vec!["mx1.example.test".into()]));
    for host in ["a.b.example.test", "mx.evil.test", "example.test"] {
        match with_sts(TlsLevel::May, &DaneStatus::NotWanted, &p, host) {
            HostDecision::Skip {
                reason,
                metric,
                source,
            } => {
                assert!(reason.starts_with("4.7.5 MX host"), "{reason}");
                assert_eq!((metric, source), ("mx-mismatch", Source::MtaSts));
            }
            HostDecision::Connect(_) => panic!("{host} is not in the policy"),
        }
    }
}

#[test]
fn sts_testing_delivers_as_before_and_carries_the_check() {
    let p = sts(StsMode::Testing, &["mx.example.test"]);
    for (host, matches) in [("mx.example.test", true), ("other.example.test", false)] {
        let HostDecision::Connect(h) = with_sts(TlsLevel::May, &DaneStatus::NotWanted, &p, host)
        else {
            panic!("testing never skips");
        };
        assert_eq!(
            (h.level, h.mandatory, h.source),
            (TlsLevel::May, false, Source::Default)
        );
        assert_eq!(h.sts_testing.map(|t| t.mx_matches), Some(matches));
    }
}

#[test]
fn a_dane_decision_never_falls_back_to_sts() {
    let p = sts(StsMode::Enforce, &["*.example.test"]);
    // Usable TLSA: DANE authenticates.
    let d = with_sts(TlsLevel::Dane, &records(&[ee()]), &p, "mx.example.test");
    assert_eq!(summary(&d), Ok((TlsLevel::Dane, true, Source::Dane)));
    // Bogus or failed TLSA lookups skip the host; MTA-STS does not rescue it.
    for dane in [
        DaneStatus::BogusTlsa,
        DaneStatus::BogusHost,
        DaneStatus::LookupFailed("timeout".into()),
    ] {
        match with_sts(TlsLevel::Dane, &dane, &p, "mx.example.test") {
            HostDecision::Skip { source, .. } => assert_eq!(source, Source::Dane),
            HostDecision::Connect(h) => panic!("{dane:?} fell back to {:?}", h.source),
        }
    }
    // Secure TLSA records, none usable: DANE's encrypt, not MTA-STS.
    let d = with_sts(TlsLevel::Dane, &records(&[pkix()]), &p, "mx.example.test");
    assert_eq!(summary(&d), Ok((TlsLevel::Encrypt, true, Source::Dane)));
}

#[test]
fn dane_ta_names_include_the_secure_aliases_of_the_domain_and_the_host() {
    let names = super::reference_names(
        "Example.test.",
        Some("mail-domain.example.net"),
        "mx.example.test",
        "mx.hosting.example.net",
    );
    assert_eq!(
        names,
        [
            "example.test",
            "mail-domain.example.net",
            "mx.example.test",
            "mx.hosting.example.net"
        ]
    );
    let plain = super::reference_names("example.test", None, "example.test", "example.test");
    assert_eq!(plain, ["example.test"]);
}
