//! The walkthrough on a simulated cluster (tests/support): receiver pods
//! behind a headless Service served by a real DNS server (dnsmasq), a
//! sender-app pod, the real binaries. Every delivery is checked: each pod
//! logs each message exactly once, from sender-app's address.
//! The large sizes are `#[ignore]`d; scripts/test.sh runs them explicitly
//! (`cargo test --test cluster -- --ignored`).

mod support;

use std::net::IpAddr;
use std::path::Path;
use support::*;

/// A cluster with DNS (TTL 5 s, as the cluster DNS) and a sender-app pod.
fn cluster(test: &str) -> (Cluster, Pod) {
    let mut cluster = Cluster::new(test);
    cluster.start_dns(5);
    let sender = cluster.add_pod("sender-app", &[sender_ip()]);
    (cluster, sender)
}

/// `sender -s headless-udp -m MESSAGE` in sender-app: (exit code, stdout, stderr).
fn send(cluster: &Cluster, sender: &Pod, binary: &Path, message: &str) -> (i32, String, String) {
    let out = cluster
        .command(sender, binary)
        .args(["-s", SERVICE, "-m", message])
        .output()
        .unwrap();
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
