//! Exchanges one question with the resolv.conf servers: UDP first, TCP
//! when the answer is truncated, servers in turn, `attempts` rounds.

use super::wire::{
    build_query, name_text, parse_answer, RecordType, Reply, ReplyError, MAX_MESSAGE,
    RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_SERVFAIL,
};
use super::LookupError;
use crate::resolv_conf::ResolvConf;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// One query: the name (wire form) and type, its id, and the message.
pub(crate) struct Question<'a> {
    id: u16,
    name: &'a [u8],
    qtype: RecordType,
    message: Vec<u8>,
    /// Ask over TCP first: the answer is expected not to fit UDP.
    tcp_first: bool,
}

impl<'a> Question<'a> {
    pub fn new(name: &'a [u8], qtype: RecordType, tcp_first: bool) -> Question<'a> {
        let id = random_id();
        Question {
            id,
            name,
            qtype,
            message: build_query(id, name, qtype),
            tcp_first,
        }
    }

    /// `cut_records`: whether a truncated answer's records are wanted.
    // Out of line: inlined, it made the binary larger (under 600 KB).
    #[inline(never)]
    fn parse(&self, msg: &[u8], cut_records: bool) -> Result<Reply, ReplyError> {
        parse_answer(msg, self.id, self.name, self.qtype, cut_records)
    }
}

/// Why one server gave no usable answer. No Debug: it would link io::Error's.
enum Failure {
    Timeout,
    Unreachable(io::Error),
    Malformed(String),
    Rcode(u8),
    /// UDP answered (truncated), then TCP failed so: a NetworkPolicy that
    /// allows UDP 53 and forgot TCP 53 looks like this.
    Tcp(Box<Failure>),
}

/// Asks the servers in turn, `attempts` rounds, until one answers
/// NOERROR or NXDOMAIN; over TCP too when the UDP answer is truncated.
/// Each exchange waits the conf's timeout at most, and none past
/// `deadline`.
pub(crate) fn query(
    conf: &ResolvConf,
    question: &Question,
    deadline: Option<Instant>,
) -> Result<Reply, LookupError> {
    if conf.nameservers.is_empty() {
        return Err(LookupError::Unreachable("no nameserver configured".into()));
    }
    let mut failures: Vec<Option<Failure>> = conf.nameservers.iter().map(|_| None).collect();
    'rounds: for _ in 0..conf.attempts {
        for (server, failure) in conf.nameservers.iter().zip(&mut failures) {
            // A server that answered with an error code would say it again.
            if let Some(Failure::Rcode(_)) = failure {
                continue;
            }
            let limit = Limit {
                timeout: conf.timeout,
                deadline,
            };
            if limit.left().is_zero() {
                break 'rounds;
            }
            match exchange(*server, question, limit) {
                Ok(reply) => return Ok(reply),
                // A later silence does not make an earlier, more telling
                // failure (TCP failed, say) less true.
                Err(Failure::Timeout) if failure.is_some() => {}
                Err(e) => *failure = Some(e),
            }
        }
    }
    // Then "no answer" is no longer "the servers' whole timeouts".
    let cut_short = deadline.is_some_and(|d| Instant::now() >= d);
    Err(describe_failures(conf, question, failures, cut_short))
}

/// How long a TCP-first attempt waits before trying the usual way.
const TCP_FIRST_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one step of an exchange may wait: the conf's timeout, and
/// never past the lookup's deadline.
#[derive(Clone, Copy)]
struct Limit {
    timeout: Duration,
    deadline: Option<Instant>,
}

impl Limit {
    fn left(self) -> Duration {
        match self.deadline {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(self.timeout),
            None => self.timeout,
        }
    }
}

/// One server: UDP, then TCP if the answer did not fit. With `tcp_first`,
/// TCP at once, saving the truncated UDP exchange; if that fails, the
/// usual way, so that the error says whether UDP works (and a server that
/// was only slow to start gets its second chance).
fn exchange(server: SocketAddr, question: &Question, limit: Limit) -> Result<Reply, Failure> {
    if question.tcp_first {
        // Short: if TCP is blocked, the usual way below waits out the full
        // timeout for it again anyway.
        let first = limit.left().min(TCP_FIRST_TIMEOUT);
        if let Ok(reply) = ask_tcp(server, question, first) {
            check_rcode(&reply)?;
            return Ok(reply);
        }
    }
    let mut reply = ask_udp(server, question, limit.left())?;
    check_rcode(&reply)?;
    if reply.truncated {
        reply = ask_tcp(server, question, limit.left()).map_err(|e| Failure::Tcp(Box::new(e)))?;
        check_rcode(&reply)?;
    }
    Ok(reply)
}

fn check_rcode(reply: &Reply) -> Result<(), Failure> {
    match reply.rcode {
        RCODE_NOERROR | RCODE_NXDOMAIN => Ok(()),
        rcode => Err(Failure::Rcode(rcode)),
    }
}

