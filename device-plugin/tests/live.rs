//! Black-box tests against a live simulated host (FUSE, root only): VFs created, removed and
//! rebound at runtime, and PF carrier loss on a veth-backed host in its own network namespace.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{Dirs, H, Plugin, TwoPools, U, WAIT, addr, hv, live_host, pf, two_pools, write};
use pretty_assertions::assert_eq;
use sriov_netlink::OwnedNetns;
use sriov_sim::{NicModel, Sim, SimSpec};
use sriov_testkit::kubelet::{Kubelet, health_of};

/// VFs appear, vanish and change driver while the plugin runs. This simulated host is not set up to
/// broadcast uevents, so it exercises the safety-net rescan (200 ms here); `tests/uevents.rs` is
/// the same story driven by uevents alone.
#[tokio::test(flavor = "multi_thread")]
async fn vfs_added_removed_and_rebound_at_runtime() {
    need_root!();
    let spec = SimSpec::empty().pf(pf(NicModel::IntelX710, "0000:3b:00.0", "ens1f0", 0, 2));
    let host = live_host(Sim::new(spec).unwrap());
    let TwoPools { mut net, mut dpdk, plugin: _plugin, kubelet: _kubelet, dirs: _dirs } =
        two_pools(&host, &["--rescan-interval", "200ms", "--removal-grace", "1s"], None).await;

    // 2 -> 4 VFs, the way the kernel requires it (through 0).
    let pf_dir = host.sysfs().join("bus/pci/devices/0000:3b:00.0");
    write(&pf_dir.join("sriov_numvfs"), "0");
    write(&pf_dir.join("sriov_numvfs"), "4");
    let got =
        net.wait_for(WAIT, |d| d.len() == 4 && d.iter().all(|x| x.health == H)).await.unwrap();
    assert_eq!(health_of(&got).len(), 4);

    // VF 1 rebound to vfio-pci: it moves to the dpdk pool at once.
    let vf1 = host.sysfs().join("bus/pci/devices/0000:3b:02.1");
    write(&vf1.join("driver_override"), "vfio-pci");
    write(&vf1.join("driver/unbind"), "0000:3b:02.1");
    write(&host.sysfs().join("bus/pci/drivers_probe"), "0000:3b:02.1");
    let got = dpdk.wait_for(WAIT, |d| !d.is_empty()).await.unwrap();
    assert_eq!(health_of(&got), hv(&[("0000:3b:02.1", H)]));
    let got = net.wait_for(WAIT, |d| d.len() == 3).await.unwrap();
    assert!(got.iter().all(|d| d.id != "0000:3b:02.1"));

    // All VFs removed: Unhealthy for the grace period, then gone.
    write(&pf_dir.join("sriov_numvfs"), "0");
    let got =
        net.wait_for(WAIT, |d| !d.is_empty() && d.iter().all(|x| x.health == U)).await.unwrap();
    assert_eq!(got.len(), 3);
    let t = Instant::now();
    net.wait_for(WAIT, <[_]>::is_empty).await.unwrap();
    eprintln!("vanished VFs dropped after {:?} (grace 1 s)", t.elapsed());
    dpdk.wait_for(WAIT, <[_]>::is_empty).await.unwrap();
}

/// Carrier loss on a veth-backed PF, seen through netlink link events: no rescans are enabled,
/// so only the event can flip health.
#[tokio::test(flavor = "multi_thread")]
async fn pf_carrier_loss_flips_health_from_link_events() {
    need_root!();
    let node = OwnedNetns::create_unique("dp-carrier").unwrap();
    let spec = SimSpec::empty().pf(pf(NicModel::IntelX710, "0000:3b:00.0", "ens1f0", 0, 2)).pf(pf(
        NicModel::IntelX710,
        "0000:3b:00.1",
        "ens1f1",
        0,
        1,
    ));
    let host = live_host(Sim::new(spec).unwrap().with_netns(node.path()).unwrap());
    let dirs = Dirs::new(r#"{"resourceList": [{"resourceName": "net"}]}"#);
    let kubelet = Kubelet::start(&dirs.kubelet).await.unwrap();
    let _plugin = Plugin::start(
        &dirs,
        &host.sysfs(),
        &host.dev(),
        &["--rescan-interval", "0"],
        Some(node.path()),
    );
    let reg = kubelet.wait_registration("intel.com/net", WAIT).await.unwrap();
    let mut s = kubelet.connect(&reg).await.unwrap().list_and_watch().await.unwrap();
    let all_healthy = hv(&[("0000:3b:02.0", H), ("0000:3b:02.1", H), ("0000:3b:0a.0", H)]);
    let got = s.wait_for(WAIT, |d| health_of(d) == all_healthy).await.unwrap();
    assert_eq!(got.len(), 3);

    for round in 0..3 {
        let t = Instant::now();
        host.mounted.set_pf_carrier(addr("0000:3b:00.0"), false).unwrap();
        let want = hv(&[("0000:3b:02.0", U), ("0000:3b:02.1", U), ("0000:3b:0a.0", H)]);
        s.wait_for(WAIT, |d| health_of(d) == want).await.unwrap();
        eprintln!("round {round}: carrier loss -> Unhealthy in {:?}", t.elapsed());
        let t = Instant::now();
        host.mounted.set_pf_carrier(addr("0000:3b:00.0"), true).unwrap();
        s.wait_for(WAIT, |d| health_of(d) == all_healthy).await.unwrap();
        eprintln!("round {round}: carrier back -> Healthy in {:?}", t.elapsed());
    }
}
