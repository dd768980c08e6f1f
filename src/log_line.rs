//! The original demo's log line, as Python's `logging` prints it with
//! `'%(asctime)s - %(name)s - %(levelname)s - %(message)s'`:
//! `2021-08-22 20:20:56,167 - root - INFO - <message>`.
//! Timestamps are UTC (a container's local time is UTC anyway).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub const INFO: &str = "INFO";
pub const WARNING: &str = "WARNING";
pub const ERROR: &str = "ERROR";

/// Appends `YYYY-MM-DD HH:MM:SS,mmm - root - LEVEL - ` to `out`.
pub fn write_prefix(out: &mut Vec<u8>, at: SystemTime, level: &str) {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let secs_of_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02},{millis:03} - root - {level} - ",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
    );
}

/// `write_prefix` for one line after another: the date and time up to the
/// second are formatted once per second, the milliseconds per line.
/// Formatting the whole stamp with `write!` for every line was about a
/// third of the receiver's CPU.
#[derive(Default)]
pub struct Stamper {
    last: Option<Stamp>,
}

/// The prefix of the second and level stamped last; within a second only
/// its milliseconds change. Copied whole: each copy is a call to musl's
/// `memcpy`, which costs more than the few bytes of a piece.
struct Stamp {
    second: u64,
    level: String,
    prefix: Vec<u8>,
    /// Where the milliseconds are: after the first comma (a year has none).
    ms_at: usize,
}

impl Stamper {
    /// Appends the same bytes as `write_prefix`.
    pub fn write_prefix(&mut self, out: &mut Vec<u8>, at: SystemTime, level: &str) {
        let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs();
        let same = |s: &Stamp| s.second == second && s.level == level;
        if !self.last.as_ref().is_some_and(same) {
            let mut prefix = Vec::with_capacity(64);
            write_prefix(&mut prefix, at, level);
            let ms_at = prefix
                .iter()
                .position(|&b| b == b',')
                .map_or(prefix.len(), |c| c + 1);
            self.last = Some(Stamp {
                second,
                level: level.to_string(),
                prefix,
                ms_at,
            });
        }
        let Some(stamp) = &mut self.last else {
            return;
        };
        let ms = since_epoch.subsec_millis();
        if let Some(digits) = stamp.prefix.get_mut(stamp.ms_at..stamp.ms_at + 3) {
            digits.copy_from_slice(&[
                b'0' + (ms / 100) as u8,
                b'0' + (ms / 10 % 10) as u8,
                b'0' + (ms % 10) as u8,
            ]);
        }
        out.extend_from_slice(&stamp.prefix);
    }
}

/// One whole line, newline included, stamped now.
pub fn line(level: &str, message: &str) -> String {
    let mut out = Vec::with_capacity(64 + message.len());
    write_prefix(&mut out, SystemTime::now(), level);
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
    String::from_utf8(out).expect("prefix and message are UTF-8")
}

/// Writes one line to stderr: the programs' errors and warnings, in the
/// same format as their logs, so `kubectl logs` shows them in line.
pub fn to_stderr(level: &str, message: &str) {
    let _ = std::io::stderr().write_all(line(level, message).as_bytes());
}

/// Writes one line to stderr as it is: a usage error (`crate::exit`).
pub fn plain_to_stderr(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Splits a line of this format into (level, message); `None` unless it has
/// exactly the shape `YYYY-MM-DD HH:MM:SS,mmm - root - LEVEL - message`.
/// The tests and the demo's checks read logs with this, not a copy of it.
pub fn parse(line: &str) -> Option<(&str, &str)> {
    let stamp = line.get(..23)?;
    let shape_ok = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b' ',
        13 | 16 => b == b':',
        19 => b == b',',
        _ => b.is_ascii_digit(),
    });
    let rest = line[23..].strip_prefix(" - root - ")?;
    let (level, message) = rest.split_once(" - ")?;
    (shape_ok && [INFO, WARNING, ERROR].contains(&level)).then_some((level, message))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`): std has no calendar and a crate is not allowed.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn prefix_at(secs: u64, millis: u64) -> String {
        let mut out = Vec::new();
        let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        write_prefix(&mut out, at, INFO);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_like_python_logging() {
        // (unix seconds, millis, expected); checked with Python's
        // time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(secs)).
        let cases = [
            (0, 0, "1970-01-01 00:00:00,000"),
            (1_629_663_656, 167, "2021-08-22 20:20:56,167"),
            (951_782_400, 5, "2000-02-29 00:00:00,005"),
            (4_102_444_799, 999, "2099-12-31 23:59:59,999"),
            (1_709_164_800, 42, "2024-02-29 00:00:00,042"),
        ];
        for (secs, millis, want) in cases {
            assert_eq!(prefix_at(secs, millis), format!("{want} - root - INFO - "));
        }
    }

    #[test]
    fn the_stamper_writes_what_write_prefix_writes() {
        let mut stamper = Stamper::default();
        // Within a second, across seconds, days and years, back in time,
        // and a year of five digits.
        let times = [
            (1_629_663_656, 167),
            (1_629_663_656, 999),
            (1_629_663_657, 0),
            (1_629_663_657, 5),
            (1_629_676_799, 999),
            (1_629_676_800, 0),
            (4_102_444_799, 999),
            (4_102_444_800, 1),
            (0, 0),
            (1_629_663_656, 167),
            (253_402_300_800, 42),
            (253_402_300_800, 43),
        ];
        for (secs, millis) in times {
            let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            for level in [INFO, WARNING] {
                let mut got = b"x".to_vec();
                stamper.write_prefix(&mut got, at, level);
                let mut want = b"x".to_vec();
                write_prefix(&mut want, at, level);
                assert_eq!(String::from_utf8(got), String::from_utf8(want));
            }
        }
    }

    #[test]
    fn parse_reads_what_line_writes_and_nothing_else() {
        let written = line(WARNING, "a - b");
        assert_eq!(parse(written.trim_end()), Some((WARNING, "a - b")));
        for bad in [
            "2021-08-22 20:20:56,167 - root - DEBUG - x",
            "2021-08-22 20:20:56.167 - root - INFO - x",
            "2021-08-22 20:20:56,167 - app - INFO - x",
            "21-08-22 20:20:56,167 - root - INFO - x",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn whole_line_ends_with_newline() {
        let l = line(ERROR, "x");
        assert!(l.ends_with(" - root - ERROR - x\n"), "{l}");
        assert_eq!(
            l.len(),
            "2021-08-22 20:20:56,167 - root - ERROR - x\n".len()
        );
    }
}
