//! Attachment records on disk: one JSON file per (plugin, network, container ID, ifname),
//! written atomically (temp file, fsync, rename, fsync of the directory), under a node-wide
//! lock that serializes every invocation touching node-global objects.
//!
//! Layout: `<state_dir>/<plugin>/<network>/<container ID>/<ifname>.json`, plus
//! `<state_dir>/.node-global/<plugin>/<network>/<container ID>/<ifname>.json` holding only
//! the record's node-wide entries (see [`Entry::is_node_global`]), plus `<state_dir>/.lock`.
//! Container IDs and network names are spec identifiers (no `/`, not `.` or `..`), so paths
//! are unambiguous.
//!
//! An operation reads only what can matter to it ([`Store::list_related`]): the full records
//! of its own container (pod-side objects are per container) and the small node-wide
//! indexes of the others, so its cost does not grow with the size of every record on the
//! node.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::config::Flavor;
use crate::model::{Entry, Side};

/// Version of the record format.
pub const RECORD_FORMAT: u32 = 1;

/// Directory (under the state dir) of the node-wide indexes.
const NODE_GLOBAL_DIR: &str = ".node-global";

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file or directory operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("encode record {}", path.display())]
    Encode {
        /// The record's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Whether the `ADD` that wrote a record finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Written before the first mutation: the entries are what the `ADD` was about to do.
    Pending,
    /// The `ADD` succeeded.
    Committed,
}

/// Identifies an attachment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttachmentKey {
    /// Plugin.
    pub plugin: Flavor,
    /// Network name.
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

/// Everything one attachment installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version.
    pub format: u32,
    /// Which attachment.
    #[serde(flatten)]
    pub key: AttachmentKey,
    /// The pod netns path at `ADD` time.
    pub netns: PathBuf,
    /// Progress.
    pub status: Status,
    /// Entries in the order they were (or were about to be) applied.
    pub entries: Vec<Entry>,
}

impl Record {
    /// Whether `self` and `other` belong to the same container (so pod-side objects are
    /// comparable).
    pub fn same_container(&self, other: &Record) -> bool {
        self.key.container_id == other.key.container_id
    }

    /// Whether another record references the same object as `entry` of `self`: same
    /// container for pod objects, any record for node objects.
    pub fn referenced_elsewhere(&self, entry: &Entry, others: &[Record]) -> bool {
        let key = entry.key();
        others.iter().filter(|o| o.key != self.key).any(|o| {
            (entry.side == Side::Node || o.same_container(self))
                && o.entries.iter().any(|e| e.key() == key)
        })
    }
}

/// The record directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Holds the node-wide lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock as well; unlock explicitly to be prompt.
        let _ = self.file.unlock();
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io { op, path: path.to_path_buf(), source }
}

