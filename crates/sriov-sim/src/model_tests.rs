//! Unit tests of the model: layout and every kernel reaction, without root.

use std::collections::BTreeSet;

use nix::errno::Errno;
use pretty_assertions::assert_eq;

use super::*;
use crate::spec::PfSpec;

fn addr(s: &str) -> PciAddr {
    s.parse().unwrap()
}

const X0: &str = "0000:3b:00.0";
const X0_DIR: &str = "sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0";

fn host() -> Sim {
    Sim::new(SimSpec::default_host()).unwrap()
}

fn dev(a: &str, attr: &str) -> String {
    format!("sys/bus/pci/devices/{a}/{attr}")
}

fn read(sim: &mut Sim, path: &str) -> String {
    sim.read_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn pf_attributes_have_kernel_formats() {
    let mut sim = host();
    assert_eq!(read(&mut sim, &dev(X0, "vendor")), "0x8086\n");
    assert_eq!(read(&mut sim, &dev(X0, "device")), "0x1572\n");
    assert_eq!(read(&mut sim, &dev(X0, "subsystem_vendor")), "0x8086\n");
    assert_eq!(read(&mut sim, &dev(X0, "subsystem_device")), "0x0007\n");
    assert_eq!(read(&mut sim, &dev(X0, "class")), "0x020000\n");
    assert_eq!(read(&mut sim, &dev(X0, "numa_node")), "0\n");
    assert_eq!(read(&mut sim, &dev(X0, "local_cpulist")), "0-15,32-47\n");
    assert_eq!(read(&mut sim, &dev(X0, "driver_override")), "(null)\n");
    assert_eq!(read(&mut sim, &dev(X0, "enable")), "1\n");
    assert_eq!(read(&mut sim, &dev(X0, "sriov_totalvfs")), "64\n");
    assert_eq!(read(&mut sim, &dev(X0, "sriov_numvfs")), "0\n");
    assert_eq!(read(&mut sim, &dev(X0, "sriov_offset")), "16\n");
    assert_eq!(read(&mut sim, &dev(X0, "sriov_stride")), "1\n");
    assert_eq!(read(&mut sim, &dev(X0, "sriov_vf_device")), "154c\n");
    assert_eq!(read(&mut sim, &dev(X0, "sriov_drivers_autoprobe")), "1\n");
    assert_eq!(read(&mut sim, &dev("0000:3b:00.1", "sriov_offset")), "79\n");
    assert_eq!(
        read(&mut sim, &dev(X0, "modalias")),
        "pci:v00008086d00001572sv00008086sd00000007bc02sc00i00\n"
    );
    assert_eq!(
        read(&mut sim, &dev(X0, "uevent")),
        "DRIVER=i40e\nPCI_CLASS=20000\nPCI_ID=8086:1572\nPCI_SUBSYS_ID=8086:0007\n\
         PCI_SLOT_NAME=0000:3b:00.0\nMODALIAS=pci:v00008086d00001572sv00008086sd00000007bc02sc00i00\n"
    );
    // ConnectX-5 on NUMA node 1, E810 with 256 VFs.
    assert_eq!(read(&mut sim, &dev("0000:d8:00.0", "vendor")), "0x15b3\n");
    assert_eq!(read(&mut sim, &dev("0000:d8:00.0", "local_cpulist")), "16-31,48-63\n");
    assert_eq!(read(&mut sim, &dev("0000:af:00.0", "sriov_totalvfs")), "256\n");
    assert_eq!(read(&mut sim, &dev("0000:af:00.0", "sriov_vf_device")), "1889\n");
}

#[test]
fn links_use_kernel_relative_targets_and_resolve() {
    let mut sim = host();
    assert_eq!(
        sim.read_link(&format!("sys/bus/pci/devices/{X0}")).unwrap(),
        "../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
    );
    assert_eq!(
        sim.read_link(&format!("{X0_DIR}/driver")).unwrap(),
        "../../../../bus/pci/drivers/i40e"
    );
    assert_eq!(sim.read_link(&format!("{X0_DIR}/subsystem")).unwrap(), "../../../../bus/pci");
    let group = sim.iommu_group_of(addr(X0)).unwrap();
    assert_eq!(
        sim.read_link(&format!("{X0_DIR}/iommu_group")).unwrap(),
        format!("../../../../kernel/iommu_groups/{group}")
    );
    assert_eq!(
        sim.read_link(&format!("sys/kernel/iommu_groups/{group}/devices/{X0}")).unwrap(),
        "../../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
    );
    assert_eq!(
        sim.read_link("sys/class/net/ens1f0").unwrap(),
        "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/ens1f0"
    );
    assert_eq!(
        sim.read_link(&format!("{X0_DIR}/net/ens1f0/device")).unwrap(),
        "../../../0000:3b:00.0"
    );
    assert_eq!(
        sim.read_link(&format!("sys/bus/pci/drivers/i40e/{X0}")).unwrap(),
        "../../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
    );
    // Resolution through the links lands on the same nodes.
    assert_eq!(
        read(
            &mut sim,
            &dev(X0, "driver/uevent").replace("/uevent", "/../i40e/../../drivers_autoprobe")
        ),
        "1\n"
    );
    assert_eq!(read(&mut sim, &dev(X0, "iommu_group/type")), "DMA\n");
    assert_eq!(read(&mut sim, "sys/class/net/ens1f0/device/vendor"), "0x8086\n");
    assert_eq!(
        read(&mut sim, &format!("sys/kernel/iommu_groups/{group}/devices/{X0}/device")),
        "0x1572\n"
    );
    assert!(sim.exists("sys/bus/pci/drivers/vfio-pci/bind"));
    assert!(sim.exists("sys/bus/pci/drivers_probe"));
    assert!(sim.exists("dev/vfio/vfio"));
    // Root ports are PCI devices too, bound to pcieport.
    assert_eq!(read(&mut sim, &dev("0000:3a:00.0", "class")), "0x060400\n");
    assert_eq!(
        sim.read_link(&dev("0000:3a:00.0", "driver")).unwrap(),
        "../../../bus/pci/drivers/pcieport"
    );
}

#[test]
fn every_link_in_the_tree_resolves() {
    let mut sim = host();
    sim.set_num_vfs(addr(X0), 8).unwrap();
    sim.set_num_vfs(addr("0000:d8:00.0"), 4).unwrap();
    sim.sync();
    let mut links = Vec::new();
    let mut stack = vec![crate::tree::ROOT_INO];
    while let Some(ino) = stack.pop() {
        let node = sim.tree().get(ino).unwrap();
        for &c in node.children.values() {
            match &sim.tree().get(c).unwrap().kind {
                NodeKind::Dir => stack.push(c),
                NodeKind::Link(_) => links.push(sim.tree().path_of(c).unwrap()),
                _ => {}
            }
        }
    }
    assert!(links.len() > 100, "only {} links", links.len());
    for l in links {
        assert!(sim.resolve(&l, true).is_ok(), "dangling link {l}");
    }
}

#[test]
fn sriov_numvfs_errnos_match_the_kernel() {
    let mut sim = host();
    let p = dev(X0, "sriov_numvfs");
    assert_eq!(sim.write(&p, b"abc"), Err(Errno::EINVAL));
    assert_eq!(sim.write(&p, b"-1"), Err(Errno::EINVAL));
    assert_eq!(sim.write(&p, b"65536"), Err(Errno::EINVAL));
    assert_eq!(sim.write(&p, b"65"), Err(Errno::ERANGE));
    assert_eq!(sim.write(&p, b"0\n"), Ok(()), "unchanged count is a no-op");
    assert_eq!(sim.write(&p, b"4\n"), Ok(()));
    assert_eq!(read(&mut sim, &p), "4\n");
    assert_eq!(sim.write(&p, b"4"), Ok(()));
    assert_eq!(sim.write(&p, b"2"), Err(Errno::EBUSY));
    assert_eq!(sim.write(&p, b"65"), Err(Errno::ERANGE), "ERANGE is checked first");
    assert_eq!(sim.vfs(addr(X0)).len(), 4);
    assert_eq!(sim.write(&p, b"0"), Ok(()));
    assert!(sim.vfs(addr(X0)).is_empty());
    assert_eq!(sim.write(&p, b"0x2"), Ok(()));
    assert_eq!(sim.vfs(addr(X0)).len(), 2);

    // No PF driver: ENOENT (but ERANGE and no-op still come first).
    sim.unbind("i40e", addr(X0)).unwrap();
    assert!(sim.vfs(addr(X0)).is_empty(), "PF driver removal disables SR-IOV");
    assert_eq!(sim.write(&p, b"3"), Err(Errno::ENOENT));
    assert_eq!(sim.write(&p, b"99"), Err(Errno::ERANGE));
    assert_eq!(sim.write(&p, b"0"), Ok(()));
    // VFs have no sriov_numvfs.
    sim.bind("i40e", addr(X0)).unwrap();
    sim.set_num_vfs(addr(X0), 1).unwrap();
    assert_eq!(sim.write(&dev("0000:3b:02.0", "sriov_numvfs"), b"1"), Err(Errno::ENOENT));
}

#[test]
fn vfs_get_kernel_addresses_links_groups_and_netdevs() {
    let mut sim = host();
    let pf_group = sim.iommu_group_of(addr(X0)).unwrap();
    sim.write(&dev(X0, "sriov_numvfs"), b"10").unwrap();
    let vfs: Vec<String> = sim.vfs(addr(X0)).iter().map(|a| a.to_string()).collect();
    assert_eq!(vfs[0], "0000:3b:02.0");
    assert_eq!(vfs[9], "0000:3b:03.1");
    assert_eq!(sim.read_link(&format!("{X0_DIR}/virtfn0")).unwrap(), "../0000:3b:02.0");
    assert_eq!(sim.read_link(&format!("{X0_DIR}/virtfn9")).unwrap(), "../0000:3b:03.1");
    let vf0 = dev("0000:3b:02.0", "");
    assert_eq!(sim.read_link(&format!("{vf0}physfn")).unwrap(), "../0000:3b:00.0");
    assert_eq!(read(&mut sim, &format!("{vf0}device")), "0x154c\n");
    assert_eq!(read(&mut sim, &format!("{vf0}subsystem_device")), "0x0000\n");
    assert_eq!(read(&mut sim, &format!("{vf0}numa_node")), "0\n");
    assert!(!sim.exists(&format!("{vf0}sriov_numvfs")));
    assert_eq!(sim.read_link(&format!("{vf0}driver")).unwrap(), "../../../../bus/pci/drivers/iavf");
    assert_eq!(sim.list_dir(&format!("{vf0}net")).unwrap(), ["ens1f0v0"]);
    assert_eq!(read(&mut sim, "sys/class/net/ens1f0v9/address"), "02:5e:00:00:00:0a\n");
    assert_eq!(read(&mut sim, "sys/class/net/ens1f0v9/device/device"), "0x154c\n");
    assert_eq!(read(&mut sim, "sys/class/net/ens1f0v0/operstate"), "down\n");
    // Each VF in its own group, none shared with existing devices.
    let groups: BTreeSet<u32> =
        sim.vfs(addr(X0)).iter().map(|a| sim.iommu_group_of(*a).unwrap()).collect();
    assert_eq!(groups.len(), 10);
    assert!(!groups.contains(&pf_group));
    // Removal frees everything; re-creation reuses the lowest free group numbers.
    sim.write(&dev(X0, "sriov_numvfs"), b"0").unwrap();
    assert!(!sim.exists(&format!("{X0_DIR}/virtfn0")));
    assert!(!sim.exists("sys/bus/pci/devices/0000:3b:02.0"));
    assert!(!sim.exists("sys/class/net/ens1f0v0"));
    assert!(!sim.exists(&format!("sys/bus/pci/drivers/iavf/{}", vfs[0])));
    for g in &groups {
        assert!(!sim.exists(&format!("sys/kernel/iommu_groups/{g}")));
    }
    sim.write(&dev(X0, "sriov_numvfs"), b"10").unwrap();
    let again: BTreeSet<u32> =
        sim.vfs(addr(X0)).iter().map(|a| sim.iommu_group_of(*a).unwrap()).collect();
    assert_eq!(again, groups);
}

#[test]
fn e810_vfs_carry_into_the_next_bus() {
    let mut sim = host();
    let pf = addr("0000:af:00.0");
    sim.set_num_vfs(pf, 256).unwrap();
    let vfs = sim.vfs(pf);
    assert_eq!(vfs.len(), 256);
    assert_eq!(vfs[0].to_string(), "0000:af:01.0");
    assert_eq!(vfs[255].to_string(), "0000:b0:00.7");
    // Still siblings of the PF under the same root port.
    assert_eq!(
        sim.device_dir(vfs[255]).unwrap(),
        "sys/devices/pci0000:ae/0000:ae:00.0/0000:b0:00.7"
    );
    assert_eq!(
        sim.read_link("sys/devices/pci0000:ae/0000:ae:00.0/0000:af:00.0/virtfn255").unwrap(),
        "../0000:b0:00.7"
    );
    assert_eq!(read(&mut sim, "sys/class/net/ens2f0v255/device/device"), "0x1889\n");
}

#[test]
fn unbind_and_bind_errnos() {
    let mut sim = host();
    sim.set_num_vfs(addr(X0), 2).unwrap();
    let vf = "0000:3b:02.0";
    let unbind = "sys/bus/pci/drivers/iavf/unbind";
    let bind = "sys/bus/pci/drivers/iavf/bind";
    assert_eq!(sim.write("sys/bus/pci/drivers/i40e/unbind", vf.as_bytes()), Err(Errno::ENODEV));
    assert_eq!(sim.write(unbind, b"0000:3b:1f.0"), Err(Errno::ENODEV));
    assert_eq!(sim.write(unbind, b"garbage"), Err(Errno::ENODEV));
    assert_eq!(sim.write(bind, vf.as_bytes()), Err(Errno::EBUSY));
    assert_eq!(sim.write(bind, b"0000:3b:1f.0"), Err(Errno::ENODEV));
    // The driver does not match the device.
    assert_eq!(sim.write("sys/bus/pci/drivers/ice/bind", vf.as_bytes()), Err(Errno::ENODEV));
    // Unbind through the device's own driver link, with a trailing newline.
    sim.write(&dev(vf, "driver/unbind"), b"0000:3b:02.0\n").unwrap();
    assert_eq!(sim.driver_of(addr(vf)), None);
    assert!(!sim.exists(&dev(vf, "driver")));
    assert!(!sim.exists(&dev(vf, "net")));
    assert!(!sim.exists("sys/class/net/ens1f0v0"));
    assert!(!sim.exists(&format!("sys/bus/pci/drivers/iavf/{vf}")));
    assert_eq!(read(&mut sim, &dev(vf, "enable")), "0\n");
    assert!(!read(&mut sim, &dev(vf, "uevent")).contains("DRIVER="));
    // vfio-pci only matches through driver_override or new_id.
    assert_eq!(sim.write("sys/bus/pci/drivers/vfio-pci/bind", vf.as_bytes()), Err(Errno::ENODEV));
    sim.write(bind, vf.as_bytes()).unwrap();
    assert_eq!(sim.driver_of(addr(vf)), Some("iavf"));
    assert_eq!(sim.list_dir(&dev(vf, "net")).unwrap(), ["ens1f0v0"]);
    // An override naming another driver blocks binding this one.
    sim.write(unbind, vf.as_bytes()).unwrap();
    sim.write(&dev(vf, "driver_override"), b"vfio-pci").unwrap();
    assert_eq!(sim.write(bind, vf.as_bytes()), Err(Errno::ENODEV));
}

#[test]
fn vfio_flow_via_override_and_drivers_probe() {
    let mut sim = host();
    sim.set_num_vfs(addr(X0), 2).unwrap();
    let vf = "0000:3b:02.1";
    let group = sim.iommu_group_of(addr(vf)).unwrap();
    let vfio_node = format!("dev/vfio/{group}");
    assert!(!sim.exists(&vfio_node));
    // The QEMU-igb-verified sequence.
    sim.write(&dev(vf, "driver_override"), b"vfio-pci\n").unwrap();
    assert_eq!(read(&mut sim, &dev(vf, "driver_override")), "vfio-pci\n");
    sim.write(&dev(vf, "driver/unbind"), vf.as_bytes()).unwrap();
    sim.write("sys/bus/pci/drivers_probe", vf.as_bytes()).unwrap();
    assert_eq!(sim.driver_of(addr(vf)), Some("vfio-pci"));
    assert!(sim.exists(&vfio_node));
    assert!(!sim.exists(&dev(vf, "net")));
    assert!(!sim.exists("sys/class/net/ens1f0v1"));
    assert_eq!(read(&mut sim, &format!("sys/bus/pci/drivers/vfio-pci/{vf}/device")), "0x154c\n");
    // drivers_probe on a bound device: success, no change. Unknown device: ENODEV.
    sim.write("sys/bus/pci/drivers_probe", vf.as_bytes()).unwrap();
    assert_eq!(sim.write("sys/bus/pci/drivers_probe", b"0000:00:00.7"), Err(Errno::ENODEV));
    // Back to the kernel driver: clear the override, unbind, re-probe.
    sim.write(&dev(vf, "driver_override"), b"\n").unwrap();
    assert_eq!(read(&mut sim, &dev(vf, "driver_override")), "(null)\n");
    sim.write("sys/bus/pci/drivers/vfio-pci/unbind", vf.as_bytes()).unwrap();
    assert!(!sim.exists(&vfio_node));
    sim.write("sys/bus/pci/drivers_probe", vf.as_bytes()).unwrap();
    assert_eq!(sim.driver_of(addr(vf)), Some("iavf"));
    assert_eq!(read(&mut sim, "sys/class/net/ens1f0v1/device/device"), "0x154c\n");
}

#[test]
fn drivers_probe_succeeds_even_without_a_match() {
    let mut sim = host();
    sim.set_num_vfs(addr(X0), 1).unwrap();
    let vf = "0000:3b:02.0";
    sim.unbind("iavf", addr(vf)).unwrap();
    sim.set_driver_override(addr(vf), Some("nonexistent")).unwrap();
    assert_eq!(sim.drivers_probe(addr(vf)), Ok(()));
    assert_eq!(sim.driver_of(addr(vf)), None);
}

#[test]
fn autoprobe_off_leaves_vfs_unbound_and_unbindable_without_override() {
    let mut sim = host();
    sim.write(&dev(X0, "sriov_drivers_autoprobe"), b"0").unwrap();
    assert_eq!(read(&mut sim, &dev(X0, "sriov_drivers_autoprobe")), "0\n");
    assert_eq!(sim.write(&dev(X0, "sriov_drivers_autoprobe"), b"x"), Err(Errno::EINVAL));
    sim.write(&dev(X0, "sriov_numvfs"), b"2").unwrap();
    let vf = addr("0000:3b:02.0");
    assert_eq!(sim.driver_of(vf), None);
    assert!(!sim.exists("sys/class/net/ens1f0v0"));
    // pci_device_can_probe(): an explicit bind is declined too.
    assert_eq!(sim.bind("iavf", vf), Err(Errno::ENODEV));
    sim.drivers_probe(vf).unwrap();
    assert_eq!(sim.driver_of(vf), None);
    // With an override the VF can probe.
    sim.set_driver_override(vf, Some("vfio-pci")).unwrap();
    sim.drivers_probe(vf).unwrap();
    assert_eq!(sim.driver_of(vf), Some("vfio-pci"));
}

#[test]
fn bus_drivers_autoprobe_gates_vf_probing() {
    let mut sim = host();
    assert_eq!(read(&mut sim, "sys/bus/pci/drivers_autoprobe"), "1\n");
    sim.write("sys/bus/pci/drivers_autoprobe", b"0").unwrap();
    assert_eq!(read(&mut sim, "sys/bus/pci/drivers_autoprobe"), "0\n");
    sim.set_num_vfs(addr(X0), 1).unwrap();
    assert_eq!(sim.driver_of(addr("0000:3b:02.0")), None);
    // Explicit probing still works.
    sim.drivers_probe(addr("0000:3b:02.0")).unwrap();
    assert_eq!(sim.driver_of(addr("0000:3b:02.0")), Some("iavf"));
}

#[test]
fn new_id_and_remove_id() {
    let mut sim = host();
    sim.write(&dev(X0, "sriov_drivers_autoprobe"), b"0").unwrap();
    sim.set_num_vfs(addr(X0), 3).unwrap();
    let new_id = "sys/bus/pci/drivers/vfio-pci/new_id";
    assert_eq!(sim.write(new_id, b"8086"), Err(Errno::EINVAL));
    assert_eq!(sim.write(new_id, b"zz yy"), Err(Errno::EINVAL));
    // The VFs cannot probe (autoprobe off, no override), so they stay unbound.
    sim.write(new_id, b"8086 154c").unwrap();
    assert_eq!(sim.driver_of(addr("0000:3b:02.0")), None);
    assert_eq!(sim.write(new_id, b"8086 154c\n"), Err(Errno::EEXIST));
    let remove_id = "sys/bus/pci/drivers/vfio-pci/remove_id";
    sim.write(remove_id, b"8086 154c").unwrap();
    assert_eq!(sim.write(remove_id, b"8086 154c"), Err(Errno::ENODEV));
    assert_eq!(sim.write(remove_id, b"8086"), Err(Errno::EINVAL));
    // With autoprobe on, new_id's driver_attach() binds every unbound matching VF.
    sim.write(&dev(X0, "sriov_drivers_autoprobe"), b"1").unwrap();
    sim.write(new_id, b"8086 154c").unwrap();
    for vf in sim.vfs(addr(X0)) {
        assert_eq!(sim.driver_of(vf), Some("vfio-pci"), "{vf}");
    }
    // Bound devices are untouched: PF stays on i40e.
    assert_eq!(sim.driver_of(addr(X0)), Some("i40e"));
}

#[test]
fn open_modes_follow_kernfs() {
    let mut sim = host();
    for ro in ["vendor", "class", "sriov_totalvfs", "modalias", "local_cpulist"] {
        assert_eq!(sim.write(&dev(X0, ro), b"1"), Err(Errno::EACCES), "{ro}");
    }
    assert_eq!(sim.read(&dev(X0, "reset")), Err(Errno::EACCES));
    assert_eq!(sim.read("sys/bus/pci/drivers/iavf/bind"), Err(Errno::EACCES));
    assert_eq!(sim.read("sys/bus/pci/drivers_probe"), Err(Errno::EACCES));
    assert_eq!(sim.write(&dev(X0, "reset"), b"1"), Ok(()));
    assert_eq!(sim.write(&dev(X0, "reset"), b"2"), Err(Errno::EINVAL));
    assert_eq!(sim.write(&dev(X0, "enable"), b"0"), Err(Errno::EBUSY));
    assert_eq!(sim.write(&dev(X0, "uevent"), b"change"), Ok(()));
    assert_eq!(sim.write(&dev(X0, "uevent"), b"bogus"), Err(Errno::EINVAL));
    assert_eq!(sim.write("sys/class/net/ens1f0/address", b"x"), Err(Errno::EACCES));
    assert_eq!(sim.write("sys/nonexistent", b"x"), Err(Errno::ENOENT));
    assert_eq!(sim.write("sys/bus", b"x"), Err(Errno::EISDIR));
    sim.write(&dev(X0, "numa_node"), b"1").unwrap();
    assert_eq!(read(&mut sim, &dev(X0, "local_cpulist")), "16-31,48-63\n");
    assert_eq!(sim.write(&dev(X0, "numa_node"), b"7"), Err(Errno::EINVAL));
}

#[test]
fn netdev_attributes_and_carrier() {
    let mut sim = host();
    let pf = "sys/class/net/ens1f0";
    assert_eq!(read(&mut sim, &format!("{pf}/operstate")), "up\n");
    assert_eq!(read(&mut sim, &format!("{pf}/carrier")), "1\n");
    assert_eq!(read(&mut sim, &format!("{pf}/speed")), "10000\n");
    assert_eq!(read(&mut sim, &format!("{pf}/mtu")), "1500\n");
    assert_eq!(read(&mut sim, &format!("{pf}/type")), "1\n");
    assert_eq!(read(&mut sim, &format!("{pf}/flags")), "0x1003\n");
    assert_eq!(read(&mut sim, &format!("{pf}/address")), "02:5e:00:00:00:00\n");
    assert_eq!(sim.read(&format!("{pf}/phys_port_name")), Err(Errno::EOPNOTSUPP));
    assert_eq!(read(&mut sim, "sys/class/net/ens3f1np1/phys_port_name"), "p1\n");
    assert_eq!(read(&mut sim, "sys/class/net/ens3f1np1/dev_port"), "1\n");
    sim.set_pf_carrier(addr(X0), false).unwrap();
    assert_eq!(read(&mut sim, &format!("{pf}/operstate")), "down\n");
    assert_eq!(read(&mut sim, &format!("{pf}/carrier")), "0\n");
    assert_eq!(read(&mut sim, &format!("{pf}/speed")), "-1\n");
    sim.set_pf_carrier(addr(X0), true).unwrap();
    assert_eq!(read(&mut sim, &format!("{pf}/carrier")), "1\n");
    // A VF netdev starts administratively down: carrier/speed reads fail with EINVAL.
    sim.set_num_vfs(addr(X0), 1).unwrap();
    assert_eq!(sim.read("sys/class/net/ens1f0v0/carrier"), Err(Errno::EINVAL));
    assert_eq!(sim.read("sys/class/net/ens1f0v0/speed"), Err(Errno::EINVAL));
    assert_eq!(read(&mut sim, "sys/class/net/ens1f0v0/flags"), "0x1002\n");
}

#[test]
fn netdev_view_follows_presence_and_renames() {
    let mut sim = host();
    sim.set_num_vfs(addr(X0), 2).unwrap();
    let vf = addr("0000:3b:02.1");
    sim.set_netdev_presence(vf, false, Some("net1")).unwrap();
    assert_eq!(sim.list_dir(&dev("0000:3b:02.1", "net")).unwrap(), Vec::<String>::new());
    assert!(!sim.exists("sys/class/net/ens1f0v1"));
    assert!(!sim.exists("sys/class/net/net1"));
    sim.set_netdev_presence(vf, true, Some("ens1f0v1x")).unwrap();
    assert_eq!(sim.list_dir(&dev("0000:3b:02.1", "net")).unwrap(), ["ens1f0v1x"]);
    assert_eq!(read(&mut sim, "sys/class/net/ens1f0v1x/device/device"), "0x154c\n");
    assert!(sim.set_netdev_presence(addr("0000:3b:1f.0"), true, None).is_err());
}

#[test]
fn connectx5_exposes_rdma_devices() {
    let mut sim = host();
    let pf0 = "0000:d8:00.0";
    assert_eq!(sim.list_dir(&dev(pf0, "infiniband")).unwrap(), ["mlx5_0"]);
    assert_eq!(sim.list_dir(&dev("0000:d8:00.1", "infiniband")).unwrap(), ["mlx5_1"]);
    sim.set_num_vfs(addr(pf0), 2).unwrap();
    let vf = sim.vfs(addr(pf0))[1];
    assert_eq!(vf.to_string(), "0000:d8:00.3");
    assert_eq!(sim.driver_of(vf), Some("mlx5_core"));
    assert_eq!(sim.list_dir(&dev("0000:d8:00.3", "infiniband")).unwrap(), ["mlx5_3"]);
    assert_eq!(read(&mut sim, "sys/class/infiniband/mlx5_3/device/device"), "0x1018\n");
    assert_eq!(read(&mut sim, "sys/class/infiniband/mlx5_3/hca_type"), "MT4120\n");
    assert_eq!(read(&mut sim, "sys/class/net/ens3f0v1/device/device"), "0x1018\n");
    // Unbinding frees the RDMA index.
    sim.unbind("mlx5_core", vf).unwrap();
    assert!(!sim.exists("sys/class/infiniband/mlx5_3"));
    assert!(!sim.exists(&dev("0000:d8:00.3", "infiniband")));
}

#[test]
fn igb_matches_qemu() {
    let spec = SimSpec::empty()
        .pf(PfSpec::new(NicModel::Intel82576, addr("0000:01:00.0"), "eth0")
            .drivers_autoprobe(false));
    let mut sim = Sim::new(spec).unwrap();
    let pf = "0000:01:00.0";
    assert_eq!(read(&mut sim, &dev(pf, "sriov_totalvfs")), "7\n");
    assert_eq!(read(&mut sim, &dev(pf, "sriov_offset")), "128\n");
    assert_eq!(read(&mut sim, &dev(pf, "sriov_stride")), "2\n");
    assert_eq!(sim.write(&dev(pf, "sriov_numvfs"), b"8"), Err(Errno::ERANGE));
    sim.write(&dev(pf, "sriov_numvfs"), b"7").unwrap();
    let vfs: Vec<String> = sim.vfs(addr(pf)).iter().map(|a| a.to_string()).collect();
    assert_eq!(vfs[6], "0000:01:11.4");
    assert_eq!(sim.driver_of(addr("0000:01:10.0")), None);
    assert_eq!(
        sim.device_dir(addr(pf)).unwrap(),
        "sys/devices/pci0000:00/0000:00:00.0/0000:01:00.0"
    );
}

#[test]
fn pf_on_root_bus_has_no_root_port() {
    let spec = SimSpec::empty().pf(PfSpec::new(NicModel::Intel82576, addr("0000:00:03.0"), "eth0"));
    let mut sim = Sim::new(spec).unwrap();
    assert_eq!(
        sim.read_link("sys/bus/pci/devices/0000:00:03.0").unwrap(),
        "../../../devices/pci0000:00/0000:00:03.0"
    );
    assert_eq!(
        sim.read_link("sys/devices/pci0000:00/0000:00:03.0/driver").unwrap(),
        "../../../bus/pci/drivers/igb"
    );
    sim.set_num_vfs(addr("0000:00:03.0"), 1).unwrap();
    assert_eq!(
        sim.read_link("sys/devices/pci0000:00/0000:00:03.0/virtfn0").unwrap(),
        "../0000:00:13.0"
    );
}

#[test]
fn delayed_vf_netdevs_appear_later() {
    let spec = SimSpec::default_host().vf_netdev_delay_ms(40);
    let mut sim = Sim::new(spec).unwrap();
    sim.set_num_vfs(addr(X0), 2).unwrap();
    let vf = "0000:3b:02.0";
    assert_eq!(sim.driver_of(addr(vf)), Some("iavf"), "driver binds synchronously");
    assert!(!sim.exists(&dev(vf, "net")));
    assert!(sim.next_event_in().is_some());
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(sim.list_dir(&dev(vf, "net")).unwrap(), ["ens1f0v0"]);
    assert!(sim.next_event_in().is_none());
    // An unbind before the netdev appears cancels it.
    sim.unbind("iavf", addr(vf)).unwrap();
    sim.bind("iavf", addr(vf)).unwrap();
    sim.unbind("iavf", addr(vf)).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    assert!(!sim.exists(&dev(vf, "net")));
}

#[test]
fn pf_without_driver_at_start() {
    let spec =
        SimSpec::empty()
            .pf(PfSpec::new(NicModel::IntelE810, addr("0000:af:00.0"), "ens2f0")
                .driver_bound(false));
    let mut sim = Sim::new(spec).unwrap();
    assert_eq!(sim.write(&dev("0000:af:00.0", "sriov_numvfs"), b"1"), Err(Errno::ENOENT));
    assert!(!sim.exists("sys/class/net/ens2f0"));
    assert_eq!(read(&mut sim, &dev("0000:af:00.0", "enable")), "0\n");
    assert_eq!(sim.write(&dev("0000:af:00.0", "enable"), b"0"), Err(Errno::EIO));
    sim.write("sys/bus/pci/drivers/ice/bind", b"0000:af:00.0").unwrap();
    assert!(sim.exists("sys/class/net/ens2f0"));
    sim.write(&dev("0000:af:00.0", "sriov_numvfs"), b"1").unwrap();
}

#[test]
fn initial_vfs_from_spec() {
    let mut spec = SimSpec::default_host();
    spec.pfs[0].num_vfs = 3;
    let mut sim = Sim::new(spec).unwrap();
    assert_eq!(read(&mut sim, &dev(X0, "sriov_numvfs")), "3\n");
    assert!(sim.exists("sys/class/net/ens1f0v2"));
}

// ------------------------------------------------------------------ uevents

/// A host recording its uevents as `ACTION@DEVPATH` + keys, one string per datagram.
fn recording_host(spec: SimSpec) -> Sim {
    let mut sim = Sim::new(spec).unwrap();
    sim.uevents = Some(UeventSink::recording());
    sim
}

/// The recorded datagrams, each as its NUL-separated fields joined with `|`.
fn uevents(sim: &mut Sim) -> Vec<String> {
    sim.uevents
        .as_mut()
        .unwrap()
        .take_recorded()
        .iter()
        .map(|d| {
            assert_eq!(d.last(), Some(&0), "datagram ends with NUL");
            let fields: Vec<String> = d[..d.len() - 1]
                .split(|b| *b == 0)
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect();
            fields.join("|")
        })
        .collect()
}

/// `ACTION@DEVPATH` of each event (the header only).
fn headers(evs: &[String]) -> Vec<String> {
    evs.iter().map(|e| e.split('|').next().unwrap().to_owned()).collect()
}

const X0_DEVPATH: &str = "/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0";
const VF0_DEVPATH: &str = "/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0";
const VF1_DEVPATH: &str = "/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.1";
const VF_MODALIAS: &str = "MODALIAS=pci:v00008086d0000154Csv00008086sd00000000bc02sc00i00";

#[test]
fn enabling_vfs_announces_each_vf_then_the_pf() {
    let mut sim = recording_host(SimSpec::default_host());
    sim.write(&dev(X0, "sriov_numvfs"), b"2").unwrap();
    let evs = uevents(&mut sim);
    assert_eq!(
        headers(&evs),
        [
            format!("add@{VF0_DEVPATH}"),
            format!("change@{VF0_DEVPATH}"),
            format!("add@{VF0_DEVPATH}/net/ens1f0v0"),
            format!("bind@{VF0_DEVPATH}"),
            format!("add@{VF1_DEVPATH}"),
            format!("change@{VF1_DEVPATH}"),
            format!("add@{VF1_DEVPATH}/net/ens1f0v1"),
            format!("bind@{VF1_DEVPATH}"),
            format!("change@{X0_DEVPATH}"),
        ]
    );
    // Exact keys and order of lib/kobject_uevent.c + pci_uevent(); SEQNUM counts up.
    assert_eq!(
        evs[0],
        format!(
            "add@{VF0_DEVPATH}|ACTION=add|DEVPATH={VF0_DEVPATH}|SUBSYSTEM=pci|PCI_CLASS=20000|\
             PCI_ID=8086:154C|PCI_SUBSYS_ID=8086:0000|PCI_SLOT_NAME=0000:3b:02.0|{VF_MODALIAS}|SEQNUM=1"
        )
    );
    let ifindex = sim.link_info(addr("0000:3b:02.0")).unwrap().ifindex;
    assert_eq!(
        evs[2],
        format!(
            "add@{VF0_DEVPATH}/net/ens1f0v0|ACTION=add|DEVPATH={VF0_DEVPATH}/net/ens1f0v0|\
             SUBSYSTEM=net|INTERFACE=ens1f0v0|IFINDEX={ifindex}|SEQNUM=3"
        )
    );
    assert_eq!(
        evs[3],
        format!(
            "bind@{VF0_DEVPATH}|ACTION=bind|DEVPATH={VF0_DEVPATH}|SUBSYSTEM=pci|DRIVER=iavf|\
             PCI_CLASS=20000|PCI_ID=8086:154C|PCI_SUBSYS_ID=8086:0000|PCI_SLOT_NAME=0000:3b:02.0|\
             {VF_MODALIAS}|SEQNUM=4"
        )
    );
    assert!(evs[8].starts_with(&format!("change@{X0_DEVPATH}|ACTION=change|")));
    assert!(evs[8].contains("|DRIVER=i40e|PCI_CLASS=20000|PCI_ID=8086:1572|"));
    assert!(evs[8].ends_with("|SEQNUM=9"));
    // The same count again is a no-op, and an error announces nothing.
    sim.write(&dev(X0, "sriov_numvfs"), b"2").unwrap();
    assert_eq!(sim.write(&dev(X0, "sriov_numvfs"), b"3"), Err(Errno::EBUSY));
    assert!(uevents(&mut sim).is_empty());
}

#[test]
fn disabling_vfs_announces_netdev_unbind_and_remove_per_vf() {
    let mut sim = recording_host(SimSpec::default_host());
    sim.write(&dev(X0, "sriov_numvfs"), b"2").unwrap();
    uevents(&mut sim);
    sim.write(&dev(X0, "sriov_numvfs"), b"0").unwrap();
    let evs = uevents(&mut sim);
    assert_eq!(
        headers(&evs),
        [
            format!("remove@{VF0_DEVPATH}/net/ens1f0v0"),
            format!("unbind@{VF0_DEVPATH}"),
            format!("remove@{VF0_DEVPATH}"),
            format!("remove@{VF1_DEVPATH}/net/ens1f0v1"),
            format!("unbind@{VF1_DEVPATH}"),
            format!("remove@{VF1_DEVPATH}"),
        ]
    );
    // unbind: no DRIVER (dev->driver is already NULL), no MODALIAS (zap_modalias_env()).
    assert_eq!(
        evs[1],
        format!(
            "unbind@{VF0_DEVPATH}|ACTION=unbind|DEVPATH={VF0_DEVPATH}|SUBSYSTEM=pci|\
             PCI_CLASS=20000|PCI_ID=8086:154C|PCI_SUBSYS_ID=8086:0000|PCI_SLOT_NAME=0000:3b:02.0|SEQNUM=11"
        )
    );
    assert!(evs[2].contains(&format!("|PCI_SLOT_NAME=0000:3b:02.0|{VF_MODALIAS}|SEQNUM=12")));
    assert!(!evs[2].contains("DRIVER="));
}

#[test]
fn driver_switch_to_vfio_announces_unbind_then_group_node_and_bind() {
    let mut sim = recording_host(SimSpec::default_host());
    sim.write(&dev(X0, "sriov_numvfs"), b"1").unwrap();
    uevents(&mut sim);
    let vf = "0000:3b:02.0";
    sim.write(&dev(vf, "driver_override"), b"vfio-pci").unwrap();
    assert!(uevents(&mut sim).is_empty(), "driver_override alone announces nothing");
    sim.write(&dev(vf, "driver/unbind"), vf.as_bytes()).unwrap();
    sim.write("sys/bus/pci/drivers_probe", vf.as_bytes()).unwrap();
    let group = sim.iommu_group_of(addr(vf)).unwrap();
    let evs = uevents(&mut sim);
    assert_eq!(
        headers(&evs),
        [
            format!("remove@{VF0_DEVPATH}/net/ens1f0v0"),
            format!("unbind@{VF0_DEVPATH}"),
            format!("add@/devices/virtual/vfio/{group}"),
            format!("bind@{VF0_DEVPATH}"),
        ]
    );
    assert!(evs[2].contains(&format!(
        "|SUBSYSTEM=vfio|MAJOR=242|MINOR={}|DEVNAME=vfio/{group}|",
        group & 0xff
    )));
    assert!(evs[3].contains("|SUBSYSTEM=pci|DRIVER=vfio-pci|PCI_CLASS=20000|"));
    // And back: the group node goes before the unbind; iavf registers a netdev before bind.
    sim.write(&dev(vf, "driver_override"), b"\n").unwrap();
    sim.write(&dev(vf, "driver/unbind"), vf.as_bytes()).unwrap();
    sim.write("sys/bus/pci/drivers/iavf/bind", vf.as_bytes()).unwrap();
    assert_eq!(
        headers(&uevents(&mut sim)),
        [
            format!("remove@/devices/virtual/vfio/{group}"),
            format!("unbind@{VF0_DEVPATH}"),
            format!("add@{VF0_DEVPATH}/net/ens1f0v0"),
            format!("bind@{VF0_DEVPATH}"),
        ]
    );
}

#[test]
fn unbinding_the_pf_driver_removes_vfs_first() {
    let mut sim = recording_host(SimSpec::default_host());
    sim.write(&dev(X0, "sriov_numvfs"), b"1").unwrap();
    uevents(&mut sim);
    sim.write(&dev(X0, "driver/unbind"), X0.as_bytes()).unwrap();
    assert_eq!(
        headers(&uevents(&mut sim)),
        [
            format!("remove@{VF0_DEVPATH}/net/ens1f0v0"),
            format!("unbind@{VF0_DEVPATH}"),
            format!("remove@{VF0_DEVPATH}"),
            format!("remove@{X0_DEVPATH}/net/ens1f0"),
            format!("unbind@{X0_DEVPATH}"),
        ]
    );
}

#[test]
fn delayed_vf_netdev_is_announced_when_it_appears() {
    let mut sim = recording_host(SimSpec::default_host().vf_netdev_delay_ms(30));
    sim.write(&dev(X0, "sriov_numvfs"), b"1").unwrap();
    assert_eq!(
        headers(&uevents(&mut sim)),
        [
            format!("add@{VF0_DEVPATH}"),
            format!("change@{VF0_DEVPATH}"),
            format!("bind@{VF0_DEVPATH}"),
            format!("change@{X0_DEVPATH}"),
        ]
    );
    std::thread::sleep(Duration::from_millis(40));
    sim.sync();
    assert_eq!(headers(&uevents(&mut sim)), [format!("add@{VF0_DEVPATH}/net/ens1f0v0")]);
}

#[test]
fn autoprobe_off_announces_only_the_devices() {
    let mut sim = recording_host(SimSpec::default_host());
    sim.write(&dev(X0, "sriov_drivers_autoprobe"), b"0").unwrap();
    sim.write(&dev(X0, "sriov_numvfs"), b"1").unwrap();
    assert_eq!(
        headers(&uevents(&mut sim)),
        [
            format!("add@{VF0_DEVPATH}"),
            format!("change@{VF0_DEVPATH}"),
            format!("change@{X0_DEVPATH}"),
        ]
    );
    // Disabling an unbound VF: no unbind.
    sim.write(&dev(X0, "sriov_numvfs"), b"0").unwrap();
    assert_eq!(headers(&uevents(&mut sim)), [format!("remove@{VF0_DEVPATH}")]);
}

#[test]
fn synthetic_uevent_writes_are_announced_with_synth_uuid() {
    let mut sim = recording_host(SimSpec::default_host());
    sim.write(&dev(X0, "uevent"), b"change\n").unwrap();
    let evs = uevents(&mut sim);
    assert_eq!(evs.len(), 1);
    assert!(evs[0].starts_with(&format!(
        "change@{X0_DEVPATH}|ACTION=change|DEVPATH={X0_DEVPATH}|SUBSYSTEM=pci|SYNTH_UUID=0|DRIVER=i40e|"
    )));
    assert_eq!(sim.write(&dev(X0, "uevent"), b"frob"), Err(Errno::EINVAL));
    sim.write(&dev(X0, "uevent"), b"online").unwrap();
    assert!(uevents(&mut sim).is_empty());
}

#[test]
fn netdev_presence_changes_are_announced_like_netns_moves_and_renames() {
    let mut sim = recording_host(SimSpec::default_host());
    let pf = addr(X0);
    sim.set_netdev_presence(pf, true, Some("eth9")).unwrap();
    let evs = uevents(&mut sim);
    assert_eq!(headers(&evs), [format!("move@{X0_DEVPATH}/net/eth9")]);
    assert!(
        evs[0].contains(&format!(
            "|SUBSYSTEM=net|DEVPATH_OLD={X0_DEVPATH}/net/ens1f0|INTERFACE=eth9|"
        ))
    );
    sim.set_netdev_presence(pf, false, None).unwrap();
    sim.set_netdev_presence(pf, true, None).unwrap();
    assert_eq!(
        headers(&uevents(&mut sim)),
        [format!("remove@{X0_DEVPATH}/net/eth9"), format!("add@{X0_DEVPATH}/net/eth9")]
    );
}

#[test]
fn no_uevents_are_built_when_off() {
    let mut sim = host();
    assert!(!sim.uevents_enabled());
    sim.write(&dev(X0, "sriov_numvfs"), b"2").unwrap();
    assert!(sim.uevents.is_none());
}
