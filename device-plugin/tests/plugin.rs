//! Black-box tests: the real `sriov-device-plugin` binary against simulated SR-IOV hosts, driven
//! through the kubelet emulator exactly as a kubelet would.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Dirs, H, Plugin, U, WAIT, addr, pf, static_host};
use pretty_assertions::assert_eq;
use sriov_sim::{NicModel, SimSpec};
use sriov_testkit::kubelet::{Kubelet, health_of, numa_of};

/// X710 `ens1f0` (NUMA 0, 4 VFs), E810 `ens2f0` (NUMA 1, 4 VFs), ConnectX-5 `ens3f0np0` (NUMA 1,
/// 2 VFs).
fn small_spec() -> SimSpec {
    SimSpec::empty()
        .pf(pf(NicModel::IntelX710, "0000:3b:00.0", "ens1f0", 0, 4))
        .pf(pf(NicModel::IntelE810, "0000:af:00.0", "ens2f0", 1, 4))
        .pf(pf(NicModel::MellanoxConnectX5, "0000:d8:00.0", "ens3f0np0", 1, 2))
}

const THREE_POOLS: &str = r#"{"resourceList": [
    {"resourceName": "x710", "selectors": {"devices": ["154c"]}},
    {"resourceName": "e810", "resourcePrefix": "example.org", "selectors": [{"devices": ["1889"], "drivers": ["iavf"]}]},
    {"resourceName": "cx5", "excludeTopology": true, "selectors": [{"vendors": ["15b3"], "isRdma": true}]}
]}"#;

