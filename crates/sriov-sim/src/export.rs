//! Static export: the current tree as plain files, directories and relative symlinks.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::Path;

use crate::error::SimError;
use crate::model::Sim;
use crate::tree::{Ino, NodeKind, ROOT_INO};

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SimError + 'a {
    move |source| SimError::Io { op, path: path.to_owned(), source }
}

/// Writes the tree of `sim` under `dir` (created if missing; must not already contain a
/// `sys` or `dev` entry). Attribute files get their current content and sysfs mode;
/// files whose read fails in the kernel (write-only ones, `carrier` of a down link) are
/// written empty; `/dev/vfio` nodes become empty regular files.
pub(crate) fn export(sim: &Sim, dir: &Path) -> Result<(), SimError> {
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    for top in ["sys", "dev"] {
        let p = dir.join(top);
        if p.symlink_metadata().is_ok() {
            return Err(SimError::Io {
                op: "export into",
                path: p,
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
    }
    // Files are created with their sysfs mode; only those the umask trimmed need a chmod.
    let umask = current_umask();
    let tree = sim.tree();
    let mut stack: Vec<(Ino, std::path::PathBuf)> = vec![(ROOT_INO, dir.to_owned())];
    // Modes are applied after all content is written, deepest first, so read-only
    // directories (none today) or files never block the export itself.
    let mut modes = Vec::new();
    while let Some((ino, path)) = stack.pop() {
        let Some(node) = tree.get(ino) else { continue };
        for (name, &child) in &node.children {
            let Some(c) = tree.get(child) else { continue };
            let p = path.join(name);
            match &c.kind {
                NodeKind::Dir => {
                    fs::create_dir(&p).map_err(io_err("create directory", &p))?;
                    stack.push((child, p));
                }
                NodeKind::File { mode, .. } => {
                    let content = sim.read_ino(child).unwrap_or_default();
                    let mode = u32::from(*mode);
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(mode)
                        .open(&p)
                        .map_err(io_err("create", &p))?;
                    f.write_all(&content).map_err(io_err("write", &p))?;
                    if mode & umask != 0 {
                        modes.push((p, mode));
                    }
                }
                NodeKind::Link(target) => {
                    symlink(target, &p).map_err(io_err("symlink", &p))?;
                }
                NodeKind::CharDev { .. } => {
                    fs::write(&p, b"").map_err(io_err("write", &p))?;
                    modes.push((p, 0o600));
                }
            }
        }
    }
    for (p, mode) in modes {
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", &p))?;
    }
    Ok(())
}

/// The process umask from /proc/self/status (without changing it); all bits if unknown,
/// so every file gets an explicit chmod.
fn current_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}
