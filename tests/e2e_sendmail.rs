//! `postern sendmail` (and the binary invoked as `sendmail`) end to end: the real binary,
//! fed a message on stdin, submitting to a real in-process daemon over STARTTLS; checked
//! on what lands in the Maildirs.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::TestServer;
use tokio::io::AsyncWriteExt;

/// The daemon, and a configuration file for the CLI whose first listener is the daemon's
/// real address (the daemon itself was started on port 0).
async fn server() -> (TestServer, PathBuf) {
    let s = TestServer::start("", "").await;
    let text = std::fs::read_to_string(s.dir.path().join("config.toml")).unwrap();
    let needle = r#"address = "127.0.0.1:0""#;
    assert_eq!(text.matches(needle).count(), 1);
    let text = text.replace(needle, &format!("address = \"{}\"", s.addr()));
    let path = s.dir.path().join("sendmail.toml");
    std::fs::write(&path, text).unwrap();
    (s, path)
}

async fn run_program(program: &Path, args: &[&str], env: &[(&str, &Path)], input: &str) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_remove("POSTERN_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("sendmail finishes within 30 s")
        .unwrap()
}

/// `postern sendmail -c CONFIG ARGS...` with `input` on stdin.
async fn sendmail(config: &Path, args: &[&str], input: &str) -> Output {
    let mut all = vec!["sendmail", "-c", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run_program(Path::new(env!("CARGO_BIN_EXE_postern")), &all, &[], input).await
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_from_arguments_with_i_and_added_headers() {
    let (s, cfg) = server().await;
    let out = sendmail(
        &cfg,
        &["-i", "user@local.test"],
        "Subject: one\n\nfirst\n.\n..two dots\nlast\n",
    )
    .await;
    ok(&out);
    let m = text(&s.wait_delivered("user", 1).await[0]);
    // -i: the lone "." did not end the message; dots arrive as they were written.
    assert!(
        m.contains("\r\nfirst\r\n.\r\n..two dots\r\nlast\r\n"),
        "{m}"
    );
    assert!(m.contains("Subject: one\r\n"), "{m}");
    assert!(m.contains("\r\nDate: "), "{m}");
    assert!(m.contains("\r\nMessage-ID: <"), "{m}");
    assert!(m.contains("@mx.postern.test>\r\n"), "{m}");
    assert!(m.contains("\r\nFrom: "), "{m}");
    // The default sender: the user's name at the configured host name.
    assert!(m.contains("@mx.postern.test>\r\nDelivered-To:"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_dot_ends_input_without_i() {
    let (s, cfg) = server().await;
    let out = sendmail(
        &cfg,
        &["user@local.test"],
        "From: me@local.test\nSubject: two\n\nbefore\n.\nafter\n",
    )
    .await;
    ok(&out);
    let m = text(&s.wait_delivered("user", 1).await[0]);
    assert!(m.contains("\r\nbefore\r\n"), "{m}");
    assert!(!m.contains("after"), "{m}");
    // From: was present, so not added again.
    assert_eq!(m.matches("\r\nFrom: ").count(), 1, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_takes_recipients_from_headers_and_removes_bcc() {
    let (s, cfg) = server().await;
    let out = sendmail(
        &cfg,
        &["-t", "-oi", "-f", "sender@local.test"],
        "To: \"A, the first\" <a@local.test>\nCc: b@local.test (Bee)\n\
         Bcc: hidden@local.test\nSubject: t\n\nbody\n",
    )
    .await;
    ok(&out);
    for user in ["a", "b", "hidden"] {
        let m = text(&s.wait_delivered(user, 1).await[0]);
        // What the sender wrote (the daemon's Delivered-To: names the recipient).
        let content = text(&common::strip_trace(m.as_bytes()).1);
        assert!(!content.to_ascii_lowercase().contains("bcc"), "{user}: {m}");
        assert!(!content.contains("hidden@"), "{user}: {m}");
        assert!(
            m.contains("Return-Path: <sender@local.test>"),
            "{user}: {m}"
        );
        assert!(m.contains("\r\nFrom: sender@local.test\r\n"), "{user}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_recipient_fails_with_the_reply_and_sends_nothing() {
    let (s, cfg) = server().await;
    let out = sendmail(
        &cfg,
        &["-i", "user@local.test", "someone@elsewhere.test"],
        "Subject: relay\n\nx\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(69), "5xx to RCPT: EX_UNAVAILABLE");
    let err = text(&out.stderr);
    assert!(err.contains("recipient <someone@elsewhere.test>"), "{err}");
    assert!(err.lines().any(|l| l.starts_with("5")), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(s.all_delivered().is_empty());
    assert_eq!(s.queued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoked_as_sendmail_with_classic_options() {
    let (s, cfg) = server().await;
    let link = s.dir.path().join("sendmail");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_postern"), &link).unwrap();
    let out = run_program(
        &link,
        &[
            "-FCron Daemon",
            "-i",
            "-B8BITMIME",
            "-oem",
            "-fcron@local.test",
            "user@local.test",
        ],
        &[("POSTERN_CONFIG", &cfg)],
        "Subject: cron\n\noutput\n",
    )
    .await;
    ok(&out);
    let m = text(&s.wait_delivered("user", 1).await[0]);
    assert!(
        m.contains("\r\nFrom: \"Cron Daemon\" <cron@local.test>\r\n"),
        "{m}"
    );

    let out = run_program(&link, &["-bd"], &[("POSTERN_CONFIG", &cfg)], "").await;
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("postern serve"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_daemon_is_a_temporary_failure() {
    let (mut s, cfg) = server().await;
    s.running.take().unwrap().stop().await;
    let out = sendmail(&cfg, &["user@local.test"], "Subject: x\n\ny\n").await;
    assert_eq!(out.status.code(), Some(75), "EX_TEMPFAIL");
    assert!(text(&out.stderr).contains("cannot submit"));
}

/// Issue #11 item 12: an ordinary user cannot read the daemon's certificate and DKIM keys
/// (they must be private). Submission needs only the listener address, so sendmail must
/// not open them: here they do not even exist, and the message still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_although_key_files_cannot_be_read() {
    let (s, cfg) = server().await;
    let mut config = std::fs::read_to_string(&cfg).unwrap();
    config.push_str(
        "\n[[tls.certificate]]\nchain = \"/nonexistent/postern/chain.pem\"\n\
         key = \"/nonexistent/postern/key.pem\"\n\n\
         [[auth.dkim_sign]]\ndomain = \"local.test\"\nselector = \"s1\"\n\
         key = \"/nonexistent/postern/dkim.pem\"\n",
    );
    std::fs::write(&cfg, config).unwrap();
    // The full load (the daemon's) refuses this configuration ...
    let check = run_program(
        Path::new(env!("CARGO_BIN_EXE_postern")),
        &["check-config", "-c", cfg.to_str().unwrap()],
        &[],
        "",
    )
    .await;
    assert_eq!(check.status.code(), Some(2), "{}", text(&check.stderr));
    // ... but sendmail reads only what it needs from it.
    let out = sendmail(&cfg, &["-i", "user@local.test"], "Subject: keys\n\nbody\n").await;
    ok(&out);
    let m = text(&s.wait_delivered("user", 1).await[0]);
    assert!(m.contains("Subject: keys\r\n"), "{m}");
}

/// `-t` with the address forms real mail programs write: a group, quoted commas, comments,
/// an encoded-word name, a folded Bcc; every recipient gets it, the Bcc does not show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_reads_groups_encoded_names_and_folded_bcc() {
    let (s, cfg) = server().await;
    let out = sendmail(
        &cfg,
        &["-t", "-i", "-f", "sender@local.test"],
        "To: Team: \"Doe, J\" <a@local.test>, b@local.test (Bee, the second);\n\
         Cc: =?utf-8?q?M=C3=BCller=2C_C?= <c@local.test>\n\
         Bcc: \"Hidden, D\" <d@local.test>,\n\t=?utf-8?b?w4lsZW5h?= <e@local.test>\n\
         Subject: group\n\nbody\n",
    )
    .await;
    ok(&out);
    for user in ["a", "b", "c", "d", "e"] {
        let m = text(&s.wait_delivered(user, 1).await[0]);
        let content = text(&common::strip_trace(m.as_bytes()).1);
        assert!(!content.contains("Hidden"), "{user}: {m}");
        assert!(!content.contains("e@local.test"), "{user}: {m}");
        assert!(
            content.contains(
                "\r\nCc: =?utf-8?q?M=C3=BCller=2C_C?= <c@local.test>\r\nSubject: group\r\n"
            ),
            "{user}: {m}"
        );
    }
}
