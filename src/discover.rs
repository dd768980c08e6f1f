//! Which pods does the service name stand for? A headless Service's DNS
//! name has one A (and/or AAAA) record per ready pod.
//!
//! Step one is `ToSocketAddrs`, so IP literals, /etc/hosts and `localhost`
//! work as everywhere else. But the system resolver may stop short without
//! a word: musl returns at most 48 addresses, glibc what one DNS message
//! holds. So when it returns 48 or more we ask the DNS servers of
//! /etc/resolv.conf ourselves (see `dns`) and send to the union of both
//! answers. When it fails we ask too, because our own client can tell "no
//! such name" from "no ready pods" from "DNS unreachable", which
//! getaddrinfo's message cannot.

use crate::args::UsageError;
use crate::dns::{self, LookupError, RecordType};
use crate::resolv_conf::{self, ResolvConf};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

/// From this many addresses on, the system resolver's list may have been
/// cut: musl's getaddrinfo returns 48 at most (its MAXADDRS), and glibc's
/// silently keeps a truncated answer. Checking costs about two queries.
pub const MAYBE_CUT: usize = 48;

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
            _ => Err(UsageError::bad_value(what, text, "one of auto, ipv4, ipv6")),
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
    /// How long the list may be kept: the smallest TTL of the DNS records
    /// used. None when only the system resolver answered (it does not say).
    pub ttl: Option<Duration>,
}

/// Why a service did not resolve to any pod. `Display` makes it one line
/// naming the service; the exit code is in `crate::exit`.
#[derive(Debug, PartialEq)]
pub enum DiscoverError {
    /// The system resolver failed (`system`: its error), and DNS could not
    /// be asked to say why.
    NoDns {
        service: String,
        system: String,
        why: String,
    },
    /// The system resolver failed, and DNS says why.
    Lookup { service: String, error: LookupError },
    /// Addresses, but none of the family wanted.
    NoAddresses { service: String, family: Family },
}

impl fmt::Display for DiscoverError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DiscoverError::NoDns {
                service,
                system,
                why,
            } => write!(f, "cannot resolve service '{service}': {system} ({why})"),
            DiscoverError::Lookup { service, error } => write!(f, "service '{service}' {error}"),
            DiscoverError::NoAddresses { service, family } => write!(
                f,
                "service '{service}' has no {} addresses",
                family_name(*family)
            ),
        }
    }
}

/// Asks the system resolver, then applies `decide`. /etc/resolv.conf is
/// read only when `decide` will use it: to check a long answer or explain
/// a failure (a short answer, the usual case, needs neither).
pub fn discover(service: &str, port: u16, family: Family) -> Result<Pods, DiscoverError> {
    let system = system_resolver(service, port);
    let conf = match &system {
        Ok(addrs) if addrs.len() < MAYBE_CUT => Ok(ResolvConf::default()),
        _ => resolv_conf::load(Path::new(resolv_conf::PATH))
            .map_err(|e| format!("cannot read {}: {e}", resolv_conf::PATH)),
    };
    decide(
        service,
        port,
        family,
        system,
        conf.as_ref().map_err(String::as_str),
    )
}

/// `discover` with a given DNS configuration instead of /etc/resolv.conf.
pub fn discover_with(
    service: &str,
    port: u16,
    family: Family,
    conf: &ResolvConf,
) -> Result<Pods, DiscoverError> {
    decide(
        service,
        port,
        family,
        system_resolver(service, port),
        Ok(conf),
    )
}

fn system_resolver(service: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    (service, port).to_socket_addrs().map(unique)
}

/// The policy, given what `ToSocketAddrs` answered (`system`) and the DNS
/// configuration or why there is none. Separate so that tests can feed it
/// any system answer.
pub fn decide(
    service: &str,
    port: u16,
    family: Family,
    system: io::Result<Vec<SocketAddr>>,
    conf: Result<&ResolvConf, &str>,
) -> Result<Pods, DiscoverError> {
    match system {
        Ok(addrs) if addrs.len() < MAYBE_CUT => pods(service, family, addrs),
        Ok(addrs) => complete(service, port, family, addrs, conf),
        Err(e) => explain(service, port, family, e, conf),
    }
}

