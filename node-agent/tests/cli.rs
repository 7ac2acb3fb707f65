//! Black-box tests of the `sriov-agent` binary against simulated hosts.
//!
//! Read-only tests use a static export of the simulated host (no root). Tests that change the host
//! mount the simulated host over FUSE and need root; they skip with a message otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sriov_sim::{MountOptions, MountedSim, NicModel, PfSpec, Sim, SimSpec};

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sriov-agent"));
    c.env_remove("SRIOV_SYSFS_ROOT").env_remove("SRIOV_DEV_ROOT");
    c
}

fn run(sys: &Path, args: &[&str]) -> Output {
    agent()
        .arg("--sysfs-root")
        .arg(sys)
        .arg("--dev-root")
        .arg(sys.join("../dev"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (FUSE mount)");
            return;
        }
    };
}

fn spec() -> SimSpec {
    SimSpec::empty()
        .pf(PfSpec::new(NicModel::IntelX710, "0000:3b:00.0".parse().unwrap(), "ens1f0")
            .numa_node(0)
            .num_vfs(4))
        .pf(PfSpec::new(NicModel::MellanoxConnectX5, "0000:d8:00.0".parse().unwrap(), "ens3f0np0")
            .numa_node(1))
}

fn static_host() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::new(spec()).unwrap();
    sim.export_static(dir.path()).unwrap();
    dir
}

fn mounted(spec: SimSpec) -> (tempfile::TempDir, MountedSim) {
    let dir = tempfile::tempdir().unwrap();
    let m =
        Sim::new(spec).unwrap().mount(&dir.path().join("host"), &MountOptions::default()).unwrap();
    (dir, m)
}

