//! Links: lookup, listing, up/down, rename, MAC, MTU, alias, netns moves
//! (with rename-on-move), altnames, veth pairs, deletion, and VF settings
//! through a PF.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    DefaultNla, NLA_F_NESTED, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
    NetlinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
    Prop, State,
};
use tracing::debug;

use crate::client::{Netlink, request};
use crate::error::{Error, Result};
use crate::transport::Transport;
use crate::types::{LinkId, MAX_ALIAS_LEN, Mac, validate_altname, validate_ifname};
use crate::vf::{VfConfig, VfState, build_vf_message, build_vf_messages, parse_vf_info_list};

const IFLA_IFALIAS: u16 = 20;
const IFLA_VFINFO_LIST: u16 = 22;
const IFLA_PROP_LIST: u16 = 52;
const IFLA_ALT_IFNAME: u16 = 53;
/// `sizeof(struct nlmsghdr) + sizeof(struct ifinfomsg)`.
const LINK_ATTRS_OFFSET: usize = 32;

/// `IFF_*` bits of interest (from `<net/if.h>`).
pub mod iff {
    /// Administratively up.
    pub const UP: u32 = 0x1;
    /// Broadcast capable.
    pub const BROADCAST: u32 = 0x2;
    /// Loopback device.
    pub const LOOPBACK: u32 = 0x8;
    /// Operationally running (RFC 2863 up).
    pub const RUNNING: u32 = 0x40;
    /// No ARP.
    pub const NOARP: u32 = 0x80;
    /// Multicast capable.
    pub const MULTICAST: u32 = 0x1000;
    /// Carrier present (driver signals L1 up).
    pub const LOWER_UP: u32 = 0x10000;
}

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OperState {
    /// Unknown.
    #[default]
    Unknown,
    /// Not present.
    NotPresent,
    /// Down.
    Down,
    /// Down because a lower layer is down (no carrier).
    LowerLayerDown,
    /// Testing.
    Testing,
    /// Dormant.
    Dormant,
    /// Up.
    Up,
    /// A value this crate does not know.
    Other(u8),
}

