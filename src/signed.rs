//! Signed frames (docs/PROTOCOL.md, "Signed frames"): a version-1 frame
//! (DATA, ACK, FORWARDED or MESSAGE, exactly as `frame.rs` writes it) wrapped in an
//! envelope naming the key, the signer, a counter and the send time, and
//! closed by HMAC-SHA256 over everything before the tag.
//!
//! ```text
//! 0      4         5        9           17        25          33          end-32  end
//! | magic | version 2 | key id | signer id | counter | send time | v1 frame ... | tag |
//! ```
//!
//! Only processes given `--key-file` send or expect these; without a key
//! nothing here is used and frames stay as `frame.rs` describes.

use crate::frame::{self, Frame, MAGIC};
use crate::keyring::{Key, KeyFile, KeyId, Keyring, Reload};
use crate::replay::{unix_ms, Replay};
use crate::sha256::equal_in_constant_time;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// The version byte of a signed frame: version-1 receivers log it as
/// plain bytes, as they do any other version.
pub const VERSION: u8 = 2;
/// Magic, version, key id, signer id, counter, send time.
pub const HEADER_LEN: usize = 4 + 1 + 4 + 8 + 8 + 8;
pub const TAG_LEN: usize = 32;
/// What signing adds to a frame: 65 bytes.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The shortest signed frame, a signed ACK (87 bytes): a signed DATA frame
/// is never shorter, so a signed ACK amplifies nothing either.
pub const MIN_LEN: usize = OVERHEAD + frame::HEADER_LEN;

/// Why a datagram was not accepted as a signed frame; each is counted
/// and warned about on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not a signed frame at all: plain bytes or an unsigned frame.
    Unsigned,
    /// Version 2 but too short to be one, or what it wraps is no frame.
    Malformed,
    /// Signed with a key id not in this keyring.
    UnknownKey,
    /// The tag does not match: forged, altered, cut short or wrong key.
    BadTag,
    /// Sent longer than max-age ago.
    Stale,
    /// Sent more than max-age in the future.
    Future,
    /// Accepted before, or sent before this process could know.
    Replay,
}

impl Reject {
    pub const ALL: [Reject; 7] = [
        Reject::Unsigned,
        Reject::Malformed,
        Reject::UnknownKey,
        Reject::BadTag,
        Reject::Stale,
        Reject::Future,
        Reject::Replay,
    ];

    /// A name for metric labels: `reason="bad_tag"`.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Unsigned => "unsigned",
            Reject::Malformed => "malformed",
            Reject::UnknownKey => "unknown_key",
            Reject::BadTag => "bad_tag",
            Reject::Stale => "stale",
            Reject::Future => "future",
            Reject::Replay => "replay",
        }
    }

    /// Words for a log line.
    pub fn describe(self) -> &'static str {
        match self {
            Reject::Unsigned => "an unsigned datagram",
            Reject::Malformed => "a malformed signed frame",
            Reject::UnknownKey => "a frame signed with an unknown key id",
            Reject::BadTag => "a frame with a bad signature",
            Reject::Stale => "a frame sent more than max-age ago",
            Reject::Future => "a frame sent more than max-age in the future",
            Reject::Replay => "a replayed frame",
        }
    }

    /// Its place in `ALL` (declared in that order).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A signed frame whose tag checked out.
#[derive(Debug, PartialEq)]
pub struct Signed<'a> {
    pub frame: Frame<'a>,
    pub key: KeyId,
    pub signer: u64,
    pub counter: u64,
    /// Milliseconds since the Unix epoch, by the signer's clock.
    pub sent_ms: u64,
}

fn be64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("8 bytes"))
}

