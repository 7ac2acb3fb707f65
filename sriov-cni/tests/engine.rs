//! The engine with fakes at its seams (sysfs fixture + recording netlink transport): exact
//! messages, one netns move per ADD, rollback order, DEL/GC/CHECK semantics. No root needed.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::Path;

use common::fake::*;
use pretty_assertions::assert_eq;
use sriov_cni::add::{AddParams, add};
use sriov_cni::check::{CheckParams, check};
use sriov_cni::config::VfSettings;
use sriov_cni::del::{DelParams, del, gc};
use sriov_cni::journal::{Mode, Undo};
use sriov_cni::state::StateDir;
use sriov_netlink::{VfLinkState, VfVlan, VlanProto};

const CID: &str = "c0ffee";
const VF1_MAC: &str = "02:00:00:00:01:01";
const POD_MAC: &str = "02:00:5e:00:53:01";

struct Env {
    _tmp: tempfile::TempDir,
    sysfs: Sysfs,
    state: StateDir,
    netns: std::path::PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new();
        sysfs.vf(1, "iavf", Some("ens1f0v1")).vf(2, "vfio-pci", None);
        let state = StateDir::open(tmp.path().join("state")).unwrap();
        let netns = netns_file(tmp.path(), "pod");
        Env { _tmp: tmp, sysfs, state, netns }
    }

    fn plat(&self) -> FakePlatform {
        FakePlatform::new(self.sysfs.paths())
    }

    fn params(&self, vf: u32, settings: VfSettings, mtu: Option<u32>) -> AddParams<'_> {
        AddParams {
            container_id: CID,
            ifname: "net1",
            netns: &self.netns,
            network: "sriov-net",
            device: vf_addr(vf).parse().unwrap(),
            settings,
            mtu,
            per_pf_lock: false,
            ipam: None,
            prev_result: None,
            device_info: None,
        }
    }

    fn del_params(&self, vf: Option<u32>) -> DelParams<'_> {
        DelParams {
            container_id: CID,
            ifname: "net1",
            netns: Some(&self.netns),
            device: vf.map(|v| vf_addr(v).parse().unwrap()),
            per_pf_lock: false,
            ipam: None,
        }
    }

    fn root(&self) -> &Path {
        self.state.root()
    }

    fn journal_of(&self, vf: u32) -> Option<sriov_cni::journal::Journal> {
        self.state.read(vf_addr(vf).parse().unwrap()).unwrap()
    }
}

fn settings() -> VfSettings {
    VfSettings {
        vlan: Some(VfVlan::new(100, 0, VlanProto::Dot1Q).unwrap()),
        mac: Some(POD_MAC.parse().unwrap()),
        spoofchk: Some(false),
        ..VfSettings::default()
    }
}

/// The replies for snapshot + pre-flight of VF 1.
///
/// The VF has no altnames here: netlink-packet-route 0.34 cannot parse the RTM_NEWLINKPROP /
/// RTM_DELLINKPROP requests the fake transport would have to record, so the altname steps are
/// covered by the kernel tests (`tests/blackbox.rs`).
fn script_prepare(p: &FakePlatform, pf_vfs: Option<&[sriov_netlink::VfState]>) {
    p.reply(pf_link(9000, pf_vfs));
    script_prepare_plain(p);
}

/// The same when ADD has no reason to read the PF (no PF-side settings, no `mtu`).
fn script_prepare_plain(p: &FakePlatform) {
    p.reply(link(10, "ens1f0v1", VF1_MAC, 1500, true, &[])).reply(errno(ENODEV));
}

