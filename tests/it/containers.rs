//! The container images and compose.yaml, run as a cluster runs them (every
//! container --read-only, --cap-drop ALL, no-new-privileges, like the manifests):
//!   1. the musl binaries, then the images from them (BINARIES=host: nothing
//!      is pulled): size < 600 KB, numeric non-root USER, labels (receiver,
//!      sender and relay images); the IMAGE build argument; an arm64 image from aarch64 binaries;
//!   2. podman: 3 receivers sharing the network alias headless-udp (one as an
//!      OpenShift-style random UID); the sender sends to headless-udp, every
//!      receiver logs it once in the original's exact format; `podman stop`
//!      takes < 2 s;
//!   3. compose.yaml with podman-compose: up, send by exec and by run, down.
//!
//! Ignored by default: it needs root, podman (runc, netavark, aardvark-dns)
//! and podman-compose (scripts/install-deps.sh); scripts/test.sh runs it with
//! --ignored. Everything it creates carries this run's name
//! (udp-headless-test-PID) and is removed at the end, also on failure; what
//! an interrupted run left behind is removed by the next one. It prints
//! PASS/FAIL per check and fails at the end if any check failed.

use crate::support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};
use support::*;
use udp_headless::log_line;

const MUSL: &str = "x86_64-unknown-linux-musl";
const ARM64: &str = "aarch64-unknown-linux-musl";
const REPLICAS: usize = 3;
const MAX_IMAGE_BYTES: u64 = 600_000;
const MAX_STOP: Duration = Duration::from_secs(2);
/// restricted-v2 style: a random high UID, group 0.
const OPENSHIFT_USER: (&str, &str) = ("1000770000", "0");
const HARDENING: [&str; 5] = [
    "--read-only",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
];
/// ELF e_machine of AArch64.
const EM_AARCH64: u16 = 183;

/// podman 4.3 here (root, cgroup v1, no systemd) needs runc (crun is not
/// installed) and ulimits within the hard limits (its default nofile fails);
/// netavark + aardvark-dns answer a network alias with every container
/// carrying it, as a headless Service does. Nothing in /etc is touched.
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
"#;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// PASS/FAIL lines, counted; the test fails at the end if any failed.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool) -> bool {
        self.result(what, if ok { Ok(()) } else { Err(String::new()) })
    }

    /// PASS, or FAIL with the reason (indented under it).
    fn result(&mut self, what: &str, result: Result<(), String>) -> bool {
        match result {
            Ok(()) => {
                self.passed += 1;
                eprintln!("PASS: {what}");
                true
            }
            Err(why) => {
                eprintln!("FAIL: {what}");
                for line in why.lines() {
                    eprintln!("    | {line}");
                }
                self.failed.push(what.to_string());
                false
            }
        }
    }

    /// A failure the rest cannot go on from.
    fn abort(&mut self, what: &str, why: &str) -> ! {
        self.result(what, Err(why.to_string()));
        self.summary();
        unreachable!()
    }

    fn summary(&self) {
        eprintln!(
            "containers: {} passed, {} failed",
            self.passed,
            self.failed.len()
        );
        assert!(self.failed.is_empty(), "failed: {:#?}", self.failed);
    }
}

/// A command's status and its stdout + stderr, run within `limit`.
struct Ran {
    ok: bool,
    code: Option<i32>,
    text: String,
}

fn run(cmd: &mut Command, limit: Duration) -> Ran {
    let out = output_within(cmd.stdin(Stdio::null()), limit);
    Ran {
        ok: out.status.success(),
        code: out.status.code(),
        text: String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr),
    }
}

/// Everything one run creates, named after it; removed when dropped.
struct Run {
    name: String,
    network: String,
    compose_project: String,
    receiver_image: String,
    sender_image: String,
    relay_image: String,
    tmp: TempDir,
}

