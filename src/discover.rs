//! Which pods does the service name stand for? A headless Service's DNS
//! name has one A (and/or AAAA) record per ready pod.
//!
//! The system resolver (`ToSocketAddrs`) is asked first, so IP literals,
//! /etc/hosts and `localhost` work as everywhere else. But it may stop
//! short without a word: musl returns at most 48 addresses, glibc what one
//! DNS message holds. So we also ask the DNS servers of /etc/resolv.conf
//! ourselves (see `dns`), and when it returns 48 or more send to the union
//! of both answers, if they are answers about the same name (they share an
//! address). When it fails our answer is used too, because our own client
//! can tell "no such name" from "no ready pods" from "DNS unreachable",
//! which getaddrinfo's message cannot.
//!
//! The system resolver runs on a thread of its own while ours asks DNS: a
//! large answer, which needs both, costs one lookup's time, not two. A
//! smaller answer ends ours at once; nothing waits past `TIME_LIMIT`.

use crate::args::UsageError;
use crate::dns::{self, LookupError, RecordType};
use crate::resolv_conf::{self, ResolvConf};
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

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
    /// `-f` or `UDP_HEADLESS_FAMILY`, else `Auto`.
    pub fn from_option(given: Option<String>) -> Result<Family, UsageError> {
        match crate::args::option_or_env(given, "--family", "UDP_HEADLESS_FAMILY")? {
            Some((text, from)) => Family::parse(&text, &from),
            None => Ok(Family::Auto),
        }
    }

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
/// naming the service.
#[derive(Clone, Debug, PartialEq)]
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
    /// Neither the system resolver nor DNS answered within the time limit.
    TimedOut { service: String, after: Duration },
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
            DiscoverError::TimedOut { service, after } => write!(
                f,
                "cannot resolve service '{service}': no answer within {}s",
                after.as_secs()
            ),
        }
    }
}

/// The whole resolution of one broadcast (system resolver and our own DNS
/// queries) ends within this. glibc's resolver can otherwise retry for
/// minutes, for instance over a TCP connection that a NetworkPolicy drops.
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// Set once a name needed our own lookup: later rounds (`--repeat`, stdin
/// lines, the relay's refreshes) ask over TCP at once.
static LARGE_BEFORE: AtomicBool = AtomicBool::new(false);

/// Set while a system-resolver thread we stopped waiting for still runs. A
/// silent DNS holds one up for its timeouts; re-resolving meanwhile
/// (`sender --confirm` retries) must not start one more each time, so it
/// asks DNS ourselves only. Only an abandoned thread sets it: lookups that
/// merely overlap (tests in parallel) keep the normal path.
static ABANDONED: AtomicBool = AtomicBool::new(false);

/// Whether a system-resolver thread that a lookup gave up on still runs
/// (lookups skip the system resolver meanwhile). For tests and diagnostics.
pub fn abandoned_resolver_running() -> bool {
    ABANDONED.load(Ordering::Acquire)
}

/// Asks the system resolver, then applies the policy of `decide`.
pub fn discover(service: &str, port: u16, family: Family) -> Result<Pods, DiscoverError> {
    discover_within(service, port, family, TIME_LIMIT)
}

/// `discover`, ending within `limit`: `sender --confirm` re-resolves
/// between retries, which a silent DNS server must not hold up.
pub fn discover_within(
    service: &str,
    port: u16,
    family: Family,
    limit: Duration,
) -> Result<Pods, DiscoverError> {
    let name = service.to_string();
    discover_from(
        service,
        port,
        family,
        limit,
        move || system_resolver(&name, port),
        || {
            resolv_conf::load(Path::new(resolv_conf::PATH))
                .map_err(|e| format!("cannot read {}: {e}", resolv_conf::PATH))
        },
    )
}

/// `discover` with a given DNS configuration instead of /etc/resolv.conf.
pub fn discover_with(
    service: &str,
    port: u16,
    family: Family,
    conf: &ResolvConf,
) -> Result<Pods, DiscoverError> {
    let name = service.to_string();
    let conf = conf.clone();
    discover_from(
        service,
        port,
        family,
        TIME_LIMIT,
        move || system_resolver(&name, port),
        || Ok(conf),
    )
}

