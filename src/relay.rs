//! What the relay does (`relay -s headless-udp`): every datagram that
//! arrives is sent, unchanged (or as a forwarded frame), to every pod of
//! the Service, which is re-resolved in the background as pods come and go
//! (`membership`); the copies go out through `fanout`.

use crate::discover::{Resolver, Target};
use crate::exit::{Failure, Status};
use crate::fanout::{self, Sockets, Targets};
use crate::frame;
use crate::listen::{self, Listen};
use crate::log_line::{self, INFO, WARNING};
use crate::membership::{self, Cache, Event, Watch};
use crate::metrics::{
    self, RELAY_BYTES_RECEIVED, RELAY_COPIES_SENT, RELAY_DATAGRAMS_DROPPED,
    RELAY_DATAGRAMS_RECEIVED, RELAY_PODS, RELAY_SEND_ERRORS,
};
use crate::os::signals::{self, Stop};
use crate::os::socket;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The relay's options.
pub struct Relay {
    pub target: Target,
    pub listen: SocketAddr,
    pub refresh: Option<Duration>,
    /// `--rcvbuf`; None: `socket::DEFAULT_RECEIVE_BUFFER`.
    pub rcvbuf: Option<usize>,
    pub frame: bool,
    pub metrics: Option<SocketAddr>,
}

/// Relays until SIGTERM/SIGINT.
pub fn run(options: Relay) -> Result<Status, Failure> {
    let stop = signals::stop_on_term_and_int()
        .map_err(|e| Failure::Failed(format!("cannot handle SIGTERM/SIGINT: {e}")))?;
    let listening = Listen {
        addr: options.listen,
        rcvbuf: options.rcvbuf,
        metrics: options.metrics.map(|addr| (addr, metrics::relay())),
    }
    .start(socket::bind_udp)?;
    listening.ready.set(true);
    let out = Sockets::any().map_err(Failure::Failed)?;
    let local = listening.local;
    let started = Arc::new(AtomicBool::new(false));
    let mut watch = start_membership(&options, local, Arc::clone(&started));
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
    let framing = options.frame.then(|| Framing {
        id: frame::Id {
            sender: frame::random_sender_id(),
            seq: 0,
        },
        buffers: Vec::new(),
    });
    forward(&listening.socket, &out, &mut watch, framing, &stop).map_err(Failure::Failed)?;
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
fn start_membership(options: &Relay, listen: SocketAddr, started: Arc<AtomicBool>) -> Watch {
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

/// The main loop: receive, send a copy to each pod, until stopped.
fn forward(
    listen: &UdpSocket,
    out: &Sockets,
    watch: &mut Watch,
    mut framing: Option<Framing>,
    stop: &Stop,
) -> Result<(), String> {
    // Bounds how long a blocked recv can miss a stop request.
    listen
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| format!("the socket failed: {e}"))?;
    let mut batch = socket::Batch::new(BATCH);
    let mut targets = Targets::default();
    let mut failing = false;
    let mut said_dropping = false;
    let mut failures = listen::Failures::default();
    while !stop.requested() {
        let count = match batch.recv(listen) {
            Ok(count) => count,
            Err(e) if listen::nothing_arrived(&e) => {
                failures.reset();
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
        let generation = watch.generation();
        let pods = watch.current();
        targets.follow(pods, generation);
        if pods.addrs.is_empty() {
            RELAY_DATAGRAMS_DROPPED.add(count as u64);
            if !said_dropping {
                said_dropping = true;
                warn("no pods to forward to: dropping datagrams (counted) until there are");
            }
            continue;
        }
        said_dropping = false;
        let mut payloads: [&[u8]; BATCH] = [&[]; BATCH];
        match &mut framing {
            Some(framing) => {
                if framing.buffers.len() < count {
                    framing.buffers.resize_with(count, Vec::new);
                }
                for (i, buffer) in framing.buffers.iter_mut().take(count).enumerate() {
                    let (data, from) = batch.get(i);
                    framing.id.seq += 1;
                    // The kernel names the source of every UDP datagram.
                    let from = from.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    frame::write_forwarded(buffer, framing.id, from, data);
                }
                for (payload, buffer) in payloads.iter_mut().zip(&framing.buffers) {
                    *payload = buffer;
                }
            }
            None => {
                for (i, payload) in payloads[..count].iter_mut().enumerate() {
                    *payload = batch.get(i).0;
                }
            }
        }
        let (mut sent, mut failed) = (0, 0);
        for (to, connected) in &targets.list {
            let copies = fanout::send_copies(&payloads[..count], *to, connected.as_ref(), out);
            sent += copies.sent;
            failed += copies.failed;
            if let (Some(e), false) = (copies.error, failing) {
                // One warning per streak of failures, not per datagram.
                warn(&format!(
                    "cannot send to {to}: {e} (further failures are counted)"
                ));
                failing = true;
            }
        }
        RELAY_COPIES_SENT.add(sent);
        if failed == 0 {
            failing = false;
        } else {
            RELAY_SEND_ERRORS.add(failed);
        }
    }
    Ok(())
}

fn info(message: &str) {
    log_line::to_stderr(INFO, message);
}

fn warn(message: &str) {
    log_line::to_stderr(WARNING, message);
}
