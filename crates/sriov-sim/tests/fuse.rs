//! FUSE mode: real `std::fs` I/O through the mount, with the kernel's errnos.
//! Needs root (mount(2)); skips otherwise.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sriov_sim::{MountOptions, MountedSim, Sim, SimSpec};

/// Keeps the temp dir alive after the mount (fields drop in order: mount first).
struct Fixture {
    mounted: MountedSim,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    fn new(spec: SimSpec) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let sim = Sim::new(spec).unwrap();
        let mounted = sim.mount(&tmp.path().join("sim"), &MountOptions::default()).unwrap();
        Self { mounted, _tmp: tmp }
    }
    fn sys(&self, p: &str) -> PathBuf {
        self.mounted.sysfs_root().join(p)
    }
    fn dev(&self, bdf: &str, attr: &str) -> PathBuf {
        self.sys(&format!("bus/pci/devices/{bdf}/{attr}"))
    }
}

fn errno_of(r: std::io::Result<()>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

const X0: &str = "0000:3b:00.0";

#[test]
fn reads_and_links_through_the_mount() {
    require_root!();
    let f = Fixture::new(SimSpec::default_host());
    assert_eq!(fs::read_to_string(f.dev(X0, "vendor")).unwrap(), "0x8086\n");
    assert_eq!(fs::read_to_string(f.dev(X0, "sriov_totalvfs")).unwrap(), "64\n");
    assert_eq!(
        fs::read_link(f.sys(&format!("bus/pci/devices/{X0}"))).unwrap(),
        Path::new("../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0")
    );
    let canon = fs::canonicalize(f.sys("class/net/ens1f0/device")).unwrap();
    assert_eq!(canon, f.sys("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"));
    let drivers: Vec<String> = fs::read_dir(f.sys("bus/pci/drivers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for d in ["i40e", "iavf", "ice", "mlx5_core", "vfio-pci", "pcieport"] {
        assert!(drivers.iter().any(|x| x == d), "{d} missing in {drivers:?}");
    }
    let meta = fs::metadata(f.mounted.dev_root().join("vfio/vfio")).unwrap();
    assert!(meta.file_type().is_char_device());
    // sysfs-like stat: 4096-byte attributes with the kernel's modes.
    use std::os::unix::fs::PermissionsExt;
    let m = fs::metadata(f.dev(X0, "sriov_numvfs")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o644);
    assert_eq!(m.len(), 4096);
    let m = fs::metadata(f.sys("bus/pci/drivers/iavf/bind")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o200);
}

#[test]
fn writes_return_the_kernel_errno() {
    require_root!();
    let f = Fixture::new(SimSpec::default_host());
    let numvfs = f.dev(X0, "sriov_numvfs");
    assert_eq!(errno_of(fs::write(&numvfs, "abc")), Some(libc::EINVAL));
    assert_eq!(errno_of(fs::write(&numvfs, "65")), Some(libc::ERANGE));
    fs::write(&numvfs, "4\n").unwrap();
    assert_eq!(fs::read_to_string(&numvfs).unwrap(), "4\n");
    assert_eq!(errno_of(fs::write(&numvfs, "9")), Some(libc::EBUSY));
    // Read-only and write-only attributes refuse the open, even for root.
    assert_eq!(errno_of(fs::write(f.dev(X0, "vendor"), "1")), Some(libc::EACCES));
    let e = fs::read(f.sys("bus/pci/drivers/iavf/bind")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    let bind = f.sys("bus/pci/drivers/iavf/bind");
    assert_eq!(errno_of(fs::write(&bind, "0000:3b:02.0")), Some(libc::EBUSY));
    assert_eq!(errno_of(fs::write(&bind, "0000:3b:1f.0")), Some(libc::ENODEV));
    // Reading carrier of an administratively down VF netdev: EINVAL.
    let e = fs::read(f.sys("class/net/ens1f0v0/carrier")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    // The tree itself cannot be changed, as in sysfs.
    assert_eq!(errno_of(fs::write(f.sys("bus/pci/newfile"), "1")), Some(libc::EACCES));
    assert_eq!(errno_of(fs::create_dir(f.sys("bus/pci/newdir"))), Some(libc::EPERM));
    assert_eq!(errno_of(fs::remove_file(f.dev(X0, "vendor"))), Some(libc::EPERM));
    // A real shell `echo` sees the same error.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("echo 9 > {}", numvfs.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Device or resource busy"), "{stderr}");
}

#[test]
fn the_view_is_consistent_right_after_each_reaction() {
    require_root!();
    let f = Fixture::new(SimSpec::default_host());
    let pf_dir = f.sys("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0");
    fs::write(f.dev(X0, "sriov_numvfs"), "3").unwrap();
    let vf = f.sys("bus/pci/devices/0000:3b:02.2");
    // Populate the kernel's dentry and attribute caches.
    assert!(vf.join("driver").exists());
    assert!(pf_dir.join("virtfn2").exists());
    assert_eq!(fs::read_to_string(vf.join("device")).unwrap(), "0x154c\n");
    let names: Vec<String> = fs::read_dir(vf.join("net"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["ens1f0v2"]);

    // Unbind: the driver link is gone as soon as the write returns.
    fs::write(vf.join("driver/unbind"), "0000:3b:02.2").unwrap();
    assert_eq!(fs::symlink_metadata(vf.join("driver")).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(!vf.join("net").exists());
    assert!(!f.sys("class/net/ens1f0v2").exists());
    // Bind back.
    fs::write(f.sys("bus/pci/drivers/iavf/bind"), "0000:3b:02.2").unwrap();
    assert!(vf.join("net/ens1f0v2/address").exists());

    // Removing the VFs: cached VF dirs, links and groups vanish immediately.
    fs::write(f.dev(X0, "sriov_numvfs"), "0").unwrap();
    assert!(!vf.exists());
    assert!(fs::symlink_metadata(&vf).is_err());
    assert!(fs::symlink_metadata(pf_dir.join("virtfn2")).is_err());
    assert!(!pf_dir.join("../0000:3b:02.2").exists());
    let vf_count = fs::read_dir(&pf_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("virtfn"))
        .count();
    assert_eq!(vf_count, 0);
    assert_eq!(fs::read_to_string(f.dev(X0, "sriov_numvfs")).unwrap(), "0\n");
}

#[test]
fn vfio_binding_creates_and_removes_the_group_node() {
    require_root!();
    let f = Fixture::new(SimSpec::default_host());
    fs::write(f.dev(X0, "sriov_numvfs"), "2").unwrap();
    let vf = "0000:3b:02.1";
    let group = fs::read_link(f.dev(vf, "iommu_group")).unwrap();
    let group = group.file_name().unwrap().to_str().unwrap().to_owned();
    let node = f.mounted.dev_root().join(format!("vfio/{group}"));
    assert!(!node.exists());
    fs::write(f.dev(vf, "driver_override"), "vfio-pci").unwrap();
    fs::write(f.dev(vf, "driver/unbind"), vf).unwrap();
    fs::write(f.sys("bus/pci/drivers_probe"), vf).unwrap();
    assert_eq!(
        fs::read_link(f.dev(vf, "driver")).unwrap(),
        Path::new("../../../../bus/pci/drivers/vfio-pci")
    );
    assert!(fs::metadata(&node).unwrap().file_type().is_char_device());
    assert!(!f.dev(vf, "net").exists());
    fs::write(f.sys("bus/pci/drivers/vfio-pci/unbind"), vf).unwrap();
    assert!(fs::symlink_metadata(&node).is_err());
}

#[test]
fn vf_creation_delay_blocks_the_write() {
    require_root!();
    let f = Fixture::new(SimSpec::default_host().vf_create_delay_ms(1000));
    let start = Instant::now();
    fs::write(f.dev(X0, "sriov_numvfs"), "2").unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1000));
    assert!(f.dev("0000:3b:02.1", "net/ens1f0v1").exists());
    // Refused writes and removals do not wait.
    let start = Instant::now();
    assert_eq!(errno_of(fs::write(f.dev(X0, "sriov_numvfs"), "3")), Some(libc::EBUSY));
    fs::write(f.dev(X0, "sriov_numvfs"), "0").unwrap();
    assert!(start.elapsed() < Duration::from_millis(1000));
}

#[test]
fn delayed_netdevs_appear_through_the_mount() {
    require_root!();
    let f = Fixture::new(SimSpec::default_host().vf_netdev_delay_ms(100));
    fs::write(f.dev(X0, "sriov_numvfs"), "1").unwrap();
    let net = f.dev("0000:3b:02.0", "net");
    assert!(!net.exists(), "netdev must not exist before the delay");
    // Bounded wait, as a caller would do.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !net.join("ens1f0v0").exists() {
        assert!(Instant::now() < deadline, "netdev never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn api_changes_are_visible_through_the_mount() {
    require_root!();
    let f = Fixture::new(SimSpec::default_host());
    let pf: sriov_sim::PciAddr = X0.parse().unwrap();
    let oper = f.sys("class/net/ens1f0/operstate");
    assert_eq!(fs::read_to_string(&oper).unwrap(), "up\n");
    f.mounted.set_pf_carrier(pf, false).unwrap();
    assert_eq!(fs::read_to_string(&oper).unwrap(), "down\n");
    assert_eq!(fs::read_to_string(f.sys("class/net/ens1f0/carrier")).unwrap(), "0\n");
    f.mounted.with_sim(|s| s.set_num_vfs(pf, 2)).unwrap();
    assert!(f.sys("class/net/ens1f0v1").exists());
    f.mounted.with_sim(|s| s.set_num_vfs(pf, 0)).unwrap();
    assert!(!f.sys("class/net/ens1f0v1").exists());
    assert!(!f.dev("0000:3b:02.0", "").exists());
}

#[test]
fn shutdown_unmounts() {
    require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sim");
    let m =
        Sim::new(SimSpec::default_host()).unwrap().mount(&dir, &MountOptions::default()).unwrap();
    assert!(dir.join("sys/bus/pci").exists());
    // A busy mount (open file) still goes away (lazily).
    let _open = fs::File::open(dir.join("sys/bus/pci/drivers_autoprobe")).unwrap();
    m.shutdown().unwrap();
    assert!(!dir.join("sys").exists());
}

#[test]
fn serve_foreground_returns_after_unmount() {
    require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sim");
    /// Unmounts even if an assertion fails first.
    struct Guard(PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = sriov_sim::unmount(&self.0);
        }
    }
    let _guard = Guard(dir.clone());
    let sim = Sim::new(SimSpec::default_host()).unwrap();
    let d = dir.clone();
    let daemon =
        std::thread::spawn(move || sriov_sim::serve_foreground(sim, &d, &MountOptions::default()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("sys/bus/pci/drivers_probe").exists() {
        assert!(Instant::now() < deadline, "sim never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::write(dir.join("sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs"), "1").unwrap();
    sriov_sim::unmount(&dir).unwrap();
    daemon.join().unwrap().unwrap();
    assert!(!dir.join("sys").exists());
    // Unmounting what is no longer mounted is an error, not a hang.
    assert!(sriov_sim::unmount(&dir).is_err());
}