impl Run {
    fn new() -> Run {
        let name = format!("udp-headless-test-{}", std::process::id());
        let tmp = TempDir::new("containers");
        fs::write(tmp.join("containers.conf"), CONTAINERS_CONF).unwrap();
        Run {
            network: name.clone(),
            compose_project: format!("{}_compose", name.replace('-', "_")),
            receiver_image: format!("localhost/{name}/receiver:0.1.0"),
            sender_image: format!("localhost/{name}/sender:0.1.0"),
            relay_image: format!("localhost/{name}/relay:0.1.0"),
            name,
            tmp,
        }
    }

    fn image(&self, what: &str) -> String {
        format!("localhost/{}/{what}:0.1.0", self.name)
    }

    fn podman(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.tmp.join("containers.conf"));
        cmd
    }

    /// podman ARGS, within 60 s (builds have their own limit).
    fn call(&self, args: &[&str]) -> Ran {
        run(self.podman().args(args), Duration::from_secs(60))
    }

    /// The trimmed stdout of podman ARGS ("" if it failed).
    fn query(&self, args: &[&str]) -> String {
        let out = output_within(
            self.podman().args(args).stdin(Stdio::null()),
            Duration::from_secs(60),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn inspect(&self, format: &str, container: &str) -> String {
        self.query(&["inspect", "-f", format, container])
    }

    fn image_field(&self, image: &str, field: &str) -> String {
        let format = format!("{{{{json .Config.{field}}}}}");
        self.query(&["image", "inspect", "-f", &format, image])
    }

    fn label(&self, image: &str, key: &str) -> String {
        let format = format!("{{{{index .Config.Labels \"org.opencontainers.image.{key}\"}}}}");
        self.query(&["image", "inspect", "-f", &format, image])
    }

    fn subnet(&self, network: &str) -> String {
        self.query(&[
            "network",
            "inspect",
            "-f",
            "{{range .Subnets}}{{.Subnet}}{{end}}",
            network,
        ])
    }

    fn ip(&self, container: &str) -> IpAddr {
        let ip = self.inspect(
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        );
        ip.parse()
            .unwrap_or_else(|_| panic!("{container}: no IP address ({ip:?})"))
    }

    fn compose(&self) -> Command {
        let mut cmd = Command::new("podman-compose");
        cmd.env("CONTAINERS_CONF", self.tmp.join("containers.conf"))
            .env("RECEIVER_IMAGE", &self.receiver_image)
            .env("SENDER_IMAGE", &self.sender_image)
            .args(["-p", &self.compose_project, "-f", "compose.yaml"])
            .current_dir(root());
        cmd
    }

    /// podman build --pull=never (no registry needed, and proof that
    /// BINARIES=host pulls nothing) --layers=false (no intermediate images
    /// left behind) ARGS . within 10 minutes.
    fn build(&self, args: &[&str]) -> Ran {
        let mut cmd = self.podman();
        cmd.args(["build", "--pull=never", "--layers=false"])
            .args(args)
            .arg(".")
            .current_dir(root());
        run(&mut cmd, Duration::from_secs(600))
    }

    /// Containers and networks of `run` (and its compose project), and its images.
    fn remove(&self, run: &str) {
        let project = format!("{}_compose", run.replace('-', "_"));
        for label in [
            format!("udp-headless-test={run}"),
            format!("io.podman.compose.project={project}"),
        ] {
            let filter = format!("label={label}");
            let ids = self.query(&["ps", "-aq", "--filter", &filter]);
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-t", "0"];
                args.extend(ids.split_whitespace());
                self.call(&args);
            }
        }
        // podman-compose 1.0.3's `down` leaves its network behind.
        for network in [run.to_string(), format!("{project}_default")] {
            self.call(&["network", "rm", "-f", &network]);
        }
        let reference = format!("reference=localhost/{run}/*");
        let images = self.query(&["images", "-q", "--filter", &reference]);
        if !images.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(images.split_whitespace());
            self.call(&args);
        }
    }

    /// What runs killed before their cleanup left: the networks and images
    /// of runs udp-headless-test-PID whose PID is gone.
    fn remove_stale(&self) {
        let networks = self.query(&["network", "ls", "--format", "{{.Name}}"]);
        let images = self.query(&["images", "--format", "{{.Repository}}"]);
        let mut runs: Vec<&str> = networks
            .lines()
            .chain(images.lines().filter_map(|i| i.strip_prefix("localhost/")))
            .filter_map(|name| {
                let pid = name.strip_prefix("udp-headless-test-")?;
                let pid = pid.split('/').next()?;
                (pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists())
                    .then(|| &name[..name.find('/').unwrap_or(name.len())])
            })
            .collect();
        runs.sort();
        runs.dedup();
        for run in runs {
            self.remove(run);
        }
    }

    /// `/receiver --check` in it (what /readyz tells the probe), within 10 s.
    fn wait_ready(&self, container: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while !self.call(&["exec", container, "/receiver", "--check"]).ok {
            if Instant::now() > end {
                return false;
            }
            sleep(Duration::from_millis(200));
        }
        true
    }

    /// Its process has that UID and GID, no capabilities, no_new_privs, and
    /// a read-only root.
    fn check_runs_as(&self, checks: &mut Checks, container: &str, uid: &str, gid: &str) {
        let pid = self.inspect("{{.State.Pid}}", container);
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let ok = field("Uid:").first() == Some(&uid)
            && field("Gid:").first() == Some(&gid)
            && field("CapEff:")
                .first()
                .is_some_and(|c| c.bytes().all(|b| b == b'0'))
            && field("NoNewPrivs:") == ["1"]
            && self.inspect("{{.HostConfig.ReadonlyRootfs}}", container) == "true";
        checks.check(
            &format!(
                "{container} runs as {uid}:{gid}, no capabilities, no_new_privs, read-only root"
            ),
            ok,
        );
    }

    /// Exactly one well-formed line with `message` in the container's log,
    /// from an address in `subnet` (the sender on the same network, not
    /// NAT'ed) that is no receiver's; waits up to 5 s.
    fn check_received(
        &self,
        container: &str,
        message: &str,
        subnet: &str,
        receivers: &[IpAddr],
    ) -> Result<(), String> {
        let lines = || -> Vec<String> {
            let log = self.call(&["logs", container]).text;
            log.lines()
                .filter(|l| l.contains(message))
                .map(str::to_string)
                .collect()
        };
        let end = Instant::now() + Duration::from_secs(5);
        let mut got = lines();
        while got.is_empty() && Instant::now() < end {
            sleep(Duration::from_millis(200));
            got = lines();
        }
        let ip = client_of(&got, message)?;
        if !in_subnet(ip, subnet) {
            return Err(format!("client {ip} is not on {subnet}"));
        }
        if receivers.contains(&IpAddr::V4(ip)) {
            return Err(format!("client {ip} is a receiver"));
        }
        Ok(())
    }

    /// `podman stop` returns in < 2 s with exit status 0: the binary, PID 1,
    /// handled SIGTERM itself.
    fn check_stop(&self, checks: &mut Checks, container: &str) {
        let start = Instant::now();
        self.call(&["stop", "-t", "10", container]);
        let took = start.elapsed();
        let code = self.inspect("{{.State.ExitCode}}", container);
        checks.check(
            &format!(
                "podman stop {container}: {} ms (limit {} ms), exit status {code} (want 0)",
                took.as_millis(),
                MAX_STOP.as_millis()
            ),
            took < MAX_STOP && code == "0",
        );
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.remove(&self.name.clone());
    }
}

