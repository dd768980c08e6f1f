//! 5. The relay beside samplicator: copies delivered to every pod.

use super::*;

impl Bench {
    // -----------------------------------------------------------------------
    // 5. Relay vs samplicator: copies delivered to every pod.

    pub(crate) fn relay_bench(&mut self) -> Res<()> {
        let peers = std::env::var_os("UDP_HEADLESS_PEERS")
            .map_or_else(|| self.repo.join("../shared/peers"), PathBuf::from);
        // relay-key: signed MESSAGE frames in, each copy signed anew.
        let mut who_all = vec!["relay", "relay-key"];
        write(&self.tmp.join("key"), format!("{BENCH_KEY}\n"))?;
        let build = peers.join("build-samplicator.sh");
        if build.is_file() && quiet(Command::new(&build).arg(self.tmp.join("peers"))) {
            self.samplicate = Some(self.tmp.join("peers/samplicate"));
            who_all.push("samplicator");
        } else {
            log(&format!(
                "no samplicator (needs {}): relay rows alone",
                build.display()
            ));
            let note = format!("samplicator: not run, no {}\n", build.display());
            write(&self.results.join("relay-note.txt"), note)?;
        }
        let mut tsv = String::new();
        for pods in [10, 100] {
            self.write_pods(pods)?;
            self.start_dns(pods)?;
            // The same copies per second paced: 20k/s in to 10 pods, 2k/s to 100.
            for rate in [200000 / pods as u64, 0] {
                for trial in 1..=self.s.relay_trials {
                    for who in &who_all {
                        let asked = asked(rate);
                        log(&format!(
                            "relay: {who}, {pods} pods, rate {asked}/s, trial {trial}"
                        ));
                        tsv += &self.relay_trial(who, pods, rate)?;
                    }
                }
            }
        }
        self.stop_dns()?;
        write(&self.results.join("relay.tsv"), tsv)
    }

    pub(crate) fn relay_trial(&mut self, who: &str, pods: usize, rate: u64) -> Res<String> {
        // Paced: 2 s. Flat out: 2 s too, far more than the relay's receive
        // buffer holds, so its forwarding speed decides. A time, not a count:
        // how long the generator takes for a count depends on what else
        // core 0 runs (1.4-2.6 s for 600,000), and each contestant's
        // copies followed that time more than its own speed.
        let count = if rate > 0 {
            format!("{}", 2 * rate)
        } else {
            "1000000000 --seconds 2".to_string()
        };
        let ready = self.tmp.join("sink.ready");
        let _ = fs::remove_file(&ready);
        // The relay gets a core of its own; the load generator and the sinks
        // share the other, so both contestants meet the same competition.
        let (sink_out, relay_err) = (self.tmp.join("sink.out"), self.tmp.join("relay.err"));
        let sink = self.ns(&format!(
            "taskset -c 0 {} {} {PORT} {RECEIVER_RCVBUF} {}",
            self.exe("examples/fanout_sink"),
            self.ips_file(pods),
            ready.display()
        ));
        let sink = self.spawn(sink, &sink_out, Path::new("/dev/null"))?;
        let key = format!("--key-file {}", self.tmp.join("key").display());
        let signed = if who == "relay-key" { &key[..] } else { "" };
        let relay = if who != "samplicator" {
            let listen = format!("--listen 127.0.0.1:{RELAY_PORT} --rcvbuf {RECEIVER_RCVBUF}");
            self.ns(&format!(
                "taskset -c 1 {} -s {SERVICE} {listen} {signed}",
                self.exe("relay")
            ))
        } else {
            let samplicate = self.samplicate.as_ref().ok_or("no samplicator")?.display();
            let to: String = read(self.ips_file(pods))
                .lines()
                .map(|ip| format!(" {ip}/{PORT}"))
                .collect();
            let options = format!("-s 127.0.0.1 -p {RELAY_PORT} -b {RECEIVER_RCVBUF}");
            self.ns(&format!("taskset -c 1 {samplicate} {options}{to}"))
        };
        let relay = self.spawn(relay, Path::new("/dev/null"), &relay_err)?;
        let check = format!("{} --check -p {RELAY_PORT}", self.exe("receiver"));
        let pods_line = format!("pods: {pods}");
        for _ in 0..100 {
            if ready.exists()
                && quiet(&mut self.ns(&check))
                && (who == "samplicator"
                    || read(&relay_err).lines().any(|l| l.ends_with(&pods_line)))
            {
                break;
            }
            sleep(Duration::from_millis(50));
        }
        let count_and_key = format!("{count} {signed}");
        let report = self.flood("taskset -c 0", RELAY_PORT, rate, &count_and_key)?;
        if !self.reap(sink)?.success() {
            return Err(format!("the sink failed: {}", read(&sink_out)));
        }
        let ticks = cpu_ticks(relay);
        self.stop(relay)?;
        let sink = read(&sink_out);
        Ok(format!(
            "{who}\t{pods}\t{rate}\t{} {} cpu_ticks={ticks}\n",
            report.trim(),
            sink.trim()
        ))
    }
}

