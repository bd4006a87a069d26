//! Repeated look-ups are answered from the cache: one DNS query per name per TTL.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use postern_auth::config::{AuthConfig, DkimMode, DmarcPolicy, SpfPolicy};
use postern_auth::{Received, Verifier};
use postern_test_support::dns::TestDns;

/// An authenticator on its own `postern_dns` resolver asking the loopback server.
fn authenticator(dns: &TestDns) -> mail_auth::MessageAuthenticator {
    let cfg = postern_dns::ResolverConfig {
        nameservers: vec![dns.addr()],
        timeout: postern_config::Duration(Duration::from_secs(2)),
        ..postern_dns::ResolverConfig::default()
    };
    postern_auth::dns::for_resolver(&postern_dns::Resolver::new(&cfg).unwrap())
}

#[tokio::test]
async fn spf_includes_and_dkim_keys_are_fetched_once() {
    let dns = TestDns::start().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dkim-pass-rsa");
    for line in std::fs::read_to_string(dir.join("zone.txt"))
        .unwrap()
        .lines()
    {
        let (name, value) = line.strip_prefix("TXT ").unwrap().split_once(' ').unwrap();
        dns.add_txt(name, value);
    }
    dns.add_txt("example.org", "v=spf1 include:_spf.example.org -all");
    dns.add_txt("_spf.example.org", "v=spf1 ip4:192.0.2.0/24 -all");
    dns.add_txt("_dmarc.example.org", "v=DMARC1; p=reject");
    let message = std::fs::read(dir.join("message.eml")).unwrap();
    let cfg = AuthConfig {
        spf: SpfPolicy::Tag,
        dkim: DkimMode::Verify,
        dmarc: DmarcPolicy::Tag,
        ..AuthConfig::default()
    };
    let v = Verifier::new(&cfg, authenticator(&dns), "mx.postern.test");
    let ip = "192.0.2.10".parse().unwrap();
    for _ in 0..5 {
        let spf = v
            .spf(ip, "client.example.org", "a@example.org")
            .await
            .unwrap();
        assert_eq!(spf.check.result(), postern_auth::SpfResult::Pass);
        let verdict = v
            .message(
                Received {
                    ip,
                    helo: "client.example.org",
                    mail_from: "a@example.org",
                    message: &message,
                    complete: true,
                },
                Some(&spf.check),
            )
            .await;
        assert_eq!(verdict.summary, "spf=pass dkim=pass dmarc=pass");
    }
    assert_eq!(dns.query_count("example.org"), 1, "SPF record");
    assert_eq!(dns.query_count("_spf.example.org"), 1, "SPF include");
    assert_eq!(dns.query_count("s1._domainkey.example.org"), 1, "DKIM key");
    assert_eq!(dns.query_count("_dmarc.example.org"), 1, "DMARC record");
}
