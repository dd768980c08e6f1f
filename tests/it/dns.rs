//! The DNS client and the discovery policy against real DNS servers
//! (dnsmasq, a forwarder, and Knot, an authoritative-only server, on
//! 127.0.0.1 or ::1 with a port and directory of their own per test)
//! serving a headless Service the way a cluster does, and against tiny fake
//! servers for the failures they do not produce.

use crate::support;

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use udp_headless::discover::{self, DiscoverError, Family, Resolver, Sources, Target, MAYBE_CUT};
use udp_headless::dns::{self, LookupError, Query, RecordType};
use udp_headless::membership;
use udp_headless::resolv_conf::{self, ResolvConf};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";
const SERVICE: &str = "headless-udp.default.svc.cluster.local";
/// What a pod's resolv.conf says, less the server, which each test sets.
const POD_RESOLV_CONF: &str = "\
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5 timeout:2 attempts:2
";

/// A dnsmasq that answers only from its hosts file: NXDOMAIN for any other
/// name (`--local=/#/`), and it never forwards (`--no-resolv`, no server).
struct Dnsmasq {
    child: Child,
    dir: support::TempDir,
    addr: SocketAddr,
}

impl Dnsmasq {
    fn start(hosts: &str, extra: &[&str]) -> Dnsmasq {
        Dnsmasq::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), hosts, extra)
    }

    fn start_on(ip: IpAddr, hosts: &str, extra: &[&str]) -> Dnsmasq {
        assert!(
            Path::new(DNSMASQ).exists(),
            "dnsmasq not found: run scripts/install-deps.sh"
        );
        let dir = support::TempDir::new("dns");
        let hosts_file = dir.join("hosts");
        std::fs::write(&hosts_file, hosts).unwrap();
        let spawn = |addr: SocketAddr, log| {
            Command::new(DNSMASQ)
                .args([
                    "--no-daemon",
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--pid-file",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--local-ttl=5",
                    "--log-facility=-",
                ])
                // Answer NXDOMAIN for every other name, unless the test says
                // which domain is local (then: REFUSED outside it).
                .args((!extra.iter().any(|a| a.starts_with("--local="))).then_some("--local=/#/"))
                .arg(format!("--listen-address={ip}"))
                .arg(format!("--port={}", addr.port()))
                .arg(format!("--addn-hosts={}", hosts_file.display()))
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("cannot start dnsmasq")
        };
        // Ready once it has read the hosts file.
        let ready = format!("read {}", hosts_file.display());
        let (child, addr) = start_server("dnsmasq", &dir, ip, spawn, |log| log.contains(&ready));
        Dnsmasq { child, dir, addr }
    }

    fn log(&self) -> String {
        read_log(&self.dir)
    }

    /// A pod's resolv.conf pointing at this server.
    fn conf(&self) -> ResolvConf {
        pod_conf(self.addr)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a DNS server on a free port of `ip` (`spawn` runs it, its stderr
/// to `dir`/log) and waits until its log says it is `ready`. The port can
/// be taken between our check and its bind: then it exits, and another
/// port is tried, five times at most.
fn start_server(
    name: &str,
    dir: &Path,
    ip: IpAddr,
    mut spawn: impl FnMut(SocketAddr, std::fs::File) -> Child,
    ready: impl Fn(&str) -> bool,
) -> (Child, SocketAddr) {
    for _ in 0..5 {
        let addr = SocketAddr::new(ip, free_port(ip));
        let mut child = spawn(addr, std::fs::File::create(dir.join("log")).unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if ready(&read_log(dir)) {
                return (child, addr);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} not ready after 10s: {}", read_log(dir));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{name} did not start: {}", read_log(dir));
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}

fn free_port(ip: IpAddr) -> u16 {
    let tcp = TcpListener::bind((ip, 0)).unwrap();
    let port = tcp.local_addr().unwrap().port();
    // dnsmasq needs the UDP port too.
    match UdpSocket::bind((ip, port)) {
        Ok(_) => port,
        Err(_) => free_port(ip),
    }
}

fn pod_conf(server: SocketAddr) -> ResolvConf {
    let mut conf = resolv_conf::parse(POD_RESOLV_CONF);
    conf.nameservers = vec![server];
    conf
}

/// A resolv.conf whose one server is `server`, waiting at most a second.
fn impatient_conf(server: SocketAddr) -> ResolvConf {
    let mut conf = resolv_conf::parse("options timeout:1 attempts:1\n");
    conf.nameservers = vec![server];
    conf
}

fn pod_v4(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i as u32))
}

fn pod_v6(i: usize) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | (i as u128 + 1)))
}

/// A hosts file giving `name` the addresses `ip(0)` .. `ip(n - 1)`.
fn hosts(name: &str, n: usize, ip: fn(usize) -> IpAddr) -> String {
    (0..n).map(|i| format!("{} {name}\n", ip(i))).collect()
}

fn pods_v4(n: usize) -> HashSet<IpAddr> {
    (0..n).map(pod_v4).collect()
}

fn set(addrs: &[IpAddr]) -> HashSet<IpAddr> {
    addrs.iter().copied().collect()
}

fn lookup_v4(server: &Dnsmasq, name: &str) -> Result<dns::Found, LookupError> {
    dns::lookup(&Query::new(
        &server.conf(),
        name,
        &[RecordType::A, RecordType::Aaaa],
    ))
}

/// The short name through the search path finds every pod, nothing else.
fn finds_all(n: usize) {
    let server = Dnsmasq::start(&hosts(SERVICE, n, pod_v4), &[]);
    let found = lookup_v4(&server, "headless-udp").unwrap();
    assert_eq!(found.name, SERVICE);
    assert_eq!(found.addrs.len(), n, "duplicates or missing pods");
    assert_eq!(set(&found.addrs), pods_v4(n));
    assert!(!found.truncated);
}

#[test]
fn finds_2_pods() {
    finds_all(2);
}

#[test]
fn finds_48_pods_musl_would_stop_at() {
    finds_all(48);
}

#[test]
fn finds_49_pods() {
    finds_all(49);
}

#[test]
fn finds_1000_pods() {
    finds_all(1000);
}

#[test]
fn finds_4000_pods() {
    finds_all(4000);
}

