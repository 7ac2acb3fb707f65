//! The sysfs boundary: the only module that reads or writes files under the sysfs root.
//!
//! sysfs attributes are small (at most a page) and the kernel returns them whole from the first
//! `read`, so a single read into a stack buffer is enough; the same holds for the plain files of a
//! simulated or fixture tree.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

/// A failed sysfs operation, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}")]
pub struct SysfsError {
    /// What was being done (`read`, `write "4" to`, `readlink`, `list`).
    pub op: String,
    /// The file or directory.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl SysfsError {
    fn new(op: impl Into<String>, path: &Path, source: io::Error) -> Self {
        Self { op: op.into(), path: path.to_owned(), source }
    }

    /// The errno, when the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// Reads a whole attribute from an open file. One `read` returns all of it: sysfs fills the buffer
/// from the attribute's text (at most a page) in one go, and a regular file (a simulated or fixture
/// tree) returns less than asked only at its end, so no second read waits for end of file. The
/// buffer is not zeroed first, and the value is copied once, into its `String`. `path` names the
/// file in an error, and is only built for one.
fn read_value(fd: &OwnedFd, path: impl FnOnce() -> PathBuf) -> Result<String, SysfsError> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut attempts = 0;
    let bytes = loop {
        attempts += 1;
        match rustix::io::read(fd, &mut buf) {
            Ok((got, _)) => break got,
            // Interrupted before anything was read: try again (a few times, not forever).
            Err(Errno::INTR) if attempts < 8 => continue,
            Err(e) => return Err(SysfsError::new("read", &path(), e.into())),
        }
    };
    Ok(match std::str::from_utf8(bytes) {
        Ok(s) => s.trim().to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).trim().to_owned(),
    })
}

fn read_whole(file: File, path: &Path) -> Result<String, SysfsError> {
    read_value(&OwnedFd::from(file), || path.to_owned())
}

/// Flags for a directory handle that only serves as the base of relative lookups.
const DIR_FLAGS: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// An open sysfs directory (a device, a netdev): attributes are opened relative to it with
/// `openat`, so reading a device's dozen attributes resolves its long, symlinked path once
/// instead of once per attribute.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens a directory (following symlinks). `Ok(None)` when it does not exist.
    pub fn open(path: &Path) -> Result<Option<Self>, SysfsError> {
        match rustix::fs::openat(CWD, path, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Self { fd, path: path.to_owned() })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(SysfsError::new("open", path, e.into())),
        }
    }

    /// The directory's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of an entry (for messages).
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Opens a subdirectory. `Ok(None)` when it does not exist.
    pub fn sub(&self, name: &str) -> Result<Option<Self>, SysfsError> {
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Self { fd, path: self.path.join(name) })),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(SysfsError::new("open", &self.path.join(name), e.into())),
        }
    }

    /// Reads an attribute, trimmed; `Ok(None)` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<String>, SysfsError> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => read_value(&fd, || self.path.join(name)).map(Some),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(SysfsError::new("read", &self.path.join(name), e.into())),
        }
    }

    /// The final component of a symlink's target; `Ok(None)` when the link does not exist.
    pub fn link_name(&self, name: &str) -> Result<Option<String>, SysfsError> {
        self.with_link(name, |target| {
            let last = target.rsplit('/').next().unwrap_or("");
            (!last.is_empty()).then(|| last.to_owned())
        })
        .map(Option::flatten)
    }

    /// A symlink's whole target; `Ok(None)` when the link does not exist.
    pub fn link_target(&self, name: &str) -> Result<Option<String>, SysfsError> {
        self.with_link(name, str::to_owned)
    }

    /// Reads a symlink into a stack buffer and hands its target to `f`.
    fn with_link<T>(&self, name: &str, f: impl FnOnce(&str) -> T) -> Result<Option<T>, SysfsError> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 512];
        match rustix::fs::readlinkat_raw(&self.fd, name, &mut buf) {
            Ok((target, rest)) => {
                // A target that fills the buffer may have been cut short: the kernel's sysfs links
                // are far shorter, so this is a tree to refuse, not to guess at.
                if rest.is_empty() {
                    let e = io::Error::other("link target longer than 511 bytes");
                    return Err(SysfsError::new("readlink", &self.path.join(name), e));
                }
                Ok(Some(f(&String::from_utf8_lossy(target))))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(SysfsError::new("readlink", &self.path.join(name), e.into())),
        }
    }

    /// Whether an entry exists (following symlinks).
    pub fn exists(&self, name: &str) -> bool {
        rustix::fs::accessat(&self.fd, name, Access::EXISTS, AtFlags::empty()).is_ok()
    }

    /// Opens a directory reached from this one (e.g. a `virtfnN` link), naming it `path` in
    /// messages. `Ok(None)` when it does not exist.
    pub fn open_at(&self, name: &str, path: PathBuf) -> Result<Option<Self>, SysfsError> {
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Self { fd, path })),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(SysfsError::new("open", &path, e.into())),
        }
    }

    /// Lists a subdirectory's entries (`"."` for this directory itself); `Ok(None)` when it does
    /// not exist. Resolved relative to this directory, so a device's long symlinked path is not
    /// walked again.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, SysfsError> {
        let path = || if name == "." { self.path.clone() } else { self.path.join(name) };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(SysfsError::new("list", &path(), e.into())),
        };
        // getdents64 straight into a stack buffer: no opendir allocation, no fstat.
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut entries = rustix::fs::RawDir::new(&fd, &mut buf);
        let mut names = Vec::new();
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(|e| SysfsError::new("list", &path(), e.into()))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(String::from_utf8_lossy(n).into_owned());
            }
        }
        Ok(Some(names))
    }
}

