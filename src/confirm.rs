//! `sender --confirm`: send a message framed (docs/PROTOCOL.md) to every
//! pod, then wait for their acknowledgements, re-sending with backoff to
//! the pods that have not answered and re-resolving the service before
//! each retry, until all have answered or the timeout has passed.

use crate::forward::Places;
use crate::frame::{self, Frame, Id};
use crate::os::signals::Stop;
use crate::signed::Signing;
use std::collections::hash_map::Entry;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// First pause before a retry; it doubles up to `MAX_BACKOFF`. A pod
/// answers within a millisecond or two unless something was lost, so the
/// first retry comes soon; the cap keeps many retries within the default
/// 2 s timeout (at 0.1, 0.3, 0.55, 0.8, ... 1.8 s): at 10% loss each way,
/// a thousand pods then all confirm in about a second.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Sends between two looks at the acknowledgements that have arrived.
const SEND_BATCH: usize = 64;

/// The receive buffer to ask for: a thousand acknowledgements' worth.
const ACK_BUFFER: usize = 1 << 20;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A sender's identity and its message numbering.
pub struct Confirmer {
    sender: u64,
    last_seq: u64,
    timeout: Duration,
    /// `--key-file`: messages go out signed, and only signed ACKs count.
    signing: Option<Box<Signing>>,
}

/// A pod and how its first send went.
pub type Sent = (SocketAddr, io::Result<usize>);

/// The service's pods now, found within the time given; None keeps the
/// list in hand.
type Resolve<'a> = dyn FnMut(Duration) -> Option<Vec<SocketAddr>> + 'a;

/// How long a retry's re-resolution may take: a DNS server answers in
/// milliseconds, and one that stopped answering must not hold up the
/// retries or the timeout (a resolver can take 10 s to give up).
const RESOLVE_LIMIT: Duration = Duration::from_millis(250);

/// How one confirmed broadcast ended.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub confirmed: Vec<SocketAddr>,
    /// Pods still in the service that never acknowledged, in send order.
    pub unconfirmed: Vec<SocketAddr>,
}

/// The pods of one message and which of them have acknowledged it.
#[derive(Debug)]
pub struct Waiting {
    id: Id,
    /// (pod, acknowledged), in the order first sent to.
    pods: Vec<(SocketAddr, bool)>,
    /// Each pod's place in `pods`, by its address as acknowledgements come
    /// from it (`canonical`): looking each one up by scanning `pods` made a
    /// thousand pods cost half a million comparisons.
    places: Places,
    /// How many have not acknowledged.
    left: usize,
    /// The sender's key, for one message: see `Confirmer::with_key`.
    signing: Option<Box<Signing>>,
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Waiting {
    pub fn new(id: Id) -> Waiting {
        Waiting {
            id,
            pods: Vec::new(),
            places: Places::default(),
            left: 0,
            signing: None,
        }
    }

    /// Counts `datagram` from `from` if it is the acknowledgement of this
    /// message from a pod waited for; true if it confirmed a pod. Anything
    /// else (another message's id, another sender's, an address that is
    /// not a pod, not an ACK at all) confirms nothing.
    pub fn acknowledged(&mut self, datagram: &[u8], from: SocketAddr) -> bool {
        let frame = match &mut self.signing {
            None => frame::parse(datagram),
            // Unsigned, forged, stale or replayed: confirms nothing.
            Some(signing) => signing.verify(datagram).ok().map(|signed| signed.frame),
        };
        if frame != Some(Frame::Ack(self.id)) {
            return false;
        }
        let Some(&place) = self.places.get(&canonical(from)) else {
            return false;
        };
        let acked = &mut self.pods[place].1;
        if *acked {
            return false;
        }
        *acked = true;
        self.left -= 1;
        true
    }

    /// Takes the service's current pods: new ones are added (returned, to
    /// be sent to); unconfirmed ones that left are no longer waited for.
    /// Confirmed pods stay confirmed, in the service or not. A pod listed
    /// twice (by an IPv4 and an IPv4-mapped address too) is one pod.
    pub fn update(&mut self, current: &[SocketAddr]) -> Vec<SocketAddr> {
        // A map: a retry with thousands of pods stays linear.
        let now = set(current.iter().copied());
        self.pods
            .retain(|(pod, acked)| *acked || now.contains_key(pod));
        self.places.clear();
        for (place, &(pod, _)) in self.pods.iter().enumerate() {
            self.places.insert(canonical(pod), place);
        }
        let mut new = Vec::new();
        for &pod in current {
            if let Entry::Vacant(place) = self.places.entry(canonical(pod)) {
                place.insert(self.pods.len());
                self.pods.push((pod, false));
                new.push(pod);
            }
        }
        self.left = self.pods.iter().filter(|&&(_, acked)| !acked).count();
        new
    }

    pub fn unconfirmed(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.pods
            .iter()
            .filter(|(_, acked)| !acked)
            .map(|&(pod, _)| pod)
    }

    /// Every pod still waited for has acknowledged.
    pub fn done(&self) -> bool {
        self.left == 0
    }

    pub fn id(&self) -> Id {
        self.id
    }

    fn report(self) -> Report {
        let (confirmed, unconfirmed): (Vec<_>, Vec<_>) =
            self.pods.into_iter().partition(|&(_, acked)| acked);
        Report {
            confirmed: confirmed.into_iter().map(|(pod, _)| pod).collect(),
            unconfirmed: unconfirmed.into_iter().map(|(pod, _)| pod).collect(),
        }
    }
}

impl Confirmer {
    pub fn new(timeout: Duration) -> Confirmer {
        Confirmer {
            sender: frame::random_sender_id(),
            last_seq: 0,
            timeout,
            signing: None,
        }
    }

