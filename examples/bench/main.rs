//! Benchmarks udp-headless side by side with the original Python demo, and
//! with "floor" programs that do only what the kernel must do. Prints
//! Markdown tables (median of several runs, min-max, ratios); docs/BENCHMARKS.md
//! holds the latest ones and explains them.
//!
//!   cargo run --release --example bench             the full run (about 13 minutes)
//!   cargo run --release --example bench -- --quick  fewer runs and rates (about 3 minutes)
//!   cargo run --release --example bench -- --relay  only 5. (and the stream-mode rows of 1.)
//!   cargo run --release --example bench -- --sender only the 1000-pod rows of 1., and their
//!                                                    medians and ratios to the floor
//!
//! UDP_HEADLESS_OTHER_SENDER=PATH adds a contestant "other" to the sender rows:
//! another build of the sender (another design), timed side by side.
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
//!      on and scraped every 0.5 s, fed DATA frames (udp_flood --frame yes),
//!      with --key-file fed signed MESSAGE frames (udp_flood --key-file) and
//!      signed DATA frames (both options), with
//!      the kernel's default 208 KiB, the Python receiver, and
//!      examples/recv_floor.rs (a bare recv loop, no log).
//!   3. sender --confirm to 1000 pods (one receiver answers for all of
//!      them), side by side with a plain broadcast; then the time to full
//!      confirmation with 10% of datagrams and of acknowledgements dropped
//!      (iptables), and whether any receiver line was logged twice.
//!   4. footprint: binary and image sizes, the receivers' resident memory.
//!   5. relay: copies delivered to 10 and 100 pods (examples/fanout_sink.rs,
//!      4 MiB buffers) of 64-byte datagrams from udp_flood, paced and flat
//!      out, our relay (also with --key-file, fed signed MESSAGE frames)
//!      beside samplicator (built from ../shared/peers when present;
//!      UDP_HEADLESS_PEERS overrides). Stream mode: 2000 stdin lines
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
use udp_headless::os::{procnet, sys};

mod confirm;
mod footprint;
mod procs;
mod receiver;
mod relay;
mod report;
mod sender;
mod timing;

use confirm::confirm_table;
use footprint::footprint_table;
use procs::*;
use receiver::receiver_tables;
use relay::relay_tables;
use report::*;
use sender::{sender_summary, sender_table};
use timing::*;

type Res<T> = Result<T, String>;

const PAYLOAD_SIZE: u64 = 64;
const PORT: u16 = 12000;
const RELAY_PORT: u16 = 12001;
const METRICS_PORT: u16 = 9102;
/// A key (32 bytes of `k`, base64) for the signed contestants.
const BENCH_KEY: &str = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";
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
    sender_only: bool,
    // Timed runs of each contestant per sender row: many, as its target sits
    // within noise of the result (a 1.5x ratio).
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
    fn new(quick: bool, relay_only: bool, sender_only: bool) -> Settings {
        let pick = |q, full| if quick { q } else { full };
        Settings {
            quick,
            relay_only,
            sender_only,
            sender_runs: pick(5, 100),
            sender_warmup: pick(1, 2),
            confirm_runs: pick(5, 30),
            stream_runs: pick(5, 30),
            recv_trials: pick(1, 3),
            recv_rates: if quick {
                vec![25000, 50000, 100000, 150000, 200000, 0]
            } else {
                vec![
                    25000, 50000, 75000, 100000, 150000, 200000, 250000, 300000, 350000, 400000, 0,
                ]
            },
            max_rate_count: if quick { 300000 } else { 1000000 },
            pod_counts: if relay_only {
                vec![]
            } else if sender_only {
                vec![1000]
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
    let header: Vec<&str> = include_str!("main.rs")
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
    let (quick, relay_only, sender_only) = match args.first().map(String::as_str) {
        None => (false, false, false),
        Some("--quick") if args.len() == 1 => (true, false, false),
        Some("--relay") if args.len() == 1 => (false, true, false),
        Some("--sender") if args.len() == 1 => (false, false, true),
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
    match run(Settings::new(quick, relay_only, sender_only)) {
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
    if bench.s.sender_only {
        return sender_summary(&bench.results);
    }
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
