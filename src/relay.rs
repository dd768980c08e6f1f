//! What the relay does (`relay -s headless-udp`): every datagram that
//! arrives is sent, unchanged (or as a forwarded frame), to every pod of
//! the Service, which is re-resolved in the background as pods come and go
//! (`membership`); the rules of what is forwarded, and the copies, are
//! `forward`'s.

use crate::discover::{Resolver, Target};
use crate::exit::{Failure, Status};
use crate::forward::{self, Confirmations, Out, Targets, Verdict};
use crate::frame;
use crate::keyed;
use crate::listen::{self, Listen, Ready};
use crate::log_line::{self, INFO, WARNING};
use crate::membership::{self, Cache, Event, Watch};
use crate::metrics::{
    self, RELAY_ACKS_RECEIVED, RELAY_BYTES_RECEIVED, RELAY_COPIES_SENT, RELAY_DATAGRAMS_DROPPED,
    RELAY_DATAGRAMS_RECEIVED, RELAY_DATAGRAMS_REFUSED, RELAY_PODS, RELAY_SEND_ERRORS,
};
use crate::os::signals::{self, Stop};
use crate::os::socket;
use crate::seen::Ack;
use crate::signed::Signing;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The relay's options.
pub struct Relay {
    pub target: Target,
    pub listen: SocketAddr,
    pub refresh: Option<Duration>,
    /// `--rcvbuf`; None: `socket::DEFAULT_RECEIVE_BUFFER`.
    pub rcvbuf: Option<usize>,
    pub frame: bool,
    pub metrics: Option<SocketAddr>,
    /// `--key-file`: see `forward::judge`; implies `frame`.
    pub signing: Option<Box<Signing>>,
}

/// Relays until SIGTERM/SIGINT.
pub fn run(mut options: Relay) -> Result<Status, Failure> {
    let stop = signals::stop_on_term_and_int().map_err(Failure::signals)?;
    // Shared with the per-pod sockets, so every copy leaves from it.
    let listening = Listen {
        addr: options.listen,
        rcvbuf: options.rcvbuf,
        metrics: options.metrics.map(|addr| (addr, metrics::relay())),
    }
    .start(|addr| forward::listen(|| socket::bind_udp(addr)))?;
    let listen = &listening.socket;
    // Pods of a family the listen socket cannot reach, one per family.
    let out = Out {
        listen: listen
            .try_clone()
            .map_err(|e| Failure::Failed(format!("cannot open a UDP socket to send from: {e}")))?,
        families: forward::Sockets::both(),
    };
    let local = listening.local;
    let started = Arc::new(AtomicBool::new(false));
    let ready = listening.ready.clone();
    let mut watch = start_membership(&options, local, Arc::clone(&started), ready);
    // Datagrams wait in the socket meanwhile; the first answer is logged.
    while !watch.started() {
        if !stop.sleep(Duration::from_millis(10)) {
            return Ok(Status::Ok);
        }
    }
    info(&format!(
        "listening on UDP {local}, forwarding to service '{}' port {}, pods: {}",
        options.target.service,
        options.target.port,
        watch.current().addrs.len()
    ));
    started.store(true, Ordering::Release);
    let signing = options.signing.take();
    let framing = (options.frame || signing.is_some()).then(|| Framing {
        id: frame::Id {
            sender: frame::random_sender_id(),
            seq: 0,
        },
        buffers: Vec::new(),
    });
    forward(listen, &out, &mut watch, (framing, signing), &stop).map_err(Failure::Failed)?;
    info(&format!(
        "stopped: {} datagrams in, {} copies sent, {} dropped with no pods, {} sends failed",
        RELAY_DATAGRAMS_RECEIVED.get(),
        RELAY_COPIES_SENT.get(),
        RELAY_DATAGRAMS_DROPPED.get(),
        RELAY_SEND_ERRORS.get()
    ));
    Ok(Status::Ok)
}

