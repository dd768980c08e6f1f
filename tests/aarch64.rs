//! The arm64 build (the Dockerfile's TARGETARCH=arm64): the binaries for
//! aarch64-unknown-linux-musl, linked by rust-lld, run under
//! qemu-aarch64-static and deliver one message end to end on loopback.
//! Ignored by default (it builds a second target and needs qemu-user-static
//! and the rustup target); scripts/test.sh runs it with --ignored.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

#[test]
#[ignore = "builds for aarch64 and runs it under qemu-aarch64-static: scripts/test.sh"]
fn aarch64_sender_and_receiver_deliver_a_message_under_qemu() {
    let bins = build();
    let (sender, receiver) = (bins.join("sender"), bins.join("receiver"));
    for binary in [&sender, &receiver] {
        assert_eq!(machine(binary), EM_AARCH64, "{}", binary.display());
    }

    let dir = TempDir::new("aarch64");
    let port = free_port().to_string();
    let log = dir.join("receiver.log");
    let mut child = qemu(&receiver)
        .args(["--port", &port])
        .stdout(fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{QEMU} runs (apt install qemu-user-static): {e}"));
    let check = || {
        qemu(&receiver)
            .args(["--check", "--port", &port])
            .output()
            .unwrap()
            .status
            .success()
    };
    wait_until("the aarch64 receiver", Duration::from_secs(10), check);

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
    let _ = child.kill();
    let _ = child.wait();
    let got = info_messages(&text());
    assert_eq!(got.len(), 1, "{got:?}");
    let from = got[0]
        .strip_prefix(&received("b'from-aarch64'", "('127.0.0.1', "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected line: {}", got[0]));
    assert!(from.parse::<u16>().is_ok(), "{}", got[0]);
}
