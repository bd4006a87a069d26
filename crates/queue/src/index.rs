//! The on-disk schedule: which messages in `active/` are due when, without reading them.
//!
//! Under `queue/schedule/`, one file per time bucket of [`WIDTH`] seconds, named by the
//! bucket's start (Unix seconds), holds the IDs (one a line) of messages whose next
//! attempt falls in it; the file `new` holds accepted messages that did not fit in the
//! scheduler's memory (they go first). The scheduler appends to these files and reads
//! them in bucket order, a few hundred lines at a time, as the in-memory window has
//! room; a bucket file is deleted once read to its end.
//!
//! The spool stays the source of truth: an entry only says "look at this ID then". A
//! stale entry (the message was delivered, deleted, held, or rescheduled) is skipped or
//! re-filed when read, and a message listed twice is loaded once. Entries are not
//! fsynced: the file `clean` is written only when the queue stops cleanly with every
//! message it held filed, and removed at start-up. Started without it (a crash, a power
//! loss, an operator command run while the daemon was stopped, a failed append), the
//! index is rebuilt from the names in `active/` alone: every message is filed as due
//! long ago, and the scheduler reads its state when it gets to it and files it where it
//! belongs. No message file is read to rebuild.
//!
//! # Security
//! The files are written by the daemon only; a damaged line is skipped (an ID is the
//! last 18 characters of its line, so an append that followed a torn one still counts).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::QueueId;

/// Seconds per bucket.
pub(crate) const WIDTH: u64 = 10;
/// The key of the `new` lane: before every time bucket.
const FRESH: u64 = 0;
/// The key of the `flush` lane: what was filed when the operator flushed the queue.
pub(crate) const FLUSH: u64 = 1;
/// The marker of an index that is complete.
const CLEAN: &str = "clean";
/// Bytes read from a bucket file at a time.
const CHUNK: usize = 64 << 10;
const ID_LEN: usize = 18;

#[derive(Debug)]
pub(crate) struct Index {
    dir: PathBuf,
    /// Keys of the files that exist: [`FRESH`] and bucket starts.
    keys: BTreeSet<u64>,
    /// Where reading stopped in the first file.
    cursor: (u64, u64),
    /// An append failed: the index may miss a message, so it is not marked clean.
    damaged: bool,
    /// Entries in the `new` lane not read yet (accepted mail waiting for room).
    fresh_filed: usize,
}

/// Where the index lives for a queue whose `active/` is `active`.
pub(crate) fn dir_for(active: &Path) -> PathBuf {
    active
        .parent()
        .map(|p| p.join("schedule"))
        .unwrap_or_else(|| PathBuf::from("schedule"))
}

/// Mark the index of this queue as incomplete (an operator command changed `active/`
/// while the daemon was stopped): the next start rebuilds it.
pub(crate) fn invalidate(active: &Path) {
    let marker = dir_for(active).join(CLEAN);
    if let Err(e) = fs::remove_file(&marker)
        && e.kind() != io::ErrorKind::NotFound
    {
        warn!(file = %marker.display(), "cannot remove the schedule's clean marker ({e}); remove it by hand, or the next start may not see a message added while the daemon was stopped");
    }
}

