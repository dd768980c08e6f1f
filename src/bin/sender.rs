//! `sender -s headless-udp -m test`: one UDP datagram to every pod of a
//! headless Service, logging `sent message to :IP` for each (see
//! `udp_headless::sender`).

use std::process::ExitCode;
use std::time::Duration;
use udp_headless::args::{self, Parser, UsageError};
use udp_headless::discover::{Family, Target};
use udp_headless::exit::{self, Status};
use udp_headless::sender::{self, Sender};
use udp_headless::{confirm, keyed};

const SHORT_OPTIONS: &[(char, &str)] = &[
    ('s', "service"),
    ('m', "message"),
    ('p', "port"),
    ('f', "family"),
    ('r', "repeat"),
    ('i', "interval"),
    ('t', "timeout"),
    ('h', "help"),
    ('V', "version"),
];

const HELP: &str = concat!(
    "\
sender: send one UDP datagram to every pod behind a headless Service

Usage: sender -s SERVICE [-m MESSAGE] [options]
       sender --idle

Resolves SERVICE (a headless Service's DNS name has one address per ready
pod) and sends MESSAGE to each address once, logging `sent message to :IP`.
Without -m, or with -m -, each line of standard input is one message.
Lines and repeats reuse the pod list until the DNS answer's TTL runs out
(1-30 s; 5 s when only the system resolver answered), as a cluster DNS
cache would; --refresh 0 resolves before every message.

Options (the environment variable is used when the option is not given;
an empty variable counts as unset):
  -s, --service NAME    name (or address) to resolve        UDP_HEADLESS_SERVICE
  -m, --message TEXT    the message; - reads stdin lines    UDP_HEADLESS_MESSAGE
  -p, --port PORT       destination UDP port [12000]        UDP_HEADLESS_PORT
  -f, --family FAMILY   auto, ipv4 or ipv6 [auto: IPv4 if   UDP_HEADLESS_FAMILY
                        the service has any, else IPv6]
  -r, --repeat N        broadcast N times; 0 = until        UDP_HEADLESS_REPEAT
                        stopped [1]
  -i, --interval TIME   pause between repeats [1s]       UDP_HEADLESS_INTERVAL
                        (500ms, 2s, 1.5m, ...); only with -r
      --refresh TIME    reuse the pod list this long        UDP_HEADLESS_REFRESH
                        instead of by TTL; 0 = resolve before every message
      --confirm         wait for every pod to confirm,      UDP_HEADLESS_CONFIRM
                        re-sending until all have; report   (1, true, yes: on;
                        the ones that did not (see          0, false, no: off)
                        docs/PROTOCOL.md)
  -t, --timeout TIME    how long --confirm waits per        UDP_HEADLESS_TIMEOUT
                        message [2s]; only with --confirm
",
    udp_headless::key_options_help!(),
    "
      --idle            wait for SIGTERM/SIGINT, send nothing: the main
                        process of a sender pod you `kubectl exec` into
      --list            print the addresses a broadcast would send to, one
                        a line, send nothing (exit codes as a broadcast)
  -h, --help            print this help
  -V, --version         print the version

Exit codes: 0 every send succeeded; 1 could not run (socket, stdin, stdout);
2 usage error, message too large, or no line on stdin; 3 service did not
resolve; 4 some sends failed or the pod list is incomplete (others were
sent), or with --confirm some pods did not confirm.
"
);

enum Mode {
    Send(Sender),
    Idle,
    Print(String),
}

fn main() -> ExitCode {
    let outcome = match parse(Parser::from_env()) {
        Ok(Mode::Send(options)) => sender::run(options),
        Ok(Mode::Idle) => sender::idle(),
        Ok(Mode::Print(text)) => {
            print!("{text}");
            Ok(Status::Ok)
        }
        Err(e) => Err(e.into()),
    };
    exit::finish("sender", outcome)
}

