//! MTA-STS lookup, fetch and cache against real pieces on loopback: the test DNS server
//! (`_mta-sts` TXT, `mta-sts.<domain>` A) and a test HTTPS server with a test CA's
//! certificate (`postern_test_support::https`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use postern_sts::fetch::{FetchError, Fetcher};
use postern_sts::lookup::Sts;
use postern_sts::policy::Mode;
use postern_test_support::ca::{IssueOpts, TestCa};
use postern_test_support::dns::TestDns;
use postern_test_support::https::{HttpsServer, Reply};

const ENFORCE: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mx.d.test\r\nmx: *.backup.d.test\r\nmax_age: 86400\r\n";
const TESTING: &str = "version: STSv1\nmode: testing\nmx: mx.d.test\nmax_age: 3600\n";

fn resolver(dns: &TestDns) -> postern_dns::Resolver {
    postern_dns::Resolver::new(&postern_dns::ResolverConfig {
        nameservers: vec![dns.addr()],
        timeout: postern_config::Duration(Duration::from_secs(2)),
        ..postern_dns::ResolverConfig::default()
    })
    .unwrap()
}

struct World {
    dns: TestDns,
    ca: TestCa,
    server: HttpsServer,
    dir: tempfile::TempDir,
}

async fn world(reply: Reply) -> World {
    let dns = TestDns::start().await;
    dns.add_txt("_mta-sts.d.test", "v=STSv1; id=one;");
    dns.add_a("mta-sts.d.test", "127.0.0.1".parse().unwrap());
    let ca = TestCa::new("MTA-STS test CA");
    let issued = ca.issue_server(&["mta-sts.d.test"], IssueOpts::default());
    let server = HttpsServer::start(issued.chain_der(), issued.key_der(), reply).await;
    World {
        dns,
        ca,
        server,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl World {
    /// A fresh Sts, as after a restart: new resolver (empty DNS cache), same state dir.
    fn sts(&self) -> Sts {
        let roots = Arc::new(self.ca.root_store());
        Sts::new(
            resolver(&self.dns),
            self.server.addr().port(),
            self.dir.path(),
            Arc::new(move || roots.clone()),
        )
        .unwrap()
    }

    async fn fetch(&self) -> Result<postern_sts::policy::Policy, FetchError> {
        Fetcher::new(resolver(&self.dns), self.server.addr().port())
            .fetch("d.test", Arc::new(self.ca.root_store()))
            .await
    }
}

#[tokio::test]
async fn a_valid_policy_is_fetched_cached_and_reused_while_the_id_is_unchanged() {
    let w = world(Reply::with(
        200,
        Some("text/plain; charset=utf-8"),
        ENFORCE.as_bytes(),
    ))
    .await;
    let sts = w.sts();
    let found = sts.lookup("D.test.").await.unwrap();
    assert_eq!(found.entry.policy.mode, Mode::Enforce);
    assert_eq!(found.entry.policy.mx, ["mx.d.test", "*.backup.d.test"]);
    assert_eq!(found.entry.id, "one");
    assert!(
        found.about.starts_with("fetched just now"),
        "{}",
        found.about
    );
    let head = w.server.last_request();
    assert!(
        head.starts_with("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("host: mta-sts.d.test"),
        "{head}"
    );
    let again = sts.lookup("d.test").await.unwrap();
    assert!(again.about.starts_with("cached"), "{}", again.about);
    assert!(again.about.contains("TXT id unchanged"), "{}", again.about);
    assert_eq!(w.server.requests(), 1, "same id: no second fetch");
    // The file is there, and a restarted lookup uses it without fetching.
    assert!(w.dir.path().join("mta-sts/d.test.json").exists());
    let after_restart = w.sts().lookup("d.test").await.unwrap();
    assert!(
        after_restart.about.starts_with("cached"),
        "{}",
        after_restart.about
    );
    assert_eq!(w.server.requests(), 1);
}

#[tokio::test]
async fn redirects_wrong_types_oversize_and_errors_are_refused() {
    let w = world(Reply::redirect(301, "https://elsewhere.test/p.txt")).await;
    let e = w.fetch().await.unwrap_err();
    assert!(matches!(e, FetchError::Redirect { status: 301, .. }), "{e}");
    assert!(e.to_string().contains("elsewhere.test"), "{e}");
    w.server
        .set(Reply::with(200, Some("text/html"), ENFORCE.as_bytes()));
    let e = w.fetch().await.unwrap_err();
    assert!(matches!(e, FetchError::ContentType { .. }), "{e}");
    w.server.set(Reply::with(200, None, ENFORCE.as_bytes()));
    assert!(matches!(
        w.fetch().await,
        Err(FetchError::ContentType { .. })
    ));
    let big = format!("{ENFORCE}{}", "x: y\n".repeat(14_000));
    w.server.set(Reply::text(&big));
    let e = w.fetch().await.unwrap_err();
    assert!(matches!(e, FetchError::TooLarge { .. }), "{e}");
    w.server
        .set(Reply::with(404, Some("text/plain"), b"not found"));
    assert!(matches!(
        w.fetch().await,
        Err(FetchError::Status { status: 404, .. })
    ));
    w.server
        .set(Reply::text("version: STSv1\nmode: enforce\nmax_age: 60\n"));
    let e = w.fetch().await.unwrap_err();
    assert!(matches!(e, FetchError::Policy { .. }), "{e}");
    w.server.set(Reply::text(ENFORCE));
    assert_eq!(w.fetch().await.unwrap().mode, Mode::Enforce);
    // Nothing refused was cached: a lookup fetches (and now succeeds).
    assert!(!w.dir.path().join("mta-sts/d.test.json").exists());
}

#[tokio::test]
async fn a_certificate_without_the_policy_host_name_is_refused() {
    let w = world(Reply::text(ENFORCE)).await;
    let wrong = w.ca.issue_server(&["www.d.test"], IssueOpts::default());
    let server = HttpsServer::start(wrong.chain_der(), wrong.key_der(), Reply::text(ENFORCE)).await;
    let e = Fetcher::new(resolver(&w.dns), server.addr().port())
        .fetch("d.test", Arc::new(w.ca.root_store()))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("mta-sts.d.test"), "{e}");
    // Another CA's certificate: refused too.
    let other = TestCa::new("Other CA").issue_server(&["mta-sts.d.test"], IssueOpts::default());
    let server = HttpsServer::start(other.chain_der(), other.key_der(), Reply::text(ENFORCE)).await;
    let e = Fetcher::new(resolver(&w.dns), server.addr().port())
        .fetch("d.test", Arc::new(w.ca.root_store()))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Tls { .. }), "{e}");
}

