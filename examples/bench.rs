//! Benchmarks udp-headless side by side with the original Python demo, and
//! with "floor" programs that do only what the kernel must do. Prints
//! Markdown tables (median of several runs, min-max, ratios); docs/BENCHMARKS.md
//! holds the latest ones and explains them.
//!
//!   cargo run --release --example bench             the full run (about 8 minutes)
//!   cargo run --release --example bench -- --quick  fewer runs and rates (1-2 minutes)
//!   cargo run --release --example bench -- --relay  only 5. (and the stream-mode rows of 1.)
//!
//! (`sudo scripts/bench.sh [--quick|--relay]` builds and runs it.)
//!
//! What it measures, all inside one network namespace of its own:
//!   1. sender: broadcast to 2, 1000 and 4000 pods, whole process, start to
//!      exit, the contestants taking turns run by run. The Service name is
//!      resolved through a real DNS server (dnsmasq, never forwarding) with
//!      a Kubernetes pod's resolv.conf. Contestants: the Python sender, our
//!      static musl sender, our glibc sender, and examples/sendto_floor.rs
//!      (sends to the same addresses, read from a file: no resolution at
//!      all); at 1000 pods also sendto_floor --resolve (one getaddrinfo of
//!      the Service first, then the same sends). The 1000-pod row again
//!      against BIND 9 (`named`, if installed): dnsmasq forks a process per
//!      TCP query, which a threaded server such as a cluster's CoreDNS
//!      does not.
//!   2. receiver: 64-byte datagrams at paced rates (examples/udp_flood.rs),
//!      every line logged to a file; lost = sent - lines in the log, and
//!      where: the socket's drops counter in /proc/net/udp{,6}. Contestants:
//!      our receiver with its default 4 MiB buffer, the same with --metrics
//!      on and scraped every 0.5 s, with the kernel's default 208 KiB, the
//!      Python receiver, and examples/recv_floor.rs (a bare recv loop, no log).
//!   3. sender --confirm to 1000 pods (one receiver answers for all of
//!      them), side by side with a plain broadcast; then the time to full
//!      confirmation with 10% of datagrams and of acknowledgements dropped
//!      (iptables), and whether any receiver line was logged twice.
//!   4. footprint: binary and image sizes, the receivers' resident memory.
//!   5. relay: copies delivered to 10 and 100 pods (examples/fanout_sink.rs,
//!      4 MiB buffers) of 64-byte datagrams from udp_flood, paced and flat
//!      out, our relay beside samplicator (built from ../shared/peers when
//!      present; UDP_HEADLESS_PEERS overrides). Stream mode: 2000 stdin lines
//!      to 10 pods vs sendto_floor's same 20,000 sends.
//!
//! The original's scripts are used unmodified from $UDP_HEADLESS_SEED
//! (default: ../shared/seed next to the repository). Needs root (network
//! namespaces), cargo with the musl target, python3, dnsmasq (installed
//! with apt if missing), taskset, iptables, podman optionally (image
//! sizes). Raw results (times as JSON, TSV) and the tables are kept in
//! target/bench/latest.
//!
//! Traffic: only inside the namespace (its loopback; the pods' addresses
//! exist only there). Everything it creates (namespace, /etc/netns/<name>,
//! processes, temp files, images, a raised net.core.rmem_max) is removed or
//! restored on exit, failure or Ctrl-C.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};
use udp_headless::sys;

type Res<T> = Result<T, String>;

const PAYLOAD_SIZE: u64 = 64;
const PORT: u16 = 12000;
const RELAY_PORT: u16 = 12001;
const METRICS_PORT: u16 = 9102;
// The receiver's default ask (4 MiB) and the kernel's default rmem_max.
const RECEIVER_RCVBUF: u64 = 4194304;
const KERNEL_DEFAULT_RCVBUF: u64 = 212992;
// The Kubernetes pod view: a Service in namespace "default".
const SERVICE: &str = "headless-udp";
const SERVICE_FQDN: &str = "headless-udp.default.svc.cluster.local";
const DNS_IP: &str = "10.96.0.10";
const POD_ROUTE: &str = "10.244.0.0/16";

struct Settings {
    quick: bool,
    relay_only: bool,
    // Timed runs of each contestant per sender row: many, as its target sits
    // within noise of the result (a 1.3x ratio).
    sender_runs: usize,
    sender_warmup: usize,
    confirm_runs: usize,
    stream_runs: usize,
    recv_trials: usize, // trials per (receiver, rate)
    // Datagrams per second; 0 = unpaced, as fast as the load generator can.
    // A paced trial sends for 1 s, and at least 100000 datagrams.
    recv_rates: Vec<u64>,
    max_rate_count: u64, // datagrams in an unpaced (max rate) trial
    pod_counts: Vec<usize>,
    relay_trials: usize,
}

impl Settings {
    fn new(quick: bool, relay_only: bool) -> Settings {
        let pick = |q, full| if quick { q } else { full };
        Settings {
            quick,
            relay_only,
            sender_runs: pick(5, 100),
            sender_warmup: pick(1, 2),
            confirm_runs: pick(5, 30),
            stream_runs: pick(5, 30),
            recv_trials: pick(1, 3),
            recv_rates: if quick {
                vec![25000, 50000, 100000, 200000, 0]
            } else {
                vec![
                    25000, 50000, 75000, 100000, 150000, 200000, 250000, 300000, 350000, 400000, 0,
                ]
            },
            max_rate_count: if quick { 300000 } else { 1000000 },
            pod_counts: if relay_only {
                vec![]
            } else {
                vec![2, 1000, 4000]
            },
            relay_trials: pick(1, 3),
        }
    }
}

fn log(what: &str) {
    eprintln!("bench: {what}");
}

fn usage() -> String {
    let header: Vec<&str> = include_str!("bench.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
        .collect();
    header.join("\n")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Helpers this program runs of itself inside the namespace.
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--hold-port", port] => return hold_port(port),
        ["--scrape", port] => return scrape(port),
        ["--alternate", json, warmup, runs, settle, sink, pairs @ ..] => {
            return match alternate(json, [warmup, runs, settle], sink, pairs) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bench --alternate: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let (quick, relay_only) = match args.first().map(String::as_str) {
        None => (false, false),
        Some("--quick") if args.len() == 1 => (true, false),
        Some("--relay") if args.len() == 1 => (false, true),
        Some("-h" | "--help") => {
            let _ = writeln!(std::io::stdout(), "{}", usage());
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("bench: unknown argument '{other}' (see --help)");
            return ExitCode::from(2);
        }
    };
    let handled = [sys::SIGINT, sys::SIGTERM].map(|n| sys::set_signal_handler(n, note_signal));
    if let Some(Err(e)) = handled.into_iter().find(Result::is_err) {
        eprintln!("bench: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    match run(Settings::new(quick, relay_only)) {
        Ok(()) => ExitCode::SUCCESS,
        // Cleanup has run (Bench's drop); exit as the shell would have.
        Err(_) if stop_requested() => ExitCode::from(128 + SIGNAL.load(Ordering::SeqCst) as u8),
        Err(e) => {
            log(&e);
            ExitCode::FAILURE
        }
    }
}

/// The SIGINT or SIGTERM received, 0 before: every wait checks it, ends
/// what it waits for and returns an error, and the cleanup runs on the way out.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn note_signal(signum: i32) {
    SIGNAL.store(signum, Ordering::SeqCst);
}

fn stop_requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// A socket on the pods' port that nobody reads, so the kernel drops each
/// datagram at it (the same for every contestant) instead of answering
/// with an ICMP "port unreachable" per datagram.
fn hold_port(port: &str) -> ExitCode {
    let Ok(_socket) = UdpSocket::bind(format!("0.0.0.0:{port}")) else {
        return ExitCode::FAILURE;
    };
    loop {
        sleep(Duration::from_secs(3600));
    }
}

/// Scrapes `receiver --metrics` every 0.5 s, as Prometheus would.
fn scrape(port: &str) -> ExitCode {
    loop {
        sleep(Duration::from_millis(500));
        if let Ok(mut stream) = TcpStream::connect(format!("127.0.0.1:{port}")) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
            let _ = std::io::copy(&mut stream, &mut std::io::sink());
        }
    }
}

/// `--alternate JSON WARMUP RUNS SETTLE_MS SINK NAME COMMAND [NAME COMMAND]...`:
/// times the contestants taking turns, WARMUP rounds unrecorded, then RUNS
/// rounds, pausing SETTLE_MS (untimed) after each run; writes each one's
/// times to JSON. Timing them in blocks (all runs of one, then the next)
/// measured the machine's drift between blocks.
fn alternate(json: &str, counts: [&str; 3], sink: &str, pairs: &[&str]) -> Res<()> {
    let number = |n: &str| {
        n.parse::<usize>()
            .map_err(|_| format!("'{n}': not a count"))
    };
    let [warmup, runs, settle] = counts;
    let (warmup, runs, settle) = (number(warmup)?, number(runs)?, number(settle)?);
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return Err("expected NAME COMMAND pairs".into());
    }
    let named: Vec<(&str, &str)> = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
    if let Some((name, _)) = named.iter().find(|(n, _)| n.contains(['"', '\\'])) {
        return Err(format!("{name}: a name without quotes or backslashes"));
    }
    let mut times = vec![vec![]; named.len()];
    for round in 0..warmup + runs {
        for i in turns(round, named.len()) {
            let (name, line) = named[i];
            // `{run}` names the run in its command: a sender's message then
            // tells its run's lines from another's that drew the same port.
            let line = line.replace("{run}", &format!("{name}{round}"));
            let t = time_run(&line, Path::new(sink)).map_err(|e| format!("{name}: {e}"))?;
            if round >= warmup {
                times[i].push(t);
            }
            sleep(Duration::from_millis(settle as u64));
        }
    }
    let results: Vec<(String, Vec<f64>)> = named
        .iter()
        .map(|(name, _)| name.to_string())
        .zip(times)
        .collect();
    write(Path::new(json), times_json(&results))
}

