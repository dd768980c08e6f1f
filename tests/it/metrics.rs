//! `receiver --metrics`: a real Prometheus, in a simulated cluster of the
//! test's own network namespaces, scrapes a real receiver; promtool
//! checks the exposition; bad HTTP clients cost the datagrams nothing; the
//! socket drops counter follows the kernel's.

use crate::support;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::{
    assert_promtool_clean, bin, http, http_get, metrics_addr, output_within, pod_ip, sample,
    scrape, sender_ip, signal, wait_until, Cluster, Pod, PodProcess, Receiver, SENDER_IP,
    STATEFULSET,
};

fn send_all(port: u16, count: usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..count {
        sock.send_to(format!("datagram {i}").as_bytes(), ("127.0.0.1", port))
            .unwrap();
    }
}

/// The receiver's UDP port (its default) and metrics port in its pod; fixed
/// ports are fine in network namespaces of the test's own.
const UDP_PORT: u16 = 12000;
const METRICS_PORT: u16 = 9102;
const PROMETHEUS_IP: &str = "10.244.0.30";

/// An HTTP GET from inside `pod` (python3 carries it): the status and body,
/// or Err if no answer came.
fn get_in(cluster: &Cluster, pod: &Pod, url: &str) -> Result<(u16, String), String> {
    const GET: &str = "import sys, urllib.request, urllib.error\n\
        try:\n\
        \x20   r = urllib.request.urlopen(sys.argv[1], timeout=5)\n\
        \x20   code, body = r.status, r.read()\n\
        except urllib.error.HTTPError as e:\n\
        \x20   code, body = e.code, e.read()\n\
        sys.stdout.write(str(code) + '\\n' + body.decode())\n";
    let out = output_within(
        cluster.command(pod, "python3").args(["-c", GET, url]),
        Duration::from_secs(15),
    );
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let (code, body) = text.split_once('\n').expect("a status line");
    Ok((code.parse().unwrap(), body.to_string()))
}

/// A real Prometheus server in its own pod, scraping one target every 200 ms.
struct Prometheus<'a> {
    cluster: &'a Cluster,
    pod: Pod,
    _process: PodProcess,
    log: PathBuf,
}

