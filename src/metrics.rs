//! Counters and their Prometheus text exposition (format 0.0.4), served by
//! [`crate::http`] at `/metrics`.
//!
//! A counter is a `static` [`Counter`] here: its name, its help and an
//! atomic, so any loop can count without a lock and whether or not anyone
//! scrapes. Each program lists what it exposes in a [`Registry`]; a new
//! counter is one `static` below and one `.counter(&X)` in the program.
//! Labels are fixed strings only: nothing whose values grow with pods or
//! clients.

use crate::os::procnet;
use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every name starts with this.
#[cfg(test)]
const PREFIX: &str = "udp_headless_";

/// The `Content-Type` of [`Registry::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct Counter {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Counter {
    pub const fn new(name: &'static str, help: &'static str) -> Counter {
        Counter {
            name,
            help,
            value: AtomicU64::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        // Relaxed: each counter stands alone; a scrape needs no ordering.
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

static DATAGRAMS_RECEIVED: Counter = Counter::new(
    "udp_headless_datagrams_received_total",
    "Datagrams received (each one is logged).",
);
static BYTES_RECEIVED: Counter = Counter::new(
    "udp_headless_bytes_received_total",
    "Payload bytes of the datagrams received.",
);
pub static LOG_WRITE_ERRORS: Counter = Counter::new(
    "udp_headless_log_write_errors_total",
    "Failed writes of the log to standard output.",
);
pub static ACKS_SENT: Counter = Counter::new(
    "udp_headless_acks_sent_total",
    "Acknowledgements sent for confirmed messages (sender --confirm).",
);
pub static SEQUENCE_GAPS: Counter = Counter::new(
    "udp_headless_sequence_gaps_total",
    "Times a confirmed sender's sequence skipped numbers: messages that never arrived, retries included.",
);
pub static DUPLICATES_SUPPRESSED: Counter = Counter::new(
    "udp_headless_duplicates_suppressed_total",
    "Copies of confirmed messages already logged (a sender's retries), not logged again.",
);

/// A number that goes up and down, set by whoever knows it.
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Gauge {
    pub const fn new(name: &'static str, help: &'static str) -> Gauge {
        Gauge {
            name,
            help,
            value: AtomicU64::new(0),
        }
    }

    pub fn set(&self, value: u64) {
        self.value.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

// The relay's own names: a dashboard must not add its datagrams to the
// receivers' (the same datagram is counted by both). Socket drops and
// build_info are shared; the pod's component label tells relay and
// receiver apart (the PodMonitor's podTargetLabels, or Prometheus's own
// pod labels).
pub static RELAY_DATAGRAMS_RECEIVED: Counter = Counter::new(
    "udp_headless_relay_datagrams_received_total",
    "Datagrams that arrived at the relay.",
);
pub static RELAY_BYTES_RECEIVED: Counter = Counter::new(
    "udp_headless_relay_bytes_received_total",
    "Payload bytes of the datagrams that arrived at the relay.",
);
pub static RELAY_COPIES_SENT: Counter = Counter::new(
    "udp_headless_relay_copies_sent_total",
    "Copies the relay sent to pods (one per pod per datagram).",
);
pub static RELAY_SEND_ERRORS: Counter = Counter::new(
    "udp_headless_relay_send_errors_total",
    "Copies the relay failed to send.",
);
pub static RELAY_DATAGRAMS_DROPPED: Counter = Counter::new(
    "udp_headless_relay_datagrams_dropped_total",
    "Datagrams the relay dropped because the service had no pods.",
);
pub static RELAY_DATAGRAMS_REFUSED: Counter = Counter::new(
    "udp_headless_relay_datagrams_refused_total",
    "Datagrams the relay did not forward: forwarded frames (they claim another source) and datagrams from the pods it forwards to (another relay's copies).",
);
pub static RELAY_ACKS_RECEIVED: Counter = Counter::new(
    "udp_headless_relay_acks_received_total",
    "Acknowledgements from pods of confirmed messages the relay forwarded.",
);
pub static RELAY_PODS: Gauge = Gauge::new(
    "udp_headless_relay_pods",
    "Pods the relay forwards to now (its own address left out).",
);

/// The inode of the socket the datagrams arrive on, once bound (0 before):
/// where `udp_headless_socket_drops_total` is read from.
static RECEIVING_SOCKET: AtomicU64 = AtomicU64::new(0);

/// Counts one datagram of `len` bytes, received and logged.
pub fn count_datagram(len: usize) {
    DATAGRAMS_RECEIVED.inc();
    BYTES_RECEIVED.add(len as u64);
}

/// Makes `sock` the socket whose kernel drop count is exposed.
pub fn watch_drops_of(sock: &std::net::UdpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    RECEIVING_SOCKET.store(procnet::socket_inode(sock.as_raw_fd())?, Ordering::Relaxed);
    Ok(())
}

/// What `receiver --metrics` exposes.
pub fn receiver() -> Registry {
    Registry::new()
        .counter(&DATAGRAMS_RECEIVED)
        .counter(&BYTES_RECEIVED)
        .socket_drops()
        .counter(&LOG_WRITE_ERRORS)
        .counter(&ACKS_SENT)
        .counter(&DUPLICATES_SUPPRESSED)
        .counter(&SEQUENCE_GAPS)
        .signed_rejected()
}

/// What `relay --metrics` exposes.
pub fn relay() -> Registry {
    Registry::new()
        .counter(&RELAY_DATAGRAMS_RECEIVED)
        .counter(&RELAY_BYTES_RECEIVED)
        .socket_drops()
        .counter(&RELAY_COPIES_SENT)
        .counter(&RELAY_SEND_ERRORS)
        .counter(&RELAY_DATAGRAMS_DROPPED)
        .counter(&RELAY_DATAGRAMS_REFUSED)
        .counter(&RELAY_ACKS_RECEIVED)
        .gauge(&RELAY_PODS)
        .signed_rejected()
}

type Read = Box<dyn Fn() -> Option<u64> + Send + Sync>;

enum Source {
    Counter(&'static Counter),
    Gauge(&'static Gauge),
    /// Read when scraped (a number the kernel keeps); no sample if None.
    Read(Read),
    /// A constant 1 carrying labels, like `build_info`.
    Info(Vec<(&'static str, String)>),
    /// One sample per counter, labelled `label="<the counter's name>"`.
    Labeled(&'static str, &'static [Counter]),
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    source: Source,
}

/// What one program exposes, in order.
pub struct Registry {
    families: Vec<Family>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl Registry {
    /// Starts with `udp_headless_build_info{version="..."} 1`.
    pub fn new() -> Registry {
        Registry { families: vec![] }.info(
            "udp_headless_build_info",
            "The running version; always 1.",
            vec![("version", env!("CARGO_PKG_VERSION").to_string())],
        )
    }

    pub fn counter(mut self, counter: &'static Counter) -> Registry {
        self.families.push(Family {
            name: counter.name,
            help: counter.help,
            kind: "counter",
            source: Source::Counter(counter),
        });
        self
    }

    pub fn gauge(mut self, gauge: &'static Gauge) -> Registry {
        self.families.push(Family {
            name: gauge.name,
            help: gauge.help,
            kind: "gauge",
            source: Source::Gauge(gauge),
        });
        self
    }

    /// The kernel's drop count of the socket given to [`watch_drops_of`].
    fn socket_drops(self) -> Registry {
        self.read_counter(
            "udp_headless_socket_drops_total",
            "Datagrams the kernel dropped at the receiving socket (mostly: its receive buffer was full).",
            || match RECEIVING_SOCKET.load(Ordering::Relaxed) {
                0 => None,
                inode => udp_socket_drops(inode),
            },
        )
    }

    /// `keyed::REJECTED`, one sample per reason; only with a key.
    fn signed_rejected(mut self) -> Registry {
        self.families.push(Family {
            name: crate::keyed::REJECTED_NAME,
            help: crate::keyed::REJECTED_HELP,
            kind: "counter",
            source: Source::Labeled("reason", &crate::keyed::REJECTED),
        });
        self
    }

    /// A counter someone else keeps (the kernel), read at each scrape.
    fn read_counter(
        mut self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> Registry {
        self.families.push(Family {
            name,
            help,
            kind: "counter",
            source: Source::Read(Box::new(read)),
        });
        self
    }

    pub fn info(
        mut self,
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
    ) -> Registry {
        self.families.push(Family {
            name,
            help,
            kind: "gauge",
            source: Source::Info(labels),
        });
        self
    }

    /// The exposition text: `# HELP`, `# TYPE` and the sample of every family.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256 * self.families.len());
        for family in &self.families {
            if let Source::Labeled(label, counters) = family.source {
                if !crate::keyed::IN_USE.load(Ordering::Relaxed) {
                    continue;
                }
                write_head(&mut out, family);
                for c in counters {
                    let _ = writeln!(out, "{}{{{label}=\"{}\"}} {}", family.name, c.name, c.get());
                }
                continue;
            }
            let sample = match &family.source {
                Source::Counter(counter) => Some((String::new(), counter.get())),
                Source::Gauge(gauge) => Some((String::new(), gauge.get())),
                Source::Read(read) => read().map(|value| (String::new(), value)),
                Source::Info(labels) => Some((label_set(labels), 1)),
                Source::Labeled(..) => None,
            };
            // A number that cannot be read now is left out, family and all,
            // rather than shown as a made-up 0.
            let Some((labels, value)) = sample else {
                continue;
            };
            write_head(&mut out, family);
            let _ = writeln!(out, "{}{labels} {value}", family.name);
        }
        out
    }
}

/// A family's `# HELP` and `# TYPE` lines (one copy of the code).
fn write_head(out: &mut String, family: &Family) {
    let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
    let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
}

fn label_set(labels: &[(&str, String)]) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(text: &str) -> String {
    escape_help(text).replace('"', "\\\"")
}

/// The kernel's drop count for the UDP socket with inode `inode`: the
/// `drops` column of /proc/net/udp{,6} (receive buffer full, among others).
/// None if the socket is in neither table or /proc cannot be read.
fn udp_socket_drops(inode: u64) -> Option<u64> {
    procnet::TABLES
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .find_map(|text| drops_in_table(&text, inode))
}

fn drops_in_table(text: &str, inode: u64) -> Option<u64> {
    procnet::rows(text)
        .find(|row| row.inode() == Some(inode))?
        .drops()
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEST_COUNTER: Counter = Counter::new(
        "udp_headless_test_total",
        "A test's \\ counter,\ntwo lines.",
    );

    static TEST_GAUGE: Gauge = Gauge::new("udp_headless_test_things", "Things now.");

    #[test]
    fn renders_help_type_and_sample_for_every_family() {
        TEST_COUNTER.add(41);
        TEST_COUNTER.inc();
        TEST_GAUGE.set(9);
        TEST_GAUGE.set(3);
        let registry = Registry::new()
            .counter(&TEST_COUNTER)
            .gauge(&TEST_GAUGE)
            .read_counter("udp_headless_read_total", "Read at scrape.", || Some(7))
            .read_counter("udp_headless_unreadable_total", "Gone.", || None)
            .info(
                "udp_headless_odd_info",
                "Escapes.",
                vec![("a", "x\"y\\z\nw".into()), ("b", String::new())],
            );
        let version = env!("CARGO_PKG_VERSION");
        let expected = format!(
            "# HELP udp_headless_build_info The running version; always 1.\n\
             # TYPE udp_headless_build_info gauge\n\
             udp_headless_build_info{{version=\"{version}\"}} 1\n\
             # HELP udp_headless_test_total A test's \\\\ counter,\\ntwo lines.\n\
             # TYPE udp_headless_test_total counter\n\
             udp_headless_test_total 42\n\
             # HELP udp_headless_test_things Things now.\n\
             # TYPE udp_headless_test_things gauge\n\
             udp_headless_test_things 3\n\
             # HELP udp_headless_read_total Read at scrape.\n\
             # TYPE udp_headless_read_total counter\n\
             udp_headless_read_total 7\n\
             # HELP udp_headless_odd_info Escapes.\n\
             # TYPE udp_headless_odd_info gauge\n\
             udp_headless_odd_info{{a=\"x\\\"y\\\\z\\nw\",b=\"\"}} 1\n"
        );
        assert_eq!(registry.render(), expected);
    }

    #[test]
    fn shipped_counters_are_named_in_prometheus_style() {
        for counter in [
            &DATAGRAMS_RECEIVED,
            &BYTES_RECEIVED,
            &LOG_WRITE_ERRORS,
            &ACKS_SENT,
            &DUPLICATES_SUPPRESSED,
            &SEQUENCE_GAPS,
            &RELAY_DATAGRAMS_RECEIVED,
            &RELAY_BYTES_RECEIVED,
            &RELAY_COPIES_SENT,
            &RELAY_SEND_ERRORS,
            &RELAY_DATAGRAMS_DROPPED,
            &RELAY_DATAGRAMS_REFUSED,
            &RELAY_ACKS_RECEIVED,
        ] {
            assert!(counter.name.starts_with(PREFIX), "{}", counter.name);
            assert!(counter.name.ends_with("_total"), "{}", counter.name);
            assert!(
                counter
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                counter.name
            );
            assert!(!counter.help.is_empty());
        }
    }

    #[test]
    fn finds_drops_by_inode() {
        let table = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            \x20 1: 00000000000000000000000000000000:2EE0 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
            \x20 2: 00000000000000000000000000000000:2EE1 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 0\n";
        let cases: &[(u64, Option<u64>)] = &[(4242, Some(17)), (4343, Some(0)), (4444, None)];
        for &(inode, drops) in cases {
            assert_eq!(drops_in_table(table, inode), drops, "inode {inode}");
        }
        for garbage in ["", "header only\n", "h\n 1: short row 4242\n"] {
            assert_eq!(drops_in_table(garbage, 4242), None, "{garbage:?}");
        }
    }

    #[test]
    fn reads_a_live_sockets_drops() {
        use std::os::fd::AsRawFd;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = procnet::socket_inode(sock.as_raw_fd()).unwrap();
        assert_eq!(udp_socket_drops(inode), Some(0));
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let err = procnet::socket_inode(file.as_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("is not a socket"), "{err}");
    }
}
