//! The synchronous request/response engine under every typed operation:
//! sequence numbers, ACK and error handling, multipart dumps (netavark's
//! `netlink.rs` design, with the errno and extended ACK kept).

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use tracing::trace;

use crate::error::{Error, Result};
use crate::transport::{NetlinkSocket, Transport};
use crate::vf::VfAttr;

/// Reply messages with their raw bytes, and whether the dump was interrupted.
type Exchange = (Vec<(RouteNetlinkMessage, Vec<u8>)>, bool);

/// How often a dump is retried when the kernel flags it inconsistent
/// (`NLM_F_DUMP_INTR`: the table changed while it was being read).
const DUMP_RETRIES: usize = 3;

/// A route-netlink client: one typed method per kernel operation.
///
/// Generic over the [`Transport`] so tests can use
/// [`crate::FakeTransport`]; the default is the real [`NetlinkSocket`].
/// Not `Sync`: one client per thread, requests strictly one at a time.
#[derive(Debug)]
pub struct Netlink<T: Transport = NetlinkSocket> {
    transport: T,
    seq: u32,
}

impl Netlink<NetlinkSocket> {
    /// Opens a route socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let socket =
            NetlinkSocket::open().map_err(|e| Error::socket("open route netlink socket", e))?;
        Ok(Netlink::new(socket))
    }
}

impl<T: Transport> Netlink<T> {
    /// Wraps a transport.
    pub fn new(transport: T) -> Self {
        Netlink { transport, seq: 0 }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Unwraps the transport.
    pub fn into_transport(self) -> T {
        self.transport
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            // 0 is what multicast notifications carry; never use it.
            self.seq = 1;
        }
        self.seq
    }

    /// Sends a request built elsewhere (e.g. by [`crate::vf::build_vf_message`])
    /// and returns the reply messages. The header's flags are kept; its
    /// sequence number is assigned here. With `NLM_F_ACK` the call waits for
    /// the ACK; with `NLM_F_DUMP` it collects the dump; otherwise it returns
    /// after the first reply.
    pub fn send_request(
        &mut self,
        op: &str,
        message: NetlinkMessage<RouteNetlinkMessage>,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.send_request_attr(op, message, None)
    }

    pub(crate) fn send_request_attr(
        &mut self,
        op: &str,
        message: NetlinkMessage<RouteNetlinkMessage>,
        vf_attr: Option<VfAttr>,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        Ok(self.send_request_raw(op, message, vf_attr)?.into_iter().map(|(m, _)| m).collect())
    }

    /// Like [`Netlink::send_request`], also returning each reply's raw bytes.
    pub(crate) fn send_request_raw(
        &mut self,
        op: &str,
        message: NetlinkMessage<RouteNetlinkMessage>,
        vf_attr: Option<VfAttr>,
    ) -> Result<Vec<(RouteNetlinkMessage, Vec<u8>)>> {
        let is_dump = message.header.flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut attempt = 0;
        loop {
            let (out, interrupted) = self.exchange(op, message.clone(), vf_attr)?;
            if !(is_dump && interrupted) {
                return Ok(out);
            }
            attempt += 1;
            if attempt >= DUMP_RETRIES {
                return Err(Error::Kernel {
                    op: op.to_owned(),
                    vf_attr,
                    ext_ack: Some("dump kept changing while being read".into()),
                    source: io::Error::from_raw_os_error(libc::EINTR),
                });
            }
            trace!(op, attempt, "netlink dump interrupted, retrying");
        }
    }

