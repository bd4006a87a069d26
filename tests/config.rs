//! The configuration as an operator meets it: the reference file, check-config's output
//! and exit codes, and every value type's error message.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use postern::Config;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_postern"))
}

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Key paths of a TOML value, arrays of tables collapsed (`listener.address`).
fn keys(v: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                keys(v, &p, out);
            }
        }
        toml::Value::Array(a) => {
            for item in a {
                keys(item, prefix, out);
            }
        }
        _ => {}
    }
}

/// A configuration with every optional part filled in, so that serialising it names
/// every key the schema knows.
fn everything() -> Config {
    let mut c: Config = postern::config::load(None).unwrap().config;
    c.server.hostname = Some("mx.example.org".into());
    c.route[0].recipients = Some(vec!["alice".into()]);
    c.queue.report_concurrency = Some(5);
    let cert = postern_tls::CertificateConfig {
        chain: "c.pem".into(),
        key: "k.pem".into(),
    };
    c.tls.certificate.push(cert.clone());
    c.listener[0].client_ca = Some("ca.pem".into());
    c.listener[0].crl = vec!["partners.crl".into()];
    c.relay.trusted_client_certificates = vec![format!("sha256:{}", "0".repeat(64))];
    c.inbound.partner.push(postern_inbound::PartnerConfig {
        domains: vec!["partner.example".into()],
        require_tls: true,
        ca: Some("partner-ca.pem".into()),
        fingerprints: vec![format!("sha256:{}", "1".repeat(64))],
        names: vec!["mx.partner.example".into()],
        may_relay: true,
    });
    c.outbound.helo_name = Some("mx.example.org".into());
    c.outbound.client_certificate = Some(cert.clone());
    c.outbound.ca = Some("ca.pem".into());
    c.outbound.policy.push(postern_relay::PolicyConfig {
        domain: "example.net".into(),
        tls: postern_relay::TlsLevel::Fingerprint,
        match_names: vec!["nexthop".into()],
        ca: Some("ca.pem".into()),
        fingerprints: vec!["sha256:00".into()],
        client_certificate: Some(postern_relay::outbound::config::ClientCertChoice::Own(cert)),
        profile: Some(postern_tls::Profile::Default),
    });
    c.resolver.nameservers.push("127.0.0.1:53".parse().unwrap());
    c.server.queue_dir = Some("/var/spool/postern".into());
    c.metrics.listen = Some("127.0.0.1:9325".parse().unwrap());
    c.auth.authserv_id = Some("mx.example.org".into());
    c.auth.dkim_sign.push(postern_auth::DkimSignConfig {
        domain: "example.org".into(),
        selector: "s1".into(),
        key: "k.pem".into(),
        algorithm: postern_auth::SignAlgorithm::Ed25519Sha256,
        headers: postern_auth::config::default_signed_headers(),
        sources: vec!["trusted_networks".into()],
    });
    c
}

#[test]
fn reference_config_names_every_key_and_parses() {
    let text = std::fs::read_to_string(repo("config/postern.toml")).unwrap();
    // It must parse against the schema (unknown or misspelt keys fail here).
    let parsed: Result<Config, _> = postern_config::parse_toml("config/postern.toml", &text);
    let parsed = parsed.unwrap_or_else(|e| panic!("{e}"));
    assert!(!parsed.listener.is_empty());
    // Full validation fails only for the example certificate and CA files under
    // /etc/postern, which do not exist here.
    if let Err(errs) = postern::config::load_str("config/postern.toml", &text) {
        for e in errs {
            assert!(
                e.message.contains("/etc/postern/"),
                "unexpected problem in the reference: {e}"
            );
        }
    }
    let mut schema = BTreeSet::new();
    keys(
        &toml::Value::try_from(everything()).unwrap(),
        "",
        &mut schema,
    );
    let mut reference = BTreeSet::new();
    keys(
        &toml::from_str::<toml::Value>(&text).unwrap(),
        "",
        &mut reference,
    );
    let missing: Vec<_> = schema.difference(&reference).collect();
    assert!(
        missing.is_empty(),
        "keys missing from config/postern.toml: {missing:?}"
    );
}

#[test]
fn embedded_default_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("check-config")
        .current_dir(dir.path())
        .env_remove("POSTERN_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(built-in default configuration): configuration is valid"),
        "{stdout}"
    );
    assert!(stdout.contains("127.0.0.1:2525"), "{stdout}");
}

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = bin()
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (out.status.code().unwrap_or(-1), stderr)
}

const BASE: &str = "[server]\nstate_dir = \"/tmp/postern-test-unused\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n";

