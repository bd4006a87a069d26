//! Fuzzing Postern's parsers on stable Rust.
//!
//! `postern-fuzz TARGET SECONDS` (or `all SECONDS`) mutates the seed corpus in
//! `tests/fuzz/corpus/TARGET/` (bit flips, byte insertions and deletions, splices of two
//! inputs, boundary bytes such as CR, LF, NUL, '.', '<', '@', multi-byte UTF-8 characters
//! written over or between bytes) and feeds every mutant to the
//! target for SECONDS. A panic, or a broken invariant, is a finding: the input is written to
//! `tests/fuzz/artifacts/TARGET-<hash>` and the run exits 1.
//!
//! This runner is not coverage-guided (rustc 1.95 stable has no libFuzzer sanitizer flags);
//! the targets are plain `fn(&[u8])` so they can be dropped into cargo-fuzz on a nightly
//! toolchain unchanged. See docs/reliability.md for running them long.

#![allow(clippy::unwrap_used)]

mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Target = fn(&[u8]);

fn targets() -> Vec<(&'static str, Target)> {
    vec![
        ("command", targets::command),
        ("data", targets::data),
        ("bdat", targets::bdat),
        ("header_scan", targets::header_scan),
        ("roundtrip", targets::roundtrip),
        ("address", targets::address),
        ("config", targets::config),
        ("queue_record", targets::queue_record),
        ("x509", targets::x509),
        ("server_hello", targets::server_hello),
        ("reply", targets::reply),
        ("ehlo", targets::ehlo),
        ("headers", targets::headers),
    ]
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = b"\r\n\0.<>@:;,\"\\[] =-\xff\x80";

/// Multi-byte UTF-8 characters (2, 3 and 4 bytes) and a lone lead byte: text fields of
/// certificates, headers and addresses must never be sliced in the middle of one.
const MULTIBYTE: &[&str] = &["é", "Ä", "€", "ß", "\u{2028}", "日", "😀", "\u{0301}"];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below(8).min(v.len() - i);
                v.drain(i..i + n);
            }
            3 => {
                let other = &corpus[rng.below(corpus.len())];
                let i = rng.below(v.len() + 1);
                let j = rng.below(other.len() + 1);
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            6 | 7 => {
                // A multi-byte character, inserted or replacing bytes in place (so that
                // DER lengths stay right and the character reaches the text parsers).
                let ch = MULTIBYTE[rng.below(MULTIBYTE.len())].as_bytes();
                let i = rng.below(v.len() + 1);
                if rng.below(2) == 0 && i + ch.len() <= v.len() {
                    v[i..i + ch.len()].copy_from_slice(ch);
                } else {
                    v.splice(i..i, ch.iter().copied());
                }
            }
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below(64);
                let b = v[i];
                for _ in 0..n {
                    v.insert(i, b);
                }
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v.truncate(1 << 16);
    v
}

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

fn run(name: &str, target: Target, budget: Duration, seed: u64) -> bool {
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(corpus_dir(name))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let mut execs = 0u64;
    // The seeds themselves first.
    let mut queue: Vec<Vec<u8>> = corpus.clone();
    loop {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                if start.elapsed() >= budget {
                    break;
                }
                let base = corpus[rng.below(corpus.len())].clone();
                mutate(&mut rng, &corpus, &base)
            }
        };
        execs += 1;
        let outcome = std::panic::catch_unwind(|| target(&input));
        if outcome.is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
            let _ = std::fs::create_dir_all(&dir);
            let hash = input.iter().fold(0xcbf29ce484222325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
            let path = dir.join(format!("{name}-{hash:016x}"));
            let _ = std::fs::write(&path, &input);
            eprintln!(
                "{name}: FINDING after {execs} inputs (seed {seed}); input saved to {}",
                path.display()
            );
            return false;
        }
        // Keep some mutants as new bases so inputs drift further from the seeds.
        if execs.is_multiple_of(97) && corpus.len() < 4096 {
            corpus.push(input);
        }
    }
    println!(
        "{name}: {execs} inputs in {:.1}s, no findings (seed {seed})",
        start.elapsed().as_secs_f64()
    );
    true
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (which, secs) = match args.as_slice() {
        [w, s] => (w.clone(), s.parse::<u64>().unwrap_or(10)),
        [w] => (w.clone(), 10),
        _ => {
            eprintln!(
                "usage: postern-fuzz TARGET|all [SECONDS]   targets: {}",
                targets().iter().map(|t| t.0).collect::<Vec<_>>().join(" ")
            );
            std::process::exit(2);
        }
    };
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    // Findings are reported by the runner; keep the default panic message short.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    let mut ok = true;
    let mut ran = 0;
    for (name, t) in targets() {
        if which == "all" || which == name {
            ok &= run(name, t, Duration::from_secs(secs), seed);
            ran += 1;
        }
    }
    if ran == 0 {
        eprintln!("unknown target {which}");
        std::process::exit(2);
    }
    std::process::exit(if ok { 0 } else { 1 });
}