/// The client address of `lines`, the log lines naming `message`: there
/// must be exactly one, the receiver's line in the original's format.
fn client_of(lines: &[String], message: &str) -> Result<Ipv4Addr, String> {
    // `('IP', PORT)`: the address as python3's recvfrom tuple.
    let head = received(&repr(message.as_bytes()), "('");
    let client = match lines {
        [line] => log_line::parse(line)
            .filter(|(level, _)| *level == log_line::INFO)
            .and_then(|(_, m)| m.strip_prefix(&head))
            .and_then(|rest| rest.split_once("', "))
            .filter(|(_, port)| {
                port.strip_suffix(')')
                    .is_some_and(|p| p.parse::<u16>().is_ok())
            })
            .and_then(|(ip, _)| ip.parse::<Ipv4Addr>().ok()),
        _ => None,
    };
    client.ok_or_else(|| {
        format!(
            "expected exactly one line with \"{head}<IP>', <PORT>)\", got:\n{}",
            if lines.is_empty() {
                "(none)".to_string()
            } else {
                lines.join("\n")
            }
        )
    })
}

/// `ip` in `net` (A.B.C.D/BITS).
fn in_subnet(ip: Ipv4Addr, net: &str) -> bool {
    let Some((base, bits)) = net.split_once('/') else {
        return false;
    };
    let (Ok(base), Ok(bits)) = (base.parse::<Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(base) & mask
}

fn ips_text(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn build_images(r: &Run, checks: &mut Checks) {
    eprintln!("== building the musl binaries and the images ({})", r.name);
    let what = format!("cargo build --release --target {MUSL}");
    if let Err(output) = cargo_build(MUSL) {
        checks.abort(&what, &output);
    }
    checks.check(&what, true);
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        });
    for (target, image) in [
        ("receiver", &r.receiver_image),
        ("sender", &r.sender_image),
        ("relay", &r.relay_image),
    ] {
        let what = format!("podman build --target {target} --build-arg BINARIES=host");
        let built = r.build(&[
            "--target",
            target,
            "--build-arg",
            "BINARIES=host",
            "--build-arg",
            &format!("REVISION={revision}"),
            "-t",
            image,
        ]);
        if !built.ok {
            checks.abort(&what, &built.text);
        }
        checks.check(&what, true);
    }

    // Without --target (OpenShift's docker strategy has none), IMAGE picks.
    for target in ["sender", "relay"] {
        let picked = r.image(&format!("picked-{target}"));
        let built = r.build(&[
            "--build-arg",
            "BINARIES=host",
            "--build-arg",
            &format!("IMAGE={target}"),
            "-t",
            &picked,
        ]);
        let entrypoint = r.image_field(&picked, "Entrypoint");
        checks.result(
            &format!("podman build --build-arg IMAGE={target}, no --target: the {target} image"),
            if entrypoint == format!("[\"/{target}\"]") {
                Ok(())
            } else {
                Err(format!("entrypoint {entrypoint:?}\n{}", built.text))
            },
        );
    }

    // --platform linux/arm64 picks the aarch64 binaries (TARGETARCH); a
    // FROM scratch image builds without emulating arm64.
    let arm64_image = r.image("receiver-arm64");
    let container = format!("{}-arm64", r.name);
    let copy = r.tmp.join("receiver-arm64");
    let arm64 = || -> Result<(), String> {
        cargo_build(ARM64)?;
        let args = [
            "--platform",
            "linux/arm64",
            "--target",
            "receiver",
            "--build-arg",
            "BINARIES=host",
            "-t",
            &arm64_image,
        ];
        let built = r.build(&args);
        if !built.ok {
            return Err(built.text);
        }
        let label = format!("udp-headless-test={}", r.name);
        for args in [
            &[
                "create",
                "--name",
                &container,
                "--label",
                &label,
                &arm64_image,
            ][..],
            &[
                "cp",
                &format!("{container}:/receiver"),
                copy.to_str().unwrap(),
            ],
        ] {
            let ran = r.call(args);
            if !ran.ok {
                return Err(format!("podman {args:?}:\n{}", ran.text));
            }
        }
        let arch = r.query(&["image", "inspect", "-f", "{{.Architecture}}", &arm64_image]);
        let elf = fs::read(&copy).map_err(|e| e.to_string())?;
        let machine = elf.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]]));
        if arch != "arm64" || machine != Some(EM_AARCH64) {
            return Err(format!("architecture {arch:?}, ELF e_machine {machine:?}"));
        }
        Ok(())
    };
    if !checks.result(
        &format!("podman build --platform linux/arm64: an arm64 image with the {ARM64} receiver"),
        arm64(),
    ) {
        eprintln!("    (BINARIES=host, {ARM64} built with rust-lld)");
    }

    // The default, BINARIES=build, compiles in the rust image, which no
    // registry here provides: it must fail for want of exactly that image
    // (proof that the `build` stage was picked: buildah 1.28 used to skip
    // it, see the Dockerfile), or succeed where the image is present.
    let dockerfile = fs::read_to_string(root().join("Dockerfile")).unwrap();
    let rust_image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_IMAGE="))
        .expect("Dockerfile: ARG RUST_IMAGE=");
    let built = r.build(&[
        "--target",
        "receiver",
        "-t",
        &r.image("receiver-from-source"),
    ]);
    if built.ok {
        checks.check(
            &format!("podman build --target receiver (BINARIES=build): built from source in {rust_image}"),
            true,
        );
    } else {
        checks.result(
            &format!("podman build --target receiver (BINARIES=build) uses the build stage ({rust_image}, not available here)"),
            if built.text.contains(&format!("{rust_image}: image not known")) {
                Ok(())
            } else {
                Err(format!("failed for another reason:\n{}", built.text))
            },
        );
    }
}

