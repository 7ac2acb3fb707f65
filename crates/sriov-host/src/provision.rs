//! Changing the host: VF counts and driver binding, the way the kernel requires them.
//!
//! - The VF count goes through 0: the kernel refuses (EBUSY) to change a non-zero count to another
//!   non-zero count. A count above `sriov_totalvfs` is refused before anything is touched.
//! - A driver is bound with `driver_override` + unbind + `drivers_probe` (what `driverctl` and the
//!   SR-IOV operator do), and verified through the `driver` link.
//! - Every multi-step change snapshots the PF first and restores it when a later step fails, so an
//!   error never leaves a PF half-configured; the error says whether the restore worked.
//!
//! Waiting for VFs polls sysfs with a short backoff under a deadline: sysfs does not support inotify
//! and the alternative (kobject uevents) needs a netlink socket in the host's network namespace.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::model::USERSPACE_DRIVERS;
use crate::paths::HostPaths;
use crate::pci::PciAddr;
use crate::sysfs::{self, SysfsError};

/// Errors from provisioning.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The device is not an SR-IOV PF.
    #[error("{pf} is not an SR-IOV PF: {path} does not exist")]
    NotAPf {
        /// The device.
        pf: PciAddr,
        /// The missing `sriov_totalvfs`.
        path: PathBuf,
    },
    /// No such PCI device.
    #[error("no PCI device {dev}: {path} does not exist")]
    NoSuchDevice {
        /// The device.
        dev: PciAddr,
        /// Its missing sysfs directory.
        path: PathBuf,
    },
    /// More VFs than the PF supports.
    #[error("PF {pf}: cannot create {requested} VFs, sriov_totalvfs is {total}")]
    ExceedsTotal {
        /// The PF.
        pf: PciAddr,
        /// Requested count.
        requested: u32,
        /// `sriov_totalvfs`.
        total: u32,
    },
    /// A sysfs value was not what the kernel writes.
    #[error("{path}: found {value:?}, expected {expected}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Its content.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The kernel refused a write.
    #[error("{device}: {}", kernel_reason(.source))]
    Kernel {
        /// The PF or VF concerned.
        device: PciAddr,
        /// The failed write.
        #[source]
        source: SysfsError,
    },
    /// VFs did not appear (or vanish) in time.
    #[error("PF {pf}: timed out after {waited:?} waiting for {expected} VFs ({present} present)")]
    Timeout {
        /// The PF.
        pf: PciAddr,
        /// VFs expected.
        expected: u32,
        /// VFs present when giving up.
        present: u32,
        /// How long it waited.
        waited: Duration,
    },
    /// The driver is not loaded (no `/sys/bus/pci/drivers/<name>`).
    #[error("driver {driver} is not loaded ({path} does not exist; try `modprobe {driver}`)")]
    DriverNotLoaded {
        /// The driver.
        driver: String,
        /// Its missing directory.
        path: PathBuf,
    },
    /// After probing, the device is not on the requested driver.
    #[error("{dev}: expected driver {expected} after probe, found {}", .found.as_deref().unwrap_or("none"))]
    BindFailed {
        /// The device.
        dev: PciAddr,
        /// The driver asked for.
        expected: String,
        /// The driver found.
        found: Option<String>,
    },
    /// A step failed and the previous state was (or was not) restored.
    #[error("{error}; {rollback}")]
    RolledBack {
        /// The original failure.
        error: Box<ProvisionError>,
        /// What the rollback did.
        rollback: String,
    },
}

fn kernel_reason(e: &SysfsError) -> String {
    let hint = match e.errno() {
        Some(libc_errno::EBUSY) => " (device busy: VFs in use, or a count change not through 0)",
        Some(libc_errno::ERANGE) => " (above sriov_totalvfs)",
        Some(libc_errno::ENOENT) => {
            " (no driver bound to the PF, or the driver has no SR-IOV support)"
        }
        Some(libc_errno::ENODEV) => " (no such device, or it does not match the driver)",
        Some(libc_errno::ENOMEM) => " (out of resources: the BIOS may need SR-IOV or pci=realloc)",
        _ => "",
    };
    format!("{} {}: {}{hint}", e.op, e.path.display(), e.source)
}

