//! The engine against fakes at its two seams: a sysfs fixture tree in a temp dir and the
//! recording netlink transport. No root needed.

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use sriov_cni::system::{Platform, Pod, PodError};
use sriov_host::HostPaths;
use sriov_netlink::raw::route::RouteNetlinkMessage;
use sriov_netlink::raw::route::link::{
    LinkAttribute, LinkFlags, LinkMessage, LinkVfInfo, Prop, VfInfo, VfInfoLinkState, VfInfoMac,
    VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState,
};
use sriov_netlink::{FakeReply, FakeTransport, Mac, Netlink, Netns, VfState};

pub const PF: &str = "0000:3b:00.0";
pub const PF_NAME: &str = "ens1f0";
pub const PF_INDEX: u32 = 4;

pub const ENODEV: i32 = 19;
pub const EBUSY: i32 = 16;
pub const EINVAL: i32 = 22;
pub const EOPNOTSUPP: i32 = 95;

/// VF `i` of the fixture: `0000:3b:02.i`.
pub fn vf_addr(i: u32) -> String {
    format!("0000:3b:02.{i}")
}

/// A sysfs tree with one PF (`ens1f0`, offset 16, stride 1) and VFs `0000:3b:02.N`.
pub struct Sysfs {
    pub dir: tempfile::TempDir,
}

impl Sysfs {
    pub fn new() -> Sysfs {
        let dir = tempfile::tempdir().unwrap();
        let s = Sysfs { dir };
        let pf = s.dev_dir(PF);
        fs::create_dir_all(s.sys().join("bus/pci/devices")).unwrap();
        for d in ["iavf", "vfio-pci", "i40e"] {
            fs::create_dir_all(s.sys().join("bus/pci/drivers").join(d)).unwrap();
        }
        write(&pf.join("sriov_totalvfs"), "8");
        write(&pf.join("sriov_numvfs"), "8");
        write(&pf.join("sriov_offset"), "16");
        write(&pf.join("sriov_stride"), "1");
        fs::create_dir_all(pf.join("net").join(PF_NAME)).unwrap();
        symlink(
            format!("../../../devices/pci0000:3a/0000:3a:00.0/{PF}"),
            s.sys().join("bus/pci/devices").join(PF),
        )
        .unwrap();
        s
    }

    pub fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    fn dev_dir(&self, addr: &str) -> PathBuf {
        self.sys().join("devices/pci0000:3a/0000:3a:00.0").join(addr)
    }

    /// Adds VF `i` bound to `driver`, with netdev `netdev` in the host if given.
    pub fn vf(&self, i: u32, driver: &str, netdev: Option<&str>) -> &Sysfs {
        let addr = vf_addr(i);
        let d = self.dev_dir(&addr);
        fs::create_dir_all(&d).unwrap();
        symlink(format!("../{PF}"), d.join("physfn")).unwrap();
        symlink(format!("../{addr}"), self.dev_dir(PF).join(format!("virtfn{i}"))).unwrap();
        symlink(format!("../../../../bus/pci/drivers/{driver}"), d.join("driver")).unwrap();
        symlink(
            format!("../../../devices/pci0000:3a/0000:3a:00.0/{addr}"),
            self.sys().join("bus/pci/devices").join(&addr),
        )
        .unwrap();
        if let Some(n) = netdev {
            self.set_netdev(i, Some(n));
        }
        self
    }

    /// Shows VF `i`'s netdev in the host under `name` (None: not in the host).
    pub fn set_netdev(&self, i: u32, name: Option<&str>) {
        let net = self.dev_dir(&vf_addr(i)).join("net");
        let _ = fs::remove_dir_all(&net);
        if let Some(n) = name {
            fs::create_dir_all(net.join(n)).unwrap();
        }
    }

    pub fn paths(&self) -> HostPaths {
        HostPaths::new(self.sys(), self.dir.path().join("dev"))
    }
}

fn write(p: &Path, v: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, format!("{v}\n")).unwrap();
}

/// The engine's platform over the fake transport. Every pod netns path that exists on disk
/// opens (as the test's own netns, which only matters for the fd number in move messages);
/// a missing path is a vanished netns.
pub struct FakePlatform {
    pub paths: HostPaths,
    pub fake: FakeTransport,
    host: Netlink<FakeTransport>,
    host_ns: Netns,
    pub sysctls: Vec<(String, String)>,
    pub announced: Vec<(String, Vec<IpAddr>)>,
    pub boot: String,
}

impl FakePlatform {
    pub fn new(paths: HostPaths) -> FakePlatform {
        let fake = FakeTransport::new();
        FakePlatform {
            paths,
            host: Netlink::new(fake.clone()),
            fake,
            host_ns: Netns::current().unwrap(),
            sysctls: Vec::new(),
            announced: Vec::new(),
            boot: "boot-1".into(),
        }
    }

    pub fn reply(&self, r: FakeReply) -> &Self {
        self.fake.reply(r);
        self
    }

    /// Everything sent so far, summarized, and forgets it.
    pub fn take(&self) -> Vec<String> {
        self.fake.take_sent().iter().map(|m| m.describe()).collect()
    }
}

impl Platform for FakePlatform {
    type T = FakeTransport;

    fn paths(&self) -> &HostPaths {
        &self.paths
    }

    fn host(&mut self) -> &mut Netlink<FakeTransport> {
        &mut self.host
    }