impl<'a> Prometheus<'a> {
    fn start(cluster: &'a mut Cluster, target: SocketAddr) -> Prometheus<'a> {
        let pod = cluster.add_pod("prometheus", &[PROMETHEUS_IP.parse().unwrap()]);
        let cluster = &*cluster;
        // In the cluster's own temp dir: unique per run, removed with it.
        let config = cluster.dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n\
                 scrape_configs:\n  - job_name: receiver\n    static_configs:\n\
                 \x20     - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = cluster.dir.join("prometheus.log");
        // One file, one offset: two handles would overwrite each other.
        let log_file = fs::File::create(&log).unwrap();
        let mut cmd = cluster.command(&pod, "prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                cluster.dir.join("prometheus-data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        // Killed when dropped, and with the cluster's PID namespace at the
        // latest.
        let mut process = cluster.spawn(&mut cmd, "prometheus");
        let log_text = || fs::read_to_string(&log).unwrap_or_default();
        let mut last = Ok((0, String::new()));
        let end = Instant::now() + Duration::from_secs(30);
        while !matches!(last, Ok((200, _))) {
            assert!(
                process.is_running(),
                "prometheus exited (scripts/install-deps.sh installs it): {}",
                log_text()
            );
            assert!(
                Instant::now() < end,
                "Prometheus not ready after 30 s: {last:?}\n{}",
                log_text()
            );
            thread::sleep(Duration::from_millis(100));
            last = get_in(cluster, &pod, "http://127.0.0.1:9090/-/ready");
        }
        Prometheus {
            cluster,
            pod,
            _process: process,
            log,
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query through Prometheus's HTTP API: each series' value.
    fn query(&self, promql: &str) -> Vec<String> {
        let url = format!("http://127.0.0.1:9090/api/v1/query?query={promql}");
        let (status, body) = get_in(self.cluster, &self.pod, &url)
            .unwrap_or_else(|e| panic!("no answer from Prometheus: {e}{}", self.log_text()));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""status":"success""#), "{body}");
        // Each series ends `"value":[<time>,"<value>"]`.
        body.split(r#""value":["#)
            .skip(1)
            .map(|rest| {
                let (_, value) = rest.split_once(",\"").unwrap();
                value.split('"').next().unwrap().to_string()
            })
            .collect()
    }
}

/// Prometheus, the receiver and the datagrams' sender each in a pod of a
/// simulated cluster (network namespaces of this test's own): Prometheus
/// scrapes the receiver's pod address over the cluster network.
#[test]
fn prometheus_scrapes_what_the_receiver_counts() {
    let mut cluster = Cluster::new("metrics-prometheus");
    // Prometheus looks up its host's name at start: a cluster DNS answers
    // at once, where no DNS would cost it minutes of timeouts.
    cluster.start_dns(5);
    let pod = cluster.add_pod(&format!("{STATEFULSET}-0"), &[pod_ip(0)]);
    let metrics = format!("0.0.0.0:{METRICS_PORT}");
    let receiver = cluster.start_receiver_with(pod, &["--metrics", &metrics]);
    let sender = cluster.add_pod("sender-app", &[sender_ip()]);
    let target = SocketAddr::new(pod_ip(0), METRICS_PORT);
    let prometheus = Prometheus::start(&mut cluster, target);
    let cluster = prometheus.cluster;

    let count = 500;
    // Paced, so no datagram waits on the neighbour (ARP) entry or a full
    // buffer: a drop fails the zero-drops check below.
    const SEND: &str = "import socket, sys, time\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        for i in range(int(sys.argv[3])):\n\
        \x20   s.sendto(b'datagram %d' % i, (sys.argv[1], int(sys.argv[2])))\n\
        \x20   if i % 50 == 0: time.sleep(0.02)\n";
    let out = output_within(
        cluster.command(&sender, "python3").args([
            "-c",
            SEND,
            &pod_ip(0).to_string(),
            &UDP_PORT.to_string(),
            &count.to_string(),
        ]),
        Duration::from_secs(15),
    );
    assert!(out.status.success(), "{out:?}");
    wait_until(
        &format!("{count} log lines"),
        Duration::from_secs(10),
        || receiver.log_text().lines().count() >= count,
    );
    let messages = support::info_messages(&receiver.log_text());
    assert_eq!(messages.len(), count, "nothing lost, nothing extra");
    for (i, message) in messages.iter().enumerate() {
        let from = format!("('{SENDER_IP}', ");
        assert!(
            message.starts_with(&format!(
                "Message from Client:b'datagram {i}' Client IP Address:{from}"
            )),
            "{message}"
        );
    }

    let want = count.to_string();
    let mut seen = vec![];
    wait_until(
        "Prometheus to scrape every datagram",
        Duration::from_secs(30),
        || {
            seen = prometheus.query("udp_headless_datagrams_received_total");
            seen == [want.as_str()]
        },
    );
    assert_eq!(prometheus.query("up"), ["1"], "{}", prometheus.log_text());
    let bytes: usize = (0..count).map(|i| format!("datagram {i}").len()).sum();
    assert_eq!(
        prometheus.query("udp_headless_bytes_received_total"),
        [bytes.to_string()]
    );
    assert_eq!(
        prometheus.query("udp_headless_build_info"),
        ["1"],
        "one series, labelled with the version"
    );
    assert_eq!(prometheus.query("udp_headless_socket_drops_total"), ["0"]);
    assert_eq!(
        prometheus.query("udp_headless_log_write_errors_total"),
        ["0"]
    );
}

#[test]
fn promtool_finds_the_exposition_clean() {
    let receiver = Receiver::start("metrics-promtool", &["--metrics", "127.0.0.1:0"]);
    let text = scrape(metrics_addr(&receiver.stderr));
    for family in [
        "udp_headless_build_info",
        "udp_headless_datagrams_received_total",
        "udp_headless_bytes_received_total",
        "udp_headless_socket_drops_total",
        "udp_headless_log_write_errors_total",
        "udp_headless_acks_sent_total",
        "udp_headless_duplicates_suppressed_total",
        "udp_headless_sequence_gaps_total",
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{text}");
        assert!(text.contains(&format!("# TYPE {family} ")), "{text}");
    }
    assert_promtool_clean(&text);
}

#[test]
fn endpoints_answer_by_path_and_method() {
    let receiver = Receiver::start("metrics-endpoints", &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&receiver.stderr);
    let cases = [
        ("GET /livez HTTP/1.1\r\n\r\n", 200, "ok\n"),
        ("GET /readyz HTTP/1.1\r\n\r\n", 200, "ok\n"),
        ("GET /readyz?x=1 HTTP/1.0\r\n\r\n", 200, "ok\n"),
        ("GET / HTTP/1.1\r\n\r\n", 404, "Not Found\n"),
        ("GET /metricsx HTTP/1.1\r\n\r\n", 404, "Not Found\n"),
        (
            "POST /metrics HTTP/1.1\r\n\r\n",
            405,
            "Method Not Allowed\n",
        ),
        ("PUT /readyz HTTP/1.1\r\n\r\n", 405, "Method Not Allowed\n"),
        ("GET /livez\r\n\r\n", 400, "Bad Request\n"),
    ];
    for (request, status, body) in cases {
        assert_eq!(
            http(addr, request),
            (status, body.to_string()),
            "{request:?}"
        );
    }
}

#[test]
fn bad_options_are_usage_errors_and_a_busy_port_a_failure() {
    let cases: &[support::UsageCase] = &[
        (
            &["--metrics", "9102"],
            &[],
            "--metrics: '9102' is not ADDR:PORT",
        ),
        (
            &[],
            &[("UDP_HEADLESS_METRICS", "localhost:9102")],
            "$UDP_HEADLESS_METRICS: 'localhost:9102' is not ADDR:PORT",
        ),
        (&["--metrics"], &[], "option '--metrics' needs a value"),
    ];
    support::assert_usage_errors("receiver", cases);

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap();
    let out = output_within(
        bin("receiver")
            .args(["--port", &support::free_port().to_string()])
            .env("UDP_HEADLESS_METRICS", taken.to_string()),
        support::RUN_LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on TCP {taken}")),
        "{stderr}"
    );
}

/// Opens a request and never finishes it, one byte at a time; how long
/// until the server hung up.
fn slow_client(addr: SocketAddr, give_up: Duration) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let mut buf = [0u8; 256];
    while start.elapsed() < give_up {
        if stream.write_all(b"a").is_err() {
            return start.elapsed();
        }
        match stream.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => panic!("an answer to a request that never ended"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return start.elapsed(),
        }
    }
    panic!("the server kept a never-ending request open for {give_up:?}");
}

#[test]
fn garbage_slow_and_half_open_clients_cost_the_datagrams_nothing() {
    let receiver = Receiver::start("metrics-bad-clients", &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&receiver.stderr);
    let port = receiver.port;
    let count = 3000;
    // Datagrams flow the whole time, paced so that none is lost to a full
    // buffer whatever the clients do.
    let flow = thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..count {
            sock.send_to(format!("datagram {i}").as_bytes(), ("127.0.0.1", port))
                .unwrap();
            if i % 100 == 99 {
                thread::sleep(Duration::from_millis(20));
            }
        }
    });
    let slow = thread::spawn(move || slow_client(addr, Duration::from_secs(15)));
    // Connects and sends nothing, ever.
    let silent = TcpStream::connect(addr).unwrap();
    // Connects and closes its sending side at once.
    let half_open = TcpStream::connect(addr).unwrap();
    half_open.shutdown(Shutdown::Write).unwrap();
    // 100 KB of random bytes.
    let mut garbage = vec![0u8; 100 * 1024];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut garbage)
        .unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(&garbage); // the server may hang up midway
    let mut answer = Vec::new();
    let closed = match stream.read_to_end(&mut answer) {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    };
    assert!(closed, "the garbage client was not closed");
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // While the silent and the slow clients still hold their connections.
    let during = scrape(addr);
    assert!(sample(&during, "udp_headless_datagrams_received_total") <= count as u64);
    let mut half_open_answer = Vec::new();
    let mut half_open = half_open;
    half_open
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    half_open.read_to_end(&mut half_open_answer).unwrap();
    assert!(half_open_answer.is_empty(), "an answer to no request");

    flow.join().unwrap();
    let took = slow.join().unwrap();
    assert!(
        took < Duration::from_secs(8),
        "the slow client was closed after {took:?}"
    );
    drop(silent);

    let lines = receiver.wait_lines(count);
    let messages = support::info_messages(&lines.join("\n"));
    assert_eq!(messages.len(), count, "nothing lost, nothing extra");
    for (i, message) in messages.iter().enumerate() {
        assert!(
            message.starts_with(&format!("Message from Client:b'datagram {i}' ")),
            "{message}"
        );
    }
    let after = scrape(addr);
    assert_eq!(
        sample(&after, "udp_headless_datagrams_received_total"),
        count as u64
    );
    assert_eq!(sample(&after, "udp_headless_socket_drops_total"), 0);
}

/// One line of /proc/PID/status, as a number (`Threads`, `VmRSS` in kB).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// Clients that hold connections to the metrics port and never finish a
/// request, each opened again as soon as the server closes it: idle ones,
/// slow ones (one byte a second), half-open ones (part of a request, then
/// their sending side closed).
fn hold_connections(
    addr: SocketAddr,
    idle: usize,
    slow: usize,
    half_open: usize,
    stop: &AtomicBool,
) -> usize {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Idle,
        Slow,
        HalfOpen,
    }
    let open = |kind: Kind| {
        let mut stream = TcpStream::connect(addr).ok()?;
        match kind {
            Kind::Idle => {}
            Kind::Slow => stream.write_all(b"GET /readyz HTTP/1.1\r\nX: ").ok()?,
            Kind::HalfOpen => {
                stream.write_all(b"GET /readyz HTTP/1.1\r\n").ok()?;
                stream.shutdown(Shutdown::Write).ok()?;
            }
        }
        stream.set_nonblocking(true).ok()?;
        Some(stream)
    };
    let kinds = (0..idle)
        .map(|_| Kind::Idle)
        .chain((0..slow).map(|_| Kind::Slow))
        .chain((0..half_open).map(|_| Kind::HalfOpen));
    let mut clients: Vec<(Kind, Option<TcpStream>)> = kinds.map(|k| (k, open(k))).collect();
    let mut opened = clients.len();
    let mut last_byte = Instant::now();
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        let tick = last_byte.elapsed() >= Duration::from_secs(1);
        for (kind, stream) in clients.iter_mut() {
            let closed = match stream {
                None => true,
                Some(s) => {
                    let written = !tick || *kind != Kind::Slow || s.write_all(b"a").is_ok();
                    let read = match s.read(&mut buf) {
                        Ok(0) => false,
                        Ok(_) => panic!("an answer to a request that never ended"),
                        Err(e) => e.kind() == ErrorKind::WouldBlock,
                    };
                    !(written && read)
                }
            };
            if closed {
                *stream = open(*kind);
                opened += 1;
            }
        }
        if tick {
            last_byte = Instant::now();
        }
        // Not faster: each closed connection waits out TIME_WAIT on a port.
        thread::sleep(Duration::from_millis(100));
    }
    opened
}

