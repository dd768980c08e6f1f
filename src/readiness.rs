//! `receiver --check`: is a UDP socket bound on the port in this network
//! namespace? Read from /proc/net/udp{,6} rather than by binding the port,
//! which could race a receiver that is starting and make its bind fail.

use crate::os::procnet;
use std::io;

/// True if any UDP socket (IPv4 or IPv6) is bound to `port`.
pub fn udp_port_bound(port: u16) -> io::Result<bool> {
    let mut found_table = false;
    for table in procnet::TABLES {
        match std::fs::read_to_string(table) {
            Ok(text) => {
                found_table = true;
                if table_has_port(&text, port) {
                    return Ok(true);
                }
            }
            // A kernel without IPv6 has no udp6 table.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{table}: {e}"))),
        }
    }
    if !found_table {
        return Err(io::Error::other(
            "/proc/net/udp is missing (is /proc mounted?)",
        ));
    }
    Ok(false)
}

fn table_has_port(text: &str, port: u16) -> bool {
    procnet::rows(text).any(|row| row.port() == Some(port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_rows() {
        let text = "  sl  local_address rem_address   st\n\
            \x20 12: 00000000:2EE0 00000000:0000 07 00000000:00000000\n\
            \x20 13: 0100007F:0035 00000000:0000 07 00000000:00000000\n";
        assert!(table_has_port(text, 12000));
        assert!(table_has_port(text, 53));
        assert!(!table_has_port(text, 12001));
        assert!(!table_has_port("garbage\n\n x y z\n", 12000));
    }

    #[test]
    fn sees_a_live_socket() {
        let sock = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        assert!(udp_port_bound(port).unwrap());
        drop(sock);
        assert!(!udp_port_bound(port).unwrap());
    }
}
