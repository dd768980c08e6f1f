//! The arm64 build (the Dockerfile's TARGETARCH=arm64): the binaries for
//! aarch64-unknown-linux-musl, linked by rust-lld, run under
//! qemu-aarch64-static and deliver one message end to end on loopback,
//! plain and with `--confirm` (the pktinfo constants and cmsg layout of
//! src/os/sys.rs, per architecture, carry the receiver's acknowledgements).
//! Ignored by default (it builds a second target and needs qemu-user-static
//! and the rustup target); scripts/test.sh runs it with --ignored.

use crate::support;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const TARGET: &str = "aarch64-unknown-linux-musl";
const QEMU: &str = "qemu-aarch64-static";
/// ELF e_machine of AArch64.
const EM_AARCH64: u16 = 183;

/// Builds both binaries for aarch64 into a target directory of their own
/// (the one `cargo test` holds is locked); their directory.
fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target/qemu-aarch64");
    let mut cargo = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--bins", "--target", TARGET])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld")
        .spawn()
        .expect("cargo runs");
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = cargo.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = cargo.kill();
            panic!("cargo build --target {TARGET} took more than 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "cargo build --target {TARGET} (rustup target add {TARGET})"
    );
    target_dir.join(TARGET).join("debug")
}

fn machine(binary: &Path) -> u16 {
    let elf = fs::read(binary).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{}", binary.display());
    u16::from_le_bytes([elf[18], elf[19]])
}

fn qemu(binary: &Path) -> Command {
    let mut command = Command::new(QEMU);
    command.arg(binary).stdin(Stdio::null());
    command
}

/// A process killed when dropped (also when the test panics).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The aarch64 receiver on a free port, once its readiness check passes
/// (itself under qemu): its directory (receiver.log), port and process.
fn start_receiver(receiver: &Path, test: &str) -> (TempDir, String, Running) {
    let dir = TempDir::new(test);
    let port = free_port().to_string();
    let child = Running(
        qemu(receiver)
            .args(["--port", &port])
            .stdout(fs::File::create(dir.join("receiver.log")).unwrap())
            .stderr(fs::File::create(dir.join("receiver.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{QEMU} runs (apt install qemu-user-static): {e}")),
    );
    let check = || {
        output_within(
            qemu(receiver).args(["--check", "--port", &port]),
            Duration::from_secs(20),
        )
        .status
        .success()
    };
    wait_until("the aarch64 receiver", Duration::from_secs(10), check);
    (dir, port, child)
}

#[test]
#[ignore = "builds for aarch64 and runs it under qemu-aarch64-static: scripts/test.sh"]
fn aarch64_sender_and_receiver_deliver_a_message_under_qemu() {
    let bins = build();
    let (sender, receiver) = (bins.join("sender"), bins.join("receiver"));
    for binary in [&sender, &receiver] {
        assert_eq!(machine(binary), EM_AARCH64, "{}", binary.display());
    }

    let (dir, port, child) = start_receiver(&receiver, "aarch64");
    let log = dir.join("receiver.log");
    let mut sender = qemu(&sender)
        .args(["-s", "127.0.0.1", "-p", &port, "-m", "from-aarch64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_exit(&mut sender, "the aarch64 sender");
    let out = sender.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = info_messages(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(sent, ["sent message to :127.0.0.1"]);

    let text = || fs::read_to_string(&log).unwrap();
    wait_until("the message in the log", Duration::from_secs(10), || {
        !text().is_empty()
    });
    drop(child);
    let got = info_messages(&text());
    assert_eq!(got.len(), 1, "{got:?}");
    let from = got[0]
        .strip_prefix(&received("b'from-aarch64'", "('127.0.0.1', "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected line: {}", got[0]));
    assert!(from.parse::<u16>().is_ok(), "{}", got[0]);
}

#[test]
#[ignore = "builds for aarch64 and runs it under qemu-aarch64-static: scripts/test.sh"]
fn aarch64_sender_confirm_is_acknowledged_by_an_aarch64_receiver_under_qemu() {
    let bins = build();
    let (sender, receiver) = (bins.join("sender"), bins.join("receiver"));
    let (dir, port, child) = start_receiver(&receiver, "aarch64-confirm");
    let log = dir.join("receiver.log");
    let text = || fs::read_to_string(&log).unwrap();
    // The receiver answers from the address the datagram came to (IP_PKTINFO
    // for IPv4, IPV6_RECVPKTINFO for IPv6); the sender takes only an
    // acknowledgement from the address it sent to.
    for (n, ip) in ["127.0.0.1", "::1"].into_iter().enumerate() {
        let message = format!("confirm-{n}");
        let out = output_within(
            qemu(&sender).args(["-s", ip, "-p", &port, "--confirm", "-m", &message]),
            Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{ip}: {stderr}");
        let sent = info_messages(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(sent, [format!("sent message to :{ip}")], "{ip}");
        let confirmed: Vec<&str> = stderr
            .lines()
            .map(|line| parse_log_line(line).unwrap_or_else(|| panic!("{line:?}")).1)
            .collect();
        assert_eq!(confirmed, ["confirmed by 1 of 1 pods"], "{ip}");

        wait_until(
            &format!("the message from {ip} in the log"),
            Duration::from_secs(10),
            || text().lines().count() > n,
        );
        let got = info_messages(&text());
        assert_eq!(got.len(), n + 1, "{ip}: {got:?}");
        // The whole line, rebuilt for the port it names (IPv6 adds
        // flowinfo and scope id, as Python's address tuple does).
        let prefix = received(&format!("b'{message}'"), &format!("('{ip}', "));
        let port: u16 = got[n]
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split([',', ')']).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line: {}", got[n]));
        let from = SocketAddr::new(ip.parse().unwrap(), port);
        assert_eq!(got[n], received_message(message.as_bytes(), from));
    }
    // A retry would come right behind: still one line per message.
    std::thread::sleep(Duration::from_millis(200));
    drop(child);
    assert_eq!(info_messages(&text()).len(), 2, "{}", text());
}
