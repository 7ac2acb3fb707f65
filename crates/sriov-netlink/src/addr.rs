//! Interface addresses (`ip addr add/del/show`).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use tracing::debug;

use crate::client::Netlink;
use crate::error::Result;
use crate::transport::Transport;
use crate::types::{IpFamily, IpPrefix, LinkId};

/// `IFA_F_*` bits (from `<linux/if_addr.h>`).
pub mod ifa {
    /// Skip duplicate address detection (IPv6).
    pub const NODAD: u32 = 0x02;
    /// DAD failed.
    pub const DADFAILED: u32 = 0x08;
    /// DAD still running; not usable yet.
    pub const TENTATIVE: u32 = 0x40;
    /// Static (not from autoconf).
    pub const PERMANENT: u32 = 0x80;
    /// Do not add the prefix route.
    pub const NOPREFIXROUTE: u32 = 0x200;
}

/// Options for [`Netlink::add_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressOptions {
    /// `nodad`: usable at once, no duplicate address detection (IPv6).
    pub nodad: bool,
    /// `noprefixroute`: do not install the connected route.
    pub noprefixroute: bool,
}

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInfo {
    /// Interface index.
    pub index: u32,
    /// Address and prefix length.
    pub prefix: IpPrefix,
    /// `IFA_F_*` flags (see [`ifa`]).
    pub flags: u32,
    /// Scope (`RT_SCOPE_*`: 0 universe, 253 link, 254 host).
    pub scope: u8,
    /// Label (IPv4).
    pub label: Option<String>,
}

impl AddressInfo {
    /// DAD has not finished yet.
    pub fn is_tentative(&self) -> bool {
        self.flags & ifa::TENTATIVE != 0
    }
    /// DAD found a duplicate.
    pub fn is_dad_failed(&self) -> bool {
        self.flags & ifa::DADFAILED != 0
    }
}

pub(crate) fn address_message(index: u32, prefix: &IpPrefix, flags: u32) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = prefix.family().af();
    m.header.prefix_len = prefix.len();
    m.header.index = index;
    m.header.flags = AddressHeaderFlags::from_bits_retain((flags & 0xff) as u8);
    m.attributes.push(AddressAttribute::Local(prefix.addr()));
    m.attributes.push(AddressAttribute::Address(prefix.addr()));
    if let Some(brd) = prefix.broadcast() {
        m.attributes.push(AddressAttribute::Broadcast(brd));
    }
    if flags != 0 {
        m.attributes.push(AddressAttribute::Flags(AddressFlags::from_bits_retain(flags)));
    }
    m
}

fn to_info(m: &AddressMessage) -> Option<AddressInfo> {
    let mut local = None;
    let mut address = None;
    let mut label = None;
    let mut flags = u32::from(m.header.flags.bits());
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
    // point-to-point links and equal to IFA_LOCAL otherwise.
    let addr: IpAddr = local.or(address)?;
    Some(AddressInfo {
        index: m.header.index,
        prefix: IpPrefix::new(addr, m.header.prefix_len).ok()?,
        flags,
        scope: u8::from(m.header.scope),
        label,
    })
}

impl<T: Transport> Netlink<T> {
    /// Adds an address (`ip addr add <prefix> dev <link> [nodad] [noprefixroute]`).
    /// IPv4 prefixes shorter than /31 get their broadcast address, as `ip
    /// addr add ... brd +` would. An existing address gives `EEXIST`.
    pub fn add_address(
        &mut self,
        link: impl Into<LinkId>,
        prefix: IpPrefix,
        opts: AddressOptions,
    ) -> Result<()> {
        let index = self.link_index(link)?;
        let mut flags = 0;
        if opts.nodad {
            flags |= ifa::NODAD;
        }
        if opts.noprefixroute {
            flags |= ifa::NOPREFIXROUTE;
        }
        let op = format!("add address {prefix} on ifindex {index}");
        debug!(op, "netlink");
        self.ack(
            &op,
            RouteNetlinkMessage::NewAddress(address_message(index, &prefix, flags)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Deletes an address. A missing one gives `EADDRNOTAVAIL`
    /// ([`crate::Error::is_not_found`]).
    pub fn del_address(&mut self, link: impl Into<LinkId>, prefix: IpPrefix) -> Result<()> {
        let index = self.link_index(link)?;
        let op = format!("delete address {prefix} on ifindex {index}");
        debug!(op, "netlink");
        let mut m = address_message(index, &prefix, 0);
        m.attributes.retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
        self.ack(&op, RouteNetlinkMessage::DelAddress(m), 0)
    }

    /// Lists addresses, optionally of one link and/or family.
    pub fn list_addresses(
        &mut self,
        link: Option<LinkId>,
        family: Option<IpFamily>,
    ) -> Result<Vec<AddressInfo>> {
        let index = match link {
            Some(l) => Some(self.link_index(l)?),
            None => None,
        };
        let mut m = AddressMessage::default();
        if let Some(f) = family {
            m.header.family = f.af();
        }
        let replies = self.dump("dump addresses", RouteNetlinkMessage::GetAddress(m))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) => to_info(a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .filter(|a| family.is_none_or(|f| a.prefix.family() == f))
            .collect())
    }
}
