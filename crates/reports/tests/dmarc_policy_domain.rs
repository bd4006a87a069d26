//! The policy domain of a DMARC aggregate report: the domain whose `_dmarc` record
//! applied, found by the tree walk against a real DNS server on loopback.

#![allow(clippy::unwrap_used)]

use postern_reports::dmarc::policy_domain;
use postern_test_support::dns::TestDns;

#[tokio::test]
async fn the_policy_domain_is_the_nearest_name_with_a_dmarc_record() {
    let dns = TestDns::start().await;
    dns.add_txt(
        "_dmarc.example.org",
        "v=DMARC1; p=reject; rua=mailto:d@example.org",
    );
    dns.add_txt("_dmarc.own.example.org", "v=DMARC1; p=none");
    // Not a DMARC record: the walk goes on.
    dns.add_txt("_dmarc.spf.example.org", "v=spf1 -all");
    let r = postern_dns::Resolver::new(&postern_dns::ResolverConfig {
        nameservers: vec![dns.addr()],
        ..postern_dns::ResolverConfig::default()
    })
    .unwrap();
    let p = |d: &'static str| {
        let r = r.clone();
        async move { policy_domain(&r, d).await }
    };
    assert_eq!(p("example.org").await.as_deref(), Some("example.org"));
    assert_eq!(
        p("news.mail.example.org").await.as_deref(),
        Some("example.org")
    );
    assert_eq!(
        p("own.example.org").await.as_deref(),
        Some("own.example.org")
    );
    assert_eq!(
        p("a.own.example.org").await.as_deref(),
        Some("own.example.org")
    );
    assert_eq!(p("spf.example.org").await.as_deref(), Some("example.org"));
    assert_eq!(p("nothing.example").await, None);
}
