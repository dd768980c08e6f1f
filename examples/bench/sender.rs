//! 1. The sender: one broadcast to 2, 1000 and 4000 pods, and stream mode.

use super::*;

impl Bench {
    // -----------------------------------------------------------------------
    // 1. Sender.

    pub(crate) fn sender_bench(&mut self) -> Res<()> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let hold = self.ns(&format!("{} --hold-port {PORT}", me.display()));
        let hold = self.spawn(hold, Path::new("/dev/null"), Path::new("/dev/null"))?;
        let mut reached = String::new();
        for count in self.s.pod_counts.clone() {
            self.write_pods(count)?;
            self.start_dns(count)?;
            let floor = self.exe("examples/sendto_floor");
            let (ips, send) = (self.ips_file(count), format!("-s {SERVICE} -m test"));
            let mut contestants = vec![
                (
                    "python",
                    format!("{} {}/sender.py {send}", self.python, self.seed.display()),
                ),
                ("musl", format!("{} {send}", self.exe("sender"))),
                ("glibc", format!("{}/sender {send}", self.glibc.display())),
                ("floor", format!("{floor} {ips} test")),
            ];
            if let Ok(other) = std::env::var("UDP_HEADLESS_OTHER_SENDER") {
                contestants.push(("other", format!("{other} {send}")));
            }
            if count == 1000 {
                // The card's lookup alone, which any sender that follows the
                // card pays on top of the floor: the target's reach.
                let resolve = format!("{floor} --resolve {SERVICE} {ips} test");
                contestants.insert(3, ("resolve", resolve));
            }
            self.sender_row(count, "dnsmasq", &contestants, &mut reached)?;
            // The same broadcast against BIND (no Python: its speed-up is
            // measured above).
            if let (1000, Some(named)) = (count, self.named_bin.clone()) {
                self.start_bind(&named, count)?;
                self.sender_row(count, "bind", &contestants[1..], &mut reached)?;
            }
        }
        write(&self.results.join("reached.tsv"), reached)?;
        if self.s.sender_only {
            return self.stop(hold);
        }
        // Stream mode: 2000 stdin lines to 10 pods, cached pod list (the
        // default) and resolving per line, vs the same 20,000 sends unresolved.
        self.write_pods(10)?;
        self.start_dns(10)?;
        let lines = self.tmp.join("lines");
        write(
            &lines,
            (1..=2000).map(|i| format!("{i}\n")).collect::<String>(),
        )?;
        write(
            Path::new(&self.ips_file(20000)),
            read(self.ips_file(10)).repeat(2000),
        )?;
        log("sender: stream mode");
        let (sender, lines) = (self.exe("sender"), lines.display());
        let named = [
            ("cached", format!("{sender} -s {SERVICE} <{lines}")),
            (
                "per-line",
                format!("{sender} -s {SERVICE} --refresh 0 <{lines}"),
            ),
            (
                "floor",
                format!(
                    "{} {} test",
                    self.exe("examples/sendto_floor"),
                    self.ips_file(20000)
                ),
            ),
        ];
        let runs = (1, self.s.stream_runs);
        self.alternate("stream.json", runs, Duration::ZERO, &named)?;
        self.stop_dns()?;
        self.stop(hold)
    }

    /// One row of pods and DNS server; what each contestant reached (also
    /// a warm-up) goes to `reached`.
    pub(crate) fn sender_row(
        &mut self,
        count: usize,
        server: &str,
        contestants: &[(&str, String)],
        reached: &mut String,
    ) -> Res<()> {
        for (name, line) in contestants {
            let n = self.pods_reached(line)?;
            let _ = writeln!(reached, "sender\t{count}\t{name}\t{n}\t{server}");
        }
        let (warmup, runs) = (self.s.sender_warmup, self.s.sender_runs);
        log(&format!("sender: {count} pods, {server}, {runs} rounds"));
        let json = format!("sender-{count}-{server}.json");
        self.alternate(&json, (warmup, runs), Duration::ZERO, contestants)
    }
}

/// `--sender`: each contestant's median and its ratio to the floor's, per row.
pub fn sender_summary(results: &Path) -> Res<()> {
    for server in ["dnsmasq", "bind"] {
        let path = results.join(format!("sender-1000-{server}.json"));
        if !path.exists() {
            continue;
        }
        let times = read_times(&path)?;
        let floor = times.iter().find(|(name, _)| name == "floor");
        let floor = floor.map(|(_, t)| median(t)).ok_or("no floor row")?;
        for (name, t) in &times {
            let m = median(t);
            let (lo, hi) = (min(t) * 1e3, max(t) * 1e3);
            let ratio = m / floor;
            log(&format!(
                "1000 pods, {server}: {name:8} {:7.2} ms ({lo:.2}-{hi:.2}), {ratio:.2}x the floor",
                m * 1e3
            ));
        }
    }
    Ok(())
}

