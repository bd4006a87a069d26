//! DNSSEC status against a real signed tree (knot signs a fake root and its zones; unbound
//! validates): `trust-ad` believes the AD bit of the validating unbound; `validate` lets
//! hickory validate the answers of a non-validating unbound from the fake root's key.
//! Each mode sees the same zones and must reach the same verdicts.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use postern_dns::{
    DnssecMode, LookupError, MxAnswer, ProbeResult, Resolver, ResolverConfig, Security,
};
use postern_test_support::signed_dns::{SignedDnsTree, Zone};

const HASH: &str = "abababababababababababababababababababababababababababababababab";

fn tree() -> Option<SignedDnsTree> {
    SignedDnsTree::start(&[
        Zone::secure("secure.test")
            .record("@ MX 10 mx")
            .record("mx A 127.0.0.1")
            .record("mx AAAA ::1")
            .record(&format!("_25._tcp.mx TLSA 3 1 1 {HASH}"))
            .record("@ TXT \"v=spf1 -all\"")
            .record("www CNAME mx")
            .record("_25._tcp.alias CNAME _25._tcp.mx")
            .record("out CNAME mx.insecure.test."),
        Zone::insecure("insecure.test")
            .record("@ MX 10 mx")
            .record("mx A 127.0.0.2")
            .record(&format!("_25._tcp.mx TLSA 3 1 1 {HASH}")),
        Zone::bogus("bogus.test")
            .record("@ MX 10 mx")
            .record("mx A 127.0.0.3")
            .record(&format!("_25._tcp.mx TLSA 3 1 1 {HASH}")),
    ])
}

fn resolver(ns: SocketAddr, dnssec: DnssecMode, anchor: Option<PathBuf>) -> Resolver {
    Resolver::new(&ResolverConfig {
        nameservers: vec![ns],
        timeout: postern_config::Duration(Duration::from_secs(3)),
        attempts: 2,
        dnssec,
        trust_anchor: anchor,
        ..ResolverConfig::default()
    })
    .unwrap()
}

