//! Private key files as the operator left them: `check-config` warns when one can be read
//! by the group or by everyone.
//!
//! # Security
//! A private key (TLS or DKIM) readable by others lets any local user impersonate this
//! server or sign mail as its domains. The expected modes are 0600 (owner only) or 0640
//! with a group that only the `postern` user is in: group-readable keys are reported too,
//! with that exception spelled out, since Postern cannot know who is in the group.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why the private key file `path` is exposed, or `None` when only its owner may read it
/// (or it cannot be examined; loading reports that).
pub fn exposure(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let mode = m.mode() & 0o777;
    if mode & 0o004 != 0 {
        Some(format!(
            "private key {} is readable by everyone (mode {mode:04o}): chmod 600 it (or 640 with group postern)",
            path.display()
        ))
    } else if mode & 0o040 != 0 {
        Some(format!(
            "private key {} is readable by its group (gid {}, mode {mode:04o}): fine only if that group holds nothing but the postern user; otherwise chmod 600 it",
            path.display(),
            m.gid()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn group_and_world_readable_keys_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k.pem");
        std::fs::write(&k, "x").unwrap();
        let set = |m| std::fs::set_permissions(&k, std::fs::Permissions::from_mode(m)).unwrap();
        set(0o600);
        assert_eq!(exposure(&k), None);
        set(0o640);
        assert!(exposure(&k).unwrap().contains("by its group"));
        set(0o644);
        assert!(exposure(&k).unwrap().contains("by everyone"));
    }
}
