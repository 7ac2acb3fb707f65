//! The state directory: journals and lock files.
//!
//! ```text
//! <stateDir>/                    0700 (default /var/lib/cni/sriov)
//!   journal/<vf-pci>.jsonl       0600  one per attachment, keyed by the VF it holds
//!   locks/<vf-pci>.lock          0600  per-VF lock (flock, held for the whole operation)
//!   locks/pf-<pf-pci>.lock       0600  per-PF lock (only with "perPfLock": true)
//! ```
//!
//! A journal is keyed by its VF because a VF belongs to at most one attachment: the file's
//! existence *is* the allocation record, and a second file that could disagree with it never
//! exists. The attachment (container id, ifname, netns) is inside.
//!
//! Durability: the header is written to a temp file, fsynced and renamed into place before the
//! first change, so a journal is either absent or complete. Records appended afterwards are
//! written with one `write(2)` each and not fsynced: they survive any process death (the page
//! cache is the kernel's), and a kernel crash takes the state they describe (netns, VF
//! settings) with it, while IPAM is released by `DEL` from the runtime's own configuration.
//! Lock files are never deleted (deleting a lock file races with its next user).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sriov_host::PciAddr;
use tracing::warn;

use crate::journal::{Header, Journal, KIND, Record, SCHEMA_VERSION};

/// A state-directory failure, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A journal's header cannot be read.
    #[error("journal {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A journal written by a newer plugin.
    #[error("journal {} has schema version {found}; this plugin understands up to {SCHEMA_VERSION}", path.display())]
    NewerSchema {
        /// The journal.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io { op, path: path.to_owned(), source }
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

const JOURNAL_EXT: &str = "jsonl";

impl StateDir {
    /// The directory at `root`, created (0700) with its subdirectories if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, StateError> {
        let s = StateDir { root: root.into() };
        let mut b = DirBuilder::new();
        b.recursive(true).mode(0o700);
        for d in [s.journal_dir(), s.lock_dir()] {
            b.create(&d).map_err(io_err("create directory", &d))?;
        }
        Ok(s)
    }

    /// The directory at `root`, without creating anything (`DEL`/`GC` with no state yet).
    pub fn existing(root: impl Into<PathBuf>) -> Option<StateDir> {
        let s = StateDir { root: root.into() };
        s.journal_dir().is_dir().then_some(s)
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }

    fn lock_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// The journal of the attachment holding `vf`.
    pub fn journal_path(&self, vf: PciAddr) -> PathBuf {
        self.journal_dir().join(format!("{vf}.{JOURNAL_EXT}"))
    }

    fn lock(&self, name: String) -> Result<LockGuard, StateError> {
        let path = self.lock_dir().join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        // Blocks until the holder finishes; a holder that dies releases it with its last fd.
        file.lock().map_err(io_err("lock", &path))?;
        Ok(LockGuard { _file: file })
    }

    /// Takes the per-VF lock.
    pub fn lock_vf(&self, vf: PciAddr) -> Result<LockGuard, StateError> {
        self.lock(format!("{vf}.lock"))
    }

    /// Takes the per-PF lock.
    pub fn lock_pf(&self, pf: PciAddr) -> Result<LockGuard, StateError> {
        self.lock(format!("pf-{pf}.lock"))
    }

    /// Reads the journal for `vf`, `None` if there is none.
    pub fn read(&self, vf: PciAddr) -> Result<Option<Journal>, StateError> {
        read_journal(&self.journal_path(vf))
    }

    /// Every VF that has a journal, sorted.
    pub fn list(&self) -> Result<Vec<PciAddr>, StateError> {
        let dir = self.journal_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(&format!(".{JOURNAL_EXT}")))
            else {
                continue;
            };
            match stem.parse() {
                Ok(vf) => out.push(vf),
                Err(_) => {
                    warn!(file = %entry.path().display(), "ignoring a file that is not a journal")
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Creates the journal for `header.vf` atomically (temp file, fsync, rename) and opens it
    /// for appending records.
    pub fn create(&self, header: &Header) -> Result<JournalWriter, StateError> {
        let path = self.journal_path(header.vf.pci_address);
        let mut line = serde_json::to_vec(header).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            detail: format!("cannot encode header: {e}"),
        })?;
        line.push(b'\n');
        write_atomic(&path, &line)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err("open for append", &path))?;
        Ok(JournalWriter { file, path })
    }

    /// Replaces a journal with `journal` (after a partial `DEL`: only what is left to undo).
    pub fn rewrite(&self, journal: &Journal) -> Result<(), StateError> {
        let path = self.journal_path(journal.header.vf.pci_address);
        let encode = |e: serde_json::Error| StateError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        };
        let mut buf = serde_json::to_vec(&journal.header).map_err(encode)?;
        buf.push(b'\n');
        for r in &journal.records {
            buf.extend(serde_json::to_vec(r).map_err(encode)?);
            buf.push(b'\n');
        }
        write_atomic(&path, &buf)
    }

    /// Removes the journal for `vf`; absent is fine.
    pub fn remove(&self, vf: PciAddr) -> Result<(), StateError> {
        let path = self.journal_path(vf);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// Moves an unreadable journal aside (`.corrupt`) so it stops blocking its VF but stays
    /// available for inspection.
    pub fn quarantine(&self, vf: PciAddr) -> Result<PathBuf, StateError> {
        let path = self.journal_path(vf);
        let aside = path.with_extension("corrupt");
        fs::rename(&path, &aside).map_err(io_err("move aside", &path))?;
        Ok(aside)
    }

    /// Checks that journals can be created here (`STATUS`): the directories exist or can be
    /// made, and a file can be written, synced and removed.
    pub fn check_usable(root: &Path) -> Result<(), StateError> {
        let s = StateDir::open(root)?;
        let probe = s.journal_dir().join(format!(".status-{}", std::process::id()));
        write_atomic(&probe, b"{}\n")?;
        fs::remove_file(&probe).map_err(io_err("remove", &probe))
    }
}

