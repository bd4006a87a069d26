//! Spare spool files: the files of delivered messages, emptied and kept in `spare/` to
//! hold the next messages received, instead of being deleted and created anew.
//!
//! Why: every message used to cost one inode allocation (in `incoming/`) and one inode
//! release (after delivery). On ext4 without a journal the allocator skips inodes freed
//! in the last minutes, reading each one's inode-table block to learn when it was
//! freed, while it holds the lock of the directory the file is created in; under a
//! steady stream of messages that scan grew with the number of messages of the last
//! minutes and every other session's create waited on it (see docs/performance.md).
//! Other file systems also pay a journal transaction for each create and unlink. A
//! rename into `incoming/` costs neither.
//!
//! # Security
//! `spare/` holds only files this process put there during this run: [`Spares::open`]
//! deletes whatever it finds (unlinking a planted link removes the link, never its
//! target). A spare is reopened without following links and must be a regular file
//! with one link owned by us, or it is dropped and a new file is made. A retired file
//! is emptied as soon as it is renamed into `spare/`: delivered mail does not linger
//! there.
//!
//! Durability is unchanged: a reused file is written, fdatasynced, renamed into
//! `active/` and the directory fsynced exactly like a new one before the client hears
//! 250. A crash leaves at most files in `incoming/` or `spare/`, which start-up empties.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::warn;

use crate::safefs;

/// Most spare files kept. Each is an empty inode; more than the messages in flight at
/// once buys nothing.
pub(crate) const MAX_SPARES: usize = 4096;

/// The pool of spare files: `spare/N`, for the numbers in `free`.
#[derive(Debug)]
pub(crate) struct Spares {
    dir: PathBuf,
    state: Mutex<SpareState>,
}

#[derive(Debug, Default)]
struct SpareState {
    free: Vec<u64>,
    next: u64,
}

impl Spares {
    /// Use `dir` (created if missing) for spare files, deleting what it holds.
    pub(crate) fn open(dir: PathBuf) -> io::Result<Spares> {
        safefs::create_dir(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let p = entry?.path();
            if let Err(e) = fs::remove_file(&p) {
                warn!(file = %p.display(), "cannot remove a leftover spare spool file: {e}");
            }
        }
        Ok(Spares {
            dir,
            state: Mutex::new(SpareState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpareState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many spare files are ready.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().free.len()
    }

    /// A file for a new message, at `path` (which must not exist): a spare renamed
    /// there and reopened, or, when none is left, a new file.
    pub(crate) fn take(&self, path: &Path) -> io::Result<File> {
        loop {
            let Some(n) = self.lock().free.pop() else {
                return safefs::create_new(path);
            };
            let src = self.dir.join(n.to_string());
            // NOREPLACE: never put a reused file over an existing name, as O_EXCL
            // guarantees for a new one.
            if let Err(e) = rustix::fs::renameat_with(
                rustix::fs::CWD,
                &src,
                rustix::fs::CWD,
                path,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                if e == rustix::io::Errno::EXIST {
                    let _ = fs::remove_file(&src);
                    return Err(io::Error::from(e));
                }
                // Gone (an operator cleaning up) or unusable: try the next one.
                let _ = fs::remove_file(&src);
                continue;
            }
            match open_spare(path) {
                Ok(f) => return Ok(f),
                Err(e) => {
                    warn!(file = %path.display(), "spare spool file not reused: {e}");
                    fs::remove_file(path)?;
                    return safefs::create_new(path);
                }
            }
        }
    }

    /// `path` (a message file nobody needs any more) leaves the queue: it is moved into
    /// `spare/` and emptied, or deleted when enough spares are kept already.
    pub(crate) fn retire(&self, path: &Path) -> io::Result<()> {
        let n = {
            let mut st = self.lock();
            if st.free.len() >= MAX_SPARES {
                None
            } else {
                st.next += 1;
                Some(st.next)
            }
        };
        let Some(n) = n else {
            return fs::remove_file(path);
        };
        let dst = self.dir.join(n.to_string());
        // Out of the queue first: emptied in place, a crash could leave an empty
        // `.msg` behind.
        fs::rename(path, &dst)?;
        match open_spare(&dst).and_then(|f| f.set_len(0)) {
            Ok(()) => self.lock().free.push(n),
            Err(e) => {
                warn!(file = %dst.display(), "spool file not kept for reuse: {e}");
                let _ = fs::remove_file(&dst);
            }
        }
        Ok(())
    }
}

/// Open a spool file for writing without following a link, and check it is a regular
/// file with one link owned by us (what [`safefs::create_new`] would have made).
fn open_spare(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(safefs::nofollow())
        .open(path)?;
    let m = f.metadata()?;
    let me = rustix::process::geteuid().as_raw();
    if !m.file_type().is_file() || m.nlink() != 1 || m.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file with one link owned by this user",
        ));
    }
    if m.len() != 0 {
        f.set_len(0)?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn retired_files_are_emptied_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::open(dir.path().join("spare")).unwrap();
        let a = dir.path().join("a");
        let mut f = spares.take(&a).unwrap();
        f.write_all(b"delivered mail").unwrap();
        drop(f);
        let ino = fs::metadata(&a).unwrap().ino();
        spares.retire(&a).unwrap();
        assert!(!a.exists());
        assert_eq!(spares.len(), 1);
        let kept = fs::read_dir(dir.path().join("spare"))
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(kept.unwrap().metadata().unwrap().len(), 0, "emptied");
        let b = dir.path().join("b");
        let mut f = spares.take(&b).unwrap();
        f.write_all(b"new").unwrap();
        drop(f);
        assert_eq!(fs::metadata(&b).unwrap().ino(), ino, "the same inode");
        assert_eq!(fs::read(&b).unwrap(), b"new");
        assert_eq!(spares.len(), 0);
    }

    #[test]
    fn a_spare_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::open(dir.path().join("spare")).unwrap();
        let a = dir.path().join("a");
        fs::write(&a, "x").unwrap();
        spares.retire(&a).unwrap();
        let b = dir.path().join("b");
        fs::write(&b, "precious").unwrap();
        assert!(spares.take(&b).is_err());
        assert_eq!(fs::read_to_string(&b).unwrap(), "precious");
    }

    #[test]
    fn planted_links_are_not_reused_and_leftovers_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let spare_dir = dir.path().join("spare");
        let spares = Spares::open(spare_dir.clone()).unwrap();
        let a = dir.path().join("a");
        fs::write(&a, "x").unwrap();
        spares.retire(&a).unwrap();
        // Someone replaces the spare with a hard link to a precious file.
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        let spare = fs::read_dir(&spare_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        fs::remove_file(&spare).unwrap();
        fs::hard_link(&target, &spare).unwrap();
        let b = dir.path().join("b");
        let mut f = spares.take(&b).unwrap();
        f.write_all(b"mail").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        assert_eq!(fs::metadata(&b).unwrap().nlink(), 1);
        // At the next start whatever is in spare/ goes, the link's target stays.
        fs::hard_link(&target, spare_dir.join("7")).unwrap();
        let again = Spares::open(spare_dir.clone()).unwrap();
        assert_eq!(again.len(), 0);
        assert_eq!(fs::read_dir(&spare_dir).unwrap().count(), 0);
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn at_most_max_spares_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::open(dir.path().join("spare")).unwrap();
        spares.lock().free = (0..MAX_SPARES as u64).collect();
        let a = dir.path().join("a");
        fs::write(&a, "x").unwrap();
        spares.retire(&a).unwrap();
        assert!(!a.exists());
        assert_eq!(spares.len(), MAX_SPARES);
    }
}