#[test]
fn errors_name_file_line_column_and_key_with_exit_code_2() {
    let cases: &[(&str, &str)] = &[
        (
            "[server]\nstate_dir = \"x\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\nmax_message_size = \"12 parsecs\"\n",
            "FILE:5:20: listener[0].max_message_size: invalid size unit",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:2525\"\ncommand_timeout = 300\n",
            "FILE:3:19: listener[0].command_timeout: a duration needs a unit",
        ),
        (
            "[[listener]]\naddres = \"127.0.0.1:2525\"\n",
            "FILE:2:1: listener[0].addres: unknown field `addres`",
        ),
        (
            "[relay]\ntrusted_networks = [\"10.0.0.1/8\"]\n",
            "FILE:2:20: relay.trusted_networks: invalid network \"10.0.0.1/8\": host bits are set after /8 (did you mean 10.0.0.0/8?)",
        ),
        ("[server\n", "FILE:1:8: (syntax):"),
        (
            "[[listener]]\naddress = \"localhost:25\"\n",
            "FILE:2:11: listener[0].address:",
        ),
        (
            "[queue]\nmax_age = \"forever\"\n",
            "FILE:2:11: queue.max_age: invalid duration",
        ),
    ];
    for (text, want) in cases {
        let (code, stderr) = check(text);
        assert_eq!(code, 2, "{text}: {stderr}");
        assert!(
            stderr.starts_with(want),
            "for {text:?}\nwanted: {want}\ngot:    {stderr}"
        );
    }
}

#[test]
fn semantic_errors_are_located_too() {
    let (code, err) = check(&format!(
        "{BASE}[relay]\nlocal_domains = [\"example.org\"]\n"
    ));
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "FILE:6:18: relay.local_domains[0]: local domain \"example.org\" has no route"
        ),
        "{err}"
    );

    let (_, err) = check(&format!("{BASE}require_tls = true\nmode = \"plain\"\n"));
    assert!(
        err.starts_with("FILE:5:1: listener[0].require_tls: a plain listener cannot require TLS"),
        "{err}"
    );

    let (_, err) = check(&format!(
        "{BASE}[[route]]\ndomain = \"a.test\"\nnext_hop = \"maildir:x\"\n[[route]]\ndomain = \"A.test\"\nnext_hop = \"maildir:y\"\n"
    ));
    assert!(
        err.contains("route[1].domain: \"A.test\" is already routed by route[0]"),
        "{err}"
    );

    let (_, err) = check(&format!(
        "{BASE}[[tls.certificate]]\nchain = \"/nonexistent/chain.pem\"\nkey = \"/nonexistent/key.pem\"\n"
    ));
    assert!(
        err.contains("tls.certificate[0].chain: cannot read /nonexistent/chain.pem"),
        "{err}"
    );

    let (_, err) = check(&format!(
        "{BASE}[[route]]\ndomain = \"a.test\"\nnext_hop = \"smtp:192.0.2.1\"\n"
    ));
    assert!(
        err.contains(
            "route[0].next_hop: \"smtp:192.0.2.1\": an IP address needs brackets: smtp:[192.0.2.1]"
        ),
        "{err}"
    );

    let (_, err) = check("");
    assert!(
        err.contains("listener: at least one [[listener]] is needed"),
        "{err}"
    );

    let (code, err) = check(&format!("{BASE}[queue]\nretry = []\n"));
    assert_eq!(code, 2);
    assert!(
        err.contains("queue.retry: needs at least one delay"),
        "{err}"
    );
}

#[test]
fn unreadable_file_and_env_var() {
    let out = bin()
        .args(["check-config", "--config", "/nonexistent/postern.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "/nonexistent/postern.toml:1:1: (file): cannot read the configuration file"
        ),
        "{err}"
    );
    let out = bin()
        .arg("check-config")
        .env("POSTERN_CONFIG", "/nonexistent/env.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/env.toml:1:1:"));
}

#[test]
fn serve_refuses_an_invalid_config_with_the_same_message() {
    let (_, expected) = check("[queue]\nmax_age = \"forever\"\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[queue]\nmax_age = \"forever\"\n").unwrap();
    let out = bin().arg("serve").arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    assert!(err.contains(expected.lines().next().unwrap()), "{err}");
}

