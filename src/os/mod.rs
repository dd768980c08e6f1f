//! Where the programs meet the kernel beyond what std offers, in one
//! vocabulary: `sys` holds every `extern "C"` and the `repr(C)` types the
//! calls take; the others build on it: `socket` (dual-stack bind with its
//! IPv4 fallback, receive buffer, batches), `pktinfo` (the address a
//! datagram came to, answering from it), `signals` (SIGTERM/SIGINT),
//! `procnet` (the one reader of /proc/net/udp).

pub mod pktinfo;
pub mod procnet;
pub mod signals;
pub mod socket;
pub mod sys;

/// A number another process is unlikely to draw: std's `RandomState` is
/// seeded from the OS's random source once per process; the time and the
/// process id make two draws in one process differ.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

/// Starts `run` on a thread of its own, detached. Every thread of the
/// programs starts here: std's spawn is generic over the closure, and each
/// closure type linked a copy of it (about 1 KB a thread, of binaries that
/// must stay under 600 KB).
pub fn spawn(
    builder: std::thread::Builder,
    run: Box<dyn FnOnce() + Send + 'static>,
) -> std::io::Result<()> {
    builder.spawn(run).map(drop)
}