fn check_images(r: &Run, checks: &mut Checks) {
    eprintln!("== image contents");
    for (target, image) in [
        ("receiver", &r.receiver_image),
        ("sender", &r.sender_image),
        ("relay", &r.relay_image),
    ] {
        let size: u64 = r
            .query(&["image", "inspect", "-f", "{{.Size}}", image])
            .parse()
            .unwrap_or(u64::MAX);
        checks.check(
            &format!(
                "{target} image size: {} KB ({size} bytes), limit {} KB",
                size / 1000,
                MAX_IMAGE_BYTES / 1000
            ),
            size < MAX_IMAGE_BYTES,
        );
        checks.check(
            &format!("{target} image USER is numeric non-root 65532:65532"),
            r.image_field(image, "User") == r#""65532:65532""#,
        );
        checks.check(
            &format!("{target} image ENTRYPOINT is [\"/{target}\"]"),
            r.image_field(image, "Entrypoint") == format!("[\"/{target}\"]"),
        );
        let title = format!("udp-headless {target}");
        for (key, want) in [
            ("title", Some(title.as_str())),
            ("description", None),
            ("source", None),
            ("licenses", Some("Apache-2.0")),
            ("version", Some("0.1.0")),
        ] {
            let value = r.label(image, key);
            checks.check(
                &format!("{target} image label org.opencontainers.image.{key}"),
                want.map_or(!value.is_empty() && value != "<no value>", |w| value == w),
            );
        }
    }
    checks.check(
        "receiver image exposes 12000/udp",
        r.image_field(&r.receiver_image, "ExposedPorts") == r#"{"12000/udp":{}}"#,
    );
    checks.check(
        "relay image exposes 12001/udp",
        r.image_field(&r.relay_image, "ExposedPorts") == r#"{"12001/udp":{}}"#,
    );
    checks.check(
        "sender image default CMD is [\"--idle\"]",
        r.image_field(&r.sender_image, "Cmd") == r#"["--idle"]"#,
    );
}

