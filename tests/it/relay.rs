//! The real `relay`. Loopback cases first; then membership cases in the
//! simulated cluster of tests/it/support (pods are network namespaces, the
//! cluster DNS is dnsmasq), with real `receiver` pods and a real `sender`
//! streaming into the relay.

use crate::support;

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::Duration;
use support::*;

/// Deadline for a relay or sender run that should end at once.
const LIMIT: Duration = Duration::from_secs(20);

fn stderr_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

// ---- Loopback ----

/// A relay on loopback forwarding to `pods` (one address list) on `port`.
struct LoopRelay {
    child: Child,
    listen: u16,
    stderr: PathBuf,
    _dir: TempDir,
}

impl LoopRelay {
    fn start(test: &str, service: &str, port: u16, args: &[&str]) -> LoopRelay {
        LoopRelay::start_on(test, service, port, args, "127.0.0.1")
    }

    /// Listening on `ip` (as written in ADDRESS:PORT, `[::1]` for IPv6).
    fn start_on(test: &str, service: &str, port: u16, args: &[&str], ip: &str) -> LoopRelay {
        let dir = TempDir::new(test);
        let stderr = dir.join("relay.err");
        let listen = free_port();
        let child = bin("relay")
            .args(["-s", service, "-p", &port.to_string()])
            .args(["--listen", &format!("{ip}:{listen}")])
            .args(args)
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let relay = LoopRelay {
            child,
            listen,
            stderr,
            _dir: dir,
        };
        wait_until("the relay's start line", Duration::from_secs(10), || {
            stderr_text(&relay.stderr).contains("listening on")
        });
        relay
    }

    fn send(&self, payload: &[u8]) {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(payload, ("127.0.0.1", self.listen)).unwrap();
    }

    /// Stops it with `signal`; its exit code and stderr.
    fn stop(mut self, signal_name: &str) -> (Option<i32>, String) {
        signal(self.child.id(), signal_name);
        let code = wait_for_exit(&mut self.child, "the relay to stop").code();
        (code, stderr_text(&self.stderr))
    }
}

impl Drop for LoopRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn datagrams_of_0_and_65507_bytes_arrive_unchanged() {
    let pod = UdpSocket::bind("127.0.0.1:0").unwrap();
    pod.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = pod.local_addr().unwrap().port();
    let relay = LoopRelay::start("sizes", "127.0.0.1", port, &[]);
    let big: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    let mut buf = vec![0; 65_536];
    for payload in [&b""[..], &big, b"\x00\xff\n"] {
        relay.send(payload);
        let n = pod.recv(&mut buf).expect("the copy arrives");
        assert_eq!(&buf[..n], payload, "{} bytes", payload.len());
    }
    let (code, err) = relay.stop("INT");
    assert_eq!(code, Some(0), "{err}");
    let last = err.lines().last().unwrap();
    assert_eq!(parse_log_line(last).unwrap().0, "INFO");
    assert!(
        last.ends_with(
            "stopped: 3 datagrams in, 3 copies sent, 0 dropped with no pods, 0 sends failed"
        ),
        "{err}"
    );
}