/// `discover` with the system resolver, the configuration and the time
/// limit given. The system resolver runs on a thread of its own while
/// this one asks DNS: a large answer, which needs both, costs the time of
/// one lookup, not of two; and a slow resolver is not waited for past
/// `limit`.
pub fn discover_from(
    service: &str,
    port: u16,
    family: Family,
    limit: Duration,
    system: impl FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
    conf: impl FnOnce() -> Result<ResolvConf, String>,
) -> Result<Pods, DiscoverError> {
    let deadline = Instant::now() + limit;
    // An IP needs no resolver (and no DNS to ask).
    if let Ok(ip) = service.parse::<IpAddr>() {
        return pods(service, family, vec![SocketAddr::new(ip, port)]);
    }
    // Set once the system resolver has an answer that needs no check: then
    // ours, redundant, ends at once (a query of its own may be lost).
    let enough = Arc::new(AtomicBool::new(false));
    let ask = |conf: &Result<ResolvConf, String>, large, cancel| match conf {
        Ok(conf) if !conf.nameservers.is_empty() => {
            Some(ask_dns(conf, service, family, deadline, large, cancel))
        }
        _ => None,
    };
    if ABANDONED.load(Ordering::Acquire) {
        let conf = conf();
        let ours = ask(&conf, true, None);
        return while_system_busy(service, port, family, conf, ours);
    }
    let (tx, rx) = one_shot();
    let system_has = enough.clone();
    // Unnamed: a name costs 1.5 KB of code (std sets it on the new thread).
    let spawned = thread::Builder::new().spawn(move || {
        let answer = system();
        let small = matches!(&answer, Ok(addrs) if addrs.len() < MAYBE_CUT);
        // After the answer is in: ours, cancelled, must find it there.
        tx.send(answer);
        if small {
            system_has.store(true, Ordering::Release);
        }
    });
    // Read while the thread starts, not before.
    let conf = conf();
    if let Err(e) = spawned {
        let system = Err(io::Error::other(format!("cannot start a thread: {e}")));
        return decide_at(
            service,
            port,
            family,
            Some(system),
            conf,
            None,
            (deadline, limit),
        );
    }
    // A small Service costs DNS one more UDP exchange, made meanwhile.
    let ours = ask(&conf, LARGE_BEFORE.load(Ordering::Relaxed), Some(&enough));
    let left = deadline.saturating_duration_since(Instant::now());
    let system = match rx.recv_timeout(left) {
        Ok(answer) => Some(answer),
        Err(RecvTimeoutError::Timeout) => {
            rx.abandon();
            None
        }
        Err(RecvTimeoutError::Disconnected) => Some(Err(io::Error::other(
            "the system resolver's thread ended without an answer",
        ))),
    };
    decide_at(service, port, family, system, conf, ours, (deadline, limit))
}

/// Carries the resolver thread's one answer. Not `std::sync::mpsc`: a
/// channel links all three of std's channel flavours, 10 KB of a binary
/// that must stay under 600 KB (docs/BENCHMARKS.md, Footprint).
struct Slot<T> {
    /// The answer, whether the sending half is gone, and whether the
    /// receiving half stopped waiting (then `ABANDONED` is set).
    state: Mutex<(Option<T>, bool, bool)>,
    changed: Condvar,
}

struct Sending<T>(Arc<Slot<T>>);
struct Receiving<T>(Arc<Slot<T>>);

fn one_shot<T>() -> (Sending<T>, Receiving<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new((None, false, false)),
        changed: Condvar::new(),
    });
    (Sending(slot.clone()), Receiving(slot))
}

impl<T> Sending<T> {
    fn send(self, answer: T) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = Some(answer);
    }
}