#[test]
fn add_applies_settings_in_one_message_and_moves_once() {
    let env = Env::new();
    let mut p = env.plat();
    script_prepare(&p, Some(&[vf_state(1, "00:00:00:00:00:00")]));
    p.reply(ack()) // VF settings
        .reply(ack()) // move + rename
        .reply(link(10, "net1", VF1_MAC, 1500, false, &[]))
        .reply(ack()) // mac
        .reply(ack()) // mtu
        .reply(ack()); // up
    let result = add(&mut p, &env.state, &env.params(1, settings(), Some(9000))).unwrap();

    assert_eq!(
        p.take(),
        vec![
            "getlink ifindex=0 name=ens1f0",
            "getlink ifindex=0 name=ens1f0v1",
            "getlink ifindex=0 name=net1",
            "newlink ifindex=4 vf=1[mac,vlan,spoofchk]",
            "newlink ifindex=10 netns name=net1",
            "getlink ifindex=0 name=net1",
            "newlink ifindex=10 address=02:00:5e:00:53:01",
            "newlink ifindex=10 mtu=9000",
            "newlink ifindex=10 up",
        ]
    );
    assert_eq!(p.fake.unused_replies(), 0);
    let sysctls = sysctl_map(&p);
    assert_eq!(sysctls.get("net/ipv4/conf/net1/arp_notify").map(String::as_str), Some("1"));
    assert_eq!(sysctls.get("net/ipv6/conf/net1/ndisc_notify").map(String::as_str), Some("1"));

    let j = env.journal_of(1).unwrap();
    assert!(j.is_complete());
    assert_eq!(j.header.mode, Mode::Netdev);
    assert_eq!(j.header.attachment.container_id, CID);
    let nd = j.header.snapshot.netdev.as_ref().unwrap();
    assert_eq!((nd.name.as_str(), nd.ifindex, nd.mtu, nd.up), ("ens1f0v1", 10, Some(1500), true));
    assert!(nd.altnames.is_empty());
    assert_eq!(
        j.undo_log(),
        vec![
            Undo::RestoreVf,
            Undo::MoveBack,
            Undo::RestoreMac { mac: VF1_MAC.parse().unwrap() },
            Undo::RestoreMtu { mtu: 1500 },
        ]
    );

    let json = result.to_json(cni_spec::CniVersion::V1_1_0);
    assert_eq!(
        json["interfaces"],
        serde_json::json!([{"name": "net1", "mac": POD_MAC, "mtu": 9000,
                            "sandbox": env.netns.display().to_string(), "pciID": "0000:3b:02.1"}])
    );
}

#[test]
fn add_without_settings_sends_no_vf_message_and_del_restores_everything() {
    let env = Env::new();
    let mut p = env.plat();
    script_prepare_plain(&p);
    p.reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(ack());
    add(&mut p, &env.state, &env.params(1, VfSettings::default(), None)).unwrap();
    let sent = p.take();
    assert!(!sent.iter().any(|m| m.contains("vf=")), "{sent:?}");
    assert_eq!(
        sent.iter().filter(|m| m.contains(" netns")).count(),
        1,
        "exactly one netns move: {sent:?}"
    );

    // DEL: back home under the original name, up again.
    p.reply(link(10, "net1", VF1_MAC, 1500, true, &[])) // locate in the pod
        .reply(errno(ENODEV)) // original name is free in the host
        .reply(ack()) // move back + rename
        .reply(link(10, "ens1f0v1", VF1_MAC, 1500, false, &[])) // admin state
        .reply(ack()); // up
    del(&mut p, env.root(), &env.del_params(Some(1)))
        .unwrap_or_else(|e| panic!("{}", sriov_cni::error::chain(&e)));
    assert_eq!(
        p.take(),
        vec![
            "getlink ifindex=0 name=net1",
            "getlink ifindex=0 name=ens1f0v1",
            "newlink ifindex=10 netns name=ens1f0v1",
            "getlink ifindex=0 name=ens1f0v1",
            "newlink ifindex=10 up",
        ]
    );
    assert!(env.journal_of(1).is_none());
    // DEL twice: nothing to do, nothing sent.
    del(&mut p, env.root(), &env.del_params(Some(1))).unwrap();
    assert_eq!(p.take(), Vec::<String>::new());
}

