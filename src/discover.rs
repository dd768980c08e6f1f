//! Which pods does the service name stand for? A headless Service's DNS
//! name has one A (and/or AAAA) record per ready pod.
//!
//! Step one is `ToSocketAddrs`, so IP literals, /etc/hosts and `localhost`
//! work as everywhere else.

use crate::args::UsageError;
use std::net::{SocketAddr, ToSocketAddrs};

/// Which address family to send to. A dual-stack Service has A and AAAA
/// records for the same pods; `Auto` picks one family so no pod gets the
/// message twice: IPv4 if there is any, else IPv6.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Family {
    Auto,
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn parse(text: &str, what: &str) -> Result<Family, UsageError> {
        match text {
            "auto" => Ok(Family::Auto),
            "ipv4" | "4" => Ok(Family::Ipv4),
            "ipv6" | "6" => Ok(Family::Ipv6),
            _ => Err(UsageError(format!(
                "{what}: '{text}' is not one of auto, ipv4, ipv6"
            ))),
        }
    }
}

/// The pods found for a service.
#[derive(Debug, Default)]
pub struct Pods {
    /// One per pod: unique, in the resolver's order, of one family.
    pub addrs: Vec<SocketAddr>,
    /// Set when the list is known to be incomplete: why, for the user.
    pub incomplete: Option<String>,
}

/// Why a service did not resolve to any pod: one line, naming the service.
#[derive(Debug)]
pub struct NotResolved(pub String);

pub fn discover(service: &str, port: u16, family: Family) -> Result<Pods, NotResolved> {
    let found = (service, port)
        .to_socket_addrs()
        .map_err(|e| NotResolved(format!("cannot resolve service '{service}': {e}")))?;
    let addrs = pick_family(unique(found), family);
    if addrs.is_empty() {
        return Err(NotResolved(format!(
            "service '{service}' has no {} addresses",
            family_name(family)
        )));
    }
    Ok(Pods {
        addrs,
        incomplete: None,
    })
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Auto => "IP",
        Family::Ipv4 => "IPv4",
        Family::Ipv6 => "IPv6",
    }
}

/// First occurrence of each IP wins, keeping the resolver's order.
pub fn unique(addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut seen = std::collections::HashSet::new();
    addrs.into_iter().filter(|a| seen.insert(a.ip())).collect()
}

pub fn pick_family(addrs: Vec<SocketAddr>, family: Family) -> Vec<SocketAddr> {
    let want_v4 = match family {
        Family::Ipv4 => true,
        Family::Ipv6 => false,
        Family::Auto => addrs.iter().any(SocketAddr::is_ipv4),
    };
    addrs
        .into_iter()
        .filter(|a| a.is_ipv4() == want_v4)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn family_choice() {
        let both = addrs(&["[fd00::1]:1", "10.0.0.1:1", "[fd00::2]:1", "10.0.0.2:1"]);
        let v6 = addrs(&["[fd00::1]:1", "[fd00::2]:1"]);
        let v4 = addrs(&["10.0.0.1:1", "10.0.0.2:1"]);
        assert_eq!(pick_family(both.clone(), Family::Auto), v4);
        assert_eq!(pick_family(both.clone(), Family::Ipv4), v4);
        assert_eq!(pick_family(both, Family::Ipv6), v6);
        assert_eq!(pick_family(v6.clone(), Family::Auto), v6);
        assert_eq!(pick_family(v6, Family::Ipv4), vec![]);
    }

    #[test]
    fn unique_keeps_first_of_each_ip() {
        let got = unique(addrs(&["10.0.0.2:1", "10.0.0.1:1", "10.0.0.2:1"]));
        assert_eq!(got, addrs(&["10.0.0.2:1", "10.0.0.1:1"]));
    }

    #[test]
    fn literals_and_localhost() {
        let pods = discover("127.0.0.1", 9, Family::Auto).unwrap();
        assert_eq!(pods.addrs, addrs(&["127.0.0.1:9"]));
        let pods = discover("::1", 9, Family::Auto).unwrap();
        assert_eq!(pods.addrs, addrs(&["[::1]:9"]));
        assert!(discover("::1", 9, Family::Ipv4).is_err());
    }
}