/// The few errno values the messages explain (kept local: this crate has no libc dependency).
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const ENOMEM: i32 = 12;
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const ERANGE: i32 = 34;
}

/// Which driver a VF should be on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverTarget {
    /// The kernel's default driver for the device ID (no override), e.g. iavf, mlx5_core.
    Kernel,
    /// A named driver, bound through `driver_override` (e.g. `vfio-pci`).
    Named(String),
}

impl DriverTarget {
    /// Parses `kernel` or a driver name.
    pub fn parse(s: &str) -> Self {
        match s {
            "kernel" | "default" => Self::Kernel,
            other => Self::Named(other.to_owned()),
        }
    }
}

/// Timing knobs.
#[derive(Debug, Clone, Copy)]
pub struct ProvisionOptions {
    /// How long to wait for VFs to appear or vanish. Real NICs can take tens of seconds for dozens
    /// of VFs (i40e: ~22 s for 64).
    pub timeout: Duration,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(120) }
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Already as requested.
    Unchanged,
    /// Changed from the given previous value.
    Changed {
        /// Previous VF count or driver.
        from: String,
    },
}

fn kernel(device: PciAddr) -> impl FnOnce(SysfsError) -> ProvisionError {
    move |source| ProvisionError::Kernel { device, source }
}

fn read_u32(path: &Path) -> Result<u32, ProvisionError> {
    let raw = sysfs::read_attr(path)
        .map_err(|source| ProvisionError::Malformed {
            path: path.to_owned(),
            value: source.source.to_string(),
            expected: "a readable attribute",
        })?
        .unwrap_or_default();
    raw.parse().map_err(|_| ProvisionError::Malformed {
        path: path.to_owned(),
        value: raw,
        expected: "a non-negative integer",
    })
}

fn pf_dir(paths: &HostPaths, pf: PciAddr) -> Result<PathBuf, ProvisionError> {
    let dir = paths.pci_device(pf);
    let total = dir.join("sriov_totalvfs");
    if !total.exists() {
        if !dir.exists() {
            return Err(ProvisionError::NoSuchDevice { dev: pf, path: dir });
        }
        return Err(ProvisionError::NotAPf { pf, path: total });
    }
    Ok(dir)
}

/// Number of `virtfn0..expected` links that resolve to a device.
fn vfs_present(dir: &Path, expected: u32) -> u32 {
    (0..expected).take_while(|i| dir.join(format!("virtfn{i}")).exists()).count() as u32
}

fn any_vf_link(dir: &Path) -> bool {
    sysfs::list_dir(dir).ok().flatten().is_some_and(|v| v.iter().any(|n| n.starts_with("virtfn")))
}

/// Polls `done` with a short backoff until it holds or `timeout` passes; returns whether it held.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Sets a PF's VF count (through 0 when it is non-zero) and waits for the VFs.
///
/// On failure after VFs were removed, the previous count is written back; the error says so.
pub fn set_num_vfs(
    paths: &HostPaths,
    pf: PciAddr,
    count: u32,
    opts: &ProvisionOptions,
) -> Result<Change, ProvisionError> {
    let dir = pf_dir(paths, pf)?;
    let total = read_u32(&dir.join("sriov_totalvfs"))?;
    if count > total {
        return Err(ProvisionError::ExceedsTotal { pf, requested: count, total });
    }
    let numvfs = dir.join("sriov_numvfs");
    let current = read_u32(&numvfs)?;
    if current == count {
        return Ok(Change::Unchanged);
    }
    tracing::info!(%pf, from = current, to = count, "changing VF count");
    if current != 0 {
        sysfs::write_attr(&numvfs, "0").map_err(kernel(pf))?;
        if !wait_until(opts.timeout, || !any_vf_link(&dir)) {
            let err = ProvisionError::Timeout {
                pf,
                expected: 0,
                present: vfs_present(&dir, current),
                waited: opts.timeout,
            };
            return Err(with_restore(paths, pf, current, opts, err));
        }
    }
    if count == 0 {
        return Ok(Change::Changed { from: current.to_string() });
    }
    if let Err(e) = sysfs::write_attr(&numvfs, &count.to_string()) {
        return Err(with_restore(
            paths,
            pf,
            current,
            opts,
            ProvisionError::Kernel { device: pf, source: e },
        ));
    }
    if !wait_until(opts.timeout, || vfs_present(&dir, count) == count) {
        let err = ProvisionError::Timeout {
            pf,
            expected: count,
            present: vfs_present(&dir, count),
            waited: opts.timeout,
        };
        return Err(with_restore(paths, pf, current, opts, err));
    }
    Ok(Change::Changed { from: current.to_string() })
}

