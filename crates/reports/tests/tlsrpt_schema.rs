//! Generated TLS-RPT JSON against the RFC 8460 schema (tests/schemas/tlsrpt.schema.json,
//! checked with python3-jsonschema, installed with apt-get when missing; the check is
//! skipped LOUDLY when it cannot be had), and read back by mail-auth's parser.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use postern_reports::event::{Event, Outbound};
use postern_reports::tlsrpt::{Submitter, build};

const T0: u64 = 1_767_225_600;

fn out(policy_type: &str, domain: &str, result: Option<&str>) -> Event {
    let (strings, mx) = match policy_type {
        "tlsa" => (vec!["3 1 1 0123abcd".to_string()], vec![]),
        "sts" => (
            vec![
                "version: STSv1".into(),
                "mode: enforce".into(),
                "mx: *.b.test".into(),
            ],
            vec!["*.b.test".to_string()],
        ),
        _ => (vec![], vec![]),
    };
    Event::Outbound(Outbound {
        t: T0 + 60,
        policy_type: policy_type.into(),
        policy_domain: domain.into(),
        recipient_domain: domain.into(),
        policy_strings: strings,
        mx_patterns: mx,
        mx_host: format!("mx.{domain}"),
        ip: "2001:db8::25".parse().unwrap(),
        sending_ip: Some("2001:db8::1".parse().unwrap()),
        result: result.map(str::to_string),
        detail: result.map(|r| format!("{r} (test)")),
        tls_version: result.is_none().then(|| "TLSv1.3".into()),
        cipher: result.is_none().then(|| "TLS13_AES_256_GCM_SHA384".into()),
        verified: result.is_none(),
        own_report: false,
    })
}

fn jsonschema_available() -> bool {
    let probe = || {
        Command::new("python3")
            .args(["-c", "import jsonschema"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if probe() {
        return true;
    }
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-q", "python3-jsonschema"])
        .status();
    probe()
}

#[test]
fn tls_reports_validate_against_the_rfc_8460_schema_and_parse_back() {
    let events = vec![
        out("no-policy-found", "a.test", None),
        out("no-policy-found", "a.test", Some("starttls-not-supported")),
        out("sts", "b.test", None),
        out("sts", "b.test", Some("certificate-host-mismatch")),
        out("sts", "b.test", Some("certificate-host-mismatch")),
        out("tlsa", "mx.c.test", Some("dnssec-invalid")),
    ];
    let who = Submitter {
        organization: "Example Org".into(),
        from: "reports@example.org".into(),
        contact: "postmaster@example.org".into(),
        domain: "example.org".into(),
    };
    let reports = build(&events, T0, T0 + 86_400, &who);
    assert_eq!(reports.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for r in &reports {
        let json = r.json.to_string();
        assert!(!json.contains("null"), "{json}");
        let back = postern_reports::receive::tls_report_json(json.as_bytes()).unwrap();
        assert_eq!(back.policies.len(), 1);
        assert_eq!(back.policies[0].policy.policy_domain, r.policy_domain);
        assert_eq!(
            u64::from(back.policies[0].summary.total_failure),
            r.failures
        );
        let p = dir.path().join(format!("{}.json", r.policy_domain));
        std::fs::write(&p, json).unwrap();
        files.push(p);
    }
    let b = reports
        .iter()
        .find(|r| r.policy_domain == "b.test")
        .unwrap();
    assert_eq!(b.json["policies"][0]["policy"]["mx-host"][0], "*.b.test");
    assert_eq!(
        b.json["policies"][0]["failure-details"][0]["failed-session-count"],
        2
    );
    assert_eq!(
        b.json["policies"][0]["failure-details"][0]["sending-mta-ip"],
        "2001:db8::1"
    );

    if !jsonschema_available() {
        assert!(
            std::env::var_os("POSTERN_REQUIRE_ALL_TESTS").is_none_or(|v| v != "1"),
            "python3-jsonschema is needed (POSTERN_REQUIRE_ALL_TESTS=1) but could not be installed"
        );
        eprintln!(
            "\n*** SKIPPED: RFC 8460 schema validation: python3-jsonschema is not installed and apt-get could not install it ***\n"
        );
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/tlsrpt.schema.json");
    let script = "import json,sys,jsonschema\n\
        s=json.load(open(sys.argv[1]))\n\
        jsonschema.Draft7Validator.check_schema(s)\n\
        for f in sys.argv[2:]:\n    jsonschema.validate(json.load(open(f)), s)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "schema validation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
