//! Replay and freshness of signed frames (docs/PROTOCOL.md, "Signed
//! frames"): a signed frame is accepted once, and only near its send time.
//!
//! Every signed datagram carries its signer's id (random per process), a
//! counter (one number per signed datagram of that signer) and its send
//! time. Per signer, a sliding window over the counters remembers which of
//! the last `WINDOW` numbers arrived, as IPsec and WireGuard do (RFC 6479):
//! a copy arriving again, or one too far behind the newest, is a replay.
//! A frame whose send time is more than `--max-age` away from the clock,
//! either way, is stale (or from the future) whatever its counter.
//!
//! After a restart every window is gone, so a frame captured earlier
//! could be accepted again while it is younger than max-age. Instead, a
//! signer without a window is accepted only for frames sent at or after the
//! moment the receiver started (`floor`): nothing sent before the restart
//! can be replayed after it, and nothing needs to be stored on disk. The
//! cost: for as long as a signer's clock is behind the receiver's, its
//! frames right after a restart are refused (a `--confirm` sender's retries
//! are signed anew, so they get through once its clock passes the start).
//! The same floor, raised to the newest send time forgotten, covers the
//! signers pushed out of the bounded memory below.

use crate::signed::Reject;
use std::time::{Duration, SystemTime};

/// The default of `--max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);
/// Words of the bitmap per signer: 16 × 64 bits.
const WORDS: usize = 16;
/// Counters behind the newest that are still told apart: a frame that far
/// behind (reordered by more than 960 datagrams) is refused as a replay.
pub const WINDOW: u64 = (WORDS as u64 - 1) * 64;
/// Signers per generation, as `seen.rs` bounds sources: two generations
/// of 1792 windows of about 150 bytes, at most about 600 KiB. Only holders
/// of a key can make signers, so a flood of them is not expected; it can
/// only make the receiver forget the least recently active ones.
pub const GENERATION: usize = crate::seen::GENERATION;

/// Milliseconds since the Unix epoch (0 before it), as frames carry it.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Clone)]
struct Window {
    newest: u64,
    bits: [u64; WORDS],
    /// The newest send time accepted: what the floor rises to if this
    /// window is forgotten.
    last_sent_ms: u64,
}

impl Window {
    fn starting_at(counter: u64) -> Window {
        Window {
            newest: counter,
            bits: [0; WORDS],
            last_sent_ms: 0,
        }
    }

    /// Records `counter`; false if it was recorded before or is too old.
    fn accept(&mut self, counter: u64) -> bool {
        if counter > self.newest {
            // Clear the words the window slides over (all, past a full turn).
            let from = self.newest / 64;
            let steps = (counter / 64 - from).min(WORDS as u64);
            for step in 1..=steps {
                self.bits[((from + step) % WORDS as u64) as usize] = 0;
            }
            self.newest = counter;
        } else if self.newest - counter >= WINDOW {
            return false;
        }
        let word = &mut self.bits[((counter / 64) % WORDS as u64) as usize];
        let bit = 1u64 << (counter % 64);
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        true
    }
}

/// Windows by signer, sorted by signer and found by binary search: a
/// HashMap of this type would add about 2 KB of hashbrown code to each
/// binary, which must stay small (images under 600 KB). A lookup is as
/// cheap; only a signer's first frame moves the entries after it.
#[derive(Default)]
struct Windows(Vec<(u64, Window)>);

impl Windows {
    fn find(&self, signer: u64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&signer, |&(s, _)| s)
    }

    fn get_mut(&mut self, signer: u64) -> Option<&mut Window> {
        let i = self.find(signer).ok()?;
        Some(&mut self.0[i].1)
    }

    fn remove(&mut self, signer: u64) -> Option<Window> {
        let i = self.find(signer).ok()?;
        Some(self.0.remove(i).1)
    }

    /// Only for a signer not in it (as after `get_mut` found none).
    fn insert(&mut self, signer: u64, window: Window) -> &mut Window {
        let i = self.find(signer).unwrap_or_else(|i| i);
        self.0.insert(i, (signer, window));
        &mut self.0[i].1
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The replay windows of the signers heard from, and the freshness rule.
pub struct Replay {
    current: Windows,
    previous: Windows,
    /// Unknown signers' frames sent before this are refused: the start
    /// time, raised when windows are forgotten.
    floor_ms: u64,
    max_age_ms: u64,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Replay({} signers)", self.signers())
    }
}

impl Replay {
    /// For a receiver (or relay, or sender reading ACKs) that started at
    /// `started`, accepting send times within `max_age` of its clock.
    pub fn new(started: SystemTime, max_age: Duration) -> Replay {
        Replay {
            current: Windows::default(),
            previous: Windows::default(),
            floor_ms: unix_ms(started),
            max_age_ms: max_age.as_millis() as u64,
        }
    }