impl Store {
    /// A store rooted at `root` (created on first use, mode 0700).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ensure_dir(path: &Path) -> Result<(), StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io_err("create directory", path))
    }

    /// Takes the node-wide lock (blocking). Every operation holds it from its first read of
    /// records to its last write, so reference counts and node-global objects (rules,
    /// sysctls) never race.
    pub fn lock(&self) -> Result<StoreLock, StateError> {
        Store::ensure_dir(&self.root)?;
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        file.lock().map_err(io_err("lock", &path))?;
        Ok(StoreLock { file })
    }

    /// The node-wide index file of an attachment.
    fn index_path_of(&self, key: &AttachmentKey) -> PathBuf {
        self.root
            .join(NODE_GLOBAL_DIR)
            .join(key.plugin.as_str())
            .join(&key.network)
            .join(&key.container_id)
            .join(format!("{}.json", key.ifname))
    }

    /// The file of an attachment.
    pub fn path_of(&self, key: &AttachmentKey) -> PathBuf {
        self.root
            .join(key.plugin.as_str())
            .join(&key.network)
            .join(&key.container_id)
            .join(format!("{}.json", key.ifname))
    }

    /// Reads an attachment's record; `None` if there is none. An unreadable record is
    /// reported and treated as absent (it cannot be acted on), and moved aside.
    pub fn load(&self, key: &AttachmentKey) -> Result<Option<Record>, StateError> {
        let path = self.path_of(key);
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
                Ok(r) => Ok(Some(r)),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "unreadable attachment record; moving it aside");
                    let aside = path.with_extension("corrupt");
                    fs::rename(&path, &aside).map_err(io_err("move aside", &path))?;
                    Ok(None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read record", &path)(e)),
        }
    }

    /// Writes a record atomically: a temp file in the same directory, fsync, rename over
    /// the final name, fsync of the directory.
    pub fn save(&self, record: &Record) -> Result<(), StateError> {
        self.write(record, true)
    }

    /// Rewrites a record atomically (temp file, rename) without waiting for the disk.
    ///
    /// For the `pending` → `committed` flip: if that update is lost, the durable `pending`
    /// record remains, and `DEL`, `GC` and a repeated `ADD` treat a pending record exactly
    /// like a committed one (they undo every entry, "already gone" being success). Only a
    /// `CHECK` would then report the attachment as incomplete.
    pub fn update(&self, record: &Record) -> Result<(), StateError> {
        self.write(record, false)
    }

    fn write(&self, record: &Record, durable: bool) -> Result<(), StateError> {
        // The index first: a reader that sees the record also sees what it shares.
        let index = self.index_path_of(&record.key);
        let global: Vec<Entry> =
            record.entries.iter().filter(|e| e.is_node_global()).cloned().collect();
        if global.is_empty() {
            remove_file_if_present(&index, "remove index")?;
        } else {
            write_atomic(&index, &Record { entries: global, ..record.clone() }, durable)?;
        }
        write_atomic(&self.path_of(&record.key), record, durable)
    }
}

fn remove_file_if_present(path: &Path, op: &'static str) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(op, path)(e)),
    }
}

/// A temp file in the same directory, fsync (if `durable`), rename over `path`, fsync of
/// the directory (if `durable`).
fn write_atomic(path: &Path, record: &Record, durable: bool) -> Result<(), StateError> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    Store::ensure_dir(&dir)?;
    let bytes = serde_json::to_vec_pretty(record)
        .map_err(|source| StateError::Encode { path: path.to_path_buf(), source })?;
    let durability =
        if durable { cni_spec::Durability::FileAndDir } else { cni_spec::Durability::None };
    cni_spec::write_atomic(path, 0o600, durability, |f| f.write_all(&bytes))
        .map_err(|e| StateError::Io { op: e.op, path: e.path, source: e.source })
}

impl Store {
    /// Deletes an attachment's record and index (absent is fine) and prunes empty
    /// directories.
    pub fn remove(&self, key: &AttachmentKey) -> Result<(), StateError> {
        let path = self.path_of(key);
        remove_file_if_present(&path, "remove record")?;
        remove_file_if_present(&self.index_path_of(key), "remove index")?;
        for p in [path, self.index_path_of(key)] {
            // The container's and the network's directories; fails (harmlessly) while other
            // records remain.
            for dir in p.ancestors().skip(1).take(2) {
                let _ = fs::remove_dir(dir);
            }
        }
        Ok(())
    }

    /// What an operation on an attachment of `container_id` must consider: every record of
    /// that container (any plugin and network) and the node-wide index of every other
    /// attachment.
    pub fn list_related(&self, container_id: &str) -> Result<Vec<Record>, StateError> {
        let mut out = read_records(&self.root, Containers::Only(container_id))?;
        out.extend(read_records(
            &self.root.join(NODE_GLOBAL_DIR),
            Containers::Except(container_id),
        )?);
        Ok(out)
    }

    /// Every record of every plugin and network (unreadable files are skipped with a
    /// warning). For `GC`, which must see everything.
    pub fn list_all(&self) -> Result<Vec<Record>, StateError> {
        read_records(&self.root, Containers::All)
    }
}

