//! Replacing a file atomically: a temporary file in the same directory (`.<name>.tmp-<pid>`),
//! written and made as durable as asked, then renamed over the target. A reader sees the old
//! file or the new one, never a torn one; a failure removes the temporary file and leaves the
//! target as it was. Shared by the plugins' state files, the device-information file and the
//! node agent's CNI binary installer.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How durable the new file is when [`write_atomic`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No fsync: for files on tmpfs, or whose loss a crash makes moot.
    None,
    /// The file's data is synced before the rename (a crash leaves the old or the new file,
    /// never an empty new one).
    File,
    /// The data, then the directory after the rename (the rename itself survives a crash).
    FileAndDir,
}

/// A failed step, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}")]
pub struct AtomicWriteError {
    /// `create`, `write`, `fsync`, `rename into place`, `sync directory`.
    pub op: &'static str,
    /// The file (temporary or target) or directory.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// Writes `path` atomically with permission bits `mode`: `fill` writes the content into the
/// temporary file.
pub fn write_atomic(
    path: &Path,
    mode: u32,
    durability: Durability,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    fn err<'a>(
        op: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> AtomicWriteError + 'a {
        move |source| AtomicWriteError { op, path: path.to_owned(), source }
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err("create", &tmp))?;
        fill(&mut f).map_err(err("write", &tmp))?;
        // `mode` is filtered by the umask at creation; the file must end up exactly as asked.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(err("chmod", &tmp))?;
        if durability != Durability::None {
            f.sync_data().map_err(err("fsync", &tmp))?;
        }
        fs::rename(&tmp, path).map_err(err("rename into place", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if durability == Durability::FileAndDir {
        File::open(dir).and_then(|d| d.sync_all()).map_err(err("sync directory", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_with_the_mode_asked_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "old").unwrap();
        for d in [Durability::None, Durability::File, Durability::FileAndDir] {
            write_atomic(&path, 0o444, d, |f| f.write_all(b"new")).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), "new");
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o444);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(entries(dir.path()), vec!["state.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "old").unwrap();
        let e = write_atomic(&path, 0o600, Durability::File, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(e.op, "write");
        assert!(e.path.to_string_lossy().contains(".state.json.tmp-"), "{}", e.path.display());
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(entries(dir.path()), vec!["state.json"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope/state.json");
        let e = write_atomic(&path, 0o600, Durability::None, |_| Ok(())).unwrap_err();
        assert_eq!(e.op, "create");
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
    }
}
