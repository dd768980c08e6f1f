//! What Python 3 prints for the original receiver's `msg` and `addr`:
//! `repr(bytes)` (`b'test'`) and the `recvfrom` source tuple
//! (`('10.130.3.209', 38063)`). The repr also keeps every log line one line:
//! no payload byte can reach the log as a newline or a terminal escape.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Appends Python's `repr(data)` for a `bytes` object.
pub fn write_bytes(out: &mut Vec<u8>, data: &[u8]) {
    // CPython's rule: single quotes, unless the data has a ' and no ".
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.reserve(data.len() + 3);
    out.push(b'b');
    out.push(quote);
    for &byte in data {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ if byte == quote => out.extend_from_slice(&[b'\\', quote]),
            0x20..=0x7e => out.push(byte),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let hex = [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]];
                out.extend_from_slice(&[b'\\', b'x', hex[0], hex[1]]);
            }
        }
    }
    out.push(quote);
}

/// Appends the tuple Python's `recvfrom` returns for `addr`: `('ip', port)`
/// for IPv4, `('ip', port, flowinfo, scope_id)` for IPv6. An IPv4-mapped
/// source (an IPv4 client of a dual-stack socket) prints as the IPv4 client.
/// The address never carries a `%scope` suffix: python3 formats it with
/// `inet_ntop`, and the scope is the tuple's last number (tests/it/link_local.rs
/// checks a link-local source against python3 itself).
pub fn write_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    let ip = match addr {
        SocketAddr::V4(a) => IpAddr::V4(*a.ip()),
        SocketAddr::V6(a) => a
            .ip()
            .to_ipv4_mapped()
            .map_or(IpAddr::V6(*a.ip()), IpAddr::V4),
    };
    out.extend_from_slice(b"('");
    write_ip(out, ip);
    out.extend_from_slice(b"', ");
    write_decimal(out, addr.port().into());
    if let (SocketAddr::V6(a), IpAddr::V6(_)) = (addr, ip) {
        out.extend_from_slice(b", ");
        write_decimal(out, a.flowinfo());
        out.extend_from_slice(b", ");
        write_decimal(out, a.scope_id());
    }
    out.push(b')');
}

/// `n` in decimal, no leading zeros. Pushed digit by digit: a copy of a
/// few bytes is a call to musl's `memcpy`, whose `rep movs` costs more than
/// the digits (profile of the receiver under load).
fn write_decimal(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        out.push(digit);
    }
}

/// Appends the IP as `inet_ntop` in glibc (and so Python) writes it: like
/// Rust's RFC 5952 form, except that an IPv4-compatible address
/// (`::a.b.c.d`) keeps its dotted tail. IPv4 by hand: `write!` made
/// formatting a line a third of the receiver's CPU. Without allocating:
/// the sender writes one line per pod, and musl's allocator can turn an
/// allocation per line into an mmap and munmap per line.
pub fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if s[..6] != [0; 6] || s[6] == 0 {
                let _ = write!(out, "{v6}");
                return;
            }
            out.extend_from_slice(b"::");
            let [.., a, b, c, d] = v6.octets();
            Ipv4Addr::new(a, b, c, d)
        }
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        write_decimal(out, octet.into());
    }
}

/// The IP as the sender logs it (`sent message to :10.0.0.1`).
pub fn ip_text(ip: IpAddr) -> String {
    let mut out = Vec::with_capacity(39);
    write_ip(&mut out, ip);
    String::from_utf8(out).expect("an address is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `repr(bytes)` as a String.
    fn bytes_repr(data: &[u8]) -> String {
        let mut out = Vec::new();
        write_bytes(&mut out, data);
        String::from_utf8(out).expect("repr is ASCII")
    }

    /// The address tuple as a String.
    fn addr_repr(addr: SocketAddr) -> String {
        let mut out = Vec::new();
        write_addr(&mut out, addr);
        String::from_utf8(out).expect("address text is ASCII")
    }

    #[test]
    fn bytes_like_python() {
        // Expected strings are what python3 prints; tests/it/receiver.rs also
        // checks every byte value against a live python3.
        let cases: &[(&[u8], &str)] = &[
            (b"test", r"b'test'"),
            (b"", r"b''"),
            (b"it's", r#"b"it's""#),
            (b"it's \"q\"", r#"b'it\'s "q"'"#),
            (b"a\\b", r"b'a\\b'"),
            (
                b"\t\n\r\x00\x1b[31m\x7f\x80\xff",
                r"b'\t\n\r\x00\x1b[31m\x7f\x80\xff'",
            ),
        ];
        for (data, want) in cases {
            assert_eq!(bytes_repr(data), *want);
        }
    }

    #[test]
    fn ips_as_glibc_writes_them() {
        // What python3 prints for each (socket.inet_ntop, glibc).
        let cases = [
            ("10.1.2.3", "10.1.2.3"),
            ("0.0.0.0", "0.0.0.0"),
            ("255.255.255.255", "255.255.255.255"),
            ("::1", "::1"),
            ("::102:304", "::1.2.3.4"),
            ("::ffff", "::ffff"),
            ("fd00::a:0:0:1", "fd00::a:0:0:1"),
            ("::ffff:10.1.2.3", "::ffff:10.1.2.3"),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = b"x".to_vec();
            write_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), format!("x{want}"));
            assert_eq!(ip_text(ip), want);
        }
    }

    #[test]
    fn addresses_like_python() {
        let cases = [
            ("10.130.3.209:38063", "('10.130.3.209', 38063)"),
            ("0.0.0.0:0", "('0.0.0.0', 0)"),
            ("255.255.255.255:65535", "('255.255.255.255', 65535)"),
            ("1.20.100.9:10", "('1.20.100.9', 10)"),
            ("[::ffff:0.0.0.0]:100", "('0.0.0.0', 100)"),
            ("[::1]:5000", "('::1', 5000, 0, 0)"),
            ("[::ffff:10.1.2.3]:7", "('10.1.2.3', 7)"),
            ("[fd00::a:0:0:1]:9", "('fd00::a:0:0:1', 9, 0, 0)"),
            ("[::102:304]:9", "('::1.2.3.4', 9, 0, 0)"),
            ("[2001:db8::%7]:9", "('2001:db8::', 9, 0, 7)"),
            ("[fe80::1%3]:9", "('fe80::1', 9, 0, 3)"),
        ];
        for (addr, want) in cases {
            assert_eq!(addr_repr(addr.parse().unwrap()), want, "{addr}");
        }
    }
}
