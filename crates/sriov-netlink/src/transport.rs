//! Where bytes meet the kernel: the [`Transport`] trait, the real
//! [`NetlinkSocket`] and the recording [`FakeTransport`].
//!
//! The typed client ([`crate::Netlink`]) serializes a request, hands the
//! datagram to a transport, and parses whatever datagrams come back. The fake
//! records every request and answers from a script, so higher layers can test
//! rollback order ("VLAN failed, so the MAC was restored") without root.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::num::NonZeroI32;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use netlink_packet_core::{
    DoneMessage, ErrorMessage, NLM_F_MULTIPART, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_sys::SocketAddr;
use netlink_sys::protocols::NETLINK_ROUTE;

/// Smallest receive buffer we keep. Dumps are sized by the kernel from the
/// reader's buffer length, and a PF with many VFs answers a single GETLINK
/// with a datagram far larger than netavark's 8 KiB (about 75 KiB for 256
/// VFs); [`NetlinkSocket::recv`] peeks the real size first anyway.
pub const MIN_RECV_BUFFER: usize = 64 * 1024;

/// Moves whole netlink datagrams to and from the kernel (or a fake).
pub trait Transport {
    /// Sends one datagram holding one serialized netlink request.
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;

    /// Blocks until one datagram arrives and returns all of it. The slice is
    /// valid until the next call.
    fn recv(&mut self) -> io::Result<&[u8]>;

    /// Waits until a datagram can be read. `None` waits forever. Returns
    /// `false` on timeout.
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool>;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        (**self).send(datagram)
    }
    fn recv(&mut self) -> io::Result<&[u8]> {
        (**self).recv()
    }
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        (**self).wait_readable(timeout)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        (**self).send(datagram)
    }
    fn recv(&mut self) -> io::Result<&[u8]> {
        (**self).recv()
    }
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        (**self).wait_readable(timeout)
    }
}

/// A blocking `NETLINK_ROUTE` socket.
///
/// The socket belongs to the network namespace of the thread that created
/// it, for its whole life; see [`crate::netns::open_route_socket_in`] to
/// make one for another netns without switching the calling thread.
#[derive(Debug)]
pub struct NetlinkSocket {
    socket: netlink_sys::Socket,
    buf: Vec<u8>,
    port_id: u32,
}

impl NetlinkSocket {
    /// Opens a route socket in the calling thread's netns, with extended
    /// ACKs on (the kernel then explains many `EINVAL`s) and capped ACKs
    /// (error replies do not echo the whole request).
    pub fn open() -> io::Result<Self> {
        Self::open_with_groups(&[])
    }

    /// Opens a route socket subscribed to the given `RTNLGRP_*` multicast
    /// groups (numbers, not bit masks).
    pub fn open_with_groups(groups: &[u32]) -> io::Result<Self> {
        let mut socket = netlink_sys::Socket::new(NETLINK_ROUTE)?;
        let addr = socket.bind_auto()?;
        // Connected to the kernel: datagrams from other user sockets are
        // refused, so nobody can inject replies.
        socket.connect(&SocketAddr::new(0, 0))?;
        // Both are best effort: old kernels lack them and we parse either way.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        for group in groups {
            socket.add_membership(*group)?;
        }
        Ok(NetlinkSocket { socket, buf: vec![0; MIN_RECV_BUFFER], port_id: addr.port_number() })
    }

    /// A socket that is bound but not connected to the kernel, so other
    /// sockets can send to it (tests only).
    #[cfg(test)]
    pub(crate) fn open_unconnected() -> io::Result<Self> {
        let mut socket = netlink_sys::Socket::new(NETLINK_ROUTE)?;
        let addr = socket.bind_auto()?;
        Ok(NetlinkSocket { socket, buf: vec![0; MIN_RECV_BUFFER], port_id: addr.port_number() })
    }

    /// The port id the kernel assigned to this socket.
    pub fn port_id(&self) -> u32 {
        self.port_id
    }

    /// Sets `SO_RCVBUF` (event sockets want a large one to avoid `ENOBUFS`).
    pub fn set_receive_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.socket.set_rx_buf_sz(bytes)
    }

    /// Sends a datagram to another netlink socket's port id (tests use this
    /// to push datagrams bigger than any buffer through [`Transport::recv`]).
    pub fn send_to_port(&self, port_id: u32, datagram: &[u8]) -> io::Result<()> {
        self.socket.send_to(datagram, &SocketAddr::new(port_id, 0), 0)?;
        Ok(())
    }
}

