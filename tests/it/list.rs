//! `sender --list`: the pods a broadcast would send to, one a line, and the
//! wait the demo builds on it when a DNS cache still has the answer from
//! before a scale-out (kubeadm's CoreDNS `cache 30`, NodeLocal DNSCache).

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};
use support::*;

/// The records' TTL. kubeadm's CoreDNS has 30 (`ttl 30`, `cache 30`); a
/// third of it tests the same and keeps `cargo test` 20 s shorter, while
/// leaving the scale-out below seconds to finish inside the cached window.
const TTL: u32 = 10;
/// The caching DNS server's pod.
const CACHE_IP: &str = "10.244.0.11";

#[test]
fn lists_what_a_broadcast_would_send_to_with_its_exit_codes() {
    let out = output_within(bin("sender").args(["--list", "-s", "127.0.0.1"]), RUN_LIMIT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "127.0.0.1\n");
    assert_eq!(out.status.code(), Some(0));

    let out = output_within(
        bin("sender").args(["--list", "-s", "127.0.0.1", "-m", "x"]),
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--list sends nothing"), "{err}");

    // A family the name lacks: exit 3 and the broadcast's message.
    let out = output_within(
        bin("sender").args(["--list", "-s", "127.0.0.1", "-f", "ipv6"]),
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no IPv6 addresses"), "{err}");
}

/// `sender --list -s headless-udp` in `pod`: the pods listed, None if it
/// failed.
fn list(c: &Cluster, pod: &Pod) -> Option<BTreeSet<String>> {
    let out = output_within(
        c.command(pod, bin_path("sender"))
            .args(["--list", "-s", SERVICE]),
        RUN_LIMIT,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    out.status
        .success()
        .then(|| text.lines().map(String::from).collect())
}

/// The simulated cluster's DNS (records with a TTL, as kubeadm's CoreDNS
/// `ttl 30`) with a caching dnsmasq in front (as CoreDNS `cache 30` or
/// NodeLocal DNSCache), the pods' nameserver. After a scale-out from 2 to 5 pods the
/// server has 5 at once, but `--list` through the cache shows the old 2
/// until the cached answer expires: the demo's poll (list until every ready
/// pod is there, with a deadline) is what waits that out.
#[test]
fn after_a_scale_out_a_dns_cache_keeps_the_old_list_until_its_ttl_ends() {
    let mut c = Cluster::new("list-cache");
    c.start_dns(TTL);
    let cache = c.add_pod("dns-cache", &[CACHE_IP.parse().unwrap()]);
    let dnsmasq = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("dnsmasq not found: run scripts/install-deps.sh");
    let mut cmd = c.command(&cache, dnsmasq);
    // Forwards everything to the cluster DNS and keeps answers their TTL.
    cmd.args(["--no-daemon", "--conf-file=/dev/null", "--pid-file="])
        .args(["--no-resolv", "--no-hosts", "--bind-interfaces"])
        .arg(format!("--listen-address={CACHE_IP}"))
        .arg(format!("--server={DNS_IP}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _cache_dns = c.spawn(&mut cmd, "dnsmasq");
    c.set_resolv_conf(&RESOLV_CONF.replace(DNS_IP, CACHE_IP));
    let sender = c.add_pod("sender-app", &[sender_ip()]);
    let receivers = c.receivers(2);
    let ips = |n: usize| -> BTreeSet<String> { (0..n).map(|i| pod_ip(i).to_string()).collect() };
    // The first answer through the cache (a failed try caches nothing).
    let mut filled = Instant::now();
    wait_until("the DNS cache", Duration::from_secs(10), || {
        filled = Instant::now();
        list(&c, &sender) == Some(ips(2))
    });

    // Scale out: 3 more ready pods, published; the server serves all 5.
    let more: Vec<_> = (2..5).map(|i| c.receiver_pod(i)).collect();
    c.wait_dns(5);
    assert_eq!(list(&c, &sender), Some(ips(2)), "the cached answer");

    // The demo's wait: list until every ready pod is there.
    let give_up = filled + Duration::from_secs(u64::from(TTL) + 15);
    let caught_up = loop {
        let pods = list(&c, &sender);
        if pods == Some(ips(5)) {
            break filled.elapsed();
        }
        assert_eq!(pods, Some(ips(2)), "only the old or the new list");
        assert!(Instant::now() < give_up, "the cache never caught up");
        sleep(Duration::from_millis(250));
    };
    // dnsmasq counts the TTL in whole seconds: allow one.
    assert!(
        caught_up >= Duration::from_secs(u64::from(TTL) - 1),
        "5 pods listed after {caught_up:?}, before the cached answer's {TTL} s ran out"
    );
    drop((receivers, more));
}
