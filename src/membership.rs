//! The pod list of a Service, kept fresh by the DNS answer's TTL, for the
//! programs that send again and again: the relay and the sender's stream
//! modes (stdin lines, `--repeat`). Resolving once per datagram would cost
//! a DNS round trip each time; a list at most one TTL old is what cluster
//! DNS caches give anyway.
//!
//! `Cache` is the policy (when to ask again, what to keep when DNS fails),
//! driven by its caller; `spawn` runs it on a thread of its own, so a
//! forwarding loop never waits for DNS: it reads the current list through
//! `Watch`, which costs one atomic load unless the list changed.

use crate::discover::{DiscoverError, Pods};
use crate::dns::LookupError;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A DNS TTL is obeyed within these bounds: under 1 s would flood the
/// resolver, over 30 s would miss scaling for too long.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const MAX_REFRESH: Duration = Duration::from_secs(30);
/// The system resolver gives no TTL: ask again this often.
const NO_TTL_REFRESH: Duration = Duration::from_secs(5);

/// One resolution (`Pods::ttl`: how long it stays valid, when DNS said).
pub type Answer = Result<Pods, DiscoverError>;

/// DNS answered that the Service has no (ready) pods, as opposed to not
/// answering: an empty list, not a failure to keep the last list through.
pub fn says_no_pods(e: &DiscoverError) -> bool {
    matches!(
        e,
        DiscoverError::NoAddresses { .. }
            | DiscoverError::Lookup {
                error: LookupError::NotFound(_) | LookupError::NoRecords(..),
                ..
            }
    )
}

/// How long a list is used before asking again: `fixed` (`--refresh`)
/// when given, else the TTL clamped to 1-30 s, else 5 s.
fn refresh_interval(fixed: Option<Duration>, ttl: Option<Duration>) -> Duration {
    match (fixed, ttl) {
        (Some(fixed), _) => fixed,
        (None, Some(ttl)) => ttl.clamp(MIN_REFRESH, MAX_REFRESH),
        (None, None) => NO_TTL_REFRESH,
    }
}

/// What a refresh found, for the caller to log.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// The pod set changed: sizes before and after, and how many
    /// addresses came and went.
    Changed {
        before: usize,
        after: usize,
        added: usize,
        removed: usize,
    },
    /// DNS says the service has no pods (any more): why.
    NoPods(String),
    /// Resolution failed; `first` is true for the first failure of a
    /// streak (warn then, not on every retry); `kept`, when there was a
    /// last list to keep.
    Failed {
        first: bool,
        kept: bool,
        error: String,
    },
    /// Resolution works again after failures.
    Recovered,
}

/// The current list and when to ask again.
pub struct Cache<R> {
    resolve: R,
    fixed: Option<Duration>,
    pods: Arc<Pods>,
    /// Why the list is empty, when DNS said there are no pods.
    no_pods: Option<DiscoverError>,
    /// False until DNS first answered (pods or no pods).
    resolved: bool,
    due: Instant,
    failing: bool,
}

impl<R: FnMut() -> Answer> Cache<R> {
    /// `fixed`: `--refresh`; `Some(0)` resolves on every `get`.
    pub fn new(resolve: R, fixed: Option<Duration>) -> Cache<R> {
        Cache {
            resolve,
            fixed,
            pods: Arc::new(Pods::default()),
            no_pods: None,
            resolved: false,
            due: Instant::now(),
            failing: false,
        }
    }

    /// When the list should be resolved again.
    pub fn due(&self) -> Instant {
        self.due
    }

    pub fn pods(&self) -> &Arc<Pods> {
        &self.pods
    }

    /// The pods, resolving first when the list is due. An error when DNS
    /// says there are none, or never answered (with `--refresh 0`, whose
    /// every call resolves as a one-shot sender does: when this call's
    /// resolution failed); else a failed refresh keeps the last list, and
    /// `events` hears of it.
    pub fn get(&mut self, events: &mut impl FnMut(Event)) -> Result<Arc<Pods>, DiscoverError> {
        if self.fixed == Some(Duration::ZERO) {
            return (self.resolve)().map(Arc::new);
        }
        // Until DNS first answers, every call asks, as without a cache.
        if !self.resolved || Instant::now() >= self.due {
            if let Err(e) = self.refresh(events) {
                if !self.resolved {
                    return Err(e);
                }
            }
        }
        match &self.no_pods {
            Some(why) => Err(why.clone()),
            None => Ok(Arc::clone(&self.pods)),
        }
    }

