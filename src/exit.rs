//! How a run ends: the library returns a `Status` or a `Failure`, and
//! `finish` is the one place that turns them into an exit code (listed in
//! README) and says why on stderr.
//!
//! The stderr policy: a usage error is `program: what (see program --help)`,
//! before anything has run; every other failure is one ERROR line in the
//! log format, so `kubectl logs` shows it in line with the rest.

use crate::args::UsageError;
use crate::log_line;
use std::process::ExitCode;

/// How a run ended, or one broadcast: the first that is not `Ok` is the
/// run's (`Status::note`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything was sent (sender), or the receiver or relay stopped on
    /// SIGTERM/SIGINT, or `--check` found a socket.
    Ok,
    /// Could not run: a socket could not be opened or bound (or kept
    /// failing), stdin or stdout failed, `--check` found nothing bound.
    Failed,
    /// A message too large for one datagram, or no line on stdin.
    Refused,
    /// The service name did not resolve: not found, no ready pods, or no
    /// answer from the DNS servers.
    NotResolved,
    /// Some sends failed, or the DNS answer was too large to hold every
    /// pod, or some pods did not confirm: the others were still sent.
    Partial,
}

impl Status {
    /// Keeps the first status that is not `Ok`.
    pub fn note(&mut self, next: Status) {
        if *self == Status::Ok {
            *self = next;
        }
    }

    /// The exit code: this match is the one map.
    pub(crate) fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Refused => 2,
            Status::NotResolved => 3,
            Status::Partial => 4,
        }
    }
}

/// Why a run stopped before its end.
#[derive(Debug)]
pub enum Failure {
    /// Bad command line or environment variable: exit 2.
    Usage(UsageError),
    /// Could not run, or stopped running: exit 1.
    Failed(String),
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Failure {
        Failure::Usage(e)
    }
}

impl Failure {
    /// A stop handler that could not be installed (`os::signals`): every
    /// program says so alike.
    pub fn signals(e: std::io::Error) -> Failure {
        Failure::Failed(format!("cannot handle SIGTERM/SIGINT: {e}"))
    }
}

/// Sender and receiver write their log to stdout: started with it closed,
/// they fail at once rather than run without one.
pub fn need_stdout() -> Result<(), Failure> {
    if crate::os::sys::stdout_was_closed() {
        let why = "standard output is closed: there is nowhere to write the log";
        return Err(Failure::Failed(why.into()));
    }
    Ok(())
}

/// The exit code for `outcome`, after saying why on stderr.
pub fn finish(program: &str, outcome: Result<Status, Failure>) -> ExitCode {
    let status = match outcome {
        Ok(status) => status,
        Err(Failure::Usage(e)) => {
            log_line::plain_to_stderr(&format!("{program}: {e} (see {program} --help)"));
            Status::Refused
        }
        Err(Failure::Failed(why)) => {
            log_line::to_stderr(log_line::ERROR, &why);
            Status::Failed
        }
    };
    ExitCode::from(status.code())
}
