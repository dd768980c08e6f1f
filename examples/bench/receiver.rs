//! 2. The receiver: datagrams at paced rates, every line logged.

use super::*;

impl Bench {
    // -----------------------------------------------------------------------
    // 2. Receiver.

    pub(crate) fn receiver_bench(&mut self) -> Res<()> {
        // The receiver asks for 4 MiB; the kernel grants at most rmem_max,
        // which is one setting for the whole machine (not per namespace).
        let rmem_max = read("/proc/sys/net/core/rmem_max").trim().to_string();
        if rmem_max.parse::<u64>().unwrap_or(0) < RECEIVER_RCVBUF {
            write(
                Path::new("/proc/sys/net/core/rmem_max"),
                RECEIVER_RCVBUF.to_string(),
            )?;
            log(&format!(
                "raised net.core.rmem_max from {rmem_max} to {RECEIVER_RCVBUF} (global; restored on exit)"
            ));
            self.rmem_max_before = Some(rmem_max);
        }
        write(&self.tmp.join("key"), format!("{BENCH_KEY}\n"))?;
        let mut tsv = String::new();
        for trial in 1..=self.s.recv_trials {
            for rate in self.s.recv_rates.clone() {
                let trials = self.s.recv_trials;
                log(&format!(
                    "receiver: trial {trial}/{trials}, rate {}/s",
                    asked(rate)
                ));
                // Side by side: each rate is tried on every receiver in turn;
                // ours and metrics swap places each trial, so neither always
                // runs while the other's log is still being written back.
                let order = if trial % 2 == 1 {
                    ["ours", "metrics"]
                } else {
                    ["metrics", "ours"]
                };
                for who in order.into_iter().chain([
                    "framed",
                    "signed",
                    "signed-data",
                    "ours208k",
                    "python",
                    "floor",
                ]) {
                    tsv += &self.recv_trial(who, rate, trial)?;
                }
            }
        }
        write(&self.results.join("receiver.tsv"), tsv)
    }

    /// One trial: start the receiver, flood it, wait until it has logged
    /// what it will, record, stop it. Returns its line of receiver.tsv.
    pub(crate) fn recv_trial(&mut self, who: &str, rate: u64, trial: usize) -> Res<String> {
        let count = if rate == 0 {
            self.s.max_rate_count
        } else {
            rate.max(100000)
        };
        let receiver = self.exe("receiver");
        let key = self.tmp.join("key").display().to_string();
        // The generator frames (and signs) what it sends to these.
        let flood_count = match who {
            "framed" => format!("{count} --frame yes"),
            "signed" => format!("{count} --key-file {key}"),
            "signed-data" => format!("{count} --frame yes --key-file {key}"),
            _ => count.to_string(),
        };
        let line = match who {
            "ours" | "framed" => receiver,
            "signed" | "signed-data" => format!("{receiver} --key-file {key}"),
            "metrics" => format!("{receiver} --metrics 127.0.0.1:{METRICS_PORT}"),
            "ours208k" => format!("{receiver} --rcvbuf {KERNEL_DEFAULT_RCVBUF}"),
            "python" => format!("{} {}/receiver.py", self.python, self.seed.display()),
            _ => format!(
                "{} {PORT} {count} {RECEIVER_RCVBUF}",
                self.exe("examples/recv_floor")
            ),
        };
        let (sink_log, stderr) = (self.sink_log.clone(), self.tmp.join("stderr"));
        let pid = self.spawn(self.ns(&line), &sink_log, &stderr)?;
        for _ in 0..100 {
            if socket_row(pid, PORT, |_| Some(())).is_some() {
                break;
            }
            sleep(Duration::from_millis(50));
        }
        if socket_row(pid, PORT, |_| Some(())).is_none() {
            return Err(format!("{who} did not bind UDP {PORT}: {}", read(&stderr)));
        }
        let rss_idle = status_kb(pid, "VmRSS");
        let mut scraper = None;
        if who == "metrics" {
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            let scrape = self.ns(&format!("{} --scrape {METRICS_PORT}", me.display()));
            scraper = Some(self.spawn(scrape, Path::new("/dev/null"), Path::new("/dev/null"))?);
        }
        let report = self.flood("", PORT, rate, &flood_count)?;
        // Done when the queue is empty and the log has stopped growing (at
        // most 20 s).
        let mut size = u64::MAX;
        for _ in 0..100 {
            sleep(Duration::from_millis(200));
            check_stop()?;
            if !self.running(pid) {
                break;
            }
            let now = fs::metadata(&sink_log).map_or(0, |m| m.len());
            if rx_queue(pid) == Some(0) && now == size {
                break;
            }
            size = now;
        }
        if let Some(scraper) = scraper {
            self.stop(scraper)?;
        }
        let (drops, hwm, cpu) = (socket_drops(pid), status_kb(pid, "VmHWM"), cpu_ticks(pid));
        let lines = if who == "floor" {
            self.reap(pid)?; // it stops by itself after 1 s of silence
            key_values(&read(&sink_log))
                .get("received")
                .map_or(0, |&n| n as u64)
        } else {
            self.stop(pid)?;
            count_lines(&sink_log)
        };
        let r = key_values(&report);
        let get = |k: &str| r.get(k).copied().unwrap_or(0.0);
        let (sent, errors, achieved) = (get("sent"), get("errors"), get("rate"));
        Ok(format!(
            "{who}\t{rate}\t{trial}\t{sent}\t{errors}\t{achieved}\t{lines}\t{drops}\t{rss_idle}\t{hwm}\t{cpu}\n"
        ))
    }
}

