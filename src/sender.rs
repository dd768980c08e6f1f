//! What the sender does (`sender -s headless-udp -m test`): one UDP
//! datagram to every pod of a headless Service, logging `sent message to
//! :IP` for each; or each line of stdin, repeats, `--confirm`, `--list`.

use crate::confirm::{self, Confirmer};
use crate::discover::{Resolver, Target};
use crate::exit::{self, Failure, Status};
use crate::forward::Sockets;
use crate::keyed::{self, Signer};
use crate::membership::{self, Answer, Cache, Event};
use crate::os::signals::{self, Stop};
use crate::signed::Signing;
use crate::{frame, log_line, pyrepr};
use std::io::{self, BufRead, BufWriter, Stdout, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Largest UDP payloads: 65535 minus the IP and UDP headers.
const MAX_IPV4_PAYLOAD: usize = 65_507;
const MAX_IPV6_PAYLOAD: usize = 65_527;

/// The sender's options.
pub struct Sender {
    pub target: Target,
    /// None: one message per line of stdin.
    pub message: Option<Vec<u8>>,
    /// 0: until stopped.
    pub repeat: u64,
    pub interval: Duration,
    /// `--list`: print the pods, send nothing.
    pub list: bool,
    /// --confirm: how long to wait for acknowledgements.
    pub confirm: Option<Duration>,
    /// `--refresh`: None = by TTL.
    pub refresh: Option<Duration>,
    /// `--key-file`: every message signed, a MESSAGE frame (`keyed::Signer`)
    /// or with --confirm a DATA frame (`Confirmer::with_key`).
    pub signing: Option<Box<Signing>>,
}

impl Sender {
    /// The message given fits an IPv6 datagram, with its frame.
    pub fn check_size(&self) -> Result<(), String> {
        match &self.message {
            Some(m) => check_size(
                m.len(),
                MAX_IPV6_PAYLOAD - framing(self.confirm.is_some(), self.signing.is_some()),
                "a",
            ),
            None => Ok(()),
        }
    }
}

/// `sender --idle`: waits for SIGTERM/SIGINT, sends nothing.
pub fn idle() -> Result<Status, Failure> {
    let stop = signals::stop_on_term_and_int().map_err(Failure::signals)?;
    while stop.sleep(Duration::from_secs(3600)) {}
    Ok(Status::Ok)
}

/// Sends as `options` say.
pub fn run(mut options: Sender) -> Result<Status, Failure> {
    exit::need_stdout()?;
    // Repeated broadcasts stop cleanly between rounds; one-shot work (one
    // broadcast, stdin lines) ends at once, even in a slow DNS lookup.
    // Either way SIGTERM works when the sender is PID 1 in a container.
    let stop = if options.message.is_some() && options.repeat != 1 {
        signals::stop_on_term_and_int()
    } else {
        signals::exit_on_term_and_int()
    }
    .map_err(Failure::signals)?;
    let mut sockets = Sockets::default();
    if options.list {
        return list(&options);
    }
    let overhead = framing(options.confirm.is_some(), options.signing.is_some());
    let mut signer = Signer::new(options.signing.take());
    let mut confirmer = options
        .confirm
        .map(|t| Confirmer::new(t).with_key(signer.take()));
    let resolver = Resolver::new(options.target.clone());
    let mut pods = Cache::new(
        {
            let resolver = resolver.clone();
            move || resolver.resolve()
        },
        options.refresh,
    );
    // One buffer for every round's lines: one write per round, and no
    // allocation per round (stream modes run many).
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout());
    let max_line = MAX_IPV6_PAYLOAD - overhead;
    let mut status = Status::Ok;
    // One message to every pod, in either mode below.
    let mut send = |message: &[u8]| {
        broadcast(
            &options,
            &mut pods,
            message,
            &mut sockets,
            (&mut confirmer, &mut signer),
            &mut out,
            (&resolver, &stop, overhead),
        )
    };
    match &options.message {
        Some(message) => {
            let mut round = 0;
            while options.repeat == 0 || round < options.repeat {
                if round > 0 && !stop.sleep(options.interval) {
                    break;
                }
                note(&mut status, send(message)?);
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
                        note(&mut status, Status::Refused);
                        break;
                    }
                    Ok(Line::End) => break,
                    Ok(Line::Read) => note(&mut status, send(&line)?),
                    Ok(Line::TooLong(len)) => {
                        let too_large = check_size(len, max_line, "a").unwrap_err();
                        log_error(&format!("{too_large}: line skipped"));
                        note(&mut status, Status::Refused);
                    }
                    Err(e) => {
                        log_error(&format!("cannot read standard input: {e}"));
                        note(&mut status, Status::Failed);
                        break;
                    }
                }
            }
        }
    }
    Ok(status)
}

