//! A paced UDP load generator for the benchmark (`bench/`): sends COUNT datagrams
//! of SIZE bytes to TARGET at RATE datagrams per second (stopping after
//! SECONDS if given first), then prints one line: `sent=N errors=N
//! seconds=S rate=R`.
//!
//!     udp_flood --target 127.0.0.1:12000 --rate 100000 --count 100000 --size 64
//!
//! Pacing: datagram i is due at start + i/RATE on the monotonic clock. The
//! loop sends whatever is due, at most `--burst` at a time, and sleeps when
//! nothing is due, so the load is smooth at the scale of a scheduler tick
//! and a slow sleep is caught up on rather than lost. `--rate 0` sends as
//! fast as one core can (this program's own maximum).
//!
//! Each payload starts with its sequence number in decimal, padded with `x`
//! (printable, so a receiver that logs `repr(bytes)` logs it unescaped).
//! Send errors (ENOBUFS, ECONNREFUSED from an earlier ICMP, ...) are counted,
//! not retried: the datagram is lost and the report says so.
//!
//! `--frame yes` sends each payload as a DATA frame (docs/PROTOCOL.md; the
//! receiver logs and acknowledges it, as from `sender --confirm`);
//! `--key-file PATH` as a MESSAGE frame (logged, not acknowledged, as from
//! a sender with a key without `--confirm`) signed with the file's first
//! key, and both together as a signed DATA frame. Each is sealed in the loop, with a new
//! counter and the time of sending, as the receiver refuses a replayed or
//! stale frame: nothing can be sealed ahead, so the generator's own maximum
//! (`--rate 0`) is lower when signing, and the report's rate says by how much.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, UNIX_EPOCH};
use udp_headless::frame::{self, Id};
use udp_headless::signed::Signing;

const USAGE: &str = "usage: udp_flood --target ADDR:PORT [--rate PER_SECOND (0 = max)] \
                     [--count N] [--seconds S] [--size BYTES] [--burst N] \
                     [--frame yes] [--key-file PATH]";

struct Options {
    target: SocketAddr,
    /// Datagrams per second; 0 means unpaced.
    rate: u64,
    count: u64,
    size: usize,
    /// Most datagrams sent back to back before looking at the clock again.
    burst: u64,
    /// Stop after this long even if COUNT is not reached.
    limit: Option<Duration>,
    /// Each payload in a DATA frame.
    frame: bool,
    /// Each payload signed with this file's first key, in a MESSAGE frame
    /// (a DATA frame with `frame`).
    key_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(why) => {
            eprintln!("udp_flood: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match flood(&options) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udp_flood: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        target: SocketAddr::from(([127, 0, 0, 1], 12000)),
        rate: 0,
        count: 100_000,
        size: 64,
        burst: 32,
        limit: None,
        frame: false,
        key_file: None,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: '{value}' is not a number"))
        };
        match flag.as_str() {
            "--target" => {
                options.target = value
                    .parse()
                    .map_err(|_| format!("--target: '{value}' is not ADDR:PORT"))?
            }
            "--rate" => options.rate = number()?,
            "--count" => options.count = number()?,
            "--size" => options.size = number()? as usize,
            "--burst" => options.burst = number()?.max(1),
            "--seconds" => {
                let limit = value.parse::<f64>().ok().filter(|s| *s > 0.0);
                let limit = limit.and_then(|s| Duration::try_from_secs_f64(s).ok());
                let limit = limit
                    .ok_or_else(|| format!("--seconds: '{value}' is not a finite number > 0"))?;
                options.limit = Some(limit);
            }
            "--frame" if value == "yes" => options.frame = true,
            "--key-file" => options.key_file = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option '{flag}'")),
        }
    }
    if options.size > 65_507 {
        return Err("--size: a UDP datagram holds at most 65507 bytes".into());
    }
    Ok(options)
}

struct Report {
    sent: u64,
    errors: u64,
    elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.sent as f64 / seconds
        } else {
            0.0
        };
        write!(
            f,
            "sent={} errors={} seconds={seconds:.6} rate={rate:.0}",
            self.sent, self.errors
        )
    }
}

