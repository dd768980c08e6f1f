//! `relay -s headless-udp`: every datagram that arrives on UDP 12001 is
//! sent, unchanged, to every pod of the Service, which is re-resolved in
//! the background as pods come and go (see `membership`).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use udp_headless::args::{self, Parser, UsageError};
use udp_headless::discover::{self, Family};
use udp_headless::membership::{self, Cache, Event, Watch};
use udp_headless::metrics::{
    self, RELAY_BYTES_RECEIVED, RELAY_COPIES_SENT, RELAY_DATAGRAMS_DROPPED,
    RELAY_DATAGRAMS_RECEIVED, RELAY_PODS, RELAY_SEND_ERRORS,
};
use udp_headless::{exit, frame, http, keyed, log_line, readiness, signals, socket};

const SHORT_OPTIONS: &[(char, &str)] = &[
    ('s', "service"),
    ('p', "port"),
    ('l', "listen"),
    ('f', "family"),
    ('h', "help"),
    ('V', "version"),
];

const HELP: &str = concat!(
    "\
relay: send every UDP datagram that arrives to every pod of a headless Service

Usage: relay -s SERVICE [options]
       relay --check [--listen ADDR:PORT]

Each datagram received on the listen address is sent, unchanged, once to
each pod of SERVICE. The pod list is resolved again in the background when
the DNS answer's TTL runs out (1-30 s; every 5 s when only the system
resolver answered), so forwarding never waits for DNS. When DNS fails the
last list is kept; with no pods, datagrams are dropped and counted. The
relay never sends to its own listen address. Logs go to standard error:
the start, every change of the pod count, warnings; never one per datagram.
SIGTERM or SIGINT stops it (exit 0).

Options (the environment variable is used when the option is not given;
an empty variable counts as unset):
  -s, --service NAME    name (or address) to resolve        UDP_HEADLESS_SERVICE
  -p, --port PORT       the pods' UDP port [12000]          UDP_HEADLESS_PORT
  -l, --listen ADDR:PORT  where datagrams arrive            UDP_HEADLESS_LISTEN
                        [[::]:12001, IPv4 and IPv6]
  -f, --family FAMILY   auto, ipv4 or ipv6 [auto: IPv4 if   UDP_HEADLESS_FAMILY
                        the service has any, else IPv6]
      --refresh TIME    resolve again this often instead    UDP_HEADLESS_REFRESH
                        of by TTL (500ms, 2s, ...; 0 = every 100 ms)
      --rcvbuf BYTES    socket receive buffer to ask for    UDP_HEADLESS_RCVBUF
                        [4194304]; capped at net.core.rmem_max
      --frame           send each copy as a forwarded frame carrying the
                        client's address and port: `receiver` logs the
                        client, not the relay, as the source, if started
                        with --trust-relay naming the relay's addresses
                        (any other UDP receiver gets the frame's header too)
",
    udp_headless::key_options_help!(),
    "
                        (with a key, only signed datagrams are forwarded,
                        as signed forwarded frames: --frame is implied)
      --metrics ADDR:PORT                                   UDP_HEADLESS_METRICS
                        serve Prometheus /metrics, /livez and
                        /readyz over HTTP there (e.g. [::]:9102);
                        /readyz says 503 until the UDP socket is bound
      --check           exit 0 if a relay (any UDP socket) is bound on the
                        listen port in this network namespace, else 1
  -h, --help            print this help
  -V, --version         print the version

Exit codes: 0 stopped by SIGTERM/SIGINT, or --check found a relay;
1 could not listen, open a socket or serve metrics, receiving failed
100 times in a row, or --check found none; 2 usage error.
"
);

const DEFAULT_LISTEN: &str = "[::]:12001";

struct Options {
    service: String,
    port: u16,
    listen: SocketAddr,
    family: Family,
    refresh: Option<Duration>,
    /// `--rcvbuf`; None: `socket::DEFAULT_RECEIVE_BUFFER`.
    rcvbuf: Option<usize>,
    frame: bool,
    metrics: Option<SocketAddr>,
    signing: Option<Box<udp_headless::signed::Signing>>,
}