/// However many clients hold connections, idle, slow or half-open, and
/// open them again as they are closed, a prober gets its answer, and the
/// server holds no thread per connection and bounded memory.
#[test]
fn a_prober_is_answered_while_any_number_of_clients_hold_connections() {
    let receiver = Receiver::start("metrics-starved-probe", &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&receiver.stderr);
    let pid = receiver.child.id();
    let (status, _) = http_get(addr, "/readyz");
    assert_eq!(status, 200);
    let threads_before = status_field(pid, "Threads");
    let rss_before = status_field(pid, "VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    // More clients than the server holds (64), so that it closes some all
    // the time and they come back.
    let holders = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || hold_connections(addr, 100, 10, 10, &stop))
    };
    // Every client has connected at least once.
    thread::sleep(Duration::from_secs(1));
    let probe = || {
        // A prober with a timeout as generous as a test needs.
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    let mut threads_during = 0;
    let mut rss_during = 0;
    for i in 0..30 {
        let answer = probe();
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nok\n"),
            "probe {i}: {answer:?}"
        );
        threads_during = threads_during.max(status_field(pid, "Threads"));
        rss_during = rss_during.max(status_field(pid, "VmRSS"));
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let opened = holders.join().unwrap();
    assert!(opened >= 1000, "only {opened} connections opened");
    assert_eq!(
        threads_during,
        threads_before,
        "no thread per connection (the log: {})",
        receiver.log_text()
    );
    assert!(
        rss_during < rss_before + 8 * 1024,
        "RSS grew from {rss_before} kB to {rss_during} kB"
    );
    assert_eq!(http_get(addr, "/livez").0, 200);
}

