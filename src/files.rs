//! Writing a file in the data dir so that a crash leaves the old file or the new one, never
//! half of either, and never through a symbolic link someone left in its place: a 0600
//! temporary beside it (`O_NOFOLLOW`, `create_new`), synced, then renamed over it. Keys,
//! the roster, its lockout counters and the device config all write this way; it sits at the
//! bottom of the map so that none of them borrows it from another.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temporary a write goes through: the file's own name with `.new` appended, so that
/// `unit.pem` and `unit.key` never share one.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    path.with_file_name(name)
}

/// Replace `path` with `bytes`, durably, as a 0600 file. Refuses a symlink at `path`.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary(path);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if written.is_ok() && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    {
        let _ = std::fs::remove_file(&tmp);
        return Err(std::io::Error::other(
            "is a symbolic link; refusing to replace it",
        ));
    }
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("myna-files-{tag}-"))
            .tempdir()
            .expect("a temporary directory")
    }

    #[test]
    fn a_write_replaces_the_file_0600_and_leaves_no_temporary() {
        let d = dir("replace");
        let p = d.path().join("roster.toml");
        std::fs::write(&p, b"old").unwrap();
        write_private(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_in_the_files_place_is_refused_and_its_target_untouched() {
        let d = dir("link");
        let target = d.path().join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        let p = d.path().join("device.toml");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let e = write_private(&p, b"evil").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(!temporary(&p).exists());
        // and a symlink where the temporary goes is not followed either
        let q = d.path().join("unit.pem");
        std::os::unix::fs::symlink(&target, temporary(&q)).unwrap();
        write_private(&q, b"cert").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(std::fs::read(&q).unwrap(), b"cert");
    }
}
