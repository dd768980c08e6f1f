//! The relay's rules (docs/PROTOCOL.md, "Relays"): what it forwards, to
//! whom and from where, and how it confirms a DATA frame to its client.
//!
//! - Every copy leaves from the relay's listen port: its per-pod connected
//!   sockets share that port (SO_REUSEPORT). So a relay that is itself a
//!   pod of another relay's Service sees that relay's copies come from a
//!   pod address (IP and the Service's port) it forwards to.
//! - Nothing from a pod it forwards to is forwarded (another relay's copy,
//!   or an acknowledgement), nor any FORWARDED frame (it claims a source
//!   the relay cannot vouch for): refused and counted. A datagram thus goes
//!   through at most one relay of a Service, and a client cannot forge its
//!   source through a relay.
//! - A DATA frame (`sender --confirm`) is forwarded to every pod and
//!   acknowledged to its client once every pod has acknowledged it.
//! - With a key (`--key-file`), only what is signed with it is judged, by
//!   what it carries: an unsigned datagram is refused (counted by reason,
//!   `keyed::rejected`), a client's DATA frame goes to the pods as a
//!   FORWARDED DATA frame the relay signs (a MESSAGE frame as a FORWARDED
//!   one), and only signed ACKs count.

use crate::confirm::Waiting;
use crate::discover;
use crate::frame::{self, Frame, Id};
use crate::keyed;
use crate::os::{socket, sys};
use crate::signed::Signing;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// What to do with a datagram that arrived from `from`.
#[derive(Debug, PartialEq)]
pub enum Verdict<'a> {
    /// Send a copy of this to every pod: the datagram, or what a signed
    /// MESSAGE frame carries (to be forwarded in a frame signed anew).
    Forward(&'a [u8]),
    /// A DATA frame and its message: forward it, and acknowledge it to
    /// `from` when every pod has acknowledged it.
    Confirm(Id, &'a [u8]),
    /// A pod's acknowledgement of a DATA frame forwarded.
    Acknowledged(Id),
    /// Not forwarded: from a pod forwarded to, or a FORWARDED frame.
    Refuse,
}

/// The rule, by what the datagram is and whether `from_pod`: its source
/// is one of the pods forwarded to. With a key, the datagram must be
/// signed with it: else it is counted and warned about, and None.
pub fn judge<'a>(
    signing: Option<&mut Signing>,
    datagram: &'a [u8],
    from: SocketAddr,
    from_pod: bool,
) -> Option<Verdict<'a>> {
    let frame = match signing {
        None => frame::parse(datagram),
        Some(signing) => {
            keyed::poll(signing);
            match signing.verify(datagram) {
                Ok(signed) => Some(signed.frame),
                Err(reason) => {
                    keyed::rejected(signing, reason, from);
                    return None;
                }
            }
        }
    };
    Some(match (frame, from_pod) {
        (Some(Frame::Ack(id)), true) => Verdict::Acknowledged(id),
        (_, true) | (Some(Frame::Forwarded { .. } | Frame::Ack(_)), false) => Verdict::Refuse,
        (Some(Frame::Data { id, message }), false) => Verdict::Confirm(id, message),
        // Only signed (`frame::parse_signed`): re-signed per pod.
        (Some(Frame::Message { message, .. }), false) => Verdict::Forward(message),
        (None, false) => Verdict::Forward(datagram),
    })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Binds the listen socket: first without SO_REUSEPORT, so a port already
/// taken (by another relay too) is "address in use", then again with it,
/// for the per-pod sockets to share. `bind` is the plain bind.
pub fn listen(bind: impl FnOnce() -> io::Result<UdpSocket>) -> io::Result<UdpSocket> {
    let local = bind()?.local_addr()?;
    let sock = sys::bind_udp_reuse_port(local)?;
    sys::reuse_port_to_first(&sock)?;
    Ok(sock)
}

/// Each per-pod socket's receive buffer: it only ever holds a pod's
/// acknowledgements (or another relay's copies), read at least every
/// `DRAIN_EVERY`; small, so 512 of them stay bounded (the kernel's floor
/// is about 2 KiB).
const POD_RECEIVE_BUFFER: usize = 16 << 10;

