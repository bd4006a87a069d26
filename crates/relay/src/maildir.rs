//! Local delivery into Maildirs.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use postern_queue::agent_future::BoxFuture;
use postern_queue::{DeliveryAgent, DeliveryOutcome, Outcome, QueuedMessage, safefs};

/// Delivers each recipient into `root/<local-part>/` (a Maildir: `tmp`, `new`, `cur`),
/// adding `Return-Path:` and `Delivered-To:`. The file is written in `tmp/`, fsynced,
/// renamed into `new/`, and `new/` is fsynced before the delivery counts as done.
/// Folders are made 0750 and files 0640 whatever the umask; a new file never reuses an
/// existing name or follows a link ([`postern_queue::safefs`]).
#[derive(Debug)]
pub struct MaildirAgent {
    root: PathBuf,
    host: String,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl MaildirAgent {
    pub fn new(root: PathBuf, hostname: &str) -> MaildirAgent {
        // Maildir names must not contain '/' or ':'.
        let host = hostname.replace('/', "\\057").replace(':', "\\072");
        MaildirAgent { root, host }
    }

    /// The Maildir of a local part: lower-cased, reduced to a safe alphabet.
    pub fn folder(&self, local: &str) -> PathBuf {
        self.root.join(folder_name(local))
    }

    fn deliver_one(&self, msg: &QueuedMessage, rcpt: usize) -> io::Result<PathBuf> {
        let address = &msg.envelope.recipients[rcpt];
        let dir = self.folder(&address.local);
        for sub in ["tmp", "new", "cur"] {
            safefs::create_dir(&dir.join(sub))?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            self.host
        );
        let tmp = dir.join("tmp").join(&name);
        let new = dir.join("new").join(&name);
        let result = (|| {
            let mut f = safefs::create_new(&tmp)?;
            let head = format!(
                "Return-Path: {}\r\nDelivered-To: {}\r\n",
                msg.envelope.sender, address
            );
            f.write_all(head.as_bytes())?;
            io::copy(&mut msg.open_body()?, &mut f)?;
            f.sync_all()?;
            fs::rename(&tmp, &new)?;
            File::open(dir.join("new"))?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|_| new)
    }
}

fn folder_name(local: &str) -> String {
    let mut out = String::new();
    for c in local.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || "-_+=".contains(c) || (c == '.' && !out.is_empty()) {
            out.push(c);
        } else {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if out.is_empty() { "%00".into() } else { out }
}

impl DeliveryAgent for MaildirAgent {
    fn deliver<'a>(
        &'a self,
        msg: &'a QueuedMessage,
        rcpts: &'a [usize],
    ) -> BoxFuture<'a, Vec<DeliveryOutcome>> {
        Box::pin(async move {
            let relay = format!("maildir:{}", self.root.display());
            let agent = MaildirAgent {
                root: self.root.clone(),
                host: self.host.clone(),
            };
            let (msg, rcpts) = (msg.clone(), rcpts.to_vec());
            let n = rcpts.len();
            // Delivery is blocking file work: keep it off the async threads.
            let outcomes = tokio::task::spawn_blocking(move || {
                rcpts
                    .iter()
                    .map(|&i| match agent.deliver_one(&msg, i) {
                        Ok(path) => Outcome::Delivered(crate::detail::local(format!(
                            "delivered to {}",
                            path.display()
                        ))),
                        Err(e) => Outcome::Temporary(crate::detail::local(format!(
                            "cannot write to maildir {}: {e}",
                            agent.folder(&msg.envelope.recipients[i].local).display()
                        ))),
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_else(|e| {
                vec![
                    Outcome::Temporary(crate::detail::local(format!(
                        "maildir delivery task failed: {e}"
                    )));
                    n
                ]
            });
            outcomes
                .into_iter()
                .map(|outcome| DeliveryOutcome {
                    relay: relay.clone(),
                    outcome,
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(folder_name("Bob.Smith+tag"), "bob.smith+tag");
        assert_eq!(folder_name("../../etc"), "%2E.%2F..%2Fetc");
        assert!(!folder_name("../../etc").contains('/'));
        assert!(!folder_name(".hidden").starts_with('.'));
        assert_eq!(folder_name("a/b"), "a%2Fb");
        assert_eq!(folder_name("j\u{f6}rg"), "j%C3%B6rg");
        assert_eq!(folder_name("a b"), "a%20b");
    }
}
