//! The one reader of /proc/net/udp and /proc/net/udp6, the kernel's table
//! of this network namespace's UDP sockets: `--check` (is a port bound?),
//! the socket drops counter of `--metrics`, and the benchmark.
//!
//! Rows: `sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout
//! inode ref pointer drops`, e.g.
//! `  12: 00000000:2EE0 00000000:0000 07 00000000:00000000 ...`.

use std::io;

/// The tables, IPv4 first.
pub const TABLES: [&str; 2] = ["/proc/net/udp", "/proc/net/udp6"];

/// One socket's row; each column is read when asked for (split again
/// then: no Vec per row, and no code to collect one).
pub struct Row<'a> {
    line: &'a str,
}

/// The rows of one table's text (its header skipped).
pub fn rows(text: &str) -> impl Iterator<Item = Row<'_>> {
    text.lines().skip(1).map(|line| Row { line })
}

impl Row<'_> {
    fn column(&self, n: usize) -> Option<&str> {
        self.line.split_whitespace().nth(n)
    }

    /// The local port: hex, after the local address's colon.
    pub fn port(&self) -> Option<u16> {
        let (_, hex) = self.column(1)?.rsplit_once(':')?;
        u16::from_str_radix(hex, 16).ok()
    }

    /// Bytes waiting in the receive queue.
    pub fn rx_queue(&self) -> Option<u64> {
        let (_, hex) = self.column(4)?.split_once(':')?;
        u64::from_str_radix(hex, 16).ok()
    }

    pub fn inode(&self) -> Option<u64> {
        self.column(9)?.parse().ok()
    }

    /// Datagrams dropped at the socket (receive buffer full, among others).
    pub fn drops(&self) -> Option<u64> {
        self.column(12)?.parse().ok()
    }
}

/// The inode of socket descriptor `fd`, as the tables list it:
/// /proc/self/fd/N links to `socket:[INODE]`.
pub fn socket_inode(fd: i32) -> io::Result<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    let text = link.to_string_lossy();
    text.strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| io::Error::other(format!("fd {fd} is not a socket: {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_columns_of_a_row() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
            retrnsmt   uid  timeout inode ref pointer drops\n\
            \x20 12: 00000000:2EE0 00000000:0000 07 00000000:00000A00 00:00000000 \
            00000000     0        0 4242 2 0000000000000000 17\n";
        let row = rows(text).next().unwrap();
        assert_eq!(row.port(), Some(12000));
        assert_eq!(row.rx_queue(), Some(2560));
        assert_eq!(row.inode(), Some(4242));
        assert_eq!(row.drops(), Some(17));
        let junk = rows("header\n x y\n\n").next().unwrap();
        assert_eq!(
            (junk.port(), junk.inode(), junk.drops()),
            (None, None, None)
        );
    }
}
