//! The sysfs boundary: the only module that reads or writes files under the sysfs root.
//!
//! sysfs attributes are small (at most a page) and the kernel returns them whole from the first
//! `read`, so a single read into a stack buffer is enough; the same holds for the plain files of a
//! simulated or fixture tree.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::Mode;

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

fn read_whole(mut file: File, path: &Path) -> Result<String, SysfsError> {
    let mut buf = [0u8; 4096];
    let mut len = 0;
    // One read normally returns the whole attribute; loop only for the rare short read.
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == buf.len() || n < 512 {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SysfsError::new("read", path, e)),
        }
    }
    Ok(String::from_utf8_lossy(&buf[..len]).trim().to_owned())
}

fn errno_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

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
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match openat(nix::fcntl::AT_FDCWD, path, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Self { fd, path: path.to_owned() })),
            Err(nix::Error::ENOENT) => Ok(None),
            Err(e) => Err(SysfsError::new("open", path, errno_io(e))),
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
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Self { fd, path: self.path.join(name) })),
            Err(nix::Error::ENOENT | nix::Error::ENOTDIR) => Ok(None),
            Err(e) => Err(SysfsError::new("open", &self.path.join(name), errno_io(e))),
        }
    }

    /// Reads an attribute, trimmed; `Ok(None)` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<String>, SysfsError> {
        match openat(&self.fd, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => read_whole(File::from(fd), &self.path.join(name)).map(Some),
            Err(nix::Error::ENOENT) => Ok(None),
            Err(e) => Err(SysfsError::new("read", &self.path.join(name), errno_io(e))),
        }
    }

    /// The final component of a symlink's target; `Ok(None)` when the link does not exist.
    pub fn link_name(&self, name: &str) -> Result<Option<String>, SysfsError> {
        match readlinkat(&self.fd, name) {
            Ok(t) => Ok(Path::new(&t).file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(nix::Error::ENOENT) => Ok(None),
            Err(e) => Err(SysfsError::new("readlink", &self.path.join(name), errno_io(e))),
        }
    }

    /// Whether an entry exists (following symlinks).
    pub fn exists(&self, name: &str) -> bool {
        nix::unistd::faccessat(
            &self.fd,
            name,
            nix::unistd::AccessFlags::F_OK,
            nix::fcntl::AtFlags::empty(),
        )
        .is_ok()
    }

    /// Opens a directory reached from this one (e.g. a `virtfnN` link), naming it `path` in
    /// messages. `Ok(None)` when it does not exist.
    pub fn open_at(&self, name: &str, path: PathBuf) -> Result<Option<Self>, SysfsError> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Self { fd, path })),
            Err(nix::Error::ENOENT | nix::Error::ENOTDIR) => Ok(None),
            Err(e) => Err(SysfsError::new("open", &path, errno_io(e))),
        }
    }

    /// Lists a subdirectory's entries (`"."` for this directory itself); `Ok(None)` when it does
    /// not exist. Resolved relative to this directory, so a device's long symlinked path is not
    /// walked again.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, SysfsError> {
        let path = || if name == "." { self.path.clone() } else { self.path.join(name) };
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT | nix::Error::ENOTDIR) => return Ok(None),
            Err(e) => return Err(SysfsError::new("list", &path(), errno_io(e))),
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
