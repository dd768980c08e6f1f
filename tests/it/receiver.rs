//! The real `receiver` over loopback, checked against python3 itself: a
//! reference receiver written here with the original demo's logging setup
//! and `recvfrom` loop (so no file outside the repository is needed).

use crate::support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Payloads the log must render exactly as the original does.
fn payloads() -> Vec<Vec<u8>> {
    let mut list: Vec<Vec<u8>> = [
        &b"test"[..],
        b"",
        b"it's",
        b"say \"hi\"",
        b"both ' and \"",
        b"back\\slash \\' \\\"",
        b"\t\n\r\x0b\x0c",
        b"line one\nline two\r\n",
        b"\x1b[31mred\x1b[0m \x1b]0;title\x07",
        "h\u{e9}llo \u{2713}".as_bytes(),
    ]
    .iter()
    .map(|p| p.to_vec())
    .collect();
    list.push((0..=255).collect());
    list.extend((0..=255u8).map(|b| vec![b]));
    list.push((0..65_507).map(|i| (i * 7 % 256) as u8).collect());
    list
}

/// The original demo's receiver, as python3 runs it: its logging setup
/// (format string included) and its recvfrom loop, on the port in argv[1].
const REFERENCE_RECEIVER: &str = r#"
import logging, socket, sys
log = logging.getLogger(); log.setLevel(logging.DEBUG)
h = logging.StreamHandler(sys.stdout); h.setLevel(logging.INFO)
h.setFormatter(logging.Formatter('%(asctime)s - %(name)s - %(levelname)s - %(message)s'))
log.addHandler(h)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', int(sys.argv[1])))
while True:
    msg, addr = s.recvfrom(65535)
    logging.info('Message from Client:{} Client IP Address:{}'.format(msg, addr))
"#;

/// The reference receiver on its own port, its log in a file.
struct Original {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: TempDir,
}

impl Drop for Original {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_original(port: u16) -> Original {
    let dir = TempDir::new("original");
    let log = dir.join("original.log");
    let child = Command::new("python3")
        .args(["-c", REFERENCE_RECEIVER, &port.to_string()])
        .stdout(fs::File::create(&log).unwrap())
        .spawn()
        .expect("python3 runs");
    wait_until("the reference receiver", Duration::from_secs(10), || {
        check(port).status.success()
    });
    Original {
        child,
        port,
        log,
        _dir: dir,
    }
}

fn messages_of(path: &Path, count: usize) -> Vec<String> {
    wait_until(
        &format!("{count} lines in {}", path.display()),
        Duration::from_secs(20),
        || fs::read_to_string(path).unwrap().lines().count() >= count,
    );
    info_messages(&fs::read_to_string(path).unwrap())
}

#[test]
fn logs_exactly_what_the_original_logs() {
    let ours = Receiver::start("parity", &[]);
    let original = start_original(free_port());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payloads = payloads();
    for (i, payload) in payloads.iter().enumerate() {
        client.send_to(payload, ("127.0.0.1", ours.port)).unwrap();
        client
            .send_to(payload, ("127.0.0.1", original.port))
            .unwrap();
        // Lock-step, so neither receiver's socket buffer can overflow.
        ours.wait_lines(i + 1);
        messages_of(&original.log, i + 1);
    }
    let want = messages_of(&original.log, payloads.len());
    let got = info_messages(&ours.log_text());
    assert_eq!(got.len(), payloads.len(), "one line per datagram");
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            got,
            want,
            "payload {i}: {:?}",
            &payloads[i][..payloads[i].len().min(40)]
        );
    }
    // The repr is what keeps each datagram on one line of plain ASCII.
    let text = ours.log_text();
    assert!(text
        .bytes()
        .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)));
}

#[test]
fn ipv6_sources_print_as_python_prints_them() {
    let ours = Receiver::start("ipv6", &[]);
    // python3's own recvfrom on an AF_INET6 socket, for the address tuple.
    let code = "import socket\n\
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
        s.bind(('::1', 0))\n\
        s.settimeout(10)\n\
        print(s.getsockname()[1], flush=True)\n\
        m, a = s.recvfrom(65535)\n\
        print(repr(a))\n\
        print(repr(m))\n";
    let mut python = Command::new("python3")
        .args(["-c", code])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(python.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap);
    let python_port: u16 = lines.next().unwrap().parse().unwrap();

    // The largest IPv6 payload, whole: the original truncated nothing up
    // to 65535 either, and neither may we.
    let big: Vec<u8> = (0..65_527).map(|i| (i % 251) as u8).collect();
    let client = UdpSocket::bind("[::1]:0").unwrap();
    client.send_to(&big, ("::1", python_port)).unwrap();
    client.send_to(&big, ("::1", ours.port)).unwrap();
    let (addr, repr) = (lines.next().unwrap(), lines.next().unwrap());
    assert!(python.wait().unwrap().success());
    assert!(addr.starts_with("('::1', "), "{addr}");
    let got = info_messages(&ours.wait_lines(1).join("\n"));
    assert_eq!(got, vec![received(&repr, &addr)]);
}