/// Round `round`'s order of `n` contestants: each goes first in turn, and
/// each runs right after every other one equally often (a Williams design:
/// 0, 1, n-1, 2, n-2, ... shifted by the round; for odd n every other cycle
/// backwards). Then no contestant always inherits what the same one leaves
/// behind (a DNS server's forked child still exiting, say).
fn turns(round: usize, n: usize) -> impl Iterator<Item = usize> {
    let williams = move |i: usize| {
        if i % 2 == 1 {
            i.div_ceil(2)
        } else {
            (n - i / 2) % n
        }
    };
    let backwards = n % 2 == 1 && (round / n) % 2 == 1;
    (0..n).map(move |i| (williams(if backwards { n - 1 - i } else { i }) + round) % n)
}

/// One run of a command (words split at spaces; a last word `<FILE` is its
/// stdin, else none), stdout and stderr to `sink`: seconds from spawn to exit.
fn time_run(line: &str, sink: &Path) -> Res<f64> {
    let (line, stdin) = match line.rsplit_once(" <") {
        Some((line, path)) => {
            let input = fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
            (line, Stdio::from(input))
        }
        None => (line, Stdio::null()),
    };
    // Truncated for each run, as hyperfine's --output did.
    let out = file(sink)?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut command = cmd(line);
    command.stdin(stdin).stdout(out).stderr(err);
    let start = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("{line}: {e}"))?;
    // Blocking, not `wait`: its polling would add up to 20 ms to the time.
    let status = child.wait().map_err(|e| format!("{line}: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        let output = read(sink);
        let last: Vec<&str> = output.lines().rev().take(3).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        return Err(format!("`{line}` failed ({status}): {}", last.join("\n")));
    }
    Ok(seconds)
}

/// Times per command in the shape of hyperfine's --export-json, which
/// `read_times` reads (names hold no quotes).
fn times_json(results: &[(String, Vec<f64>)]) -> String {
    let results: Vec<String> = results
        .iter()
        .map(|(name, times)| {
            let times: Vec<String> = times.iter().map(f64::to_string).collect();
            format!("{{\"command\":\"{name}\",\"times\":[{}]}}", times.join(","))
        })
        .collect();
    format!("{{\"results\":[{}]}}\n", results.join(","))
}

// ---------------------------------------------------------------------------
// Processes.

/// A command from words split at spaces: no path or argument here holds one.
fn cmd(line: &str) -> Command {
    let mut words = line.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap_or_default());
    cmd.args(words);
    cmd
}

fn check_stop() -> Res<()> {
    if stop_requested() {
        return Err("interrupted".into());
    }
    Ok(())
}

/// Waits for a child, killing it if a stop is requested.
fn wait(child: &mut Child) -> Res<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if stop_requested() {
            let _ = child.kill();
            let _ = child.wait();
            return Err("interrupted".into());
        }
        sleep(Duration::from_millis(20));
    }
}

/// Runs to completion; its stdout, or an error with its stderr.
fn output(cmd: &mut Command) -> Res<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let mut text = String::new();
    let _ = out.read_to_string(&mut text);
    let status = wait(&mut child)?;
    let errors = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{what} failed ({status}): {}", errors.trim_end()));
    }
    Ok(text)
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn signal(pid: u32, name: &str) {
    quiet(&mut cmd(&format!("kill -{name} {pid}")));
}