/// The sender's output (`text`): one well-formed `sent message to :IP` line
/// per receiver, nothing else.
fn sender_output(text: &str, receivers: &[IpAddr]) -> Result<(), String> {
    check_sender_log(text, receivers).map_err(|e| format!("{e}\ngot:\n{text}"))
}

fn test_podman(r: &Run, checks: &mut Checks, message: &str) {
    eprintln!(
        "== podman: {REPLICAS} receivers as headless-udp on network {}",
        r.network
    );
    let label = format!("udp-headless-test={}", r.name);
    let user = format!("{}:{}", OPENSHIFT_USER.0, OPENSHIFT_USER.1);
    let created = r.call(&["network", "create", "--label", &label, &r.network]);
    if !created.ok {
        checks.abort(
            &format!("podman network create {}", r.network),
            &created.text,
        );
    }
    let subnet = r.subnet(&r.network);
    checks.check(
        &format!(
            "network {} ({subnet}) has DNS (netavark + aardvark-dns)",
            r.network
        ),
        r.query(&["network", "inspect", "-f", "{{.DNSEnabled}}", &r.network]) == "true",
    );
    // Every container here: detached or not, with this run's label.
    let start = |name: &str, extra: &[&str], image: &str, command: &[&str]| {
        let mut args = vec!["run", "--pull=never", "--name", name, "--label", &label];
        args.extend(["--network", &r.network]);
        args.extend(HARDENING);
        args.extend(extra);
        args.push(image);
        args.extend(command);
        r.call(&args)
    };
    let mut receivers = Vec::new();
    for i in 1..=REPLICAS {
        let name = format!("{}-receiver-{i}", r.name);
        let mut extra = vec!["-d", "--network-alias", "headless-udp"];
        if i == 2 {
            extra.extend(["--user", &user]);
        }
        let ran = start(&name, &extra, &r.receiver_image, &[]);
        if !ran.ok {
            checks.abort(&format!("podman run receiver {name}"), &ran.text);
        }
        receivers.push(name);
    }
    let mut ips = Vec::new();
    for name in &receivers {
        if !r.wait_ready(name) {
            let logs = r.call(&["logs", name]).text;
            checks.abort(&format!("{name} not ready within 10 s"), &logs);
        }
        checks.check(
            &format!("{name} ready (podman exec {name} /receiver --check)"),
            true,
        );
        ips.push(r.ip(name));
    }
    r.check_runs_as(checks, &receivers[0], "65532", "65532");
    r.check_runs_as(checks, &receivers[1], OPENSHIFT_USER.0, OPENSHIFT_USER.1);

    // The sender, one-off, also as an OpenShift-style UID.
    let sent = start(
        &format!("{}-sender", r.name),
        &["--rm", "--user", &user],
        &r.sender_image,
        &["-s", "headless-udp", "-m", message],
    );
    checks.check(
        &format!(
            "sender -s headless-udp -m {message} exited 0 (got {:?})",
            sent.code
        ),
        sent.ok,
    );
    checks.result(
        &format!(
            "sender logged 'sent message to :IP' once for each receiver ({})",
            ips_text(&ips)
        ),
        sender_output(&sent.text, &ips),
    );
    for name in &receivers {
        checks.result(
            &format!("{name} logged the message in the exact format, from the sender"),
            r.check_received(name, message, &subnet, &ips),
        );
    }

    // The idle sender (the image's default CMD) stays up and stops fast.
    let idle = format!("{}-sender-idle", r.name);
    start(&idle, &["-d"], &r.sender_image, &[]);
    sleep(Duration::from_secs(1));
    checks.check(
        &format!("{idle} (default CMD --idle) is still running after 1 s"),
        r.inspect("{{.State.Running}}", &idle) == "true",
    );
    r.check_runs_as(checks, &idle, "65532", "65532");
    for name in receivers.iter().chain([&idle]) {
        r.check_stop(checks, name);
    }
}

