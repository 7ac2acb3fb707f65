//! Static export: a plain tree with real files, directories and relative symlinks that
//! resolve on a normal filesystem. No root needed.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sriov_sim::{Sim, SimSpec};

fn walk_links(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            out.push(e.path());
        } else if ft.is_dir() {
            walk_links(&e.path(), out);
        }
    }
}

#[test]
fn exported_tree_matches_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = SimSpec::default_host();
    spec.pfs[0].num_vfs = 4;
    let mut sim = Sim::new(spec).unwrap();
    sim.export_static(tmp.path()).unwrap();
    let sys = tmp.path().join("sys");
    let pf = sys.join("bus/pci/devices/0000:3b:00.0");
    assert_eq!(fs::read_to_string(pf.join("vendor")).unwrap(), "0x8086\n");
    assert_eq!(fs::read_to_string(pf.join("sriov_numvfs")).unwrap(), "4\n");
    assert_eq!(fs::read_to_string(pf.join("driver_override")).unwrap(), "(null)\n");
    assert_eq!(fs::read_link(pf.join("virtfn3")).unwrap(), Path::new("../0000:3b:02.3"));
    assert_eq!(
        fs::canonicalize(sys.join("class/net/ens1f0v3/device/physfn")).unwrap(),
        fs::canonicalize(&pf).unwrap()
    );
    // sysfs modes.
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&pf.join("vendor")), 0o444);
    assert_eq!(mode(&pf.join("sriov_numvfs")), 0o644);
    assert_eq!(mode(&sys.join("bus/pci/drivers/iavf/bind")), 0o200);
    assert!(tmp.path().join("dev/vfio/vfio").exists());
    // Every exported link resolves.
    let mut links = Vec::new();
    walk_links(tmp.path(), &mut links);
    assert!(links.len() > 100);
    for l in &links {
        assert!(fs::metadata(l).is_ok(), "dangling {}", l.display());
    }
    // Exporting twice into the same place is refused rather than merged.
    assert!(sim.export_static(tmp.path()).is_err());
}