/// Issue 21: on a kernel without IPv6, every `--listen [::]:PORT` falls
/// back to IPv4, not only the default port: the relay starts, says where it
/// listens, and forwards.
#[test]
fn any_listen_on_all_ipv6_addresses_falls_back_to_ipv4_without_ipv6() {
    let pod = UdpSocket::bind("127.0.0.1:0").unwrap();
    pod.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = pod.local_addr().unwrap().port().to_string();
    let dir = TempDir::new("no-ipv6");
    let stderr = dir.join("relay.err");
    let listen = free_port();
    let mut relay = without_ipv6(&mut bin("relay"))
        .args(["-s", "127.0.0.1", "-p", &port])
        .args(["--listen", &format!("[::]:{listen}")])
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let started = format!("listening on UDP 0.0.0.0:{listen}");
    wait_until("the relay's start line", Duration::from_secs(10), || {
        let err = stderr_text(&stderr);
        assert!(!err.contains("cannot listen"), "{err}");
        err.contains(&started)
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"v4 only", ("127.0.0.1", listen)).unwrap();
    let mut buf = [0; 16];
    let n = pod.recv(&mut buf).expect("the copy arrives");
    assert_eq!(&buf[..n], b"v4 only");
    signal(relay.id(), "TERM");
    let code = wait_for_exit(&mut relay, "the relay to stop").code();
    assert_eq!(code, Some(0), "{}", stderr_text(&stderr));
}

#[test]
fn metrics_count_what_was_forwarded_and_promtool_finds_them_clean() {
    let pod = UdpSocket::bind("127.0.0.1:0").unwrap();
    pod.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = pod.local_addr().unwrap().port();
    let relay = LoopRelay::start("metrics", "127.0.0.1", port, &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&relay.stderr);
    assert_eq!(http_get(addr, "/readyz"), (200, "ok\n".into()));
    assert_eq!(http_get(addr, "/livez"), (200, "ok\n".into()));
    let sizes = [0usize, 1, 100, 1400, 7];
    let mut buf = vec![0; 65_536];
    for size in sizes {
        relay.send(&vec![b'x'; size]);
        assert_eq!(pod.recv(&mut buf).expect("the copy arrives"), size);
    }
    // A copy can arrive before the relay has counted it: wait for the
    // count, then every number must be exact.
    let mut text = String::new();
    wait_until("5 copies counted", Duration::from_secs(5), || {
        let (status, body) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        text = body;
        sample(&text, "udp_headless_relay_copies_sent_total") >= sizes.len() as u64
    });
    let bytes: usize = sizes.iter().sum();
    for (name, want) in [
        ("udp_headless_relay_datagrams_received_total", sizes.len()),
        ("udp_headless_relay_bytes_received_total", bytes),
        ("udp_headless_relay_copies_sent_total", sizes.len()),
        ("udp_headless_relay_send_errors_total", 0),
        ("udp_headless_relay_datagrams_dropped_total", 0),
        ("udp_headless_relay_pods", 1),
        ("udp_headless_socket_drops_total", 0),
    ] {
        assert_eq!(sample(&text, name) as usize, want, "{name} in\n{text}");
    }
    let version = env!("CARGO_PKG_VERSION");
    let info = format!("udp_headless_build_info{{version=\"{version}\"}} 1");
    assert!(text.lines().any(|l| l == info), "{text}");
    // Only build_info has labels: nothing grows with pods.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains('{') || line.starts_with("udp_headless_build_info{"),
            "{line}"
        );
    }
    assert!(
        text.contains("# TYPE udp_headless_relay_pods gauge\n"),
        "{text}"
    );
    assert_promtool_clean(&text);
    let (code, err) = relay.stop("TERM");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn with_frame_the_receiver_logs_the_client_as_the_source() {
    // (the pod's address, the client's): both families, and a client of
    // the other family than the pod's.
    for (pod, client) in [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("127.0.0.1", "::1"),
    ] {
        // The relay sends from the pod's family: loopback of either.
        let trust = "127.0.0.0/8,::1";
        let receiver = Receiver::start("frame", &["--bind", pod, "--trust-relay", trust]);
        let listen_ip = if client == "::1" { "[::1]" } else { client };
        let relay = LoopRelay::start_on("frame", pod, receiver.port, &["--frame"], listen_ip);
        let sock = UdpSocket::bind((client, 0)).unwrap();
        sock.send_to(b"hello \xff", format!("{listen_ip}:{}", relay.listen))
            .unwrap();
        let lines = receiver.wait_lines(1);
        let (_, message) = parse_log_line(&lines[0]).unwrap();
        assert_eq!(
            message,
            received_message(b"hello \xff", sock.local_addr().unwrap()),
            "pod {pod}, client {client}"
        );
    }
}

#[test]
fn without_frame_the_receiver_logs_the_relay_as_the_source() {
    let receiver = Receiver::start("noframe", &["--bind", "127.0.0.1"]);
    let relay = LoopRelay::start("noframe", "127.0.0.1", receiver.port, &[]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .send_to(b"plain", ("127.0.0.1", relay.listen))
        .unwrap();
    let lines = receiver.wait_lines(1);
    let (_, message) = parse_log_line(&lines[0]).unwrap();
    assert!(message.starts_with("Message from Client:b'plain' Client IP Address:('127.0.0.1', "));
    assert_ne!(
        message,
        received_message(b"plain", client.local_addr().unwrap()),
        "the relay's own port, not the client's"
    );
}

#[test]
fn every_line_it_logs_has_the_log_format_and_none_is_per_datagram() {
    let pod = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = pod.local_addr().unwrap().port();
    let relay = LoopRelay::start("quiet", "127.0.0.1", port, &[]);
    for _ in 0..200 {
        relay.send(b"x");
    }
    let mut buf = [0; 4];
    pod.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..200 {
        pod.recv(&mut buf).unwrap();
    }
    let listen = relay.listen;
    let check = |port: u16| {
        output_within(
            bin("relay").args(["--check", "--listen", &format!("[::]:{port}")]),
            LIMIT,
        )
        .status
        .code()
    };
    assert_eq!(check(listen), Some(0), "bound: ready");
    let (code, err) = relay.stop("TERM");
    assert_eq!(check(listen), Some(1), "stopped: not ready");
    assert_eq!(code, Some(0));
    let messages = info_messages(&err);
    assert_eq!(messages.len(), 2, "{err}");
    assert_eq!(
        messages[0],
        format!(
            "listening on UDP 127.0.0.1:{listen}, forwarding to service '127.0.0.1' port {port}, pods: 1"
        )
    );
}

/// As the receiver does: a buffer the user asked for and did not get is
/// worth a warning (raising rmem_max is the node admin's job).
#[test]
fn a_capped_rcvbuf_it_was_given_is_warned_about() {
    let pod = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = pod.local_addr().unwrap().port();
    let relay = LoopRelay::start("rcvbuf", "127.0.0.1", port, &["--rcvbuf", "2147483647"]);
    let (code, err) = relay.stop("TERM");
    assert_eq!(code, Some(0));
    let warning = err
        .lines()
        .find(|line| line.contains(" - WARNING - receive buffer is "))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.ends_with(" bytes, not the 2147483647 asked: raise net.core.rmem_max"),
        "{warning}"
    );
}