#[tokio::test]
async fn a_cached_policy_outlives_https_and_dns_failures_and_an_id_change_refetches() {
    let World {
        dns,
        ca,
        server,
        dir,
    } = world(Reply::text(ENFORCE)).await;
    let port = server.addr();
    let sts = |dns: &TestDns| {
        let roots = Arc::new(ca.root_store());
        Sts::new(
            resolver(dns),
            port.port(),
            dir.path(),
            Arc::new(move || roots.clone()),
        )
        .unwrap()
    };
    assert_eq!(sts(&dns).lookup("d.test").await.unwrap().entry.id, "one");
    drop(server); // HTTPS down, and a new id published
    dns.remove("_mta-sts.d.test");
    dns.add_txt("_mta-sts.d.test", "v=STSv1; id=two;");
    let found = sts(&dns).lookup("d.test").await.unwrap();
    assert_eq!(
        found.entry.policy.mode,
        Mode::Enforce,
        "the cached policy still holds"
    );
    assert_eq!(found.entry.id, "one");
    assert!(
        found.about.contains("fetching TXT id two failed"),
        "{}",
        found.about
    );
    // No TXT record at all: the cached policy still holds (RFC 8461 §5.1).
    dns.remove("_mta-sts.d.test");
    let found = sts(&dns).lookup("d.test").await.unwrap();
    assert!(
        found.about.contains("no usable _mta-sts TXT record"),
        "{}",
        found.about
    );
    // HTTPS back with a new policy under the new id: fetched and stored.
    dns.add_txt("_mta-sts.d.test", "v=STSv1; id=two;");
    let issued = ca.issue_server(&["mta-sts.d.test"], IssueOpts::default());
    let back = HttpsServer::start_on(
        port,
        issued.chain_der(),
        issued.key_der(),
        Reply::text(TESTING),
    )
    .await;
    let up = sts(&dns);
    let found = up.lookup("d.test").await.unwrap();
    assert_eq!(
        (found.entry.id.as_str(), found.entry.policy.mode),
        ("two", Mode::Testing)
    );
    assert_eq!(back.requests(), 1);
    // Forgotten by another process (the CLI): never resurrected from memory.
    assert!(
        postern_sts::cache::Cache::open(dir.path())
            .unwrap()
            .forget("d.test")
            .unwrap()
    );
    assert!(up.cache().get("d.test").is_none());
}

