//! Processes the benchmark runs, and what /proc says about them.

use super::*;

// ---------------------------------------------------------------------------
// Processes.

/// A command from words split at spaces: no path or argument here holds one.
pub fn cmd(line: &str) -> Command {
    let mut words = line.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap_or_default());
    cmd.args(words);
    cmd
}

pub fn check_stop() -> Res<()> {
    if stop_requested() {
        return Err("interrupted".into());
    }
    Ok(())
}

/// Waits for a child, killing it if a stop is requested.
pub fn wait(child: &mut Child) -> Res<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if stop_requested() {
            let _ = child.kill();
            let _ = child.wait();
            return Err("interrupted".into());
        }
        sleep(Duration::from_millis(20));
    }
}

/// Runs to completion; its stdout, or an error with its stderr.
pub fn output(cmd: &mut Command) -> Res<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let mut text = String::new();
    let _ = out.read_to_string(&mut text);
    let status = wait(&mut child)?;
    let errors = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{what} failed ({status}): {}", errors.trim_end()));
    }
    Ok(text)
}

pub fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn signal(pid: u32, name: &str) {
    quiet(&mut cmd(&format!("kill -{name} {pid}")));
}

pub fn file(path: &Path) -> Res<fs::File> {
    fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn write(path: &Path, text: impl AsRef<[u8]>) -> Res<()> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// `key=value` words, as udp_flood, recv_floor and fanout_sink print them.
pub fn key_values(text: &str) -> HashMap<String, f64> {
    text.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

pub fn count_lines(path: &Path) -> u64 {
    let mut count = 0;
    if let Ok(mut f) = fs::File::open(path) {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n @ 1..) = f.read(&mut buf) {
            count += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }
    count
}

// ---------------------------------------------------------------------------
// /proc: a process's socket, memory and CPU time.

/// Whatever `read` takes from the row for PORT in /proc/PID/net/udp{,6}
/// (the namespace's UDP sockets, as process PID sees them); None once PID
/// has exited.
pub fn socket_row<T>(pid: u32, port: u16, read: impl Fn(&procnet::Row) -> Option<T>) -> Option<T> {
    procnet::TABLES.iter().find_map(|table| {
        let text = self::read(format!("/proc/{pid}{}", table.trim_start_matches("/proc")));
        let row = procnet::rows(&text).find(|row| row.port() == Some(port));
        row.and_then(|row| read(&row))
    })
}

/// Bytes waiting in its receive queue.
pub fn rx_queue(pid: u32) -> Option<u64> {
    socket_row(pid, PORT, |row| row.rx_queue())
}

/// Datagrams the kernel dropped because the receive buffer was full.
pub fn socket_drops(pid: u32) -> u64 {
    socket_row(pid, PORT, |row| row.drops()).unwrap_or(0)
}

pub fn status_kb(pid: u32, key: &str) -> u64 {
    read(format!("/proc/{pid}/status"))
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// CPU time so far, user + system, in clock ticks (stat fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = read(format!("/proc/{pid}/stat"));
    // After the command's ")" come fields 3, 4, ... (the command may hold
    // spaces and parentheses, its ")" is the last one).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

pub fn clock_ticks_per_second() -> f64 {
    sys::clock_ticks_per_second().map_or(100.0, |ticks| ticks as f64)
}
