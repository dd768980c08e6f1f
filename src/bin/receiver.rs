//! `receiver`: listen on UDP 12000 and log every datagram and its source in
//! the original demo's format (see `udp_headless::receiver`).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::SystemTime;
use udp_headless::args::{self, Parser, UsageError};
use udp_headless::exit::{self, Status};
use udp_headless::receiver::{self, Receiver};
use udp_headless::trust::Trusted;
use udp_headless::{keyed, listen};

const SHORT_OPTIONS: &[(char, &str)] = &[
    ('p', "port"),
    ('b', "bind"),
    ('h', "help"),
    ('V', "version"),
];

const HELP: &str = concat!(
    "\
receiver: log every UDP datagram that arrives, as the original demo did

Usage: receiver [options]
       receiver --check [-p PORT]

Logs one line per datagram to standard output:
  2021-08-22 20:20:56,167 - root - INFO - Message from Client:b'test' Client IP Address:('10.130.3.209', 38063)
The payload is shown as Python's repr of bytes, so any bytes stay on one line.
Times are UTC. SIGTERM or SIGINT stops it within a second (exit 0); lines
standard output has not taken by then are lost.

Options (the environment variable is used when the option is not given;
an empty variable counts as unset):
  -p, --port PORT       UDP port to listen on [12000]       UDP_HEADLESS_PORT
  -b, --bind ADDR       address to listen on [all, IPv4 and UDP_HEADLESS_BIND
                        IPv6]; link-local with its interface:
                        fe80::1%eth0
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
",
    udp_headless::key_options_help!(),
    "
      --check           exit 0 if a UDP socket is bound on the port in this
                        network namespace, else 1 (a readiness probe); any
                        program's socket counts, not only a receiver's;
                        takes no option but --port
  -h, --help            print this help
  -V, --version         print the version

Exit codes: 0 stopped by SIGTERM/SIGINT, or --check found a socket;
1 could not bind or write the log, the socket failed 100 times in a row,
or --check found none; 2 usage error.
"
);

enum Mode {
    Receive(Receiver),
    Check(u16),
    Print(String),
}

fn main() -> ExitCode {
    let outcome = match parse(Parser::from_env()) {
        Ok(Mode::Receive(options)) => receiver::run(options),
        Ok(Mode::Check(port)) => listen::check(port),
        Ok(Mode::Print(text)) => {
            print!("{text}");
            Ok(Status::Ok)
        }
        Err(e) => Err(e.into()),
    };
    exit::finish("receiver", outcome)
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
        if matches!(
            name,
            Some("bind" | "rcvbuf" | "metrics" | "trust-relay" | "key-file" | "max-age")
        ) {
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
                let text = args::help_or_version(&mut parser, option, "receiver", HELP)?;
                return Ok(Mode::Print(text));
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
        Some((text, from)) => Some(args::ip_with_zone(&text, &from, port)?),
        None => None,
    };
    let relays = match args::option_or_env(relays, "--trust-relay", "UDP_HEADLESS_TRUST_RELAY")? {
        Some((text, from)) => Trusted::parse(&text, &from)?,
        None => Trusted::default(),
    };
    Ok(Mode::Receive(Receiver {
        bind: bind.unwrap_or(SocketAddr::new(IpAddr::from([0u16; 8]), port)),
        rcvbuf: args::rcvbuf(rcvbuf)?,
        metrics: args::metrics(metrics)?,
        relays,
        signing: keyed::open(key_file, max_age, SystemTime::now())?,
    }))
}
