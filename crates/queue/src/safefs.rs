//! File creation under the state directory that never follows a symbolic link, never
//! truncates a file it did not create, and never takes its mode from the umask.
//!
//! # Security
//! `postern queue …` and the daemon may run as root, in directories the `postern` user
//! can write. A link planted there (`lock -> /etc/shadow`) must not make root open,
//! truncate or write the target. So:
//! - new files are made with `O_CREAT|O_EXCL` (`create_new`), which fails on any existing
//!   name, a symbolic link included, and with an explicit mode (0640);
//! - a temporary name left over from a crash is unlinked first (unlinking a link removes
//!   the link, not its target), then created anew;
//! - files that must be reopened (the lock) are opened with `O_NOFOLLOW` and checked to
//!   be regular files with one link, owned by the caller or by the directory's owner;
//! - directories are made 0750 and must be real directories, not links to one.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Mode of spool directories (and Maildir folders): owner and group only.
pub const DIR_MODE: u32 = 0o750;
/// Mode of queue and Maildir files: the operator group may read them.
pub const FILE_MODE: u32 = 0o640;
/// Mode of the lock file: the operator group opens it read-only to take the lock.
pub const LOCK_MODE: u32 = 0o640;

pub(crate) fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::CLOEXEC.bits() as i32
}

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: refusing to use it: {why}; remove it (the daemon recreates it) and check who could write to that directory",
            path.display()
        ),
    )
}

/// Whether `e` is one of this module's refusals (a link, a hard link, a stranger's file).
pub fn is_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

/// Make `dir` (and missing parents) with mode 0750; an existing `dir` must be a real
/// directory, not a symbolic link.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(refuse(dir, "it is a symbolic link")),
        Ok(m) if !m.is_dir() => Err(refuse(dir, "it is not a directory")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
        }
        Err(e) => Err(e),
    }
}

/// Create the new file `path` (mode 0640); fails if anything, a link included, has that
/// name.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(nofollow())
        .open(path)
}

/// Write `bytes` to a fresh temporary `tmp` (a leftover is unlinked, never followed),
/// fsync it and rename it over `dst`.
pub fn replace_file(tmp: &Path, dst: &Path, bytes: &[u8]) -> io::Result<()> {
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = create_new(tmp)?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = written.and_then(|_| fs::rename(tmp, dst)) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    Ok(())
}

/// Open an existing file for reading without following a link or waiting on a FIFO
/// (`O_NOFOLLOW|O_NONBLOCK`): it must be a regular file with a single link. For files a
/// command run as root reads from a directory the daemon's user can write.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let flags = nofollow() | rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let mut o = OpenOptions::new();
    o.read(true).custom_flags(flags);
    open_single(path, &o).map(|(file, _)| file)
}

/// Open `path` with `o` (which must not follow links): a link is refused by name, and
/// the file must be a regular file with a single link. Returns its metadata too.
fn open_single(path: &Path, o: &OpenOptions) -> io::Result<(File, fs::Metadata)> {
    let file = o.open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            refuse(path, "it is a symbolic link")
        } else {
            e
        }
    })?;
    let m = file.metadata()?;
    if !m.file_type().is_file() {
        return Err(refuse(path, "it is not a regular file"));
    }
    if m.nlink() != 1 {
        return Err(refuse(path, "it has other hard links"));
    }
    Ok((file, m))
}

/// The whole of a file opened as [`open_regular`] does, if it has at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(refuse(path, &format!("it is larger than {max} bytes")));
    }
    let mut v = Vec::with_capacity(len as usize);
    file.take(max).read_to_end(&mut v)?;
    Ok(v)
}

/// Open (creating with mode 0640 if needed) a file that is kept and reopened, such as the
/// lock, for reading and writing, without following a link. The file must be a regular
/// file with a single link, owned by the caller or by the owner of its directory.
pub fn open_owned(path: &Path, write: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).custom_flags(nofollow());
    if write {
        o.write(true).create(true).mode(LOCK_MODE);
    }
    let (file, m) = open_single(path, &o)?;
    let dir_owner = path
        .parent()
        .and_then(|d| fs::metadata(d).ok())
        .map(|d| d.uid());
    let me = rustix::process::geteuid().as_raw();
    if m.uid() != me && Some(m.uid()) != dir_owner {
        return Err(refuse(
            path,
            "it is owned neither by this user nor by the owner of its directory",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn open_regular_refuses_links_fifos_and_hard_links_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::write(&real, b"hello").unwrap();
        assert_eq!(read_regular(&real, 5).unwrap(), b"hello");
        assert!(is_refusal(&read_regular(&real, 4).unwrap_err()));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(is_refusal(&open_regular(&link).unwrap_err()));
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(is_refusal(&open_regular(&fifo).unwrap_err()));
        let other = dir.path().join("other");
        fs::write(&other, b"x").unwrap();
        fs::hard_link(&other, dir.path().join("other2")).unwrap();
        assert!(is_refusal(&open_regular(&other).unwrap_err()));
    }

    #[test]
    fn links_are_refused_and_their_targets_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_new(&link).is_err());
        let e = open_owned(&link, true).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        replace_file(&link, &dir.path().join("dst"), b"new").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        let hard = dir.path().join("hard");
        fs::hard_link(&target, &hard).unwrap();
        assert!(open_owned(&hard, true).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn modes_do_not_come_from_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_dir(&d).unwrap();
        let f = d.join("f");
        create_new(&f).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        // The umask can only remove bits: these never exceed the explicit modes.
        assert_eq!(mode(&d) & !DIR_MODE, 0);
        assert_eq!(mode(&f) & !FILE_MODE, 0);
    }
}
