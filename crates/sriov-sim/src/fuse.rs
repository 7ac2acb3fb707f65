//! Live mode: the model served over FUSE, so ordinary `open`/`read`/`write` on
//! `<dir>/sys/...` behave like sysfs, including the errno of refused writes.
//!
//! Caching: attribute files are opened with `FOPEN_DIRECT_IO` (no page cache, content is
//! generated per read, like sysfs's seq_file). Entries and attributes of nodes that only
//! change through writes to the sim are cached for [`MountOptions::cache_ttl`]; when a
//! reaction removes such a node, the writer's request invalidates the kernel's dentry
//! (`FUSE_NOTIFY_INVAL_ENTRY`) before its write returns, so the view is consistent as
//! soon as the write completes. Netdev views (`net/<if>/...`, `class/net/*`), which
//! follow real link renames and netns moves, are never cached (TTL 0).
//!
//! With uevents on, a timer thread applies delayed reactions (a VF netdev registered
//! some time after its driver bound) when they are due, not at the next access, so their
//! uevents go out on time.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    MountOption, Notifier, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, Session,
    SessionACL, SessionUnmounter,
};

use crate::error::SimError;
use crate::model::{DevAttr, Sim, Src};
use crate::pci::PciAddr;
use crate::tree::{Ino, Node, NodeKind, Removed};

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// FUSE request threads (at least 2, so a writer's dentry invalidation never waits
    /// on a request queued behind it).
    pub threads: usize,
    /// Kernel cache lifetime of entries/attributes of nodes that change only through
    /// writes to the sim. `Duration::ZERO` disables caching entirely.
    pub cache_ttl: Duration,
    /// Let every user (not only root) access the mount (`allow_other`); permissions are
    /// then checked by the kernel against the sysfs modes (`default_permissions`).
    pub allow_other: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self { threads: 4, cache_ttl: Duration::from_secs(10), allow_other: true }
    }
}

struct DirEntry {
    ino: u64,
    name: String,
    attr: FileAttr,
    ttl: Duration,
}

struct DirSnapshot {
    entries: Vec<DirEntry>,
}

struct Shared {
    sim: Mutex<Sim>,
    dirs: Mutex<HashMap<u64, DirSnapshot>>,
    next_fh: AtomicU64,
    notifier: OnceLock<Notifier>,
    ttl: Duration,
    create_delay: Duration,
    created: SystemTime,
    /// Wakes the timer thread (paired with `sim`).
    timer: Condvar,
    /// Set (under the `sim` lock) to end the timer thread.
    timer_stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Sim> {
        // A panic while holding the lock leaves a model that is still structurally
        // valid; keep serving rather than failing every later request.
        self.sim.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Invalidates removed cacheable entries, synchronously (call without the model lock).
    fn invalidate(&self, removed: Vec<Removed>) {
        if removed.is_empty() || self.ttl.is_zero() {
            return;
        }
        let Some(n) = self.notifier.get() else { return };
        for r in removed {
            if let Err(e) = n.inval_entry(INodeNo(r.parent), OsStr::new(&r.name)) {
                // ENOENT: the kernel had nothing cached.
                if e.raw_os_error() != Some(libc::ENOENT) {
                    tracing::debug!(name = r.name, error = %e, "sim: inval_entry");
                }
            }
        }
    }

    /// Invalidation found by a request that is not a write: the requester may hold a
    /// directory lock the invalidation needs, so never wait for it here.
    fn invalidate_async(self: &Arc<Self>, removed: Vec<Removed>) {
        if removed.is_empty() || self.ttl.is_zero() {
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("sim-inval".into())
            .spawn(move || me.invalidate(removed));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "sim: cannot spawn invalidation thread");
        }
    }

    fn attr(&self, ino: Ino, node: &Node) -> FileAttr {
        let (kind, perm, size, nlink, rdev) = match &node.kind {
            NodeKind::Dir => (FileType::Directory, 0o755, 0, 2, 0),
            NodeKind::File { mode, .. } => (FileType::RegularFile, *mode, 4096, 1, 0),
            NodeKind::Link(t) => (FileType::Symlink, 0o777, t.len() as u64, 1, 0),
            NodeKind::CharDev { rdev } => (FileType::CharDevice, 0o600, 0, 1, *rdev),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: self.created,
            mtime: self.created,
            ctime: self.created,
            crtime: self.created,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev,
            blksize: 4096,
            flags: 0,
        }
    }

    fn ttl_of(&self, node: &Node) -> Duration {
        if node.volatile { Duration::ZERO } else { self.ttl }
    }

