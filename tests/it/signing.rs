//! Signed datagrams (`--key-file`) with the real binaries: what a receiver
//! with a key refuses (forged, wrong key, cut short, unknown key id,
//! replayed, too old, too far ahead, unsigned), each counted and warned
//! about at most once per reason; replays after a restart; the sender in
//! every mode; forged acknowledgements; a key rotation in three steps
//! during a stream; the relay end to end; loss both ways with --confirm
//! in a simulated cluster; a flood of bad frames. Bad frames are made
//! here with the library, as an attacker holding the format would.

use crate::support;

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, SystemTime};
use support::*;
use udp_headless::frame::{self, Frame, Id};
use udp_headless::keyring::Keyring;
use udp_headless::signed::{self, Reject, Sealer};

/// Three keys, as `head -c 32 /dev/urandom | base64` would print them.
const KEY_A: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const KEY_B: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_C: &str = "/////////////////////////////////////////w8=";

fn keys(text: &str) -> Keyring {
    Keyring::parse(text, "test").unwrap()
}

/// A key file in `dir` holding `text`.
fn key_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("keys");
    fs::write(&path, format!("{text}\n")).unwrap();
    path
}

/// A receiver with key A and `--metrics`; the directory holds its key
/// file, whose path comes second.
fn keyed_receiver_with_metrics(name: &str) -> (TempDir, PathBuf, Receiver) {
    let dir = TempDir::new(name);
    let path = key_file(&dir, KEY_A);
    let args = [
        "--key-file",
        path.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ];
    let receiver = Receiver::start(name, &args);
    (dir, path, receiver)
}

fn id(seq: u64) -> Id {
    Id {
        sender: 0x5eed_0000_0000_0001,
        seq,
    }
}

/// A DATA frame with `message`, signed with the first key of `keys` as
/// sent at `at` by `sealer`.
fn signed_data(
    sealer: &mut Sealer,
    keys: &Keyring,
    at: SystemTime,
    seq: u64,
    msg: &[u8],
) -> Vec<u8> {
    let mut d = frame::data(id(seq), msg);
    sealer.seal(keys.signing(), at, &mut d);
    d
}

/// A MESSAGE frame (what a sender with a key sends without --confirm),
/// signed as `signed_data`.
fn signed_message(sealer: &mut Sealer, keys: &Keyring, seq: u64, msg: &[u8]) -> Vec<u8> {
    let mut d = frame::message(id(seq), msg);
    sealer.seal(keys.signing(), SystemTime::now(), &mut d);
    d
}

fn rejected(metrics: &str, reason: Reject) -> u64 {
    sample(
        metrics,
        &format!(
            "udp_headless_signed_rejected_total{{reason=\"{}\"}}",
            reason.name()
        ),
    )
}

/// The WARNING messages of a stderr file.
fn warnings(stderr: &Path) -> Vec<String> {
    fs::read_to_string(stderr)
        .unwrap()
        .lines()
        .filter_map(|l| match parse_log_line(l) {
            Some(("WARNING", m)) => Some(m.to_string()),
            _ => None,
        })
        .collect()
}

fn client() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    sock
}