/// The signed frame in `datagram` if one of `keys` signed it; nothing
/// about replay or freshness (`verify` does both). Never panics.
pub fn open<'a>(datagram: &'a [u8], keys: &Keyring) -> Result<Signed<'a>, Reject> {
    if datagram.len() < 5 || datagram[..4] != MAGIC || datagram[4] != VERSION {
        return Err(Reject::Unsigned);
    }
    if datagram.len() < MIN_LEN {
        return Err(Reject::Malformed);
    }
    let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    let id = KeyId(signed[5..9].try_into().expect("4 bytes"));
    let key = keys.find(id).ok_or(Reject::UnknownKey)?;
    if !equal_in_constant_time(&key.hmac.tag(&[signed]), tag) {
        return Err(Reject::BadTag);
    }
    Ok(Signed {
        frame: frame::parse_signed(&signed[HEADER_LEN..]).ok_or(Reject::Malformed)?,
        key: id,
        signer: be64(&signed[9..17]),
        counter: be64(&signed[17..25]),
        sent_ms: be64(&signed[25..33]),
    })
}

/// `open`, then the replay window and freshness: what a receiver, a relay
/// or a sender reading ACKs calls for each datagram when it has a key.
pub fn verify<'a>(
    datagram: &'a [u8],
    keys: &Keyring,
    replay: &mut Replay,
    now: SystemTime,
) -> Result<Signed<'a>, Reject> {
    let signed = open(datagram, keys)?;
    replay.check(signed.signer, signed.counter, signed.sent_ms, now)?;
    Ok(signed)
}

/// Signs frames for one process: its signer id and its counter, which
/// goes up by one for every frame signed, so every datagram is unique and
/// a retry of the same message is not taken for a replay.
#[derive(Debug)]
pub struct Sealer {
    signer: u64,
    counter: u64,
}

impl Sealer {
    /// `signer`: the process's random id (a sender's `frame::Id::sender`);
    /// random, because the counter starts again at 1 with each process.
    pub fn new(signer: u64) -> Sealer {
        Sealer { signer, counter: 0 }
    }

    /// Turns the unsigned frame in `frame` (as `frame::data`, `frame::ack`,
    /// `frame::message` or `frame::write_forwarded` made it) into its
    /// signed form.
    pub fn seal(&mut self, key: &Key, now: SystemTime, frame: &mut Vec<u8>) {
        self.counter += 1;
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        header[4] = VERSION;
        header[5..9].copy_from_slice(&key.id.0);
        header[9..17].copy_from_slice(&self.signer.to_be_bytes());
        header[17..25].copy_from_slice(&self.counter.to_be_bytes());
        header[25..33].copy_from_slice(&unix_ms(now).to_be_bytes());
        // As `splice(0..0, header)`, without its generic machinery.
        let len = frame.len();
        frame.reserve(OVERHEAD);
        frame.resize(len + HEADER_LEN, 0);
        frame.copy_within(..len, HEADER_LEN);
        frame[..HEADER_LEN].copy_from_slice(&header);
        let tag = key.hmac.tag(&[frame]);
        frame.extend_from_slice(&tag);
    }
}

/// How often each kind of rejection may be logged: a flood of bad frames
/// is counted in full but fills the log with one line per 10 s per kind.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// When each kind of rejection was last logged.
#[derive(Debug, Default)]
pub struct Warnings {
    last: [Option<Instant>; Reject::ALL.len()],
}

