//! SIGTERM and SIGINT set a flag instead of killing the process. As PID 1 in
//! a container the kernel drops signals that have no handler, so without
//! this `podman stop` / pod deletion would wait for SIGKILL.
//!
//! Blocking calls notice the flag because every socket that blocks has a
//! read timeout: with SO_RCVTIMEO set, a signal makes `recv` return EINTR
//! even under SA_RESTART (signal(7)), and the timeout bounds the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: i32) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn stop_on_term_and_int() {
    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleeps for `total`, or until a stop is requested; false if stopped.
pub fn sleep_unless_stopped(total: Duration) -> bool {
    let end = Instant::now() + total;
    loop {
        if stop_requested() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
