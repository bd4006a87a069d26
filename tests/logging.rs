//! Text logs written to a pipe or a file carry no ANSI colour codes (#10).

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Runs `postern serve` with stderr to a pipe until it logs that it is listening, and
/// returns everything it logged.
async fn serve_log(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.log.test\"\nstate_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n\
             [relay]\nlocal_domains = [\"local.test\"]\n[[route]]\ndomain = \"local.test\"\nnext_hop = \"maildir:mail\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postern"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("JOURNAL_STREAM")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
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
            if String::from_utf8_lossy(&log).contains("listening on") {
                return true;
            }
        }
    })
    .await
    .unwrap_or(false);
    child.kill().await.unwrap();
    let log = String::from_utf8_lossy(&log).into_owned();
    assert!(found, "postern did not log that it listens:\n{log}");
    log
}

#[tokio::test]
async fn text_log_to_a_pipe_has_no_colour_codes() {
    let log = serve_log(&[]).await;
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape in a piped log:\n{log:?}"
    );
    assert!(log.contains(" INFO "), "{log}");
}

#[tokio::test]
async fn no_color_is_honoured_too() {
    let log = serve_log(&[("NO_COLOR", "1")]).await;
    assert!(!log.contains('\u{1b}'), "{log:?}");
}