/// `HEAD` is answered as `GET` without the body; only HTTP/1.0 and 1.1
/// are served.
#[test]
fn head_is_get_without_a_body_and_versions_are_checked() {
    let receiver = Receiver::start("metrics-head", &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&receiver.stderr);
    let raw = |request: &str| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let head = raw("HEAD /readyz HTTP/1.1\r\n\r\n");
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 3\r\nConnection: close\r\n\r\n"
    );
    let get_metrics = raw("GET /metrics HTTP/1.1\r\n\r\n");
    let head_metrics = raw("HEAD /metrics HTTP/1.1\r\n\r\n");
    let (get_head, body) = get_metrics.split_once("\r\n\r\n").unwrap();
    assert!(!body.is_empty());
    assert!(
        head_metrics.starts_with("HTTP/1.1 200 OK\r\n"),
        "{head_metrics}"
    );
    assert!(head_metrics.ends_with("\r\n\r\n"), "{head_metrics}");
    let length = |head: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|n| n.trim().parse::<usize>().unwrap())
    };
    assert!(length(&head_metrics).unwrap() > 0, "{head_metrics}");
    assert_eq!(length(get_head), Some(body.len()));
    let allow = raw("POST /readyz HTTP/1.1\r\n\r\n");
    assert!(allow.contains("\r\nAllow: GET, HEAD\r\n"), "{allow}");

    let cases = [
        ("GET /livez HTTP/1.0\r\n\r\n", 200, "ok\n"),
        (
            "GET /livez HTTP/1.9\r\n\r\n",
            505,
            "HTTP Version Not Supported\n",
        ),
        (
            "GET /livez HTTP/2.0\r\n\r\n",
            505,
            "HTTP Version Not Supported\n",
        ),
        ("GET /livez HTTP/1.\r\n\r\n", 400, "Bad Request\n"),
        ("GET /livez HTTP/1.1.1\r\n\r\n", 400, "Bad Request\n"),
        ("GET /livez HTTP/\r\n\r\n", 400, "Bad Request\n"),
    ];
    for (request, status, body) in cases {
        assert_eq!(
            http(addr, request),
            (status, body.to_string()),
            "{request:?}"
        );
    }
}