#[test]
fn sigterm_stops_it_with_exit_0_also_as_pid_1() {
    let mut unshare = unshare()
        .args(["--pid", "--fork", "--kill-child"])
        .arg(assert_cmd::cargo::cargo_bin("relay"))
        .args(["-s", "127.0.0.1", "-p", "9"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run unshare (util-linux)");
    let pid1 = pid1_under(&unshare, "the relay as PID 1");
    wait_for_handler(pid1, 15);
    signal(pid1, "TERM");
    assert_eq!(
        wait_for_exit(&mut unshare, "the PID 1 relay to end").code(),
        Some(0)
    );
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let cases: &[UsageCase] = &[
        (&[], &[], "no service"),
        (
            &["-s", "x", "--listen", "12001"],
            &[],
            "'12001' is not ADDRESS:PORT",
        ),
        (&["-s", "x", "--listen", "[::]:0"], &[], "must not be 0"),
        (&["-s", "x", "--refresh", "soon"], &[], "--refresh: 'soon'"),
        (
            &["-s", "x"],
            &[("UDP_HEADLESS_LISTEN", "nope")],
            "$UDP_HEADLESS_LISTEN",
        ),
        (&["-s", "x", "--bogus"], &[], "unknown option '--bogus'"),
        (&["-s", "x", "--metrics", "9102"], &[], "--metrics: '9102'"),
        (
            &["-s", "x"],
            &[("UDP_HEADLESS_METRICS", "localhost")],
            "$UDP_HEADLESS_METRICS",
        ),
        // --check reads only --listen (or the environment): anything
        // else, even valid, is a mistake.
        (&["--check", "--frame"], &[], "not '--frame'"),
        (&["--check", "-s", "x"], &[], "not '-s'"),
        (
            &["--check", "--listen", "[::]:12001", "--metrics", "nope"],
            &[],
            "not '--metrics'",
        ),
    ];
    assert_usage_errors("relay", cases);
    let out = output_within(bin("relay").arg("--help"), LIMIT);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("relay: "));
}

#[test]
fn listen_address_in_use_exits_1() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = output_within(
        bin("relay").args(["-s", "127.0.0.1", "--listen", &addr]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on UDP"));
}

#[test]
fn metrics_address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let out = output_within(
        bin("relay").args(["-s", "127.0.0.1", "--listen", &listen, "--metrics", &addr]),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot serve metrics on TCP"), "{err}");
}

// ---- In the simulated cluster ----

/// The relay pod's address, and the port it listens on.
const RELAY_IP: &str = "10.244.0.30";
const RELAY_PORT: &str = "12001";

/// A cluster with DNS (records with `ttl`), sender-app, and a relay pod.
struct Setup {
    cluster: Cluster,
    sender: Pod,
    relay_pod: Pod,
    relay: Option<PodProcess>,
    relay_err: PathBuf,
    /// sender-app streaming "tick" into the relay every 20 ms.
    stream: Option<PodProcess>,
}

impl Setup {
    fn new(test: &str, ttl: u32, dns_args: &[&str]) -> Setup {
        let mut cluster = Cluster::new(test);
        let dns_log = format!("--log-facility={}", cluster.dir.join("dns.log").display());
        let mut args = dns_args.to_vec();
        if args.contains(&"--log-queries") {
            args.push(&dns_log);
        }
        cluster.start_dns_with(ttl, &args);
        let sender = cluster.add_pod("sender-app", &[sender_ip()]);
        let relay_pod = cluster.add_pod("relay", &[RELAY_IP.parse().unwrap()]);
        let relay_err = cluster.dir.join("relay.err");
        Setup {
            cluster,
            sender,
            relay_pod,
            relay: None,
            relay_err,
            stream: None,
        }
    }

    /// A receiver pod that is not in DNS yet.
    fn unpublished_receiver(&mut self, index: usize) -> ReceiverPod {
        let pod = self
            .cluster
            .add_pod(&format!("{STATEFULSET}-{index}"), &[pod_ip(index)]);
        self.cluster.start_receiver(pod)
    }

    /// Starts `relay -s headless-udp ARGS` in the relay pod; waits for its
    /// start line.
    fn start_relay(&mut self, args: &[&str]) {
        let mut cmd = self.cluster.command(&self.relay_pod, bin_path("relay"));
        cmd.args(["-s", SERVICE])
            .args(args)
            .stderr(fs::File::create(&self.relay_err).unwrap());
        self.relay = Some(self.cluster.spawn(&mut cmd, "relay"));
        wait_until("the relay's start line", Duration::from_secs(10), || {
            self.relay_log().contains("listening on")
        });
    }

    fn start_stream(&mut self) {
        let mut cmd = self.cluster.command(&self.sender, bin_path("sender"));
        cmd.args(["-s", RELAY_IP, "-p", RELAY_PORT, "-m", "tick"])
            .args(["--repeat", "0", "--interval", "20ms"])
            .stdout(Stdio::null());
        self.stream = Some(self.cluster.spawn(&mut cmd, "sender"));
    }

    /// One datagram from sender-app to the relay.
    fn send(&self, message: &str) {
        let out = output_within(
            self.cluster
                .command(&self.sender, bin_path("sender"))
                .args(["-s", RELAY_IP, "-p", RELAY_PORT, "-m", message]),
            LIMIT,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn relay_log(&self) -> String {
        stderr_text(&self.relay_err)
    }

    /// Stops the relay with SIGTERM: its exit code and log.
    fn stop_relay(&mut self) -> (Option<i32>, String) {
        let code = self.relay.as_mut().unwrap().stop().code();
        (code, self.relay_log())
    }
}

/// Lines `receiver` has logged so far.
fn received(receiver: &ReceiverPod) -> usize {
    receiver.log_text().lines().count()
}

/// Waits until each of `receivers` has logged more than now.
fn wait_receiving(setup: &Setup, receivers: &[&ReceiverPod], within: Duration) {
    let before: Vec<usize> = receivers.iter().map(|r| received(r)).collect();
    let names: Vec<&str> = receivers.iter().map(|r| r.pod.name.as_str()).collect();
    wait_until(
        &format!("{names:?} to receive\n{}", setup.relay_log()),
        within,
        || receivers.iter().zip(&before).all(|(r, &b)| received(r) > b),
    );
}

/// The relay's log lines with their level, asserting the log format.
fn lines(log: &str) -> Vec<(String, String)> {
    log.lines()
        .map(|l| {
            let (level, message) =
                parse_log_line(l).unwrap_or_else(|| panic!("not a log line: {l:?}"));
            (level.to_string(), message.to_string())
        })
        .collect()
}

/// Time for a refresh to see a change: the 5 s of an answer without TTL
/// (the system resolver's, with fewer than 48 pods), plus 2 s.
const NO_TTL_PLUS_2: Duration = Duration::from_secs(7);

#[test]
fn scaling_up_and_down_while_a_stream_flows() {
    let mut setup = Setup::new("relay-scale", 5, &[]);
    let pods: Vec<ReceiverPod> = (0..5).map(|i| setup.unpublished_receiver(i)).collect();
    for pod in &pods[..2] {
        setup.cluster.publish(&pod.pod);
    }
    setup.cluster.wait_dns(2);
    setup.start_relay(&[]);
    setup.start_stream();
    wait_receiving(&setup, &[&pods[0], &pods[1]], Duration::from_secs(5));
    assert_eq!(received(&pods[2]), 0, "not in the Service yet");

    for pod in &pods[2..] {
        setup.cluster.publish(&pod.pod);
    }
    wait_receiving(&setup, &[&pods[2], &pods[3], &pods[4]], NO_TTL_PLUS_2);

    setup.cluster.unpublish(&pods[0].pod);
    setup.cluster.unpublish(&pods[1].pod);
    wait_until(
        &format!("the relay to see two pods go\n{}", setup.relay_log()),
        NO_TTL_PLUS_2,
        || setup.relay_log().contains("pods: 5 -> 3"),
    );
    // In flight when the list changed, at most.
    sleep(Duration::from_millis(200));
    let gone = (received(&pods[0]), received(&pods[1]));
    wait_receiving(
        &setup,
        &[&pods[2], &pods[3], &pods[4]],
        Duration::from_secs(2),
    );
    sleep(Duration::from_millis(300));
    assert_eq!(
        (received(&pods[0]), received(&pods[1])),
        gone,
        "removed pods get nothing"
    );

    let (code, log) = setup.stop_relay();
    assert_eq!(code, Some(0), "{log}");
    let messages: Vec<_> = lines(&log).into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        messages[0],
        "listening on UDP [::]:12001, forwarding to service 'headless-udp' port 12000, pods: 2"
    );
    assert_eq!(messages[1..3], ["pods: 2 -> 5", "pods: 5 -> 3"], "{log}");
    assert!(messages[3].starts_with("stopped: "), "{log}");
    assert_eq!(
        messages.len(),
        4,
        "one line per change, none per datagram: {log}"
    );
}

#[test]
fn when_dns_dies_the_last_list_is_kept_and_it_warns_once() {
    let mut setup = Setup::new("relay-dnsdown", 5, &[]);
    let pods = [setup.cluster.receiver_pod(0), setup.cluster.receiver_pod(1)];
    setup.cluster.wait_dns(2);
    setup.start_relay(&["--refresh", "1s"]);
    setup.start_stream();
    wait_receiving(&setup, &[&pods[0], &pods[1]], Duration::from_secs(5));
    setup.cluster.stop_dns();
    wait_until(
        &format!("a warning\n{}", setup.relay_log()),
        Duration::from_secs(20),
        || setup.relay_log().contains("WARNING"),
    );
    // More failed refreshes (each waits out the DNS timeouts).
    sleep(Duration::from_secs(4));
    wait_receiving(&setup, &[&pods[0], &pods[1]], Duration::from_secs(2));
    let log = setup.relay_log();
    let warnings: Vec<_> = lines(&log)
        .into_iter()
        .filter(|(level, _)| level == "WARNING")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(warnings.len(), 1, "once per failure streak: {log}");
    assert!(
        warnings[0].contains("'headless-udp'")
            && warnings[0].ends_with("keeping the last list of pods, retrying"),
        "{log}"
    );
}

#[test]
fn with_no_pods_datagrams_are_dropped_and_counted_until_pods_appear() {
    let mut setup = Setup::new("relay-nopods", 5, &[]);
    let pod = setup.unpublished_receiver(0);
    setup.start_relay(&["--refresh", "1s"]);
    let log = setup.relay_log();
    assert!(log.contains("port 12000, pods: 0\n"), "{log}");
    for _ in 0..3 {
        setup.send("lost");
    }
    setup.cluster.publish(&pod.pod);
    wait_until("the pod in the list", Duration::from_secs(5), || {
        setup.relay_log().contains("pods: 0 -> 1")
    });
    setup.send("found");
    wait_until("the pod to log", Duration::from_secs(5), || {
        received(&pod) == 1
    });
    let (code, log) = setup.stop_relay();
    assert_eq!(code, Some(0));
    assert!(
        log.contains(
            "stopped: 4 datagrams in, 1 copies sent, 3 dropped with no pods, 0 sends failed"
        ),
        "{log}"
    );
    let warnings = lines(&log)
        .into_iter()
        .filter(|(l, _)| l == "WARNING")
        .count();
    assert_eq!(
        warnings, 2,
        "why there are no pods, and that it drops: {log}"
    );
    assert!(log.contains("not found"), "NXDOMAIN named: {log}");
}

#[test]
fn a_service_that_includes_the_relay_itself_gets_no_copy_from_it() {
    // The relay listens on the pods' port, and the Service lists its pod
    // beside two receivers: forwarding there would loop.
    let mut setup = Setup::new("relay-itself", 5, &[]);
    let pods = [setup.cluster.receiver_pod(0), setup.cluster.receiver_pod(1)];
    setup.cluster.publish(&setup.relay_pod);
    setup.cluster.wait_dns(3);
    setup.start_relay(&["--listen", "[::]:12000"]);
    let log = setup.relay_log();
    assert!(log.contains("port 12000, pods: 2\n"), "{log}");
    assert!(
        log.contains(
            "service 'headless-udp' includes this relay ([::]:12000): not forwarding to itself"
        ),
        "{log}"
    );
    for _ in 0..3 {
        let out = output_within(
            setup
                .cluster
                .command(&setup.sender, bin_path("sender"))
                .args(["-s", RELAY_IP, "-p", "12000", "-m", "once"]),
            LIMIT,
        );
        assert!(out.status.success());
    }
    wait_until("both pods to log 3 lines", Duration::from_secs(5), || {
        pods.iter().all(|p| received(p) == 3)
    });
    let (code, log) = setup.stop_relay();
    assert_eq!(code, Some(0));
    assert!(
        log.contains("stopped: 3 datagrams in, 6 copies sent"),
        "no datagram went round: {log}"
    );
    assert_eq!(
        log.matches("not forwarding to itself").count(),
        1,
        "said once: {log}"
    );
}

#[test]
fn the_dns_answers_ttl_sets_the_refresh() {
    // 50 more pods (one namespace holding 50 addresses): the relay's own
    // DNS client asks too (the system resolver may have cut the list), so
    // the answer's TTL is known: 1 s.
    let mut setup = Setup::new("relay-ttl", 1, &["--log-queries"]);
    let block = setup.cluster.add_block(0, 50);
    let block = setup.cluster.start_receiver(block);
    setup.cluster.publish(&block.pod);
    let pod = setup.unpublished_receiver(0);
    setup.cluster.wait_dns(50);
    setup.start_relay(&[]);
    setup.start_stream();
    wait_receiving(&setup, &[&block], Duration::from_secs(5));
    // The seconds (dnsmasq's log stamps) in which the Service was asked for.
    let dns_log = setup.cluster.dir.join("dns.log");
    let asked = || -> Vec<String> {
        let log = fs::read_to_string(&dns_log).unwrap_or_default();
        let mut seconds: Vec<String> = log
            .lines()
            .filter(|l| l.contains(&format!("query[A] {SERVICE_FQDN} from {RELAY_IP}")))
            .map(|l| l[..15].to_string())
            .collect();
        seconds.dedup();
        seconds
    };
    let before = asked().len();
    sleep(Duration::from_secs(5));
    // Refreshed in at least 4 of 5 seconds: by the TTL, where an answer
    // without one would be asked again once in 5 s.
    let seconds = asked().len() - before;
    assert!(
        seconds >= 4,
        "the Service asked for in {seconds} of 5 seconds"
    );

    setup.cluster.publish(&pod.pod);
    // TTL + 2 s.
    wait_receiving(&setup, &[&pod], Duration::from_secs(3));
}

/// The numbers of the relay's last line, "stopped: A datagrams in, B
/// copies sent, C dropped with no pods, D sends failed".
fn stop_counts(log: &str) -> [u64; 4] {
    let line = log.lines().last().unwrap_or_default();
    let numbers: Vec<u64> = line
        .split_once("stopped: ")
        .unwrap_or_else(|| panic!("no stop line: {log}"))
        .1
        .split(' ')
        .filter_map(|word| word.trim_end_matches(',').parse().ok())
        .collect();
    numbers.try_into().unwrap_or_else(|_| panic!("{line}"))
}

/// Two receivers and a pod with none, which refuses (ICMP port
/// unreachable, so a later send to it fails): datagrams come in bursts,
/// so copies go out in batches, where a failure stops a sendmmsg without
/// its error. Every copy is either sent or counted as failed, the live
/// pods get every datagram, and the warning names the dead pod.
fn a_dead_pod_among_live_ones(family: &str) {
    let v6 = support::ipv6;
    let mut cluster = Cluster::new(&format!("relay-dead-{family}"));
    cluster.start_dns(5);
    let relay_pod = cluster.add_pod("relay", &[RELAY_IP.parse().unwrap(), v6(0x30)]);
    let live: Vec<ReceiverPod> = (0..2).map(|i| cluster.dual_stack_receiver_pod(i)).collect();
    let dead = cluster.add_pod(&format!("{STATEFULSET}-2"), &[pod_ip(2), v6(0x102)]);
    cluster.publish(&dead);
    cluster.wait_dns(3);
    let dead_to = if family == "ipv6" {
        format!("[{}]:12000", v6(0x102))
    } else {
        format!("{}:12000", pod_ip(2))
    };
    let relay_err = cluster.dir.join("relay.err");
    let mut cmd = cluster.command(&relay_pod, bin_path("relay"));
    cmd.args(["-s", SERVICE, "-f", family])
        .stderr(fs::File::create(&relay_err).unwrap());
    let mut relay = cluster.spawn(&mut cmd, "relay");
    wait_until("the relay's start line", Duration::from_secs(10), || {
        stderr_text(&relay_err).contains("pods: 3")
    });
    let burst: String = (0..50).map(|i| format!("burst {i}\n")).collect();
    let lines_file = cluster.dir.join("burst.txt");
    fs::write(&lines_file, burst).unwrap();
    let mut sent = 0;
    // ICMP errors are rate-limited and arrive when they arrive: bursts
    // until one made a send fail.
    wait_until(
        "a send to the dead pod to fail",
        Duration::from_secs(20),
        || {
            let out = output_with_stdin(
                cluster
                    .command(&relay_pod, bin_path("sender"))
                    .args(["-s", RELAY_IP, "-p", RELAY_PORT]),
                fs::File::open(&lines_file).unwrap(),
                LIMIT,
            );
            assert!(out.status.success(), "{out:?}");
            sent += 50;
            stderr_text(&relay_err).contains(&format!("cannot send to {dead_to}: "))
        },
    );
    wait_until("the live pods to log every datagram", LIMIT, || {
        live.iter().all(|r| received(r) == sent)
    });
    let code = relay.stop().code();
    let log = stderr_text(&relay_err);
    assert_eq!(code, Some(0), "{log}");
    let [came, copies, dropped, failed] = stop_counts(&log);
    assert_eq!((came, dropped), (sent as u64, 0), "{log}");
    assert_eq!(
        copies + failed,
        3 * came,
        "every copy sent or counted: {log}"
    );
    assert!(failed >= 1 && copies >= 2 * came, "{log}");
    let warnings: Vec<String> = lines(&log)
        .into_iter()
        .filter(|(level, _)| level == "WARNING")
        .map(|(_, message)| message)
        .collect();
    assert!(!warnings.is_empty(), "{log}");
    for warning in &warnings {
        assert!(
            warning.starts_with(&format!("cannot send to {dead_to}: ")),
            "{log}"
        );
    }
    assert!(
        warnings.len() as u64 <= failed,
        "at most one per failure: {log}"
    );
}

#[test]
fn a_dead_pod_among_live_ones_ipv4() {
    a_dead_pod_among_live_ones("ipv4");
}

#[test]
fn a_dead_pod_among_live_ones_ipv6() {
    a_dead_pod_among_live_ones("ipv6");
}

// ---- Issue 20: relays among relays, forged sources, readiness ----

/// A forwarded frame naming `6.6.6.6:666` (docs/PROTOCOL.md), as a client
/// could forge one.
fn forged_frame() -> Vec<u8> {
    let mut forged = b"\xffUDH\x01\x03".to_vec();
    forged.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1]);
    forged.extend_from_slice(b"\x04\x02\x9a\x06\x06\x06\x06forged");
    assert!(matches!(
        udp_headless::frame::parse(&forged),
        Some(udp_headless::frame::Frame::Forwarded { .. })
    ));
    forged
}

/// Two relays in one Service (listening on its port, as a relay beside
/// the receivers would): one datagram sent to one of them is forwarded
/// once, by that one; the other refuses its copy. Plain and `--frame`.
fn two_relays_in_the_service(frame: bool) {
    let mut cluster = Cluster::new(if frame { "storm-frame" } else { "storm" });
    cluster.start_dns(5);
    let receivers = [cluster.receiver_pod(0), cluster.receiver_pod(1)];
    let relay_ips = [RELAY_IP, "10.244.0.31"];
    let mut relays = Vec::new();
    for (i, ip) in relay_ips.iter().enumerate() {
        let pod = cluster.add_pod(&format!("{STATEFULSET}-{}", 10 + i), &[ip.parse().unwrap()]);
        cluster.publish(&pod);
        relays.push(pod);
    }
    cluster.wait_dns(4);
    let mut running = Vec::new();
    for (i, pod) in relays.iter().enumerate() {
        let err = cluster.dir.join(format!("relay{i}.err"));
        let mut cmd = cluster.command(pod, bin_path("relay"));
        cmd.args(["-s", SERVICE, "--listen", "[::]:12000"])
            .args(if frame { &["--frame"][..] } else { &[] })
            .stderr(fs::File::create(&err).unwrap());
        running.push((cluster.spawn(&mut cmd, "relay"), err));
        wait_until("the relay's start line", LIMIT, || {
            stderr_text(&running[i].1).contains("pods: 3")
        });
    }
    let sender = cluster.add_pod("sender-app", &[sender_ip()]);
    let out = output_within(
        cluster
            .command(&sender, bin_path("sender"))
            .args(["-s", RELAY_IP, "-p", "12000", "-m", "once"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    wait_until("both receivers to log", LIMIT, || {
        receivers.iter().all(|r| received(r) >= 1)
    });
    // A storm would be thousands of lines by now.
    sleep(Duration::from_secs(2));
    for receiver in &receivers {
        assert_eq!(received(receiver), 1, "{}", receiver.log_text());
    }
    // A client in a pod of the Service (it sends from a port of its own)
    // is forwarded as any client.
    let out = output_within(
        cluster
            .command(&receivers[0].pod, bin_path("sender"))
            .args(["-s", RELAY_IP, "-p", "12000", "-m", "from a pod"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    wait_until("both receivers to log it", LIMIT, || {
        receivers.iter().all(|r| received(r) >= 2)
    });
    sleep(Duration::from_secs(1));
    for receiver in &receivers {
        assert_eq!(received(receiver), 2, "{}", receiver.log_text());
    }
    let mut logs = Vec::new();
    for (mut relay, err) in running {
        assert_eq!(relay.stop().code(), Some(0));
        logs.push(stderr_text(&err));
    }
    assert_eq!(stop_counts(&logs[0])[..2], [2, 6], "{}", logs[0]);
    assert_eq!(
        stop_counts(&logs[1])[..2],
        [2, 0],
        "both refused: {}",
        logs[1]
    );
    assert!(
        logs[1].contains("not forwarding a datagram from"),
        "{}",
        logs[1]
    );
}

#[test]
fn two_relays_in_one_service_forward_a_datagram_once() {
    two_relays_in_the_service(false);
}

#[test]
fn two_relays_in_one_service_forward_a_datagram_once_with_frame() {
    two_relays_in_the_service(true);
}

/// A client's forwarded frame is never passed on as the relay's own:
/// refused and counted, with or without `--frame`.
#[test]
fn a_forged_forwarded_frame_is_refused_and_counted() {
    for args in [&[][..], &["--frame"]] {
        let receiver = Receiver::start(
            "forged",
            &["--bind", "127.0.0.1", "--trust-relay", "127.0.0.0/8"],
        );
        let mut all = vec!["--metrics", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let relay = LoopRelay::start("forged", "127.0.0.1", receiver.port, &all);
        relay.send(&forged_frame());
        relay.send(b"after");
        let lines = receiver.wait_lines(1);
        sleep(Duration::from_millis(300));
        let log = receiver.log_text();
        assert_eq!(log.lines().count(), 1, "{args:?}: {log}");
        assert!(lines[0].contains("b'after'"), "{args:?}: {log}");
        assert!(!log.contains("6.6.6.6"), "{args:?}: {log}");
        let text = stderr_text(&relay.stderr);
        let addr: SocketAddr = text
            .split_once("metrics on http://")
            .and_then(|(_, rest)| rest.split_once("/metrics"))
            .map(|(addr, _)| addr.parse().unwrap())
            .unwrap();
        let (_, metrics) = http_get(addr, "/metrics");
        assert_eq!(
            sample(&metrics, "udp_headless_relay_datagrams_refused_total"),
            1,
            "{metrics}"
        );
    }
}

/// The relay's `/readyz`, asked from inside its pod.
fn readyz_in(cluster: &Cluster, pod: &Pod) -> String {
    const GET: &str = "import urllib.request, urllib.error\n\
        try:\n\
        \x20   print(urllib.request.urlopen('http://127.0.0.1:9102/readyz', timeout=5).status)\n\
        except urllib.error.HTTPError as e:\n\
        \x20   print(e.code)\n\
        except OSError as e:\n\
        \x20   print('down')\n";
    let out = output_within(cluster.command(pod, "python3").args(["-c", GET]), LIMIT);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn it_is_not_ready_until_it_has_pods_to_forward_to() {
    let mut setup = Setup::new("relay-ready", 5, &[]);
    let pod = setup.cluster.receiver_pod(0);
    setup.cluster.wait_dns(1);
    setup.cluster.stop_dns();
    setup.start_relay(&["--metrics", "[::]:9102", "--refresh", "1s"]);
    assert_eq!(readyz_in(&setup.cluster, &setup.relay_pod), "503");
    sleep(Duration::from_secs(2));
    assert_eq!(readyz_in(&setup.cluster, &setup.relay_pod), "503");
    setup.cluster.set_ttl(5);
    wait_until("ready once DNS answers", Duration::from_secs(20), || {
        readyz_in(&setup.cluster, &setup.relay_pod) == "200"
    });
    setup.send("ready");
    wait_until("the pod to log", LIMIT, || received(&pod) == 1);
}

/// An outage that ends in NXDOMAIN: the service is gone, not back.
#[test]
fn after_an_outage_ending_in_nxdomain_it_does_not_say_the_service_resolves_again() {
    let mut setup = Setup::new("relay-nxdomain", 5, &[]);
    let pod = setup.cluster.receiver_pod(0);
    setup.cluster.wait_dns(1);
    setup.start_relay(&["--refresh", "1s"]);
    setup.cluster.stop_dns();
    wait_until("a warning", Duration::from_secs(20), || {
        setup.relay_log().contains("WARNING")
    });
    setup.cluster.unpublish(&pod.pod);
    setup.cluster.set_ttl(5);
    wait_until("no pods", Duration::from_secs(20), || {
        setup.relay_log().contains("pods: 1 -> 0")
    });
    let log = setup.relay_log();
    assert!(log.contains("not found"), "{log}");
    assert!(!log.contains("the service resolves again"), "{log}");
}

/// `--listen [fe80::...%iface]:port`, as the sender takes the zone form.
#[test]
fn it_listens_on_a_link_local_address_with_a_zone() {
    let dir = TempDir::new("relay-link-local");
    let err = dir.join("relay.err");
    let script = "ip link set lo up && \
        ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up && \
        ip addr add fe80::1/64 dev v0 nodad && \
        (timeout 3 \"$0\" -s ::1 --listen '[fe80::1%v0]:12001' 2>\"$1\"; true) && \
        python3 -c 'print(1)' >/dev/null";
    let out = output_within(
        unshare()
            .args(["--net", "--", "sh", "-c", script])
            .arg(bin_path("relay"))
            .arg(&err),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let log = stderr_text(&err);
    assert!(log.contains("listening on UDP [fe80::1%"), "{log}");
}

/// The receive queues (`/proc/net/udp{,6}` rx_queue, in bytes) of the
/// sockets on `port`: the relay's listen socket and its per-pod sockets.
fn queued_on(port: u16) -> Vec<u64> {
    let mut queues = Vec::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        for line in fs::read_to_string(table).unwrap().lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields[1].rsplit(':').next().unwrap();
            if u16::from_str_radix(local_port, 16).unwrap() == port {
                let rx = fields[4].split(':').nth(1).unwrap();
                queues.push(u64::from_str_radix(rx, 16).unwrap());
            }
        }
    }
    queues
}

/// `sender --confirm` through a relay is confirmed end to end: the relay
/// acknowledges when every pod has. Each message is logged once, the
/// receivers' acknowledgements are read (no queue left), with and without
/// `--frame` (which logs the sender as the source).
#[test]
fn confirm_through_a_relay_is_confirmed_by_every_pod() {
    for frame in [false, true] {
        let receiver = Receiver::start(
            "confirm-relay",
            &["--bind", "127.0.0.1", "--trust-relay", "127.0.0.0/8"],
        );
        let args: &[&str] = if frame { &["--frame"] } else { &[] };
        let relay = LoopRelay::start("confirm-relay", "127.0.0.1", receiver.port, args);
        let out = output_within(
            bin("sender")
                .args(["-s", "127.0.0.1", "-p", &relay.listen.to_string()])
                .args(["-m", "sure", "--confirm", "--repeat", "20"])
                .args(["--interval", "1ms"]),
            LIMIT,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "frame {frame}: {err}");
        assert_eq!(err.matches("confirmed by 1 of 1 pods").count(), 20, "{err}");
        let lines = receiver.wait_lines(20);
        sleep(Duration::from_millis(300));
        let log = receiver.log_text();
        assert_eq!(log.lines().count(), 20, "once each: {log}");
        for line in &lines {
            let (_, message) = parse_log_line(line).unwrap();
            assert!(
                message.starts_with("Message from Client:b'sure' Client IP Address:('127.0.0.1', "),
                "{line}"
            );
            if !frame {
                assert!(message.ends_with(&format!(", {})", relay.listen)), "{line}");
            }
        }
        wait_until("no datagram left unread", LIMIT, || {
            queued_on(relay.listen).iter().all(|&q| q == 0)
        });
        assert!(
            queued_on(relay.listen).len() >= 2,
            "listen and per-pod sockets"
        );
    }
}