    /// One request, its replies; the bool is "dump was interrupted".
    fn exchange(
        &mut self,
        op: &str,
        mut message: NetlinkMessage<RouteNetlinkMessage>,
        vf_attr: Option<VfAttr>,
    ) -> Result<Exchange> {
        let seq = self.next_seq();
        message.header.sequence_number = seq;
        message.finalize();
        let flags = message.header.flags;
        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let wants_ack = flags & NLM_F_ACK != 0;
        let bytes = serialize(&message);
        trace!(op, seq, ?message, "netlink send");
        self.transport.send(&bytes).map_err(|e| Error::socket(op, e))?;

        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let data = self.transport.recv().map_err(|e| Error::socket(op, e))?;
            let mut offset = 0;
            while offset + 16 <= data.len() {
                let rest = &data[offset..];
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if len < 16 || len > rest.len() {
                    return Err(Error::protocol(
                        op,
                        format!("bad nlmsg_len {len} with {} bytes left", rest.len()),
                    ));
                }
                offset += (len + 3) & !3;
                let raw = &rest[..len];
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw)
                    .map_err(|source| Error::Decode { op: op.to_owned(), source })?;
                if reply.header.sequence_number != seq {
                    // A late answer to an earlier request that failed mid-way,
                    // or a notification; neither is ours.
                    trace!(
                        op,
                        got = reply.header.sequence_number,
                        want = seq,
                        "skipping netlink message"
                    );
                    continue;
                }
                trace!(op, seq, ?reply, "netlink recv");
                let reply_flags = reply.header.flags;
                match reply.payload {
                    NetlinkPayload::Done(done) => {
                        if done.code != 0 {
                            return Err(kernel_error(op, vf_attr, done.code, None));
                        }
                        return Ok((out, interrupted));
                    }
                    NetlinkPayload::Error(err) => {
                        let code = err.raw_code();
                        if code == 0 {
                            return Ok((out, interrupted));
                        }
                        let ext = parse_ext_ack(reply_flags, &err.header);
                        return Err(kernel_error(op, vf_attr, code, ext));
                    }
                    NetlinkPayload::Noop => {}
                    NetlinkPayload::Overrun(_) => return Err(Error::protocol(op, "NLMSG_OVERRUN")),
                    NetlinkPayload::InnerMessage(m) => {
                        if reply_flags & NLM_F_DUMP_INTR != 0 {
                            interrupted = true;
                        }
                        out.push((m, raw.to_vec()));
                        if !is_dump && !wants_ack {
                            return Ok((out, interrupted));
                        }
                    }
                    _ => return Err(Error::protocol(op, "unknown netlink payload")),
                }
            }
        }
    }

    /// Request expecting only an ACK.
    pub(crate) fn ack(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        extra_flags: u16,
    ) -> Result<()> {
        self.send_request(op, request(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags)).map(drop)
    }

    /// Non-dump GET expecting exactly one reply.
    pub(crate) fn get_one(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<RouteNetlinkMessage> {
        let mut out = self.send_request(op, request(msg, NLM_F_REQUEST))?;
        match out.len() {
            1 => Ok(out.remove(0)),
            n => Err(Error::protocol(op, format!("expected 1 reply message, got {n}"))),
        }
    }

    /// Dump request.
    pub(crate) fn dump(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.send_request(op, request(msg, NLM_F_REQUEST | NLM_F_DUMP))
    }
}

/// Wraps a route message into a netlink request with the given flags and
/// sequence number 0 (the client assigns the real one).
pub fn request(msg: RouteNetlinkMessage, flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    m.finalize();
    m
}

/// The bytes of a message as they go on the wire.
pub fn serialize(message: &NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
    let mut m = message.clone();
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

fn kernel_error(op: &str, vf_attr: Option<VfAttr>, code: i32, ext_ack: Option<String>) -> Error {
    Error::Kernel {
        op: op.to_owned(),
        vf_attr,
        ext_ack,
        source: io::Error::from_raw_os_error(code.saturating_abs()),
    }
}

/// Extracts `NLMSGERR_ATTR_MSG` from an error reply's payload (after the
/// errno): the echoed request (only its header when `NLM_F_CAPPED`), then
/// TLVs when `NLM_F_ACK_TLVS`.
fn parse_ext_ack(flags: u16, body: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 || body.len() < 16 {
        return None;
    }
    let orig_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes([body[0], body[1], body[2], body[3]]) as usize
    };
    let mut off = (orig_len + 3) & !3;
    while off + 4 <= body.len() {
        let len = u16::from_ne_bytes([body[off], body[off + 1]]) as usize;
        let kind =
            u16::from_ne_bytes([body[off + 2], body[off + 3]]) & netlink_packet_core::NLA_TYPE_MASK;
        if len < 4 || off + len > body.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let raw = &body[off + 4..off + len];
            let text = raw.split(|b| *b == 0).next().unwrap_or(raw);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        off += (len + 3) & !3;
    }
    None
}
