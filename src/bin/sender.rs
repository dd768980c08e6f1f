//! `sender -s headless-udp -m test`: one UDP datagram to every pod of a
//! headless Service, logging `sent message to :IP` for each.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use udp_headless::args::{self, Parser, UsageError};
use udp_headless::discover::{self, Family};
use udp_headless::{exit, log_line, pyrepr, signals};

const SHORT_OPTIONS: &[(char, &str)] = &[
    ('s', "service"),
    ('m', "message"),
    ('p', "port"),
    ('f', "family"),
    ('r', "repeat"),
    ('i', "interval"),
    ('h', "help"),
    ('V', "version"),
];

const HELP: &str = "\
sender: send one UDP datagram to every pod behind a headless Service

Usage: sender -s SERVICE [-m MESSAGE] [options]
       sender --idle

Resolves SERVICE (a headless Service's DNS name has one address per ready
pod) and sends MESSAGE to each address once, logging `sent message to :IP`.
Without -m, or with -m -, each line of standard input is one message and
the service is resolved again before each line.

Options (the environment variable is used when the option is not given):
  -s, --service NAME    name (or address) to resolve        UDP_HEADLESS_SERVICE
  -m, --message TEXT    the message; - reads stdin lines    UDP_HEADLESS_MESSAGE
  -p, --port PORT       destination UDP port [12000]        UDP_HEADLESS_PORT
  -f, --family FAMILY   auto, ipv4 or ipv6 [auto: IPv4 if   UDP_HEADLESS_FAMILY
                        the service has any, else IPv6]
  -r, --repeat N        broadcast N times, resolving each   UDP_HEADLESS_REPEAT
                        time; 0 = until stopped [1]
  -i, --interval TIME   pause between repeats [1s]          UDP_HEADLESS_INTERVAL
                        (500ms, 2s, 1.5m, ...)
      --idle            wait for SIGTERM/SIGINT, send nothing: the main
                        process of a sender pod you `kubectl exec` into
  -h, --help            print this help
  -V, --version         print the version

Exit codes: 0 every send succeeded; 1 could not run (socket, stdin);
2 usage error or message too large; 3 service did not resolve;
4 some sends failed or the pod list is incomplete (others were sent).
";

/// Largest UDP payloads: 65535 minus the IP and UDP headers.
const MAX_IPV4_PAYLOAD: usize = 65_507;
const MAX_IPV6_PAYLOAD: usize = 65_527;

struct Options {
    service: String,
    /// None: one message per line of stdin.
    message: Option<Vec<u8>>,
    port: u16,
    family: Family,
    /// 0: until stopped.
    repeat: u64,
    interval: Duration,
}

enum Mode {
    Send(Options),
    Idle,
    Done,
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let options = match parse(Parser::from_env()) {
        Ok(Mode::Send(options)) => options,
        Ok(Mode::Idle) => {
            signals::stop_on_term_and_int();
            while signals::sleep_unless_stopped(Duration::from_secs(3600)) {}
            return exit::OK;
        }
        Ok(Mode::Done) => return exit::OK,
        Err(e) => {
            eprintln!("sender: {e} (see sender --help)");
            return exit::USAGE;
        }
    };
    let mut sockets = Sockets::default();
    let mut status = exit::OK;
    let mut note = |code: i32| {
        if status == exit::OK {
            status = code;
        }
    };
    match &options.message {
        Some(message) => {
            // Periodic broadcasts may run as PID 1: let SIGTERM end them
            // between rounds. One broadcast keeps the default, so Ctrl-C
            // ends even a slow DNS lookup at once.
            if options.repeat != 1 {
                signals::stop_on_term_and_int();
            }
            let mut round = 0;
            while options.repeat == 0 || round < options.repeat {
                if round > 0 && !signals::sleep_unless_stopped(options.interval) {
                    break;
                }
                note(broadcast(&options, message, &mut sockets));
                round += 1;
            }
        }
        None => {
            let mut stdin = io::stdin().lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        note(broadcast(&options, &line, &mut sockets));
                    }
                    Err(e) => {
                        log_error(&format!("cannot read standard input: {e}"));
                        note(exit::FAILURE);
                        break;
                    }
                }
            }
        }
    }
    status
}

