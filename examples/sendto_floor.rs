//! The floor for the sender benchmark: what broadcasting to N pods costs
//! when nothing has to be resolved. Reads the pods' IPs from a file (one per
//! line), sends MESSAGE to each from one UDP socket, and logs the sender's
//! line for each (`... - root - INFO - sent message to :IP`) in one write.
//!
//!     sendto_floor [--resolve NAME] ADDR_FILE MESSAGE [PORT]
//!
//! The benchmark (`bench/`) times it next to `sender`, which must also resolve the
//! Service through DNS: the difference is the cost of resolution (and of
//! anything else the sender does). The log's timestamp is taken once, the
//! least a logging program can do.
//!
//! `--resolve NAME` first asks the system resolver for NAME once
//! (`ToSocketAddrs`, getaddrinfo, as the sender does) and ignores the
//! answer: what that lookup alone adds to the floor.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::time::SystemTime;
use udp_headless::{log_line, pyrepr};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let resolve = match args.first().map(String::as_str) {
        Some("--resolve") if args.len() > 1 => Some(args.drain(..2).nth(1).unwrap_or_default()),
        _ => None,
    };
    let (file, message, port) = match args.as_slice() {
        [file, message] => (file, message, Ok(12000)),
        [file, message, port] => (file, message, port.parse::<u16>()),
        _ => {
            eprintln!("usage: sendto_floor [--resolve NAME] ADDR_FILE MESSAGE [PORT]");
            return ExitCode::from(2);
        }
    };
    let Ok(port) = port else {
        eprintln!("sendto_floor: the port is not a number from 0 to 65535");
        return ExitCode::from(2);
    };
    let resolved = resolve.map_or(Ok(()), |name| lookup(&name, port));
    match resolved.and_then(|()| broadcast(file, message.as_bytes(), port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sendto_floor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One lookup through the system resolver; the addresses are not used.
fn lookup(name: &str, port: u16) -> Result<(), String> {
    let mut addrs = (name, port)
        .to_socket_addrs()
        .map_err(|e| format!("--resolve {name}: {e}"))?;
    match addrs.next() {
        Some(_) => Ok(()),
        None => Err(format!("--resolve {name}: no address")),
    }
}

fn broadcast(file: &str, message: &[u8], port: u16) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let mut ips = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        ips.push(
            line.parse::<IpAddr>()
                .map_err(|_| format!("{file}: '{line}' is not an IP address"))?,
        );
    }
    let v4 = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    let mut v6 = None;
    let mut prefix = Vec::new();
    log_line::write_prefix(&mut prefix, SystemTime::now(), log_line::INFO);
    let mut out = Vec::with_capacity(ips.len() * (prefix.len() + 40));
    for ip in ips {
        let socket = if ip.is_ipv4() {
            &v4
        } else {
            match &v6 {
                Some(socket) => socket,
                None => v6.insert(UdpSocket::bind("[::]:0").map_err(|e| e.to_string())?),
            }
        };
        socket
            .send_to(message, SocketAddr::new(ip, port))
            .map_err(|e| format!("send to {ip}: {e}"))?;
        // The sender's own formatting: the floor differs from it only in
        // resolving nothing.
        out.extend_from_slice(&prefix);
        out.extend_from_slice(b"sent message to :");
        pyrepr::write_ip(&mut out, ip);
        out.push(b'\n');
    }
    std::io::stdout()
        .lock()
        .write_all(&out)
        .map_err(|e| format!("standard output: {e}"))
}
