//! Routes (`ip route add/del/show`), IPv4 and IPv6, any table.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use tracing::debug;

use crate::client::Netlink;
use crate::error::{Error, Result};
use crate::transport::Transport;
use crate::types::{IpFamily, IpPrefix};

/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;
/// The local routing table.
pub const RT_TABLE_LOCAL: u32 = 255;
/// `RTPROT_BOOT`, what `ip route add` uses by default.
pub const RTPROT_BOOT: u8 = 3;
/// `RTPROT_STATIC`.
pub const RTPROT_STATIC: u8 = 4;

/// Route scope (`RT_SCOPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Global (0).
    Universe,
    /// Site (200).
    Site,
    /// On-link (253): directly reachable, no gateway.
    Link,
    /// This host (254).
    Host,
    /// Nowhere (255); also the wildcard for deletes.
    Nowhere,
    /// Anything else.
    Other(u8),
}

impl Scope {
    fn to_raw(self) -> u8 {
        match self {
            Scope::Universe => 0,
            Scope::Site => 200,
            Scope::Link => 253,
            Scope::Host => 254,
            Scope::Nowhere => 255,
            Scope::Other(v) => v,
        }
    }
    fn from_raw(v: u8) -> Scope {
        match v {
            0 => Scope::Universe,
            200 => Scope::Site,
            253 => Scope::Link,
            254 => Scope::Host,
            255 => Scope::Nowhere,
            v => Scope::Other(v),
        }
    }
}

/// Route type (`RTN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouteKind {
    /// A normal route.
    #[default]
    Unicast,
    /// A local address route.
    Local,
    /// Silently drop.
    Blackhole,
    /// Drop with ICMP unreachable.
    Unreachable,
    /// Drop with ICMP prohibited.
    Prohibit,
    /// Anything else (raw `RTN_*`).
    Other(u8),
}

impl RouteKind {
    fn to_raw(self) -> u8 {
        match self {
            RouteKind::Unicast => 1,
            RouteKind::Local => 2,
            RouteKind::Blackhole => 6,
            RouteKind::Unreachable => 7,
            RouteKind::Prohibit => 8,
            RouteKind::Other(v) => v,
        }
    }
    fn from_raw(v: u8) -> RouteKind {
        match v {
            1 => RouteKind::Unicast,
            2 => RouteKind::Local,
            6 => RouteKind::Blackhole,
            7 => RouteKind::Unreachable,
            8 => RouteKind::Prohibit,
            v => RouteKind::Other(v),
        }
    }
}

/// A route to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination (host bits are cleared when sent).
    pub dst: IpPrefix,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Preferred source address (`src`).
    pub src: Option<IpAddr>,
    /// Table id (default [`RT_TABLE_MAIN`]).
    pub table: u32,
    /// Scope; `None` picks iproute2's default (link scope for an IPv4 route
    /// without gateway, universe otherwise; nowhere, i.e. any, for deletes).
    pub scope: Option<Scope>,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
    /// Type.
    pub kind: RouteKind,
    /// `onlink`: the gateway is on the link even if no address says so
    /// (needed for /32 pod addresses with a fixed gateway).
    pub onlink: bool,
    /// Protocol (default [`RTPROT_BOOT`]).
    pub protocol: u8,
}

impl RouteSpec {
    /// A unicast route to `dst` in the main table.
    pub fn new(dst: IpPrefix) -> Self {
        RouteSpec {
            dst,
            gateway: None,
            oif: None,
            src: None,
            table: RT_TABLE_MAIN,
            scope: None,
            metric: None,
            kind: RouteKind::Unicast,
            onlink: false,
            protocol: RTPROT_BOOT,
        }
    }
    /// Sets the gateway.
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self
    }
    /// Sets the output interface.
    pub fn dev(mut self, ifindex: u32) -> Self {
        self.oif = Some(ifindex);
        self
    }
    /// Sets the table.
    pub fn table(mut self, table: u32) -> Self {
        self.table = table;
        self
    }
    /// Sets the metric.
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }
    /// Sets the preferred source.
    pub fn src(mut self, src: IpAddr) -> Self {
        self.src = Some(src);
        self
    }

    fn validate(&self) -> Result<()> {
        let fam = self.dst.family();
        for (what, a) in [("gateway", self.gateway), ("src", self.src)] {
            if let Some(a) = a.filter(|a| IpFamily::of(a) != fam) {
                return Err(Error::invalid(
                    "route",
                    format!("{what} {a} is not {fam} like {}", self.dst),
                ));
            }
        }
        if self.kind == RouteKind::Unicast && self.gateway.is_none() && self.oif.is_none() {
            return Err(Error::invalid(
                "route",
                format!("{}: unicast route needs a gateway or a device", self.dst),
            ));
        }
        Ok(())
    }
}

/// A route as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Destination.
    pub dst: IpPrefix,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Preferred source.
    pub src: Option<IpAddr>,
    /// Table.
    pub table: u32,
    /// Scope.
    pub scope: Scope,
    /// Metric.
    pub metric: Option<u32>,
    /// Type.
    pub kind: RouteKind,
    /// Protocol (`RTPROT_*`).
    pub protocol: u8,
    /// `onlink` flag.
    pub onlink: bool,
}