    /// Starts the timer thread if the sim broadcasts uevents (without them, delayed
    /// reactions are applied lazily at the next access, which nobody can tell apart).
    fn start_timer(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        if !self.lock().uevents_enabled() {
            return None;
        }
        let me = Arc::clone(self);
        match std::thread::Builder::new().name("sim-timer".into()).spawn(move || me.run_timer()) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "sim: cannot start the timer thread; delayed netdevs appear at the next access");
                None
            }
        }
    }

    fn run_timer(&self) {
        let mut sim = self.lock();
        loop {
            if self.timer_stop.load(Ordering::Acquire) {
                return;
            }
            sim = match sim.next_event_in() {
                Some(d) if d.is_zero() => {
                    sim.sync();
                    let removed = sim.take_removed();
                    drop(sim);
                    self.invalidate(removed);
                    self.lock()
                }
                Some(d) => match self.timer.wait_timeout(sim, d) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                },
                None => self.timer.wait(sim).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// Tells the timer thread that a change may have scheduled a delayed reaction.
    fn kick_timer(&self) {
        self.timer.notify_all();
    }

    fn stop_timer(&self, thread: Option<JoinHandle<()>>) {
        let Some(t) = thread else { return };
        {
            // Under the lock, so the flag cannot be set between the thread's check and
            // its wait.
            let _g = self.lock();
            self.timer_stop.store(true, Ordering::Release);
        }
        self.timer.notify_all();
        if t.join().is_err() {
            tracing::warn!("sim: timer thread panicked");
        }
    }
}

fn errno(e: nix::errno::Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e as i32)
}

struct SimFs {
    shared: Arc<Shared>,
}

impl SimFs {
    /// Locks, syncs, runs `f`, unlocks, then sends invalidations asynchronously.
    fn with<T>(&self, f: impl FnOnce(&mut Sim) -> T) -> T {
        let (out, removed) = {
            let mut sim = self.shared.lock();
            sim.sync();
            let out = f(&mut sim);
            (out, sim.take_removed())
        };
        self.shared.invalidate_async(removed);
        out
    }
}

