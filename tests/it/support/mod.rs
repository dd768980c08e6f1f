//! Fixtures shared by the integration tests (`use crate::support;`).
//! Every wait has a deadline and panics saying what it waited for (only
//! `wait_delivery` returns at its deadline: the checks after it say what is missing).
//!
//! Processes:
//!   `bin("sender")`, `bin_path`  a real binary (assert_cmd's cargo_bin path);
//!                             `musl_sender()` the static musl build (built if needed)
//!   `Receiver::start(test, args)` a receiver on a free loopback port, its log in a file
//!   `output_within(cmd, limit)` (`RUN_LIMIT` for a normal run; stdin null, or
//!   `output_with_stdin`), `wait_until(what, limit, done)`, `wait_for_exit`,
//!   `signal`, `python3`; `unshare()` adds a user namespace when not root
//!   `info_messages(log)`      the messages of a log, read with the crate's
//!                             `log_line::parse`; `received_message(payload, from)`
//!                             a receiver's message, built with the crate's `pyrepr`
//!
//! A simulated cluster (network namespaces only; the host's network is never
//! touched, and names need not be unique: each cluster has its own namespaces):
//!   let mut c = Cluster::new("test-name"); // node netns with bridge br0
//!   c.start_dns(5);                        // dnsmasq pod at DNS_IP, TTL 5 s, never forwards
//!   let sender = c.add_pod("sender-app", &[SENDER_IP.parse().unwrap()]);
//!   let r = c.receiver_pod(0);             // statefulset-udp-server-0: ready, then in DNS
//!   let out = output_within(c.command(&sender, bin_path("sender")).args(["-s", SERVICE, "-m", "test"]), limit);
//!   check_sender_log(&stdout, &ips); wait_delivery(&rs, b"test", sender_ip());
//!   check_delivery(&rs, b"test", sender_ip()) // Err(what is wrong): also a self-check
//!   c.receivers(n)   // n pods (blocks of 100 addresses past 64), all in DNS
//!   c.unpublish(&r.pod); c.wait_dns(n); c.stop_dns(); c.set_ttl(30); c.dns_query(..)
//! Pods see `RESOLV_CONF` (a pod's resolv.conf) and a hosts file with only
//! localhost, bind-mounted in the cluster's mount namespace; `set_resolv_conf`
//! changes it for all pods. As root the cluster needs no more; as a normal
//! user it lives in an unprivileged user namespace (`unshare --user
//! --map-root-user`), and if neither works `Cluster::new` panics saying so.
//! All of a cluster's processes live in its own PID namespace: when the test
//! ends (Drop, a panic, or even SIGKILL closing init's stdin) the kernel ends
//! them all, and the namespaces go with them.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};
use udp_headless::dns::wire::{self, RecordData, RecordType, Reply};
use udp_headless::os::sys;
use udp_headless::{log_line, pyrepr};

pub fn bin(name: &str) -> Command {
    Command::new(bin_path(name))
}

pub fn bin_path(name: &str) -> PathBuf {
    assert_cmd::cargo::cargo_bin(name)
}

/// The sender built for x86_64-unknown-linux-musl (static, musl's
/// resolver: the shipped kind), built now if needed.
pub fn musl_sender() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = "x86_64-unknown-linux-musl";
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            // A target directory of its own: the cargo running this test may
            // hold the main one's lock.
            let target_dir = root.join("target/musl-tests");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            // As long as tests/it/containers.rs gives its release builds: cargo
            // may wait on the registry or on another cargo's package lock.
            let out = output_within(
                Command::new(cargo)
                    .args([
                        "build",
                        "--quiet",
                        "--release",
                        "--bin",
                        "sender",
                        "--target",
                    ])
                    .arg(target)
                    .arg("--target-dir")
                    .arg(&target_dir)
                    .current_dir(root),
                Duration::from_secs(900),
            );
            assert!(
                out.status.success(),
                "cargo build --release --target {target} failed (rustup target add {target}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target_dir.join(target).join("release/sender")
        })
        .clone()
}

