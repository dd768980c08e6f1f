//! Receiving a datagram together with the address it was sent to, and
//! answering from that address (IP_PKTINFO / IPV6_RECVPKTINFO with
//! recvmsg/sendmsg; std has neither). A receiver on a wildcard address of a
//! host with several addresses must acknowledge from the one the sender
//! used, or the sender cannot match the acknowledgement to the pod.
//!
//! The calls and the kernel's types (sockaddr, cmsghdr, in_pktinfo) are
//! in `sys`; this module fills and reads them.

use crate::os::sys::{
    self, Cmsghdr, In6Pktinfo, InPktinfo, SockaddrIn, SockaddrIn6, AF_INET, AF_INET6, IPV6_PKTINFO,
    IP_PKTINFO, SOCKADDR_LEN, SOL_IP, SOL_IPV6,
};
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};

/// Where a control message's data starts: right after its header (whose
/// size is a multiple of the 8-byte alignment).
const CMSG_HDR_LEN: usize = size_of::<Cmsghdr>();

/// Asks the kernel to tell `recv` each datagram's destination address.
pub fn enable(sock: &UdpSocket) -> io::Result<()> {
    sys::enable_pktinfo(sock)
}

/// One datagram received: its length, source, and the local address it
/// was sent to (None if the kernel did not say).
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub to: Option<IpAddr>,
}

/// `recv_from`, plus the destination address. Errors as `recv_from`'s
/// (WouldBlock, TimedOut, Interrupted...).
pub fn recv(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let mut name = [0u8; SOCKADDR_LEN];
    let mut control = [0u64; 16];
    let (len, name_len, control_len) = sys::recv_msg(sock, buf, &mut name, &mut control)?;
    let from = sockaddr(&name[..name_len])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown source address"))?;
    let mut bytes = [0u8; 128];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(control) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Ok(Received {
        len,
        from,
        to: destination(&bytes[..control_len]),
    })
}

/// Sends `data` to `to` from the local address `from` (as `recv` gave it),
/// or as `send_to` would when `from` is None.
pub fn send_from(
    sock: &UdpSocket,
    data: &[u8],
    to: SocketAddr,
    from: Option<IpAddr>,
) -> io::Result<usize> {
    let Some(from) = from else {
        return sock.send_to(data, to);
    };
    // `recv` gives an IPv6 (maybe IPv4-mapped) source on an IPv6 socket.
    let v6_socket = to.is_ipv6();
    let name = encode_sockaddr(to, v6_socket);
    let mut control = [0u8; 64];
    let control_len = encode_pktinfo(&mut control, from, v6_socket)?;
    // Aligned for the kernel's cmsghdr.
    let mut words = [0u64; 8];
    for (word, bytes) in words.iter_mut().zip(control.chunks_exact(8)) {
        *word = u64::from_ne_bytes(bytes.try_into().expect("8 bytes"));
    }
    sys::send_msg(sock, data, &name, &words, control_len)
}

/// The source as std's `recv_from` builds it, so log lines do not change.
pub(crate) fn sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(name.get(..2)?.try_into().ok()?);
    match family {
        AF_INET => {
            let name: SockaddrIn = sys::from_bytes(name)?;
            let port = u16::from_be_bytes(name.port);
            Some(SocketAddrV4::new(name.addr.into(), port).into())
        }
        AF_INET6 => {
            let name: SockaddrIn6 = sys::from_bytes(name)?;
            let port = u16::from_be_bytes(name.port);
            let ip = name.addr.into();
            Some(SocketAddrV6::new(ip, port, name.flowinfo, name.scope_id).into())
        }
        _ => None,
    }
}

/// `sockaddr_in` or `sockaddr_in6` for `to`; an IPv6 socket needs IPv4
/// destinations IPv4-mapped.
pub(crate) fn encode_sockaddr(to: SocketAddr, v6_socket: bool) -> Vec<u8> {
    let port = to.port().to_be_bytes();
    match to {
        SocketAddr::V4(v4) if !v6_socket => {
            let name = SockaddrIn {
                family: AF_INET,
                port,
                addr: v4.ip().octets(),
                zero: [0; 8],
            };
            sys::as_bytes(&name).to_vec()
        }
        _ => {
            let (ip, flowinfo, scope_id) = match to {
                SocketAddr::V4(v4) => (v4.ip().to_ipv6_mapped(), 0, 0),
                SocketAddr::V6(v6) => (*v6.ip(), v6.flowinfo(), v6.scope_id()),
            };
            let name = SockaddrIn6 {
                family: AF_INET6,
                port,
                flowinfo,
                addr: ip.octets(),
                scope_id,
            };
            sys::as_bytes(&name).to_vec()
        }
    }
}

