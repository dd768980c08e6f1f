//! What std has no call for: a dual-stack `[::]` bind that takes IPv4 too
//! whatever `net.ipv6.bindv6only` says, the receive buffer size
//! (SO_RCVBUF), and datagrams received and sent in batches (the relay's).
//! The calls themselves are in `sys`.

use crate::os::{pktinfo, sys};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// Binds `addr`. The unspecified IPv6 address (`[::]:port`) means every
/// address, IPv4 and IPv6, whatever `net.ipv6.bindv6only` says; where the
/// kernel has no IPv6 (some clusters disable it) it falls back to
/// `0.0.0.0:port`.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    if addr.ip() != Ipv6Addr::UNSPECIFIED {
        return UdpSocket::bind(addr);
    }
    match sys::bind_dual_stack_udp(addr.port()) {
        Err(e) if e.raw_os_error() == Some(sys::EAFNOSUPPORT) => {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, addr.port()))
        }
        other => other,
    }
}

/// Asks for a receive buffer of `bytes`; returns what the kernel granted
/// (it caps the request at `net.core.rmem_max` without an error).
pub fn set_receive_buffer(sock: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let asked = i32::try_from(bytes).unwrap_or(i32::MAX);
    // Linux reports double what it grants, to cover its bookkeeping.
    Ok(sys::set_receive_buffer(sock, asked)? as usize / 2)
}

/// What the receiver and the relay ask for unless told (`--rcvbuf`): room
/// for bursts; the kernel caps it at net.core.rmem_max.
pub const DEFAULT_RECEIVE_BUFFER: usize = 4 << 20;

/// `set_receive_buffer` for a program's listening socket, of `asked`
/// bytes or the default: the warning to log, if any. A default that the
/// kernel caps is no news; a size the user asked for is.
pub fn receive_buffer_warning(sock: &UdpSocket, asked: Option<usize>) -> Option<String> {
    let bytes = asked.unwrap_or(DEFAULT_RECEIVE_BUFFER);
    match set_receive_buffer(sock, bytes) {
        Ok(granted) if granted < bytes && asked.is_some() => Some(format!(
            "receive buffer is {granted} bytes, not the {bytes} asked: raise net.core.rmem_max"
        )),
        Ok(_) => None,
        Err(e) => Some(format!("cannot set the receive buffer: {e}")),
    }
}

/// Room for the datagrams one `recv` takes, each up to 64 KiB.
pub struct Batch {
    buf: Vec<u8>,
    names: Vec<[u8; sys::SOCKADDR_LEN]>,
    lens: Vec<usize>,
}

const SLOT: usize = 65_536;

impl Batch {
    /// Room for `slots` datagrams (at most `sys::MAX_BATCH`). Pages the
    /// kernel never writes to are never touched, so this costs address
    /// space more than memory.
    pub fn new(slots: usize) -> Batch {
        let slots = slots.clamp(1, sys::MAX_BATCH);
        Batch {
            buf: vec![0; slots * SLOT],
            names: vec![[0; sys::SOCKADDR_LEN]; slots],
            lens: vec![0; slots],
        }
    }

    /// Waits for a datagram as `recv_from` does, then takes those already
    /// queued too; returns how many it took.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        sys::recv_many(sock, &mut self.buf, SLOT, &mut self.names, &mut self.lens)
    }

    /// Datagram `i` of the last `recv`, and its source (None if the kernel
    /// gave none).
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let start = i * SLOT;
        let data = &self.buf[start..start + self.lens[i].min(SLOT)];
        (data, pktinfo::sockaddr(&self.names[i]))
    }
}

/// Sends `datagrams` in order on the connected `sock` with one system
/// call (sendmmsg) per `sys::MAX_BATCH`. Stops at the first that fails:
/// an error if it was the first, else how many went (the kernel does not
/// say why the next one failed).
pub fn send_batch(sock: &UdpSocket, datagrams: &[&[u8]]) -> io::Result<usize> {
    // Paced, batches are of one: send(2) costs less than a sendmmsg of one.
    if let [datagram] = datagrams {
        return sock.send(datagram).map(|_| 1);
    }
    let mut sent = 0;
    for chunk in datagrams.chunks(sys::MAX_BATCH) {
        match sys::send_many(sock, chunk) {
            Ok(n) if n == chunk.len() => sent += n,
            Ok(n) => return Ok(sent + n),
            Err(e) if sent == 0 => return Err(e),
            Err(_) => return Ok(sent),
        }
    }
    Ok(sent)
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

    /// More than any rmem_max (i32::MAX is what can be asked at all): the
    /// kernel grants less, which is news only when the user asked; the
    /// default never is.
    #[test]
    fn a_capped_buffer_is_warned_about_when_asked_for() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let huge = i32::MAX as usize;
        let warning = receive_buffer_warning(&sock, Some(huge)).expect("no warning");
        assert!(
            warning.ends_with(&format!(
                " bytes, not the {huge} asked: raise net.core.rmem_max"
            )),
            "{warning}"
        );
        assert_eq!(receive_buffer_warning(&sock, None), None);
        assert_eq!(receive_buffer_warning(&sock, Some(65536)), None);
    }
}
