//! The spool lock: one process at a time owns a queue directory.
//!
//! The daemon takes an exclusive `flock(2)` on `QUEUE/lock` before it opens the spool and
//! holds it until it exits (the kernel drops it even after `kill -9`). `postern queue`
//! commands take the same lock when they work on the files directly, so they only ever
//! do that while no daemon runs; when the lock is taken they talk to the daemon through
//! its control socket instead, and the daemon makes the change itself. Either way one
//! process changes the spool, so no command races a delivery.
//!
//! # Security
//! The lock file holds the owner's process ID, for the error message only; nothing
//! trusts it. It is opened without following a symbolic link and only truncated once it
//! is known to be a regular file with one link, owned by the caller or the queue
//! directory's owner ([`crate::safefs::open_owned`]): a root `postern queue` never
//! writes through a link planted in the queue directory.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::safefs;

/// Held for as long as the spool is owned; dropping it releases the lock.
#[derive(Debug)]
pub struct SpoolLock {
    _file: File,
    path: PathBuf,
}

impl SpoolLock {
    /// Create the queue directory and take its lock for a daemon, before the spool is
    /// opened: a second daemon on the same queue would deliver every message twice. The
    /// error names the holder.
    pub fn acquire_for_daemon(queue_dir: &Path) -> std::io::Result<SpoolLock> {
        safefs::create_dir(queue_dir)?;
        match SpoolLock::try_acquire(queue_dir)? {
            Some(lock) => Ok(lock),
            None => Err(std::io::Error::other(format!(
                "another postern process{} is using this queue (it holds {}); stop it first",
                SpoolLock::holder(queue_dir)
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default(),
                SpoolLock::path_in(queue_dir).display()
            ))),
        }
    }

    /// The lock file of the queue directory `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join("lock")
    }

    /// Take the lock of the existing queue directory `dir`, or `Ok(None)` when another
    /// process holds it. A caller who may not write the lock file (an operator in the
    /// `postern` group) still gets the lock, through a read-only descriptor.
    pub fn try_acquire(dir: &Path) -> io::Result<Option<SpoolLock>> {
        let path = Self::path_in(dir);
        let annotate = |e: io::Error| {
            if safefs::is_refusal(&e) {
                e
            } else {
                io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            }
        };
        let (mut file, writable) = match safefs::open_owned(&path, true) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                (safefs::open_owned(&path, false).map_err(annotate)?, false)
            }
            Err(e) => return Err(annotate(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot lock {}: {e}", path.display()),
                ));
            }
        }
        if writable {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            let _ = writeln!(file, "{}", std::process::id());
        }
        Ok(Some(SpoolLock { _file: file, path }))
    }

    /// The process ID written by whoever holds the lock of `dir`, if readable.
    pub fn holder(dir: &Path) -> Option<u32> {
        let mut s = String::new();
        safefs::open_owned(&Self::path_in(dir), false)
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        s.trim().parse().ok()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let a = SpoolLock::try_acquire(dir.path()).unwrap().unwrap();
        assert!(SpoolLock::try_acquire(dir.path()).unwrap().is_none());
        assert_eq!(SpoolLock::holder(dir.path()), Some(std::process::id()));
        drop(a);
        assert!(SpoolLock::try_acquire(dir.path()).unwrap().is_some());
    }
}