/// Wraps `error` with the outcome of restoring the PF to `previous` VFs.
fn with_restore(
    paths: &HostPaths,
    pf: PciAddr,
    previous: u32,
    opts: &ProvisionOptions,
    error: ProvisionError,
) -> ProvisionError {
    let dir = paths.pci_device(pf);
    let numvfs = dir.join("sriov_numvfs");
    let restore = || -> Result<(), ProvisionError> {
        let now = read_u32(&numvfs)?;
        if now == previous {
            return Ok(());
        }
        if now != 0 {
            sysfs::write_attr(&numvfs, "0").map_err(kernel(pf))?;
        }
        if previous != 0 {
            sysfs::write_attr(&numvfs, &previous.to_string()).map_err(kernel(pf))?;
            wait_until(opts.timeout, || vfs_present(&dir, previous) == previous);
        }
        Ok(())
    };
    let rollback = match restore() {
        Ok(()) => format!("restored the previous {previous} VFs"),
        Err(e) => format!("restoring the previous {previous} VFs also failed: {e}"),
    };
    ProvisionError::RolledBack { error: Box::new(error), rollback }
}

/// A device's driver binding, as far as it can be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Bound driver.
    pub driver: Option<String>,
    /// `driver_override`.
    pub driver_override: Option<String>,
}

/// Reads a device's current binding.
pub fn binding(paths: &HostPaths, dev: PciAddr) -> Result<Binding, ProvisionError> {
    let dir = paths.pci_device(dev);
    if !dir.exists() {
        return Err(ProvisionError::NoSuchDevice { dev, path: dir });
    }
    let driver = sysfs::read_link_name(&dir.join("driver")).map_err(kernel(dev))?;
    let driver_override = sysfs::read_attr(&dir.join("driver_override"))
        .map_err(kernel(dev))?
        .filter(|s| !s.is_empty() && s != "(null)");
    Ok(Binding { driver, driver_override })
}

fn unbind(paths: &HostPaths, dev: PciAddr, driver: &str) -> Result<(), ProvisionError> {
    let path = paths.pci_drivers().join(driver).join("unbind");
    sysfs::write_attr(&path, &dev.to_string()).map_err(kernel(dev))
}

fn probe(paths: &HostPaths, dev: PciAddr) -> Result<(), ProvisionError> {
    sysfs::write_attr(&paths.pci_drivers_probe(), &dev.to_string()).map_err(kernel(dev))
}

fn set_override(
    paths: &HostPaths,
    dev: PciAddr,
    value: Option<&str>,
) -> Result<(), ProvisionError> {
    // Writing a newline clears the override (the kernel stores NULL for an empty string).
    let path = paths.pci_device(dev).join("driver_override");
    sysfs::write_attr(&path, value.unwrap_or("\n")).map_err(kernel(dev))
}

/// Refuses a named driver that is not loaded (no `/sys/bus/pci/drivers/<name>`), before anything
/// is changed.
fn require_loaded(paths: &HostPaths, target: &DriverTarget) -> Result<(), ProvisionError> {
    if let DriverTarget::Named(d) = target {
        let path = paths.pci_drivers().join(d);
        if !path.exists() {
            return Err(ProvisionError::DriverNotLoaded { driver: d.clone(), path });
        }
    }
    Ok(())
}

