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
use std::collections::HashMap;
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
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// What to resolve: the Service's name, the pods' port, the family wanted.
#[derive(Clone, Debug)]
pub struct Target {
    pub service: String,
    pub port: u16,
    pub family: Family,
}

impl Target {
    pub fn new(service: &str, port: u16, family: Family) -> Target {
        Target {
            service: service.to_string(),
            port,
            family,
        }
    }
}

type SystemLookup = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;
type ConfLoad = dyn Fn() -> Result<ResolvConf, String> + Send + Sync;

/// Where answers come from: the system resolver and /etc/resolv.conf, or
/// a test's stand-ins (the one seam). Clones share whether a system lookup
/// that was given up on still runs.
#[derive(Clone)]
pub struct Sources {
    system: Arc<SystemLookup>,
    conf: Arc<ConfLoad>,
    /// Set while a system-resolver thread we stopped waiting for still
    /// runs. A silent DNS holds one up for its timeouts; re-resolving
    /// meanwhile (`sender --confirm` retries, the relay's refreshes) must
    /// not start one more each time, so it asks DNS ourselves only.
    busy: Arc<AtomicBool>,
}

impl Sources {
    /// `ToSocketAddrs` and /etc/resolv.conf.
    pub fn system() -> Sources {
        Sources::new(system_resolver, || {
            resolv_conf::load(Path::new(resolv_conf::PATH))
                .map_err(|e| format!("cannot read {}: {e}", resolv_conf::PATH))
        })
    }

    pub fn new(
        system: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
        conf: impl Fn() -> Result<ResolvConf, String> + Send + Sync + 'static,
    ) -> Sources {
        Sources {
            system: Arc::new(system),
            conf: Arc::new(conf),
            busy: Arc::default(),
        }
    }

    /// Other answers from the same system resolver: busy when this is.
    pub fn answering(
        &self,
        system: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
        conf: impl Fn() -> Result<ResolvConf, String> + Send + Sync + 'static,
    ) -> Sources {
        Sources {
            busy: Arc::clone(&self.busy),
            ..Sources::new(system, conf)
        }
    }

    /// Whether a system lookup that was given up on still runs.
    // Out of line: inlined, it made the binary larger (under 600 KB).
    #[inline(never)]
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }
}

/// Resolves one target, again and again (each broadcast, each refresh).
#[derive(Clone)]
pub struct Resolver {
    pub target: Target,
    sources: Sources,
}

impl Resolver {
    /// Through the system resolver and /etc/resolv.conf.
    pub fn new(target: Target) -> Resolver {
        Resolver::with(target, Sources::system())
    }

    pub fn with(target: Target, sources: Sources) -> Resolver {
        Resolver { target, sources }
    }

    /// The pods, within `TIME_LIMIT`.
    // Out of line: inlined, it made the binary larger (under 600 KB).
    #[inline(never)]
    pub fn resolve(&self) -> Result<Pods, DiscoverError> {
        self.resolve_within(TIME_LIMIT)
    }

    /// The pods, within `limit`: `sender --confirm` re-resolves between
    /// retries, which a silent DNS server must not hold up.
    ///
    /// The system resolver is asked first, on a thread of its own so that
    /// it can be given up on; our own DNS lookup only when its answer may
    /// be cut or it failed (see `decide`). With DNS servers to ask, it
    /// gets half of `limit`: the rest is for our lookup, whose verdict
    /// then says why (a TCP connection that is dropped, say).
    pub fn resolve_within(&self, limit: Duration) -> Result<Pods, DiscoverError> {
        let deadline = Instant::now() + limit;
        let target = &self.target;
        // An IP needs no resolver (and no DNS to ask).
        if let Ok(ip) = target.service.parse::<IpAddr>() {
            return pods(target, vec![SocketAddr::new(ip, target.port)]);
        }
        let conf = (self.sources.conf)();
        let has_dns = matches!(&conf, Ok(conf) if !conf.nameservers.is_empty());
        if self.sources.busy() {
            let ours = has_dns.then(|| ask_dns(conf.as_ref().unwrap(), target, deadline, true));
            return while_system_busy(target, conf, ours);
        }
        let wait = if has_dns { limit / 2 } else { limit };
        let system = self.ask_system(wait);
        decide_at(target, system, conf, (deadline, limit))
    }

