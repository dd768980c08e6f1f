//! The two socket options std has no call for: a dual-stack `[::]` bind
//! that takes IPv4 too whatever `net.ipv6.bindv6only` says, and the receive
//! buffer size (SO_RCVBUF). The calls themselves are in `sys`.

use crate::sys;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// Binds `[::]:port` accepting IPv4 and IPv6; where the kernel has no IPv6
/// (some clusters disable it) falls back to `0.0.0.0:port`.
pub fn bind_all_addresses(port: u16) -> io::Result<UdpSocket> {
    match bind_dual_stack(port) {
        Err(e) if e.raw_os_error() == Some(sys::EAFNOSUPPORT) => {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
        }
        other => other,
    }
}

fn bind_dual_stack(port: u16) -> io::Result<UdpSocket> {
    sys::bind_dual_stack_udp(port)
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
    let asked = i32::try_from(bytes).unwrap_or(i32::MAX);
    // Linux reports double what it grants, to cover its bookkeeping.
    Ok(sys::set_receive_buffer(sock, asked)? as usize / 2)
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