/// Per-pod sockets are read this often, and every turn of the loop while
/// a confirmation is pending.
pub const DRAIN_EVERY: Duration = Duration::from_millis(200);

/// Connected sockets per pod, at most this many: a connected socket skips
/// the route lookup of every `sendto` (measured in docs/BENCHMARKS.md);
/// past this, unconnected sends, so a large Service cannot use up the
/// file descriptors.
const MAX_CONNECTED: usize = 512;

/// Pods by address, to a place in a list: the one hash table type of the
/// relay (`confirm` and `discover` have it too), so its code is linked once.
pub type Places = crate::discover::AddrMap<usize>;

/// The pods to send to, each with its connected socket when it has one.
#[derive(Default)]
pub struct Targets {
    /// The `Watch::generation` `list` was made for.
    made_for: Option<u64>,
    pub list: Vec<(SocketAddr, Option<UdpSocket>)>,
    /// The pods' addresses, canonical: is a source one of them? A map
    /// (to the place in `list`) rather than a set: `confirm` links this
    /// type anyway, and each hash table type costs 2 KB of code.
    set: Places,
}

impl Targets {
    /// Follows a new pod list, keeping the sockets of pods still in it;
    /// new ones share the port of `local` (the listen socket's address).
    pub fn follow(&mut self, pods: &discover::Pods, generation: u64, local: SocketAddr) {
        if self.made_for == Some(generation) {
            return;
        }
        self.made_for = Some(generation);
        // The old list's places by address (`Places`, not a map of sockets).
        let mut old = std::mem::take(&mut self.list);
        let mut places: Places = old
            .iter()
            .enumerate()
            .map(|(place, &(pod, _))| (pod, place))
            .collect();
        for (i, &to) in pods.addrs.iter().enumerate() {
            let socket = match places.remove(&to) {
                Some(place) => old[place].1.take(),
                None if i < MAX_CONNECTED => connect(local, to),
                None => None,
            };
            self.list.push((to, socket));
        }
        self.set = pods
            .addrs
            .iter()
            .enumerate()
            .map(|(place, &a)| (canonical(a), place))
            .collect();
    }

    pub fn contains(&self, from: SocketAddr) -> bool {
        self.set.contains_key(&canonical(from))
    }

    /// Reads what waits on the per-pod sockets, without waiting; `got` is
    /// told of each datagram and the pod it came from.
    pub fn drain(&self, buf: &mut [u8], mut got: impl FnMut(&[u8], SocketAddr)) {
        for (pod, socket) in &self.list {
            let Some(socket) = socket else { continue };
            // Bounded by the small buffer; errors (a pod's ICMP error
            // for a send) are for the next send to report.
            while let Ok(len) = sys::recv_now(socket, buf) {
                got(&buf[..len], *pod);
            }
        }
    }
}

/// Whether a socket bound to `local` can send to `to`: the wildcard
/// reaches all (IPv4 mapped), an address its own family, and loopback
/// only loopback.
fn reaches(local: SocketAddr, to: SocketAddr) -> bool {
    let (ip, to) = (local.ip(), to.ip().to_canonical());
    ip == std::net::Ipv6Addr::UNSPECIFIED
        || (ip.is_ipv4() == to.is_ipv4()
            && (ip.is_unspecified() || !ip.is_loopback() || to.is_loopback()))
}

/// A socket connected to `to`, on `local`'s address and port when that
/// can reach it, else on a port of its own (a relay listening on loopback
/// is no pod of any Service); None if that fails (unconnected sends then).
// Out of line: inlined, it made the binary larger (under 600 KB).
#[inline(never)]
fn connect(local: SocketAddr, to: SocketAddr) -> Option<UdpSocket> {
    let socket = if reaches(local, to) {
        sys::bind_udp_reuse_port(local).ok()?
    } else {
        UdpSocket::bind(any_port(to.is_ipv4())).ok()?
    };
    let to = match (socket.local_addr().ok()?, to) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
        }
        _ => to,
    };
    socket.connect(to).ok()?;
    let _ = socket::set_receive_buffer(&socket, POD_RECEIVE_BUFFER);
    Some(socket)
}

/// 0.0.0.0:0 or [::]:0: an address, not text, as std binds text through
/// a generic path that may ask the resolver (code a binary need not link).
fn any_port(ipv4: bool) -> SocketAddr {
    if ipv4 {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    }
}