/// compose.yaml with podman-compose 1.0.3 (Debian 12), on the images built
/// above (`up --no-build`: nothing is built or pulled). Its receivers are
/// the service headless-udp (see compose.yaml), found by podman-compose's labels.
fn test_compose(r: &Run, checks: &mut Checks, message: &str) {
    let project = &r.compose_project;
    eprintln!("== podman-compose: compose.yaml as project {project}");
    let limit = Duration::from_secs(180);
    let up = run(r.compose().args(["up", "-d", "--no-build"]), limit);
    if !up.ok {
        checks.abort("podman-compose up -d", &up.text);
    }
    checks.check("podman-compose up -d", true);
    let project_label = format!("label=io.podman.compose.project={project}");
    let names = r.query(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &project_label,
        "--filter",
        "label=com.docker.compose.service=headless-udp",
    ]);
    let mut receivers: Vec<&str> = names.lines().collect();
    receivers.sort();
    checks.check(
        &format!(
            "compose started {REPLICAS} receiver replicas (got {}: {})",
            receivers.len(),
            receivers.join(" ")
        ),
        receivers.len() == REPLICAS,
    );
    if receivers.is_empty() {
        checks.abort("no compose receivers to test", "");
    }
    let mut ips = Vec::new();
    for name in &receivers {
        checks.check(&format!("{name} ready"), r.wait_ready(name));
        ips.push(r.ip(name));
        r.check_runs_as(checks, name, "65532", "65532");
    }
    checks.check(
        "compose sender (--idle) is running",
        r.inspect("{{.State.Running}}", &format!("{project}_sender_1")) == "true",
    );
    let subnet = r.subnet(&format!("{project}_default"));

    // As a user would: exec into the idle sender (a bare `sender`: the image
    // sets PATH=/), or one-off with `run --rm` (--no-deps: podman-compose
    // 1.0.3's `run` would otherwise rebuild the receiver image from source).
    let exec_message = format!("{message}-exec");
    let run_message = format!("{message}-run");
    for (what, msg, args) in [
        (
            "exec",
            &exec_message,
            &["exec", "-T", "sender", "sender"][..],
        ),
        (
            "run",
            &run_message,
            &["run", "-T", "--rm", "--no-deps", "sender"][..],
        ),
    ] {
        let ran = run(
            r.compose()
                .args(args)
                .args(["-s", "headless-udp", "-m", msg]),
            limit,
        );
        // podman-compose 1.0.3 exits 0 even when the command failed: the
        // status is its `exit code: N` line, on stdout among the podman
        // command lines it prints (told apart by how they begin).
        let mut code = ran.code;
        let mut output = String::new();
        for line in ran.text.lines() {
            if let Some(n) = line.strip_prefix("exit code: ") {
                code = n.trim().parse().ok();
            } else if !["['podman'", "using podman version", "podman "]
                .iter()
                .any(|p| line.starts_with(p))
            {
                output += line;
                output += "\n";
            }
        }
        checks.check(
            &format!(
                "podman-compose {what}: sender -s headless-udp -m {msg} exited 0 (podman-compose {:?}, sender {code:?})",
                ran.code
            ),
            ran.ok && code == Some(0),
        );
        checks.result(
            &format!(
                "podman-compose {what}: sender logged 'sent message to :IP' once for each replica ({})",
                ips_text(&ips)
            ),
            sender_output(&output, &ips),
        );
        for name in &receivers {
            checks.result(
                &format!("{name} logged the {what} message in the exact format, from the sender"),
                r.check_received(name, msg, &subnet, &ips),
            );
        }
    }

    let down = run(r.compose().arg("down"), limit);
    let left = r.query(&["ps", "-aq", "--filter", &project_label]);
    checks.check(
        &format!("podman-compose down exited 0 (got {:?})", down.code),
        down.ok,
    );
    checks.check(
        &format!(
            "podman-compose down removed every container (left: {})",
            if left.is_empty() { "none" } else { &left }
        ),
        left.is_empty(),
    );
}

