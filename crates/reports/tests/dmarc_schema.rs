//! Generated DMARC aggregate XML against the RFC 7489 Appendix C schema
//! (tests/schemas/dmarc-aggregate.xsd, checked with xmllint, installed with apt-get when
//! missing; skipped LOUDLY when it cannot be had), and read back by mail-auth's parser.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use postern_reports::dmarc::build;
use postern_reports::event::{Dmarc, Event};
use postern_reports::tlsrpt::Submitter;

const T0: u64 = 1_767_225_600;

fn ev(ip: &str, pass: bool) -> Event {
    Event::Dmarc(Dmarc {
        t: T0 + 30,
        ip: ip.parse().unwrap(),
        header_from: "sender.example".into(),
        policy: "reject".into(),
        p: "reject".into(),
        sp: "quarantine".into(),
        adkim: "r".into(),
        aspf: "s".into(),
        testing: false,
        rua: vec!["mailto:dmarc@sender.example".into()],
        disposition: if pass { "none" } else { "reject" }.into(),
        result: if pass { "pass" } else { "fail" }.into(),
        dkim_aligned: pass,
        spf_aligned: false,
        spf_domain: "bounce.sender.example".into(),
        spf_result: "softfail".into(),
        dkim: if pass {
            vec![("sender.example".into(), "s1 & <x>".into(), "pass".into())]
        } else {
            vec![]
        },
    })
}

fn xmllint_available() -> bool {
    let probe = || {
        Command::new("xmllint")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if probe() {
        return true;
    }
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-q", "libxml2-utils"])
        .status();
    probe()
}

#[test]
fn dmarc_reports_validate_against_the_schema_and_parse_back() {
    let events = vec![
        ev("192.0.2.1", true),
        ev("192.0.2.1", true),
        ev("2001:db8::1", false),
    ];
    let who = Submitter {
        organization: "Example Org".into(),
        from: "reports@example.org".into(),
        contact: "postmaster@example.org".into(),
        domain: "example.org".into(),
    };
    let reports = build(&events, T0, T0 + 86_400, &who);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.messages, 3);
    assert!(
        r.xml.contains("<email>reports@example.org</email>"),
        "{}",
        r.xml
    );
    assert!(
        r.xml
            .contains("<extra_contact_info>postmaster@example.org</extra_contact_info>"),
        "{}",
        r.xml
    );
    assert!(
        r.xml
            .contains("<envelope_from>bounce.sender.example</envelope_from>"),
        "{}",
        r.xml
    );
    let back = postern_reports::receive::dmarc_report_xml(r.xml.as_bytes()).unwrap();
    assert_eq!(back.domain(), "sender.example");
    assert_eq!(back.org_name(), "Example Org");
    assert_eq!(back.records().len(), 2);
    let counts: u32 = back.records().iter().map(|r| r.count()).sum();
    assert_eq!(counts, 3);

    if !xmllint_available() {
        assert!(
            std::env::var_os("POSTERN_REQUIRE_ALL_TESTS").is_none_or(|v| v != "1"),
            "xmllint is needed (POSTERN_REQUIRE_ALL_TESTS=1) but could not be installed"
        );
        eprintln!(
            "\n*** SKIPPED: DMARC XSD validation: xmllint is not installed and apt-get could not install it ***\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("report.xml");
    std::fs::write(&f, &r.xml).unwrap();
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/dmarc-aggregate.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.xml
    );
}
