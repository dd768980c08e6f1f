//! The floor for the receiver benchmark: a bare `recv` loop that counts
//! datagrams and logs nothing, so the benchmark (`bench/`) can show how far the
//! receiver (which also formats and writes a line per datagram) is from
//! what the kernel allows. Binds 0.0.0.0:PORT with a receive buffer of
//! RCVBUF bytes (capped by net.core.rmem_max), like `receiver --rcvbuf`,
//! and stops after COUNT datagrams or 1 s without any; then prints
//! `received=N seconds=S rate=R` (from the first datagram to the last).
//!
//!     recv_floor PORT COUNT [RCVBUF]

use std::net::UdpSocket;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Result<Vec<u64>, _> = args.iter().map(|a| a.parse::<u64>()).collect();
    let (port, count, rcvbuf) = match numbers.as_deref() {
        Ok([port, count]) => (*port, *count, 4 << 20),
        Ok([port, count, rcvbuf]) => (*port, *count, *rcvbuf),
        _ => {
            eprintln!("usage: recv_floor PORT COUNT [RCVBUF]");
            return ExitCode::from(2);
        }
    };
    match receive(port as u16, count, rcvbuf) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recv_floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn receive(port: u16, count: u64, rcvbuf: u64) -> std::io::Result<()> {
    let socket = UdpSocket::bind(("0.0.0.0", port))?;
    udp_headless::os::socket::set_receive_buffer(
        &socket,
        usize::try_from(rcvbuf).unwrap_or(usize::MAX),
    )?;
    let mut buf = vec![0u8; 65_536];
    // The first datagram may take a while (10 s at most, so a load generator
    // that never starts cannot hang the benchmark); after it, 1 s of
    // silence ends the trial.
    let mut received = 0u64;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    socket.recv(&mut buf)?;
    let first = Instant::now();
    let mut last = first;
    received += 1;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    while received < count {
        match socket.recv(&mut buf) {
            Ok(_) => {
                received += 1;
                last = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let seconds = last.duration_since(first).as_secs_f64();
    let rate = if seconds > 0.0 {
        received as f64 / seconds
    } else {
        0.0
    };
    println!("received={received} seconds={seconds:.6} rate={rate:.0}");
    Ok(())
}
