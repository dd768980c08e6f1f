//! Exit codes, shared by the three programs and listed in README, and which
//! error gets which: the one place that maps them.

use crate::args::UsageError;
use crate::discover::DiscoverError;

/// Everything was sent (sender), or the receiver or relay stopped on
/// SIGTERM/SIGINT.
pub const OK: i32 = 0;
/// Could not run: a socket could not be opened or bound (or, for the
/// receiver and relay, kept failing), stdin or stdout failed, `--check`
/// found nothing bound.
pub const FAILURE: i32 = 1;
/// Bad command line or environment variable, or a message too large for
/// one datagram.
pub const USAGE: i32 = 2;
/// The service name did not resolve: not found, no ready pods, or no
/// answer from the DNS servers.
pub const NOT_RESOLVED: i32 = 3;
/// Some sends failed, or the DNS answer was too large to hold every pod:
/// the others were still sent.
pub const PARTIAL: i32 = 4;

impl UsageError {
    pub fn exit_code(&self) -> i32 {
        USAGE
    }
}

impl DiscoverError {
    pub fn exit_code(&self) -> i32 {
        NOT_RESOLVED
    }
}
