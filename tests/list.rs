//! `sender --list`: the pods a broadcast would send to, one a line, and the
//! wait the demo builds on it when a DNS cache still has the answer from
//! before a scale-out (kubeadm's CoreDNS `cache 30`, NodeLocal DNSCache).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};
use support::*;

const NAME: &str = "headless-udp.default.svc.cluster.local";
/// The cache's TTL, as kubeadm's CoreDNS (`ttl 30`, `cache 30`).
const TTL: u64 = 30;

#[test]
fn lists_what_a_broadcast_would_send_to_with_its_exit_codes() {
    let out = bin("sender")
        .args(["--list", "-s", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "127.0.0.1\n");
    assert_eq!(out.status.code(), Some(0));

    let out = bin("sender")
        .args(["--list", "-s", "127.0.0.1", "-m", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--list sends nothing"), "{err}");

    // A family the name lacks: exit 3 and the broadcast's message.
    let out = bin("sender")
        .args(["--list", "-s", "127.0.0.1", "-f", "ipv6"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no IPv6 addresses"), "{err}");
}

/// A private network and mount namespace (its own /etc/resolv.conf) in a
/// private PID namespace, so killing `unshare` ends everything in it.
struct Namespace {
    unshare: Child,
    /// The namespace's first process, as seen from here (for nsenter).
    pid: String,
    dir: TempDir,
}

impl Namespace {
    fn start(dir: TempDir, script: &str) -> Namespace {
        let setup = "set -e; ip link set lo up; \
            mount --bind \"$DIR/resolv.conf\" /etc/resolv.conf; ";
        let unshare = Command::new("unshare")
            .args(["--net", "--mount", "--pid", "--fork", "--kill-child"])
            .args(["sh", "-c", &format!("{setup}{script}")])
            .env("DIR", &*dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("unshare runs (these tests need root)");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let mut pid = String::new();
        wait_until("unshare's child", Duration::from_secs(5), || {
            pid = fs::read_to_string(&children).unwrap_or_default();
            !pid.trim().is_empty()
        });
        let pid = pid.split_whitespace().next().unwrap().to_string();
        Namespace { unshare, pid, dir }
    }

    /// `sender --list -s headless-udp` in the namespace, with its DNS
    /// configuration `resolv_conf` (a file in the test's directory).
    fn list(&self, resolv_conf: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid, "--net", "--mount", "--"])
            .args(["unshare", "--mount", "sh", "-c"])
            .arg("mount --bind \"$DIR/$CONF\" /etc/resolv.conf && exec \"$SENDER\" --list -s headless-udp")
            .env("DIR", &*self.dir)
            .env("CONF", resolv_conf)
            .env("SENDER", assert_cmd::cargo::cargo_bin("sender"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The pods listed through `resolv_conf`, None if the sender failed.
    fn pods(&self, resolv_conf: &str) -> Option<BTreeSet<String>> {
        let out = self.list(resolv_conf);
        let text = String::from_utf8(out.stdout).unwrap();
        out.status
            .success()
            .then(|| text.lines().map(String::from).collect())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn hosts(first: u8, last: u8) -> String {
    (first..=last)
        .map(|i| format!("127.0.0.{i} {NAME}\n"))
        .collect()
}

fn set(first: u8, last: u8) -> BTreeSet<String> {
    (first..=last).map(|i| format!("127.0.0.{i}")).collect()
}

/// The cluster DNS (an authoritative dnsmasq on 127.0.0.2, its records in
/// a directory it watches, TTL 30) behind a caching dnsmasq on 127.0.0.1,
/// the pods' nameserver. After a scale-out from 2 to 5 pods, `--list`
/// through the cache shows the old 2 until the cached answer expires,
/// while the server already has 5: the demo's poll (list until every ready
/// pod is there, with a deadline) is what waits that out.
#[test]
fn after_a_scale_out_a_dns_cache_keeps_the_old_list_until_its_ttl_ends() {
    let dir = TempDir::new("list-cache");
    fs::create_dir(dir.join("pods")).unwrap();
    fs::write(dir.join("pods/0-1"), hosts(1, 2)).unwrap();
    let options = "search default.svc.cluster.local svc.cluster.local cluster.local\n\
        options ndots:5 timeout:1 attempts:2\n";
    fs::write(
        dir.join("resolv.conf"),
        format!("nameserver 127.0.0.1\n{options}"),
    )
    .unwrap();
    fs::write(
        dir.join("direct.conf"),
        format!("nameserver 127.0.0.2\n{options}"),
    )
    .unwrap();
    let dnsmasq = "/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv \
        --no-hosts --bind-interfaces --port=53 --pid-file= --user=root";
    let script = format!(
        "ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true; \
         {dnsmasq} --listen-address=127.0.0.2 --local=/#/ --hostsdir=\"$DIR/pods\" \
             --local-ttl={TTL} --cache-size=0 2>\"$DIR/server.err\" & \
         {dnsmasq} --listen-address=127.0.0.1 --server=127.0.0.2 \
             2>\"$DIR/cache.err\" & \
         wait"
    );
    let ns = Namespace::start(dir, &script);

    // Both servers up: the server answers directly, then the cache
    // forwards and keeps the answer (a failed try caches nothing).
    let deadline = Duration::from_secs(10);
    wait_until("the DNS server", deadline, || {
        ns.pods("direct.conf") == Some(set(1, 2))
    });
    let mut filled = Instant::now();
    wait_until("the DNS cache", deadline, || {
        filled = Instant::now();
        ns.pods("resolv.conf") == Some(set(1, 2))
    });

    // Scale out: 3 more pods in the server's records (renamed in whole, so
    // dnsmasq never reads half a file).
    fs::write(ns.dir.join("2-4"), hosts(3, 5)).unwrap();
    fs::rename(ns.dir.join("2-4"), ns.dir.join("pods/2-4")).unwrap();
    wait_until("the server to have 5 pods", deadline, || {
        ns.pods("direct.conf") == Some(set(1, 5))
    });
    assert_eq!(ns.pods("resolv.conf"), Some(set(1, 2)), "the cached answer");

    // The demo's wait: list until every ready pod is there.
    let give_up = filled + Duration::from_secs(TTL + 15);
    let caught_up = loop {
        let pods = ns.pods("resolv.conf");
        if pods == Some(set(1, 5)) {
            break filled.elapsed();
        }
        assert_eq!(pods, Some(set(1, 2)), "only the old or the new list");
        assert!(Instant::now() < give_up, "the cache never caught up");
        sleep(Duration::from_millis(250));
    };
    // dnsmasq counts the TTL in whole seconds: allow one.
    assert!(
        caught_up >= Duration::from_secs(TTL - 1),
        "5 pods listed after {caught_up:?}, before the cached answer's {TTL} s ran out"
    );
}
