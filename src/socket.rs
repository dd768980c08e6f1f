//! The two socket options std has no call for: a dual-stack `[::]` bind
//! that takes IPv4 too whatever `net.ipv6.bindv6only` says, and the receive
//! buffer size (SO_RCVBUF). Linux x86_64 constants and layouts.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};

const AF_INET6: i32 = 10;
const SOCK_DGRAM: i32 = 2;
const SOCK_CLOEXEC: i32 = 0o2_000_000;
const SOL_SOCKET: i32 = 1;
const SO_RCVBUF: i32 = 8;
const IPPROTO_IPV6: i32 = 41;
const IPV6_V6ONLY: i32 = 26;
const EAFNOSUPPORT: i32 = 97;

#[repr(C)]
struct SockaddrIn6 {
    family: u16,
    port: [u8; 2],
    flowinfo: u32,
    addr: [u8; 16],
    scope_id: u32,
}

extern "C" {
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
    fn getsockopt(fd: i32, level: i32, name: i32, value: *mut i32, len: *mut u32) -> i32;
    fn bind(fd: i32, addr: *const SockaddrIn6, len: u32) -> i32;
}

fn check(result: i32) -> io::Result<i32> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Binds `[::]:port` accepting IPv4 and IPv6; where the kernel has no IPv6
/// (some clusters disable it) falls back to `0.0.0.0:port`.
pub fn bind_all_addresses(port: u16) -> io::Result<UdpSocket> {
    match bind_dual_stack(port) {
        Err(e) if e.raw_os_error() == Some(EAFNOSUPPORT) => {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
        }
        other => other,
    }
}

fn bind_dual_stack(port: u16) -> io::Result<UdpSocket> {
    // SAFETY: plain syscalls on a descriptor we own; the socket is handed to
    // UdpSocket (which closes it) before any early return can leak it.
    unsafe {
        let fd = check(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0))?;
        let sock = UdpSocket::from_raw_fd(fd);
        let off = 0i32;
        check(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, 4))?;
        let addr = SockaddrIn6 {
            family: AF_INET6 as u16,
            port: port.to_be_bytes(),
            flowinfo: 0,
            addr: Ipv6Addr::UNSPECIFIED.octets(),
            scope_id: 0,
        };
        check(bind(fd, &addr, std::mem::size_of::<SockaddrIn6>() as u32))?;
        Ok(sock)
    }
}

/// Binds `addr`; the unspecified IPv6 address means dual-stack.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    if addr.ip() == Ipv6Addr::UNSPECIFIED {
        return bind_dual_stack(addr.port());
    }
    UdpSocket::bind(addr)
}

/// Asks for a receive buffer of `bytes`; returns what the kernel granted
/// (it caps the request at `net.core.rmem_max` without an error).
pub fn set_receive_buffer(sock: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let asked = i32::try_from(bytes).unwrap_or(i32::MAX);
    // SAFETY: value pointers are valid i32s with their true length.
    unsafe {
        check(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &asked, 4))?;
        let mut granted = 0i32;
        let mut len = 4u32;
        check(getsockopt(
            fd,
            SOL_SOCKET,
            SO_RCVBUF,
            &mut granted,
            &mut len,
        ))?;
        // Linux reports double what it grants, to cover its bookkeeping.
        Ok(granted as usize / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_takes_ipv4_and_ipv6() {
        let sock = bind_udp("[::]:0".parse().unwrap()).unwrap();
        let port = sock.local_addr().unwrap().port();
        for to in ["127.0.0.1", "::1"] {
            let client = UdpSocket::bind((to, 0)).unwrap();
            client.send_to(to.as_bytes(), (to, port)).unwrap();
            let mut buf = [0; 16];
            let (n, _) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], to.as_bytes());
        }
    }

    #[test]
    fn receive_buffer_is_granted_up_to_the_cap() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let granted = set_receive_buffer(&sock, 65536).unwrap();
        assert_eq!(granted, 65536);
    }
}