    /// Accepts (and remembers) counter `counter` of `signer`, sent at
    /// `sent_ms`, if it is fresh at `now` and not seen before. Call it only
    /// for frames whose tag was verified: it records what it accepts.
    pub fn check(
        &mut self,
        signer: u64,
        counter: u64,
        sent_ms: u64,
        now: SystemTime,
    ) -> Result<(), Reject> {
        let now_ms = unix_ms(now);
        if sent_ms.saturating_add(self.max_age_ms) < now_ms {
            return Err(Reject::Stale);
        }
        if sent_ms > now_ms.saturating_add(self.max_age_ms) {
            return Err(Reject::Future);
        }
        let window = match self.current.get_mut(signer) {
            Some(window) => window,
            None => {
                let window = match self.previous.remove(signer) {
                    Some(window) => window,
                    None if sent_ms < self.floor_ms => return Err(Reject::Replay),
                    None => Window::starting_at(counter),
                };
                if self.current.len() >= GENERATION {
                    // Above every send time forgotten: those may be replays.
                    let forgotten = self
                        .previous
                        .0
                        .iter()
                        .map(|(_, w)| w.last_sent_ms.saturating_add(1))
                        .max();
                    self.floor_ms = self.floor_ms.max(forgotten.unwrap_or(0));
                    self.previous = std::mem::take(&mut self.current);
                }
                self.current.insert(signer, window)
            }
        };
        if !window.accept(counter) {
            return Err(Reject::Replay);
        }
        window.last_sent_ms = window.last_sent_ms.max(sent_ms);
        Ok(())
    }

    /// Signers remembered (for tests of the bound).
    pub fn signers(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u64 = 1_796_000_000_000; // ms, December 2026

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn replay() -> Replay {
        Replay::new(at(START), DEFAULT_MAX_AGE)
    }

    #[test]
    fn each_counter_once_within_the_window() {
        let mut r = replay();
        let now = at(START + 1000);
        let sent = START + 500;
        // (signer, counter, accepted?)
        let steps: &[(u64, u64, bool)] = &[
            (1, 1, true),
            (1, 1, false),
            (1, 3, true),
            (1, 2, true),
            (1, 2, false),
            (2, 1, true),
            (1, 1000, true),
            (1, 1000 - WINDOW + 1, true),
            (1, 1000 - WINDOW, false),
            (1, 3, false),
            (1, 999, true),
            (1, 999, false),
            // A jump of more than the whole bitmap clears it.
            (1, 100_000, true),
            (1, 100_000 - 64, true),
            (1, 1000, false),
            (1, u64::MAX, true),
            (1, u64::MAX, false),
        ];
        for (i, &(signer, counter, want)) in steps.iter().enumerate() {
            let got = r.check(signer, counter, sent, now);
            let want = if want { Ok(()) } else { Err(Reject::Replay) };
            assert_eq!(got, want, "step {i}: signer {signer} counter {counter}");
        }
    }

    #[test]
    fn every_counter_of_a_long_reordered_stream_once() {
        let mut r = replay();
        let now = at(START + 1);
        for base in (0..5000u64).step_by(100) {
            // Each hundred arrives backwards, then all of it again.
            for counter in (base..base + 100).rev() {
                assert_eq!(r.check(7, counter, START, now), Ok(()), "{counter}");
            }
            for counter in base..base + 100 {
                assert_eq!(r.check(7, counter, START, now), Err(Reject::Replay));
            }
        }
    }

    #[test]
    fn freshness_both_ways_and_the_start_floor() {
        let max = DEFAULT_MAX_AGE.as_millis() as u64;
        let now = START + 10 * max;
        // (what, signer, sent, result): each signer is new, so only time decides.
        let cases: [(&str, u64, u64, Result<(), Reject>); 7] = [
            ("now", 1, now, Ok(())),
            ("max-age old", 2, now - max, Ok(())),
            ("older", 3, now - max - 1, Err(Reject::Stale)),
            ("max-age ahead", 4, now + max, Ok(())),
            ("further ahead", 5, now + max + 1, Err(Reject::Future)),
            ("long ago", 6, 0, Err(Reject::Stale)),
            ("far future", 7, u64::MAX, Err(Reject::Future)),
        ];
        for (what, signer, sent, want) in cases {
            assert_eq!(replay().check(signer, 1, sent, at(now)), want, "{what}");
        }
        // Just restarted: a frame sent before the start is not believed
        // though it is young, one sent after is.
        let mut r = replay();
        let now = at(START + 5);
        assert_eq!(r.check(9, 1, START - 1, now), Err(Reject::Replay));
        assert_eq!(r.check(9, 2, START, now), Ok(()));
        // Once the signer is known, its window decides, not the floor.
        assert_eq!(r.check(9, 1, START - 1, now), Ok(()));
    }

    #[test]
    fn a_flood_of_signers_stays_bounded_and_forgotten_ones_cannot_replay() {
        let mut r = replay();
        let now = at(START + 30_000);
        assert_eq!(r.check(0, 1, START + 10, now), Ok(()));
        for signer in 1..20_000u64 {
            assert_eq!(r.check(signer, 1, START + 20 + signer, now), Ok(()));
            assert!(r.signers() <= 2 * GENERATION);
            if signer % 100 == 0 {
                // The active signer is still known: its window refuses.
                assert_eq!(r.check(0, 1, START + 10, now), Err(Reject::Replay));
            }
        }
        // Long forgotten, yet its old frame is refused: the floor rose.
        assert_eq!(r.check(1, 1, START + 21, now), Err(Reject::Replay));
        assert_eq!(r.check(1, 2, START + 25_000, now), Ok(()), "newer is fine");
    }
}
