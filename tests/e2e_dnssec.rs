//! The DNSSEC probe as an operator meets it, against a real signed tree (knot + unbound on
//! loopback): `check-config` says whether validation works in each `[resolver] dnssec`
//! mode, and `postern serve` warns loudly at start-up when it does not.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use postern_test_support::signed_dns::{SignedDnsTree, Zone};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

fn config(dir: &std::path::Path, resolver: &str) -> std::path::PathBuf {
    let path = dir.join("postern.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nhostname = \"mx.dnssec.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
             [relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n\
             [resolver]\ntimeout = \"2s\"\n{resolver}",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

fn check_config(resolver: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("check-config")
        .arg("--config")
        .arg(config(dir.path(), resolver))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn ns(addr: SocketAddr) -> String {
    format!("nameservers = [\"{addr}\"]\n")
}

fn tree() -> Option<SignedDnsTree> {
    SignedDnsTree::start(&[Zone::secure("secure.test").record("mx A 127.0.0.1")])
}

#[test]
fn check_config_reports_whether_dnssec_works() {
    let Some(tree) = tree() else { return };

    let ok = check_config(&format!("{}dnssec = \"trust-ad\"\n", ns(tree.unbound_addr)));
    let want = format!(
        "dnssec: trust-ad via {}: working (probe . NS is secure)",
        tree.unbound_addr
    );
    assert!(ok.contains(&want), "{ok}");

    let plain = check_config(&format!("{}dnssec = \"trust-ad\"\n", ns(tree.plain_addr)));
    assert!(
        plain.contains("warning: DNSSEC validation unavailable: probe . NS via")
            && plain.contains("DANE will treat every domain as insecure; fix:"),
        "{plain}"
    );

    let validate = check_config(&format!(
        "{}dnssec = \"validate\"\ntrust_anchor = \"{}\"\ndnssec_probe = \"a:mx.secure.test\"\n",
        ns(tree.plain_addr),
        tree.root_dnskey.display()
    ));
    assert!(
        validate.contains("dnssec: validate via")
            && validate.contains("working (probe mx.secure.test. A is secure)"),
        "{validate}"
    );

    let off = check_config(&format!("{}dnssec = \"off\"\n", ns(tree.unbound_addr)));
    assert!(off.contains("dnssec: off"), "{off}");
}

/// `postern serve` logs the probe's verdict at start-up: a warning when answers cannot be
/// secure, an info line when they can.
#[tokio::test]
async fn serve_warns_at_start_up_when_validation_is_unavailable() {
    let Some(tree) = tree() else { return };
    for (ns_addr, expect) in [
        (
            tree.plain_addr,
            "DNSSEC validation unavailable: probe . NS via",
        ),
        (tree.unbound_addr, "dnssec: trust-ad via"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            &format!("{}dnssec = \"trust-ad\"\n", ns(ns_addr)),
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let mut log = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            let mut buf = [0u8; 4096];
            loop {
                let n = stderr.read(&mut buf).await.unwrap();
                if n == 0 {
                    return false;
                }
                log.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&log).contains(expect) {
                    return true;
                }
            }
        })
        .await
        .unwrap_or(false);
        child.kill().await.unwrap();
        let log = String::from_utf8_lossy(&log);
        assert!(found, "expected {expect:?} in the start-up log:\n{log}");
        if ns_addr == tree.unbound_addr {
            assert!(!log.contains("DNSSEC validation unavailable"), "{log}");
        }
    }
}