/// `unshare`, in a new user namespace first when not root, so `--net`,
/// `--mount` and `--pid` work for a normal user too (where the kernel
/// allows unprivileged user namespaces; else unshare fails and says why).
pub fn unshare() -> Command {
    let mut cmd = Command::new("unshare");
    if !is_root() {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd
}

/// Makes `cmd` run as on a kernel without IPv6 (booted with
/// `ipv6.disable=1`): `socket(AF_INET6, ...)` fails with EAFNOSUPPORT. A
/// seccomp filter says so, as systemd's RestrictAddressFamilies does;
/// `sysctl net.ipv6.conf.all.disable_ipv6=1` would not: the socket still
/// opens there and takes IPv4 too.
pub fn without_ipv6(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    use udp_headless::os::sys::{SockFilter, SockFprog};
    extern "C" {
        fn prctl(option: i32, arg2: usize, arg3: usize, arg4: usize, arg5: usize) -> i32;
    }
    #[cfg(target_arch = "x86_64")]
    const ARCH_AND_SOCKET: (u32, u32) = (0xc000_003e, 41);
    #[cfg(target_arch = "aarch64")]
    const ARCH_AND_SOCKET: (u32, u32) = (0xc000_00b7, 198);
    const LOAD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    const ALLOW: u32 = 0x7fff_0000;
    const EAFNOSUPPORT: u32 = 0x0005_0000 | 97; // SECCOMP_RET_ERRNO
    let op = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    // seccomp_data: nr at 0, arch at 4, args[0] (its low half) at 16.
    let filter = [
        op(LOAD, 0, 0, 4),
        op(JEQ, 0, 5, ARCH_AND_SOCKET.0),
        op(LOAD, 0, 0, 0),
        op(JEQ, 0, 3, ARCH_AND_SOCKET.1),
        op(LOAD, 0, 0, 16),
        op(JEQ, 0, 1, 10), // AF_INET6
        op(RET, 0, 0, EAFNOSUPPORT),
        op(RET, 0, 0, ALLOW),
    ];
    let hook = move || {
        let program = SockFprog {
            len: filter.len() as u16,
            filter: filter.as_ptr(),
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS (38), then PR_SET_SECCOMP (22) with
        // SECCOMP_MODE_FILTER (2) and a program that lives during the call;
        // both are async-signal-safe system calls, fine after fork.
        let set = unsafe {
            prctl(38, 1, 0, 0, 0) == 0
                && prctl(22, 2, &program as *const SockFprog as usize, 0, 0) == 0
        };
        if set {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: the hook makes two system calls and allocates nothing.
    unsafe { cmd.pre_exec(hook) }
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
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("udp-headless-{test}-{}-{n}", std::process::id()));
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

/// (level, message) of a log line, by the crate's own reader.
pub fn parse_log_line(line: &str) -> Option<(&str, &str)> {
    log_line::parse(line)
}

/// The INFO messages of a log, asserting every line has the log shape.
pub fn info_messages(log: &str) -> Vec<String> {
    log.lines()
        .map(|line| {
            let (level, message) =
                log_line::parse(line).unwrap_or_else(|| panic!("not a log line: {line:?}"));
            assert_eq!(level, "INFO", "{line}");
            message.to_string()
        })
        .collect()
}

pub fn python3(code: &str, args: &[&str]) -> String {
    let out = output_within(
        Command::new("python3").arg("-c").arg(code).args(args),
        RUN_LIMIT,
    );
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
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        sleep(Duration::from_millis(10));
    }
}

pub fn signal(pid: u32, name: &str) {
    assert_eq!(send_signal(pid, name), 0, "kill SIG{name} {pid}");
}

fn send_signal(pid: u32, name: &str) -> i32 {
    let number = match name {
        "INT" => 2,
        "KILL" => 9,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        _ => panic!("no number for SIG{name}"),
    };
    match sys::send_signal(pid as i32, number) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Waits (a bounded time) for `child` to end; its exit status.
/// The pid of the program that `unshare --pid --fork` (`unshare`, the
/// child) runs as PID 1 of its namespace, once it has started.
pub fn pid1_under(unshare: &Child, what: &str) -> u32 {
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let mut pid1 = 0;
    wait_until(what, Duration::from_secs(5), || {
        pid1 = fs::read_to_string(&children)
            .unwrap()
            .trim()
            .parse()
            .unwrap_or(0);
        pid1 != 0
    });
    pid1
}

/// Asserts `promtool check metrics` finds the exposition `text` clean: exit
/// 0 and not a word of complaint.
pub fn assert_promtool_clean(text: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/install-deps.sh installs it)");
    let mut stdin = promtool.stdin.take().unwrap();
    let owned = text.to_owned();
    // A thread: a promtool that stops reading must not block the test.
    std::thread::spawn(move || stdin.write_all(owned.as_bytes()));
    let out = finish_within(promtool, "promtool check metrics", Duration::from_secs(20));
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}\n{text}");
    assert_eq!(said, "", "{text}");
}

pub fn wait_for_exit(child: &mut Child, what: &str) -> ExitStatus {
    wait_until(what, Duration::from_secs(5), || {
        child.try_wait().unwrap().is_some()
    });
    child.wait().unwrap()
}

/// How long a normal run of one of our programs may take before the test
/// calls it hung: far above what any such run needs, even on a busy machine.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// `Command::output` with a deadline: runs `cmd` to its end within `limit`,
/// stdin null (as `output` gives, so a child never waits on the test's own
/// stdin; this overrides any stdin set on `cmd`: see `output_with_stdin`),
/// stdout and stderr captured. Past the limit it is killed and the test
/// fails saying so (a hung sender must not hang the test).
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    output_with_stdin(cmd, Stdio::null(), limit)
}

/// `output_within` with this stdin: `Command` cannot be asked which stdin
/// it was given, so one the child needs must come through here.
pub fn output_with_stdin(cmd: &mut Command, stdin: impl Into<Stdio>, limit: Duration) -> Output {
    let child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    finish_within(child, &format!("{cmd:?}"), limit)
}

/// `output_within` with `input` written to its stdin, which then ends.
pub fn output_fed(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped");
    // Written as the child reads; a child that stops reading ends the write.
    let _ = std::io::Write::write_all(&mut stdin, input);
    drop(stdin);
    finish_within(child, &format!("{cmd:?}"), limit)
}

/// `output_within` for a child already started: `Child::wait_with_output`
/// with a deadline. Like it, closes a piped stdin first (a child reading to
/// its end must see it end), and a stream not piped gives no bytes.
pub fn finish_within(mut child: Child, what: &str, limit: Duration) -> Output {
    drop(child.stdin.take());
    let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read_all(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read_all(child.stderr.take().map(|p| Box::new(p) as _));
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still ran after {limit:?}: killed");
        }
        sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Waits up to 5 s for `child` to end, without panicking (for Drop, which
/// may run while a test panics).
fn reap(child: &mut Child) {
    let end = Instant::now() + Duration::from_secs(5);
    while child.try_wait().is_ok_and(|s| s.is_none()) && Instant::now() < end {
        sleep(Duration::from_millis(10));
    }
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
    output_within(
        bin("receiver").args(["--check", "--port", &port.to_string()]),
        RUN_LIMIT,
    )
}

/// `Message from Client:<repr> Client IP Address:<addr>`
pub fn received(repr: &str, addr: &str) -> String {
    format!("Message from Client:{repr} Client IP Address:{addr}")
}

/// Python's `repr(payload)`, by the crate's pyrepr.
pub fn repr(payload: &[u8]) -> String {
    let mut out = Vec::new();
    pyrepr::write_bytes(&mut out, payload);
    String::from_utf8(out).unwrap()
}

/// The receiver's message for `payload` from `from`, by the crate's pyrepr.
pub fn received_message(payload: &[u8], from: SocketAddr) -> String {
    let mut addr = Vec::new();
    pyrepr::write_addr(&mut addr, from);
    received(&repr(payload), &String::from_utf8(addr).unwrap())
}

/// A usage-error case: arguments, environment, what stderr must name.
pub type UsageCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// One HTTP exchange (the server closes after one answer): the status and
/// the body.
pub fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    (status.expect("a status"), body.to_string())
}

/// `GET path` over HTTP/1.1: the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

/// Runs `program` once per case (arguments, environment, what stderr must
/// name): each is a usage error, exit 2, one line on stderr that starts
/// with the program's name, nothing on stdout.
pub fn assert_usage_errors(program: &str, cases: &[UsageCase]) {
    for (args, env, want) in cases {
        let out = output_within(
            bin(program)
                .args(*args)
                .env_remove("UDP_HEADLESS_SERVICE")
                .envs(env.iter().copied())
                .stdin(Stdio::null()),
            Duration::from_secs(20),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(&format!("{program}: ")), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------- cluster

pub const SERVICE: &str = "headless-udp";
pub const SERVICE_FQDN: &str = "headless-udp.default.svc.cluster.local";
pub const DNS_IP: &str = "10.244.0.10";
pub const SENDER_IP: &str = "10.244.0.20";
/// What the kubelet writes for a pod in namespace `default` (ClusterFirst).
pub const RESOLV_CONF: &str = "search default.svc.cluster.local svc.cluster.local cluster.local\n\
    nameserver 10.244.0.10\noptions ndots:5\n";
pub const STATEFULSET: &str = "statefulset-udp-server";
/// Up to this many receivers a test gives each its own namespace; above,
/// blocks of `BLOCK_SIZE` addresses share one (see `add_block`).
pub const MAX_REAL_PODS: usize = 64;
pub const BLOCK_SIZE: usize = 100;
const WAIT: Duration = Duration::from_secs(10);

/// Address of the i-th (from 0) one-address pod: 10.244.1.1, 10.244.1.2, ...
pub fn pod_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        244,
        1 + (i / 250) as u8,
        1 + (i % 250) as u8,
    ))
}

/// The value of the unlabelled sample `name` in a Prometheus exposition
/// text (a receiver's or relay's `/metrics`).
pub fn sample(text: &str, name: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

pub fn sender_ip() -> IpAddr {
    SENDER_IP.parse().unwrap()
}

/// An IPv6 pod address, fd00:10:244::`low`; the i-th receiver's second
/// address (`dual_stack_receiver_pod`) is fd00:10:244::100 + i.
pub fn ipv6(low: u16) -> IpAddr {
    IpAddr::V6(std::net::Ipv6Addr::new(
        0xfd00, 0x10, 0x244, 0, 0, 0, 0, low,
    ))
}

/// A pod: a network namespace with `eth0` on the cluster's bridge.
#[derive(Clone, Debug)]
pub struct Pod {
    pub name: String,
    /// Its pod addresses (for a block, every address it stands for).
    pub ips: Vec<IpAddr>,
    /// A process in its network namespace (host PID).
    pid: u32,
    block: bool,
}

/// A process in a pod, in the cluster's PID namespace.
pub struct PodProcess {
    /// `nsenter`, whose child is the process.
    child: Child,
    /// The process itself (host PID).
    pub pid: u32,
}

impl PodProcess {
    /// SIGTERM, then its exit status (bounded).
    pub fn stop(&mut self) -> ExitStatus {
        send_signal(self.pid, "TERM");
        wait_for_exit(&mut self.child, "a pod's process to stop")
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for PodProcess {
    fn drop(&mut self) {
        if self.is_running() {
            send_signal(self.pid, "KILL");
            reap(&mut self.child);
        }
    }
}

pub struct ReceiverPod {
    pub pod: Pod,
    pub process: PodProcess,
    pub log: PathBuf,
    pub stderr: PathBuf,
}

struct DnsServer {
    pod: Pod,
    process: Option<PodProcess>,
    ttl: u32,
    extra: Vec<String>,
}

pub struct Cluster {
    pub dir: TempDir,
    /// `unshare`; its child is init of the cluster's PID namespace, whose
    /// network namespace is the node's (the bridge) and which lives until
    /// its stdin (our pipe) closes.
    init: Child,
    init_pid: u32,
    user_ns: bool,
    pods: Vec<Pod>,
    routes: Vec<String>,
    veths: usize,
    dns: Option<DnsServer>,
    /// The pods' namespace holders (nsenter), reaped at the end.
    holders: Vec<Child>,
}

fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
    uid.split_whitespace().nth(1) == Some("0")
}

/// The one child of `parent` (what nsenter or unshare forked), once it
/// runs `comm` (so it has done its setup and exec'd); its host PID.
fn child_running(parent: &mut Child, comm: &str) -> u32 {
    let pid = parent.id();
    let mut found = 0;
    wait_until(&format!("the child {comm} of {pid}"), WAIT, || {
        if let Some(status) = parent.try_wait().unwrap() {
            panic!("{pid} ended ({status}) before its child {comm} ran");
        }
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        found = children.trim().parse().unwrap_or(0);
        found != 0
            && fs::read_to_string(format!("/proc/{found}/comm")).is_ok_and(|c| c.trim() == comm)
    });
    found
}

impl Cluster {
    pub fn new(test: &str) -> Cluster {
        let dir = TempDir::new(&format!("cluster-{test}"));
        fs::write(dir.join("resolv.conf"), RESOLV_CONF).unwrap();
        fs::write(
            dir.join("hosts"),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        )
        .unwrap();
        let user_ns = !is_root();
        // Bind mounts over the host's files, seen only in this mount
        // namespace; `read` ends when the test's end closes the pipe.
        let mut init = unshare()
            .args([
                "--pid",
                "--fork",
                "--kill-child",
                "--mount",
                "--net",
                "--",
                "sh",
                "-c",
            ])
            .arg(
                "set -e; mount --bind \"$0/resolv.conf\" /etc/resolv.conf; \
                 mount --bind \"$0/hosts\" /etc/hosts; \
                 ip link set lo up; ip link add br0 type bridge; ip link set br0 up; \
                 touch \"$0/ready\"; read _",
            )
            .arg(&*dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("init.err")).unwrap())
            .spawn()
            .expect("cannot run unshare (util-linux)");
        let end = Instant::now() + WAIT;
        while !dir.join("ready").exists() {
            if init.try_wait().unwrap().is_some() || Instant::now() > end {
                let err = fs::read_to_string(dir.join("init.err")).unwrap_or_default();
                let _ = init.kill();
                panic!(
                    "cannot create the test cluster's namespaces: these tests need root, or \
                     unprivileged user namespaces (unshare --user --map-root-user --net --mount \
                     --pid; see kernel.unprivileged_userns_clone, user.max_user_namespaces and \
                     AppArmor's restrict_unprivileged_userns). unshare said: {}",
                    err.trim()
                );
            }
            sleep(Duration::from_millis(10));
        }
        let init_pid = child_running(&mut init, "sh");
        Cluster {
            dir,
            init,
            init_pid,
            user_ns,
            pods: Vec::new(),
            routes: Vec::new(),
            veths: 0,
            dns: None,
            holders: Vec::new(),
        }
    }

    /// nsenter into the cluster (user, mount and PID namespaces) and the
    /// network namespace of process `net_pid`.
    fn enter(&self, net_pid: u32) -> Command {
        let ns = |kind: &str, file: &str, pid: u32| format!("--{kind}=/proc/{pid}/ns/{file}");
        let mut cmd = Command::new("nsenter");
        if self.user_ns {
            // Our uid is root in there already; nsenter's own switch to
            // root would call setgroups, which the namespace forbids.
            cmd.arg(ns("user", "user", self.init_pid))
                .arg("--preserve-credentials");
        }
        cmd.arg(ns("mount", "mnt", self.init_pid))
            .arg(ns("pid", "pid", self.init_pid))
            .arg(ns("net", "net", net_pid))
            .arg("--");
        cmd
    }

    /// A command to run in `pod` (like `kubectl exec`); add args and run it.
    pub fn command(&self, pod: &Pod, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.enter(pod.pid);
        cmd.arg(program).stdin(Stdio::null());
        cmd
    }

    /// Runs a shell script in the network namespace of `pid`; panics with
    /// its stderr if it fails.
    fn setup(&self, net_pid: u32, script: &str) {
        let out = output_within(
            self.enter(net_pid)
                .args(["sh", "-c", &format!("set -e; {script}")]),
            RUN_LIMIT,
        );
        assert!(
            out.status.success(),
            "cluster setup failed: {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `cmd` (from `command`) in the background.
    pub fn spawn(&self, cmd: &mut Command, comm: &str) -> PodProcess {
        let mut child = cmd.spawn().expect("cannot run nsenter");
        let pid = child_running(&mut child, comm);
        PodProcess { child, pid }
    }

    /// A new namespace with `eth0` on the bridge and `addrs` (ip/prefix).
    fn netns(&mut self, name: &str, addrs: &[String], ips: Vec<IpAddr>, block: bool) -> Pod {
        let mut holder = self
            .enter(self.init_pid)
            .args(["unshare", "--net", "--", "sleep", "1000000"])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot run nsenter");
        let pid = child_running(&mut holder, "sleep");
        self.holders.push(holder);
        self.veths += 1;
        let veth = format!("v{}", self.veths);
        let mut script = format!(
            "ip link set lo up; ip link add eth0 type veth peer name {veth} netns /proc/{}/ns/net; ",
            self.init_pid
        );
        for addr in addrs {
            let nodad = if addr.contains(':') { " nodad" } else { "" };
            script += &format!("ip addr add {addr} dev eth0{nodad}; ");
        }
        script += "ip link set eth0 up";
        self.setup(pid, &script);
        self.setup(self.init_pid, &format!("ip link set {veth} master br0 up"));
        let pod = Pod {
            name: name.to_string(),
            ips,
            pid,
            block,
        };
        if !block {
            for route in &self.routes {
                self.setup(pid, route);
            }
        }
        self.pods.push(pod.clone());
        pod
    }

    /// A pod with these addresses (IPv4 in 10.244.0.0/16, IPv6 in a /64).
    pub fn add_pod(&mut self, name: &str, ips: &[IpAddr]) -> Pod {
        let addrs: Vec<String> = ips
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(_) => format!("{ip}/16"),
                IpAddr::V6(_) => format!("{ip}/64"),
            })
            .collect();
        self.netns(name, &addrs, ips.to_vec(), false)
    }

    /// One namespace standing for `count` StatefulSet pods: block k holds
    /// 10.244.(100+k).1.. as /32s, reached via its bridge address
    /// 10.244.0.(100+k), which every one-address pod routes to.
    ///
    /// Why a route and not more on-link addresses: a sender reaching 4000
    /// on-link addresses needs 4000 neighbour (ARP) entries, past the
    /// kernel's default table limit (gc_thresh3 = 1024), which only the
    /// host can raise. A route costs one entry per block, as a node that
    /// owns a pod CIDR does.
    pub fn add_block(&mut self, block: usize, count: usize) -> Pod {
        assert!(
            count <= 250 && block < 150,
            "block {block} of {count} does not fit"
        );
        let net = 100 + block as u8;
        let bridge_ip = format!("10.244.0.{net}");
        let ips: Vec<IpAddr> = (0..count)
            .map(|j| IpAddr::V4(Ipv4Addr::new(10, 244, net, 1 + j as u8)))
            .collect();
        let mut addrs = vec![format!("{bridge_ip}/16")];
        addrs.extend(ips.iter().map(|ip| format!("{ip}/32")));
        let pod = self.netns(&format!("{STATEFULSET}-block-{block}"), &addrs, ips, true);
        let route = format!("ip route add 10.244.{net}.0/24 via {bridge_ip} dev eth0");
        for other in self.pods.iter().filter(|p| !p.block) {
            self.setup(other.pid, &route);
        }
        self.routes.push(route);
        pod
    }

    /// Starts `receiver` (the tests' build) as the pod's main process, its
    /// stdout the pod's log, and waits for its readiness probe.
    pub fn start_receiver(&self, pod: Pod) -> ReceiverPod {
        self.start_receiver_with(pod, &[])
    }

    /// `start_receiver`, with these options.
    pub fn start_receiver_with(&self, pod: Pod, args: &[&str]) -> ReceiverPod {
        let log = self.dir.join(format!("{}.log", pod.name));
        let stderr = self.dir.join(format!("{}.err", pod.name));
        let mut cmd = self.command(&pod, bin_path("receiver"));
        cmd.args(args)
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        let process = self.spawn(&mut cmd, "receiver");
        let receiver = ReceiverPod {
            pod,
            process,
            log,
            stderr,
        };
        self.wait_ready(&receiver);
        receiver
    }

    /// The readiness probe, `receiver --check`, until it passes.
    pub fn wait_ready(&self, receiver: &ReceiverPod) {
        let end = Instant::now() + WAIT;
        loop {
            let probe = output_within(
                self.command(&receiver.pod, bin_path("receiver"))
                    .arg("--check"),
                RUN_LIMIT,
            );
            if probe.status.success() {
                return;
            }
            assert!(
                Instant::now() < end,
                "{} never became ready: {}{}",
                receiver.pod.name,
                String::from_utf8_lossy(&probe.stderr),
                fs::read_to_string(&receiver.stderr).unwrap_or_default()
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// StatefulSet pod `index`: its namespace, receiver, readiness, then its
    /// DNS records (if the cluster has DNS), as the endpoints controller does.
    pub fn receiver_pod(&mut self, index: usize) -> ReceiverPod {
        let pod = self.add_pod(&format!("{STATEFULSET}-{index}"), &[pod_ip(index)]);
        let receiver = self.start_receiver(pod);
        if self.dns.is_some() {
            self.publish(&receiver.pod);
        }
        receiver
    }

    /// `receiver_pod` with an IPv6 address too (`ipv6(0x100 + index)`),
    /// published.
    pub fn dual_stack_receiver_pod(&mut self, index: usize) -> ReceiverPod {
        let ips = [pod_ip(index), ipv6(0x100 + index as u16)];
        let pod = self.add_pod(&format!("{STATEFULSET}-{index}"), &ips);
        let receiver = self.start_receiver(pod);
        self.publish(&receiver.pod);
        receiver
    }

    /// `n` StatefulSet pods: each its own namespace up to MAX_REAL_PODS,
    /// else blocks of BLOCK_SIZE. All published; DNS then serves all `n`.
    pub fn receivers(&mut self, n: usize) -> Vec<ReceiverPod> {
        let receivers: Vec<ReceiverPod> = if n <= MAX_REAL_PODS {
            (0..n).map(|i| self.receiver_pod(i)).collect()
        } else {
            (0..n.div_ceil(BLOCK_SIZE))
                .map(|k| {
                    let pod = self.add_block(k, BLOCK_SIZE.min(n - k * BLOCK_SIZE));
                    let receiver = self.start_receiver(pod);
                    self.publish(&receiver.pod);
                    receiver
                })
                .collect()
        };
        self.wait_dns(n);
        receivers
    }

    /// Writes the pods' resolv.conf (all pods share it; same file, so the
    /// bind mounts see the change at once).
    pub fn set_resolv_conf(&self, text: &str) {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.dir.join("resolv.conf"))
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    // ------------------------------------------------------------ DNS

    /// The cluster DNS: dnsmasq in pod "dns" at DNS_IP. It never forwards
    /// (no upstream at all) and knows only what `publish` puts in its hosts
    /// directory; cluster.local is its own (unknown names: NXDOMAIN), other
    /// names are REFUSED. Records have TTL `ttl`. Answers past 512 bytes
    /// (29 A records and up) are truncated over UDP and whole over TCP.
    pub fn start_dns(&mut self, ttl: u32) {
        self.start_dns_with(ttl, &[]);
    }

    /// `start_dns` with more dnsmasq options (e.g. `--txt-record=...`).
    pub fn start_dns_with(&mut self, ttl: u32, extra: &[&str]) {
        assert!(self.dns.is_none(), "the cluster DNS runs already");
        fs::create_dir_all(self.dir.join("dns")).unwrap();
        let pod = self.add_pod("dns", &[DNS_IP.parse().unwrap()]);
        self.dns = Some(DnsServer {
            pod,
            process: None,
            ttl,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        });
        self.restart_dns();
    }

    /// The DNS server down: its pod stays, nothing listens on port 53.
    pub fn stop_dns(&mut self) {
        let dns = self.dns.as_mut().expect("no cluster DNS");
        if let Some(mut process) = dns.process.take() {
            process.stop();
        }
    }

    /// Restarts the DNS server with another TTL.
    pub fn set_ttl(&mut self, ttl: u32) {
        self.stop_dns();
        self.dns.as_mut().unwrap().ttl = ttl;
        self.restart_dns();
    }

    fn restart_dns(&mut self) {
        let dns = self.dns.as_ref().expect("no cluster DNS");
        let dnsmasq = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("dnsmasq not found: run scripts/install-deps.sh");
        let mut cmd = self.command(&dns.pod, dnsmasq);
        // --no-daemon: in the foreground, and no switch to another user,
        // which a user namespace forbids (setgroups); TCP answered inline.
        cmd.args(["--no-daemon", "--conf-file=/dev/null", "--pid-file="])
            .args(["--no-resolv", "--no-hosts", "--local=/cluster.local/"])
            .args(["--domain-needed", "--bogus-priv", "--bind-interfaces"])
            .arg(format!("--listen-address={DNS_IP}"))
            .arg(format!("--local-ttl={}", dns.ttl))
            .arg(format!("--hostsdir={}", self.dir.join("dns").display()))
            .args(&dns.extra)
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.dir.join("dns.err")).unwrap());
        let process = self.spawn(&mut cmd, "dnsmasq");
        self.dns.as_mut().unwrap().process = Some(process);
        let end = Instant::now() + WAIT;
        while self.dns_query(SERVICE_FQDN, RecordType::A, false).is_err() {
            assert!(
                Instant::now() < end,
                "dnsmasq did not start: {}",
                fs::read_to_string(self.dir.join("dns.err")).unwrap_or_default()
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// Puts the pod's addresses in DNS as the Service's records (and each
    /// one's StatefulSet name). Written beside and renamed into place, so
    /// dnsmasq (inotify) reads only whole files.
    pub fn publish(&self, pod: &Pod) {
        let dir = self.dir.join("dns");
        let mut text = String::new();
        let first = if pod.block {
            pod.name
                .rsplit('-')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
                * BLOCK_SIZE
        } else {
            pod.name.rsplit('-').next().unwrap().parse().unwrap_or(0)
        };
        for (j, ip) in pod.ips.iter().enumerate() {
            let index = if pod.block { first + j } else { first };
            text += &format!("{ip}\t{SERVICE_FQDN}\t{STATEFULSET}-{index}.{SERVICE_FQDN}\n");
        }
        let tmp = dir.join(format!(".{}.tmp", pod.name));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, dir.join(&pod.name)).unwrap();
    }

    /// Takes the pod's records out of DNS (not ready, or deleted).
    pub fn unpublish(&self, pod: &Pod) {
        fs::remove_file(self.dir.join("dns").join(&pod.name)).unwrap();
    }

    /// Asks the cluster DNS, from its own pod, with the crate's DNS wire
    /// code; python3 only carries the bytes. Err if no answer came.
    pub fn dns_query(&self, name: &str, qtype: RecordType, tcp: bool) -> Result<Reply, String> {
        const CARRY: &str = "import socket, sys\n\
            q = sys.stdin.buffer.read()\n\
            if sys.argv[2] == 'tcp':\n\
            \x20   s = socket.create_connection((sys.argv[1], 53), 5)\n\
            \x20   s.sendall(len(q).to_bytes(2, 'big') + q)\n\
            \x20   f = s.makefile('rb')\n\
            \x20   n = int.from_bytes(f.read(2), 'big')\n\
            \x20   r = f.read(n)\n\
            else:\n\
            \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
            \x20   s.settimeout(5)\n\
            \x20   s.sendto(q, (sys.argv[1], 53))\n\
            \x20   r = s.recv(65535)\n\
            sys.stdout.buffer.write(r)\n";
        let dns = self.dns.as_ref().expect("no cluster DNS");
        let wire = wire::encode_name(name).unwrap();
        let query = wire::build_query(0x5544, &wire, qtype);
        let mut child = self
            .command(&dns.pod, "python3")
            .args(["-c", CARRY, DNS_IP, if tcp { "tcp" } else { "udp" }])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&query).unwrap();
        let out = finish_within(child, "a DNS query", RUN_LIMIT);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        wire::parse_reply(&out.stdout, 0x5544, &wire, qtype).map_err(|e| format!("{e:?}"))
    }

    /// Waits until DNS serves exactly `n` records for the service: dnsmasq
    /// reads a changed hosts file within milliseconds, but not at once.
    pub fn wait_dns(&self, n: usize) {
        let mut got = 0;
        let end = Instant::now() + WAIT;
        loop {
            got = self
                .dns_query(SERVICE_FQDN, RecordType::A, true)
                .map_or(got, |r| addresses(&r).len());
            if got == n {
                return;
            }
            assert!(
                Instant::now() < end,
                "DNS serves {got} records for {SERVICE_FQDN}, not {n}"
            );
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.dns = None;
        // init (sh, PID 1 of the namespace) reads its stdin: closing it
        // ends init, and with it every process in the namespace.
        drop(self.init.stdin.take());
        let _ = send_signal(self.init_pid, "KILL");
        reap(&mut self.init);
        for holder in &mut self.holders {
            reap(holder);
        }
    }
}

/// The addresses of a DNS answer.
pub fn addresses(reply: &Reply) -> Vec<IpAddr> {
    reply
        .records
        .iter()
        .filter_map(|r| match r.data {
            RecordData::Address(ip) => Some(ip),
            RecordData::Alias(_) => None,
        })
        .collect()
}

// ----------------------------------------------------------------- checks
// One set of checks for the scale tests and the harness self-checks: each
// returns Err(what is wrong), so a test can also prove they fail.

impl ReceiverPod {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).expect("a receiver's log is ASCII")
    }

    /// How many lines say `payload` came from `source` (any port).
    pub fn count(&self, payload: &[u8], source: IpAddr) -> usize {
        self.log_text()
            .lines()
            .filter(|line| is_received(line, payload, source))
            .count()
    }
}

/// Whether `line` is exactly the receiver's line for `payload` from
/// `source`: the whole message rebuilt with the crate's pyrepr for the
/// port the line names.
pub fn is_received(line: &str, payload: &[u8], source: IpAddr) -> bool {
    let Some((log_line::INFO, message)) = log_line::parse(line) else {
        return false;
    };
    let prefix = format!("Client IP Address:('{}', ", pyrepr::ip_text(source));
    let Some(port) = message
        .split_once(&prefix)
        .and_then(|(_, rest)| rest.split([',', ')']).next())
        .and_then(|p| p.parse::<u16>().ok())
    else {
        return false;
    };
    message == received_message(payload, SocketAddr::new(source, port))
}

/// `receiver` logged `payload` from `source` exactly `want` times: fewer
/// is a lost datagram, more a duplicate.
pub fn check_received(
    receiver: &ReceiverPod,
    payload: &[u8],
    source: IpAddr,
    want: usize,
) -> Result<(), String> {
    let got = receiver.count(payload, source);
    if got == want {
        return Ok(());
    }
    Err(format!(
        "{} logged {} from {source} {got} times, not {want}; its log:\n{}",
        receiver.pod.name,
        repr(payload),
        receiver
            .log_text()
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// Every line of the receiver's log is a receiver line (log format, INFO,
/// `Message from Client:b...`).
pub fn check_no_stray_lines(receiver: &ReceiverPod) -> Result<(), String> {
    for line in receiver.log_text().lines() {
        let ok = matches!(log_line::parse(line), Some((log_line::INFO, m))
            if m.starts_with("Message from Client:b") && m.contains(" Client IP Address:("));
        if !ok {
            return Err(format!(
                "{} logged a malformed line: {line:?}",
                receiver.pod.name
            ));
        }
    }
    Ok(())
}

/// Waits (one deadline for all) until each receiver logged `payload` from
/// `source` once per address it holds; then a moment more, as a duplicate
/// would come right behind. The exact checks come after.
pub fn wait_delivery(receivers: &[ReceiverPod], payload: &[u8], source: IpAddr) {
    let end = Instant::now() + WAIT;
    for receiver in receivers {
        while receiver.count(payload, source) < receiver.pod.ips.len() && Instant::now() < end {
            sleep(Duration::from_millis(20));
        }
    }
    sleep(Duration::from_millis(200));
}

/// Each receiver logged `payload` from `source` exactly once per address
/// it holds, and nothing malformed. Why per-namespace counts prove
/// per-address delivery: an address belongs to one namespace, a datagram
/// only enters a namespace through its own addresses, and the sender sent
/// one per address (`check_sender_log`); so k lines in a namespace of k
/// addresses means each got one.
pub fn check_delivery(
    receivers: &[ReceiverPod],
    payload: &[u8],
    source: IpAddr,
) -> Result<(), String> {
    let problems: Vec<String> = receivers
        .iter()
        .filter_map(|r| {
            check_received(r, payload, source, r.pod.ips.len())
                .and_then(|()| check_no_stray_lines(r))
                .err()
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} of {} receivers wrong:\n{}",
        problems.len(),
        receivers.len(),
        problems[..problems.len().min(3)].join("\n")
    ))
}

/// The sender's stdout names exactly `expected`, each once, and only in
/// well-formed `sent message to :IP` lines.
pub fn check_sender_log(stdout: &str, expected: &[IpAddr]) -> Result<(), String> {
    let mut sent = Vec::new();
    for line in stdout.lines() {
        match log_line::parse(line).and_then(|(level, m)| {
            (level == log_line::INFO)
                .then_some(m)?
                .strip_prefix("sent message to :")
        }) {
            Some(ip) => sent.push(ip.to_string()),
            None => return Err(format!("a malformed sender line: {line:?}")),
        }
    }
    let mut want: Vec<String> = expected.iter().map(|ip| pyrepr::ip_text(*ip)).collect();
    want.sort();
    sent.sort();
    let doubled: Vec<&String> = sent
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    let missing: Vec<&String> = want
        .iter()
        .filter(|ip| sent.binary_search(ip).is_err())
        .collect();
    let extra: Vec<&String> = sent
        .iter()
        .filter(|ip| want.binary_search(ip).is_err())
        .collect();
    if doubled.is_empty() && missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let few = |list: &[&String]| format!("{} {:?}", list.len(), &list[..list.len().min(5)]);
    Err(format!(
        "sender log: sent to more than once: {}; expected but not sent to: {}; not expected: {}",
        few(&doubled),
        few(&missing),
        few(&extra)
    ))
}

/// podman 4.3 on these machines (root, cgroup v1, no systemd): runc,
/// netavark + aardvark-dns, ulimits within the hard limits; for
/// CONTAINERS_CONF, so nothing in /etc is touched.
pub const PODMAN_CONF: &str = "[containers]\n\
default_ulimits = [\"nofile=20000:20000\", \"nproc=4096:4096\"]\n\
[engine]\nruntime = \"runc\"\n[network]\nnetwork_backend = \"netavark\"\n";

/// The release binaries for `target` (a musl target of the images, linked
/// as .cargo/config.toml says); Err: cargo's output.
pub fn cargo_build(target: &str) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = [
        "build",
        "--release",
        "--locked",
        "--bins",
        "--target",
        target,
    ];
    let cargo = output_within(
        Command::new(env!("CARGO")).args(args).current_dir(root),
        Duration::from_secs(900),
    );
    if cargo.status.success() {
        return Ok(());
    }
    Err(output_text(&cargo))
}

/// A finished command's stdout, then its stderr.
pub fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The images as tests/containers.rs builds them: the static musl binaries
/// (`cargo_build`), then `podman build --target TARGET --build-arg
/// BINARIES=host` of the Dockerfile (nothing pulled), tagged IMAGE, for
/// each (TARGET, IMAGE); `conf` is CONTAINERS_CONF.
pub fn build_host_images(conf: &Path, images: &[(&str, &str)]) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    cargo_build("x86_64-unknown-linux-musl").map_err(|e| format!("cargo build (musl): {e}"))?;
    for (target, image) in images {
        let built = output_within(
            Command::new("podman")
                .env("CONTAINERS_CONF", conf)
                .args([
                    "build",
                    "--pull=never",
                    "--layers=false",
                    "--target",
                    target,
                ])
                .args(["--build-arg", "BINARIES=host", "-t", image, "."])
                .current_dir(root),
            Duration::from_secs(600),
        );
        if !built.status.success() {
            return Err(format!(
                "podman build --target {target}: {}",
                output_text(&built)
            ));
        }
    }
    Ok(())
}

/// Drops a random part (`probability`) of the UDP datagrams arriving in
/// `pod` whose `port_match` (`--dport` or `--sport`) is 12000.
pub fn drop_some(c: &Cluster, pod: &Pod, port_match: &str, probability: &str) {
    let out = output_within(
        c.command(pod, "iptables")
            .args(["-A", "INPUT", "-p", "udp", port_match, "12000"])
            .args([
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                probability,
            ])
            .args(["-j", "DROP"]),
        RUN_LIMIT,
    );
    assert!(out.status.success(), "iptables: {out:?}");
}

/// Where a receiver or relay serves its metrics: it logs
/// `metrics on http://ADDR/metrics` to the stderr file `stderr` (waited for).
pub fn metrics_addr(stderr: &Path) -> SocketAddr {
    let mut addr = None;
    wait_until("the metrics address", Duration::from_secs(5), || {
        let text = fs::read_to_string(stderr).unwrap();
        addr = text
            .split_once("metrics on http://")
            .and_then(|(_, rest)| rest.split_once("/metrics"))
            .map(|(addr, _)| addr.parse().unwrap());
        addr.is_some()
    });
    addr.unwrap()
}

/// `/metrics` at `addr`, which must answer 200.
pub fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}