/// The sockets for unconnected sends: the listen socket where it can
/// reach the pod's family (so the copy comes from the listen port), else
/// one of its own.
pub struct Out {
    pub listen: UdpSocket,
    pub families: Sockets,
}

impl Out {
    fn for_pod(&self, to: SocketAddr) -> Option<&UdpSocket> {
        if reaches(self.listen.local_addr().ok()?, to) {
            return Some(&self.listen);
        }
        self.families.for_addr(to)
    }
}

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
            (ipv4, &mut self.v4, any_port(true)),
            (ipv6, &mut self.v6, any_port(false)),
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

    /// Both families where the kernel has them (the relay's, beside its
    /// listen socket): pods of the other family may not exist.
    pub fn both() -> Sockets {
        Sockets {
            v4: UdpSocket::bind(any_port(true)).ok(),
            v6: UdpSocket::bind(any_port(false)).ok(),
        }
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

impl Copies {
    /// Counts a failure; only the first error is kept, for the warning.
    fn fail(&mut self, error: impl FnOnce() -> io::Error) {
        self.failed += 1;
        if self.error.is_none() {
            self.error = Some(error());
        }
    }
}

/// Sends each of `payloads` to `to`: in one batch on its connected
/// socket, else one `send_to` each.
pub fn send_copies(
    payloads: &[&[u8]],
    to: SocketAddr,
    connected: Option<&UdpSocket>,
    out: &Out,
) -> Copies {
    if let Some(sock) = connected {
        return in_batches(payloads, |rest| socket::send_batch(sock, rest));
    }
    let mut copies = Copies::default();
    for payload in payloads {
        let result = match out.for_pod(to) {
            Some(sock) => sock.send_to(payload, to),
            None => Err(io::Error::other("no socket of that address family")),
        };
        match result {
            Ok(_) => copies.sent += 1,
            Err(e) => copies.fail(|| e),
        }
    }
    copies
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

/// DATA frames forwarded and not yet acknowledged by every pod, at most
/// `MAX_PENDING`, each for at most `KEEP`: a client waits for one message
/// at a time, for seconds.
#[derive(Default)]
pub struct Confirmations {
    pending: Vec<Pending>,
}

struct Pending {
    client: SocketAddr,
    waiting: Waiting,
    since: Instant,
    /// The client's last send of it: a client that stopped retrying has
    /// given up, and the relay no longer hurries to read ACKs for it.
    last: Instant,
    /// Every pod acknowledged; kept to answer a retry whose ACK was lost.
    done: bool,
}

const MAX_PENDING: usize = 256;
const KEEP: Duration = Duration::from_secs(30);
/// A client retries every 250 ms at most (docs/PROTOCOL.md, Sender).
const RETRYING: Duration = Duration::from_secs(1);
/// How often the per-pod sockets are read while a confirmation waits.
pub const DRAIN_WAITING: Duration = Duration::from_millis(10);

impl Confirmations {
    /// A DATA frame `id` from `client`, with the pods now: the pods to
    /// send it to (all at first; on a retry, those that have not
    /// acknowledged), and whether to acknowledge it to the client at once
    /// (every pod had).
    pub fn data(
        &mut self,
        client: SocketAddr,
        id: Id,
        pods: &[SocketAddr],
    ) -> (Vec<SocketAddr>, bool) {
        let now = Instant::now();
        self.pending.retain(|p| now.duration_since(p.since) < KEEP);
        let found = self
            .pending
            .iter_mut()
            .find(|p| p.client == client && p.waiting.id() == id);
        let pending = match found {
            Some(pending) => pending,
            None => {
                if self.pending.len() >= MAX_PENDING {
                    self.pending.remove(0);
                }
                self.pending.push(Pending {
                    client,
                    waiting: Waiting::new(id),
                    since: now,
                    last: now,
                    done: false,
                });
                self.pending.last_mut().expect("just pushed")
            }
        };
        pending.last = now;
        if pending.done {
            return (Vec::new(), true);
        }
        pending.waiting.update(pods);
        let to: Vec<_> = pending.waiting.unconfirmed().collect();
        (to, false)
    }

    /// A pod's acknowledgement: the clients (and ids) every pod has now
    /// acknowledged, to acknowledge to.
    pub fn ack(&mut self, datagram: &[u8], from: SocketAddr) -> Vec<(SocketAddr, Id)> {
        let mut complete = Vec::new();
        for pending in self.pending.iter_mut().filter(|p| !p.done) {
            if pending.waiting.acknowledged(datagram, from) && pending.waiting.done() {
                pending.done = true;
                complete.push((pending.client, pending.waiting.id()));
            }
        }
        complete
    }

    /// Whether any is waiting for pods, its client still retrying.
    pub fn waiting(&self) -> bool {
        self.pending
            .iter()
            .any(|p| !p.done && p.last.elapsed() < RETRYING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_rules() {
        let id = Id { sender: 1, seq: 2 };
        let data = frame::data(id, b"m");
        let mut fwd = Vec::new();
        frame::write_forwarded(&mut fwd, id, addr("6.6.6.6:666"), b"m");
        let mut fwd_data = Vec::new();
        frame::write_forwarded_data(&mut fwd_data, id, addr("6.6.6.6:666"), b"m");
        let ack = frame::ack(id);
        // (datagram, from a pod?, verdict)
        let message = frame::message(id, b"m");
        let cases: [(&[u8], bool, Verdict); 12] = [
            (b"plain", false, Verdict::Forward(b"plain")),
            (b"plain", true, Verdict::Refuse),
            (&message, false, Verdict::Forward(&message)),
            (&message, true, Verdict::Refuse),
            (&data, false, Verdict::Confirm(id, b"m")),
            (&data, true, Verdict::Refuse),
            (&fwd, false, Verdict::Refuse),
            (&fwd, true, Verdict::Refuse),
            (&fwd_data, false, Verdict::Refuse),
            (&fwd_data, true, Verdict::Refuse),
            (&ack, true, Verdict::Acknowledged(id)),
            (&ack, false, Verdict::Refuse),
        ];
        for (datagram, from_pod, want) in cases {
            let from = addr("10.0.0.9:5000");
            let got = judge(None, datagram, from, from_pod);
            assert_eq!(got, Some(want), "{datagram:?} {from_pod}");
        }
    }

    /// With a key: the same rules over what a signed datagram carries; a
    /// signed MESSAGE frame forwards its message (to be signed anew), and
    /// anything unsigned is refused for its signature (None).
    #[test]
    fn the_rules_with_a_key() {
        let file = crate::signed::TestKeyFile::new("judge-key");
        let (mut client, mut relay) = (file.open(1), file.open(2));
        let id = Id { sender: 1, seq: 2 };
        let sealed = |mut frame: Vec<u8>, client: &mut Signing| {
            client.seal(&mut frame);
            frame
        };
        let message = sealed(frame::message(id, b"m"), &mut client);
        let data = sealed(frame::data(id, b"m"), &mut client);
        let ack = sealed(frame::ack(id).to_vec(), &mut client);
        let mut fwd = Vec::new();
        frame::write_forwarded(&mut fwd, id, addr("6.6.6.6:666"), b"m");
        let fwd = sealed(fwd, &mut client);
        // (datagram, from a pod?, verdict)
        let cases: [(&[u8], bool, Option<Verdict>); 7] = [
            (&message, false, Some(Verdict::Forward(b"m"))),
            (&data, false, Some(Verdict::Confirm(id, b"m"))),
            (&ack, true, Some(Verdict::Acknowledged(id))),
            (&fwd, false, Some(Verdict::Refuse)),
            (&message, false, None), // a replay
            (b"plain", false, None),
            (&frame::message(id, b"m"), false, None),
        ];
        for (datagram, from_pod, want) in cases {
            let from = addr("10.0.0.9:5000");
            let got = judge(Some(&mut relay), datagram, from, from_pod);
            assert_eq!(got, want, "{datagram:?} {from_pod}");
        }
    }

    #[test]
    fn a_data_frame_is_acknowledged_when_every_pod_has() {
        let id = Id { sender: 1, seq: 2 };
        let client = addr("10.0.0.9:5000");
        let [a, b] = [addr("10.1.0.1:12000"), addr("10.1.0.2:12000")];
        let mut confirmations = Confirmations::default();
        assert_eq!(confirmations.data(client, id, &[a, b]), (vec![a, b], false));
        assert!(confirmations.waiting());
        assert_eq!(confirmations.ack(&frame::ack(id), a), []);
        // The client's retry goes to b alone.
        assert_eq!(confirmations.data(client, id, &[a, b]), (vec![b], false));
        let other = Id { sender: 1, seq: 3 };
        assert_eq!(confirmations.ack(&frame::ack(other), b), []);
        assert_eq!(confirmations.ack(&frame::ack(id), b), [(client, id)]);
        assert!(!confirmations.waiting());
        assert_eq!(confirmations.ack(&frame::ack(id), b), []);
        // A retry after that: its ACK was lost; answered at once.
        assert_eq!(confirmations.data(client, id, &[a, b]), (vec![], true));
    }

    #[test]
    fn pending_confirmations_stay_bounded() {
        let mut confirmations = Confirmations::default();
        let pod = [addr("10.1.0.1:12000")];
        for seq in 0..10_000 {
            let id = Id { sender: 1, seq };
            confirmations.data(addr("10.0.0.9:5000"), id, &pod);
            assert!(confirmations.pending.len() <= MAX_PENDING);
        }
    }

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

    #[test]
    fn which_pods_the_listen_address_reaches() {
        for (local, to, want) in [
            ("[::]:1", "10.0.0.1:2", true),
            ("[::]:1", "[fd00::1]:2", true),
            ("0.0.0.0:1", "10.0.0.1:2", true),
            ("0.0.0.0:1", "[fd00::1]:2", false),
            ("10.0.0.9:1", "10.0.0.1:2", true),
            ("10.0.0.9:1", "127.0.0.1:2", true),
            ("127.0.0.1:1", "127.0.0.1:2", true),
            ("127.0.0.1:1", "10.0.0.1:2", false),
            ("[::1]:1", "[fd00::1]:2", false),
            ("[::1]:1", "[::1]:2", true),
            ("[fd00::9]:1", "10.0.0.1:2", false),
            ("[fd00::9]:1", "[fd00::1]:2", true),
        ] {
            assert_eq!(reaches(addr(local), addr(to)), want, "{local} {to}");
        }
    }

    /// A per-pod socket is bound before it is connected: meanwhile no
    /// client's datagram may land there instead of on the listen socket.
    #[test]
    fn clients_reach_the_listen_socket_while_a_pod_socket_is_not_connected_yet() {
        let listen = listen(|| UdpSocket::bind("127.0.0.1:0")).unwrap();
        let local = listen.local_addr().unwrap();
        let _unconnected: Vec<_> = (0..4)
            .map(|_| sys::bind_udp_reuse_port(local).unwrap())
            .collect();
        listen
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0; 16];
        for _ in 0..32 {
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client.send_to(b"c", local).unwrap();
            listen.recv_from(&mut buf).expect("on the listen socket");
        }
    }

    /// Copies leave from the listen port, on connected sockets too; what a
    /// pod sends back reaches the pod's socket, not the listen socket.
    #[test]
    fn copies_leave_from_the_listen_port() {
        let listen = listen(|| UdpSocket::bind("127.0.0.1:0")).unwrap();
        let local = listen.local_addr().unwrap();
        let pod = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = pod.local_addr().unwrap();
        let mut targets = Targets::default();
        let pods = discover::Pods {
            addrs: vec![to],
            ..Default::default()
        };
        targets.follow(&pods, 1, local);
        let connected = targets.list[0].1.as_ref().expect("connected");
        connected.send(b"copy").unwrap();
        let mut buf = [0; 16];
        let (_, from) = pod.recv_from(&mut buf).unwrap();
        assert_eq!(from, local);
        assert!(targets.contains(to));
        pod.send_to(b"back", local).unwrap();
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while got.is_empty() && Instant::now() < end {
            targets.drain(&mut buf, |d, from| got.push((d.to_vec(), from)));
        }
        assert_eq!(got, [(b"back".to_vec(), to)]);
        assert!(listen.set_nonblocking(true).is_ok());
        assert!(
            listen.recv_from(&mut buf).is_err(),
            "not on the listen socket"
        );
        // The port is taken: a second listener is refused.
        assert!(super::listen(|| UdpSocket::bind(local)).is_err());
    }
}
