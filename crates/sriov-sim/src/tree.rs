//! The rendered file tree: stable inode numbers over a declarative rendering.
//!
//! The model renders the tree declaratively ([`Render`]), one [`Section`] per PCI
//! device plus a global one, re-rendering only the sections whose state changed;
//! [`Tree::apply`] swaps a section's rendering in, keeping the inode number of every
//! node whose path and kind are unchanged, giving new numbers to new or changed nodes
//! (inode numbers are never reused) and reporting what disappeared so the FUSE layer
//! can invalidate the kernel's cached dentries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::Src;

/// Inode number. 1 is the mount root.
pub type Ino = u64;

/// Inode number of the root directory.
pub const ROOT_INO: Ino = 1;

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// An attribute file with sysfs permission bits and a content source.
    File {
        /// Permission bits (0444, 0644, 0200, ...).
        mode: u16,
        /// Where reads and writes go.
        src: Src,
    },
    /// A symbolic link with a relative target, as sysfs writes them.
    Link(String),
    /// A character device node (`/dev/vfio/*`).
    CharDev {
        /// Device number (`makedev(major, minor)`).
        rdev: u32,
    },
}

/// One node of the tree.
#[derive(Clone, Debug)]
pub struct Node {
    /// Parent directory (the root is its own parent).
    pub parent: Ino,
    /// Name within the parent.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// Children by name (directories only).
    pub children: BTreeMap<String, Ino>,
    /// The node may vanish without a write to the sim (netdev views that follow real
    /// links): the FUSE layer must not let the kernel cache it.
    pub volatile: bool,
    /// Number of render sections that contain this node.
    refs: u32,
}

/// A unit of rendering: the global part, or everything one PCI device contributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// Bus and driver files, fixed directories.
    Global,
    /// One device's directory and every link or node pointing at it.
    Device(crate::pci::PciAddr),
}

/// A node that disappeared in a [`Tree::sync`] and whose dentry the kernel may cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// Parent directory inode (still present after the sync).
    pub parent: Ino,
    /// Name in the parent.
    pub name: String,
    /// The removed node's inode.
    pub ino: Ino,
}

/// A declarative rendering: path -> (kind, volatile). Paths are relative to the mount
/// root, `/`-separated, without leading slash (`sys/bus/pci`).
#[derive(Debug, Default)]
pub struct Render {
    entries: BTreeMap<String, (NodeKind, bool)>,
    volatile: bool,
}

impl Render {
    /// Empty rendering.
    pub fn new() -> Self {
        Self::default()
    }

    /// While set, nodes added are marked volatile.
    pub fn set_volatile(&mut self, v: bool) {
        self.volatile = v;
    }

    /// Adds a directory (and its ancestors).
    pub fn dir(&mut self, path: &str) {
        if path.is_empty() || self.entries.contains_key(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.insert(path.to_owned(), (NodeKind::Dir, self.volatile));
    }

    fn put(&mut self, path: String, kind: NodeKind) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.insert(path, (kind, self.volatile));
    }

    /// Adds an attribute file.
    pub fn file(&mut self, path: String, mode: u16, src: Src) {
        self.put(path, NodeKind::File { mode, src });
    }

    /// Adds a symlink at `path` pointing at the node at `target` (both root-relative);
    /// the stored target is relative, computed as the kernel's `sysfs_get_target_path()`.
    pub fn link(&mut self, path: String, target: &str) {
        let rel = kernel_link_target(&path, target);
        self.put(path, NodeKind::Link(rel));
    }

    /// Adds a character device node.
    pub fn chardev(&mut self, path: String, rdev: u32) {
        self.put(path, NodeKind::CharDev { rdev });
    }
}

/// The relative target sysfs writes for a link at `link` to `target`: walk up from the
/// link's directory until reaching an ancestor of the target's *parent*, one `../` per
/// step, then descend (fs/sysfs/symlink.c, `sysfs_get_target_path`). For example
/// `.../0000:3b:00.0/net/ens1f0/device` -> `../../../0000:3b:00.0`.
pub fn kernel_link_target(link: &str, target: &str) -> String {
    let link_dir: Vec<&str> = link.split('/').collect();
    let link_dir = &link_dir[..link_dir.len().saturating_sub(1)];
    let tgt: Vec<&str> = target.split('/').collect();
    let tgt_parent = &tgt[..tgt.len().saturating_sub(1)];
    let common = link_dir.iter().zip(tgt_parent).take_while(|(a, b)| a == b).count();
    let mut out = "../".repeat(link_dir.len() - common);
    out.push_str(&tgt[common..].join("/"));
    out
}