#[test]
fn device_info_file_is_journaled_before_it_is_written_and_removed_by_del() {
    let env = Env::new();
    let mut p = env.plat();
    let file = env._tmp.path().join("devinfo/cni/sriov-net-c0ffee_net1");
    script_prepare_plain(&p);
    p.reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(ack());
    let params =
        AddParams { device_info: Some(file.clone()), ..env.params(1, VfSettings::default(), None) };
    add(&mut p, &env.state, &params).unwrap();
    let info = cni_spec::DeviceInfo::load(&file).unwrap();
    let pci = info.pci.unwrap();
    assert_eq!(
        (pci.pci_address.as_str(), pci.pf_pci_address.as_deref()),
        ("0000:3b:02.1", Some(PF))
    );
    let j = env.journal_of(1).unwrap();
    assert_eq!(j.undo_log().last(), Some(&Undo::RemoveDeviceInfo { path: file.clone() }));
    assert!(j.is_complete());
    p.take();

    p.reply(link(10, "net1", VF1_MAC, 1500, true, &[]))
        .reply(errno(ENODEV))
        .reply(ack())
        .reply(link(10, "ens1f0v1", VF1_MAC, 1500, false, &[]))
        .reply(ack());
    del(&mut p, env.root(), &env.del_params(Some(1))).unwrap();
    assert!(!file.exists(), "removed by DEL");
    assert!(env.journal_of(1).is_none());
}

#[test]
fn rejected_vf_setting_is_named_and_rolled_back_from_a_fresh_read() {
    let env = Env::new();
    let mut p = env.plat();
    let before = vf_state(1, "00:00:00:00:00:00");
    script_prepare(&p, Some(std::slice::from_ref(&before)));
    // The kernel applied the MAC, then refused the VLAN.
    let mut partial = before.clone();
    partial.mac = POD_MAC.parse().unwrap();
    p.reply(errno(EOPNOTSUPP))
        .reply(pf_link(9000, Some(std::slice::from_ref(&partial)))) // diagnosis
        .reply(pf_link(9000, Some(std::slice::from_ref(&partial)))) // rollback read
        .reply(ack()); // restore the MAC only
    let err = add(&mut p, &env.state, &env.params(1, settings(), None)).unwrap_err();
    let cni = err.to_cni();
    assert_eq!(cni.code().get(), 101);
    assert_eq!(cni.msg(), "VF setting rejected: vlan");
    assert!(cni.details().contains("Operation not supported"), "{}", cni.details());
    let sent = p.take();
    assert_eq!(sent[3], "newlink ifindex=4 vf=1[mac,vlan,spoofchk]");
    assert_eq!(sent.last().map(String::as_str), Some("newlink ifindex=4 vf=1[mac]"), "{sent:?}");
    assert!(!sent.iter().any(|m| m.contains(" netns")), "nothing moved: {sent:?}");
    assert!(env.journal_of(1).is_none(), "journal removed after a complete rollback");
}

#[test]
fn veth_like_pf_without_vf_list_fails_cleanly_naming_the_first_setting() {
    let env = Env::new();
    let mut p = env.plat();
    script_prepare(&p, None);
    p.reply(errno(EOPNOTSUPP)).reply(pf_link(1500, None));
    let only_trust = VfSettings { trust: Some(true), ..VfSettings::default() };
    let err = add(&mut p, &env.state, &env.params(1, only_trust, None)).unwrap_err();
    assert_eq!(err.to_cni().msg(), "VF setting rejected: trust");
    let sent = p.take();
    // The diagnosis read the PF; with no snapshot of PF-side state, the rollback sends nothing.
    assert_eq!(sent.last().map(String::as_str), Some("getlink ifindex=4"), "{sent:?}");
    assert_eq!(p.fake.unused_replies(), 0);
    assert!(env.journal_of(1).is_none());
}