impl Filesystem for SimFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> io::Result<()> {
        // Symlink targets never change for a given inode (a retargeted link is a new
        // node), so the kernel may cache them; READDIRPLUS fills dentries and attributes
        // while listing; O_TRUNC comes with OPEN instead of a separate SETATTR.
        let wanted = InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_ATOMIC_O_TRUNC;
        let supported = config.capabilities() & wanted;
        if let Err(missing) = config.add_capabilities(supported) {
            tracing::debug!(?missing, "sim: fuse capabilities not supported");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let res = self.with(|sim| {
            let name = name.to_str()?;
            let ino = sim.tree().child(parent.0, name)?;
            let node = sim.tree().get(ino)?;
            Some((self.shared.attr(ino, node), self.shared.ttl_of(node)))
        });
        match res {
            Some((attr, ttl)) => reply.entry(&ttl, &attr, Generation(0)),
            None => reply.error(fuser::Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let res = self.with(|sim| {
            let node = sim.tree().get(ino.0)?;
            Some((self.shared.attr(ino.0, node), self.shared.ttl_of(node)))
        });
        match res {
            Some((attr, ttl)) => reply.attr(&ttl, &attr),
            None => reply.error(fuser::Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // kernfs ignores size changes, so `echo x > attr` (O_TRUNC) works; mode and
        // owner changes are not modelled and are accepted without effect.
        self.getattr(_req, ino, None, reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let res = self.with(|sim| match &sim.tree().get(ino.0)?.kind {
            NodeKind::Link(t) => Some(Ok(t.clone())),
            _ => Some(Err(fuser::Errno::EINVAL)),
        });
        match res {
            Some(Ok(t)) => reply.data(t.as_bytes()),
            Some(Err(e)) => reply.error(e),
            None => reply.error(fuser::Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (read, write) = match flags.acc_mode() {
            OpenAccMode::O_RDONLY => (true, false),
            OpenAccMode::O_WRONLY => (false, true),
            OpenAccMode::O_RDWR => (true, true),
        };
        match self.with(|sim| sim.check_open(ino.0, read, write)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|sim| sim.read_ino(ino.0)) {
            Ok(content) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(content.len());
                let end = start.saturating_add(size as usize).min(content.len());
                reply.data(&content[start..end]);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let (res, removed, delay) = {
            let mut sim = self.shared.lock();
            sim.sync();
            // The blocking delay applies to writes that create VFs.
            let numvfs_pf = match sim.tree().get(ino.0).map(|n| &n.kind) {
                Some(NodeKind::File { src: Src::Dev(pf, DevAttr::SriovNumVfs), .. }) => Some(*pf),
                _ => None,
            };
            let before = numvfs_pf.map_or(0, |pf| sim.vfs(pf).len());
            let res = sim.write_ino(ino.0, data);
            sim.sync();
            let created = numvfs_pf.is_some_and(|pf| sim.vfs(pf).len() > before);
            let delay = res.is_ok() && created && !self.shared.create_delay.is_zero();
            (res, sim.take_removed(), delay)
        };
        self.shared.kick_timer();
        // The writer holds no directory lock: invalidate before answering, so the
        // removal is visible when its write() returns.
        self.shared.invalidate(removed);
        if delay {
            std::thread::sleep(self.shared.create_delay);
        }
        match res {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing is buffered; ENOSYS makes the kernel stop sending FLUSH on close.
        reply.error(fuser::Errno::ENOSYS);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let snap = self.with(|sim| {
            let node = sim.tree().get(ino.0)?;
            if node.kind != NodeKind::Dir {
                return None;
            }
            let entry = |ino: Ino, name: &str| {
                let n = sim.tree().get(ino)?;
                Some(DirEntry {
                    ino,
                    name: name.to_owned(),
                    attr: self.shared.attr(ino, n),
                    ttl: self.shared.ttl_of(n),
                })
            };
            let mut entries: Vec<DirEntry> =
                [entry(ino.0, "."), entry(node.parent, "..")].into_iter().flatten().collect();
            entries.extend(node.children.iter().filter_map(|(name, &c)| entry(c, name)));
            Some(DirSnapshot { entries })
        });
        let Some(snap) = snap else {
            reply.error(fuser::Errno::ENOTDIR);
            return;
        };
        let fh = self.shared.next_fh.fetch_add(1, Ordering::Relaxed);
        self.shared.dirs.lock().unwrap_or_else(|p| p.into_inner()).insert(fh, snap);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dirs = self.shared.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(snap) = dirs.get(&fh.0) else {
            reply.error(fuser::Errno::EBADF);
            return;
        };
        for (i, e) in snap.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, e.attr.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let dirs = self.shared.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(snap) = dirs.get(&fh.0) else {
            reply.error(fuser::Errno::EBADF);
            return;
        };
        for (i, e) in snap.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, &e.name, &e.ttl, &e.attr, Generation(0)) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared.dirs.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh.0);
        reply.ok();
    }

    // sysfs directories have no create/mkdir/unlink/...: vfs_create() answers EACCES,
    // the others EPERM.
    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(fuser::Errno::EACCES);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(fuser::Errno::EPERM);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(fuser::Errno::EPERM);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(fuser::Errno::EPERM);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(fuser::Errno::EPERM);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(fuser::Errno::EPERM);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

fn fuse_config(opts: &MountOptions) -> Config {
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName("sriov-sim".into()),
        MountOption::Subtype("sriov-sim".into()),
        MountOption::DefaultPermissions,
        MountOption::RW,
        MountOption::NoExec,
    ];
    if opts.allow_other {
        cfg.acl = SessionACL::All;
    }
    cfg.n_threads = Some(opts.threads.max(2));
    // One /dev/fuse fd per worker thread (FUSE_DEV_IOC_CLONE).
    cfg.clone_fd = true;
    cfg
}

fn new_session(
    sim: Sim,
    dir: &Path,
    opts: &MountOptions,
) -> Result<(Session<SimFs>, Arc<Shared>), SimError> {
    std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
        op: "create mount point",
        path: dir.to_owned(),
        source,
    })?;
    let shared = Arc::new(Shared {
        created: sim.created(),
        create_delay: Duration::from_millis(sim.spec().vf_create_delay_ms),
        sim: Mutex::new(sim),
        dirs: Mutex::new(HashMap::new()),
        next_fh: AtomicU64::new(1),
        notifier: OnceLock::new(),
        ttl: opts.cache_ttl,
        timer: Condvar::new(),
        timer_stop: AtomicBool::new(false),
    });
    let fs = SimFs { shared: Arc::clone(&shared) };
    let session = Session::new(fs, dir, &fuse_config(opts))
        .map_err(|source| SimError::Mount { dir: dir.to_owned(), source })?;
    // Set once, right after creation; a second set cannot happen.
    let _ = shared.notifier.set(session.notifier());
    tracing::info!(dir = %dir.display(), "sim: mounted");
    Ok((session, shared))
}

/// A simulated host mounted over FUSE at a directory. Dropping it unmounts (lazily if
/// busy) and stops the serving threads.
pub struct MountedSim {
    dir: PathBuf,
    shared: Arc<Shared>,
    unmounter: Option<SessionUnmounter>,
    thread: Option<JoinHandle<io::Result<()>>>,
    timer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MountedSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountedSim").field("dir", &self.dir).finish()
    }
}

impl MountedSim {
    pub(crate) fn mount(sim: Sim, dir: &Path, opts: &MountOptions) -> Result<Self, SimError> {
        let (mut session, shared) = new_session(sim, dir, opts)?;
        let unmounter = session.unmount_callable();
        let thread = std::thread::Builder::new()
            .name("sim-fuse".into())
            .spawn(move || session.run())
            .map_err(|source| SimError::Mount { dir: dir.to_owned(), source })?;
        let timer = shared.start_timer();
        Ok(Self {
            dir: dir.to_owned(),
            shared,
            unmounter: Some(unmounter),
            thread: Some(thread),
            timer,
        })
    }

    /// The mount point (`<dir>`).
    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// The sysfs root to give to production code instead of `/sys` (`<dir>/sys`).
    pub fn sysfs_root(&self) -> PathBuf {
        self.dir.join("sys")
    }

    /// The devfs root (`<dir>/dev`, holding `vfio/`).
    pub fn dev_root(&self) -> PathBuf {
        self.dir.join("dev")
    }

    /// Runs `f` on the model (for queries, or changes not expressible as file writes),
    /// then makes the mount consistent with any change it made before returning.
    pub fn with_sim<T>(&self, f: impl FnOnce(&mut Sim) -> T) -> T {
        let (out, removed) = {
            let mut sim = self.shared.lock();
            let out = f(&mut sim);
            sim.sync();
            (out, sim.take_removed())
        };
        self.shared.kick_timer();
        self.shared.invalidate(removed);
        out
    }

    /// Sets a PF's physical link state (see [`Sim::set_pf_carrier`]).
    pub fn set_pf_carrier(&self, pf: PciAddr, up: bool) -> Result<(), SimError> {
        self.with_sim(|s| s.set_pf_carrier(pf, up))
    }

    /// Unmounts and waits for the serving threads to stop.
    pub fn shutdown(mut self) -> Result<(), SimError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), SimError> {
        self.shared.stop_timer(self.timer.take());
        let Some(mut unmounter) = self.unmounter.take() else {
            return Ok(());
        };
        let mut detached = false;
        if let Err(e) = unmounter.unmount() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "sim: unmount failed, detaching");
            nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| SimError::Mount { dir: self.dir.clone(), source: e.into() })?;
            detached = true;
        }
        if let Some(t) = self.thread.take() {
            if detached {
                // The connection ends when the last open file on it is closed; do not
                // block on a user's leaked file descriptor.
                drop(t);
            } else if let Ok(Err(e)) = t.join() {
                tracing::debug!(error = %e, "sim: fuse session ended with error");
            }
        }
        tracing::info!(dir = %self.dir.display(), "sim: unmounted");
        Ok(())
    }
}

