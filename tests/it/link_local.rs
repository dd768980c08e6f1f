//! A link-local IPv6 source in the receiver's log is what python3's
//! `recvfrom` gives for it (issue #8, defect 5): `('fe80::1', port, 0,
//! ifindex)`, with no `%scope` in the address. Needs a network namespace
//! with a veth pair (root, or an unprivileged user namespace).

use crate::support;

use std::time::Duration;
use support::{output_within, unshare, TempDir};

/// Runs inside the namespace: sends one datagram from fe80::1%v0 to
/// python's own socket and, from the same socket, to the receiver until it
/// has logged it; prints python's repr of the source address.
const PYTHON: &str = r#"
import socket, subprocess, sys, time
receiver, log_path = sys.argv[1], sys.argv[2]
idx = socket.if_nametoindex("v0")
reference = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
reference.bind(("::", 12001))
reference.settimeout(5)
log = open(log_path, "wb")
child = subprocess.Popen([receiver, "-p", "12000"], stdout=log, stderr=subprocess.DEVNULL)
try:
    out = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    out.bind(("fe80::1", 0, 0, idx))
    out.sendto(b"ref", ("fe80::2", 12001, 0, idx))
    _, addr = reference.recvfrom(100)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out.sendto(b"x", ("fe80::2", 12000, 0, idx))
        time.sleep(0.1)
        if open(log_path, "rb").read().count(b"\n") > 0:
            break
    print(repr(addr))
finally:
    child.terminate()
    child.wait(timeout=10)
"#;

#[test]
fn link_local_source_prints_as_python_does() {
    let dir = TempDir::new("link-local");
    let log = dir.join("log");
    let setup = "ip link set lo up && \
        ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up && \
        ip addr add fe80::1/64 dev v0 nodad && ip addr add fe80::2/64 dev v0 nodad && \
        exec timeout 30 python3 -c \"$0\" \"$1\" \"$2\"";
    let receiver = assert_cmd::cargo::cargo_bin("receiver");
    // The script's own bound is `timeout 30`.
    let out = output_within(
        unshare()
            .args(["--net", "--", "sh", "-c", setup, PYTHON])
            .arg(&receiver)
            .arg(&log),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "cannot set up a network namespace with a veth pair (needs root or \
         unprivileged user namespaces): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap();
    let python = python.trim();
    assert!(python.starts_with("('fe80::1', "), "{python}");
    let log = std::fs::read_to_string(&log).unwrap();
    let line = log.lines().next().expect("the receiver logged nothing");
    let ours = line
        .split_once(" Client IP Address:")
        .map(|(_, addr)| addr)
        .unwrap_or_default();
    assert_eq!(ours, python, "{line}");
}

/// Issue #20, item 7d: `receiver -b fe80::2%d0` listens on that link-local
/// address (the sender takes the zone form too), and a `--confirm`
/// message to it is logged and confirmed.
#[test]
fn the_receiver_binds_a_link_local_address_with_its_zone() {
    let dir = TempDir::new("link-local-bind");
    let log = dir.join("log");
    let script = r#"set -e
        ip link set lo up
        ip link add d0 type veth peer name d1
        ip link set d0 up
        ip link set d1 up
        ip addr add fe80::2/64 dev d0 nodad
        "$1" -b fe80::2%d0 -p 12000 >"$3" 2>"$3.err" &
        for _ in $(seq 100); do "$1" --check -p 12000 2>/dev/null && break; sleep 0.1; done
        "$2" -s fe80::2%d0 -p 12000 -m zoned --confirm >/dev/null
        kill $! && wait $! || true"#;
    let out = output_within(
        unshare()
            .args(["--net", "--", "sh", "-c", script, "sh"])
            .arg(assert_cmd::cargo::cargo_bin("receiver"))
            .arg(assert_cmd::cargo::cargo_bin("sender"))
            .arg(&log),
        Duration::from_secs(60),
    );
    let err = std::fs::read_to_string(dir.join("log.err")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\nreceiver: {err}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("Message from Client:b'zoned' Client IP Address:('fe80::2', "),
        "{log}"
    );
    assert!(err.contains("listening on UDP [fe80::2%"), "{err}");
}
