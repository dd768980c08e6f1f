//! What the integration tests share: running the real binaries, a receiver
//! process with its log in a file, the log-line shape, python3.
#![allow(dead_code)] // each test file uses its own part

use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub fn bin(name: &str) -> Command {
    Command::new(assert_cmd::cargo::cargo_bin(name))
}

/// A port no one is bound to right now (each test takes its own).
pub fn free_port() -> u16 {
    let sock = UdpSocket::bind("[::]:0").unwrap();
    sock.local_addr().unwrap().port()
}

/// A fresh directory for one test's files, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("udp-headless-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Waits until process `pid` has a handler for signal number `signal` (the
/// SigCgt mask of /proc/PID/status), so the signal cannot come too early.
pub fn wait_for_handler(pid: u32, signal: u32) {
    wait_until("a signal handler", Duration::from_secs(5), || {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .unwrap();
        u64::from_str_radix(mask.trim(), 16).unwrap() & (1 << (signal - 1)) != 0
    });
}

/// Splits a log line into (level, message) if it has exactly the original's
/// shape: `YYYY-MM-DD HH:MM:SS,mmm - root - LEVEL - message`.
pub fn parse_log_line(line: &str) -> Option<(&str, &str)> {
    let stamp = line.get(..23)?;
    let shape_ok = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b' ',
        13 | 16 => b == b':',
        19 => b == b',',
        _ => b.is_ascii_digit(),
    });
    let rest = line[23..].strip_prefix(" - root - ")?;
    let (level, message) = rest.split_once(" - ")?;
    let level_ok = ["INFO", "WARNING", "ERROR"].contains(&level);
    (shape_ok && level_ok).then_some((level, message))
}

/// The INFO messages of a log, asserting every line has the log shape.
pub fn info_messages(log: &str) -> Vec<String> {
    log.lines()
        .map(|line| {
            let (level, message) =
                parse_log_line(line).unwrap_or_else(|| panic!("not a log line: {line:?}"));
            assert_eq!(level, "INFO", "{line}");
            message.to_string()
        })
        .collect()
}

pub fn python3(code: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        sleep(Duration::from_millis(10));
    }
}

pub fn signal(pid: u32, name: &str) {
    extern "C" {
        fn kill(pid: i32, signal: i32) -> i32;
    }
    let number = match name {
        "INT" => 2,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        _ => panic!("no number for SIG{name}"),
    };
    // SAFETY: a plain syscall on a pid of our own test's.
    let sent = unsafe { kill(pid as i32, number) };
    assert_eq!(sent, 0, "kill SIG{name}");
}

/// Waits (a bounded time) for `child` to end; its exit status.
pub fn wait_for_exit(child: &mut Child, what: &str) -> ExitStatus {
    wait_until(what, Duration::from_secs(5), || {
        child.try_wait().unwrap().is_some()
    });
    child.wait().unwrap()
}

/// A real `receiver` process whose stdout goes to a file, like a pod log.
pub struct Receiver {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub stderr: PathBuf,
    _dir: TempDir,
}

impl Receiver {
    pub fn start(test: &str, args: &[&str]) -> Receiver {
        let port = free_port();
        Receiver::start_on(test, port, args)
    }

    pub fn start_on(test: &str, port: u16, args: &[&str]) -> Receiver {
        let dir = TempDir::new(test);
        let log = dir.join("receiver.log");
        let stderr = dir.join("receiver.err");
        let child = bin("receiver")
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let receiver = Receiver {
            child,
            port,
            log,
            stderr,
            _dir: dir,
        };
        wait_until("receiver --check", Duration::from_secs(5), || {
            check(port).status.success()
        });
        receiver
    }

    pub fn log_text(&self) -> String {
        String::from_utf8(fs::read(&self.log).unwrap()).expect("the log is ASCII")
    }

    /// Waits until `count` lines are logged, then returns them.
    pub fn wait_lines(&self, count: usize) -> Vec<String> {
        wait_until(
            &format!("{count} log lines"),
            Duration::from_secs(10),
            || self.log_text().lines().count() >= count,
        );
        self.log_text().lines().map(String::from).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn check(port: u16) -> Output {
    bin("receiver")
        .args(["--check", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `Message from Client:<repr> Client IP Address:<addr>`
pub fn received(repr: &str, addr: &str) -> String {
    format!("Message from Client:{repr} Client IP Address:{addr}")
}

/// A usage-error case: arguments, environment, what stderr must name.
pub type UsageCase = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);