fn parse(mut parser: Parser) -> Result<Mode, UsageError> {
    let mut service = None;
    let mut message = None;
    let mut port = None;
    let mut family = None;
    let mut repeat = None;
    let mut interval = None;
    while let Some(arg) = parser.next()? {
        match arg.name(SHORT_OPTIONS) {
            Some("service") => service = Some(parser.text()?),
            Some("message") => message = Some(parser.value()?),
            Some("port") => port = Some(parser.text()?),
            Some("family") => family = Some(parser.text()?),
            Some("repeat") => repeat = Some(parser.text()?),
            Some("interval") => interval = Some(parser.text()?),
            Some("idle") => {
                parser.flag()?;
                return Ok(Mode::Idle);
            }
            Some(option @ ("help" | "version")) => {
                args::print_help_or_version(&mut parser, option, "sender", HELP)?;
                return Ok(Mode::Done);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    use std::os::unix::ffi::OsStringExt;
    let message = message
        .or_else(|| std::env::var_os("UDP_HEADLESS_MESSAGE"))
        .map(|m| m.into_vec())
        .filter(|m| m != b"-");
    let Some((service, _)) = args::option_or_env(service, "--service", "UDP_HEADLESS_SERVICE")
    else {
        return Err(UsageError(
            "no service: give -s NAME (or set UDP_HEADLESS_SERVICE)".into(),
        ));
    };
    if service.is_empty() {
        return Err(UsageError("the service name is empty".into()));
    }
    let port = match args::option_or_env(port, "--port", "UDP_HEADLESS_PORT") {
        Some((text, from)) => args::parse_port(&text, &from)?,
        None => 12000,
    };
    let family = match args::option_or_env(family, "--family", "UDP_HEADLESS_FAMILY") {
        Some((text, from)) => Family::parse(&text, &from)?,
        None => Family::Auto,
    };
    let repeat_given = repeat.is_some();
    let repeat = match args::option_or_env(repeat, "--repeat", "UDP_HEADLESS_REPEAT") {
        Some((text, from)) => args::parse_count(&text, &from)?,
        None => 1,
    };
    let interval = match args::option_or_env(interval, "--interval", "UDP_HEADLESS_INTERVAL") {
        Some((text, from)) => args::parse_duration(&text, &from)?,
        None => Duration::from_secs(1),
    };
    if message.is_none() && repeat_given {
        return Err(UsageError(
            "--repeat needs a message (-m): stdin lines are each sent once".into(),
        ));
    }
    if let Some(m) = &message {
        check_size(m.len(), MAX_IPV6_PAYLOAD).map_err(UsageError)?;
    }
    Ok(Mode::Send(Options {
        service,
        message,
        port,
        family,
        repeat,
        interval,
    }))
}

fn check_size(len: usize, max: usize) -> Result<(), String> {
    if len > max {
        let family = if max == MAX_IPV4_PAYLOAD {
            "an IPv4"
        } else {
            "a"
        };
        return Err(format!(
            "the message is {len} bytes; {family} UDP datagram holds at most {max}"
        ));
    }
    Ok(())
}

/// Resolves the service and sends `message` to every pod; returns the exit
/// code this broadcast alone would have.
fn broadcast(options: &Options, message: &[u8], sockets: &mut Sockets) -> i32 {
    if let Err(e) = check_size(message.len(), MAX_IPV6_PAYLOAD) {
        log_error(&e);
        return exit::USAGE;
    }
    let pods = match discover::discover(&options.service, options.port, options.family) {
        Ok(pods) => pods,
        Err(e) => {
            log_error(&e.0);
            return exit::NOT_RESOLVED;
        }
    };
    if pods.addrs.iter().any(SocketAddr::is_ipv4) {
        if let Err(e) = check_size(message.len(), MAX_IPV4_PAYLOAD) {
            log_error(&e);
            return exit::USAGE;
        }
    }
    let mut status = exit::OK;
    if let Some(why) = &pods.incomplete {
        log_line_to(&mut io::stderr(), log_line::WARNING, why);
        status = exit::PARTIAL;
    }
    // One write for the whole round, not one per pod.
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    for addr in pods.addrs {
        let ip = pyrepr::ip_text(addr.ip());
        match sockets.send(message, addr) {
            Ok(_) => log_line_to(&mut out, log_line::INFO, &format!("sent message to :{ip}")),
            Err(e) => {
                let _ = out.flush();
                log_error(&format!("failed to send message to :{ip}: {e}"));
                status = exit::PARTIAL;
            }
        }
    }
    if let Err(e) = out.flush() {
        eprintln!("sender: cannot write to standard output: {e}");
        return exit::FAILURE;
    }
    status
}

fn log_line_to(out: &mut impl Write, level: &str, message: &str) {
    let _ = out.write_all(log_line::line(level, message).as_bytes());
}

fn log_error(message: &str) {
    log_line_to(&mut io::stderr(), log_line::ERROR, message);
}

/// One unconnected socket per address family, opened when first needed.
#[derive(Default)]
struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sockets {
    fn send(&mut self, message: &[u8], to: SocketAddr) -> io::Result<usize> {
        let (slot, local) = if to.is_ipv4() {
            (&mut self.v4, "0.0.0.0:0")
        } else {
            (&mut self.v6, "[::]:0")
        };
        let socket = match slot {
            Some(socket) => socket,
            None => slot.insert(UdpSocket::bind(local)?),
        };
        socket.send_to(message, to)
    }
}
