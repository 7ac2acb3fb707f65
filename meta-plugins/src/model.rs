//! The kernel objects the plugins install, as plain data.
//!
//! An attachment's record is a list of [`Entry`]s: what was done ([`Action`]), where
//! ([`Side`]), to which [`Object`], and who owns it ([`Origin`]). The same list drives the
//! transactional `ADD` (its reverse is the undo log), `DEL`, `CHECK` and `GC`.

use std::fmt;
use std::net::IpAddr;

use cni_spec::{IpPrefix, Mac};
use serde::{Deserialize, Serialize};

/// `main` routing table.
pub const TABLE_MAIN: u32 = 254;
/// First table number handed out for pod policy tables.
pub const FIRST_POD_TABLE: u32 = 100;
/// Priority of pod rules that send hijacked destinations to the overlay table (`router`).
pub const PRIO_POD_TO: u32 = 31000;
/// Priority of pod rules that send traffic sourced from a migrated interface to its table.
pub const PRIO_POD_FROM: u32 = 31100;
/// Priority of the node rule `from all lookup <host_rule_table>` (the originals' value).
pub const PRIO_NODE_HOST_TABLE: u32 = 1000;
/// Metric the kernel gives an IPv6 route added without one.
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

/// Which network namespace an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The pod's netns (`CNI_NETNS`).
    Pod,
    /// The node's netns (the one the plugin runs in).
    Node,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Pod => "pod",
            Side::Node => "node",
        })
    }
}

/// IP family of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The default route destination of this family.
    pub fn default_dst(self) -> IpPrefix {
        let addr: IpAddr = match self {
            Family::V4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        // A /0 prefix is valid for both families.
        IpPrefix::new(addr, 0).unwrap_or_else(|_| unreachable!("/0 is valid"))
    }

    /// The metric a route of this family gets when none is given.
    pub fn default_metric(self) -> u32 {
        match self {
            Family::V4 => 0,
            Family::V6 => IPV6_DEFAULT_METRIC,
        }
    }
}

/// A host prefix (`/32` or `/128`) for an address.
pub fn host_prefix(ip: IpAddr) -> IpPrefix {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    IpPrefix::new(ip, len).unwrap_or_else(|_| unreachable!("host length is valid"))
}

/// A veth pair: the node end plus the pod end, created in one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethPair {
    /// Node end name.
    pub host: String,
    /// Node end MAC.
    pub host_mac: Mac,
    /// Pod end name.
    pub pod: String,
    /// Pod end MAC.
    pub pod_mac: Mac,
    /// MTU of both ends.
    pub mtu: u32,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteObj {
    /// Table.
    pub table: u32,
    /// Destination (host bits clear).
    pub dst: IpPrefix,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Output interface name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Preferred source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// Scope (`RT_SCOPE_*`); `None` lets the kernel choose (link for IPv4 without gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
    /// Metric.
    pub metric: u32,
    /// Protocol (`RTPROT_*`).
    pub protocol: u8,
}

impl RouteObj {
    /// The route's family.
    pub fn family(&self) -> Family {
        Family::of(self.dst.addr())
    }
}

/// A policy rule `[from <p>] [to <p>] lookup <table>` at a fixed priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleObj {
    /// Family.
    pub family: Family,
    /// Priority.
    pub priority: u32,
    /// Table looked up.
    pub table: u32,
    /// Source selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpPrefix>,
    /// Destination selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<IpPrefix>,
}

/// A permanent neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighObj {
    /// Interface name.
    pub dev: String,
    /// IP address.
    pub ip: IpAddr,
    /// Link-layer address.
    pub mac: Mac,
}

/// A sysctl below `/proc/sys` (`net/ipv4/conf/veth0/rp_filter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlObj {
    /// Key with `/` separators.
    pub key: String,
    /// Value written.
    pub value: String,
    /// Value found before; `None` for keys of interfaces this plugin creates (they vanish
    /// with the interface, nothing to restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// A MAC address change of an existing interface (`mac_prefix`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkMacObj {
    /// Interface name.
    pub dev: String,
    /// New MAC.
    pub mac: Mac,
    /// MAC before.
    pub previous: Mac,
}

/// A kernel object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Object {
    /// A veth pair (node end in the node, pod end in the pod; recorded on the node side).
    Veth(VethPair),
    /// A route.
    Route(RouteObj),
    /// A rule.
    Rule(RuleObj),
    /// A neighbour entry.
    Neigh(NeighObj),
    /// A sysctl value.
    Sysctl(SysctlObj),
    /// A MAC change.
    LinkMac(LinkMacObj),
}

