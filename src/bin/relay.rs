//! `relay -s headless-udp`: every datagram that arrives on UDP 12001 is
//! sent, unchanged, to every pod of the Service, which is re-resolved in
//! the background as pods come and go (see `membership`).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use udp_headless::args::{self, Parser, UsageError};
use udp_headless::discover::{self, Family};
use udp_headless::forward::{self, Confirmations, Out, Targets, Verdict};
use udp_headless::membership::{self, Cache, Event, Watch};
use udp_headless::metrics::{
    self, RELAY_ACKS_RECEIVED, RELAY_BYTES_RECEIVED, RELAY_COPIES_SENT, RELAY_DATAGRAMS_DROPPED,
    RELAY_DATAGRAMS_RECEIVED, RELAY_DATAGRAMS_REFUSED, RELAY_PODS, RELAY_SEND_ERRORS,
};
use udp_headless::{exit, frame, http, log_line, readiness, signals, socket};

const SHORT_OPTIONS: &[(char, &str)] = &[
    ('s', "service"),
    ('p', "port"),
    ('l', "listen"),
    ('f', "family"),
    ('h', "help"),
    ('V', "version"),
];

const HELP: &str = "\
relay: send every UDP datagram that arrives to every pod of a headless Service

Usage: relay -s SERVICE [options]
       relay --check [--listen ADDR:PORT]

Each datagram received on the listen address is sent, unchanged, once to
each pod of SERVICE. The pod list is resolved again in the background when
the DNS answer's TTL runs out (1-30 s; every 5 s when only the system
resolver answered), so forwarding never waits for DNS. When DNS fails the
last list is kept; with no pods, datagrams are dropped and counted. The
relay never sends to its own listen address, and never forwards what
comes from a pod it forwards to (another relay's copies: they leave from
its listen port) or a forwarded frame: refused and counted. A --confirm
DATA frame is acknowledged when every pod has. Logs go to standard error:
the start, every change of the pod count, warnings; never one per datagram.
SIGTERM or SIGINT stops it (exit 0).

Options (the environment variable is used when the option is not given;
an empty variable counts as unset):
  -s, --service NAME    name (or address) to resolve        UDP_HEADLESS_SERVICE
  -p, --port PORT       the pods' UDP port [12000]          UDP_HEADLESS_PORT
  -l, --listen ADDR:PORT  where datagrams arrive            UDP_HEADLESS_LISTEN
                        [[::]:12001, IPv4 and IPv6; link-local:
                        [fe80::1%eth0]:12001]
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
      --metrics ADDR:PORT                                   UDP_HEADLESS_METRICS
                        serve Prometheus /metrics, /livez and
                        /readyz over HTTP there (e.g. [::]:9102);
                        /readyz says 200 only with pods to forward to
      --check           exit 0 if a relay (any UDP socket) is bound on the
                        listen port in this network namespace, else 1
  -h, --help            print this help
  -V, --version         print the version