#[tokio::test]
async fn several_records_or_none_mean_no_policy_and_mode_none_is_kept() {
    let w = world(Reply::text(ENFORCE)).await;
    w.dns.add_txt("_mta-sts.d.test", "v=STSv1; id=other;");
    assert!(
        w.sts().lookup("d.test").await.is_none(),
        "two v=STSv1 records: no policy"
    );
    assert_eq!(w.server.requests(), 0);
    assert!(w.sts().lookup("nothing.test").await.is_none());
    w.dns.remove("_mta-sts.d.test");
    w.dns.add_txt("_mta-sts.d.test", "v=STSv1; id=off;");
    w.server
        .set(Reply::text("version: STSv1\nmode: none\nmax_age: 600\n"));
    let found = w.sts().lookup("d.test").await.unwrap();
    assert_eq!(found.entry.policy.mode, Mode::None);
}

#[tokio::test]
async fn the_refresher_refetches_policies_past_half_their_max_age() {
    let w = world(Reply::text(ENFORCE)).await;
    let sts = w.sts();
    // Fetched long ago: past half of its max_age (86400 s), not expired.
    let mut e = sts.refresh("d.test").await.unwrap();
    assert_eq!(w.server.requests(), 1);
    e.fetched -= 50_000;
    sts.cache().put(&e).unwrap();
    assert_eq!(sts.refresh_due().await, 1);
    assert_eq!(w.server.requests(), 2);
    let fresh = sts.cache().get("d.test").unwrap();
    assert!(fresh.fetched > e.fetched, "the refetch restarts max_age");
    // Nothing due now.
    assert_eq!(sts.refresh_due().await, 0);
    assert_eq!(w.server.requests(), 2);
}

#[tokio::test]
async fn an_unusable_cache_directory_falls_back_to_memory() {
    let w = world(Reply::text(ENFORCE)).await;
    let blocker = w.dir.path().join("state");
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let roots = Arc::new(w.ca.root_store());
    let sts = Sts::new_or_memory(
        resolver(&w.dns),
        w.server.addr().port(),
        &blocker,
        Arc::new(move || roots.clone()),
    );
    assert!(!sts.cache().persistent());
    assert_eq!(
        sts.lookup("d.test").await.unwrap().entry.policy.mode,
        Mode::Enforce
    );
    assert!(
        sts.lookup("d.test")
            .await
            .unwrap()
            .about
            .starts_with("cached")
    );
}

#[tokio::test]
async fn a_failed_fetch_is_not_repeated_for_the_same_id_but_a_new_id_is_tried_at_once() {
    let w = world(Reply::with(500, Some("text/plain"), b"broken")).await;
    let sts = w.sts();
    assert!(sts.lookup("d.test").await.is_none());
    assert_eq!(w.server.requests(), 1);
    // Fixed, but the same id: a delivery attempt within the hold-down does not ask again.
    w.server.set(Reply::text(ENFORCE));
    assert!(sts.lookup("d.test").await.is_none());
    assert_eq!(w.server.requests(), 1, "the failure is remembered");
    // An explicit refresh always tries; a new id is tried at once.
    assert!(sts.refresh("d.test").await.is_ok());
    assert_eq!(w.server.requests(), 2);
    w.dns.remove("_mta-sts.d.test");
    w.dns.add_txt("_mta-sts.d.test", "v=STSv1; id=two;");
    let fresh = w.sts();
    w.server
        .set(Reply::with(500, Some("text/plain"), b"broken"));
    let found = fresh.lookup("d.test").await.unwrap();
    assert!(
        found.about.contains("fetching TXT id two failed"),
        "{}",
        found.about
    );
    assert_eq!(w.server.requests(), 3);
    let found = fresh.lookup("d.test").await.unwrap();
    assert!(
        found.about.contains("failed in the last 300s"),
        "{}",
        found.about
    );
    assert_eq!(w.server.requests(), 3);
}

/// Deliveries that need the same new policy at the same moment share one fetch: the
/// others wait for it and use its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_lookups_share_one_fetch() {
    let w = world(Reply::text(ENFORCE)).await;
    let sts = Arc::new(w.sts());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let sts = sts.clone();
        set.spawn(async move { sts.lookup("d.test").await });
    }
    let mut abouts = Vec::new();
    while let Some(found) = set.join_next().await {
        let found = found.unwrap().expect("every lookup finds the policy");
        assert_eq!(found.entry.policy.mode, Mode::Enforce);
        abouts.push(found.about);
    }
    assert_eq!(w.server.requests(), 1, "one fetch for all: {abouts:?}");
    assert_eq!(
        sts.fetches_in_progress(),
        0,
        "the last one out removes the gate"
    );
    // A refresh afterwards takes its own turn, and leaves nothing behind either.
    sts.refresh("d.test").await.unwrap();
    assert_eq!(w.server.requests(), 2);
    assert_eq!(sts.fetches_in_progress(), 0);
    assert!(
        abouts.iter().any(|a| a.starts_with("fetched just now (")),
        "{abouts:?}"
    );
}