fn json(sys: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["inventory", "-o", "json"];
    args.extend_from_slice(extra);
    let o = run(sys, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn inventory_table_lists_pfs_and_vfs() {
    let d = static_host();
    let o = run(&d.path().join("sys"), &["inventory"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("PCI ADDRESS"), "{out}");
    assert_eq!(lines[1..].iter().filter(|l| l.contains(" PF ")).count(), 2, "{out}");
    assert_eq!(lines[1..].iter().filter(|l| l.contains(" VF ")).count(), 4, "{out}");
    assert!(out.contains("ens1f0v3") && out.contains("8086:154c") && out.contains("4/64"), "{out}");
}

#[test]
fn inventory_json_schema() {
    let d = static_host();
    let v = json(&d.path().join("sys"), &[]);
    assert_eq!(v["schemaVersion"], 1);
    let pfs = v["pfs"].as_array().unwrap();
    assert_eq!(pfs.len(), 2);
    let x710 = &pfs[0];
    assert_eq!(x710["pciAddress"], "0000:3b:00.0");
    assert_eq!(x710["vendorId"], "8086");
    assert_eq!(x710["deviceId"], "1572");
    assert_eq!(x710["vendorName"], "Intel Corporation");
    assert_eq!(x710["driver"], "i40e");
    assert_eq!(x710["numaNode"], 0);
    assert_eq!(x710["totalVfs"], 64);
    assert_eq!(x710["numVfs"], 4);
    assert_eq!(x710["vfDeviceId"], "154c");
    assert_eq!(x710["netdev"], "ens1f0");
    let vfs = x710["vfs"].as_array().unwrap();
    assert_eq!(vfs.len(), 4);
    for (i, vf) in vfs.iter().enumerate() {
        assert_eq!(vf["vfIndex"], i);
        assert_eq!(vf["pfPciAddress"], "0000:3b:00.0");
        assert_eq!(vf["driver"], "iavf");
        assert_eq!(vf["netdevStatus"], "present");
        assert!(vf["iommuGroup"].is_u64());
    }
    let cx5 = &pfs[1];
    assert_eq!(cx5["rdmaDevices"].as_array().unwrap().len(), 1, "{cx5}");
    assert_eq!(cx5["numaNode"], 1);
}

#[test]
fn inventory_yaml_and_pf_filter() {
    let d = static_host();
    let sys = d.path().join("sys");
    let o = run(&sys, &["inventory", "-o", "yaml", "--pf", "ens3f0np0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("schemaVersion: 1")
            && out.contains("0000:d8:00.0")
            && !out.contains("0000:3b:00.0"),
        "{out}"
    );
    let by_pci = json(&sys, &["--pf", "0000:3b:00.0"]);
    assert_eq!(by_pci["pfs"].as_array().unwrap().len(), 1);
}

#[test]
fn errors_are_one_line_with_exit_code_1() {
    let d = static_host();
    let o = run(&d.path().join("sys"), &["inventory", "--pf", "ens9"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("\"ens9\""), "{e}");

    let o = run(Path::new("/nonexistent-sysfs"), &["inventory"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent-sysfs/bus/pci/devices does not exist"),
        "{}",
        stderr(&o)
    );

    let o = run(&d.path().join("sys"), &["vfs", "set", "0000:3b:02.0", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("0000:3b:02.0 is not an SR-IOV PF"), "{}", stderr(&o));

    let o = agent().args(["inventory", "-o", "xml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn vfs_set_goes_through_zero_and_refuses_above_total() {
    need_root!();
    let (_d, m) = mounted(spec());
    let sys = m.sysfs_root();
    let o = run(&sys, &["vfs", "set", "ens1f0", "6"]);
    assert!(o.status.success(), "4 -> 6 must go through 0: {}", stderr(&o));
    assert_eq!(json(&sys, &["--pf", "ens1f0"])["pfs"][0]["numVfs"], 6);

    let o = run(&sys, &["vfs", "set", "0000:3b:00.0", "65"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("0000:3b:00.0") && e.contains("65") && e.contains("sriov_totalvfs is 64"),
        "{e}"
    );
    let pf = json(&sys, &["--pf", "ens1f0"]);
    assert_eq!(pf["pfs"][0]["numVfs"], 6, "a refused request changes nothing");
    assert_eq!(pf["pfs"][0]["vfs"].as_array().unwrap().len(), 6);

    let o = run(&sys, &["vfs", "set", "ens1f0", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&sys, &["--pf", "ens1f0"])["pfs"][0]["vfs"].as_array().unwrap().len(), 0);
}

#[test]
fn vfs_set_binds_vfio_and_back() {
    need_root!();
    let (_d, m) = mounted(spec());
    let sys = m.sysfs_root();
    let o = run(&sys, &["vfs", "set", "ens3f0np0", "3", "--driver", "vfio-pci"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pf = json(&sys, &["--pf", "ens3f0np0"]);
    let vfs = pf["pfs"][0]["vfs"].as_array().unwrap().clone();
    assert_eq!(vfs.len(), 3);
    for vf in &vfs {
        assert_eq!(vf["driver"], "vfio-pci");
        assert_eq!(vf["userspaceDriver"], true);
        assert_eq!(vf["netdevStatus"], "userspace");
        let node = vf["vfioDevice"].as_str().unwrap();
        assert!(node.ends_with(&format!("vfio/{}", vf["iommuGroup"])), "{node}");
        assert!(Path::new(node).exists(), "{node} must exist while bound to vfio-pci");
    }
    let o = run(&sys, &["vfs", "set", "ens3f0np0", "3", "--driver", "kernel"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pf = json(&sys, &["--pf", "ens3f0np0"]);
    for (vf, before) in pf["pfs"][0]["vfs"].as_array().unwrap().iter().zip(&vfs) {
        assert_eq!(vf["driver"], "mlx5_core");
        assert_eq!(vf["driverOverride"], Value::Null);
        assert_eq!(vf["netdevStatus"], "present");
        assert!(!Path::new(before["vfioDevice"].as_str().unwrap()).exists());
    }
}

#[test]
fn vfs_set_with_unloaded_driver_changes_nothing() {
    need_root!();
    let (_d, m) = mounted(spec());
    let sys = m.sysfs_root();
    let o = run(&sys, &["vfs", "set", "ens1f0", "8", "--driver", "no_such_driver"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("driver no_such_driver is not loaded"), "{}", stderr(&o));
    assert_eq!(json(&sys, &["--pf", "ens1f0"])["pfs"][0]["numVfs"], 4);
}

#[test]
fn sim_create_and_destroy() {
    need_root!();
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("host");
    let o = agent().args(["sim", "create"]).arg(&mnt).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("SRIOV_SYSFS_ROOT="), "{}", stdout(&o));
    let pid: i32 =
        std::fs::read_to_string(d.path().join("host.pid")).unwrap().trim().parse().unwrap();
    // The environment variable is honoured like --sysfs-root.
    let o = agent()
        .env("SRIOV_SYSFS_ROOT", mnt.join("sys"))
        .args(["inventory", "-o", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pfs"].as_array().unwrap().len(), 5, "the default simulated host has 5 PFs");
    let o = agent().args(["sim", "destroy"]).arg(&mnt).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!mnt.join("sys").exists(), "unmounted");
    // Exited: gone, or a zombie waiting for a subreaper (nextest) to reap it.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit(") ").next().and_then(|s| s.chars().next());
    assert!(matches!(state, None | Some('Z')), "server {pid} still running: {state:?}");
}

/// Runs `sriov-agent demo` with `args`; returns its output and PID.
fn demo(args: &[&str]) -> (Output, u32) {
    let child = agent()
        .arg("demo")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

/// Namespaces, mounts and files a demo run with this PID left behind.
fn demo_leftovers(pid: u32) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("sriov-demo-") && n.contains(&format!("-{pid}-")))
                .map(|n| format!("netns {n}"))
                .collect()
        })
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("sriov-demo-{pid}"));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    left.extend(
        mountinfo
            .lines()
            .filter(|l| l.contains(&format!("sriov-demo-{pid}")))
            .map(|l| format!("mount {l}")),
    );
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    left
}

/// The indented lines (four spaces) right after the first line containing `marker`.
fn section<'a>(out: &'a str, marker: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.contains(marker))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect()
}

#[test]
fn demo_runs_the_suite_end_to_end_and_cleans_up() {
    need_root!();
    let (o, pid) = demo(&[]);
    let out = stdout(&o);
    let err = stderr(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(!err.contains("WARN") && !err.contains("ERROR"), "nothing to warn about: {err}");

    // Provisioning.
    assert!(out.contains("refused: PF 0000:3b:00.0: cannot create 65 VFs"), "{out}");
    assert!(out.contains("<userspace>") && out.contains("vfio-pci"), "{out}");

    // Device plugin: both pools registered and listed with health and NUMA.
    for pool in ["intel.com/intel_sriov_netdevice", "intel.com/intel_sriov_dpdk"] {
        assert!(out.contains(&format!("registered {pool} after")), "{pool}: {out}");
    }
    let net = section(&out, "ListAndWatch intel.com/intel_sriov_netdevice (8 devices)");
    let net: Vec<Vec<&str>> = net.iter().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(net.len(), 8, "{out}");
    assert_eq!(net[0], ["0000:3b:02.0", "Healthy", "NUMA", "0"], "ens1f0 is on NUMA node 0");
    assert_eq!(net[7], ["0000:af:01.3", "Healthy", "NUMA", "1"], "ens2f0 is on NUMA node 1");
    let dpdk = section(&out, "ListAndWatch intel.com/intel_sriov_dpdk (2 devices)");
    assert_eq!(dpdk.len(), 2, "{out}");
    assert!(dpdk[0].contains("0000:3b:0a.0") && dpdk[0].contains("Healthy"), "{out}");

    // Allocate: the env var names the device; vfio VFs come with their device nodes.
    assert!(
        out.contains("env     PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE=0000:3b:02.0\n"),
        "{out}"
    );
    let vfio = section(&out, "Allocate intel.com/intel_sriov_dpdk [0000:3b:0a.0]");
    assert!(
        vfio.contains(&"    env     PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK=0000:3b:0a.0"),
        "{out}"
    );
    assert!(vfio.iter().any(|l| l.starts_with("    device  /dev/vfio/vfio (host ")), "{out}");
    assert!(vfio.iter().any(|l| l.starts_with("    device  /dev/vfio/32 (host ")), "{out}");

    // Health: ens1f0's VFs go Unhealthy with its carrier, ens2f0's stay Healthy; then all return.
    let down = section(&out, "carrier down: ListAndWatch");
    assert_eq!(
        down,
        [
            "    Healthy    0000:af:01.0 0000:af:01.1 0000:af:01.2 0000:af:01.3",
            "    Unhealthy  0000:3b:02.0 0000:3b:02.1 0000:3b:02.2 0000:3b:02.3",
        ],
        "{out}"
    );
    let up = section(&out, "carrier up: ListAndWatch");
    assert_eq!(up.len(), 1, "{out}");
    assert_eq!(up[0].split_whitespace().filter(|w| w.starts_with("0000:")).count(), 8, "{out}");
    assert!(up[0].trim_start().starts_with("Healthy"), "{out}");

    // CNI ADD into the pod, seen from both sides; DEL brings the VF home unchanged.
    let static_ipam = Path::new("/usr/lib/cni/static").exists();
    assert!(out.contains("CNI ADD: sriov moves VF 0000:3b:02.0 (ens1f0v0)"), "{out}");
    let pod_line = out.lines().find(|l| l.starts_with("  in the pod: net1")).expect("pod view");
    assert!(pod_line.contains("MAC 02:5e:00:00:00:01"), "{pod_line}");
    if static_ipam {
        assert!(out.contains("\"address\": \"192.0.2.10/24\""), "result JSON: {out}");
        assert!(pod_line.ends_with("addresses: 192.0.2.10/24"), "{pod_line}");
    } else {
        assert!(out.contains("no IPAM: /usr/lib/cni/static is not installed"), "{out}");
    }
    assert!(out.contains("inventory shows 0000:3b:02.0 netdev <other netns>"), "{out}");
    assert!(
        out.contains("in the node: ens1f0v0 MAC 02:5e:00:00:00:01 MTU 1500 (before ADD: ens1f0v0 MAC 02:5e:00:00:00:01 MTU 1500)"),
        "{out}"
    );
    assert!(out.contains("inventory shows 0000:3b:02.0 netdev ens1f0v0"), "{out}");
    // PF-side VF settings: the veth PF cannot apply them; nothing changes.
    assert!(out.contains("error 101: VF setting rejected"), "{out}");
    assert!(out.contains("nothing changed: ens1f0v0 still in the node"), "{out}");

    assert!(out.contains("namespaces removed"), "{out}");
    assert_eq!(demo_leftovers(pid), Vec::<String>::new());
}

#[test]
fn demo_failing_midway_still_cleans_up() {
    need_root!();
    let d = tempfile::tempdir().unwrap();
    // Fails after the device plugin and the kubelet are up: with no carrier on the only PF, the
    // netdev pool has nothing healthy to allocate.
    let no_carrier = d.path().join("no-carrier.yaml");
    std::fs::write(
        &no_carrier,
        "pfs:\n- model: x710\n  pciAddress: 0000:3b:00.0\n  netdev: ens1f0\n  carrier: false\n",
    )
    .unwrap();
    // Fails while creating VFs.
    let too_few = d.path().join("too-few.yaml");
    std::fs::write(
        &too_few,
        "pfs:\n- model: x710\n  pciAddress: 0000:3b:00.0\n  netdev: ens1f0\n  totalVfs: 3\n",
    )
    .unwrap();
    for (spec, why) in [
        (&no_carrier, "lists no healthy device in intel.com/intel_sriov_netdevice"),
        (&too_few, "cannot create 4 VFs, sriov_totalvfs is 3"),
    ] {
        let (o, pid) = demo(&["--spec", spec.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
        assert_eq!(demo_leftovers(pid), Vec::<String>::new(), "{why}");
    }
}
