//! Dialog scripts: a readable way to pin down protocol behaviour.
//!
//! ```text
//! # A comment. Lines starting with '@' are directives for the harness (listener options,
//! # expected deliveries); the runner hands them back untouched.
//! @listener max_recipients = 2
//! S: 220                        <- expect the next reply to start with this
//! C: EHLO client.test           <- send this line + CRLF (`C:` alone sends an empty line)
//! S: 250
//! R: MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n   <- send raw bytes (escapes: \r \n \t \0 \xHH), no CRLF added
//! S: 250 2.1.0
//! S: 554 5.7.1 Relay access denied
//! S: CLOSED                     <- expect the server to close the connection
//! ```
//! An `S:` pattern matches when the reply's last line (`CODE TEXT`) starts with it.

use std::net::SocketAddr;

use crate::SmtpClient;

/// One step of a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Send(Vec<u8>),
    Expect(String),
    ExpectClosed,
}

/// A parsed script: steps and harness directives.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub steps: Vec<(usize, Step)>,
    pub directives: Vec<String>,
}

pub fn parse(text: &str) -> Result<Script, String> {
    let mut s = Script::default();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let t = line.trim_end();
        if t.trim().is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(d) = t.strip_prefix('@') {
            s.directives.push(d.trim().to_string());
        } else if t == "C:" {
            s.steps.push((n, Step::Send(b"\r\n".to_vec())));
        } else if let Some(c) = t.strip_prefix("C: ") {
            let mut b = c.as_bytes().to_vec();
            b.extend_from_slice(b"\r\n");
            s.steps.push((n, Step::Send(b)));
        } else if let Some(r) = t.strip_prefix("R: ") {
            s.steps.push((
                n,
                Step::Send(unescape(r).map_err(|e| format!("line {n}: {e}"))?),
            ));
        } else if t == "S: CLOSED" {
            s.steps.push((n, Step::ExpectClosed));
        } else if let Some(e) = t.strip_prefix("S: ") {
            s.steps.push((n, Step::Expect(e.to_string())));
        } else {
            return Err(format!(
                "line {n}: expected 'C: ', 'R: ', 'S: ', '@' or '#': {t:?}"
            ));
        }
    }
    Ok(s)
}

fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            match b[i] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'0' => out.push(0),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    let hex = s.get(i + 1..i + 3).ok_or("short \\x escape")?;
                    out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?);
                    i += 2;
                }
                c => return Err(format!("unknown escape \\{}", c as char)),
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    Ok(out)
}

/// Run the steps against a server; the first mismatch is returned as an error naming the
/// script line.
pub async fn run(addr: SocketAddr, script: &Script) -> Result<(), String> {
    let mut c = SmtpClient::connect(addr).await;
    c.timeout = std::time::Duration::from_secs(5);
    for (n, step) in &script.steps {
        match step {
            Step::Send(b) => c.send(b).await,
            Step::Expect(want) => {
                let got = c
                    .try_reply()
                    .await
                    .map_err(|e| format!("line {n}: expected {want:?}, got {e}"))?;
                if !got.last().starts_with(want.as_str()) {
                    return Err(format!(
                        "line {n}: expected {want:?}, got {:?} (all lines: {:?})",
                        got.last(),
                        got.lines
                    ));
                }
            }
            Step::ExpectClosed => {
                if !c.is_closed().await {
                    return Err(format!(
                        "line {n}: expected the server to close the connection"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_and_escapes() {
        let s = parse("# c\n@listener x = 1\nS: 220\nC: EHLO a\nR: a\\r\\n\\x00\\\\\nS: CLOSED\n")
            .unwrap();
        assert_eq!(s.directives, vec!["listener x = 1"]);
        assert_eq!(s.steps[1].1, Step::Send(b"EHLO a\r\n".to_vec()));
        assert_eq!(s.steps[2].1, Step::Send(b"a\r\n\x00\\".to_vec()));
        assert_eq!(s.steps[3].1, Step::ExpectClosed);
        assert!(parse("X: nope").is_err());
        assert!(parse("R: \\q").is_err());
    }
}
