//! One datagram to every pod: the relay's fan-out. Each pod has a socket
//! connected to it while there are few enough (`Targets`), so a batch of
//! datagrams goes to it in one `sendmmsg`; the others, and the sender,
//! send from one unconnected socket per address family (`Sockets`).

use crate::discover::Pods;
use crate::os::socket;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};

/// One unconnected socket per address family, opened when first needed.
#[derive(Default)]
pub struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sockets {
    /// Opens the sockets a round needs, before anything is sent: a socket
    /// that cannot be opened means the sender cannot run here at all.
    pub fn open(&mut self, ipv4: bool, ipv6: bool) -> Result<(), String> {
        let wanted = [
            (ipv4, &mut self.v4, "0.0.0.0:0"),
            (ipv6, &mut self.v6, "[::]:0"),
        ];
        for (wanted, slot, local) in wanted {
            if wanted && slot.is_none() {
                let socket = UdpSocket::bind(local)
                    .map_err(|e| format!("cannot open a UDP socket on {local}: {e}"))?;
                *slot = Some(socket);
            }
        }
        Ok(())
    }

    /// Both families where the kernel has them (the relay's): pods of the
    /// other family may not exist.
    pub fn any() -> Result<Sockets, String> {
        let sockets = Sockets {
            v4: UdpSocket::bind("0.0.0.0:0").ok(),
            v6: UdpSocket::bind("[::]:0").ok(),
        };
        if sockets.v4.is_none() && sockets.v6.is_none() {
            return Err("cannot open a UDP socket to send from".into());
        }
        Ok(sockets)
    }

    pub fn send(&self, message: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self.for_addr(to) {
            Some(sock) => sock.send_to(message, to),
            None => Err(io::Error::other("no socket of that address family")),
        }
    }

    pub fn for_addr(&self, to: SocketAddr) -> Option<&UdpSocket> {
        if to.is_ipv4() {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        }
    }
}

/// What became of the copies for one pod: each was sent or failed.
#[derive(Debug, Default)]
pub struct Copies {
    pub sent: u64,
    pub failed: u64,
    /// Why the first failure failed.
    pub error: Option<io::Error>,
}

/// Sends each of `payloads` to `to`: in one batch on its connected
/// socket, else one `send_to` each.
pub fn send_copies(
    payloads: &[&[u8]],
    to: SocketAddr,
    connected: Option<&UdpSocket>,
    out: &Sockets,
) -> Copies {
    if let Some(sock) = connected {
        return in_batches(payloads, |rest| socket::send_batch(sock, rest));
    }
    let mut copies = Copies::default();
    for payload in payloads {
        match out.send(payload, to) {
            Ok(_) => copies.sent += 1,
            Err(e) => copies.fail(|| e),
        }
    }
    copies
}

impl Copies {
    /// Counts a failure; only the first error is kept, for the warning.
    fn fail(&mut self, error: impl FnOnce() -> io::Error) {
        self.failed += 1;
        if self.error.is_none() {
            self.error = Some(error());
        }
    }
}

/// Sends `payloads` with `send_batch`, which sends them in order until one
/// fails, so every copy is either sent or counted as failed.
fn in_batches(
    payloads: &[&[u8]],
    mut send_batch: impl FnMut(&[&[u8]]) -> io::Result<usize>,
) -> Copies {
    let mut copies = Copies::default();
    let mut at = 0;
    while at < payloads.len() {
        let sent = match send_batch(&payloads[at..]) {
            // sendmmsg stops at a failure without saying why: that one
            // again alone says (a batch of one is a plain send). Often it
            // goes: the error was a pod's earlier "port unreachable", which
            // the failed send reported and cleared.
            Ok(n) if at + n < payloads.len() => {
                copies.sent += n as u64;
                at += n;
                send_batch(&payloads[at..at + 1])
            }
            other => other,
        };
        match sent {
            Ok(n) if n > 0 => {
                copies.sent += n as u64;
                at += n;
            }
            Ok(_) => {
                copies.fail(|| io::Error::other("sent nothing, and no error"));
                at += 1;
            }
            Err(e) => {
                copies.fail(|| e);
                at += 1;
            }
        }
    }
    copies
}

/// Connected sockets per pod, at most this many: a connected socket skips
/// the route lookup of every `sendto` (measured in docs/BENCHMARKS.md);
/// past this, unconnected sends, so a large Service cannot use up the
/// file descriptors.
const MAX_CONNECTED: usize = 512;

