//! Black-box: the plugin follows VFs created, removed and rebound at runtime through kernel
//! uevents alone. The simulated host broadcasts kernel-format uevents inside the test's own
//! network namespace (never the root netns), the plugin runs in that namespace as on a real
//! node, and its safety-net rescan and link events are off, so nothing but a uevent can
//! make ListAndWatch change. Root only (FUSE, network namespaces).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{H, TwoPools, U, WAIT, hv, live_host, pf, two_pools, write};
use pretty_assertions::assert_eq;
use sriov_netlink::OwnedNetns;
use sriov_sim::{NicModel, Sim, SimSpec, UeventTarget};
use sriov_testkit::kubelet::health_of;

#[tokio::test(flavor = "multi_thread")]
async fn runtime_vf_changes_reach_list_and_watch_through_uevents_alone() {
    need_root!();
    let node = OwnedNetns::create_unique("dp-uevents").unwrap();
    let spec = SimSpec::empty().pf(pf(NicModel::IntelX710, "0000:3b:00.0", "ens1f0", 0, 2));
    let sim =
        Sim::new(spec).unwrap().with_uevents(UeventTarget::Netns(node.path().to_owned())).unwrap();
    let host = live_host(sim);
    // No periodic rescan, no link events: only uevents can tell the plugin about changes.
    let extra = ["--rescan-interval", "0", "--no-link-events", "--removal-grace", "1s"];
    let TwoPools { mut net, mut dpdk, plugin, kubelet: _kubelet, dirs: _dirs } =
        two_pools(&host, &extra, Some(node.path())).await;

    // VFs removed: Unhealthy for the grace period, then gone.
    let pf_dir = host.sysfs().join("bus/pci/devices/0000:3b:00.0");
    let t = Instant::now();
    write(&pf_dir.join("sriov_numvfs"), "0");
    let got =
        net.wait_for(WAIT, |d| !d.is_empty() && d.iter().all(|x| x.health == U)).await.unwrap();
    eprintln!("2 -> 0 VFs: Unhealthy in ListAndWatch after {:?}", t.elapsed());
    assert_eq!(got.len(), 2);
    net.wait_for(WAIT, <[_]>::is_empty).await.unwrap();

    // VFs added.
    let t = Instant::now();
    write(&pf_dir.join("sriov_numvfs"), "4");
    let got =
        net.wait_for(WAIT, |d| d.len() == 4 && d.iter().all(|x| x.health == H)).await.unwrap();
    eprintln!("0 -> 4 VFs: listed in ListAndWatch after {:?}", t.elapsed());
    assert_eq!(
        health_of(&got),
        hv(&[("0000:3b:02.0", H), ("0000:3b:02.1", H), ("0000:3b:02.2", H), ("0000:3b:02.3", H)])
    );

    // VF 3 switched to vfio-pci: it moves to the dpdk pool.
    let vf3 = host.sysfs().join("bus/pci/devices/0000:3b:02.3");
    let t = Instant::now();
    write(&vf3.join("driver_override"), "vfio-pci");
    write(&vf3.join("driver/unbind"), "0000:3b:02.3");
    write(&host.sysfs().join("bus/pci/drivers_probe"), "0000:3b:02.3");
    let got = dpdk.wait_for(WAIT, |d| !d.is_empty()).await.unwrap();
    eprintln!("driver switch: dpdk pool updated after {:?}", t.elapsed());
    assert_eq!(health_of(&got), hv(&[("0000:3b:02.3", H)]));
    let got = net.wait_for(WAIT, |d| d.len() == 3).await.unwrap();
    assert!(got.iter().all(|d| d.id != "0000:3b:02.3"));

    // The plugin saw the simulated kernel's uevents (its debug log names them).
    let log = plugin.log();
    assert!(
        log.lines().any(|l| l.contains("uevent") && l.contains("0000:3b:02.3")),
        "no uevent for 0000:3b:02.3 in the plugin log"
    );
}