    /// The system resolver's answer, or None when it took longer than
    /// `wait` (its thread is then left to end on its own, `Sources::busy`).
    fn ask_system(&self, wait: Duration) -> Option<io::Result<Vec<SocketAddr>>> {
        let (tx, rx) = one_shot(Arc::clone(&self.sources.busy));
        let system = Arc::clone(&self.sources.system);
        let (service, port) = (self.target.service.clone(), self.target.port);
        // Unnamed: a name costs 1.5 KB of code (std sets it on the new thread).
        let spawned = crate::os::spawn(
            thread::Builder::new(),
            Box::new(move || tx.send(system(&service, port))),
        );
        if let Err(e) = spawned {
            let why = format!("cannot start a thread: {e}");
            return Some(Err(io::Error::other(why)));
        }
        match rx.recv_timeout(wait) {
            Ok(answer) => Some(answer),
            Err(RecvTimeoutError::Timeout) => {
                rx.abandon();
                None
            }
            Err(RecvTimeoutError::Disconnected) => Some(Err(io::Error::other(
                "the system resolver's thread ended without an answer",
            ))),
        }
    }
}

/// Carries the resolver thread's one answer. Not `std::sync::mpsc`: a
/// channel links all three of std's channel flavours, 10 KB of a binary
/// that must stay under 600 KB (docs/BENCHMARKS.md, Footprint).
struct Slot<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    /// `Sources::busy`: set while an abandoned thread runs.
    busy: Arc<AtomicBool>,
}

struct State<T> {
    answer: Option<T>,
    /// The sending half is gone: no answer will come.
    sender_gone: bool,
    /// The receiving half stopped waiting.
    abandoned: bool,
}

struct Sending<T>(Arc<Slot<T>>);
struct Receiving<T>(Arc<Slot<T>>);

fn one_shot<T>(busy: Arc<AtomicBool>) -> (Sending<T>, Receiving<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            answer: None,
            sender_gone: false,
            abandoned: false,
        }),
        changed: Condvar::new(),
        busy,
    });
    (Sending(slot.clone()), Receiving(slot))
}

impl<T> Sending<T> {
    fn send(self, answer: T) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.answer = Some(answer);
    }
}

/// Also when the thread ends without sending, so the wait ends too.
impl<T> Drop for Sending<T> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.sender_gone = true;
        if state.abandoned {
            self.0.busy.store(false, Ordering::Release);
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
            .wait_timeout_while(state, timeout, |state| {
                state.answer.is_none() && !state.sender_gone
            })
            .unwrap_or_else(PoisonError::into_inner);
        match (state.answer.take(), state.sender_gone) {
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
        if !state.sender_gone {
            state.abandoned = true;
            self.0.busy.store(true, Ordering::Release);
        }
    }
}

fn system_resolver(service: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    (service, port).to_socket_addrs().map(unique)
}

/// The policy, given what `ToSocketAddrs` answered (`system`) and the DNS
/// configuration or why there is none:
/// - fewer than `MAYBE_CUT` addresses: those, and DNS is not asked;
/// - more: they may be cut, so DNS is asked too, and both answers are
///   joined if they are about the same name (they share an address);
/// - it failed: DNS is asked, and either finds the pods after all or says
///   precisely why not ("no such name", "no ready pods", "unreachable"),
///   which getaddrinfo's message cannot.
pub fn decide(
    target: &Target,
    system: io::Result<Vec<SocketAddr>>,
    conf: Result<&ResolvConf, &str>,
) -> Result<Pods, DiscoverError> {
    let conf = conf.cloned().map_err(str::to_string);
    let deadline = Instant::now() + TIME_LIMIT;
    decide_at(target, Some(system), conf, (deadline, TIME_LIMIT))
}