/// 2.: the receiver's tables, and its memory table (for the footprint);
/// its targets go to `t`.
pub fn receiver_tables(results: &Path, t: &mut String) -> (String, String) {
    let mut o = String::new();
    let rlabels = [
        ("ours", "`receiver` (4 MiB buffer)"),
        (
            "metrics",
            "`receiver --metrics`, scraped every 0.5 s (4 MiB)",
        ),
        (
            "framed",
            "`receiver`, DATA frames, as from `--confirm` (4 MiB)",
        ),
        (
            "signed",
            "`receiver --key-file`, signed MESSAGE frames, as without `--confirm` (4 MiB)",
        ),
        (
            "signed-data",
            "`receiver --key-file`, signed DATA frames, as from `--confirm` (4 MiB)",
        ),
        ("ours208k", "`receiver --rcvbuf 212992` (208 KiB)"),
        ("python", "Python `receiver.py` (208 KiB)"),
        ("floor", "floor: `recv_floor`, no log (4 MiB)"),
    ];
    let tick = clock_ticks_per_second();
    let mut trials: BTreeMap<(String, u64), Vec<Trial>> = BTreeMap::new();
    for line in read(results.join("receiver.tsv")).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        trials
            .entry((f[0].to_string(), num(1) as u64))
            .or_default()
            .push(Trial {
                sent: num(3),
                errors: num(4),
                achieved: num(5),
                lines: num(6),
                drops: num(7),
                rss: num(8),
                hwm: num(9),
                cpu: num(10) / tick,
            });
    }
    let mut rates: Vec<u64> = trials.keys().map(|(_, r)| *r).collect();
    rates.sort_by_key(|&r| if r == 0 { u64::MAX } else { r });
    rates.dedup();
    let of = |who: &'static str| {
        trials
            .iter()
            .filter(move |(k, _)| k.0 == who)
            .flat_map(|(_, ts)| ts.iter())
    };
    let get = |who: &str, rate: u64| {
        trials
            .get(&(who.to_string(), rate))
            .map_or(&[][..], Vec::as_slice)
    };
    let header: Vec<&str> = rlabels.iter().map(|(_, l)| *l).collect();
    o += "### Receiver: 64-byte datagrams lost at a paced rate, every one logged to a file\n\n";
    o += "Lost % of sent: median (min-max) over trials; the max row also gives the achieved rate.\n\n";
    let _ = writeln!(o, "| rate/s | {} |", header.join(" | "));
    let _ = writeln!(o, "|---:|{}", "---:|".repeat(rlabels.len()));
    for &rate in &rates {
        let mut cells = vec![];
        for (who, _) in rlabels {
            let t = get(who, rate);
            if t.is_empty() {
                cells.push(String::new());
                continue;
            }
            let loss: Vec<f64> = t
                .iter()
                .map(|x| 100.0 * (x.sent - x.lines) / x.sent)
                .collect();
            let (m, r) = spread(&loss, 1.0, 2);
            let mut cell = if max(&loss) == 0.0 {
                "0".to_string()
            } else {
                format!("{m}% ({r})")
            };
            if rate == 0 {
                let achieved: Vec<f64> = t.iter().map(|x| x.achieved).collect();
                let _ = write!(cell, " @ {:.0}k/s", median(&achieved) / 1000.0);
            }
            cells.push(cell);
        }
        let _ = writeln!(o, "| {} | {} |", rate_name(rate), cells.join(" | "));
    }
    let paced: Vec<f64> = trials
        .iter()
        .filter(|(k, _)| k.1 > 0)
        .flat_map(|(k, ts)| ts.iter().map(|x| x.achieved / k.1 as f64))
        .collect();
    if !paced.is_empty() {
        let _ = writeln!(
            o,
            "\nPaced trials achieved {:.1}%-{:.1}% of the rate asked.\n",
            min(&paced) * 100.0,
            max(&paced) * 100.0
        );
    }
    let _ = writeln!(o, "| | {} |", header.join(" | "));
    let _ = writeln!(o, "|---|{}", "---|".repeat(rlabels.len()));
    let mut lossless: HashMap<&str, Option<f64>> = HashMap::new();
    let mut first_loss: HashMap<&str, u64> = HashMap::new();
    let mut lossless_cells = vec![];
    let mut where_cells = vec![];
    let mut cpu: HashMap<&str, Option<f64>> = HashMap::new();
    for (who, _) in rlabels {
        let mut best: Option<f64> = None;
        for &rate in &rates {
            let t = get(who, rate);
            if !t.is_empty() && t.iter().all(|x| x.lines == x.sent) {
                // At max: what the load generator achieved (in the slowest trial).
                let slowest = min(&t.iter().map(|x| x.achieved).collect::<Vec<_>>());
                best = Some(if rate > 0 {
                    rate as f64
                } else {
                    best.unwrap_or(0.0).max(slowest)
                });
            } else {
                first_loss.insert(who, rate);
                break;
            }
        }
        lossless.insert(who, best);
        let lost: f64 = of(who).map(|x| x.sent - x.lines).sum();
        let drops: f64 = of(who).map(|x| x.drops).sum();
        let errs: f64 = of(who).map(|x| x.errors).sum();
        where_cells.push(format!(
            "{} lost: {} socket drops, {} send errors, {} elsewhere",
            commas(lost),
            commas(drops),
            commas(errs),
            commas(lost - drops - errs)
        ));
        lossless_cells.push(match (best, first_loss.get(who)) {
            (None, _) => "lost at every rate tried".to_string(),
            (Some(b), Some(&r)) => format!("{}/s (first loss at {})", commas(b), rate_name(r)),
            (Some(b), None) => format!("{}/s (every rate tried, max included)", commas(b)),
        });
        // Over every trial: seconds of CPU (all threads) per datagram received.
        let (secs, lines): (f64, f64) =
            (of(who).map(|x| x.cpu).sum(), of(who).map(|x| x.lines).sum());
        cpu.insert(who, (secs > 0.0 && lines > 0.0).then(|| secs / lines));
    }
    let _ = writeln!(o, "| lossless up to | {} |", lossless_cells.join(" | "));
    let cpu_cells: Vec<String> = rlabels
        .iter()
        .map(|(w, _)| cpu[w].map_or("-".into(), |c| format!("{:.2} us", c * 1e6)))
        .collect();
    let _ = writeln!(
        o,
        "| CPU per datagram, all trials | {} |",
        cpu_cells.join(" | ")
    );
    let _ = writeln!(o, "| all trials | {} |\n", where_cells.join(" | "));

    let mut memory = String::new();
    memory += "\n| receiver | VmRSS idle (KiB) | VmHWM, peak over the max-rate trials (KiB) |\n|---|---:|---:|\n";
    for (who, label) in rlabels {
        let idle: Vec<f64> = of(who).map(|x| x.rss).collect();
        let peak = max(&get(who, 0).iter().map(|x| x.hwm).collect::<Vec<_>>()).max(0.0);
        if !idle.is_empty() {
            let peak = if peak > 0.0 {
                format!("{peak:.0}")
            } else {
                "-".into()
            };
            let _ = writeln!(memory, "| {label} | {:.0} | {peak} |", median(&idle));
        }
    }

    if let (Some(Some(ours)), Some(Some(python))) = (lossless.get("ours"), lossless.get("python")) {
        let ratio = ours / python;
        let at_max = !first_loss.contains_key("ours");
        let _ = writeln!(
            t,
            "- receiver: lossless at the load generator's maximum: {}",
            verdict(at_max)
        );
        let _ = writeln!(
            t,
            "- receiver: lossless rate {ratio:.1}x Python's{} (target 5x): {}",
            if at_max {
                " (at least: no loss at max)"
            } else {
                ""
            },
            verdict(ratio >= 5.0)
        );
    }
    if let (Some(Some(ours)), Some(Some(metrics))) = (lossless.get("ours"), lossless.get("metrics"))
    {
        // Lossless at max, a "rate" is only how fast the load generator
        // went in the slowest trial: two of them compare generators.
        if !first_loss.contains_key("ours") && !first_loss.contains_key("metrics") {
            let _ = writeln!(
                t,
                "- receiver: lossless rate with --metrics: no loss with or without, at any rate, max included ({} and {}/s) (target at least 95% of without): {}",
                commas(*metrics),
                commas(*ours),
                verdict(true)
            );
        } else {
            let ratio = metrics / ours;
            let _ = writeln!(
                t,
                "- receiver: lossless rate with --metrics {:.1}% of without (target at least 95%): {}",
                ratio * 100.0,
                verdict(ratio >= 0.95)
            );
        }
    }
    if let (Some(Some(ours)), Some(Some(metrics))) = (cpu.get("ours"), cpu.get("metrics")) {
        let _ = writeln!(
            t,
            "- receiver: CPU per datagram with --metrics {:.1}% of without",
            metrics / ours * 100.0
        );
    }
    signed_targets(&lossless, &first_loss, &cpu, t);
    (o, memory)
}