impl Warnings {
    /// True if a warning for `reason` should be logged now (and notes it).
    pub fn due(&mut self, reason: Reject, now: Instant) -> bool {
        let last = &mut self.last[reason.index()];
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Everything a process with `--key-file` needs, in one place: the key
/// file (read again when it changes), its signer, the replay windows and
/// the warning limiter. Sender, receiver and relay each hold one.
#[derive(Debug)]
pub struct Signing {
    pub file: KeyFile,
    sealer: Sealer,
    replay: Replay,
    warnings: Warnings,
}

impl Signing {
    /// Reads the key file (an error is one line, without key material).
    /// `signer`: the process's random id. Frames further than `max_age`
    /// from the clock are refused, and so are those of signers not heard
    /// from before that were sent before `since`: a receiver or relay
    /// passes its start (`SystemTime::now()`), so nothing sent before it
    /// started is accepted; a sender reading ACKs passes `UNIX_EPOCH`, as
    /// an ACK from before its start cannot name its own new sender id, and
    /// a receiver's clock a little behind must not cost its ACKs.
    pub fn open(
        path: &Path,
        signer: u64,
        max_age: Duration,
        since: SystemTime,
    ) -> Result<Signing, String> {
        Ok(Signing {
            file: KeyFile::open(path)?,
            sealer: Sealer::new(signer),
            replay: Replay::new(since, max_age),
            warnings: Warnings::default(),
        })
    }

    /// The key file again if it changed (at most once a second): the
    /// caller logs the event as one line.
    pub fn poll(&mut self) -> Option<Reload> {
        self.file.poll(Instant::now())
    }

    /// Signs the unsigned frame in `frame` with the first key, now.
    pub fn seal(&mut self, frame: &mut Vec<u8>) {
        let key = self.file.keys().signing();
        self.sealer.seal(key, SystemTime::now(), frame);
    }

    /// The frame in `datagram` if it is signed by a key of the file, fresh
    /// and new.
    pub fn verify<'a>(&mut self, datagram: &'a [u8]) -> Result<Signed<'a>, Reject> {
        verify(
            datagram,
            self.file.keys(),
            &mut self.replay,
            SystemTime::now(),
        )
    }

    /// True if a warning about `reason` should be logged now.
    pub fn warn_now(&mut self, reason: Reject) -> bool {
        self.warnings.due(reason, Instant::now())
    }
}

/// For unit tests: a key file holding docs/PROTOCOL.md's example key, in
/// a directory of its own, removed when dropped.
#[cfg(test)]
pub(crate) struct TestKeyFile {
    dir: std::path::PathBuf,
}

#[cfg(test)]
impl TestKeyFile {
    pub fn new(name: &str) -> TestKeyFile {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
        std::fs::write(dir.join("keys"), keys).unwrap();
        TestKeyFile { dir }
    }

    /// The file opened by `signer`, accepting what was sent since a second
    /// ago.
    pub fn open(&self, signer: u64) -> Signing {
        let since = SystemTime::now() - Duration::from_secs(1);
        let max_age = crate::replay::DEFAULT_MAX_AGE;
        Signing::open(&self.dir.join("keys"), signer, max_age, since).unwrap()
    }
}