#[test]
fn says_when_the_service_is_too_large_for_one_answer() {
    let server = Dnsmasq::start(&hosts(SERVICE, 4100, pod_v4), &[]);
    let found = lookup_v4(&server, "headless-udp").unwrap();
    assert!(found.truncated);
    // 64 KiB holds 4092 A records for this name.
    assert!(
        (4000..4100).contains(&found.addrs.len()),
        "{}",
        found.addrs.len()
    );
    assert!(set(&found.addrs).is_subset(&pods_v4(4100)));

    // dnsmasq rotates the order, so each answer cuts different pods: the
    // union with the system's list can hold a few more.
    let system = (0..MAYBE_CUT).map(pod_v4).collect::<Vec<_>>();
    let system = Ok(socket_addrs(&system));
    let pods = discover::decide(
        &Target::new("headless-udp", 9, Family::Auto),
        system,
        Ok(&server.conf()),
    );
    let pods = pods.unwrap();
    assert!((found.addrs.len()..4100).contains(&pods.addrs.len()));
    let why = pods.incomplete.expect("no incomplete warning");
    let want = format!(
        "service 'headless-udp' is too large for one DNS answer (64 KiB): found {} addresses",
        pods.addrs.len()
    );
    assert!(why.starts_with(&want), "{why}");
}

#[test]
fn costs_one_udp_and_one_tcp_query() {
    let server = Dnsmasq::start(&hosts(SERVICE, 1000, pod_v4), &["--log-queries"]);
    let found = lookup_v4(&server, "headless-udp").unwrap();
    assert_eq!(found.addrs.len(), 1000);
    let asked = format!("query[A] {SERVICE} from");
    // dnsmasq may write the log line just after answering.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut log = server.log();
    while log.matches(&asked).count() < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        log = server.log();
    }
    assert_eq!(log.matches("query[").count(), 2, "{log}");
    assert_eq!(log.matches(&asked).count(), 2, "{log}");
}

/// Expecting a large answer, the client asks over TCP at once: one query.
#[test]
fn tcp_first_costs_one_query() {
    let server = Dnsmasq::start(&hosts(SERVICE, 1000, pod_v4), &["--log-queries"]);
    let conf = server.conf();
    let query = Query {
        tcp_first: true,
        ..Query::new(&conf, "headless-udp", &[RecordType::A])
    };
    let found = dns::lookup(&query).unwrap();
    assert_eq!(found.addrs.len(), 1000);
    assert!(!found.truncated);
    let asked = format!("query[A] {SERVICE} from");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut log = server.log();
    while !log.contains(&asked) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        log = server.log();
    }
    // Give a second query, were there one, the time to be logged too.
    thread::sleep(Duration::from_millis(100));
    let log = server.log();
    assert_eq!(log.matches("query[").count(), 1, "{log}");
}

#[test]
fn dual_stack_picks_one_family() {
    let mut both = hosts(SERVICE, 60, pod_v4);
    both += &hosts(SERVICE, 60, pod_v6);
    let v6_only = "v6-only.default.svc.cluster.local";
    both += &hosts(v6_only, 3, pod_v6);
    let server = Dnsmasq::start(&both, &[]);
    let conf = server.conf();

    let auto = dns::lookup(&Query::new(
        &conf,
        "headless-udp",
        &[RecordType::A, RecordType::Aaaa],
    ))
    .unwrap();
    assert_eq!(set(&auto.addrs), pods_v4(60));
    let v6 = dns::lookup(&Query::new(&conf, "headless-udp", &[RecordType::Aaaa])).unwrap();
    assert_eq!(set(&v6.addrs), (0..60).map(pod_v6).collect());
    let auto = dns::lookup(&Query::new(
        &conf,
        "v6-only",
        &[RecordType::A, RecordType::Aaaa],
    ))
    .unwrap();
    assert_eq!(set(&auto.addrs), (0..3).map(pod_v6).collect());
    let v4 = dns::lookup(&Query::new(&conf, "v6-only", &[RecordType::A])).unwrap_err();
    assert_eq!(
        v4,
        LookupError::NoRecords("v6-only.default.svc.cluster.local".into(), "A".into())
    );

    // Through the policy, with what musl would have returned: 48 mixed.
    let mut system: Vec<IpAddr> = (0..24).map(pod_v6).collect();
    system.extend((0..24).map(pod_v4));
    for (family, want) in [
        (Family::Auto, pods_v4(60)),
        (Family::Ipv4, pods_v4(60)),
        (Family::Ipv6, (0..60).map(pod_v6).collect()),
    ] {
        let system = Ok(socket_addrs(&system));
        let pods =
            discover::decide(&Target::new("headless-udp", 9, family), system, Ok(&conf)).unwrap();
        let got: Vec<IpAddr> = pods.addrs.iter().map(SocketAddr::ip).collect();
        assert_eq!(got.len(), want.len(), "{family:?}");
        assert_eq!(set(&got), want, "{family:?}");
        assert!(pods.addrs.iter().all(|a| a.port() == 9));
        assert_eq!(pods.incomplete, None);
    }
}

#[test]
fn follows_a_cname() {
    let target = format!("--cname=alias.default.svc.cluster.local,{SERVICE}");
    let server = Dnsmasq::start(&hosts(SERVICE, 100, pod_v4), &[&target]);
    let found = lookup_v4(&server, "alias").unwrap();
    assert_eq!(found.name, SERVICE);
    assert_eq!(set(&found.addrs), pods_v4(100));
}

#[test]
fn no_ready_pods_is_not_no_such_name() {
    let txt_only = "--txt-record=empty.default.svc.cluster.local,no pods";
    let server = Dnsmasq::start(&hosts(SERVICE, 2, pod_v4), &[txt_only]);
    let error = lookup_v4(&server, "empty").unwrap_err();
    assert_eq!(
        error,
        LookupError::NoRecords("empty.default.svc.cluster.local".into(), "A or AAAA".into())
    );
    let message = discover::decide(
        &Target::new("empty", 9, Family::Auto),
        Err(no_system()),
        Ok(&server.conf()),
    )
    .unwrap_err();
    assert_eq!(
        message,
        DiscoverError::Lookup {
            service: "empty".into(),
            error
        }
    );
    assert_eq!(
        message.to_string(),
        "service 'empty' has no ready pods: DNS knows \
         empty.default.svc.cluster.local but it has no A or AAAA records"
    );
}