/// Puts a device on the target driver; restores its previous binding when that fails.
pub fn bind_driver(
    paths: &HostPaths,
    dev: PciAddr,
    target: &DriverTarget,
) -> Result<Change, ProvisionError> {
    let before = binding(paths, dev)?;
    let done = match target {
        DriverTarget::Named(d) => before.driver.as_deref() == Some(d.as_str()),
        DriverTarget::Kernel => {
            before.driver_override.is_none()
                && before.driver.as_deref().is_some_and(|d| !USERSPACE_DRIVERS.contains(&d))
        }
    };
    if done {
        return Ok(Change::Unchanged);
    }
    require_loaded(paths, target)?;
    tracing::info!(%dev, from = ?before.driver, to = ?target, "rebinding driver");
    let attempt = || -> Result<(), ProvisionError> {
        let wanted = match target {
            DriverTarget::Named(d) => Some(d.as_str()),
            DriverTarget::Kernel => None,
        };
        if before.driver_override.as_deref() != wanted {
            set_override(paths, dev, wanted)?;
        }
        if let Some(cur) = &before.driver {
            unbind(paths, dev, cur)?;
        }
        probe(paths, dev)?;
        let now = binding(paths, dev)?.driver;
        let ok = match target {
            DriverTarget::Named(d) => now.as_deref() == Some(d.as_str()),
            DriverTarget::Kernel => now.as_deref().is_some_and(|d| !USERSPACE_DRIVERS.contains(&d)),
        };
        if !ok {
            let expected = match target {
                DriverTarget::Named(d) => d.clone(),
                DriverTarget::Kernel => "a kernel (netdev) driver".to_owned(),
            };
            return Err(ProvisionError::BindFailed { dev, expected, found: now });
        }
        Ok(())
    };
    match attempt() {
        Ok(()) => Ok(Change::Changed { from: before.driver.unwrap_or_else(|| "none".into()) }),
        Err(error) => {
            let rollback = match restore_binding(paths, dev, &before) {
                Ok(()) => format!(
                    "restored driver {}",
                    before.driver.as_deref().unwrap_or("none (unbound)")
                ),
                Err(e) => format!("restoring the previous driver also failed: {e}"),
            };
            Err(ProvisionError::RolledBack { error: Box::new(error), rollback })
        }
    }
}

/// Returns a device to a recorded binding.
pub fn restore_binding(
    paths: &HostPaths,
    dev: PciAddr,
    to: &Binding,
) -> Result<(), ProvisionError> {
    let now = binding(paths, dev)?;
    if now == *to {
        return Ok(());
    }
    if now.driver_override != to.driver_override {
        set_override(paths, dev, to.driver_override.as_deref())?;
    }
    if now.driver != to.driver {
        if let Some(cur) = &now.driver {
            unbind(paths, dev, cur)?;
        }
        if let Some(want) = &to.driver {
            // A probe picks the override or the ID-matching driver; when that is not the recorded
            // one (it was bound through `bind` by hand), bind it explicitly.
            probe(paths, dev)?;
            let got = binding(paths, dev)?.driver;
            if got.as_deref() != Some(want.as_str()) {
                if let Some(other) = got {
                    unbind(paths, dev, &other)?;
                }
                let bind = paths.pci_drivers().join(want).join("bind");
                sysfs::write_attr(&bind, &dev.to_string()).map_err(kernel(dev))?;
            }
        }
    }
    Ok(())
}

/// Sets `sriov_drivers_autoprobe` (whether new VFs bind to their default driver on creation).
pub fn set_drivers_autoprobe(
    paths: &HostPaths,
    pf: PciAddr,
    on: bool,
) -> Result<(), ProvisionError> {
    let dir = pf_dir(paths, pf)?;
    sysfs::write_attr(&dir.join("sriov_drivers_autoprobe"), if on { "1" } else { "0" })
        .map_err(kernel(pf))
}

fn read_autoprobe(dir: &Path) -> Option<bool> {
    sysfs::read_attr(&dir.join("sriov_drivers_autoprobe")).ok().flatten().map(|v| v != "0")
}