/// Issue 22: the signed receiver's lossless rate as a share of the same
/// traffic's without a key: a sender's messages (plain datagrams without a
/// key, signed MESSAGE frames with one: each logged, none acknowledged)
/// and `--confirm`'s DATA frames (each logged once and acknowledged; the
/// key adds a check and a signed ACK); and CPU per datagram of each.
fn signed_targets(
    lossless: &HashMap<&str, Option<f64>>,
    first_loss: &HashMap<&str, u64>,
    cpu: &HashMap<&str, Option<f64>>,
    t: &mut String,
) {
    for (signed, without, what) in [
        (
            "signed",
            "ours",
            "messages: signed MESSAGE frames vs plain datagrams",
        ),
        (
            "signed-data",
            "framed",
            "--confirm: signed vs unsigned DATA frames",
        ),
    ] {
        let (Some(Some(rate)), Some(Some(without_rate))) =
            (lossless.get(signed), lossless.get(without))
        else {
            continue;
        };
        // Lossless at the generator's max, the signed "rate" is only the
        // generator's, which seals each frame in its loop (slower): then the
        // ratio is a lower bound, and below 80% it decides nothing.
        let signed_at_max = !first_loss.contains_key(signed);
        let ratio = rate / without_rate;
        let verdict = match (ratio >= 0.8, signed_at_max) {
            (true, _) => verdict(true),
            (false, true) => "not decided (no loss at the generator's max)",
            (false, false) => verdict(false),
        };
        let _ = writeln!(
            t,
            "- receiver: lossless rate with --key-file {}{:.1}% of without ({what}: {} vs {}/s) (target at least 80%): {verdict}",
            if signed_at_max { "at least " } else { "" },
            ratio * 100.0,
            commas(*rate),
            commas(*without_rate),
        );
    }
    let us = |who: &str| {
        cpu.get(who)
            .copied()
            .flatten()
            .map_or("-".into(), |c| format!("{:.2} us", c * 1e6))
    };
    let _ = writeln!(
        t,
        "- receiver: CPU per datagram with --key-file {} (MESSAGE frames; plain {}), {} (DATA frames; unsigned {})",
        us("signed"),
        us("ours"),
        us("signed-data"),
        us("framed")
    );
}

struct Trial {
    sent: f64,
    errors: f64,
    achieved: f64,
    lines: f64,
    drops: f64,
    rss: f64,
    hwm: f64,
    cpu: f64,
}
