//! `sender --confirm` and the receiver's acknowledgements, with the real
//! binaries over loopback: confirmations, exactly-once logging, answers
//! from the address a frame was sent to, forged and stale
//! acknowledgements, malformed frames, pods that never answer. Then in a
//! simulated cluster (tests/it/support: pods in network namespaces, a real
//! DNS server): loss injected with iptables, dead pods, pods that join or
//! leave while the sender waits.

use crate::support;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use support::*;
use udp_headless::frame::{self, ack, Frame, Id};

fn sender(args: &[&str]) -> Output {
    output_within(bin("sender").args(args), RUN_LIMIT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The sender's stderr messages, asserting each has the log shape.
fn stderr_messages(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .map(|line| {
            let (_, message) =
                parse_log_line(line).unwrap_or_else(|| panic!("not a log line: {line:?}"));
            message.to_string()
        })
        .collect()
}

/// A test socket: a client of the receiver, or a fake pod.
fn socket(ip: &str) -> UdpSocket {
    let sock = UdpSocket::bind((ip, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock
}

#[test]
fn every_mode_confirms_and_logs_each_message_once() {
    let receiver = Receiver::start("confirm-modes", &[]);
    let port = receiver.port.to_string();
    let base = ["--port", &port, "--confirm"];
    // (service, extra arguments, stdin, messages)
    let cases: &[(&str, &[&str], &str, &[&str])] = &[
        ("127.0.0.1", &["-m", "one"], "", &["one"]),
        ("::1", &["-m", "six"], "", &["six"]),
        (
            "localhost",
            &["-m", "again", "-r", "3", "-i", "10ms"],
            "",
            &["again"; 3],
        ),
        ("127.0.0.1", &[], "a\n\nb\n", &["a", "", "b"]),
    ];
    let mut want = Vec::new();
    for &(service, extra, stdin, messages) in cases {
        let out = output_fed(
            bin("sender").args(["-s", service]).args(base).args(extra),
            stdin.as_bytes(),
            RUN_LIMIT,
        );
        assert_eq!(out.status.code(), Some(0), "{service} {extra:?}: {out:?}");
        let ip = if service == "::1" { "::1" } else { "127.0.0.1" };
        assert_eq!(
            info_messages(&text(&out.stdout)),
            vec![format!("sent message to :{ip}"); messages.len()]
        );
        assert_eq!(
            stderr_messages(&out),
            vec!["confirmed by 1 of 1 pods"; messages.len()]
        );
        want.extend(messages.iter().map(|m| format!("b'{m}'")));
    }
    let lines = receiver.wait_lines(want.len());
    let got: Vec<String> = info_messages(&lines.join("\n"))
        .iter()
        .map(|m| {
            let repr = m.strip_prefix("Message from Client:").unwrap();
            repr[..repr.find(" Client IP Address:").unwrap()].to_string()
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_retry_is_acknowledged_again_but_logged_once() {
    let receiver = Receiver::start("confirm-once", &[]);
    let client = socket("127.0.0.1");
    let to = ("127.0.0.1", receiver.port);
    let id = Id { sender: 77, seq: 1 };
    let other = Id { sender: 78, seq: 1 };
    let sends = [
        (id, "first"),
        (id, "first"),
        (other, "other"),
        (id, "first"),
    ];
    for (id, message) in sends {
        client
            .send_to(&frame::data(id, message.as_bytes()), to)
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(frame::parse(&buf[..n]), Some(Frame::Ack(id)));
        assert_eq!(n, frame::ACK_LEN);
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], receiver.port)));
    }
    // A plain marker after them: once it is logged, so is all before it.
    client.send_to(b"marker", to).unwrap();
    let lines = receiver.wait_lines(3);
    let client_addr = format!("('127.0.0.1', {})", client.local_addr().unwrap().port());
    assert_eq!(
        info_messages(&lines.join("\n")),
        [
            received("b'first'", &client_addr),
            received("b'other'", &client_addr),
            received("b'marker'", &client_addr),
        ]
    );
}

/// All of 127.0.0.0/8 is local: a receiver on the wildcard address must
/// answer a frame sent to 127.0.0.2 from 127.0.0.2, and to ::1 from ::1.
#[test]
fn acknowledges_from_the_address_the_frame_was_sent_to() {
    let receiver = Receiver::start("confirm-from", &[]);
    for (client_ip, to_ip) in [
        ("127.0.0.1", "127.0.0.2"),
        ("127.0.0.1", "127.0.0.3"),
        ("::1", "::1"),
    ] {
        let client = socket(client_ip);
        let to = SocketAddr::new(to_ip.parse().unwrap(), receiver.port);
        let id = Id { sender: 5, seq: 9 };
        client.send_to(&frame::data(id, b"x"), to).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(frame::parse(&buf[..n]), Some(Frame::Ack(id)));
        assert_eq!(from, to, "answered from the wrong address");
    }
    // And the sender, sending to 127.0.0.2, is confirmed.
    let out = sender(&[
        "-s",
        "127.0.0.2",
        "-m",
        "y",
        "--confirm",
        "-p",
        &receiver.port.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn malformed_frames_are_logged_as_bytes_and_not_acknowledged() {
    let receiver = Receiver::start("confirm-malformed", &[]);
    let client = socket("127.0.0.1");
    let to = ("127.0.0.1", receiver.port);
    let id = Id { sender: 1, seq: 2 };
    let good = frame::data(id, b"test");
    let with = |at: usize, byte: u8| {
        let mut d = good.clone();
        d[at] = byte;
        d
    };
    let mut forwarded_bad_family = good.clone();
    forwarded_bad_family[5] = frame::KIND_FORWARDED;
    let malformed = [
        good[..frame::HEADER_LEN - 1].to_vec(), // truncated header
        with(4, 2),                             // version 2
        with(4, 0),                             // version 0
        with(5, 9),                             // unknown kind
        frame::ack(id).to_vec(),                // an ACK is not for receivers
        forwarded_bad_family,                   // family byte 't'
        frame::MAGIC.to_vec(),
    ];
    for datagram in &malformed {
        client.send_to(datagram, to).unwrap();
    }
    // A good frame last: its ACK must be the first and only one.
    let last = Id { sender: 1, seq: 3 };
    client.send_to(&frame::data(last, b"good"), to).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(frame::parse(&buf[..n]), Some(Frame::Ack(last)));
    client.set_nonblocking(true).unwrap();
    assert!(
        client.recv_from(&mut buf).is_err(),
        "a malformed frame was acknowledged"
    );

    let lines = receiver.wait_lines(malformed.len() + 1);
    // python3 itself renders the bytes, as the original receiver would.
    let hexes: Vec<String> = malformed.iter().map(|d| hex(d)).collect();
    let hexes: Vec<&str> = hexes.iter().map(String::as_str).collect();
    let reprs = python3(
        "import sys\nfor h in sys.argv[1:]: print(bytes.fromhex(h))",
        &hexes,
    );
    let client_addr = format!("('127.0.0.1', {})", client.local_addr().unwrap().port());
    let mut want: Vec<String> = reprs.lines().map(|r| received(r, &client_addr)).collect();
    want.push(received("b'good'", &client_addr));
    assert_eq!(info_messages(&lines.join("\n")), want);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fake pod on 127.0.0.1 that answers the first `frames` frames it
/// gets as `reply` says, and ignores the rest.
struct FakePod {
    port: u16,
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// How a fake pod answers: given the frame's id, the pod's socket, a
/// socket on the same port of another address, and the sender's address.
type Reply = fn(Id, &UdpSocket, &UdpSocket, SocketAddr);

impl FakePod {
    fn start(reply: Reply, frames: usize) -> FakePod {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let elsewhere = UdpSocket::bind(("127.0.0.5", port)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 65_536];
            while !stopped.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(Frame::Data { id, .. }) = frame::parse(&buf[..n]) {
                    if count.load(Ordering::SeqCst) < frames {
                        reply(id, &sock, &elsewhere, from);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        FakePod {
            port,
            answered,
            stop,
            thread: Some(thread),
        }
    }
}

impl FakePod {
    /// How many frames it has answered.
    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for FakePod {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.take().unwrap().join();
    }
}

#[test]
fn forged_and_stale_acknowledgements_confirm_nothing() {
    // (what, reply, confirmed?)
    let cases: &[(&str, Reply, bool)] = &[
        (
            "the right ack (control)",
            |id, s, _, to| {
                s.send_to(&ack(id), to).unwrap();
            },
            true,
        ),
        (
            "stale sequence",
            |id, s, _, to| {
                s.send_to(
                    &ack(Id {
                        seq: id.seq - 1,
                        ..id
                    }),
                    to,
                )
                .unwrap();
            },
            false,
        ),
        (
            "next sequence",
            |id, s, _, to| {
                s.send_to(
                    &ack(Id {
                        seq: id.seq + 1,
                        ..id
                    }),
                    to,
                )
                .unwrap();
            },
            false,
        ),
        (
            "another sender id",
            |id, s, _, to| {
                s.send_to(
                    &ack(Id {
                        sender: id.sender ^ 1,
                        ..id
                    }),
                    to,
                )
                .unwrap();
            },
            false,
        ),
        (
            "from another address",
            |id, _, other, to| {
                other.send_to(&ack(id), to).unwrap();
            },
            false,
        ),
        (
            "from another port",
            |id, _, _, to| {
                UdpSocket::bind("127.0.0.1:0")
                    .unwrap()
                    .send_to(&ack(id), to)
                    .unwrap();
            },
            false,
        ),
        (
            "the frame echoed back",
            |id, s, _, to| {
                s.send_to(&frame::data(id, b""), to).unwrap();
            },
            false,
        ),
        (
            "an ack with a tail",
            |id, s, _, to| {
                s.send_to(&[&ack(id)[..], b"!"].concat(), to).unwrap();
            },
            false,
        ),
        (
            "plain bytes",
            |_, s, _, to| {
                s.send_to(b"ok", to).unwrap();
            },
            false,
        ),
    ];
    for &(what, reply, confirmed) in cases {
        // Only the first frame is answered; retries get nothing.
        let pod = FakePod::start(reply, 1);
        // The control passes as soon as it is confirmed; the others wait
        // out the timeout, long after the forged answer arrived.
        let timeout = if confirmed { "5s" } else { "500ms" };
        let port = pod.port.to_string();
        let out = sender(&[
            "-s",
            "127.0.0.1",
            "-m",
            "x",
            "--confirm",
            "-t",
            timeout,
            "-p",
            &port,
        ]);
        assert_eq!(pod.answered(), 1, "{what}: the fake pod did not answer");
        let want_code = if confirmed { 0 } else { 4 };
        assert_eq!(out.status.code(), Some(want_code), "{what}: {out:?}");
        let summary = if confirmed {
            "confirmed by 1 of 1 pods"
        } else {
            "confirmed by 0 of 1 pods"
        };
        assert_eq!(stderr_messages(&out).last().unwrap(), summary, "{what}");
        // Anything short of all is a warning, as each pod missed is an error.
        let level = if confirmed {
            " - INFO - "
        } else {
            " - WARNING - "
        };
        let err = text(&out.stderr);
        assert!(err.lines().last().unwrap().contains(level), "{what}: {err}");
    }
}

/// With --repeat, the second message's only answer is the first's ACK.
#[test]
fn an_earlier_messages_ack_does_not_confirm_the_next() {
    let pod = FakePod::start(
        |id, s, _, to| {
            let answer = Id { seq: 1, ..id };
            s.send_to(&frame::ack(answer), to).unwrap();
        },
        usize::MAX,
    );
    let out = sender(&[
        "-s",
        "127.0.0.1",
        "-m",
        "x",
        "--confirm",
        "--timeout",
        "1s",
        "-r",
        "2",
        "-i",
        "1ms",
        "-p",
        &pod.port.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let messages = stderr_messages(&out);
    assert_eq!(messages[0], "confirmed by 1 of 1 pods");
    assert!(
        messages[1].starts_with("no confirmation from :127.0.0.1 ("),
        "{messages:?}"
    );
    assert_eq!(messages[2], "confirmed by 0 of 1 pods");
    assert_eq!(messages.len(), 3);
}

#[test]
fn a_pod_with_no_receiver_is_named_and_exit_4() {
    let port = free_port().to_string();
    let out = sender(&[
        "-s",
        "127.0.0.1",
        "-m",
        "x",
        "--confirm",
        "-t",
        "300ms",
        "-p",
        &port,
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        info_messages(&text(&out.stdout)),
        ["sent message to :127.0.0.1"]
    );
    assert_eq!(
        stderr_messages(&out),
        [
            "no confirmation from :127.0.0.1 (not running, unreachable, or its receiver \
             does not confirm, such as the original Python one)",
            "confirmed by 0 of 1 pods",
        ]
    );
}

/// The original receiver's logic (bind, recvfrom, log), inline: it gets
/// the frame, logs it as bytes, and never answers.
const PYTHON_RECEIVER: &str = "
import logging, socket, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout,
    format='%(asctime)s - %(name)s - %(levelname)s - %(message)s')
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0))
print(s.getsockname()[1], flush=True)
msg, addr = s.recvfrom(65535)
logging.info('Message from Client:{} Client IP Address:{}'.format(msg, addr))
";

#[test]
fn the_original_python_receiver_logs_bytes_and_is_unconfirmed() {
    let mut python = PythonReceiver::start();
    let out = sender(&[
        "-s",
        "127.0.0.1",
        "-m",
        "test",
        "--confirm",
        "-t",
        "300ms",
        "-p",
        &python.port.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        stderr_messages(&out)[0]
            .contains("its receiver does not confirm, such as the original Python one"),
        "{out:?}"
    );
    // The random sender id may hold a `'`, and then python3 quotes with `"`.
    let log = python.first_line();
    let quoted = ["'", "\""].into_iter().any(|q| {
        log.contains(&format!("Message from Client:b{q}\\xffUDH\\x01\\x01"))
            && log.contains(&format!("test{q} Client IP Address:('127.0.0.1', "))
    });
    assert!(quoted, "{log}");
}

struct PythonReceiver {
    child: Child,
    port: u16,
}

impl PythonReceiver {
    fn start() -> PythonReceiver {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("python3")
            .args(["-c", PYTHON_RECEIVER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first.trim().parse().unwrap();
        PythonReceiver { child, port }
    }

    /// Its log line (it exits after one datagram).
    fn first_line(&mut self) -> String {
        let status = wait_for_exit(&mut self.child, "the python receiver");
        assert!(status.success());
        let mut out = String::new();
        use std::io::Read;
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn usage_errors() {
    let big = "x".repeat(65_506);
    let cases: &[UsageCase] = &[
        (
            &["-s", "x", "-m", "m", "--timeout", "1s"],
            &[],
            "--timeout needs --confirm",
        ),
        (
            &["-s", "x", "-m", "m", "--confirm", "-t", "0"],
            &[],
            "--timeout: must be more than 0",
        ),
        (
            &["-s", "x", "-m", "m", "--confirm", "-t", "soon"],
            &[],
            "--timeout: 'soon' is not a duration",
        ),
        (
            &["-s", "x", "-m", "m"],
            &[("UDP_HEADLESS_CONFIRM", "maybe")],
            "$UDP_HEADLESS_CONFIRM: 'maybe' is not 1, true, yes (on) or 0, false, no (off)",
        ),
        (
            &["-s", "x", "-m", "m", "--confirm=1"],
            &[],
            "option '--confirm' takes no value",
        ),
        (
            &["-s", "x", "-m", &big, "--confirm"],
            &[],
            "the message is 65506 bytes; a UDP datagram holds at most 65505",
        ),
    ];
    assert_usage_errors("sender", cases);
}

#[test]
fn environment_switches_confirmation() {
    let receiver = Receiver::start("confirm-env", &[]);
    let port = receiver.port.to_string();
    // (environment, confirmed summary expected?)
    let cases: &[(&[(&str, &str)], bool)] = &[
        (
            &[
                ("UDP_HEADLESS_CONFIRM", "1"),
                ("UDP_HEADLESS_TIMEOUT", "5s"),
            ],
            true,
        ),
        (
            &[
                ("UDP_HEADLESS_CONFIRM", "0"),
                ("UDP_HEADLESS_TIMEOUT", "5s"),
            ],
            false,
        ),
        (&[("UDP_HEADLESS_TIMEOUT", "bogus")], false),
    ];
    for (env, confirmed) in cases {
        let out = output_within(
            bin("sender")
                .args(["-s", "127.0.0.1", "-m", "e", "-p", &port])
                .envs(env.iter().copied()),
            RUN_LIMIT,
        );
        assert_eq!(out.status.code(), Some(0), "{env:?}: {out:?}");
        let summaries = stderr_messages(&out);
        assert_eq!(
            summaries == ["confirmed by 1 of 1 pods"],
            *confirmed,
            "{env:?}: {summaries:?}"
        );
    }
    // Plain sends log the datagram as it is; the confirmed one its message.
    let lines = receiver.wait_lines(3);
    assert!(
        lines
            .iter()
            .all(|l| l.contains("Message from Client:b'e' ")),
        "{lines:?}"
    );
}

/// `relay --frame`'s frames: logged as if the client had sent them
/// directly (from a trusted relay), not acknowledged, each copy logged.
#[test]
fn a_forwarded_frame_is_logged_with_its_original_source() {
    let receiver = Receiver::start("confirm-forwarded", &["--trust-relay", "127.0.0.1"]);
    let relay = socket("127.0.0.1");
    let to = ("127.0.0.1", receiver.port);
    let id = Id { sender: 3, seq: 1 };
    let sources = [
        ("10.1.2.3:5000", "('10.1.2.3', 5000)"),
        ("[fd00::7]:53", "('fd00::7', 53, 0, 0)"),
    ];
    let mut datagram = Vec::new();
    for (source, _) in sources {
        frame::write_forwarded(&mut datagram, id, source.parse().unwrap(), b"hi");
        relay.send_to(&datagram, to).unwrap();
    }
    relay.send_to(&frame::data(id, b"marker"), to).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = relay.recv_from(&mut buf).unwrap();
    assert_eq!(
        frame::parse(&buf[..n]),
        Some(Frame::Ack(id)),
        "only the DATA frame is acknowledged"
    );
    let lines = receiver.wait_lines(3);
    let relay_addr = format!("('127.0.0.1', {})", relay.local_addr().unwrap().port());
    assert_eq!(
        info_messages(&lines.join("\n")),
        [
            received("b'hi'", sources[0].1),
            received("b'hi'", sources[1].1),
            received("b'marker'", &relay_addr),
        ]
    );
}

/// SIGTERM ends a repeated broadcast's wait at once (not after --timeout),
/// with the report and exit code of what was confirmed so far.
#[test]
fn sigterm_ends_the_wait_of_a_repeated_broadcast() {
    let port = free_port().to_string();
    let mut child = bin("sender")
        .args([
            "-s",
            "127.0.0.1",
            "-m",
            "x",
            "--confirm",
            "-t",
            "60s",
            "-r",
            "0",
        ])
        .args(["-p", &port])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_handler(child.id(), 15);
    signal(child.id(), "TERM");
    // wait_for_exit's deadline (5 s) is far below the 60 s timeout.
    wait_for_exit(&mut child, "the sender to stop");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        stderr_messages(&out).last().unwrap(),
        "confirmed by 0 of 1 pods"
    );
}

// ------------------------------------------------- in a simulated cluster

/// A cluster with DNS, `n` receiver pods and sender-app.
fn cluster(test: &str, n: usize) -> (Cluster, Vec<ReceiverPod>, Pod) {
    let mut c = Cluster::new(test);
    c.start_dns(5);
    let receivers = c.receivers(n);
    let sender = c.add_pod("sender-app", &[sender_ip()]);
    (c, receivers, sender)
}

fn confirm_sender(c: &Cluster, sender: &Pod, args: &[&str]) -> Child {
    c.command(sender, bin_path("sender"))
        .args(["-s", SERVICE, "--confirm"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn ips(receivers: &[ReceiverPod]) -> Vec<IpAddr> {
    receivers.iter().flat_map(|r| r.pod.ips.clone()).collect()
}

/// Packets the iptables rule in `pod` dropped.
fn dropped(c: &Cluster, pod: &Pod) -> u64 {
    let out = output_within(
        c.command(pod, "iptables")
            .args(["-L", "INPUT", "-v", "-n", "-x"]),
        RUN_LIMIT,
    );
    assert!(out.status.success(), "iptables -L: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rule = text.lines().find(|l| l.contains("DROP")).expect("the rule");
    rule.split_whitespace().next().unwrap().parse().unwrap()
}

/// 20% of the frames (arriving at each pod) and, independently, 20% of
/// the acknowledgements (arriving at sender-app) are dropped: every pod
/// still confirms every message within the timeout, and logs each exactly
/// once, also when only its acknowledgement was lost and a retry came.
#[test]
fn under_loss_both_ways_every_pod_confirms_and_logs_each_message_once() {
    let (c, receivers, sender) = cluster("confirm-loss", 5);
    for receiver in &receivers {
        drop_some(&c, &receiver.pod, "--dport", "0.2");
    }
    drop_some(&c, &sender, "--sport", "0.2");
    let messages: Vec<String> = (1..=20).map(|i| format!("loss-{i}")).collect();
    let mut child = confirm_sender(&c, &sender, &["--timeout", "5s"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(messages.join("\n").as_bytes()).unwrap();
    drop(stdin);
    // 20 messages, each waiting at most its 5 s timeout: 100 s at worst.
    let out = finish_within(child, "sender --confirm", Duration::from_secs(150));

    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stderr_messages(&out),
        vec!["confirmed by 5 of 5 pods"; messages.len()]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let per_message: Vec<&str> = stdout.lines().collect();
    for round in per_message.chunks(receivers.len()) {
        check_sender_log(&round.join("\n"), &ips(&receivers)).unwrap();
    }
    for message in &messages {
        wait_delivery(&receivers, message.as_bytes(), sender_ip());
        check_delivery(&receivers, message.as_bytes(), sender_ip()).unwrap();
    }
    // The loss was real, both ways (at 20% of 100 frames and of their
    // acknowledgements, none dropped has odds of 2e-10).
    let frames_dropped: u64 = receivers.iter().map(|r| dropped(&c, &r.pod)).sum();
    let acks_dropped = dropped(&c, &sender);
    assert!(
        frames_dropped > 0 && acks_dropped > 0,
        "{frames_dropped} {acks_dropped}"
    );
}

/// A pod in DNS with no receiver: named, exit 4; the others confirm.
#[test]
fn a_dead_pod_is_named_and_the_others_confirm() {
    let (mut c, receivers, sender) = cluster("confirm-dead", 2);
    let dead = c.add_pod(&format!("{STATEFULSET}-2"), &[pod_ip(2)]);
    c.publish(&dead);
    c.wait_dns(3);
    let out = finish_within(
        confirm_sender(&c, &sender, &["-m", "anyone", "-t", "1s"]),
        "sender --confirm",
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        stderr_messages(&out),
        [
            "no confirmation from :10.244.1.3 (not running, unreachable, or its receiver \
             does not confirm, such as the original Python one)",
            "confirmed by 2 of 3 pods",
        ]
    );
    let mut all = ips(&receivers);
    all.push(pod_ip(2));
    check_sender_log(&String::from_utf8_lossy(&out.stdout), &all).unwrap();
    wait_delivery(&receivers, b"anyone", sender_ip());
    check_delivery(&receivers, b"anyone", sender_ip()).unwrap();
}

/// A second pod, ready in DNS, with no receiver: it never confirms.
fn dead_pod(c: &mut Cluster) -> Pod {
    let dead = c.add_pod(&format!("{STATEFULSET}-1"), &[pod_ip(1)]);
    c.publish(&dead);
    c.wait_dns(2);
    dead
}

/// While the sender waits (for a pod with no receiver), a new pod becomes
/// ready: it gets the message and confirms. Then the dead pod leaves DNS:
/// it is no longer waited for, and the sender ends with all confirmed.
#[test]
fn a_pod_that_joins_during_the_retries_confirms_and_one_that_leaves_is_not_waited_for() {
    let (mut c, receivers, sender) = cluster("confirm-join", 1);
    let dead = dead_pod(&mut c);
    let child = confirm_sender(&c, &sender, &["-m", "join", "-t", "20s"]);
    wait_delivery(&receivers, b"join", sender_ip());
    let joined = c.receiver_pod(2);
    wait_until("the new pod's copy", Duration::from_secs(10), || {
        joined.count(b"join", sender_ip()) > 0
    });
    c.unpublish(&dead);
    // More than the 20 s timeout: a sender still waiting for the dead pod
    // takes all of it, and must fail by its exit code, not by this deadline.
    let out = finish_within(child, "sender --confirm", Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stderr_messages(&out), ["confirmed by 2 of 2 pods"]);
    check_sender_log(
        &String::from_utf8_lossy(&out.stdout),
        &[pod_ip(0), pod_ip(1), pod_ip(2)],
    )
    .unwrap();
    let mut everyone = receivers;
    everyone.push(joined);
    check_delivery(&everyone, b"join", sender_ip()).unwrap();
}

/// DNS stops answering while the sender waits (its answers are dropped:
/// a resolver then waits out its timeouts, 5 s and more): the retries go
/// on with the pods known, --timeout still ends the wait, and re-resolving
/// before each retry never has more than one system-resolver thread
/// waiting on the silent DNS.
#[test]
fn a_silent_dns_server_neither_holds_up_the_timeout_nor_piles_up_threads() {
    let (mut c, receivers, sender) = cluster("confirm-dns-down", 1);
    dead_pod(&mut c);
    let started = std::time::Instant::now();
    let mut child = confirm_sender(&c, &sender, &["-m", "quiet", "-t", "3s"]);
    let pid = child_of(&mut child, "sender");
    wait_delivery(&receivers, b"quiet", sender_ip());
    for protocol in ["udp", "tcp"] {
        let out = output_within(
            c.command(&sender, "iptables")
                .args(["-A", "INPUT", "-p", protocol, "--sport", "53", "-j", "DROP"]),
            RUN_LIMIT,
        );
        assert!(out.status.success(), "iptables: {out:?}");
    }
    // The sender's threads, sampled until it exits (10 every second).
    let mut most_threads = 0;
    wait_until("the sender to exit", Duration::from_secs(30), || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(n) = status.lines().find_map(|l| l.strip_prefix("Threads:")) {
            most_threads = most_threads.max(n.trim().parse().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
        child.try_wait().unwrap().is_some()
    });
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        stderr_messages(&out).last().unwrap(),
        "confirmed by 1 of 2 pods"
    );
    // DNS was silent for the retries: its answers were dropped.
    assert!(dropped(&c, &sender) > 0, "no DNS answer was dropped");
    // The main thread and one resolver; a thread per retry would be 10.
    assert!(most_threads <= 3, "{most_threads} threads");
    // 3 s of timeout and the start; a resolver's own timeout would be 5 s
    // per name and attempt.
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

/// The process `comm` that `nsenter` (`parent`) runs.
fn child_of(parent: &mut Child, comm: &str) -> u32 {
    let pid = parent.id();
    let mut found = 0;
    wait_until(&format!("{comm} to start"), Duration::from_secs(10), || {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        found = children.trim().parse().unwrap_or(0);
        found != 0
            && std::fs::read_to_string(format!("/proc/{found}/comm"))
                .is_ok_and(|c| c.trim() == comm)
    });
    found
}
