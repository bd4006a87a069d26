//! Golden test vectors: `testdata/CASE/` holds `message.eml` (CRLF), `zone.txt` (the DNS
//! data, served by a loopback TestDns), `case.txt` (client IP, HELO, MAIL FROM, policy)
//! and `expected.txt` (the decision, then the exact header fields prepended).
//!
//! `cargo test -p postern-auth --test vectors -- --ignored generate` rewrites the signed
//! messages and zones with fresh keys (run it, then bless); `POSTERN_BLESS=1 cargo test
//! -p postern-auth --test vectors` rewrites `expected.txt` from what the code produces —
//! review the diff before committing it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
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

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Serve `zone.txt`: `TXT name text...`, `A name ip`, `AAAA name ip`,
/// `MX name pref host`, `SERVFAIL name`; `#` starts a comment line.
pub fn load_zone(dns: &TestDns, zone: &str) {
    for line in zone.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (kind, name, rest) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap_or(""),
        );
        match kind {
            "TXT" => dns.add_txt(name, rest),
            "A" => dns.add_a(name, rest.parse().unwrap()),
            "AAAA" => dns.add_aaaa(name, rest.parse().unwrap()),
            "MX" => {
                let (p, h) = rest.split_once(' ').unwrap();
                dns.add_mx(name, p.parse().unwrap(), h)
            }
            "SERVFAIL" => dns.servfail(name),
            k => panic!("unknown zone line kind {k}"),
        }
    }
}

fn field<'a>(case: &'a str, key: &str) -> &'a str {
    case.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or("")
}

async fn run_case(dir: &Path) -> String {
    let dns = TestDns::start().await;
    load_zone(
        &dns,
        &std::fs::read_to_string(dir.join("zone.txt")).unwrap(),
    );
    let case = std::fs::read_to_string(dir.join("case.txt")).unwrap();
    let message = std::fs::read(dir.join("message.eml")).unwrap();
    let mut cfg = AuthConfig {
        spf: SpfPolicy::Tag,
        dkim: DkimMode::Verify,
        dmarc: DmarcPolicy::Enforce,
        ..AuthConfig::default()
    };
    if field(&case, "spf") == "reject-fail" {
        cfg.spf = SpfPolicy::RejectFail;
    }
    let auth = authenticator(&dns);
    let v = Verifier::new(&cfg, auth, "mx.postern.test");
    let ip = field(&case, "ip").parse().unwrap();
    let helo = field(&case, "helo");
    let mail_from = field(&case, "mail_from");
    let spf = v.spf(ip, helo, mail_from).await.unwrap();
    let mut out = String::new();
    if let Some(r) = &spf.refuse {
        out.push_str(&format!("decision: refuse at MAIL FROM: {r}\n"));
        return out;
    }
    let verdict = v
        .message(
            Received {
                ip,
                helo,
                mail_from,
                message: &message,
                complete: true,
            },
            Some(&spf.check),
        )
        .await;
    let decision = match (&verdict.refuse, verdict.quarantined) {
        (Some(r), _) => format!("refuse: {r}"),
        (None, true) => "quarantine".to_string(),
        (None, false) => "accept".to_string(),
    };
    out.push_str(&format!("decision: {decision}\n"));
    out.push_str(&format!("summary: {}\n", verdict.summary));
    out.push_str(&format!("stripped: {}\n", verdict.strip.len()));
    out.push_str(&verdict.prepend.replace("\r\n", "\n"));
    out
}

#[tokio::test]
async fn golden_vectors() {
    let bless = std::env::var_os("POSTERN_BLESS").is_some();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.txt").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 20, "vectors missing: {}", dirs.len());
    let mut failed = Vec::new();
    for dir in &dirs {
        let got = run_case(dir).await;
        let path = dir.join("expected.txt");
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            failed.push(format!(
                "{}:\n--- want\n{want}--- got\n{got}",
                dir.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

// ---------------------------------------------------------------- generation

mod generate {
    use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    use postern_auth::keygen::{KeyKind, generate as gen_key};
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    pub struct Keys {
        rsa: Vec<u8>,
        rsa_pub: Vec<u8>,
        ed: Vec<u8>,
        ed_pub: Vec<u8>,
    }

    impl Keys {
        pub fn new() -> Keys {
            let (rsa, rsa_pub) = gen_key(KeyKind::Rsa2048).unwrap();
            let (ed, ed_pub) = gen_key(KeyKind::Ed25519).unwrap();
            Keys {
                rsa,
                rsa_pub,
                ed,
                ed_pub,
            }
        }

        pub fn record(&self, ed: bool) -> String {
            postern_auth::sign::txt_record(
                if ed {
                    postern_auth::SignAlgorithm::Ed25519Sha256
                } else {
                    postern_auth::SignAlgorithm::RsaSha256
                },
                if ed { &self.ed_pub } else { &self.rsa_pub },
            )
        }

        fn key(&self, ed: bool) -> DkimKey {
            if ed {
                DkimKey::Ed25519(Ed25519Key::from_pkcs8_der(&self.ed).unwrap())
            } else {
                DkimKey::Rsa(
                    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                        self.rsa.clone(),
                    )))
                    .unwrap(),
                )
            }
        }

        /// `message` with a DKIM-Signature for d=`domain`, s=`selector` prepended.
        pub fn sign(
            &self,
            message: &str,
            domain: &str,
            selector: &str,
            ed: bool,
            expire: u64,
        ) -> String {
            let mut s = DkimSigner::from_key(self.key(ed))
                .domain(domain)
                .selector(selector)
                .headers(["From", "To", "Subject", "Date", "Message-ID"]);
            if expire > 0 {
                s = s.expiration(expire);
            }
            let sig = s.sign(message.as_bytes()).unwrap();
            format!("{}{message}", sig.to_header())
        }
    }
}

fn msg(from: &str, subject: &str) -> String {
    format!(
        "From: Alice <{from}>\r\nTo: bob@local.test\r\nSubject: {subject}\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\nMessage-ID: <{subject}@postern.test>\r\n\r\nHello Bob.\r\n"
    )
}

fn write_case(name: &str, case: &str, zone: &str, message: &str) {
    let dir = testdata().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("case.txt"), case).unwrap();
    std::fs::write(dir.join("zone.txt"), zone).unwrap();
    std::fs::write(dir.join("message.eml"), message).unwrap();
}

