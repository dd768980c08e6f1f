//! udp-headless: send one UDP datagram to every pod behind a headless
//! Service (`sender`), and log what arrives (`receiver`), as the original
//! Python demo did. The binaries in `src/bin` are thin; what they share
//! lives here, one module per job. See README's Architecture section.

pub mod args;
pub mod discover;
pub mod dns;
pub mod exit;
pub mod log_line;
pub mod pyrepr;
pub mod readiness;
pub mod resolv_conf;
pub mod signals;
pub mod socket;