/// Which containers' directories [`read_records`] reads.
#[derive(Clone, Copy)]
enum Containers<'a> {
    /// Every one.
    All,
    /// Only this one (found by name: the cost does not grow with the number of pods).
    Only(&'a str),
    /// All but this one.
    Except(&'a str),
}

/// Records under `<root>/<plugin>/<network>/<container ID>/` (directories starting with `.`
/// are skipped), sorted by key.
fn read_records(root: &Path, which: Containers<'_>) -> Result<Vec<Record>, StateError> {
    let mut out = Vec::new();
    for plugin in read_dir_or_empty(root)? {
        let hidden = plugin.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
        if hidden || !plugin.is_dir() {
            continue;
        }
        for net in read_dir_or_empty(&plugin)? {
            let dirs = match which {
                Containers::Only(cid) => vec![net.join(cid)],
                Containers::All => read_dir_or_empty(&net)?,
                Containers::Except(cid) => {
                    read_dir_or_empty(&net)?.into_iter().filter(|d| !d.ends_with(cid)).collect()
                }
            };
            for dir in dirs {
                for file in read_dir_or_empty(&dir)? {
                    if file.extension().and_then(|e| e.to_str()) != Some("json") {
                        continue;
                    }
                    match fs::read(&file).map_err(|e| e.to_string()).and_then(|b| {
                        serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string())
                    }) {
                        Ok(r) => out.push(r),
                        Err(e) => {
                            warn!(path = %file.display(), error = %e, "skipping unreadable attachment record")
                        }
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (a.key.plugin, &a.key.network, &a.key.container_id, &a.key.ifname).cmp(&(
            b.key.plugin,
            &b.key.network,
            &b.key.container_id,
            &b.key.ifname,
        ))
    });
    Ok(out)
}

fn read_dir_or_empty(dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                v.push(e.map_err(io_err("read directory", dir))?.path());
            }
            v.sort();
            Ok(v)
        }
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            Ok(Vec::new())
        }
        Err(e) => Err(io_err("read directory", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, NeighObj, Object, Origin, Role};
    use pretty_assertions::assert_eq;

    fn key(cid: &str, ifname: &str) -> AttachmentKey {
        AttachmentKey {
            plugin: Flavor::Veth,
            network: "net-a".into(),
            container_id: cid.into(),
            ifname: ifname.into(),
        }
    }

    fn neigh(side: Side, ip: &str) -> Entry {
        Entry {
            side,
            action: Action::Add,
            object: Object::Neigh(NeighObj {
                dev: "veth0".into(),
                ip: ip.parse().unwrap(),
                mac: "02:00:00:00:00:01".parse().unwrap(),
            }),
            origin: Origin::Created,
            role: Role::Own,
        }
    }

    fn record(cid: &str, ifname: &str, entries: Vec<Entry>) -> Record {
        Record {
            format: RECORD_FORMAT,
            key: key(cid, ifname),
            netns: "/run/netns/p".into(),
            status: Status::Committed,
            entries,
        }
    }

    #[test]
    fn save_load_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        let _lock = store.lock().unwrap();
        assert_eq!(store.load(&key("c1", "eth0")).unwrap(), None);
        let r = record("c1", "eth0", vec![neigh(Side::Pod, "192.0.2.1")]);
        store.save(&r).unwrap();
        store.save(&record("c2", "net1", vec![])).unwrap();
        assert_eq!(store.load(&key("c1", "eth0")).unwrap(), Some(r.clone()));
        let p = store.path_of(&key("c1", "eth0"));
        assert!(p.ends_with("veth/net-a/c1/eth0.json"), "{}", p.display());
        assert_eq!(store.list_all().unwrap().len(), 2);
        // No temp files left behind.
        let names: Vec<_> =
            fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| n.to_string_lossy().ends_with(".json")), "{names:?}");
        store.remove(&key("c1", "eth0")).unwrap();
        store.remove(&key("c1", "eth0")).unwrap();
        assert_eq!(store.list_all().unwrap().len(), 1);
    }

    #[test]
    fn corrupt_records_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let p = store.path_of(&key("c1", "eth0"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"{not json").unwrap();
        assert_eq!(store.list_all().unwrap(), vec![]);
        assert_eq!(store.load(&key("c1", "eth0")).unwrap(), None);
        assert!(p.with_extension("corrupt").exists());
    }

    #[test]
    fn references_are_per_container_for_pod_objects() {
        let a = record(
            "c1",
            "eth0",
            vec![neigh(Side::Pod, "192.0.2.1"), neigh(Side::Node, "192.0.2.2")],
        );
        let same_pod = record("c1", "net1", vec![neigh(Side::Pod, "192.0.2.1")]);
        let other_pod = record(
            "c2",
            "eth0",
            vec![neigh(Side::Pod, "192.0.2.1"), neigh(Side::Node, "192.0.2.2")],
        );
        assert!(a.referenced_elsewhere(&a.entries[0], std::slice::from_ref(&same_pod)));
        assert!(!a.referenced_elsewhere(&a.entries[0], std::slice::from_ref(&other_pod)));
        assert!(a.referenced_elsewhere(&a.entries[1], std::slice::from_ref(&other_pod)));
        assert!(
            !a.referenced_elsewhere(&a.entries[0], std::slice::from_ref(&a)),
            "itself does not count"
        );
    }

    /// Node-wide entries get an index other containers read; pod entries stay private.
    #[test]
    fn related_records_are_own_container_plus_node_wide_indexes() {
        use crate::model::{Family, RuleObj, SysctlObj};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let rule = Entry {
            side: Side::Node,
            action: Action::Add,
            object: Object::Rule(RuleObj {
                family: Family::V4,
                priority: 1000,
                table: 500,
                from: None,
                to: None,
            }),
            origin: Origin::Created,
            role: Role::Own,
        };
        let all_rp = Entry {
            object: Object::Sysctl(SysctlObj {
                key: "net/ipv4/conf/all/rp_filter".into(),
                value: "2".into(),
                previous: Some("1".into()),
            }),
            ..rule.clone()
        };
        let dev_rp = Entry {
            object: Object::Sysctl(SysctlObj {
                key: "net/ipv4/conf/cali1/rp_filter".into(),
                value: "2".into(),
                previous: Some("1".into()),
            }),
            ..rule.clone()
        };
        assert!(rule.is_node_global() && all_rp.is_node_global());
        assert!(!dev_rp.is_node_global() && !neigh(Side::Node, "192.0.2.1").is_node_global());
        store
            .save(&record(
                "c1",
                "net1",
                vec![neigh(Side::Pod, "192.0.2.1"), rule.clone(), dev_rp.clone(), all_rp.clone()],
            ))
            .unwrap();
        store.save(&record("c1", "net2", vec![neigh(Side::Pod, "192.0.2.2")])).unwrap();
        store.save(&record("c2", "net1", vec![neigh(Side::Pod, "192.0.2.3")])).unwrap();
        assert!(
            !store.index_path_of(&key("c1", "net2")).exists(),
            "no index without node-wide entries"
        );
        // c2 sees its own record and c1's node-wide entries only.
        let related = store.list_related("c2").unwrap();
        assert_eq!(related.len(), 2, "{related:#?}");
        let c1 = related.iter().find(|r| r.key.container_id == "c1").unwrap();
        assert_eq!(c1.entries, vec![rule, all_rp]);
        // c1 sees both of its records in full, not its own index twice.
        let related = store.list_related("c1").unwrap();
        assert_eq!(related.iter().map(|r| r.entries.len()).collect::<Vec<_>>(), vec![4, 1]);
        assert_eq!(store.list_all().unwrap().len(), 3, "indexes are not records");
        store.remove(&key("c1", "net1")).unwrap();
        assert_eq!(store.list_related("c2").unwrap().len(), 1);
        assert!(!store.index_path_of(&key("c1", "net1")).exists());
    }

    #[test]
    fn lock_excludes_other_holders() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let held = store.lock().unwrap();
        let other = OpenOptions::new().write(true).open(dir.path().join(".lock")).unwrap();
        assert!(other.try_lock().is_err(), "a second descriptor cannot take the lock");
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