#[test]
fn failure_after_the_move_rolls_back_pf_side_first_then_in_reverse_order() {
    let env = Env::new();
    let mut p = env.plat();
    let before = vf_state(1, "00:00:00:00:00:00");
    script_prepare(&p, Some(std::slice::from_ref(&before)));
    p.reply(ack())
        .reply(ack())
        .reply(link(10, "net1", VF1_MAC, 1500, false, &[]))
        .reply(ack()) // mac
        .reply(errno(EINVAL)); // mtu refused
    // Rollback. VF settings first (the administrative MAC must be gone before the netdev MAC
    // is restored): read what the PF has now, restore what differs.
    let mut changed = before.clone();
    changed.vlan = 100;
    changed.mac = POD_MAC.parse().unwrap();
    changed.spoofchk = Some(false);
    p.reply(pf_link(9000, Some(&[changed]))).reply(ack());
    // Then newest first. MTU (recorded before the refused step): found in the pod, unchanged.
    p.reply(link(10, "net1", POD_MAC, 1500, false, &[])).reply(link(
        10,
        "net1",
        POD_MAC,
        1500,
        false,
        &[],
    ));
    // MAC: back to the original, still in the pod.
    p.reply(link(10, "net1", POD_MAC, 1500, false, &[]))
        .reply(link(10, "net1", POD_MAC, 1500, false, &[]))
        .reply(ack());
    // Move back under the original name (free in the host), then up as it was.
    p.reply(link(10, "net1", VF1_MAC, 1500, false, &[]))
        .reply(errno(ENODEV))
        .reply(ack())
        .reply(link(10, "ens1f0v1", VF1_MAC, 1500, false, &[]))
        .reply(ack());

    let err = add(&mut p, &env.state, &env.params(1, settings(), Some(9000))).unwrap_err();
    assert_eq!(err.to_cni().code().get(), 100);
    assert!(err.to_cni().details().contains("set mtu 9000 on net1"), "{}", err.to_cni().details());
    let sent = p.take();
    let rollback: Vec<&str> = sent.iter().skip(8).map(String::as_str).collect();
    assert_eq!(
        rollback,
        vec![
            "getlink ifindex=0 name=ens1f0",
            "newlink ifindex=4 vf=1[mac,vlan,spoofchk]",
            "getlink ifindex=0 name=net1",
            "getlink ifindex=10",
            "getlink ifindex=0 name=net1",
            "getlink ifindex=10",
            "newlink ifindex=10 address=02:00:00:00:01:01",
            "getlink ifindex=0 name=net1",
            "getlink ifindex=0 name=ens1f0v1",
            "newlink ifindex=10 netns name=ens1f0v1",
            "getlink ifindex=0 name=ens1f0v1",
            "newlink ifindex=10 up",
        ]
    );
    assert_eq!(p.fake.unused_replies(), 0);
    assert!(env.journal_of(1).is_none());
}

#[test]
fn failed_rollback_keeps_the_journal_and_del_finishes_it() {
    let env = Env::new();
    let mut p = env.plat();
    script_prepare_plain(&p);
    p.reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(errno(EINVAL)); // up fails
    // Rollback: the move back is refused (EBUSY).
    p.reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(errno(ENODEV)).reply(errno(EBUSY));
    let err = add(&mut p, &env.state, &env.params(1, VfSettings::default(), None)).unwrap_err();
    let cni = err.to_cni();
    assert_eq!(cni.code().get(), 100);
    assert!(cni.msg().ends_with("rollback incomplete"), "{}", cni.msg());
    assert!(cni.details().contains("kept for DEL"), "{}", cni.details());
    let j = env.journal_of(1).expect("journal kept");
    assert_eq!(j.undo_log(), vec![Undo::MoveBack]);
    p.take();

    // DEL (the runtime always sends one after a failed ADD) finishes it.
    p.reply(link(10, "net1", VF1_MAC, 1500, false, &[]))
        .reply(errno(ENODEV))
        .reply(ack())
        .reply(link(10, "ens1f0v1", VF1_MAC, 1500, false, &[]))
        .reply(ack());
    del(&mut p, env.root(), &env.del_params(Some(1)))
        .unwrap_or_else(|e| panic!("{}", sriov_cni::error::chain(&e)));
    assert!(env.journal_of(1).is_none());
    assert_eq!(p.fake.unused_replies(), 0);
}

