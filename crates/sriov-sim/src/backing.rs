//! Optional veth backing: every PF netdev and every kernel-driver VF netdev is a real
//! veth in the "node" netns, named and addressed like the NIC's netdev, whose peer sits
//! in a private "wire" netns on one bridge per PF (an embedded switch).
//!
//! Identity across renames and netns moves is kept with `IFLA_IFALIAS`
//! (`sriov-sim:<pci address>`), which follows the device wherever it goes. The sysfs
//! netdev view is served from a cache of the node netns' links, refreshed whenever a
//! link event arrives on a netlink socket subscribed to `RTNLGRP_LINK` in that netns
//! (events are queued synchronously by the kernel, so the view is consistent as soon
//! as the `ip link` call that moved a link has returned).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
    State,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::SimError;
use crate::model::{LinkInfo, OperState};
use crate::netns;
use crate::pci::PciAddr;
use crate::spec::MacAddr;

/// `IFLA_IFALIAS` prefix tagging the sim's links.
pub const ALIAS_PREFIX: &str = "sriov-sim:";
const RTNLGRP_LINK: u32 = 1;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x1_0000;
const IFF_DORMANT: u32 = 0x2_0000;

/// What to create for one netdev.
#[derive(Clone, Debug)]
pub struct LinkSpec {
    /// Owning PCI device.
    pub addr: PciAddr,
    /// Netdev name in the node netns.
    pub name: String,
    /// MAC address.
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// Bring the node end up.
    pub admin_up: bool,
    /// Index of the PF (selects the bridge).
    pub pf_index: usize,
    /// VF index, `None` for the PF itself.
    pub vf_index: Option<u16>,
    /// Current physical link state of the PF (wire end up or down).
    pub carrier: bool,
}

/// A netlink route socket bound in one netns.
struct Nl {
    sock: Socket,
    seq: u32,
    what: &'static str,
}

impl Nl {
    fn open(what: &'static str) -> Result<Self, SimError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|source| SimError::Netlink {
            op: "socket",
            name: what.to_owned(),
            source,
        })?;
        sock.bind_auto().map_err(|source| SimError::Netlink {
            op: "bind",
            name: what.to_owned(),
            source,
        })?;
        Ok(Self { sock, seq: 0, what })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Receives messages for `seq` until the ACK/error (or DONE for dumps), feeding
    /// inner messages to `each`.
    fn recv_until_done(
        &mut self,
        seq: u32,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            buf.clear();
            buf.reserve(64 * 1024);
            let n = self.sock.recv(&mut buf, 0)?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(()),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => each(m),
                    _ => {}
                }
            }
        }
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
        name: &str,
    ) -> Result<(), SimError> {
        let what = self.what;
        let wrap = |source| SimError::Netlink { op, name: format!("{name} ({what})"), source };
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK | flags).map_err(wrap)?;
        self.recv_until_done(seq, |_| {}).map_err(|source| SimError::Netlink {
            op,
            name: format!("{name} ({what})"),
            source,
        })
    }

    fn dump_links(&mut self) -> Result<Vec<LinkMessage>, SimError> {
        let wrap = |source| SimError::Netlink {
            op: "RTM_GETLINK dump",
            name: "all links".to_owned(),
            source,
        };
        let seq = self
            .send(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_REQUEST | NLM_F_DUMP)
            .map_err(wrap)?;
        let mut out = Vec::new();
        self.recv_until_done(seq, |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                out.push(l);
            }
        })
        .map_err(wrap)?;
        Ok(out)
    }

    fn index_of(&mut self, name: &str) -> Result<u32, SimError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let seq =
            self.send(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST).map_err(|source| {
                SimError::Netlink { op: "RTM_GETLINK", name: name.to_owned(), source }
            })?;
        let mut index = None;
        self.recv_until_done_or_one(seq, &mut index).map_err(|source| SimError::Netlink {
            op: "RTM_GETLINK",
            name: name.to_owned(),
            source,
        })?;
        index.ok_or_else(|| SimError::Netlink {
            op: "RTM_GETLINK",
            name: name.to_owned(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })
    }

    /// A non-dump GET answers with exactly one message (or an error).
    fn recv_until_done_or_one(&mut self, seq: u32, index: &mut Option<u32>) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        buf.clear();
        let n = self.sock.recv(&mut buf, 0)?;
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..n])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if msg.header.sequence_number != seq {
            return Err(io::Error::other("netlink sequence mismatch"));
        }
        match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                *index = Some(l.header.index);
                Ok(())
            }
            NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
            _ => Ok(()),
        }
    }

    fn set_link(
        &mut self,
        name: &str,
        up: Option<bool>,
        extra: Vec<LinkAttribute>,
        op: &'static str,
    ) -> Result<(), SimError> {
        let mut msg = LinkMessage::default();
        if let Some(up) = up {
            msg.header.flags = if up { LinkFlags::Up } else { LinkFlags::empty() };
            msg.header.change_mask = LinkFlags::Up;
        }
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.extend(extra);
        self.request(RouteNetlinkMessage::SetLink(msg), 0, op, name)
    }

    fn delete_link(&mut self, name: &str) -> Result<(), SimError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.request(RouteNetlinkMessage::DelLink(msg), 0, "RTM_DELLINK", name)
    }
}

