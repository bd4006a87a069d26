//! The policy cache: one JSON file per domain under `<state_dir>/mta-sts/`, written
//! atomically (temporary file, fsync, rename, fsync of the directory), with an in-memory
//! map in front. It survives restarts and holds at most [`MAX_ENTRIES`] domains (expired
//! entries are dropped first, then the oldest fetched).
//!
//! The `postern mta-sts` commands change the files while the daemon may run. The daemon
//! checks the file on every use (one `stat`): a missing file drops its memory entry (so a
//! `forget` is never resurrected), a changed modification time re-reads it (a `refresh`
//! is seen at once).
//!
//! # Security
//! `postern mta-sts` may run as root in a directory the daemon's user can write. Files
//! are written through `postern_queue::safefs` (never through a planted link), and read
//! back with `O_NOFOLLOW|O_NONBLOCK`: only a regular file with one link and at most
//! [`MAX_FILE`] bytes is read; a link, a FIFO or a device is refused with a warning,
//! never followed, never waited on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// Most domains kept.
pub const MAX_ENTRIES: usize = 10_000;

/// Largest cache file read back: a policy is at most 64 KiB (`fetch.rs`), its JSON
/// entry a little more.
pub const MAX_FILE: u64 = 1 << 20;

/// One cached policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub domain: String,
    /// The TXT record's `id` when the policy was fetched.
    pub id: String,
    pub policy: Policy,
    /// Where it was fetched from.
    pub url: String,
    /// Unix seconds: when it was fetched (`max_age` counts from here).
    pub fetched: u64,
}

impl Entry {
    /// Unix seconds at which the policy expires.
    pub fn expires(&self) -> u64 {
        self.fetched.saturating_add(self.policy.max_age)
    }

    pub fn expired(&self, now: u64) -> bool {
        now >= self.expires()
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why the cache could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{0:?} is not a domain name the cache can store")]
    BadDomain(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The cache of one state directory.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    /// `false`: memory only ([`Cache::memory`]), nothing read or written on disk.
    persist: bool,
    max: usize,
    /// Domain → entry and the file's modification time when read or written.
    mem: Mutex<HashMap<String, (Entry, Option<SystemTime>)>>,
    /// Files refused on reading (a link, a FIFO, unreadable JSON), with their modification
    /// time: warned about once, not re-read on every delivery until they change.
    refused: Mutex<HashMap<String, Option<SystemTime>>>,
}

/// The cache key (and file stem) for `domain`: lower case, no trailing dot; `None` for a
/// name that is not a plain host name (the file name must never escape the directory).
pub fn key(domain: &str) -> Option<String> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(d)
}

impl Cache {
    /// Open (creating) `<state_dir>/mta-sts` and read what it holds.
    pub fn open(state_dir: &Path) -> Result<Cache, CacheError> {
        Self::open_bounded(state_dir, MAX_ENTRIES)
    }