#[test]
fn del_keeps_the_journal_when_a_restore_fails_and_succeeds_on_retry() {
    let env = Env::new();
    let mut p = env.plat();
    script_prepare_plain(&p);
    p.reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(ack());
    add(&mut p, &env.state, &env.params(1, VfSettings::default(), None)).unwrap();
    p.take();
    p.reply(link(10, "net1", VF1_MAC, 1500, true, &[])).reply(errno(ENODEV)).reply(errno(EBUSY));
    let err = del(&mut p, env.root(), &env.del_params(Some(1))).unwrap_err();
    assert_eq!(err.to_cni().code().get(), 11, "{}", err.to_cni());
    assert_eq!(env.journal_of(1).unwrap().undo_log(), vec![Undo::MoveBack]);
    // Retry without deviceID in the config: found by scanning the journals.
    p.take();
    p.reply(link(10, "net1", VF1_MAC, 1500, true, &[])).reply(errno(ENODEV)).reply(ack());
    p.reply(link(10, "ens1f0v1", VF1_MAC, 1500, false, &[])).reply(ack());
    del(&mut p, env.root(), &env.del_params(None)).unwrap();
    assert_eq!(p.fake.unused_replies(), 0);
    assert!(env.journal_of(1).is_none());
}

#[test]
fn del_with_the_netns_gone_restores_the_netdev_the_kernel_returned_to_the_host() {
    let env = Env::new();
    let mut p = env.plat();
    script_prepare_plain(&p);
    p.reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(ack());
    add(&mut p, &env.state, &env.params(1, VfSettings::default(), None)).unwrap();
    p.take();
    std::fs::remove_file(&env.netns).unwrap();
    // The kernel moved the VF back into the host as "dev7" when the netns died.
    env.sysfs.set_netdev(1, Some("dev7"));
    p.reply(link(10, "dev7", VF1_MAC, 1500, false, &[])) // locate (host, via sysfs)
        .reply(errno(ENODEV)) // original name free
        .reply(link(10, "dev7", VF1_MAC, 1500, false, &[])) // host_rename reads admin state
        .reply(ack()) // rename
        .reply(link(10, "ens1f0v1", VF1_MAC, 1500, false, &[]))
        .reply(ack()); // up
    let mut del_params = env.del_params(Some(1));
    del_params.netns = None;
    del(&mut p, env.root(), &del_params)
        .unwrap_or_else(|e| panic!("{}", sriov_cni::error::chain(&e)));
    let sent = p.take();
    assert!(sent.contains(&"newlink ifindex=10 name=ens1f0v1".to_owned()), "{sent:?}");
    assert!(!sent.iter().any(|m| m.contains(" netns")), "no pod to move from: {sent:?}");
    assert!(env.journal_of(1).is_none());
}

#[test]
fn del_without_journal_or_state_dir_succeeds_and_sends_nothing() {
    let env = Env::new();
    let mut p = env.plat();
    del(&mut p, env.root(), &env.del_params(Some(1))).unwrap();
    del(&mut p, Path::new("/nonexistent/state"), &env.del_params(None)).unwrap();
    assert_eq!(p.take(), Vec::<String>::new());
}