#[test]
fn buffers_under_load_but_never_holds_a_line_back_when_idle() {
    let ours = Receiver::start("buffering", &[]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Idle: a single datagram shows up without anything else arriving.
    client.send_to(b"alone", ("127.0.0.1", ours.port)).unwrap();
    ours.wait_lines(1);

    // Under load: queue 200 datagrams while the receiver is stopped (they fit
    // in the smallest default receive buffer), then
    // count its write syscalls (/proc/PID/io syscw) while it logs them.
    let writes = || -> u64 {
        let io = fs::read_to_string(format!("/proc/{}/io", ours.child.id())).unwrap();
        let line = io.lines().find(|l| l.starts_with("syscw:")).unwrap();
        line[6..].trim().parse().unwrap()
    };
    signal(ours.child.id(), "STOP");
    for i in 0..200 {
        client
            .send_to(format!("burst {i}").as_bytes(), ("127.0.0.1", ours.port))
            .unwrap();
    }
    let before = writes();
    signal(ours.child.id(), "CONT");
    let lines = ours.wait_lines(201);
    let used = writes() - before;
    assert_eq!(lines.len(), 201);
    assert!(used <= 3, "{used} writes for 200 lines");
}

#[test]
fn sigterm_and_sigint_stop_it_cleanly_logging_what_had_arrived() {
    for name in ["TERM", "INT"] {
        let mut ours = Receiver::start(&format!("signal-{name}"), &[]);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Arrives while the receiver is stopped: still logged on the way out.
        signal(ours.child.id(), "STOP");
        client
            .send_to(b"last words", ("127.0.0.1", ours.port))
            .unwrap();
        signal(ours.child.id(), name);
        signal(ours.child.id(), "CONT");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = ours.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "SIG{name} ignored"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(0), "SIG{name}");
        let got = info_messages(&ours.log_text());
        assert_eq!(got.len(), 1, "SIG{name}: {got:?}");
        assert!(got[0].starts_with("Message from Client:b'last words' "));
    }
}

#[test]
fn check_tells_whether_a_receiver_is_bound_and_logs_nothing() {
    let port = free_port();
    let out = check(port);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("port {port}")));

    let ours = Receiver::start_on("check", port, &[]);
    for _ in 0..3 {
        let out = check(port);
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
    }
    assert_eq!(
        ours.log_text(),
        "",
        "--check must not make the receiver log"
    );
    // A probe runs with the container's environment: only the port counts.
    let out = output_within(
        bin("receiver")
            .args(["--check", "-p", &port.to_string()])
            .env("UDP_HEADLESS_BIND", "zzz")
            .env("UDP_HEADLESS_METRICS", "nonsense"),
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn port_and_bind_address_come_from_options_or_environment() {
    let port = free_port();
    let mut child = bin("receiver")
        .env("UDP_HEADLESS_PORT", port.to_string())
        .env("UDP_HEADLESS_BIND", "127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "receiver on $UDP_HEADLESS_PORT",
        Duration::from_secs(5),
        || check(port).status.success(),
    );
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"env", ("127.0.0.1", port))
        .unwrap();
    signal(child.id(), "TERM");
    let status = wait_for_exit(&mut child, "the receiver after SIGTERM");
    let mut log = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success());
    assert_eq!(info_messages(&log).len(), 1, "{log}");
    assert!(info_messages(&log)[0].contains("b'env'"));
}

#[test]
fn usage_errors_are_one_clear_line_and_exit_2() {
    let cases: &[UsageCase] = &[
        (&["--bogus"], &[], "unknown option '--bogus'"),
        (&["-x"], &[], "unknown option '-x'"),
        (&["stray"], &[], "unexpected argument 'stray'"),
        (&["--port", "0"], &[], "--port: '0' is not a port"),
        (&["--port", "70000"], &[], "--port: '70000' is not a port"),
        (&["--port"], &[], "option '--port' needs a value"),
        (
            &[],
            &[("UDP_HEADLESS_PORT", "http")],
            "$UDP_HEADLESS_PORT: 'http' is not a port",
        ),
        (
            &["--bind", "nowhere"],
            &[],
            "--bind: 'nowhere' is not an IP address",
        ),
        (
            &["--rcvbuf", "lots"],
            &[],
            "--rcvbuf: 'lots' is not a whole number",
        ),
        (
            &["--trust-relay", "10.0.0.0/33"],
            &[],
            "--trust-relay: '10.0.0.0/33' is not addresses or CIDRs",
        ),
        (
            &[],
            &[("UDP_HEADLESS_TRUST_RELAY", "pods")],
            "$UDP_HEADLESS_TRUST_RELAY: 'pods' is not addresses or CIDRs",
        ),
        (
            &["--check", "-b", "::1"],
            &[],
            "--check takes no option but --port, not '-b'",
        ),
        (
            &["--rcvbuf", "1", "--check"],
            &[],
            "--check takes no option but --port, not '--rcvbuf'",
        ),
        (
            &["--check", "--metrics", "[::]:9102"],
            &[],
            "--check takes no option but --port, not '--metrics'",
        ),
        (
            &["--check", "--trust-relay", "10.0.0.0/8"],
            &[],
            "--check takes no option but --port, not '--trust-relay'",
        ),
    ];
    support::assert_usage_errors("receiver", cases);
}

