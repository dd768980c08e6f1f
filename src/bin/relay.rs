//! `relay -s headless-udp`: every datagram that arrives on UDP 12001 is
//! sent, unchanged, to every pod of the Service (see `udp_headless::relay`).

use std::process::ExitCode;
use udp_headless::args::{self, Parser, UsageError};
use udp_headless::discover::{Family, Target};
use udp_headless::exit::{self, Status};
use udp_headless::relay::{self, Relay};
use udp_headless::{keyed, listen};

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
",
    udp_headless::key_options_help!(),
    "
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

enum Mode {
    Relay(Relay),
    Check(u16),
    Print(String),
}

fn main() -> ExitCode {
    let outcome = match parse(Parser::from_env()) {
        Ok(Mode::Relay(options)) => relay::run(options),
        Ok(Mode::Check(port)) => listen::check(port),
        Ok(Mode::Print(text)) => {
            print!("{text}");
            Ok(Status::Ok)
        }
        Err(e) => Err(e.into()),
    };
    exit::finish("relay", outcome)
}

// Out of line: inlined into main, each early return repeated the drop of
// every option parsed so far (2.9 KB of the relay's 600 KB budget).
#[inline(never)]
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
    let (mut key_file, mut max_age) = (None, None);
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
                let text = args::help_or_version(&mut parser, option, "relay", HELP)?;
                return Ok(Mode::Print(text));
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
    Ok(Mode::Relay(Relay {
        target: Target {
            service,
            port,
            family,
        },
        listen,
        refresh: args::refresh(refresh)?,
        rcvbuf: args::rcvbuf(rcvbuf)?,
        frame,
        metrics: args::metrics(metrics)?,
        signing: keyed::open(key_file, max_age, std::time::SystemTime::now())?,
    }))
}