#[test]
fn userspace_vf_gets_settings_and_pci_id_and_no_netdev_messages() {
    let env = Env::new();
    let mut p = env.plat();
    p.reply(pf_link(1500, Some(&[vf_state(2, "00:00:00:00:00:00")]))).reply(ack());
    let s = VfSettings {
        link_state: Some(VfLinkState::Enable),
        mac: Some(POD_MAC.parse().unwrap()),
        ..VfSettings::default()
    };
    let r = add(&mut p, &env.state, &env.params(2, s, None)).unwrap();
    assert_eq!(
        p.take(),
        vec!["getlink ifindex=0 name=ens1f0", "newlink ifindex=4 vf=2[mac,state]"]
    );
    let json = r.to_json(cni_spec::CniVersion::V1_1_0);
    assert_eq!(json["interfaces"][0]["pciID"], "0000:3b:02.2");
    assert_eq!(json["interfaces"][0]["mac"], POD_MAC);
    let j = env.journal_of(2).unwrap();
    assert_eq!(j.header.mode, Mode::Userspace);
    assert_eq!(j.undo_log(), vec![Undo::RestoreVf]);
    // DEL restores the VF settings only (the mode is in the journal: no netdev lookups).
    let mut changed = vf_state(2, POD_MAC);
    changed.link_state = Some(VfLinkState::Enable);
    p.reply(pf_link(1500, Some(&[changed]))).reply(ack());
    del(&mut p, env.root(), &env.del_params(Some(2))).unwrap();
    assert_eq!(
        p.take(),
        vec!["getlink ifindex=0 name=ens1f0", "newlink ifindex=4 vf=2[mac,state]"]
    );
    assert!(env.journal_of(2).is_none());
}

#[test]
fn mtu_above_the_pf_and_taken_ifname_fail_before_any_change() {
    let env = Env::new();
    let mut p = env.plat();
    p.reply(pf_link(1500, None));
    let e = add(&mut p, &env.state, &env.params(1, VfSettings::default(), Some(9000))).unwrap_err();
    let c = e.to_cni();
    assert_eq!((c.code().get(), c.msg()), (7, "invalid network configuration: mtu"));
    assert!(c.details().contains("exceeds the MTU 1500 of PF ens1f0"), "{}", c.details());

    p.take();
    p.reply(link(10, "ens1f0v1", VF1_MAC, 1500, true, &[])).reply(link(
        3,
        "net1",
        POD_MAC,
        1500,
        true,
        &[],
    ));
    let e = add(&mut p, &env.state, &env.params(1, VfSettings::default(), None)).unwrap_err();
    assert_eq!(e.to_cni().code().get(), 4);
    assert!(e.to_string().contains("net1 already exists"), "{e}");
    assert!(p.take().iter().all(|m| m.starts_with("getlink")), "only reads");
    assert!(env.journal_of(1).is_none());
}

#[test]
fn not_a_vf_and_unknown_device_are_config_errors() {
    let env = Env::new();
    let mut p = env.plat();
    let mut params = env.params(1, VfSettings::default(), None);
    params.device = "0000:3b:00.0".parse().unwrap();
    let e = add(&mut p, &env.state, &params).unwrap_err().to_cni();
    assert_eq!(e.code().get(), 7);
    assert!(e.details().contains("not an SR-IOV VF"), "{}", e.details());
    params.device = "0000:99:00.1".parse().unwrap();
    let e = add(&mut p, &env.state, &params).unwrap_err().to_cni();
    assert_eq!(e.code().get(), 7);
    assert_eq!(p.take(), Vec::<String>::new());
}

#[test]
fn a_vf_held_by_a_live_pod_is_refused_and_a_stale_holder_is_cleared() {
    let env = Env::new();
    let mut p = env.plat();
    p.reply(pf_link(1500, Some(&[vf_state(2, "00:00:00:00:00:00")])));
    add(&mut p, &env.state, &env.params(2, VfSettings::default(), None)).unwrap();
    p.take();
    // Another container asks for the same VF while the holder's netns lives.
    let mut other = env.params(2, VfSettings::default(), None);
    other.container_id = "other";
    let e = add(&mut p, &env.state, &other).unwrap_err().to_cni();
    assert_eq!(e.code().get(), 11);
    assert!(e.msg().contains("in use by container c0ffee"), "{}", e.msg());
    assert_eq!(p.take(), Vec::<String>::new());

    // The holder's netns is gone (its DEL never came): the VF is restored, then handed over.
    std::fs::remove_file(&env.netns).unwrap();
    let new_netns = netns_file(env._tmp.path(), "pod2");
    other.netns = &new_netns;
    // (The holder set nothing through the PF, so there is nothing to restore.)
    p.reply(pf_link(1500, Some(&[vf_state(2, "00:00:00:00:00:00")]))); // new snapshot
    add(&mut p, &env.state, &other).unwrap();
    assert_eq!(p.take(), vec!["getlink ifindex=0 name=ens1f0"]);
    assert_eq!(env.journal_of(2).unwrap().header.attachment.container_id, "other");
}