/// The live tree.
#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<Ino, Node>,
    by_path: HashMap<String, Ino>,
    /// Paths each section rendered last time, sorted.
    sections: HashMap<Section, BTreeSet<String>>,
    next_ino: Ino,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root directory.
    pub fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT_INO, root_node());
        let mut by_path = HashMap::new();
        by_path.insert(String::new(), ROOT_INO);
        Self { nodes, by_path, sections: HashMap::new(), next_ino: ROOT_INO + 1 }
    }

    /// Node by inode.
    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    /// Inode of a root-relative path, without following symlinks.
    #[cfg(test)]
    pub fn ino_of(&self, path: &str) -> Option<Ino> {
        self.by_path.get(path.trim_matches('/')).copied()
    }

    /// Child of a directory.
    pub fn child(&self, dir: Ino, name: &str) -> Option<Ino> {
        self.nodes.get(&dir)?.children.get(name).copied()
    }

    /// Number of nodes, root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Root-relative path of a node.
    #[cfg(test)]
    pub fn path_of(&self, mut ino: Ino) -> Option<String> {
        let mut parts = Vec::new();
        while ino != ROOT_INO {
            let n = self.nodes.get(&ino)?;
            parts.push(n.name.as_str());
            ino = n.parent;
        }
        parts.reverse();
        Some(parts.join("/"))
    }

    /// Replaces the part of the tree rendered by `section` with `render` (an empty
    /// render removes the section). Nodes are reference-counted across sections, so
    /// shared directories (`sys/bus/pci/devices`, a root port's directory...) live as
    /// long as some section renders them. Unchanged nodes keep their inode; new or
    /// changed ones get a fresh number (never reused). Returns the topmost removed
    /// non-volatile nodes: those whose dentries the kernel may still cache.
    pub fn apply(&mut self, section: Section, render: Render) -> Vec<Removed> {
        let old_paths = self.sections.remove(&section).unwrap_or_default();
        let mut removed_paths: Vec<(String, Node, Ino)> = Vec::new();
        // Additions and replacements; BTreeMap order puts every parent before its children.
        for (path, (kind, volatile)) in &render.entries {
            let had = old_paths.contains(path);
            if let Some(&ino) = self.by_path.get(path)
                && let Some(node) = self.nodes.get_mut(&ino)
            {
                if node.kind == *kind {
                    if !had {
                        node.refs += 1;
                    }
                    node.volatile &= *volatile;
                    continue;
                }
                // Same path, different node (e.g. a symlink retargeted): replace.
                let others = node.refs - u32::from(had);
                if let Some(old) = self.detach(path) {
                    removed_paths.push((path.clone(), old, ino));
                }
                self.insert(path, kind.clone(), *volatile, others + 1);
            } else {
                self.insert(path, kind.clone(), *volatile, 1);
            }
        }
        // Removals, children before parents.
        for path in old_paths.iter().rev() {
            if render.entries.contains_key(path) {
                continue;
            }
            let Some(&ino) = self.by_path.get(path) else { continue };
            let Some(node) = self.nodes.get_mut(&ino) else { continue };
            node.refs = node.refs.saturating_sub(1);
            if node.refs == 0
                && let Some(old) = self.detach(path)
            {
                removed_paths.push((path.clone(), old, ino));
            }
        }
        if !render.entries.is_empty() {
            self.sections.insert(section, render.entries.into_keys().collect());
        }
        // Report only removals whose parent directory survived.
        let gone: std::collections::HashSet<&str> =
            removed_paths.iter().map(|(p, _, _)| p.as_str()).collect();
        removed_paths
            .iter()
            .filter(|(path, node, _)| {
                let parent_path = path.rsplit_once('/').map_or("", |(p, _)| p);
                !node.volatile && !gone.contains(parent_path)
            })
            .map(|(_, node, ino)| Removed {
                parent: node.parent,
                name: node.name.clone(),
                ino: *ino,
            })
            .collect()
    }

    fn insert(&mut self, path: &str, kind: NodeKind, volatile: bool, refs: u32) {
        let (parent_path, name) = path.rsplit_once('/').unwrap_or(("", path));
        let Some(&parent) = self.by_path.get(parent_path) else {
            // Render::put always creates parents; a missing one is a rendering bug.
            tracing::error!(path, "sim tree: parent missing, node dropped");
            return;
        };
        self.next_ino += 1;
        let ino = self.next_ino;
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children.insert(name.to_owned(), ino);
        }
        self.nodes.insert(
            ino,
            Node { parent, name: name.to_owned(), kind, children: BTreeMap::new(), volatile, refs },
        );
        self.by_path.insert(path.to_owned(), ino);
    }

    /// Unlinks the node at `path` from the tree and returns it.
    fn detach(&mut self, path: &str) -> Option<Node> {
        let ino = self.by_path.remove(path)?;
        let node = self.nodes.remove(&ino)?;
        if let Some(p) = self.nodes.get_mut(&node.parent) {
            p.children.remove(&node.name);
        }
        Some(node)
    }
}