/// Resolves in the background, without the relay's own address; logs
/// what changes (from the start line on: that one says the first count).
/// Ready (`/readyz`) while it has pods to forward to: listening, and DNS
/// gave pods (a list kept through a DNS failure counts).
fn start_membership(
    options: &Relay,
    listen: SocketAddr,
    started: Arc<AtomicBool>,
    ready: Ready,
) -> Watch {
    let resolver = Resolver::new(options.target.clone());
    let mut said_own = false;
    let resolve = move || {
        let mut pods = resolver.resolve()?;
        let (addrs, own) = membership::without_own(pods.addrs, listen, membership::is_local);
        if own && !said_own {
            said_own = true;
            warn(&format!(
                "service '{}' includes this relay ({listen}): not forwarding to itself",
                resolver.target.service
            ));
        }
        pods.addrs = addrs;
        Ok(pods)
    };
    let cache = Cache::new(resolve, options.refresh);
    membership::spawn(cache, move |event| {
        let first_count =
            matches!(event, Event::Changed { .. }) && !started.load(Ordering::Acquire);
        if let Event::Changed { after, .. } = event {
            RELAY_PODS.set(after as u64);
            ready.set(after > 0);
        }
        if let (Some((level, line)), false) = (membership::describe(&event), first_count) {
            log_line::to_stderr(level, &line);
        }
    })
}

/// `--frame`: each copy is a forwarded frame carrying the client's address
/// (docs/PROTOCOL.md), so the receiver logs the client as the source.
struct Framing {
    id: frame::Id,
    /// One frame per datagram of a batch.
    buffers: Vec<Vec<u8>>,
}

/// Datagrams taken from the socket at once when they queue up: all go to
/// one pod in one `sendmmsg` before the next pod (docs/BENCHMARKS.md).
const BATCH: usize = 16;

/// Warnings said once per streak, not per datagram.
#[derive(Default)]
struct Said {
    failing: bool,
    dropping: bool,
    refusing: bool,
}

