//! A small blocking DNS client, just enough to list every pod of a headless
//! Service when the system resolver cannot be trusted to.
//!
//! Why the sender asks DNS itself: musl's getaddrinfo (what `ToSocketAddrs`
//! calls in a static musl binary) returns at most 48 addresses and says
//! nothing about the rest; glibc returns everything that fits in one answer
//! and says nothing when even that is cut.
//!
//! Why two queries: an answer over UDP without EDNS holds 512 bytes, about 28
//! A records for a `cluster.local` name. Past that the server sets TC
//! (truncated) and the client asks again over TCP, where one message holds
//! 64 KiB: about 4090 A or 2340 AAAA records. No DNS answer can hold more,
//! so past that we report how many we got instead of silently sending to
//! some.
//!
//! Why the search list: a pod asks for `headless-udp`, and with Kubernetes'
//! `ndots:5` a name with fewer than 5 dots tries each search domain before
//! the name itself, exactly as glibc (see `search_names`).
//!
//! The parser reads what the network sends, so it never indexes blindly:
//! every read is bounds-checked, a compression pointer must point before the
//! previous one (so pointers cannot loop), names stay within 255 bytes and
//! labels within 63, and record counts are believed only as far as the
//! bytes go.
//!
//! Three parts, one job each: `wire` encodes queries and parses answers
//! (the hostile input), `transport` exchanges one question with the
//! resolv.conf servers (UDP, then TCP when the answer is truncated), and
//! `lookup` is the policy (search list, ndots, CNAMEs, which error wins).

mod lookup;
mod transport;
pub mod wire;

pub use lookup::{lookup, search_names, Query};
pub use wire::RecordType;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// What a name resolved to.
#[derive(Debug, PartialEq)]
pub struct Found {
    /// The name that has the addresses, after the search list and CNAMEs.
    pub name: String,
    /// In the answer's order; duplicates are the caller's business.
    pub addrs: Vec<IpAddr>,
    /// The answer could not hold every record: TC even over TCP, or a
    /// 64 KiB message with no room for one more.
    pub truncated: bool,
    /// The smallest TTL of the records used (CNAMEs and addresses): how
    /// long this answer may be kept.
    pub ttl: Duration,
}

/// Why a name did not resolve. Each reads as the end of a sentence that
/// starts with the name ("service 'x' ...") and is one line.
#[derive(Clone, Debug, PartialEq)]
pub enum LookupError {
    /// Not a name DNS can carry (empty label, too long).
    BadName(String),
    /// NXDOMAIN for every name of the search path, listed here.
    NotFound(Vec<String>),
    /// The name exists, without records of the types asked: (name, types).
    NoRecords(String, String),
    /// Every server answered SERVFAIL for every name tried.
    ServerFailure(String),
    /// REFUSED, NOTIMP or another error code.
    Refused(String),
    /// No answer at all: timed out, or nothing listening.
    Unreachable(String),
    /// The answer did not fit UDP, and the same servers failed over TCP.
    TcpFailed(String),
    /// Answers that cannot be read, or that answer another question.
    Malformed(String),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            LookupError::BadName(why) => write!(f, "is not a valid DNS name: {why}"),
            LookupError::NotFound(names) => write!(
                f,
                "was not found: no such name in DNS (NXDOMAIN for {})",
                names.join(", ")
            ),
            LookupError::NoRecords(name, types) => write!(
                f,
                "has no ready pods: DNS knows {name} but it has no {types} records"
            ),
            LookupError::ServerFailure(detail) => {
                write!(f, "could not be resolved: DNS server failure: {detail}")
            }
            LookupError::Refused(detail) => {
                write!(f, "could not be resolved: DNS refused the query: {detail}")
            }
            LookupError::Unreachable(detail) => {
                write!(f, "could not be resolved: no answer from DNS: {detail}")
            }
            LookupError::TcpFailed(detail) => write!(
                f,
                "could not be resolved: the answer is too large for UDP and DNS over TCP \
                 failed: {detail}"
            ),
            LookupError::Malformed(detail) => {
                write!(f, "could not be resolved: malformed DNS answer: {detail}")
            }
        }
    }
}