fn route_addr(a: IpAddr) -> RouteAddress {
    match a {
        IpAddr::V4(v) => RouteAddress::Inet(v),
        IpAddr::V6(v) => RouteAddress::Inet6(v),
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

pub(crate) fn route_addr_str(a: &RouteAddress) -> String {
    ip_of(a).map_or_else(|| "?".into(), |ip| ip.to_string())
}

pub(crate) fn route_message(spec: &RouteSpec, delete: bool) -> RouteMessage {
    let fam = spec.dst.family();
    let scope = spec.scope.unwrap_or(if delete {
        Scope::Nowhere
    } else if fam == IpFamily::V4 && spec.gateway.is_none() && spec.kind == RouteKind::Unicast {
        Scope::Link
    } else if spec.kind == RouteKind::Local {
        Scope::Host
    } else {
        Scope::Universe
    });
    let mut m = RouteMessage::default();
    let h = &mut m.header;
    h.address_family = fam.af();
    h.destination_prefix_length = spec.dst.len();
    h.table = if spec.table < 256 { spec.table as u8 } else { 0 };
    h.protocol = if delete { RouteProtocol::Unspec } else { RouteProtocol::from(spec.protocol) };
    h.scope = RouteScope::from(scope.to_raw());
    h.kind = RouteType::from(spec.kind.to_raw());
    if spec.onlink {
        h.flags = RouteFlags::Onlink;
    }
    m.attributes.push(RouteAttribute::Table(spec.table));
    if !spec.dst.is_empty() {
        m.attributes.push(RouteAttribute::Destination(route_addr(spec.dst.network().addr())));
    }
    if let Some(gw) = spec.gateway {
        m.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
    }
    if let Some(oif) = spec.oif {
        m.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(src) = spec.src {
        m.attributes.push(RouteAttribute::PrefSource(route_addr(src)));
    }
    if let Some(metric) = spec.metric {
        m.attributes.push(RouteAttribute::Priority(metric));
    }
    m
}

fn to_info(m: &RouteMessage) -> Option<RouteInfo> {
    let h = &m.header;
    let fam = match u8::from(h.address_family) as i32 {
        libc::AF_INET => IpFamily::V4,
        libc::AF_INET6 => IpFamily::V6,
        _ => return None,
    };
    let mut dst = IpPrefix::default_route(fam);
    let mut info = RouteInfo {
        dst,
        gateway: None,
        oif: None,
        src: None,
        table: u32::from(h.table),
        scope: Scope::from_raw(u8::from(h.scope)),
        metric: None,
        kind: RouteKind::from_raw(u8::from(h.kind)),
        protocol: u8::from(h.protocol),
        onlink: h.flags.contains(RouteFlags::Onlink),
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => {
                dst = IpPrefix::new(ip_of(d)?, h.destination_prefix_length).ok()?;
            }
            RouteAttribute::Gateway(g) => info.gateway = ip_of(g),
            RouteAttribute::Oif(o) => info.oif = Some(*o),
            RouteAttribute::PrefSource(s) => info.src = ip_of(s),
            RouteAttribute::Table(t) => info.table = *t,
            RouteAttribute::Priority(p) => info.metric = Some(*p),
            _ => {}
        }
    }
    info.dst = dst;
    Some(info)
}

impl<T: Transport> Netlink<T> {
    /// Adds a route; an identical one gives `EEXIST`.
    pub fn add_route(&mut self, spec: &RouteSpec) -> Result<()> {
        spec.validate()?;
        let op = format!("add route {} table {}", spec.dst, spec.table);
        debug!(op, ?spec, "netlink");
        self.ack(
            &op,
            RouteNetlinkMessage::NewRoute(route_message(spec, false)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Adds or replaces a route (`ip route replace`).
    pub fn replace_route(&mut self, spec: &RouteSpec) -> Result<()> {
        spec.validate()?;
        let op = format!("replace route {} table {}", spec.dst, spec.table);
        debug!(op, ?spec, "netlink");
        self.ack(
            &op,
            RouteNetlinkMessage::NewRoute(route_message(spec, false)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Deletes a route; the fields given must match. A missing route gives
    /// `ESRCH` ([`Error::is_not_found`]).
    pub fn del_route(&mut self, spec: &RouteSpec) -> Result<()> {
        let op = format!("delete route {} table {}", spec.dst, spec.table);
        debug!(op, ?spec, "netlink");
        self.ack(&op, RouteNetlinkMessage::DelRoute(route_message(spec, true)), 0)
    }

    /// Lists the routes of a family, optionally of one table (all tables
    /// otherwise, including `local`).
    pub fn list_routes(&mut self, family: IpFamily, table: Option<u32>) -> Result<Vec<RouteInfo>> {
        let mut m = RouteMessage::default();
        m.header.address_family = family.af();
        let replies =
            self.dump(&format!("dump {family} routes"), RouteNetlinkMessage::GetRoute(m))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(r) => to_info(r),
                _ => None,
            })
            .filter(|r| table.is_none_or(|t| r.table == t))
            .collect())
    }
}
