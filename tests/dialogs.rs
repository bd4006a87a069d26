//! Runs every `tests/dialogs/*.dialog` script against a fresh server.
//!
//! Directives: `@listener KEY = VALUE` adds a line to the test listener;
//! `@delivered N` checks that exactly N messages were delivered once the script ends.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, dialog};

#[tokio::test]
async fn dialog_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dialogs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "dialog"));
    files.sort();
    assert!(
        files.len() >= 12,
        "expected at least a dozen dialog scripts, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let script = dialog::parse(&std::fs::read_to_string(f).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut listener = String::new();
        let mut delivered = None;
        for d in &script.directives {
            if let Some(l) = d.strip_prefix("listener ") {
                listener.push_str(l);
                listener.push('\n');
            } else if let Some(n) = d.strip_prefix("delivered ") {
                delivered = Some(n.trim().parse::<usize>().unwrap());
            } else {
                panic!("{name}: unknown directive @{d}");
            }
        }
        let server = TestServer::start(&listener, "").await;
        if let Err(e) = dialog::run(server.addr(), &script).await {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        if let Some(n) = delivered {
            // Give the queue a moment to deliver (or not).
            let mut got = 0;
            for _ in 0..40 {
                got = server.all_delivered().len();
                if got >= n && n > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            if got != n {
                failures.push(format!(
                    "{name}: expected {n} delivered message(s), found {got}"
                ));
            }
        }
        server.stop().await;
    }
    assert!(
        failures.is_empty(),
        "dialog failures:\n{}",
        failures.join("\n")
    );
}