fn flood(options: &Options) -> std::io::Result<Report> {
    let local = if options.target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local)?;
    // Connected: the route is looked up once, not per datagram.
    socket.connect(options.target)?;
    let mut payload = vec![b'x'; options.size];
    let sender = frame::random_sender_id();
    let mut signing = match &options.key_file {
        // The age limit only matters to frames received: this reads none.
        Some(path) => Some(
            Signing::open(path, sender, Duration::from_secs(60), UNIX_EPOCH)
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let mut report = Report {
        sent: 0,
        errors: 0,
        elapsed: Duration::ZERO,
    };
    let start = Instant::now();
    while report.sent < options.count {
        if options.limit.is_some_and(|limit| start.elapsed() >= limit) {
            break;
        }
        let due = if options.rate == 0 {
            options.count
        } else {
            // Whole datagrams due by now; u128 so that long runs cannot overflow.
            let nanos = start.elapsed().as_nanos();
            (nanos * u128::from(options.rate) / 1_000_000_000) as u64 + 1
        };
        let due = due.min(options.count);
        if due <= report.sent {
            // Nothing due: sleep until the next one is.
            let next = start + Duration::from_nanos(report.sent * 1_000_000_000 / options.rate);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            continue;
        }
        let until = due.min(report.sent + options.burst);
        while report.sent < until {
            stamp(&mut payload, report.sent);
            let id = Id {
                sender,
                seq: report.sent,
            };
            let framed;
            let datagram = match (options.frame, signing.as_mut()) {
                (false, None) => &payload[..],
                (true, signing) => {
                    framed = sealed(frame::data(id, &payload), signing);
                    &framed[..]
                }
                (false, signing) => {
                    framed = sealed(frame::message(id, &payload), signing);
                    &framed[..]
                }
            };
            if socket.send(datagram).is_err() {
                report.errors += 1;
            }
            report.sent += 1;
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

fn sealed(mut frame: Vec<u8>, signing: Option<&mut Signing>) -> Vec<u8> {
    if let Some(signing) = signing {
        signing.seal(&mut frame);
    }
    frame
}

/// Writes `seq` in decimal at the start of the payload (as much as fits).
fn stamp(payload: &mut [u8], seq: u64) {
    let mut digits = [0u8; 20];
    let mut cursor = &mut digits[..];
    let _ = write!(cursor, "{seq} ");
    let written = 20 - cursor.len();
    let n = written.min(payload.len());
    payload[..n].copy_from_slice(&digits[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options as the command line gives them: 16-byte payloads to `to`,
    /// in bursts of 8, and `args`.
    fn options(to: &UdpSocket, args: &str) -> Options {
        let target = to.local_addr().unwrap();
        let line = format!("--target {target} --size 16 --burst 8 {args}");
        parse(line.split_whitespace().map(String::from)).unwrap()
    }

    #[test]
    fn paced_flood_arrives_in_full_and_on_time() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let options = options(&receiver, "--rate 2000 --count 200");
        let report = flood(&options).unwrap();
        assert_eq!((report.sent, report.errors), (200, 0));
        // 200 at 2000/s is 100 ms: never early, and not much late.
        assert!(report.elapsed >= Duration::from_millis(99), "{report}");
        assert!(report.elapsed < Duration::from_secs(2), "{report}");
        let mut buf = [0u8; 64];
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"0 xxxxxxxxxxxxxx");
    }

    #[test]
    fn a_time_limit_ends_a_flat_out_flood() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let options = options(&receiver, &format!("--count {} --seconds 0.05", u64::MAX));
        let report = flood(&options).unwrap();
        assert!(report.sent > 0 && report.sent < u64::MAX, "{report}");
        assert!(report.elapsed >= Duration::from_millis(50), "{report}");
    }

    #[test]
    fn each_signed_frame_verifies_and_is_new() {
        let dir = std::env::temp_dir().join(format!("udp_flood.{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        std::fs::write(&key, "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=\n").unwrap();
        // A receiver's view: started before, the same key, refusing replays.
        let since = std::time::SystemTime::now() - Duration::from_secs(5);
        let mut check = Signing::open(&key, 1, Duration::from_secs(60), since).unwrap();
        // --key-file alone: MESSAGE frames; with --frame yes: DATA frames.
        for (frame, args) in [(false, ""), (true, "--frame yes")] {
            let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
            let key = key.display();
            let options = options(&receiver, &format!("--count 3 --key-file {key} {args}"));
            let report = flood(&options).unwrap();
            assert_eq!((report.sent, report.errors), (3, 0));
            let mut buf = [0u8; 256];
            for seq in 0..3u64 {
                let len = receiver.recv(&mut buf).unwrap();
                let signed = check.verify(&buf[..len]).unwrap();
                let (id, message) = match signed.frame {
                    frame::Frame::Data { id, message } if frame => (id, message),
                    frame::Frame::Message { id, message } if !frame => (id, message),
                    _ => panic!("frame {frame}: {signed:?}"),
                };
                assert_eq!(id.seq, seq);
                assert_eq!(message, format!("{seq} xxxxxxxxxxxxxx").as_bytes());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stamp_cuts_to_the_payload() {
        let mut small = [b'x'; 3];
        stamp(&mut small, 123_456);
        assert_eq!(&small, b"123");
    }
}