/// Also when the thread ends without sending, so the wait ends too.
impl<T> Drop for Sending<T> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.1 = true;
        if state.2 {
            ABANDONED.store(false, Ordering::Release);
        }
        self.0.changed.notify_all();
    }
}

impl<T> Receiving<T> {
    fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut state, _) = self
            .0
            .changed
            .wait_timeout_while(state, timeout, |(answer, gone, _)| {
                answer.is_none() && !*gone
            })
            .unwrap_or_else(PoisonError::into_inner);
        match (state.0.take(), state.1) {
            (Some(answer), _) => Ok(answer),
            (None, true) => Err(RecvTimeoutError::Disconnected),
            (None, false) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// Stops waiting: until the thread ends, lookups skip the system
    /// resolver. Under the lock, so a thread ending right now cannot leave
    /// the flag set for good.
    fn abandon(self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.1 {
            state.2 = true;
            ABANDONED.store(true, Ordering::Release);
        }
    }
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
    let conf = conf.cloned().map_err(str::to_string);
    let deadline = Instant::now() + TIME_LIMIT;
    decide_at(
        service,
        port,
        family,
        Some(system),
        conf,
        None,
        (deadline, TIME_LIMIT),
    )
}

/// `decide`, where `system` is None if the system resolver ran out of
/// time, and `ours` is our own lookup if it was already made.
fn decide_at(
    service: &str,
    port: u16,
    family: Family,
    system: Option<io::Result<Vec<SocketAddr>>>,
    conf: Result<ResolvConf, String>,
    ours: Option<Result<dns::Found, LookupError>>,
    (deadline, limit): (Instant, Duration),
) -> Result<Pods, DiscoverError> {
    let dns = Dns {
        conf: conf.as_ref().map_err(String::as_str),
        ours,
        deadline,
        limit,
    };
    match system {
        Some(Ok(addrs)) if addrs.len() < MAYBE_CUT => pods(service, family, addrs),
        Some(Ok(addrs)) => {
            LARGE_BEFORE.store(true, Ordering::Relaxed);
            complete(service, port, family, addrs, dns)
        }
        Some(Err(e)) => explain(service, port, family, e, dns),
        None => match dns.ours {
            Some(Ok(found)) => with_dns(service, port, family, vec![], &found),
            Some(Err(error)) => Err(DiscoverError::Lookup {
                service: service.to_string(),
                error,
            }),
            None => Err(DiscoverError::TimedOut {
                service: service.to_string(),
                after: dns.limit,
            }),
        },
    }
}

/// Only DNS was asked, as the system resolver is still stuck in an earlier
/// lookup. What DNS cannot settle stays open: the system resolver might
/// know a name DNS does not (/etc/hosts), so "no such name" is not "no
/// pods", and the relay keeps its list. A name DNS has without addresses
/// is a Service with no ready pods, as always.
fn while_system_busy(
    service: &str,
    port: u16,
    family: Family,
    conf: Result<ResolvConf, String>,
    ours: Option<Result<dns::Found, LookupError>>,
) -> Result<Pods, DiscoverError> {
    let why = match (ours, conf) {
        (Some(Ok(found)), _) => return with_dns(service, port, family, vec![], &found),
        (Some(Err(error @ LookupError::NoRecords(..))), _) => {
            return Err(DiscoverError::Lookup {
                service: service.to_string(),
                error,
            })
        }
        (Some(Err(error)), _) => format!("DNS: the service {error}"),
        (None, Err(why)) => why,
        (None, Ok(_)) => "resolv.conf lists no nameserver".into(),
    };
    Err(DiscoverError::NoDns {
        service: service.to_string(),
        system: "the system resolver is still busy with an earlier lookup".into(),
        why,
    })
}

/// Our side of the resolution: the configuration (or why there is none),
/// the lookup if it was made already, and when to stop.
struct Dns<'a> {
    conf: Result<&'a ResolvConf, &'a str>,
    ours: Option<Result<dns::Found, LookupError>>,
    deadline: Instant,
    /// The whole time allowed, for messages.
    limit: Duration,
}