#[test]
fn a_port_in_use_is_a_clear_failure() {
    let busy = UdpSocket::bind("[::]:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = output_within(bin("receiver").args(["-p", &port.to_string()]), RUN_LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on UDP [::]:{port}")),
        "{stderr}"
    );
}

#[test]
fn help_and_version() {
    let help = output_within(bin("receiver").arg("--help"), RUN_LIMIT);
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for word in [
        "--port",
        "--bind",
        "--rcvbuf",
        "--check",
        "--trust-relay",
        "UDP_HEADLESS_TRUST_RELAY",
        "UDP_HEADLESS_PORT",
        "Exit codes",
    ] {
        assert!(text.contains(word), "help lacks {word}");
    }
    let version = output_within(bin("receiver").arg("-V"), RUN_LIMIT);
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!("receiver {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_log_that_cannot_be_written_is_a_clear_failure() {
    let port = free_port();
    let mut child = bin("receiver")
        .args(["-p", &port.to_string()])
        .stdout(fs::File::create("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the receiver", Duration::from_secs(5), || {
        check(port).status.success()
    });
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"x", ("127.0.0.1", port))
        .unwrap();
    wait_until("the receiver to give up", Duration::from_secs(5), || {
        child.try_wait().unwrap().is_some()
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Its last line, in the log format like the rest of its stderr.
    let last = err.lines().last().unwrap_or_default();
    let (level, message) = parse_log_line(last).expect("not in the log format");
    assert_eq!(level, "ERROR", "{err}");
    assert!(
        message.contains("cannot write the log to standard output: "),
        "{err}"
    );
}

/// A FORWARDED frame (the relay's `--frame`) carrying `client` as the source.
fn forwarded(client: &str, message: &[u8]) -> Vec<u8> {
    use udp_headless::frame::{self, Id};
    let mut out = Vec::new();
    let id = Id { sender: 7, seq: 1 };
    frame::write_forwarded(&mut out, id, client.parse().unwrap(), message);
    out
}

#[test]
fn a_forwarded_frame_from_an_untrusted_source_is_logged_as_bytes() {
    // Untrusted: no --trust-relay at all, or a list without the source.
    for args in [&[][..], &["--trust-relay", "10.0.0.0/8,::2"][..]] {
        let ours = Receiver::start("forged", args);
        let frame = forwarded("8.8.8.8:5000", b"spoofed");
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(&frame, ("127.0.0.1", ours.port)).unwrap();
        let lines = ours.wait_lines(1);
        assert_eq!(
            parse_log_line(&lines[0]).unwrap().1,
            received_message(&frame, client.local_addr().unwrap()),
            "{args:?}"
        );
    }
}

#[test]
fn a_forwarded_frame_from_a_trusted_relay_logs_the_original_client() {
    // Loopback trusted as a CIDR and as a plain address, IPv4 (the dual-stack
    // socket sees ::ffff:127.0.0.1) and IPv6.
    for (trust, relay) in [
        ("10.1.0.0/16,127.0.0.0/8", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
    ] {
        let ours = Receiver::start("trusted", &["--trust-relay", trust]);
        let client: std::net::SocketAddr = "8.8.8.8:5000".parse().unwrap();
        let frame = forwarded("8.8.8.8:5000", b"relayed");
        let sock = UdpSocket::bind((relay, 0)).unwrap();
        sock.send_to(&frame, (relay, ours.port)).unwrap();
        let lines = ours.wait_lines(1);
        assert_eq!(
            parse_log_line(&lines[0]).unwrap().1,
            received_message(b"relayed", client),
            "{trust}"
        );
    }
}

/// Issue #20, item 5: an acknowledgement means the line is in the log.
/// With the log on a full disk (/dev/full: every write is ENOSPC) the
/// receiver fails, and `sender --confirm` must not report it confirmed.
#[test]
fn a_message_that_cannot_be_logged_is_not_confirmed() {
    let port = free_port();
    let mut child = bin("receiver")
        .args(["-p", &port.to_string()])
        .stdout(fs::File::create("/dev/full").unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the receiver", Duration::from_secs(5), || {
        check(port).status.success()
    });
    let out = output_within(
        bin("sender")
            .args(["-s", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", "lost", "--confirm", "--timeout", "1s"]),
        RUN_LIMIT,
    );
    let _ = child.kill();
    let receiver = child.wait().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("confirmed by 0 of 1 pods"), "{err}");
    assert_eq!(receiver.code(), Some(1), "the receiver did not fail");
}
