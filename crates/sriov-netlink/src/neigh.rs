//! Neighbour (ARP / NDP) entries: permanent and proxy (`ip neigh`).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use tracing::debug;

use crate::client::Netlink;
use crate::error::{Error, Result};
use crate::transport::Transport;
use crate::types::{IpFamily, Mac};

/// `NUD_*` state bits.
pub mod nud {
    /// Resolution in progress.
    pub const INCOMPLETE: u16 = 0x01;
    /// Confirmed reachable.
    pub const REACHABLE: u16 = 0x02;
    /// Valid but unconfirmed.
    pub const STALE: u16 = 0x04;
    /// Resolution failed.
    pub const FAILED: u16 = 0x20;
    /// No ARP needed.
    pub const NOARP: u16 = 0x40;
    /// Static.
    pub const PERMANENT: u16 = 0x80;
}

/// The kind of neighbour entry to manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighbourKind {
    /// A static entry mapping the IP to a MAC (`ip neigh replace ... lladdr
    /// ... nud permanent`).
    Permanent,
    /// A proxy entry: answer ARP/NDP for the IP on this link (`ip neigh add
    /// proxy ...`).
    Proxy,
}

/// A neighbour entry to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourSpec {
    /// Interface index.
    pub ifindex: u32,
    /// IP address.
    pub ip: IpAddr,
    /// Link-layer address (required for [`NeighbourKind::Permanent`]).
    pub mac: Option<Mac>,
    /// Kind.
    pub kind: NeighbourKind,
}

/// A neighbour entry as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourInfo {
    /// Interface index.
    pub ifindex: u32,
    /// IP address.
    pub ip: IpAddr,
    /// Link-layer address.
    pub mac: Option<Mac>,
    /// `NUD_*` state (see [`nud`]).
    pub state: u16,
    /// A proxy entry.
    pub proxy: bool,
}

fn message(spec: &NeighbourSpec) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = IpFamily::of(&spec.ip).af();
    m.header.ifindex = spec.ifindex;
    m.header.state = NeighbourState::Permanent;
    if spec.kind == NeighbourKind::Proxy {
        m.header.flags = NeighbourFlags::Proxy;
    }
    m.attributes.push(NeighbourAttribute::Destination(match spec.ip {
        IpAddr::V4(v) => NeighbourAddress::Inet(v),
        IpAddr::V6(v) => NeighbourAddress::Inet6(v),
    }));
    if let (NeighbourKind::Permanent, Some(mac)) = (spec.kind, spec.mac) {
        m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    }
    m
}

fn to_info(m: &NeighbourMessage) -> Option<NeighbourInfo> {
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(IpAddr::V4(*v)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                ip = Some(IpAddr::V6(*v))
            }
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => mac = Mac::from_slice(b),
            _ => {}
        }
    }
    Some(NeighbourInfo {
        ifindex: m.header.ifindex,
        ip: ip?,
        mac,
        state: u16::from(m.header.state),
        proxy: m.header.flags.contains(NeighbourFlags::Proxy),
    })
}

impl<T: Transport> Netlink<T> {
    /// Adds or replaces a permanent or proxy neighbour entry.
    pub fn add_neighbour(&mut self, spec: &NeighbourSpec) -> Result<()> {
        if spec.kind == NeighbourKind::Permanent && spec.mac.is_none() {
            return Err(Error::invalid(
                "neighbour",
                format!("permanent entry for {} needs a mac", spec.ip),
            ));
        }
        let op = format!("add {:?} neighbour {} on ifindex {}", spec.kind, spec.ip, spec.ifindex)
            .to_lowercase();
        debug!(op, "netlink");
        self.ack(
            &op,
            RouteNetlinkMessage::NewNeighbour(message(spec)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Deletes a neighbour entry; a missing one gives `ENOENT`
    /// ([`Error::is_not_found`]).
    pub fn del_neighbour(&mut self, spec: &NeighbourSpec) -> Result<()> {
        let op =
            format!("delete {:?} neighbour {} on ifindex {}", spec.kind, spec.ip, spec.ifindex)
                .to_lowercase();
        debug!(op, "netlink");
        let mut m = message(spec);
        m.attributes.retain(|a| !matches!(a, NeighbourAttribute::LinkLayerAddress(_)));
        self.ack(&op, RouteNetlinkMessage::DelNeighbour(m), 0)
    }

    /// Lists neighbour entries of a family, optionally of one link. Proxy
    /// entries live in a separate table: `proxy` selects it.
    pub fn list_neighbours(
        &mut self,
        family: IpFamily,
        ifindex: Option<u32>,
        proxy: bool,
    ) -> Result<Vec<NeighbourInfo>> {
        let mut m = NeighbourMessage::default();
        m.header.family = family.af();
        if proxy {
            m.header.flags = NeighbourFlags::Proxy;
        }
        let replies =
            self.dump(&format!("dump {family} neighbours"), RouteNetlinkMessage::GetNeighbour(m))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(n) => to_info(n),
                _ => None,
            })
            .filter(|n| ifindex.is_none_or(|i| n.ifindex == i))
            .filter(|n| n.proxy == proxy)
            .collect())
    }
}