/// The system resolver's list may be cut: add what DNS itself says.
fn complete(
    service: &str,
    port: u16,
    family: Family,
    addrs: Vec<SocketAddr>,
    conf: Result<&ResolvConf, &str>,
) -> Result<Pods, DiscoverError> {
    let why_unchecked = match conf {
        Err(why) => why.to_string(),
        Ok(conf) if conf.nameservers.is_empty() => "resolv.conf lists no nameserver".into(),
        Ok(conf) => match ask_dns(conf, service, family) {
            Ok(found) => {
                let from_dns = found.addrs.iter().map(|&ip| SocketAddr::new(ip, port));
                let all = unique(addrs.into_iter().chain(from_dns));
                return with_dns_cut(service, family, all, &found);
            }
            // Not in DNS: the system's answer came from elsewhere
            // (/etc/hosts) and is all there is.
            Err(LookupError::NotFound(_) | LookupError::NoRecords(..)) => {
                return pods(service, family, addrs);
            }
            Err(e) => format!("the name {e}"),
        },
    };
    let mut pods = pods(service, family, addrs)?;
    pods.incomplete = Some(format!(
        "service '{service}': found {} addresses, maybe not all (the system resolver \
         can stop at {MAYBE_CUT}), and could not check with DNS: {why_unchecked}",
        pods.addrs.len()
    ));
    Ok(pods)
}

/// The system resolver failed: ask DNS, which either finds the pods after
/// all or says precisely why not.
fn explain(
    service: &str,
    port: u16,
    family: Family,
    error: io::Error,
    conf: Result<&ResolvConf, &str>,
) -> Result<Pods, DiscoverError> {
    let conf = match conf {
        Ok(conf) if !conf.nameservers.is_empty() => conf,
        Ok(_) => {
            return Err(DiscoverError::NoDns {
                service: service.to_string(),
                system: error.to_string(),
                why: "resolv.conf lists no nameserver".into(),
            })
        }
        Err(why) => {
            return Err(DiscoverError::NoDns {
                service: service.to_string(),
                system: error.to_string(),
                why: why.to_string(),
            })
        }
    };
    // The system resolver has already waited out its timeouts and retries:
    // one attempt is enough to say why it failed.
    let once = ResolvConf {
        attempts: 1,
        ..conf.clone()
    };
    match ask_dns(&once, service, family) {
        Ok(found) => {
            let addrs = found.addrs.iter().map(|&ip| SocketAddr::new(ip, port));
            with_dns_cut(service, family, addrs.collect(), &found)
        }
        Err(error) => Err(DiscoverError::Lookup {
            service: service.to_string(),
            error,
        }),
    }
}

/// Only IPv4 or only IPv6 asks for that type; `Auto` asks for AAAA only
/// when the name has no A records, as `pick_family` prefers IPv4.
fn ask_dns(conf: &ResolvConf, service: &str, family: Family) -> Result<dns::Found, LookupError> {
    let types: &[RecordType] = match family {
        Family::Auto => &[RecordType::A, RecordType::Aaaa],
        Family::Ipv4 => &[RecordType::A],
        Family::Ipv6 => &[RecordType::Aaaa],
    };
    dns::lookup(&dns::Query::new(conf, service, types))
}

/// `pods`, with DNS's TTL, and a warning when its answer itself was cut.
fn with_dns_cut(
    service: &str,
    family: Family,
    addrs: Vec<SocketAddr>,
    found: &dns::Found,
) -> Result<Pods, DiscoverError> {
    let mut pods = pods(service, family, addrs)?;
    pods.ttl = Some(found.ttl);
    if found.truncated {
        pods.incomplete = Some(format!(
            "service '{service}' is too large for one DNS answer (64 KiB): \
             found {} addresses, the other pods get nothing",
            pods.addrs.len()
        ));
    }
    Ok(pods)
}

/// The addresses of the family wanted; an error if there are none.
fn pods(service: &str, family: Family, addrs: Vec<SocketAddr>) -> Result<Pods, DiscoverError> {
    let addrs = pick_family(addrs, family);
    if addrs.is_empty() {
        return Err(DiscoverError::NoAddresses {
            service: service.to_string(),
            family,
        });
    }
    Ok(Pods {
        addrs,
        incomplete: None,
        ttl: None,
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
        assert_eq!(pods.ttl, None);
        assert_eq!(
            discover("::1", 9, Family::Ipv4).unwrap_err(),
            DiscoverError::NoAddresses {
                service: "::1".into(),
                family: Family::Ipv4
            }
        );
    }
}