impl Dns<'_> {
    /// Our lookup made alongside the system resolver, unless it got no
    /// answer at all: the system resolver has answered since, so the
    /// servers may now (as the old, one-after-the-other order would have
    /// found). Else a lookup now.
    fn ours_or_ask(
        self,
        conf: &ResolvConf,
        service: &str,
        family: Family,
        large: bool,
    ) -> Result<dns::Found, LookupError> {
        match self.ours {
            Some(Err(LookupError::Unreachable(_))) | None => {
                ask_dns(conf, service, family, self.deadline, large, None)
            }
            Some(ours) => ours,
        }
    }
}

/// The system resolver's list may be cut: add what DNS itself says.
fn complete(
    service: &str,
    port: u16,
    family: Family,
    addrs: Vec<SocketAddr>,
    dns: Dns,
) -> Result<Pods, DiscoverError> {
    let why_unchecked = match dns.conf {
        Err(why) => why.to_string(),
        Ok(conf) if conf.nameservers.is_empty() => "resolv.conf lists no nameserver".into(),
        Ok(conf) => match dns.ours_or_ask(conf, service, family, true) {
            Ok(found) if !shares_an_address(&addrs, &found) => {
                return different_names(service, family, addrs, &found);
            }
            Ok(found) => return with_dns(service, port, family, addrs, &found),
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

/// Pods come and go between two queries, but not all of them: answers
/// with no address in common are about two different names.
fn shares_an_address(system: &[SocketAddr], found: &dns::Found) -> bool {
    let system: IpSet = system.iter().map(SocketAddr::ip).collect();
    found.addrs.iter().any(|ip| system.contains(ip))
}

/// The system resolver and our client resolved different names (a search
/// list that differs: LOCALDOMAIN, which musl ignores and glibc honours).
/// One broadcast goes to one name: the system resolver's, which is the
/// name any other program here would have reached; flagged incomplete.
fn different_names(
    service: &str,
    family: Family,
    addrs: Vec<SocketAddr>,
    found: &dns::Found,
) -> Result<Pods, DiscoverError> {
    let mut pods = pods(service, family, addrs)?;
    pods.incomplete = Some(format!(
        "service '{service}': the system resolver and DNS found different pods, no \
         address in common (DNS's are those of {}; is LOCALDOMAIN or RES_OPTIONS set?): \
         sending only to the system resolver's {} addresses, maybe not all",
        found.name,
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
    dns: Dns,
) -> Result<Pods, DiscoverError> {
    let conf = match dns.conf {
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
    match dns.ours_or_ask(&once, service, family, false) {
        Ok(found) => with_dns(service, port, family, vec![], &found),
        Err(error) => Err(DiscoverError::Lookup {
            service: service.to_string(),
            error,
        }),
    }
}

/// Only IPv4 or only IPv6 asks for that type; `Auto` asks for AAAA only
/// when the name has no A records, as `pick_family` prefers IPv4.
/// `large`: the answer is likely too large for UDP (the system resolver
/// returned 48 or more, now or in an earlier round), so TCP is asked first.
fn ask_dns(
    conf: &ResolvConf,
    service: &str,
    family: Family,
    deadline: Instant,
    large: bool,
    cancel: Option<&AtomicBool>,
) -> Result<dns::Found, LookupError> {
    let types: &[RecordType] = match family {
        Family::Auto => &[RecordType::A, RecordType::Aaaa],
        Family::Ipv4 => &[RecordType::A],
        Family::Ipv6 => &[RecordType::Aaaa],
    };
    dns::lookup(&dns::Query {
        deadline: Some(deadline),
        tcp_first: large,
        cancel,
        ..dns::Query::new(conf, service, types)
    })
}

/// The pods DNS found, after `first` (the system resolver's, when both
/// answered about the same name), each once; with DNS's TTL, and a
/// warning when its answer itself was cut.
fn with_dns(
    service: &str,
    port: u16,
    family: Family,
    first: Vec<SocketAddr>,
    found: &dns::Found,
) -> Result<Pods, DiscoverError> {
    let from_dns = found.addrs.iter().map(|&ip| SocketAddr::new(ip, port));
    let mut pods = pods(service, family, unique(first.into_iter().chain(from_dns)))?;
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

/// First occurrence of each IP wins, keeping the resolver's order. Sized
/// up front: growing a set of a thousand, with musl's allocator, cost
/// more than the rest of the merge.
pub fn unique(addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let addrs = addrs.into_iter();
    let mut seen = IpSet::with_capacity_and_hasher(addrs.size_hint().0, Default::default());
    let mut kept = Vec::with_capacity(addrs.size_hint().0);
    kept.extend(addrs.filter(|a| seen.insert(a.ip())));
    kept
}

/// A set of IPs hashed by one multiplication per word. std's SipHash,
/// which resists keys chosen to collide, took 200 instructions per address
/// and half of a 1000-pod merge; these keys come from our own resolvers.
type IpSet = HashSet<IpAddr, BuildHasherDefault<IpHasher>>;

#[derive(Default)]
struct IpHasher(u64);

impl IpHasher {
    fn add(&mut self, word: u64) {
        // rustc's FxHasher step.
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for IpHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_u128(&mut self, n: u128) {
        self.add(n as u64);
        self.add((n >> 64) as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    /// The table takes a bucket from the low bits: a product's low bits
    /// depend only on the input's low bits, its high bits on all of them.
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
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
    fn unique_agrees_with_a_plain_scan() {
        // Both families, IPv4-mapped twins and repeats, in a scrambled order.
        let mut x: u32 = 12345;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            x >> 8
        };
        let list: Vec<SocketAddr> = (0..5000)
            .map(|_| {
                let n = next() % 1500;
                let ip = match next() % 3 {
                    0 => IpAddr::from([10, 244, (n >> 8) as u8, n as u8]),
                    1 => IpAddr::from(std::net::Ipv4Addr::from(n).to_ipv6_mapped()),
                    _ => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, n as u16 >> 8, n as u16]),
                };
                SocketAddr::new(ip, 9)
            })
            .collect();
        let mut plain: Vec<SocketAddr> = vec![];
        for addr in &list {
            if !plain.iter().any(|kept| kept.ip() == addr.ip()) {
                plain.push(*addr);
            }
        }
        assert!(plain.len() > 1000 && plain.len() < list.len());
        assert_eq!(unique(list), plain);
    }

    #[test]
    fn one_shot_answer_timeout_and_gone() {
        let (tx, rx) = one_shot();
        assert_eq!(
            rx.recv_timeout(Duration::ZERO),
            Err(RecvTimeoutError::Timeout)
        );
        let sent = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            tx.send(7)
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(7));
        sent.join().unwrap();
        let (tx, rx) = one_shot::<u8>();
        let wait = Instant::now();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            drop(tx)
        });
        let gone = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(gone, Err(RecvTimeoutError::Disconnected));
        // Woken by the drop, not by the timeout.
        assert!(wait.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn dns_alone_gives_each_pod_once() {
        // An answer that repeats a record, used alone: when the system
        // resolver ran out of time, and when it failed.
        let found = || dns::Found {
            name: "svc".into(),
            addrs: ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
                .map(|a| a.parse().unwrap())
                .into(),
            truncated: false,
            ttl: Duration::from_secs(5),
        };
        let conf = ResolvConf {
            nameservers: vec!["127.0.0.1:53".parse().unwrap()],
            ..ResolvConf::default()
        };
        let when = (Instant::now() + TIME_LIMIT, TIME_LIMIT);
        let failed = || Some(Err(io::Error::other("no")));
        for system in [None, failed()] {
            let pods = decide_at(
                "svc",
                9,
                Family::Auto,
                system,
                Ok(conf.clone()),
                Some(Ok(found())),
                when,
            );
            assert_eq!(pods.unwrap().addrs, addrs(&["10.0.0.1:9", "10.0.0.2:9"]));
        }
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