fn case(ip: &str, mail_from: &str, what: &str) -> String {
    format!("# {what}\nip: {ip}\nhelo: client.example.org\nmail_from: {mail_from}\n")
}

const GOOD_IP: &str = "192.0.2.10";
const BAD_IP: &str = "198.51.100.66";

/// Regenerate every vector (keys are fresh each time; expected.txt must be re-blessed).
#[tokio::test]
#[ignore]
async fn generate() {
    let keys = generate::Keys::new();
    let spf = "TXT example.org v=spf1 ip4:192.0.2.0/24 -all\n";
    let plain = msg("alice@example.org", "plain");
    // --- SPF
    for (name, rec, ip, what) in [
        (
            "spf-pass",
            "v=spf1 ip4:192.0.2.0/24 -all",
            GOOD_IP,
            "SPF pass",
        ),
        (
            "spf-fail",
            "v=spf1 ip4:192.0.2.0/24 -all",
            BAD_IP,
            "SPF fail",
        ),
        (
            "spf-softfail",
            "v=spf1 ip4:192.0.2.0/24 ~all",
            BAD_IP,
            "SPF softfail",
        ),
        (
            "spf-neutral",
            "v=spf1 ip4:192.0.2.0/24 ?all",
            BAD_IP,
            "SPF neutral",
        ),
        (
            "spf-permerror",
            "v=spf1 include:nospf.example.org -all",
            BAD_IP,
            "include of a domain without SPF (RFC 7208 5.2): permerror",
        ),
        (
            "spf-void-limit",
            "v=spf1 a:v1.example.org a:v2.example.org a:v3.example.org -all",
            BAD_IP,
            "three void look-ups (RFC 7208 4.6.4): permerror, not fail",
        ),
        (
            "spf-lookup-limit",
            "v=spf1 a:h1.example.org a:h2.example.org a:h3.example.org a:h4.example.org a:h5.example.org a:h6.example.org a:h7.example.org a:h8.example.org a:h9.example.org a:h10.example.org a:h11.example.org -all",
            BAD_IP,
            "eleven DNS mechanisms (RFC 7208 4.6.4): permerror",
        ),
    ] {
        let mut zone = format!("TXT example.org {rec}\n");
        for i in 1..=11 {
            zone.push_str(&format!("A h{i}.example.org 203.0.113.{i}\n"));
        }
        zone.push_str("A nospf.example.org 192.0.2.1\n");
        write_case(name, &case(ip, "alice@example.org", what), &zone, &plain);
    }
    write_case(
        "spf-none",
        &case(BAD_IP, "alice@example.org", "no SPF record: none"),
        "A example.org 192.0.2.1\n",
        &plain,
    );
    write_case(
        "spf-temperror",
        &case(
            BAD_IP,
            "alice@example.org",
            "SERVFAIL: temperror, mail flows",
        ),
        "SERVFAIL example.org\n",
        &plain,
    );
    write_case(
        "spf-fail-rejected",
        &format!(
            "{}spf: reject-fail\n",
            case(BAD_IP, "alice@example.org", "SPF fail refused at MAIL FROM")
        ),
        spf,
        &plain,
    );
    write_case(
        "spf-temperror-deferred",
        &format!(
            "{}spf: reject-fail\n",
            case(
                BAD_IP,
                "alice@example.org",
                "temperror under reject-fail: 451"
            )
        ),
        "SERVFAIL example.org\n",
        &plain,
    );
    // --- DKIM
    let dk = |ed: bool| format!("TXT s1._domainkey.example.org {}\n", keys.record(ed));
    let signed = |ed: bool| {
        keys.sign(
            &msg("alice@example.org", if ed { "ed" } else { "rsa" }),
            "example.org",
            "s1",
            ed,
            0,
        )
    };
    let dmarc_none = "TXT _dmarc.example.org v=DMARC1; p=none\n";
    write_case(
        "dkim-pass-rsa",
        &case(BAD_IP, "", "RSA signature verifies"),
        &dk(false),
        &signed(false),
    );
    write_case(
        "dkim-pass-ed25519",
        &case(BAD_IP, "", "Ed25519 signature verifies"),
        &dk(true),
        &signed(true),
    );
    write_case(
        "dkim-bad-body-hash",
        &case(BAD_IP, "", "body changed after signing"),
        &dk(false),
        &signed(false).replace("Hello Bob.", "Hello Eve."),
    );
    write_case(
        "dkim-bad-signature",
        &case(BAD_IP, "", "signed header changed after signing"),
        &dk(false),
        &signed(false).replace("Subject: rsa", "Subject: RSA!"),
    );
    write_case(
        "dkim-missing-key",
        &case(BAD_IP, "", "no key record"),
        "",
        &signed(false),
    );
    write_case(
        "dkim-revoked-key",
        &case(BAD_IP, "", "key record with empty p= (revoked)"),
        "TXT s1._domainkey.example.org v=DKIM1; k=rsa; p=\n",
        &signed(false),
    );
    let expired = keys.sign(
        &msg("alice@example.org", "expired"),
        "example.org",
        "s1",
        false,
        1,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    write_case(
        "dkim-expired",
        &case(BAD_IP, "", "x= in the past"),
        &dk(false),
        &expired,
    );
    // --- DMARC
    let other_sig = keys.sign(&plain, "other.test", "s1", false, 0);
    write_case(
        "dmarc-pass-spf-only",
        &case(
            GOOD_IP,
            "alice@example.org",
            "aligned SPF pass, unaligned DKIM",
        ),
        &format!(
            "{spf}TXT s1._domainkey.other.test {}\nTXT _dmarc.example.org v=DMARC1; p=reject\n",
            keys.record(false)
        ),
        &other_sig,
    );
    write_case(
        "dmarc-pass-dkim-only",
        &case(
            BAD_IP,
            "bounce@other.test",
            "aligned DKIM pass, SPF of another domain fails",
        ),
        &format!(
            "{}TXT other.test v=spf1 -all\nTXT _dmarc.example.org v=DMARC1; p=reject\n",
            dk(false)
        ),
        &signed(false),
    );
    let sub = keys.sign(
        &msg("alice@news.example.org", "relaxed"),
        "example.org",
        "s1",
        false,
        0,
    );
    write_case(
        "dmarc-relaxed-pass",
        &case(
            BAD_IP,
            "",
            "d=example.org aligns with From news.example.org under adkim=r",
        ),
        &format!(
            "{}A news.example.org 192.0.2.1\nTXT _dmarc.example.org v=DMARC1; p=reject; adkim=r\n",
            dk(false)
        ),
        &sub,
    );
    write_case(
        "dmarc-strict-fail",
        &case(
            BAD_IP,
            "",
            "the same under adkim=s: fail, p=reject enforced",
        ),
        &format!(
            "{}A news.example.org 192.0.2.1\nTXT _dmarc.example.org v=DMARC1; p=reject; adkim=s\n",
            dk(false)
        ),
        &sub,
    );
    write_case(
        "dmarc-reject",
        &case(
            BAD_IP,
            "alice@example.org",
            "SPF fail, no DKIM, p=reject: 550",
        ),
        &format!("{spf}TXT _dmarc.example.org v=DMARC1; p=reject\n"),
        &plain,
    );
    write_case(
        "dmarc-reject-dns-temperror",
        &case(
            BAD_IP,
            "alice@example.org",
            "p=reject but the key lookup failed: 451",
        ),
        &format!(
            "{spf}SERVFAIL s1._domainkey.example.org\nTXT _dmarc.example.org v=DMARC1; p=reject\n"
        ),
        &signed(false),
    );
    write_case(
        "dmarc-quarantine",
        &case(
            BAD_IP,
            "alice@example.org",
            "p=quarantine: accepted with the quarantine header",
        ),
        &format!("{spf}TXT _dmarc.example.org v=DMARC1; p=quarantine\n"),
        &plain,
    );
    write_case(
        "dmarc-subdomain-policy",
        &case(
            BAD_IP,
            "alice@sub.example.org",
            "sp=none applies to an existing subdomain",
        ),
        "A sub.example.org 192.0.2.1\nTXT sub.example.org v=spf1 ip4:192.0.2.0/24 -all\nTXT _dmarc.example.org v=DMARC1; p=reject; sp=none\n",
        &msg("alice@sub.example.org", "sub"),
    );
    write_case(
        "dmarc-none-policy",
        &case(BAD_IP, "alice@example.org", "p=none: fail is only recorded"),
        &format!("{spf}{dmarc_none}"),
        &plain,
    );
    write_case(
        "forged-authentication-results",
        &case(
            GOOD_IP,
            "alice@example.org",
            "a field claiming our authserv-id is removed",
        ),
        spf,
        &format!(
            "Authentication-Results: mx.postern.test; dkim=pass; dmarc=pass\r\nAuthentication-Results: elsewhere.test; spf=pass\r\n{plain}"
        ),
    );
}