Exit codes: 0 stopped by SIGTERM/SIGINT, or --check found a relay;
1 could not listen, open a socket or serve metrics, receiving failed
100 times in a row, or --check found none; 2 usage error.
";

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
    // Shared with the per-pod sockets, so every copy leaves from it.
    let listen = match forward::listen(|| {
        if options.listen == DEFAULT_LISTEN.parse().expect("a valid default") {
            // Falls back to IPv4 where the kernel has no IPv6.
            socket::bind_all_addresses(options.listen.port())
        } else {
            socket::bind_udp(options.listen)
        }
    }) {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("relay: cannot listen on UDP {}: {e}", options.listen);
            return exit::FAILURE;
        }
    };
    if let Some(warning) = socket::receive_buffer_warning(&listen, options.rcvbuf) {
        warn(&warning);
    }
    if endpoints.is_some() {
        if let Err(e) = metrics::watch_drops_of(&listen) {
            warn(&format!("socket drops will not be counted: {e}"));
        }
    }
    // Pods of a family the listen socket cannot reach, one per family.
    let out = Out {
        listen: match listen.try_clone() {
            Ok(sock) => sock,
            Err(e) => {
                eprintln!("relay: cannot open a UDP socket to send from: {e}");
                return exit::FAILURE;
            }
        },
        v4: UdpSocket::bind("0.0.0.0:0").ok(),
        v6: UdpSocket::bind("[::]:0").ok(),
    };
    let local = listen.local_addr().unwrap_or(options.listen);
    let started = Arc::new(AtomicBool::new(false));
    let mut watch = start_membership(&options, local, Arc::clone(&started), endpoints);
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
    let framing = options.frame.then(|| Framing {
        id: frame::Id {
            sender: frame::random_sender_id(),
            seq: 0,
        },
        buffers: Vec::new(),
    });
    match forward(&listen, &out, &mut watch, framing) {
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
/// Ready (`/readyz`) while it has pods to forward to: listening, and DNS
/// gave pods (a list kept through a DNS failure counts).
fn start_membership(
    options: &Options,
    listen: SocketAddr,
    started: Arc<AtomicBool>,
    endpoints: Option<Arc<http::Endpoints>>,
) -> Watch {
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
            if let Some(endpoints) = &endpoints {
                endpoints.ready.store(after > 0, Ordering::Relaxed);
            }
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
fn forward(
    listen: &UdpSocket,
    out: &Out,
    watch: &mut Watch,
    mut framing: Option<Framing>,
) -> Result<(), String> {
    let socket_failed = |e: std::io::Error| format!("the socket failed: {e}");
    let local = listen.local_addr().map_err(socket_failed)?;
    let mut batch = socket::Batch::new(BATCH);
    let mut targets = Targets::default();
    let mut confirmations = Confirmations::default();
    let mut said = Said::default();
    let mut drained = Instant::now();
    let mut from_pods = vec![0u8; 65_536];
    let mut timeout = None;
    let mut receive_failures = 0;
    while !signals::stop_requested() {
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
                from_pod(datagram, pod, &mut confirmations, listen, &mut said);
            });
        }
        let count = match received {
            Ok(count) => count,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
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
        let mut forwarded = [0usize; BATCH];
        let mut n = 0;
        for i in 0..count {
            let (data, from) = (batch.get(i).0, source(i));
            match forward::judge(data, targets.contains(from)) {
                Verdict::Forward => {
                    forwarded[n] = i;
                    n += 1;
                }
                Verdict::Refuse | Verdict::Acknowledged => {
                    from_pod(data, from, &mut confirmations, listen, &mut said);
                }
                Verdict::Confirm(id) => {
                    let (to, ack_now) = confirmations.data(from, id, &pods.addrs);
                    if ack_now {
                        let _ = listen.send_to(&frame::ack(id), from);
                    }
                    let mut framed = Vec::new();
                    let payload = match (&framing, frame::parse(data)) {
                        (Some(_), Some(frame::Frame::Data { message, .. })) => {
                            frame::write_forwarded_data(&mut framed, id, from, message);
                            &framed[..]
                        }
                        _ => data,
                    };
                    let to: std::collections::HashSet<_> = to.into_iter().collect();
                    let pods = targets.list.iter().filter(|(pod, _)| to.contains(pod));
                    send_all(&[payload], pods, out, &mut said);
                }
            }
        }
        let mut payloads: [&[u8]; BATCH] = [&[]; BATCH];
        match &mut framing {
            Some(framing) => {
                if framing.buffers.len() < n {
                    framing.buffers.resize_with(n, Vec::new);
                }
                for (buffer, &i) in framing.buffers.iter_mut().zip(&forwarded[..n]) {
                    framing.id.seq += 1;
                    frame::write_forwarded(buffer, framing.id, source(i), batch.get(i).0);
                }
                for (payload, buffer) in payloads.iter_mut().zip(&framing.buffers) {
                    *payload = buffer;
                }
            }
            None => {
                for (payload, &i) in payloads.iter_mut().zip(&forwarded[..n]) {
                    *payload = batch.get(i).0;
                }
            }
        }
        if n > 0 {
            send_all(&payloads[..n], targets.list.iter(), out, &mut said);
        }
    }
    Ok(())
}

/// A datagram not to forward: a pod's acknowledgement (acknowledged to the
/// client when it completes a confirmation), else refused and counted.
fn from_pod(
    datagram: &[u8],
    from: SocketAddr,
    confirmations: &mut Confirmations,
    listen: &UdpSocket,
    said: &mut Said,
) {
    if let Some(frame::Frame::Ack(_)) = frame::parse(datagram) {
        RELAY_ACKS_RECEIVED.inc();
        for (client, id) in confirmations.ack(datagram, from) {
            let _ = listen.send_to(&frame::ack(id), client);
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

/// Sends each of `payloads` to each of `pods`, counting what went.
fn send_all<'a>(
    payloads: &[&[u8]],
    pods: impl Iterator<Item = &'a (SocketAddr, Option<UdpSocket>)>,
    out: &Out,
    said: &mut Said,
) {
    let (mut sent, mut failed) = (0, 0);
    for (to, connected) in pods {
        let copies = forward::send_copies(payloads, *to, connected.as_ref(), out);
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
    let mut metrics = None;
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
        Some((text, from)) => args::socket_addr_with_zone(
            &text,
            &from,
            "ADDRESS:PORT (like 0.0.0.0:12001, [::]:12001 or [fe80::1%eth0]:12001)",
        )?,
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
    }))
}