#[test]
#[ignore = "needs root, podman and podman-compose, builds images: scripts/test.sh"]
fn images_podman_and_compose() {
    let mut checks = Checks::default();
    for tool in ["podman", "podman-compose"] {
        if Command::new(tool).arg("--version").output().is_err() {
            checks.abort(&format!("{tool} not found"), "run scripts/install-deps.sh");
        }
    }
    let r = Run::new();
    r.remove_stale();
    // Unique per run, so an old log line can never pass for a new one;
    // letters, digits and dashes, so its repr is b'MESSAGE'.
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap()
        .as_nanos();
    let message = format!("ct-{}-{nanos}", std::process::id());
    build_images(&r, &mut checks);
    check_images(&r, &mut checks);
    test_podman(&r, &mut checks, &message);
    test_compose(&r, &mut checks, &message);
    checks.summary();
}

#[test]
fn in_subnet_compares_the_network_bits() {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    assert!(in_subnet(ip("10.89.0.7"), "10.89.0.0/24"));
    assert!(!in_subnet(ip("10.89.1.7"), "10.89.0.0/24"));
    assert!(in_subnet(ip("10.89.1.7"), "10.88.0.0/14"));
    assert!(in_subnet(ip("192.168.1.1"), "0.0.0.0/0"));
    assert!(!in_subnet(ip("10.0.0.1"), "10.0.0.0"));
}

