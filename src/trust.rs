//! Which sources the receiver believes when a FORWARDED frame names another
//! client (`--trust-relay`): any host can send one, so without this list a
//! forged frame could put any address in the log.

use crate::args::UsageError;
use std::net::IpAddr;

/// An address with a prefix length; a plain address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// The trusted relays' networks; empty (the default) trusts none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trusted(Vec<Cidr>);

const EXPECTED: &str = "addresses or CIDRs, comma-separated (like 10.128.0.0/14,fd00::/8)";

impl Trusted {
    /// `10.128.0.0/14,fd00::/8,192.0.2.7`; `from` names the option or
    /// variable for the error.
    pub fn parse(text: &str, from: &str) -> Result<Trusted, UsageError> {
        let bad = || UsageError::bad_value(from, text, EXPECTED);
        let mut list = Vec::new();
        for item in text.split(',').map(str::trim) {
            let (ip, prefix) = match item.split_once('/') {
                Some((ip, prefix)) => (ip, Some(prefix)),
                None => (item, None),
            };
            let net: IpAddr = ip.parse().map_err(|_| bad())?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?
                }
                Some(_) => return Err(bad()),
            };
            list.push(Cidr { net, prefix });
        }
        Ok(Trusted(list))
    }

    /// Whether `ip` is in one of the networks. An IPv4-mapped IPv6 source
    /// (an IPv4 client of the dual-stack socket) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|cidr| match (cidr.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, cidr.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(net.into(), ip.into(), 128, cidr.prefix)
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                same_prefix(net.into(), ip.to_ipv6_mapped().into(), 128, cidr.prefix)
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        })
    }
}

/// Whether the first `prefix` of `bits` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let shift = bits - u32::from(prefix);
    a.checked_shr(shift) == b.checked_shr(shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lists_and_what_they_contain() {
        // (list, source, trusted?)
        let cases = [
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("10.128.0.0/14", "10.131.255.255", true),
            ("10.128.0.0/14", "10.132.0.0", false),
            ("10.128.0.0/14", "::ffff:10.129.2.3", true),
            ("10.128.0.5/14", "10.128.0.1", true),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
            ("::/0", "2001:db8::1", true),
            ("::ffff:0:0/96", "10.0.0.1", true),
            ("10.0.0.0/8, 192.0.2.0/24,fd00::/8", "192.0.2.9", true),
            ("10.0.0.0/8,192.0.2.0/24", "192.0.3.9", false),
            ("192.0.2.7/32", "192.0.2.7", true),
            ("2001:db8::7/128", "2001:db8::8", false),
        ];
        for (list, source, want) in cases {
            let trusted = Trusted::parse(list, "--trust-relay").unwrap();
            assert_eq!(
                trusted.contains(source.parse().unwrap()),
                want,
                "{list} {source}"
            );
        }
    }

    #[test]
    fn the_default_trusts_none() {
        assert!(!Trusted::default().contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_lists_are_one_line_naming_the_value() {
        for bad in [
            "",
            ",",
            "10.0.0.0/8,",
            "host",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0.0/-1",
            "10.0.0.0/256",
            "10.0.0",
            "[::1]",
            "10.0.0.1:53",
            "10.0.0.0/8 192.0.2.0/24",
        ] {
            let e = Trusted::parse(bad, "--trust-relay")
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("--trust-relay: '{bad}' is not {EXPECTED}"));
            assert_eq!(e.lines().count(), 1, "{bad}");
        }
    }
}