/// The veth backing of a simulated host.
pub struct Backing {
    node_path: PathBuf,
    wire_ns: OwnedFd,
    node: Nl,
    wire: Nl,
    events: Socket,
    /// PF index -> bridge name (created on first use).
    bridges: BTreeMap<usize, String>,
    /// Device -> (wire peer name, PF index).
    peers: BTreeMap<PciAddr, (String, usize)>,
    /// Node-netns view of the sim's links, by device.
    cache: HashMap<PciAddr, LinkInfo>,
    stale: bool,
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backing")
            .field("node_netns", &self.node_path)
            .field("links", &self.peers.len())
            .finish()
    }
}

impl Backing {
    /// Attaches to the node netns at `node_netns` and creates the private wire netns.
    /// Refuses the root netns.
    pub fn new(node_netns: &Path) -> Result<Self, SimError> {
        if netns::is_root_netns(node_netns)? {
            return Err(SimError::RootNetns { path: node_netns.to_owned() });
        }
        let node_fd = netns::open_netns(node_netns)?;
        let (node, events) = netns::in_netns(node_fd.as_fd(), "node netns", || {
            let node = Nl::open("node netns")?;
            let mut events = Socket::new(NETLINK_ROUTE).map_err(|source| SimError::Netlink {
                op: "socket",
                name: "node netns link events".to_owned(),
                source,
            })?;
            events
                .bind(&SocketAddr::new(0, 0))
                .and_then(|_| events.add_membership(RTNLGRP_LINK))
                .and_then(|_| events.set_non_blocking(true))
                .map_err(|source| SimError::Netlink {
                    op: "subscribe RTNLGRP_LINK",
                    name: "node netns".to_owned(),
                    source,
                })?;
            Ok((node, events))
        })?;
        let (wire_ns, wire) = netns::new_netns(|| Nl::open("wire netns"))?;
        tracing::info!(node_netns = %node_netns.display(), "sim: veth backing attached");
        Ok(Self {
            node_path: node_netns.to_owned(),
            wire_ns,
            node,
            wire,
            events,
            bridges: BTreeMap::new(),
            peers: BTreeMap::new(),
            cache: HashMap::new(),
            stale: true,
        })
    }

