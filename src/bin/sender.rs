//! `sender -s headless-udp -m test`: one UDP datagram to every pod of a
//! headless Service, logging `sent message to :IP` for each.

use std::io::{self, BufRead, BufWriter, Stdout, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};
use udp_headless::args::{self, Parser, UsageError};
use udp_headless::confirm::{self, Confirmer};
use udp_headless::discover::{self, Family};
use udp_headless::membership::{self, Answer, Cache, Event};
use udp_headless::{exit, frame, keyed, log_line, pyrepr, signals, sys};

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
    /// `--list`: print the pods, send nothing.
    list: bool,
    /// --confirm: how long to wait for acknowledgements.
    confirm: Option<Duration>,
    /// `--refresh`: None = by TTL.
    refresh: Option<Duration>,
    /// `--key-file`: taken by `run`; `signed` says there was one.
    signing: Option<Box<udp_headless::signed::Signing>>,
    signed: bool,
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
    let mut options = match parse(Parser::from_env()) {
        Ok(Mode::Send(options)) => options,
        Ok(Mode::Idle) => {
            if let Err(e) = signals::stop_on_term_and_int() {
                log_error(&format!("cannot handle SIGTERM/SIGINT: {e}"));
                return exit::FAILURE;
            }
            while signals::sleep_unless_stopped(Duration::from_secs(3600)) {}
            return exit::OK;
        }
        Ok(Mode::Done) => return exit::OK,
        Err(e) => {
            eprintln!("sender: {e} (see sender --help)");
            return e.exit_code();
        }
    };
    if sys::stdout_was_closed() {
        log_error("standard output is closed: there is nowhere to write the log");
        return exit::FAILURE;
    }
    // Repeated broadcasts stop cleanly between rounds; one-shot work (one
    // broadcast, stdin lines) ends at once, even in a slow DNS lookup.
    // Either way SIGTERM works when the sender is PID 1 in a container.
    let handled = if options.message.is_some() && options.repeat != 1 {
        signals::stop_on_term_and_int()
    } else {
        signals::exit_on_term_and_int()
    };
    if let Err(e) = handled {
        log_error(&format!("cannot handle SIGTERM/SIGINT: {e}"));
        return exit::FAILURE;
    }
    let mut sockets = Sockets::default();
    if options.list {
        return list(&options);
    }
    let mut signer = keyed::Signer::new(options.signing.take());
    let mut confirmer = options
        .confirm
        .map(|t| Confirmer::new(t).with_key(signer.take()));
    let (service, port, family) = (options.service.clone(), options.port, options.family);
    let mut pods = Cache::new(
        move || discover::discover(&service, port, family),
        options.refresh,
    );
    // One buffer for every round's lines: one write per round, and no
    // allocation per round (stream modes run many).
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout());
    let max_line = MAX_IPV6_PAYLOAD - framing(&options);
    let mut status = exit::OK;
    let mut note = |code: i32| {
        if status == exit::OK {
            status = code;
        }
    };
    match &options.message {
        Some(message) => {
            let mut round = 0;
            while options.repeat == 0 || round < options.repeat {
                if round > 0 && !signals::sleep_unless_stopped(options.interval) {
                    break;
                }
                match broadcast(
                    &options,
                    &mut pods,
                    message,
                    &mut sockets,
                    (&mut confirmer, &mut signer),
                    &mut out,
                ) {
                    Ok(code) => note(code),
                    Err(LogFailed) => return exit::FAILURE,
                }
                round += 1;
            }
        }
        None => {
            let mut stdin = io::stdin().lock();
            let mut line = Vec::new();
            let mut any = false;
            loop {
                let read = read_line(&mut stdin, &mut line, max_line);
                any |= matches!(read, Ok(Line::Read | Line::TooLong(_)));
                match read {
                    // `kubectl exec` without -i gives an empty stdin.
                    Ok(Line::End) if !any => {
                        log_error("no line on standard input: nothing sent");
                        note(exit::USAGE);
                        break;
                    }
                    Ok(Line::End) => break,
                    Ok(Line::Read) => {
                        match broadcast(
                            &options,
                            &mut pods,
                            &line,
                            &mut sockets,
                            (&mut confirmer, &mut signer),
                            &mut out,
                        ) {
                            Ok(code) => note(code),
                            Err(LogFailed) => return exit::FAILURE,
                        }
                    }
                    Ok(Line::TooLong(len)) => {
                        let too_large = check_size(len, max_line, "a").unwrap_err();
                        log_error(&format!("{too_large}: line skipped"));
                        note(exit::USAGE);
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

enum Line {
    Read,
    /// Longer than the limit: skipped up to its newline; its length.
    TooLong(usize),
    End,
}

/// Reads one line without its `\n` into `line`, keeping at most `max`
/// bytes in memory: input without newlines cannot grow it without bound.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    line.clear();
    let mut len = 0;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(match len {
                0 => Line::End,
                _ if len > max => Line::TooLong(len),
                _ => Line::Read,
            });
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        if len + part.len() <= max {
            line.extend_from_slice(part);
        }
        len += part.len();
        let used = part.len() + usize::from(newline.is_some());
        input.consume(used);
        if newline.is_some() {
            return Ok(if len > max {
                Line::TooLong(len)
            } else {
                Line::Read
            });
        }
    }
}

fn parse(mut parser: Parser) -> Result<Mode, UsageError> {
    let mut service = None;
    let mut message = None;
    let mut port = None;
    let mut family = None;
    let mut repeat = None;
    let mut interval = None;
    let mut refresh = None;
    let (mut key_file, mut max_age) = (None, None);
    let mut timeout = None;
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
                args::print_help_or_version(&mut parser, option, "sender", HELP)?;
                return Ok(Mode::Done);
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
    let repeat = match args::option_or_env(repeat, "--repeat", "UDP_HEADLESS_REPEAT")? {
        Some(_) if list => 1,
        Some((_, from)) if message.is_none() => {
            return Err(UsageError::Invalid(format!(
                "{from} needs a message (-m): stdin lines are each sent once"
            )))
        }
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
    let refresh = match args::option_or_env(refresh, "--refresh", "UDP_HEADLESS_REFRESH")? {
        Some((text, from)) => Some(args::parse_duration(&text, &from)?),
        None => None,
    };
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
    let signing = keyed::open(key_file, max_age, std::time::UNIX_EPOCH)?;
    let options = Options {
        service,
        message,
        port,
        family,
        repeat,
        interval,
        confirm,
        list,
        refresh,
        signed: signing.is_some(),
        signing,
    };
    if let Some(m) = &options.message {
        let max = MAX_IPV6_PAYLOAD - framing(&options);
        check_size(m.len(), max, "a").map_err(UsageError::Invalid)?;
    }
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

/// The bytes a frame adds to each message: none without --confirm.
fn framing(options: &Options) -> usize {
    if options.signed {
        keyed::SENDER_OVERHEAD
    } else if options.confirm.is_some() {
        frame::HEADER_LEN
    } else {
        0
    }
}

/// `datagram` names the kind of datagram `max` is for ("an IPv4").
fn check_size(len: usize, max: usize, datagram: &str) -> Result<(), String> {
    if len > max {
        return Err(format!(
            "the message is {len} bytes; {datagram} UDP datagram holds at most {max}"
        ));
    }
    Ok(())
}

/// Standard output failed (a closed pipe, a full disk): the sender stops
/// rather than send on with nowhere to log it, or fail once per line.
struct LogFailed;

/// Resolves the service and sends `message` to every pod; returns the exit
/// code this broadcast alone would have.
///
/// `message` fits an IPv6 datagram: `parse` and `read_line` see to that.
fn broadcast(
    options: &Options,
    pods: &mut Cache<impl FnMut() -> Answer>,
    message: &[u8],
    sockets: &mut Sockets,
    (confirmer, signer): (&mut Option<Confirmer>, &mut keyed::Signer),
    out: &mut BufWriter<Stdout>,
) -> Result<i32, LogFailed> {
    // A failed refresh keeps the last list: warned once per streak. The
    // pod count is not logged: stdout has one line per send, as always.
    let mut warn = |event: Event| {
        if let (Event::Failed { kept: true, .. }, Some((level, line))) =
            (&event, membership::describe(&event))
        {
            log_line::to_stderr(level, &line);
        }
    };
    let pods = match pods.get(&mut warn) {
        Ok(pods) => pods,
        Err(e) => {
            log_error(&e.message);
            return Ok(e.exit_code);
        }
    };
    let has_ipv4 = pods.addrs.iter().any(SocketAddr::is_ipv4);
    if has_ipv4 {
        if let Err(e) = check_size(
            message.len(),
            MAX_IPV4_PAYLOAD - framing(options),
            "an IPv4",
        ) {
            // Worded as `read_line`'s refusal of a longer line.
            let skipped = if options.message.is_none() {
                ": line skipped"
            } else {
                ""
            };
            log_error(&format!("{e}{skipped}"));
            return Ok(exit::USAGE);
        }
    }
    let has_ipv6 = pods.addrs.iter().any(SocketAddr::is_ipv6);
    if let Err(e) = sockets.open(has_ipv4, has_ipv6) {
        log_error(&e);
        return Ok(exit::FAILURE);
    }
    let mut status = exit::OK;
    if let Some(why) = &pods.incomplete {
        log_line::to_stderr(log_line::WARNING, why);
        status = exit::PARTIAL;
    }
    // One line buffer for the round: no allocation per pod.
    let mut line = LogLine::default();
    if let Some(confirmer) = confirmer {
        let sock = sockets.for_addr(pods.addrs[0]);
        let mut resolve = |limit| {
            let found =
                discover::discover_within(&options.service, options.port, options.family, limit);
            found.ok().map(|pods| pods.addrs)
        };
        let report = confirmer.broadcast(sock, message, &pods.addrs, &mut resolve, &mut |sent| {
            // A pod whose send failed is retried; whether it confirms
            // decides the exit code.
            for (addr, result) in sent {
                log_send(out, &mut line, *addr, result, true);
            }
            // Before the wait, so the lines show at once.
            let _ = out.flush();
        });
        let confirmed = report.log();
        if status == exit::OK {
            status = confirmed;
        }
    } else {
        for &addr in &pods.addrs {
            let message = &signer.data(message);
            if !log_send(out, &mut line, addr, &sockets.send(message, addr), false) {
                status = exit::PARTIAL;
            }
        }
    }
    if let Err(e) = out.flush() {
        log_error(&format!("cannot write to standard output: {e}"));
        return Err(LogFailed);
    }
    Ok(status)
}

/// `--list`: the addresses `broadcast` would send to, from the same
/// discovery, with the same exit codes; the demo polls it until a DNS cache
/// has caught up with a scale-out.
fn list(options: &Options) -> i32 {
    let pods = match discover::discover(&options.service, options.port, options.family) {
        Ok(pods) => pods,
        Err(e) => {
            log_error(&e.to_string());
            return e.exit_code();
        }
    };
    let text: String = pods
        .addrs
        .iter()
        .map(|addr| pyrepr::ip_text(addr.ip()) + "\n")
        .collect();
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        log_error(&format!("cannot write to standard output: {e}"));
        return exit::FAILURE;
    }
    match &pods.incomplete {
        Some(why) => {
            log_line::to_stderr(log_line::WARNING, why);
            exit::PARTIAL
        }
        None => exit::OK,
    }
}

/// Logs one send: `sent message to :IP` on stdout, or the error on stderr
/// (a warning if it will be `retried`). False if it failed.
fn log_send(
    out: &mut impl Write,
    line: &mut LogLine,
    addr: SocketAddr,
    result: &io::Result<usize>,
    retried: bool,
) -> bool {
    match result {
        Ok(_) => {
            line.stamp(SystemTime::now());
            line.bytes.extend_from_slice(b"sent message to :");
            pyrepr::write_ip(&mut line.bytes, addr.ip());
            line.bytes.push(b'\n');
            let _ = out.write_all(&line.bytes);
            true
        }
        Err(e) => {
            let _ = out.flush();
            let ip = pyrepr::ip_text(addr.ip());
            let failed = format!("failed to send message to :{ip}: {e}");
            if retried {
                log_line::to_stderr(log_line::WARNING, &format!("{failed} (retrying)"));
            } else {
                log_error(&failed);
            }
            false
        }
    }
}

/// The caller's line buffer, reused: musl's allocator can turn an
/// allocation per pod into an mmap and munmap per pod. The date and time
/// are formatted once per second (`log_line::Stamper`): stream modes log
/// many lines within one.
#[derive(Default)]
struct LogLine {
    bytes: Vec<u8>,
    stamper: log_line::Stamper,
}

impl LogLine {
    /// Leaves just the log prefix for `now` in `bytes`.
    fn stamp(&mut self, now: SystemTime) {
        self.bytes.clear();
        self.stamper
            .write_prefix(&mut self.bytes, now, log_line::INFO);
    }
}

fn log_error(message: &str) {
    log_line::to_stderr(log_line::ERROR, message);
}

/// One unconnected socket per address family, opened when first needed.
#[derive(Default)]
struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sockets {
    /// Opens the sockets a round needs, before anything is sent: a socket
    /// that cannot be opened means the sender cannot run here at all.
    fn open(&mut self, ipv4: bool, ipv6: bool) -> Result<(), String> {
        let wanted = [
            (ipv4, &mut self.v4, "0.0.0.0:0"),
            (ipv6, &mut self.v6, "[::]:0"),
        ];
        for (wanted, slot, local) in wanted {
            if wanted && slot.is_none() {
                let socket = UdpSocket::bind(local)
                    .map_err(|e| format!("cannot open a UDP socket on {local}: {e}"))?;
                *slot = Some(socket);
            }
        }
        Ok(())
    }

    fn send(&self, message: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.for_addr(to).send_to(message, to)
    }

    fn for_addr(&self, to: SocketAddr) -> &UdpSocket {
        let socket = if to.is_ipv4() { &self.v4 } else { &self.v6 };
        socket.as_ref().expect("opened by Sockets::open")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line read, or the length of a line skipped as too long.
    type Got = Result<Vec<u8>, usize>;

    /// The lines `read_line` gives for `input` with a limit of 4 bytes.
    fn lines(input: &[u8]) -> Vec<Got> {
        // A tiny buffer, so lines also span several reads.
        let mut reader = io::BufReader::with_capacity(3, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut reader, &mut line, 4).unwrap() {
                Line::End => return out,
                Line::Read => out.push(Ok(line.clone())),
                Line::TooLong(len) => out.push(Err(len)),
            }
        }
    }

    #[test]
    fn read_line_keeps_lines_up_to_the_limit() {
        let ok = |s: &[u8]| Ok(s.to_vec());
        let cases: &[(&[u8], Vec<Got>)] = &[
            (b"", vec![]),
            (b"\n", vec![ok(b"")]),
            (b"abcd\n", vec![ok(b"abcd")]),
            (b"abcd", vec![ok(b"abcd")]),
            (b"abcde\nx\n", vec![Err(5), ok(b"x")]),
            (b"abcde", vec![Err(5)]),
            (b"a\r\n\nb", vec![ok(b"a\r"), ok(b""), ok(b"b")]),
            (b"abcdefghij\nabcd", vec![Err(10), ok(b"abcd")]),
        ];
        for (input, want) in cases {
            assert_eq!(&lines(input), want, "{input:?}");
        }
    }
}