/// The main loop: receive, send a copy to each pod, until stopped
/// (the rules: `forward`).
// Out of line (called once): inlined into `run`, it made the binary larger.
#[inline(never)]
fn forward(
    listen: &UdpSocket,
    out: &Out,
    watch: &mut Watch,
    (mut framing, mut signing): (Option<Framing>, Option<Box<Signing>>),
    stop: &Stop,
) -> Result<(), String> {
    let socket_failed = |e: std::io::Error| format!("the socket failed: {e}");
    let local = listen.local_addr().map_err(socket_failed)?;
    let mut batch = socket::Batch::new(BATCH);
    let mut targets = Targets::default();
    let mut confirmations = Confirmations::default();
    let mut said = Said::default();
    let mut drained = Instant::now();
    let mut from_pods = vec![0u8; 65_536];
    // With a key, each copy is signed for its pod in one of these.
    let mut sealed = Vec::new();
    debug_assert!(signing.is_none() || framing.is_some(), "a key frames");
    let mut timeout = None;
    let mut failures = listen::Failures::default();
    while !stop.requested() {
        // Bounds how long a blocked recv can miss a stop request, or an
        // acknowledgement waits on a pod's socket.
        let wait = if confirmations.waiting() {
            forward::DRAIN_WAITING
        } else {
            forward::DRAIN_EVERY
        };
        if timeout != Some(wait) {
            listen.set_read_timeout(Some(wait)).map_err(socket_failed)?;
            timeout = Some(wait);
        }
        let received = batch.recv(listen);
        let generation = watch.generation();
        let pods = watch.current();
        targets.follow(pods, generation, local);
        if drained.elapsed() >= wait {
            drained = Instant::now();
            targets.drain(&mut from_pods, |datagram, pod| {
                RELAY_DATAGRAMS_RECEIVED.inc();
                RELAY_BYTES_RECEIVED.add(datagram.len() as u64);
                if let Some(verdict) = forward::judge(signing.as_deref_mut(), datagram, pod, true) {
                    let mut rest = (&mut confirmations, signing.as_deref_mut());
                    not_forwarded(verdict, pod, &mut rest, listen, &mut said);
                }
            });
        }
        let count = match received {
            Ok(count) => count,
            Err(e) if listen::nothing_arrived(&e) => {
                failures.reset();
                keyed::idle(&mut signing);
                continue;
            }
            Err(e) => {
                failures.failed(&e)?;
                continue;
            }
        };
        failures.reset();
        // Relaxed adds (metrics::Counter), one of each per batch.
        RELAY_DATAGRAMS_RECEIVED.add(count as u64);
        RELAY_BYTES_RECEIVED.add((0..count).map(|i| batch.get(i).0.len() as u64).sum());
        if pods.addrs.is_empty() {
            RELAY_DATAGRAMS_DROPPED.add(count as u64);
            if !said.dropping {
                said.dropping = true;
                warn("no pods to forward to: dropping datagrams (counted) until there are");
            }
            continue;
        }
        said.dropping = false;
        // The kernel names the source of every UDP datagram.
        let source = |i| {
            batch
                .get(i)
                .1
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
        };
        // Which datagrams to forward, and what of each.
        let mut forwarded: [(usize, &[u8]); BATCH] = [(0, &[]); BATCH];
        let mut n = 0;
        for i in 0..count {
            let (data, from) = (batch.get(i).0, source(i));
            let from_pod = targets.contains(from);
            // None: refused for its signature (counted).
            let Some(verdict) = forward::judge(signing.as_deref_mut(), data, from, from_pod) else {
                continue;
            };
            match verdict {
                Verdict::Forward(payload) => {
                    forwarded[n] = (i, payload);
                    n += 1;
                }
                Verdict::Refuse | Verdict::Acknowledged(_) => {
                    let mut rest = (&mut confirmations, signing.as_deref_mut());
                    not_forwarded(verdict, from, &mut rest, listen, &mut said);
                }
                Verdict::Confirm(id, message) => {
                    let (to, ack_now) = confirmations.data(from, id, &pods.addrs);
                    if ack_now {
                        let _ = listen.send_to(&Ack::of(id, signing.as_deref_mut()), from);
                    }
                    let mut framed = Vec::new();
                    let payload = match &framing {
                        Some(_) => {
                            frame::write_forwarded_data(&mut framed, id, from, message);
                            &framed[..]
                        }
                        None => data,
                    };
                    let to: forward::Places = to.into_iter().map(|pod| (pod, 0)).collect();
                    let pods = targets.list.iter().filter(|(pod, _)| to.contains_key(pod));
                    let sealing = signing.as_deref_mut().map(|s| (s, &mut sealed));
                    send_all(&[payload], pods, out, &mut said, sealing);
                }
            }
        }
        let mut payloads: [&[u8]; BATCH] = [&[]; BATCH];
        match &mut framing {
            Some(framing) => {
                if framing.buffers.len() < n {
                    framing.buffers.resize_with(n, Vec::new);
                }
                for (buffer, &(i, payload)) in framing.buffers.iter_mut().zip(&forwarded[..n]) {
                    framing.id.seq += 1;
                    frame::write_forwarded(buffer, framing.id, source(i), payload);
                }
                for (payload, buffer) in payloads.iter_mut().zip(&framing.buffers) {
                    *payload = buffer;
                }
            }
            None => {
                for (payload, &(_, forward)) in payloads.iter_mut().zip(&forwarded[..n]) {
                    *payload = forward;
                }
            }
        }
        if n > 0 {
            let sealing = signing.as_deref_mut().map(|s| (s, &mut sealed));
            send_all(&payloads[..n], targets.list.iter(), out, &mut said, sealing);
        }
    }
    Ok(())
}

/// A datagram not to forward: a pod's acknowledgement (acknowledged to the
/// client, signed with a key, when it completes a confirmation), else
/// refused and counted.
fn not_forwarded(
    verdict: Verdict,
    from: SocketAddr,
    (confirmations, signing): &mut (&mut Confirmations, Option<&mut Signing>),
    listen: &UdpSocket,
    said: &mut Said,
) {
    if let Verdict::Acknowledged(id) = verdict {
        RELAY_ACKS_RECEIVED.inc();
        for (client, id) in confirmations.ack(&frame::ack(id), from) {
            let _ = listen.send_to(&Ack::of(id, signing.as_deref_mut()), client);
        }
        return;
    }
    RELAY_DATAGRAMS_REFUSED.inc();
    if !said.refusing {
        said.refusing = true;
        warn(&format!(
            "not forwarding a datagram from {from}: a relay forwards neither what comes from \
             the pods it forwards to (another relay's copies) nor forwarded frames (refused \
             ones are counted)"
        ));
    }
}