impl Transport for NetlinkSocket {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        loop {
            match self.socket.send(datagram, 0) {
                Ok(n) if n == datagram.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "short netlink send: {n} of {} bytes",
                        datagram.len()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn recv(&mut self) -> io::Result<&[u8]> {
        loop {
            // Peek with MSG_TRUNC: the kernel returns the datagram's real
            // length without consuming it, so the buffer can grow first.
            let mut empty: &mut [u8] = &mut [];
            let want = match self.socket.recv(&mut empty, libc::MSG_PEEK | libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if want > self.buf.len() {
                self.buf.resize(want, 0);
            }
            let mut slice: &mut [u8] = &mut self.buf[..];
            match self.socket.recv(&mut slice, libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    // Only possible if another reader raced us; never drop
                    // bytes silently.
                    return Err(io::Error::other(format!(
                        "netlink datagram of {n} bytes truncated to {}",
                        self.buf.len()
                    )));
                }
                Ok(n) => {
                    return Ok(&self.buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        wait_fd_readable(self.socket.as_fd(), timeout)
    }
}

impl AsFd for NetlinkSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for NetlinkSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

pub(crate) fn wait_fd_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
    };
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One request the fake transport received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The exact bytes sent.
    pub bytes: Vec<u8>,
    /// The bytes parsed back.
    pub message: NetlinkMessage<RouteNetlinkMessage>,
}

impl SentMessage {
    /// The netlink message type (`RTM_*`).
    pub fn message_type(&self) -> u16 {
        self.message.header.message_type
    }

    /// The `NLM_F_*` flags.
    pub fn flags(&self) -> u16 {
        self.message.header.flags
    }

    /// The route message, if this was one.
    pub fn inner(&self) -> Option<&RouteNetlinkMessage> {
        match &self.message.payload {
            NetlinkPayload::InnerMessage(m) => Some(m),
            _ => None,
        }
    }

    /// A one-line summary for rollback-order assertions, e.g.
    /// `newlink ifindex=4 vf=3[mac,vlan]` or `deladdr ifindex=2 192.0.2.1/24`.
    pub fn describe(&self) -> String {
        match self.inner() {
            Some(m) => describe_route_message(m),
            None => format!("type {}", self.message_type()),
        }
    }
}

fn describe_link(kind: &str, m: &LinkMessage) -> String {
    let mut s = format!("{kind} ifindex={}", m.header.index);
    if m.header.change_mask.contains(LinkFlags::Up) {
        s.push_str(if m.header.flags.contains(LinkFlags::Up) { " up" } else { " down" });
    }
    for a in &m.attributes {
        let _ = match a {
            LinkAttribute::IfName(n) => write!(s, " name={n}"),
            LinkAttribute::Mtu(v) => write!(s, " mtu={v}"),
            LinkAttribute::Address(a) => match crate::types::Mac::from_slice(a) {
                Some(m) => write!(s, " address={m}"),
                None => write!(s, " address=?"),
            },
            LinkAttribute::NetNsFd(_) => write!(s, " netns"),
            LinkAttribute::IfAlias(a) => write!(s, " alias={a}"),
            LinkAttribute::VfInfoList(list) => {
                for info in list {
                    let names: Vec<&str> = info.0.iter().map(crate::vf::vf_info_name).collect();
                    let vf = info.0.iter().find_map(crate::vf::vf_info_index).unwrap_or(u32::MAX);
                    let _ = write!(s, " vf={vf}[{}]", names.join(","));
                }
                Ok(())
            }
            LinkAttribute::PropList(p) => write!(s, " props={}", p.len()),
            LinkAttribute::LinkInfo(_) => write!(s, " linkinfo"),
            LinkAttribute::Other(o) => {
                use netlink_packet_core::Nla;
                write!(s, " attr{}", o.kind() & netlink_packet_core::NLA_TYPE_MASK)
            }
            _ => Ok(()),
        };
    }
    s
}

fn describe_route_message(m: &RouteNetlinkMessage) -> String {
    use netlink_packet_route::address::AddressAttribute;
    use netlink_packet_route::route::RouteAttribute;
    match m {
        RouteNetlinkMessage::NewLink(l) => describe_link("newlink", l),
        RouteNetlinkMessage::SetLink(l) => describe_link("setlink", l),
        RouteNetlinkMessage::DelLink(l) => describe_link("dellink", l),
        RouteNetlinkMessage::GetLink(l) => describe_link("getlink", l),
        RouteNetlinkMessage::NewLinkProp(l) => describe_link("newlinkprop", l),
        RouteNetlinkMessage::DelLinkProp(l) => describe_link("dellinkprop", l),
        RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => {
            let kind =
                if matches!(m, RouteNetlinkMessage::NewAddress(_)) { "newaddr" } else { "deladdr" };
            let addr = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            match addr {
                Some(ip) => {
                    format!("{kind} ifindex={} {ip}/{}", a.header.index, a.header.prefix_len)
                }
                None => format!("{kind} ifindex={}", a.header.index),
            }
        }
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
            let kind =
                if matches!(m, RouteNetlinkMessage::NewRoute(_)) { "newroute" } else { "delroute" };
            let mut s = kind.to_owned();
            for a in &r.attributes {
                let _ = match a {
                    RouteAttribute::Destination(d) => {
                        write!(
                            s,
                            " {}/{}",
                            crate::route::route_addr_str(d),
                            r.header.destination_prefix_length
                        )
                    }
                    RouteAttribute::Gateway(g) => {
                        write!(s, " via {}", crate::route::route_addr_str(g))
                    }
                    RouteAttribute::Oif(o) => write!(s, " oif={o}"),
                    RouteAttribute::Table(t) => write!(s, " table={t}"),
                    _ => Ok(()),
                };
            }
            s
        }
        RouteNetlinkMessage::NewRule(_) => "newrule".into(),
        RouteNetlinkMessage::DelRule(_) => "delrule".into(),
        RouteNetlinkMessage::NewNeighbour(n) => format!("newneigh ifindex={}", n.header.ifindex),
        RouteNetlinkMessage::DelNeighbour(n) => format!("delneigh ifindex={}", n.header.ifindex),
        other => format!("type {}", netlink_packet_core::NetlinkSerializable::message_type(other)),
    }
}

/// A scripted answer of the [`FakeTransport`] to one request.
#[derive(Debug, Clone)]
pub enum FakeReply {
    /// `NLMSG_ERROR` with code 0.
    Ack,
    /// `NLMSG_ERROR` with `-errno`.
    Errno(i32),
    /// `NLMSG_ERROR` with `-errno` and an extended-ACK message.
    ErrnoWithMessage(i32, String),
    /// One reply message (answer to a non-dump GET).
    Message(RouteNetlinkMessage),
    /// A multipart dump: the messages, then `NLMSG_DONE`.
    Dump(Vec<RouteNetlinkMessage>),
    /// Raw datagrams, e.g. a captured kernel reply. Their sequence numbers
    /// are rewritten to the request's.
    Raw(Vec<Vec<u8>>),
}

#[derive(Debug, Default)]
struct FakeState {
    sent: Vec<SentMessage>,
    script: VecDeque<FakeReply>,
    pending: VecDeque<Vec<u8>>,
}

/// A recording transport that answers from a script (youki's fake netlink
/// client, at the byte boundary). Clones share state: keep one clone to
/// script and inspect, hand another to [`crate::Netlink::new`].
#[derive(Debug, Clone, Default)]
pub struct FakeTransport {
    state: Arc<Mutex<FakeState>>,
    /// The datagram last returned by `recv` (per clone).
    local: Vec<u8>,
}

/// Port id the fake puts in its replies (the kernel puts the reader's).
const FAKE_OWN_PORT: u32 = 4242;

impl FakeTransport {
    /// An empty fake: no script, nothing sent.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panicking test thread may poison the lock; the data is still fine.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the answer to the next request not yet answered.
    pub fn reply(&self, reply: FakeReply) -> &Self {
        self.lock().script.push_back(reply);
        self
    }

    /// Queues several answers.
    pub fn replies(&self, replies: impl IntoIterator<Item = FakeReply>) -> &Self {
        self.lock().script.extend(replies);
        self
    }

    /// Queues an unsolicited multicast message (sequence 0), as the kernel
    /// sends link events.
    pub fn push_event(&self, message: RouteNetlinkMessage) {
        let dg = encode(message_of(NetlinkPayload::InnerMessage(message), 0, 0));
        self.lock().pending.push_back(dg);
    }

    /// Queues a raw datagram to be returned by the next `recv`.
    pub fn push_datagram(&self, datagram: Vec<u8>) {
        self.lock().pending.push_back(datagram);
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
    }

    /// Everything sent so far, clearing the record.
    pub fn take_sent(&self) -> Vec<SentMessage> {
        std::mem::take(&mut self.lock().sent)
    }

    /// [`SentMessage::describe`] of everything sent so far.
    pub fn sent_summary(&self) -> Vec<String> {
        self.lock().sent.iter().map(SentMessage::describe).collect()
    }

    /// How many scripted answers are still unused.
    pub fn unused_replies(&self) -> usize {
        self.lock().script.len()
    }
}

fn message_of(
    payload: NetlinkPayload<RouteNetlinkMessage>,
    seq: u32,
    flags: u16,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.port_number = FAKE_OWN_PORT;
    header.flags = flags;
    let mut m = NetlinkMessage::new(header, payload);
    m.finalize();
    m
}

fn encode(m: NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

fn error_payload(
    errno: i32,
    request_header: &[u8],
    msg: Option<&str>,
) -> (NetlinkPayload<RouteNetlinkMessage>, u16) {
    let mut e = ErrorMessage::default();
    e.code = NonZeroI32::new(-errno.abs());
    let mut body = request_header.get(..16).unwrap_or(request_header).to_vec();
    let mut flags = netlink_packet_core::NLM_F_CAPPED;
    if let Some(text) = msg {
        // NLMSGERR_ATTR_MSG, NUL-terminated and padded like the kernel does.
        let value_len = text.len() + 1;
        let nla_len = 4 + value_len;
        body.extend_from_slice(&(nla_len as u16).to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend_from_slice(text.as_bytes());
        body.push(0);
        while body.len() % 4 != 0 {
            body.push(0);
        }
        flags |= netlink_packet_core::NLM_F_ACK_TLVS;
    }
    e.header = body;
    (NetlinkPayload::Error(e), flags)
}

impl Transport for FakeTransport {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let message =
            NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("fake transport: cannot parse request: {e}"),
                )
            })?;
        let seq = message.header.sequence_number;
        let mut st = self.lock();
        let index = st.sent.len();
        st.sent.push(SentMessage { bytes: datagram.to_vec(), message: message.clone() });
        let reply = st.script.pop_front().ok_or_else(|| {
            io::Error::other(format!(
                "fake transport: no scripted reply for request #{index} ({})",
                st.sent[index].describe()
            ))
        })?;
        match reply {
            FakeReply::Ack => {
                let mut e = ErrorMessage::default();
                e.header = datagram.get(..16).unwrap_or(datagram).to_vec();
                let dg = encode(message_of(
                    NetlinkPayload::Error(e),
                    seq,
                    netlink_packet_core::NLM_F_CAPPED,
                ));
                st.pending.push_back(dg);
            }
            FakeReply::Errno(errno) => {
                let (p, f) = error_payload(errno, datagram, None);
                st.pending.push_back(encode(message_of(p, seq, f)));
            }
            FakeReply::ErrnoWithMessage(errno, text) => {
                let (p, f) = error_payload(errno, datagram, Some(&text));
                st.pending.push_back(encode(message_of(p, seq, f)));
            }
            FakeReply::Message(m) => {
                st.pending.push_back(encode(message_of(NetlinkPayload::InnerMessage(m), seq, 0)));
            }
            FakeReply::Dump(msgs) => {
                // All parts in one datagram, DONE in a second one: both
                // shapes occur with the real kernel.
                let mut dg = Vec::new();
                for m in msgs {
                    dg.extend(encode(message_of(
                        NetlinkPayload::InnerMessage(m),
                        seq,
                        NLM_F_MULTIPART,
                    )));
                }
                if !dg.is_empty() {
                    st.pending.push_back(dg);
                }
                let done = encode(message_of(
                    NetlinkPayload::Done(DoneMessage::default()),
                    seq,
                    NLM_F_MULTIPART,
                ));
                st.pending.push_back(done);
            }
            FakeReply::Raw(dgs) => {
                for mut dg in dgs {
                    rewrite_seq(&mut dg, seq);
                    st.pending.push_back(dg);
                }
            }
        }
        Ok(())
    }

    fn recv(&mut self) -> io::Result<&[u8]> {
        let next = {
            let mut st = self.lock();
            st.pending.pop_front()
        };
        match next {
            Some(dg) => {
                self.local = dg;
                Ok(&self.local)
            }
            None => {
                Err(io::Error::new(io::ErrorKind::WouldBlock, "fake transport: nothing to receive"))
            }
        }
    }

    fn wait_readable(&mut self, _timeout: Option<Duration>) -> io::Result<bool> {
        Ok(!self.lock().pending.is_empty())
    }
}

/// Rewrites the sequence number of every message in a datagram.
fn rewrite_seq(dg: &mut [u8], seq: u32) {
    let mut off = 0;
    while off + 16 <= dg.len() {
        let len = u32::from_ne_bytes([dg[off], dg[off + 1], dg[off + 2], dg[off + 3]]) as usize;
        dg[off + 8..off + 12].copy_from_slice(&seq.to_ne_bytes());
        if len < 16 {
            break;
        }
        off += (len + 3) & !3;
    }
}