fn file(path: &Path) -> Res<fs::File> {
    fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> Res<()> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// `key=value` words, as udp_flood, recv_floor and fanout_sink print them.
fn key_values(text: &str) -> HashMap<String, f64> {
    text.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn count_lines(path: &Path) -> u64 {
    let mut count = 0;
    if let Ok(mut f) = fs::File::open(path) {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n @ 1..) = f.read(&mut buf) {
            count += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }
    count
}

// ---------------------------------------------------------------------------
// /proc: a process's socket, memory and CPU time.

/// The socket line for PORT in /proc/PID/net/udp{,6} (the namespace's UDP
/// sockets, as process PID sees them); None once PID has exited.
fn socket_line(pid: u32, port: u16) -> Option<Vec<String>> {
    let suffix = format!(":{port:04X}");
    ["udp", "udp6"].iter().find_map(|table| {
        read(format!("/proc/{pid}/net/{table}"))
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|f| f.len() > 4 && f[1].ends_with(&suffix))
    })
}

/// Bytes waiting in its receive queue (field 5 is tx_queue:rx_queue, in hex).
fn rx_queue(pid: u32) -> Option<u64> {
    let line = socket_line(pid, PORT)?;
    u64::from_str_radix(line[4].split_once(':')?.1, 16).ok()
}

/// Datagrams the kernel dropped because the receive buffer was full.
fn socket_drops(pid: u32) -> u64 {
    socket_line(pid, PORT)
        .and_then(|f| f.last()?.parse().ok())
        .unwrap_or(0)
}

fn status_kb(pid: u32, key: &str) -> u64 {
    read(format!("/proc/{pid}/status"))
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// CPU time so far, user + system, in clock ticks (stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = read(format!("/proc/{pid}/stat"));
    // After the command's ")" come fields 3, 4, ... (the command may hold
    // spaces and parentheses, its ")" is the last one).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

fn clock_ticks_per_second() -> f64 {
    extern "C" {
        fn sysconf(name: i32) -> i64;
    }
    const SC_CLK_TCK: i32 = 2;
    // SAFETY: sysconf reads a constant; no pointers.
    let ticks = unsafe { sysconf(SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

// ---------------------------------------------------------------------------
// The namespace and everything else it creates, undone on drop.

struct Bench {
    s: Settings,
    repo: PathBuf,
    musl: PathBuf,
    glibc: PathBuf,
    seed: PathBuf,
    python: String,
    dnsmasq_bin: String,
    /// BIND's named, if installed: a second cluster DNS for the 1000-pod
    /// sender row, threaded like CoreDNS (dnsmasq forks per TCP query).
    named_bin: Option<String>,
    ns: String,
    tmp: PathBuf,
    results: PathBuf,
    sink_log: PathBuf, // every per-pod / per-datagram log goes here
    made_etc_netns: bool,
    rmem_max_before: Option<String>,
    images: Vec<String>,
    dns: Option<Child>,
    children: Vec<Child>,
    samplicate: Option<PathBuf>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for child in self.children.iter_mut().chain(self.dns.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if Path::new("/run/netns").join(&self.ns).exists() {
            // Every process in our namespace is ours: dnsmasq (and its TCP
            // children), the sink socket, a receiver. (Not `output`: it gives
            // up once a stop was requested, and cleanup runs after Ctrl-C.)
            let pids = |ns: &str| {
                cmd(&format!("ip netns pids {ns}"))
                    .output()
                    .map(|o| o.stdout)
            };
            for signal in ["TERM", "KILL"] {
                let pids =
                    String::from_utf8(pids(&self.ns).unwrap_or_default()).unwrap_or_default();
                for pid in pids.split_whitespace() {
                    quiet(&mut cmd(&format!("kill -{signal} {pid}")));
                }
                sleep(Duration::from_millis(200));
            }
            quiet(&mut cmd(&format!("ip netns del {}", self.ns)));
        }
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&self.ns));
        if self.made_etc_netns {
            let _ = fs::remove_dir("/etc/netns");
        }
        if let Some(before) = &self.rmem_max_before {
            if fs::write("/proc/sys/net/core/rmem_max", before).is_ok() {
                log(&format!("restored net.core.rmem_max={before}"));
            }
        }
        for image in &self.images {
            quiet(&mut cmd(&format!("podman rmi -f {image}")));
        }
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

fn run(s: Settings) -> Res<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let uid = read("/proc/self/status")
        .lines()
        .find_map(|l| Some(l.strip_prefix("Uid:")?.split_whitespace().next()? == "0"));
    if uid != Some(true) {
        return Err("needs root (network namespaces, sysctl)".into());
    }
    let found = "command -v dnsmasq || [ -x /usr/sbin/dnsmasq ]";
    if !quiet(Command::new("sh").args(["-c", found])) {
        log("installing dnsmasq-base");
        output(&mut cmd("apt-get update -q"))?;
        let install = "apt-get install -y -q --no-install-recommends dnsmasq-base";
        output(cmd(install).env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let dnsmasq = Path::new("/usr/sbin/dnsmasq");
    let dnsmasq_bin = output(Command::new("sh").args(["-c", "command -v dnsmasq"]))
        .map_or_else(|_| dnsmasq.display().to_string(), |p| p.trim().into());
    let named_bin =
        output(Command::new("sh").args(["-c", "command -v named || ls /usr/sbin/named"]))
            .ok()
            .map(|p| p.trim().to_string());
    if named_bin.is_none() {
        log("no named (apt install bind9): the sender's 1000-pod row against BIND is skipped");
    }
    let seed = std::env::var_os("UDP_HEADLESS_SEED")
        .map_or_else(|| repo.join("../shared/seed"), PathBuf::from);
    for name in ["sender.py", "receiver.py"] {
        let path = seed.join(name);
        if !path.is_file() {
            let hint = "set UDP_HEADLESS_SEED to the original's scripts";
            return Err(format!("no {} ({hint})", path.display()));
        }
    }
    // The real interpreter, not a wrapper (a pyenv shim is a bash script that
    // would add ~50 ms to every Python run).
    let python = match std::env::var("UDP_HEADLESS_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            let code = ["-c", "import sys; print(sys.executable)"];
            output(Command::new("python3").args(code))?.trim().into()
        }
    };

    log("building (release: static musl bins and examples, glibc bins)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for what in [
        "--target x86_64-unknown-linux-musl --bins --examples",
        "--bins",
    ] {
        output(cmd(&format!("{cargo} build -q --release {what}")).current_dir(&repo))?;
    }

    let tmp = PathBuf::from(format!("/tmp/udpbench.{}", std::process::id()));
    let mut bench = Bench {
        musl: repo.join("target/x86_64-unknown-linux-musl/release"),
        glibc: repo.join("target/release"),
        repo,
        seed,
        python,
        dnsmasq_bin,
        named_bin,
        ns: format!("udpbench-{}", std::process::id()),
        results: tmp.join("results"),
        sink_log: tmp.join("sink.log"),
        tmp,
        made_etc_netns: !Path::new("/etc/netns").exists(),
        rmem_max_before: None,
        images: vec![],
        dns: None,
        children: vec![],
        samplicate: None,
        s,
    };
    fs::create_dir_all(&bench.results).map_err(|e| format!("{}: {e}", bench.tmp.display()))?;
    // dnsmasq reads its hosts files after dropping root.
    quiet(cmd("chmod 755").arg(&bench.tmp));
    bench.make_namespace()?;

    let started = Instant::now();
    bench.sender_bench()?;
    if !bench.s.relay_only {
        bench.receiver_bench()?;
        bench.confirm_bench()?;
        bench.footprint()?;
    }
    bench.relay_bench()?;
    bench.report(started.elapsed().as_secs())
}

impl Bench {
    /// A command (words split at spaces) run in the namespace.
    fn ns(&self, line: &str) -> Command {
        cmd(&format!("ip netns exec {} {line}", self.ns))
    }

    /// A release binary (static musl) or example's path.
    fn exe(&self, name: &str) -> String {
        self.musl.join(name).display().to_string()
    }

    fn ips_file(&self, count: usize) -> String {
        self.tmp.join(format!("ips.{count}")).display().to_string()
    }

    /// `udp_flood` into PORT in the namespace, on CPU `cpu` if given; its
    /// report. `count` may be a time limit instead: "--count N --seconds S".
    fn flood(&self, cpu: &str, port: u16, rate: u64, count: &str) -> Res<String> {
        let flood = self.exe("examples/udp_flood");
        let args = format!("--target 127.0.0.1:{port} --rate {rate} --count {count}");
        output(&mut self.ns(&format!("{cpu} {flood} {args} --size {PAYLOAD_SIZE}")))
    }

    fn spawn(&mut self, mut cmd: Command, stdout: &Path, stderr: &Path) -> Res<u32> {
        let (out, err) = (file(stdout)?, file(stderr)?);
        let child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn();
        let child = child.map_err(|e| format!("{cmd:?}: {e}"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    fn running(&mut self, pid: u32) -> bool {
        let child = self.children.iter_mut().find(|c| c.id() == pid);
        child.is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for a child this bench started to end by itself.
    fn reap(&mut self, pid: u32) -> Res<std::process::ExitStatus> {
        let i = self.children.iter().position(|c| c.id() == pid);
        let mut child = self.children.remove(i.ok_or("no such child")?);
        wait(&mut child)
    }

    /// Ends a child this bench started: TERM, then waits for it.
    fn stop(&mut self, pid: u32) -> Res<()> {
        signal(pid, "TERM");
        self.reap(pid).map(drop)
    }

    /// The namespace: loopback only. 10.96.0.10 is the cluster DNS; every
    /// address of 10.244.0.0/16 is local ("pods"), so datagrams to pods land
    /// on the namespace's loopback. The pod's /etc/resolv.conf and
    /// /etc/hosts are bind-mounted by `ip netns exec` from /etc/netns/<ns>/.
    fn make_namespace(&mut self) -> Res<()> {
        log(&format!("namespace {}", self.ns));
        let etc = Path::new("/etc/netns").join(&self.ns);
        fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
        let search = "default.svc.cluster.local svc.cluster.local cluster.local";
        let resolv = format!("search {search}\nnameserver {DNS_IP}\noptions ndots:5\n");
        write(&etc.join("resolv.conf"), resolv)?;
        write(&etc.join("hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost\n")?;
        let ns = &self.ns;
        output(&mut cmd(&format!("ip netns add {ns}")))?;
        output(&mut cmd(&format!("ip -n {ns} link set lo up")))?;
        output(&mut cmd(&format!("ip -n {ns} addr add {DNS_IP}/32 dev lo")))?;
        output(&mut cmd(&format!(
            "ip -n {ns} route add local {POD_ROUTE} dev lo"
        )))?;
        Ok(())
    }

    /// Pod N's address: 10.244.0.1, 10.244.0.2, ... (250 per /24), as a
    /// hosts file for dnsmasq and a list of IPs.
    fn write_pods(&self, count: usize) -> Res<()> {
        let ips: Vec<String> = (0..count)
            .map(|i| format!("10.244.{}.{}\n", i / 250, i % 250 + 1))
            .collect();
        let hosts: String = ips
            .iter()
            .map(|ip| format!("{} {SERVICE_FQDN}\n", ip.trim()))
            .collect();
        // Readable by dnsmasq after it drops root: 0644 by root's umask.
        write(&self.tmp.join(format!("hosts.{count}")), hosts)?;
        write(Path::new(&self.ips_file(count)), ips.concat())
    }

    /// Serves the Service with COUNT A records; answers nothing else (no
    /// upstream, no /etc/hosts, every domain local).
    fn start_dns(&mut self, count: usize) -> Res<()> {
        self.stop_dns()?;
        let tmp = self.tmp.display();
        let mut dnsmasq = self.ns(&format!(
            "{} --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --local=/#/ \
             --listen-address={DNS_IP} --bind-interfaces --addn-hosts={tmp}/hosts.{count} \
             --pid-file={tmp}/dnsmasq.pid --log-facility={tmp}/dnsmasq.log",
            self.dnsmasq_bin
        ));
        let out = self.tmp.join("dnsmasq.out");
        let child = dnsmasq
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&out)?)
            .spawn();
        self.dns = Some(child.map_err(|e| format!("dnsmasq: {e}"))?);
        self.wait_for_dns(count, &[out, self.tmp.join("dnsmasq.log")])
    }

    /// BIND 9 serving the same records from a zone file, authoritative for
    /// cluster.local, no recursion.
    fn start_bind(&mut self, named: &str, count: usize) -> Res<()> {
        self.stop_dns()?;
        let dir = self.tmp.join("named");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut zone = String::from(
            "$TTL 5\n@ SOA ns hostmaster 1 3600 600 86400 5\n@ NS ns\nns A 127.0.0.1\n",
        );
        for ip in read(self.ips_file(count)).lines() {
            let _ = writeln!(zone, "{SERVICE_FQDN}. A {ip}");
        }
        write(&dir.join("cluster.local.zone"), zone)?;
        let d = dir.display();
        // BIND refuses more than 100 records of a type by default.
        let conf = format!(
            "options {{ directory \"{d}\"; listen-on port 53 {{ {DNS_IP}; }}; \
             listen-on-v6 {{ none; }}; recursion no; pid-file \"{d}/named.pid\"; \
             session-keyfile \"{d}/session.key\"; }};\n\
             zone \"cluster.local\" {{ type primary; file \"{d}/cluster.local.zone\"; \
             max-records-per-type 0; }};\n"
        );
        write(&dir.join("named.conf"), conf)?;
        let out = dir.join("named.out");
        let child = self
            .ns(&format!("{named} -g -u root -c {d}/named.conf"))
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&out)?)
            .spawn();
        self.dns = Some(child.map_err(|e| format!("named: {e}"))?);
        self.wait_for_dns(count, &[out])
    }

    /// Until the server answers with all COUNT records; else its logs.
    fn wait_for_dns(&mut self, count: usize, logs: &[PathBuf]) -> Res<()> {
        // Until it listens, each probe would wait out musl's 5 s DNS timeout.
        for _ in 0..100 {
            if quiet(&mut self.ns(&format!("{} --check -p 53", self.exe("receiver")))) {
                break;
            }
            sleep(Duration::from_millis(50));
        }
        let probe = format!("{} -s {SERVICE} -m probe", self.exe("sender"));
        for _ in 0..50 {
            if self.pods_reached(&probe)? == count {
                return Ok(());
            }
            sleep(Duration::from_millis(100));
        }
        for log in logs {
            eprint!("{}", read(log));
        }
        Err(format!(
            "the DNS server does not serve {count} records for {SERVICE_FQDN}"
        ))
    }

    fn stop_dns(&mut self) -> Res<()> {
        if let Some(mut child) = self.dns.take() {
            let _ = child.kill();
            wait(&mut child)?;
        }
        Ok(())
    }

    /// Runs a sender in the namespace; how many pods it logged a send to.
    fn pods_reached(&self, line: &str) -> Res<usize> {
        let mut sender = self.ns(line);
        let (out, err) = (file(&self.sink_log)?, file(&self.tmp.join("stderr"))?);
        let child = sender.stdin(Stdio::null()).stdout(out).stderr(err).spawn();
        wait(&mut child.map_err(|e| format!("{line}: {e}"))?)?;
        Ok(read(&self.sink_log).matches("sent message to :").count())
    }

    /// Times the contestants taking turns (`--alternate`) inside the
    /// namespace, so that `ip netns exec` is not timed; each run's output
    /// goes to the sink log. `settle`: an untimed pause after each run.
    fn alternate(
        &self,
        json: &str,
        (warmup, runs): (usize, usize),
        settle: Duration,
        named: &[(&str, String)],
    ) -> Res<()> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let json = self.results.join(json);
        let (me, json, sink) = (me.display(), json.display(), self.sink_log.display());
        let settle = settle.as_millis();
        let mut timer = self.ns(&format!(
            "{me} --alternate {json} {warmup} {runs} {settle} {sink}"
        ));
        for (name, line) in named {
            timer.args([name, line.as_str()]);
        }
        output(&mut timer).map_err(|e| format!("timing failed: {e}"))?;
        Ok(())
    }

    // -----------------------------------------------------------------------
    // 1. Sender.

    fn sender_bench(&mut self) -> Res<()> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let hold = self.ns(&format!("{} --hold-port {PORT}", me.display()));
        let hold = self.spawn(hold, Path::new("/dev/null"), Path::new("/dev/null"))?;
        let mut reached = String::new();
        for count in self.s.pod_counts.clone() {
            self.write_pods(count)?;
            self.start_dns(count)?;
            let floor = self.exe("examples/sendto_floor");
            let (ips, send) = (self.ips_file(count), format!("-s {SERVICE} -m test"));
            let mut contestants = vec![
                (
                    "python",
                    format!("{} {}/sender.py {send}", self.python, self.seed.display()),
                ),
                ("musl", format!("{} {send}", self.exe("sender"))),
                ("glibc", format!("{}/sender {send}", self.glibc.display())),
                ("floor", format!("{floor} {ips} test")),
            ];
            if count == 1000 {
                // The card's lookup alone, which any sender that follows the
                // card pays on top of the floor: the target's reach.
                let resolve = format!("{floor} --resolve {SERVICE} {ips} test");
                contestants.insert(3, ("resolve", resolve));
            }
            self.sender_row(count, "dnsmasq", &contestants, &mut reached)?;
            // The same broadcast against BIND (no Python: its speed-up is
            // measured above).
            if let (1000, Some(named)) = (count, self.named_bin.clone()) {
                self.start_bind(&named, count)?;
                self.sender_row(count, "bind", &contestants[1..], &mut reached)?;
            }
        }
        write(&self.results.join("reached.tsv"), reached)?;
        // Stream mode: 2000 stdin lines to 10 pods, cached pod list (the
        // default) and resolving per line, vs the same 20,000 sends unresolved.
        self.write_pods(10)?;
        self.start_dns(10)?;
        let lines = self.tmp.join("lines");
        write(
            &lines,
            (1..=2000).map(|i| format!("{i}\n")).collect::<String>(),
        )?;
        write(
            Path::new(&self.ips_file(20000)),
            read(self.ips_file(10)).repeat(2000),
        )?;
        log("sender: stream mode");
        let (sender, lines) = (self.exe("sender"), lines.display());
        let named = [
            ("cached", format!("{sender} -s {SERVICE} <{lines}")),
            (
                "per-line",
                format!("{sender} -s {SERVICE} --refresh 0 <{lines}"),
            ),
            (
                "floor",
                format!(
                    "{} {} test",
                    self.exe("examples/sendto_floor"),
                    self.ips_file(20000)
                ),
            ),
        ];
        let runs = (1, self.s.stream_runs);
        self.alternate("stream.json", runs, Duration::ZERO, &named)?;
        self.stop_dns()?;
        self.stop(hold)
    }

    /// One row of pods and DNS server; what each contestant reached (also
    /// a warm-up) goes to `reached`.
    fn sender_row(
        &mut self,
        count: usize,
        server: &str,
        contestants: &[(&str, String)],
        reached: &mut String,
    ) -> Res<()> {
        for (name, line) in contestants {
            let n = self.pods_reached(line)?;
            let _ = writeln!(reached, "sender\t{count}\t{name}\t{n}\t{server}");
        }
        let (warmup, runs) = (self.s.sender_warmup, self.s.sender_runs);
        log(&format!("sender: {count} pods, {server}, {runs} rounds"));
        let json = format!("sender-{count}-{server}.json");
        self.alternate(&json, (warmup, runs), Duration::ZERO, contestants)
    }

    // -----------------------------------------------------------------------
    // 2. Receiver.

    fn receiver_bench(&mut self) -> Res<()> {
        // The receiver asks for 4 MiB; the kernel grants at most rmem_max,
        // which is one setting for the whole machine (not per namespace).
        let rmem_max = read("/proc/sys/net/core/rmem_max").trim().to_string();
        if rmem_max.parse::<u64>().unwrap_or(0) < RECEIVER_RCVBUF {
            write(
                Path::new("/proc/sys/net/core/rmem_max"),
                RECEIVER_RCVBUF.to_string(),
            )?;
            log(&format!(
                "raised net.core.rmem_max from {rmem_max} to {RECEIVER_RCVBUF} (global; restored on exit)"
            ));
            self.rmem_max_before = Some(rmem_max);
        }
        let mut tsv = String::new();
        for trial in 1..=self.s.recv_trials {
            for rate in self.s.recv_rates.clone() {
                let trials = self.s.recv_trials;
                log(&format!(
                    "receiver: trial {trial}/{trials}, rate {}/s",
                    asked(rate)
                ));
                // Side by side: each rate is tried on every receiver in turn;
                // ours and metrics swap places each trial, so neither always
                // runs while the other's log is still being written back.
                let order = if trial % 2 == 1 {
                    ["ours", "metrics"]
                } else {
                    ["metrics", "ours"]
                };
                for who in order.into_iter().chain(["ours208k", "python", "floor"]) {
                    tsv += &self.recv_trial(who, rate, trial)?;
                }
            }
        }
        write(&self.results.join("receiver.tsv"), tsv)
    }

    /// One trial: start the receiver, flood it, wait until it has logged
    /// what it will, record, stop it. Returns its line of receiver.tsv.
    fn recv_trial(&mut self, who: &str, rate: u64, trial: usize) -> Res<String> {
        let count = if rate == 0 {
            self.s.max_rate_count
        } else {
            rate.max(100000)
        };
        let receiver = self.exe("receiver");
        let line = match who {
            "ours" => receiver,
            "metrics" => format!("{receiver} --metrics 127.0.0.1:{METRICS_PORT}"),
            "ours208k" => format!("{receiver} --rcvbuf {KERNEL_DEFAULT_RCVBUF}"),
            "python" => format!("{} {}/receiver.py", self.python, self.seed.display()),
            _ => format!(
                "{} {PORT} {count} {RECEIVER_RCVBUF}",
                self.exe("examples/recv_floor")
            ),
        };
        let (sink_log, stderr) = (self.sink_log.clone(), self.tmp.join("stderr"));
        let pid = self.spawn(self.ns(&line), &sink_log, &stderr)?;
        for _ in 0..100 {
            if socket_line(pid, PORT).is_some() {
                break;
            }
            sleep(Duration::from_millis(50));
        }
        if socket_line(pid, PORT).is_none() {
            return Err(format!("{who} did not bind UDP {PORT}: {}", read(&stderr)));
        }
        let rss_idle = status_kb(pid, "VmRSS");
        let mut scraper = None;
        if who == "metrics" {
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            let scrape = self.ns(&format!("{} --scrape {METRICS_PORT}", me.display()));
            scraper = Some(self.spawn(scrape, Path::new("/dev/null"), Path::new("/dev/null"))?);
        }
        let report = self.flood("", PORT, rate, &count.to_string())?;
        // Done when the queue is empty and the log has stopped growing (at
        // most 20 s).
        let mut size = u64::MAX;
        for _ in 0..100 {
            sleep(Duration::from_millis(200));
            check_stop()?;
            if !self.running(pid) {
                break;
            }
            let now = fs::metadata(&sink_log).map_or(0, |m| m.len());
            if rx_queue(pid) == Some(0) && now == size {
                break;
            }
            size = now;
        }
        if let Some(scraper) = scraper {
            self.stop(scraper)?;
        }
        let (drops, hwm, cpu) = (socket_drops(pid), status_kb(pid, "VmHWM"), cpu_ticks(pid));
        let lines = if who == "floor" {
            self.reap(pid)?; // it stops by itself after 1 s of silence
            key_values(&read(&sink_log))
                .get("received")
                .map_or(0, |&n| n as u64)
        } else {
            self.stop(pid)?;
            count_lines(&sink_log)
        };
        let r = key_values(&report);
        let get = |k: &str| r.get(k).copied().unwrap_or(0.0);
        let (sent, errors, achieved) = (get("sent"), get("errors"), get("rate"));
        Ok(format!(
            "{who}\t{rate}\t{trial}\t{sent}\t{errors}\t{achieved}\t{lines}\t{drops}\t{rss_idle}\t{hwm}\t{cpu}\n"
        ))
    }

    // -----------------------------------------------------------------------
    // 3. sender --confirm. Runs after receiver_bench: the one receiver gets
    // the burst of 1000 datagrams, so it needs the raised rmem_max too.

    fn confirm_bench(&mut self) -> Res<()> {
        let send = format!("{} -s {SERVICE} -m test-{{run}}", self.exe("sender"));
        self.write_pods(1000)?;
        self.start_dns(1000)?;
        let confirm_log = self.tmp.join("confirm.log");
        let receiver = self.ns(&self.exe("receiver"));
        let receiver = self.spawn(receiver, &confirm_log, Path::new("/dev/null"))?;
        // Signed (--key-file): a second receiver, with the key, on the next
        // port, so signed and unsigned runs take turns.
        let key = self.tmp.join("keys");
        write(&key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")?;
        let keyed = format!("--key-file {}", key.display());
        let signed_port = PORT + 1;
        let receiver_line = format!("{} -p {signed_port} {keyed}", self.exe("receiver"));
        let signed_log = self.tmp.join("confirm-signed.log");
        let signed_receiver = self.ns(&receiver_line);
        let signed_receiver = self.spawn(signed_receiver, &signed_log, Path::new("/dev/null"))?;
        log("sender --confirm: 1000 pods, no loss (unsigned and signed), then 10% loss each way");
        let (warmup, runs) = (self.s.sender_warmup, self.s.confirm_runs);
        let named = [
            ("plain", send.clone()),
            ("confirm", format!("{send} --confirm")),
            (
                "signed",
                format!("{send} --confirm -p {signed_port} {keyed}"),
            ),
        ];
        // A plain run leaves the one receiver about 4 ms of logging (1000
        // lines): the run after it must not wait for that.
        let settle = Duration::from_millis(20);
        self.alternate("confirm.json", (warmup, runs), settle, &named)?;
        let drop = "-m statistic --mode random --probability 0.1 -j DROP";
        for rule in ["--dport", "--sport"] {
            output(&mut self.ns(&format!("iptables -A INPUT -p udp {rule} {PORT} {drop}")))?;
        }
        let named = [("loss", format!("{send} --confirm --timeout 10s"))];
        self.alternate("confirm-loss.json", (0, runs), settle, &named)?;
        // The relay's sinks listen on the same port: they must lose nothing.
        for rule in ["--dport", "--sport"] {
            output(&mut self.ns(&format!("iptables -D INPUT -p udp {rule} {PORT} {drop}")))?;
        }
        self.stop(receiver)?;
        self.stop(signed_receiver)?;
        self.stop_dns()?;
        // A sender run's datagrams all come from one port and carry the
        // run's name: a line logged twice repeats all after the timestamp.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let text = read(&confirm_log);
        for line in text.lines() {
            *seen.entry(line.get(23..).unwrap_or(line)).or_default() += 1;
        }
        let duplicates = seen.values().filter(|&&n| n > 1).count();
        write(
            &self.results.join("confirm-duplicates"),
            format!("{duplicates}\n"),
        )
    }

    // -----------------------------------------------------------------------
    // 4. Footprint: binaries and images.

    fn footprint(&mut self) -> Res<()> {
        let mut tsv = String::new();
        for name in ["sender", "receiver", "relay"] {
            let size = fs::metadata(self.musl.join(name)).map_err(|e| format!("{name}: {e}"))?;
            let _ = writeln!(tsv, "binary\t{name}\t{}", size.len());
        }
        if quiet(&mut cmd("podman --version")) {
            for name in ["sender", "receiver"] {
                // Already built ones (the Dockerfile's tag), else a temporary build.
                let format = "{{.Repository}}:{{.Tag}}";
                let listed = output(&mut cmd(&format!("podman images --format {format}")));
                let tag = format!("udp-headless/{name}:");
                let listed = listed.unwrap_or_default();
                let found = listed
                    .lines()
                    .find(|l| l.starts_with(&tag) || l.contains(&format!("/{tag}")));
                let image = match found {
                    Some(image) => image.to_string(),
                    None => {
                        let image =
                            format!("localhost/udpbench-{}/{name}:latest", std::process::id());
                        let build = format!(
                            "podman build -q --pull=never --layers=false --target {name} \
                             --build-arg BINARIES=host -t {image} ."
                        );
                        if output(cmd(&build).current_dir(&self.repo)).is_err() {
                            log(&format!(
                                "podman build of the {name} image failed (see tests/containers.rs)"
                            ));
                            continue;
                        }
                        self.images.push(image.clone());
                        image
                    }
                };
                let size = output(&mut cmd(&format!(
                    "podman image inspect --format {{{{.Size}}}} {image}"
                )))?;
                let _ = writeln!(tsv, "image\t{name}\t{}", size.trim());
            }
        }
        write(&self.results.join("footprint.tsv"), tsv)
    }

    // -----------------------------------------------------------------------
    // 5. Relay vs samplicator: copies delivered to every pod.

    fn relay_bench(&mut self) -> Res<()> {
        let peers = std::env::var_os("UDP_HEADLESS_PEERS")
            .map_or_else(|| self.repo.join("../shared/peers"), PathBuf::from);
        let mut who_all = vec!["relay"];
        let build = peers.join("build-samplicator.sh");
        if build.is_file() && quiet(Command::new(&build).arg(self.tmp.join("peers"))) {
            self.samplicate = Some(self.tmp.join("peers/samplicate"));
            who_all.push("samplicator");
        } else {
            log(&format!(
                "no samplicator (needs {}): relay rows alone",
                build.display()
            ));
            let note = format!("samplicator: not run, no {}\n", build.display());
            write(&self.results.join("relay-note.txt"), note)?;
        }
        let mut tsv = String::new();
        for pods in [10, 100] {
            self.write_pods(pods)?;
            self.start_dns(pods)?;
            // The same copies per second paced: 20k/s in to 10 pods, 2k/s to 100.
            for rate in [200000 / pods as u64, 0] {
                for trial in 1..=self.s.relay_trials {
                    for who in &who_all {
                        let asked = asked(rate);
                        log(&format!(
                            "relay: {who}, {pods} pods, rate {asked}/s, trial {trial}"
                        ));
                        tsv += &self.relay_trial(who, pods, rate)?;
                    }
                }
            }
        }
        self.stop_dns()?;
        write(&self.results.join("relay.tsv"), tsv)
    }

    fn relay_trial(&mut self, who: &str, pods: usize, rate: u64) -> Res<String> {
        // Paced: 2 s. Flat out: 2 s too, far more than the relay's receive
        // buffer holds, so its forwarding speed decides. A time, not a count:
        // how long the generator takes for a count depends on what else
        // core 0 runs (1.4-2.6 s for 600,000), and each contestant's
        // copies followed that time more than its own speed.
        let count = if rate > 0 {
            format!("{}", 2 * rate)
        } else {
            "1000000000 --seconds 2".to_string()
        };
        let ready = self.tmp.join("sink.ready");
        let _ = fs::remove_file(&ready);
        // The relay gets a core of its own; the load generator and the sinks
        // share the other, so both contestants meet the same competition.
        let (sink_out, relay_err) = (self.tmp.join("sink.out"), self.tmp.join("relay.err"));
        let sink = self.ns(&format!(
            "taskset -c 0 {} {} {PORT} {RECEIVER_RCVBUF} {}",
            self.exe("examples/fanout_sink"),
            self.ips_file(pods),
            ready.display()
        ));
        let sink = self.spawn(sink, &sink_out, Path::new("/dev/null"))?;
        let relay = if who == "relay" {
            let listen = format!("--listen 127.0.0.1:{RELAY_PORT} --rcvbuf {RECEIVER_RCVBUF}");
            self.ns(&format!(
                "taskset -c 1 {} -s {SERVICE} {listen}",
                self.exe("relay")
            ))
        } else {
            let samplicate = self.samplicate.as_ref().ok_or("no samplicator")?.display();
            let to: String = read(self.ips_file(pods))
                .lines()
                .map(|ip| format!(" {ip}/{PORT}"))
                .collect();
            let options = format!("-s 127.0.0.1 -p {RELAY_PORT} -b {RECEIVER_RCVBUF}");
            self.ns(&format!("taskset -c 1 {samplicate} {options}{to}"))
        };
        let relay = self.spawn(relay, Path::new("/dev/null"), &relay_err)?;
        let check = format!("{} --check -p {RELAY_PORT}", self.exe("receiver"));
        let pods_line = format!("pods: {pods}");
        for _ in 0..100 {
            if ready.exists()
                && quiet(&mut self.ns(&check))
                && (who != "relay" || read(&relay_err).lines().any(|l| l.ends_with(&pods_line)))
            {
                break;
            }
            sleep(Duration::from_millis(50));
        }
        let report = self.flood("taskset -c 0", RELAY_PORT, rate, &count)?;
        if !self.reap(sink)?.success() {
            return Err(format!("the sink failed: {}", read(&sink_out)));
        }
        let ticks = cpu_ticks(relay);
        self.stop(relay)?;
        let sink = read(&sink_out);
        Ok(format!(
            "{who}\t{pods}\t{rate}\t{} {} cpu_ticks={ticks}\n",
            report.trim(),
            sink.trim()
        ))
    }

    // -----------------------------------------------------------------------
    // Run, then format.

    fn report(&self, elapsed: u64) -> Res<()> {
        let first = |line: &str, words: usize| {
            let out = cmd(line)
                .output()
                .map(|o| [o.stdout, o.stderr].concat())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&out);
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .take(words);
            first.collect::<Vec<_>>().join(" ")
        };
        let cpuinfo = read("/proc/cpuinfo");
        let model = cpuinfo
            .lines()
            .find_map(|l| Some(l.strip_prefix("model name")?.split_once(": ")?.1))
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let sysctl = |name: &str| {
            read(format!("/proc/sys/net/core/{name}"))
                .trim()
                .to_string()
        };
        let machine = format!(
            "Machine: {cores} cores, {model}, Linux {}, {}.\n\
             net.core.rmem_max {}, rmem_default {}; {} ({}); {}; {}; {}.\n\
             Mode: {}, {elapsed} s.\n",
            read("/proc/sys/kernel/osrelease").trim(),
            first("date -u +%Y-%m-%d_%H:%M_UTC", 1).replace('_', " "),
            sysctl("rmem_max"),
            sysctl("rmem_default"),
            first(&format!("{} --version", self.python), 9),
            self.python,
            first(&format!("{} --version", self.dnsmasq_bin), 3),
            self.named_bin
                .as_ref()
                .map_or("no BIND".into(), |named| first(&format!("{named} -v"), 2)),
            first("rustc --version", 2),
            if self.s.quick { "quick" } else { "full" },
        );
        write(&self.results.join("machine.txt"), &machine)?;
        let mut tables = String::new();
        if !self.s.relay_only {
            tables += &main_tables(&self.results, &machine)?;
        }
        tables += &relay_tables(&self.results)?;
        // Raw results (JSON, TSV) and the tables are kept here.
        let latest = self.repo.join("target/bench/latest");
        let _ = fs::remove_dir_all(&latest);
        fs::create_dir_all(&latest).map_err(|e| e.to_string())?;
        for entry in fs::read_dir(&self.results)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let _ = fs::copy(entry.path(), latest.join(entry.file_name()));
        }
        write(&latest.join("tables.md"), &tables)?;
        print!("{tables}");
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Tables.

/// (name, times in seconds) per command, from JSON in the shape of
/// hyperfine's --export-json (what `times_json` writes).
fn read_times(path: &Path) -> Res<Vec<(String, Vec<f64>)>> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut results = vec![];
    for chunk in text.split("\"command\":").skip(1) {
        let name = chunk.trim_start().trim_start_matches('"');
        let name = name.split('"').next().unwrap_or("").to_string();
        let times = chunk
            .split_once("\"times\":")
            .and_then(|(_, rest)| rest.split_once('[')?.1.split_once(']'))
            .map(|(list, _)| {
                list.split(',')
                    .filter_map(|t| t.trim().parse().ok())
                    .collect()
            })
            .ok_or_else(|| format!("{}: no times for {name}", path.display()))?;
        results.push((name, times));
    }
    Ok(results)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// median and "min-max" of values * scale, with `places` decimals.
fn spread(values: &[f64], scale: f64, places: usize) -> (String, String) {
    let v: Vec<f64> = values.iter().map(|x| x * scale).collect();
    (
        format!("{:.places$}", median(&v)),
        format!("{:.places$}-{:.places$}", min(&v), max(&v)),
    )
}

/// An integer with thousands separators: 1234567.4 -> "1,234,567".
fn commas(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < -0.5 {
        out.insert(0, '-');
    }
    out
}

fn rate_name(rate: u64) -> String {
    if rate == 0 {
        "max".into()
    } else {
        format!("{}k", rate / 1000)
    }
}

/// A rate as asked in the progress log: datagrams per second or "max".
fn asked(rate: u64) -> String {
    if rate == 0 {
        "max".into()
    } else {
        rate.to_string()
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

struct Trial {
    sent: f64,
    errors: f64,
    achieved: f64,
    lines: f64,
    drops: f64,
    rss: f64,
    hwm: f64,
    cpu: f64,
}

/// Sections 1-4 and the targets.
fn main_tables(results: &Path, machine: &str) -> Res<String> {
    let mut o = format!("{machine}\n");
    // --- sender: times per (pods, server, contestant)
    let labels = [
        ("python", "Python `sender.py`"),
        ("musl", "`sender`, static musl (shipped)"),
        ("glibc", "`sender`, glibc build"),
        (
            "resolve",
            "floor + getaddrinfo: `sendto_floor --resolve`, then the same sends",
        ),
        ("floor", "floor: `sendto_floor`, no DNS"),
    ];
    // (pods, against BIND rather than dnsmasq, contestant): dnsmasq first.
    type Row = (usize, bool, String);
    let mut times: BTreeMap<Row, Vec<f64>> = BTreeMap::new();
    for entry in fs::read_dir(results).map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // sender-PODS-SERVER.json
        let row = name
            .strip_prefix("sender-")
            .and_then(|n| n.strip_suffix(".json"));
        let Some((pods, bind)) = row.and_then(|n| {
            let (pods, server) = n.split_once('-')?;
            Some((pods.parse().ok()?, server == "bind"))
        }) else {
            continue;
        };
        for (who, t) in read_times(&entry.path())? {
            times.entry((pods, bind, who)).or_default().extend(t);
        }
    }
    let reached: HashMap<Row, String> = read(results.join("reached.tsv"))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let row = (
                f.get(1)?.parse().ok()?,
                f.get(4)? == &"bind",
                f.get(2)?.to_string(),
            );
            Some((row, f.get(3)?.to_string()))
        })
        .collect();
    o += "### Sender: broadcast to N pods, start to exit (ms)\n\n";
    o += "| pods | program | median | min-max | Python / this | this / floor | pods reached |\n";
    o += "|---:|---|---:|---:|---:|---:|---:|\n";
    let rows: std::collections::BTreeSet<(usize, bool)> =
        times.keys().map(|(p, bind, _)| (*p, *bind)).collect();
    let med_at = |pods: usize, bind: bool, who: &str| {
        times.get(&(pods, bind, who.to_string())).map(|t| median(t))
    };
    let med = |pods: usize, who: &str| med_at(pods, false, who);
    for &(pods, bind) in &rows {
        for (who, label) in labels {
            let Some(t) = times.get(&(pods, bind, who.to_string())) else {
                continue;
            };
            let this = median(t);
            let (m, r) = spread(t, 1000.0, if this >= 0.01 { 1 } else { 2 });
            let python = med(pods, "python").unwrap_or(f64::NAN);
            let floor = med_at(pods, bind, "floor").unwrap_or(f64::NAN);
            let got = reached
                .get(&(pods, bind, who.to_string()))
                .map_or("", String::as_str);
            let server = if bind { ", BIND" } else { "" };
            let _ = writeln!(
                o,
                "| {pods}{server} | {label} | {m} | {r} | {:.1}x | {:.2}x | {got} |",
                python / this,
                this / floor
            );
        }
    }
    let mut runs: Vec<usize> = times.values().map(Vec::len).collect();
    runs.sort();
    runs.dedup();
    let runs: Vec<String> = runs.iter().map(usize::to_string).collect();
    let _ = writeln!(o, "\n{} timed runs per row.\n", runs.join("/"));

    // --- receiver: loss per (contestant, rate)
    let rlabels = [
        ("ours", "`receiver` (4 MiB buffer)"),
        (
            "metrics",
            "`receiver --metrics`, scraped every 0.5 s (4 MiB)",
        ),
        ("ours208k", "`receiver --rcvbuf 212992` (208 KiB)"),
        ("python", "Python `receiver.py` (208 KiB)"),
        ("floor", "floor: `recv_floor`, no log (4 MiB)"),
    ];
    let tick = clock_ticks_per_second();
    let mut trials: BTreeMap<(String, u64), Vec<Trial>> = BTreeMap::new();
    for line in read(results.join("receiver.tsv")).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        trials
            .entry((f[0].to_string(), num(1) as u64))
            .or_default()
            .push(Trial {
                sent: num(3),
                errors: num(4),
                achieved: num(5),
                lines: num(6),
                drops: num(7),
                rss: num(8),
                hwm: num(9),
                cpu: num(10) / tick,
            });
    }
    let mut rates: Vec<u64> = trials.keys().map(|(_, r)| *r).collect();
    rates.sort_by_key(|&r| if r == 0 { u64::MAX } else { r });
    rates.dedup();
    let of = |who: &'static str| {
        trials
            .iter()
            .filter(move |(k, _)| k.0 == who)
            .flat_map(|(_, ts)| ts.iter())
    };
    let get = |who: &str, rate: u64| {
        trials
            .get(&(who.to_string(), rate))
            .map_or(&[][..], Vec::as_slice)
    };
    let header: Vec<&str> = rlabels.iter().map(|(_, l)| *l).collect();
    o += "### Receiver: 64-byte datagrams lost at a paced rate, every one logged to a file\n\n";
    o += "Lost % of sent: median (min-max) over trials; the max row also gives the achieved rate.\n\n";
    let _ = writeln!(o, "| rate/s | {} |", header.join(" | "));
    let _ = writeln!(o, "|---:|{}", "---:|".repeat(rlabels.len()));
    for &rate in &rates {
        let mut cells = vec![];
        for (who, _) in rlabels {
            let t = get(who, rate);
            if t.is_empty() {
                cells.push(String::new());
                continue;
            }
            let loss: Vec<f64> = t
                .iter()
                .map(|x| 100.0 * (x.sent - x.lines) / x.sent)
                .collect();
            let (m, r) = spread(&loss, 1.0, 2);
            let mut cell = if max(&loss) == 0.0 {
                "0".to_string()
            } else {
                format!("{m}% ({r})")
            };
            if rate == 0 {
                let achieved: Vec<f64> = t.iter().map(|x| x.achieved).collect();
                let _ = write!(cell, " @ {:.0}k/s", median(&achieved) / 1000.0);
            }
            cells.push(cell);
        }
        let _ = writeln!(o, "| {} | {} |", rate_name(rate), cells.join(" | "));
    }
    let paced: Vec<f64> = trials
        .iter()
        .filter(|(k, _)| k.1 > 0)
        .flat_map(|(k, ts)| ts.iter().map(|x| x.achieved / k.1 as f64))
        .collect();
    if !paced.is_empty() {
        let _ = writeln!(
            o,
            "\nPaced trials achieved {:.1}%-{:.1}% of the rate asked.\n",
            min(&paced) * 100.0,
            max(&paced) * 100.0
        );
    }
    let _ = writeln!(o, "| | {} |", header.join(" | "));
    let _ = writeln!(o, "|---|{}", "---|".repeat(rlabels.len()));
    let mut lossless: HashMap<&str, Option<f64>> = HashMap::new();
    let mut first_loss: HashMap<&str, u64> = HashMap::new();
    let mut lossless_cells = vec![];
    let mut where_cells = vec![];
    let mut cpu: HashMap<&str, Option<f64>> = HashMap::new();
    for (who, _) in rlabels {
        let mut best: Option<f64> = None;
        for &rate in &rates {
            let t = get(who, rate);
            if !t.is_empty() && t.iter().all(|x| x.lines == x.sent) {
                // At max: what the load generator achieved (in the slowest trial).
                let slowest = min(&t.iter().map(|x| x.achieved).collect::<Vec<_>>());
                best = Some(if rate > 0 {
                    rate as f64
                } else {
                    best.unwrap_or(0.0).max(slowest)
                });
            } else {
                first_loss.insert(who, rate);
                break;
            }
        }
        lossless.insert(who, best);
        let lost: f64 = of(who).map(|x| x.sent - x.lines).sum();
        let drops: f64 = of(who).map(|x| x.drops).sum();
        let errs: f64 = of(who).map(|x| x.errors).sum();
        where_cells.push(format!(
            "{} lost: {} socket drops, {} send errors, {} elsewhere",
            commas(lost),
            commas(drops),
            commas(errs),
            commas(lost - drops - errs)
        ));
        lossless_cells.push(match (best, first_loss.get(who)) {
            (None, _) => "lost at every rate tried".to_string(),
            (Some(b), Some(&r)) => format!("{}/s (first loss at {})", commas(b), rate_name(r)),
            (Some(b), None) => format!("{}/s (every rate tried, max included)", commas(b)),
        });
        // Over every trial: seconds of CPU (all threads) per datagram received.
        let (secs, lines): (f64, f64) =
            (of(who).map(|x| x.cpu).sum(), of(who).map(|x| x.lines).sum());
        cpu.insert(who, (secs > 0.0 && lines > 0.0).then(|| secs / lines));
    }
    let _ = writeln!(o, "| lossless up to | {} |", lossless_cells.join(" | "));
    let cpu_cells: Vec<String> = rlabels
        .iter()
        .map(|(w, _)| cpu[w].map_or("-".into(), |c| format!("{:.2} us", c * 1e6)))
        .collect();
    let _ = writeln!(
        o,
        "| CPU per datagram, all trials | {} |",
        cpu_cells.join(" | ")
    );
    let _ = writeln!(o, "| all trials | {} |\n", where_cells.join(" | "));

    // --- sender --confirm
    let mut confirm: HashMap<String, Vec<f64>> = HashMap::new();
    for name in ["confirm.json", "confirm-loss.json"] {
        confirm.extend(read_times(&results.join(name))?);
    }
    let confirm_times = |who: &str| confirm.get(who).cloned().unwrap_or_default();
    o += "### sender --confirm, 1000 pods (ms, start to exit)\n\n";
    o += "| | median | min-max | / plain |\n|---|---:|---:|---:|\n";
    let plain = median(&confirm_times("plain"));
    for (who, label) in [
        ("plain", "plain broadcast"),
        ("confirm", "`--confirm`, no loss"),
        ("signed", "`--confirm --key-file` (signed), no loss"),
        ("loss", "`--confirm`, 10% loss each way: all 1000 confirmed"),
    ] {
        let t = confirm_times(who);
        let (m, r) = spread(&t, 1000.0, if who == "loss" { 0 } else { 1 });
        let ratio = if who == "loss" {
            String::new()
        } else {
            format!("{:.2}x", median(&t) / plain)
        };
        let _ = writeln!(o, "| {label} | {m} | {r} | {ratio} |");
    }
    let duplicates: u64 = read(results.join("confirm-duplicates"))
        .trim()
        .parse()
        .unwrap_or(0);
    let _ = writeln!(
        o,
        "\nLines logged twice by the receiver over all runs: {duplicates}.\n"
    );

    // --- footprint
    o += "### Footprint\n\n";
    let rows: Vec<(String, String, f64)> = read(results.join("footprint.tsv"))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.to_string(),
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    for (kind, name, size) in &rows {
        let _ = writeln!(
            o,
            "- {kind} `{name}`: {} bytes ({:.0} KiB)",
            commas(*size),
            size / 1024.0
        );
    }
    if !rows.iter().any(|r| r.0 == "image") {
        o += "- images: podman not available here (tests/containers.rs builds them)\n";
    }
    o += "\n| receiver | VmRSS idle (KiB) | VmHWM, peak over the max-rate trials (KiB) |\n|---|---:|---:|\n";
    for (who, label) in rlabels {
        let idle: Vec<f64> = of(who).map(|x| x.rss).collect();
        let peak = max(&get(who, 0).iter().map(|x| x.hwm).collect::<Vec<_>>()).max(0.0);
        if !idle.is_empty() {
            let peak = if peak > 0.0 {
                format!("{peak:.0}")
            } else {
                "-".into()
            };
            let _ = writeln!(o, "| {label} | {:.0} | {peak} |", median(&idle));
        }
    }

    // --- targets
    o += "\n### Targets\n\n";
    if let (Some(python), Some(musl), Some(floor)) =
        (med(1000, "python"), med(1000, "musl"), med(1000, "floor"))
    {
        let (speedup, to_floor) = (python / musl, musl / floor);
        let _ = writeln!(
            o,
            "- sender, 1000 pods: {speedup:.1}x faster than Python (target 15x): {}",
            verdict(speedup >= 15.0)
        );
        let _ = writeln!(
            o,
            "- sender, 1000 pods, dnsmasq: {to_floor:.2}x the floor (target at most 1.3x): {}",
            verdict(to_floor <= 1.3)
        );
    }
    // The card's lookup alone, for scale: no target of its own.
    let lookup_line = |o: &mut String, bind: bool, server: &str| {
        if let (Some(resolve), Some(floor)) =
            (med_at(1000, bind, "resolve"), med_at(1000, bind, "floor"))
        {
            let _ = writeln!(
                o,
                "- floor + getaddrinfo, 1000 pods, {server}: {:.2}x the floor (the card's lookup alone; no target)",
                resolve / floor
            );
        }
    };
    lookup_line(&mut o, false, "dnsmasq");
    if let (Some(musl), Some(floor)) = (med_at(1000, true, "musl"), med_at(1000, true, "floor")) {
        let to_floor = musl / floor;
        let _ = writeln!(
            o,
            "- sender, 1000 pods, BIND: {to_floor:.2}x the floor (target at most 1.3x): {}",
            verdict(to_floor <= 1.3)
        );
    }
    lookup_line(&mut o, true, "BIND");
    if let (Some(Some(ours)), Some(Some(python))) = (lossless.get("ours"), lossless.get("python")) {
        let ratio = ours / python;
        let at_max = !first_loss.contains_key("ours");
        let _ = writeln!(
            o,
            "- receiver: lossless at the load generator's maximum: {}",
            verdict(at_max)
        );
        let _ = writeln!(
            o,
            "- receiver: lossless rate {ratio:.1}x Python's{} (target 5x): {}",
            if at_max {
                " (at least: no loss at max)"
            } else {
                ""
            },
            verdict(ratio >= 5.0)
        );
    }
    let ratio = median(&confirm_times("confirm")) / plain;
    let _ = writeln!(
        o,
        "- sender --confirm, 1000 pods, no loss: {ratio:.2}x a plain broadcast (target at most 2x): {}",
        verdict(ratio <= 2.0)
    );
    let signed = median(&confirm_times("signed")) / median(&confirm_times("confirm"));
    let _ = writeln!(
        o,
        "- signed sender --confirm, 1000 pods: {signed:.2}x an unsigned --confirm (target at most 1.2x): {}",
        verdict(signed <= 1.2)
    );
    let _ = writeln!(
        o,
        "- sender --confirm: no line logged twice: {}",
        verdict(duplicates == 0)
    );
    if let (Some(Some(ours)), Some(Some(metrics))) = (lossless.get("ours"), lossless.get("metrics"))
    {
        // Lossless at max, a "rate" is only how fast the load generator
        // went in the slowest trial: two of them compare generators.
        if !first_loss.contains_key("ours") && !first_loss.contains_key("metrics") {
            let _ = writeln!(
                o,
                "- receiver: lossless rate with --metrics: no loss with or without, at any rate, max included ({} and {}/s) (target at least 95% of without): {}",
                commas(*metrics),
                commas(*ours),
                verdict(true)
            );
        } else {
            let ratio = metrics / ours;
            let _ = writeln!(
                o,
                "- receiver: lossless rate with --metrics {:.1}% of without (target at least 95%): {}",
                ratio * 100.0,
                verdict(ratio >= 0.95)
            );
        }
    }
    if let (Some(Some(ours)), Some(Some(metrics))) = (cpu.get("ours"), cpu.get("metrics")) {
        let _ = writeln!(
            o,
            "- receiver: CPU per datagram with --metrics {:.1}% of without",
            metrics / ours * 100.0
        );
    }
    for (kind, name, size) in &rows {
        let _ = writeln!(
            o,
            "- {kind} `{name}` under 600 KB: {} bytes: {}",
            commas(*size),
            verdict(*size < 600_000.0)
        );
    }
    o.push('\n');
    Ok(o)
}

/// Section 5 and the stream-mode rows of section 1.
fn relay_tables(results: &Path) -> Res<String> {
    let mut o = String::new();
    let mut rows: BTreeMap<(usize, u64, String), Vec<HashMap<String, f64>>> = BTreeMap::new();
    for line in read(results.join("relay.tsv")).lines() {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        if let [who, pods, rate, kv] = f[..] {
            let key = (
                pods.parse().unwrap_or(0),
                rate.parse().unwrap_or(0),
                who.to_string(),
            );
            rows.entry(key).or_default().push(key_values(kv));
        }
    }
    let tick_us = 1e6 / clock_ticks_per_second();
    if !rows.is_empty() {
        o += "### Relay: 64-byte datagrams in, a copy to every pod (copies delivered)\n\n";
        o += &read(results.join("relay-note.txt"));
        if results.join("relay-note.txt").exists() {
            o += "\n";
        }
        o += "| pods | rate in | program | copies delivered: median (min-max) | of those sent | per pod min-max \
              | in at | CPU per copy |\n";
        o += "|---:|---:|---|---:|---:|---:|---:|---:|\n";
        let mut verdicts = vec![];
        let mut keys: Vec<(usize, u64)> = rows.keys().map(|(p, r, _)| (*p, *r)).collect();
        keys.sort_by_key(|&(p, r)| (p, if r == 0 { u64::MAX } else { r }));
        keys.dedup();
        for (pods, rate) in keys {
            let mut best: HashMap<&str, f64> = HashMap::new();
            for who in ["relay", "samplicator"] {
                let Some(t) = rows.get(&(pods, rate, who.to_string())) else {
                    continue;
                };
                let v = |x: &HashMap<String, f64>, k: &str| x.get(k).copied().unwrap_or(0.0);
                let col = |f: &dyn Fn(&HashMap<String, f64>) -> f64| {
                    t.iter().map(f).collect::<Vec<f64>>()
                };
                let pct = col(&|x| 100.0 * v(x, "received") / (v(x, "sent") * pods as f64));
                let got = col(&|x| v(x, "received"));
                best.insert(who, median(&got));
                let _ = writeln!(
                    o,
                    "| {pods} | {}/s | `{who}` | {} ({}-{}) | {:.2}% | {}-{} | {:.1}k/s | {:.2} us |",
                    rate_name(rate),
                    commas(median(&got)),
                    commas(min(&got)),
                    commas(max(&got)),
                    median(&pct),
                    commas(min(&col(&|x| v(x, "min")))),
                    commas(max(&col(&|x| v(x, "max")))),
                    median(&col(&|x| v(x, "rate"))) / 1000.0,
                    median(&col(&|x| v(x, "cpu_ticks") * tick_us / v(x, "received"))),
                );
            }
            if let (Some(relay), Some(samplicator)) = (best.get("relay"), best.get("samplicator")) {
                verdicts.push(format!(
                    "{pods} pods, {}: relay {} copies vs samplicator {}: {}",
                    rate_name(rate),
                    commas(*relay),
                    commas(*samplicator),
                    verdict(relay >= samplicator)
                ));
            }
            if rate > 0 {
                let t = rows
                    .get(&(pods, rate, "relay".to_string()))
                    .map_or(&[][..], Vec::as_slice);
                let lossless = t
                    .iter()
                    .all(|x| x.get("received") == x.get("sent").map(|s| s * pods as f64).as_ref());
                verdicts.push(format!(
                    "{pods} pods, {}: relay without loss: {}",
                    rate_name(rate),
                    verdict(lossless)
                ));
            }
        }
        let verdicts: Vec<String> = verdicts.iter().map(|v| format!("- {v}")).collect();
        let _ = writeln!(o, "\n{}\n", verdicts.join("\n"));
    }
    let stream = results.join("stream.json");
    if stream.exists() {
        let med: HashMap<String, f64> = read_times(&stream)?
            .into_iter()
            .map(|(w, t)| (w, median(&t)))
            .collect();
        let m = |who: &str| med.get(who).copied().unwrap_or(f64::NAN);
        o += "### Sender stream mode: 2000 stdin lines to 10 pods (ms)\n\n";
        o += "| program | median | / floor |\n|---|---:|---:|\n";
        for (who, label) in [
            ("cached", "`sender` (pod list cached by TTL)"),
            ("per-line", "`sender --refresh 0` (resolves per line)"),
            ("floor", "floor: `sendto_floor`, the same 20,000 sends"),
        ] {
            let _ = writeln!(
                o,
                "| {label} | {:.1} | {:.2}x |",
                m(who) * 1000.0,
                m(who) / m("floor")
            );
        }
        let ratio = m("cached") / m("floor");
        let _ = writeln!(
            o,
            "\n- stream mode {ratio:.2}x the floor (target at most 1.5x): {}",
            verdict(ratio <= 1.5)
        );
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_commands_times_back() {
        let dir = std::env::temp_dir().join(format!("bench-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let json = dir.join("h.json");
        let text = r#"{"results": [
          {"command": "plain", "mean": 0.5, "times": [0.1, 0.2,
            0.3], "exit_codes": [0, 0, 0]},
          {"command": "confirm", "times": [1e-3], "exit_codes": [0]}]}"#;
        fs::write(&json, text).unwrap();
        let times = read_times(&json);
        fs::remove_dir_all(&dir).unwrap();
        let expected = vec![
            ("plain".to_string(), vec![0.1, 0.2, 0.3]),
            ("confirm".into(), vec![0.001]),
        ];
        assert_eq!(times, Ok(expected));
    }

    #[test]
    fn writes_times_that_read_times_reads_back() {
        let dir = std::env::temp_dir().join(format!("bench-json-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let json = dir.join("t.json");
        let times = vec![
            ("floor".to_string(), vec![0.0025, 1e-7, 3.0]),
            ("musl".into(), vec![]),
        ];
        fs::write(&json, times_json(&times)).unwrap();
        let read_back = read_times(&json);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read_back, Ok(times));
    }

    #[test]
    fn each_contestant_goes_first_in_turn() {
        let rounds: Vec<Vec<usize>> = (0..7).map(|r| turns(r, 3).collect()).collect();
        let forwards = [[0, 1, 2], [1, 2, 0], [2, 0, 1]];
        let backwards = [[2, 1, 0], [0, 2, 1], [1, 0, 2]];
        assert_eq!(rounds, [&forwards[..], &backwards, &forwards[..1]].concat());
        // Over two cycles each goes first twice and runs right after each
        // other one twice.
        for n in [2, 3, 4, 5, 6] {
            let mut first = vec![0; n];
            let mut after = vec![vec![0; n]; n];
            for r in 0..2 * n {
                let order: Vec<usize> = turns(r, n).collect();
                first[order[0]] += 1;
                for pair in order.windows(2) {
                    after[pair[1]][pair[0]] += 1;
                }
            }
            assert!(first.iter().all(|&f| f == 2), "{n}: {first:?}");
            for (i, counts) in after.iter().enumerate() {
                let others = (0..n).filter(|&j| j != i).map(|j| counts[j]);
                assert!(others.into_iter().all(|c| c == 2), "{n}: {after:?}");
            }
        }
    }

    #[test]
    fn times_a_run_with_its_output_and_stdin_in_files() {
        let dir = std::env::temp_dir().join(format!("bench-run-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (input, sink) = (dir.join("in"), dir.join("sink"));
        fs::write(&input, "line\n").unwrap();
        fs::write(&sink, "from an earlier run\n").unwrap();
        let piped = time_run(&format!("cat <{}", input.display()), &sink);
        let piped_out = read(&sink);
        let failed = time_run("ls /nonexistent", &sink);
        fs::remove_dir_all(&dir).unwrap();
        assert!(piped.is_ok_and(|t| t > 0.0 && t < 10.0));
        assert_eq!(piped_out, "line\n");
        assert!(
            failed.as_ref().is_err_and(|e| e.contains("/nonexistent")),
            "{failed:?}"
        );
    }

    #[test]
    fn each_run_is_named_in_its_command() {
        let dir = std::env::temp_dir().join(format!("bench-named-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (json, sink) = (dir.join("times.json"), dir.join("sink"));
        let args = ["echo test-{run}", "echo {run}{run}"];
        let (json_arg, sink_arg) = (json.display().to_string(), sink.display().to_string());
        let ran = alternate(
            &json_arg,
            ["1", "2", "0"],
            &sink_arg,
            &["a", args[0], "bb", args[1]],
        );
        // The sink holds the last run's output: round 2 (after 1 warm-up
        // and a timed one) of the contestant that went last.
        let last = read(&sink);
        let times = read_times(&json);
        fs::remove_dir_all(&dir).unwrap();
        ran.unwrap();
        assert!(last == "test-a2\n" || last == "bb2bb2\n", "{last:?}");
        assert_eq!(times.unwrap().len(), 2);
    }

    #[test]
    fn formats_like_pythons_statistics_and_format() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(
            spread(&[0.001, 0.003, 0.002], 1000.0, 1),
            ("2.0".into(), "1.0-3.0".into())
        );
        assert_eq!(commas(0.0), "0");
        assert_eq!(commas(999.4), "999");
        assert_eq!(commas(1234567.0), "1,234,567");
        assert_eq!(commas(-1234.0), "-1,234");
        assert_eq!(rate_name(0), "max");
        assert_eq!(rate_name(25000), "25k");
    }

    #[test]
    fn reads_key_values_as_the_helper_examples_print_them() {
        let kv = key_values("sent=10 errors=0 seconds=1.5 rate=6.7 received=9");
        assert_eq!(
            (kv["sent"], kv["seconds"], kv["received"]),
            (10.0, 1.5, 9.0)
        );
    }
}
