//! Snapshots of a network namespace (links, addresses, routes, rules), read once per
//! operation and handed to the pure planner.

use std::net::IpAddr;

use cni_spec::{IpPrefix, Mac};

use crate::model::Family;

/// `RT_SCOPE_UNIVERSE`.
pub const SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`.
pub const SCOPE_LINK: u8 = 253;

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// MAC, for Ethernet-like links.
    pub mac: Option<Mac>,
    /// MTU.
    pub mtu: u32,
    /// `IFLA_INFO_KIND` (`veth`, `macvlan`, …).
    pub kind: Option<String>,
    /// `IFLA_LINK`: for a veth, the peer's ifindex (in the peer's netns).
    pub peer_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when the peer lives in another netns.
    pub peer_netnsid: Option<i32>,
}

impl LinkView {
    /// Whether this is a veth whose peer lives in another netns.
    pub fn is_veth_to_other_netns(&self) -> bool {
        self.kind.as_deref() == Some("veth") && self.peer_netnsid.is_some()
    }
}

/// One address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrView {
    /// ifindex.
    pub index: u32,
    /// Address with its prefix length.
    pub addr: IpPrefix,
    /// Scope (`RT_SCOPE_*`).
    pub scope: u8,
    /// DAD found a duplicate: unusable.
    pub dad_failed: bool,
}

impl AddrView {
    /// A global address usable as a source or destination (universe scope, not link-local,
    /// loopback, multicast or DAD-failed).
    pub fn is_global(&self) -> bool {
        self.scope == SCOPE_UNIVERSE && !self.dad_failed && is_global_ip(self.addr.addr())
    }
}

/// Whether an address is neither unspecified, loopback, link-local nor multicast.
pub fn is_global_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            let link_local = (a.segments()[0] & 0xffc0) == 0xfe80;
            !(a.is_unspecified() || a.is_loopback() || link_local || a.is_multicast())
        }
    }
}

/// One unicast route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    /// Table.
    pub table: u32,
    /// Destination.
    pub dst: IpPrefix,
    /// Gateway.
    pub gw: Option<IpAddr>,
    /// Output ifindex.
    pub oif: Option<u32>,
    /// Preferred source.
    pub src: Option<IpAddr>,
    /// Scope.
    pub scope: u8,
    /// Metric.
    pub metric: u32,
    /// Protocol.
    pub protocol: u8,
}

impl RouteView {
    /// Family of the destination.
    pub fn family(&self) -> Family {
        Family::of(self.dst.addr())
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    /// Family.
    pub family: Family,
    /// Priority.
    pub priority: u32,
    /// Table looked up (`None` for other actions).
    pub table: Option<u32>,
    /// Source selector.
    pub from: Option<IpPrefix>,
    /// Destination selector.
    pub to: Option<IpPrefix>,
    /// Whether it has selectors this crate does not model (iif, oif).
    pub has_other_selectors: bool,
}

/// A netns at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Links.
    pub links: Vec<LinkView>,
    /// Addresses.
    pub addrs: Vec<AddrView>,
    /// Unicast routes of every table except `local`.
    pub routes: Vec<RouteView>,
    /// Rules.
    pub rules: Vec<RuleView>,
}

impl Snapshot {
    /// A link by name.
    pub fn link(&self, name: &str) -> Option<&LinkView> {
        self.links.iter().find(|l| l.name == name)
    }

    /// A link by index.
    pub fn link_by_index(&self, index: u32) -> Option<&LinkView> {
        self.links.iter().find(|l| l.index == index)
    }

    /// Name of an ifindex.
    pub fn name_of(&self, index: u32) -> Option<&str> {
        self.link_by_index(index).map(|l| l.name.as_str())
    }

    /// Global addresses of a link, in kernel order.
    pub fn global_addrs_of(&self, name: &str) -> Vec<IpPrefix> {
        match self.link(name) {
            Some(l) => self
                .addrs
                .iter()
                .filter(|a| a.index == l.index && a.is_global())
                .map(|a| a.addr)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Routes of `table` leaving through `dev`.
    pub fn routes_via<'a>(
        &'a self,
        table: u32,
        dev: &str,
    ) -> impl Iterator<Item = &'a RouteView> + 'a {
        let index = self.link(dev).map(|l| l.index);
        self.routes.iter().filter(move |r| r.table == table && index.is_some() && r.oif == index)
    }

    /// Default routes of `family` in `table`.
    pub fn defaults<'a>(
        &'a self,
        table: u32,
        family: Family,
    ) -> impl Iterator<Item = &'a RouteView> + 'a {
        self.routes
            .iter()
            .filter(move |r| r.table == table && r.family() == family && r.dst.is_default())
    }

    /// Every table number a route or rule of this netns uses.
    pub fn tables_in_use(&self) -> std::collections::BTreeSet<u32> {
        self.routes
            .iter()
            .map(|r| r.table)
            .chain(self.rules.iter().filter_map(|r| r.table))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_addresses() {
        for (ip, global) in [
            ("192.0.2.1", true),
            ("169.254.1.1", false),
            ("127.0.0.1", false),
            ("2001:db8::1", true),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", true),
            ("ff02::1", false),
            ("::1", false),
        ] {
            assert_eq!(is_global_ip(ip.parse().unwrap()), global, "{ip}");
        }
        let a = AddrView {
            index: 1,
            addr: "192.0.2.1/24".parse().unwrap(),
            scope: SCOPE_LINK,
            dad_failed: false,
        };
        assert!(!a.is_global(), "link scope");
    }
}