#[test]
fn help_and_version() {
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "serve",
        "check-config",
        "--config",
        "POSTERN_CONFIG",
        "--log-format",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let out = bin().arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("postern {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn policy_explain_names_the_entry_and_what_it_checks() {
    let dir = tempfile::tempdir().unwrap();
    let ca = postern_test_support::ca::TestCa::new("Explain CA").write_ca(dir.path(), "ca");
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        format!(
            "{BASE}[relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n\
             [[route]]\ndomain = \"partner.test\"\nnext_hop = \"smtp:[192.0.2.25]:2525\"\n\
             [[outbound.policy]]\ndomain = \".gov.test\"\ntls = \"secure\"\nca = \"{}\"\n\
             [[outbound.policy]]\ndomain = \"partner.test\"\ntls = \"encrypt\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let explain = |domain: &str| {
        let out = bin()
            .args(["policy", "explain", domain, "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain("mail.dept.gov.test");
    assert!(
        text.contains("policy:     [[outbound.policy]] #0 domain = \".gov.test\""),
        "{text}"
    );
    assert!(text.contains("tls level:  secure"), "{text}");
    assert!(
        text.contains("carry one of these names: mail.dept.gov.test, .mail.dept.gov.test"),
        "{text}"
    );
    assert!(text.contains("no [[route]] matches: MX lookup"), "{text}");
    let text = explain("partner.test");
    assert!(
        text.contains("next hop:   smtp:[192.0.2.25]:2525 (from [[route]])"),
        "{text}"
    );
    assert!(text.contains("tls level:  encrypt"), "{text}");
    assert!(text.contains("never plaintext"), "{text}");
    let text = explain("unknown.test");
    assert!(text.contains("[outbound] tls = \"may\""), "{text}");
    let text = explain("local.test");
    assert!(text.contains("local Maildir"), "{text}");
    let out = bin()
        .args(["policy", "explain", "not a domain", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn outbound_policy_errors_are_located() {
    let (code, err) = check(&format!(
        "{BASE}[[outbound.policy]]\ndomain = \"a.test\"\ntls = \"fingerprint\"\n[[outbound.policy]]\ndomain = \"b.test\"\ntls = \"secure\"\nmatch = [\"hostname\"]\n[[outbound.policy]]\ndomain = \"c.test\"\ntls = \"dane\"\nmatch = [\"mx.c.test\"]\n"
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("outbound.policy[0].fingerprints: tls = \"fingerprint\" needs at least one"),
        "{err}"
    );
    assert!(
        err.contains("outbound.policy[1].match[0]: \"hostname\" is not usable here"),
        "{err}"
    );
    assert!(
        err.contains(
            "outbound.policy[2].match: match names are only used with tls = \"verify\" or \"secure\""
        ),
        "{err}"
    );
    let (_, err) = check(&format!("{BASE}[outbound]\ntls = \"paranoid\"\n"));
    assert!(
        err.contains("outbound.tls: unknown variant `paranoid`"),
        "{err}"
    );
}

#[test]
fn example_configs_load() {
    for name in [
        "config/examples/internet-gateway.toml",
        "config/examples/partner-relay.toml",
    ] {
        let text = std::fs::read_to_string(repo(name)).unwrap();
        let parsed: Result<Config, _> = postern_config::parse_toml(name, &text);
        let parsed = parsed.unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.listener.is_empty(), "{name}");
        // Only the certificate, key and CA files under /etc/postern are missing here.
        if let Err(errs) = postern::config::load_str(name, &text) {
            for e in errs {
                assert!(
                    e.message.contains("/etc/postern/"),
                    "unexpected problem in {name}: {e}"
                );
            }
        }
    }
}

#[tokio::test]
async fn policy_explain_resolve_lists_the_hosts_in_order() {
    let dns = postern_test_support::dns::TestDns::start().await;
    dns.add_mx("partner.test", 20, "mx2.partner.test");
    dns.add_mx("partner.test", 10, "mx1.partner.test");
    dns.add_a("mx1.partner.test", "192.0.2.1".parse().unwrap());
    dns.add_aaaa("mx2.partner.test", "2001:db8::2".parse().unwrap());
    dns.null_mx("nomail.test");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        format!("{BASE}[resolver]\nnameservers = [\"{}\"]\n", dns.addr()),
    )
    .unwrap();
    let run = move |domain: &str| {
        let out = bin()
            .args(["policy", "explain", "--resolve", domain, "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = tokio::task::spawn_blocking(move || (run("partner.test"), run("nomail.test")))
        .await
        .unwrap();
    let (a, b) = text;
    let one = a
        .find("10 mx1.partner.test -> 192.0.2.1")
        .unwrap_or_else(|| panic!("{a}"));
    let two = a
        .find("20 mx2.partner.test -> 2001:db8::2")
        .unwrap_or_else(|| panic!("{a}"));
    assert!(one < two, "{a}");
    assert!(b.contains("null MX (RFC 7505)"), "{b}");
}

#[test]
fn embedded_default_is_valid() {
    let l = postern::config::load(None).unwrap();
    assert_eq!(l.config.listener.len(), 1);
    assert_eq!(l.config.listener[0].address.to_string(), "127.0.0.1:2525");
    assert_eq!(l.config.relay.local_domains, vec!["localhost"]);
}

#[test]
fn check_config_warns_when_dane_levels_meet_dnssec_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dane.toml");
    let text = format!(
        "{BASE}[resolver]\nnameservers = [\"127.0.0.1:53\"]\ndnssec = \"off\"\n[outbound]\ntls = \"dane\"\n[[outbound.policy]]\ndomain = \"partner.example\"\ntls = \"dane-only\"\n"
    );
    std::fs::write(&path, text).unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a warning, not an error: {stdout}");
    assert!(
        stdout.contains("warning: outbound.policy[0] (partner.example) is \"dane-only\" but [resolver] dnssec = \"off\"")
            && stdout.contains("defers with 4.7.5"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: [outbound] tls is \"dane\" but [resolver] dnssec = \"off\"")
            && stdout.contains("behaves as \"may\""),
        "{stdout}"
    );
}