/// Keeps the run's status, and tells the stop watchdog (`signals`) how a
/// run that a blocked write holds up ends.
fn note(status: &mut Status, next: Status) {
    status.note(next);
    signals::status_if_held_up(*status);
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

/// The bytes a frame adds to each message: none without --confirm or a
/// key.
fn framing(confirm: bool, signed: bool) -> usize {
    if signed {
        keyed::SENDER_OVERHEAD
    } else if confirm {
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

/// Resolves the service and sends `message` to every pod; returns the
/// status this broadcast alone would have. Standard output failed (a
/// closed pipe, a full disk): the sender stops rather than send on with
/// nowhere to log it, or fail once per line.
///
/// `message` fits an IPv6 datagram: `parse` and `read_line` see to that.
fn broadcast(
    options: &Sender,
    pods: &mut Cache<impl FnMut() -> Answer>,
    message: &[u8],
    sockets: &mut Sockets,
    (confirmer, signer): (&mut Option<Confirmer>, &mut Signer),
    out: &mut BufWriter<Stdout>,
    (resolver, stop, overhead): (&Resolver, &Stop, usize),
) -> Result<Status, Failure> {
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
            log_error(&e.to_string());
            return Ok(Status::NotResolved);
        }
    };
    let has_ipv4 = pods.addrs.iter().any(SocketAddr::is_ipv4);
    if has_ipv4 {
        if let Err(e) = check_size(message.len(), MAX_IPV4_PAYLOAD - overhead, "an IPv4") {
            // Worded as `read_line`'s refusal of a longer line.
            let skipped = if options.message.is_none() {
                ": line skipped"
            } else {
                ""
            };
            log_error(&format!("{e}{skipped}"));
            return Ok(Status::Refused);
        }
    }
    let has_ipv6 = pods.addrs.iter().any(SocketAddr::is_ipv6);
    if let Err(e) = sockets.open(has_ipv4, has_ipv6) {
        log_error(&e);
        return Ok(Status::Failed);
    }
    let mut status = Status::Ok;
    if let Some(why) = &pods.incomplete {
        log_line::to_stderr(log_line::WARNING, why);
        status = Status::Partial;
    }
    // One line buffer for the round: no allocation per pod.
    let mut line = LogLine::default();
    if let Some(confirmer) = confirmer {
        let sock = sockets.for_addr(pods.addrs[0]).expect("opened above");
        let mut resolve = |limit| resolver.resolve_within(limit).ok().map(|pods| pods.addrs);
        let mut first_sends = |sent: &[confirm::Sent]| {
            // A pod whose send failed is retried; whether it confirms
            // decides the exit code.
            for (addr, result) in sent {
                log_send(out, &mut line, *addr, result, true);
            }
            // Before the wait, so the lines show at once.
            let _ = out.flush();
        };
        let report = confirmer.broadcast(
            sock,
            message,
            &pods.addrs,
            &mut resolve,
            &mut first_sends,
            stop,
        );
        status.note(log_report(&report));
    } else {
        for &addr in &pods.addrs {
            let message = &signer.datagram(message);
            if !log_send(out, &mut line, addr, &sockets.send(message, addr), false) {
                status = Status::Partial;
            }
        }
    }
    if let Err(e) = out.flush() {
        return Err(Failure::Failed(format!(
            "cannot write to standard output: {e}"
        )));
    }
    Ok(status)
}

/// Logs the pods that did not confirm and the summary, on stderr: Partial
/// unless every pod confirmed.
fn log_report(report: &confirm::Report) -> Status {
    for pod in &report.unconfirmed {
        log_line::to_stderr(
            log_line::ERROR,
            &format!(
                "no confirmation from :{} (not running, unreachable, or its receiver \
                     does not confirm, such as the original Python one)",
                pyrepr::ip_text(pod.ip())
            ),
        );
    }
    let total = report.confirmed.len() + report.unconfirmed.len();
    let level = if report.unconfirmed.is_empty() {
        log_line::INFO
    } else {
        log_line::WARNING
    };
    log_line::to_stderr(
        level,
        &format!("confirmed by {} of {total} pods", report.confirmed.len()),
    );
    if report.unconfirmed.is_empty() {
        Status::Ok
    } else {
        Status::Partial
    }
}

/// `--list`: the addresses `broadcast` would send to, from the same
/// discovery, with the same exit codes; the demo polls it until a DNS cache
/// has caught up with a scale-out.
fn list(options: &Sender) -> Result<Status, Failure> {
    let pods = match Resolver::new(options.target.clone()).resolve() {
        Ok(pods) => pods,
        Err(e) => {
            log_error(&e.to_string());
            return Ok(Status::NotResolved);
        }
    };
    let text: String = pods
        .addrs
        .iter()
        .map(|addr| pyrepr::ip_text(addr.ip()) + "\n")
        .collect();
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        let why = format!("cannot write to standard output: {e}");
        return Err(Failure::Failed(why));
    }
    match &pods.incomplete {
        Some(why) => {
            log_line::to_stderr(log_line::WARNING, why);
            Ok(Status::Partial)
        }
        None => Ok(Status::Ok),
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
