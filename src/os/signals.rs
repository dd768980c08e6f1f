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
//!   A write to a stdout or stderr nobody reads (a full pipe) has no such
//!   bound: a watchdog thread ends the process `STOP_GRACE` after it sees
//!   the stop (within 0.8 s of the signal), with `status_if_held_up`'s
//!   exit code (0 unless set), and what was not written by then is lost. A stop
//!   that is not held up ends sooner, the normal way.
//! - `exit_on_term_and_int`: end at once, for one-shot work that may block
//!   in a read or a DNS lookup (one broadcast, stdin lines). Outside PID 1
//!   the signal is raised again with its default action, so the parent
//!   (a shell loop, say) sees death by signal; as PID 1, where the default
//!   action does nothing, the process exits with 128 + the signal.

use crate::exit::Status;
use crate::os::sys;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long a stopping program may take before the watchdog ends it:
/// with the watchdog's 100 ms steps, within 0.8 s of the signal, leaving
/// room for a busy machine.
const STOP_GRACE: Duration = Duration::from_millis(700);

static STOP: AtomicBool = AtomicBool::new(false);
/// Whether the watchdog runs.
static WATCHDOG: AtomicBool = AtomicBool::new(false);
static EXIT_CODE_IF_HELD_UP: AtomicI32 = AtomicI32::new(0);

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
    if !WATCHDOG.swap(true, Ordering::SeqCst) {
        start_watchdog()?;
    }
    handle_term_and_int(set_stop_flag)?;
    Ok(Stop(()))
}

/// The thread that ends the process if a stop takes longer than
/// `STOP_GRACE`. It checks the flag in 100 ms steps, as the sender's pauses
/// do: a wake-up socket for the handler would cost a KB of a relay binary
/// that must stay under 600 KB, for nothing a program would notice.
fn start_watchdog() -> io::Result<()> {
    let watchdog = || {
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(STOP_GRACE);
        sys::exit_now(EXIT_CODE_IF_HELD_UP.load(Ordering::SeqCst));
    };
    super::spawn(std::thread::Builder::new(), Box::new(watchdog))
}

/// How the run ends if the watchdog has to end a stop that is held up:
/// as the program would have (`sender -r` after a failed round). Ok until
/// set.
pub fn status_if_held_up(status: Status) {
    EXIT_CODE_IF_HELD_UP.store(i32::from(status.code()), Ordering::SeqCst);
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