impl Object {
    /// What makes two objects "the same" for reference counting between records (a route is
    /// its table, destination, metric and next hop; a sysctl is its key; …).
    pub fn identity(&self) -> String {
        match self {
            Object::Veth(v) => format!("veth {}", v.host),
            Object::Route(r) => format!(
                "route table {} {} metric {} via {} dev {}",
                r.table,
                r.dst,
                r.metric,
                r.gw.map_or_else(|| "-".to_owned(), |g| g.to_string()),
                r.dev.as_deref().unwrap_or("-")
            ),
            Object::Rule(r) => format!(
                "rule {:?} pref {} from {} to {} lookup {}",
                r.family,
                r.priority,
                r.from.map_or_else(|| "all".to_owned(), |p| p.to_string()),
                r.to.map_or_else(|| "all".to_owned(), |p| p.to_string()),
                r.table
            ),
            Object::Neigh(n) => format!("neigh {} dev {}", n.ip, n.dev),
            Object::Sysctl(s) => format!("sysctl {}", s.key),
            Object::LinkMac(m) => format!("mac of {}", m.dev),
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Veth(v) => write!(
                f,
                "veth {} ({}) <-> {} ({}) mtu {}",
                v.host, v.host_mac, v.pod, v.pod_mac, v.mtu
            ),
            Object::Route(r) => {
                write!(f, "route {}", r.dst)?;
                if let Some(gw) = r.gw {
                    write!(f, " via {gw}")?;
                }
                if let Some(d) = &r.dev {
                    write!(f, " dev {d}")?;
                }
                if let Some(s) = r.src {
                    write!(f, " src {s}")?;
                }
                write!(f, " table {} metric {}", r.table, r.metric)
            }
            Object::Rule(_) => f.write_str(&self.identity()),
            Object::Neigh(n) => {
                write!(f, "neigh {} lladdr {} dev {} permanent", n.ip, n.mac, n.dev)
            }
            Object::Sysctl(s) => write!(f, "sysctl {} = {}", s.key, s.value),
            Object::LinkMac(m) => write!(f, "mac of {} = {} (was {})", m.dev, m.mac, m.previous),
        }
    }
}

/// What an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Installed the object (undo: remove it).
    Add,
    /// Removed an existing object, e.g. a default route moved out of `main` (undo: put it
    /// back).
    Remove,
}

/// Who owns an entry's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// This attachment made it.
    Created,
    /// Another attachment's record made it; this one relies on it too. The last record
    /// referencing an object undoes it.
    Shared,
    /// It was there before any of our records (e.g. made by the original plugin or an
    /// operator): never undone, only checked.
    Preexisting,
}

/// Whether an entry belongs to the per-container infrastructure (the veth pair, the overlay
/// policy table) that later attachments of the same container reuse, or only to this
/// attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Shared by every attachment of the container.
    Infra,
    /// This attachment's own.
    Own,
}

/// One line of an attachment's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Namespace.
    pub side: Side,
    /// What was done.
    pub action: Action,
    /// To what.
    pub object: Object,
    /// Who owns it.
    pub origin: Origin,
    /// Per-container or per-attachment.
    pub role: Role,
}

impl Entry {
    /// Whether the object is node-wide rather than tied to one pod's addresses or
    /// interfaces, so attachments of other containers may share it: node rules (`from all
    /// lookup <host_rule_table>`) and node sysctls not of one interface (`conf/all/…`).
    pub fn is_node_global(&self) -> bool {
        self.side == Side::Node
            && match &self.object {
                Object::Rule(_) => true,
                Object::Sysctl(s) => {
                    let parts: Vec<&str> = s.key.split('/').collect();
                    !matches!(parts.as_slice(), [_, _, "conf", dev, ..] if *dev != "all" && *dev != "default")
                }
                _ => false,
            }
    }

    /// The key used to find the same object in other records: side, action and identity.
    pub fn key(&self) -> (Side, Action, String) {
        (self.side, self.action, self.object.identity())
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.action {
            Action::Add => "add",
            Action::Remove => "remove",
        };
        write!(f, "{} {verb} {}", self.side, self.object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn route(metric: u32, gw: Option<&str>) -> Object {
        Object::Route(RouteObj {
            table: 254,
            dst: "198.51.100.0/25".parse().unwrap(),
            gw: gw.map(|g| g.parse().unwrap()),
            dev: Some("veth0".into()),
            src: None,
            scope: None,
            metric,
            protocol: 3,
        })
    }

    #[test]
    fn identity_covers_next_hop_and_metric() {
        assert_ne!(route(0, Some("192.0.2.10")).identity(), route(0, None).identity());
        assert_ne!(route(0, None).identity(), route(5, None).identity());
        assert_eq!(
            route(0, Some("192.0.2.10")).identity(),
            route(0, Some("192.0.2.10")).identity()
        );
    }

    #[test]
    fn entries_round_trip_through_json() {
        let e = Entry {
            side: Side::Node,
            action: Action::Add,
            object: Object::Veth(VethPair {
                host: "veth0123456789a".into(),
                host_mac: "02:00:00:00:00:01".parse().unwrap(),
                pod: "veth0".into(),
                pod_mac: "02:00:00:00:00:02".parse().unwrap(),
                mtu: 1500,
            }),
            origin: Origin::Created,
            role: Role::Infra,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"kind\":\"veth\""), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
        assert_eq!(
            e.to_string(),
            "node add veth veth0123456789a (02:00:00:00:00:01) <-> veth0 (02:00:00:00:00:02) mtu 1500"
        );
    }

    #[test]
    fn families_and_defaults() {
        assert_eq!(Family::V4.default_dst().to_string(), "0.0.0.0/0");
        assert_eq!(Family::V6.default_dst().to_string(), "::/0");
        assert_eq!(Family::V6.default_metric(), 1024);
        assert_eq!(host_prefix("2001:db8::1".parse().unwrap()).to_string(), "2001:db8::1/128");
    }
}