/// Section 5 and the stream-mode rows of section 1.
pub fn relay_tables(results: &Path) -> Res<String> {
    let mut o = String::new();
    let mut rows: BTreeMap<(usize, u64, String), Vec<HashMap<String, f64>>> = BTreeMap::new();
    for line in read(results.join("relay.tsv")).lines() {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        if let [who, pods, rate, kv] = f[..] {
            let key = (
                pods.parse().unwrap_or(0),
                rate.parse().unwrap_or(0),
                who.to_string(),
            );
            rows.entry(key).or_default().push(key_values(kv));
        }
    }
    let tick_us = 1e6 / clock_ticks_per_second();
    if !rows.is_empty() {
        o += "### Relay: 64-byte datagrams in, a copy to every pod (copies delivered)\n\n";
        o += &read(results.join("relay-note.txt"));
        if results.join("relay-note.txt").exists() {
            o += "\n";
        }
        o += "| pods | rate in | program | copies delivered: median (min-max) | of those sent | per pod min-max \
              | in at | CPU per copy |\n";
        o += "|---:|---:|---|---:|---:|---:|---:|---:|\n";
        let mut verdicts = vec![];
        let mut keys: Vec<(usize, u64)> = rows.keys().map(|(p, r, _)| (*p, *r)).collect();
        keys.sort_by_key(|&(p, r)| (p, if r == 0 { u64::MAX } else { r }));
        keys.dedup();
        for (pods, rate) in keys {
            let mut best: HashMap<&str, f64> = HashMap::new();
            for (who, label) in [
                ("relay", "relay"),
                ("relay-key", "relay --key-file"),
                ("samplicator", "samplicator"),
            ] {
                let Some(t) = rows.get(&(pods, rate, who.to_string())) else {
                    continue;
                };
                let v = |x: &HashMap<String, f64>, k: &str| x.get(k).copied().unwrap_or(0.0);
                let col = |f: &dyn Fn(&HashMap<String, f64>) -> f64| {
                    t.iter().map(f).collect::<Vec<f64>>()
                };
                let pct = col(&|x| 100.0 * v(x, "received") / (v(x, "sent") * pods as f64));
                let got = col(&|x| v(x, "received"));
                best.insert(who, median(&got));
                let _ = writeln!(
                    o,
                    "| {pods} | {}/s | `{label}` | {} ({}-{}) | {:.2}% | {}-{} | {:.1}k/s | {:.2} us |",
                    rate_name(rate),
                    commas(median(&got)),
                    commas(min(&got)),
                    commas(max(&got)),
                    median(&pct),
                    commas(min(&col(&|x| v(x, "min")))),
                    commas(max(&col(&|x| v(x, "max")))),
                    median(&col(&|x| v(x, "rate"))) / 1000.0,
                    median(&col(&|x| v(x, "cpu_ticks") * tick_us / v(x, "received"))),
                );
            }
            if let (Some(relay), Some(samplicator)) = (best.get("relay"), best.get("samplicator")) {
                verdicts.push(format!(
                    "{pods} pods, {}: relay {} copies vs samplicator {}: {}",
                    rate_name(rate),
                    commas(*relay),
                    commas(*samplicator),
                    verdict(relay >= samplicator)
                ));
            }
            if let (Some(relay), Some(signed)) = (best.get("relay"), best.get("relay-key")) {
                verdicts.push(format!(
                    "{pods} pods, {}: relay --key-file {} copies, {:.0}% of unsigned (no target)",
                    rate_name(rate),
                    commas(*signed),
                    100.0 * signed / relay
                ));
            }
            if rate > 0 {
                let t = rows
                    .get(&(pods, rate, "relay".to_string()))
                    .map_or(&[][..], Vec::as_slice);
                let lossless = t
                    .iter()
                    .all(|x| x.get("received") == x.get("sent").map(|s| s * pods as f64).as_ref());
                verdicts.push(format!(
                    "{pods} pods, {}: relay without loss: {}",
                    rate_name(rate),
                    verdict(lossless)
                ));
            }
        }
        let verdicts: Vec<String> = verdicts.iter().map(|v| format!("- {v}")).collect();
        let _ = writeln!(o, "\n{}\n", verdicts.join("\n"));
    }
    let stream = results.join("stream.json");
    if stream.exists() {
        let med: HashMap<String, f64> = read_times(&stream)?
            .into_iter()
            .map(|(w, t)| (w, median(&t)))
            .collect();
        let m = |who: &str| med.get(who).copied().unwrap_or(f64::NAN);
        o += "### Sender stream mode: 2000 stdin lines to 10 pods (ms)\n\n";
        o += "| program | median | / floor |\n|---|---:|---:|\n";
        for (who, label) in [
            ("cached", "`sender` (pod list cached by TTL)"),
            ("per-line", "`sender --refresh 0` (resolves per line)"),
            ("floor", "floor: `sendto_floor`, the same 20,000 sends"),
        ] {
            let _ = writeln!(
                o,
                "| {label} | {:.1} | {:.2}x |",
                m(who) * 1000.0,
                m(who) / m("floor")
            );
        }
        let ratio = m("cached") / m("floor");
        let _ = writeln!(
            o,
            "\n- stream mode {ratio:.2}x the floor (target at most 1.5x): {}",
            verdict(ratio <= 1.5)
        );
    }
    Ok(o)
}
