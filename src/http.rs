//! The tiny HTTP/1.1 server of `--metrics`: `GET /metrics`, `/livez`,
//! `/readyz`. It runs on one thread of its own and shares only atomics with
//! the datagram loop, so no client can slow or stop that loop. Each
//! connection gets one request and one response (`Connection: close`), a
//! bounded request size and one deadline for all of it.
//!
//! One thread serves every connection with `poll` over non-blocking
//! sockets, so a client that holds its connection (silent, slow, half-open,
//! not reading) holds no thread and blocks no one: a request that has
//! arrived is answered at the next wake-up. Memory stays bounded by
//! [`MAX_CONNECTIONS`]: when one more arrives, the oldest is closed, so a
//! prober always gets a slot however many idle clients there are.

use crate::metrics::{Registry, CONTENT_TYPE};
use crate::os::sys::{self, PollFd, EAFNOSUPPORT, POLLIN, POLLOUT};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A request's head (request line and headers) may be this long.
const MAX_HEAD: usize = 8 * 1024;
/// Reading the request and writing the response must end within this.
const DEADLINE: Duration = Duration::from_secs(5);
/// Connections held at once; one more closes the oldest.
const MAX_CONNECTIONS: usize = 64;

/// What the endpoints show.
pub struct Endpoints {
    pub registry: Registry,
    /// `/readyz` says 200 once this is set (the UDP socket is bound).
    pub ready: AtomicBool,
}

impl Endpoints {
    pub fn new(registry: Registry) -> Arc<Endpoints> {
        Arc::new(Endpoints {
            registry,
            ready: AtomicBool::new(false),
        })
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }
}

/// Listens on `addr`; `[::]:PORT` takes IPv4 too, and falls back to
/// `0.0.0.0:PORT` where the kernel has no IPv6.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    match TcpListener::bind(addr) {
        Err(e) if addr.ip() == Ipv6Addr::UNSPECIFIED && e.raw_os_error() == Some(EAFNOSUPPORT) => {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, addr.port()))
        }
        other => other,
    }
}

/// Listens on `addr` and serves `registry` there from now on; `/readyz`
/// says 503 until [`Endpoints::set_ready`]. Also returns the address
/// listened on (its port, when `addr`'s is 0).
pub fn start(addr: SocketAddr, registry: Registry) -> io::Result<(Arc<Endpoints>, SocketAddr)> {
    let listener = bind(addr)?;
    let local = listener.local_addr()?;
    let endpoints = Endpoints::new(registry);
    spawn(listener, Arc::clone(&endpoints))?;
    Ok((endpoints, local))
}

/// Serves `listener` on a thread of its own, for the life of the process.
pub fn spawn(listener: TcpListener, endpoints: Arc<Endpoints>) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let thread = thread::Builder::new()
        .name("metrics".into())
        .stack_size(64 * 1024);
    crate::os::spawn(thread, Box::new(move || serve(&listener, &endpoints)))
}

/// New connections taken per wake-up: few, so that those held are read
/// again before many newer ones could close them (a prober whose request
/// was not there yet when it was accepted).
const ACCEPTS_PER_WAKE: usize = 4;

fn serve(listener: &TcpListener, endpoints: &Endpoints) {
    // In the order accepted: the oldest first.
    let mut held: Vec<Connection> = Vec::with_capacity(MAX_CONNECTIONS);
    let mut fds: Vec<PollFd> = Vec::with_capacity(MAX_CONNECTIONS + 1);
    loop {
        let now = Instant::now();
        held.retain(|c| c.deadline > now);
        fds.clear();
        fds.push(PollFd {
            fd: listener.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        });
        fds.extend(held.iter().map(|c| PollFd {
            fd: c.stream.as_raw_fd(),
            events: if c.answer.is_empty() { POLLIN } else { POLLOUT },
            revents: 0,
        }));
        let wait = held.iter().map(|c| c.deadline - now).min();
        match sys::poll(&mut fds, wait) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Never give up on the endpoints.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        // Those held first: their requests have waited longest.
        let mut i = 0;
        held.retain_mut(|c| {
            i += 1;
            fds[i].revents == 0 || c.advance(endpoints) == Step::Open
        });
        if fds[0].revents != 0 {
            accept(listener, &mut held, endpoints);
        }
    }
}

fn accept(listener: &TcpListener, held: &mut Vec<Connection>, endpoints: &Endpoints) {
    for _ in 0..ACCEPTS_PER_WAKE {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            // A client gone before it was accepted costs no wait.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            // Out of descriptors or memory: try again later.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                return;
            }
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let mut connection = Connection {
            stream,
            deadline: Instant::now() + DEADLINE,
            head: Vec::new(),
            answer: Vec::new(),
            sent: 0,
        };
        // A prober's request is usually there already: answered now, it
        // never needs a slot.
        if connection.advance(endpoints) == Step::Done {
            continue;
        }
        if held.len() >= MAX_CONNECTIONS {
            held.remove(0); // the oldest: closed
        }
        held.push(connection);
    }
}