#[test]
fn client_of_takes_exactly_one_line_in_the_receivers_format() {
    let line = |text: &str| vec![format!("2026-11-29 20:10:25,123 - root - INFO - {text}")];
    let good = "Message from Client:b'ct-1' Client IP Address:('10.89.0.5', 41234)";
    assert_eq!(
        client_of(&line(good), "ct-1"),
        Ok(Ipv4Addr::new(10, 89, 0, 5))
    );
    let twice = [line(good), line(good)].concat();
    assert!(client_of(&twice, "ct-1").is_err());
    assert!(client_of(&[], "ct-1").is_err());
    for bad in [
        "Message from Client:b'ct-1' Client IP Address:('10.89.0.5', 99999)",
        "Message from Client:b'ct-1' Client IP Address:('10.89.0.5',41234)",
        "Message from Client:'ct-1' Client IP Address:('10.89.0.5', 41234)",
        "Message from Client:b'ct-1' Client IP Address:10.89.0.5",
    ] {
        assert!(client_of(&line(bad), "ct-1").is_err(), "{bad}");
    }
    let warning = vec![format!("2026-11-29 20:10:25,123 - root - WARNING - {good}")];
    assert!(client_of(&warning, "ct-1").is_err());
}

/// OpenShift's docker builder builds every stage, used or not (and the
/// BuildConfigs upload a clone: no target/). `podman build
/// --skip-unused-stages=false` in a copy of what a clone holds must get
/// through the `host` stages and stop only at the `build` stage's Rust
/// image, which no registry serves here.
#[test]
#[ignore = "needs root and podman: scripts/test.sh"]
fn a_builder_that_builds_every_stage_needs_only_the_rust_image() {
    let dir = TempDir::new("every-stage");
    for file in [
        "Dockerfile",
        ".dockerignore",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
        "src",
    ] {
        let cp = run(
            Command::new("cp")
                .arg("-r")
                .arg(root().join(file))
                .arg(dir.join(file)),
            Duration::from_secs(30),
        );
        assert!(cp.ok, "{}", cp.text);
    }
    fs::write(dir.join("containers.conf"), CONTAINERS_CONF).unwrap();
    let image = format!(
        "localhost/udp-headless-test-{}/every-stage:0",
        std::process::id()
    );
    let rust_image = "localhost/udp-headless-no-such-rust-image:0";
    let built = run(
        Command::new("podman")
            .env("CONTAINERS_CONF", dir.join("containers.conf"))
            .args([
                "build",
                "--skip-unused-stages=false",
                "--pull=never",
                "--layers=false",
            ])
            .args(["--build-arg", &format!("RUST_IMAGE={rust_image}")])
            .args(["--build-arg", "IMAGE=receiver", "-t", &image, "."])
            .current_dir(&*dir),
        Duration::from_secs(300),
    );
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
    assert!(!built.ok, "built without the Rust image?\n{}", built.text);
    assert!(
        built
            .text
            .contains(&format!("{rust_image}: image not known")),
        "it failed before the build stage:\n{}",
        built.text
    );
}