/// The datagram `sock` receives within its timeout, if any.
fn reply(sock: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// Each kind of bad frame is neither logged nor acknowledged, and is
/// counted under its reason; a good one between them is logged once and
/// acknowledged with a signed ACK.
#[test]
fn each_kind_of_bad_frame_is_refused_counted_and_warned_about() {
    let (_dir, _, receiver) = keyed_receiver_with_metrics("signing-reasons");
    let to = ("127.0.0.1", receiver.port);
    let sock = client();
    let a = keys(KEY_A);
    let b = keys(KEY_B);
    let now = SystemTime::now();
    let mut sealer = Sealer::new(0x5eed_0000_0000_0001);

    // The control: signed right, logged, acknowledged with a signed ACK.
    let good = signed_data(&mut sealer, &a, now, 1, b"good");
    sock.send_to(&good, to).unwrap();
    let ack = reply(&sock).expect("an acknowledgement");
    assert_eq!(ack.len(), signed::MIN_LEN);
    let opened = signed::open(&ack, &a).expect("a signed ACK");
    assert_eq!(opened.frame, Frame::Ack(id(1)));

    // A MESSAGE frame: logged, never acknowledged (nobody waits for it).
    let message = signed_message(&mut sealer, &a, 10, b"no ack");
    sock.send_to(&message, to).unwrap();
    assert_eq!(reply(&sock), None, "a MESSAGE frame is not acknowledged");

    let mut forged = signed_data(&mut sealer, &a, now, 2, b"forged");
    let last = forged.len() - 1;
    forged[last] ^= 1;
    // Signed with key B, but naming key A: a forger guessing the id.
    let mut wrong_key = signed_data(&mut sealer, &b, now, 3, b"wrong key");
    wrong_key[5..9].copy_from_slice(&a.signing().id.0);
    let unknown = signed_data(&mut sealer, &b, now, 4, b"unknown key id");
    let whole = signed_data(&mut sealer, &a, now, 5, b"truncated");
    let truncated = whole[..whole.len() - 1].to_vec();
    let header_only = whole[..signed::HEADER_LEN + 3].to_vec();
    let old = now - Duration::from_secs(120);
    let stale = signed_data(&mut sealer, &a, old, 6, b"too old");
    let ahead = now + Duration::from_secs(120);
    let future = signed_data(&mut sealer, &a, ahead, 7, b"too far ahead");
    let cases: Vec<(&str, Vec<u8>, Reject)> = vec![
        ("plain", b"plain".to_vec(), Reject::Unsigned),
        (
            "unsigned frame",
            frame::data(id(8), b"v1"),
            Reject::Unsigned,
        ),
        ("forged tag", forged, Reject::BadTag),
        ("wrong key", wrong_key, Reject::BadTag),
        ("truncated", truncated, Reject::BadTag),
        ("header only", header_only, Reject::Malformed),
        ("unknown key id", unknown, Reject::UnknownKey),
        (
            "unsigned message frame",
            frame::message(id(11), b"v1"),
            Reject::Unsigned,
        ),
        ("replay at once", good.clone(), Reject::Replay),
        ("replayed message", message, Reject::Replay),
        ("too old", stale, Reject::Stale),
        ("too far ahead", future, Reject::Future),
    ];
    for (what, datagram, _) in &cases {
        sock.send_to(datagram, to).unwrap();
        assert_eq!(reply(&sock), None, "{what}: no acknowledgement");
    }
    let after = signed_data(&mut sealer, &a, SystemTime::now(), 9, b"after");
    sock.send_to(&after, to).unwrap();
    assert!(reply(&sock).is_some(), "the good one after");

    let lines = receiver.wait_lines(3);
    let local = sock.local_addr().unwrap();
    assert_eq!(
        info_messages(&receiver.log_text()),
        [
            received_message(b"good", local),
            received_message(b"no ack", local),
            received_message(b"after", local)
        ]
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    let metrics = scrape(metrics_addr(&receiver.stderr));
    for reason in Reject::ALL {
        let want = cases.iter().filter(|(_, _, r)| *r == reason).count() as u64;
        assert_eq!(rejected(&metrics, reason), want, "{}", reason.name());
    }
    assert_eq!(sample(&metrics, "udp_headless_acks_sent_total"), 2);
    // One warning per reason seen (within 10 s), naming the source.
    let warned = warnings(&receiver.stderr);
    let reasons_seen = Reject::ALL
        .iter()
        .filter(|r| cases.iter().any(|(_, _, c)| c == *r))
        .count();
    assert_eq!(warned.len(), reasons_seen, "{warned:?}");
    for w in &warned {
        assert!(w.contains(&format!(" from {local} ")), "{w}");
    }
    assert_promtool_clean(&metrics);
}

/// A frame captured before a receiver restarts is refused by the new one
/// (it was sent before it started); a fresh one is logged.
#[test]
fn a_captured_frame_is_refused_after_a_restart() {
    let dir = TempDir::new("signing-restart");
    let path = key_file(&dir, KEY_A);
    let args = ["--key-file", path.to_str().unwrap()];
    let a = keys(KEY_A);
    let mut sealer = Sealer::new(7);
    let sock = client();
    let first = Receiver::start("signing-restart-1", &args);
    // Sent after the first receiver started: it accepts it.
    let captured = signed_data(&mut sealer, &a, SystemTime::now(), 1, b"once");
    let port = {
        sock.send_to(&captured, ("127.0.0.1", first.port)).unwrap();
        assert!(reply(&sock).is_some());
        first.wait_lines(1);
        let port = first.port;
        drop(first);
        port
    };
    let second = Receiver::start_on("signing-restart-2", port, &args);
    sock.send_to(&captured, ("127.0.0.1", port)).unwrap();
    assert_eq!(reply(&sock), None, "a replay is not acknowledged");
    let fresh = signed_data(&mut sealer, &a, SystemTime::now(), 2, b"fresh");
    sock.send_to(&fresh, ("127.0.0.1", port)).unwrap();
    assert!(reply(&sock).is_some());
    second.wait_lines(1);
    let local = sock.local_addr().unwrap();
    assert_eq!(
        info_messages(&second.log_text()),
        [received_message(b"fresh", local)]
    );
    let warned = warnings(&second.stderr);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("replay"), "{warned:?}");
}

fn sender(args: &[&str], input: &[u8]) -> Output {
    output_fed(bin("sender").args(args), input, RUN_LIMIT)
}

/// With a key the sender signs in every mode, with and without --confirm;
/// a sender without it is refused by a receiver with one; and --max-age
/// without a key, or a key file that is no key file, are usage errors.
#[test]
fn the_sender_signs_in_every_mode() {
    let (dir, path, receiver) = keyed_receiver_with_metrics("signing-sender");
    let key = path.to_str().unwrap();
    let port = receiver.port.to_string();
    let base = ["-s", "127.0.0.1", "-p", &port, "--key-file", key];
    let runs: Vec<(Vec<&str>, &[u8])> = vec![
        (vec!["-m", "one"], b""),
        (vec!["-m", "repeated", "-r", "2", "-i", "10ms"], b""),
        (vec![], b"line 1\nline 2\n"),
        (vec!["--confirm", "-m", "confirmed"], b""),
        (vec!["--confirm"], b"confirmed line\n"),
    ];
    for (args, input) in &runs {
        let out = sender(&[&base[..], args].concat(), input);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    }
    // Without --confirm: one signed MESSAGE frame per pod (nothing to
    // acknowledge), with a new counter for each datagram.
    let pod = client();
    let pod_port = pod.local_addr().unwrap().port().to_string();
    let plain = ["-s", "127.0.0.1", "-p", &pod_port, "-m", "m", "-r", "2"];
    let out = sender(&plain, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        [reply(&pod), reply(&pod)],
        [Some(b"m".to_vec()), Some(b"m".to_vec())]
    );
    let out = sender(
        &[
            "-s",
            "127.0.0.1",
            "-p",
            &pod_port,
            "-m",
            "m",
            "-r",
            "2",
            "--key-file",
            key,
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let a = keys(KEY_A);
    let mut counters = Vec::new();
    while let Some(datagram) = reply(&pod) {
        let opened = signed::open(&datagram, &a).expect("signed");
        let Frame::Message { message, .. } = opened.frame else {
            panic!("not a MESSAGE frame: {opened:?}");
        };
        assert_eq!(message, b"m");
        counters.push(opened.counter);
    }
    assert_eq!(counters, [1, 2]);
    // Through the environment too.
    let out = output_fed(
        bin("sender")
            .args(["-s", "127.0.0.1", "-p", &port, "-m", "env"])
            .env("UDP_HEADLESS_KEY_FILE", key),
        b"",
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Without the key: refused, counted.
    let out = sender(&["-s", "127.0.0.1", "-p", &port, "-m", "no key"], b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let want = [
        "one",
        "repeated",
        "repeated",
        "line 1",
        "line 2",
        "confirmed",
        "confirmed line",
        "env",
    ];
    receiver.wait_lines(want.len());
    let metrics_at = metrics_addr(&receiver.stderr);
    wait_until("the unsigned one counted", Duration::from_secs(5), || {
        rejected(&scrape(metrics_at), Reject::Unsigned) == 1
    });
    let messages = info_messages(&receiver.log_text());
    assert_eq!(messages.len(), want.len(), "{messages:?}");
    for (message, payload) in messages.iter().zip(want) {
        assert!(
            message.starts_with(&format!("Message from Client:b'{payload}' ")),
            "{message}"
        );
    }
    assert_usage_errors(
        "sender",
        &[
            (
                &["-s", "x", "-m", "m", "--max-age", "5s"],
                &[],
                "--max-age needs --key-file",
            ),
            (
                &["-s", "x", "-m", "m", "--key-file", "/nonexistent/keys"],
                &[],
                "/nonexistent/keys",
            ),
        ],
    );
    let short = key_file(&dir, "c2hvcnQ=");
    let out = sender(
        &["-s", "x", "-m", "m", "--key-file", short.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1") && !err.contains("c2hvcnQ"), "{err}");
}

/// The ACK of `id` signed with the first key of `keys`, sent `ago_secs`
/// seconds ago.
fn signed_ack(keys: &Keyring, ago_secs: u64, id: Id) -> Vec<u8> {
    let mut ack = frame::ack(id).to_vec();
    let at = SystemTime::now() - Duration::from_secs(ago_secs);
    Sealer::new(3).seal(keys.signing(), at, &mut ack);
    ack
}

/// A fake pod answers a signed sender --confirm with acknowledgements that
/// must confirm nothing: unsigned, signed with another key, forged, stale;
/// only the right one confirms.
#[test]
fn forged_acknowledgements_confirm_nothing() {
    let dir = TempDir::new("signing-acks");
    let path = key_file(&dir, KEY_A);
    let a = keys(KEY_A);
    let b = keys(KEY_B);
    type Answer = fn(&Keyring, &Keyring, Id) -> Vec<Vec<u8>>;
    let cases: Vec<(&str, Answer, bool)> = vec![
        ("unsigned", |_, _, id| vec![frame::ack(id).to_vec()], false),
        ("another key", |_, b, id| vec![signed_ack(b, 0, id)], false),
        (
            "forged tag",
            |a, _, id| {
                let mut ack = signed_ack(a, 0, id);
                ack[40] ^= 1;
                vec![ack]
            },
            false,
        ),
        ("stale", |a, _, id| vec![signed_ack(a, 300, id)], false),
        (
            "right (control)",
            |a, _, id| vec![signed_ack(a, 0, id)],
            true,
        ),
    ];
    for (what, answer, confirms) in cases {
        let pod = UdpSocket::bind("127.0.0.1:0").unwrap();
        pod.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = pod.local_addr().unwrap().port().to_string();
        let child = bin("sender")
            .args(["-s", "127.0.0.1", "-p", &port, "--confirm", "-t", "1s"])
            .args(["-m", "m", "--key-file", path.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 256];
        let (n, from) = pod.recv_from(&mut buf).unwrap();
        let got = signed::open(&buf[..n], &a).expect("a signed DATA frame");
        let Frame::Data { id, message } = got.frame else {
            panic!("{what}: not DATA: {:?}", got.frame);
        };
        assert_eq!(message, b"m");
        for ack in answer(&a, &b, id) {
            pod.send_to(&ack, from).unwrap();
        }
        let out = finish_within(child, "sender --confirm", RUN_LIMIT);
        let want = if confirms { 0 } else { 4 };
        assert_eq!(out.status.code(), Some(want), "{what}: {out:?}");
    }
}

/// The Secret volume layout: `keys` -> `..data/keys`, `..data` a symlink
/// swapped atomically to a new directory on each update.
struct SecretVolume {
    dir: PathBuf,
    version: usize,
}

impl SecretVolume {
    fn new(dir: &Path, text: &str) -> SecretVolume {
        let mut volume = SecretVolume {
            dir: dir.to_path_buf(),
            version: 0,
        };
        volume.update(text);
        std::os::unix::fs::symlink("..data/keys", dir.join("keys")).unwrap();
        volume
    }

    fn path(&self) -> PathBuf {
        self.dir.join("keys")
    }

    fn update(&mut self, text: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        fs::create_dir(self.dir.join(&version)).unwrap();
        fs::write(self.dir.join(&version).join("keys"), format!("{text}\n")).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

fn reloads(stderr: &Path) -> usize {
    fs::read_to_string(stderr)
        .unwrap()
        .matches("reloaded:")
        .count()
}

/// memberlist's rotation, in three steps during a confirmed stream: the
/// new key second everywhere, then first, then the old one removed.
/// Every message is logged once, nothing is refused, each step is one
/// log line.
#[test]
fn a_key_rotation_in_three_steps_loses_and_refuses_nothing() {
    let dir = TempDir::new("signing-rotation");
    let mut volume = SecretVolume::new(&dir, KEY_A);
    let key = volume.path();
    let receiver = Receiver::start(
        "signing-rotation",
        &[
            "--key-file",
            key.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let port = receiver.port.to_string();
    let mut child: Child = bin("sender")
        .args(["-s", "127.0.0.1", "-p", &port, "--confirm", "-t", "5s"])
        .args(["--key-file", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut sent = 0;
    let mut send_for = |stdin: &mut std::process::ChildStdin, time: Duration| {
        let end = std::time::Instant::now() + time;
        while std::time::Instant::now() < end {
            sent += 1;
            writeln!(stdin, "message {sent}").unwrap();
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    send_for(&mut stdin, Duration::from_millis(500));
    let steps = [
        format!("{KEY_A}\n{KEY_C}"),
        format!("{KEY_C}\n{KEY_A}"),
        KEY_C.to_string(),
    ];
    for (n, step) in steps.iter().enumerate() {
        volume.update(step);
        // Both notice within a second or so of traffic.
        send_for(&mut stdin, Duration::from_millis(2500));
        assert_eq!(reloads(&receiver.stderr), n + 1, "step {}", n + 1);
    }
    drop(stdin);
    let out = finish_within(child, "sender --confirm", Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("reloaded:").count(), 3, "{err}");
    assert!(!err.contains("WARNING"), "{err}");
    assert!(!err.contains("no confirmation"), "{err}");
    let messages = info_messages(&receiver.log_text());
    let want: Vec<String> = (1..=sent).map(|i| format!("message {i}")).collect();
    let got: Vec<String> = messages
        .iter()
        .map(|m| {
            let payload = m.split_once("b'").unwrap().1;
            payload.split_once("' ").unwrap().0.to_string()
        })
        .collect();
    assert_eq!(got, want, "each once, in order");
    let metrics = scrape(metrics_addr(&receiver.stderr));
    for reason in Reject::ALL {
        assert_eq!(rejected(&metrics, reason), 0, "{}", reason.name());
    }
    assert!(warnings(&receiver.stderr).is_empty());
}

/// client -> relay -> receiver, all with the key and without
/// --trust-relay: the receiver logs the client as the source because the
/// relay signed it; an unsigned datagram stops at the relay (counted), and
/// an unsigned FORWARDED frame sent straight to the receiver is refused.
#[test]
fn through_the_relay_the_signature_carries_the_client() {
    let (dir, path, receiver) = keyed_receiver_with_metrics("signing-relay");
    let key = path.to_str().unwrap();
    let listen = free_port();
    let relay_err = dir.join("relay.err");
    let mut relay = bin("relay")
        .args(["-s", "127.0.0.1", "-p", &receiver.port.to_string()])
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--key-file", key, "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&relay_err).unwrap())
        .spawn()
        .unwrap();
    wait_until("the relay's start line", Duration::from_secs(10), || {
        fs::read_to_string(&relay_err)
            .unwrap()
            .contains("listening on")
    });
    let a = keys(KEY_A);
    let sock = client();
    let mut sealer = Sealer::new(11);
    let to_relay = ("127.0.0.1", listen);
    sock.send_to(
        &signed_data(&mut sealer, &a, SystemTime::now(), 1, b"via relay"),
        to_relay,
    )
    .unwrap();
    sock.send_to(b"unsigned", to_relay).unwrap();
    let copy = signed_data(&mut sealer, &a, SystemTime::now(), 2, b"once");
    sock.send_to(&copy, to_relay).unwrap();
    sock.send_to(&copy, to_relay).unwrap();
    let mut forged = Vec::new();
    let claimed: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    frame::write_forwarded(&mut forged, id(1), claimed, b"forged source");
    sock.send_to(&forged, ("127.0.0.1", receiver.port)).unwrap();
    // A sender with the key, through the relay.
    let out = sender(
        &[
            "-s",
            "127.0.0.1",
            "-p",
            &listen.to_string(),
            "-m",
            "from sender",
            "--key-file",
            key,
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    receiver.wait_lines(3);
    std::thread::sleep(Duration::from_millis(300));
    let local = sock.local_addr().unwrap();
    let messages = info_messages(&receiver.log_text());
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0], received_message(b"via relay", local));
    assert_eq!(messages[1], received_message(b"once", local));
    assert!(messages[2]
        .starts_with("Message from Client:b'from sender' Client IP Address:('127.0.0.1', "));
    assert!(!messages[2].contains(&format!(", {listen})")));
    let metrics = scrape(metrics_addr(&receiver.stderr));
    assert_eq!(
        rejected(&metrics, Reject::Unsigned),
        1,
        "the forged FORWARDED frame"
    );
    // The two DATA frames (via relay, once) are acknowledged; the sender's
    // MESSAGE frame, forwarded as a FORWARDED frame, is not.
    assert_eq!(sample(&metrics, "udp_headless_acks_sent_total"), 2);
    let relay_metrics = scrape(metrics_addr(&relay_err));
    assert_eq!(rejected(&relay_metrics, Reject::Unsigned), 1);
    assert_eq!(rejected(&relay_metrics, Reject::Replay), 1);
    assert_eq!(
        sample(&relay_metrics, "udp_headless_relay_copies_sent_total"),
        3
    );
    // --confirm through the relay: the relay confirms with a signed ACK
    // once the receiver's signed ACK is in; the sender counts only those.
    let confirm = [
        "-s",
        "127.0.0.1",
        "-p",
        &listen.to_string(),
        "-m",
        "confirmed",
        "--key-file",
        key,
        "--confirm",
    ];
    let out = sender(&confirm, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stderr.contains("confirmed by 1 of 1 pods"), "{stderr}");
    receiver.wait_lines(4);
    let messages = info_messages(&receiver.log_text());
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(messages[3]
        .starts_with("Message from Client:b'confirmed' Client IP Address:('127.0.0.1', "));
    let relay_metrics = scrape(metrics_addr(&relay_err));
    let acks = sample(&relay_metrics, "udp_headless_relay_acks_received_total");
    // For the three DATA frames; the sender without --confirm sent a
    // MESSAGE frame, which no one acknowledges.
    assert!(
        acks >= 3,
        "the receiver's signed ACKs, one per DATA frame: {acks}"
    );
    // A change with no traffic: both say so within a second or two.
    fs::write(&path, format!("{KEY_A}\n{KEY_B}\n")).unwrap();
    for stderr in [&relay_err, &receiver.stderr] {
        wait_until("the reload line", Duration::from_secs(10), || {
            fs::read_to_string(stderr)
                .unwrap()
                .contains("reloaded: 2 key(s)")
        });
    }
    signal(relay.id(), "TERM");
    wait_for_exit(&mut relay, "the relay to stop");
}

/// A flood of bad frames from several sources, with good ones in between:
/// every good one is logged, nothing else, and the warnings stay at one
/// per reason.
#[test]
fn a_flood_of_bad_frames_leaves_the_log_bounded_and_the_good_stream_logged() {
    let (_dir, _, receiver) = keyed_receiver_with_metrics("signing-flood");
    let to = ("127.0.0.1", receiver.port);
    let a = keys(KEY_A);
    let b = keys(KEY_B);
    let good_sock = client();
    let bad_sock = client();
    let mut good = Sealer::new(1);
    let mut bad = Sealer::new(2);
    let good_count = 50;
    let mut bad_count = 0u64;
    for i in 0..good_count {
        for j in 0..100u64 {
            let datagram = match j % 4 {
                0 => format!("plain {j}").into_bytes(),
                1 => signed_data(&mut bad, &b, SystemTime::now(), j, b"unknown key"),
                2 => {
                    let mut d = signed_data(&mut bad, &a, SystemTime::now(), j, b"forged");
                    d[40] ^= 1;
                    d
                }
                _ => signed_data(
                    &mut bad,
                    &a,
                    SystemTime::now() - Duration::from_secs(600),
                    j,
                    b"old",
                ),
            };
            bad_sock.send_to(&datagram, to).unwrap();
            bad_count += 1;
        }
        let message = format!("good {i}");
        good_sock
            .send_to(
                &signed_data(&mut good, &a, SystemTime::now(), i, message.as_bytes()),
                to,
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let lines = receiver.wait_lines(good_count as usize);
    let metrics_at = metrics_addr(&receiver.stderr);
    wait_until("every bad frame counted", Duration::from_secs(10), || {
        let m = scrape(metrics_at);
        Reject::ALL.iter().map(|&r| rejected(&m, r)).sum::<u64>() == bad_count
    });
    let local = good_sock.local_addr().unwrap();
    let want: Vec<String> = (0..good_count)
        .map(|i| received_message(format!("good {i}").as_bytes(), local))
        .collect();
    assert_eq!(info_messages(&receiver.log_text()), want);
    assert_eq!(lines.len(), good_count as usize);
    let warned = warnings(&receiver.stderr);
    assert_eq!(warned.len(), 4, "one per reason: {warned:?}");
}

// ------------------------------------------------- in a simulated cluster

/// 10% of the frames arriving at each pod and 10% of the acknowledgements
/// arriving at the sender are dropped: signed, every message is still
/// confirmed by every pod and logged exactly once.
#[test]
fn under_10_percent_loss_each_way_signed_confirm_is_still_exactly_once() {
    let mut c = Cluster::new("signing-loss");
    let path = key_file(&c.dir, KEY_A);
    let key = path.to_str().unwrap().to_string();
    c.start_dns(5);
    let mut receivers = Vec::new();
    for i in 0..3 {
        let pod = c.add_pod(&format!("{STATEFULSET}-{i}"), &[pod_ip(i)]);
        let receiver = c.start_receiver_with(pod, &["--key-file", &key]);
        c.publish(&receiver.pod);
        receivers.push(receiver);
    }
    c.wait_dns(3);
    let sender_pod = c.add_pod("sender-app", &[sender_ip()]);
    for receiver in &receivers {
        drop_some(&c, &receiver.pod, "--dport", "0.1");
    }
    drop_some(&c, &sender_pod, "--sport", "0.1");
    let messages: Vec<String> = (1..=30).map(|i| format!("signed-loss-{i}")).collect();
    let mut child = c
        .command(&sender_pod, bin_path("sender"))
        .args([
            "-s",
            SERVICE,
            "--confirm",
            "--timeout",
            "5s",
            "--key-file",
            &key,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(messages.join("\n").as_bytes()).unwrap();
    drop(stdin);
    let out = finish_within(child, "sender --confirm", Duration::from_secs(200));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("confirmed by 3 of 3 pods").count(),
        messages.len(),
        "{err}"
    );
    for message in &messages {
        wait_delivery(&receivers, message.as_bytes(), sender_ip());
        check_delivery(&receivers, message.as_bytes(), sender_ip()).unwrap();
    }
    for receiver in &receivers {
        let text = fs::read_to_string(&receiver.stderr).unwrap();
        // Retries are signed anew: none is taken for a replay.
        assert!(!text.contains("WARNING"), "{text}");
    }
}

/// One receiver answering for a block of pod addresses (as the test
/// cluster and the benchmark have it): each datagram is signed anew, so
/// none is taken for a replay: each address gets its line, or with
/// --confirm, its confirmation; also through a relay with the key.
#[test]
fn a_receiver_answering_for_many_addresses_gets_each_signed_datagram() {
    let mut c = Cluster::new("signing-block");
    let path = key_file(&c.dir, KEY_A);
    let key = path.to_str().unwrap().to_string();
    c.start_dns(5);
    let mut receivers = Vec::new();
    for (k, count) in [(0, BLOCK_SIZE), (1, 50)] {
        let pod = c.add_block(k, count);
        let receiver = c.start_receiver_with(pod, &["--key-file", &key]);
        c.publish(&receiver.pod);
        receivers.push(receiver);
    }
    c.wait_dns(BLOCK_SIZE + 50);
    let sender_pod = c.add_pod("sender-app", &[sender_ip()]);
    for (message, confirm) in [("signed plain", false), ("signed confirmed", true)] {
        let mut cmd = c.command(&sender_pod, bin_path("sender"));
        cmd.args(["-s", SERVICE, "-m", message, "--key-file", &key]);
        if confirm {
            cmd.arg("--confirm");
        }
        let out = output_within(&mut cmd, RUN_LIMIT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{message}: {err}");
        if confirm {
            // Every address confirmed; logged once per receiver, as a
            // confirmed message always is (same sender id and sequence).
            assert!(err.contains("confirmed by 150 of 150 pods"), "{err}");
            for receiver in &receivers {
                wait_until("the line", Duration::from_secs(10), || {
                    receiver.count(message.as_bytes(), sender_ip()) == 1
                });
            }
        } else {
            wait_delivery(&receivers, message.as_bytes(), sender_ip());
            check_delivery(&receivers, message.as_bytes(), sender_ip()).unwrap();
        }
    }
    // Through a relay with the key: a burst, which it takes in batches and
    // signs anew for each address, reaches each address once, naming
    // sender-app.
    let relay_ip = "10.244.0.30";
    let relay_pod = c.add_pod("relay", &[relay_ip.parse().unwrap()]);
    let relay_err = c.dir.join("relay.err");
    let mut relay = c.command(&relay_pod, bin_path("relay"));
    relay
        .args(["-s", SERVICE, "--key-file", &key])
        .stderr(fs::File::create(&relay_err).unwrap());
    let mut relay = c.spawn(&mut relay, "relay");
    wait_until("the relay's 150 pods", Duration::from_secs(10), || {
        fs::read_to_string(&relay_err)
            .unwrap()
            .contains("pods: 150")
    });
    let burst: Vec<String> = (1..=20).map(|i| format!("burst {i}")).collect();
    let out = output_fed(
        c.command(&sender_pod, bin_path("sender")).args([
            "-s",
            relay_ip,
            "-p",
            "12001",
            "--key-file",
            &key,
        ]),
        (burst.join("\n") + "\n").as_bytes(),
        RUN_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for message in &burst {
        wait_delivery(&receivers, message.as_bytes(), sender_ip());
        check_delivery(&receivers, message.as_bytes(), sender_ip()).unwrap();
    }
    assert_eq!(relay.stop().code(), Some(0));
    for receiver in &receivers {
        let text = fs::read_to_string(&receiver.stderr).unwrap();
        assert!(!text.contains("WARNING"), "{text}");
    }
}
