//! The walkthrough on a simulated cluster (tests/it/support): receiver pods
//! behind a headless Service served by a real DNS server (dnsmasq), a
//! sender-app pod, the real binaries. Every delivery is checked: each pod
//! logs each message exactly once, from sender-app's address.
//! The large sizes are `#[ignore]`d; scripts/test.sh runs them explicitly
//! (`cargo test --test it cluster:: -- --ignored`).

use crate::support;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;
use udp_headless::dns::wire::{RecordType, RCODE_NOERROR, RCODE_NXDOMAIN};

/// A cluster with DNS (TTL 5 s, as the cluster DNS) and a sender-app pod.
fn cluster(test: &str) -> (Cluster, Pod) {
    let mut cluster = Cluster::new(test);
    cluster.start_dns(5);
    let sender = cluster.add_pod("sender-app", &[sender_ip()]);
    (cluster, sender)
}

/// `sender -s headless-udp -m MESSAGE` in sender-app: (exit code, stdout, stderr).
fn send(cluster: &Cluster, sender: &Pod, binary: &Path, message: &str) -> (i32, String, String) {
    let out = output_within(
        cluster
            .command(sender, binary)
            .args(["-s", SERVICE, "-m", message]),
        Duration::from_secs(60),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn all_ips(receivers: &[ReceiverPod]) -> Vec<IpAddr> {
    receivers.iter().flat_map(|r| r.pod.ips.clone()).collect()
}

#[test]
fn scale_2_to_5_every_receiver_logs_each_message_once_from_sender_app() {
    let (mut cluster, sender) = cluster("scale");
    let mut receivers: Vec<ReceiverPod> = (0..2).map(|i| cluster.receiver_pod(i)).collect();
    cluster.wait_dns(2);
    let (code, stdout, stderr) = send(&cluster, &sender, &bin_path("sender"), "test");
    assert_eq!(code, 0, "{stderr}");
    check_sender_log(&stdout, &all_ips(&receivers)).unwrap();
    wait_delivery(&receivers, b"test", sender_ip());
    check_delivery(&receivers, b"test", sender_ip()).unwrap();

    receivers.extend((2..5).map(|i| cluster.receiver_pod(i)));
    cluster.wait_dns(5);
    let (code, stdout, stderr) = send(&cluster, &sender, &bin_path("sender"), "test-after-scale");
    assert_eq!(code, 0, "{stderr}");
    check_sender_log(&stdout, &all_ips(&receivers)).unwrap();
    wait_delivery(&receivers, b"test-after-scale", sender_ip());
    check_delivery(&receivers, b"test-after-scale", sender_ip()).unwrap();
    for (i, r) in receivers.iter().enumerate() {
        check_received(r, b"test", sender_ip(), usize::from(i < 2)).unwrap();
    }

    // Scale down: the pods out of DNS get nothing more.
    for r in &receivers[3..] {
        cluster.unpublish(&r.pod);
    }
    cluster.wait_dns(3);
    let (code, stdout, stderr) = send(&cluster, &sender, &bin_path("sender"), "after-scale-down");
    assert_eq!(code, 0, "{stderr}");
    check_sender_log(&stdout, &all_ips(&receivers[..3])).unwrap();
    wait_delivery(&receivers[..3], b"after-scale-down", sender_ip());
    check_delivery(&receivers[..3], b"after-scale-down", sender_ip()).unwrap();
    for r in &receivers[3..] {
        check_received(r, b"after-scale-down", sender_ip(), 0).unwrap();
    }
}

/// One broadcast by `binary` to `n` receivers, every delivery checked; and
/// the cluster DNS's answer checked first (whole over TCP, TTL 5, UDP
/// truncated past 28 records, as glibc and musl see it).
fn broadcast_to(n: usize, binary: &Path, label: &str) {
    let (mut cluster, sender) = cluster(&format!("{label}-{n}"));
    let receivers = cluster.receivers(n);
    let mut want = all_ips(&receivers);
    want.sort();

    let tcp = cluster
        .dns_query(SERVICE_FQDN, RecordType::A, true)
        .unwrap();
    let mut got = addresses(&tcp);
    got.sort();
    assert_eq!((tcp.rcode, tcp.truncated), (RCODE_NOERROR, false));
    assert_eq!(got, want, "the TCP answer has every published pod");
    assert!(tcp.records.iter().all(|r| r.ttl == 5), "TTL 5");
    let udp = cluster
        .dns_query(SERVICE_FQDN, RecordType::A, false)
        .unwrap();
    assert_eq!(
        udp.truncated,
        n > 28,
        "UDP answer truncated past 28 records"
    );

    let message = format!("{label}-{n}");
    let started = Instant::now();
    let (code, stdout, stderr) = send(&cluster, &sender, binary, &message);
    let sent = started.elapsed();
    assert_eq!(code, 0, "{stderr}");
    check_sender_log(&stdout, &want).unwrap();
    wait_delivery(&receivers, message.as_bytes(), sender_ip());
    check_delivery(&receivers, message.as_bytes(), sender_ip()).unwrap();
    println!(
        "{label} N={n}: broadcast {sent:?}, all checked {:?}",
        started.elapsed()
    );
}

#[test]
fn glibc_sender_reaches_49_pods() {
    broadcast_to(49, &bin_path("sender"), "glibc");
}

/// musl's resolver returns at most 48 addresses: the 49th is the test.
#[test]
fn musl_sender_reaches_49_pods() {
    broadcast_to(49, &musl_sender(), "musl");
}

#[test]
#[ignore = "slow: scripts/test.sh runs it"]
fn glibc_sender_reaches_1000_pods() {
    broadcast_to(1000, &bin_path("sender"), "glibc");
}

#[test]
#[ignore = "slow: scripts/test.sh runs it"]
fn musl_sender_reaches_1000_pods() {
    broadcast_to(1000, &musl_sender(), "musl");
}

#[test]
#[ignore = "slow: scripts/test.sh runs it"]
fn glibc_sender_reaches_4000_pods() {
    broadcast_to(4000, &bin_path("sender"), "glibc");
}

#[test]
#[ignore = "slow: scripts/test.sh runs it"]
fn musl_sender_reaches_4000_pods() {
    broadcast_to(4000, &musl_sender(), "musl");
}

/// The cluster DNS behaves as Kubernetes' does: NXDOMAIN for a Service
/// without ready pods (CoreDNS and kube-dns), NODATA for AAAA of an IPv4
/// Service, NXDOMAIN for unknown cluster names, REFUSED outside (no
/// upstream), and publishing/unpublishing shows within the wait.
#[test]
fn the_cluster_dns_answers_as_kubernetes_does() {
    let (mut cluster, _sender) = cluster("dns-behaviour");
    let query = |c: &Cluster, name: &str, qtype| {
        let reply = c.dns_query(name, qtype, false).unwrap();
        (reply.rcode, addresses(&reply).len())
    };
    assert_eq!(
        query(&cluster, SERVICE_FQDN, RecordType::A),
        (RCODE_NXDOMAIN, 0)
    );
    let pod = cluster.receiver_pod(0);
    cluster.wait_dns(1);
    assert_eq!(
        query(&cluster, SERVICE_FQDN, RecordType::A),
        (RCODE_NOERROR, 1)
    );
    assert_eq!(
        query(&cluster, SERVICE_FQDN, RecordType::Aaaa),
        (RCODE_NOERROR, 0)
    );
    let pod_name = format!("{STATEFULSET}-0.{SERVICE_FQDN}");
    assert_eq!(
        query(&cluster, &pod_name, RecordType::A),
        (RCODE_NOERROR, 1)
    );
    let unknown = "nothere.default.svc.cluster.local";
    assert_eq!(query(&cluster, unknown, RecordType::A), (RCODE_NXDOMAIN, 0));
    assert_eq!(
        query(&cluster, "example.com", RecordType::A),
        (5, 0),
        "REFUSED"
    );
    cluster.set_ttl(30);
    let reply = cluster
        .dns_query(SERVICE_FQDN, RecordType::A, false)
        .unwrap();
    assert!(reply.records.iter().all(|r| r.ttl == 30), "{reply:?}");
    cluster.unpublish(&pod.pod);
    cluster.wait_dns(0);
}

/// Dual-stack pods (an A and an AAAA record each): `--family ipv6` sends
/// to each pod once, over IPv6, and the receiver logs the IPv6 source as
/// python3 would.
#[test]
fn dual_stack_pods_get_one_datagram_over_the_chosen_family() {
    let v6 = support::ipv6;
    let mut cluster = Cluster::new("dual-stack");
    cluster.start_dns(5);
    let sender = cluster.add_pod("sender-app", &[sender_ip(), v6(0x20)]);
    let receivers: Vec<ReceiverPod> = (0..3).map(|i| cluster.dual_stack_receiver_pod(i)).collect();
    cluster.wait_dns(3);
    let out = output_within(
        cluster
            .command(&sender, bin_path("sender"))
            .args(["-s", SERVICE, "-m", "six", "--family", "ipv6"]),
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<IpAddr> = (0..3).map(|i| v6(0x100 + i)).collect();
    check_sender_log(&String::from_utf8(out.stdout).unwrap(), &want).unwrap();
    for r in &receivers {
        wait_until(
            "the IPv6 datagram",
            std::time::Duration::from_secs(10),
            || r.count(b"six", v6(0x20)) > 0,
        );
    }
    for r in &receivers {
        check_received(r, b"six", v6(0x20), 1).unwrap();
        check_received(r, b"six", sender_ip(), 0).unwrap();
    }
}

/// A sender's failures to resolve, each exit 3 with one ERROR line naming it.
fn resolve_failure(cluster: &Cluster, sender: &Pod, want: &str) {
    for binary in [bin_path("sender"), musl_sender()] {
        let (code, stdout, stderr) = send(cluster, sender, &binary, "x");
        assert_eq!(code, 3, "{}: {stderr}", binary.display());
        assert_eq!(stdout, "");
        let line = stderr.lines().last().unwrap_or_default();
        let (level, message) = parse_log_line(line).unwrap_or_else(|| panic!("{stderr}"));
        assert_eq!(level, "ERROR");
        assert!(message.contains(want), "{}: {message}", binary.display());
    }
}

#[test]
fn a_service_without_ready_pods_is_nxdomain_and_exit_3() {
    let (cluster, sender) = cluster("nxdomain");
    resolve_failure(&cluster, &sender, "was not found: no such name in DNS");
}

#[test]
fn a_service_name_with_no_address_records_is_no_ready_pods() {
    let mut cluster = Cluster::new("nodata");
    let txt = format!("--txt-record={SERVICE_FQDN},no pods");
    cluster.start_dns_with(5, &[&txt]);
    let sender = cluster.add_pod("sender-app", &[sender_ip()]);
    resolve_failure(&cluster, &sender, "has no ready pods");
}

#[test]
fn a_dns_server_that_is_down_is_no_answer_from_dns() {
    let (mut cluster, sender) = cluster("dns-down");
    cluster.receiver_pod(0);
    cluster.wait_dns(1);
    cluster.stop_dns();
    cluster.set_resolv_conf(&RESOLV_CONF.replace("ndots:5", "ndots:5 timeout:1 attempts:1"));
    resolve_failure(&cluster, &sender, "no answer from DNS");
}

/// The checks above must be able to fail: a pod in DNS whose receiver is
/// gone (a miss), a second broadcast (a duplicate), another source, a
/// sender log that misses a pod or names one twice.
#[test]
fn the_checks_catch_a_missed_pod_a_duplicate_and_a_wrong_source() {
    let (mut cluster, sender) = cluster("self-check");
    let mut receivers = cluster.receivers(3);
    receivers[2].process.stop();
    let (_, first, _) = send(&cluster, &sender, &bin_path("sender"), "once");
    send(&cluster, &sender, &bin_path("sender"), "twice");
    send(&cluster, &sender, &bin_path("sender"), "twice");
    wait_delivery(&receivers[..2], b"twice", sender_ip());
    let pod0 = &receivers[0];

    check_received(pod0, b"once", sender_ip(), 1).expect("a good delivery");
    check_delivery(&receivers[..2], b"once", sender_ip()).expect("good deliveries");
    check_delivery(&receivers, b"once", sender_ip()).expect_err("a missed pod passed");
    check_received(pod0, b"twice", sender_ip(), 1).expect_err("a duplicate passed");
    let elsewhere: IpAddr = "10.244.0.99".parse().unwrap();
    check_received(pod0, b"once", elsewhere, 1).expect_err("a wrong source passed");
    check_received(pod0, b"onc", sender_ip(), 1).expect_err("a prefix of the message passed");

    let ips = all_ips(&receivers);
    check_sender_log(&first, &ips).expect("a good sender log");
    let mut one_more = ips.clone();
    one_more.push("10.244.1.250".parse().unwrap());
    check_sender_log(&first, &one_more).expect_err("a sender log missing a pod passed");
    check_sender_log(&format!("{first}{first}"), &ips).expect_err("a doubled sender log passed");
    check_sender_log(&format!("{first}garbage\n"), &ips).expect_err("a malformed line passed");
}
