//! The receiver's log on stdout, buffered and written in one piece when
//! full or when the socket is empty, and the acknowledgements
//! (`sender --confirm`) that wait for it: an acknowledgement says the line
//! is in the log (the kernel took the write), not only that the datagram
//! arrived (docs/PROTOCOL.md).

use crate::os::pktinfo;
use crate::seen::Ack;
use crate::{log_line, metrics, pyrepr};
use std::io::{self, StdoutLock, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::SystemTime;

/// Write the log when this much is buffered, or when the socket is empty.
const FLUSH_AT: usize = 64 * 1024;

/// Write and acknowledge when this many acknowledgements wait: copies of
/// messages already logged add acknowledgements but no lines.
const ACKS_AT: usize = 1024;

/// The buffer ends each flush on a newline, so stdout's own LineWriter
/// passes it on in one write, not one per line. Lines are formatted
/// straight into the buffer: copying each one there was a call to musl's
/// `memcpy` per line.
pub struct Log<'a> {
    out: StdoutLock<'static>,
    buffer: Vec<u8>,
    stamper: log_line::Stamper,
    /// Where acknowledgements go out from.
    sock: &'a UdpSocket,
    /// Acknowledgements, their destinations and the local addresses to
    /// send them from, held until the lines before them are written.
    acks: Vec<(Ack, SocketAddr, Option<IpAddr>)>,
}

impl<'a> Log<'a> {
    pub fn new(sock: &'a UdpSocket) -> Log<'a> {
        Log {
            out: io::stdout().lock(),
            buffer: Vec::with_capacity(2 * FLUSH_AT),
            stamper: log_line::Stamper::default(),
            sock,
            acks: Vec::new(),
        }
    }

    /// Adds the line for one datagram; writes when the buffer is full.
    pub fn line(&mut self, payload: &[u8], from: SocketAddr) -> Result<(), String> {
        self.stamper
            .write_prefix(&mut self.buffer, SystemTime::now(), log_line::INFO);
        write_line(&mut self.buffer, payload, from);
        if self.buffer.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends `ack` to `to` from `from` once every line so far is written.
    pub fn ack_when_written(
        &mut self,
        ack: Ack,
        to: SocketAddr,
        from: Option<IpAddr>,
    ) -> Result<(), String> {
        self.acks.push((ack, to, from));
        if self.acks.len() >= ACKS_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the lines, then sends the acknowledgements waiting for them.
    /// If the write fails they are not sent: the senders report those pods
    /// unconfirmed.
    pub fn flush(&mut self) -> Result<(), String> {
        let written = self
            .out
            .write_all(&self.buffer)
            .and_then(|()| self.out.flush());
        self.buffer.clear();
        if let Err(e) = written {
            self.acks.clear();
            metrics::LOG_WRITE_ERRORS.inc();
            return Err(format!("cannot write the log to standard output: {e}"));
        }
        for (ack, to, from) in self.acks.drain(..) {
            // A lost acknowledgement is like a lost datagram: the sender
            // retries; a forged source must not fill the log with warnings.
            if pktinfo::send_from(self.sock, &ack, to, from).is_ok() {
                metrics::ACKS_SENT.inc();
            }
        }
        Ok(())
    }
}

/// Lines formatted before an early return (a socket error) still go out,
/// as a `BufWriter` would write them when dropped; their acknowledgements
/// do not.
impl Drop for Log<'_> {
    fn drop(&mut self) {
        let _ = self.out.write_all(&self.buffer);
        let _ = self.out.flush();
    }
}

/// The line after its prefix.
fn write_line(out: &mut Vec<u8>, payload: &[u8], from: SocketAddr) {
    out.extend_from_slice(b"Message from Client:");
    pyrepr::write_bytes(out, payload);
    out.extend_from_slice(b" Client IP Address:");
    pyrepr::write_addr(out, from);
    out.push(b'\n');
}