fn ids(prefix: &str, n: u8) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}.{i}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn registers_every_pool_and_lists_devices_with_topology() {
    let host = static_host(small_spec(), |_| {});
    let dirs = Dirs::new(THREE_POOLS);
    let kubelet = Kubelet::start(&dirs.kubelet).await.unwrap();
    let _plugin = Plugin::start(&dirs, &host.sysfs, &host.dev, &[], None);

    let regs = kubelet.wait_registrations(3, WAIT).await.unwrap();
    let names: Vec<(&str, &str)> =
        regs.iter().map(|r| (r.resource_name.as_str(), r.endpoint.as_str())).collect();
    assert_eq!(
        names,
        [
            ("example.org/e810", "example.org_e810.sock"),
            ("intel.com/cx5", "intel.com_cx5.sock"),
            ("intel.com/x710", "intel.com_x710.sock"),
        ]
    );
    assert!(regs.iter().all(|r| r.version == "v1beta1"));
    let opts = regs[0].options.unwrap();
    assert!(opts.get_preferred_allocation_available && !opts.pre_start_required);

    let mut x710 = kubelet.connect(&regs[2]).await.unwrap();
    assert_eq!(x710.options().await.unwrap(), opts);
    let devs = x710.list_and_watch().await.unwrap().next(WAIT).await.unwrap();
    let want: Vec<(String, String)> =
        ids("0000:3b:02", 4).into_iter().map(|i| (i, H.to_string())).collect();
    assert_eq!(health_of(&devs), want);
    assert!(devs.iter().all(|d| numa_of(d) == [0]), "{devs:?}");

    let mut e810 = kubelet.connect(&regs[0]).await.unwrap();
    let devs = e810.list_and_watch().await.unwrap().next(WAIT).await.unwrap();
    assert_eq!(health_of(&devs).len(), 4);
    assert!(devs.iter().all(|d| numa_of(d) == [1]));

    let mut cx5 = kubelet.connect(&regs[1]).await.unwrap();
    let devs = cx5.list_and_watch().await.unwrap().next(WAIT).await.unwrap();
    assert_eq!(devs.len(), 2, "{devs:?}");
    assert!(devs.iter().all(|d| d.topology.is_none()), "excludeTopology drops NUMA: {devs:?}");
    cx5.pre_start(&[&devs[0].id]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn allocate_netdev_vfio_and_rdma() {
    // VF 2 and 3 of the X710 on vfio-pci; VF 3's IOMMU group is a no-IOMMU one.
    let host = static_host(small_spec(), |sim| {
        for vf in ["0000:3b:02.2", "0000:3b:02.3"] {
            let a = addr(vf);
            sim.unbind("iavf", a).unwrap();
            sim.set_driver_override(a, Some("vfio-pci")).unwrap();
            sim.drivers_probe(a).unwrap();
        }
    });
    // The RDMA char devices of the ConnectX-5 VFs, as the kernel lays them out (the simulator
    // models only `infiniband/`), and the device nodes under the dev root.
    let mut rdma_devs = Vec::new();
    for (i, vf) in ["0000:d8:00.2", "0000:d8:00.3"].iter().enumerate() {
        let dir = host.sysfs.join("bus/pci/devices").join(vf);
        let ib =
            std::fs::read_dir(dir.join("infiniband")).unwrap().next().unwrap().unwrap().file_name();
        rdma_devs.push(ib.to_string_lossy().into_owned());
        std::fs::create_dir_all(dir.join(format!("infiniband_verbs/uverbs{i}"))).unwrap();
        std::fs::create_dir_all(dir.join(format!("infiniband_mad/umad{i}"))).unwrap();
        std::fs::create_dir_all(dir.join(format!("infiniband_mad/issm{i}"))).unwrap();
    }
    std::fs::create_dir_all(host.dev.join("infiniband")).unwrap();
    std::fs::write(host.dev.join("infiniband/rdma_cm"), "").unwrap();
    let vfio3 =
        std::fs::read_link(host.sysfs.join("bus/pci/devices/0000:3b:02.3/iommu_group")).unwrap();
    let group3 = vfio3.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(
        host.sysfs.join("bus/pci/devices/0000:3b:02.3/iommu_group/name"),
        "vfio-noiommu",
    )
    .unwrap();
    let group2 = std::fs::read_link(host.sysfs.join("bus/pci/devices/0000:3b:02.2/iommu_group"))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let dirs = Dirs::new(
        r#"{"resourceList": [
        {"resourceName": "intel_sriov_netdevice", "selectors": {"vendors": ["8086"], "drivers": ["iavf"]},
         "additionalInfo": {"*": {"team": "blue"}}},
        {"resourceName": "intel_sriov_dpdk", "selectors": {"drivers": ["vfio-pci"]}},
        {"resourceName": "mlnx_rdma", "selectors": {"vendors": ["15b3"], "isRdma": true}}
    ]}"#,
    );
    let kubelet = Kubelet::start(&dirs.kubelet).await.unwrap();
    let _plugin = Plugin::start(&dirs, &host.sysfs, &host.dev, &[], None);
    let regs = kubelet.wait_registrations(3, WAIT).await.unwrap();
    let dev = host.dev.display().to_string();

    // Kernel netdev VFs: env only, no device nodes.
    let reg = |n: &str| regs.iter().find(|r| r.resource_name == format!("intel.com/{n}")).unwrap();
    let mut net = kubelet.connect(reg("intel_sriov_netdevice")).await.unwrap();
    let r = net
        .allocate(&["0000:3b:02.1", "0000:af:01.0"])
        .await
        .unwrap_or_else(|e| panic!("{e}: {e:?}"));
    assert_eq!(r.envs["PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE"], "0000:3b:02.1,0000:af:01.0");
    assert_eq!(
        r.envs["PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE_INFO"],
        r#"{"0000:3b:02.1":{"extra":{"team":"blue"},"generic":{"deviceID":"0000:3b:02.1"}},"0000:af:01.0":{"extra":{"team":"blue"},"generic":{"deviceID":"0000:af:01.0"}}}"#
    );
    assert!(r.devices.is_empty() && r.mounts.is_empty() && r.cdi_devices.is_empty());
    let info = std::fs::read_to_string(
        dirs.devinfo.join("intel.com-intel_sriov_netdevice-0000:3b:02.1-device.json"),
    )
    .unwrap();
    assert_eq!(
        info,
        r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1","pf-pci-address":"0000:3b:00.0"}}"#
    );

    // vfio-pci VFs: the container node and each group, no-IOMMU form on the host for VF 3.
    let mut dpdk = kubelet.connect(reg("intel_sriov_dpdk")).await.unwrap();
    let r = dpdk.allocate(&["0000:3b:02.2", "0000:3b:02.3"]).await.unwrap();
    let specs: Vec<(String, String, String)> = r
        .devices
        .iter()
        .map(|d| (d.host_path.clone(), d.container_path.clone(), d.permissions.clone()))
        .collect();
    let rw = |h: String, c: String| (h, c, "rw".to_string());
    assert_eq!(
        specs,
        [
            rw(format!("{dev}/vfio/vfio"), "/dev/vfio/vfio".into()),
            rw(format!("{dev}/vfio/{group2}"), format!("/dev/vfio/{group2}")),
            rw(format!("{dev}/vfio/noiommu-{group3}"), format!("/dev/vfio/{group3}")),
        ]
    );
    let info: serde_json::Value =
        serde_json::from_str(&r.envs["PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK_INFO"]).unwrap();
    assert_eq!(
        info["0000:3b:02.3"],
        serde_json::json!({"generic": {"deviceID": "0000:3b:02.3"},
                           "vfio": {"mount": "/dev/vfio/vfio", "dev-mount": format!("/dev/vfio/{group3}")}})
    );

    // RDMA VFs: the char devices.
    let mut rdma = kubelet.connect(reg("mlnx_rdma")).await.unwrap();
    let r = rdma.allocate(&["0000:d8:00.3"]).await.unwrap();
    let specs: Vec<(&str, &str)> =
        r.devices.iter().map(|d| (d.host_path.as_str(), d.container_path.as_str())).collect();
    let h = |n: &str| format!("{dev}/infiniband/{n}");
    assert_eq!(
        specs,
        [
            (h("uverbs1").as_str(), "/dev/infiniband/uverbs1"),
            (h("umad1").as_str(), "/dev/infiniband/umad1"),
            (h("issm1").as_str(), "/dev/infiniband/issm1"),
            (h("rdma_cm").as_str(), "/dev/infiniband/rdma_cm"),
        ]
    );
    let info: serde_json::Value =
        serde_json::from_str(&r.envs["PCIDEVICE_INTEL_COM_MLNX_RDMA_INFO"]).unwrap();
    assert_eq!(info["0000:d8:00.3"]["rdma"]["rdma_dev"], rdma_devs[1].as_str());
    assert_eq!(info["0000:d8:00.3"]["rdma"]["uverbs"], "/dev/infiniband/uverbs1");
    let di: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dirs.devinfo.join("intel.com-mlnx_rdma-0000:d8:00.3-device.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(di["pci"]["rdma-device"], rdma_devs[1].as_str());

    // Bad requests: the status code and the ID.
    let e = net.allocate(&["0000:3b:02.2"]).await.unwrap_err();
    let st = e.status().unwrap();
    assert_eq!(st.code(), tonic::Code::InvalidArgument);
    assert!(st.message().contains("0000:3b:02.2"), "{st:?}");
    let e = net.allocate(&["eth0"]).await.unwrap_err();
    assert_eq!(e.status().unwrap().code(), tonic::Code::InvalidArgument);
    assert!(e.status().unwrap().message().contains("\"eth0\""));
    let e = net.allocate(&[]).await.unwrap_err();
    assert_eq!(e.status().unwrap().code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn cdi_specs_replace_device_specs_and_sigterm_removes_our_files() {
    let host = static_host(small_spec(), |sim| {
        let a = addr("0000:3b:02.0");
        sim.unbind("iavf", a).unwrap();
        sim.set_driver_override(a, Some("vfio-pci")).unwrap();
        sim.drivers_probe(a).unwrap();
    });
    let dirs = Dirs::new(
        r#"{"resourceList": [{"resourceName": "dpdk", "selectors": {"drivers": ["vfio-pci"]}},
                             {"resourceName": "net", "selectors": {"drivers": ["iavf"]}}]}"#,
    );
    std::fs::create_dir_all(&dirs.cdi).unwrap();
    std::fs::write(dirs.cdi.join("sriov-dp-stale.json"), "{}").unwrap();
    std::fs::write(dirs.cdi.join("other-vendor.json"), "{}").unwrap();
    let kubelet = Kubelet::start(&dirs.kubelet).await.unwrap();
    let mut plugin = Plugin::start(&dirs, &host.sysfs, &host.dev, &["--use-cdi"], None);
    let regs = kubelet.wait_registrations(2, WAIT).await.unwrap();
    let mut dpdk = kubelet.connect(&regs[0]).await.unwrap();
    let r = dpdk.allocate(&["0000:3b:02.0"]).await.unwrap();
    assert!(r.devices.is_empty(), "{r:?}");
    assert_eq!(
        r.cdi_devices.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["intel.com/net-pci=0000:3b:02.0"]
    );
    assert!(r.envs.contains_key("PCIDEVICE_INTEL_COM_DPDK"));

    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dirs.cdi.join("sriov-dp-intel.com-dpdk.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(spec["kind"], "intel.com/net-pci");
    assert_eq!(spec["devices"][0]["name"], "0000:3b:02.0");
    assert_eq!(spec["devices"][0]["containerEdits"]["deviceNodes"][0]["path"], "/dev/vfio/vfio");
    assert!(
        !dirs.cdi.join("sriov-dp-stale.json").exists(),
        "stale specs of ours are removed at start"
    );
    assert!(dirs.cdi.join("other-vendor.json").exists());
    let mut net = kubelet.connect(&regs[1]).await.unwrap();
    net.allocate(&["0000:3b:02.1"]).await.unwrap();
    assert!(dirs.devinfo.join("intel.com-net-0000:3b:02.1-device.json").exists());

    let status = plugin.terminate();
    assert!(status.success(), "{status:?}\n{}", plugin.log());
    let left: Vec<String> = std::fs::read_dir(&dirs.kubelet)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["kubelet.sock"], "our sockets are gone");
    assert_eq!(std::fs::read_dir(&dirs.devinfo).unwrap().count(), 0, "device-info files are gone");
    let cdi: Vec<String> = std::fs::read_dir(&dirs.cdi)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cdi, ["other-vendor.json"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn preferred_allocation_keeps_numa_and_packs_pfs() {
    // Two X710 ports on NUMA 0 (3 and 5 VFs), one E810 on NUMA 1 (4 VFs).
    let spec = SimSpec::empty()
        .pf(pf(NicModel::IntelX710, "0000:3b:00.0", "ens1f0", 0, 3))
        .pf(pf(NicModel::IntelX710, "0000:3b:00.1", "ens1f1", 0, 5))
        .pf(pf(NicModel::IntelE810, "0000:af:00.0", "ens2f0", 1, 4));
    let host = static_host(spec, |_| {});
    let dirs = Dirs::new(r#"{"resourceList": [{"resourceName": "net"}]}"#);
    let kubelet = Kubelet::start(&dirs.kubelet).await.unwrap();
    let _plugin = Plugin::start(&dirs, &host.sysfs, &host.dev, &[], None);
    let reg = kubelet.wait_registration("intel.com/net", WAIT).await.unwrap();
    let mut c = kubelet.connect(&reg).await.unwrap();
    let all: Vec<String> = c
        .list_and_watch()
        .await
        .unwrap()
        .next(WAIT)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(all.len(), 12);

    // 4 fit on NUMA 1 exactly (the smaller node that fits).
    let got = c.preferred(&all, &[], 4).await.unwrap();
    assert_eq!(got, ["0000:af:01.0", "0000:af:01.1", "0000:af:01.2", "0000:af:01.3"]);
    // 5 only fit on NUMA 0: the PF with fewer free VFs (ens1f0, 3) first.
    let got = c.preferred(&all, &[], 5).await.unwrap();
    assert_eq!(
        got,
        ["0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:0a.0", "0000:3b:0a.1"]
    );
    // A must-include device pins the node.
    let got = c.preferred(&all, &["0000:3b:0a.3".into()], 2).await.unwrap();
    assert_eq!(got, ["0000:3b:0a.3", "0000:3b:02.0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_restart_re_registers_every_pool() {
    let host = static_host(small_spec(), |_| {});
    let dirs = Dirs::new(THREE_POOLS);
    let mut kubelet = Kubelet::start(&dirs.kubelet).await.unwrap();
    // No safety-net rescans: only the directory watch can bring the pools back.
    let _plugin = Plugin::start(&dirs, &host.sysfs, &host.dev, &["--rescan-interval", "0"], None);
    let first = kubelet.wait_registrations(3, WAIT).await.unwrap();
    let mut stream = kubelet.connect(&first[2]).await.unwrap().list_and_watch().await.unwrap();
    stream.next(WAIT).await.unwrap();

    for round in 1..=2 {
        let t = Instant::now();
        kubelet.restart().await.unwrap();
        let again = kubelet.wait_registrations(3, WAIT).await.unwrap();
        let latest = again.iter().map(|r| r.at).max().unwrap();
        eprintln!(
            "restart {round}: all 3 pools re-registered after {:?}",
            latest.duration_since(t)
        );
        assert_eq!(again.iter().map(|r| r.epoch).collect::<Vec<_>>(), [round, round, round]);
        assert!(stream.ends_within(WAIT).await, "the old kubelet's stream ends");
        // The new kubelet can talk to every re-created socket.
        for r in &again {
            assert!(dirs.kubelet.join(&r.endpoint).exists());
            let mut c = kubelet.connect(r).await.unwrap();
            assert!(!c.list_and_watch().await.unwrap().next(WAIT).await.unwrap().is_empty());
        }
        stream = kubelet.connect(&again[2]).await.unwrap().list_and_watch().await.unwrap();
        stream.next(WAIT).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reload_adds_changes_and_removes_pools() {
    let host = static_host(small_spec(), |_| {});
    let dirs = Dirs::new(
        r#"{"resourceList": [
        {"resourceName": "keep", "selectors": {"pfNames": ["ens1f0#0-1"]}},
        {"resourceName": "change", "selectors": {"pfNames": ["ens2f0"]}},
        {"resourceName": "drop", "selectors": {"vendors": ["15b3"]}}
    ]}"#,
    );
    let kubelet = Kubelet::start(&dirs.kubelet).await.unwrap();
    let plugin = Plugin::start(&dirs, &host.sysfs, &host.dev, &["--rescan-interval", "0"], None);
    let regs = kubelet.wait_registrations(3, WAIT).await.unwrap();
    let by = |n: &str| {
        regs.iter().find(|r| r.resource_name == format!("intel.com/{n}")).unwrap().clone()
    };
    let mut keep = kubelet.connect(&by("keep")).await.unwrap().list_and_watch().await.unwrap();
    let mut change = kubelet.connect(&by("change")).await.unwrap().list_and_watch().await.unwrap();
    let mut drop = kubelet.connect(&by("drop")).await.unwrap().list_and_watch().await.unwrap();
    assert_eq!(keep.next(WAIT).await.unwrap().len(), 2);
    assert_eq!(change.next(WAIT).await.unwrap().len(), 4);
    assert_eq!(drop.next(WAIT).await.unwrap().len(), 2);

    // Edit: "change" narrows to two VFs, "drop" goes, "added" arrives.
    dirs.write_config(
        r#"{"resourceList": [
        {"resourceName": "keep", "selectors": {"pfNames": ["ens1f0#0-1"]}},
        {"resourceName": "change", "selectors": {"pfNames": ["ens2f0#2-3"]}},
        {"resourceName": "added", "selectors": {"pfNames": ["ens1f0#2-3"]}}
    ]}"#,
    );
    let added = kubelet.wait_registration("intel.com/added", WAIT).await.unwrap();
    let got = kubelet
        .connect(&added)
        .await
        .unwrap()
        .list_and_watch()
        .await
        .unwrap()
        .next(WAIT)
        .await
        .unwrap();
    assert_eq!(
        health_of(&got),
        [("0000:3b:02.2".to_string(), H.to_string()), ("0000:3b:02.3".to_string(), H.to_string())]
    );
    // The changed pool's stream lives on and reports VFs 0-1 leaving (Unhealthy during the grace).
    let got = change.wait_for(WAIT, |d| d.iter().any(|x| x.health == U)).await.unwrap();
    assert_eq!(
        health_of(&got),
        [
            ("0000:af:01.0".to_string(), U.to_string()),
            ("0000:af:01.1".to_string(), U.to_string()),
            ("0000:af:01.2".to_string(), H.to_string()),
            ("0000:af:01.3".to_string(), H.to_string()),
        ]
    );
    // The removed pool advertises zero devices, then its stream and socket go away.
    let got = drop.wait_for(WAIT, <[_]>::is_empty).await.unwrap();
    assert!(got.is_empty());
    assert!(drop.ends_within(WAIT).await);
    assert!(!dirs.kubelet.join("intel.com_drop.sock").exists());
    // Unchanged pools keep their socket and registration.
    let count = |n: &str| {
        kubelet
            .registrations()
            .iter()
            .filter(|r| r.resource_name == format!("intel.com/{n}"))
            .count()
    };
    assert_eq!((count("keep"), count("change")), (1, 1));

    // A broken config is refused and the last good one stays (SIGHUP path).
    std::fs::write(
        &dirs.config,
        r#"{"resourceList": [{"resourceName": "bad", "selectors": {"pfNames": ["x#9-1"]}}]}"#,
    )
    .unwrap();
    plugin.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while !plugin.log().contains("keeping the last good one") {
        assert!(Instant::now() < deadline, "no rejection logged:\n{}", plugin.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(plugin.log().contains("\"x#9-1\""), "the error names the value");
    assert_eq!(count("keep"), 1);
    let mut k = kubelet.connect(&by("keep")).await.unwrap();
    assert_eq!(k.list_and_watch().await.unwrap().next(WAIT).await.unwrap().len(), 2);
    assert!(kubelet.registrations().iter().all(|r| r.resource_name != "intel.com/bad"));
}

#[test]
fn bad_configs_fail_at_start_naming_the_problem() {
    let host = static_host(small_spec(), |_| {});
    let cases = [
        (
            r#"{"resourceList": [{"resourceName": "ok"}, {"resourceName": "net", "selectors": [{"drivers": ["iavf"]}, {"rootDevices": ["0000:3b:00.0#1-x"]}]}]}"#,
            &["pool \"net\"", "selector 1", "rootDevices", "\"0000:3b:00.0#1-x\""][..],
        ),
        (
            r#"{"resourceList": [{"resourceName": "bad name"}]}"#,
            &["resourceName", "\"bad name\""][..],
        ),
        (
            r#"{"resourceList": [{"resourceName": "a", "deviceType": "gpu"}]}"#,
            &["deviceType", "\"gpu\""][..],
        ),
        ("{\"resourceList\": [", &["not valid JSON"][..]),
    ];
    for (config, needles) in cases {
        let dirs = Dirs::new(config);
        let mut p = Plugin::start(&dirs, &host.sysfs, &host.dev, &[], None);
        let status = p.wait_exit(WAIT).expect("the plugin exits");
        assert_eq!(status.code(), Some(1), "{}", p.log());
        let log = p.log();
        for n in needles {
            assert!(log.contains(n), "{n:?} missing from:\n{log}");
        }
        assert!(log.contains(&dirs.config.display().to_string()), "names the file:\n{log}");
    }
    // A missing file and a wrong sysfs root.
    let dirs = Dirs::new("{}");
    std::fs::remove_file(&dirs.config).unwrap();
    let mut p = Plugin::start(&dirs, &host.sysfs, &host.dev, &[], None);
    assert_eq!(p.wait_exit(WAIT).unwrap().code(), Some(1));
    assert!(p.log().contains("read config file"), "{}", p.log());
    let dirs = Dirs::new("{}");
    let mut p = Plugin::start(&dirs, &dirs.tmp.path().join("nosys"), &host.dev, &[], None);
    assert_eq!(p.wait_exit(WAIT).unwrap().code(), Some(1));
    assert!(p.log().contains("nosys/bus/pci/devices does not exist"), "{}", p.log());
}