/// 1.: the sender's rows; its targets go to `t`.
pub fn sender_table(results: &Path, t: &mut String) -> Res<String> {
    let mut o = String::new();
    let labels = [
        ("python", "Python `sender.py`"),
        ("musl", "`sender`, static musl (shipped)"),
        ("glibc", "`sender`, glibc build"),
        (
            "resolve",
            "floor + getaddrinfo: `sendto_floor --resolve`, then the same sends",
        ),
        ("floor", "floor: `sendto_floor`, no DNS"),
    ];
    // (pods, against BIND rather than dnsmasq, contestant): dnsmasq first.
    type Row = (usize, bool, String);
    let mut times: BTreeMap<Row, Vec<f64>> = BTreeMap::new();
    for entry in fs::read_dir(results).map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // sender-PODS-SERVER.json
        let row = name
            .strip_prefix("sender-")
            .and_then(|n| n.strip_suffix(".json"));
        let Some((pods, bind)) = row.and_then(|n| {
            let (pods, server) = n.split_once('-')?;
            Some((pods.parse().ok()?, server == "bind"))
        }) else {
            continue;
        };
        for (who, t) in read_times(&entry.path())? {
            times.entry((pods, bind, who)).or_default().extend(t);
        }
    }
    let reached: HashMap<Row, String> = read(results.join("reached.tsv"))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let row = (
                f.get(1)?.parse().ok()?,
                f.get(4)? == &"bind",
                f.get(2)?.to_string(),
            );
            Some((row, f.get(3)?.to_string()))
        })
        .collect();
    o += "### Sender: broadcast to N pods, start to exit (ms)\n\n";
    o += "| pods | program | median | min-max | Python / this | this / floor | pods reached |\n";
    o += "|---:|---|---:|---:|---:|---:|---:|\n";
    let rows: std::collections::BTreeSet<(usize, bool)> =
        times.keys().map(|(p, bind, _)| (*p, *bind)).collect();
    let med_at = |pods: usize, bind: bool, who: &str| {
        times.get(&(pods, bind, who.to_string())).map(|t| median(t))
    };
    let med = |pods: usize, who: &str| med_at(pods, false, who);
    for &(pods, bind) in &rows {
        for (who, label) in labels {
            let Some(t) = times.get(&(pods, bind, who.to_string())) else {
                continue;
            };
            let this = median(t);
            let (m, r) = spread(t, 1000.0, if this >= 0.01 { 1 } else { 2 });
            let python = med(pods, "python").unwrap_or(f64::NAN);
            let floor = med_at(pods, bind, "floor").unwrap_or(f64::NAN);
            let got = reached
                .get(&(pods, bind, who.to_string()))
                .map_or("", String::as_str);
            let server = if bind { ", BIND" } else { "" };
            let _ = writeln!(
                o,
                "| {pods}{server} | {label} | {m} | {r} | {:.1}x | {:.2}x | {got} |",
                python / this,
                this / floor
            );
        }
    }
    let mut runs: Vec<usize> = times.values().map(Vec::len).collect();
    runs.sort();
    runs.dedup();
    let runs: Vec<String> = runs.iter().map(usize::to_string).collect();
    let _ = writeln!(o, "\n{} timed runs per row.\n", runs.join("/"));

    if let (Some(python), Some(musl), Some(floor)) =
        (med(1000, "python"), med(1000, "musl"), med(1000, "floor"))
    {
        let (speedup, to_floor) = (python / musl, musl / floor);
        let _ = writeln!(
            t,
            "- sender, 1000 pods: {speedup:.1}x faster than Python (target 15x): {}",
            verdict(speedup >= 15.0)
        );
        let _ = writeln!(
            t,
            "- sender, 1000 pods, dnsmasq: {to_floor:.2}x the floor (target at most 1.5x): {}",
            verdict(to_floor <= 1.5)
        );
    }
    // The card's lookup alone, for scale: no target of its own.
    let lookup_line = |o: &mut String, bind: bool, server: &str| {
        if let (Some(resolve), Some(floor)) =
            (med_at(1000, bind, "resolve"), med_at(1000, bind, "floor"))
        {
            let _ = writeln!(
                o,
                "- floor + getaddrinfo, 1000 pods, {server}: {:.2}x the floor (the card's lookup alone; no target)",
                resolve / floor
            );
        }
    };
    lookup_line(t, false, "dnsmasq");
    if let (Some(musl), Some(floor)) = (med_at(1000, true, "musl"), med_at(1000, true, "floor")) {
        let to_floor = musl / floor;
        let _ = writeln!(
            t,
            "- sender, 1000 pods, BIND: {to_floor:.2}x the floor (target at most 1.5x): {}",
            verdict(to_floor <= 1.5)
        );
    }
    lookup_line(t, true, "BIND");
    Ok(o)
}
