//! `receiver`: listen on UDP 12000 and log every datagram and its source in
//! the original demo's format:
//! `2021-08-22 20:20:56,167 - root - INFO - Message from Client:b'test' Client IP Address:('10.130.3.209', 38063)`

use std::io::{self, ErrorKind, StdoutLock, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};
use udp_headless::args::{self, Parser, UsageError};
use udp_headless::pktinfo::{self, Received};
use udp_headless::seen::Seen;
use udp_headless::trust::Trusted;
use udp_headless::{exit, http, log_line, metrics, pyrepr, readiness, signals, socket, sys};

const SHORT_OPTIONS: &[(char, &str)] = &[
    ('p', "port"),
    ('b', "bind"),
    ('h', "help"),
    ('V', "version"),
];

const HELP: &str = concat!("\
receiver: log every UDP datagram that arrives, as the original demo did

Usage: receiver [options]
       receiver --check [-p PORT]

Logs one line per datagram to standard output:
  2021-08-22 20:20:56,167 - root - INFO - Message from Client:b'test' Client IP Address:('10.130.3.209', 38063)
The payload is shown as Python's repr of bytes, so any bytes stay on one line.
Times are UTC. SIGTERM or SIGINT stops it (exit 0).

Options (the environment variable is used when the option is not given;
an empty variable counts as unset):
  -p, --port PORT       UDP port to listen on [12000]       UDP_HEADLESS_PORT
  -b, --bind ADDR       address to listen on [all, IPv4 and UDP_HEADLESS_BIND
                        IPv6]
      --rcvbuf BYTES    socket receive buffer to ask for    UDP_HEADLESS_RCVBUF
                        [4194304]; the kernel caps it at
                        net.core.rmem_max
      --metrics ADDR:PORT                                   UDP_HEADLESS_METRICS
                        serve Prometheus /metrics, /livez and
                        /readyz over HTTP there (e.g. [::]:9102)
      --trust-relay CIDRS                               UDP_HEADLESS_TRUST_RELAY
                        log the client that `relay --frame` names
                        only from these comma-separated addresses or
                        networks (the relays' pods, e.g. 10.128.0.0/14);
                        from other sources, and by default, such a
                        frame is logged as plain bytes
", udp_headless::key_options_help!(), "
      --check           exit 0 if a receiver is bound on the port in this
                        network namespace, else 1 (a readiness probe);
                        takes no option but --port
  -h, --help            print this help
  -V, --version         print the version

Exit codes: 0 stopped by SIGTERM/SIGINT, or --check found a receiver;
1 could not bind or write the log, the socket failed 100 times in a row,
or --check found none; 2 usage error.
");

/// Write the log when this much is buffered, or when the socket is empty.
const FLUSH_AT: usize = 64 * 1024;

struct Options {
    bind: SocketAddr,
    all_addresses: bool,
    /// `--rcvbuf`; None: `socket::DEFAULT_RECEIVE_BUFFER`.
    rcvbuf: Option<usize>,
    metrics: Option<SocketAddr>,
    relays: Trusted,
    signing: Option<Box<udp_headless::signed::Signing>>,
}

enum Mode {
    Receive(Options),
    Check(u16),
    Done,
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    match parse(Parser::from_env()) {
        Ok(Mode::Receive(options)) => receive(options),
        Ok(Mode::Check(port)) => check(port),
        Ok(Mode::Done) => exit::OK,
        Err(e) => {
            eprintln!("receiver: {e} (see receiver --help)");
            e.exit_code()
        }
    }
}

fn parse(mut parser: Parser) -> Result<Mode, UsageError> {
    let mut port = None;
    let mut bind = None;
    let mut rcvbuf = None;
    let mut metrics = None;
    let (mut relays, mut key_file, mut max_age) = (None, None, None);
    let mut check = false;
    // The first option --check has no use for, to reject it by name.
    let mut not_for_check = None;
    while let Some(arg) = parser.next()? {
        let name = arg.name(SHORT_OPTIONS);
        if !matches!(name, Some("port" | "check" | "help" | "version")) {
            not_for_check.get_or_insert_with(|| arg.written());
        }
        match name {
            Some("port") => port = Some(parser.text()?),
            Some("bind") => bind = Some(parser.text()?),
            Some("rcvbuf") => rcvbuf = Some(parser.text()?),
            Some("metrics") => metrics = Some(parser.text()?),
            Some("trust-relay") => relays = Some(parser.text()?),
            Some("key-file") => key_file = Some(parser.text()?),
            Some("max-age") => max_age = Some(parser.text()?),
            Some("check") => {
                parser.flag()?;
                check = true;
            }
            Some(option @ ("help" | "version")) => {
                args::print_help_or_version(&mut parser, option, "receiver", HELP)?;
                return Ok(Mode::Done);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    let port = args::port(port)?;
    // A probe runs with the container's environment; it reads only the port.
    if check {
        if let Some(option) = not_for_check {
            let why = format!("--check takes no option but --port, not '{option}'");
            return Err(UsageError::Invalid(why));
        }
        return Ok(Mode::Check(port));
    }
    let bind = match args::option_or_env(bind, "--bind", "UDP_HEADLESS_BIND")? {
        Some((text, from)) => Some(
            text.parse::<IpAddr>()
                .map_err(|_| UsageError::bad_value(&from, &text, "an IP address"))?,
        ),
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
    let relays = match args::option_or_env(relays, "--trust-relay", "UDP_HEADLESS_TRUST_RELAY")? {
        Some((text, from)) => Trusted::parse(&text, &from)?,
        None => Trusted::default(),
    };
    Ok(Mode::Receive(Options {
        bind: SocketAddr::new(bind.unwrap_or(IpAddr::from([0u16; 8])), port),
        all_addresses: bind.is_none(),
        rcvbuf,
        metrics,
        relays,
        signing: udp_headless::keyed::open(key_file, max_age, SystemTime::now())?,
    }))
}

fn check(port: u16) -> i32 {
    match readiness::udp_port_bound(port) {
        Ok(true) => exit::OK,
        Ok(false) => {
            eprintln!("receiver: no UDP socket is bound on port {port}");
            exit::FAILURE
        }
        Err(e) => {
            eprintln!("receiver: cannot check port {port}: {e}");
            exit::FAILURE
        }
    }
}

fn receive(options: Options) -> i32 {
    if sys::stdout_was_closed() {
        let why = "standard output is closed: there is nowhere to write the log";
        log_line::to_stderr(log_line::ERROR, why);
        return exit::FAILURE;
    }
    // Before the bind: once bound, `--check` says ready, and a stop may come.
    if let Err(e) = signals::stop_on_term_and_int() {
        eprintln!("receiver: cannot handle SIGTERM/SIGINT: {e}");
        return exit::FAILURE;
    }
    let mut endpoints = None;
    if let Some(addr) = options.metrics {
        match http::start(addr, metrics::receiver()) {
            Ok((started, local)) => {
                let message = format!("metrics on http://{local}/metrics");
                log_line::to_stderr(log_line::INFO, &message);
                endpoints = Some(started);
            }
            Err(e) => {
                eprintln!("receiver: cannot serve metrics on TCP {addr}: {e}");
                return exit::FAILURE;
            }
        }
    }
    let bound = if options.all_addresses {
        socket::bind_all_addresses(options.bind.port())
    } else {
        socket::bind_udp(options.bind)
    };
    let sock = match bound {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("receiver: cannot listen on UDP {}: {e}", options.bind);
            return exit::FAILURE;
        }
    };
    if let Some(warning) = socket::receive_buffer_warning(&sock, options.rcvbuf) {
        log_line::to_stderr(log_line::WARNING, &warning);
    }
    if let Some(endpoints) = endpoints {
        if let Err(e) = metrics::watch_drops_of(&sock) {
            let message = format!("socket drops will not be counted: {e}");
            log_line::to_stderr(log_line::WARNING, &message);
        }
        endpoints.set_ready();
    }
    let local = sock.local_addr().map_or(options.bind, |a| a);
    log_line::to_stderr(log_line::INFO, &format!("listening on UDP {local}"));
    match log_datagrams(
        &sock,
        Seen::trusting(options.relays).with_key(options.signing),
    ) {
        Ok(()) => exit::OK,
        // Running, it logs in the log format: so does its last word.
        Err(e) => {
            log_line::to_stderr(log_line::ERROR, &e);
            exit::FAILURE
        }
    }
}

/// The main loop. Lines are buffered while more datagrams are waiting and
/// written as soon as the socket is empty: prompt for `kubectl logs`, and
/// no write syscall per line under load.
fn log_datagrams(sock: &UdpSocket, mut seen: Seen) -> Result<(), String> {
    let socket_error = |e: io::Error| format!("the socket failed: {e}");
    // Bounds how long a blocked recv can miss a stop request.
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(socket_error)?;
    // Acknowledgements go out from the address each frame was sent to;
    // without it, from the one the routing table picks.
    if let Err(e) = pktinfo::enable(sock) {
        log_line::to_stderr(
            log_line::WARNING,
            &format!("acknowledgements may come from the wrong address: {e}"),
        );
    }
    let mut log = Log::new();
    let mut datagram = vec![0u8; 65_536];
    let mut draining = false;
    let mut failures_in_a_row = 0;
    while !signals::stop_requested() {
        match pktinfo::recv(sock, &mut datagram) {
            Ok(got) => {
                failures_in_a_row = 0;
                take(sock, &mut seen, &mut log, &datagram, &got)?;
                if !draining {
                    sock.set_nonblocking(true).map_err(socket_error)?;
                    draining = true;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                failures_in_a_row = 0;
                seen.idle();
                log.flush()?;
                if draining {
                    sock.set_nonblocking(false).map_err(socket_error)?;
                    draining = false;
                }
            }
            // No datagram can cause this; a socket that keeps failing is
            // broken, and a restart is the way out.
            Err(e) => {
                // What was logged so far goes out first, in order.
                log.flush()?;
                failures_in_a_row += 1;
                if failures_in_a_row == 100 {
                    return Err(format!("receiving failed 100 times in a row: {e}"));
                }
                log_line::to_stderr(log_line::WARNING, &format!("receive failed: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // Log what had already arrived when the stop came, within a bound so a
    // flood cannot hold the stop up.
    sock.set_nonblocking(true).map_err(socket_error)?;
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        let Ok(got) = pktinfo::recv(sock, &mut datagram) else {
            break;
        };
        take(sock, &mut seen, &mut log, &datagram, &got)?;
    }
    log.flush()
}

/// Logs one datagram; acknowledges it if it is a frame that asks for it
/// (docs/PROTOCOL.md). Plain datagrams are logged whole, as always.
fn take(
    sock: &UdpSocket,
    seen: &mut Seen,
    log: &mut Log,
    datagram: &[u8],
    got: &Received,
) -> Result<(), String> {
    metrics::count_datagram(got.len);
    let handling = seen.handle(&datagram[..got.len], got.from);
    if let Some((message, source)) = handling.log {
        log.line(message, source)?;
    }
    if let Some(ack) = handling.ack {
        // A lost acknowledgement is like a lost datagram: the sender
        // retries; a forged source must not fill the log with warnings.
        if pktinfo::send_from(sock, &ack, got.from, got.to).is_ok() {
            metrics::ACKS_SENT.inc();
        }
    }
    Ok(())
}

/// The log on stdout, buffered here and written in one piece when full or
/// when the socket is empty. The buffer ends each flush on a newline, so
/// stdout's own LineWriter passes it on in one write, not one per line.
/// Lines are formatted straight into the buffer: copying each one there
/// was a call to musl's `memcpy` per line.
struct Log {
    out: StdoutLock<'static>,
    buffer: Vec<u8>,
    stamper: log_line::Stamper,
}

impl Log {
    fn new() -> Log {
        Log {
            out: io::stdout().lock(),
            buffer: Vec::with_capacity(2 * FLUSH_AT),
            stamper: log_line::Stamper::default(),
        }
    }

    /// Adds the line for one datagram; writes when the buffer is full.
    fn line(&mut self, payload: &[u8], from: SocketAddr) -> Result<(), String> {
        self.stamper
            .write_prefix(&mut self.buffer, SystemTime::now(), log_line::INFO);
        write_line(&mut self.buffer, payload, from);
        if self.buffer.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        let written = self
            .out
            .write_all(&self.buffer)
            .and_then(|()| self.out.flush());
        self.buffer.clear();
        written.map_err(log_failed)
    }
}

/// Lines formatted before an early return (a socket error) still go out,
/// as a `BufWriter` would write them when dropped.
impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.out.write_all(&self.buffer);
        let _ = self.out.flush();
    }
}

fn log_failed(e: io::Error) -> String {
    metrics::LOG_WRITE_ERRORS.inc();
    format!("cannot write the log to standard output: {e}")
}

/// The line after its prefix.
fn write_line(out: &mut Vec<u8>, payload: &[u8], from: SocketAddr) {
    out.extend_from_slice(b"Message from Client:");
    pyrepr::write_bytes(out, payload);
    out.extend_from_slice(b" Client IP Address:");
    pyrepr::write_addr(out, from);
    out.push(b'\n');
}
