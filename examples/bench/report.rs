//! The report: tables from the results, in Markdown.

use super::*;

impl Bench {
    // -----------------------------------------------------------------------
    // Run, then format.

    pub(crate) fn report(&self, elapsed: u64) -> Res<()> {
        let first = |line: &str, words: usize| {
            let out = cmd(line)
                .output()
                .map(|o| [o.stdout, o.stderr].concat())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&out);
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .take(words);
            first.collect::<Vec<_>>().join(" ")
        };
        let cpuinfo = read("/proc/cpuinfo");
        let model = cpuinfo
            .lines()
            .find_map(|l| Some(l.strip_prefix("model name")?.split_once(": ")?.1))
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let sysctl = |name: &str| {
            read(format!("/proc/sys/net/core/{name}"))
                .trim()
                .to_string()
        };
        let machine = format!(
            "Machine: {cores} cores, {model}, Linux {}, {}.\n\
             net.core.rmem_max {}, rmem_default {}; {} ({}); {}; {}; {}.\n\
             Mode: {}, {elapsed} s.\n",
            read("/proc/sys/kernel/osrelease").trim(),
            first("date -u +%Y-%m-%d_%H:%M_UTC", 1).replace('_', " "),
            sysctl("rmem_max"),
            sysctl("rmem_default"),
            first(&format!("{} --version", self.python), 9),
            self.python,
            first(&format!("{} --version", self.dnsmasq_bin), 3),
            self.named_bin
                .as_ref()
                .map_or("no BIND".into(), |named| first(&format!("{named} -v"), 2)),
            first("rustc --version", 2),
            if self.s.quick { "quick" } else { "full" },
        );
        write(&self.results.join("machine.txt"), &machine)?;
        let mut tables = String::new();
        if !self.s.relay_only {
            tables += &main_tables(&self.results, &machine)?;
        }
        tables += &relay_tables(&self.results)?;
        // Raw results (JSON, TSV) and the tables are kept here.
        let latest = self.repo.join("target/bench/latest");
        let _ = fs::remove_dir_all(&latest);
        fs::create_dir_all(&latest).map_err(|e| e.to_string())?;
        for entry in fs::read_dir(&self.results)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let _ = fs::copy(entry.path(), latest.join(entry.file_name()));
        }
        write(&latest.join("tables.md"), &tables)?;
        print!("{tables}");
        Ok(())
    }
}

/// (name, times in seconds) per command, from JSON in the shape of
/// hyperfine's --export-json (what `times_json` writes).
pub fn read_times(path: &Path) -> Res<Vec<(String, Vec<f64>)>> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut results = vec![];
    for chunk in text.split("\"command\":").skip(1) {
        let name = chunk.trim_start().trim_start_matches('"');
        let name = name.split('"').next().unwrap_or("").to_string();
        let times = chunk
            .split_once("\"times\":")
            .and_then(|(_, rest)| rest.split_once('[')?.1.split_once(']'))
            .map(|(list, _)| {
                list.split(',')
                    .filter_map(|t| t.trim().parse().ok())
                    .collect()
            })
            .ok_or_else(|| format!("{}: no times for {name}", path.display()))?;
        results.push((name, times));
    }
    Ok(results)
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// median and "min-max" of values * scale, with `places` decimals.
pub fn spread(values: &[f64], scale: f64, places: usize) -> (String, String) {
    let v: Vec<f64> = values.iter().map(|x| x * scale).collect();
    (
        format!("{:.places$}", median(&v)),
        format!("{:.places$}-{:.places$}", min(&v), max(&v)),
    )
}

/// An integer with thousands separators: 1234567.4 -> "1,234,567".
pub fn commas(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < -0.5 {
        out.insert(0, '-');
    }
    out
}

pub fn rate_name(rate: u64) -> String {
    if rate == 0 {
        "max".into()
    } else {
        format!("{}k", rate / 1000)
    }
}

/// A rate as asked in the progress log: datagrams per second or "max".
pub fn asked(rate: u64) -> String {
    if rate == 0 {
        "max".into()
    } else {
        rate.to_string()
    }
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// Sections 1-4 and the targets.
/// The tables of sections 1-4, then their targets met or missed.
pub fn main_tables(results: &Path, machine: &str) -> Res<String> {
    let mut o = format!("{machine}\n");
    let mut t = String::new();
    o += &sender_table(results, &mut t)?;
    let (receiver, memory) = receiver_tables(results, &mut t);
    o += &receiver;
    o += &confirm_table(results, &mut t)?;
    o += &footprint_table(results, &mut t);
    o += &memory;
    o += "\n### Targets\n\n";
    o += &t;
    o.push('\n');
    Ok(o)
}