#[test]
fn not_found_through_the_whole_search_path() {
    let server = Dnsmasq::start(&hosts(SERVICE, 2, pod_v4), &[]);
    let error = lookup_v4(&server, "no-such-svc").unwrap_err();
    let tried = [
        "no-such-svc.default.svc.cluster.local",
        "no-such-svc.svc.cluster.local",
        "no-such-svc.cluster.local",
        "no-such-svc",
    ];
    assert_eq!(
        error,
        LookupError::NotFound(tried.map(String::from).to_vec())
    );
    let message = discover::decide(
        &Target::new("no-such-svc", 9, Family::Auto),
        Err(no_system()),
        Ok(&server.conf()),
    )
    .unwrap_err();
    assert_eq!(
        message,
        DiscoverError::Lookup {
            service: "no-such-svc".into(),
            error
        }
    );
}

#[test]
fn search_path_order_and_absolute_names() {
    let server = Dnsmasq::start(&hosts(SERVICE, 2, pod_v4), &["--log-queries"]);
    let found = lookup_v4(&server, &format!("{SERVICE}.")).unwrap();
    assert_eq!(found.addrs.len(), 2);
    let error = lookup_v4(&server, "headless-udp.").unwrap_err();
    assert_eq!(error, LookupError::NotFound(vec!["headless-udp".into()]));
    // 4 dots < ndots:5: the search domains go first, though the name is
    // already complete (why Kubernetes DNS sees so many NXDOMAINs).
    let found = lookup_v4(&server, SERVICE).unwrap();
    assert_eq!(found.addrs.len(), 2);
    // dnsmasq logs asynchronously to our lookups: wait for all six lines.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log();
        if log.matches("query[A] ").count() >= 6 || Instant::now() > deadline {
            break log;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let asked: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("query[A] ").nth(1))
        .filter_map(|l| l.split(" from").next())
        .collect();
    assert_eq!(
        asked,
        [
            SERVICE,
            "headless-udp",
            "headless-udp.default.svc.cluster.local.default.svc.cluster.local",
            "headless-udp.default.svc.cluster.local.svc.cluster.local",
            "headless-udp.default.svc.cluster.local.cluster.local",
            SERVICE,
        ]
    );
}

#[test]
fn nameserver_over_ipv6() {
    let server = Dnsmasq::start_on(
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        &hosts(SERVICE, 100, pod_v4),
        &[],
    );
    let found = lookup_v4(&server, "headless-udp").unwrap();
    assert_eq!(set(&found.addrs), pods_v4(100));
}

#[test]
fn the_next_server_answers_when_the_first_is_down() {
    let server = Dnsmasq::start(&hosts(SERVICE, 50, pod_v4), &[]);
    let mut conf = server.conf();
    conf.nameservers.insert(0, nothing_listening());
    let found = dns::lookup(&Query::new(&conf, "headless-udp", &[RecordType::A])).unwrap();
    assert_eq!(set(&found.addrs), pods_v4(50));
}

#[test]
fn nothing_listening_fails_fast() {
    let dead = nothing_listening();
    // A 5 s timeout that a refused connection must not wait out.
    let mut conf = impatient_conf(dead);
    conf.timeout = Duration::from_secs(5);
    let started = Instant::now();
    let error = dns::lookup(&Query::new(&conf, "headless-udp", &[RecordType::A]));
    assert!(started.elapsed() < Duration::from_secs(4));
    let LookupError::Unreachable(detail) = error.unwrap_err() else {
        panic!("not an unreachable error");
    };
    assert_eq!(
        detail,
        format!("nothing listens on {dead} (connection refused) for headless-udp A")
    );
}

#[test]
fn a_silent_server_times_out_within_the_timeout() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let conf = impatient_conf(silent.local_addr().unwrap());
    let started = Instant::now();
    let error = dns::lookup(&Query::new(&conf, "headless-udp", &[RecordType::A])).unwrap_err();
    let took = started.elapsed();
    // Waits the 1 s timeout, and no longer than a loaded machine might add.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let message = format!("service 'headless-udp' {error}");
    assert_eq!(
        message,
        format!(
            "service 'headless-udp' could not be resolved: no answer from DNS: \
             {} did not answer (1 × 1s) for headless-udp A",
            conf.nameservers[0]
        )
    );
}

/// A lookup's own deadline, shorter than the servers' timeouts, ends the
/// wait: the message says so instead of claiming the whole timeouts.
#[test]
fn a_deadline_before_the_timeouts_is_what_the_message_names() {
    let (first, second) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let mut conf = impatient_conf(first.local_addr().unwrap());
    conf.nameservers.push(second.local_addr().unwrap());
    conf.timeout = Duration::from_secs(5);
    conf.attempts = 2;
    let started = Instant::now();
    let error = dns::lookup(&Query {
        deadline: Some(started + Duration::from_millis(300)),
        ..Query::new(&conf, "headless-udp", &[RecordType::A])
    })
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4));
    let LookupError::Unreachable(detail) = error else {
        panic!("{error:?}");
    };
    assert_eq!(
        detail,
        format!(
            "{} did not answer within the time limit; {} was not asked before the time \
             limit for headless-udp A",
            conf.nameservers[0], conf.nameservers[1]
        )
    );
}

#[test]
fn garbage_answers_are_malformed() {
    // Not even a header.
    let short = fake_server(|_| Some(b"nonsense".to_vec()));
    let error = dns::lookup(&Query::new(
        &impatient_conf(short),
        "headless-udp",
        &[RecordType::A],
    ));
    let Err(LookupError::Malformed(detail)) = error else {
        panic!("{error:?}");
    };
    assert!(detail.contains("shorter than a DNS header"), "{detail}");

    // A header, but another id and question: skipped until the deadline.
    let other = fake_server(|query| {
        let mut garbage =
            b"\x00\x00\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x03foo\x00\x00\x01\x00\x01".to_vec();
        garbage[..2].copy_from_slice(&[query[0] ^ 0xff, query[1]]);
        Some(garbage)
    });
    let error = dns::lookup(&Query::new(
        &impatient_conf(other),
        "headless-udp",
        &[RecordType::A],
    ));
    let Err(LookupError::Malformed(detail)) = error else {
        panic!("{error:?}");
    };
    assert!(detail.contains("another query"), "{detail}");
}