/// Gives the calling thread its own file descriptor table (`unshare(CLONE_FILES)`), a copy of the
/// process's. Threads that share a table serialise on its lock for every open and close and pay an
/// atomic reference count on every descriptor use; a reader thread with its own table takes the
/// kernel's single-threaded fast paths (3-7% off a two-thread scan here).
///
/// Only for threads that open, use and close their own descriptors and hand back plain data: a
/// descriptor opened after this call means nothing to any other thread. Descriptors opened before
/// it (a PF's directory) stay usable, as the copy refers to the same open files. Best effort: where
/// the call is refused (a seccomp profile), the thread keeps the shared table.
pub fn own_fd_table() {
    let _ = nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES);
}

/// Reads an attribute, trimmed. `Ok(None)` when the file does not exist; `Err` when it exists but
/// cannot be read (the caller decides whether that is fatal or "unknown").
pub fn read_attr(path: &Path) -> Result<Option<String>, SysfsError> {
    match File::open(path) {
        Ok(f) => read_whole(f, path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SysfsError::new("read", path, e)),
    }
}

/// Reads the final component of a symlink's target (`driver` -> `.../drivers/iavf` gives `iavf`).
/// `Ok(None)` when the link does not exist.
pub fn read_link_name(path: &Path) -> Result<Option<String>, SysfsError> {
    match fs::read_link(path) {
        Ok(t) => Ok(t.file_name().map(|n| n.to_string_lossy().into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SysfsError::new("readlink", path, e)),
    }
}

/// Lists a directory's entry names. `Ok(None)` when it does not exist.
pub fn list_dir(path: &Path) -> Result<Option<Vec<String>>, SysfsError> {
    match Dir::open(path)? {
        Some(dir) => dir.list("."),
        None => Ok(None),
    }
}

/// Whether a path exists (following symlinks).
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Writes a value to an attribute the way `echo value > attr` does: one `write` of the whole value,
/// so the kernel's error for that write (EBUSY, ERANGE, ENODEV, ...) is returned.
pub fn write_attr(path: &Path, value: &str) -> Result<(), SysfsError> {
    let op = || format!("write {value:?} to");
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(|e| SysfsError::new(op(), path, e))?;
    let n = f.write(value.as_bytes()).map_err(|e| SysfsError::new(op(), path, e))?;
    if n != value.len() {
        return Err(SysfsError::new(
            op(),
            path,
            io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {n} of {} bytes", value.len()),
            ),
        ));
    }
    Ok(())
}
