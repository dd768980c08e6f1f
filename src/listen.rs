//! How the receiver and the relay start listening, alike: the metrics
//! endpoint first (so a failed start is visible there), then the UDP bind
//! (`[::]` falls back to IPv4 where the kernel has no IPv6), the receive
//! buffer, and readiness. Also `--check`, the readiness probe.

use crate::exit::{Failure, Status};
use crate::http::Endpoints;
use crate::log_line::{self, INFO, WARNING};
use crate::metrics::{self, Registry};
use crate::os::socket;
use crate::readiness;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Where and how to listen.
pub struct Listen {
    pub addr: SocketAddr,
    /// `--rcvbuf`; None: `socket::DEFAULT_RECEIVE_BUFFER`.
    pub rcvbuf: Option<usize>,
    /// `--metrics`, and what to serve there.
    pub metrics: Option<(SocketAddr, Registry)>,
}

/// A bound socket, and its readiness.
pub struct Listening {
    pub socket: UdpSocket,
    /// The address bound (its port, when the one asked for was 0).
    pub local: SocketAddr,
    pub ready: Ready,
}

/// What `/readyz` says (with `--metrics`): 503 until set.
#[derive(Clone)]
pub struct Ready(Option<Arc<Endpoints>>);

impl Ready {
    pub fn set(&self, ready: bool) {
        if let Some(endpoints) = &self.0 {
            endpoints.ready.store(ready, Ordering::Relaxed);
        }
    }
}

impl Listen {
    /// Serves metrics if asked, binds with `bind` (`socket::bind_udp`, or
    /// a bind of the same address with more to it), and sets the receive
    /// buffer; warnings are logged, failures returned.
    // Out of line: inlined, it made the binary larger (under 600 KB).
    #[inline(never)]
    pub fn start(
        self,
        bind: impl FnOnce(SocketAddr) -> io::Result<UdpSocket>,
    ) -> Result<Listening, Failure> {
        let mut endpoints = None;
        if let Some((addr, registry)) = self.metrics {
            let (started, local) = crate::http::start(addr, registry)
                .map_err(|e| Failure::Failed(format!("cannot serve metrics on TCP {addr}: {e}")))?;
            log_line::to_stderr(INFO, &format!("metrics on http://{local}/metrics"));
            endpoints = Some(started);
        }
        let socket = bind(self.addr)
            .map_err(|e| Failure::Failed(format!("cannot listen on UDP {}: {e}", self.addr)))?;
        if let Some(warning) = socket::receive_buffer_warning(&socket, self.rcvbuf) {
            log_line::to_stderr(WARNING, &warning);
        }
        if endpoints.is_some() {
            if let Err(e) = metrics::watch_drops_of(&socket) {
                let warning = format!("socket drops will not be counted: {e}");
                log_line::to_stderr(WARNING, &warning);
            }
        }
        let local = socket.local_addr().unwrap_or(self.addr);
        Ok(Listening {
            socket,
            local,
            ready: Ready(endpoints),
        })
    }
}

/// `--check`, the readiness probe: is a UDP socket bound on `port` here?
pub fn check(port: u16) -> Result<Status, Failure> {
    match readiness::udp_port_bound(port) {
        Ok(true) => Ok(Status::Ok),
        Ok(false) => Err(Failure::Failed(format!(
            "no UDP socket is bound on port {port}"
        ))),
        Err(e) => Err(Failure::Failed(format!("cannot check port {port}: {e}"))),
    }
}

/// A receive that timed out or was interrupted: nothing arrived, nothing
/// is wrong (the loops' sockets have a read timeout).
pub fn nothing_arrived(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// The receive loops' policy for the errors no datagram can cause: warn
/// and pause; a socket that keeps failing is broken, and a restart is the
/// way out.
#[derive(Default)]
pub struct Failures {
    in_a_row: u32,
}

impl Failures {
    /// A receive went through, or nothing arrived.
    pub fn reset(&mut self) {
        self.in_a_row = 0;
    }

    /// A receive failed with `e`: the error to stop with at the 100th in
    /// a row, else a warning and a pause.
    pub fn failed(&mut self, e: &io::Error) -> Result<(), String> {
        self.in_a_row += 1;
        if self.in_a_row == 100 {
            return Err(format!("receiving failed 100 times in a row: {e}"));
        }
        log_line::to_stderr(WARNING, &format!("receive failed: {e}"));
        std::thread::sleep(Duration::from_millis(10));
        Ok(())
    }
}