/// The verdicts every DNSSEC mode must reach on the tree.
async fn verdicts(r: &Resolver, mode: &str) {
    // A secure zone: MX, addresses, TLSA, TXT.
    let mx = r.mx("secure.test").await.unwrap();
    assert_eq!(mx.security, Security::Secure, "{mode}: MX secure.test");
    assert_eq!(
        mx.records,
        MxAnswer::Hosts(vec![(10, "mx.secure.test".into())])
    );
    let a = r.addresses("mx.secure.test").await.unwrap();
    assert_eq!(
        a.security,
        Security::Secure,
        "{mode}: A/AAAA mx.secure.test"
    );
    assert_eq!(a.records.len(), 2, "{mode}: {:?}", a.records);
    assert_eq!(a.canonical, None);
    let t = r.tlsa(25, "mx.secure.test").await.unwrap();
    assert_eq!(t.security, Security::Secure, "{mode}: TLSA");
    assert_eq!(
        (
            t.records[0].usage,
            t.records[0].selector,
            t.records[0].matching
        ),
        (3, 1, 1)
    );
    assert_eq!(
        r.txt("secure.test").await.unwrap().security,
        Security::Secure
    );

    // A secure denial: the host exists without MX (implicit MX, secure).
    let nomx = r.mx("mx.secure.test").await.unwrap();
    assert_eq!(nomx.records, MxAnswer::NoMx, "{mode}");
    assert_eq!(nomx.security, Security::Secure, "{mode}: secure NODATA");
    assert_eq!(
        r.tlsa(25, "www2.secure.test").await.unwrap_err(),
        LookupError::NotFound,
        "{mode}"
    );

    // CNAMEs inside the secure zone: secure, with the expanded name.
    let www = r.addresses("www.secure.test").await.unwrap();
    assert_eq!(www.security, Security::Secure, "{mode}: CNAME in zone");
    assert_eq!(www.canonical.as_deref(), Some("mx.secure.test"));
    let alias = r.tlsa(25, "alias.secure.test").await.unwrap();
    assert_eq!(alias.security, Security::Secure, "{mode}: TLSA via CNAME");
    assert_eq!(alias.canonical.as_deref(), Some("_25._tcp.mx.secure.test"));

    // A CNAME into an insecure zone: the weakest link decides.
    let out = r.addresses("out.secure.test").await.unwrap();
    assert_eq!(
        out.security,
        Security::Insecure,
        "{mode}: CNAME to insecure"
    );
    assert_eq!(out.canonical.as_deref(), Some("mx.insecure.test"));
    assert_eq!(
        out.records,
        vec!["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );

    // An insecure delegation: usable, insecure.
    let imx = r.mx("insecure.test").await.unwrap();
    assert_eq!(imx.security, Security::Insecure, "{mode}: MX insecure.test");
    assert_eq!(
        r.addresses("mx.insecure.test").await.unwrap().security,
        Security::Insecure
    );
    assert_eq!(
        r.tlsa(25, "mx.insecure.test").await.unwrap().security,
        Security::Insecure
    );

    // A bogus zone: never an answer.
    for e in [
        r.mx("bogus.test").await.unwrap_err(),
        r.addresses("mx.bogus.test").await.unwrap_err(),
        r.tlsa(25, "mx.bogus.test").await.unwrap_err(),
    ] {
        assert!(e.is_bogus(), "{mode}: {e:?}");
        assert!(e.is_temporary(), "{mode}: {e:?}");
    }
}

#[tokio::test]
async fn trust_ad_believes_the_validating_unbound() {
    let Some(tree) = tree() else { return };
    let r = resolver(tree.unbound_addr, DnssecMode::TrustAd, None);
    verdicts(&r, "trust-ad").await;
    match r.probe_dnssec().await {
        ProbeResult::Secure { .. } => {}
        other => panic!("{other:?}"),
    }

    // The same question of a resolver that does not validate: no AD, so insecure, and
    // the probe says so loudly.
    let plain = resolver(tree.plain_addr, DnssecMode::TrustAd, None);
    assert_eq!(
        plain.mx("secure.test").await.unwrap().security,
        Security::Insecure
    );
    let probe = plain.probe_dnssec().await;
    let w = probe.warning().unwrap();
    assert!(
        w.starts_with("DNSSEC validation unavailable:") && w.contains("AD bit"),
        "{w}"
    );
}

#[tokio::test]
async fn validate_checks_signatures_itself_from_the_trust_anchor() {
    let Some(tree) = tree() else { return };
    let r = resolver(
        tree.plain_addr,
        DnssecMode::Validate,
        Some(tree.root_dnskey.clone()),
    );
    verdicts(&r, "validate").await;
    assert!(matches!(r.probe_dnssec().await, ProbeResult::Secure { .. }));

    // With the real root keys (the built-in default), the fake root cannot validate.
    let wrong = resolver(tree.plain_addr, DnssecMode::Validate, None);
    let e = wrong.mx("secure.test").await.unwrap_err();
    assert!(e.is_bogus(), "{e:?}");
    let probe = wrong.probe_dnssec().await;
    assert!(!probe.is_working(), "{probe:?}");
    assert!(
        probe
            .warning()
            .unwrap()
            .contains("DANE will treat every domain as insecure")
    );
}

#[tokio::test]
async fn off_is_never_secure() {
    let Some(tree) = tree() else { return };
    let r = resolver(tree.unbound_addr, DnssecMode::Off, None);
    assert_eq!(
        r.mx("secure.test").await.unwrap().security,
        Security::Insecure
    );
    assert_eq!(
        r.tlsa(25, "mx.secure.test").await.unwrap().security,
        Security::Insecure
    );
    assert_eq!(r.probe_dnssec().await, ProbeResult::Off);
}

#[test]
fn config_checks() {
    let check = |toml_text: &str| {
        let c: ResolverConfig = toml::from_str(toml_text).unwrap();
        let mut p = postern_config::Problems::new();
        postern_dns::validate(&c, &mut p);
        format!("{p:?}")
    };
    let c: ResolverConfig = toml::from_str("").unwrap();
    assert_eq!(c.dnssec, DnssecMode::TrustAd, "the documented default");
    assert_eq!(c.dnssec_probe, "ns:.");

    let off_loopback =
        check("dnssec = \"trust-ad\"\nnameservers = [\"127.0.0.1:53\", \"192.0.2.53:53\"]");
    assert!(
        off_loopback.contains("nameservers")
            && off_loopback.contains("192.0.2.53:53 is not on loopback"),
        "{off_loopback}"
    );
    assert!(!off_loopback.contains("127.0.0.1:53 is"), "{off_loopback}");
    assert_eq!(
        check("dnssec = \"validate\"\nnameservers = [\"192.0.2.53:53\", \"[::1]:53\"]"),
        check("")
    );
    assert_eq!(
        check("dnssec = \"trust-ad\"\nnameservers = [\"[::1]:5353\"]"),
        check("")
    );

    let anchor_unused = check("dnssec = \"off\"\ntrust_anchor = \"/nonexistent\"");
    assert!(anchor_unused.contains("trust_anchor"), "{anchor_unused}");
    let anchor_missing = check("dnssec = \"validate\"\ntrust_anchor = \"/nonexistent/root.key\"");
    assert!(
        anchor_missing.contains("trust_anchor") && anchor_missing.contains("/nonexistent/root.key"),
        "{anchor_missing}"
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.key");
    std::fs::write(&junk, "this is no DNSKEY\n").unwrap();
    let bad = check(&format!(
        "dnssec = \"validate\"\ntrust_anchor = \"{}\"",
        junk.display()
    ));
    assert!(bad.contains("DNSKEY"), "{bad}");

    assert!(check("dnssec_probe = \"ns\"").contains("dnssec_probe"));
    assert!(check("dnssec_probe = \"bogus:.\"").contains("unknown type"));
    assert_eq!(check("dnssec_probe = \"\""), check(""));
    assert!(toml::from_str::<ResolverConfig>("dnssec = \"yes\"").is_err());
}