#[test]
fn a_corrupt_answer_to_our_query_is_malformed() {
    // Right id and question, then an A record claiming 200 data bytes.
    let liar = fake_server(|query| {
        let record = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 200, 10, 0, 0, 1];
        Some(reply_to(query, 0, &[record.to_vec()]))
    });
    let started = Instant::now();
    let error = dns::lookup(&Query::new(
        &impatient_conf(liar),
        "headless-udp",
        &[RecordType::A],
    ));
    assert!(started.elapsed() < Duration::from_millis(900));
    let Err(LookupError::Malformed(detail)) = error else {
        panic!("{error:?}");
    };
    assert!(detail.contains("run past the end"), "{detail}");
}

#[test]
fn server_failure_and_refused() {
    let servfail = fake_server(|query| Some(reply_to(query, 2, &[])));
    let mut conf = impatient_conf(servfail);
    conf.search = vec!["default.svc.cluster.local".into()];
    let error = dns::lookup(&Query::new(&conf, "headless-udp", &[RecordType::A])).unwrap_err();
    let LookupError::ServerFailure(detail) = &error else {
        panic!("{error:?}");
    };
    assert!(detail.contains("SERVFAIL"), "{detail}");
    let message = format!("{error}");
    assert!(message.starts_with("could not be resolved: DNS server failure: "));

    let refused = fake_server(|query| Some(reply_to(query, 5, &[])));
    let error = dns::lookup(&Query::new(
        &impatient_conf(refused),
        "headless-udp",
        &[RecordType::A],
    ));
    let Err(LookupError::Refused(detail)) = error else {
        panic!("{error:?}");
    };
    assert!(
        detail.contains(&format!("{refused} answered REFUSED")),
        "{detail}"
    );
}

#[test]
fn asks_for_a_cname_target_the_answer_left_out() {
    let server = fake_server(|query| {
        let alias = dns::wire::encode_name("alias.example").unwrap();
        let target = dns::wire::encode_name("target.example").unwrap();
        let question = &query[12..query.len() - 4];
        if question == alias {
            let mut cname = vec![0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, target.len() as u8];
            cname.extend(&target);
            Some(reply_to(query, 0, &[cname]))
        } else if question == target {
            let a = |last| vec![0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 9, 9, last];
            Some(reply_to(query, 0, &[a(1), a(2)]))
        } else {
            Some(reply_to(query, 3, &[]))
        }
    });
    let found = dns::lookup(&Query::new(
        &impatient_conf(server),
        "alias.example",
        &[RecordType::A],
    ))
    .unwrap();
    assert_eq!(found.name, "target.example");
    assert_eq!(
        found.addrs,
        ["10.9.9.1", "10.9.9.2"].map(|a| a.parse::<IpAddr>().unwrap())
    );
}

#[test]
fn policy_checks_a_long_list_with_dns_and_sends_to_the_union() {
    let server = Dnsmasq::start(&hosts(SERVICE, 1000, pod_v4), &[]);
    let all: Vec<IpAddr> = (0..1000).map(pod_v4).collect();
    // What musl returns: the first 48, plus one DNS does not know (hosts).
    let mut system = socket_addrs(&all[..MAYBE_CUT]);
    system.push(SocketAddr::from(([192, 0, 2, 1], 9)));
    let pods = discover::decide(
        &Target::new("headless-udp", 9, Family::Auto),
        Ok(system),
        Ok(&server.conf()),
    )
    .unwrap();
    assert_eq!(pods.addrs.len(), 1001);
    assert_eq!(pods.addrs[..MAYBE_CUT], socket_addrs(&all[..MAYBE_CUT]));
    assert_eq!(pods.incomplete, None);
    // dnsmasq serves its hosts with --local-ttl=5.
    assert_eq!(pods.ttl, Some(Duration::from_secs(5)));
}