impl Index {
    /// Open the index, rebuilding it from the names in `active` when it was not left
    /// clean. Returns the index and, when rebuilt, how many messages were filed.
    pub(crate) fn open(active: &Path) -> io::Result<(Index, Option<usize>)> {
        let dir = dir_for(active);
        // A queue that never had a schedule (first start) is rebuilt quietly.
        let first_start = !dir.exists();
        crate::safefs::create_dir(&dir)?;
        let clean = dir.join(CLEAN);
        let was_clean = clean.exists();
        let mut ix = Index {
            dir,
            keys: BTreeSet::new(),
            cursor: (FRESH, 0),
            damaged: false,
            fresh_filed: 0,
        };
        if was_clean {
            fs::remove_file(&clean)?;
            crate::spool::sync_dir(&ix.dir)?;
            for e in fs::read_dir(&ix.dir)? {
                let name = e?.file_name();
                match name.to_str().and_then(key_of) {
                    Some(k) => {
                        ix.keys.insert(k);
                    }
                    None => {
                        warn!(file = ?name, "ignoring an unexpected file in the queue schedule")
                    }
                }
            }
            return Ok((ix, None));
        }
        for e in fs::read_dir(&ix.dir)? {
            let p = e?.path();
            let _ = fs::remove_file(&p);
        }
        let mut ids = Vec::new();
        for e in fs::read_dir(active)? {
            let name = e?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".msg"))
                .and_then(QueueId::parse)
            {
                ids.push(id);
            }
        }
        // Oldest first: IDs start with their arrival time.
        ids.sort_unstable();
        let n = ids.len();
        if n > 0 {
            let mut text = String::with_capacity(n * (ID_LEN + 1));
            for id in ids {
                text.push_str(&id.to_string());
                text.push('\n');
            }
            ix.append(WIDTH, text.as_bytes())?;
        }
        if first_start && n == 0 {
            info!("queue schedule created (new queue)");
        } else {
            info!(
                "queue schedule rebuilt from the spool: {n} message(s) in active/ will be looked at in arrival order (the queue was not stopped cleanly, or was changed while stopped)"
            );
        }
        Ok((ix, Some(n)))
    }

    fn path(&self, key: u64) -> PathBuf {
        match key {
            FRESH => self.dir.join("new"),
            FLUSH => self.dir.join("flush"),
            k => self.dir.join(k.to_string()),
        }
    }

    /// The operator flushed the queue: every entry filed in a time bucket moves to the
    /// `flush` lane, read right after `new`. Entries filed after this go to their
    /// buckets as usual, so a flush reads each message once.
    pub(crate) fn flush_all(&mut self) -> io::Result<()> {
        let keys: Vec<u64> = self.keys.iter().copied().filter(|&k| k >= WIDTH).collect();
        for k in keys {
            let path = self.path(k);
            let data = match fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            };
            let from = if self.cursor.0 == k {
                (self.cursor.1 as usize).min(data.len())
            } else {
                0
            };
            let mut rest = data[from..].to_vec();
            if !rest.is_empty() && !rest.ends_with(b"\n") {
                rest.push(b'\n');
            }
            self.append(FLUSH, &rest)?;
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            self.keys.remove(&k);
            if self.cursor.0 == k {
                self.cursor = (u64::MAX, 0);
            }
        }
        Ok(())
    }

    fn append(&mut self, key: u64, bytes: &[u8]) -> io::Result<()> {
        // Never through a link planted in schedule/ (a root `postern queue` may run this).
        let r = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(crate::safefs::FILE_MODE)
            .custom_flags(crate::safefs::nofollow())
            .open(self.path(key))
            .and_then(|mut f| f.write_all(bytes));
        match r {
            Ok(()) => {
                self.keys.insert(key);
                Ok(())
            }
            Err(e) => {
                // The file may hold part of the line: still read it, never mark clean.
                self.keys.insert(key);
                self.damaged = true;
                Err(e)
            }
        }
    }

    /// File `id` as due at `due` (Unix seconds), or in the `new` lane for `None`.
    pub(crate) fn add(&mut self, id: QueueId, due: Option<u64>) -> io::Result<()> {
        let key = due.map_or(FRESH, bucket);
        if key == FRESH {
            self.fresh_filed += 1;
        }
        self.append(key, format!("{id}\n").as_bytes())
    }

    /// When the first filed entry is due (Unix seconds; 0 for the `new` lane).
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.keys.first().copied()
    }

    /// Up to `max` entries from the files due by `upto` (Unix seconds), first files
    /// first. Each comes with its file's key (the bucket start; 0 for `new`).
    pub(crate) fn take(&mut self, upto: u64, max: usize) -> io::Result<Vec<(QueueId, u64)>> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&key) = self.keys.first() else {
                break;
            };
            if key > upto {
                break;
            }
            if self.cursor.0 != key {
                self.cursor = (key, 0);
            }
            let path = self.path(key);
            let mut buf = vec![0u8; CHUNK];
            let got = match OpenOptions::new()
                .read(true)
                .custom_flags(crate::safefs::nofollow())
                .open(&path)
            {
                Ok(mut f) => {
                    f.seek(SeekFrom::Start(self.cursor.1))?;
                    read_full(&mut f, &mut buf)?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e),
            };
            let data = &buf[..got];
            let mut used = 0;
            for line in data.split_inclusive(|&b| b == b'\n') {
                if out.len() >= max || !line.ends_with(b"\n") {
                    break;
                }
                used += line.len();
                let line = &line[..line.len() - 1];
                let tail = &line[line.len().saturating_sub(ID_LEN)..];
                if key == FRESH {
                    self.fresh_filed = self.fresh_filed.saturating_sub(1);
                }
                match std::str::from_utf8(tail).ok().and_then(QueueId::parse) {
                    Some(id) => out.push((id, key)),
                    None if line.is_empty() => {}
                    None => {
                        warn!(file = %path.display(), "skipping a damaged line in the queue schedule")
                    }
                }
            }
            self.cursor.1 += used as u64;
            if used == 0 && out.len() < max {
                // The end (or only a torn last line): the file is done.
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                self.keys.remove(&key);
                self.cursor = (u64::MAX, 0);
            }
        }
        Ok(out)
    }

    /// Record that every message of the queue is filed (at a clean stop).
    pub(crate) fn mark_clean(&self) -> io::Result<bool> {
        if self.damaged {
            warn!(
                "the queue schedule missed an entry (see above): it will be rebuilt from the spool at the next start"
            );
            return Ok(false);
        }
        File::create(self.dir.join(CLEAN))?.sync_all()?;
        crate::spool::sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Accepted messages waiting in the `new` lane.
    pub(crate) fn fresh_filed(&self) -> usize {
        self.fresh_filed
    }
}

