//! The shared resolver against a loopback DNS server (unsigned): answer shapes, the DNSSEC
//! status every answer carries, the cache, and the bound on a resolver that never answers,
//! with `dnssec = "off"` (hickory) and `dnssec = "trust-ad"` (our own exchange) alike.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use postern_dns::{DnssecMode, LookupError, MxAnswer, Resolver, ResolverConfig, Security};
use postern_test_support::dns::TestDns;

const MODES: [DnssecMode; 2] = [DnssecMode::Off, DnssecMode::TrustAd];

fn resolver(dns: &TestDns, timeout: Duration, attempts: usize, dnssec: DnssecMode) -> Resolver {
    Resolver::new(&ResolverConfig {
        nameservers: vec![dns.addr()],
        timeout: postern_config::Duration(timeout),
        attempts,
        dnssec,
        ..ResolverConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn mx_answers_carry_their_status_and_are_cached() {
    for mode in MODES {
        let dns = TestDns::start().await;
        dns.add_mx("example.test", 20, "MX2.example.test");
        dns.add_mx("example.test", 10, "mx1.example.test");
        dns.null_mx("null.test");
        dns.add_a("nomx.test", "192.0.2.1".parse().unwrap());
        let r = resolver(&dns, Duration::from_secs(2), 2, mode);

        for _ in 0..3 {
            let a = r.mx("example.test").await.unwrap();
            assert_eq!(a.security, Security::Insecure, "unsigned ({mode:?})");
            assert_eq!(
                a.records,
                MxAnswer::Hosts(vec![
                    (10, "mx1.example.test".into()),
                    (20, "mx2.example.test".into())
                ])
            );
        }
        assert_eq!(
            dns.query_count("example.test"),
            1,
            "answered from the cache"
        );
        assert_eq!(r.mx("null.test").await.unwrap().records, MxAnswer::NullMx);
        assert_eq!(r.mx("nomx.test").await.unwrap().records, MxAnswer::NoMx);
        assert_eq!(
            r.mx("missing.test").await.unwrap_err(),
            LookupError::NotFound
        );
    }
}

#[tokio::test]
async fn addresses_txt_and_tlsa() {
    for mode in MODES {
        let dns = TestDns::start().await;
        dns.add_a("mx.example.test", "192.0.2.1".parse().unwrap());
        dns.add_aaaa("mx.example.test", "2001:db8::1".parse().unwrap());
        dns.add_txt("example.test", "v=spf1 -all");
        dns.add_tlsa("_25._tcp.mx.example.test", 3, 1, 1, vec![0xab; 32]);
        let r = resolver(&dns, Duration::from_secs(2), 2, mode);

        let a = r.addresses("mx.example.test").await.unwrap();
        assert_eq!(
            a.records,
            vec![
                "2001:db8::1".parse::<std::net::IpAddr>().unwrap(),
                "192.0.2.1".parse().unwrap()
            ],
            "IPv6 first"
        );
        assert_eq!(a.security, Security::Insecure);
        let lit = r.addresses("[192.0.2.7]").await.unwrap();
        assert_eq!(
            lit.records,
            vec!["192.0.2.7".parse::<std::net::IpAddr>().unwrap()]
        );

        let t = r.txt("example.test").await.unwrap();
        assert_eq!(t.records, vec![b"v=spf1 -all".to_vec()]);

        let tlsa = r.tlsa(25, "mx.example.test").await.unwrap();
        assert_eq!(tlsa.records.len(), 1);
        assert_eq!(
            (
                tlsa.records[0].usage,
                tlsa.records[0].selector,
                tlsa.records[0].matching
            ),
            (3, 1, 1)
        );
        assert_eq!(tlsa.security, Security::Insecure);
        assert_eq!(
            r.tlsa(25, "example.test").await.unwrap_err(),
            LookupError::NotFound
        );
    }
}

#[tokio::test]
async fn a_silent_server_is_a_temporary_error_within_timeout_times_attempts() {
    for mode in MODES {
        let dns = TestDns::start().await;
        dns.unresponsive("dead.example.test");
        let r = resolver(&dns, Duration::from_millis(300), 2, mode);
        let start = Instant::now();
        let e = r.addresses("dead.example.test").await.unwrap_err();
        assert!(e.is_temporary(), "{mode:?}: {e:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn resolver_config_defaults_and_checks() {
    let c: ResolverConfig = toml::from_str("").unwrap();
    assert_eq!(c, ResolverConfig::default());
    assert_eq!(c.timeout.get(), Duration::from_secs(5));
    assert_eq!(c.attempts, 2);
    let mut p = postern_config::Problems::new();
    postern_dns::validate(
        &ResolverConfig {
            attempts: 0,
            timeout: postern_config::Duration(Duration::from_millis(10)),
            ..c
        },
        &mut p,
    );
    let text = format!("{p:?}");
    assert!(
        text.contains("timeout") && text.contains("attempts"),
        "{text}"
    );
}

/// `trust-ad` speaks DNS itself: large answers come over TCP, SERVFAIL without an
/// Extended DNS Error is temporary (not bogus), and negative answers are cached.
#[tokio::test]
async fn trust_ad_exchange_tcp_fallback_servfail_and_negative_cache() {
    let dns = TestDns::start().await;
    for i in 0..40 {
        dns.add_txt("big.example.test", &format!("{i:02} {}", "x".repeat(60)));
    }
    dns.servfail("broken.example.test");
    dns.add_a("host.example.test", "192.0.2.1".parse().unwrap());
    let r = resolver(&dns, Duration::from_secs(2), 2, DnssecMode::TrustAd);

    let big = r.txt("big.example.test").await.unwrap();
    assert_eq!(big.records.len(), 40);
    assert_eq!(
        big.security,
        Security::Insecure,
        "no AD bit from this server"
    );
    assert!(
        dns.tcp_query_count("big.example.test") >= 1,
        "fell back to TCP"
    );

    let e = r.mx("broken.example.test").await.unwrap_err();
    assert!(e.is_temporary() && !e.is_bogus(), "{e:?}");
    assert!(e.to_string().contains("SERVFAIL"), "{e}");

    for _ in 0..3 {
        assert_eq!(
            r.tlsa(25, "host.example.test").await.unwrap_err(),
            LookupError::NotFound
        );
        assert_eq!(
            r.mx("host.example.test").await.unwrap().records,
            MxAnswer::NoMx
        );
    }
    assert_eq!(
        dns.query_count("_25._tcp.host.example.test"),
        1,
        "NXDOMAIN cached"
    );
    assert_eq!(dns.query_count("host.example.test"), 1, "NODATA cached");
}

/// With several dead nameservers, one question still ends within timeout × attempts.
#[tokio::test]
async fn trust_ad_bounds_a_question_over_all_servers() {
    let dns = TestDns::start().await;
    dns.unresponsive("dead.example.test");
    let r = Resolver::new(&ResolverConfig {
        nameservers: vec![dns.addr(), dns.addr(), dns.addr()],
        timeout: postern_config::Duration(Duration::from_millis(300)),
        attempts: 2,
        dnssec: DnssecMode::TrustAd,
        ..ResolverConfig::default()
    })
    .unwrap();
    let start = Instant::now();
    let e = r.mx("dead.example.test").await.unwrap_err();
    assert!(e.is_temporary(), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        start.elapsed()
    );
}