#[test]
fn policy_trusts_a_short_list_without_asking() {
    // A server that records whether it was asked anything.
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let conf = impatient_conf(server.local_addr().unwrap());
    let system = socket_addrs(&["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()]);
    let pods = discover::decide(
        &Target::new("x", 9, Family::Auto),
        Ok(system.clone()),
        Ok(&conf),
    )
    .unwrap();
    assert_eq!(pods.addrs, system);
    assert_eq!(pods.incomplete, None);
    let asked = server.recv(&mut [0; 512]);
    assert_eq!(
        asked.unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "DNS was asked"
    );
}

#[test]
fn policy_warns_when_a_long_list_cannot_be_checked() {
    let system = socket_addrs(&(0..MAYBE_CUT).map(pod_v4).collect::<Vec<_>>());
    let conf = impatient_conf(nothing_listening());
    let pods = discover::decide(
        &Target::new("svc", 9, Family::Auto),
        Ok(system.clone()),
        Ok(&conf),
    )
    .unwrap();
    assert_eq!(pods.addrs, system);
    let why = pods.incomplete.expect("no warning");
    assert!(
        why.starts_with("service 'svc': found 48 addresses, maybe not all"),
        "{why}"
    );
    assert!(why.contains("nothing listens on"), "{why}");

    let no_conf = Err("cannot read /etc/resolv.conf: No such file");
    let pods = discover::decide(
        &Target::new("svc", 9, Family::Auto),
        Ok(system.clone()),
        no_conf,
    )
    .unwrap();
    assert!(pods
        .incomplete
        .unwrap()
        .contains("cannot read /etc/resolv.conf"));
}

#[test]
fn policy_keeps_a_long_list_dns_does_not_know() {
    // 48 addresses from /etc/hosts, say: DNS has no such name.
    let server = Dnsmasq::start(&hosts(SERVICE, 2, pod_v4), &[]);
    let system = socket_addrs(&(0..MAYBE_CUT).map(pod_v4).collect::<Vec<_>>());
    let pods = discover::decide(
        &Target::new("hosts-only", 9, Family::Auto),
        Ok(system.clone()),
        Ok(&server.conf()),
    );
    let pods = pods.unwrap();
    assert_eq!(pods.addrs, system);
    assert_eq!(pods.incomplete, None);
}

#[test]
fn policy_uses_dns_when_the_system_resolver_fails() {
    let server = Dnsmasq::start(&hosts(SERVICE, 3, pod_v4), &[]);
    let pods = discover::decide(
        &Target::new("headless-udp", 9, Family::Auto),
        Err(no_system()),
        Ok(&server.conf()),
    )
    .unwrap();
    assert_eq!(pods.addrs.len(), 3);

    let no_servers = ResolvConf::default();
    let error = discover::decide(
        &Target::new("svc", 9, Family::Auto),
        Err(no_system()),
        Ok(&no_servers),
    );
    let error = error.unwrap_err();
    assert!(matches!(&error, DiscoverError::NoDns { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "cannot resolve service 'svc': no such host (resolv.conf lists no nameserver)"
    );
    let error = discover::decide(
        &Target::new("svc", 9, Family::Auto),
        Err(no_system()),
        Err("cannot read it"),
    );
    assert_eq!(
        error.unwrap_err(),
        DiscoverError::NoDns {
            service: "svc".into(),
            system: "no such host".into(),
            why: "cannot read it".into()
        }
    );
}

#[test]
fn literals_never_reach_dns() {
    let conf = impatient_conf(nothing_listening());
    let with_conf = |service| {
        let conf = conf.clone();
        let system = |_: &str, _| unreachable!("a literal needs no resolver");
        let sources = Sources::new(system, move || Ok(conf.clone()));
        Resolver::with(Target::new(service, 9, Family::Auto), sources).resolve()
    };
    let pods = with_conf("127.0.0.1").unwrap();
    assert_eq!(pods.addrs, [SocketAddr::from(([127, 0, 0, 1], 9))]);
    let pods = with_conf("::1").unwrap();
    assert_eq!(pods.addrs, ["[::1]:9".parse::<SocketAddr>().unwrap()]);
}

fn no_system() -> io::Error {
    io::Error::other("no such host")
}

fn socket_addrs(ips: &[IpAddr]) -> Vec<SocketAddr> {
    ips.iter().map(|&ip| SocketAddr::new(ip, 9)).collect()
}

/// A loopback port with nothing bound: queries get ICMP port unreachable.
fn nothing_listening() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// A UDP "DNS server" on loopback answering each query with `answer`'s
/// reply. Lives until the test process ends.
fn fake_server(answer: fn(&[u8]) -> Option<Vec<u8>>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            if let Some(reply) = answer(&buf[..len]) {
                let _ = socket.send_to(&reply, from);
            }
        }
    });
    addr
}

/// `query` turned into an answer with `rcode` and these answer records.
fn reply_to(query: &[u8], rcode: u8, answers: &[Vec<u8>]) -> Vec<u8> {
    let mut reply = query.to_vec();
    reply[2] = 0x81;
    reply[3] = 0x80 | rcode;
    reply[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for record in answers {
        reply.extend(record);
    }
    reply
}

const KNOTD: &str = "/usr/sbin/knotd";

/// Knot DNS, authoritative for `cluster.local` only, as a cluster DNS that
/// does not recurse: REFUSED for any name outside its zone.
struct Knot {
    child: Child,
    /// Its config, zone and log; removed after the server is stopped.
    _dir: support::TempDir,
    addr: SocketAddr,
}

impl Knot {
    /// `hosts` as for dnsmasq (`IP NAME` lines, names in cluster.local);
    /// `extra`: more zone-file lines.
    fn start(hosts: &str, extra: &[&str]) -> Knot {
        assert!(
            Path::new(KNOTD).exists(),
            "knotd not found: run scripts/install-deps.sh"
        );
        let dir = support::TempDir::new("knot");
        let mut zone = String::from(
            "$ORIGIN cluster.local.\n$TTL 5\n\
             @ SOA ns hostmaster 1 3600 600 86400 5\n@ NS ns\nns A 127.0.0.1\n",
        );
        for line in hosts.lines() {
            let (ip, name) = line.split_once(' ').unwrap();
            let kind = if ip.contains(':') { "AAAA" } else { "A" };
            zone.push_str(&format!("{name}. {kind} {ip}\n"));
        }
        for line in extra {
            zone.push_str(line);
            zone.push('\n');
        }
        std::fs::write(dir.join("cluster.local.zone"), zone).unwrap();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let spawn = |addr: SocketAddr, log| {
            let d = dir.display();
            let conf = format!(
                "server:\n  rundir: \"{d}\"\n  listen: {ip}@{port}\n\
                 database:\n  storage: \"{d}\"\n\
                 control:\n  listen: \"{d}/knot.sock\"\n\
                 log:\n  - target: stderr\n    any: info\n\
                 template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n    \
                 zonefile-sync: -1\n    journal-content: none\n\
                 zone:\n  - domain: cluster.local\n",
                port = addr.port()
            );
            std::fs::write(dir.join("knot.conf"), conf).unwrap();
            Command::new(KNOTD)
                .arg("-c")
                .arg(dir.join("knot.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("cannot start knotd")
        };
        // Ready once the zone is loaded and the server started.
        let ready =
            |log: &str| log.contains("[cluster.local.] loaded") && log.contains("server started");
        let (child, addr) = start_server("knotd", &dir, ip, spawn, ready);
        Knot {
            child,
            _dir: dir,
            addr,
        }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Either server, for the tests that run against both.
trait Server {
    fn addr(&self) -> SocketAddr;
    fn conf(&self) -> ResolvConf {
        pod_conf(self.addr())
    }
}

impl Server for Dnsmasq {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Server for Knot {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The same records from dnsmasq, configured as the only authority for
/// cluster.local (REFUSED elsewhere, as it has no upstream), and from Knot.
fn both_servers(hosts: &str, empty_names: &[&str]) -> Vec<(&'static str, Box<dyn Server>)> {
    let mut dnsmasq_args = vec!["--local=/cluster.local/".to_string()];
    let mut zone = Vec::new();
    for name in empty_names {
        dnsmasq_args.push(format!("--txt-record={name},no pods"));
        zone.push(format!("{name}. TXT \"no pods\""));
    }
    let dnsmasq_args: Vec<&str> = dnsmasq_args.iter().map(String::as_str).collect();
    let zone: Vec<&str> = zone.iter().map(String::as_str).collect();
    vec![
        ("dnsmasq", Box::new(Dnsmasq::start(hosts, &dnsmasq_args))),
        ("knot", Box::new(Knot::start(hosts, &zone))),
    ]
}

fn lookup_a(server: &dyn Server, name: &str) -> Result<dns::Found, LookupError> {
    dns::lookup(&Query::new(
        &server.conf(),
        name,
        &[RecordType::A, RecordType::Aaaa],
    ))
}

/// Issue #8, defect 2: an authoritative-only server answers REFUSED for the
/// bare name at the end of the search list; the earlier, more specific
/// NODATA or NXDOMAIN is the verdict.
#[test]
fn refused_for_the_bare_name_does_not_hide_nodata_or_nxdomain() {
    let empty = "empty.default.svc.cluster.local";
    for (kind, server) in both_servers(&hosts(SERVICE, 3, pod_v4), &[empty]) {
        let server = server.as_ref();
        // The bare names are indeed refused by this server.
        let bare = dns::lookup(&Query::new(
            &impatient_conf(server.addr()),
            "empty.",
            &[RecordType::A],
        ));
        assert!(
            matches!(bare, Err(LookupError::Refused(_))),
            "{kind}: {bare:?}"
        );

        let found = lookup_a(server, "headless-udp").unwrap();
        assert_eq!(set(&found.addrs), pods_v4(3), "{kind}");
        assert_eq!(
            lookup_a(server, "empty"),
            Err(LookupError::NoRecords(empty.into(), "A or AAAA".into())),
            "{kind}"
        );
        let tried = [
            "no-such-svc.default.svc.cluster.local",
            "no-such-svc.svc.cluster.local",
            "no-such-svc.cluster.local",
        ];
        assert_eq!(
            lookup_a(server, "no-such-svc"),
            Err(LookupError::NotFound(tried.map(String::from).to_vec())),
            "{kind}"
        );
        // Refused for every name asked: then it is the verdict.
        let mut conf = server.conf();
        conf.search = vec!["example.org".into()];
        let error = dns::lookup(&Query::new(&conf, "web", &[RecordType::A]));
        assert!(
            matches!(error, Err(LookupError::Refused(_))),
            "{kind}: {error:?}"
        );
    }
}

/// Forwards UDP to `server` and answers nothing over TCP, as a cluster
/// whose NetworkPolicy allows UDP 53 but forgot TCP 53. `tcp_listens`:
/// a listener that never accepts (connections hang) instead of none
/// (connections refused). Lives until the test process ends.
fn udp_only_front(server: SocketAddr, tcp_listens: bool) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = front.local_addr().unwrap();
    if tcp_listens {
        let listener = TcpListener::bind(addr).unwrap();
        // Never accepted, never closed: connections wait in the backlog.
        std::mem::forget(listener);
    }
    thread::spawn(move || {
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0; 65_536];
        while let Ok((len, client)) = front.recv_from(&mut buf) {
            if back.send_to(&buf[..len], server).is_err() {
                continue;
            }
            if let Ok(len) = back.recv(&mut buf) {
                let _ = front.send_to(&buf[..len], client);
            }
        }
    });
    addr
}

/// Issue #8, defect 3: UDP answers (truncated: 100 pods) but TCP does not;
/// the error says that TCP is what failed.
#[test]
fn udp_answers_but_tcp_is_blocked() {
    for (kind, server) in both_servers(&hosts(SERVICE, 100, pod_v4), &[]) {
        // Through the front, UDP works: a small answer resolves.
        for tcp_listens in [false, true] {
            let front = udp_only_front(server.addr(), tcp_listens);
            let mut conf = impatient_conf(front);
            conf.search = pod_conf(front).search;
            conf.ndots = 5;
            for tcp_first in [false, true] {
                let query = Query {
                    tcp_first,
                    ..Query::new(&conf, "headless-udp", &[RecordType::A])
                };
                let error = dns::lookup(&query);
                let Err(LookupError::TcpFailed(detail)) = &error else {
                    panic!("{kind}, TCP listening {tcp_listens}, first {tcp_first}: {error:?}");
                };
                assert!(detail.contains(&front.to_string()), "{detail}");
                let message = error.unwrap_err().to_string();
                assert!(message.contains("over TCP failed"), "{message}");
            }
        }
    }
}

/// Issue #8, defect 1: a system resolver that resolved one name (musl
/// ignores LOCALDOMAIN) and DNS that resolved another (the search list
/// from LOCALDOMAIN) must not be mixed: one broadcast, one Service.
#[test]
fn two_answers_for_two_names_are_not_mixed() {
    let name_a = "web.ns-a.svc.cluster.local";
    let name_b = "web.ns-b.svc.cluster.local";
    let ip_a = |i: usize| IpAddr::V4(Ipv4Addr::from(0x0a01_0001 + i as u32));
    let ip_b = |i: usize| IpAddr::V4(Ipv4Addr::from(0x0a02_0001 + i as u32));
    let records = hosts(name_a, 60, ip_a) + &hosts(name_b, 60, ip_b);
    for (kind, server) in both_servers(&records, &[]) {
        // What musl returns for `web` with `search ns-a.svc.cluster.local`.
        let system: Vec<IpAddr> = (0..MAYBE_CUT).map(ip_a).collect();
        // Our client, told LOCALDOMAIN=ns-b.svc.cluster.local.
        let mut conf = server.conf();
        conf.search = vec!["ns-b.svc.cluster.local".into()];
        let pods = discover::decide(
            &Target::new("web", 9, Family::Auto),
            Ok(socket_addrs(&system)),
            Ok(&conf),
        )
        .unwrap();
        let got: HashSet<IpAddr> = pods.addrs.iter().map(SocketAddr::ip).collect();
        let all_a: HashSet<IpAddr> = (0..60).map(ip_a).collect();
        let all_b: HashSet<IpAddr> = (0..60).map(ip_b).collect();
        assert!(
            got.is_subset(&all_a) || got.is_subset(&all_b),
            "{kind}: pods of both names: {} of {name_a}, {} of {name_b}",
            got.intersection(&all_a).count(),
            got.intersection(&all_b).count()
        );
        // Not knowing which list is whole, it says so (exit 4).
        let why = pods.incomplete.expect("no warning");
        assert!(why.contains("LOCALDOMAIN"), "{kind}: {why}");
    }
}

/// Issue #8, defect 3, the other half: a system resolver that hangs (glibc
/// retrying over a TCP connection that is dropped) cannot hold a broadcast
/// past the time limit, and our own lookup's verdict, TCP failed, is the
/// error.
#[test]
fn a_hanging_system_resolver_is_cut_at_the_limit() {
    // Hangs until released: an hour, for all the lookup knows.
    let hanging = |conf: Result<ResolvConf, String>| {
        let (release, wait) = mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        let resolver = move |_: &str, _| -> io::Result<Vec<SocketAddr>> {
            let _ = wait.lock().unwrap().recv();
            Ok(Vec::new())
        };
        (release, Sources::new(resolver, move || conf.clone()))
    };
    let let_go = |sources: &Sources, release: mpsc::Sender<()>| {
        assert!(sources.busy());
        drop(release);
        let deadline = Instant::now() + Duration::from_secs(10);
        while sources.busy() {
            assert!(
                Instant::now() < deadline,
                "the released resolver never ended"
            );
            thread::sleep(Duration::from_millis(5));
        }
    };
    let server = Knot::start(&hosts(SERVICE, 100, pod_v4), &[]);
    let front = udp_only_front(server.addr(), true);
    let mut conf = pod_conf(front);
    conf.timeout = Duration::from_secs(1);
    let limit = Duration::from_secs(3);
    let (release, hang) = hanging(Ok(conf));
    let resolve = |service, family, sources: &Sources| {
        Resolver::with(Target::new(service, 9, family), sources.clone()).resolve_within(limit)
    };
    let started = Instant::now();
    let error = resolve("headless-udp", Family::Auto, &hang).unwrap_err();
    // Bounded: the resolver would have hung for as long as it was held.
    assert!(started.elapsed() < Duration::from_secs(60));
    let DiscoverError::Lookup {
        error: LookupError::TcpFailed(_),
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    // Meanwhile only DNS is asked, at once; what it cannot settle is no
    // verdict on the pods (the system resolver might know the name).
    let not_asked =
        |_: &str, _| -> io::Result<Vec<SocketAddr>> { panic!("the busy resolver was asked") };
    let started = Instant::now();
    let busy = |service, family, conf: Result<ResolvConf, String>| {
        let sources = hang.answering(not_asked, move || conf.clone());
        resolve(service, family, &sources).unwrap_err()
    };
    let error = busy("web", Family::Auto, Err("no resolv.conf".into()));
    assert_eq!(
        error.to_string(),
        "cannot resolve service 'web': the system resolver is still busy with an earlier \
         lookup (no resolv.conf)"
    );
    assert!(!membership::says_no_pods(&error));
    let error = busy("nosuch", Family::Auto, Ok(pod_conf(server.addr())));
    let message = error.to_string();
    assert!(
        message.starts_with(
            "cannot resolve service 'nosuch': the system resolver is still busy with an \
             earlier lookup (DNS: the service was not found: "
        ),
        "{message}"
    );
    assert!(!membership::says_no_pods(&error));
    // A name DNS has, without addresses (here: of IPv6), is no pods as ever.
    let error = busy("headless-udp", Family::Ipv6, Ok(pod_conf(server.addr())));
    assert!(membership::says_no_pods(&error), "{error}");
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    let_go(&hang, release);
    // Nothing to ask but the hanging resolver: out of time, at the limit.
    let (release, hang) = hanging(Err("no resolv.conf".into()));
    let started = Instant::now();
    let error = resolve("web", Family::Auto, &hang);
    assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    assert_eq!(
        error.unwrap_err(),
        DiscoverError::TimedOut {
            service: "web".into(),
            after: limit
        }
    );
    let_go(&hang, release);
}

/// When the system resolver's answer needs no check (a small Service, a
/// name of /etc/hosts), DNS is not asked by us at all (issue 21: a small
/// Service costs the cluster DNS only the system resolver's queries), so
/// a DNS server that does not answer cannot hold the broadcast up, whether
/// it is silent over UDP or over TCP (UDP answers truncated).
#[test]
fn a_small_system_answer_is_not_held_up_by_a_silent_dns() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = Knot::start(&hosts(SERVICE, 100, pod_v4), &[]);
    let tcp_silent = udp_only_front(server.addr(), true);
    let pod: SocketAddr = "10.0.0.1:9".parse().unwrap();
    for (dns, delay) in [
        (silent.local_addr().unwrap(), Duration::ZERO),
        (silent.local_addr().unwrap(), Duration::from_millis(300)),
        (tcp_silent, Duration::from_millis(300)),
    ] {
        let mut conf = pod_conf(dns);
        conf.timeout = Duration::from_secs(5);
        let system = move |_: &str, _| {
            thread::sleep(delay);
            Ok(vec![pod])
        };
        let sources = Sources::new(system, move || Ok(conf.clone()));
        let target = Target::new("headless-udp", 9, Family::Auto);
        let started = Instant::now();
        let pods = Resolver::with(target, sources).resolve().unwrap();
        assert_eq!(pods.addrs, vec![pod]);
        // Waiting for ours would take the 5 s timeout (per attempt).
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{dns} after {delay:?}: took {took:?}"
        );
    }
    // Not asked: the system resolver's answer was enough.
    silent.set_nonblocking(true).unwrap();
    assert!(
        silent.recv(&mut [0; 512]).is_err(),
        "a small answer cost DNS a query of ours"
    );
}

/// The TTL a lookup reports is the smallest of the records it used: the
/// CNAME and the addresses, not the unrelated ones (relay caches by it).
#[test]
fn ttl_is_the_smallest_of_the_records_used() {
    let server = Knot::start(
        "",
        &[
            "alias.default.svc.cluster.local. 30 CNAME headless-udp.default.svc.cluster.local.",
            "headless-udp.default.svc.cluster.local. 20 A 10.0.0.1",
            "headless-udp.default.svc.cluster.local. 20 A 10.0.0.2",
            "other.default.svc.cluster.local. 1 A 10.0.0.3",
            "short-alias.default.svc.cluster.local. 3 CNAME headless-udp.default.svc.cluster.local.",
        ],
    );
    let ttl = |name| lookup_a(&server, name).unwrap().ttl;
    assert_eq!(ttl("headless-udp"), Duration::from_secs(20));
    assert_eq!(ttl("alias"), Duration::from_secs(20));
    assert_eq!(ttl("short-alias"), Duration::from_secs(3));
    // Through discovery: DNS was asked (the system resolver failed).
    let conf = server.conf();
    let pods = discover::decide(
        &Target::new("short-alias", 9, Family::Auto),
        Err(no_system()),
        Ok(&conf),
    );
    assert_eq!(pods.unwrap().ttl, Some(Duration::from_secs(3)));
}

/// Runs the shell commands `then` in `unshare` (its environment set) with
/// a network and mount namespace of its own: loopback holds 10.0.0.0/8,
/// /etc/resolv.conf searches ns-a.svc.cluster.local (ndots 5), and a
/// dnsmasq on 127.0.0.1 (log: $DIR/dns.log, with `dnsmasq_args`) answers
/// for cluster.local from `hosts`. Bounds: 10 s for dnsmasq to start, and
/// 180 s in all; `then` bounds its own commands.
fn with_cluster_dns(
    dir: &support::TempDir,
    hosts: &str,
    dnsmasq_args: &str,
    then: &str,
    unshare: &mut Command,
) -> std::process::Output {
    std::fs::write(dir.join("hosts"), hosts).unwrap();
    std::fs::write(
        dir.join("resolv.conf"),
        "search ns-a.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 127.0.0.1\noptions ndots:5 timeout:2 attempts:2\n",
    )
    .unwrap();
    let script = format!(
        "set -e; ip link set lo up; ip route add local 10.0.0.0/8 dev lo; \
        mount --bind \"$DIR/resolv.conf\" /etc/resolv.conf; \
        /usr/sbin/dnsmasq --no-daemon --conf-file=/dev/null --pid-file= \
            --no-resolv --no-hosts --local=/cluster.local/ --bind-interfaces \
            --listen-address=127.0.0.1 --port=53 --addn-hosts=\"$DIR/hosts\" \
            {dnsmasq_args} --log-facility=\"$DIR/dns.log\" & dns=$!; trap 'kill $dns' EXIT; \
        timeout 10 sh -c 'until grep -qs \"read $DIR/hosts\" \"$DIR/dns.log\"; do sleep 0.02; done'; \
        {then}"
    );
    support::output_within(
        unshare
            .args(["--net", "--mount", "sh", "-c", &script])
            .env("DIR", &**dir),
        Duration::from_secs(180),
    )
}

/// Issue #8, defect 1, end to end: the real senders, glibc's and the static
/// musl one, in a network and mount namespace of their own whose
/// resolv.conf searches ns-a while LOCALDOMAIN says ns-b. Each sends to the
/// 60 pods of exactly one of the two Services: glibc's honours LOCALDOMAIN
/// (ns-b), musl's ignores it (ns-a), and so does each one's own DNS client.
#[test]
fn localdomain_never_mixes_two_services_in_one_broadcast() {
    let dir = support::TempDir::new("localdomain");
    let ip = |ns: u8, i: usize| format!("10.{ns}.0.{}", i + 1);
    let mut hosts = String::new();
    for (ns, name) in [(3, "ns-a"), (4, "ns-b")] {
        for i in 0..60 {
            hosts.push_str(&format!("{} web.{name}.svc.cluster.local\n", ip(ns, i)));
        }
    }
    let then = "for sender in \"$GLIBC\" \"$MUSL\"; do \
            LOCALDOMAIN=ns-b.svc.cluster.local timeout 60 \"$sender\" -s web -m hi -p 9 \
                || echo \"exit $?\"; echo ===; \
        done";
    let out = with_cluster_dns(
        &dir,
        &hosts,
        "",
        then,
        support::unshare()
            .env("GLIBC", support::bin_path("sender"))
            .env("MUSL", support::musl_sender()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let runs: Vec<&str> = stdout.split("===\n").collect();
    assert_eq!(runs.len(), 3, "{stdout}\n{stderr}");
    for (run, (label, ns)) in runs.iter().zip([("glibc", 4), ("musl", 3)]) {
        assert!(!run.contains("exit "), "{label}: {run}\n{stderr}");
        let sent: HashSet<String> = support::info_messages(run)
            .iter()
            .map(|m| m.strip_prefix("sent message to :").unwrap().to_string())
            .collect();
        let want: HashSet<String> = (0..60).map(|i| ip(ns, i)).collect();
        assert_eq!(sent, want, "{label}: {run}\n{stderr}");
    }
}

/// Issue 21: a small Service (fewer than 48 pods) costs the cluster DNS
/// only the system resolver's own queries per broadcast. A real dnsmasq
/// logs every query; one broadcast of the real sender must cost exactly
/// what one getaddrinfo of the same name with the same hints does
/// (python3's, through the same glibc, as std's `ToSocketAddrs` asks).
#[test]
fn a_small_service_costs_dns_only_the_system_resolvers_queries() {
    let dir = support::TempDir::new("small-service-queries");
    let hosts: String = (1..=3)
        .map(|i| format!("10.3.0.{i} web.ns-a.svc.cluster.local\n"))
        .collect();
    // Counts the log's queries after each step: dnsmasq, the sender, python.
    let then = "queries() { sleep 0.5; grep -c 'query\\[' \"$DIR/dns.log\" || true; }; \
        queries; \
        timeout 60 \"$SENDER\" -s web -m hi -p 9 >/dev/null; \
        queries; \
        timeout 60 python3 -c 'import socket; socket.getaddrinfo(\"web\", 9, 0, socket.SOCK_STREAM)'; \
        queries";
    let out = with_cluster_dns(
        &dir,
        &hosts,
        "--log-queries",
        then,
        support::unshare().env("SENDER", support::bin_path("sender")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let counts: Vec<usize> = stdout.lines().map(|l| l.trim().parse().unwrap()).collect();
    let [before, after_sender, after_python] = counts[..] else {
        panic!("{stdout}\n{stderr}");
    };
    let (sender, system) = (after_sender - before, after_python - after_sender);
    assert!(system > 0, "getaddrinfo asked nothing: {stdout}");
    assert_eq!(
        sender, system,
        "the sender's queries against getaddrinfo's alone"
    );
}