fn parse(mut parser: Parser) -> Result<Mode, UsageError> {
    let mut service = None;
    let mut message = None;
    let mut port = None;
    let mut family = None;
    let mut repeat = None;
    let mut interval = None;
    let mut refresh = None;
    let mut timeout = None;
    let (mut key_file, mut max_age) = (None, None);
    let mut confirm = false;
    let mut idle = false;
    let mut list = false;
    let mut others = 0;
    while let Some(arg) = parser.next()? {
        others += 1;
        match arg.name(SHORT_OPTIONS) {
            Some("service") => service = Some(parser.text()?),
            Some("message") => message = Some(parser.value()?),
            Some("port") => port = Some(parser.text()?),
            Some("family") => family = Some(parser.text()?),
            Some("repeat") => repeat = Some(parser.text()?),
            Some("interval") => interval = Some(parser.text()?),
            Some("timeout") => timeout = Some(parser.text()?),
            Some("refresh") => refresh = Some(parser.text()?),
            Some("key-file") => key_file = Some(parser.text()?),
            Some("max-age") => max_age = Some(parser.text()?),
            Some("confirm") => {
                parser.flag()?;
                confirm = true;
            }
            Some("idle") => {
                parser.flag()?;
                idle = true;
                others -= 1;
            }
            Some("list") => {
                parser.flag()?;
                list = true;
            }
            Some(option @ ("help" | "version")) => {
                let text = args::help_or_version(&mut parser, option, "sender", HELP)?;
                return Ok(Mode::Print(text));
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if idle {
        // Environment variables are fine (a pod sets them for exec'd
        // senders); options would be silently ignored.
        if others > 0 {
            return Err(UsageError::Invalid("--idle takes no other options".into()));
        }
        return Ok(Mode::Idle);
    }
    if list && (message.is_some() || repeat.is_some() || interval.is_some() || confirm) {
        return Err(UsageError::Invalid(
            "--list sends nothing: drop -m, -r, -i and --confirm".into(),
        ));
    }
    use std::os::unix::ffi::OsStringExt;
    // `-m ''` is an empty datagram; an empty variable is unset, as all are.
    let message = message
        .or_else(|| std::env::var_os("UDP_HEADLESS_MESSAGE").filter(|m| !m.is_empty()))
        .map(|m| m.into_vec())
        .filter(|m| m != b"-");
    let service = args::service(service)?;
    let port = args::port(port)?;
    let family = Family::from_option(family)?;
    // Stdin lines are each sent once: there the option is an error and the
    // variable is ignored, as every variable is where it does not apply.
    let repeat = match args::option_or_env(repeat, "--repeat", "UDP_HEADLESS_REPEAT")? {
        Some((_, from)) if message.is_none() && !list && from == "--repeat" => {
            return Err(UsageError::Invalid(
                "--repeat needs a message (-m): stdin lines are each sent once".into(),
            ))
        }
        Some(_) if list || message.is_none() => 1,
        Some((text, from)) => args::parse_count(&text, &from)?,
        None => 1,
    };
    // One broadcast has no pause: the option is an error, and the
    // variable is ignored, as UDP_HEADLESS_TIMEOUT's is without --confirm.
    let interval = match (interval, repeat) {
        (Some(text), 1) => {
            args::parse_duration(&text, "--interval")?;
            return Err(UsageError::Invalid(if message.is_none() {
                "--interval needs a message (-m): stdin lines are each sent once".into()
            } else {
                "--interval is the pause between repeats: give -r 0 or -r N (N > 1)".into()
            }));
        }
        (_, 1) => Duration::from_secs(1),
        (given, _) => match args::option_or_env(given, "--interval", "UDP_HEADLESS_INTERVAL")? {
            Some((text, from)) => args::parse_duration(&text, &from)?,
            None => Duration::from_secs(1),
        },
    };
    let refresh = args::refresh(refresh)?;
    let confirm = confirm || confirm_from_env()?;
    if timeout.is_some() && !confirm {
        return Err(UsageError::Invalid("--timeout needs --confirm".into()));
    }
    // Without --confirm the variable is ignored, so a pod spec can set
    // both and switch confirmations with UDP_HEADLESS_CONFIRM alone.
    let confirm = if !confirm {
        None
    } else {
        match args::option_or_env(timeout, "--timeout", "UDP_HEADLESS_TIMEOUT")? {
            Some((text, from)) => match args::parse_duration(&text, &from)? {
                zero if zero.is_zero() => {
                    return Err(UsageError::Invalid(format!("{from}: must be more than 0")))
                }
                timeout => Some(timeout),
            },
            None => Some(confirm::DEFAULT_TIMEOUT),
        }
    };
    let options = Sender {
        target: Target {
            service,
            port,
            family,
        },
        message,
        repeat,
        interval,
        confirm,
        list,
        refresh,
        signing: keyed::open(key_file, max_age, std::time::UNIX_EPOCH)?,
    };
    options.check_size().map_err(UsageError::Invalid)?;
    Ok(Mode::Send(options))
}

/// UDP_HEADLESS_CONFIRM: 1 (or true, yes) confirms, 0 (false, no) or
/// empty does not.
fn confirm_from_env() -> Result<bool, UsageError> {
    let Some((text, from)) = args::option_or_env(None, "", "UDP_HEADLESS_CONFIRM")? else {
        return Ok(false);
    };
    match text.as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(UsageError::bad_value(
            &from,
            &text,
            "1, true, yes (on) or 0, false, no (off)",
        )),
    }
}
