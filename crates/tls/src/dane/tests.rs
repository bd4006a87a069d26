//! Every usage, selector and matching type; mismatches; DANE-TA chains; unusable sets.

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::CertificateDer;

fn algs() -> &'static [&'static dyn SignatureVerificationAlgorithm] {
    rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all
}

fn now() -> UnixTime {
    UnixTime::now()
}

/// A certificate authority: its DER and what signs with it.
struct Ca {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str, parent: Option<&Ca>) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = match parent {
        Some(p) => params.signed_by(&key, &p.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Ca {
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn leaf(names: &[&str], by: Option<&Ca>) -> CertificateDer<'static> {
    leaf_with(leaf_params(names), by)
}

fn leaf_with(params: CertificateParams, by: Option<&Ca>) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let cert = match by {
        Some(ca) => params.signed_by(&key, &ca.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    cert.der().clone()
}

fn spki(c: &CertificateDer<'_>) -> Vec<u8> {
    webpki::EndEntityCert::try_from(c)
        .unwrap()
        .subject_public_key_info()
        .as_ref()
        .to_vec()
}

/// The record `usage selector matching` for `c`, as a zone would publish it.
fn rec(usage: u8, selector: u8, matching: u8, c: &CertificateDer<'_>) -> TlsaRecord {
    let selected = if selector == 0 {
        c.as_ref().to_vec()
    } else {
        spki(c)
    };
    let data = match matching {
        0 => selected,
        1 => digest(&aws_lc_rs::digest::SHA256, &selected),
        _ => digest(&aws_lc_rs::digest::SHA512, &selected),
    };
    TlsaRecord {
        usage,
        selector,
        matching,
        data,
    }
}

fn names() -> Vec<String> {
    vec!["example.test".into(), "mx.example.test".into()]
}

fn expect(records: &[TlsaRecord]) -> DaneExpect {
    DaneExpect::new(records, &names()).unwrap()
}

#[test]
fn dane_ee_matches_for_every_selector_and_matching_type() {
    let c = leaf(&["mx.example.test"], None);
    for selector in 0..=1 {
        for matching in 0..=2 {
            let r = rec(3, selector, matching, &c);
            let m = verify(&expect(std::slice::from_ref(&r)), &c, &[], now(), algs()).unwrap();
            assert_eq!(m.record, r);
            assert_eq!(m.depth, 0);
            let text = m.to_string();
            assert!(text.contains("(DANE-EE) matched the end-entity"), "{text}");
        }
    }
}

#[test]
fn dane_ee_ignores_names_dates_and_issuer() {
    let mut p = leaf_params(&["somewhere.else.test"]);
    p.not_before = rcgen::date_time_ymd(2001, 1, 1);
    p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let other_ca = ca("Unrelated CA", None);
    let c = leaf_with(p, Some(&other_ca));
    let m = verify(&expect(&[rec(3, 1, 1, &c)]), &c, &[], now(), algs());
    assert!(m.is_ok(), "{m:?}");
}

#[test]
fn dane_ee_does_not_match_a_certificate_further_up_the_chain() {
    let root = ca("Root", None);
    let c = leaf(&["mx.example.test"], Some(&root));
    let got = verify(
        &expect(&[rec(3, 0, 1, &root.der)]),
        &c,
        std::slice::from_ref(&root.der),
        now(),
        algs(),
    );
    let why = got.unwrap_err().0;
    assert!(
        why.starts_with("no TLSA record matched: certificate SHA-256 "),
        "{why}"
    );
}

#[test]
fn a_mismatch_names_both_digests_and_the_records() {
    let c = leaf(&["mx.example.test"], None);
    let other = leaf(&["mx.example.test"], None);
    let r = rec(3, 1, 1, &other);
    let why = verify(&expect(std::slice::from_ref(&r)), &c, &[], now(), algs())
        .unwrap_err()
        .0;
    let cert = hex(&digest(&aws_lc_rs::digest::SHA256, c.as_ref()));
    let key = hex(&digest(&aws_lc_rs::digest::SHA256, &spki(&c)));
    assert_eq!(
        why,
        format!(
            "no TLSA record matched: certificate SHA-256 {cert} / key SHA-256 {key} (records: {r})"
        )
    );
}

#[test]
fn one_changed_byte_is_a_mismatch_for_every_matching_type() {
    let c = leaf(&["mx.example.test"], None);
    for matching in 0..=2 {
        let mut r = rec(3, 1, matching, &c);
        if let Some(b) = r.data.last_mut() {
            *b ^= 1;
        }
        assert!(!matches(&r, &c), "matching type {matching}");
        assert!(verify(&expect(&[r]), &c, &[], now(), algs()).is_err());
    }
}

#[test]
fn pkix_usages_and_unknown_fields_are_unusable() {
    let c = leaf(&["mx.example.test"], None);
    assert_eq!(usability(&rec(0, 1, 1, &c)), Err(Unusable::PkixUsage(0)));
    assert_eq!(usability(&rec(1, 1, 1, &c)), Err(Unusable::PkixUsage(1)));
    assert_eq!(usability(&rec(4, 1, 1, &c)), Err(Unusable::UnknownUsage(4)));
    let mut r = rec(3, 1, 1, &c);
    r.selector = 2;
    assert_eq!(usability(&r), Err(Unusable::UnknownSelector(2)));
    let mut r = rec(3, 1, 1, &c);
    r.matching = 3;
    assert_eq!(usability(&r), Err(Unusable::UnknownMatching(3)));
    let mut r = rec(3, 1, 2, &c);
    r.data.truncate(32);
    assert!(matches!(
        usability(&r),
        Err(Unusable::BadLength { want: 64, .. })
    ));
    let mut r = rec(3, 0, 0, &c);
    r.data.clear();
    assert_eq!(usability(&r), Err(Unusable::Empty));
    assert_eq!(usability(&rec(2, 0, 2, &c)), Ok(()));
    assert_eq!(usability(&rec(3, 0, 0, &c)), Ok(()));
}

#[test]
fn a_set_of_only_unusable_records_gives_no_expectation() {
    let c = leaf(&["mx.example.test"], None);
    // The PKIX records would match: they must still not be used.
    let set = [rec(0, 0, 1, &c), rec(1, 1, 1, &c)];
    assert_eq!(DaneExpect::new(&set, &names()), None);
    // A usable record among them: only that one is kept.
    let mixed = [rec(1, 1, 1, &c), rec(3, 1, 1, &c)];
    let e = DaneExpect::new(&mixed, &names()).unwrap();
    assert_eq!(e.records, vec![rec(3, 1, 1, &c)]);
}

#[test]
fn pkix_ee_is_never_used_even_if_it_matches() {
    let c = leaf(&["mx.example.test"], None);
    let other = leaf(&["mx.example.test"], None);
    let e = DaneExpect {
        records: vec![rec(1, 1, 1, &c), rec(3, 1, 1, &other)],
        names: names(),
    };
    assert!(verify(&e, &c, &[], now(), algs()).is_err());
}

#[test]
fn dane_ta_matches_the_issuer_for_every_selector_and_matching_type() {
    let root = ca("Example Root", None);
    let c = leaf(&["mx.example.test"], Some(&root));
    for selector in 0..=1 {
        for matching in 0..=2 {
            let r = rec(2, selector, matching, &root.der);
            let m = verify(
                &expect(std::slice::from_ref(&r)),
                &c,
                std::slice::from_ref(&root.der),
                now(),
                algs(),
            )
            .unwrap();
            assert_eq!((m.record, m.depth), (r, 1));
        }
    }
}

#[test]
fn dane_ta_through_an_intermediate_at_either_depth() {
    let root = ca("Example Root", None);
    let inter = ca("Example Intermediate", Some(&root));
    let c = leaf(&["example.test"], Some(&inter));
    let chain = [inter.der.clone(), root.der.clone()];
    let m = verify(
        &expect(&[rec(2, 1, 1, &root.der)]),
        &c,
        &chain,
        now(),
        algs(),
    )
    .unwrap();
    assert_eq!(m.depth, 2);
    let m = verify(
        &expect(&[rec(2, 0, 1, &inter.der)]),
        &c,
        &chain,
        now(),
        algs(),
    )
    .unwrap();
    assert_eq!(m.depth, 1);
    assert!(
        m.to_string()
            .contains("(DANE-TA) matched the trust-anchor certificate")
    );
}

#[test]
fn dane_ta_requires_a_reference_name() {
    let root = ca("Example Root", None);
    let c = leaf(&["mx.elsewhere.test"], Some(&root));
    let why = verify(
        &expect(&[rec(2, 1, 1, &root.der)]),
        &c,
        std::slice::from_ref(&root.der),
        now(),
        algs(),
    )
    .unwrap_err()
    .0;
    assert!(why.contains("certificate name mismatch: got mx.elsewhere.test, wanted example.test or mx.example.test"), "{why}");
    // A wildcard covering the MX host is a match.
    let c = leaf(&["*.example.test"], Some(&root));
    assert!(
        verify(
            &expect(&[rec(2, 1, 1, &root.der)]),
            &c,
            std::slice::from_ref(&root.der),
            now(),
            algs()
        )
        .is_ok()
    );
}

#[test]
fn dane_ta_requires_the_chain_to_the_matched_certificate() {
    let root = ca("Example Root", None);
    let impostor = ca("Other Root", None);
    // The server sends the right root, but its certificate was issued by another CA.
    let c = leaf(&["mx.example.test"], Some(&impostor));
    let why = verify(
        &expect(&[rec(2, 1, 1, &root.der)]),
        &c,
        std::slice::from_ref(&root.der),
        now(),
        algs(),
    )
    .unwrap_err()
    .0;
    assert!(why.contains("does not chain to it"), "{why}");
}

#[test]
fn dane_ta_checks_the_dates_below_the_anchor() {
    let root = ca("Example Root", None);
    let mut p = leaf_params(&["mx.example.test"]);
    p.not_before = rcgen::date_time_ymd(2001, 1, 1);
    p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let c = leaf_with(p, Some(&root));
    let why = verify(
        &expect(&[rec(2, 1, 1, &root.der)]),
        &c,
        std::slice::from_ref(&root.der),
        now(),
        algs(),
    )
    .unwrap_err()
    .0;
    assert!(why.contains("certificate expired"), "{why}");
}

#[test]
fn dane_ta_absent_from_the_chain_does_not_match() {
    let root = ca("Example Root", None);
    let c = leaf(&["mx.example.test"], Some(&root));
    // RFC 7671 §5.2.2: the server must send the trust anchor; this one did not.
    let why = verify(&expect(&[rec(2, 1, 1, &root.der)]), &c, &[], now(), algs())
        .unwrap_err()
        .0;
    assert!(why.starts_with("no TLSA record matched"), "{why}");
}

#[test]
fn dane_ta_matching_the_end_entity_itself_checks_the_name() {
    let c = leaf(&["mx.example.test"], None);
    assert!(verify(&expect(&[rec(2, 0, 1, &c)]), &c, &[], now(), algs()).is_ok());
    let c = leaf(&["other.test"], None);
    assert!(verify(&expect(&[rec(2, 0, 1, &c)]), &c, &[], now(), algs()).is_err());
}

#[test]
fn garbage_certificates_are_a_mismatch_not_a_panic() {
    let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
    let r = TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![0; 32],
    };
    assert!(!matches(&r, &junk));
    let ta = TlsaRecord {
        usage: 2,
        ..r.clone()
    };
    assert!(
        verify(
            &expect(&[r, ta]),
            &junk,
            std::slice::from_ref(&junk),
            now(),
            algs()
        )
        .is_err()
    );
}

#[test]
fn presentation_format() {
    let r = TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![0xab, 0x01],
    };
    assert_eq!(r.to_string(), "3 1 1 ab01");
    assert_eq!(r.usage_name(), "DANE-EE");
}

#[test]
fn the_peer_verifier_records_the_match_or_the_precise_reason() {
    use crate::client::{Expect, PeerTrust, PeerVerifier};
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::ServerName;
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let c = leaf(&["mx.example.test"], None);
    let name = ServerName::try_from("mx.example.test").unwrap();
    let good = rec(3, 1, 1, &c);
    let v = PeerVerifier::new(
        Arc::new(rustls::RootCertStore::empty()),
        provider.clone(),
        Expect::Dane(expect(std::slice::from_ref(&good))),
        "mx.example.test",
    );
    assert!(v.verify_server_cert(&c, &[], &name, &[], now()).is_ok());
    assert_eq!(v.outcome(), Some(Ok(PeerTrust::Verified)));
    assert_eq!(v.dane_match().map(|m| m.record), Some(good));

    let other = leaf(&["mx.example.test"], None);
    let v = PeerVerifier::new(
        Arc::new(rustls::RootCertStore::empty()),
        provider,
        Expect::Dane(expect(&[rec(3, 1, 1, &other)])),
        "mx.example.test",
    );
    assert!(v.verify_server_cert(&c, &[], &name, &[], now()).is_err());
    match v.outcome() {
        Some(Err(why)) => assert!(why.0.starts_with("no TLSA record matched: "), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(v.dane_match(), None);
}

#[test]
fn dns_records_name_every_served_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (certs, _) = crate::selfsigned::ensure(dir.path(), "mx.example.test").unwrap();
    // Configured certificates are used as given; none configured: the self-signed pair.
    for text in [
        dns_records_text(
            "mx.example.test.",
            &certs,
            std::path::Path::new("/nonexistent"),
        ),
        dns_records_text("mx.example.test", &[], dir.path()),
    ] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("_25._tcp.mx.example.test. IN TLSA 3 1 1 "))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        for c in &certs {
            let leaf = crate::read_chain(&c.chain).unwrap().remove(0);
            let want = ee_spki_sha256(&leaf).unwrap();
            assert!(
                lines.iter().any(|l| l.ends_with(&hex(&want.data))),
                "{text}"
            );
            // The printed record authenticates the certificate it was made from.
            let e = expect(&[want]);
            assert!(verify(&e, &leaf, &[], now(), algs()).is_ok());
        }
        assert!(text.contains("RSA"), "{text}");
        assert!(text.contains("P-256"), "{text}");
        assert!(text.contains("publish its record next to"), "{text}");
    }
    let empty = tempfile::tempdir().unwrap();
    let text = dns_records_text("mx.example.test", &[], empty.path());
    assert!(
        text.contains("no self-signed certificate exists yet"),
        "{text}"
    );
}