struct Connection {
    stream: TcpStream,
    deadline: Instant,
    /// The request head as read so far.
    head: Vec<u8>,
    /// The response, once the request is read; then `sent` of it is sent.
    answer: Vec<u8>,
    sent: usize,
}

#[derive(PartialEq)]
enum Step {
    /// Waiting for the client: to send more, or to take more.
    Open,
    /// Answered, or the client left or erred: close.
    Done,
}

impl Connection {
    /// Reads what has arrived and writes what fits, without waiting.
    fn advance(&mut self, endpoints: &Endpoints) -> Step {
        let mut chunk = [0u8; 1024];
        let mut scanned = self.head.len();
        while self.answer.is_empty() {
            match self.stream.read(&mut chunk) {
                // The client left before its request was complete.
                Ok(0) => return Step::Done,
                Ok(n) => self.head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Step::Done,
            }
            // Parsed only once the head may have ended, so a client that
            // sends a byte at a time does not have it scanned for each.
            let new = &self.head[scanned.saturating_sub(3)..];
            scanned = self.head.len();
            let ended = find(new, b"\n\n").is_some() || find(new, b"\n\r\n").is_some();
            if !ended && self.head.len() <= MAX_HEAD {
                continue;
            }
            self.answer = match parse(&self.head) {
                Parsed::Incomplete => continue,
                Parsed::Request(request) => answer(&request, endpoints),
                Parsed::Bad(status) => Response::error(status).to_bytes(),
            };
            self.head = Vec::new();
        }
        while self.sent < self.answer.len() {
            match self.stream.write(&self.answer[self.sent..]) {
                Ok(0) => return Step::Done,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Done,
            }
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        Step::Done
    }
}

/// The response's bytes: for `HEAD`, those of `GET` without the body.
fn answer(request: &Request, endpoints: &Endpoints) -> Vec<u8> {
    let response = respond(request, endpoints);
    let mut bytes = response.to_bytes();
    if request.method == "HEAD" {
        bytes.truncate(bytes.len() - response.body.len());
    }
    bytes
}

#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    /// The path, without any `?query`.
    pub path: String,
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Incomplete,
    Request(Request),
    /// An HTTP status to answer with.
    Bad(u16),
}