#[test]
fn gc_restores_only_attachments_not_in_the_valid_list() {
    let env = Env::new();
    let mut p = env.plat();
    p.reply(pf_link(1500, Some(&[vf_state(2, "00:00:00:00:00:00")])));
    add(&mut p, &env.state, &env.params(2, VfSettings::default(), None)).unwrap();
    let keep = cni_spec::ValidAttachments::new(&[cni_spec::GcAttachment {
        container_id: CID.into(),
        ifname: "net1".into(),
    }]);
    assert_eq!(gc(&mut p, env.root(), &keep, false).unwrap(), 0);
    assert!(env.journal_of(2).is_some());
    p.take();
    assert_eq!(gc(&mut p, env.root(), &cni_spec::ValidAttachments::default(), false).unwrap(), 1);
    assert_eq!(
        p.take(),
        Vec::<String>::new(),
        "nothing was set through the PF: nothing to restore"
    );
    assert!(env.journal_of(2).is_none());
}

#[test]
fn journal_from_an_earlier_boot_only_releases_ipam() {
    let env = Env::new();
    let mut p = env.plat();
    script_prepare_plain(&p);
    p.reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(ack());
    add(&mut p, &env.state, &env.params(1, VfSettings::default(), None)).unwrap();
    p.take();
    p.boot = "boot-2".into();
    del(&mut p, env.root(), &env.del_params(Some(1))).unwrap();
    assert_eq!(p.take(), Vec::<String>::new(), "no kernel work for a previous boot's state");
    assert!(env.journal_of(1).is_none());
}

#[test]
fn check_compares_pod_link_and_pf_settings_with_the_journal() {
    let env = Env::new();
    let mut p = env.plat();
    let before = vf_state(1, "00:00:00:00:00:00");
    script_prepare(&p, Some(std::slice::from_ref(&before)));
    p.reply(ack()).reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[]));
    p.reply(ack()).reply(ack());
    let s = settings();
    let r = add(&mut p, &env.state, &env.params(1, s, None)).unwrap();
    p.take();
    let params = CheckParams {
        container_id: CID,
        ifname: "net1",
        netns: &env.netns,
        device: vf_addr(1).parse().unwrap(),
        prev_result: Some(&r),
        ipam: None,
    };
    let mut applied = before.clone();
    applied.mac = POD_MAC.parse().unwrap();
    applied.vlan = 100;
    applied.spoofchk = Some(false);
    // All good.
    p.reply(link(10, "net1", POD_MAC, 1500, true, &[]))
        .reply(pf_link(9000, Some(std::slice::from_ref(&applied))));
    check(&mut p, env.root(), &params)
        .unwrap_or_else(|e| panic!("{}", sriov_cni::error::chain(&e)));
    // Someone changed the VLAN behind our back.
    let mut drifted = applied.clone();
    drifted.vlan = 7;
    p.reply(link(10, "net1", POD_MAC, 1500, true, &[])).reply(pf_link(9000, Some(&[drifted])));
    let e = check(&mut p, env.root(), &params).unwrap_err().to_cni();
    assert_eq!(e.code().get(), 103);
    assert!(e.msg().contains("VF vlan: expected 100 qos 0 802.1Q, found 7"), "{}", e.msg());
    // The interface is down / has another MAC / is gone.
    p.reply(link(10, "net1", POD_MAC, 1500, false, &[]));
    assert!(check(&mut p, env.root(), &params).unwrap_err().to_string().contains("state of net1"));
    p.reply(link(10, "net1", VF1_MAC, 1500, true, &[]));
    assert!(check(&mut p, env.root(), &params).unwrap_err().to_string().contains("mac of net1"));
    p.reply(errno(ENODEV));
    assert!(check(&mut p, env.root(), &params).unwrap_err().to_string().contains("interface net1"));
    // Another attachment.
    let mut other = params.clone();
    other.container_id = "someone-else";
    assert!(check(&mut p, env.root(), &other).unwrap_err().to_string().contains("holder of VF"));
}