enum Mode {
    Relay(Options),
    Check(u16),
    Done,
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let options = match parse(Parser::from_env()) {
        Ok(Mode::Relay(options)) => options,
        Ok(Mode::Check(port)) => return check(port),
        Ok(Mode::Done) => return exit::OK,
        Err(e) => {
            eprintln!("relay: {e} (see relay --help)");
            return exit::USAGE;
        }
    };
    if let Err(e) = signals::stop_on_term_and_int() {
        eprintln!("relay: cannot handle SIGTERM/SIGINT: {e}");
        return exit::FAILURE;
    }
    let mut endpoints = None;
    if let Some(addr) = options.metrics {
        match http::start(addr, metrics::relay()) {
            Ok((started, local)) => {
                info(&format!("metrics on http://{local}/metrics"));
                endpoints = Some(started);
            }
            Err(e) => {
                eprintln!("relay: cannot serve metrics on TCP {addr}: {e}");
                return exit::FAILURE;
            }
        }
    }
    let bound = if options.listen == DEFAULT_LISTEN.parse().expect("a valid default") {
        // Falls back to IPv4 where the kernel has no IPv6.
        socket::bind_all_addresses(options.listen.port())
    } else {
        socket::bind_udp(options.listen)
    };
    let listen = match bound {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("relay: cannot listen on UDP {}: {e}", options.listen);
            return exit::FAILURE;
        }
    };
    if let Some(warning) = socket::receive_buffer_warning(&listen, options.rcvbuf) {
        warn(&warning);
    }
    if let Some(endpoints) = endpoints {
        if let Err(e) = metrics::watch_drops_of(&listen) {
            warn(&format!("socket drops will not be counted: {e}"));
        }
        endpoints.set_ready();
    }
    // Unconnected, one per family; pods of the other family may not exist.
    let out = Out {
        v4: UdpSocket::bind("0.0.0.0:0").ok(),
        v6: UdpSocket::bind("[::]:0").ok(),
    };
    if out.v4.is_none() && out.v6.is_none() {
        eprintln!("relay: cannot open a UDP socket to send from");
        return exit::FAILURE;
    }
    let local = listen.local_addr().unwrap_or(options.listen);
    let started = Arc::new(AtomicBool::new(false));
    let mut watch = start_membership(&options, local, Arc::clone(&started));
    // Datagrams wait in the socket meanwhile; the first answer is logged.
    while !watch.started() {
        if !signals::sleep_unless_stopped(Duration::from_millis(10)) {
            return exit::OK;
        }
    }
    info(&format!(
        "listening on UDP {local}, forwarding to service '{}' port {}, pods: {}",
        options.service,
        options.port,
        watch.current().addrs.len()
    ));
    started.store(true, Ordering::Release);
    let framing = (options.frame || options.signing.is_some()).then(|| Framing {
        id: frame::Id {
            sender: frame::random_sender_id(),
            seq: 0,
        },
        buffers: Vec::new(),
    });
    match forward(&listen, &out, &mut watch, framing, options.signing) {
        Ok(()) => {
            info(&format!(
                "stopped: {} datagrams in, {} copies sent, {} dropped with no pods, {} sends failed",
                RELAY_DATAGRAMS_RECEIVED.get(),
                RELAY_COPIES_SENT.get(),
                RELAY_DATAGRAMS_DROPPED.get(),
                RELAY_SEND_ERRORS.get()
            ));
            exit::OK
        }
        // Running, it logs in the log format: so does its last word.
        Err(e) => {
            log_line::to_stderr(log_line::ERROR, &e);
            exit::FAILURE
        }
    }
}

