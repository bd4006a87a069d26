//! The policy domain of a DMARC aggregate report: the domain whose `_dmarc` record
//! applied, chosen as the evaluation chose it (RFC 9989 §4.10: the From domain's own
//! record, else the Organizational Domain's), against a real DNS server on loopback.

#![allow(clippy::unwrap_used)]

use postern_reports::dmarc::policy_domain;
use postern_test_support::dns::TestDns;

#[tokio::test]
async fn the_policy_domain_is_the_from_domain_or_its_organizational_domain() {
    let dns = TestDns::start().await;
    dns.add_txt(
        "_dmarc.example.org",
        "v=DMARC1; p=reject; rua=mailto:d@example.org",
    );
    dns.add_txt("_dmarc.own.example.org", "v=DMARC1; p=none");
    // Not a DMARC record: as if there were none.
    dns.add_txt("_dmarc.spf.example.org", "v=spf1 -all");
    // A public suffix domain's record (psd=y): the Organizational Domain is one label
    // below it.
    dns.add_txt("_dmarc.gov.test", "v=DMARC1; p=reject; psd=y");
    dns.add_txt("_dmarc.dept.gov.test", "v=DMARC1; p=quarantine");
    // psd=n: this is the Organizational Domain, whatever is above it.
    dns.add_txt("_dmarc.corp.example", "v=DMARC1; p=none; psd=n");
    dns.add_txt("_dmarc.example", "v=DMARC1; p=reject");
    dns.servfail("_dmarc.broken.example.org");
    let r = postern_dns::Resolver::new(&postern_dns::ResolverConfig {
        nameservers: vec![dns.addr()],
        ..postern_dns::ResolverConfig::default()
    })
    .unwrap();
    let p = |d: &'static str| {
        let r = r.clone();
        async move { policy_domain(&r, d).await.unwrap() }
    };
    // Its own record.
    assert_eq!(p("example.org").await.as_deref(), Some("example.org"));
    assert_eq!(
        p("own.example.org").await.as_deref(),
        Some("own.example.org")
    );
    // No own record: the Organizational Domain's (the shortest name with a record),
    // not the nearest parent's.
    assert_eq!(
        p("news.mail.example.org").await.as_deref(),
        Some("example.org")
    );
    assert_eq!(p("a.own.example.org").await.as_deref(), Some("example.org"));
    assert_eq!(p("spf.example.org").await.as_deref(), Some("example.org"));
    assert_eq!(
        p("a.b.dept.gov.test").await.as_deref(),
        Some("dept.gov.test")
    );
    assert_eq!(p("a.b.corp.example").await.as_deref(), Some("corp.example"));
    assert_eq!(p("nothing.invalid").await, None);
    // A lookup that fails: unknown, not a guess.
    assert!(policy_domain(&r, "broken.example.org").await.is_err());
}
