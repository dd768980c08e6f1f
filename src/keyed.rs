//! What `--key-file` changes in sender, receiver and relay (docs/PROTOCOL.md,
//! "Signed frames"), kept here so each binary only opens a [`Signing`] and
//! hands it to the one place its datagrams go out or come in: `Seen` (the
//! receiver), `forward::judge` (the relay), [`Signer`] and `Confirmer` (the
//! sender). Without a key none of this changes a byte.

use crate::args::{self, UsageError};
use crate::frame::{self, Id};
use crate::log_line;
use crate::metrics::Counter;
use crate::replay::DEFAULT_MAX_AGE;
use crate::signed::{Reject, Signing};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// The `--help` lines of `--key-file` and `--max-age`, the same in each
/// binary: `concat!(..., udp_headless::key_options_help!(), ...)`.
#[macro_export]
macro_rules! key_options_help {
    () => {
        "      --key-file PATH   sign every frame, and accept only  UDP_HEADLESS_KEY_FILE
                        frames signed, with a key of this file (one base64
                        key a line, the first signs; make one with
                        `head -c 32 /dev/urandom | base64`); read again
                        when it changes (docs/PROTOCOL.md, Signed frames)
      --max-age TIME    refuse signed frames sent longer    UDP_HEADLESS_MAX_AGE
                        ago, or further ahead, than this [60s]"
    };
}

/// `--key-file` and `--max-age` (or their variables): the key file opened,
/// or None without one. `since`: see `Signing::open` (receiver and relay:
/// now; a sender: `UNIX_EPOCH`). A key file that cannot be used is a usage
/// error naming the file and line, never a key.
pub fn open(
    key_file: Option<String>,
    max_age: Option<String>,
    since: SystemTime,
) -> Result<Option<Box<Signing>>, UsageError> {
    let max_age = match args::option_or_env(max_age, "--max-age", "UDP_HEADLESS_MAX_AGE")? {
        Some((text, from)) => match args::parse_duration(&text, &from)? {
            zero if zero.is_zero() => {
                return Err(UsageError::Invalid(format!("{from}: must be more than 0")))
            }
            age => Some((age, from)),
        },
        None => None,
    };
    let Some((path, _)) = args::option_or_env(key_file, "--key-file", "UDP_HEADLESS_KEY_FILE")?
    else {
        // As UDP_HEADLESS_TIMEOUT without --confirm: a variable alone is
        // ignored, an option alone is a mistake.
        return match max_age {
            Some((_, from)) if from == "--max-age" => Err(UsageError::Invalid(
                "--max-age needs --key-file".to_string(),
            )),
            _ => Ok(None),
        };
    };
    let max_age = max_age.map_or(DEFAULT_MAX_AGE, |(age, _)| age);
    let signer = frame::random_sender_id();
    IN_USE.store(true, Ordering::Relaxed);
    Signing::open(Path::new(&path), signer, max_age, since)
        .map(|s| Some(Box::new(s)))
        .map_err(UsageError::Invalid)
}

/// Signed datagrams refused, by reason (`Reject::ALL`'s order), exposed as
/// `udp_headless_signed_rejected_total{reason="..."}` by receiver and relay.
pub static REJECTED: [Counter; Reject::ALL.len()] = [
    Counter::new("unsigned", ""),
    Counter::new("malformed", ""),
    Counter::new("unknown_key", ""),
    Counter::new("bad_tag", ""),
    Counter::new("stale", ""),
    Counter::new("future", ""),
    Counter::new("replay", ""),
];

/// Whether this process has a key: without one, /metrics stays as it was
/// (no `reason` label).
pub static IN_USE: AtomicBool = AtomicBool::new(false);

pub const REJECTED_NAME: &str = "udp_headless_signed_rejected_total";
pub const REJECTED_HELP: &str =
    "Datagrams refused for want of a valid, fresh, new signature (with --key-file), by reason.";

/// Counts a datagram from `from` refused for `reason`, and says so in the
/// log at most once per reason per 10 s, so a flood cannot fill the log.
/// Cold: kept out of the per-datagram paths it is called from.
#[cold]
#[inline(never)]
pub fn rejected(signing: &mut Signing, reason: Reject, from: SocketAddr) {
    REJECTED[reason.index()].inc();
    if signing.warn_now(reason) {
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let message = format!(
            "ignored {} from {from} (reason {}: counted, warned about at most every 10 s)",
            reason.describe(),
            reason.name()
        );
        log_line::to_stderr(log_line::WARNING, &message);
    }
}

/// `poll` while no datagram comes (the receive timeout): a rotation is
/// logged when it happens, not at the next datagram.
pub fn idle(signing: &mut Option<Box<Signing>>) {
    if let Some(signing) = signing {
        poll(signing);
    }
}

/// Reads the key file again if it changed; logs what happened as one line.
pub fn poll(signing: &mut Signing) {
    if let Some(reload) = signing.poll() {
        log_reload(reload);
    }
}

/// Out of line: a reload is rare, and `poll` is inlined in hot loops.
#[cold]
#[inline(never)]
fn log_reload(reload: crate::keyring::Reload) {
    let level = match reload {
        crate::keyring::Reload::Loaded { .. } => log_line::INFO,
        crate::keyring::Reload::Kept { .. } => log_line::WARNING,
    };
    log_line::to_stderr(level, &reload.to_string());
}

/// A sender's messages without `--confirm`: as given without a key, each a
/// signed MESSAGE frame with one (logged, not acknowledged: nobody waits
/// for an ACK, so none is sent).
#[derive(Debug, Default)]
pub struct Signer {
    signing: Option<Box<Signing>>,
    id: Id,
}

impl Signer {
    pub fn new(signing: Option<Box<Signing>>) -> Signer {
        Signer {
            signing,
            id: Id {
                sender: frame::random_sender_id(),
                seq: 0,
            },
        }
    }

    /// What to send for `message` to one pod: itself without a key, else
    /// a frame signed for this datagram alone (a new counter).
    pub fn datagram<'m>(&mut self, message: &'m [u8]) -> Cow<'m, [u8]> {
        let Some(signing) = &mut self.signing else {
            return Cow::Borrowed(message);
        };
        poll(signing);
        self.id.seq += 1;
        let mut datagram = frame::message(self.id, message);
        signing.seal(&mut datagram);
        Cow::Owned(datagram)
    }

    /// Hands the key over (to a `Confirmer`).
    pub fn take(&mut self) -> Option<Box<Signing>> {
        self.signing.take()
    }

    pub fn is_signing(&self) -> bool {
        self.signing.is_some()
    }
}

/// The bytes a key adds to each message a sender sends: a frame's header
/// (added anyway with `--confirm`) and the signature.
pub const SENDER_OVERHEAD: usize = frame::HEADER_LEN + crate::signed::OVERHEAD;