/// Datagrams that are not an answer to this query (another id, another
/// question: late, or forged) are skipped until the deadline, as glibc
/// does; if only such came, that is the failure rather than a timeout.
// Out of line: inlined, it made the binary larger (under 600 KB).
#[inline(never)]
fn ask_udp(server: SocketAddr, question: &Question, timeout: Duration) -> Result<Reply, Failure> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(Failure::Unreachable)?;
    // Connected: only the server's datagrams arrive, and an ICMP "port
    // unreachable" comes back as an error instead of a long wait.
    socket.connect(server).map_err(Failure::Unreachable)?;
    socket.send(&question.message).map_err(io_failure)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0; MAX_MESSAGE];
    let mut skipped = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(match skipped {
                Some(why) => {
                    Failure::Malformed(format!("only answers to another query (last: {why})"))
                }
                None => Failure::Timeout,
            });
        }
        socket.set_read_timeout(Some(left)).map_err(io_failure)?;
        match socket.recv(&mut buf) {
            Ok(len) => match question.parse(&buf[..len], false) {
                Ok(reply) => return Ok(reply),
                Err(ReplyError::NotOurs(why)) => skipped = Some(why),
                Err(ReplyError::Malformed(why)) => return Err(Failure::Malformed(why)),
            },
            Err(e) if is_timeout(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(e)),
        }
    }
}

fn ask_tcp(server: SocketAddr, question: &Question, timeout: Duration) -> Result<Reply, Failure> {
    // std refuses a zero timeout; the deadline has passed.
    if timeout.is_zero() {
        return Err(Failure::Timeout);
    }
    let message = &question.message;
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&server, timeout).map_err(io_failure)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io_failure)?;
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).map_err(io_failure)?;
    let mut len = [0; 2];
    read_full(&mut stream, &mut len, deadline)?;
    let mut answer = vec![0; u16::from_be_bytes(len) as usize];
    read_full(&mut stream, &mut answer, deadline)?;
    let mut reply = question.parse(&answer, true).map_err(|e| match e {
        ReplyError::NotOurs(why) | ReplyError::Malformed(why) => {
            Failure::Malformed(format!("over TCP: {why}"))
        }
    })?;
    // A full message may have dropped records without saying so (glibc
    // would not notice either): no room for one more means maybe more.
    if answer.len() + question.qtype.record_len() > MAX_MESSAGE {
        reply.truncated = true;
    }
    Ok(reply)
}

/// `read_exact` under one deadline for the whole buffer, so a server that
/// trickles bytes cannot hold us much past the timeout.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), Failure> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(io_failure)?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(Failure::Malformed(format!(
                    "over TCP: connection closed after {got} of {} bytes",
                    buf.len()
                )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(e)),
        }
    }
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn io_failure(e: io::Error) -> Failure {
    if is_timeout(&e) {
        Failure::Timeout
    } else {
        Failure::Unreachable(e)
    }
}

/// One line naming every server and what went wrong with it; the kind of
/// error is the most telling one: an error code beats a malformed answer
/// beats no answer.
fn describe_failures(
    conf: &ResolvConf,
    question: &Question,
    failures: Vec<Option<Failure>>,
    cut_short: bool,
) -> LookupError {
    let mut parts = Vec::new();
    let (mut servfail, mut rcode, mut tcp, mut malformed) = (false, false, false, false);
    for (server, failure) in conf.nameservers.iter().zip(failures) {
        let Some(failure) = failure else {
            parts.push(format!("{server} was not asked before the time limit"));
            continue;
        };
        match &failure {
            Failure::Rcode(code) => {
                servfail |= *code == RCODE_SERVFAIL;
                rcode |= *code != RCODE_SERVFAIL;
            }
            Failure::Tcp(_) => tcp = true,
            Failure::Malformed(_) => malformed = true,
            Failure::Timeout | Failure::Unreachable(_) => {}
        }
        parts.push(failure_text(conf, *server, failure, cut_short));
    }
    let detail = format!(
        "{} for {} {}",
        parts.join("; "),
        name_text(question.name),
        question.qtype.name()
    );
    if servfail {
        LookupError::ServerFailure(detail)
    } else if rcode {
        LookupError::Refused(detail)
    } else if tcp {
        LookupError::TcpFailed(detail)
    } else if malformed {
        LookupError::Malformed(detail)
    } else {
        LookupError::Unreachable(detail)
    }
}

fn failure_text(
    conf: &ResolvConf,
    server: SocketAddr,
    failure: Failure,
    cut_short: bool,
) -> String {
    match failure {
        Failure::Timeout if cut_short => format!("{server} did not answer within the time limit"),
        Failure::Timeout => format!(
            "{server} did not answer ({} × {}s)",
            conf.attempts,
            conf.timeout.as_secs()
        ),
        Failure::Unreachable(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            format!("nothing listens on {server} (connection refused)")
        }
        Failure::Unreachable(e) => format!("{server} is unreachable ({e})"),
        Failure::Malformed(why) => format!("{server} sent {why}"),
        Failure::Rcode(code) => format!("{server} answered {}", rcode_name(code)),
        Failure::Tcp(inner) => {
            let why = match *inner {
                Failure::Timeout if cut_short => {
                    "no answer within the time limit (is TCP 53 blocked?)".into()
                }
                Failure::Timeout => format!(
                    "no answer within {}s (is TCP 53 blocked?)",
                    conf.timeout.as_secs()
                ),
                Failure::Unreachable(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    "connection refused".into()
                }
                Failure::Unreachable(e) => e.to_string(),
                Failure::Malformed(why) => format!("it sent {why}"),
                // ask_tcp fails in neither of these two ways.
                Failure::Rcode(code) => format!("it answered {}", rcode_name(code)),
                Failure::Tcp(_) => "it failed".into(),
            };
            format!("{server} answered over UDP but not over TCP: {why}")
        }
    }
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        _ => format!("error code {rcode}"),
    }
}

/// Unpredictable enough that a late answer to an earlier query is not
/// taken for this one; std's RandomState is seeded by the OS.
fn random_id() -> u16 {
    crate::os::random_u64() as u16
}