/// The kernel's drop count for the UDP socket on `port`, as process `pid`
/// sees its namespace's tables (the last column).
fn kernel_drops(pid: u32, port: u16) -> u64 {
    let local = format!(":{port:04X}");
    ["udp", "udp6"]
        .iter()
        .flat_map(|table| {
            fs::read_to_string(format!("/proc/{pid}/net/{table}"))
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .find(|row| {
            row.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(&local))
        })
        .and_then(|row| row.split_whitespace().last().map(|d| d.parse().unwrap()))
        .expect("the receiver's socket row")
}

#[test]
fn socket_drops_follow_the_kernels_count() {
    let receiver = Receiver::start(
        "metrics-drops",
        &["--metrics", "127.0.0.1:0", "--rcvbuf", "4096"],
    );
    let addr = metrics_addr(&receiver.stderr);
    let pid = receiver.child.id();
    let before = scrape(addr);
    assert_eq!(sample(&before, "udp_headless_socket_drops_total"), 0);
    assert_eq!(kernel_drops(pid, receiver.port), 0);

    let sent = 300;
    signal(pid, "STOP");
    send_all(receiver.port, sent);
    let dropped = kernel_drops(pid, receiver.port);
    signal(pid, "CONT");
    assert!(dropped > 0, "a 4 KiB buffer held {sent} datagrams");
    assert!(dropped < sent as u64, "the buffer held none");

    let kept = sent - dropped as usize;
    receiver.wait_lines(kept);
    let after = scrape(addr);
    assert_eq!(kernel_drops(pid, receiver.port), dropped);
    assert_eq!(sample(&after, "udp_headless_socket_drops_total"), dropped);
    assert_eq!(
        sample(&after, "udp_headless_datagrams_received_total"),
        kept as u64
    );
    assert_eq!(receiver.log_text().lines().count(), kept);
}

#[test]
fn confirmed_messages_count_acknowledgements_and_duplicates() {
    use udp_headless::frame::{self, Frame, Id};
    let receiver = Receiver::start("metrics-confirm", &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&receiver.stderr);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let id = Id { sender: 7, seq: 1 };
    let data = frame::data(id, b"once");
    // A retry after a lost acknowledgement: the same frame again.
    for _ in 0..3 {
        sock.send_to(&data, ("127.0.0.1", receiver.port)).unwrap();
        let mut ack = [0u8; 64];
        let n = sock.recv(&mut ack).expect("an acknowledgement");
        assert_eq!(frame::parse(&ack[..n]), Some(Frame::Ack(id)));
    }
    sock.send_to(b"plain", ("127.0.0.1", receiver.port))
        .unwrap();
    let lines = receiver.wait_lines(2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let text = scrape(addr);
    assert_eq!(sample(&text, "udp_headless_datagrams_received_total"), 4);
    assert_eq!(sample(&text, "udp_headless_acks_sent_total"), 3);
    assert_eq!(sample(&text, "udp_headless_duplicates_suppressed_total"), 2);
    assert_eq!(sample(&text, "udp_headless_sequence_gaps_total"), 0);
    let bytes = 3 * data.len() + b"plain".len();
    assert_eq!(
        sample(&text, "udp_headless_bytes_received_total"),
        bytes as u64
    );
}

#[test]
fn a_skipped_sequence_number_is_a_gap() {
    use udp_headless::frame::{self, Id};
    let receiver = Receiver::start("metrics-gaps", &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&receiver.stderr);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // (sender, sequence): 7 skips 3, then 5 and 6; 8 starts at 10 (no gap:
    // nothing of it was seen before); 7/4 again is a duplicate, not a gap.
    let frames = [(7, 1), (7, 2), (7, 4), (8, 10), (7, 7), (7, 4), (8, 11)];
    for (sender, seq) in frames {
        let data = frame::data(Id { sender, seq }, format!("{sender}/{seq}").as_bytes());
        sock.send_to(&data, ("127.0.0.1", receiver.port)).unwrap();
    }
    sock.send_to(b"end", ("127.0.0.1", receiver.port)).unwrap();
    // Six frames logged once each, then `end`.
    receiver.wait_lines(frames.len());
    let text = scrape(addr);
    assert_eq!(sample(&text, "udp_headless_sequence_gaps_total"), 2);
    assert_eq!(sample(&text, "udp_headless_duplicates_suppressed_total"), 1);
}