/// Parses what has arrived so far of a request's head. Headers are not
/// needed, so they are only skipped over.
fn parse(head: &[u8]) -> Parsed {
    let Some(end) = find(head, b"\r\n\r\n").or_else(|| find(head, b"\n\n")) else {
        return if head.len() > MAX_HEAD {
            Parsed::Bad(431)
        } else {
            Parsed::Incomplete
        };
    };
    if end > MAX_HEAD {
        return Parsed::Bad(431);
    }
    let line_end = find(head, b"\n").unwrap_or(end);
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Parsed::Bad(400);
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Parsed::Bad(400);
    };
    // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112); 1.0 and 1.1 are
    // served, any other well-formed version is 505.
    match version.strip_prefix("HTTP/").map(str::as_bytes) {
        Some(b"1.0" | b"1.1") => {}
        Some([major, b'.', minor]) if major.is_ascii_digit() && minor.is_ascii_digit() => {
            return Parsed::Bad(505)
        }
        _ => return Parsed::Bad(400),
    }
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !token(method) || !token(target) {
        return Parsed::Bad(400);
    }
    let path = target.split('?').next().unwrap_or_default();
    Parsed::Request(Request {
        method: method.to_string(),
        path: path.to_string(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: TEXT,
            body: format!("{body}\n"),
        }
    }

    fn error(status: u16) -> Response {
        Response::text(status, reason(status))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let allow = if self.status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

fn respond(request: &Request, endpoints: &Endpoints) -> Response {
    let known = matches!(request.path.as_str(), "/metrics" | "/livez" | "/readyz");
    if !known {
        return Response::error(404);
    }
    if request.method != "GET" && request.method != "HEAD" {
        return Response::error(405);
    }
    match request.path.as_str() {
        "/metrics" => Response {
            status: 200,
            content_type: CONTENT_TYPE,
            body: endpoints.registry.render(),
        },
        "/readyz" if !endpoints.ready.load(Ordering::Relaxed) => {
            Response::text(503, "not ready: the UDP socket is not bound yet")
        }
        _ => Response::text(200, "ok"),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str) -> Parsed {
        Parsed::Request(Request {
            method: method.into(),
            path: path.into(),
        })
    }

    #[test]
    fn parses_request_heads() {
        let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let no_end = "G".repeat(MAX_HEAD + 1);
        let cases: Vec<(&[u8], Parsed)> = vec![
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                request("GET", "/metrics"),
            ),
            (b"GET /metrics HTTP/1.0\r\n\r\n", request("GET", "/metrics")),
            (
                b"GET /readyz?verbose=1 HTTP/1.1\n\n",
                request("GET", "/readyz"),
            ),
            (
                b"POST /livez HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
                request("POST", "/livez"),
            ),
            (b"", Parsed::Incomplete),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", Parsed::Incomplete),
            (b"GET /metrics HTTP/1.1\r\n\r", Parsed::Incomplete),
            (b"GET /metrics\r\n\r\n", Parsed::Bad(400)),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", Parsed::Bad(400)),
            (b"GET /metrics HTTP/1.1 x\r\n\r\n", Parsed::Bad(400)),
            (b"GET /metrics SPDY/3\r\n\r\n", Parsed::Bad(400)),
            (b"GET /metrics HTTP/2.0\r\n\r\n", Parsed::Bad(505)),
            (b"GET /metrics HTTP/1.9\r\n\r\n", Parsed::Bad(505)),
            (b"GET /metrics HTTP/1.\r\n\r\n", Parsed::Bad(400)),
            (b"GET /metrics HTTP/1.1x\r\n\r\n", Parsed::Bad(400)),
            (b"GET /metrics HTTP/11\r\n\r\n", Parsed::Bad(400)),
            (b"GET /metrics HTTP/\r\n\r\n", Parsed::Bad(400)),
            (b"GET /metrics http/1.1\r\n\r\n", Parsed::Bad(400)),
            (b"GET /m\xffx HTTP/1.1\r\n\r\n", Parsed::Bad(400)),
            (b"GET /m\x01 HTTP/1.1\r\n\r\n", Parsed::Bad(400)),
            (b"\r\n\r\n", Parsed::Bad(400)),
            (long_header.as_bytes(), Parsed::Bad(431)),
            (no_end.as_bytes(), Parsed::Bad(431)),
        ];
        for (head, expected) in cases {
            assert_eq!(parse(head), expected, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn routes_requests() {
        let endpoints = Endpoints::new(Registry::new());
        // (method, path, ready, status, body starts with)
        let cases = [
            ("GET", "/livez", false, 200, "ok"),
            ("GET", "/readyz", false, 503, "not ready"),
            ("GET", "/readyz", true, 200, "ok"),
            ("GET", "/livez", true, 200, "ok"),
            (
                "GET",
                "/metrics",
                true,
                200,
                "# HELP udp_headless_build_info ",
            ),
            ("GET", "/", true, 404, "Not Found"),
            ("GET", "/metrics/", true, 404, "Not Found"),
            ("POST", "/metrics", true, 405, "Method Not Allowed"),
            ("HEAD", "/livez", true, 200, "ok"),
            ("DELETE", "/nowhere", true, 404, "Not Found"),
        ];
        for (method, path, ready, status, body) in cases {
            endpoints.ready.store(ready, Ordering::Relaxed);
            let response = respond(
                &Request {
                    method: method.into(),
                    path: path.into(),
                },
                &endpoints,
            );
            assert_eq!(response.status, status, "{method} {path} ready={ready}");
            assert!(
                response.body.starts_with(body),
                "{method} {path}: {}",
                response.body
            );
        }
    }

    #[test]
    fn writes_a_complete_response() {
        let response = Response::error(405);
        let text = String::from_utf8(response.to_bytes()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 19\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\nMethod Not Allowed\n"
        );
    }

    #[test]
    fn serves_over_tcp_and_survives_bad_clients() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let endpoints = Endpoints::new(Registry::new());
        endpoints.set_ready();
        spawn(listener, endpoints).unwrap();
        let get = |text: &[u8]| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(DEADLINE * 2)).unwrap();
            let _ = stream.write_all(text);
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).into_owned()
        };
        // A silent client holds one connection; the others are served.
        let _silent = TcpStream::connect(addr).unwrap();
        let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let answer = get(&garbage);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
        let answer = get(b"GET /readyz HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
        // A byte at a time, the end of the head split over reads.
        for ending in ["\r\n\r\n", "\n\n"] {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.set_nodelay(true).unwrap();
            for byte in format!("GET /livez HTTP/1.1{ending}").bytes() {
                stream.write_all(&[byte]).unwrap();
                thread::sleep(Duration::from_millis(2));
            }
            stream.set_read_timeout(Some(DEADLINE * 2)).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
        }
    }
}