    /// Resolves now; reports a change or failure to `events`.
    // Out of line: inlined, it made the binary larger (under 600 KB).
    #[inline(never)]
    pub fn refresh(&mut self, events: &mut impl FnMut(Event)) -> Result<(), DiscoverError> {
        let answer = match (self.resolve)() {
            // An answer like any other: the list is now empty.
            // After failures too: that line says DNS answers again, and
            // what it says; "resolves again" beside it would contradict it.
            Err(e) if says_no_pods(&e) => {
                if self.no_pods.is_none() || self.failing {
                    events(Event::NoPods(e.to_string()));
                }
                self.failing = false;
                self.no_pods = Some(e);
                Ok(Pods::default())
            }
            Err(e) => Err(e),
            Ok(found) => {
                self.no_pods = None;
                Ok(found)
            }
        };
        let now = Instant::now();
        match answer {
            Ok(pods) => {
                self.due = now + refresh_interval(self.fixed, pods.ttl);
                if self.failing {
                    self.failing = false;
                    events(Event::Recovered);
                }
                if let Some(change) = difference(&self.pods.addrs, &pods.addrs) {
                    events(change);
                }
                self.pods = Arc::new(pods);
                self.resolved = true;
                Ok(())
            }
            Err(e) => {
                // Retry as often as an answer without TTL would be asked
                // again: soon enough to recover, not a flood; a long
                // --refresh is for lists that work.
                self.due = now + refresh_interval(self.fixed, None).min(NO_TTL_REFRESH);
                events(Event::Failed {
                    first: !self.failing,
                    kept: self.resolved && self.no_pods.is_none(),
                    error: e.to_string(),
                });
                self.failing = true;
                Err(e)
            }
        }
    }
}

fn difference(before: &[SocketAddr], after: &[SocketAddr]) -> Option<Event> {
    let added = after.iter().filter(|a| !before.contains(a)).count();
    let removed = before.iter().filter(|b| !after.contains(b)).count();
    (added + removed > 0).then_some(Event::Changed {
        before: before.len(),
        after: after.len(),
        added,
        removed,
    })
}

/// The line the relay logs for an event (WARNING for failures).
pub fn describe(event: &Event) -> Option<(&'static str, String)> {
    use crate::log_line::{INFO, WARNING};
    match event {
        Event::Changed {
            before,
            after,
            added,
            removed,
        } if before == after => Some((
            INFO,
            format!("pods: {before} -> {after} ({added} replaced)"),
        )),
        Event::Changed { before, after, .. } => Some((INFO, format!("pods: {before} -> {after}"))),
        Event::Failed {
            first: true,
            kept: true,
            error,
        } => Some((
            WARNING,
            format!("{error}; keeping the last list of pods, retrying"),
        )),
        Event::Failed {
            first: true, error, ..
        } => Some((WARNING, format!("{error}; retrying"))),
        Event::Failed { first: false, .. } => None,
        Event::NoPods(why) => Some((
            WARNING,
            format!("{why}: dropping datagrams until pods appear"),
        )),
        Event::Recovered => Some((INFO, "the service resolves again".into())),
    }
}

struct Shared {
    version: AtomicU64,
    pods: RwLock<Arc<Pods>>,
}

/// A reader's view of the list a background thread keeps fresh.
pub struct Watch {
    shared: Arc<Shared>,
    seen: u64,
    pods: Arc<Pods>,
}

impl Watch {
    /// The current list: one atomic load, plus a short read lock only
    /// when the list changed since the last call.
    pub fn current(&mut self) -> &Pods {
        let version = self.shared.version.load(Ordering::Acquire);
        if version != self.seen {
            self.pods = Arc::clone(&self.shared.pods.read().unwrap_or_else(|e| e.into_inner()));
            self.seen = version;
        }
        &self.pods
    }