/// Writes one pktinfo control message choosing `from` as the source;
/// returns its length. The interface is left to the routing table.
fn encode_pktinfo(out: &mut [u8], from: IpAddr, v6_socket: bool) -> io::Result<usize> {
    let (level, kind, data) = match from {
        IpAddr::V4(v4) if !v6_socket => {
            let info = InPktinfo {
                ifindex: 0,
                spec_dst: v4.octets(),
                addr: [0; 4],
            };
            (SOL_IP, IP_PKTINFO, sys::as_bytes(&info).to_vec())
        }
        _ => {
            let ip = match from {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let info = In6Pktinfo {
                addr: ip.octets(),
                ifindex: 0,
            };
            (SOL_IPV6, IPV6_PKTINFO, sys::as_bytes(&info).to_vec())
        }
    };
    let len = CMSG_HDR_LEN + data.len();
    let space = CMSG_HDR_LEN + data.len().next_multiple_of(8);
    let out = out
        .get_mut(..space)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "control buffer too small"))?;
    out.fill(0);
    let header = Cmsghdr { len, level, kind };
    out[..CMSG_HDR_LEN].copy_from_slice(sys::as_bytes(&header));
    out[CMSG_HDR_LEN..len].copy_from_slice(&data);
    Ok(space)
}

/// The destination address from the control messages `recvmsg` wrote.
fn destination(mut control: &[u8]) -> Option<IpAddr> {
    while let Some(header) = sys::from_bytes::<Cmsghdr>(control) {
        let data = control.get(CMSG_HDR_LEN..header.len)?;
        match (header.level, header.kind) {
            (SOL_IP, IP_PKTINFO) => {
                if let Some(info) = sys::from_bytes::<InPktinfo>(data) {
                    // addr: the header's destination address.
                    return Some(Ipv4Addr::from(info.addr).into());
                }
            }
            (SOL_IPV6, IPV6_PKTINFO) => {
                if let Some(info) = sys::from_bytes::<In6Pktinfo>(data) {
                    return Some(Ipv6Addr::from(info.addr).to_canonical());
                }
            }
            _ => {}
        }
        control = control.get(header.len.next_multiple_of(8)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The destination is reported for each family of a dual-stack socket
    /// and of single-family sockets, and an answer goes out from it.
    #[test]
    fn knows_the_destination_and_answers_from_it() {
        let cases = [
            ("[::]:0", "127.0.0.1"),
            ("[::]:0", "::1"),
            ("0.0.0.0:0", "127.0.0.1"),
            ("[::1]:0", "::1"),
        ];
        for (bind, to) in cases {
            let sock = crate::os::socket::bind_udp(bind.parse().unwrap()).unwrap();
            enable(&sock).unwrap();
            let port = sock.local_addr().unwrap().port();
            let client = UdpSocket::bind((to, 0)).unwrap();
            client.send_to(b"ping", (to, port)).unwrap();
            let mut buf = [0; 16];
            let got = recv(&sock, &mut buf).unwrap();
            assert_eq!(&buf[..got.len], b"ping");
            let want_from = client.local_addr().unwrap();
            assert_eq!(got.from.ip().to_canonical(), want_from.ip(), "{bind} {to}");
            assert_eq!(got.from.port(), want_from.port());
            let to_ip: IpAddr = to.parse().unwrap();
            assert_eq!(got.to, Some(to_ip), "{bind} {to}");
            send_from(&sock, b"pong", got.from, got.to).unwrap();
            let (n, answered_from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"pong");
            assert_eq!(answered_from, SocketAddr::new(to_ip, port), "{bind} {to}");
        }
    }

    #[test]
    fn other_control_messages_are_skipped_and_junk_is_safe() {
        let mut control = vec![0u8; 24];
        control[..8].copy_from_slice(&20usize.to_ne_bytes());
        control[8..12].copy_from_slice(&1i32.to_ne_bytes());
        let mut v4 = [0u8; 64];
        let len = encode_pktinfo(&mut v4, "10.0.0.9".parse().unwrap(), false).unwrap();
        // Sent and received in_pktinfo differ in which field holds the
        // address: move spec_dst to ipi_addr.
        let mut received = v4[..len].to_vec();
        received.copy_within(20..24, 24);
        control.extend_from_slice(&received);
        assert_eq!(destination(&control), Some("10.0.0.9".parse().unwrap()));
        for junk in [&[0xffu8; 40][..], &[0; 16], &[0; 3], &[]] {
            assert_eq!(destination(junk), None);
        }
    }
}
