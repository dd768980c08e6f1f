//! The real `sender` over loopback. Name-resolution cases run in a private
//! network namespace (`unshare --net --mount`; as a normal user inside a user
//! namespace) with their own /etc/hosts and /etc/resolv.conf, so no lookup
//! leaves the test.

use crate::support;

use std::fs;
use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;
use support::*;

/// A socket standing in for a pod: collects what the sender sends.
fn pod(addr: &str) -> (UdpSocket, u16) {
    let sock = UdpSocket::bind((addr, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    (sock, port)
}

fn received(sock: &UdpSocket) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0; 65_536];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sent_to(out: &Output) -> Vec<String> {
    info_messages(&stdout(out))
        .into_iter()
        .map(|m| m.strip_prefix("sent message to :").unwrap().to_string())
        .collect()
}

#[test]
fn sends_one_datagram_and_logs_the_original_line() {
    for ip in ["127.0.0.1", "::1"] {
        let (sock, port) = pod(ip);
        let out = output_within(
            bin("sender").args(["-s", ip, "-p", &port.to_string(), "-m", "test"]),
            RUN_LIMIT,
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(sent_to(&out), vec![ip.to_string()]);
        assert_eq!(received(&sock), vec![b"test".to_vec()]);
    }
}

#[test]
fn stdin_lines_are_each_one_datagram_of_raw_bytes() {
    for message_args in [&[][..], &["-m", "-"][..]] {
        let (sock, port) = pod("127.0.0.1");
        let input = b"one\n\ntwo words\n\xff\xfe not utf-8\r\nlast without newline";
        let out = output_fed(
            bin("sender")
                .args(["-s", "127.0.0.1", "-p", &port.to_string()])
                .args(message_args),
            input,
            RUN_LIMIT,
        );
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(sent_to(&out).len(), 5);
        let want: Vec<&[u8]> = vec![
            b"one",
            b"",
            b"two words",
            b"\xff\xfe not utf-8\r",
            b"last without newline",
        ];
        assert_eq!(received(&sock), want);
    }
}

/// An empty variable is unset: a Template parameter left blank. Before,
/// the message variable sent an empty datagram and the family one was an
/// error. The interval's variable, like the timeout's, is read only when
/// it can matter.
#[test]
fn empty_and_unused_variables_are_as_if_unset() {
    let (sock, port) = pod("127.0.0.1");
    let out = output_fed(
        bin("sender")
            .args(["-s", "127.0.0.1", "-p", &port.to_string()])
            .env("UDP_HEADLESS_MESSAGE", "")
            .env("UDP_HEADLESS_FAMILY", "")
            .env("UDP_HEADLESS_REPEAT", "")
            .env("UDP_HEADLESS_INTERVAL", "soon")
            .env("UDP_HEADLESS_TIMEOUT", "soon"),
        b"from stdin\n",
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(received(&sock), vec![b"from stdin".to_vec()]);
}

/// `kubectl exec sender-app -- sender` without `-i` and `-m`: stdin is
/// empty, and a silent exit 0 would look like a broadcast.
#[test]
fn an_empty_stdin_sends_nothing_and_says_so() {
    let (sock, port) = pod("127.0.0.1");
    let child = bin("sender")
        .args(["-s", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish_within(child, "the sender", RUN_LIMIT);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.ends_with(" - root - ERROR - no line on standard input: nothing sent\n"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(received(&sock).is_empty());
}

#[test]
fn repeat_broadcasts_every_interval() {
    let (sock, port) = pod("127.0.0.1");
    let started = std::time::Instant::now();
    let out = output_within(
        bin("sender")
            .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-m", "tick"])
            .args(["--repeat", "3", "--interval", "20ms"]),
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(sent_to(&out).len(), 3);
    assert_eq!(received(&sock), vec![b"tick".to_vec(); 3]);
    // Two pauses between three rounds (a lower bound only: machines vary).
    assert!(started.elapsed() >= Duration::from_millis(40));
}

#[test]
fn options_fall_back_to_environment_variables() {
    let (sock, port) = pod("::1");
    let out = output_within(
        bin("sender")
            .env("UDP_HEADLESS_SERVICE", "::1")
            .env("UDP_HEADLESS_PORT", port.to_string())
            .env("UDP_HEADLESS_MESSAGE", "from env")
            .env("UDP_HEADLESS_REPEAT", "2")
            .env("UDP_HEADLESS_INTERVAL", "1ms"),
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(received(&sock), vec![b"from env".to_vec(); 2]);
    // An option beats its variable.
    let out = output_within(
        bin("sender")
            .env("UDP_HEADLESS_SERVICE", "192.0.2.1")
            .env("UDP_HEADLESS_MESSAGE", "from env")
            .args(["-s", "::1", "-p", &port.to_string(), "-m", "from option"]),
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(received(&sock), vec![b"from option".to_vec()]);
}

#[test]
fn messages_too_large_for_a_datagram_are_refused_before_sending() {
    let (v4, port4) = pod("127.0.0.1");
    let (v6, port6) = pod("::1");
    let send = |ip: &str, port: u16, len: usize| {
        output_within(
            bin("sender")
                .args(["-s", ip, "-p", &port.to_string(), "-m"])
                .arg("x".repeat(len)),
            RUN_LIMIT,
        )
    };
    // Largest payloads: 65507 bytes over IPv4, 65527 over IPv6.
    assert_eq!(send("127.0.0.1", port4, 65_507).status.code(), Some(0));
    assert_eq!(received(&v4).len(), 1);
    let out = send("127.0.0.1", port4, 65_508);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("65508 bytes; an IPv4 UDP datagram holds at most 65507"));
    assert_eq!(stdout(&out), "");
    assert!(received(&v4).is_empty());

    assert_eq!(send("::1", port6, 65_527).status.code(), Some(0));
    assert_eq!(received(&v6)[0].len(), 65_527);
    let out = send("::1", port6, 65_528);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("65528 bytes; a UDP datagram holds at most 65527"));
    assert!(received(&v6).is_empty());
}

#[test]
fn usage_errors_are_one_clear_line_and_exit_2() {
    let cases: &[UsageCase] = &[
        (&["-m", "x"], &[], "no service: give -s NAME"),
        (&["-s", "", "-m", "x"], &[], "the service name is empty"),
        (&["-s", "a", "--bogus"], &[], "unknown option '--bogus'"),
        (&["-s", "a", "stray"], &[], "unexpected argument 'stray'"),
        (&["-s"], &[], "option '-s' needs a value"),
        (&["-s", "a", "-p", "0"], &[], "--port: '0' is not a port"),
        (
            &["-s", "a", "--family", "ipx"],
            &[],
            "--family: 'ipx' is not one of auto, ipv4, ipv6",
        ),
        (
            &["-s", "a", "-m", "x", "-i", "soon"],
            &[],
            "--interval: 'soon' is not a duration",
        ),
        (
            &["-s", "a", "-m", "x", "-r", "-1"],
            &[],
            "--repeat: '-1' is not a whole number",
        ),
        (
            &["-s", "a", "-m", "x", "-i", "2s"],
            &[],
            "--interval is the pause between repeats: give -r 0 or -r N (N > 1)",
        ),
        (
            &["-s", "a", "-m", "x", "-r", "1", "-i", "2s"],
            &[],
            "--interval is the pause between repeats: give -r 0 or -r N (N > 1)",
        ),
        (
            &["-s", "a", "-i", "2s"],
            &[],
            "--interval needs a message (-m): stdin lines are each sent once",
        ),
        (
            &["-s", "127.0.0.1:12000", "-m", "x"],
            &[],
            "the service '127.0.0.1:12000' is not a name or an address: give the port with -p",
        ),
        (
            &["-s", "a", "-m", "x", "-i", "99999999999999h", "-r", "2"],
            &[],
            "--interval: '99999999999999h' is too long",
        ),
        (&["-s", "a", "-r", "2"], &[], "--repeat needs a message"),
        (&["-s", "a", "--idle"], &[], "--idle takes no other options"),
        (
            &["-s", "a"],
            &[("UDP_HEADLESS_PORT", "x")],
            "$UDP_HEADLESS_PORT: 'x' is not a port",
        ),
        (
            &["-s", "a", "--help=x"],
            &[],
            "option '--help' takes no value",
        ),
        // Issue #8, defect 7: nothing may follow --help/--version, and a
        // port is digits only.
        (&["-V", "extra"], &[], "unexpected argument 'extra'"),
        (&["--help", "-s", "a"], &[], "unexpected argument '-s'"),
        (
            &["-s", "a", "-p", "+80"],
            &[],
            "--port: '+80' is not a port",
        ),
        (
            &["-s", "a"],
            &[("UDP_HEADLESS_PORT", "+80")],
            "$UDP_HEADLESS_PORT: '+80' is not a port",
        ),
        (
            &["-s", "a", "-m", "x", "-r", "+2"],
            &[],
            "--repeat: '+2' is not a whole number",
        ),
    ];
    assert_usage_errors("sender", cases);
}

/// Issue #8, defect 6: a non-UTF-8 service name is a usage error whether
/// it comes from `-s` or from the environment.
#[test]
fn non_utf8_service_is_a_usage_error_from_option_and_variable() {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"svc\xff");
    let from_option = output_within(bin("sender").args(["-m", "x", "-s"]).arg(name), RUN_LIMIT);
    let from_variable = output_within(
        bin("sender")
            .args(["-m", "x"])
            .env("UDP_HEADLESS_SERVICE", name),
        RUN_LIMIT,
    );
    for (out, want) in [
        (from_option, "-s: the value is not UTF-8"),
        (
            from_variable,
            "$UDP_HEADLESS_SERVICE: the value is not UTF-8",
        ),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn idle_waits_for_sigterm() {
    let mut child = bin("sender").arg("--idle").spawn().unwrap();
    wait_for_handler(child.id(), 15);
    assert!(child.try_wait().unwrap().is_none(), "--idle returned early");
    signal(child.id(), "TERM");
    assert_eq!(
        wait_for_exit(&mut child, "sender --idle to stop").code(),
        Some(0)
    );
}

#[test]
fn help_and_version() {
    let out = output_within(bin("sender").arg("-h"), RUN_LIMIT);
    assert!(out.status.success());
    let help = stdout(&out);
    for word in [
        "--service",
        "--message",
        "--family",
        "--repeat",
        "--interval",
        "--idle",
    ] {
        assert!(help.contains(word), "help lacks {word}");
    }
    let out = output_within(bin("sender").arg("--version"), RUN_LIMIT);
    assert_eq!(
        stdout(&out),
        format!("sender {}\n", env!("CARGO_PKG_VERSION"))
    );
}

// ---- Name resolution, in a private network namespace ----

/// Runs `script` (sh) in a new network and mount namespace whose loopback
/// is up and whose /etc/hosts and /etc/resolv.conf are the test's own.
/// `$SENDER`, `$RECEIVER` and `$DIR` are set for the script.
/// Within 60 s: the slowest script here waits up to 10 s for its DNS
/// server, then resolves with 2 s timeouts.
fn in_private_netns(dir: &Path, hosts: &str, resolv_conf: &str, script: &str) -> Output {
    let child = in_private_netns_with_stdin(dir, hosts, resolv_conf, script, Stdio::null());
    finish_within(child, script, Duration::from_secs(60))
}

fn in_private_netns_with_stdin(
    dir: &Path,
    hosts: &str,
    resolv_conf: &str,
    script: &str,
    stdin: Stdio,
) -> std::process::Child {
    fs::write(dir.join("hosts"), hosts).unwrap();
    fs::write(dir.join("resolv.conf"), resolv_conf).unwrap();
    let setup = "set -e; ip link set lo up; \
        mount --bind \"$DIR/hosts\" /etc/hosts; \
        mount --bind \"$DIR/resolv.conf\" /etc/resolv.conf; ";
    unshare()
        .args(["--net", "--mount", "sh", "-c"])
        .arg(format!("{setup}{script}"))
        .env("SENDER", assert_cmd::cargo::cargo_bin("sender"))
        .env("RECEIVER", assert_cmd::cargo::cargo_bin("receiver"))
        .env("DIR", dir)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run unshare (util-linux)")
}

/// A script that starts a receiver in the namespace, runs `sender_args`
/// once the receiver is ready, stops the receiver (it logs what arrived
/// first) and exits with the sender's code.
fn with_receiver(sender_args: &str) -> String {
    format!(
        "\"$RECEIVER\" -p 12000 >\"$DIR/receiver.log\" 2>/dev/null & receiver=$!; \
         until \"$RECEIVER\" --check 2>/dev/null; do sleep 0.02; done; \
         rc=0; \"$SENDER\" {sender_args} || rc=$?; \
         kill $receiver; wait $receiver; exit $rc"
    )
}
const NO_DNS: &str = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

fn receiver_log(dir: &Path) -> Vec<String> {
    info_messages(&fs::read_to_string(dir.join("receiver.log")).unwrap())
}

fn netns_dir(test: &str) -> TempDir {
    TempDir::new(&format!("netns-{test}"))
}

#[test]
fn every_address_of_a_name_gets_one_datagram_of_one_family() {
    let dir = netns_dir("family");
    // Duplicates and both families, as a dual-stack Service answers.
    let hosts = "127.0.0.1 pods\n::1 pods\n127.0.0.2 pods\n127.0.0.1 pods\n127.0.0.3 pods\n";
    // (--family, the addresses that must be sent to)
    let cases: &[(&str, &[&str])] = &[
        ("auto", &["127.0.0.1", "127.0.0.2", "127.0.0.3"]),
        ("ipv4", &["127.0.0.1", "127.0.0.2", "127.0.0.3"]),
        ("ipv6", &["::1"]),
    ];
    for (family, want) in cases {
        let script = with_receiver(&format!("-s pods -m hi --family {family}"));
        let out = in_private_netns(&dir, hosts, NO_DNS, &script);
        assert_eq!(out.status.code(), Some(0), "{family}: {}", stderr(&out));
        let mut sent = sent_to(&out);
        sent.sort();
        assert_eq!(sent, *want, "{family}");
        assert_eq!(
            receiver_log(&dir).len(),
            want.len(),
            "{family}: one datagram per address"
        );
    }
    // Only IPv6 records: auto falls back to IPv6.
    let script = with_receiver("-s v6only -m hi");
    let out = in_private_netns(&dir, "::1 v6only\n", NO_DNS, &script);
    assert_eq!(sent_to(&out), vec!["::1"]);
    let log = receiver_log(&dir);
    assert!(log[0].ends_with(", 0, 0)"), "an IPv6 source: {log:?}");
}

#[test]
fn a_failed_send_is_logged_and_the_others_still_go_out() {
    let dir = netns_dir("partial");
    // 10.9.9.9 has no route in the namespace: that send fails at once.
    let hosts = "10.9.9.9 half\n127.0.0.1 half\n";
    let script = with_receiver("-s half -m hi");
    let out = in_private_netns(&dir, hosts, NO_DNS, &script);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(sent_to(&out), vec!["127.0.0.1"]);
    let err = stderr(&out);
    let (level, message) = parse_log_line(err.lines().next().unwrap()).unwrap();
    assert_eq!(level, "ERROR");
    assert!(
        message.starts_with("failed to send message to :10.9.9.9: "),
        "{message}"
    );
    assert!(message.contains("unreachable"), "{message}");
    assert_eq!(receiver_log(&dir).len(), 1);
}

#[test]
fn a_name_that_does_not_resolve_exits_3_naming_it() {
    let dir = netns_dir("unresolved");
    let out = in_private_netns(&dir, "", NO_DNS, "\"$SENDER\" -s nosuch-service -m hi");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let (level, message) = parse_log_line(err.trim_end()).unwrap();
    assert_eq!(level, "ERROR");
    assert!(message.contains("'nosuch-service'"), "{message}");
    assert_eq!(stdout(&out), "");
}

/// Sends one stdin line, scales `svc` from 1 to 3 addresses, waits
/// `pause`, sends another: the addresses the second line went to.
fn second_line_after_scaling(test: &str, refresh: &str, pause: Duration) -> Vec<String> {
    let dir = netns_dir(test);
    let script = with_receiver(&format!("-s svc --refresh {refresh}"));
    let mut child =
        in_private_netns_with_stdin(&dir, "127.0.0.1 svc\n", NO_DNS, &script, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    wait_until(
        "the receiver in the namespace",
        Duration::from_secs(10),
        || dir.join("receiver.log").exists(),
    );
    stdin.write_all(b"before scaling\n").unwrap();
    wait_until("the first line", Duration::from_secs(10), || {
        receiver_log(&dir).len() == 1
    });
    // Scale up: the same hosts file (same inode, so the bind mount sees it).
    fs::write(
        dir.join("hosts"),
        "127.0.0.1 svc\n127.0.0.2 svc\n127.0.0.3 svc\n",
    )
    .unwrap();
    std::thread::sleep(pause);
    stdin.write_all(b"after scaling\n").unwrap();
    drop(stdin);
    let out = finish_within(child, &script, RUN_LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent = sent_to(&out);
    assert_eq!(sent[0], "127.0.0.1");
    let after = sent[1..].to_vec();
    let log = receiver_log(&dir);
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("b'after scaling'"))
            .count(),
        after.len(),
        "one datagram per address sent to"
    );
    after
}

#[test]
fn stdin_mode_with_refresh_0_resolves_again_before_each_line() {
    let sent = second_line_after_scaling("reresolve", "0", Duration::ZERO);
    assert_eq!(sent, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
}

#[test]
fn stdin_mode_reuses_the_pod_list_until_it_is_due() {
    // Not due yet: the cached list, without the new pods.
    let sent = second_line_after_scaling("cached", "1h", Duration::ZERO);
    assert_eq!(sent, ["127.0.0.1"]);
    // Due: resolved again.
    let sent = second_line_after_scaling("refreshed", "200ms", Duration::from_millis(400));
    assert_eq!(sent, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
}

#[test]
fn failing_stdin_or_stdout_exits_1() {
    // stdin that cannot be read (a directory).
    let out = output_with_stdin(
        bin("sender").args(["-s", "127.0.0.1", "-p", "9"]),
        fs::File::open("/").unwrap(),
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read standard input"),
        "{}",
        stderr(&out)
    );

    // stdout that cannot be written (a full disk).
    let (sock, port) = pod("127.0.0.1");
    // Spawned here, as output_within would pipe the stdout this case needs
    // to be a full disk.
    let child = bin("sender")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-m", "x"])
        .stdin(Stdio::null())
        .stdout(fs::File::create("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish_within(child, "sender with stdout /dev/full", RUN_LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot write to standard output"),
        "{}",
        stderr(&out)
    );
    assert_eq!(received(&sock).len(), 1, "the send itself happened");
}

#[test]
fn repeat_forever_stops_on_sigterm_between_rounds() {
    let (sock, port) = pod("127.0.0.1");
    let mut child = bin("sender")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-m", "beat"])
        .args(["--repeat", "0", "--interval", "50ms"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a few beats, so the loop is running.
    let mut buf = [0; 16];
    for _ in 0..3 {
        assert_eq!(sock.recv(&mut buf).unwrap(), 4);
    }
    signal(child.id(), "TERM");
    assert_eq!(
        wait_for_exit(&mut child, "sender --repeat 0 to stop").code(),
        Some(0)
    );
}

/// Data-driven: a line too long for any datagram is refused as it is read;
/// one too long for IPv4 only once the pods are known. Both say so the
/// same way and the other lines go.
#[test]
fn a_stdin_line_too_long_for_a_datagram_is_skipped_and_the_rest_sent() {
    for (host, len, why) in [
        (
            "::1",
            1_000_000,
            "1000000 bytes; a UDP datagram holds at most 65527",
        ),
        (
            "127.0.0.1",
            65_510,
            "65510 bytes; an IPv4 UDP datagram holds at most 65507",
        ),
    ] {
        let (sock, port) = pod(host);
        let mut input = b"before\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', len));
        input.extend(b"\nafter\n");
        let args = ["-s", host, "-p", &port.to_string()];
        let out = output_fed(bin("sender").args(args), &input, RUN_LIMIT);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        let want = format!("the message is {why}: line skipped");
        assert!(err.contains(&want), "{host}: {err}");
        assert_eq!(received(&sock), vec![b"before".to_vec(), b"after".to_vec()]);
    }
}

#[test]
fn sigterm_ends_a_sender_waiting_on_stdin_at_once_also_as_pid_1() {
    let mut child = bin("sender")
        .args(["-s", "127.0.0.1", "-p", "9"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_handler(child.id(), 15);
    signal(child.id(), "TERM");
    // Killed by the signal, as with no handler: a shell loop around the
    // sender stops on Ctrl-C.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        wait_for_exit(&mut child, "the sender to end").signal(),
        Some(15)
    );

    // As PID 1 (a container's main process) the default action would do
    // nothing: it exits with 128 + SIGTERM instead.
    let mut unshare = unshare()
        .args(["--pid", "--fork", "--kill-child"])
        .arg(assert_cmd::cargo::cargo_bin("sender"))
        .args(["-s", "127.0.0.1", "-p", "9"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("cannot run unshare (util-linux)");
    let pid1 = pid1_under(&unshare, "the sender as PID 1");
    wait_for_handler(pid1, 15);
    signal(pid1, "TERM");
    assert_eq!(
        wait_for_exit(&mut unshare, "the PID 1 sender to end").code(),
        Some(143)
    );
}

#[test]
fn a_service_too_large_for_one_dns_answer_is_sent_to_and_reported() {
    // A real dnsmasq in the namespace serves 4100 A records: more than one
    // 64 KiB DNS answer holds. The addresses are local to the namespace.
    let dir = netns_dir("toolarge");
    let records: String = (0..4100)
        .map(|i| {
            format!(
                "10.96.{}.{} headless-udp.default.svc.cluster.local\n",
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    fs::write(dir.join("service.hosts"), records).unwrap();
    let resolv_conf = "nameserver 127.0.0.1\n\
        search default.svc.cluster.local svc.cluster.local cluster.local\n\
        options ndots:5 timeout:2 attempts:1\n";
    // dnsmasq --no-daemon: no switch of user, which a user namespace (a
    // normal user's test run) forbids. Ready within 10 s, or exit 99.
    let script = "ip route add local 10.96.0.0/16 dev lo; \
        /usr/sbin/dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
            --local=/#/ --listen-address=127.0.0.1 --bind-interfaces --port=53 \
            --addn-hosts=\"$DIR/service.hosts\" --pid-file= 2>\"$DIR/dnsmasq.err\" & dns=$!; \
        trap 'kill $dns' EXIT; tries=0; \
        until \"$RECEIVER\" --check -p 53 2>/dev/null; do \
            tries=$((tries + 1)); [ $tries -lt 500 ] || { cat \"$DIR/dnsmasq.err\" >&2; exit 99; }; \
            sleep 0.02; done; \
        \"$SENDER\" -s headless-udp -m hi -p 9";
    let out = in_private_netns(&dir, "", resolv_conf, script);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    let sent = sent_to(&out);
    let unique: std::collections::HashSet<_> = sent.iter().collect();
    assert_eq!(unique.len(), sent.len(), "each address once");
    assert!(sent.len() >= 4092, "{} sent", sent.len());
    let (level, message) = parse_log_line(err.lines().next().unwrap()).unwrap();
    assert_eq!(level, "WARNING");
    assert!(
        message.contains("'headless-udp' is too large for one DNS answer"),
        "{message}"
    );
}

/// Issue #20, item 7c: in stdin mode each line is sent once. `-r` there is
/// a usage error (above), and UDP_HEADLESS_REPEAT is ignored, as every
/// variable is where it does not apply (UDP_HEADLESS_INTERVAL without
/// repeats, UDP_HEADLESS_TIMEOUT without --confirm): a pod spec may set it
/// for `-m` and still pipe lines.
#[test]
fn the_repeat_variable_is_ignored_in_stdin_mode() {
    let (sock, port) = pod("127.0.0.1");
    let out = output_fed(
        bin("sender")
            .args(["-s", "127.0.0.1", "-p", &port.to_string()])
            .env("UDP_HEADLESS_REPEAT", "3")
            .env("UDP_HEADLESS_INTERVAL", "1ms"),
        b"a\nb\n",
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(received(&sock), vec![b"a".to_vec(), b"b".to_vec()]);
}