/// `decide`, where `system` is None if the system resolver ran out of
/// time: then DNS alone answers, in the time left.
// Out of line: inlined, it made the binary larger (under 600 KB).
#[inline(never)]
fn decide_at(
    target: &Target,
    system: Option<io::Result<Vec<SocketAddr>>>,
    conf: Result<ResolvConf, String>,
    (deadline, limit): (Instant, Duration),
) -> Result<Pods, DiscoverError> {
    let dns = Dns {
        conf: conf.as_ref().map_err(String::as_str),
        deadline,
        limit,
    };
    match system {
        Some(Ok(addrs)) if addrs.len() < MAYBE_CUT => pods(target, addrs),
        Some(Ok(addrs)) => complete(target, addrs, dns),
        Some(Err(e)) => explain(target, e, dns),
        None => match dns.conf {
            Ok(conf) if !conf.nameservers.is_empty() => {
                match ask_dns(conf, target, deadline, false) {
                    Ok(found) => with_dns(target, vec![], &found),
                    Err(error) => Err(DiscoverError::Lookup {
                        service: target.service.clone(),
                        error,
                    }),
                }
            }
            _ => Err(DiscoverError::TimedOut {
                service: target.service.clone(),
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
    target: &Target,
    conf: Result<ResolvConf, String>,
    ours: Option<Result<dns::Found, LookupError>>,
) -> Result<Pods, DiscoverError> {
    let why = match (ours, conf) {
        (Some(Ok(found)), _) => return with_dns(target, vec![], &found),
        (Some(Err(error @ LookupError::NoRecords(..))), _) => {
            return Err(DiscoverError::Lookup {
                service: target.service.clone(),
                error,
            })
        }
        (Some(Err(error)), _) => format!("DNS: the service {error}"),
        (None, Err(why)) => why,
        (None, Ok(_)) => "resolv.conf lists no nameserver".into(),
    };
    Err(DiscoverError::NoDns {
        service: target.service.clone(),
        system: "the system resolver is still busy with an earlier lookup".into(),
        why,
    })
}

/// Our side of the resolution: the configuration (or why there is none),
/// and when to stop.
struct Dns<'a> {
    conf: Result<&'a ResolvConf, &'a str>,
    deadline: Instant,
    /// The whole time allowed, for messages.
    limit: Duration,
}

/// The system resolver's list may be cut: add what DNS itself says.
fn complete(target: &Target, addrs: Vec<SocketAddr>, dns: Dns) -> Result<Pods, DiscoverError> {
    let why_unchecked = match dns.conf {
        Err(why) => why.to_string(),
        Ok(conf) if conf.nameservers.is_empty() => "resolv.conf lists no nameserver".into(),
        Ok(conf) => match ask_dns(conf, target, dns.deadline, true) {
            Ok(found) if !shares_an_address(&addrs, &found) => {
                return different_names(target, addrs, &found);
            }
            Ok(found) => return with_dns(target, addrs, &found),
            // Not in DNS: the system's answer came from elsewhere
            // (/etc/hosts) and is all there is.
            Err(LookupError::NotFound(_) | LookupError::NoRecords(..)) => {
                return pods(target, addrs);
            }
            Err(e) => format!("the name {e}"),
        },
    };
    let mut pods = pods(target, addrs)?;
    let service = &target.service;
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
    let system: AddrMap<usize> = system.iter().map(|a| (ip_key(a.ip()), 0)).collect();
    found
        .addrs
        .iter()
        .any(|&ip| system.contains_key(&ip_key(ip)))
}

/// The system resolver and our client resolved different names (a search
/// list that differs: LOCALDOMAIN, which musl ignores and glibc honours).
/// One broadcast goes to one name: the system resolver's, which is the
/// name any other program here would have reached; flagged incomplete.
fn different_names(
    target: &Target,
    addrs: Vec<SocketAddr>,
    found: &dns::Found,
) -> Result<Pods, DiscoverError> {
    let mut pods = pods(target, addrs)?;
    let service = &target.service;
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
fn explain(target: &Target, error: io::Error, dns: Dns) -> Result<Pods, DiscoverError> {
    let service = &target.service;
    let conf = match dns.conf {
        Ok(conf) if !conf.nameservers.is_empty() => conf,
        Ok(_) => {
            return Err(DiscoverError::NoDns {
                service: service.clone(),
                system: error.to_string(),
                why: "resolv.conf lists no nameserver".into(),
            })
        }
        Err(why) => {
            return Err(DiscoverError::NoDns {
                service: service.clone(),
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
    match ask_dns(&once, target, dns.deadline, false) {
        Ok(found) => with_dns(target, vec![], &found),
        Err(error) => Err(DiscoverError::Lookup {
            service: service.clone(),
            error,
        }),
    }
}

/// Only IPv4 or only IPv6 asks for that type; `Auto` asks for AAAA only
/// when the name has no A records, as `pick_family` prefers IPv4.
/// `large`: the answer is likely too large for UDP (the system resolver
/// returned 48 or more), so TCP is asked first.
fn ask_dns(
    conf: &ResolvConf,
    target: &Target,
    deadline: Instant,
    large: bool,
) -> Result<dns::Found, LookupError> {
    let types: &[RecordType] = match target.family {
        Family::Auto => &[RecordType::A, RecordType::Aaaa],
        Family::Ipv4 => &[RecordType::A],
        Family::Ipv6 => &[RecordType::Aaaa],
    };
    dns::lookup(&dns::Query {
        deadline: Some(deadline),
        tcp_first: large,
        ..dns::Query::new(conf, &target.service, types)
    })
}

/// The pods DNS found, after `first` (the system resolver's, when both
/// answered about the same name), each once; with DNS's TTL, and a
/// warning when its answer itself was cut.
fn with_dns(
    target: &Target,
    first: Vec<SocketAddr>,
    found: &dns::Found,
) -> Result<Pods, DiscoverError> {
    let from_dns = found
        .addrs
        .iter()
        .map(|&ip| SocketAddr::new(ip, target.port));
    let mut pods = pods(target, unique(first.into_iter().chain(from_dns)))?;
    let service = &target.service;
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
fn pods(target: &Target, addrs: Vec<SocketAddr>) -> Result<Pods, DiscoverError> {
    let addrs = pick_family(addrs, target.family);
    if addrs.is_empty() {
        return Err(DiscoverError::NoAddresses {
            service: target.service.clone(),
            family: target.family,
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
    let mut seen =
        AddrMap::<usize>::with_capacity_and_hasher(addrs.size_hint().0, Default::default());
    let mut kept = Vec::with_capacity(addrs.size_hint().0);
    kept.extend(addrs.filter(|a| seen.insert(ip_key(a.ip()), 0).is_none()));
    kept
}

/// An IP as an `AddrMap` key.
// Out of line: inlined, it made the binary larger (under 600 KB).
#[inline(never)]
fn ip_key(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 0)
}

/// A map of addresses hashed by one multiplication per word. std's
/// SipHash, which resists keys chosen to collide, took 200 instructions
/// per address and half of a 1000-pod merge. The keys put in come from our
/// own resolvers (pods); what the network sends is only looked up, which
/// cannot make the table slow. The one hash table type of the relay
/// (`forward::Places`, `confirm`): each type costs 2 KB of code.
pub type AddrMap<V> = HashMap<SocketAddr, V, BuildHasherDefault<IpHasher>>;

#[derive(Default)]
pub struct IpHasher(u64);

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

fn pick_family(addrs: Vec<SocketAddr>, family: Family) -> Vec<SocketAddr> {
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
        let (tx, rx) = one_shot(Arc::default());
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
        let (tx, rx) = one_shot::<u8>(Arc::default());
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
        let found = dns::Found {
            name: "svc".into(),
            addrs: ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
                .map(|a| a.parse().unwrap())
                .into(),
            truncated: false,
            ttl: Duration::from_secs(5),
        };
        let pods = with_dns(&Target::new("svc", 9, Family::Auto), vec![], &found);
        assert_eq!(pods.unwrap().addrs, addrs(&["10.0.0.1:9", "10.0.0.2:9"]));
    }

    #[test]
    fn literals_and_localhost() {
        let discover =
            |service, port, family| Resolver::new(Target::new(service, port, family)).resolve();
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
