//! The tiny HTTP/1.1 server of `--metrics`: `GET /metrics`, `/livez`,
//! `/readyz`. It runs on threads of its own and shares only atomics with the
//! datagram loop, so no client can slow or stop that loop. Each connection
//! gets one request and one response (`Connection: close`), a bounded
//! request size and one deadline for all of it: a slow, silent or garbage
//! client is closed and costs a thread for at most [`DEADLINE`].

use crate::metrics::{Registry, CONTENT_TYPE};
use crate::os::sys::EAFNOSUPPORT;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A request's head (request line and headers) may be this long.
const MAX_HEAD: usize = 8 * 1024;
/// Reading the request and writing the response must end within this.
const DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;

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
    thread::Builder::new()
        .name("metrics".into())
        .stack_size(64 * 1024)
        .spawn(move || serve(&listener, &endpoints))?;
    Ok(())
}

fn serve(listener: &TcpListener, endpoints: &Arc<Endpoints>) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            // Out of descriptors or memory, an aborted handshake: try again
            // later; never give up on the endpoints.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::Relaxed);
            continue; // dropped: closed
        }
        let endpoints = Arc::clone(endpoints);
        let done = Arc::clone(&active);
        let spawned = thread::Builder::new()
            .name("metrics-client".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = handle(stream, &endpoints);
                done.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn handle(mut stream: TcpStream, endpoints: &Endpoints) -> io::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let response = match read_head(&mut stream, deadline)? {
        Ok(request) => respond(&request, endpoints),
        Err(status) => Response::error(status),
    };
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(&response.to_bytes())?;
    stream.shutdown(Shutdown::Write)
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ErrorKind::TimedOut.into());
    }
    Ok(left)
}

/// Reads until the blank line that ends the head. Err(io) closes without
/// an answer (the deadline passed, the client left); Ok(Err(status)) answers
/// with that error.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> io::Result<Result<Request, u16>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        match parse(&head) {
            Parsed::Incomplete => {}
            Parsed::Request(request) => return Ok(Ok(request)),
            Parsed::Bad(status) => return Ok(Err(status)),
        }
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
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
    if !version.starts_with("HTTP/1.") {
        return Parsed::Bad(if version.starts_with("HTTP/") {
            505
        } else {
            400
        });
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
            "Allow: GET\r\n"
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
    if request.method != "GET" {
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
            ("HEAD", "/livez", true, 405, "Method Not Allowed"),
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
             Content-Length: 19\r\nAllow: GET\r\nConnection: close\r\n\r\nMethod Not Allowed\n"
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
    }
}