impl From<&State> for OperState {
    fn from(s: &State) -> Self {
        match s {
            State::Unknown => OperState::Unknown,
            State::NotPresent => OperState::NotPresent,
            State::Down => OperState::Down,
            State::LowerLayerDown => OperState::LowerLayerDown,
            State::Testing => OperState::Testing,
            State::Dormant => OperState::Dormant,
            State::Up => OperState::Up,
            State::Other(v) => OperState::Other(*v),
            _ => OperState::Unknown,
        }
    }
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFF_*` flags (see [`iff`]).
    pub flags: u32,
    /// Current MAC address (Ethernet-like links).
    pub mac: Option<Mac>,
    /// Permanent (factory) MAC address.
    pub perm_mac: Option<Mac>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Operational state.
    pub oper_state: OperState,
    /// Carrier (`IFLA_CARRIER`).
    pub carrier: Option<bool>,
    /// `IFLA_INFO_KIND` (`veth`, `bridge`, ...); `None` for plain hardware.
    pub kind: Option<String>,
    /// Interface alias (`ifalias`).
    pub alias: Option<String>,
    /// Alternative names.
    pub alt_names: Vec<String>,
    /// `IFLA_LINK`: the peer (veth) or lower device index.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: netns id (as seen from this netns) of `link`.
    pub link_netnsid: Option<i32>,
    /// Master device (bridge, bond) index.
    pub master: Option<u32>,
    /// Number of VFs (PFs only, when asked for VF info).
    pub num_vf: Option<u32>,
    /// The VFs (PFs only, when asked for VF info).
    pub vfs: Vec<VfState>,
    /// `IFLA_PARENT_DEV_NAME`, e.g. the PCI address `0000:3b:00.0`.
    pub parent_dev: Option<String>,
    /// `IFLA_PARENT_DEV_BUS_NAME`, e.g. `pci`.
    pub parent_bus: Option<String>,
    /// `IFLA_PHYS_PORT_NAME`.
    pub phys_port_name: Option<String>,
}

impl Link {
    /// `IFF_UP`.
    pub fn is_up(&self) -> bool {
        self.flags & iff::UP != 0
    }
    /// `IFF_RUNNING`.
    pub fn is_running(&self) -> bool {
        self.flags & iff::RUNNING != 0
    }
    /// `IFF_LOWER_UP` (carrier).
    pub fn has_lower_up(&self) -> bool {
        self.flags & iff::LOWER_UP != 0
    }

    /// Builds a link from a parsed message. `raw` is the whole netlink
    /// message the parse came from; the VF list is read from it (see
    /// [`parse_vf_info_list`] for why raw).
    pub fn from_message(m: &LinkMessage, raw: Option<&[u8]>) -> Result<Link> {
        let mut l = Link { index: m.header.index, flags: m.header.flags.bits(), ..Link::default() };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(b) if b.len() == 6 => l.mac = Mac::from_slice(b),
                LinkAttribute::PermAddress(b) if b.len() == 6 => l.perm_mac = Mac::from_slice(b),
                LinkAttribute::Mtu(v) => l.mtu = Some(*v),
                LinkAttribute::OperState(s) => l.oper_state = s.into(),
                LinkAttribute::Carrier(c) => l.carrier = Some(*c != 0),
                LinkAttribute::IfAlias(s) => l.alias = Some(s.clone()),
                LinkAttribute::PropList(props) => {
                    for p in props {
                        if let Prop::AltIfName(n) = p {
                            l.alt_names.push(n.clone());
                        }
                    }
                }
                LinkAttribute::Link(v) => l.link = Some(*v),
                LinkAttribute::LinkNetNsId(v) => l.link_netnsid = Some(*v),
                LinkAttribute::Controller(v) => l.master = Some(*v),
                LinkAttribute::NumVf(v) => l.num_vf = Some(*v),
                LinkAttribute::ParentDevName(s) => l.parent_dev = Some(s.clone()),
                LinkAttribute::ParentDevBusName(s) => l.parent_bus = Some(s.clone()),
                LinkAttribute::PhysPortName(s) => l.phys_port_name = Some(s.clone()),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(list) = raw.map(|r| raw_link_attr(r, IFLA_VFINFO_LIST)).transpose()?.flatten() {
            l.vfs = parse_vf_info_list(list)?;
        }
        Ok(l)
    }
}

/// Finds a top-level attribute in a raw `RTM_NEWLINK` message.
fn raw_link_attr(raw: &[u8], kind: u16) -> Result<Option<&[u8]>> {
    let Some(attrs) = raw.get(LINK_ATTRS_OFFSET..) else {
        return Ok(None);
    };
    let len = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    let attrs = &attrs[..len.saturating_sub(LINK_ATTRS_OFFSET).min(attrs.len())];
    for item in crate::vf::nla_iter(attrs) {
        let (k, v) = item?;
        if k == kind {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Parses one raw `RTM_NEWLINK` netlink message (header included), e.g. a
/// captured GETLINK reply.
pub fn parse_link_message(raw: &[u8]) -> Result<Link> {
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw)
        .map_err(|source| Error::Decode { op: "parse link message".into(), source })?;
    match m.payload {
        netlink_packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
            Link::from_message(&l, Some(raw))
        }
        _ => Err(Error::protocol("parse link message", "not an RTM_NEWLINK")),
    }
}

/// A veth pair to create.
#[derive(Debug, Clone)]
pub struct VethSpec<'a> {
    /// Name of the first end (created in the socket's netns).
    pub name: String,
    /// MAC of the first end.
    pub mac: Option<Mac>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Name of the peer end.
    pub peer_name: String,
    /// MAC of the peer end.
    pub peer_mac: Option<Mac>,
    /// Netns (an open netns file) the peer is created in; `None` keeps it
    /// next to the first end.
    pub peer_netns: Option<BorrowedFd<'a>>,
}

impl<'a> VethSpec<'a> {
    /// A pair with the given names and kernel-chosen MACs and MTU.
    pub fn new(name: impl Into<String>, peer_name: impl Into<String>) -> Self {
        VethSpec {
            name: name.into(),
            mac: None,
            mtu: None,
            peer_name: peer_name.into(),
            peer_mac: None,
            peer_netns: None,
        }
    }
}

fn link_msg(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

fn newlink_ack(m: LinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
    request(RouteNetlinkMessage::NewLink(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// `ip link set dev <index> up|down`.
pub(crate) fn build_set_updown(index: u32, up: bool) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = link_msg(index);
    m.header.change_mask = LinkFlags::Up;
    if up {
        m.header.flags = LinkFlags::Up;
    }
    newlink_ack(m)
}

/// `ip link set dev <index> mtu <mtu>`.
pub(crate) fn build_set_mtu(index: u32, mtu: u32) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = link_msg(index);
    m.attributes.push(LinkAttribute::Mtu(mtu));
    newlink_ack(m)
}

/// `ip link set dev <index> address <mac>`.
pub(crate) fn build_set_mac(index: u32, mac: Mac) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = link_msg(index);
    m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    newlink_ack(m)
}

/// `ip link set dev <index> alias <alias>` (no NUL, as iproute2 sends it;
/// an empty alias clears it).
pub(crate) fn build_set_alias(index: u32, alias: &str) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = link_msg(index);
    m.attributes
        .push(LinkAttribute::Other(DefaultNla::new(IFLA_IFALIAS, alias.as_bytes().to_vec())));
    newlink_ack(m)
}

/// `ip link set dev <index> name <name>`.
pub(crate) fn build_rename(index: u32, name: &str) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = link_msg(index);
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    newlink_ack(m)
}

/// `ip link set dev <index> netns <fd> [name <name>]`: one message, so the
/// device arrives under its new name and cannot collide with a same-named
/// device in the target netns.
pub(crate) fn build_move_to_netns(
    index: u32,
    netns_fd: i32,
    new_name: Option<&str>,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = link_msg(index);
    m.attributes.push(LinkAttribute::NetNsFd(netns_fd));
    if let Some(n) = new_name {
        m.attributes.push(LinkAttribute::IfName(n.to_owned()));
    }
    newlink_ack(m)
}

fn prop_list(names: &[&str]) -> LinkAttribute {
    let mut inner = Vec::new();
    for n in names {
        let value_len = n.len() + 1;
        inner.extend_from_slice(&((4 + value_len) as u16).to_ne_bytes());
        inner.extend_from_slice(&IFLA_ALT_IFNAME.to_ne_bytes());
        inner.extend_from_slice(n.as_bytes());
        inner.push(0);
        while inner.len() % 4 != 0 {
            inner.push(0);
        }
    }
    LinkAttribute::Other(DefaultNla::new(IFLA_PROP_LIST | NLA_F_NESTED, inner))
}

/// `ip link property add dev <index> altname <name>...`.
pub(crate) fn build_add_altnames(
    index: u32,
    names: &[&str],
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = link_msg(index);
    m.attributes.push(prop_list(names));
    request(
        RouteNetlinkMessage::NewLinkProp(m),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE | NLM_F_APPEND,
    )
}

/// `ip link property del dev <index> altname <name>...`.
pub(crate) fn build_del_altnames(
    index: u32,
    names: &[&str],
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = link_msg(index);
    m.attributes.push(prop_list(names));
    request(RouteNetlinkMessage::DelLinkProp(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// The GETLINK `ip -d link show dev <name>` sends: VF info on, stats off.
pub(crate) fn build_get_link(id: &LinkId) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf, LinkExtentMask::SkipStats]));
    match id {
        LinkId::Index(i) => m.header.index = *i,
        LinkId::Name(n) => m.attributes.push(LinkAttribute::IfName(n.clone())),
    }
    request(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST)
}

pub(crate) fn build_create_veth(spec: &VethSpec<'_>) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut peer = LinkMessage::default();
    peer.attributes.push(LinkAttribute::IfName(spec.peer_name.clone()));
    if let Some(mac) = spec.peer_mac {
        peer.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(mtu) = spec.mtu {
        peer.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(fd) = spec.peer_netns {
        peer.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
    }
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
    if let Some(mac) = spec.mac {
        m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(mtu) = spec.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    request(RouteNetlinkMessage::NewLink(m), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
}

/// A resolved link: index plus the name if the caller gave one.
struct Target {
    index: u32,
    name: Option<String>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} (ifindex {})", self.index),
            None => write!(f, "ifindex {}", self.index),
        }
    }
}

impl<T: Transport> Netlink<T> {
    fn resolve(&mut self, id: LinkId) -> Result<Target> {
        match id {
            LinkId::Index(0) => Err(Error::invalid("ifindex", "0 is not an interface")),
            LinkId::Index(index) => Ok(Target { index, name: None }),
            LinkId::Name(name) => {
                validate_ifname(&name).or_else(|e| validate_altname(&name).map_err(|_| e))?;
                let mut m = LinkMessage::default();
                m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
                m.attributes.push(if name.len() > crate::types::MAX_IFNAME_LEN {
                    LinkAttribute::Other(DefaultNla::new(IFLA_ALT_IFNAME, cstr(&name)))
                } else {
                    LinkAttribute::IfName(name.clone())
                });
                let op = format!("getlink {name}");
                match self.get_one(&op, RouteNetlinkMessage::GetLink(m))? {
                    RouteNetlinkMessage::NewLink(l) => {
                        Ok(Target { index: l.header.index, name: Some(name) })
                    }
                    other => Err(Error::protocol(&op, format!("reply {other:?}"))),
                }
            }
        }
    }

    /// Resolves a link to its ifindex (one GETLINK for a name).
    pub fn link_index(&mut self, id: impl Into<LinkId>) -> Result<u32> {
        self.resolve(id.into()).map(|t| t.index)
    }

    /// Looks a link up, VF list included (`IFLA_EXT_MASK` = VF | SKIP_STATS).
    /// A missing link is an error with [`Error::is_not_found`] true.
    pub fn get_link(&mut self, id: impl Into<LinkId>) -> Result<Link> {
        let id = id.into();
        let op = format!("getlink {id}");
        let mut replies = self.send_request_raw(&op, build_get_link(&id), None)?;
        if replies.len() != 1 {
            return Err(Error::protocol(&op, format!("expected 1 reply, got {}", replies.len())));
        }
        let (msg, raw) = replies.remove(0);
        match msg {
            RouteNetlinkMessage::NewLink(l) => Link::from_message(&l, Some(&raw)),
            other => Err(Error::protocol(&op, format!("reply {other:?}"))),
        }
    }

    /// The VFs of a PF (what `ip -d link show <pf>` prints).
    pub fn vf_states(&mut self, pf: impl Into<LinkId>) -> Result<Vec<VfState>> {
        self.get_link(pf).map(|l| l.vfs)
    }

    /// All links of the socket's netns (without VF lists).
    pub fn list_links(&mut self) -> Result<Vec<Link>> {
        let op = "dump links";
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self.dump(op, RouteNetlinkMessage::GetLink(m))?;
        replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(&l, None)),
                _ => None,
            })
            .collect()
    }

    fn link_op(
        &mut self,
        id: LinkId,
        verb: &str,
        suffix: &str,
        build: impl FnOnce(u32) -> NetlinkMessage<RouteNetlinkMessage>,
    ) -> Result<()> {
        let t = self.resolve(id)?;
        let op = format!("{verb} {t}{suffix}");
        debug!(op, "netlink");
        self.send_request(&op, build(t.index)).map(drop)
    }

    /// Sets a link administratively up.
    pub fn set_up(&mut self, id: impl Into<LinkId>) -> Result<()> {
        self.link_op(id.into(), "set up", "", |i| build_set_updown(i, true))
    }

    /// Sets a link administratively down.
    pub fn set_down(&mut self, id: impl Into<LinkId>) -> Result<()> {
        self.link_op(id.into(), "set down", "", |i| build_set_updown(i, false))
    }

    /// Renames a link (it must be down).
    pub fn rename(&mut self, id: impl Into<LinkId>, new_name: &str) -> Result<()> {
        validate_ifname(new_name)?;
        self.link_op(id.into(), "rename", &format!(" to {new_name}"), |i| build_rename(i, new_name))
    }

    /// Sets the MAC address.
    pub fn set_mac(&mut self, id: impl Into<LinkId>, mac: Mac) -> Result<()> {
        self.link_op(id.into(), &format!("set mac {mac} on"), "", |i| build_set_mac(i, mac))
    }

    /// Sets the MTU.
    pub fn set_mtu(&mut self, id: impl Into<LinkId>, mtu: u32) -> Result<()> {
        self.link_op(id.into(), &format!("set mtu {mtu} on"), "", |i| build_set_mtu(i, mtu))
    }

    /// Sets the alias (`ifalias`); an empty string clears it.
    pub fn set_alias(&mut self, id: impl Into<LinkId>, alias: &str) -> Result<()> {
        if alias.len() > MAX_ALIAS_LEN || alias.contains('\0') {
            return Err(Error::invalid(
                "interface alias",
                format!("{alias:?}: at most {MAX_ALIAS_LEN} bytes, no NUL"),
            ));
        }
        self.link_op(id.into(), "set alias on", "", |i| build_set_alias(i, alias))
    }

    /// Moves a link into the netns behind `netns` (an open netns file),
    /// renaming it in the same message when `new_name` is given (youki's
    /// `set_ns_fd`). The kernel refuses the move with `EEXIST` if the name
    /// or one of the link's altnames exists in the target: delete altnames
    /// first ([`Netlink::del_altnames`]).
    pub fn move_to_netns(
        &mut self,
        id: impl Into<LinkId>,
        netns: BorrowedFd<'_>,
        new_name: Option<&str>,
    ) -> Result<()> {
        if let Some(n) = new_name {
            validate_ifname(n)?;
        }
        let fd = netns.as_raw_fd();
        let suffix = match new_name {
            Some(n) => format!(" to netns fd {fd} as {n}"),
            None => format!(" to netns fd {fd}"),
        };
        self.link_op(id.into(), "move", &suffix, |i| build_move_to_netns(i, fd, new_name))
    }

    /// Adds alternative names.
    pub fn add_altnames(&mut self, id: impl Into<LinkId>, names: &[&str]) -> Result<()> {
        for n in names {
            validate_altname(n)?;
        }
        self.link_op(id.into(), &format!("add altname {} on", names.join(",")), "", |i| {
            build_add_altnames(i, names)
        })
    }

    /// Deletes alternative names (`RTM_DELLINKPROP`). A name that is not
    /// there gives an error with [`Error::is_not_found`] true.
    pub fn del_altnames(&mut self, id: impl Into<LinkId>, names: &[&str]) -> Result<()> {
        for n in names {
            validate_altname(n)?;
        }
        self.link_op(id.into(), &format!("del altname {} on", names.join(",")), "", |i| {
            build_del_altnames(i, names)
        })
    }

    /// Deletes one alternative name.
    pub fn del_altname(&mut self, id: impl Into<LinkId>, name: &str) -> Result<()> {
        self.del_altnames(id, &[name])
    }

    /// Creates a veth pair; the peer may be created directly in another netns.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        validate_ifname(&spec.name)?;
        validate_ifname(&spec.peer_name)?;
        let op = format!("create veth {} peer {}", spec.name, spec.peer_name);
        debug!(op, "netlink");
        self.send_request(&op, build_create_veth(spec)).map(drop)
    }

    /// Deletes a link (for a veth, both ends go).
    pub fn delete_link(&mut self, id: impl Into<LinkId>) -> Result<()> {
        self.link_op(id.into(), "dellink", "", |i| {
            request(RouteNetlinkMessage::DelLink(link_msg(i)), NLM_F_REQUEST | NLM_F_ACK)
        })
    }

    /// Applies `cfg` to a VF with ONE message (iproute2's bytes). The kernel
    /// stops at the first failing attribute without undoing earlier ones;
    /// snapshot with [`Netlink::vf_states`] first if you need to restore.
    pub fn set_vf(&mut self, pf: impl Into<LinkId>, cfg: &VfConfig) -> Result<()> {
        let t = self.resolve(pf.into())?;
        let op = format!("setlink vf {} on pf {t}", cfg.vf);
        let msg = build_vf_message(t.index, cfg)?;
        debug!(op, attrs = ?cfg.attrs(), "netlink");
        self.send_request(&op, msg).map(drop)
    }

    /// Applies `cfg` one attribute per message, in the kernel's order,
    /// stopping at the first failure. Returns the attributes applied; the
    /// error names the failing one ([`Error::vf_attr`]).
    pub fn set_vf_each(
        &mut self,
        pf: impl Into<LinkId>,
        cfg: &VfConfig,
    ) -> Result<Vec<crate::vf::VfAttr>> {
        let t = self.resolve(pf.into())?;
        let mut done = Vec::new();
        for (attr, msg) in build_vf_messages(t.index, cfg)? {
            let op = format!("setlink vf {} {attr} on pf {t}", cfg.vf);
            debug!(op, "netlink");
            self.send_request_attr(&op, msg, Some(attr))?;
            done.push(attr);
        }
        Ok(done)
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}