    /// Changes whenever the list may have: read it before `current`.
    pub fn generation(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// Whether the first resolution has been tried (it may have failed).
    pub fn started(&self) -> bool {
        self.shared.version.load(Ordering::Acquire) > 0
    }
}

/// Runs `cache` on a thread of its own: resolves at once, then whenever
/// the list is due; `events` (called on that thread) hears of changes.
pub fn spawn<R>(mut cache: Cache<R>, mut events: impl FnMut(Event) + Send + 'static) -> Watch
where
    R: FnMut() -> Answer + Send + 'static,
{
    let shared = Arc::new(Shared {
        version: AtomicU64::new(0),
        pods: RwLock::new(Arc::clone(cache.pods())),
    });
    let writer = Arc::clone(&shared);
    let refresh = move || loop {
        let _ = cache.refresh(&mut events);
        *writer.pods.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(cache.pods());
        writer.version.fetch_add(1, Ordering::Release);
        // `--refresh 0` would spin: a background list needs some age.
        let due = cache.due().max(Instant::now() + Duration::from_millis(100));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    };
    // As std::thread::spawn: a program that cannot start it cannot run.
    crate::os::spawn(std::thread::Builder::new(), Box::new(refresh))
        .expect("failed to spawn thread");
    Watch {
        shared,
        seen: u64::MAX,
        pods: Arc::new(Pods::default()),
    }
}

/// Is `ip` an address of this host? Binding to it succeeds only then
/// (`net.ipv4.ip_nonlocal_bind` aside), with no interface listing.
pub fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// `addrs` without `listen` itself: a relay forwarding to its own port
/// would send every datagram to itself, forever. With a wildcard `listen`,
/// every local address on its port is itself. The second value says
/// whether anything was removed.
pub fn without_own(
    addrs: Vec<SocketAddr>,
    listen: SocketAddr,
    is_local: impl Fn(IpAddr) -> bool,
) -> (Vec<SocketAddr>, bool) {
    let own = |a: &SocketAddr| {
        a.port() == listen.port()
            && if listen.ip().is_unspecified() {
                is_local(a.ip())
            } else {
                a.ip() == listen.ip()
            }
    };
    let before = addrs.len();
    let kept: Vec<_> = addrs.into_iter().filter(|a| !own(a)).collect();
    let removed = kept.len() != before;
    (kept, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn pods(list: &[&str]) -> Pods {
        pods_ttl(list, None)
    }

    fn pods_ttl(list: &[&str], ttl: Option<Duration>) -> Pods {
        Pods {
            addrs: list.iter().map(|a| a.parse().unwrap()).collect(),
            incomplete: None,
            ttl,
        }
    }

    fn ips(p: &Pods) -> Vec<String> {
        p.addrs.iter().map(|a| a.ip().to_string()).collect()
    }

    #[test]
    fn ttl_is_clamped_and_refresh_overrides_it() {
        let s = Duration::from_secs;
        assert_eq!(refresh_interval(None, Some(s(0))), s(1));
        assert_eq!(refresh_interval(None, Some(s(7))), s(7));
        assert_eq!(refresh_interval(None, Some(s(3600))), s(30));
        assert_eq!(refresh_interval(None, None), s(5));
        assert_eq!(refresh_interval(Some(s(2)), Some(s(7))), s(2));
    }

    /// A resolver whose next answers the test scripts; counts calls.
    fn scripted(answers: Vec<Answer>) -> (impl FnMut() -> Answer, Rc<RefCell<usize>>) {
        let calls = Rc::new(RefCell::new(0));
        let counter = Rc::clone(&calls);
        let mut answers = answers.into_iter();
        let resolve = move || {
            *counter.borrow_mut() += 1;
            answers.next().expect("no more answers scripted")
        };
        (resolve, calls)
    }

    fn fail() -> Answer {
        Err(DiscoverError::Lookup {
            service: "svc".into(),
            error: LookupError::Unreachable("no answer".into()),
        })
    }

    fn none() -> Answer {
        Err(DiscoverError::Lookup {
            service: "svc".into(),
            error: LookupError::NoRecords("svc.".into(), "A".into()),
        })
    }

    #[test]
    fn which_errors_mean_no_pods() {
        let lookup = |error| DiscoverError::Lookup {
            service: "svc".into(),
            error,
        };
        let no_pods = [
            lookup(LookupError::NotFound(vec!["svc.".into()])),
            lookup(LookupError::NoRecords("svc.".into(), "A".into())),
            DiscoverError::NoAddresses {
                service: "svc".into(),
                family: crate::discover::Family::Ipv6,
            },
        ];
        let failures = [
            lookup(LookupError::Unreachable("timeout".into())),
            lookup(LookupError::ServerFailure("SERVFAIL".into())),
            DiscoverError::NoDns {
                service: "svc".into(),
                system: "failed".into(),
                why: "no nameserver".into(),
            },
        ];
        assert!(no_pods.iter().all(says_no_pods));
        assert!(!failures.iter().any(says_no_pods));
    }

    #[test]
    fn no_pods_is_an_answer_not_a_failure() {
        let (resolve, _) = scripted(vec![
            Ok(pods(&["10.0.0.1:1"])),
            none(),
            none(),
            Ok(pods(&["10.0.0.2:1"])),
        ]);
        let mut cache = Cache::new(resolve, None);
        let mut events = Vec::new();
        let mut lists = Vec::new();
        for _ in 0..4 {
            cache.refresh(&mut |e| events.push(e)).unwrap();
            lists.push(ips(cache.pods()));
        }
        assert_eq!(lists, [vec!["10.0.0.1"], vec![], vec![], vec!["10.0.0.2"]]);
        let text: Vec<_> = events.iter().filter_map(describe).map(|(_, l)| l).collect();
        assert_eq!(
            text,
            [
                "pods: 0 -> 1",
                "service 'svc' has no ready pods: DNS knows svc. but it has no A records: \
                 dropping datagrams until pods appear",
                "pods: 1 -> 0",
                "pods: 0 -> 1",
            ]
        );
    }

    #[test]
    fn a_fresh_list_is_used_without_asking_again() {
        let long = Some(Duration::from_secs(30));
        let (resolve, calls) = scripted(vec![Ok(pods_ttl(&["10.0.0.1:1"], long))]);
        let mut cache = Cache::new(resolve, None);
        let mut events = Vec::new();
        for _ in 0..100 {
            let got = cache.get(&mut |e| events.push(e)).unwrap();
            assert_eq!(ips(&got), ["10.0.0.1"]);
        }
        assert_eq!(*calls.borrow(), 1);
        assert_eq!(
            events,
            [Event::Changed {
                before: 0,
                after: 1,
                added: 1,
                removed: 0
            }]
        );
    }

    #[test]
    fn refresh_zero_resolves_every_time_and_reports_every_failure() {
        let (resolve, calls) = scripted(vec![Ok(pods(&["10.0.0.1:1"])), fail(), fail()]);
        let mut cache = Cache::new(resolve, Some(Duration::ZERO));
        let mut no_events = |e| panic!("{e:?}");
        assert!(cache.get(&mut no_events).is_ok());
        assert!(cache.get(&mut no_events).is_err());
        assert!(cache.get(&mut no_events).is_err());
        assert_eq!(*calls.borrow(), 3);
    }

    #[test]
    fn failures_keep_the_last_list_and_warn_once_per_streak() {
        let now = Some(Duration::ZERO); // due again at once (clamped to 1 s, forced below)
        let (resolve, _) = scripted(vec![
            Ok(pods_ttl(&["10.0.0.1:1", "10.0.0.2:1"], now)),
            fail(),
            fail(),
            Ok(pods_ttl(&["10.0.0.2:1", "10.0.0.3:1"], now)),
            fail(),
        ]);
        let mut cache = Cache::new(resolve, None);
        let mut events = Vec::new();
        for _ in 0..5 {
            let _ = cache.refresh(&mut |e| events.push(e));
            assert!(!cache.pods().addrs.is_empty());
        }
        let lines: Vec<_> = events.iter().filter_map(describe).collect();
        let text: Vec<_> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            text,
            [
                "pods: 0 -> 2",
                "service 'svc' could not be resolved: no answer from DNS: no answer; \
                 keeping the last list of pods, retrying",
                "the service resolves again",
                "pods: 2 -> 2 (1 replaced)",
                "service 'svc' could not be resolved: no answer from DNS: no answer; \
                 keeping the last list of pods, retrying",
            ]
        );
        assert_eq!(ips(cache.pods()), ["10.0.0.2", "10.0.0.3"]);
    }

    /// An outage that ends in NXDOMAIN: the service is gone, not back.
    #[test]
    fn an_outage_ending_in_no_pods_says_so_and_not_that_it_resolves_again() {
        let (resolve, _) = scripted(vec![Ok(pods(&["10.0.0.1:1"])), fail(), none(), none()]);
        let mut cache = Cache::new(resolve, None);
        let mut events = Vec::new();
        for _ in 0..4 {
            let _ = cache.refresh(&mut |e| events.push(e));
        }
        let text: Vec<_> = events.iter().filter_map(describe).map(|(_, l)| l).collect();
        assert_eq!(
            text,
            [
                "pods: 0 -> 1",
                "service 'svc' could not be resolved: no answer from DNS: no answer; \
                 keeping the last list of pods, retrying",
                "service 'svc' has no ready pods: DNS knows svc. but it has no A records: \
                 dropping datagrams until pods appear",
                "pods: 1 -> 0",
            ]
        );
    }

    #[test]
    fn a_failure_is_retried_within_5_s_even_with_a_long_refresh() {
        let hour = Duration::from_secs(3600);
        let (resolve, _) = scripted(vec![fail(), Ok(pods(&["10.0.0.1:1"])), fail()]);
        let mut cache = Cache::new(resolve, Some(hour));
        for (want_ok, longest) in [
            (false, NO_TTL_REFRESH),
            (true, hour),
            (false, NO_TTL_REFRESH),
        ] {
            assert_eq!(cache.refresh(&mut |_| {}).is_ok(), want_ok);
            let wait = cache.due() - Instant::now();
            assert!(wait <= longest && wait > longest / 2, "{wait:?}");
        }
    }

    /// After "no pods", a failure has no list to keep, and says so.
    #[test]
    fn a_failure_after_no_pods_keeps_no_list() {
        let (resolve, _) = scripted(vec![Ok(pods(&["10.0.0.1:1"])), none(), fail()]);
        let mut cache = Cache::new(resolve, None);
        let mut events = Vec::new();
        for _ in 0..3 {
            let _ = cache.refresh(&mut |e| events.push(e));
        }
        let last = events.iter().filter_map(describe).next_back().unwrap().1;
        assert_eq!(
            last,
            "service 'svc' could not be resolved: no answer from DNS: no answer; retrying"
        );
        assert!(cache.get(&mut |_| {}).is_err());
    }

    #[test]
    fn until_dns_first_answers_every_get_asks() {
        let (resolve, calls) = scripted(vec![fail(), fail(), Ok(pods(&["10.0.0.1:1"]))]);
        let mut cache = Cache::new(resolve, None);
        assert!(cache.get(&mut |_| {}).is_err());
        assert!(cache.get(&mut |_| {}).is_err());
        assert!(cache.get(&mut |_| {}).is_ok());
        assert!(cache.get(&mut |_| {}).is_ok());
        assert_eq!(*calls.borrow(), 3);
    }

    #[test]
    fn the_watch_sees_the_background_list() {
        let mut n = 0;
        let resolve = move || {
            n += 1;
            let list: Vec<String> = (1..=n).map(|i| format!("10.0.0.{i}:1")).collect();
            let list: Vec<&str> = list.iter().map(String::as_str).collect();
            Ok(pods(&list))
        };
        let cache = Cache::new(resolve, Some(Duration::from_millis(1)));
        let mut watch = spawn(cache, |_| {});
        let end = Instant::now() + Duration::from_secs(10);
        while watch.current().addrs.len() < 3 {
            assert!(Instant::now() < end, "the list never grew");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(watch.started());
    }

    #[test]
    fn own_listen_address_is_never_a_destination() {
        let addrs =
            |l: &[&str]| -> Vec<SocketAddr> { l.iter().map(|a| a.parse().unwrap()).collect() };
        let list = addrs(&["10.0.0.1:12001", "10.0.0.2:12001", "10.0.0.1:12000"]);
        let local = |ip: IpAddr| ip == "10.0.0.1".parse::<IpAddr>().unwrap();
        let wildcard = "[::]:12001".parse().unwrap();
        let (kept, removed) = without_own(list.clone(), wildcard, local);
        assert_eq!(kept, addrs(&["10.0.0.2:12001", "10.0.0.1:12000"]));
        assert!(removed);
        let specific = "10.0.0.2:12001".parse().unwrap();
        let (kept, _) = without_own(list.clone(), specific, local);
        assert_eq!(kept, addrs(&["10.0.0.1:12001", "10.0.0.1:12000"]));
        let (kept, removed) = without_own(list.clone(), "[::]:9".parse().unwrap(), local);
        assert_eq!((kept, removed), (list, false));
    }

    #[test]
    fn local_addresses_are_bindable() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        // TEST-NET-3: never an address of this host.
        assert!(!is_local("203.0.113.77".parse().unwrap()));
    }
}
