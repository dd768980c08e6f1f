//! Issue #8, defect 4: a log that cannot be written ends the program with
//! exit 1 and one line in the log format on stderr: a broken pipe
//! (`sender ... | head -1`) in every mode, and a closed fd 1 (`>&-`), which
//! std would otherwise quietly replace with /dev/null.

use crate::support;

use std::io::Write;
use std::net::UdpSocket;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};
use support::{bin, parse_log_line};

/// A "pod": a socket that the sender's datagrams reach, and its port.
fn pod() -> (UdpSocket, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let port = sock.local_addr().unwrap().port();
    (sock, port)
}

fn datagrams(sock: &UdpSocket) -> usize {
    let mut buf = [0; 64];
    std::iter::from_fn(|| sock.recv(&mut buf).ok()).count()
}

/// The exit status, or None after `limit`, when the child is killed (a
/// sender that loops forever must not outlive the test).
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// stderr must be exactly one ERROR line in the log format naming stdout.
fn one_error_line(stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let (level, message) = parse_log_line(lines[0]).expect("not in the log format");
    assert_eq!(level, "ERROR", "{text}");
    assert!(message.contains("standard output"), "{text}");
}

/// A sender whose stdout is a pipe nobody reads any more.
fn sender_into_a_closed_pipe(args: &[&str]) -> Child {
    let mut child = bin("sender")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child
}

#[test]
fn broken_pipe_ends_stdin_mode_after_the_first_line() {
    let (sock, port) = pod();
    let mut child = sender_into_a_closed_pipe(&["-s", "127.0.0.1", "-p", &port.to_string()]);
    let mut stdin = child.stdin.take().unwrap();
    // The sender may be gone before all are written: that is the point.
    for i in 0..200 {
        if writeln!(stdin, "line {i}").is_err() {
            break;
        }
    }
    drop(stdin);
    let status = exit_within(&mut child, Duration::from_secs(10)).expect("sender hangs");
    let mut err = Vec::new();
    std::io::Read::read_to_end(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1));
    one_error_line(&err);
    assert_eq!(datagrams(&sock), 1, "it went on sending after stdout broke");
}

#[test]
fn broken_pipe_ends_repeat_forever() {
    let (_sock, port) = pod();
    let mut child = sender_into_a_closed_pipe(&[
        "-s",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "x",
        "--repeat",
        "0",
        "--interval",
        "10ms",
    ]);
    let status = exit_within(&mut child, Duration::from_secs(10));
    let mut err = Vec::new();
    std::io::Read::read_to_end(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running after 10s: {}",
            String::from_utf8_lossy(&err).lines().count()
        )
    });
    assert_eq!(status.code(), Some(1));
    one_error_line(&err);
}

/// `program args >&-`, through sh: Command cannot close fd 1 itself.
fn with_stdout_closed(program: &str, args: &[&str]) -> Child {
    Command::new("sh")
        .args(["-c", "exec \"$@\" >&-", "sh"])
        .arg(assert_cmd::cargo::cargo_bin(program))
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_closed_stdout_is_an_error_not_a_silent_dev_null() {
    let (sock, port) = pod();
    let port = port.to_string();
    for (program, args) in [
        ("sender", &["-s", "127.0.0.1", "-p", &port, "-m", "x"][..]),
        ("receiver", &["-p", &port][..]),
    ] {
        let mut child = with_stdout_closed(program, args);
        let status = exit_within(&mut child, Duration::from_secs(10));
        let out = child.wait_with_output().unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{program}");
        one_error_line(&out.stderr);
    }
    assert_eq!(datagrams(&sock), 0, "the sender sent with nowhere to log");
}

/// Issue #20, item 4: a program whose stdout or stderr is a pipe nobody reads (full,
/// so its write blocks) still stops on SIGTERM, with exit 0; the lines it
/// could not write are lost. `child` is blocked in that write when called.
fn stops_though_output_is_stalled(mut child: Child, what: &str) {
    support::wait_until(
        &format!("{what} blocked writing to a full pipe"),
        Duration::from_secs(20),
        || {
            let wchan = format!("/proc/{}/wchan", child.id());
            std::fs::read_to_string(wchan).is_ok_and(|w| w.contains("pipe_write"))
        },
    );
    support::signal(child.id(), "TERM");
    let status = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{what}");
}

#[test]
fn sigterm_stops_a_receiver_whose_stdout_is_not_read() {
    let port = support::free_port();
    let mut child = bin("receiver")
        .args(["-p", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kept open, never read.
    let _stdout = child.stdout.take();
    support::wait_until("receiver --check", Duration::from_secs(10), || {
        support::check(port).status.success()
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    // About 2 MB of log lines: far more than a pipe and the receiver's
    // buffer hold.
    for _ in 0..2000 {
        let _ = client.send_to(&[b'a'; 1000], ("127.0.0.1", port));
    }
    stops_though_output_is_stalled(child, "receiver");
}

#[test]
fn sigterm_stops_repeats_whose_stdout_is_not_read() {
    let (_sock, port) = pod();
    let mut child = bin("sender")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-m", "x"])
        .args(["--repeat", "0", "--interval", "1ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _stdout = child.stdout.take();
    stops_though_output_is_stalled(child, "sender --repeat 0");
}

/// A pipe that is already full: a write to its writer blocks until the
/// reader (kept by the caller, never read) takes something.
fn full_pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    use std::os::fd::AsRawFd;
    extern "C" {
        fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    }
    const F_GETFL: i32 = 3;
    const F_SETFL: i32 = 4;
    const O_NONBLOCK: i32 = 0o4000;
    let (reader, mut writer) = std::io::pipe().unwrap();
    let fd = writer.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns.
    let flags = unsafe { fcntl(fd, F_GETFL) };
    assert!(flags >= 0);
    // SAFETY: as above. Non-blocking only while filling: the flag belongs
    // to the pipe, which the child then shares.
    assert_eq!(unsafe { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }, 0);
    while writer.write(&[b'.'; 4096]).is_ok() {}
    // SAFETY: as above.
    assert_eq!(unsafe { fcntl(fd, F_SETFL, flags) }, 0);
    (reader, writer)
}

/// The relay logs to stderr only: with stderr a full pipe, its first line
/// blocks.
#[test]
fn sigterm_stops_a_relay_whose_stderr_is_not_read() {
    let (_reader, writer) = full_pipe();
    let port = support::free_port();
    let child = bin("relay")
        .args(["-s", "127.0.0.1", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    stops_though_output_is_stalled(child, "relay");
}