#[cfg(test)]
impl Drop for TestKeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Id;
    use crate::replay::DEFAULT_MAX_AGE;

    /// docs/PROTOCOL.md's example key: the bytes 00 01 .. 1f, written in
    /// the key file as `AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=`.
    fn doc_keys() -> Keyring {
        Keyring::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "doc").unwrap()
    }

    /// 2026-12-07 20:00:00 UTC.
    const SENT_MS: u64 = 1_796_673_600_000;
    const ID: Id = Id {
        sender: 0x0102_0304_0506_0708,
        seq: 42,
    };
    const RECEIVER: u64 = 0x1112_1314_1516_1718;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn unhex(text: &str) -> Vec<u8> {
        let text: String = text
            .lines()
            .map(|l| l.trim().split("  ").next().unwrap())
            .collect::<String>()
            .split_whitespace()
            .collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The examples in docs/PROTOCOL.md, "Signed frames", read from the
    /// page itself: the first three code blocks of the section (DATA, ACK,
    /// MESSAGE), each line hex bytes, then two spaces and a comment.
    fn doc_examples() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let page = include_str!("../docs/PROTOCOL.md");
        let section = &page[page.find("## Signed frames").expect("the section")..];
        let mut blocks = section.split("```").skip(1).step_by(2).map(unhex);
        let mut next = || blocks.next().expect("an example");
        (next(), next(), next())
    }

    #[test]
    fn encodes_the_documented_examples() {
        let keys = doc_keys();
        assert_eq!(keys.signing().id.to_string(), "630dcd29");
        let mut data = frame::data(ID, b"test");
        Sealer::new(ID.sender).seal(keys.signing(), at(SENT_MS), &mut data);
        let (doc_data, doc_ack, doc_message) = doc_examples();
        assert_eq!(data, doc_data, "DATA");
        let mut sealer = Sealer::new(ID.sender);
        sealer.counter = 1;
        let next = Id { seq: 43, ..ID };
        let mut message = frame::message(next, b"test");
        sealer.seal(keys.signing(), at(SENT_MS), &mut message);
        assert_eq!(message, doc_message, "MESSAGE");
        let mut ack = frame::ack(ID).to_vec();
        Sealer::new(RECEIVER).seal(keys.signing(), at(SENT_MS + 5), &mut ack);
        assert_eq!(ack, doc_ack, "ACK");
        assert_eq!(ack.len(), MIN_LEN);
        assert_eq!(data.len(), frame::data(ID, b"test").len() + OVERHEAD);
    }

    #[test]
    fn opens_what_it_seals() {
        let keys = doc_keys();
        let mut sealer = Sealer::new(9);
        let source = "[fd00::1]:7".parse().unwrap();
        let mut fwd = Vec::new();
        frame::write_forwarded(&mut fwd, ID, source, b"hi");
        let frames: [(Vec<u8>, Frame); 4] = [
            (
                frame::data(ID, b"m"),
                Frame::Data {
                    id: ID,
                    message: b"m",
                },
            ),
            (
                frame::message(ID, b"m"),
                Frame::Message {
                    id: ID,
                    message: b"m",
                },
            ),
            (frame::ack(ID).to_vec(), Frame::Ack(ID)),
            (
                fwd,
                Frame::Forwarded {
                    id: ID,
                    source,
                    message: b"hi",
                    confirm: false,
                },
            ),
        ];
        for (counter, (mut wire, want)) in (1..).zip(frames) {
            sealer.seal(keys.signing(), at(SENT_MS), &mut wire);
            let got = open(&wire, &keys).unwrap();
            let expected = Signed {
                frame: want,
                key: keys.signing().id,
                signer: 9,
                counter,
                sent_ms: SENT_MS,
            };
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn rejects_each_kind_of_bad_datagram() {
        let keys = doc_keys();
        let other = Keyring::parse(&format!("{}=", "B".repeat(43)), "other").unwrap();
        // The doc key second: still verifies, no longer signs.
        let rotated = Keyring::parse(
            &format!(
                "{}=\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "B".repeat(43)
            ),
            "rotated",
        )
        .unwrap();
        let good = doc_examples().0;
        let with = |at: usize, byte: u8| {
            let mut d = good.clone();
            d[at] ^= byte;
            d
        };
        let mut wraps_no_frame = b"not a frame, long enough to be one".to_vec();
        Sealer::new(1).seal(keys.signing(), at(SENT_MS), &mut wraps_no_frame);
        type Case<'a> = (&'a str, Vec<u8>, &'a Keyring, Result<(), Reject>);
        let cases: Vec<Case> = vec![
            ("good", good.clone(), &keys, Ok(())),
            ("good, key second", good.clone(), &rotated, Ok(())),
            ("plain", b"test".to_vec(), &keys, Err(Reject::Unsigned)),
            ("empty", vec![], &keys, Err(Reject::Unsigned)),
            (
                "v1 frame",
                frame::data(ID, b"test"),
                &keys,
                Err(Reject::Unsigned),
            ),
            (
                "header only",
                good[..HEADER_LEN].to_vec(),
                &keys,
                Err(Reject::Malformed),
            ),
            (
                "cut short",
                good[..good.len() - 1].to_vec(),
                &keys,
                Err(Reject::BadTag),
            ),
            (
                "wraps no frame",
                wraps_no_frame,
                &keys,
                Err(Reject::Malformed),
            ),
            ("other key", good.clone(), &other, Err(Reject::UnknownKey)),
            ("key id changed", with(5, 1), &keys, Err(Reject::UnknownKey)),
            ("signer changed", with(9, 1), &keys, Err(Reject::BadTag)),
            ("counter changed", with(24, 1), &keys, Err(Reject::BadTag)),
            ("time changed", with(32, 1), &keys, Err(Reject::BadTag)),
            ("message changed", with(60, 1), &keys, Err(Reject::BadTag)),
            (
                "tag changed",
                with(good.len() - 1, 0x80),
                &keys,
                Err(Reject::BadTag),
            ),
        ];
        for (what, datagram, keys, want) in cases {
            assert_eq!(open(&datagram, keys).map(|_| ()), want, "{what}");
        }
    }

    #[test]
    fn never_panics_on_any_prefix_or_mutation() {
        let keys = doc_keys();
        for frame in [doc_examples().0, doc_examples().1] {
            for len in 0..=frame.len() {
                let _ = open(&frame[..len], &keys);
                for at in 0..len {
                    let mut d = frame[..len].to_vec();
                    d[at] ^= 0xff;
                    assert!(open(&d, &keys).is_err() || len < frame.len());
                }
            }
        }
    }

    #[test]
    fn verify_refuses_replays_and_stale_frames() {
        let keys = doc_keys();
        let data = doc_examples().0;
        let started = at(SENT_MS - 1000);
        let mut replay = Replay::new(started, DEFAULT_MAX_AGE);
        let now = at(SENT_MS + 100);
        assert!(verify(&data, &keys, &mut replay, now).is_ok());
        assert_eq!(
            verify(&data, &keys, &mut replay, now).map(|_| ()),
            Err(Reject::Replay),
            "at once"
        );
        // A retry of the same message is signed anew: accepted.
        let mut retry = frame::data(ID, b"test");
        let mut sealer = Sealer::new(ID.sender);
        sealer.seal(keys.signing(), at(SENT_MS), &mut retry);
        sealer.seal(keys.signing(), at(SENT_MS), &mut frame::data(ID, b"x"));
        let mut retry = frame::data(ID, b"test");
        sealer.seal(keys.signing(), at(SENT_MS + 50), &mut retry);
        assert!(verify(&retry, &keys, &mut replay, now).is_ok());
        // After a restart the windows are gone; the start time refuses it.
        let mut restarted = Replay::new(at(SENT_MS + 1), DEFAULT_MAX_AGE);
        assert_eq!(
            verify(&data, &keys, &mut restarted, now).map(|_| ()),
            Err(Reject::Replay),
            "after a restart"
        );
        let late = at(SENT_MS + DEFAULT_MAX_AGE.as_millis() as u64 + 1);
        let mut fresh = Replay::new(started, DEFAULT_MAX_AGE);
        assert_eq!(
            verify(&data, &keys, &mut fresh, late).map(|_| ()),
            Err(Reject::Stale)
        );
    }

    #[test]
    fn warnings_once_per_reason_per_period() {
        let mut warnings = Warnings::default();
        let t = Instant::now();
        assert!(warnings.due(Reject::BadTag, t));
        assert!(!warnings.due(Reject::BadTag, t + Duration::from_secs(9)));
        assert!(warnings.due(Reject::Replay, t + Duration::from_secs(9)));
        assert!(warnings.due(Reject::BadTag, t + WARN_EVERY));
        let names: Vec<_> = Reject::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), 7);
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn signing_end_to_end_through_a_key_file() {
        let file = TestKeyFile::new("signing-test");
        let (mut sender, mut receiver) = (file.open(1), file.open(2));
        let mut wire = frame::data(ID, b"hello");
        sender.seal(&mut wire);
        let got = receiver.verify(&wire).unwrap();
        assert_eq!(
            got.frame,
            Frame::Data {
                id: ID,
                message: b"hello"
            }
        );
        assert_eq!(got.signer, 1);
        assert_eq!(receiver.verify(&wire).map(|_| ()), Err(Reject::Replay));
        assert!(receiver.warn_now(Reject::Replay));
        assert!(!receiver.warn_now(Reject::Replay));
        assert_eq!(receiver.poll(), None);
        let missing = file.dir.join("missing");
        let err = Signing::open(&missing, 1, DEFAULT_MAX_AGE, SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(err.starts_with("key file "), "{err}");
    }
}