fn root_node() -> Node {
    Node {
        parent: ROOT_INO,
        name: String::new(),
        kind: NodeKind::Dir,
        children: BTreeMap::new(),
        volatile: false,
        refs: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_link_targets_match_real_sysfs() {
        let dev = "sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0";
        assert_eq!(
            kernel_link_target("sys/bus/pci/devices/0000:3b:00.0", dev),
            "../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
        );
        assert_eq!(
            kernel_link_target(&format!("{dev}/driver"), "sys/bus/pci/drivers/i40e"),
            "../../../../bus/pci/drivers/i40e"
        );
        assert_eq!(
            kernel_link_target(&format!("{dev}/iommu_group"), "sys/kernel/iommu_groups/40"),
            "../../../../kernel/iommu_groups/40"
        );
        assert_eq!(
            kernel_link_target(
                &format!("{dev}/virtfn0"),
                "sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0"
            ),
            "../0000:3b:02.0"
        );
        assert_eq!(
            kernel_link_target(&format!("{dev}/net/ens1f0/device"), dev),
            "../../../0000:3b:00.0"
        );
        assert_eq!(
            kernel_link_target("sys/class/net/ens1f0", &format!("{dev}/net/ens1f0")),
            "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/ens1f0"
        );
        assert_eq!(
            kernel_link_target("sys/kernel/iommu_groups/40/devices/0000:3b:00.0", dev),
            "../../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
        );
        assert_eq!(
            kernel_link_target("sys/bus/pci/drivers/i40e/0000:3b:00.0", dev),
            "../../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
        );
    }

    #[test]
    fn apply_keeps_inodes_and_reports_topmost_removals() {
        let mut t = Tree::new();
        let mut r = Render::new();
        r.file("a/b/c".into(), 0o444, Src::Text("x".into()));
        r.link("a/l".into(), "a/b/c");
        r.set_volatile(true);
        r.dir("v/w");
        t.apply(Section::Global, r);
        let c = t.ino_of("a/b/c").unwrap();
        let b = t.ino_of("a/b").unwrap();
        let a = t.ino_of("a").unwrap();
        assert_eq!(t.get(t.ino_of("a/l").unwrap()).unwrap().kind, NodeKind::Link("b/c".into()));

        // Same render again: nothing changes.
        let mut r = Render::new();
        r.file("a/b/c".into(), 0o444, Src::Text("x".into()));
        r.link("a/l".into(), "a/b/c");
        assert!(t.apply(Section::Global, r).is_empty(), "volatile v/ must not be reported");
        assert_eq!(t.ino_of("a/b/c"), Some(c));

        // Drop a/b (with its child) and change the link target: a/b and a/l reported,
        // a/b/c is covered by a/b.
        let mut r = Render::new();
        r.link("a/l".into(), "a/x");
        r.dir("a/x");
        let mut removed = t.apply(Section::Global, r);
        removed.sort_by(|x, y| x.name.cmp(&y.name));
        let names: Vec<_> = removed.iter().map(|r| (r.parent, r.name.as_str())).collect();
        assert_eq!(names, [(a, "b"), (a, "l")]);
        assert!(t.ino_of("a/b").is_none());
        let new_l = t.ino_of("a/l").unwrap();
        assert!(new_l > c && new_l != b, "changed node gets a fresh inode");
        assert_eq!(t.path_of(new_l).unwrap(), "a/l");
    }

    #[test]
    fn shared_directories_live_while_any_section_renders_them() {
        let a_dev = "0000:3b:00.0".parse().unwrap();
        let b_dev = "0000:3b:00.1".parse().unwrap();
        let mut t = Tree::new();
        let mut r = Render::new();
        r.file("s/shared/a".into(), 0o444, Src::Text("a".into()));
        assert!(t.apply(Section::Device(a_dev), r).is_empty());
        let mut r = Render::new();
        r.file("s/shared/b".into(), 0o444, Src::Text("b".into()));
        t.apply(Section::Device(b_dev), r);
        let shared = t.ino_of("s/shared").unwrap();
        // Removing section a keeps the shared directory and b.
        let removed = t.apply(Section::Device(a_dev), Render::new());
        assert_eq!(
            removed.iter().map(|r| (r.parent, r.name.as_str())).collect::<Vec<_>>(),
            [(shared, "a")]
        );
        assert_eq!(t.ino_of("s/shared"), Some(shared));
        assert!(t.ino_of("s/shared/b").is_some());
        assert_eq!(t.get(shared).unwrap().children.len(), 1);
        // Removing b too removes the directory chain; only the topmost is reported.
        let removed = t.apply(Section::Device(b_dev), Render::new());
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].name, "s");
        assert_eq!(t.len(), 1, "only the root is left");
    }
}
