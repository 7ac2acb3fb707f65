//! Link events from the kernel (`RTNLGRP_LINK` multicast): new links,
//! deleted links, flag, operstate and carrier changes. The device plugin
//! reads them on a blocking thread of its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use tracing::trace;

use crate::error::{Error, Result};
use crate::link::{Link, OperState};
use crate::transport::{NetlinkSocket, Transport};

/// `RTNLGRP_LINK`.
pub const RTNLGRP_LINK: u32 = 1;
/// Receive buffer asked for on event sockets: bursts (a PF creating 64 VFs)
/// overflow the default and the kernel then drops events (`ENOBUFS`).
const EVENT_RCVBUF: usize = 4 * 1024 * 1024;

/// New or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkEventKind {
    /// `RTM_NEWLINK`: a link appeared or changed.
    New,
    /// `RTM_DELLINK`: a link went away (or left the netns).
    Del,
}

/// One link notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// New/changed or deleted.
    pub kind: LinkEventKind,
    /// The link as the notification describes it.
    pub link: Link,
}

impl LinkEvent {
    /// Interface index.
    pub fn index(&self) -> u32 {
        self.link.index
    }
    /// Interface name.
    pub fn name(&self) -> &str {
        &self.link.name
    }
    /// Operational state.
    pub fn oper_state(&self) -> OperState {
        self.link.oper_state
    }
    /// Carrier, from `IFLA_CARRIER` or else `IFF_LOWER_UP`.
    pub fn carrier(&self) -> bool {
        self.link.carrier.unwrap_or_else(|| self.link.has_lower_up())
    }
}

/// A subscription to link events.
///
/// If the reader falls behind, the kernel drops events and the next read
/// fails with `ENOBUFS` ([`Error::errno`]); the subscription stays usable,
/// but the caller must resynchronise with [`crate::Netlink::list_links`].
#[derive(Debug)]
pub struct LinkEvents<T: Transport = NetlinkSocket> {
    transport: T,
    queue: VecDeque<LinkEvent>,
}

impl LinkEvents<NetlinkSocket> {
    /// Subscribes in the calling thread's netns (see
    /// [`crate::netns::link_events_in`] for another netns).
    pub fn open() -> Result<Self> {
        let op = "subscribe to link events";
        let socket =
            NetlinkSocket::open_with_groups(&[RTNLGRP_LINK]).map_err(|e| Error::socket(op, e))?;
        // Best effort: without CAP_NET_ADMIN the kernel caps it at rmem_max.
        let _ = socket.set_receive_buffer_size(EVENT_RCVBUF);
        Ok(LinkEvents::new(socket))
    }
}

impl<T: Transport> LinkEvents<T> {
    /// Wraps a transport already subscribed to `RTNLGRP_LINK`.
    pub fn new(transport: T) -> Self {
        LinkEvents { transport, queue: VecDeque::new() }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Blocks until the next event.
    pub fn next_event(&mut self) -> Result<LinkEvent> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(e);
            }
            self.read_datagram()?;
        }
    }

    /// Waits up to `timeout` for the next event; `Ok(None)` on timeout.
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Result<Option<LinkEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let ready = self
                .transport
                .wait_readable(Some(left))
                .map_err(|e| Error::socket("wait for link events", e))?;
            if !ready {
                return Ok(None);
            }
            self.read_datagram()?;
        }
    }

    fn read_datagram(&mut self) -> Result<()> {
        let op = "read link events";
        let data = self.transport.recv().map_err(|e| Error::socket(op, e))?;
        let mut off = 0;
        while off + 16 <= data.len() {
            let len = u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                as usize;
            if len < 16 || off + len > data.len() {
                return Err(Error::protocol(op, format!("bad nlmsg_len {len}")));
            }
            let raw = &data[off..off + len];
            off += (len + 3) & !3;
            let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
                Ok(m) => m,
                Err(e) => {
                    // One undecodable notification must not end the stream.
                    trace!(error = %e, "skipping undecodable link event");
                    continue;
                }
            };
            let (kind, l) = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                    (LinkEventKind::New, l)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                    (LinkEventKind::Del, l)
                }
                _ => continue,
            };
            let link = Link::from_message(&l, Some(raw))?;
            trace!(?kind, index = link.index, name = %link.name, "link event");
            self.queue.push_back(LinkEvent { kind, link });
        }
        Ok(())
    }
}