/// Appends records to a journal.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalWriter {
    /// Appends one record as one line, in one `write(2)`.
    pub fn append(&mut self, record: &Record) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(record).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            detail: format!("cannot encode record: {e}"),
        })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io_err("append to", &self.path))
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// temp file (0600, same directory) → write → fsync → rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    cni_spec::write_atomic(path, 0o600, cni_spec::Durability::File, |f| f.write_all(bytes))
        .map_err(|e| StateError::Io { op: e.op, path: e.path, source: e.source })
}

/// Reads a journal file: the header must parse; a record line that does not (a write torn by
/// a crash can only be the last one) ends the log with a warning.
pub fn read_journal(path: &Path) -> Result<Option<Journal>, StateError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(StateError::Corrupt { path: path.to_owned(), detail: "not UTF-8".into() });
        }
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let probe: serde_json::Value = serde_json::from_str(first).map_err(|e| {
        StateError::Corrupt { path: path.to_owned(), detail: format!("header: {e}") }
    })?;
    if probe.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
        return Err(StateError::Corrupt {
            path: path.to_owned(),
            detail: format!("header kind is not {KIND:?}"),
        });
    }
    let found = probe.get("schemaVersion").and_then(|v| v.as_u64()).unwrap_or(0);
    if found > u64::from(SCHEMA_VERSION) {
        return Err(StateError::NewerSchema {
            path: path.to_owned(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
        });
    }
    let header: Header = serde_json::from_value(probe).map_err(|e| StateError::Corrupt {
        path: path.to_owned(),
        detail: format!("header: {e}"),
    })?;
    let mut records = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(e) => {
                warn!(journal = %path.display(), line = n + 2, error = %e, "ignoring the rest of a torn journal");
                break;
            }
        }
    }
    Ok(Some(Journal { header, records }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::journal::{Attachment, Mode, SettingsRecord, Snapshot, Undo, VfRef};
    use pretty_assertions::assert_eq;

    pub(crate) fn header(vf: &str) -> Header {
        Header {
            kind: KIND.into(),
            schema_version: SCHEMA_VERSION,
            boot_id: Some("b".into()),
            attachment: Attachment {
                container_id: "c1".into(),
                ifname: "net1".into(),
                netns: "/run/netns/p".into(),
                netns_ino: Some(4026532000),
                network: "n".into(),
            },
            vf: VfRef {
                pci_address: vf.parse().unwrap(),
                pf_pci_address: "0000:3b:00.0".parse().unwrap(),
                pf_netdev: "ens1f0".into(),
                vf_index: 1,
            },
            mode: Mode::Netdev,
            snapshot: Snapshot { pf_side: None, netdev: None },
            applied: SettingsRecord::default(),
        }
    }

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_append_read_rewrite_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path().join("st")).unwrap();
        assert_eq!(mode_of(s.root()), 0o700);
        let h = header("0000:3b:02.1");
        let vf = h.vf.pci_address;
        assert_eq!(s.read(vf).unwrap(), None);
        let mut w = s.create(&h).unwrap();
        assert_eq!(mode_of(w.path()), 0o600);
        let r1 = Record::Undo { step: "apply vf settings".into(), undo: Undo::RestoreVf };
        let r2 = Record::Undo { step: "move".into(), undo: Undo::MoveBack };
        w.append(&r1).unwrap();
        w.append(&r2).unwrap();
        let j = s.read(vf).unwrap().unwrap();
        assert_eq!(j.header, h);
        assert_eq!(j.undo_log(), vec![Undo::RestoreVf, Undo::MoveBack]);
        assert!(!j.is_complete());
        w.append(&Record::Added).unwrap();
        assert!(s.read(vf).unwrap().unwrap().is_complete());
        assert_eq!(s.list().unwrap(), vec![vf]);

        let shorter = Journal { header: h.clone(), records: vec![r1.clone()] };
        s.rewrite(&shorter).unwrap();
        assert_eq!(s.read(vf).unwrap().unwrap(), shorter);
        s.remove(vf).unwrap();
        s.remove(vf).unwrap();
        assert_eq!(s.list().unwrap(), Vec::<PciAddr>::new());
        // No temp files left behind.
        assert_eq!(fs::read_dir(s.journal_dir()).unwrap().count(), 0);
    }

    #[test]
    fn torn_tail_is_ignored_and_bad_header_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let h = header("0000:3b:02.2");
        let vf = h.vf.pci_address;
        let mut w = s.create(&h).unwrap();
        w.append(&Record::Undo { step: "x".into(), undo: Undo::RestoreVf }).unwrap();
        let path = s.journal_path(vf);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("{\"record\":\"undo\",\"st");
        fs::write(&path, &text).unwrap();
        let j = s.read(vf).unwrap().unwrap();
        assert_eq!(j.undo_log(), vec![Undo::RestoreVf]);

        fs::write(&path, "garbage\n").unwrap();
        let e = s.read(vf).unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains(&vf.to_string()), "{e}");
        let aside = s.quarantine(vf).unwrap();
        assert!(aside.exists());
        assert_eq!(s.read(vf).unwrap(), None);
        assert_eq!(s.list().unwrap(), Vec::<PciAddr>::new());

        let mut newer = serde_json::to_value(&h).unwrap();
        newer["schemaVersion"] = 99.into();
        fs::write(&path, format!("{newer}\n")).unwrap();
        assert!(matches!(s.read(vf).unwrap_err(), StateError::NewerSchema { found: 99, .. }));
    }

    #[test]
    fn locks_exclude_each_other_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let vf: PciAddr = "0000:3b:02.3".parse().unwrap();
        let held = s.lock_vf(vf).unwrap();
        let path = s.lock_dir().join(format!("{vf}.lock"));
        let other = File::options().write(true).open(&path).unwrap();
        assert!(other.try_lock().is_err(), "a second open file description must not get the lock");
        drop(held);
        assert!(other.try_lock().is_ok());
        assert_eq!(mode_of(&path), 0o600);
        // The PF lock is a different file.
        let _pf = s.lock_pf("0000:3b:00.0".parse().unwrap()).unwrap();
    }

    #[test]
    fn status_probe() {
        let dir = tempfile::tempdir().unwrap();
        StateDir::check_usable(&dir.path().join("new")).unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let e = StateDir::check_usable(&file).unwrap_err();
        assert!(e.to_string().contains("file"), "{e}");
        assert!(StateDir::existing(dir.path().join("nope")).is_none());
        assert!(StateDir::existing(dir.path().join("new")).is_some());
    }
}
