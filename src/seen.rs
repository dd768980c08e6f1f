//! The receiver's side of confirmed delivery (docs/PROTOCOL.md): what to
//! log and what to acknowledge for each datagram, and the bounded memory
//! of recent (sender id, sequence) pairs that logs each message once when
//! a lost acknowledgement makes the sender send it again.

use crate::frame::{self, Frame, Id};
use crate::keyed;
use crate::signed::{self, Signing};
use crate::trust::Trusted;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Pairs remembered per source. A sender waits for one message at a time
/// (retries end within its timeout), so a few suffice.
const PER_SOURCE: usize = 4;
/// Sources per generation: fills a hash map of 2048 buckets exactly.
pub const GENERATION: usize = 1792;
/// Sources remembered at most: two generations.
#[cfg(test)]
const SOURCES: usize = 2 * GENERATION;

/// Recent (sender id, sequence) pairs per source address and port.
///
/// Bounded whatever arrives: at most `SOURCES` (3584) sources of
/// `PER_SOURCE` pairs, two maps of 2048 buckets of about 110 bytes, so
/// about 430 KiB. Sources are kept in two generations; when the current
/// one has `GENERATION` sources, the older one is forgotten. A source seen again moves to the current
/// generation, so a flood of new sources pushes out the least recently
/// active ones; forgetting can only mean a late retry is logged again.
#[derive(Default)]
pub struct Seen {
    current: HashMap<SocketAddr, Recent>,
    previous: HashMap<SocketAddr, Recent>,
    /// Sources whose FORWARDED frames are believed (`--trust-relay`).
    relays: Trusted,
    /// The last `first_time` found a gap (`Handling::gap`).
    gap: bool,
    /// `--key-file`: see `with_key`.
    signing: Option<Box<Signing>>,
}

/// A ring of the last `PER_SOURCE` pairs of one source.
#[derive(Clone, Default)]
struct Recent {
    ids: [Id; PER_SOURCE],
    len: u8,
    next: u8,
}

impl Seen {
    /// FORWARDED frames from `relays` log their client; from anywhere
    /// else, they are logged whole, like any datagram.
    pub fn trusting(relays: Trusted) -> Seen {
        Seen {
            relays,
            ..Seen::default()
        }
    }

    /// Records `id` from `source`; true the first time it is seen.
    fn first_time(&mut self, source: SocketAddr, id: Id) -> bool {
        let recent = match self.current.get_mut(&source) {
            Some(recent) => recent,
            None => {
                let moved = self.previous.remove(&source).unwrap_or_default();
                if self.current.len() >= GENERATION {
                    self.previous = std::mem::take(&mut self.current);
                }
                self.current.entry(source).or_insert(moved)
            }
        };
        let known = &recent.ids[..usize::from(recent.len)];
        if known.contains(&id) {
            return false;
        }
        // Past the next number of the same sender: a message in between
        // never arrived, retries included (a metric, nothing more).
        let last = known
            .iter()
            .filter(|k| k.sender == id.sender)
            .map(|k| k.seq)
            .max();
        let gap = last.is_some_and(|last| id.seq > last.saturating_add(1));
        recent.ids[usize::from(recent.next)] = id;
        recent.next = (recent.next + 1) % PER_SOURCE as u8;
        recent.len = (recent.len + 1).min(PER_SOURCE as u8);
        self.gap = gap;
        true
    }

    /// Sources remembered (for tests of the bound).
    pub fn sources(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// What to do with one datagram.
#[derive(Debug, PartialEq)]
pub struct Handling<'a> {
    /// The message to log and the source to log it with; None for a copy
    /// already logged (counted here) or a datagram refused for its
    /// signature (counted by `keyed::rejected`).
    pub log: Option<(&'a [u8], SocketAddr)>,
    /// The acknowledgement to send back to the datagram's source.
    pub ack: Option<Ack>,
    /// A new message past the next number of its sender: one in between
    /// never arrived, retries included (a metric, nothing more).
    pub gap: bool,
}

/// An acknowledgement: an ACK frame, signed with a key (87 bytes) or not
/// (22); used as the bytes to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ack {
    bytes: [u8; signed::MIN_LEN],
    len: usize,
}

impl Ack {
    pub fn of(id: Id, signing: Option<&mut Signing>) -> Ack {
        let unsigned = frame::ack(id);
        let mut ack = Ack {
            bytes: [0; signed::MIN_LEN],
            len: frame::ACK_LEN,
        };
        ack.bytes[..frame::ACK_LEN].copy_from_slice(&unsigned);
        if let Some(signing) = signing {
            // Room for the signature: sealing allocates once.
            let mut sealed = Vec::with_capacity(signed::MIN_LEN);
            sealed.extend_from_slice(&unsigned);
            signing.seal(&mut sealed);
            ack.bytes.copy_from_slice(&sealed);
            ack.len = sealed.len();
        }
        ack
    }
}

impl std::ops::Deref for Ack {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Seen {
    /// With a key (`--key-file`), only frames signed with it are logged and
    /// acknowledged (acknowledgements signed too), and a signed FORWARDED
    /// frame's source is believed whoever passed it on; anything else is
    /// counted and warned about (`keyed::rejected`), never logged.
    pub fn with_key(self, signing: Option<Box<Signing>>) -> Seen {
        Seen { signing, ..self }
    }