/// An IPAM plugin script that logs its calls and hands out 192.0.2.7/24.
fn fake_ipam(dir: &Path) -> sriov_cni::journal::IpamCall {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("fake-ipam");
    let log = dir.join("ipam.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME\" >> {}\n\
             [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"192.0.2.7/24\",\
             \"gateway\":\"192.0.2.1\"}}],\"routes\":[{{\"dst\":\"0.0.0.0/0\"}}]}}'\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    sriov_cni::journal::IpamCall {
        plugin: "fake-ipam".into(),
        stdin: r#"{"cniVersion":"1.0.0","name":"n","type":"sriov","ipam":{"type":"fake-ipam"}}"#
            .into(),
        args: None,
        cni_path: dir.display().to_string(),
        cni_version: "1.0.0".into(),
    }
}

#[test]
fn ipam_addresses_routes_and_announcements_and_ipam_release_on_rollback() {
    let env = Env::new();
    let mut p = env.plat();
    let ipam = fake_ipam(env._tmp.path());
    let log = env._tmp.path().join("ipam.log");
    script_prepare_plain(&p);
    p.reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(ack()); // move, read, up
    p.reply(ack()).reply(ack()); // address, route
    let mut params = env.params(1, VfSettings::default(), None);
    params.ipam = Some(ipam.clone());
    let r = add(&mut p, &env.state, &params).unwrap();
    let sent = p.take();
    assert_eq!(
        &sent[sent.len() - 2..],
        ["newaddr ifindex=10 192.0.2.7/24", "newroute table=254 via 192.0.2.1 oif=10"]
    );
    assert_eq!(p.announced, vec![("net1".to_owned(), vec!["192.0.2.7".parse().unwrap()])]);
    let json = r.to_json(cni_spec::CniVersion::V1_0_0);
    assert_eq!(
        json["ips"][0],
        serde_json::json!({"address": "192.0.2.7/24", "gateway": "192.0.2.1", "interface": 0})
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("ADD {CID} net1\n"));
    assert!(matches!(env.journal_of(1).unwrap().undo_log().last(), Some(Undo::IpamDel(_))));
    p.take();

    // A route the kernel refuses: everything is undone, the address released through IPAM.
    let env = Env::new();
    let mut p = env.plat();
    let ipam = fake_ipam(env._tmp.path());
    let log = env._tmp.path().join("ipam.log");
    script_prepare_plain(&p);
    p.reply(ack()).reply(link(10, "net1", VF1_MAC, 1500, false, &[])).reply(ack());
    p.reply(ack()).reply(errno(EINVAL)); // address ok, route refused
    p.reply(link(10, "net1", VF1_MAC, 1500, true, &[])).reply(errno(ENODEV)).reply(ack()); // move back
    p.reply(link(10, "ens1f0v1", VF1_MAC, 1500, false, &[])).reply(ack()); // up again
    let mut params = env.params(1, VfSettings::default(), None);
    params.ipam = Some(ipam);
    let e = add(&mut p, &env.state, &params).unwrap_err().to_cni();
    assert!(e.details().contains("add route 0.0.0.0/0 via 192.0.2.1 dev net1"), "{}", e.details());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("ADD {CID} net1\nDEL {CID} net1\n"));
    assert!(p.announced.is_empty());
    assert!(env.journal_of(1).is_none());
    assert_eq!(p.fake.unused_replies(), 0);
}