/// Lists a PF's VFs as (index, address) through its `virtfnN` links.
pub fn vf_addresses(paths: &HostPaths, pf: PciAddr) -> Result<Vec<(u32, PciAddr)>, ProvisionError> {
    let dir = pf_dir(paths, pf)?;
    let mut out = Vec::new();
    for name in sysfs::list_dir(&dir).map_err(kernel(pf))?.unwrap_or_default() {
        let Some(i) = name.strip_prefix("virtfn").and_then(|i| i.parse::<u32>().ok()) else {
            continue;
        };
        let link = dir.join(&name);
        let target = sysfs::read_link_name(&link).map_err(kernel(pf))?.unwrap_or_default();
        let addr = target.parse().map_err(|_| ProvisionError::Malformed {
            path: link,
            value: target,
            expected: "a link to a PCI device",
        })?;
        out.push((i, addr));
    }
    out.sort();
    Ok(out)
}

/// The declarative operation behind `sriov-agent vfs set`: `count` VFs on `pf`, each on `driver`
/// (when given). Snapshots the PF first; any failure restores the previous count, autoprobe
/// setting and per-VF drivers.
pub fn configure_vfs(
    paths: &HostPaths,
    pf: PciAddr,
    count: u32,
    driver: Option<&DriverTarget>,
    opts: &ProvisionOptions,
) -> Result<Change, ProvisionError> {
    let dir = pf_dir(paths, pf)?;
    let total = read_u32(&dir.join("sriov_totalvfs"))?;
    if count > total {
        return Err(ProvisionError::ExceedsTotal { pf, requested: count, total });
    }
    if let Some(target) = driver {
        require_loaded(paths, target)?;
    }
    let before_count = read_u32(&dir.join("sriov_numvfs"))?;
    let before_autoprobe = read_autoprobe(&dir);
    let before_bindings: Vec<(u32, Binding)> = vf_addresses(paths, pf)?
        .into_iter()
        .map(|(i, a)| binding(paths, a).map(|b| (i, b)))
        .collect::<Result<_, _>>()?;

    let apply = || -> Result<bool, ProvisionError> {
        let mut changed = false;
        let userspace = matches!(driver, Some(DriverTarget::Named(_)));
        let count_changes = before_count != count;
        // New VFs destined for a userspace driver should never bind to the netdev driver first:
        // create them with autoprobe off, then bind each one.
        let pause_autoprobe = userspace && count_changes && before_autoprobe == Some(true);
        if pause_autoprobe {
            set_drivers_autoprobe(paths, pf, false)?;
        }
        let result = set_num_vfs(paths, pf, count, opts);
        if pause_autoprobe {
            set_drivers_autoprobe(paths, pf, true)?;
        }
        changed |= result? != Change::Unchanged;
        if let Some(target) = driver {
            for (_, vf) in vf_addresses(paths, pf)? {
                changed |= bind_driver(paths, vf, target)? != Change::Unchanged;
            }
        }
        Ok(changed)
    };
    match apply() {
        Ok(true) => Ok(Change::Changed { from: before_count.to_string() }),
        Ok(false) => Ok(Change::Unchanged),
        Err(error) => {
            let restore = || -> Result<(), ProvisionError> {
                if let Some(a) = before_autoprobe {
                    set_drivers_autoprobe(paths, pf, a)?;
                }
                set_num_vfs(paths, pf, before_count, opts)?;
                let now: std::collections::HashMap<u32, PciAddr> =
                    vf_addresses(paths, pf)?.into_iter().collect();
                for (i, b) in &before_bindings {
                    if let Some(addr) = now.get(i) {
                        restore_binding(paths, *addr, b)?;
                    }
                }
                Ok(())
            };
            let rollback = match restore() {
                Ok(()) => {
                    format!("PF {pf} restored to its previous {before_count} VFs and drivers")
                }
                Err(e) => format!("restoring PF {pf} also failed: {e}"),
            };
            Err(ProvisionError::RolledBack { error: Box::new(error), rollback })
        }
    }
}