    /// [`Cache::open`] holding at most `max` domains.
    pub fn open_bounded(state_dir: &Path, max: usize) -> Result<Cache, CacheError> {
        let dir = state_dir.join("mta-sts");
        let io = |source| CacheError::Io {
            path: dir.display().to_string(),
            source,
        };
        postern_queue::safefs::create_dir(&dir).map_err(io)?;
        let cache = Cache {
            dir: dir.clone(),
            persist: true,
            max: max.max(1),
            mem: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        };
        let mut mem = HashMap::new();
        for e in std::fs::read_dir(&dir).map_err(io)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A write cut short by a crash (unlinking a link removes only the link).
                // Only old ones: `postern mta-sts` opens the cache while the daemon may
                // be writing, and a write takes milliseconds.
                let stale = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(600));
                if stale {
                    let _ = std::fs::remove_file(e.path());
                }
                continue;
            }
            let Some(domain) = name.strip_suffix(".json") else {
                continue;
            };
            if let Some(loaded) = cache.read_file(domain) {
                mem.insert(domain.to_string(), loaded);
            }
        }
        *cache.lock() = mem;
        Ok(cache)
    }

    /// A cache in memory only: for when `<state_dir>/mta-sts` cannot be used (e.g.
    /// `policy explain` run by another user than the daemon's). Lost at exit.
    pub fn memory() -> Cache {
        Cache {
            dir: PathBuf::new(),
            persist: false,
            max: MAX_ENTRIES,
            mem: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Whether entries are kept on disk.
    pub fn persistent(&self) -> bool {
        self.persist
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Entry, Option<SystemTime>)>> {
        self.mem.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    fn mtime(&self, key: &str) -> Option<SystemTime> {
        // The name itself, not what a link would point at (a link is refused on reading).
        std::fs::symlink_metadata(self.path(key))
            .and_then(|m| m.modified())
            .ok()
    }

    fn read_file(&self, key: &str) -> Option<(Entry, Option<SystemTime>)> {
        let path = self.path(key);
        let seen = self.mtime(key);
        {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            match refused.get(key) {
                Some(t) if *t == seen => return None,
                Some(_) => {
                    refused.remove(key);
                }
                None => {}
            }
        }
        let refuse = |this: &Self| {
            let mut refused = this.refused.lock().unwrap_or_else(|p| p.into_inner());
            if refused.len() >= MAX_ENTRIES {
                refused.clear();
            }
            refused.insert(key.to_string(), seen);
        };
        let (text, mtime) = match read_plain(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                refuse(self);
                tracing::warn!(
                    "MTA-STS cache file {} ignored: {e}; remove it (`postern mta-sts forget DOMAIN`) and check who can write to {}",
                    path.display(),
                    self.dir.display()
                );
                return None;
            }
        };
        match serde_json::from_slice::<Entry>(&text) {
            Ok(e) if e.domain == key => Some((e, mtime)),
            Ok(_) | Err(_) => {
                refuse(self);
                tracing::warn!(
                    "MTA-STS cache file {} is unreadable or names another domain: ignored",
                    path.display()
                );
                None
            }
        }
    }

    /// The entry for `domain` (expired or not), as the file says now.
    pub fn get(&self, domain: &str) -> Option<Entry> {
        let key = key(domain)?;
        if !self.persist {
            return self.lock().get(&key).map(|(e, _)| e.clone());
        }
        let mtime = self.mtime(&key);
        let mut mem = self.lock();
        let Some(mtime) = mtime else {
            // Forgotten (or never stored): the memory copy must not outlive the file.
            mem.remove(&key);
            return None;
        };
        if let Some((e, seen)) = mem.get(&key)
            && *seen == Some(mtime)
        {
            return Some(e.clone());
        }
        drop(mem);
        let loaded = self.read_file(&key)?;
        let e = loaded.0.clone();
        self.lock().insert(key, loaded);
        Some(e)
    }

    /// Store `entry` (replacing any entry of its domain), evicting when full.
    pub fn put(&self, entry: &Entry) -> Result<(), CacheError> {
        let key = key(&entry.domain).ok_or_else(|| CacheError::BadDomain(entry.domain.clone()))?;
        self.evict_for(&key);
        if !self.persist {
            self.lock().insert(key, (entry.clone(), None));
            return Ok(());
        }
        let path = self.path(&key);
        let io = |source| CacheError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut json =
            serde_json::to_vec_pretty(entry).map_err(|e| io(std::io::Error::other(e)))?;
        json.push(b'\n');
        // Unique per process and per write: two writes of one domain at once (a delivery
        // and the refresher) must not share a temporary file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{key}.json.{}.{n}.tmp", std::process::id()));
        // Never through a link planted in the directory (the CLI may run as root).
        postern_queue::safefs::replace_file(&tmp, &path, &json)
            .and_then(|()| std::fs::File::open(&self.dir)?.sync_all())
            .map_err(io)?;
        let mtime = self.mtime(&key);
        self.lock().insert(key, (entry.clone(), mtime));
        Ok(())
    }

    /// Delete `domain`'s entry; `true` if there was one.
    pub fn forget(&self, domain: &str) -> Result<bool, CacheError> {
        let key = key(domain).ok_or_else(|| CacheError::BadDomain(domain.to_string()))?;
        let had = self.lock().remove(&key).is_some();
        if !self.persist {
            return Ok(had);
        }
        let path = self.path(&key);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                let _ = std::fs::File::open(&self.dir).and_then(|d| d.sync_all());
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CacheError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Every entry in memory (the refresher walks these).
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().values().map(|(e, _)| e.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Make room for `key` when the cache is full: expired entries go first, then the
    /// oldest fetched.
    fn evict_for(&self, key: &str) {
        let now = now();
        let victims: Vec<String> = {
            let mem = self.lock();
            if mem.contains_key(key) || mem.len() < self.max {
                return;
            }
            let mut all: Vec<(&String, &Entry)> = mem.iter().map(|(k, (e, _))| (k, e)).collect();
            // Expired first, then by fetch time.
            all.sort_by_key(|(_, e)| (!e.expired(now), e.fetched));
            let excess = mem.len() + 1 - self.max;
            let expired = all.iter().filter(|(_, e)| e.expired(now)).count();
            all.iter()
                .take(excess.max(expired))
                .map(|(k, _)| (*k).clone())
                .collect()
        };
        for v in victims {
            let _ = self.forget(&v);
        }
    }
}

/// Read a cache file without following a link or blocking on a FIFO: it must be a
/// regular file with one link and at most [`MAX_FILE`] bytes.
fn read_plain(path: &Path) -> std::io::Result<(Vec<u8>, Option<SystemTime>)> {
    let text = postern_queue::safefs::read_regular(path, MAX_FILE)?;
    let mtime = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok();
    Ok((text, mtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Mode;

    /// A link, a FIFO or a hard link planted in the cache directory is neither followed
    /// nor waited on: the domain simply has no cached policy.
    #[test]
    fn planted_links_and_fifos_are_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path()).unwrap();
        c.put(&entry("real.test", "r1", now(), 3600)).unwrap();
        let cache_dir = dir.path().join("mta-sts");
        // A valid entry elsewhere, reachable only through a link.
        let outside = dir.path().join("outside.json");
        std::fs::write(
            &outside,
            serde_json::to_vec(&entry("link.test", "l1", now(), 3600)).unwrap(),
        )
        .unwrap();
        std::os::unix::fs::symlink(&outside, cache_dir.join("link.test.json")).unwrap();
        let outside_hard = dir.path().join("outside-hard.json");
        std::fs::write(
            &outside_hard,
            serde_json::to_vec(&entry("hard.test", "h1", now(), 3600)).unwrap(),
        )
        .unwrap();
        std::fs::hard_link(&outside_hard, cache_dir.join("hard.test.json")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            cache_dir.join("fifo.test.json"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Opening and every lookup return at once, without the planted entries.
        let again = Cache::open(dir.path()).unwrap();
        for c in [&c, &again] {
            assert!(c.get("link.test").is_none());
            assert!(c.get("hard.test").is_none());
            assert!(c.get("fifo.test").is_none());
            assert_eq!(c.get("real.test").unwrap().id, "r1");
        }
        assert!(read_plain(&cache_dir.join("link.test.json")).is_err());
    }

    fn entry(domain: &str, id: &str, fetched: u64, max_age: u64) -> Entry {
        Entry {
            domain: domain.into(),
            id: id.into(),
            policy: Policy {
                mode: Mode::Enforce,
                mx: vec!["mx.example.org".into()],
                max_age,
            },
            url: format!("https://mta-sts.{domain}/.well-known/mta-sts.txt"),
            fetched,
        }
    }

    #[test]
    fn survives_reopen_and_forget_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path()).unwrap();
        c.put(&entry("example.org", "a1", now(), 3600)).unwrap();
        let again = Cache::open(dir.path()).unwrap();
        assert_eq!(again.get("Example.ORG.").unwrap().id, "a1");
        // Another process (the CLI) forgets: the first cache must not resurrect it.
        assert!(again.forget("example.org").unwrap());
        assert!(c.get("example.org").is_none());
        assert!(!again.forget("example.org").unwrap());
        assert!(c.put(&entry("../etc", "x", 0, 1)).is_err());
        assert!(key("a/b").is_none());
    }

    #[test]
    fn bounded_expired_then_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open_bounded(dir.path(), 3).unwrap();
        let n = now();
        c.put(&entry("old.test", "1", n - 100, 3600)).unwrap();
        c.put(&entry("expired.test", "1", n - 10_000, 60)).unwrap();
        c.put(&entry("new.test", "1", n, 3600)).unwrap();
        c.put(&entry("fourth.test", "1", n, 3600)).unwrap();
        assert!(c.get("expired.test").is_none(), "expired goes first");
        assert!(c.get("old.test").is_some());
        c.put(&entry("fifth.test", "1", n, 3600)).unwrap();
        assert!(c.get("old.test").is_none(), "then the oldest");
        assert_eq!(c.len(), 3);
        assert_eq!(
            std::fs::read_dir(dir.path().join("mta-sts"))
                .unwrap()
                .count(),
            3
        );
    }
}