    fn host_netns(&self) -> &Netns {
        &self.host_ns
    }

    fn open_pod(&mut self, path: &Path) -> Result<Pod<FakeTransport>, PodError> {
        if !path.exists() {
            let source = sriov_netlink::Error::Netns {
                op: "open netns",
                path: path.to_owned(),
                source: std::io::Error::from_raw_os_error(2),
            };
            return Err(PodError::Gone { path: path.display().to_string(), source });
        }
        Ok(Pod { netns: Netns::current().unwrap(), nl: Netlink::new(self.fake.clone()) })
    }

    fn open_pod_netns(&mut self, path: &Path) -> Result<Netns, PodError> {
        self.open_pod(path).map(|pod| pod.netns)
    }

    fn enter_pod<R, F>(&mut self, netns: Netns, f: F) -> Result<(Pod<FakeTransport>, R), PodError>
    where
        R: Send,
        F: FnOnce(&mut Self, &mut Pod<FakeTransport>) -> R + Send,
    {
        let mut pod = Pod { netns, nl: Netlink::new(self.fake.clone()) };
        let r = f(self, &mut pod);
        Ok((pod, r))
    }

    fn write_sysctl(
        &mut self,
        _pod: &Netns,
        key: &str,
        value: &str,
    ) -> Result<(), sriov_netlink::Error> {
        self.sysctls.push((key.to_owned(), value.to_owned()));
        Ok(())
    }

    fn announce(
        &mut self,
        _pod: &Netns,
        ifname: &str,
        ips: &[IpAddr],
    ) -> Result<(), sriov_netlink::Error> {
        self.announced.push((ifname.to_owned(), ips.to_vec()));
        Ok(())
    }

    fn boot_id(&self) -> Option<String> {
        Some(self.boot.clone())
    }
}

/// A VF's PF-side state with defaults (spoofchk on, trust off, auto).
pub fn vf_state(vf: u32, mac: &str) -> VfState {
    VfState {
        vf,
        mac: mac.parse().unwrap(),
        vlan: 0,
        qos: 0,
        vlan_proto: Some(sriov_netlink::VlanProto::Dot1Q),
        spoofchk: Some(true),
        trust: Some(false),
        link_state: Some(sriov_netlink::VfLinkState::Auto),
        min_tx_rate: 0,
        max_tx_rate: 0,
        rss_query_en: None,
    }
}

fn vf_infos(s: &VfState) -> LinkVfInfo {
    let ls = match s.link_state {
        Some(sriov_netlink::VfLinkState::Enable) => VfLinkState::Enable,
        Some(sriov_netlink::VfLinkState::Disable) => VfLinkState::Disable,
        _ => VfLinkState::Auto,
    };
    LinkVfInfo(vec![
        VfInfo::Mac(VfInfoMac::new(s.vf, &s.mac.0)),
        VfInfo::Vlan(VfInfoVlan::new(s.vf, u32::from(s.vlan), u32::from(s.qos))),
        VfInfo::Rate(VfInfoRate::new(s.vf, s.min_tx_rate, s.max_tx_rate)),
        VfInfo::SpoofCheck(VfInfoSpoofCheck::new(s.vf, s.spoofchk.unwrap_or(false))),
        VfInfo::LinkState(VfInfoLinkState::new(s.vf, ls)),
        VfInfo::Trust(VfInfoTrust::new(s.vf, s.trust.unwrap_or(false))),
    ])
}

/// The PF's GETLINK reply with its VF list (`None`: a PF that reports none, like a veth).
pub fn pf_link(mtu: u32, vfs: Option<&[VfState]>) -> FakeReply {
    let mut m = LinkMessage::default();
    m.header.index = PF_INDEX;
    m.header.flags = LinkFlags::Up;
    m.attributes.push(LinkAttribute::IfName(PF_NAME.into()));
    m.attributes.push(LinkAttribute::Mtu(mtu));
    if let Some(vfs) = vfs {
        m.attributes.push(LinkAttribute::VfInfoList(vfs.iter().map(vf_infos).collect()));
    }
    FakeReply::Message(RouteNetlinkMessage::NewLink(m))
}

/// A netdev's GETLINK reply.
pub fn link(index: u32, name: &str, mac: &str, mtu: u32, up: bool, altnames: &[&str]) -> FakeReply {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if up {
        m.header.flags = LinkFlags::Up;
    }
    m.attributes.push(LinkAttribute::IfName(name.into()));
    let mac: Mac = mac.parse().unwrap();
    m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    m.attributes.push(LinkAttribute::Mtu(mtu));
    if !altnames.is_empty() {
        m.attributes.push(LinkAttribute::PropList(
            altnames.iter().map(|a| Prop::AltIfName((*a).into())).collect(),
        ));
    }
    FakeReply::Message(RouteNetlinkMessage::NewLink(m))
}

pub fn ack() -> FakeReply {
    FakeReply::Ack
}

pub fn errno(e: i32) -> FakeReply {
    FakeReply::Errno(e)
}

/// A temp "netns" path that exists (the fake opens the test's own netns for it).
pub fn netns_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, "").unwrap();
    p
}

/// Sysctls written, as a map.
pub fn sysctl_map(p: &FakePlatform) -> HashMap<String, String> {
    p.sysctls.iter().cloned().collect()
}