/// Sends each of `payloads` (at most `BATCH`) to each of `pods`, counting
/// what went. With `sealing` (a key, and buffers), each is signed anew for
/// each pod: a receiver answering for several pods' addresses takes none
/// for a replay.
fn send_all<'a>(
    payloads: &[&[u8]],
    pods: impl Iterator<Item = &'a (SocketAddr, Option<UdpSocket>)>,
    out: &Out,
    said: &mut Said,
    mut sealing: Option<(&mut Signing, &mut Vec<Vec<u8>>)>,
) {
    let (mut sent, mut failed) = (0, 0);
    for (to, connected) in pods {
        let copies = match &mut sealing {
            Some((signing, buffers)) => {
                buffers.resize_with(payloads.len(), Vec::new);
                let mut sealed: [&[u8]; BATCH] = [&[]; BATCH];
                for ((buffer, payload), sealed) in buffers.iter_mut().zip(payloads).zip(&mut sealed)
                {
                    buffer.clear();
                    buffer.extend_from_slice(payload);
                    signing.seal(buffer);
                    *sealed = buffer;
                }
                forward::send_copies(&sealed[..payloads.len()], *to, connected.as_ref(), out)
            }
            None => forward::send_copies(payloads, *to, connected.as_ref(), out),
        };
        sent += copies.sent;
        failed += copies.failed;
        if let (Some(e), false) = (copies.error, said.failing) {
            // One warning per streak of failures, not per datagram.
            warn(&format!(
                "cannot send to {to}: {e} (further failures are counted)"
            ));
            said.failing = true;
        }
    }
    RELAY_COPIES_SENT.add(sent);
    if failed == 0 {
        said.failing = false;
    } else {
        RELAY_SEND_ERRORS.add(failed);
    }
}

fn info(message: &str) {
    log_line::to_stderr(INFO, message);
}

fn warn(message: &str) {
    log_line::to_stderr(WARNING, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, Id};

    /// With a key, a batch goes to each pod signed anew for that pod: every
    /// pod gets every payload, in order, and no two copies share a counter
    /// (one receiver answering for both pods' addresses refuses none).
    #[test]
    fn a_signed_batch_is_sealed_for_each_pod() {
        let file = crate::signed::TestKeyFile::new("relay-seal");
        let (mut signing, mut receiver) = (file.open(7), file.open(8));
        let listen = UdpSocket::bind("127.0.0.1:0").unwrap();
        let out = Out {
            listen,
            families: forward::Sockets::both(),
        };
        let pods: Vec<UdpSocket> = (0..2)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let list: Vec<(SocketAddr, Option<UdpSocket>)> = pods
            .iter()
            .map(|pod| {
                pod.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let to = pod.local_addr().unwrap();
                let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
                connected.connect(to).unwrap();
                (to, Some(connected))
            })
            .collect();
        let client: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let frames: Vec<Vec<u8>> = (0..3)
            .map(|seq| {
                let mut f = Vec::new();
                let id = Id { sender: 1, seq };
                frame::write_forwarded(&mut f, id, client, format!("m{seq}").as_bytes());
                f
            })
            .collect();
        let payloads: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut buffers = Vec::new();
        let sealing = Some((&mut signing, &mut buffers));
        send_all(&payloads, list.iter(), &out, &mut Said::default(), sealing);
        let mut counters = Vec::new();
        for pod in &pods {
            for seq in 0..3 {
                let mut buf = [0u8; 512];
                let n = pod.recv(&mut buf).unwrap();
                // Refuses a counter it has seen: a copy sealed once for both.
                let got = receiver.verify(&buf[..n]).unwrap();
                let Frame::Forwarded { message, .. } = got.frame else {
                    panic!("not FORWARDED: {got:?}");
                };
                assert_eq!(message, format!("m{seq}").as_bytes());
                counters.push(got.counter);
            }
        }
        assert_eq!(counters, [1, 2, 3, 4, 5, 6]);
    }
}
