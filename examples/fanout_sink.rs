//! The receivers of the relay benchmark: one UDP socket per pod address,
//! all on PORT with a receive buffer of RCVBUF bytes, read by one thread
//! that waits in poll(2) (so the sinks cost little CPU next to the relay
//! being measured). Touches READY_FILE once every socket is bound, stops
//! after 1 s without a datagram (or 10 s before the first), then prints
//! `received=N min=N max=N seconds=S`: copies in total, the fewest and
//! most any one pod got, and the time from the first copy to the last.
//!
//!     fanout_sink ADDR_FILE PORT RCVBUF READY_FILE

use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use udp_headless::os::sys::{self, PollFd, POLLIN};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, port, rcvbuf, ready] = args.as_slice() else {
        eprintln!("usage: fanout_sink ADDR_FILE PORT RCVBUF READY_FILE");
        return ExitCode::from(2);
    };
    let (Ok(port), Ok(rcvbuf)) = (port.parse::<u16>(), rcvbuf.parse::<i32>()) else {
        eprintln!("fanout_sink: PORT and RCVBUF are numbers");
        return ExitCode::from(2);
    };
    match sink(file, port, rcvbuf, ready) {
        Ok((counts, seconds)) => {
            let total: u64 = counts.iter().sum();
            let min = counts.iter().min().unwrap_or(&0);
            let max = counts.iter().max().unwrap_or(&0);
            println!("received={total} min={min} max={max} seconds={seconds:.6}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fanout_sink: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sink(file: &str, port: u16, rcvbuf: i32, ready: &str) -> std::io::Result<(Vec<u64>, f64)> {
    let text = std::fs::read_to_string(file)?;
    let mut sockets = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let ip: IpAddr = line
            .parse()
            .map_err(|_| std::io::Error::other(format!("'{line}' is not an IP address")))?;
        let socket = UdpSocket::bind((ip, port))?;
        socket.set_nonblocking(true)?;
        udp_headless::os::socket::set_receive_buffer(
            &socket,
            usize::try_from(rcvbuf).unwrap_or(0),
        )?;
        sockets.push(socket);
    }
    std::fs::write(ready, "")?;
    let mut fds: Vec<PollFd> = sockets
        .iter()
        .map(|s| PollFd {
            fd: s.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        })
        .collect();
    let mut counts = vec![0u64; sockets.len()];
    let mut buf = vec![0u8; 65_536];
    let mut timeout = Duration::from_secs(10);
    let (mut first, mut last) = (None, Instant::now());
    loop {
        let ready = match sys::poll(&mut fds, Some(timeout)) {
            Ok(ready) => ready,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if ready == 0 {
            let seconds = first.map_or(0.0, |first| last.duration_since(first).as_secs_f64());
            return Ok((counts, seconds));
        }
        timeout = Duration::from_secs(1);
        first.get_or_insert_with(Instant::now);
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents & POLLIN != 0 {
                while sockets[i].recv(&mut buf).is_ok() {
                    counts[i] += 1;
                }
                last = Instant::now();
            }
        }
    }
}
