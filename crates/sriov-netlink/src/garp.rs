//! Gratuitous ARP and unsolicited IPv6 neighbour advertisements, sent from
//! an interface inside a netns over a raw packet socket. Used after a VF
//! moves into a pod: its MAC is new to the switch and to the neighbours.
//!
//! Also [`FrameCapture`], a small receive-side packet socket for tests and
//! diagnostics.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::client::Netlink;
use crate::error::{Error, Result};
use crate::netns::{Netns, run_in_netns};
use crate::transport::wait_fd_readable;
use crate::types::Mac;

/// Ethertype of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// Ethertype of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// `ETH_P_ALL`: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;

/// The gratuitous ARP the kernel itself sends for `arp_notify`: an ARP
/// request, broadcast, sender and target IP both `ip`, target MAC zero.
pub fn build_garp_frame(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&Mac::BROADCAST.0);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes()); // htype: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // ptype: IPv4
    f.push(6); // hlen
    f.push(4); // plen
    f.extend_from_slice(&1u16.to_be_bytes()); // op: request
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An unsolicited neighbour advertisement (RFC 4861 7.2.6): to all-nodes,
/// hop limit 255, Override set, Solicited clear, with the target link-layer
/// address option; the source is the advertised address, as the kernel's
/// `ndisc_send_unsol_na` does.
pub fn build_unsolicited_na_frame(mac: Mac, ip: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.push(136); // type: neighbour advertisement
    icmp.push(0); // code
    icmp.extend_from_slice(&[0, 0]); // checksum, filled below
    icmp.extend_from_slice(&0x2000_0000u32.to_be_bytes()); // R=0 S=0 O=1
    icmp.extend_from_slice(&ip.octets());
    icmp.push(2); // option: target link-layer address
    icmp.push(1); // length in units of 8 bytes
    icmp.extend_from_slice(&mac.0);
    let sum = icmpv6_checksum(&ip, &ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&0x6000_0000u32.to_be_bytes()); // version 6
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(58); // next header: ICMPv6
    f.push(255); // hop limit, required for ND
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The ICMPv6 checksum over the IPv6 pseudo-header and `msg` (whose
/// checksum field must be zero).
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w =
                if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
            sum += u32::from(w);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A packet socket bound to one interface and ethertype.
fn packet_socket(ifindex: u32, ethertype: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(ethertype.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: the pointer and length describe `sll`, alive for the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast::<libc::sockaddr>(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn send_frame(fd: &OwnedFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `frame`, alive for the call;
    // the socket is bound, so no destination address is needed.
    let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != frame.len() {
        return Err(io::Error::other(format!("short send: {n} of {} bytes", frame.len())));
    }
    Ok(())
}

/// Resolves `ifname` in `ns` and sends `frame(mac)` on it, on a netns thread.
fn send_in(
    ns: &Netns,
    ifname: &str,
    op: &str,
    ethertype: u16,
    frame: impl FnOnce(Mac) -> Vec<u8> + Send,
) -> Result<()> {
    let perr =
        |source: io::Error| Error::Packet { op: op.to_owned(), ifname: ifname.to_owned(), source };
    run_in_netns(ns, || -> Result<()> {
        let link = Netlink::open()?.get_link(ifname)?;
        let mac = link.mac.ok_or_else(|| {
            perr(io::Error::new(io::ErrorKind::InvalidInput, "interface has no ethernet address"))
        })?;
        let fd = packet_socket(link.index, ethertype).map_err(perr)?;
        send_frame(&fd, &frame(mac)).map_err(perr)
    })?
}

/// Sends one gratuitous ARP for `ip` from `ifname` inside `ns`. The
/// interface must be up.
pub fn send_gratuitous_arp(ns: &Netns, ifname: &str, ip: Ipv4Addr) -> Result<()> {
    debug!(netns = %ns.path().display(), ifname, %ip, "send gratuitous arp");
    send_in(ns, ifname, &format!("send gratuitous arp for {ip}"), ETH_P_ARP, |mac| {
        build_garp_frame(mac, ip)
    })
}

/// Sends one unsolicited neighbour advertisement for `ip` from `ifname`
/// inside `ns`. The interface must be up.
pub fn send_unsolicited_na(ns: &Netns, ifname: &str, ip: Ipv6Addr) -> Result<()> {
    debug!(netns = %ns.path().display(), ifname, %ip, "send unsolicited neighbour advertisement");
    send_in(ns, ifname, &format!("send unsolicited na for {ip}"), ETH_P_IPV6, |mac| {
        build_unsolicited_na_frame(mac, ip)
    })
}

/// Receives raw frames on one interface of a netns (tests, diagnostics).
#[derive(Debug)]
pub struct FrameCapture {
    fd: OwnedFd,
    ifname: String,
}

impl FrameCapture {
    /// Opens a packet socket on `ifname` inside `ns` for `ethertype`
    /// ([`ETH_P_ALL`] for everything). Only frames arriving after this call
    /// are seen.
    pub fn open_in(ns: &Netns, ifname: &str, ethertype: u16) -> Result<Self> {
        let perr = |source: io::Error| Error::Packet {
            op: "open capture".into(),
            ifname: ifname.to_owned(),
            source,
        };
        let fd = run_in_netns(ns, || -> Result<OwnedFd> {
            let link = Netlink::open()?.get_link(ifname)?;
            packet_socket(link.index, ethertype).map_err(perr)
        })??;
        Ok(FrameCapture { fd, ifname: ifname.to_owned() })
    }

    /// Waits up to `timeout` for a frame for which `pred` is true; frames
    /// that do not match are skipped. `Ok(None)` on timeout.
    pub fn recv_matching(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let perr = |source: io::Error| Error::Packet {
            op: "capture".into(),
            ifname: self.ifname.clone(),
            source,
        };
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || !wait_fd_readable(std::os::fd::AsFd::as_fd(&self.fd), Some(left))
                    .map_err(perr)?
            {
                return Ok(None);
            }
            // SAFETY: the pointer and length describe `buf`, alive for the call.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(perr(e));
            }
            let frame = &buf[..n as usize];
            if pred(frame) {
                return Ok(Some(frame.to_vec()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]);

    #[test]
    fn garp_layout() {
        let f = build_garp_frame(MAC, Ipv4Addr::new(192, 0, 2, 10));
        let expect: Vec<u8> = [
            &[0xff; 6][..],
            &MAC.0,
            &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1],
            &MAC.0,
            &[192, 0, 2, 10],
            &[0; 6],
            &[192, 0, 2, 10],
        ]
        .concat();
        assert_eq!(f, expect);
    }

    /// RFC 1071: summing a message including its checksum yields 0xffff,
    /// i.e. the complement is 0. Checked independently of `icmpv6_checksum`.
    #[test]
    fn na_checksum_verifies() {
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let f = build_unsolicited_na_frame(MAC, ip);
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(f[14 + 7], 255, "hop limit");
        assert_eq!(f[14 + 6], 58, "next header");
        let icmp = &f[54..];
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4], 0x20, "override only");
        assert_eq!(&icmp[8..24], &ip.octets());
        assert_eq!(&icmp[26..32], &MAC.0);
        let mut sum: u64 = 0;
        let mut words = |b: &[u8]| {
            for c in b.chunks(2) {
                sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
        };
        words(&f[22..38]); // src
        words(&f[38..54]); // dst
        words(&(icmp.len() as u32).to_be_bytes());
        words(&[0, 0, 0, 58]);
        words(icmp);
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }
}
