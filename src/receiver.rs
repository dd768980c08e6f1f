//! What the receiver does: listen on UDP 12000 and log every datagram and
//! its source in the original demo's format:
//! `2021-08-22 20:20:56,167 - root - INFO - Message from Client:b'test' Client IP Address:('10.130.3.209', 38063)`
//! Frames (docs/PROTOCOL.md) are deduplicated (`seen`) and acknowledged.

use crate::exit::{self, Failure, Status};
use crate::listen::{self, Listen};
use crate::os::pktinfo::{self, Received};
use crate::os::signals::{self, Stop};
use crate::os::socket;
use crate::receiver_log::Log;
use crate::seen::Seen;
use crate::signed::Signing;
use crate::trust::Trusted;
use crate::{log_line, metrics};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The receiver's options.
pub struct Receiver {
    /// `[::]:PORT` unless `--bind`: every address, IPv4 and IPv6.
    pub bind: SocketAddr,
    /// `--rcvbuf`; None: `socket::DEFAULT_RECEIVE_BUFFER`.
    pub rcvbuf: Option<usize>,
    pub metrics: Option<SocketAddr>,
    pub relays: Trusted,
    /// `--key-file`: see `Seen::with_key`.
    pub signing: Option<Box<Signing>>,
}

/// Receives and logs until SIGTERM/SIGINT.
pub fn run(options: Receiver) -> Result<Status, Failure> {
    exit::need_stdout()?;
    // Before the bind: once bound, `--check` says ready, and a stop may come.
    let stop = signals::stop_on_term_and_int().map_err(Failure::signals)?;
    let listening = Listen {
        addr: options.bind,
        rcvbuf: options.rcvbuf,
        metrics: options.metrics.map(|addr| (addr, metrics::receiver())),
    }
    .start(socket::bind_udp)?;
    listening.ready.set(true);
    let local = listening.local;
    log_line::to_stderr(log_line::INFO, &format!("listening on UDP {local}"));
    let seen = Seen::trusting(options.relays).with_key(options.signing);
    log_datagrams(&listening.socket, seen, &stop).map_err(Failure::Failed)?;
    Ok(Status::Ok)
}

/// The main loop. Lines are buffered while more datagrams are waiting and
/// written as soon as the socket is empty: prompt for `kubectl logs`, and
/// no write syscall per line under load.
fn log_datagrams(sock: &UdpSocket, mut seen: Seen, stop: &Stop) -> Result<(), String> {
    let socket_error = |e: io::Error| format!("the socket failed: {e}");
    // Bounds how long a blocked recv can miss a stop request.
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(socket_error)?;
    // Acknowledgements go out from the address each frame was sent to;
    // without it, from the one the routing table picks.
    if let Err(e) = pktinfo::enable(sock) {
        log_line::to_stderr(
            log_line::WARNING,
            &format!("acknowledgements may come from the wrong address: {e}"),
        );
    }
    let mut log = Log::new(sock);
    let mut datagram = vec![0u8; 65_536];
    let mut draining = false;
    let mut failures = listen::Failures::default();
    while !stop.requested() {
        match pktinfo::recv(sock, &mut datagram) {
            Ok(got) => {
                failures.reset();
                take(&mut seen, &mut log, &datagram, &got)?;
                if !draining {
                    sock.set_nonblocking(true).map_err(socket_error)?;
                    draining = true;
                }
            }
            Err(e) if listen::nothing_arrived(&e) => {
                failures.reset();
                seen.idle();
                log.flush()?;
                if draining {
                    sock.set_nonblocking(false).map_err(socket_error)?;
                    draining = false;
                }
            }
            // No datagram can cause this; a socket that keeps failing is
            // broken, and a restart is the way out.
            Err(e) => {
                // What was logged so far goes out first, in order.
                log.flush()?;
                failures.failed(&e)?;
            }
        }
    }
    // Log what had already arrived when the stop came, within a bound so a
    // flood cannot hold the stop up.
    sock.set_nonblocking(true).map_err(socket_error)?;
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        let Ok(got) = pktinfo::recv(sock, &mut datagram) else {
            break;
        };
        take(&mut seen, &mut log, &datagram, &got)?;
    }
    log.flush()
}

/// Logs one datagram; acknowledges it if it is a frame that asks for it
/// (docs/PROTOCOL.md), once its line is written. Plain datagrams are
/// logged whole, as always.
fn take(seen: &mut Seen, log: &mut Log, datagram: &[u8], got: &Received) -> Result<(), String> {
    metrics::count_datagram(got.len);
    let handling = seen.handle(&datagram[..got.len], got.from);
    // None: a copy (counted by `seen`) or refused (counted by `keyed`).
    if let Some((message, source)) = handling.log {
        log.line(message, source)?;
    }
    if handling.gap {
        metrics::SEQUENCE_GAPS.inc();
    }
    match handling.ack {
        Some(ack) => log.ack_when_written(ack, got.from, got.to),
        None => Ok(()),
    }
}