    fn bridge(&mut self, pf_index: usize) -> Result<String, SimError> {
        if let Some(b) = self.bridges.get(&pf_index) {
            return Ok(b.clone());
        }
        let name = format!("br{pf_index}");
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.clone()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![NlLinkInfo::Kind(InfoKind::Bridge)]));
        self.wire.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            "RTM_NEWLINK bridge",
            &name,
        )?;
        self.bridges.insert(pf_index, name.clone());
        Ok(name)
    }

    /// The node netns path this backing was attached to.
    pub fn node_netns(&self) -> &Path {
        &self.node_path
    }

    /// Creates the veth for one netdev: node end `spec.name` (MAC, MTU, alias tag, up if
    /// asked), wire end enslaved to the PF's bridge and up if the PF has carrier.
    /// Returns the node end's interface index.
    pub fn create_link(&mut self, spec: &LinkSpec) -> Result<u32, SimError> {
        let bridge = self.bridge(spec.pf_index)?;
        let peer = match spec.vf_index {
            None => format!("p{}", spec.pf_index),
            Some(v) => format!("p{}v{v}", spec.pf_index),
        };
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes.push(LinkAttribute::IfName(peer.clone()));
        peer_msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
        peer_msg.attributes.push(LinkAttribute::NetNsFd(self.wire_ns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(spec.name.clone()));
        msg.attributes.push(LinkAttribute::Address(spec.mac.0.to_vec()));
        msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Veth),
            NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.node.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            "RTM_NEWLINK veth",
            &spec.name,
        )?;
        self.peers.insert(spec.addr, (peer.clone(), spec.pf_index));
        // The alias cannot be given at creation (rtnl_create_link ignores IFLA_IFALIAS).
        self.node.set_link(
            &spec.name,
            Some(spec.admin_up),
            vec![LinkAttribute::IfAlias(format!("{ALIAS_PREFIX}{}", spec.addr))],
            "RTM_SETLINK ifalias",
        )?;
        let br_index = self.wire.index_of(&bridge)?;
        self.wire.set_link(
            &peer,
            Some(spec.carrier),
            vec![LinkAttribute::Controller(br_index)],
            "RTM_SETLINK master",
        )?;
        let ifindex = self.node.index_of(&spec.name)?;
        self.stale = true;
        tracing::debug!(device = %spec.addr, name = %spec.name, peer, ifindex, "sim: veth created");
        Ok(ifindex)
    }

    /// Deletes the veth of `addr` (through its wire end, so it works wherever the node
    /// end currently is, pod netns included).
    pub fn delete_link(&mut self, addr: PciAddr) -> Result<(), SimError> {
        let Some((peer, _)) = self.peers.remove(&addr) else {
            return Ok(());
        };
        self.stale = true;
        match self.wire.delete_link(&peer) {
            Err(SimError::Netlink { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Sets the wire ends of a PF and all its VFs down or up: the node ends lose or
    /// regain carrier.
    pub fn set_pf_carrier(&mut self, pf_index: usize, up: bool) -> Result<(), SimError> {
        let peers: Vec<String> =
            self.peers.values().filter(|(_, pf)| *pf == pf_index).map(|(p, _)| p.clone()).collect();
        for p in peers {
            self.wire.set_link(&p, Some(up), Vec::new(), "RTM_SETLINK carrier")?;
        }
        self.stale = true;
        Ok(())
    }

    /// Drains link events; re-dumps the node netns if anything happened. Returns the
    /// devices whose link appeared, vanished or was renamed in the node netns (their
    /// part of the tree must be re-rendered).
    pub fn refresh(&mut self) -> Vec<PciAddr> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            buf.clear();
            match self.events.recv(&mut buf, 0) {
                Ok(0) => break,
                Ok(_) => self.stale = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ENOBUFS: events were lost; re-dump to be safe.
                    tracing::debug!(error = %e, "sim: link event socket");
                    self.stale = true;
                    break;
                }
            }
        }
        if !self.stale {
            return Vec::new();
        }
        let links = match self.node.dump_links() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "sim: cannot dump node netns links");
                return Vec::new();
            }
        };
        self.stale = false;
        let mut cache = HashMap::new();
        for l in links {
            if let Some((addr, info)) = parse_link(&l) {
                cache.insert(addr, info);
            }
        }
        let name_of =
            |c: &HashMap<PciAddr, LinkInfo>, a: &PciAddr| c.get(a).map(|i| i.name.clone());
        let changed: BTreeSet<PciAddr> = cache
            .keys()
            .chain(self.cache.keys())
            .filter(|a| name_of(&cache, a) != name_of(&self.cache, a))
            .copied()
            .collect();
        self.cache = cache;
        changed.into_iter().collect()
    }

    /// The node-netns view of the link of `addr`, if it is there.
    pub fn link(&self, addr: PciAddr) -> Option<&LinkInfo> {
        self.cache.get(&addr)
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        let peers: Vec<String> = self.peers.values().map(|(p, _)| p.clone()).collect();
        for p in peers {
            if let Err(e) = self.wire.delete_link(&p) {
                tracing::debug!(peer = p, error = %e, "sim: deleting veth at teardown");
            }
        }
        let bridges: Vec<String> = self.bridges.values().cloned().collect();
        for b in bridges {
            if let Err(e) = self.wire.delete_link(&b) {
                tracing::debug!(bridge = b, error = %e, "sim: deleting bridge at teardown");
            }
        }
        // Closing wire_ns (and the wire socket) lets the kernel destroy the wire netns.
    }
}

fn parse_link(l: &LinkMessage) -> Option<(PciAddr, LinkInfo)> {
    let mut alias = None;
    let mut name = None;
    let mut mac = MacAddr([0; 6]);
    let mut mtu = 0;
    let mut carrier = false;
    let mut oper = OperState::Unknown;
    for a in &l.attributes {
        match a {
            LinkAttribute::IfAlias(s) => alias = Some(s.as_str()),
            LinkAttribute::IfName(s) => name = Some(s.clone()),
            LinkAttribute::Address(b) if b.len() == 6 => {
                mac.0.copy_from_slice(b);
            }
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::Carrier(c) => carrier = *c != 0,
            LinkAttribute::OperState(s) => {
                oper = match s {
                    State::Up => OperState::Up,
                    // A veth whose peer is down reports lowerlayerdown (it has an iflink);
                    // a physical NIC without carrier reports down.
                    State::Down | State::LowerLayerDown => OperState::Down,
                    State::NotPresent => OperState::NotPresent,
                    State::Testing => OperState::Testing,
                    State::Dormant => OperState::Dormant,
                    _ => OperState::Unknown,
                }
            }
            _ => {}
        }
    }
    let addr: PciAddr = alias?.strip_prefix(ALIAS_PREFIX)?.parse().ok()?;
    let flags = l.header.flags.bits();
    Some((
        addr,
        LinkInfo {
            name: name?,
            ifindex: l.header.index,
            mac,
            mtu,
            admin_up: flags & 1 != 0,
            carrier,
            operstate: oper,
            flags: flags & !(IFF_RUNNING | IFF_LOWER_UP | IFF_DORMANT),
        },
    ))
}