    /// With a key, each send (retries too) is a DATA frame signed anew,
    /// and only signed acknowledgements confirm a pod.
    pub fn with_key(self, signing: Option<Box<Signing>>) -> Confirmer {
        Confirmer { signing, ..self }
    }

    /// Sends `message` to `pods` through `sock` (bound to their address
    /// family) and waits for every acknowledgement, or `timeout`. Before
    /// each retry, `resolve` gives the service's pods (within
    /// `RESOLVE_LIMIT`).
    /// `first_sends` is told of each batch of first sends (to log them);
    /// retries are silent.
    pub fn broadcast(
        &mut self,
        sock: &UdpSocket,
        message: &[u8],
        pods: &[SocketAddr],
        resolve: &mut Resolve,
        first_sends: &mut dyn FnMut(&[Sent]),
        stop: &Stop,
    ) -> Report {
        let start = Instant::now();
        let deadline = start + self.timeout;
        self.last_seq += 1;
        let id = Id {
            sender: self.sender,
            seq: self.last_seq,
        };
        let datagram = frame::data(id, message);
        // Room for many acknowledgements where the node allows it (the
        // kernel caps this at net.core.rmem_max); see `send_each`.
        let _ = crate::os::socket::set_receive_buffer(sock, ACK_BUFFER);
        let same_family =
            |pod: &SocketAddr| pod.is_ipv4() == pods.first().is_some_and(SocketAddr::is_ipv4);
        let mut waiting = Waiting::new(id);
        waiting.signing = self.signing.take();
        if let Some(signing) = &mut waiting.signing {
            crate::keyed::poll(signing);
        }
        // Room for a signed ACK (87 bytes).
        let mut buf = [0u8; 128];
        let mut send_new = |waiting: &mut Waiting, current: &[SocketAddr], buf: &mut [u8]| {
            let new = waiting.update(current);
            send_each(sock, &datagram, &new, waiting, buf, first_sends);
        };
        send_new(&mut waiting, pods, &mut buf);
        let mut backoff = FIRST_BACKOFF;
        let mut next_retry = start + backoff;
        while !waiting.done() && !stop.requested() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_retry {
                let mut retry: Vec<_> = waiting.unconfirmed().collect();
                let limit = RESOLVE_LIMIT.min(deadline.saturating_duration_since(now));
                if let Some(current) = resolve(limit) {
                    let current: Vec<_> = current.into_iter().filter(same_family).collect();
                    send_new(&mut waiting, &current, &mut buf);
                }
                // Departed pods are no longer waited for, nor sent to.
                let waited = set(waiting.unconfirmed());
                retry.retain(|pod| waited.contains_key(pod));
                // A failure shows as unconfirmed.
                send_each(sock, &datagram, &retry, &mut waiting, &mut buf, &mut |_| {});
                backoff = (backoff * 2).min(MAX_BACKOFF);
                next_retry = Instant::now() + backoff;
                continue;
            }
            let wait = next_retry.min(deadline) - now;
            // A zero timeout is refused; one millisecond is near enough.
            let _ = sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
            // An error is a timeout, a signal or an ICMP error from an
            // earlier send: the loop checks the clock again either way.
            if let Ok((len, from)) = sock.recv_from(&mut buf) {
                waiting.acknowledged(&buf[..len], from);
                take_acks(sock, &mut waiting, &mut buf);
            }
        }
        self.signing = waiting.signing.take();
        waiting.report()
    }
}

/// `pods` to look up: a `Places` (the place unused), not a sorted Vec, as
/// the relay links that map anyway and a sort would cost 3 KB of code.
fn set(pods: impl Iterator<Item = SocketAddr>) -> Places {
    pods.map(|pod| (pod, 0)).collect()
}

/// Sends `datagram` to each pod in turn, in batches: after each, `sent`
/// is told how the batch went, and the acknowledgements that have arrived
/// meanwhile are taken in. A thousand of them at once would overflow the
/// socket's receive buffer (208 KiB by default, about 250 of them), and a
/// lost acknowledgement costs a retry.
fn send_each(
    sock: &UdpSocket,
    datagram: &[u8],
    pods: &[SocketAddr],
    waiting: &mut Waiting,
    buf: &mut [u8],
    sent: &mut dyn FnMut(&[Sent]),
) {
    // With a key, each datagram is signed anew (a new counter): a receiver
    // that answers for several pods' addresses takes none for a replay.
    let mut signed = Vec::new();
    for batch in pods.chunks(SEND_BATCH) {
        let results: Vec<Sent> = batch
            .iter()
            .map(|&pod| {
                let Some(signing) = &mut waiting.signing else {
                    return (pod, sock.send_to(datagram, pod));
                };
                signed.clear();
                signed.extend_from_slice(datagram);
                signing.seal(&mut signed);
                (pod, sock.send_to(&signed, pod))
            })
            .collect();
        take_acks(sock, waiting, buf);
        sent(&results);
        take_acks(sock, waiting, buf);
    }
}