/// Resolves in the background, without the relay's own address; logs
/// what changes (from the start line on: that one says the first count).
fn start_membership(options: &Options, listen: SocketAddr, started: Arc<AtomicBool>) -> Watch {
    let service = options.service.clone();
    let (port, family) = (options.port, options.family);
    let mut said_own = false;
    let resolve = move || {
        let mut pods = discover::discover(&service, port, family)?;
        let (addrs, own) = membership::without_own(pods.addrs, listen, membership::is_local);
        if own && !said_own {
            said_own = true;
            warn(&format!(
                "service '{service}' includes this relay ({listen}): not forwarding to itself"
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

struct Out {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
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
    out: &Out,
    watch: &mut Watch,
    mut framing: Option<Framing>,
    mut signing: Option<Box<udp_headless::signed::Signing>>,
) -> Result<(), String> {
    // Bounds how long a blocked recv can miss a stop request.
    listen
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| format!("the socket failed: {e}"))?;
    let mut batch = socket::Batch::new(BATCH);
    let mut targets = Targets::default();
    let mut failing = false;
    let mut said_dropping = false;
    let mut receive_failures = 0;
    while !signals::stop_requested() {
        let mut count = match batch.recv(listen) {
            Ok(count) => count,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                keyed::idle(&mut signing);
                continue;
            }
            Err(e) => {
                receive_failures += 1;
                if receive_failures == 100 {
                    return Err(format!("receiving failed 100 times in a row: {e}"));
                }
                warn(&format!("receive failed: {e}"));
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        receive_failures = 0;
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
                let mut kept = 0;
                for i in 0..count {
                    let (data, from) = batch.get(i);
                    framing.id.seq += 1;
                    // The kernel names the source of every UDP datagram.
                    let from = from.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    let buffer = &mut framing.buffers[kept];
                    kept +=
                        usize::from(keyed::forward(&mut signing, buffer, framing.id, from, data));
                }
                count = kept;
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
            let copies = send_copies(&payloads[..count], *to, connected.as_ref(), out);
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

/// What became of the copies for one pod: each was sent or failed.
#[derive(Debug, Default)]
struct Copies {
    sent: u64,
    failed: u64,
    /// Why the first failure failed.
    error: Option<std::io::Error>,
}

/// Sends each of `payloads` to `to`: in one batch on its connected
/// socket, else one `send_to` each.
fn send_copies(
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
        let result = match if to.is_ipv4() { &out.v4 } else { &out.v6 } {
            Some(sock) => sock.send_to(payload, to),
            None => Err(std::io::Error::other("no socket of that address family")),
        };
        match result {
            Ok(_) => copies.sent += 1,
            Err(e) => copies.fail(|| e),
        }
    }
    copies
}

impl Copies {
    /// Counts a failure; only the first error is kept, for the warning.
    fn fail(&mut self, error: impl FnOnce() -> std::io::Error) {
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
    mut send_batch: impl FnMut(&[&[u8]]) -> std::io::Result<usize>,
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
                copies.fail(|| std::io::Error::other("sent nothing, and no error"));
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
struct Targets {
    /// The `Watch::generation` `list` was made for.
    made_for: Option<u64>,
    list: Vec<(SocketAddr, Option<UdpSocket>)>,
}

impl Targets {
    /// Follows a new pod list, keeping the sockets of pods still in it.
    fn follow(&mut self, pods: &discover::Pods, generation: u64) {
        if self.made_for == Some(generation) {
            return;
        }
        self.made_for = Some(generation);
        let mut old: std::collections::HashMap<SocketAddr, Option<UdpSocket>> =
            self.list.drain(..).collect();
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

fn info(message: &str) {
    log_line::to_stderr(log_line::INFO, message);
}

fn warn(message: &str) {
    log_line::to_stderr(log_line::WARNING, message);
}

/// The readiness probe: is the listen port bound here?
fn check(port: u16) -> i32 {
    match readiness::udp_port_bound(port) {
        Ok(true) => exit::OK,
        Ok(false) => {
            eprintln!("relay: no UDP socket is bound on port {port}");
            exit::FAILURE
        }
        Err(e) => {
            eprintln!("relay: cannot check port {port}: {e}");
            exit::FAILURE
        }
    }
}

fn parse(mut parser: Parser) -> Result<Mode, UsageError> {
    let mut service = None;
    let mut port = None;
    let mut listen = None;
    let mut family = None;
    let mut refresh = None;
    let mut rcvbuf = None;
    let mut check = false;
    let mut frame = false;
    let (mut metrics, mut key_file, mut max_age) = (None, None, None);
    let mut not_for_check = None;
    while let Some(arg) = parser.next()? {
        let name = arg.name(SHORT_OPTIONS);
        if !matches!(name, Some("listen" | "check" | "help" | "version")) {
            not_for_check.get_or_insert_with(|| arg.written());
        }
        match name {
            Some("service") => service = Some(parser.text()?),
            Some("port") => port = Some(parser.text()?),
            Some("listen") => listen = Some(parser.text()?),
            Some("family") => family = Some(parser.text()?),
            Some("refresh") => refresh = Some(parser.text()?),
            Some("rcvbuf") => rcvbuf = Some(parser.text()?),
            Some("metrics") => metrics = Some(parser.text()?),
            Some("key-file") => key_file = Some(parser.text()?),
            Some("max-age") => max_age = Some(parser.text()?),
            Some("check") => {
                parser.flag()?;
                check = true;
            }
            Some("frame") => {
                parser.flag()?;
                frame = true;
            }
            Some(option @ ("help" | "version")) => {
                args::print_help_or_version(&mut parser, option, "relay", HELP)?;
                return Ok(Mode::Done);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    let listen = match args::option_or_env(listen, "--listen", "UDP_HEADLESS_LISTEN")? {
        Some((text, from)) => text.parse::<SocketAddr>().map_err(|_| {
            UsageError::bad_value(
                &from,
                &text,
                "ADDRESS:PORT (like 0.0.0.0:12001 or [::]:12001)",
            )
        })?,
        None => DEFAULT_LISTEN.parse().expect("a valid default"),
    };
    if listen.port() == 0 {
        return Err(UsageError::Invalid(
            "--listen: the port must not be 0".into(),
        ));
    }
    if check {
        if let Some(option) = not_for_check {
            let why = format!("--check takes no option but --listen, not '{option}'");
            return Err(UsageError::Invalid(why));
        }
        return Ok(Mode::Check(listen.port()));
    }
    let service = args::service(service)?;
    let port = args::port(port)?;
    let family = Family::from_option(family)?;
    let refresh = match args::option_or_env(refresh, "--refresh", "UDP_HEADLESS_REFRESH")? {
        Some((text, from)) => Some(args::parse_duration(&text, &from)?),
        None => None,
    };
    let rcvbuf = match args::option_or_env(rcvbuf, "--rcvbuf", "UDP_HEADLESS_RCVBUF")? {
        Some((text, from)) => Some(args::parse_count(&text, &from)? as usize),
        None => None,
    };
    let metrics = match args::option_or_env(metrics, "--metrics", "UDP_HEADLESS_METRICS")? {
        Some((text, from)) => Some(
            text.parse::<SocketAddr>()
                .map_err(|_| UsageError::bad_value(&from, &text, "ADDR:PORT (like [::]:9102)"))?,
        ),
        None => None,
    };
    Ok(Mode::Relay(Options {
        service,
        port,
        listen,
        family,
        refresh,
        rcvbuf,
        frame,
        metrics,
        signing: udp_headless::keyed::open(key_file, max_age, std::time::SystemTime::now())?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

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
