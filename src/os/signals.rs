//! SIGTERM and SIGINT, for programs that may run as PID 1 in a container,
//! where the kernel drops signals that have no handler: without one,
//! `podman stop` or a pod deletion would wait for SIGKILL.
//!
//! Two ways to handle them:
//! - `stop_on_term_and_int`: set a flag that loops check (the receiver,
//!   `sender --idle`, repeated broadcasts), so they end cleanly, exit 0.
//!   Blocking calls notice it because every socket that blocks has a read
//!   timeout: with SO_RCVTIMEO set, a signal makes `recv` return EINTR even
//!   under SA_RESTART (signal(7)), and the timeout bounds the rest.
//! - `exit_on_term_and_int`: end at once, for one-shot work that may block
//!   in a read or a DNS lookup (one broadcast, stdin lines). Outside PID 1
//!   the signal is raised again with its default action, so the parent
//!   (a shell loop, say) sees death by signal; as PID 1, where the default
//!   action does nothing, the process exits with 128 + the signal.

use crate::os::sys;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn set_stop_flag(_signal: i32) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn exit_now(signum: i32) {
    sys::reraise_with_default_action(signum);
}

fn handle_term_and_int(handler: extern "C" fn(i32)) -> io::Result<()> {
    sys::set_signal_handler(sys::SIGINT, handler)?;
    sys::set_signal_handler(sys::SIGTERM, handler)
}

/// The handle of a stop request: what a loop that must end on
/// SIGTERM/SIGINT is handed, rather than reading the flag on its own.
/// After `exit_on_term_and_int` no stop is ever requested.
#[derive(Clone, Copy)]
pub struct Stop(());

/// Fails only if the C library refuses the handler, which it does not for
/// these signals: callers may treat that as a bug.
pub fn stop_on_term_and_int() -> io::Result<Stop> {
    handle_term_and_int(set_stop_flag)?;
    Ok(Stop(()))
}

pub fn exit_on_term_and_int() -> io::Result<Stop> {
    handle_term_and_int(exit_now)?;
    Ok(Stop(()))
}

impl Stop {
    pub fn requested(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }

    /// Sleeps for `total`, or until a stop is requested; false if stopped.
    pub fn sleep(&self, total: Duration) -> bool {
        sleep_unless_stopped(self, total)
    }
}

fn sleep_unless_stopped(stop: &Stop, total: Duration) -> bool {
    let end = Instant::now() + total;
    loop {
        if stop.requested() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
