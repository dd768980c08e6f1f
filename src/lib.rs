//! udp-headless: send one UDP datagram to every pod behind a headless
//! Service (`sender`), and log what arrives (`receiver`), as the original
//! Python demo did. The binaries in `src/bin` are thin; what they share
//! lives here, one module per job. See README's Architecture section.

#[cfg(not(target_os = "linux"))]
compile_error!("udp-headless runs on Linux only: see src/os/sys.rs");

pub mod args;
pub mod confirm;
pub mod discover;
pub mod dns;
pub mod exit;
pub mod forward;
pub mod frame;
pub mod http;
pub mod keyed;
pub mod keyring;
pub mod listen;
pub mod log_line;
pub mod membership;
pub mod metrics;
pub mod os;
pub mod pyrepr;
pub mod readiness;
pub mod receiver;
pub mod receiver_log;
pub mod relay;
pub mod replay;
pub mod resolv_conf;
pub mod seen;
pub mod sender;
pub mod sha256;
pub mod signed;
pub mod trust;