    /// Reads the key file again if it changed (see `keyed::idle`).
    pub fn idle(&mut self) {
        keyed::idle(&mut self.signing);
    }

    /// Plain datagrams (anything not a DATA frame, and a FORWARDED frame
    /// from a source that is not a trusted relay) are logged whole, from
    /// their source, as always.
    pub fn handle<'a>(&mut self, datagram: &'a [u8], from: SocketAddr) -> Handling<'a> {
        let Some(signing) = &mut self.signing else {
            return self.handle_frame(frame::parse(datagram), datagram, from);
        };
        keyed::poll(signing);
        match signing.verify(datagram) {
            Ok(signed) => self.handle_frame(Some(signed.frame), datagram, from),
            Err(reason) => {
                keyed::rejected(signing, reason, from);
                Handling {
                    log: None,
                    ack: None,
                    gap: false,
                }
            }
        }
    }

    /// `frame` is what `datagram` carries (verified, with a key).
    fn handle_frame<'a>(
        &mut self,
        frame: Option<Frame<'a>>,
        datagram: &'a [u8],
        from: SocketAddr,
    ) -> Handling<'a> {
        // With a key, a signed FORWARDED frame is believed whoever passed
        // it on: only a key holder (a relay) could sign it.
        let signed = self.signing.is_some();
        match frame {
            Some(Frame::Data { id, message }) => self.once(id, message, from),
            // Once per client and id: the relay re-sends a DATA frame
            // its client re-sent, to the pods that did not acknowledge.
            Some(Frame::Forwarded {
                id,
                source,
                message,
                confirm: true,
            }) if signed || self.relays.contains(from.ip()) => self.once(id, message, source),
            Some(Frame::Forwarded {
                source, message, ..
            }) if signed || self.relays.contains(from.ip()) => Handling {
                log: Some((message, source)),
                ack: None,
                gap: false,
            },
            // Only signed (`frame::parse_signed`): the signer's counter
            // already made it once only.
            Some(Frame::Message { message, .. }) => Handling {
                log: Some((message, from)),
                ack: None,
                gap: false,
            },
            // A signed ACK is no message (it is not for a receiver).
            _ if signed => Handling {
                log: None,
                ack: None,
                gap: false,
            },
            _ => Handling {
                log: Some((datagram, from)),
                ack: None,
                gap: false,
            },
        }
    }

    /// A message to acknowledge, logged the first time `id` comes from
    /// `source`; a copy is counted.
    fn once<'a>(&mut self, id: Id, message: &'a [u8], source: SocketAddr) -> Handling<'a> {
        self.gap = false;
        let first = self.first_time(source, id);
        if !first {
            crate::metrics::DUPLICATES_SUPPRESSED.inc();
        }
        Handling {
            log: first.then_some((message, source)),
            ack: Some(Ack::of(id, self.signing.as_deref_mut())),
            gap: self.gap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 5000))
    }

    fn id(sender: u64, seq: u64) -> Id {
        Id { sender, seq }
    }

    #[test]
    fn each_pair_once_per_source() {
        let mut seen = Seen::default();
        // (source, sender, seq, first time?)
        let steps = [
            (1, 7, 1, true),
            (1, 7, 1, false),
            (1, 7, 2, true),
            (1, 8, 1, true),
            (2, 7, 1, true),
            (2, 7, 1, false),
            (1, 7, 1, false),
        ];
        for (i, &(source, sender, seq, want)) in steps.iter().enumerate() {
            assert_eq!(
                seen.first_time(addr(source), id(sender, seq)),
                want,
                "step {i}"
            );
        }
    }

    #[test]
    fn a_source_keeps_its_last_pairs() {
        let mut seen = Seen::default();
        for seq in 0..100 {
            assert!(seen.first_time(addr(1), id(1, seq)));
        }
        for seq in 100 - PER_SOURCE as u64..100 {
            assert!(!seen.first_time(addr(1), id(1, seq)), "{seq}");
        }
        assert!(
            seen.first_time(addr(1), id(1, 0)),
            "forgotten: logged again"
        );
    }

    #[test]
    fn a_flood_of_sources_stays_bounded_and_spares_active_ones() {
        let mut seen = Seen::default();
        assert!(seen.first_time(addr(0), id(1, 1)));
        for i in 1..100_000 {
            seen.first_time(addr(i), id(i as u64, 1));
            assert!(seen.sources() <= SOURCES);
            if i % 100 == 0 {
                // The active source is still known.
                assert!(!seen.first_time(addr(0), id(1, 1)), "{i}");
            }
        }
        assert!(seen.first_time(addr(1), id(1, 1)), "long gone");
    }

    #[test]
    fn handling() {
        let from = addr(1);
        let relay_client: SocketAddr = "10.9.9.9:4000".parse().unwrap();
        let msg_id = id(5, 1);
        let data = frame::data(msg_id, b"test");
        let mut forwarded = Vec::new();
        frame::write_forwarded(&mut forwarded, msg_id, relay_client, b"hi");
        let mut forwarded_data = Vec::new();
        frame::write_forwarded_data(&mut forwarded_data, msg_id, relay_client, b"hi");
        let ack = frame::ack(msg_id);
        let mut bad_version = data.clone();
        bad_version[4] = 9;
        // Unsigned, a MESSAGE frame (kind 5) is plain bytes, as before it existed.
        let message = frame::message(msg_id, b"m");
        let mut seen = Seen::trusting(Trusted::parse("10.0.0.0/24", "test").unwrap());
        let mut untrusted = Seen::trusting(Trusted::parse("10.0.1.1", "test").unwrap());
        for frame in [&forwarded, &forwarded_data] {
            let got = untrusted.handle(frame, from);
            assert_eq!(got.log, Some((&frame[..], from)), "forged: logged whole");
            assert_eq!(got.ack, None, "and not acknowledged");
        }
        type Case<'a> = (&'a str, &'a [u8], Option<(&'a [u8], SocketAddr)>, bool);
        let cases: Vec<Case> = vec![
            ("plain", b"test", Some((b"test", from)), false),
            ("data", &data, Some((b"test", from)), true),
            ("data again", &data, None, true),
            ("forwarded", &forwarded, Some((b"hi", relay_client)), false),
            (
                "forwarded again",
                &forwarded,
                Some((b"hi", relay_client)),
                false,
            ),
            ("an ack", &ack, Some((&ack, from)), false),
            ("unsigned message", &message, Some((&message, from)), false),
            (
                "forwarded data",
                &forwarded_data,
                Some((b"hi", relay_client)),
                true,
            ),
            ("forwarded data again", &forwarded_data, None, true),
            (
                "bad version",
                &bad_version,
                Some((&bad_version, from)),
                false,
            ),
        ];
        for (what, datagram, log, acked) in cases {
            let got = seen.handle(datagram, from);
            assert_eq!(got.log, log, "{what}");
            assert_eq!(got.ack.is_some(), acked, "{what}");
            if let Some(ack) = got.ack {
                assert_eq!(frame::parse(&ack), Some(Frame::Ack(msg_id)));
                assert!(ack.len() <= datagram.len(), "no amplification");
            }
        }
    }

    #[test]
    fn with_a_key_only_signed_frames_count() {
        let file = crate::signed::TestKeyFile::new("seen-key");
        let open = |signer| Box::new(file.open(signer));
        let (mut sender, checker) = (open(1), open(3));
        let mut seen = Seen::default().with_key(Some(open(2)));
        let mut checker = Some(checker);
        let from = addr(1);
        let client: SocketAddr = "10.9.9.9:4000".parse().unwrap();
        let mut data = frame::data(id(5, 1), b"test");
        sender.seal(&mut data);
        let mut forwarded = Vec::new();
        frame::write_forwarded(&mut forwarded, id(6, 1), client, b"hi");
        sender.seal(&mut forwarded);
        let mut message = frame::message(id(5, 2), b"note");
        sender.seal(&mut message);

        let got = seen.handle(&data, from);
        assert_eq!(got.log, Some((&b"test"[..], from)));
        let ack = got.ack.expect("acknowledged");
        assert_eq!(ack.len(), signed::MIN_LEN);
        let verified = checker.as_mut().unwrap().verify(&ack).unwrap();
        assert_eq!(verified.frame, Frame::Ack(id(5, 1)));
        // Signed MESSAGE: logged, not acknowledged; its copy is a replay.
        let got = seen.handle(&message, from);
        assert_eq!((got.log, got.ack), (Some((&b"note"[..], from)), None));
        // Not trusted by address (no --trust-relay): by its signature.
        assert_eq!(
            seen.handle(&forwarded, from).log,
            Some((&b"hi"[..], client))
        );
        for (what, datagram) in [
            ("replayed", data.clone()),
            ("replayed message", message.clone()),
            ("plain", b"test".to_vec()),
            ("unsigned frame", frame::data(id(5, 2), b"x")),
        ] {
            assert_eq!(
                seen.handle(&datagram, from),
                Handling {
                    log: None,
                    ack: None,
                    gap: false,
                },
                "{what}"
            );
        }
    }
}
