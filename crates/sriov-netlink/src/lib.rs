//! The suite's one kernel boundary for rtnetlink and network namespaces.
//!
//! - [`Netlink`]: a synchronous route-netlink client with one typed method
//!   per kernel operation (links, veth pairs, netns moves, altnames,
//!   addresses, routes, rules, neighbours, VF settings), over a
//!   [`Transport`]: the real [`NetlinkSocket`] or the recording
//!   [`FakeTransport`].
//! - [`vf`]: validated [`VfConfig`], pure builders producing exactly the
//!   bytes iproute2 sends, and [`VfState`] parsing of a PF's VF list.
//! - [`netns`]: opening namespaces, running code in one on a fresh scoped
//!   thread, sockets bound to a namespace, per-netns sysctls, and
//!   [`OwnedNetns`] for tests and tools.
//! - [`events`]: link notifications.
//! - [`garp`]: gratuitous ARP and unsolicited IPv6 NA.
//!
//! Errors ([`Error`]) name the operation and the object; the errno stays
//! reachable through [`Error::errno`] and [`Error::is_not_found`].

pub mod addr;
mod client;
pub mod error;
pub mod events;
pub mod garp;
pub mod link;
pub mod neigh;
pub mod netns;
pub mod route;
pub mod rule;
pub mod transport;
pub mod types;
pub mod uevent;
pub mod vf;

#[cfg(test)]
mod fake_tests;
#[cfg(test)]
mod fixture_tests;

pub use addr::{AddressInfo, AddressOptions};
pub use client::{Netlink, request, serialize};
pub use error::{Error, Result};
pub use events::{LinkEvent, LinkEventKind, LinkEvents};
pub use link::{Link, OperState, VethSpec, parse_link_message};
pub use neigh::{NeighbourInfo, NeighbourKind, NeighbourSpec};
pub use netns::{
    Netns, NetnsId, OwnedNetns, link_events_in, open_route_socket_in, read_sysctl_in, run_in_netns,
    same_netns, socket_netns, write_sysctl_in,
};
pub use route::{RouteInfo, RouteKind, RouteSpec, Scope};
pub use rule::{RuleAction, RuleInfo, RuleSpec};
pub use transport::{FakeReply, FakeTransport, NetlinkSocket, SentMessage, Transport};
pub use types::{IpFamily, IpPrefix, LinkId, Mac};
pub use vf::{VfAttr, VfConfig, VfLinkState, VfRate, VfState, VfVlan, VlanProto};

/// The netlink crates this one is built on, for callers that need raw
/// messages (e.g. scripting [`FakeTransport`] replies) without pinning
/// their own, possibly different, versions.
pub mod raw {
    pub use netlink_packet_core as core;
    pub use netlink_packet_route as route;
}