impl Drop for MountedSim {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "sim: unmount at drop failed");
        }
    }
}

/// Mounts `sim` at `dir` and serves it on the calling thread (plus FUSE worker threads)
/// until the mount is unmounted, e.g. by [`unmount`] from another process. Meant for a
/// daemon (`sriov-agent sim create DIR --spec FILE`): write a pid file before calling,
/// and have the destroy command call [`unmount`]`(DIR)` and wait for the pid to exit.
/// When this returns the model (and any veth backing, whose links are deleted) is
/// dropped.
pub fn serve_foreground(sim: Sim, dir: &Path, opts: &MountOptions) -> Result<(), SimError> {
    let (session, shared) = new_session(sim, dir, opts)?;
    let timer = shared.start_timer();
    let res = session.run().map_err(|source| SimError::Mount { dir: dir.to_owned(), source });
    shared.stop_timer(timer);
    res
}

/// Unmounts a sim mounted at `dir` (by this or another process): a normal unmount,
/// falling back to a lazy one (`MNT_DETACH`) if it is busy. Also clears the dead mount
/// a crashed daemon leaves behind.
pub fn unmount(dir: &Path) -> Result<(), SimError> {
    use nix::mount::{MntFlags, umount2};
    match umount2(dir, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => umount2(dir, MntFlags::MNT_DETACH)
            .map_err(|e| SimError::Mount { dir: dir.to_owned(), source: e.into() }),
        Err(e) => Err(SimError::Mount { dir: dir.to_owned(), source: e.into() }),
    }
}