fn bucket(due: u64) -> u64 {
    (due / WIDTH * WIDTH).max(WIDTH)
}

fn key_of(name: &str) -> Option<u64> {
    match name {
        "new" => Some(FRESH),
        "flush" => Some(FLUSH),
        n => n.parse().ok().filter(|k| k % WIDTH == 0 && *k > 0),
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[(QueueId, u64)]) -> Vec<QueueId> {
        v.iter().map(|e| e.0).collect()
    }

    #[test]
    fn entries_come_back_by_due_time_and_fresh_first() {
        let dir = tempfile::tempdir().unwrap();
        let active = dir.path().join("active");
        fs::create_dir(&active).unwrap();
        let (mut ix, rebuilt) = Index::open(&active).unwrap();
        assert_eq!(rebuilt, Some(0));
        let (a, b, c) = (
            QueueId::generate(),
            QueueId::generate(),
            QueueId::generate(),
        );
        ix.add(a, Some(2_000)).unwrap();
        ix.add(b, Some(1_000)).unwrap();
        ix.add(c, None).unwrap();
        assert_eq!(ix.next_due(), Some(0));
        assert_eq!(ids(&ix.take(1_500, 10).unwrap()), vec![c, b]);
        assert!(ix.take(1_500, 10).unwrap().is_empty());
        assert_eq!(ix.next_due(), Some(2_000));
        assert_eq!(ids(&ix.take(2_000, 10).unwrap()), vec![a]);
        assert_eq!(ix.next_due(), None);
    }

    #[test]
    fn a_clean_index_is_reopened_and_an_unclean_one_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let active = dir.path().join("active");
        fs::create_dir(&active).unwrap();
        let (x, y) = (QueueId::generate(), QueueId::generate());
        fs::write(active.join(format!("{x}.msg")), b"").unwrap();
        fs::write(active.join(format!("{y}.msg")), b"").unwrap();
        fs::write(active.join(format!("{y}.state")), b"").unwrap();
        {
            let (mut ix, rebuilt) = Index::open(&active).unwrap();
            assert_eq!(rebuilt, Some(2));
            ix.add(x, Some(5_000)).unwrap();
            assert!(ix.mark_clean().unwrap());
        }
        {
            let (mut ix, rebuilt) = Index::open(&active).unwrap();
            assert_eq!(rebuilt, None, "clean: reopened as it was");
            // Both from the rebuild (due long ago), then x again at 5000.
            assert_eq!(ids(&ix.take(100, 10).unwrap()), vec![x, y]);
            // Stopped without marking clean (a crash): rebuilt.
        }
        let (mut ix, rebuilt) = Index::open(&active).unwrap();
        assert_eq!(rebuilt, Some(2));
        assert_eq!(ids(&ix.take(100, 1).unwrap()), vec![x]);
        assert_eq!(ids(&ix.take(100, 5).unwrap()), vec![y]);
        assert_eq!(ix.next_due(), None, "the old bucket at 5000 was dropped");
    }

    #[test]
    fn a_flush_moves_every_bucket_to_the_flush_lane_once() {
        let dir = tempfile::tempdir().unwrap();
        let active = dir.path().join("active");
        fs::create_dir(&active).unwrap();
        let (mut ix, _) = Index::open(&active).unwrap();
        let (a, b, c) = (
            QueueId::generate(),
            QueueId::generate(),
            QueueId::generate(),
        );
        ix.add(a, Some(5_000)).unwrap();
        ix.add(b, Some(9_000)).unwrap();
        ix.flush_all().unwrap();
        // Filed again after the flush: in its bucket, not in the flush lane.
        ix.add(c, Some(5_000)).unwrap();
        assert_eq!(ids(&ix.take(100, 10).unwrap()), vec![a, b]);
        assert!(ix.take(100, 10).unwrap().is_empty());
        assert_eq!(ids(&ix.take(5_000, 10).unwrap()), vec![c]);
    }

    #[test]
    fn a_torn_line_is_skipped_and_the_next_append_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let active = dir.path().join("active");
        fs::create_dir(&active).unwrap();
        let (mut ix, _) = Index::open(&active).unwrap();
        let id = QueueId::generate();
        ix.append(WIDTH * 3, b"0063F1A2").unwrap();
        ix.add(id, Some(WIDTH * 3 + 1)).unwrap();
        ix.append(WIDTH * 3, b"garbage line\n").unwrap();
        assert_eq!(ids(&ix.take(WIDTH * 4, 10).unwrap()), vec![id]);
        assert_eq!(ix.next_due(), None);
    }
}