/// The pods to send to, each with its connected socket when it has one.
#[derive(Default)]
pub struct Targets {
    /// The `Watch::generation` `list` was made for.
    made_for: Option<u64>,
    pub list: Vec<(SocketAddr, Option<UdpSocket>)>,
}

impl Targets {
    /// Follows a new pod list, keeping the sockets of pods still in it.
    pub fn follow(&mut self, pods: &Pods, generation: u64) {
        if self.made_for == Some(generation) {
            return;
        }
        self.made_for = Some(generation);
        let mut old: HashMap<SocketAddr, Option<UdpSocket>> = self.list.drain(..).collect();
        for (i, &to) in pods.addrs.iter().enumerate() {
            let socket = match old.remove(&to) {
                Some(socket) => socket,
                None if i < MAX_CONNECTED => connect(to),
                None => None,
            };
            self.list.push((to, socket));
        }
    }
}

/// A socket connected to `to`; None if that fails (unconnected sends then).
fn connect(to: SocketAddr) -> Option<UdpSocket> {
    let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(local).ok()?;
    socket.connect(to).ok()?;
    Some(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `send_batch` over payloads named "0", "1", ...: sends in order
    /// until one fails, as sendmmsg does. Those in `always` always fail;
    /// those in `once` fail the first time they are tried, as a send that
    /// reports (and clears) a pod's earlier "port unreachable" does.
    fn fake<'a>(
        always: &'a [usize],
        once: &'a [usize],
    ) -> impl FnMut(&[&[u8]]) -> io::Result<usize> + 'a {
        let mut tried = vec![];
        move |rest: &[&[u8]]| {
            let mut ok = 0;
            for payload in rest {
                let i = usize::from(payload[0] - b'0');
                let fails = always.contains(&i) || (once.contains(&i) && !tried.contains(&i));
                tried.push(i);
                if fails {
                    break;
                }
                ok += 1;
            }
            if ok == 0 {
                return Err(io::Error::from_raw_os_error(111));
            }
            Ok(ok)
        }
    }

    #[test]
    fn a_failure_in_a_batch_is_counted_and_the_rest_still_sent() {
        let payloads: [&[u8]; 6] = [b"0", b"1", b"2", b"3", b"4", b"5"];
        for (always, once, sent) in [
            (&[][..], &[][..], 6),
            (&[0][..], &[][..], 5),
            (&[2][..], &[][..], 5),
            (&[5][..], &[][..], 5),
            (&[1, 2][..], &[][..], 4),
            (&[0, 3, 4][..], &[][..], 3),
            (&[0, 1, 2, 3, 4, 5][..], &[][..], 0),
            // Stopped the batch, then went alone: sent.
            (&[][..], &[2][..], 6),
            (&[][..], &[1, 3, 5][..], 6),
            // First of a batch: its error is the batch's, counted.
            (&[][..], &[0][..], 5),
            (&[2][..], &[3][..], 4),
        ] {
            let copies = in_batches(&payloads, fake(always, once));
            let failed = payloads.len() as u64 - sent;
            assert_eq!(copies.sent, sent, "{always:?} {once:?}");
            assert_eq!(copies.failed, failed, "{always:?} {once:?}");
            assert_eq!(copies.error.is_some(), failed > 0, "{always:?} {once:?}");
        }
    }

    #[test]
    fn a_pod_gone_in_mid_batch_says_why() {
        // Each copy to a closed port brings back "port unreachable", which
        // the connected socket's next send reports: in a batch, a stop
        // without a reason.
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = closed.local_addr().unwrap();
        drop(closed);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(to).unwrap();
        let payloads: [&[u8]; 8] = [b"x"; 8];
        let failed = (0..50)
            .map(|_| in_batches(&payloads, |rest| socket::send_batch(&sock, rest)))
            .inspect(|copies| assert_eq!(copies.sent + copies.failed, 8))
            .find(|copies| copies.failed > 0)
            .expect("no send to a closed port failed");
        let error = failed.error.unwrap();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    }

    #[test]
    fn the_first_error_is_the_one_reported() {
        let payloads: [&[u8]; 3] = [b"0", b"1", b"2"];
        for always in [&[0, 2][..], &[1]] {
            let copies = in_batches(&payloads, fake(always, &[]));
            let error = copies.error.unwrap();
            assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        }
    }
}