/// Takes in every acknowledgement already waiting, without blocking.
fn take_acks(sock: &UdpSocket, waiting: &mut Waiting, buf: &mut [u8]) {
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    while let Ok((len, from)) = sock.recv_from(buf) {
        waiting.acknowledged(&buf[..len], from);
    }
    let _ = sock.set_nonblocking(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    const ID: Id = Id { sender: 9, seq: 3 };

    #[test]
    fn only_a_matching_ack_from_a_waited_pod_confirms() {
        let pod = addr("10.0.0.1:12000");
        let other = |sender, seq| frame::ack(Id { sender, seq });
        let mut data = frame::data(ID, b"x");
        data.truncate(frame::HEADER_LEN);
        let cases: Vec<(&str, Vec<u8>, SocketAddr, bool)> = vec![
            ("stale sequence", other(9, 2).to_vec(), pod, false),
            ("next sequence", other(9, 4).to_vec(), pod, false),
            ("another sender", other(8, 3).to_vec(), pod, false),
            (
                "not a pod",
                frame::ack(ID).to_vec(),
                addr("10.0.0.9:12000"),
                false,
            ),
            (
                "other port",
                frame::ack(ID).to_vec(),
                addr("10.0.0.1:12001"),
                false,
            ),
            ("data, not ack", data, pod, false),
            (
                "ack with a tail",
                [&frame::ack(ID)[..], b"x"].concat(),
                pod,
                false,
            ),
            ("plain bytes", b"ok".to_vec(), pod, false),
            ("the ack", frame::ack(ID).to_vec(), pod, true),
            ("the ack again", frame::ack(ID).to_vec(), pod, false),
        ];
        let mut waiting = Waiting::new(ID);
        waiting.update(&[pod, addr("10.0.0.2:12000")]);
        for (what, datagram, from, want) in cases {
            assert_eq!(waiting.acknowledged(&datagram, from), want, "{what}");
        }
        assert_eq!(
            waiting.unconfirmed().collect::<Vec<_>>(),
            [addr("10.0.0.2:12000")]
        );
    }

    #[test]
    fn done_when_every_pod_still_waited_for_has_acknowledged() {
        let [a, b, c] = ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"].map(addr);
        let mut waiting = Waiting::new(ID);
        assert!(waiting.done());
        waiting.update(&[a, b, c]);
        for (pod, done) in [(a, false), (a, false), (c, false)] {
            waiting.acknowledged(&frame::ack(ID), pod);
            assert_eq!(waiting.done(), done);
        }
        // b leaves unconfirmed: nobody is left to wait for.
        waiting.update(&[a, c]);
        assert!(waiting.done());
        waiting.update(&[a, b, c]);
        assert!(!waiting.done());
        assert!(waiting.acknowledged(&frame::ack(ID), b));
        assert!(waiting.done());
    }

    #[test]
    fn a_pod_listed_twice_is_one_pod() {
        let a = addr("10.0.0.1:7");
        let mapped = addr("[::ffff:10.0.0.1]:7");
        let mut waiting = Waiting::new(ID);
        assert_eq!(waiting.update(&[a, a, mapped]), [a]);
        assert!(waiting.acknowledged(&frame::ack(ID), a));
        assert!(waiting.done());
        assert_eq!(waiting.update(&[mapped, a]), []);
        assert!(waiting.done());
    }

    #[test]
    fn ipv4_mapped_source_matches_ipv4_pod() {
        let mut waiting = Waiting::new(ID);
        waiting.update(&[addr("10.0.0.1:7")]);
        assert!(waiting.acknowledged(&frame::ack(ID), addr("[::ffff:10.0.0.1]:7")));
    }

    #[test]
    fn update_adds_new_pods_and_drops_departed_unconfirmed_ones() {
        let [a, b, c, d] = ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"].map(addr);
        let mut waiting = Waiting::new(ID);
        assert_eq!(waiting.update(&[a, b, c]), [a, b, c]);
        assert!(waiting.acknowledged(&frame::ack(ID), a));
        // a (confirmed) and b (not) leave; d arrives.
        assert_eq!(waiting.update(&[c, d]), [d]);
        assert_eq!(waiting.update(&[c, d]), []);
        assert!(!waiting.done());
        // b left: its acknowledgement no longer counts.
        assert!(!waiting.acknowledged(&frame::ack(ID), b));
        assert_eq!(
            waiting.report(),
            Report {
                confirmed: vec![a],
                unconfirmed: vec![c, d]
            }
        );
    }
}
